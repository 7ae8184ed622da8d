//! `GET,POST /hook/nginx-rtmp`: nginx-rtmp-module `on_play`, `on_update`,
//! `on_play_done` (and `on_done`). Fields arrive as a form body (default
//! `notify_method post`) or in the query string (`notify_method get`): `call`,
//! `app`, `name`, `addr`, `clientid`, `flashver`, `tcurl`, … plus the client's
//! play arguments (`?token=`) appended raw. Only the status is read:
//! 2xx continues, anything else drops the client.

use actix_web::{web, HttpRequest, HttpResponse};

use super::{
    bad_request, credentials_from_pairs, excerpt, field, pairs, parse_ip, streamer, validated, Call,
};
use crate::app::AppState;
use crate::decision::{Event, PlayRequest};

pub const DIALECT: &str = "nginx-rtmp";

pub fn parse(req: &HttpRequest, body: &[u8]) -> Result<Call, String> {
    let mut fields = pairs(req.query_string().as_bytes());
    fields.extend(pairs(body));
    let call = field(&fields, "call").ok_or("call: missing")?;
    let event = match call {
        "play" => Event::Start,
        "update_play" => Event::Refresh,
        "play_done" | "done" => Event::Stop,
        "publish" => Event::Publish,
        // Publish keep-alives and ends share on_update / on_done: never cut a
        // publisher off. Connection-level calls carry no stream to decide.
        "update_publish" | "publish_done" | "connect" | "disconnect" | "record_done" => {
            return Ok(Call::Acknowledge)
        }
        other => return Err(format!("call: unknown value '{}'", excerpt(other))),
    };
    let app = field(&fields, "app").ok_or("app: missing")?;
    let name = field(&fields, "name").ok_or("name: missing")?;
    let stream = format!("{}/{}", app.trim_matches('/'), name.trim_matches('/'));
    let client_ip = parse_ip("addr", field(&fields, "addr"))?;

    let mut request = PlayRequest::new(DIALECT, stream, client_ip);
    request.credentials = credentials_from_pairs(&fields);
    request.event = event;
    // nginx numbers its connections; one connection may play several streams.
    request.session = field(&fields, "clientid").map(|id| format!("{id}/{}", request.stream));
    request.protocol = "rtmp".into();
    request.user_agent = field(&fields, "flashver").unwrap_or_default().to_string();
    request.referer = field(&fields, "pageurl").unwrap_or_default().to_string();
    request.streamer = streamer(req);
    validated(request).map(Call::Decide)
}

pub async fn handle(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    match parse(&req, &body) {
        Err(reason) => bad_request(&state, DIALECT, &reason),
        Ok(Call::Acknowledge) => HttpResponse::Ok().body("ok"),
        Ok(Call::Decide(request)) => {
            let decision = state.engine.decide(request).await;
            if decision.allow {
                HttpResponse::Ok().body("ok")
            } else {
                HttpResponse::Forbidden().body(decision.reason.as_str())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn parse_body(body: &str) -> Result<Call, String> {
        let req = TestRequest::post()
            .peer_addr("127.0.0.1:40000".parse().unwrap())
            .to_http_request();
        parse(&req, body.as_bytes())
    }

    #[test]
    fn play_from_the_module_source_fields() {
        let body = "app=live&flashver=LNX%209%2C0%2C124%2C2&swfurl=&tcurl=rtmp%3A%2F%2F127.0.0.1%3A1935%2Flive\
                    &pageurl=&addr=192.0.2.7&clientid=12&call=play&name=stream&start=-2000&duration=0&reset=0&token=t1";
        let Call::Decide(request) = parse_body(body).unwrap() else {
            panic!("expected a decision")
        };
        assert_eq!(request.stream, "live/stream");
        assert_eq!(request.client_ip.to_string(), "192.0.2.7");
        assert_eq!(request.credentials.token.as_deref(), Some("t1"));
        assert_eq!(request.event, Event::Start);
        assert_eq!(
            request.session_key(),
            "s:nginx-rtmp:127.0.0.1:12/live/stream"
        );
    }

    #[test]
    fn calls_map_to_events() {
        let base = "app=live&name=s&addr=192.0.2.7&clientid=1&call=";
        for (call, event) in [
            ("update_play", Event::Refresh),
            ("play_done", Event::Stop),
            ("done", Event::Stop),
            ("publish", Event::Publish),
        ] {
            match parse_body(&format!("{base}{call}")).unwrap() {
                Call::Decide(request) => assert_eq!(request.event, event, "{call}"),
                Call::Acknowledge => panic!("{call}"),
            }
        }
        for call in ["update_publish", "publish_done", "connect"] {
            assert!(matches!(
                parse_body(&format!("{base}{call}")).unwrap(),
                Call::Acknowledge
            ));
        }
    }

    #[test]
    fn malformed() {
        for body in [
            "",
            "call=play&app=live&addr=192.0.2.7",
            "call=play&name=s&addr=192.0.2.7",
            "call=play&app=live&name=s",
            "call=play&app=live&name=s&addr=nope",
            "call=seek&app=live&name=s&addr=192.0.2.7",
        ] {
            assert!(parse_body(body).is_err(), "{body}");
        }
    }
}
