//! The policy rows as the store reads them, and the kinds they carry.

use chrono::{DateTime, Utc};
use ipnet::IpNet;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserKind {
    User,
    Observer,
    Admin,
}

impl UserKind {
    pub fn parse(text: &str) -> Option<UserKind> {
        match text {
            "user" => Some(UserKind::User),
            "observer" => Some(UserKind::Observer),
            "admin" => Some(UserKind::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UserKind::User => "user",
            UserKind::Observer => "observer",
            UserKind::Admin => "admin",
        }
    }
}

/// What a token opens (SPEC §1): a playback token leaks through players,
/// logs and shared links, so only an `api` token opens the admin API.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TokenScope {
    #[default]
    Play,
    Api,
}

impl TokenScope {
    pub fn parse(text: &str) -> Option<TokenScope> {
        match text {
            "play" => Some(TokenScope::Play),
            "api" => Some(TokenScope::Api),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Play => "play",
            TokenScope::Api => "api",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleAction {
    Allow,
    Deny,
}

/// Rows as the store reads them; the snapshot is built from these.
#[derive(Clone, Debug)]
pub struct UserRecord {
    pub id: i64,
    pub login: String,
    pub password_hash: Option<String>,
    pub kind: UserKind,
    pub ips: Vec<IpNet>,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_sessions: Option<i32>,
    pub max_devices: Option<i32>,
    pub enabled: bool,
    /// Upper-case ISO 3166-1 alpha-2 codes the user may watch from (SPEC §2
    /// step 5); empty = anywhere.
    pub countries: Vec<String>,
    /// Empty = no packages = every stream.
    pub package_ids: Vec<i64>,
}

#[derive(Clone, Debug)]
pub struct TokenRecord {
    pub hash: [u8; 32],
    pub user_id: i64,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug)]
pub struct PackageRecord {
    pub id: i64,
    pub name: String,
    pub streams: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct IpRuleRecord {
    pub network: IpNet,
    pub action: RuleAction,
    /// A temporary ban's end: the view drops the rule then.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// An enabled signing key of playback links (SPEC §9), as the store reads
/// it: a plain row, which the link verifier parses (`format` and `options`
/// as the admin API validated them, absent options taking their defaults).
/// `Debug` never shows the secret.
#[derive(Clone, PartialEq)]
pub struct SigningKeyRecord {
    pub id: String,
    /// `playgate`, `securetoken`, `nginx`, `wowza` or `akamai`.
    pub format: String,
    /// As given: an HMAC key is its UTF-8 bytes, except `akamai`'s, which is hex.
    pub secret: String,
    /// A JSON object.
    pub options: serde_json::Value,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("id", &self.id)
            .field("format", &self.format)
            .field("secret", &"[redacted]")
            .field("options", &self.options)
            .finish()
    }
}

/// One consistent read of every policy table.
#[derive(Clone, Debug, Default)]
pub struct PolicyRecords {
    pub users: Vec<UserRecord>,
    pub tokens: Vec<TokenRecord>,
    pub packages: Vec<PackageRecord>,
    pub ip_rules: Vec<IpRuleRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signing_key_never_shows_its_secret() {
        let key = SigningKeyRecord {
            id: "k1".into(),
            format: "playgate".into(),
            secret: "never-to-be-shown-1234".into(),
            options: serde_json::json!({}),
        };
        let shown = format!("{key:?} {:?}", vec![key.clone()]);
        assert!(
            shown.contains("k1") && !shown.contains("never-to-be-shown"),
            "{shown}"
        );
    }
}
