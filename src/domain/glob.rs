//! Stream patterns (package streams): an exact name or a glob with `*`.

/// `*` matches any run of characters, `/` included; everything else is literal.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == text;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = parts.split_first().expect("split yields at least one part");
    let Some(mut remaining) = text.strip_prefix(first) else {
        return false;
    };
    let (last, middle) = rest.split_last().expect("pattern contains '*'");
    for part in middle {
        match remaining.find(part) {
            Some(at) => remaining = &remaining[at + part.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last)
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
