//! The one decision every hook is turned into (SPEC §2).
//!
//! `policy` is the pure part (steps 1–5: IP rules, identity, account state,
//! packages); `engine` adds the admission part (steps 6–8: kicked sessions,
//! connection limits, the session row) against PostgreSQL.

pub mod engine;
pub mod live;
pub mod policy;

use std::net::IpAddr;

use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use engine::Engine;

/// The reason codes of SPEC §2, the complete set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Ok,
    IpAllowed,
    IpDenied,
    UnknownToken,
    TokenExpired,
    BadCredentials,
    NoCredentials,
    UserDisabled,
    UserExpired,
    IpMismatch,
    StreamNotAllowed,
    SessionKicked,
    SessionLimit,
    PublishNotAllowed,
    RateLimited,
    UpstreamUnavailable,
    DbUnavailable,
    BadRequest,
}

impl Reason {
    pub const ALL: [Reason; 18] = [
        Reason::Ok,
        Reason::IpAllowed,
        Reason::IpDenied,
        Reason::UnknownToken,
        Reason::TokenExpired,
        Reason::BadCredentials,
        Reason::NoCredentials,
        Reason::UserDisabled,
        Reason::UserExpired,
        Reason::IpMismatch,
        Reason::StreamNotAllowed,
        Reason::SessionKicked,
        Reason::SessionLimit,
        Reason::PublishNotAllowed,
        Reason::RateLimited,
        Reason::UpstreamUnavailable,
        Reason::DbUnavailable,
        Reason::BadRequest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ok => "ok",
            Reason::IpAllowed => "ip_allowed",
            Reason::IpDenied => "ip_denied",
            Reason::UnknownToken => "unknown_token",
            Reason::TokenExpired => "token_expired",
            Reason::BadCredentials => "bad_credentials",
            Reason::NoCredentials => "no_credentials",
            Reason::UserDisabled => "user_disabled",
            Reason::UserExpired => "user_expired",
            Reason::IpMismatch => "ip_mismatch",
            Reason::StreamNotAllowed => "stream_not_allowed",
            Reason::SessionKicked => "session_kicked",
            Reason::SessionLimit => "session_limit",
            Reason::PublishNotAllowed => "publish_not_allowed",
            Reason::RateLimited => "rate_limited",
            Reason::UpstreamUnavailable => "upstream_unavailable",
            Reason::DbUnavailable => "db_unavailable",
            Reason::BadRequest => "bad_request",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Start,
    Refresh,
    Stop,
    /// A request to start publishing that reached a play hook (SPEC §3):
    /// always denied `publish_not_allowed`, recorded like any decision.
    Publish,
}

/// What the viewer presented. Secrets live here only for the decision and are
/// never logged (`Debug` redacts them).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub token: Option<String>,
    pub login: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("login", &self.login)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl Credentials {
    pub fn is_empty(&self) -> bool {
        self.token.is_none() && self.login.is_none() && self.password.is_none()
    }

    /// `login:password` as sent in `?auth=`; None when there is no colon.
    pub fn from_auth_pair(pair: &str) -> Option<Credentials> {
        let (login, password) = pair.split_once(':')?;
        Some(Credentials {
            token: None,
            login: Some(login.to_string()),
            password: Some(password.to_string()),
        })
    }
}

/// One play request, whatever dialect it arrived in.
#[derive(Clone, Debug)]
pub struct PlayRequest {
    /// The hook's route name (`decide`, `astra`, …); also the metrics label.
    pub dialect: &'static str,
    pub stream: String,
    pub client_ip: IpAddr,
    pub credentials: Credentials,
    /// The streamer's own session id, when it sends one.
    pub session: Option<String>,
    pub event: Event,
    pub protocol: String,
    pub user_agent: String,
    pub referer: String,
    pub streamer: String,
    pub bytes: Option<i64>,
}

/// Longest streamer session id kept as is; longer ones are hashed.
const MAX_RAW_SESSION_ID: usize = 200;

impl PlayRequest {
    pub fn new(dialect: &'static str, stream: impl Into<String>, client_ip: IpAddr) -> PlayRequest {
        PlayRequest {
            dialect,
            stream: stream.into(),
            client_ip,
            credentials: Credentials::default(),
            session: None,
            event: Event::Start,
            protocol: String::new(),
            user_agent: String::new(),
            referer: String::new(),
            streamer: String::new(),
            bytes: None,
        }
    }

