//! Field validation shared by the admin resources: every failure is a 422
//! naming the field.

use chrono::{DateTime, Utc};
use ipnet::IpNet;

use crate::config::parse_network;
use crate::decision::is_valid_login;
use crate::decision::policy::{RuleAction, UserKind};
use crate::error::{clip, ApiError};

const MAX_TEXT: usize = 4096;
const MAX_PATTERN: usize = 1024;

pub fn login(field: &'static str, value: &str) -> Result<String, ApiError> {
    if is_valid_login(value) {
        Ok(value.to_string())
    } else {
        Err(ApiError::invalid(
            field,
            format!(
                "'{}' is not a valid login: 1-64 characters of A-Z a-z 0-9 . _ @ -",
                clip(value)
            ),
        ))
    }
}

pub fn kind(value: &str) -> Result<UserKind, ApiError> {
    UserKind::parse(value).ok_or_else(|| {
        ApiError::invalid(
            "kind",
            format!("'{}' is not user, observer or admin", clip(value)),
        )
    })
}

pub fn action(value: &str) -> Result<RuleAction, ApiError> {
    match value {
        "allow" => Ok(RuleAction::Allow),
        "deny" => Ok(RuleAction::Deny),
        other => Err(ApiError::invalid(
            "action",
            format!("'{}' is not allow or deny", clip(other)),
        )),
    }
}

/// An IPv4/IPv6 address or CIDR network, normalised (host bits cleared).
pub fn network(field: &'static str, value: &str) -> Result<IpNet, ApiError> {
    parse_network(value.trim()).ok_or_else(|| {
        ApiError::invalid(
            field,
            format!("'{}' is not an IP address or CIDR network", clip(value)),
        )
    })
}

pub fn networks(field: &'static str, values: &[String]) -> Result<Vec<IpNet>, ApiError> {
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
pub fn time(field: &'static str, value: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(value)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| ApiError::invalid(field, format!("'{}' is not an RFC 3339 time", clip(value))))
}

pub fn max_sessions(value: i64) -> Result<i32, ApiError> {
    if value < 0 {
        return Err(ApiError::invalid(
            "max_sessions",
            "max_sessions must not be negative (null = unlimited)",
        ));
    }
    i32::try_from(value).map_err(|_| ApiError::invalid("max_sessions", "max_sessions is too large"))
}

/// Free text (comment, stb, label): bounded length.
pub fn text(field: &'static str, value: &str) -> Result<String, ApiError> {
    if value.len() > MAX_TEXT {
        return Err(ApiError::invalid(
            field,
            format!("longer than {MAX_TEXT} bytes"),
        ));
    }
    Ok(value.to_string())
}

/// A package name: 1–64 characters, no `/`, no whitespace or control characters.
pub fn package_name(field: &'static str, value: &str) -> Result<String, ApiError> {
    let valid = (1..=64).contains(&value.chars().count())
        && !value
            .chars()
            .any(|c| c == '/' || c.is_whitespace() || c.is_control());
    if valid {
        Ok(value.to_string())
    } else {
        Err(ApiError::invalid(
            field,
            format!(
                "'{}' is not a valid package name: 1-64 characters, no '/', spaces or control characters",
                clip(value)
            ),
        ))
    }
}

/// Stream patterns: an exact name or a glob whose only wildcard is `*`.
pub fn patterns(values: &[String]) -> Result<Vec<String>, ApiError> {
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
            return Err(ApiError::invalid(
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
            assert_eq!(ok(&[bad]).unwrap_err().field, Some("streams"), "{bad}");
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
        assert!(time("expires_at", "2027-01-01").is_err());
        assert!(time("expires_at", "2027-01-01T00:00:00+03:00").is_ok());
    }
}
