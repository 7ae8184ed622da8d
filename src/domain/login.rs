//! A user's login (SPEC §1): 1–64 characters of `[A-Za-z0-9._@-]`.

use std::fmt;

/// A login that has been checked; the only way to make one is `parse`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Login(String);

impl Login {
    /// What every error about a login says the syntax is.
    pub const SYNTAX: &'static str = "1-64 characters of A-Z a-z 0-9 . _ @ -";

    pub fn parse(text: &str) -> Option<Login> {
        let valid = (1..=64).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'));
        valid.then(|| Login(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Login {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_syntax() {
        assert!(Login::parse("alice.b_c@d-e").is_some());
        assert!(Login::parse("").is_none());
        assert!(Login::parse("with space").is_none());
        assert!(Login::parse(&"a".repeat(65)).is_none());
        assert!(Login::parse(&"a".repeat(64)).is_some());
    }
}
