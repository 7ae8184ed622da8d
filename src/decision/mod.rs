//! The one decision every hook is turned into (SPEC §2).
//!
//! `evaluate` is the pure part (IP rules, identity, account state, packages)
//! against the in-memory `policy_view`; `engine` adds the admission part
//! (kicked sessions, connection limits, the session row) against PostgreSQL,
//! and `live` the sessions this replica answers refreshes of from memory.

pub mod admission_batch;
pub mod denial_tally;
pub mod engine;
pub mod evaluate;
pub mod live;
pub mod upkeep;
pub mod viewer_cookie;

use std::net::IpAddr;

use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use crate::domain::Reason;

pub use engine::Engine;

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
/// never logged (`Debug` redacts them). A token wins over a login:password
/// sent beside it.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credential {
    /// Nothing: IP authorization, an allow rule, or continuing a session.
    #[default]
    None,
    Token(String),
    Password {
        login: String,
        password: String,
    },
    /// A login without a password or a password without a login: never
    /// verified, always `bad_credentials`.
    Incomplete {
        login: Option<String>,
    },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::None => f.write_str("None"),
            Credential::Token(_) => f.write_str("Token([redacted])"),
            Credential::Password { login, .. } => f
                .debug_struct("Password")
                .field("login", login)
                .field("password", &"[redacted]")
                .finish(),
            Credential::Incomplete { login } => {
                f.debug_struct("Incomplete").field("login", login).finish()
            }
        }
    }
}

impl Credential {
    /// From the fields a streamer sends; empty values count as absent.
    pub fn from_parts(
        token: Option<String>,
        login: Option<String>,
        password: Option<String>,
    ) -> Credential {
        let present = |value: Option<String>| value.filter(|v| !v.is_empty());
        match (present(token), present(login), present(password)) {
            (Some(token), _, _) => Credential::Token(token),
            (None, Some(login), Some(password)) => Credential::Password { login, password },
            (None, None, None) => Credential::None,
            (None, login, _) => Credential::Incomplete { login },
        }
    }

    /// `login:password` as sent in `?auth=`; None when there is no colon.
    pub fn from_auth_pair(pair: &str) -> Option<Credential> {
        let (login, password) = pair.split_once(':')?;
        Some(Credential::from_parts(
            None,
            Some(login.to_string()),
            Some(password.to_string()),
        ))
    }

    pub fn is_none(&self) -> bool {
        matches!(self, Credential::None)
    }

    pub fn token(&self) -> Option<&str> {
        match self {
            Credential::Token(token) => Some(token),
            _ => None,
        }
    }

    /// The login presented with a password (complete or not).
    pub fn login(&self) -> Option<&str> {
        match self {
            Credential::Password { login, .. } => Some(login),
            Credential::Incomplete { login } => login.as_deref(),
            Credential::None | Credential::Token(_) => None,
        }
    }
}

/// One play request, whatever dialect it arrived in.
#[derive(Clone, Debug)]
pub struct PlayRequest {
    /// The hook's route name (`decide`, `astra`, …); also the metrics label.
    pub dialect: &'static str,
    pub stream: String,
    pub client_ip: IpAddr,
    pub credential: Credential,
    /// The streamer's own session id, when it sends one.
    pub session: Option<String>,
    pub event: Event,
    pub protocol: String,
    pub user_agent: String,
    pub referer: String,
    pub streamer: String,
    pub bytes: Option<i64>,
    /// The address of the caller, where `client_ip` is only its claim
    /// (`/hook/decide`, which players and middleware call from anywhere):
    /// guesses are counted per caller, and the session key is the caller's
    /// own. None for streamer dialects, whose caller is the streamer.
    pub caller: Option<IpAddr>,
    /// What an HLS/DASH player sent besides credentials (forward-auth).
    pub hls: HlsViewer,
    /// The device id the streamer, link or caller sent (a set-top box's
    /// id); see `device()`.
    pub device: Option<String>,
    /// The client's query as the streamer passed it on: where signed-link
    /// parameters travel (SPEC §9).
    pub query: ClientQuery,
    /// The path the viewer requested, where the dialect knows it
    /// (forward-auth's original URI, Astra's `X-Real-Path`): what `nginx`,
    /// `akamai` and path-subject `securetoken` links sign.
    pub path: Option<String>,
    /// The client's country and AS number, looked up by the engine when a
    /// rule or a user needs them (SPEC §10); unknown until then.
    pub geo: crate::domain::Geo,
}

