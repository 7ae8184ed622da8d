//! Ministra / Stalker portal as an upstream authority (SPEC §6), against a
//! small fake portal answering like `chk_flussonic_tmp_link.php`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use playgate::domain::RuleAction;
use serde_json::json;

use crate::helpers::*;

/// The fake portal: `good-*` tokens are granted (user 42, limit 1, 120 s),
/// `huge-*` too but for 2^64 - 1 seconds (user 43), `slow` answers after
/// 5 s, `broken` gets a 500, anything else 403.
struct FakePortal {
    url: String,
    asked: Arc<AtomicUsize>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for FakePortal {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

async fn check_link(request: HttpRequest, asked: web::Data<AtomicUsize>) -> HttpResponse {
    asked.fetch_add(1, Ordering::SeqCst);
    assert_eq!(
        request.path(),
        "/stalker_portal/server/api/chk_flussonic_tmp_link.php"
    );
    let query: Vec<(String, String)> = form_urlencoded::parse(request.query_string().as_bytes())
        .into_owned()
        .collect();
    let token = query
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    match token {
        t if t.starts_with("good-") => HttpResponse::Ok()
            .insert_header(("X-AuthDuration", "120"))
            .insert_header(("X-Unique", "true"))
            .insert_header(("X-Max-Sessions", "1"))
            .insert_header(("X-UserId", "42"))
            .finish(),
        t if t.starts_with("huge-") => HttpResponse::Ok()
            .insert_header(("X-AuthDuration", "18446744073709551615"))
            .insert_header(("X-UserId", "43"))
            .finish(),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            HttpResponse::Ok().insert_header(("X-UserId", "7")).finish()
        }
        "broken" => HttpResponse::InternalServerError().finish(),
        _ => HttpResponse::Forbidden().finish(),
    }
}

fn fake_portal() -> FakePortal {
    let asked = Arc::new(AtomicUsize::new(0));
    let data = web::Data::from(Arc::clone(&asked));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .default_service(web::to(check_link))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let port = server.addrs()[0].port();
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    FakePortal {
        url: format!("http://127.0.0.1:{port}/stalker_portal"),
        asked,
        handle,
    }
}

fn with_token(token: &str, session: &str) -> serde_json::Value {
    with(
        play("tv/1", "192.0.2.1"),
        json!({"token": token, "session": session}),
    )
}

#[tokio::test]
async fn portal_grants_become_sessions_with_the_portals_limit() {
    let portal = fake_portal();
    let url = portal.url.clone();
    let app = spawn_app_with(move |s| s.ministra_url = Some(url)).await;

    let granted = app.decide(with_token("good-1", "a")).await;
    assert_eq!(reason(&granted), "ok");
    assert_eq!(granted["user"], "ministra:42");
    assert_eq!(granted["max_sessions"], 1);
    assert_eq!(granted["duration"], 120);
    assert_eq!(app.active_sessions("ministra:42").await, 1);
    let expires_in: f64 = app
        .db()
        .await
        .query_one(
            "SELECT extract(epoch FROM expires_at - now())::float8 FROM sessions WHERE login = 'ministra:42'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        expires_in > 120.0,
        "the session holds for the portal's duration plus grace"
    );

    // The portal's verdict is remembered: refreshes do not ask again.
    for _ in 0..3 {
        let refreshed = app
            .decide(with(with_token("good-1", "a"), json!({"event": "refresh"})))
            .await;
        assert_eq!(reason(&refreshed), "ok");
    }
    assert_eq!(portal.asked.load(Ordering::SeqCst), 1);

    // The portal's limit is enforced by playgate across the fleet.
    let second = app.decide(with_token("good-2", "b")).await;
    assert_eq!(reason(&second), "session_limit");
    assert_eq!(portal.asked.load(Ordering::SeqCst), 2);

    // Through the Flussonic dialect, the answer carries the portal's identity.
    let flussonic = app
        .hook_get(
            "/hook/flussonic?name=tv/2&ip=192.0.2.9&token=good-3&session_id=f1&request_type=new_session",
            &[],
        )
        .await;
    assert_eq!(flussonic.status, 403, "still over the limit of 1");
    app.decide(with(with_token("good-1", "a"), json!({"event": "stop"})))
        .await;
    let flussonic = app
        .hook_get(
            "/hook/flussonic?name=tv/2&ip=192.0.2.9&token=good-3&session_id=f1&request_type=new_session",
            &[],
        )
        .await;
    assert_eq!(flussonic.status, 200);
    assert_eq!(flussonic.header("X-UserId"), Some("ministra:42"));
    assert_eq!(flussonic.header("X-AuthDuration"), Some("120"));
}

/// The portal's answer is untrusted input: an `X-AuthDuration` of 2^64 - 1
/// seconds once overflowed `Instant + Duration` while the grants lock was
/// held, and every later check failed on the poisoned lock.
#[tokio::test]
async fn an_absurd_grant_duration_is_clamped_and_later_checks_work() {
    let portal = fake_portal();
    let url = portal.url.clone();
    let app = spawn_app_with(move |s| s.ministra_url = Some(url)).await;

    let huge = app.decide(with_token("huge-1", "h")).await;
    assert_eq!(reason(&huge), "ok", "{huge}");
    assert_eq!(huge["user"], "ministra:43");
    assert_eq!(huge["duration"], 86_400, "clamped to a day");
    let expires_in: f64 = app
        .db()
        .await
        .query_one(
            "SELECT extract(epoch FROM expires_at - now())::float8 FROM sessions WHERE login = 'ministra:43'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        (86_400.0..=86_400.0 + 60.0).contains(&expires_in),
        "{expires_in}"
    );

    // The next checks, remembered and new, still work.
    let again = app
        .decide(with(with_token("huge-1", "h"), json!({"event": "refresh"})))
        .await;
    assert_eq!(reason(&again), "ok", "{again}");
    let other = app.decide(with_token("good-1", "g")).await;
    assert_eq!(reason(&other), "ok", "{other}");
    assert_eq!(other["duration"], 120);
    assert_eq!(portal.asked.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn portal_refusals_and_failures() {
    let portal = fake_portal();
    let url = portal.url.clone();
    let app = spawn_app_with(move |s| s.ministra_url = Some(url)).await;
    assert_eq!(
        reason(&app.decide(with_token("expired", "x")).await),
        "unknown_token"
    );

    for token in ["slow", "broken"] {
        let started = Instant::now();
        let decision = app.decide(with_token(token, token)).await;
        assert_eq!(reason(&decision), "upstream_unavailable", "{token}");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{token} took {:?}",
            started.elapsed()
        );
    }
    let samples = parse_metrics(&app.metrics_text().await);
    assert_eq!(
        decisions(&samples, "decide", "deny", "upstream_unavailable"),
        2.0
    );

    // A portal that is not there at all.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = spawn_app_with(move |s| {
        s.ministra_url = Some(format!("http://127.0.0.1:{closed_port}/stalker_portal"))
    })
    .await;
    assert_eq!(
        reason(&app.decide(with_token("good-1", "a")).await),
        "upstream_unavailable"
    );
}

#[tokio::test]
async fn local_tokens_and_ip_rules_never_ask_the_portal() {
    let portal = fake_portal();
    let url = portal.url.clone();
    let app = spawn_app_with(move |s| s.ministra_url = Some(url)).await;
    app.create(user("local").token("local-token")).await;
    app.ip_rule("198.51.100.0/24", RuleAction::Deny).await;
    app.ip_rule("203.0.113.0/24", RuleAction::Allow).await;

    assert_eq!(
        reason(&app.decide(with_token("local-token", "l")).await),
        "ok"
    );
    let denied = with(with_token("good-1", "d"), json!({"ip": "198.51.100.1"}));
    assert_eq!(reason(&app.decide(denied).await), "ip_denied");
    let allowed = with(with_token("good-1", "w"), json!({"ip": "203.0.113.1"}));
    assert_eq!(reason(&app.decide(allowed).await), "ip_allowed");
    assert_eq!(portal.asked.load(Ordering::SeqCst), 0);
}
