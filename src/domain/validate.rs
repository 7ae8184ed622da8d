//! Field validation shared by the admin API and both imports: every failure
//! names the field it is about, and the HTTP layer answers it as a 422.

use std::fmt;

use chrono::{DateTime, Utc};
use ipnet::IpNet;

use super::login::Login;
use super::network::parse_network;
use super::records::{RuleAction, TokenScope, UserKind};

/// An invalid field: which one, and why, on one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationError {
    pub field: &'static str,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: &'static str, message: impl Into<String>) -> ValidationError {
        ValidationError {
            field,
            message: message.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for ValidationError {}

/// Client-supplied text quoted back in a message, kept short.
pub fn clip(text: &str) -> String {
    text.chars().take(64).collect()
}

const MAX_TEXT: usize = 4096;
const MAX_PATTERN: usize = 1024;
const MAX_TOKEN: usize = 256;

pub fn login(field: &'static str, value: &str) -> Result<Login, ValidationError> {
    Login::parse(value).ok_or_else(|| {
        ValidationError::new(
            field,
            format!("'{}' is not a valid login: {}", clip(value), Login::SYNTAX),
        )
    })
}

pub fn kind(value: &str) -> Result<UserKind, ValidationError> {
    UserKind::parse(value).ok_or_else(|| {
        ValidationError::new(
            "kind",
            format!("'{}' is not user, observer or admin", clip(value)),
        )
    })
}

pub fn token_scope(value: &str) -> Result<TokenScope, ValidationError> {
    TokenScope::parse(value).ok_or_else(|| {
        ValidationError::new("scope", format!("'{}' is not play or api", clip(value)))
    })
}

pub fn action(value: &str) -> Result<RuleAction, ValidationError> {
    match value {
        "allow" => Ok(RuleAction::Allow),
        "deny" => Ok(RuleAction::Deny),
        other => Err(ValidationError::new(
            "action",
            format!("'{}' is not allow or deny", clip(other)),
        )),
    }
}

/// An IPv4/IPv6 address or CIDR network, normalised (host bits cleared).
pub fn network(field: &'static str, value: &str) -> Result<IpNet, ValidationError> {
    parse_network(value.trim()).ok_or_else(|| {
        ValidationError::new(
            field,
            format!("'{}' is not an IP address or CIDR network", clip(value)),
        )
    })
}

pub fn networks(field: &'static str, values: &[String]) -> Result<Vec<IpNet>, ValidationError> {
    let mut networks = Vec::with_capacity(values.len());
    for value in values {
        let network = network(field, value)?;
        if !networks.contains(&network) {
            networks.push(network);
        }
    }
    Ok(networks)
}

/// RFC 3339 (`2027-01-01T00:00:00Z`, `2027-01-01T03:00:00+03:00`).
pub fn time(field: &'static str, value: &str) -> Result<DateTime<Utc>, ValidationError> {
    DateTime::parse_from_rfc3339(value)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| {
            ValidationError::new(field, format!("'{}' is not an RFC 3339 time", clip(value)))
        })
}

pub fn max_sessions(value: i64) -> Result<i32, ValidationError> {
    limit("max_sessions", value)
}

/// A count limit (`max_sessions`, `max_devices`, `max_viewers`): 0 to
/// 2^31 - 1, the columns' `integer CHECK (>= 0)`; null (no limit) is the
/// caller's to handle.
pub fn limit(field: &'static str, value: i64) -> Result<i32, ValidationError> {
    if value < 0 {
        return Err(ValidationError::new(
            field,
            format!("{field} must not be negative (null = no limit)"),
        ));
    }
    i32::try_from(value).map_err(|_| {
        ValidationError::new(
            field,
            format!("{field} is too large (at most {})", i32::MAX),
        )
    })
}

/// A count limit as JSON: a whole number (see `limit`) or null (no limit).
/// Taken as any JSON value so that `"2"` or `1.5` is a 422 naming the
/// field, not a 400 about the body's types.
pub fn limit_json(
    field: &'static str,
    value: &serde_json::Value,
) -> Result<Option<i32>, ValidationError> {
    use serde_json::Value;
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(n), _) => limit(field, n).map(Some),
            // Beyond i64 (or written `3.0`, `1e20`): the cast saturates, so
            // the range check still says negative or too large.
            (None, Some(f)) if f.fract() == 0.0 => limit(field, f as i64).map(Some),
            _ => Err(not_a_limit(field, value)),
        },
        other => Err(not_a_limit(field, other)),
    }
}

