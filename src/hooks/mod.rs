//! One module per streamer dialect: each parses its streamer's request into a
//! `PlayRequest` and renders the `Decision` as that streamer expects. No
//! policy and no SQL here.
//!
//! This file holds what the dialects share: the routes, the
//! `PLAYGATE_HOOK_NETWORKS` guard, query/credential/IP parsing and the
//! validation every parsed request goes through.

pub mod astra;
pub mod decide;
pub mod flussonic;
pub mod forward_auth;
#[cfg(test)]
mod fuzz;
pub mod mediamtx;
pub mod nginx_rtmp;
pub mod ovenmediaengine;
pub mod srs;

use std::net::IpAddr;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use serde_json::json;

use crate::app::AppState;
use crate::decision::policy::canonical_ip;
use crate::decision::{Credentials, PlayRequest};

pub fn routes(config: &mut web::ServiceConfig) {
    config.service(
        web::scope("/hook")
            .wrap(from_fn(hook_networks))
            .route("/decide", web::post().to(decide::handle))
            .route("/astra", web::get().to(astra::handle))
            .route("/flussonic", web::get().to(flussonic::handle))
            .route("/nginx-rtmp", web::get().to(nginx_rtmp::handle))
            .route("/nginx-rtmp", web::post().to(nginx_rtmp::handle))
            .route("/srs", web::post().to(srs::handle))
            .route("/mediamtx", web::post().to(mediamtx::handle))
            .route("/ovenmediaengine", web::post().to(ovenmediaengine::handle))
            .route("/forward-auth", web::get().to(forward_auth::handle))
            .route("/forward-auth", web::head().to(forward_auth::handle)),
    );
}

/// `PLAYGATE_HOOK_NETWORKS`: when set, only callers inside these networks may
/// use `/hook/*`; others get 403 and a log line.
async fn hook_networks(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if let Some(state) = request.app_data::<web::Data<AppState>>() {
        let networks = &state.settings.hook_networks;
        if !networks.is_empty() {
            let peer = request.peer_addr().map(|addr| canonical_ip(addr.ip()));
            if !peer.is_some_and(|ip| networks.iter().any(|network| network.contains(&ip))) {
                log::warn!(
                    "refused {} from {}: caller outside PLAYGATE_HOOK_NETWORKS",
                    request.path(),
                    peer.map(|ip| ip.to_string())
                        .unwrap_or_else(|| "unknown".into())
                );
                let response = HttpResponse::Forbidden()
                    .json(json!({"error": "caller not allowed by PLAYGATE_HOOK_NETWORKS"}));
                return Ok(request.into_response(response).map_into_right_body());
            }
        }
    }
    next.call(request)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// What a parsed hook asks for.
// Lives for one request on the stack; boxing the request would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Call {
    /// A play start, refresh or stop, or a publish start: decided by the engine.
    Decide(PlayRequest),
    /// A publish-side or connection notification that shares the hook: the
    /// success answer, nothing recorded (SPEC §3).
    Acknowledge,
}

/// 400 with a one-line reason, counted as `reason="bad_request"`.
pub fn bad_request(state: &AppState, dialect: &str, reason: &str) -> HttpResponse {
    state.engine.record_bad_request(dialect);
    log::info!("bad {dialect} hook: {reason}");
    HttpResponse::BadRequest().json(json!({"error": one_line(reason)}))
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Longest stream name accepted.
pub const MAX_STREAM_LEN: usize = 1024;
/// Longer free-text fields (user agent, protocol, …) are cut to this.
const MAX_TEXT_LEN: usize = 512;

/// A short, printable excerpt of untrusted input for an error message.
pub fn excerpt(text: &str) -> String {
    text.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Query string or form body pairs, decoded (invalid UTF-8 replaced).
pub fn pairs(text: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(text)
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect()
}

/// The first non-empty value of a field.
pub fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, value)| key == name && !value.trim().is_empty())
        .map(|(_, value)| value.trim())
}

/// `token=` and `auth=login:password` as a player puts them in its URL.
pub fn credentials_from_pairs(pairs: &[(String, String)]) -> Credentials {
    let mut credentials = field(pairs, "auth")
        .and_then(Credentials::from_auth_pair)
        .unwrap_or_default();
    credentials.token = field(pairs, "token").map(str::to_string);
    credentials
}

/// `Authorization: Basic base64(login:password)`, when well-formed.
pub fn basic_auth(req: &HttpRequest) -> Option<Credentials> {
    let value = header(req, "authorization")?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let pair = String::from_utf8(decoded).ok()?;
    Credentials::from_auth_pair(&pair).filter(|c| c.login.as_deref().is_some_and(|l| !l.is_empty()))
}

