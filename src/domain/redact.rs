//! Connection strings and URLs as they may be shown in a log line: with
//! every password replaced by `[redacted]`.

const REDACTED: &str = "[redacted]";

/// `scheme://user:secret@host/…` → `scheme://user:[redacted]@host/…`; a
/// `password=` query parameter is redacted too (PostgreSQL URLs accept one).
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let (head, rest) = url.split_at(scheme_end + 3);
    // The authority ends at the first '/', '?' or '#'; a password may hold
    // an unencoded '@', so the userinfo ends at its last '@'.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => match authority[..at].find(':') {
            Some(colon) => format!("{}:{REDACTED}{}", &authority[..colon], &authority[at..]),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    format!("{head}{authority}{}", redact_query_password(tail))
}

/// The `password=` parameters of a URL's query, redacted.
fn redact_query_password(tail: &str) -> String {
    let Some(question) = tail.find('?') else {
        return tail.to_string();
    };
    let (path, query) = tail.split_at(question + 1);
    let (query, fragment) = match query.find('#') {
        Some(hash) => query.split_at(hash),
        None => (query, ""),
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}={REDACTED}"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{path}{}{fragment}", pairs.join("&"))
}

/// A `DATABASE_URL` as tokio-postgres reads it: a `postgres://` or
/// `postgresql://` URL, else libpq's `key=value` form (`host=db
/// password='s e c r e t'`), with the password redacted either way.
pub fn redact_database_url(text: &str) -> String {
    let trimmed = text.trim_start();
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        redact_url(text)
    } else {
        redact_key_values(text)
    }
}

/// libpq `key = value` pairs, values bare or single-quoted with backslash
/// escapes (as tokio-postgres parses them), the password's replaced. What
/// cannot be parsed is not shown at all.
fn redact_key_values(text: &str) -> String {
    let mut shown = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if key.is_empty() || chars.next() != Some('=') {
            return format!("{REDACTED} (not key=value)");
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            value.push('\'');
            loop {
                match chars.next() {
                    None => return format!("{REDACTED} (unterminated quote)"),
                    Some('\'') => break,
                    Some('\\') => {
                        value.push('\\');
                        if let Some(c) = chars.next() {
                            value.push(c);
                        }
                    }
                    Some(c) => value.push(c),
                }
            }
            value.push('\'');
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                value.push(c);
                if c == '\\' {
                    if let Some(c) = chars.next() {
                        value.push(c);
                    }
                }
            }
        }
        if key.eq_ignore_ascii_case("password") {
            value = REDACTED.to_string();
        }
        shown.push(format!("{key}={value}"));
    }
    shown.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        for (url, shown) in [
            (
                "postgres://app:s3cr3t@db:5432/playgate",
                "postgres://app:[redacted]@db:5432/playgate",
            ),
            (
                "postgres://app:p@ss:w0rd@db/playgate",
                "postgres://app:[redacted]@db/playgate",
            ),
            (
                "postgresql://db/playgate?user=app&password=s3cr3t&sslmode=disable",
                "postgresql://db/playgate?user=app&password=[redacted]&sslmode=disable",
            ),
            ("postgres://app@db/playgate", "postgres://app@db/playgate"),
            (
                "http://portal:m1n1stra@portal.example/stalker_portal",
                "http://portal:[redacted]@portal.example/stalker_portal",
            ),
            (
                "http://portal.example/a@b/stalker_portal",
                "http://portal.example/a@b/stalker_portal",
            ),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn key_value_connection_strings() {
        for (text, shown) in [
            (
                "host=127.0.0.1 port=5432 user=postgres password=s3cr3t-db dbname=x",
                "host=127.0.0.1 port=5432 user=postgres password=[redacted] dbname=x",
            ),
            (
                "host = db  password = 'two words\\' and a quote' dbname=x",
                "host=db password=[redacted] dbname=x",
            ),
            ("PASSWORD=s3cr3t\\ x host=db", "PASSWORD=[redacted] host=db"),
            (
                "host=db password='unterminated",
                "[redacted] (unterminated quote)",
            ),
            ("host=db s3cr3t", "[redacted] (not key=value)"),
        ] {
            let redacted = redact_database_url(text);
            assert_eq!(redacted, shown, "{text}");
            assert!(!redacted.contains("s3cr3t") && !redacted.contains("two words"));
        }
        assert_eq!(
            redact_database_url("postgres://a:s3cr3t@h/d"),
            "postgres://a:[redacted]@h/d"
        );
    }
}
