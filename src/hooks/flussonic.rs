//! `GET /hook/flussonic`: Flussonic `auth_backend` / `on_play` (Authorization
//! Backend API), and a drop-in for Ministra's `chk_flussonic_tmp_link.php`.
//!
//! Query fields: `name`, `ip`, `token`, `session_id`, `request_type`
//! (`new_session` / `update_session`), `proto`, `user_agent`, `referer`,
//! `bytes`, `qs` (the client's own query), … 200 grants with `X-AuthDuration`
//! (seconds until Flussonic asks again), `X-UserId`, `X-Max-Sessions`; 403
//! denies. Flussonic sends no stop: sessions end by timeout.
//!
//! Where Ministra's script was called by Astra (only `token` in the query),
//! the stream and client IP come from Astra's headers instead.

use actix_web::{web, HttpRequest, HttpResponse};

use super::{
    astra_channel, credential_from_pairs, excerpt, field, handle, header, pairs, parse_bytes,
    parse_ip, streamer, Call, Context, Dialect,
};
use crate::decision::{ClientQuery, Decision, Event, PlayRequest};
use crate::http::AppState;

pub struct Flussonic;

impl Dialect for Flussonic {
    const NAME: &'static str = "flussonic";

    fn parse(req: &HttpRequest, _body: &[u8], _context: &Context) -> Result<Call, String> {
        let fields = pairs(req.query_string().as_bytes());
        let stream = match field(&fields, "name") {
            Some(name) => name.to_string(),
            None => astra_channel(req)?.ok_or("name: missing")?,
        };
        let client_ip = match field(&fields, "ip") {
            Some(ip) => parse_ip("ip", Some(ip))?,
            None => parse_ip("ip", header(req, "x-real-ip"))?,
        };
        let event = match field(&fields, "request_type") {
            None | Some("new_session") => Event::Start,
            Some("update_session") => Event::Refresh,
            Some(other) => {
                return Err(format!(
                    "request_type: '{}' is not new_session or update_session",
                    excerpt(other)
                ))
            }
        };
        // The client's own query (`qs`) has its real credentials; Flussonic's
        // `token` may be one it generated itself.
        let client_query = field(&fields, "qs").unwrap_or_default();
        let mut credential =
            credential_from_pairs(&pairs(client_query.trim_start_matches('?').as_bytes()));
        if credential.is_none() {
            credential = credential_from_pairs(&fields);
        }

        let mut request = PlayRequest::new(Self::NAME, stream, client_ip);
        request.credential = credential;
        // The client's query, else the token Flussonic passed on (where a
        // securetoken link arrives when the query is not forwarded).
        request.query = match (client_query.is_empty(), field(&fields, "token")) {
            (true, Some(token)) => ClientQuery(format!("token={token}")),
            _ => client_query.into(),
        };
        request.event = event;
        request.session = field(&fields, "session_id")
            .or_else(|| header(req, "x-session-id"))
            .map(str::to_string);
        request.protocol = field(&fields, "proto")
            .or_else(|| field(&fields, "type"))
            .unwrap_or_default()
            .to_string();
        request.user_agent = field(&fields, "user_agent")
            .or_else(|| header(req, "x-real-ua"))
            .unwrap_or_default()
            .to_string();
        request.referer = field(&fields, "referer").unwrap_or_default().to_string();
        request.bytes = parse_bytes("bytes", field(&fields, "bytes"))?;
        request.streamer = streamer(req);
        Ok(Call::Decide(request))
    }

    /// `X-AuthDuration` is how long until Flussonic asks again.
    fn render(_event: Event, decision: &Decision) -> HttpResponse {
        if !decision.allow {
            return HttpResponse::Forbidden().body(decision.reason.as_str());
        }
        let mut response = HttpResponse::Ok();
        response.insert_header(("X-AuthDuration", decision.duration.to_string()));
        if let Some(user) = &decision.user {
            response.insert_header(("X-UserId", user.as_str()));
        }
        if let Some(max) = decision.max_sessions {
            response.insert_header(("X-Max-Sessions", max.to_string()));
        }
        response.finish()
    }
}

#[utoipa::path(get, path = "/hook/flussonic", tag = "hooks",
    description = "Flussonic auth_backend / on_play; also a drop-in for Ministra's chk_flussonic_tmp_link.php.",
    params(("name" = Option<String>, Query, description = "stream name"),
           ("ip" = Option<String>, Query, description = "client IP"),
           ("token" = Option<String>, Query, description = "the viewer's token"),
           ("session_id" = Option<String>, Query, description = "Flussonic's session id"),
           ("request_type" = Option<String>, Query, description = "new_session or update_session")),
    responses((status = 200, description = "allow; X-AuthDuration, X-UserId, X-Max-Sessions"),
              (status = 403, description = "deny"),
              (status = 400, body = crate::http::ErrorBody, description = "malformed request")))]
pub async fn route(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    handle::<Flussonic>(state, req, body).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Reason;
    use crate::hooks::{parse_validated, test_decision};
    use actix_web::test::TestRequest;

    fn get(query: &str) -> Result<Call, String> {
        parse_validated::<Flussonic>(
            &TestRequest::get()
                .uri(&format!("/hook/flussonic?{query}"))
                .to_http_request(),
            b"",
            &Context::default(),
        )
    }

    #[test]
    fn render_headers() {
        let allow = Flussonic::render(Event::Start, &test_decision(true, Reason::Ok));
        assert_eq!(allow.status(), 200);
        let header = |name| allow.headers().get(name).unwrap().to_str().unwrap();
        assert_eq!(
            (
                header("X-AuthDuration"),
                header("X-UserId"),
                header("X-Max-Sessions")
            ),
            ("30", "alice", "2")
        );
        let deny = Flussonic::render(Event::Refresh, &test_decision(false, Reason::UserExpired));
        assert_eq!(deny.status(), 403);
        assert!(deny.headers().get("X-AuthDuration").is_none());
    }

    #[test]
    fn api_fields() {
        let query = "name=sport%2Fespn&proto=hls&ip=192.0.2.3&request_type=update_session&request_number=1\
                     &session_id=5f2a-11&stream_clients=1&total_clients=4&token=abc&duration=30&bytes=1000\
                     &user_agent=VLC&referer=http%3A%2F%2Fsite&qs=token%3Dabc";
        let Call::Decide(request) = get(query).unwrap() else {
            panic!()
        };
        assert_eq!(request.stream, "sport/espn");
        assert_eq!(request.event, Event::Refresh);
        assert_eq!(request.session.as_deref(), Some("5f2a-11"));
        assert_eq!(request.credential.token(), Some("abc"));
        assert_eq!(request.bytes, Some(1000));
        assert_eq!(request.protocol, "hls");
    }

    #[test]
    fn client_query_beats_generated_token() {
        let Call::Decide(request) =
            get("name=a&ip=192.0.2.3&token=generated&qs=auth%3Dbob%3Apw").unwrap()
        else {
            panic!()
        };
        assert_eq!(request.credential.login(), Some("bob"));
        assert_eq!(request.credential.token(), None);
    }

    #[test]
    fn malformed() {
        for query in [
            "ip=192.0.2.3&token=a",
            "name=a&token=a",
            "name=a&ip=x",
            "name=a&ip=192.0.2.3&request_type=close",
            "name=a&ip=192.0.2.3&bytes=-1",
        ] {
            assert!(get(query).is_err(), "{query}");
        }
    }
}
