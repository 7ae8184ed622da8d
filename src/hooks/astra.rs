//! `GET /hook/astra`: Cesbo Astra "HTTP Request" auth backend.
//!
//! Astra appends the client's query string unchanged (`token`, `auth`) and
//! adds `X-Session-ID`, `X-Channel-ID`, `X-Real-IP`, `X-Real-Path`,
//! `X-Real-UA`, `X-Real-Host` (Alta spells some `X-Session-Id`, `X-Real-Ip`,
//! `X-Real-Ua`; header names are case-insensitive). 200 grants, with
//! `X-Session-Name: <login>`; 403 denies.

use actix_web::{web, HttpRequest, HttpResponse};

use super::{
    astra_channel, credential_from_pairs, handle, header, pairs, parse_ip, streamer, Call, Context,
    Dialect,
};
use crate::decision::{Decision, Event, PlayRequest};
use crate::http::AppState;

pub struct Astra;

impl Dialect for Astra {
    const NAME: &'static str = "astra";

    fn parse(req: &HttpRequest, _body: &[u8], _context: &Context) -> Result<Call, String> {
        let stream =
            astra_channel(req)?.ok_or("missing X-Channel-ID (or an X-Real-Path under /play/)")?;
        let client_ip = parse_ip("X-Real-IP", header(req, "x-real-ip"))?;
        let fields = pairs(req.query_string().as_bytes());
        let mut request = PlayRequest::new(Self::NAME, stream, client_ip);
        request.credential = credential_from_pairs(&fields);
        request.session = header(req, "x-session-id").map(str::to_string);
        let path = header(req, "x-real-path").unwrap_or_default();
        request.query = req.query_string().into();
        request.path = Some(path.split('?').next().unwrap_or_default().to_string())
            .filter(|path| !path.is_empty());
        request.protocol = if path.split('?').next().unwrap_or("").ends_with(".m3u8") {
            "hls".into()
        } else {
            "http".into()
        };
        request.user_agent = header(req, "x-real-ua").unwrap_or_default().to_string();
        request.streamer = streamer(req);
        Ok(Call::Decide(request))
    }

    fn render(_event: Event, decision: &Decision) -> HttpResponse {
        if !decision.allow {
            return HttpResponse::Forbidden().body(decision.reason.as_str());
        }
        let mut response = HttpResponse::Ok();
        if let Some(user) = &decision.user {
            response.insert_header(("X-Session-Name", user.as_str()));
        }
        response.finish()
    }
}

#[utoipa::path(get, path = "/hook/astra", tag = "hooks",
    description = "Cesbo Astra \"HTTP Request\" backend: the client's query plus X-Real-IP, X-Real-Path, X-Real-UA, X-Session-ID, X-Channel-ID.",
    params(("token" = Option<String>, Query, description = "the viewer's token"),
           ("auth" = Option<String>, Query, description = "login:password"),
           ("X-Real-IP" = Option<String>, Header, description = "client IP"),
           ("X-Channel-ID" = Option<String>, Header, description = "stream (channel id)"),
           ("X-Session-ID" = Option<String>, Header, description = "Astra's session id")),
    responses((status = 200, description = "allow; X-Session-Name carries the login"),
              (status = 403, description = "deny"),
              (status = 400, body = crate::http::ErrorBody, description = "malformed request")))]
pub async fn route(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    handle::<Astra>(state, req, body).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Reason;
    use crate::hooks::{parse_validated, test_decision};
    use actix_web::body::MessageBody;
    use actix_web::test::TestRequest;

    fn parse(req: &HttpRequest) -> Result<Call, String> {
        parse_validated::<Astra>(req, b"", &Context::default())
    }

    #[test]
    fn render_names_the_user_or_denies() {
        let allowed = Astra::render(Event::Start, &test_decision(true, Reason::Ok));
        assert_eq!(allowed.status(), 200);
        assert_eq!(allowed.headers().get("X-Session-Name").unwrap(), "alice");
        let denied = Astra::render(Event::Start, &test_decision(false, Reason::UnknownToken));
        assert_eq!(denied.status(), 403);
        assert_eq!(
            denied.into_body().try_into_bytes().unwrap(),
            "unknown_token"
        );
    }

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
        assert_eq!(request.credential.token(), Some("123"));
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

    #[test]
    fn a_path_spelled_to_reach_another_channel_is_refused() {
        for path in [
            "/play/a001/../premium/index.m3u8",
            "/play/%2e%2e/x",
            "//play/a001/",
        ] {
            let req = TestRequest::get()
                .insert_header(("X-Real-IP", "192.0.2.10"))
                .insert_header(("X-Real-Path", path))
                .to_http_request();
            assert!(parse(&req).is_err(), "{path}");
        }
        let req = TestRequest::get()
            .insert_header(("X-Real-IP", "192.0.2.10"))
            .insert_header(("X-Real-Path", "/play/a%30%301/index.m3u8"))
            .to_http_request();
        let Call::Decide(request) = parse(&req).unwrap() else {
            panic!()
        };
        assert_eq!(request.stream, "a001");
    }
}
