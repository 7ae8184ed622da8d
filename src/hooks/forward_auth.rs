//! `GET /hook/forward-auth`: nginx `auth_request`, Traefik `ForwardAuth`,
//! Caddy `forward_auth`, for HLS/DASH served by the proxy.
//!
//! The proxy copies the client's own headers into the auth request, so only
//! two headers are read, each the one the settings name, which the proxy
//! sets itself (SPEC §3): the original URI (`PLAYGATE_FORWARD_AUTH_URI_HEADER`,
//! default `X-Original-URI`) and, from a trusted proxy only, the client
//! address (`PLAYGATE_FORWARD_AUTH_IP_HEADER`, default `X-Real-IP`). The
//! stream is the URI's path, percent-decoded and checked (`request_path`),
//! without its last segment when that is a playlist or media file; no header
//! names it. Credentials: `token` / `auth` in the original query, or the
//! client's `Authorization: Basic`. A request without credentials continues
//! its player's active session (segments), found by the `playgate_viewer`
//! cookie an allowed playlist request set, the `X-Playback-Session-Id`, or
//! stream, client IP and user agent (the engine decides which may), else it
//! is 401.

use actix_web::{web, HttpRequest, HttpResponse};

use super::{
    credential_from_pairs, excerpt, handle, header, pairs, request_path, streamer, Call, Context,
    Dialect,
};
use crate::decision::viewer_cookie::COOKIE_NAME;
use crate::decision::{CookieScope, Credential, Decision, Event, PlayRequest, Reason};
use crate::http::request::{basic_credentials, client_ip, https_via_trusted_proxy, only_header};
use crate::http::AppState;

pub struct ForwardAuth;

/// Last path segments that are files of a stream rather than the stream itself.
const MEDIA_EXTENSIONS: &[&str] = &[
    "m3u8", "m3u", "ts", "m4s", "mp4", "m4a", "m4v", "mp3", "aac", "ac3", "mpd", "vtt", "webvtt",
    "key", "cmfv", "cmfa", "fmp4", "mkv", "webm", "jpg", "png",
];

/// Files a player starts with: their allow carries the viewer cookie.
const PLAYLIST_EXTENSIONS: &[&str] = &["m3u8", "m3u", "mpd"];
/// Cookies beyond these are not looked at (a client may send any number).
const MAX_VIEWER_COOKIES: usize = 4;
const MAX_PLAYBACK_ID_LEN: usize = 128;
/// Bytes a cookie's `Path` cannot carry as they are.
const COOKIE_PATH_ESCAPES: &percent_encoding::AsciiSet =
    &percent_encoding::CONTROLS.add(b' ').add(b';').add(b'"');

fn extension(path: &str) -> Option<String> {
    let last = path.rsplit('/').next()?;
    last.rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
}

/// The `playgate_viewer` values among the request's cookies.
fn viewer_cookies(req: &HttpRequest) -> Vec<String> {
    req.headers()
        .get_all("cookie")
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim_matches('"').to_string())
        .take(MAX_VIEWER_COOKIES)
        .collect()
}

/// `X-Playback-Session-Id` (AVPlayer, Shaka): visible ASCII, at most 128.
fn playback_id(req: &HttpRequest) -> Result<Option<String>, String> {
    let Some(id) = only_header(req, "x-playback-session-id")? else {
        return Ok(None);
    };
    if id.len() > MAX_PLAYBACK_ID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "X-Playback-Session-Id: '{}' is not up to {MAX_PLAYBACK_ID_LEN} visible ASCII characters",
            excerpt(id)
        ));
    }
    Ok(Some(id.to_string()))
}

/// The viewer cookie of a playlist applies to its folder as the player
/// requested it (`/live/news/index.m3u8` → `/live/news/`), and is `Secure`
/// when a trusted proxy says the player came over https.
fn cookie_scope(req: &HttpRequest, raw_path: &str, context: &Context) -> CookieScope {
    let folder = &raw_path[..raw_path.rfind('/').map_or(1, |slash| slash + 1)];
    let path = percent_encoding::percent_encode(folder.as_bytes(), COOKIE_PATH_ESCAPES).to_string();
    CookieScope {
        path,
        secure: https_via_trusted_proxy(req, context.trusted_proxies),
    }
}

/// `/live/news/index.m3u8` → `live/news`; a path whose last segment is not a
/// media file is the stream itself.
pub fn stream_from_path(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let Some((last, parent)) = segments.split_last() else {
        return String::new();
    };
    let is_media = last
        .rsplit_once('.')
        .is_some_and(|(_, ext)| MEDIA_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()));
    if is_media {
        parent.join("/")
    } else {
        segments.join("/")
    }
}

impl Dialect for ForwardAuth {
    const NAME: &'static str = "forward-auth";
    const CONTINUES_SESSIONS: bool = true;

