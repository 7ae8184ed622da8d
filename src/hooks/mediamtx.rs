//! `POST /hook/mediamtx`: MediaMTX `authMethod: http`.
//!
//! JSON body: `user`, `password`, `token`, `ip`, `action`
//! (`publish|read|playback|api|metrics|pprof`), `path`, `protocol`, `id`,
//! `query`, `userAgent`. Any 2xx allows; 401 makes MediaMTX ask the client
//! for credentials; 403 denies. MediaMTX sends no stop: sessions end by
//! timeout. `api`, `metrics` and `pprof` are not plays: exclude them with
//! `authHTTPExclude` (they get 400 here).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{
    bad_request, credentials_from_pairs, excerpt, pairs, parse_ip, streamer, validated, Call,
};
use crate::app::AppState;
use crate::decision::{Credentials, Event, PlayRequest, Reason};

pub const DIALECT: &str = "mediamtx";

#[derive(Deserialize)]
struct MediaMtxAuth {
    user: Option<String>,
    password: Option<String>,
    token: Option<String>,
    ip: Option<String>,
    action: String,
    path: Option<String>,
    protocol: Option<String>,
    id: Option<String>,
    query: Option<String>,
    #[serde(rename = "userAgent")]
    user_agent: Option<String>,
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

pub fn parse(req: &HttpRequest, body: &[u8]) -> Result<Call, String> {
    let auth: MediaMtxAuth =
        serde_json::from_slice(body).map_err(|e| format!("invalid request body: {e}"))?;
    let event = match auth.action.as_str() {
        "read" | "playback" => Event::Start,
        "publish" => Event::Publish,
        other => {
            return Err(format!(
                "action: '{}' is not a play (exclude it with authHTTPExclude)",
                excerpt(other)
            ))
        }
    };
    let client_ip = parse_ip("ip", auth.ip.as_deref())?;
    let user = non_empty(auth.user);
    let password = non_empty(auth.password);
    // MediaMTX copies the password into `token` when there is no bearer
    // token, so a user with a password is a login, not a token.
    let credentials = if user.is_some() {
        Credentials {
            token: None,
            login: user,
            password,
        }
    } else if let Some(token) = non_empty(auth.token) {
        Credentials {
            token: Some(token),
            ..Credentials::default()
        }
    } else {
        // HLS / WebRTC keep `?token=` / `?auth=` only in the raw query.
        credentials_from_pairs(&pairs(auth.query.unwrap_or_default().as_bytes()))
    };

    let mut request = PlayRequest::new(DIALECT, auth.path.unwrap_or_default(), client_ip);
    request.credentials = credentials;
    request.event = event;
    request.session = non_empty(auth.id);
    request.protocol = auth.protocol.unwrap_or_default();
    request.user_agent = auth.user_agent.unwrap_or_default();
    request.streamer = streamer(req);
    validated(request).map(Call::Decide)
}

pub async fn handle(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let request = match parse(&req, &body) {
        Ok(Call::Decide(request)) => request,
        Ok(Call::Acknowledge) => return HttpResponse::Ok().finish(),
        Err(reason) => return bad_request(&state, DIALECT, &reason),
    };
    let decision = state.engine.decide(request).await;
    if decision.allow {
        HttpResponse::Ok().finish()
    } else if decision.reason == Reason::NoCredentials {
        HttpResponse::Unauthorized().body(decision.reason.as_str())
    } else {
        HttpResponse::Forbidden().body(decision.reason.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn post(body: &str) -> Result<Call, String> {
        parse(&TestRequest::post().to_http_request(), body.as_bytes())
    }

    fn decided(body: &str) -> PlayRequest {
        match post(body).unwrap() {
            Call::Decide(request) => request,
            Call::Acknowledge => panic!("expected a decision"),
        }
    }

    #[test]
    fn credential_sources() {
        let basic = decided(
            r#"{"user":"bob","password":"pw","token":"pw","ip":"192.0.2.4","action":"read","path":"cam1",
                "protocol":"rtsp","id":"3c1e2c5a-0000-4000-8000-000000000001","query":"","userAgent":"VLC"}"#,
        );
        assert_eq!(basic.credentials.login.as_deref(), Some("bob"));
        assert_eq!(basic.credentials.token, None);
        assert_eq!(basic.stream, "cam1");
        let bearer = decided(
            r#"{"user":"","password":"","token":"tok","ip":"192.0.2.4","action":"read","path":"cam1","protocol":"webrtc","id":null,"query":""}"#,
        );
        assert_eq!(bearer.credentials.token.as_deref(), Some("tok"));
        assert_eq!(bearer.session, None);
        let query = decided(
            r#"{"user":"","password":"","token":"","ip":"192.0.2.4","action":"read","path":"cam1","protocol":"hls","id":null,"query":"token=q1"}"#,
        );
        assert_eq!(query.credentials.token.as_deref(), Some("q1"));
        let publish = decided(
            r#"{"user":"","password":"","ip":"192.0.2.4","action":"publish","path":"cam1","protocol":"rtmp","id":null,"query":""}"#,
        );
        assert_eq!(publish.event, Event::Publish);
    }

    #[test]
    fn malformed() {
        for body in [
            "{",
            r#"{"ip":"192.0.2.4","path":"cam1"}"#,
            r#"{"ip":"192.0.2.4","action":"api","path":""}"#,
            r#"{"action":"read","path":"cam1"}"#,
            r#"{"ip":"192.0.2.4","action":"read","path":""}"#,
        ] {
            assert!(post(body).is_err(), "{body}");
        }
    }
}
