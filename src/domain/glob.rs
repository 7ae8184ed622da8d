//! Stream patterns (package streams): an exact name or a glob with `*`.

use memchr::memmem;

/// `*` matches any run of characters, `/` included; everything else is literal.
/// Allocation-free: every refresh matches package and access-rule globs.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut remaining) = text.strip_prefix(first) else {
        return false;
    };
    let mut parts = parts.peekable();
    if parts.peek().is_none() {
        // No `*`: the whole text.
        return remaining.is_empty();
    }
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            return remaining.ends_with(part);
        }
        match remaining.find(part) {
            Some(at) => remaining = &remaining[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// A glob made ready once for matching many texts (access rules: every
/// refresh checks the unfiled rules' globs): split at its `*`s, each inner
/// part with a searcher built in advance. Matches as `glob_matches` does.
#[derive(Clone, Debug)]
pub struct Glob {
    /// What an empty text gives, decided once: no user agent sent is
    /// common, and searching an empty text measured slower than a text.
    matches_empty: bool,
    prefix: String,
    /// None: no `*`, the whole text.
    rest: Option<GlobRest>,
}

#[derive(Clone, Debug)]
struct GlobRest {
    inner: Vec<memmem::Finder<'static>>,
    suffix: String,
}

impl Glob {
    pub fn new(pattern: &str) -> Glob {
        let mut parts: Vec<&str> = pattern.split('*').collect();
        let prefix = parts.remove(0).to_string();
        let rest = parts.pop().map(|suffix| GlobRest {
            inner: parts
                .iter()
                .map(|part| memmem::Finder::new(part.as_bytes()).into_owned())
                .collect(),
            suffix: suffix.to_string(),
        });
        Glob {
            matches_empty: glob_matches(pattern, ""),
            prefix,
            rest,
        }
    }

    pub fn matches(&self, text: &str) -> bool {
        if text.is_empty() {
            return self.matches_empty;
        }
        let Some(remaining) = text.as_bytes().strip_prefix(self.prefix.as_bytes()) else {
            return false;
        };
        let Some(rest) = &self.rest else {
            return remaining.is_empty();
        };
        let mut remaining = remaining;
        for part in &rest.inner {
            match part.find(remaining) {
                Some(at) => remaining = &remaining[at + part.needle().len()..],
                None => return false,
            }
        }
        remaining.ends_with(rest.suffix.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_matches("sport/*", "sport/espn"));
        assert!(glob_matches("sport/*", "sport/"));
        assert!(!glob_matches("sport/*", "sports/espn"));
        assert!(glob_matches("*_hd", "news_hd"));
        assert!(!glob_matches("*_hd", "news_sd"));
        assert!(glob_matches("a*b*c", "a-b-b-c"));
        assert!(!glob_matches("a*b*c", "a-c"));
        assert!(glob_matches("*", ""));
        assert!(glob_matches("ab*ab", "ab"[..].repeat(2).as_str()));
        assert!(!glob_matches("ab*ba", "aba"));
        assert!(glob_matches("espn", "espn"));
        assert!(!glob_matches("espn", "espn2"));
    }

    #[test]
    fn a_prepared_glob_matches_as_the_plain_one() {
        let patterns = [
            "sport/*",
            "*_hd",
            "a*b*c",
            "*",
            "",
            "ab*ab",
            "ab*ba",
            "espn",
            "*bot*",
            "**",
            "a**b",
            "*.example.com",
            "x*y*z*",
        ];
        let texts = [
            "",
            "sport/espn",
            "sport/",
            "sports/espn",
            "news_hd",
            "news_sd",
            "a-b-b-c",
            "a-c",
            "abab",
            "ab",
            "aba",
            "espn",
            "espn2",
            "googlebot/2.1",
            "ab",
            "a-b",
            "tv.example.com",
            "xyz",
            "x-y-z-",
            "żółw*",
        ];
        for pattern in patterns {
            let glob = Glob::new(pattern);
            for text in texts {
                assert_eq!(
                    glob.matches(text),
                    glob_matches(pattern, text),
                    "{pattern:?} on {text:?}"
                );
            }
        }
    }
}
