//! One module per streamer dialect: each implements `Dialect` — parse its
//! streamer's request into a `PlayRequest`, render the `Decision` as that
//! streamer expects — and nothing else: no policy, no SQL. One generic
//! handler, `handle::<D>`, does the rest for every dialect: guard → parse →
//! validate → decide → render.
//!
//! Adding a streamer: one file here implementing `Dialect` with its
//! `#[utoipa::path]` route function, one `.route(…)` line and one `paths(…)`
//! entry below, its tests and its `docs/streamers/` page.

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

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, HttpRequest, HttpResponse};
use ipnet::IpNet;
use serde_json::json;

use crate::decision::{Credential, Decision, Event, PlayRequest};
use crate::http::request::peer_ip;
use crate::http::AppState;

pub use crate::http::request::{excerpt, header, parse_ip};

pub fn routes(config: &mut web::ServiceConfig) {
    config.service(
        web::scope("/hook")
            .wrap(from_fn(hook_networks))
            .route("/decide", web::post().to(decide::route))
            .route("/astra", web::get().to(astra::route))
            .route("/flussonic", web::get().to(flussonic::route))
            .route("/nginx-rtmp", web::get().to(nginx_rtmp::route))
            .route("/nginx-rtmp", web::post().to(nginx_rtmp::route))
            .route("/srs", web::post().to(srs::route))
            .route("/mediamtx", web::post().to(mediamtx::route))
            .route("/ovenmediaengine", web::post().to(ovenmediaengine::route))
            .route("/forward-auth", web::get().to(forward_auth::route))
            .route("/forward-auth", web::head().to(forward_auth::route)),
    );
}

/// The hooks' part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    decide::route,
    astra::route,
    flussonic::route,
    nginx_rtmp::route,
    srs::route,
    mediamtx::route,
    ovenmediaengine::route,
    forward_auth::route,
))]
pub struct ApiDoc;

/// What a dialect may read of the configuration.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// Proxies whose client-address header is believed (forward-auth).
    pub trusted_proxies: &'a [IpNet],
    /// `PLAYGATE_FORWARD_AUTH_URI_HEADER`, lower-case: the only header that
    /// names the original URI.
    pub uri_header: &'a str,
    /// `PLAYGATE_FORWARD_AUTH_IP_HEADER`, lower-case: the only header that
    /// names the client, and only from a trusted proxy.
    pub ip_header: &'a str,
    /// `PLAYGATE_OME_SECRET`: OvenMediaEngine signs its webhooks with it.
    pub ome_secret: Option<&'a str>,
}

/// The defaults of the settings (tests of the dialects).
impl Default for Context<'_> {
    fn default() -> Self {
        Context {
            trusted_proxies: &[],
            uri_header: "x-original-uri",
            ip_header: "x-real-ip",
            ome_secret: None,
        }
    }
}

/// One streamer's wire format.
pub trait Dialect {
    /// The hook's route name (`/hook/<NAME>`), also the metrics label.
    const NAME: &'static str;

    /// Whether a request without credentials continues the viewer's active
    /// session (HLS/DASH segments behind forward-auth).
    const CONTINUES_SESSIONS: bool = false;

    /// Checked before the body is parsed (a signature); the reason of a
    /// refusal is logged, and the caller gets 403.
    fn guard(_req: &HttpRequest, _body: &[u8], _context: &Context) -> Result<(), String> {
        Ok(())
    }

    /// The streamer's request as a play request, or a one-line reason.
    fn parse(req: &HttpRequest, body: &[u8], context: &Context) -> Result<Call, String>;

    /// The streamer's answer to a decision about a request of `event`.
    fn render(event: Event, decision: &Decision) -> HttpResponse;

