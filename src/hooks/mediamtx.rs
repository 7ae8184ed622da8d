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
    credential_from_pairs, excerpt, handle, invalid_body, pairs, parse_ip, streamer, Call, Context,
    Dialect,
};
use crate::decision::{Credential, Decision, Event, PlayRequest, Reason};
use crate::http::AppState;

pub struct MediaMtx;

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

impl Dialect for MediaMtx {
    const NAME: &'static str = "mediamtx";

    fn parse(req: &HttpRequest, body: &[u8], _context: &Context) -> Result<Call, String> {
        let auth: MediaMtxAuth = serde_json::from_slice(body).map_err(invalid_body)?;
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
        // MediaMTX copies the password into `token` when there is no bearer
        // token, so a user with a password is a login, not a token.
        let mut credential = if auth.user.as_deref().is_some_and(|user| !user.is_empty()) {
            Credential::from_parts(None, auth.user, auth.password)
        } else {
            Credential::from_parts(auth.token, None, None)
        };
        let query = auth.query.unwrap_or_default();
        if credential.is_none() {
            // HLS / WebRTC keep `?token=` / `?auth=` only in the raw query.
            credential = credential_from_pairs(&pairs(query.as_bytes()));
        }

        let mut request = PlayRequest::new(Self::NAME, auth.path.unwrap_or_default(), client_ip);
        request.credential = credential;
        request.query = query.as_str().into();
        request.event = event;
        request.session = auth.id.filter(|id| !id.is_empty());
        request.protocol = auth.protocol.unwrap_or_default();
        request.user_agent = auth.user_agent.unwrap_or_default();
        request.streamer = streamer(req);
        Ok(Call::Decide(request))
    }

    /// 401 makes MediaMTX ask the client for credentials.
    fn render(_event: Event, decision: &Decision) -> HttpResponse {
        if decision.allow {
            HttpResponse::Ok().finish()
        } else if decision.reason == Reason::NoCredentials {
            HttpResponse::Unauthorized().body(decision.reason.as_str())
        } else {
            HttpResponse::Forbidden().body(decision.reason.as_str())
        }
    }
}

#[utoipa::path(post, path = "/hook/mediamtx", tag = "hooks",
    description = "MediaMTX authMethod http (JSON: user, password, token, ip, action, path, protocol, id, query).",
    responses((status = 200, description = "allow"),
              (status = 401, description = "no credentials: the client is asked for them"),
              (status = 403, description = "deny"),
              (status = 400, body = crate::http::ErrorBody, description = "malformed request")))]
pub async fn route(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    handle::<MediaMtx>(state, req, body).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::{parse_validated, test_decision};
    use actix_web::test::TestRequest;

    fn post(body: &str) -> Result<Call, String> {
        parse_validated::<MediaMtx>(
            &TestRequest::post().to_http_request(),
            body.as_bytes(),
            &Context::default(),
        )
    }

    #[test]
    fn render_asks_for_credentials_only_without_them() {
        let status =
            |allow, reason| MediaMtx::render(Event::Start, &test_decision(allow, reason)).status();
        assert_eq!(status(true, Reason::Ok), 200);
        assert_eq!(status(false, Reason::NoCredentials), 401);
        assert_eq!(status(false, Reason::BadCredentials), 403);
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
        assert_eq!(basic.credential.login(), Some("bob"));
        assert_eq!(basic.credential.token(), None);
        assert_eq!(basic.stream, "cam1");
        let bearer = decided(
            r#"{"user":"","password":"","token":"tok","ip":"192.0.2.4","action":"read","path":"cam1","protocol":"webrtc","id":null,"query":""}"#,
        );
        assert_eq!(bearer.credential.token(), Some("tok"));
        assert_eq!(bearer.session, None);
        let query = decided(
            r#"{"user":"","password":"","token":"","ip":"192.0.2.4","action":"read","path":"cam1","protocol":"hls","id":null,"query":"token=q1"}"#,
        );
        assert_eq!(query.credential.token(), Some("q1"));
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