    fn parse(req: &HttpRequest, _body: &[u8], context: &Context) -> Result<Call, String> {
        let uri = only_header(req, context.uri_header)?
            .ok_or_else(|| format!("missing the original URI header ({})", context.uri_header))?;
        let (raw_path, query) = uri.split_once('?').unwrap_or((uri, ""));
        let path = request_path(raw_path)?;
        let stream = stream_from_path(&path);
        if stream.is_empty() {
            return Err(format!("no stream in URI '{}'", excerpt(raw_path)));
        }
        let client_ip = client_ip(req, context.trusted_proxies, context.ip_header)?;
        let fields = pairs(query.as_bytes());
        let mut request = PlayRequest::new(Self::NAME, stream, client_ip);
        request.credential = credential_from_pairs(&fields);
        request.query = query.into();
        request.path = Some(path.clone());
        if request.credential.is_none() {
            if let Some((login, password)) = basic_credentials(req) {
                request.credential = Credential::from_parts(None, Some(login), Some(password));
            }
        }
        let lower = path.to_ascii_lowercase();
        request.protocol = if lower.ends_with(".mpd") || lower.ends_with(".m4s") {
            "dash".into()
        } else {
            "hls".into()
        };
        request.user_agent = header(req, "user-agent").unwrap_or_default().to_string();
        request.referer = header(req, "referer").unwrap_or_default().to_string();
        request.streamer = streamer(req);
        request.hls.cookies = viewer_cookies(req);
        request.hls.playback_id = playback_id(req)?;
        if extension(&path).is_some_and(|ext| PLAYLIST_EXTENSIONS.contains(&ext.as_str())) {
            request.hls.playlist = Some(cookie_scope(req, raw_path, context));
        }
        Ok(Call::Decide(request))
    }

    /// 401 with a Basic challenge when there were no credentials, so a
    /// browser asks for them.
    fn render(_event: Event, decision: &Decision) -> HttpResponse {
        if decision.allow {
            let mut response = HttpResponse::Ok();
            if let Some(user) = &decision.user {
                response.insert_header(("X-Playgate-User", user.as_str()));
            }
            if let Some(id) = decision.session_id {
                response.insert_header(("X-Playgate-Session", id.to_string()));
            }
            if let Some(cookie) = &decision.viewer_cookie {
                let secure = if cookie.scope.secure { "; Secure" } else { "" };
                response.insert_header((
                    actix_web::http::header::SET_COOKIE,
                    format!(
                        "{COOKIE_NAME}={}; Path={}; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
                        cookie.value, cookie.scope.path, cookie.max_age
                    ),
                ));
            }
            return response.finish();
        }
        if decision.reason == Reason::NoCredentials {
            return HttpResponse::Unauthorized()
                .insert_header(("WWW-Authenticate", r#"Basic realm="playgate""#))
                .body(decision.reason.as_str());
        }
        HttpResponse::Forbidden().body(decision.reason.as_str())
    }
}

#[utoipa::path(method(get, head), path = "/hook/forward-auth", tag = "hooks",
    description = "nginx auth_request, Traefik ForwardAuth, Caddy forward_auth for HLS/DASH (HEAD: as GET, without a body).",
    params(("X-Original-URI" = Option<String>, Header, description = "the player's URI, set by the proxy (the header PLAYGATE_FORWARD_AUTH_URI_HEADER names; Traefik: X-Forwarded-Uri)"),
           ("X-Real-IP" = Option<String>, Header, description = "the client's address, set by the proxy (the header PLAYGATE_FORWARD_AUTH_IP_HEADER names; Traefik: X-Forwarded-For), believed from PLAYGATE_TRUSTED_PROXIES only"),
           ("X-Playback-Session-Id" = Option<String>, Header, description = "the player's playback session id (AVPlayer, Shaka): continues the session its playlist request started"),
           ("X-Forwarded-Proto" = Option<String>, Header, description = "https (from a trusted proxy): the viewer cookie is Secure"),
           ("Cookie" = Option<String>, Header, description = "playgate_viewer: the viewer cookie an allowed playlist request set")),
    responses((status = 200, description = "allow; a playlist request of a user's session also sets the viewer cookie (Set-Cookie: playgate_viewer=…; HttpOnly; SameSite=Lax; Path=<the stream's folder>; Max-Age=<the session's hold>)"),
              (status = 401, description = "no credentials and no active session: WWW-Authenticate: Basic"),
              (status = 403, description = "deny"),
              (status = 400, body = crate::http::ErrorBody, description = "malformed request")))]
