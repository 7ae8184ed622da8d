//! Signed playback links (SPEC §9) through the real server: keys made and
//! links issued through the admin API, verified by the hooks, on two
//! replicas where the SPEC asks for exactness.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::helpers::*;

/// An admin app (root/watcher/viewer seeded) with this link skew, and an
/// enabled key of `format` named `id`.
async fn app_with_key(id: &str, format: &str, skew: u64) -> TestApp {
    let app = spawn_app_with(|settings| settings.link_skew = Duration::from_secs(skew)).await;
    seed_admins(&app).await;
    make_key(&app, id, format, json!({})).await;
    app
}

async fn make_key(app: &TestApp, id: &str, format: &str, options: Value) {
    let body = json!({"id": id, "format": format, "options": options});
    app.admin("POST", "/api/v1/signing-keys", Some(body), 201)
        .await;
    app.reload().await;
}

/// POST /api/v1/links; the query to append.
async fn link(app: &TestApp, request: Value) -> String {
    let issued = app.admin("POST", "/api/v1/links", Some(request), 201).await;
    issued["query"].as_str().unwrap().to_string()
}

fn start(stream: &str, query: &str, session: &str) -> Value {
    with(
        play(stream, "192.0.2.1"),
        json!({"query": query, "session": session, "user_agent": "player"}),
    )
}

#[tokio::test]
async fn a_native_link_admits_an_anonymous_viewer_of_its_stream_only() {
    let app = app_with_key("k1", "playgate", 60).await;
    let query = link(&app, json!({"stream": "news", "ttl": 600})).await;
    assert!(query.starts_with("pglink=v1.k1."), "{query}");
    let decision = app.decide(start("news", &query, "a")).await;
    assert_eq!((reason(&decision), &decision["user"]), ("ok", &Value::Null));
    assert_eq!(
        reason(&app.decide(start("sport", &query, "b")).await),
        "link_invalid"
    );
    // One character of the signature changed.
    let last = query.chars().last().unwrap();
    let changed = if last == 'A' { 'B' } else { 'A' };
    let tampered = format!("{}{changed}", &query[..query.len() - 1]);
    assert_eq!(
        reason(&app.decide(start("news", &tampered, "c")).await),
        "link_invalid"
    );
    // A link beside a token: the link decides (and a bad one is refused).
    let both = with(start("news", &tampered, "d"), json!({"token": "whatever"}));
    assert_eq!(reason(&app.decide(both).await), "link_invalid");
}

#[tokio::test]
async fn the_window_gates_the_start_only() {
    let app = app_with_key("k1", "playgate", 0).await;
    let query = link(&app, json!({"stream": "news", "ttl": 2})).await;
    let started = app.decide(start("news", &query, "player")).await;
    assert_eq!(reason(&started), "ok");
    tokio::time::sleep(Duration::from_millis(3200)).await;
    // The player that started before the end goes on with the same link...
    let refresh = with(start("news", &query, "player"), json!({"event": "refresh"}));
    let going_on = app.decide(refresh).await;
    assert_eq!(reason(&going_on), "ok");
    assert_eq!(going_on["session_id"], started["session_id"]);
    // ...a new start with it is refused.
    assert_eq!(
        reason(&app.decide(start("news", &query, "late")).await),
        "link_expired"
    );
}

#[tokio::test]
async fn a_users_link_goes_through_every_check_and_limit_of_the_user() {
    let app = app_with_key("k1", "playgate", 60).await;
    app.create(user("alice").limit(1)).await;
    let query = link(&app, json!({"stream": "news", "user": "alice"})).await;
    let first = app.decide(start("news", &query, "tv")).await;
    assert_eq!(
        (reason(&first), first["user"].as_str()),
        ("ok", Some("alice"))
    );
    // Another device with the same link: alice's limit.
    let other = with(
        start("news", &query, "phone"),
        json!({"user_agent": "phone"}),
    );
    assert_eq!(reason(&app.decide(other).await), "session_limit");
    app.admin(
        "PATCH",
        "/api/v1/users/alice",
        Some(json!({"enabled": false})),
        200,
    )
    .await;
    assert_eq!(
        reason(&app.decide(start("news", &query, "again")).await),
        "user_disabled"
    );
    // A link for nobody playgate knows cannot be issued.
    let nobody = app
        .api(
            "POST",
            "/api/v1/links",
            ADMIN,
            Some(json!({"stream": "news", "user": "nobody"})),
        )
        .await;
    assert_eq!(
        (nobody.status, &nobody.body["field"]),
        (422, &json!("user"))
    );
}

#[tokio::test]
async fn a_once_link_starts_exactly_one_session_across_two_replicas() {
    let a = app_with_key("k1", "playgate", 60).await;
    let b = spawn_on(a.db.clone(), |_| {}).await;
    let query = link(&a, json!({"stream": "news", "once": true})).await;
    let starts = (0..10).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        app.decide(start("news", &query, &format!("p{i}")))
    });
    let decisions = join_all(starts).await;
    let reasons: Vec<&str> = decisions.iter().map(reason).collect();
    assert_eq!(
        reasons.iter().filter(|r| **r == "ok").count(),
        1,
        "{reasons:?}"
    );
    assert_eq!(reasons.iter().filter(|r| **r == "link_used").count(), 9);
    // The one admitted goes on with the same link.
    let admitted = reasons.iter().position(|r| *r == "ok").unwrap();
    let refresh = with(
        start("news", &query, &format!("p{admitted}")),
        json!({"event": "refresh"}),
    );
    assert_eq!(reason(&a.decide(refresh).await), "ok");
}

