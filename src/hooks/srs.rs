//! `POST /hook/srs`: SRS `http_hooks` (`on_play`, `on_stop`, and the
//! publish/connection actions that may share the URL).
//!
//! JSON body: `action`, `client_id`, `ip`, `vhost`, `app`, `stream`, `param`
//! (the client query, `?token=…`), `tcUrl`, `pageUrl`, `server_id`, … SRS
//! allows on 200/201 with a JSON body that is `0` or `{"code": 0}`; anything
//! else rejects. `on_stop` / `on_close` end the session (answer ignored).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    credential_from_pairs, excerpt, handle, invalid_body, pairs, parse_ip, streamer, Call, Context,
    Dialect,
};
use crate::decision::{Decision, Event, PlayRequest};
use crate::http::AppState;

pub struct Srs;

#[derive(Deserialize)]
struct SrsHook {
    action: String,
    client_id: Option<Value>,
    ip: Option<String>,
    app: Option<String>,
    stream: Option<String>,
    param: Option<String>,
    #[serde(rename = "pageUrl")]
    page_url: Option<String>,
    send_bytes: Option<Value>,
}

/// SRS sends ids as strings (v5+) or numbers (older).
fn id_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

impl Dialect for Srs {
    const NAME: &'static str = "srs";

    fn parse(req: &HttpRequest, body: &[u8], _context: &Context) -> Result<Call, String> {
        let hook: SrsHook = serde_json::from_slice(body).map_err(invalid_body)?;
        let event = match hook.action.as_str() {
            "on_play" => Event::Start,
            "on_stop" | "on_close" => Event::Stop,
            "on_publish" => Event::Publish,
            "on_unpublish" | "on_connect" | "on_dvr" | "on_hls" | "on_hls_notify" => {
                return Ok(Call::Acknowledge)
            }
            other => return Err(format!("action: unknown value '{}'", excerpt(other))),
        };
        let app = hook.app.unwrap_or_default();
        let app = app.trim_matches('/');
        // on_close concerns the connection and names no stream; the session id settles it.
        let stream = match hook.stream.as_deref().map(|s| s.trim_matches('/')) {
            Some(stream) if !stream.is_empty() => format!("{app}/{stream}"),
            _ if hook.action == "on_close" => app.to_string(),
            _ => return Err("stream: missing".into()),
        };
        let client_ip = parse_ip("ip", hook.ip.as_deref())?;
        let param = hook.param.unwrap_or_default();
        let fields = pairs(param.trim_start_matches('?').as_bytes());

        let mut request = PlayRequest::new(Self::NAME, stream, client_ip);
        request.credential = credential_from_pairs(&fields);
        request.query = param.as_str().into();
        request.event = event;
        request.session = id_text(hook.client_id.as_ref());
        if hook.action == "on_close" && request.session.is_none() {
            return Err("client_id: missing".into());
        }
        request.protocol = "rtmp".into();
        request.referer = hook.page_url.unwrap_or_default();
        request.bytes = match hook.send_bytes {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(
                n.as_i64()
                    .filter(|b| *b >= 0)
                    .ok_or("send_bytes: not a byte count")?,
            ),
            Some(_) => return Err("send_bytes: not a byte count".into()),
        };
        request.streamer = streamer(req);
        if request.stream.is_empty() {
            request.stream = "-".into();
        }
        Ok(Call::Decide(request))
    }

    /// SRS allows on a body of `0`; anything else rejects.
    fn render(_event: Event, decision: &Decision) -> HttpResponse {
        if decision.allow {
            Self::acknowledge()
        } else {
            HttpResponse::Forbidden().json(json!({"code": 403, "reason": decision.reason}))
        }
    }

    fn acknowledge() -> HttpResponse {
        HttpResponse::Ok()
            .content_type("application/json")
            .body("0")
    }
}

#[utoipa::path(post, path = "/hook/srs", tag = "hooks",
    description = "SRS http_hooks on_play / on_stop / on_close (JSON: action, client_id, ip, vhost, app, stream, param).",
    responses((status = 200, description = "allow: body 0"),
              (status = 403, description = "deny: a non-zero code"),
              (status = 400, body = crate::http::ErrorBody, description = "malformed request")))]
pub async fn route(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    handle::<Srs>(state, req, body).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Reason;
    use crate::hooks::{parse_validated, test_decision};
    use actix_web::body::MessageBody;
    use actix_web::test::TestRequest;

    fn post(body: &str) -> Result<Call, String> {
        parse_validated::<Srs>(
            &TestRequest::post().to_http_request(),
            body.as_bytes(),
            &Context::default(),
        )
    }

    #[test]
    fn render_is_zero_or_a_code() {
        let allow = Srs::render(Event::Start, &test_decision(true, Reason::Ok));
        assert_eq!(allow.status(), 200);
        assert_eq!(allow.into_body().try_into_bytes().unwrap(), "0");
        let deny = Srs::render(Event::Start, &test_decision(false, Reason::IpDenied));
        assert_eq!(deny.status(), 403);
        let body: Value =
            serde_json::from_slice(&deny.into_body().try_into_bytes().unwrap()).unwrap();
        assert_eq!(body, json!({"code": 403, "reason": "ip_denied"}));
    }

    #[test]
    fn on_play_from_the_source_fields() {
        let body = r#"{"server_id":"vid-1","service_id":"s1","action":"on_play","client_id":"3c9e7x0h",
            "ip":"192.0.2.8","vhost":"__defaultVhost__","app":"live","stream":"livestream",
            "tcUrl":"rtmp://127.0.0.1/live","param":"?token=t1&salt=y","pageUrl":"","stream_url":"/live/livestream",
            "stream_id":"vid-2"}"#;
        let Call::Decide(request) = post(body).unwrap() else {
            panic!()
        };
        assert_eq!(request.stream, "live/livestream");
        assert_eq!(request.credential.token(), Some("t1"));
        assert_eq!(request.session.as_deref(), Some("3c9e7x0h"));
        assert_eq!(request.event, Event::Start);
    }

    #[test]
    fn actions() {
        let body = |action: &str| {
            format!(
                r#"{{"action":"{action}","client_id":7,"ip":"192.0.2.8","app":"live","stream":"s"}}"#
            )
        };
        for (action, event) in [("on_stop", Event::Stop), ("on_publish", Event::Publish)] {
            let Call::Decide(request) = post(&body(action)).unwrap() else {
                panic!("{action}")
            };
            assert_eq!(request.event, event);
            assert_eq!(request.session.as_deref(), Some("7"));
        }
        assert!(matches!(
            post(&body("on_unpublish")).unwrap(),
            Call::Acknowledge
        ));
        let close = r#"{"action":"on_close","client_id":"c1","ip":"192.0.2.8","app":"live","send_bytes":10,"recv_bytes":2}"#;
        let Call::Decide(request) = post(close).unwrap() else {
            panic!()
        };
        assert_eq!((request.event, request.bytes), (Event::Stop, Some(10)));
    }

    #[test]
    fn malformed() {
        for body in [
            "",
            "[]",
            r#"{"action":"on_play","ip":"192.0.2.8","app":"live"}"#,
            r#"{"action":"on_play","app":"live","stream":"s"}"#,
            r#"{"action":"on_seek","ip":"192.0.2.8","app":"live","stream":"s"}"#,
            r#"{"action":"on_play","ip":"bad","app":"live","stream":"s"}"#,
        ] {
            assert!(post(body).is_err(), "{body}");
        }
    }
}