    /// The streamer's session id where it sent one (namespaced by dialect and
    /// streamer), else a hash of (dialect, streamer, user or token, stream,
    /// client IP, user agent), so a reconnecting player reuses its slot. A
    /// token only ever enters the key hashed.
    pub fn session_key(&self) -> String {
        if let Some(id) = self.session.as_deref().filter(|id| !id.is_empty()) {
            if id.len() <= MAX_RAW_SESSION_ID {
                return format!("s:{}:{}:{}", self.dialect, self.streamer, id);
            }
        }
        let credential = match (&self.credentials.token, &self.credentials.login) {
            (Some(token), _) => format!("t:{token}"),
            (None, Some(login)) => format!("l:{login}"),
            (None, None) => String::new(),
        };
        let ip = self.client_ip.to_string();
        let session = self.session.as_deref().unwrap_or("");
        let mut hasher = Sha256::new();
        for part in [
            self.dialect,
            &self.streamer,
            &credential,
            &self.stream,
            &ip,
            &self.user_agent,
            session,
        ] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        format!("h:{}", hex::encode(hasher.finalize()))
    }
}

/// The answer, rendered by each dialect in its streamer's terms (SPEC §2).
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Decision {
    pub allow: bool,
    pub reason: Reason,
    pub user: Option<String>,
    pub session_id: Option<Uuid>,
    /// Seconds the answer holds.
    pub duration: u64,
    pub max_sessions: Option<i32>,
    pub active_sessions: Option<i64>,
}

/// `[A-Za-z0-9._@-]{1,64}` (SPEC §1).
pub fn is_valid_login(login: &str) -> bool {
    (1..=64).contains(&login.len())
        && login
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'))
}

/// Tokens are stored and looked up as SHA-256 only.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> PlayRequest {
        let mut req = PlayRequest::new("decide", "news", "192.0.2.1".parse().unwrap());
        req.credentials.token = Some("secret-token".into());
        req.user_agent = "VLC".into();
        req
    }

    #[test]
    fn derived_key_is_stable_and_hides_the_token() {
        let key = request().session_key();
        assert_eq!(key, request().session_key());
        assert!(key.starts_with("h:"));
        assert!(!key.contains("secret-token"));
    }

    #[test]
    fn derived_key_changes_with_each_part() {
        let base = request().session_key();
        let mut other_stream = request();
        other_stream.stream = "sport".into();
        let mut other_ip = request();
        other_ip.client_ip = "192.0.2.2".parse().unwrap();
        let mut other_agent = request();
        other_agent.user_agent = "mpv".into();
        let mut other_streamer = request();
        other_streamer.streamer = "edge-2".into();
        for changed in [other_stream, other_ip, other_agent, other_streamer] {
            assert_ne!(changed.session_key(), base);
        }
    }

    #[test]
    fn streamer_session_id_is_the_key() {
        let mut req = request();
        req.session = Some("42".into());
        req.streamer = "edge-1".into();
        assert_eq!(req.session_key(), "s:decide:edge-1:42");
    }

    #[test]
    fn login_syntax() {
        assert!(is_valid_login("alice.b_c@d-e"));
        assert!(!is_valid_login(""));
        assert!(!is_valid_login("with space"));
        assert!(!is_valid_login(&"a".repeat(65)));
    }

    #[test]
    fn reason_names_match_serde() {
        for reason in Reason::ALL {
            assert_eq!(serde_json::to_value(reason).unwrap(), reason.as_str());
        }
    }

    #[test]
    fn credentials_debug_redacts() {
        let creds = Credentials {
            token: Some("tok123".into()),
            login: Some("bob".into()),
            password: Some("pw456".into()),
        };
        let text = format!("{creds:?}");
        assert!(!text.contains("tok123") && !text.contains("pw456"));
    }
}