#[tokio::test]
async fn a_disabled_key_refuses_its_links_on_another_replica_within_a_second() {
    let a = app_with_key("k1", "playgate", 60).await;
    let b = spawn_on(a.db.clone(), |_| {}).await;
    let query = link(&a, json!({"stream": "news"})).await;
    assert_eq!(reason(&b.decide(start("news", &query, "x")).await), "ok");
    a.admin(
        "PATCH",
        "/api/v1/signing-keys/k1",
        Some(json!({"enabled": false})),
        200,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let decision = b.decide(start("news", &query, "y")).await;
        if reason(&decision) == "link_invalid" {
            break;
        }
        assert!(Instant::now() < deadline, "still {decision}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn hls_behind_forward_auth_plays_with_a_link_and_its_segments_follow() {
    let app = app_with_key("k1", "playgate", 60).await;
    let query = link(&app, json!({"stream": "live/news"})).await;
    let playlist = app
        .hls_get(&format!("/live/news/index.m3u8?{query}"), "192.0.2.7")
        .await;
    assert_eq!(playlist.status, 200);
    let cookie = playlist
        .header("set-cookie")
        .expect("the link's start sets the viewer cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    // The segment's relative URL drops the link; the cookie carries on.
    let segment = app
        .hook_get(
            "/hook/forward-auth",
            &[
                ("X-Original-URI", "/live/news/seg-1.ts"),
                ("X-Real-IP", "192.0.2.7"),
                ("User-Agent", "hls.js/1.5"),
                ("Cookie", &cookie),
            ],
        )
        .await;
    assert_eq!(segment.status, 200);
    // Another stream's folder is no part of it.
    let other = app
        .hls_get(&format!("/live/sport/index.m3u8?{query}"), "192.0.2.7")
        .await;
    assert_eq!(other.status, 403);
}

#[tokio::test]
async fn an_nginx_secure_link_signs_the_path_and_the_address() {
    let app = app_with_key("edge", "nginx", 60).await;
    let query = link(
        &app,
        json!({"stream": "live/news", "uri": "/live/news/index.m3u8", "ip": "192.0.2.7", "key": "edge"}),
    )
    .await;
    assert!(
        query.starts_with("md5=") && query.contains("&expires="),
        "{query}"
    );
    let uri = format!("/live/news/index.m3u8?{query}");
    assert_eq!(app.hls_get(&uri, "192.0.2.7").await.status, 200);
    // The address is inside the hash: another one is an invalid link.
    assert_eq!(app.hls_get(&uri, "192.0.2.8").await.status, 403);
    // The default template signs $remote_addr: a link needs an address.
    let without_ip = app
        .api(
            "POST",
            "/api/v1/links",
            ADMIN,
            Some(json!({"stream": "live/news", "key": "edge"})),
        )
        .await;
    assert_eq!(
        (without_ip.status, &without_ip.body["field"]),
        (422, &json!("ip"))
    );
}

#[tokio::test]
async fn issuing_links_is_for_admins_and_validates_what_it_signs() {
    let app = app_with_key("k1", "playgate", 60).await;
    make_key(&app, "flu", "securetoken", json!({})).await;
    for (body, field) in [
        (json!({"stream": ""}), "stream"),
        (json!({"stream": "news", "ttl": 0}), "ttl"),
        (json!({"stream": "news", "ttl": 604801}), "ttl"),
        (
            json!({"stream": "news", "ttl": 60, "expires_at": "2030-01-01T00:00:00Z"}),
            "ttl",
        ),
        (
            json!({"stream": "news", "expires_at": "2001-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (json!({"stream": "news", "key": "missing"}), "key"),
        (
            json!({"stream": "news", "key": "flu", "once": true}),
            "once",
        ),
        (json!({"stream": "news", "ip": "not an address"}), "ip"),
    ] {
        let answer = app
            .api("POST", "/api/v1/links", ADMIN, Some(body.clone()))
            .await;
        assert_eq!(
            (answer.status, answer.body["field"].as_str()),
            (422, Some(field)),
            "{body}"
        );
    }
    let observer = app
        .api(
            "POST",
            "/api/v1/links",
            OBSERVER,
            Some(json!({"stream": "news"})),
        )
        .await;
    assert_eq!(observer.status, 403);
    // Issued links are audited, without the link.
    let query = link(
        &app,
        json!({"stream": "news", "key": "flu", "ip": "192.0.2.1"}),
    )
    .await;
    assert!(query.starts_with("token="), "{query}");
    let audit = app
        .admin("GET", "/api/v1/audit?object_type=link", None, 200)
        .await;
    let text = audit.to_string();
    assert!(text.contains("\"issue\""), "{text}");
    assert!(!text.contains(&query["token=".len()..]), "{text}");
}