pub async fn route(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    handle::<ForwardAuth>(state, req, body).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::{parse_validated, test_decision};
    use actix_web::test::TestRequest;
    use ipnet::IpNet;

    fn parse(req: &HttpRequest, trusted: &[IpNet]) -> Result<PlayRequest, String> {
        parse_with(req, trusted, "x-original-uri", "x-real-ip")
    }

    fn parse_with(
        req: &HttpRequest,
        trusted: &[IpNet],
        uri_header: &str,
        ip_header: &str,
    ) -> Result<PlayRequest, String> {
        let context = Context {
            trusted_proxies: trusted,
            uri_header,
            ip_header,
            ..Context::default()
        };
        match parse_validated::<ForwardAuth>(req, b"", &context)? {
            Call::Decide(request) => Ok(request),
            Call::Acknowledge => Err("acknowledged".into()),
        }
    }

    #[test]
    fn the_query_and_path_reach_the_link_verifier_redacted() {
        let req = TestRequest::get()
            .peer_addr("127.0.0.1:40000".parse().unwrap())
            .insert_header(("X-Original-URI", "/live/news/index.m3u8?md5=abc&expires=9"))
            .insert_header(("X-Real-IP", "192.0.2.1"))
            .to_http_request();
        let request = parse(&req, &trusted()).unwrap();
        assert_eq!(request.query.0, "md5=abc&expires=9");
        assert_eq!(request.path.as_deref(), Some("/live/news/index.m3u8"));
        assert!(!format!("{request:?}").contains("md5=abc"));
    }

    #[test]
    fn an_allow_with_a_viewer_cookie_sets_it() {
        let mut decision = test_decision(true, Reason::Ok);
        decision.viewer_cookie = Some(crate::decision::ViewerCookie {
            value: "v1.abc.def".into(),
            scope: CookieScope {
                path: "/live/news/".into(),
                secure: true,
            },
            max_age: 90,
        });
        let allow = ForwardAuth::render(Event::Start, &decision);
        assert_eq!(
            allow.headers().get("set-cookie").unwrap(),
            "playgate_viewer=v1.abc.def; Path=/live/news/; Max-Age=90; HttpOnly; SameSite=Lax; Secure"
        );
        let plain = ForwardAuth::render(Event::Start, &test_decision(true, Reason::Ok));
        assert!(plain.headers().get("set-cookie").is_none());
    }

    #[test]
    fn cookies_playback_id_and_the_cookie_scope() {
        let request = |peer: &str, uri: &str, headers: &[(&str, &str)]| {
            let mut req = TestRequest::get()
                .peer_addr(format!("{peer}:1000").parse().unwrap())
                .insert_header(("X-Original-URI", uri));
            for header in headers {
                req = req.append_header(*header);
            }
            parse(&req.to_http_request(), &trusted())
        };
        let playlist = request(
            "127.0.0.1",
            "/live/n%20ws/index.m3u8?token=t",
            &[
                ("Cookie", "a=1; playgate_viewer=v1.x.y; b=2"),
                ("Cookie", "playgate_viewer=v1.z.w"),
                ("X-Playback-Session-Id", "8F2C-11"),
                ("X-Forwarded-Proto", "https"),
            ],
        )
        .unwrap();
        assert_eq!(playlist.hls.cookies, ["v1.x.y", "v1.z.w"]);
        assert_eq!(playlist.hls.playback_id.as_deref(), Some("8F2C-11"));
        assert_eq!(
            playlist.hls.playlist,
            Some(CookieScope {
                path: "/live/n%20ws/".into(),
                secure: true
            })
        );
        assert!(
            !format!("{playlist:?}").contains("v1.x.y"),
            "cookies never logged"
        );
        // https as an untrusted caller says it is not believed; a segment sets no cookie.
        let untrusted = request(
            "203.0.113.1",
            "/live/news/index.m3u8",
            &[("X-Forwarded-Proto", "https")],
        )
        .unwrap();
        assert!(!untrusted.hls.playlist.unwrap().secure);
        let segment = request("127.0.0.1", "/live/news/1.ts", &[]).unwrap();
        assert_eq!(segment.hls.playlist, None);
        for bad in ["a b", &"x".repeat(200)] {
            let error = request(
                "127.0.0.1",
                "/live/news/1.ts",
                &[("X-Playback-Session-Id", bad)],
            )
            .unwrap_err();
            assert!(error.contains("X-Playback-Session-Id"), "{error}");
        }
    }

    #[test]
    fn render_challenges_only_without_credentials() {
        let allow = ForwardAuth::render(Event::Start, &test_decision(true, Reason::Ok));
        assert_eq!(allow.status(), 200);
        assert_eq!(allow.headers().get("X-Playgate-User").unwrap(), "alice");
        let ask = ForwardAuth::render(Event::Start, &test_decision(false, Reason::NoCredentials));
        assert_eq!(ask.status(), 401);
        assert!(ask.headers().get("WWW-Authenticate").is_some());
        let deny = ForwardAuth::render(Event::Start, &test_decision(false, Reason::UnknownToken));
        assert_eq!(deny.status(), 403);
    }

    fn trusted() -> Vec<IpNet> {
        vec![
            "127.0.0.0/8".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ]
    }

    #[test]
    fn stream_names() {
        for (path, stream) in [
            ("/live/news/index.m3u8", "live/news"),
            ("/live/news/1234.ts", "live/news"),
            ("/live/news/chunk-1.M4S", "live/news"),
            ("/dash/sport/manifest.mpd", "dash/sport"),
            ("/live/news", "live/news"),
            ("/index.m3u8", ""),
            ("/", ""),
        ] {
            assert_eq!(stream_from_path(path), stream, "{path}");
        }
    }

    #[test]
    fn original_uri_token_and_ip() {
        let req = TestRequest::get()
            .peer_addr("127.0.0.1:1000".parse().unwrap())
            .insert_header(("X-Original-URI", "/live/news/index.m3u8?token=abc"))
            .insert_header(("X-Real-IP", "198.51.100.4"))
            .insert_header(("User-Agent", "hls.js"))
            .to_http_request();
        let request = parse(&req, &trusted()).unwrap();
        assert_eq!(request.stream, "live/news");
        assert_eq!(request.credential.token(), Some("abc"));
        assert_eq!(request.client_ip.to_string(), "198.51.100.4");
        assert_eq!(request.user_agent, "hls.js");
    }

    #[test]
    fn traefik_headers_when_configured() {
        let from = |peer: &str, xff: &str| {
            let req = TestRequest::get()
                .peer_addr(format!("{peer}:1000").parse().unwrap())
                .insert_header(("X-Forwarded-Uri", "/live/a/index.m3u8"))
                .insert_header(("X-Forwarded-For", xff))
                .insert_header(("X-Real-IP", "192.0.2.99"))
                .to_http_request();
            parse_with(&req, &trusted(), "x-forwarded-uri", "x-forwarded-for")
                .map(|r| r.client_ip.to_string())
        };
        assert_eq!(from("203.0.113.1", "198.51.100.9").unwrap(), "203.0.113.1");
        assert_eq!(from("10.0.0.2", "198.51.100.9").unwrap(), "198.51.100.9");
        assert_eq!(
            from("10.0.0.2", "1.2.3.4, 198.51.100.9, 10.0.0.7").unwrap(),
            "198.51.100.9"
        );
        assert!(from("10.0.0.2", "not-an-ip").is_err());
    }

    #[test]
    fn only_the_configured_headers_count() {
        // What a client adds and the proxy passes on: another URI header, a
        // stream header, other address headers.
        let req = TestRequest::get()
            .peer_addr("127.0.0.1:1000".parse().unwrap())
            .insert_header(("X-Original-URI", "/live/free/index.m3u8?token=t"))
            .insert_header(("X-Forwarded-Uri", "/live/premium/index.m3u8"))
            .insert_header(("X-Playgate-Stream", "live/premium"))
            .insert_header(("X-Forwarded-For", "198.51.100.7"))
            .to_http_request();
        let request = parse(&req, &trusted()).unwrap();
        assert_eq!(request.stream, "live/free");
        assert_eq!(request.client_ip.to_string(), "127.0.0.1");
        // Without the configured URI header there is no request.
        let req = TestRequest::get()
            .peer_addr("127.0.0.1:1000".parse().unwrap())
            .insert_header(("X-Forwarded-Uri", "/live/a/index.m3u8?token=t"))
            .insert_header(("X-Playgate-Stream", "news"))
            .to_http_request();
        let error = parse(&req, &trusted()).unwrap_err();
        assert!(error.contains("x-original-uri"), "{error}");
    }

    #[test]
    fn basic_auth_and_dot_segments() {
        let req = TestRequest::get()
            .peer_addr("127.0.0.1:1000".parse().unwrap())
            .insert_header(("X-Original-URI", "/live/n%65ws/index.m3u8"))
            .insert_header(("Authorization", "Basic Ym9iOnB3"))
            .to_http_request();
        let request = parse(&req, &trusted()).unwrap();
        assert_eq!(request.stream, "live/news");
        assert_eq!(request.credential.login(), Some("bob"));
        for uri in [
            "/live/sport/../premium/index.m3u8?token=t",
            "/live/sport/%2e%2e/premium/index.m3u8",
            "//live/premium/index.m3u8",
            "/live%2Fpremium/index.m3u8",
        ] {
            let req = TestRequest::get()
                .peer_addr("127.0.0.1:1000".parse().unwrap())
                .insert_header(("X-Original-URI", uri))
                .to_http_request();
            assert!(parse(&req, &trusted()).is_err(), "{uri}");
        }
    }
}
