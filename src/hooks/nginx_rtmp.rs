//! `GET,POST /hook/nginx-rtmp`: nginx-rtmp-module `on_play`, `on_update`,
//! `on_play_done` (and `on_done`). Fields arrive as a form body (default
//! `notify_method post`) or in the query string (`notify_method get`): `call`,
//! `app`, `name`, `addr`, `clientid`, `flashver`, `tcurl`, … plus the client's
//! play arguments (`?token=`) appended raw. Only the status is read:
//! 2xx continues, anything else drops the client. nginx's own relays
//! (`push`, `pull`) call the same hooks with an empty `app`: acknowledged.

use actix_web::{web, HttpRequest, HttpResponse};

use super::{
    credential_from_pairs, excerpt, field, handle, pairs, parse_ip, streamer, Call, Context,
    Dialect,
};
use crate::decision::{Decision, Event, PlayRequest};
use crate::http::AppState;

pub struct NginxRtmp;

impl Dialect for NginxRtmp {
    const NAME: &'static str = "nginx-rtmp";

    fn parse(req: &HttpRequest, body: &[u8], _context: &Context) -> Result<Call, String> {
        let mut fields = pairs(req.query_string().as_bytes());
        fields.extend(pairs(body));
        let call = field(&fields, "call").ok_or("call: missing")?;
        // No app: one of nginx's own relays (`push`, `pull`; SPEC §3),
        // answered before anything else is read, as its addr is the relay's
        // URL (`127.0.0.1:1935/relayed`), no client address.
        // `ngx_rtmp_relay_create_connection` (ngx_rtmp_relay_module.c) opens
        // that session with flashver "ngx-local-relay" and no `connect`, the
        // only thing that sets `s->app`, so the app that
        // `ngx_rtmp_netcall_http_format_session` writes is empty; a push then
        // plays the local stream through these hooks, a pull publishes into
        // it. A client's connect must name an existing application, written
        // before any `app=` of its play arguments: no client gets here. The
        // flashver is no sign: a client sends what it likes (ffmpeg
        // `-rtmp_flashver`).
        let Some(app) = field(&fields, "app") else {
            log::debug!(
                "nginx-rtmp relay {} of '{}' via {}: acknowledged",
                excerpt(call),
                excerpt(field(&fields, "name").unwrap_or_default()),
                excerpt(field(&fields, "addr").unwrap_or_default())
            );
            return Ok(Call::Acknowledge);
        };
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
        let name = field(&fields, "name").ok_or("name: missing")?;
        let stream = format!("{}/{}", app.trim_matches('/'), name.trim_matches('/'));
        let client_ip = parse_ip("addr", field(&fields, "addr"))?;

        let mut request = PlayRequest::new(Self::NAME, stream, client_ip);
        request.credential = credential_from_pairs(&fields);
        // The client's play arguments arrive appended to nginx's own fields.
        request.query = String::from_utf8_lossy(body).as_ref().into();
        if request.query.0.is_empty() {
            request.query = req.query_string().into();
        }
        request.event = event;
        // nginx numbers its connections; one connection may play several streams.
        request.session = field(&fields, "clientid").map(|id| format!("{id}/{}", request.stream));
        request.protocol = "rtmp".into();
        request.user_agent = field(&fields, "flashver").unwrap_or_default().to_string();
        request.referer = field(&fields, "pageurl").unwrap_or_default().to_string();
        request.streamer = streamer(req);
        Ok(Call::Decide(request))
    }

    /// Only the status is read; every stop gets 200.
    fn render(_event: Event, decision: &Decision) -> HttpResponse {
        if decision.allow {
            HttpResponse::Ok().body("ok")
        } else {
            HttpResponse::Forbidden().body(decision.reason.as_str())
        }
    }

    fn acknowledge() -> HttpResponse {
        HttpResponse::Ok().body("ok")
    }
}

#[utoipa::path(method(get, post), path = "/hook/nginx-rtmp", tag = "hooks",
    description = "nginx-rtmp on_play / on_update / on_play_done: fields in a form body (notify_method post) or the query (get): call, app, name, addr, clientid, tcurl, client args.",
    params(("call" = Option<String>, Query, description = "play, update_play, play_done, done, publish, …"),
           ("app" = Option<String>, Query), ("name" = Option<String>, Query),
           ("addr" = Option<String>, Query, description = "client IP"),
           ("clientid" = Option<String>, Query), ("token" = Option<String>, Query)),
    responses((status = 200, description = "allow (and every stop)"),
              (status = 403, description = "deny"),
              (status = 400, body = crate::http::ErrorBody, description = "malformed request")))]
