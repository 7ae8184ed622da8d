//! `GET /hook/astra`: Cesbo Astra "HTTP Request" auth backend.
//!
//! Astra appends the client's query string unchanged (`token`, `auth`) and
//! adds `X-Session-ID`, `X-Channel-ID`, `X-Real-IP`, `X-Real-Path`,
//! `X-Real-UA`, `X-Real-Host` (Alta spells some `X-Session-Id`, `X-Real-Ip`,
//! `X-Real-Ua`; header names are case-insensitive). 200 grants, with
//! `X-Session-Name: <login>`; 403 denies.

use actix_web::{web, HttpRequest, HttpResponse};

use super::{
    bad_request, credentials_from_pairs, header, pairs, parse_ip, streamer, validated, Call,
};
use crate::app::AppState;
use crate::decision::PlayRequest;

pub const DIALECT: &str = "astra";

/// The channel: `X-Channel-ID`, else the first segment after `/play/` in
/// `X-Real-Path` (`/play/a001/index.m3u8` → `a001`).
pub fn channel(req: &HttpRequest) -> Option<String> {
    if let Some(id) = header(req, "x-channel-id") {
        return Some(id.to_string());
    }
    let path = header(req, "x-real-path")?;
    let path = path.split('?').next().unwrap_or(path);
    let (_, rest) = path.split_once("/play/")?;
    rest.split('/')
        .find(|segment| !segment.is_empty())
        .map(str::to_string)
}

pub fn parse(req: &HttpRequest) -> Result<Call, String> {
    let stream = channel(req).ok_or("missing X-Channel-ID (or an X-Real-Path under /play/)")?;
    let client_ip = parse_ip("X-Real-IP", header(req, "x-real-ip"))?;
    let fields = pairs(req.query_string().as_bytes());
    let mut request = PlayRequest::new(DIALECT, stream, client_ip);
    request.credentials = credentials_from_pairs(&fields);
    request.session = header(req, "x-session-id").map(str::to_string);
    let path = header(req, "x-real-path").unwrap_or_default();
    request.protocol = if path.split('?').next().unwrap_or("").ends_with(".m3u8") {
        "hls".into()
    } else {
        "http".into()
    };
    request.user_agent = header(req, "x-real-ua").unwrap_or_default().to_string();
    request.streamer = streamer(req);
    validated(request).map(Call::Decide)
}

pub async fn handle(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let request = match parse(&req) {
        Ok(Call::Decide(request)) => request,
        Ok(Call::Acknowledge) => return HttpResponse::Ok().finish(),
        Err(reason) => return bad_request(&state, DIALECT, &reason),
    };
    let decision = state.engine.decide(request).await;
    if decision.allow {
        let mut response = HttpResponse::Ok();
        if let Some(user) = &decision.user {
            response.insert_header(("X-Session-Name", user.as_str()));
        }
        response.finish()
    } else {
        HttpResponse::Forbidden().body(decision.reason.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn documented_request() {
        let req = TestRequest::get()
            .uri("/hook/astra?token=123")
            .insert_header(("X-Session-ID", "88"))
            .insert_header(("X-Real-IP", "192.0.2.10"))
            .insert_header(("X-Real-Path", "/play/a001/index.m3u8"))
            .insert_header(("X-Real-UA", "VLC/3.0"))
            .insert_header(("X-Real-Host", "live.example.com"))
            .to_http_request();
        let Call::Decide(request) = parse(&req).unwrap() else {
            panic!()
        };
        assert_eq!(request.stream, "a001");
        assert_eq!(request.credentials.token.as_deref(), Some("123"));
        assert_eq!(request.session.as_deref(), Some("88"));
        assert_eq!(request.protocol, "hls");
        assert_eq!(request.user_agent, "VLC/3.0");
    }

    #[test]
    fn channel_id_wins_and_missing_fields_fail() {
        let req = TestRequest::get()
            .insert_header(("X-Channel-ID", "ch1"))
            .insert_header(("X-Real-Path", "/play/a001/index.m3u8"))
            .insert_header(("X-Real-Ip", "192.0.2.10"))
            .to_http_request();
        let Call::Decide(request) = parse(&req).unwrap() else {
            panic!()
        };
        assert_eq!(request.stream, "ch1");
        let no_ip = TestRequest::get()
            .insert_header(("X-Channel-ID", "ch1"))
            .to_http_request();
        assert!(parse(&no_ip).is_err());
        let no_channel = TestRequest::get()
            .insert_header(("X-Real-IP", "192.0.2.10"))
            .insert_header(("X-Real-Path", "/other/a001/index.m3u8"))
            .to_http_request();
        assert!(parse(&no_channel).is_err());
    }
}
