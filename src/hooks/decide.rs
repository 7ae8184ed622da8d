//! `POST /hook/decide`: the generic JSON hook (SPEC §3), for custom players,
//! middleware and tests. A deny is a 200 with `"allow": false`.

use std::net::IpAddr;

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::app::AppState;
use crate::decision::{Credentials, Event, PlayRequest};
use crate::error::ApiError;

const DIALECT: &str = "decide";
const MAX_STREAM_LEN: usize = 1024;

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
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

fn parse(body: &[u8]) -> Result<PlayRequest, String> {
    let body: DecideRequest =
        serde_json::from_slice(body).map_err(|e| format!("invalid request body: {e}"))?;
    let stream = body.stream.trim();
    if stream.is_empty() {
        return Err("stream: must not be empty".into());
    }
    if stream.len() > MAX_STREAM_LEN {
        return Err(format!("stream: longer than {MAX_STREAM_LEN} bytes"));
    }
    let ip: IpAddr = body.ip.trim().parse().map_err(|_| {
        format!(
            "ip: '{}' is not an IP address",
            body.ip.chars().take(64).collect::<String>()
        )
    })?;
    let event = match body.event.as_deref().unwrap_or("start") {
        "start" => Event::Start,
        "refresh" => Event::Refresh,
        "stop" => Event::Stop,
        other => {
            return Err(format!(
                "event: '{}' is not start, refresh or stop",
                other.chars().take(32).collect::<String>()
            ))
        }
    };
    if body.bytes.is_some_and(|bytes| bytes < 0) {
        return Err("bytes: must not be negative".into());
    }
    let mut request = PlayRequest::new(DIALECT, stream, ip);
    request.credentials = Credentials {
        token: non_empty(body.token),
        login: non_empty(body.login),
        password: non_empty(body.password),
    };
    request.session = non_empty(body.session);
    request.event = event;
    request.protocol = body.protocol.unwrap_or_default();
    request.user_agent = body.user_agent.unwrap_or_default();
    request.referer = body.referer.unwrap_or_default();
    request.streamer = body.streamer.unwrap_or_default();
    request.bytes = body.bytes;
    Ok(request)
}

pub async fn handle(
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let request = parse(&body).map_err(|reason| {
        state.engine.record_bad_request(DIALECT);
        ApiError::bad_request(reason)
    })?;
    let decision = state.engine.decide(request).await;
    Ok(HttpResponse::Ok().json(decision))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_request() {
        let request = parse(br#"{"stream": "news", "ip": "2001:db8::1"}"#).unwrap();
        assert_eq!(request.stream, "news");
        assert_eq!(request.event, Event::Start);
        assert!(request.credentials.is_empty());
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