pub async fn route(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    handle::<NginxRtmp>(state, req, body).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Reason;
    use crate::hooks::{parse_validated, test_decision};
    use actix_web::test::TestRequest;

    fn parse(req: &HttpRequest, body: &[u8]) -> Result<Call, String> {
        parse_validated::<NginxRtmp>(req, body, &Context::default())
    }

    fn parse_body(body: &str) -> Result<Call, String> {
        let req = TestRequest::post()
            .peer_addr("127.0.0.1:40000".parse().unwrap())
            .to_http_request();
        parse(&req, body.as_bytes())
    }

    #[test]
    fn the_client_arguments_reach_the_link_verifier() {
        let Ok(Call::Decide(request)) =
            parse_body("call=play&app=live&name=ch1&addr=192.0.2.5&clientid=1&pglink=v1.k.p.s")
        else {
            panic!("decided");
        };
        assert!(request.query.0.ends_with("&pglink=v1.k.p.s"));
    }

    #[test]
    fn render_is_the_status() {
        let allow = test_decision(true, Reason::Ok);
        assert_eq!(NginxRtmp::render(Event::Start, &allow).status(), 200);
        let deny = test_decision(false, Reason::SessionLimit);
        assert_eq!(NginxRtmp::render(Event::Refresh, &deny).status(), 403);
        assert_eq!(NginxRtmp::acknowledge().status(), 200);
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
        assert_eq!(request.credential.token(), Some("t1"));
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

    /// What nginx-rtmp 1.2.2 (Debian's libnginx-mod-rtmp, the same relay and
    /// notify code as arut/nginx-rtmp-module 6c7719d) sent to `on_play`,
    /// `on_publish`, `on_update`, `on_play_done`, `on_publish_done` and
    /// `on_done` for `push rtmp://127.0.0.1:19350/relayed;` in application
    /// `live` (clientid 3) and `pull rtmp://127.0.0.1:19350/relayed;` in
    /// application `pulled` (clientid 12), recorded from a real nginx.
    const RELAY_CALLS: &[&str] = &[
        "app=&flashver=ngx-local-relay&swfurl=&tcurl=&pageurl=&addr=127.0.0.1:19350/relayed&clientid=3&call=play&name=stream&start=0&duration=0&reset=0",
        "app=&flashver=ngx-local-relay&swfurl=&tcurl=&pageurl=&addr=127.0.0.1:19350/relayed&clientid=3&call=update_play&time=2&timestamp=1880&name=stream",
        "app=&flashver=ngx-local-relay&swfurl=&tcurl=&pageurl=&addr=127.0.0.1:19350/relayed&clientid=3&call=play_done&name=stream",
        "app=&flashver=ngx-local-relay&swfurl=&tcurl=&pageurl=&addr=127.0.0.1:19350/relayed&clientid=3&call=done&name=stream",
        "app=&flashver=ngx-local-relay&swfurl=&tcurl=&pageurl=&addr=127.0.0.1:19350/relayed&clientid=12&call=publish&name=stream&type=",
        "app=&flashver=ngx-local-relay&swfurl=&tcurl=&pageurl=&addr=127.0.0.1:19350/relayed&clientid=12&call=update_publish&time=2&timestamp=4320&name=stream",
        "app=&flashver=ngx-local-relay&swfurl=&tcurl=&pageurl=&addr=127.0.0.1:19350/relayed&clientid=12&call=publish_done&name=stream",
    ];

    #[test]
    fn relays_are_acknowledged_before_any_validation() {
        for body in RELAY_CALLS {
            assert!(matches!(parse_body(body), Ok(Call::Acknowledge)), "{body}");
        }
        // No app at all, and an app left empty by every pair, are relays too.
        for body in [
            "call=play&name=s&addr=127.0.0.1:1935/x",
            "app=&call=play&name=s&addr=192.0.2.7&app=",
        ] {
            assert!(matches!(parse_body(body), Ok(Call::Acknowledge)), "{body}");
        }
    }

    #[test]
    fn a_client_calling_itself_a_relay_is_decided() {
        // A flashVer is whatever the client sends in its connect.
        let body = "app=live&flashver=ngx-local-relay&swfurl=&tcurl=&pageurl=&addr=192.0.2.7&clientid=9&call=play&name=s";
        let Call::Decide(request) = parse_body(body).unwrap() else {
            panic!("a client with a relay's flashver is not a relay")
        };
        assert_eq!(request.stream, "live/s");
        // Nor do play arguments empty nginx's own app.
        let body = "app=live&flashver=x&addr=192.0.2.7&clientid=9&call=play&name=s&app=&flashver=ngx-local-relay";
        assert!(matches!(parse_body(body), Ok(Call::Decide(_))));
    }

    #[test]
    fn malformed() {
        for body in [
            "",
            "app=&name=s",
            "call=play&app=live&addr=192.0.2.7",
            "call=play&app=live&name=s",
            "call=play&app=live&name=s&addr=nope",
            "call=seek&app=live&name=s&addr=192.0.2.7",
        ] {
            assert!(parse_body(body).is_err(), "{body}");
        }
    }
}
