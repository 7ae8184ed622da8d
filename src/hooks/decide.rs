//! `POST /hook/decide`: the generic JSON hook (SPEC §3), for custom players,
//! middleware and tests. A deny is a 200 with `"allow": false`.

use std::net::IpAddr;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{excerpt, handle, invalid_body, Call, Context, Dialect};
use crate::decision::{Credential, Decision, Event, PlayRequest};
use crate::http::request::peer_ip;
use crate::http::AppState;

pub struct Decide;

/// The generic decision request (also its OpenAPI schema).
#[derive(Deserialize, utoipa::ToSchema)]
pub struct DecideRequest {
    /// Required.
    stream: String,
    /// Client IP, required.
    ip: String,
    token: Option<String>,
    login: Option<String>,
    password: Option<String>,
    /// The caller's own session id.
    session: Option<String>,
    /// `start` (default), `refresh` or `stop`.
    event: Option<String>,
    protocol: Option<String>,
    user_agent: Option<String>,
    referer: Option<String>,
    streamer: Option<String>,
    bytes: Option<i64>,
    /// The client's query string, where signed-link parameters travel
    /// (`pglink=…`, SPEC §9).
    query: Option<String>,
    /// The viewer's device id (a set-top box's id): zapping and device
    /// limits count devices; without it, client IP and user agent are one.
    device: Option<String>,
}

impl Dialect for Decide {
    const NAME: &'static str = "decide";

    fn parse(req: &HttpRequest, body: &[u8], _context: &Context) -> Result<Call, String> {
        let body: DecideRequest = serde_json::from_slice(body).map_err(invalid_body)?;
        let ip: IpAddr = body
            .ip
            .trim()
            .parse()
            .map_err(|_| format!("ip: '{}' is not an IP address", excerpt(&body.ip)))?;
        let event = match body.event.as_deref().unwrap_or("start") {
            "start" => Event::Start,
            "refresh" => Event::Refresh,
            "stop" => Event::Stop,
            other => {
                return Err(format!(
                    "event: '{}' is not start, refresh or stop",
                    excerpt(other)
                ))
            }
        };
        if body.bytes.is_some_and(|bytes| bytes < 0) {
            return Err("bytes: must not be negative".into());
        }
        let mut request = PlayRequest::new(Self::NAME, body.stream, ip);
        request.credential = Credential::from_parts(body.token, body.login, body.password);
        request.session = body.session.filter(|session| !session.is_empty());
        request.event = event;
        request.protocol = body.protocol.unwrap_or_default();
        request.user_agent = body.user_agent.unwrap_or_default();
        request.referer = body.referer.unwrap_or_default();
        request.streamer = body.streamer.unwrap_or_default();
        request.bytes = body.bytes;
        request.device = body.device.filter(|device| !device.is_empty());
        request.query = body.query.as_deref().unwrap_or_default().into();
        // Anyone allowed to call this hook names any `ip`: guesses are
        // damped, and sessions named, by the caller's own address too.
        request.caller = peer_ip(req);
        Ok(Call::Decide(request))
    }

    /// The decision itself, as JSON; a deny is a 200 too.
    fn render(_event: Event, decision: &Decision) -> HttpResponse {
        HttpResponse::Ok().json(decision)
    }
}

#[utoipa::path(post, path = "/hook/decide", tag = "hooks", request_body = DecideRequest,
    responses((status = 200, body = Decision, description = "the decision, also for a deny"),
              (status = 400, body = crate::http::ErrorBody, description = "malformed request"),
              (status = 413, description = "body over 64 KiB")))]
pub async fn route(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    handle::<Decide>(state, req, body).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::parse_validated;
    use actix_web::test::TestRequest;

    fn parse(body: &[u8]) -> Result<PlayRequest, String> {
        let req = TestRequest::post().to_http_request();
        match parse_validated::<Decide>(&req, body, &Context::default())? {
            Call::Decide(request) => Ok(request),
            Call::Acknowledge => Err("acknowledged".into()),
        }
    }

    #[test]
    fn control_characters_and_long_agents_are_cleaned() {
        let body = format!(
            r#"{{"stream": "news", "ip": "192.0.2.1", "user_agent": "{}"}}"#,
            "a\\u0000".repeat(5000)
        );
        let request = parse(body.as_bytes()).unwrap();
        assert!(
            !request.user_agent.contains('\0')
                && request.user_agent.len() <= crate::hooks::MAX_TEXT_BYTES
        );
        assert!(parse(br#"{"stream": "a\u0007b", "ip": "192.0.2.1"}"#).is_err());
    }

    #[test]
    fn the_device_id_is_kept_and_bounded() {
        let request =
            parse(br#"{"stream": "news", "ip": "192.0.2.1", "device": "stb-00:1a:79"}"#).unwrap();
        assert_eq!(request.device(), "stb-00:1a:79");
        let unnamed =
            parse(br#"{"stream": "news", "ip": "192.0.2.1", "device": "", "user_agent": "VLC"}"#)
                .unwrap();
        assert_eq!(unnamed.device(), "192.0.2.1 VLC");
        let long = format!(
            r#"{{"stream": "news", "ip": "192.0.2.1", "device": "{}"}}"#,
            "d".repeat(201)
        );
        assert!(parse(long.as_bytes()).unwrap_err().starts_with("device:"));
        assert!(
            parse(br#"{"stream": "news", "ip": "192.0.2.1", "device": "a\u0007b"}"#)
                .unwrap_err()
                .starts_with("device:")
        );
    }

    #[test]
    fn minimal_request() {
        let request = parse(br#"{"stream": "news", "ip": "2001:db8::1"}"#).unwrap();
        assert_eq!(request.stream, "news");
        assert_eq!(request.event, Event::Start);
        assert!(request.credential.is_none());
    }

    #[test]
    fn bad_input_has_a_reason() {
        let cases: [(&[u8], &str); 7] = [
            (b"not json", "invalid request body"),
            (br#"{"ip": "192.0.2.1"}"#, "missing field `stream`"),
            (br#"{"stream": "x"}"#, "missing field `ip`"),
            (br#"{"stream": "x", "ip": "999.1.1.1"}"#, "ip:"),
            (br#"{"stream": " ", "ip": "192.0.2.1"}"#, "stream:"),
            (br#"{"stream": 5, "ip": "192.0.2.1"}"#, "invalid type"),
            (
                br#"{"stream": "x", "ip": "192.0.2.1", "event": "pause"}"#,
                "event:",
            ),
        ];
        for (body, expected) in cases {
            let reason = parse(body).unwrap_err();
            assert!(reason.contains(expected), "{reason}");
            assert!(!reason.contains('\n'));
        }
    }
}
