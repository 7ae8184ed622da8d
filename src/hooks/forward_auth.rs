//! `GET /hook/forward-auth`: nginx `auth_request`, Traefik `ForwardAuth`,
//! Caddy `forward_auth`, for HLS/DASH served by the proxy.
//!
//! The original URI comes in `X-Original-URI` (nginx) or `X-Forwarded-Uri`
//! (Traefik, Caddy); the stream is `X-Playgate-Stream` when the proxy sets it,
//! else the URI path without its last segment when that is a playlist or media
//! file. Credentials: `token` / `auth` in the original query, or the client's
//! `Authorization: Basic`. The client IP is `X-Real-IP` / `X-Forwarded-For`
//! only when the caller is a trusted proxy. A request without credentials
//! continues the viewer's active session (segments), else it is 401.

use std::net::IpAddr;

use actix_web::{web, HttpRequest, HttpResponse};
use ipnet::IpNet;

use super::{
    bad_request, basic_auth, credentials_from_pairs, excerpt, header, pairs, parse_ip, streamer,
    validated,
};
use crate::app::AppState;
use crate::decision::policy::canonical_ip;
use crate::decision::{Decision, PlayRequest, Reason};

pub const DIALECT: &str = "forward-auth";

/// Last path segments that are files of a stream rather than the stream itself.
const MEDIA_EXTENSIONS: &[&str] = &[
    "m3u8", "m3u", "ts", "m4s", "mp4", "m4a", "m4v", "mp3", "aac", "ac3", "mpd", "vtt", "webvtt",
    "key", "cmfv", "cmfa", "fmp4", "mkv", "webm", "jpg", "png",
];

/// The client: the peer itself, unless the peer is a trusted proxy, whose
/// `X-Real-IP` (else `X-Forwarded-For`, read from the right, skipping trusted
/// hops) is believed.
pub fn client_ip(req: &HttpRequest, trusted: &[IpNet]) -> Result<IpAddr, String> {
    let peer = req
        .peer_addr()
        .map(|addr| canonical_ip(addr.ip()))
        .ok_or("no peer address")?;
    let is_trusted = |ip: IpAddr| trusted.iter().any(|network| network.contains(&ip));
    if !is_trusted(peer) {
        return Ok(peer);
    }
    if let Some(real_ip) = header(req, "x-real-ip") {
        return parse_ip("X-Real-IP", Some(real_ip));
    }
    let Some(forwarded) = header(req, "x-forwarded-for") else {
        return Ok(peer);
    };
    let hops = forwarded
        .split(',')
        .map(|hop| parse_ip("X-Forwarded-For", Some(hop)).map(canonical_ip))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(hops
        .iter()
        .rev()
        .find(|ip| !is_trusted(**ip))
        .or(hops.first())
        .copied()
        .unwrap_or(peer))
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

pub fn parse(req: &HttpRequest, trusted: &[IpNet]) -> Result<PlayRequest, String> {
    let uri = header(req, "x-original-uri").or_else(|| header(req, "x-forwarded-uri"));
    let (path, query) = match uri {
        Some(uri) => uri.split_once('?').unwrap_or((uri, "")),
        None => ("", ""),
    };
    let stream = match header(req, "x-playgate-stream") {
        Some(stream) => stream.to_string(),
        None if uri.is_none() => {
            return Err("missing X-Original-URI, X-Forwarded-Uri or X-Playgate-Stream".into())
        }
        None => stream_from_path(path),
    };
    if stream.is_empty() {
        return Err(format!("no stream in URI '{}'", excerpt(path)));
    }
    let client_ip = client_ip(req, trusted)?;
    let fields = pairs(query.as_bytes());
    let mut request = PlayRequest::new(DIALECT, stream, client_ip);
    request.credentials = credentials_from_pairs(&fields);
    if request.credentials.is_empty() {
        if let Some(basic) = basic_auth(req) {
            request.credentials = basic;
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
    validated(request)
}

fn render(decision: &Decision) -> HttpResponse {
    if decision.allow {
        let mut response = HttpResponse::Ok();
        if let Some(user) = &decision.user {
            response.insert_header(("X-Playgate-User", user.as_str()));
        }
        if let Some(id) = decision.session_id {
            response.insert_header(("X-Playgate-Session", id.to_string()));
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

pub async fn handle(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    match parse(&req, &state.settings.trusted_proxies) {
        Err(reason) => bad_request(&state, DIALECT, &reason),
        Ok(request) => render(&state.engine.decide_or_continue(request).await),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

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
        assert_eq!(request.credentials.token.as_deref(), Some("abc"));
        assert_eq!(request.client_ip.to_string(), "198.51.100.4");
        assert_eq!(request.user_agent, "hls.js");
    }

    #[test]
    fn forwarded_headers_only_from_trusted_proxies() {
        let from = |peer: &str, xff: &str| {
            let req = TestRequest::get()
                .peer_addr(format!("{peer}:1000").parse().unwrap())
                .insert_header(("X-Forwarded-Uri", "/live/a/index.m3u8"))
                .insert_header(("X-Forwarded-For", xff))
                .to_http_request();
            parse(&req, &trusted()).map(|r| r.client_ip.to_string())
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
    fn override_and_missing_uri() {
        let req = TestRequest::get()
            .peer_addr("127.0.0.1:1000".parse().unwrap())
            .insert_header(("X-Playgate-Stream", "news"))
            .insert_header(("Authorization", "Basic Ym9iOnB3"))
            .to_http_request();
        let request = parse(&req, &trusted()).unwrap();
        assert_eq!(request.stream, "news");
        assert_eq!(request.credentials.login.as_deref(), Some("bob"));
        let req = TestRequest::get()
            .peer_addr("127.0.0.1:1000".parse().unwrap())
            .to_http_request();
        assert!(parse(&req, &trusted()).is_err());
    }
}
