//! Stream patterns (package streams): an exact name or a glob with `*`.

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
}