/// A client's raw query string. It may hold a signed link or a token, so
/// it is a secret: `Debug` shows only its length.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientQuery(pub String);

impl std::fmt::Debug for ClientQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientQuery([redacted; {} bytes])", self.0.len())
    }
}

impl From<&str> for ClientQuery {
    fn from(query: &str) -> ClientQuery {
        ClientQuery(query.trim_start_matches('?').to_string())
    }
}

/// How a forward-auth request without credentials finds the session of its
/// player (SPEC §3), and whether its answer may set the viewer cookie.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct HlsViewer {
    /// The `playgate_viewer` cookies the request carried (unverified).
    pub cookies: Vec<String>,
    /// `X-Playback-Session-Id` (AVPlayer, Shaka).
    pub playback_id: Option<String>,
    /// Set for a playlist request: where the cookie applies, if one is set.
    pub playlist: Option<CookieScope>,
}

/// The cookie values are bearer credentials of a session: never logged.
impl std::fmt::Debug for HlsViewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HlsViewer")
            .field("cookies", &self.cookies.len())
            .field("playback_id", &self.playback_id)
            .field("playlist", &self.playlist)
            .finish()
    }
}

/// The `Path` and `Secure` of a viewer cookie: the stream's folder as the
/// player requested it, and whether it came over https.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookieScope {
    pub path: String,
    pub secure: bool,
}

/// A viewer cookie to set with an allow (forward-auth).
#[derive(Clone, PartialEq, Eq)]
pub struct ViewerCookie {
    pub value: String,
    pub scope: CookieScope,
    /// Seconds: the session's hold (duration + grace).
    pub max_age: u64,
}

impl std::fmt::Debug for ViewerCookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewerCookie")
            .field("value", &"[redacted]")
            .field("scope", &self.scope)
            .field("max_age", &self.max_age)
            .finish()
    }
}

/// Longest streamer session id kept as is; longer ones are hashed.
const MAX_RAW_SESSION_ID: usize = 200;

impl PlayRequest {
    pub fn new(dialect: &'static str, stream: impl Into<String>, client_ip: IpAddr) -> PlayRequest {
        PlayRequest {
            dialect,
            stream: stream.into(),
            client_ip,
            credential: Credential::None,
            session: None,
            event: Event::Start,
            protocol: String::new(),
            user_agent: String::new(),
            referer: String::new(),
            streamer: String::new(),
            bytes: None,
            caller: None,
            hls: HlsViewer::default(),
            device: None,
            query: ClientQuery::default(),
            path: None,
            geo: crate::domain::Geo::UNKNOWN,
        }
    }

    /// What the viewer watches on (SPEC §1): the device id sent, else the
    /// client IP and user agent. Zapping and device limits count these.
    pub fn device(&self) -> String {
        match self.device.as_deref().filter(|id| !id.is_empty()) {
            Some(id) => id.to_string(),
            None => format!(
                "{} {}",
                crate::domain::canonical_ip(self.client_ip),
                self.user_agent
            ),
        }
    }