fn not_a_limit(field: &'static str, value: &serde_json::Value) -> ValidationError {
    ValidationError::new(
        field,
        format!(
            "{field} must be a whole number, 0 or more, or null for no limit; not {}",
            clip(&value.to_string())
        ),
    )
}

/// A token given by the admin (an Astra import): kept as is, within reason.
pub fn token(field: &'static str, value: &str) -> Result<(), ValidationError> {
    if value.is_empty() || value.len() > MAX_TOKEN {
        return Err(ValidationError::new(field, "a token has 1-256 characters"));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ValidationError::new(
            field,
            "a token has no spaces or control characters",
        ));
    }
    Ok(())
}

/// Free text (comment, stb, label): bounded length.
pub fn text(field: &'static str, value: &str) -> Result<String, ValidationError> {
    if value.len() > MAX_TEXT {
        return Err(ValidationError::new(
            field,
            format!("longer than {MAX_TEXT} bytes"),
        ));
    }
    Ok(value.to_string())
}

/// A package name: 1–64 characters, no `/`, no whitespace or control characters.
pub fn package_name(field: &'static str, value: &str) -> Result<String, ValidationError> {
    let valid = (1..=64).contains(&value.chars().count())
        && !value
            .chars()
            .any(|c| c == '/' || c.is_whitespace() || c.is_control());
    if valid {
        Ok(value.to_string())
    } else {
        Err(ValidationError::new(
            field,
            format!(
                "'{}' is not a valid package name: 1-64 characters, no '/', spaces or control characters",
                clip(value)
            ),
        ))
    }
}

/// Stream patterns: an exact name or a glob whose only wildcard is `*`.
pub fn patterns(values: &[String]) -> Result<Vec<String>, ValidationError> {
    let mut patterns = Vec::with_capacity(values.len());
    for value in values {
        let problem = if value.is_empty() {
            Some("an empty pattern")
        } else if value.len() > MAX_PATTERN {
            Some("a pattern longer than 1024 bytes")
        } else if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            Some("a pattern with spaces or control characters")
        } else if value.contains("**") {
            Some("'**' (one '*' already matches any run of characters, '/' included)")
        } else if value.contains(['?', '[', ']', '{', '}']) {
            Some("unsupported glob syntax (only '*' is a wildcard)")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(ValidationError::new(
                "streams",
                format!("'{}': {problem}", clip(value)),
            ));
        }
        if !patterns.contains(value) {
            patterns.push(value.clone());
        }
    }
    Ok(patterns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_accept_names_and_star_globs_only() {
        let ok = |p: &[&str]| patterns(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(ok(&["sport/*", "*_hd", "espn", "*"]).is_ok());
        for bad in ["", "a b", "sp?rt", "[ab]", "a**", "{a,b}"] {
            assert_eq!(ok(&[bad]).unwrap_err().field, "streams", "{bad}");
        }
    }

    #[test]
    fn networks_are_normalised() {
        assert_eq!(
            network("ips", "10.1.2.3/16").unwrap().to_string(),
            "10.1.0.0/16"
        );
        assert_eq!(
            network("ips", "2001:db8::1").unwrap().to_string(),
            "2001:db8::1/128"
        );
        assert!(network("ips", "10.0.0.0/33").is_err());
    }

    #[test]
    fn limits_and_times() {
        assert!(max_sessions(-1).is_err());
        assert_eq!(max_sessions(0).unwrap(), 0);
        let json = |v: serde_json::Value| limit_json("max_devices", &v);
        assert_eq!(json(serde_json::json!(null)), Ok(None));
        assert_eq!(json(serde_json::json!(3)), Ok(Some(3)));
        assert_eq!(json(serde_json::json!(i32::MAX)), Ok(Some(i32::MAX)));
        assert_eq!(json(serde_json::json!(2.0)), Ok(Some(2)));
        for bad in [
            serde_json::json!(-1),
            serde_json::json!(1u64 << 40),
            serde_json::json!(u64::MAX),
            serde_json::json!(-1e30),
            serde_json::json!(1.5),
            serde_json::json!("2"),
            serde_json::json!([1]),
            serde_json::json!(true),
        ] {
            assert_eq!(json(bad.clone()).unwrap_err().field, "max_devices", "{bad}");
        }
        assert!(time("expires_at", "2027-01-01").is_err());
        assert!(time("expires_at", "2027-01-01T00:00:00+03:00").is_ok());
    }
}
