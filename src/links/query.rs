//! The pieces every format shares: the raw query, numbers, paths, globs,
//! constant-time comparison.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;
use subtle::ConstantTimeEq;

use super::LinkError;

/// A raw query string split into `name=value` pairs. Values stay raw: each
/// format decides whether it signs the received text (akamai) or the
/// decoded value.
pub(super) struct Query<'a> {
    pairs: Vec<(Cow<'a, str>, &'a str)>,
}

impl<'a> Query<'a> {
    pub(super) fn parse(query: &'a str) -> Query<'a> {
        let query = query.strip_prefix('?').unwrap_or(query);
        let pairs = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode_str(name).decode_utf8_lossy(), value)
            })
            .collect();
        Query { pairs }
    }

    pub(super) fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(n, _)| n == name)
    }

    /// The raw value of a parameter that must not be repeated: a link
    /// parameter given twice is ambiguous (a streamer may read the first and
    /// a verifier the last), so it is refused.
    pub(super) fn single(&self, name: &str) -> Result<Option<&'a str>, LinkError> {
        let mut found = None;
        for (n, value) in &self.pairs {
            if n == name {
                if found.is_some() {
                    return Err(LinkError::Invalid);
                }
                found = Some(*value);
            }
        }
        Ok(found)
    }

    pub(super) fn required(&self, name: &str) -> Result<&'a str, LinkError> {
        self.single(name)?.ok_or(LinkError::Invalid)
    }

    pub(super) fn pairs(&self) -> impl Iterator<Item = (&str, &'a str)> + '_ {
        self.pairs.iter().map(|(n, v)| (n.as_ref(), *v))
    }
}

/// A percent-decoded value (`+` stays `+`: logins and hashes have no spaces,
/// and a raw `+` is more likely meant than an encoded space).
pub(super) fn decode(value: &str) -> Cow<'_, [u8]> {
    percent_decode_str(value).into()
}

pub(super) fn decode_utf8(value: &str) -> Result<Cow<'_, str>, LinkError> {
    percent_decode_str(value)
        .decode_utf8()
        .map_err(|_| LinkError::Invalid)
}

/// Unix seconds as links write them: decimal digits only (no sign, no
/// space), within i64.
pub(super) fn parse_time(text: &str) -> Result<i64, LinkError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(LinkError::Invalid);
    }
    text.parse::<i64>().map_err(|_| LinkError::Invalid)
}

/// Lowercase hex only, so that each signature has one spelling.
pub(super) fn decode_lower_hex(text: &str, out: &mut [u8]) -> Result<(), LinkError> {
    let ok = text.len() == out.len() * 2
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !ok {
        return Err(LinkError::Invalid);
    }
    hex::decode_to_slice(text, out).map_err(|_| LinkError::Invalid)
}

pub(super) fn same(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// A path as nginx's `$uri` has it: slashes merged, `.` and `..` resolved;
/// `None` when it is not absolute or climbs above the root. Normalising also
/// keeps an ACL glob like `/live/news/*` from admitting
/// `/live/news/../sport/…`.
pub(super) fn normalize_path(path: &str) -> Option<Cow<'_, str>> {
    if !path.starts_with('/') {
        return None;
    }
    let clean = !path.contains("//")
        && !path.contains("/./")
        && !path.contains("/../")
        && !path.ends_with("/.")
        && !path.ends_with("/..");
    if clean {
        return Some(Cow::Borrowed(path));
    }
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in path[1..].split('/') {
        match segment {
            "" | "." => trailing_slash = true,
            ".." => {
                segments.pop()?;
                trailing_slash = true;
            }
            name => {
                segments.push(name);
                trailing_slash = false;
            }
        }
    }
    let mut normal = String::with_capacity(path.len());
    for segment in &segments {
        normal.push('/');
        normal.push_str(segment);
    }
    if trailing_slash || segments.is_empty() {
        normal.push('/');
    }
    Some(Cow::Owned(normal))
}

/// Akamai's ACL wildcards: `*` any run of characters (`/` included), `?`
/// exactly one character; everything else literal.
pub(super) fn wildcard_matches(pattern: &str, text: &str) -> bool {
    if pattern.is_ascii() && text.is_ascii() {
        wildcard(pattern.as_bytes(), text.as_bytes(), b'*', b'?')
    } else {
        let pattern: Vec<char> = pattern.chars().collect();
        let text: Vec<char> = text.chars().collect();
        wildcard(&pattern, &text, '*', '?')
    }
}

/// The linear-backtracking matcher: on a mismatch, only the last `*` is
/// retried one character further, so the work is O(pattern × text) at worst.
fn wildcard<T: PartialEq + Copy>(pattern: &[T], text: &[T], star: T, any: T) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut last_star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == star {
            last_star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && (pattern[p] == any || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = last_star {
            p = star_p + 1;
            t = star_t + 1;
            last_star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == star)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_like_nginx_uri() {
        for (path, expected) in [
            ("/live/news/index.m3u8", Some("/live/news/index.m3u8")),
            ("/live//news/./index.m3u8", Some("/live/news/index.m3u8")),
            ("/live/sport/../news/", Some("/live/news/")),
            ("/live/news/..", Some("/live/")),
            ("/", Some("/")),
            ("//", Some("/")),
            ("/..", None),
            ("/a/../../b", None),
            ("live/news", None),
            ("", None),
        ] {
            assert_eq!(normalize_path(path).as_deref(), expected, "{path}");
        }
    }

    #[test]
    fn akamai_wildcards() {
        // The official library's live tests (akamai/EdgeAuth-Token-Python test/test_edgeauth.py):
        assert!(wildcard_matches("/q_ignore/??r??", "/q_ignore/world"));
        assert!(wildcard_matches("/c_ignore/?", "/c_ignore/a"));
        assert!(wildcard_matches("/h_ignore/??*", "/h_ignore/112"));
        assert!(wildcard_matches("/c_escape/*", "/c_escape/a/b/c/d"));
        assert!(!wildcard_matches("/c_ignore/?", "/c_ignore/ab"));
        assert!(!wildcard_matches("/c_ignore/?", "/c_ignore/"));
        assert!(wildcard_matches(
            "/live/news/index.m3u8",
            "/live/news/index.m3u8"
        ));
        assert!(!wildcard_matches(
            "/live/news/index.m3u8",
            "/live/news/index.m3u"
        ));
        assert!(wildcard_matches("*", ""));
        assert!(wildcard_matches("/a*b*c", "/a-b-b-c"));
        assert!(!wildcard_matches("/a*b*c", "/a-c"));
        assert!(wildcard_matches("/tv/?é/*", "/tv/xé/1.ts"));
        assert!(!wildcard_matches("", "/"));
    }

    #[test]
    fn times_are_plain_digits() {
        assert_eq!(parse_time("1893456000"), Ok(1893456000));
        assert_eq!(parse_time("01893456000"), Ok(1893456000));
        for bad in ["", "+1", "-1", " 1", "1e9", "99999999999999999999"] {
            assert_eq!(parse_time(bad), Err(LinkError::Invalid), "{bad}");
        }
    }

    #[test]
    fn repeated_link_parameters_are_refused() {
        let query = Query::parse("?a=1&b=2&a=3&&c");
        assert_eq!(query.single("a"), Err(LinkError::Invalid));
        assert_eq!(query.single("b"), Ok(Some("2")));
        assert_eq!(query.single("c"), Ok(Some("")));
        assert_eq!(query.single("d"), Ok(None));
    }
}
