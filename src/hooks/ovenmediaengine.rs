//! `POST /hook/ovenmediaengine`: OvenMediaEngine AdmissionWebhooks.
//!
//! JSON body: `client` (`address`, `port`, `real_ip`, `user_agent`) and
//! `request` (`direction` incoming = publish / outgoing = play, `protocol`,
//! `status` opening / closing, `url` with the client's query, `time`).
//! With `PLAYGATE_OME_SECRET`, `X-OME-Signature` must be
//! base64url(HMAC-SHA1(secret, raw body)) without padding; it is checked in
//! constant time before the body is parsed. Opening answers 200 JSON
//! `{"allowed", "lifetime" (ms), "reason"}`; closing answers `{}`.

use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::json;
use sha1::Sha1;

use super::{
    credential_from_pairs, excerpt, handle, header, invalid_body, pairs, parse_ip, streamer, Call,
    Context, Dialect,
};
use crate::decision::{Decision, Event, PlayRequest};
use crate::http::AppState;

pub struct OvenMediaEngine;

#[derive(Deserialize)]
struct Admission {
    client: Client,
    request: Request,
}

#[derive(Deserialize)]
struct Client {
    address: Option<String>,
    real_ip: Option<String>,
    user_agent: Option<String>,
}

#[derive(Deserialize)]
struct Request {
    direction: String,
    protocol: Option<String>,
    status: String,
    url: String,
}

/// Whether `signature` is base64url(HMAC-SHA1(secret, body)), padding optional.
pub fn signature_valid(secret: &str, body: &[u8], signature: Option<&str>) -> bool {
    let Some(signature) = signature else {
        return false;
    };
    let Ok(sent) = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(signature.trim().trim_end_matches('='))
    else {
        return false;
    };
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    mac.verify_slice(&sent).is_ok()
}

/// `scheme://host:port/app/stream[/file]?query` → (`app/stream`, query).
pub fn stream_and_query(url: &str) -> Result<(String, String), String> {
    let (_, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("request.url: '{}' is not a URL", excerpt(url)))?;
    let rest = rest.split('#').next().unwrap_or(rest);
    let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = location.split_once('/').map(|(_, path)| path).unwrap_or("");
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).take(2).collect();
    if segments.len() < 2 {
        return Err(format!(
            "request.url: '{}' has no /app/stream path",
            excerpt(url)
        ));
    }
    Ok((segments.join("/"), query.to_string()))
}

impl Dialect for OvenMediaEngine {
    const NAME: &'static str = "ovenmediaengine";

    fn guard(req: &HttpRequest, body: &[u8], context: &Context) -> Result<(), String> {
        match context.ome_secret {
            Some(secret) if !signature_valid(secret, body, header(req, "x-ome-signature")) => {
                Err("invalid X-OME-Signature".into())
            }
            _ => Ok(()),
        }
    }

    fn parse(req: &HttpRequest, body: &[u8], _context: &Context) -> Result<Call, String> {
        let admission: Admission = serde_json::from_slice(body).map_err(invalid_body)?;
        let request_part = &admission.request;
        let opening = match request_part.status.as_str() {
            "opening" => true,
            "closing" => false,
            other => {
                return Err(format!(
                    "request.status: unknown value '{}'",
                    excerpt(other)
                ))
            }
        };
        let event = match (request_part.direction.as_str(), opening) {
            ("outgoing", true) => Event::Start,
            ("outgoing", false) => Event::Stop,
            ("incoming", true) => Event::Publish,
            ("incoming", false) => return Ok(Call::Acknowledge),
            (other, _) => {
                return Err(format!(
                    "request.direction: unknown value '{}'",
                    excerpt(other)
                ))
            }
        };
        let (stream, query) = stream_and_query(&request_part.url)?;
        let client = &admission.client;
        let ip = client
            .real_ip
            .as_deref()
            .filter(|ip| !ip.is_empty())
            .or(client.address.as_deref());
        let client_ip = parse_ip("client.real_ip / client.address", ip)?;

        let mut request = PlayRequest::new(Self::NAME, stream, client_ip);
        request.credential = credential_from_pairs(&pairs(query.as_bytes()));
        request.query = query.as_str().into();
        request.event = event;
        request.protocol = request_part.protocol.clone().unwrap_or_default();
        request.user_agent = client.user_agent.clone().unwrap_or_default();
        request.streamer = streamer(req);
        Ok(Call::Decide(request))
    }