    /// The success answer to a call that records nothing (publish-side and
    /// connection notifications sharing the hook).
    fn acknowledge() -> HttpResponse {
        HttpResponse::Ok().finish()
    }
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

/// Parse, then the checks every parsed request goes through.
pub fn parse_validated<D: Dialect>(
    req: &HttpRequest,
    body: &[u8],
    context: &Context,
) -> Result<Call, String> {
    match D::parse(req, body, context)? {
        Call::Decide(request) => validated(request).map(Call::Decide),
        Call::Acknowledge => Ok(Call::Acknowledge),
    }
}

/// Every hook: guard → parse → validate → decide → render.
pub async fn handle<D: Dialect>(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let settings = &state.settings;
    let context = Context {
        trusted_proxies: &settings.trusted_proxies,
        uri_header: &settings.forward_auth_uri_header,
        ip_header: &settings.forward_auth_ip_header,
        ome_secret: settings.ome_secret.as_deref(),
    };
    if let Err(reason) = D::guard(&req, &body, &context) {
        state.engine.record_bad_request(D::NAME);
        log::warn!("{} hook refused: {reason}", D::NAME);
        return HttpResponse::Forbidden().json(json!({"error": one_line(&reason)}));
    }
    let request = match parse_validated::<D>(&req, &body, &context) {
        Ok(Call::Decide(request)) => request,
        Ok(Call::Acknowledge) => return D::acknowledge(),
        Err(reason) => return bad_request(&state, D::NAME, &reason),
    };
    let event = request.event;
    let decision = if D::CONTINUES_SESSIONS {
        state.engine.decide_or_continue(request).await
    } else {
        state.engine.decide(request).await
    };
    D::render(event, &decision)
}

/// `PLAYGATE_HOOK_NETWORKS`: only callers inside these networks (unless it
/// is `*`) may use `/hook/*`; others get 403 and a log line.
async fn hook_networks(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if let Some(state) = request.app_data::<web::Data<AppState>>() {
        let peer = peer_ip(request.request());
        if !state.settings.hook_networks.allows(peer) {
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
    next.call(request)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// 400 with a one-line reason, counted as `reason="bad_request"`.
fn bad_request(state: &AppState, dialect: &str, reason: &str) -> HttpResponse {
    state.engine.record_bad_request(dialect);
    log::info!("bad {dialect} hook: {reason}");
    HttpResponse::BadRequest().json(json!({"error": one_line(reason)}))
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Longest stream name accepted.
pub const MAX_STREAM_LEN: usize = 1024;
/// Free-text fields (user agent, referer, protocol, streamer) are cut to
/// this many bytes, on a character boundary: they are stored with the
/// session, and no field a client chooses may grow a row or an index entry
/// without bound (a 3 KB user agent once failed every admission).
pub const MAX_TEXT_BYTES: usize = 256;

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
pub fn credential_from_pairs(pairs: &[(String, String)]) -> Credential {
    match field(pairs, "token") {
        Some(token) => Credential::Token(token.to_string()),
        None => field(pairs, "auth")
            .and_then(Credential::from_auth_pair)
            .unwrap_or_default(),
    }
}

/// Who asked: the address of the streamer that called the hook.
pub fn streamer(req: &HttpRequest) -> String {
    peer_ip(req).map(|ip| ip.to_string()).unwrap_or_default()
}

/// Astra's channel: `X-Channel-ID`, else the first segment after `/play/` in
/// `X-Real-Path` (`/play/a001/index.m3u8` → `a001`), a path checked like
/// forward-auth's (`request_path`). Also what Ministra's temporary-link
/// script gets when Astra calls it (flussonic dialect). None when neither
/// names a channel.
pub fn astra_channel(req: &HttpRequest) -> Result<Option<String>, String> {
    if let Some(id) = header(req, "x-channel-id") {
        return Ok(Some(id.to_string()));
    }
    let Some(path) = header(req, "x-real-path") else {
        return Ok(None);
    };
    let path = request_path(path.split('?').next().unwrap_or(path))?;
    let Some((_, rest)) = path.split_once("/play/") else {
        return Ok(None);
    };
    Ok(rest
        .split('/')
        .find(|segment| !segment.is_empty())
        .map(str::to_string))
}

/// A request path as the proxy or streamer received it, percent-decoded; a
/// path that could name another file than it spells is refused: `.` or `..`
/// segments, empty segments (`//`), an encoded `/` (SPEC §3). Servers clean
/// such paths before they serve them, so the stream read from the spelling
/// would not be the stream served.
pub fn request_path(raw: &str) -> Result<String, String> {
    let refuse = |why: &str| Err(format!("path '{}': {why}", excerpt(raw)));
    let Some(rest) = raw.strip_prefix('/') else {
        return refuse("does not start with /");
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let mut decoded = String::with_capacity(raw.len());
    for (index, segment) in segments.iter().enumerate() {
        // One trailing slash (a folder) is no empty segment.
        if segment.is_empty() && !(index + 1 == segments.len() && index > 0) {
            return refuse("empty segment");
        }
        let Ok(text) = percent_encoding::percent_decode_str(segment).decode_utf8() else {
            return refuse("not UTF-8 once percent-decoded");
        };
        if text.contains('/') || text.contains('\\') {
            return refuse("encoded / or \\ in a segment");
        }
        if text == "." || text == ".." {
            return refuse(". or .. segment");
        }
        decoded.push('/');
        decoded.push_str(&text);
    }
    Ok(decoded)
}

/// Control characters dropped, then cut to `MAX_TEXT_BYTES` bytes on a
/// character boundary.
fn clean_text(text: &mut String) {
    if text.chars().any(char::is_control) {
        text.retain(|c| !c.is_control());
    }
    if text.len() > MAX_TEXT_BYTES {
        let mut end = MAX_TEXT_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// The checks every parsed request goes through: a usable stream name, and
/// free-text fields safe to store.
/// Longest device id kept: a MAC, a serial, a UUID fit many times over.
const MAX_DEVICE_LEN: usize = 200;

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
    if let Some(device) = &request.device {
        if device.len() > MAX_DEVICE_LEN {
            return Err(format!("device: longer than {MAX_DEVICE_LEN} bytes"));
        }
        if device.chars().any(char::is_control) {
            return Err("device: contains control characters".into());
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
    Ok(request)
}

/// A JSON body that does not parse, as a one-line reason. serde quotes the
/// offending value (`invalid type: string "…", expected …`), and that value
/// may be a credential sent with the wrong type: the reason, which is
/// logged, names the type expected and the position only.
pub fn invalid_body(error: serde_json::Error) -> String {
    let text = error.to_string();
    for kind in ["invalid type", "invalid value", "invalid length"] {
        if let Some(rest) = text.strip_prefix(kind) {
            let expected = rest
                .split_once(", expected ")
                .map(|(_, expected)| expected)
                .unwrap_or("something else");
            return format!("invalid request body: {kind}, expected {expected}");
        }
    }
    format!("invalid request body: {text}")
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

/// A decision for `alice` (render tests of every dialect).
#[cfg(test)]
pub fn test_decision(allow: bool, reason: crate::decision::Reason) -> Decision {
    Decision {
        allow,
        reason,
        user: Some("alice".into()),
        session_id: Some(uuid::Uuid::nil()),
        duration: 30,
        max_sessions: Some(2),
        active_sessions: Some(1),
        rule: None,
        viewer_cookie: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_from_the_url() {
        let fields = pairs(b"token=abc&auth=bob:pw%3Ax");
        assert_eq!(
            credential_from_pairs(&fields),
            Credential::Token("abc".into())
        );
        assert_eq!(
            credential_from_pairs(&pairs(b"auth=bob:pw%3Ax")),
            Credential::Password {
                login: "bob".into(),
                password: "pw:x".into()
            }
        );
        assert!(credential_from_pairs(&pairs(b"token=&auth=nocolon")).is_none());
    }

    #[test]
    fn request_paths() {
        for (raw, path) in [
            ("/live/news/index.m3u8", "/live/news/index.m3u8"),
            ("/live/n%65ws/index.m3u8", "/live/news/index.m3u8"),
            ("/live/news/", "/live/news/"),
            ("/live/caf%C3%A9/1.ts", "/live/café/1.ts"),
            ("/live/a..b/x.ts", "/live/a..b/x.ts"),
        ] {
            assert_eq!(request_path(raw).unwrap(), path, "{raw}");
        }
        for raw in [
            "/live/sport/../premium/index.m3u8",
            "/live/sport/%2e%2e/premium/index.m3u8",
            "/live/sport/%2E./premium/index.m3u8",
            "/live/./premium/index.m3u8",
            "/live/%2e/premium/index.m3u8",
            "/..",
            "//live/premium/index.m3u8",
            "/live//premium/index.m3u8",
            "/",
            "/live%2Fpremium/index.m3u8",
            "/live%2fpremium/index.m3u8",
            "/live%5Cpremium/index.m3u8",
            "/live/%ff/index.m3u8",
            "live/news/index.m3u8",
            "",
        ] {
            let error = request_path(raw).unwrap_err();
            assert!(!error.contains('\n'), "{error}");
        }
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
        assert!(!req.user_agent.contains('\0') && req.user_agent.len() <= MAX_TEXT_BYTES);
    }

    #[test]
    fn body_errors_do_not_quote_values() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Body {
            token: Option<String>,
            bytes: Option<u8>,
        }
        for (body, reason) in [
            (
                r#"{"token": 123456789}"#,
                "invalid request body: invalid type, expected a string at line 1 column ",
            ),
            (
                r#"{"token": ["s3cr3t"]}"#,
                "invalid request body: invalid type, expected a string at line 1 column ",
            ),
            (
                r#"{"bytes": 987654321}"#,
                "invalid request body: invalid value, expected u8 at line 1 column ",
            ),
        ] {
            let error = serde_json::from_str::<Body>(body).unwrap_err();
            let text = invalid_body(error);
            assert!(text.starts_with(reason), "{text}");
            assert!(!text.contains("123456789") && !text.contains("987654321"));
        }
        let error = serde_json::from_str::<Body>("not json").unwrap_err();
        assert!(invalid_body(error).starts_with("invalid request body: expected "));
    }

    #[test]
    fn free_text_is_cut_in_bytes_on_a_character_boundary() {
        let ip = "192.0.2.1".parse().unwrap();
        let mut req = PlayRequest::new("x", "a", ip);
        // 4-byte characters: 512 of them were 2 KB under a limit in characters.
        req.user_agent = "\u{1F600}".repeat(512);
        req.referer = "é".repeat(300);
        req.protocol = format!("a{}", "€".repeat(200));
        req.streamer = "s".repeat(1000);
        let req = validated(req).unwrap();
        assert_eq!(req.user_agent, "\u{1F600}".repeat(64));
        assert_eq!(req.referer, "é".repeat(128));
        // 1 + 85 × 3 = 256 bytes.
        assert_eq!(req.protocol, format!("a{}", "€".repeat(85)));
        assert_eq!(req.streamer.len(), MAX_TEXT_BYTES);
        let mut short = PlayRequest::new("x", "a", ip);
        short.user_agent = "VLC/3.0".into();
        assert_eq!(validated(short).unwrap().user_agent, "VLC/3.0");
    }
}