/// A header's value when present, non-empty and visible ASCII/UTF-8.
pub fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers()
        .get(name)
        .and_then(|value| std::str::from_utf8(value.as_bytes()).ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

/// An IP address field; `name` is what the error message calls it.
pub fn parse_ip(name: &str, text: Option<&str>) -> Result<IpAddr, String> {
    let text = text.ok_or_else(|| format!("{name}: missing client IP"))?;
    let text = text.trim();
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.split_once(']'))
        .map(|(ip, _)| ip)
        .unwrap_or(text);
    bare.parse::<IpAddr>()
        .or_else(|_| bare.parse::<std::net::SocketAddr>().map(|a| a.ip()))
        .map_err(|_| format!("{name}: '{}' is not an IP address", excerpt(text)))
}

/// Who asked: the address of the streamer that called the hook.
pub fn streamer(req: &HttpRequest) -> String {
    req.peer_addr()
        .map(|addr| canonical_ip(addr.ip()).to_string())
        .unwrap_or_default()
}

fn clean_text(text: &mut String) {
    if text.len() > MAX_TEXT_LEN || text.chars().any(char::is_control) {
        *text = text
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_TEXT_LEN)
            .collect();
    }
}

/// The checks every parsed request goes through: a usable stream name, and
/// free-text fields safe to store.
pub fn validated(mut request: PlayRequest) -> Result<PlayRequest, String> {
    let stream = request.stream.trim().trim_matches('/');
    if stream.is_empty() {
        return Err("stream: missing or empty".into());
    }
    if stream.len() > MAX_STREAM_LEN {
        return Err(format!("stream: longer than {MAX_STREAM_LEN} bytes"));
    }
    if stream.chars().any(char::is_control) {
        return Err(format!(
            "stream: '{}' contains control characters",
            excerpt(stream)
        ));
    }
    request.stream = stream.to_string();
    if let Some(session) = &request.session {
        if session.chars().any(char::is_control) {
            return Err("session id: contains control characters".into());
        }
    }
    for text in [
        &mut request.protocol,
        &mut request.user_agent,
        &mut request.referer,
        &mut request.streamer,
    ] {
        clean_text(text);
    }
    for secret in [
        &mut request.credentials.token,
        &mut request.credentials.login,
        &mut request.credentials.password,
    ] {
        if secret.as_deref().is_some_and(str::is_empty) {
            *secret = None;
        }
    }
    Ok(request)
}

/// Byte counters as streamers send them: a non-negative integer.
pub fn parse_bytes(name: &str, text: Option<&str>) -> Result<Option<i64>, String> {
    match text {
        None => Ok(None),
        Some(text) => text
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|bytes| *bytes >= 0)
            .map(Some)
            .ok_or_else(|| format!("{name}: '{}' is not a byte count", excerpt(text))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn credentials_from_the_url() {
        let creds = credentials_from_pairs(&pairs(b"token=abc&auth=bob:pw%3Ax"));
        assert_eq!(creds.token.as_deref(), Some("abc"));
        assert_eq!(creds.login.as_deref(), Some("bob"));
        assert_eq!(creds.password.as_deref(), Some("pw:x"));
        assert!(credentials_from_pairs(&pairs(b"token=&auth=nocolon")).is_empty());
    }

    #[test]
    fn basic_auth_header() {
        let req = TestRequest::default()
            .insert_header(("Authorization", "Basic Ym9iOnB3"))
            .to_http_request();
        let creds = basic_auth(&req).unwrap();
        assert_eq!(
            (creds.login.as_deref(), creds.password.as_deref()),
            (Some("bob"), Some("pw"))
        );
        for bad in ["Basic !!!", "Bearer abc", "Basic", "Basic Om5vbG9naW4="] {
            let req = TestRequest::default()
                .insert_header(("Authorization", bad))
                .to_http_request();
            assert!(basic_auth(&req).is_none(), "{bad}");
        }
    }

    #[test]
    fn ip_forms() {
        for (text, ip) in [
            ("192.0.2.1", "192.0.2.1"),
            ("192.0.2.1:5000", "192.0.2.1"),
            ("[2001:db8::1]:80", "2001:db8::1"),
            ("2001:db8::1", "2001:db8::1"),
        ] {
            assert_eq!(parse_ip("ip", Some(text)).unwrap().to_string(), ip);
        }
        assert!(parse_ip("ip", Some("unix:")).is_err());
        assert!(parse_ip("ip", None).is_err());
    }

    #[test]
    fn validation() {
        let ip = "192.0.2.1".parse().unwrap();
        let ok = validated(PlayRequest::new("x", "/live/a/", ip)).unwrap();
        assert_eq!(ok.stream, "live/a");
        assert!(validated(PlayRequest::new("x", " / ", ip)).is_err());
        assert!(validated(PlayRequest::new("x", "a\0b", ip)).is_err());
        assert!(validated(PlayRequest::new("x", "a".repeat(2000), ip)).is_err());
        let mut req = PlayRequest::new("x", "a", ip);
        req.user_agent = "ua\0x".repeat(400);
        let req = validated(req).unwrap();
        assert!(!req.user_agent.contains('\0') && req.user_agent.len() <= MAX_TEXT_LEN);
    }
}