    /// The streamer's session id where it sent one (namespaced by dialect and
    /// streamer), else a hash of (dialect, streamer, user or token, stream,
    /// client IP, user agent), so a reconnecting player reuses its slot. A
    /// token only ever enters the key hashed.
    ///
    /// Where the caller is known (`/hook/decide`), its address is part of
    /// the key too: `streamer` and `session` are whatever the caller writes,
    /// so without it anyone who learnt (or guessed) a session id could stop,
    /// or refresh into, another caller's session. A start and its refreshes
    /// and stop must come from the same address.
    pub fn session_key(&self) -> String {
        if let Some(id) = self.session.as_deref().filter(|id| !id.is_empty()) {
            if id.len() <= MAX_RAW_SESSION_ID {
                return match self.caller {
                    // An address has no `]`: the caller ends unambiguously.
                    Some(caller) => {
                        format!("s:{}@[{caller}]:{}:{}", self.dialect, self.streamer, id)
                    }
                    None => format!("s:{}:{}:{}", self.dialect, self.streamer, id),
                };
            }
        }
        let credential = match &self.credential {
            Credential::Token(token) => format!("t:{token}"),
            Credential::Password { login, .. } => format!("l:{login}"),
            Credential::Incomplete { login: Some(login) } => format!("l:{login}"),
            Credential::Incomplete { login: None } | Credential::None => String::new(),
        };
        let ip = self.client_ip.to_string();
        let session = self.session.as_deref().unwrap_or("");
        let caller = self.caller.map(|caller| caller.to_string());
        let mut hasher = Sha256::new();
        for part in [
            self.dialect,
            &self.streamer,
            &credential,
            &self.stream,
            &ip,
            &self.user_agent,
            session,
        ]
        .into_iter()
        // Absent for the streamer dialects: their keys stay what they were.
        .chain(caller.as_deref())
        {
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
    /// The access rule that matched (deny or allow), SPEC §2 step 3.
    pub rule: Option<i64>,
    /// Forward-auth only: the `playgate_viewer` cookie its allow sets.
    #[serde(skip)]
    pub viewer_cookie: Option<ViewerCookie>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> PlayRequest {
        let mut req = PlayRequest::new("decide", "news", "192.0.2.1".parse().unwrap());
        req.credential = Credential::Token("secret-token".into());
        req.user_agent = "VLC".into();
        req
    }

    #[test]
    fn a_device_is_the_same_on_every_stream_and_sent_ids_win() {
        let mut news = request();
        news.client_ip = "::ffff:192.0.2.1".parse().unwrap();
        let mut sport = request();
        sport.stream = "sport".into();
        assert_eq!(news.device(), "192.0.2.1 VLC");
        assert_eq!(news.device(), sport.device());
        assert_ne!(news.session_key(), sport.session_key());
        sport.device = Some("stb-1".into());
        assert_eq!(sport.device(), "stb-1");
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
    fn the_caller_is_part_of_the_key() {
        let mut with_id = request();
        with_id.session = Some("42".into());
        with_id.streamer = "edge-1".into();
        let mut from_a = with_id.clone();
        from_a.caller = Some("198.51.100.1".parse().unwrap());
        let mut from_b = with_id.clone();
        from_b.caller = Some("2001:db8::1".parse().unwrap());
        assert_eq!(from_a.session_key(), "s:decide@[198.51.100.1]:edge-1:42");
        assert_eq!(from_b.session_key(), "s:decide@[2001:db8::1]:edge-1:42");
        assert_eq!(with_id.session_key(), "s:decide:edge-1:42");

        let mut derived_a = request();
        derived_a.caller = from_a.caller;
        let mut derived_b = request();
        derived_b.caller = from_b.caller;
        let keys = [
            request().session_key(),
            derived_a.session_key(),
            derived_b.session_key(),
        ];
        assert!(keys[0] != keys[1] && keys[1] != keys[2] && keys[0] != keys[2]);
        assert!(keys.iter().all(|key| key.starts_with("h:")));
    }

    #[test]
    fn keys_without_a_caller_are_unchanged() {
        // The streamer dialects' keys of sessions already in the database.
        let mut req = request();
        req.dialect = "flussonic";
        req.streamer = "192.0.2.100".into();
        assert_eq!(
            req.session_key(),
            "h:".to_string()
                + &{
                    let mut hasher = Sha256::new();
                    for part in [
                        "flussonic",
                        "192.0.2.100",
                        "t:secret-token",
                        "news",
                        "192.0.2.1",
                        "VLC",
                        "",
                    ] {
                        hasher.update(part.as_bytes());
                        hasher.update([0]);
                    }
                    hex::encode(hasher.finalize())
                }
        );
    }

    #[test]
    fn credentials_debug_redacts() {
        for credential in [
            Credential::from_parts(Some("tok123".into()), Some("bob".into()), None),
            Credential::from_parts(None, Some("bob".into()), Some("pw456".into())),
        ] {
            let text = format!("{credential:?}");
            assert!(
                !text.contains("tok123") && !text.contains("pw456"),
                "{text}"
            );
        }
    }

    #[test]
    fn credential_from_parts() {
        let some = |text: &str| Some(text.to_string());
        assert_eq!(
            Credential::from_parts(some("t"), some("bob"), some("pw")),
            Credential::Token("t".into())
        );
        assert_eq!(
            Credential::from_parts(some(""), some("bob"), some("pw")),
            Credential::Password {
                login: "bob".into(),
                password: "pw".into()
            }
        );
        assert_eq!(
            Credential::from_parts(None, some("bob"), some("")),
            Credential::Incomplete { login: some("bob") }
        );
        assert_eq!(
            Credential::from_parts(None, None, some("pw")),
            Credential::Incomplete { login: None }
        );
        assert!(Credential::from_parts(some(""), None, some("")).is_none());
    }
}