    /// Opening: `allowed`, `lifetime` (ms), `reason`; closing: `{}`.
    fn render(event: Event, decision: &Decision) -> HttpResponse {
        if event == Event::Stop {
            return Self::acknowledge();
        }
        if decision.allow {
            HttpResponse::Ok().json(json!({
                "allowed": true,
                "lifetime": decision.duration * 1000,
                "reason": decision.reason,
            }))
        } else {
            HttpResponse::Ok().json(json!({"allowed": false, "reason": decision.reason}))
        }
    }

    fn acknowledge() -> HttpResponse {
        HttpResponse::Ok().json(json!({}))
    }
}

#[utoipa::path(post, path = "/hook/ovenmediaengine", tag = "hooks",
    description = "OvenMediaEngine AdmissionWebhooks (JSON client, request; X-OME-Signature verified when PLAYGATE_OME_SECRET is set).",
    params(("X-OME-Signature" = Option<String>, Header, description = "base64url(HMAC-SHA1(body)) without padding")),
    responses((status = 200, description = "JSON allowed, lifetime (ms), reason; {} for closing"),
              (status = 403, description = "bad signature"),
              (status = 400, body = crate::http::ErrorBody, description = "malformed request")))]
pub async fn route(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    handle::<OvenMediaEngine>(state, req, body).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Reason;
    use crate::hooks::{parse_validated, test_decision};
    use actix_web::body::MessageBody;
    use actix_web::test::TestRequest;

    fn parse(req: &HttpRequest, body: &[u8]) -> Result<Call, String> {
        parse_validated::<OvenMediaEngine>(req, body, &Context::default())
    }

    fn body(response: HttpResponse) -> serde_json::Value {
        serde_json::from_slice(&response.into_body().try_into_bytes().unwrap()).unwrap()
    }

    #[test]
    fn render_lifetime_in_milliseconds() {
        let allow = OvenMediaEngine::render(Event::Start, &test_decision(true, Reason::Ok));
        assert_eq!(
            body(allow),
            json!({"allowed": true, "lifetime": 30000, "reason": "ok"})
        );
        let deny = OvenMediaEngine::render(Event::Start, &test_decision(false, Reason::IpDenied));
        assert_eq!(body(deny), json!({"allowed": false, "reason": "ip_denied"}));
        let closing = OvenMediaEngine::render(Event::Stop, &test_decision(true, Reason::Ok));
        assert_eq!(body(closing), json!({}));
    }

    #[test]
    fn guard_checks_the_signature_only_with_a_secret() {
        let req = TestRequest::post().to_http_request();
        assert!(OvenMediaEngine::guard(&req, b"{}", &Context::default()).is_ok());
        let with_secret = Context {
            ome_secret: Some("s3cret"),
            ..Context::default()
        };
        assert!(OvenMediaEngine::guard(&req, b"{}", &with_secret).is_err());
    }

    const OPENING: &str = r#"{"client":{"address":"211.233.58.86","port":29291,"real_ip":"192.0.2.9","user_agent":"Mozilla/5.0"},
        "request":{"direction":"outgoing","protocol":"webrtc","status":"opening",
        "url":"wss://ome.example.com:3333/app/stream?token=t1","time":"2021-05-12T13:45:00.000Z"}}"#;

    #[test]
    fn documented_request() {
        let Call::Decide(request) =
            parse(&TestRequest::post().to_http_request(), OPENING.as_bytes()).unwrap()
        else {
            panic!()
        };
        assert_eq!(request.stream, "app/stream");
        assert_eq!(request.client_ip.to_string(), "192.0.2.9");
        assert_eq!(request.credential.token(), Some("t1"));
        assert_eq!(request.event, Event::Start);
    }

    #[test]
    fn urls() {
        assert_eq!(
            stream_and_query("https://h:3334/app/stream/llhls.m3u8?token=x").unwrap(),
            ("app/stream".into(), "token=x".into())
        );
        assert!(stream_and_query("rtmp://h/app").is_err());
        assert!(stream_and_query("nonsense").is_err());
    }

    #[test]
    fn signature() {
        let body = b"{\"a\":1}";
        let mut mac = Hmac::<Sha1>::new_from_slice(b"s3cret").unwrap();
        mac.update(body);
        let good =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        assert!(signature_valid("s3cret", body, Some(&good)));
        assert!(!signature_valid("other", body, Some(&good)));
        assert!(!signature_valid("s3cret", b"{\"a\":2}", Some(&good)));
        assert!(!signature_valid("s3cret", body, None));
        assert!(!signature_valid("s3cret", body, Some("***")));
    }
}
