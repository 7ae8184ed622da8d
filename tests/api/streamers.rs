//! Streamers and drop calls (issue 21; SPEC §12): the registry's admin API,
//! and the call each vendor's control API gets when playgate ends a
//! session itself, against small fake control APIs written from the
//! vendors' documented endpoints:
//! - nginx-rtmp `GET /drop/client?app=&name=&clientid=`, answering the
//!   number of connections dropped (ngx_rtmp_control_module.c,
//!   `ngx_rtmp_control_drop`);
//! - SRS `DELETE /api/v1/clients/{id}`, answering 200 with a JSON `code`
//!   (0, or 2049 ERROR_RTMP_CLIENT_NOT_FOUND: srs_app_http_api.cpp,
//!   `SrsGoApiClients::serve_http`);
//! - MediaMTX `POST /v3/rtspsessions/kick/{id}` (and `rtspssessions`),
//!   404 for an unknown id (MediaMTX's API reference, apidocs/openapi.yaml);
//! - Cesbo Astra `POST /control/` `{"cmd": "close-session", "id": …}`
//!   (astra/api/session.md);
//! - Flussonic `DELETE /streamer/api/v3/sessions/{id}` (Flussonic Media
//!   Server API, streaming sessions).
//!
//! Hooks are called from 127.0.0.1 (the test), so the streamers are
//! registered with `127.0.0.1/32`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};

use crate::helpers::*;

/// One request the fake control API received.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) path: String,
    query: String,
    authorization: Option<String>,
    body: String,
}

#[derive(Default)]
struct Script {
    seen: Vec<Seen>,
    /// Answers to give in turn; then `default`.
    next: VecDeque<(u16, String)>,
    default: (u16, String),
}

pub(crate) struct FakeApi {
    pub(crate) url: String,
    script: Arc<Mutex<Script>>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

async fn answer(
    request: HttpRequest,
    body: web::Bytes,
    script: web::Data<Mutex<Script>>,
) -> HttpResponse {
    let mut script = script.lock().unwrap();
    script.seen.push(Seen {
        method: request.method().to_string(),
        path: request.path().to_string(),
        query: request.query_string().to_string(),
        authorization: request
            .headers()
            .get("authorization")
            .map(|value| value.to_str().unwrap().to_string()),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let (status, body) = script
        .next
        .pop_front()
        .unwrap_or_else(|| script.default.clone());
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).body(body)
}

/// A control API answering `default` to everything, after `first` in turn.
pub(crate) fn fake_api(first: &[(u16, &str)], default: (u16, &str)) -> FakeApi {
    let script = Arc::new(Mutex::new(Script {
        seen: Vec::new(),
        next: first.iter().map(|(s, b)| (*s, b.to_string())).collect(),
        default: (default.0, default.1.to_string()),
    }));
    let data = web::Data::from(Arc::clone(&script));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .default_service(web::to(answer))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let port = server.addrs()[0].port();
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    FakeApi {
        url: format!("http://127.0.0.1:{port}"),
        script,
        handle,
    }
}

impl FakeApi {
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.script.lock().unwrap().seen.clone()
    }

    /// Waits until `count` requests have arrived (or 10 s have passed).
    pub(crate) async fn wait_for(&self, count: usize) -> Vec<Seen> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.seen().len() < count && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.seen()
    }
}

/// `Basic` of `edge:s3cret`.
const EDGE_BASIC: &str = "Basic ZWRnZTpzM2NyZXQ=";

async fn register(app: &TestApp, name: &str, kind: &str, url: &str) -> Value {
    app.admin(
        "POST",
        "/api/v1/streamers",
        Some(
            json!({"name": name, "kind": kind, "control_url": url, "username": "edge",
                    "password": "s3cret", "addresses": ["127.0.0.1"]}),
        ),
        201,
    )
    .await
}

fn srs_play(client_id: &str, stream: &str, token: &str) -> String {
    format!(
        r#"{{"server_id":"vid-0xk989d","action":"on_play","client_id":"{client_id}","ip":"192.0.2.8",
            "vhost":"__defaultVhost__","app":"live","stream":"{stream}","tcUrl":"rtmp://127.0.0.1/live",
            "param":"?token={token}","pageUrl":""}}"#
    )
}

pub(crate) async fn srs_plays(app: &TestApp, client_id: &str, stream: &str, token: &str) {
    let answer = app
        .hook_post_json("/hook/srs", &srs_play(client_id, stream, token))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

/// The id of the active session of this dialect on this stream.
pub(crate) async fn session_of(app: &TestApp, dialect: &str, stream: &str) -> String {
    let row = app
        .db()
        .await
        .query_one(
            "SELECT id::text FROM sessions WHERE dialect = $1 AND stream = $2 AND ended_at IS NULL",
            &[&dialect, &stream],
        )
        .await
        .unwrap();
    row.get(0)
}

async fn kick(app: &TestApp, session: &str) {
    app.admin("DELETE", &format!("/api/v1/sessions/{session}"), None, 204)
        .await;
}

/// The streamer's drop calls, newest first, once the newest is no longer pending.
async fn settled_calls(app: &TestApp, streamer: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let calls = app
            .admin(
                "GET",
                &format!("/api/v1/streamers/{streamer}/calls"),
                None,
                200,
            )
            .await;
        let items = calls["items"].as_array().unwrap().clone();
        let pending = items.iter().any(|call| call["status"] == "pending");
        if (!items.is_empty() && !pending) || Instant::now() > deadline {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn metric(text: &str, kind: &str, result: &str) -> f64 {
    let line = format!("playgate_streamer_calls_total{{kind=\"{kind}\",result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&line))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn the_registry_validates_hides_the_password_and_audits() {
    let app = spawn_admin_app().await;
    let created = register(&app, "edge-1", "srs", "http://10.0.0.6:1985/").await;
    assert_eq!(created["name"], "edge-1");
    assert_eq!(created["control_url"], "http://10.0.0.6:1985");
    assert_eq!(created["addresses"], json!(["127.0.0.1/32"]));
    assert_eq!(created["password_set"], true);
    assert!(created.get("password").is_none(), "{created}");

    for (body, field) in [
        (
            json!({"kind": "srs", "control_url": "http://x", "addresses": ["10.1.0.0/16"]}),
            "name",
        ),
        (
            json!({"name": "e2", "kind": "wowza", "control_url": "http://x", "addresses": ["10.1.0.0/16"]}),
            "kind",
        ),
        (
            json!({"name": "e2", "kind": "srs", "control_url": "ftp://x", "addresses": ["10.1.0.0/16"]}),
            "control_url",
        ),
        (
            json!({"name": "e2", "kind": "srs", "control_url": "http://u:p@x", "addresses": ["10.1.0.0/16"]}),
            "control_url",
        ),
        (
            json!({"name": "e2", "kind": "srs", "control_url": "http://x", "addresses": []}),
            "addresses",
        ),
        (
            json!({"name": "e2", "kind": "srs", "control_url": "http://x", "addresses": ["10.1.0.0/33"]}),
            "addresses",
        ),
        (
            json!({"name": "e/2", "kind": "srs", "control_url": "http://x", "addresses": ["10.1.0.0/16"]}),
            "name",
        ),
    ] {
        let answer = app
            .api("POST", "/api/v1/streamers", ADMIN, Some(body.clone()))
            .await;
        assert_eq!(answer.status, 422, "{body}: {}", answer.body);
        assert_eq!(answer.body["field"], field, "{body}: {}", answer.body);
    }
    // One network, one streamer; one name, one streamer.
    let taken = app
        .api(
            "POST",
            "/api/v1/streamers",
            ADMIN,
            Some(
                json!({"name": "edge-2", "kind": "srs", "control_url": "http://x",
                        "addresses": ["10.9.0.0/16", "127.0.0.1/32"]}),
            ),
        )
        .await;
    assert_eq!(taken.status, 409, "{}", taken.body);
    assert!(
        taken.body["error"].as_str().unwrap().contains("edge-1"),
        "{}",
        taken.body
    );
    let twice = app
        .api(
            "POST",
            "/api/v1/streamers",
            ADMIN,
            Some(
                json!({"name": "edge-1", "kind": "srs", "control_url": "http://x",
                        "addresses": ["10.9.0.0/16"]}),
            ),
        )
        .await;
    assert_eq!(twice.status, 409, "{}", twice.body);
    // Observers read, only admins write.
    let listed = app.api("GET", "/api/v1/streamers", OBSERVER, None).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["total"], 1);
    let refused = app
        .api(
            "PATCH",
            "/api/v1/streamers/edge-1",
            OBSERVER,
            Some(json!({"comment": "x"})),
        )
        .await;
    assert_eq!(refused.status, 403);

    let patched = app
        .admin(
            "PATCH",
            "/api/v1/streamers/edge-1",
            Some(json!({"addresses": ["10.2.0.0/16", "192.0.2.0/24"], "comment": "dc 2"})),
            200,
        )
        .await;
    assert_eq!(patched["addresses"], json!(["10.2.0.0/16", "192.0.2.0/24"]));
    assert_eq!(patched["password_set"], true, "kept when not given");
    let renamed = app
        .api(
            "PATCH",
            "/api/v1/streamers/edge-1",
            ADMIN,
            Some(json!({"name": "other"})),
        )
        .await;
    assert_eq!(renamed.status, 422);
    let cleared = app
        .admin(
            "PATCH",
            "/api/v1/streamers/edge-1",
            Some(json!({"password": ""})),
            200,
        )
        .await;
    assert_eq!(cleared["password_set"], false);

    let audit = app
        .admin("GET", "/api/v1/audit", None, 200)
        .await
        .to_string();
    assert!(audit.contains("\"streamer\""), "{audit}");
    assert!(
        !audit.contains("s3cret"),
        "the password is never audited: {audit}"
    );
    app.admin("DELETE", "/api/v1/streamers/edge-1", None, 204)
        .await;
    app.admin("GET", "/api/v1/streamers/edge-1", None, 404)
        .await;
}

#[tokio::test]
async fn a_kicked_srs_viewer_is_dropped_with_the_credentials_and_retried_after_a_500() {
    let app = spawn_admin_app().await;
    app.create(user("alice").token("t1")).await;
    let srs = fake_api(&[(500, "busy")], (200, r#"{"code":0}"#));
    register(&app, "srs-1", "srs", &srs.url).await;
    srs_plays(&app, "3c9e7x0h", "livestream", "t1").await;
    let session = session_of(&app, "srs", "live/livestream").await;

    kick(&app, &session).await;
    let seen = srs.wait_for(2).await;
    assert_eq!(seen.len(), 2, "one failed attempt, one retry: {seen:?}");
    for request in &seen {
        assert_eq!(request.method, "DELETE");
        assert_eq!(request.path, "/api/v1/clients/3c9e7x0h");
        assert_eq!(request.authorization.as_deref(), Some(EDGE_BASIC));
    }
    let calls = settled_calls(&app, "srs-1").await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["session_id"], session);
    assert_eq!(calls[0]["target"], "3c9e7x0h");
    assert_eq!(calls[0]["end_reason"], "kicked");
    assert_eq!(calls[0]["status"], "done");
    assert_eq!(calls[0]["attempts"], 2);
    let metrics = app.metrics_text().await;
    assert_eq!(metric(&metrics, "srs", "error"), 1.0, "{metrics}");
    assert_eq!(metric(&metrics, "srs", "dropped"), 1.0);

    // SRS no longer knowing the client (code 2049) is done, not retried.
    let gone = fake_api(&[], (200, r#"{"code":2049}"#));
    app.admin(
        "PATCH",
        "/api/v1/streamers/srs-1",
        Some(json!({"control_url": gone.url})),
        200,
    )
    .await;
    srs_plays(&app, "77", "other", "t1").await;
    kick(&app, &session_of(&app, "srs", "live/other").await).await;
    assert_eq!(gone.wait_for(1).await.len(), 1);
    let calls = settled_calls(&app, "srs-1").await;
    assert_eq!(calls[0]["target"], "77");
    assert_eq!(calls[0]["status"], "done");
    assert_eq!(calls[0]["attempts"], 1);
    assert!(
        calls[0]["result"].as_str().unwrap().contains("gone"),
        "{calls:?}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(gone.seen().len(), 1, "not retried");
}

#[tokio::test]
async fn nginx_rtmp_mediamtx_astra_and_flussonic_get_their_calls() {
    let app = spawn_admin_app().await;
    app.create(user("alice").token("t1").password("pw")).await;

    // nginx-rtmp: clientid 17 playing live/news.
    let nginx = fake_api(&[], (200, "1"));
    register(
        &app,
        "rtmp-1",
        "nginx-rtmp",
        &format!("{}/control", nginx.url),
    )
    .await;
    let play = app
        .hook_get(
            "/hook/nginx-rtmp?call=play&app=live&name=news&addr=192.0.2.9&clientid=17&token=t1",
            &[],
        )
        .await;
    assert_eq!(play.status, 200);
    kick(&app, &session_of(&app, "nginx-rtmp", "live/news").await).await;
    let seen = nginx.wait_for(1).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("GET", "/control/drop/client")
    );
    assert_eq!(seen[0].query, "app=live&name=news&clientid=17");
    assert_eq!(seen[0].authorization.as_deref(), Some(EDGE_BASIC));
    assert_eq!(settled_calls(&app, "rtmp-1").await[0]["status"], "done");
    app.admin("DELETE", "/api/v1/streamers/rtmp-1", None, 204)
        .await;

    // MediaMTX: an RTSP session; not one of `rtspsessions` (404), it is
    // tried as `rtspssessions`.
    let mediamtx = fake_api(&[(404, r#"{"error":"session not found"}"#)], (200, ""));
    register(&app, "mtx-1", "mediamtx", &mediamtx.url).await;
    let auth = r#"{"user":"alice","password":"pw","token":"","ip":"192.0.2.4","action":"read",
        "path":"cam1","protocol":"rtsp","id":"9f3b1d7e-1c1a-4a7e-9a55-0c7d0b2f0001","query":""}"#;
    assert_eq!(app.hook_post_json("/hook/mediamtx", auth).await.status, 200);
    kick(&app, &session_of(&app, "mediamtx", "cam1").await).await;
    let seen = mediamtx.wait_for(2).await;
    let posts: Vec<(&str, &str)> = seen
        .iter()
        .map(|s| (s.method.as_str(), s.path.as_str()))
        .collect();
    assert_eq!(
        posts,
        [
            (
                "POST",
                "/v3/rtspsessions/kick/9f3b1d7e-1c1a-4a7e-9a55-0c7d0b2f0001"
            ),
            (
                "POST",
                "/v3/rtspssessions/kick/9f3b1d7e-1c1a-4a7e-9a55-0c7d0b2f0001"
            ),
        ]
    );
    assert_eq!(settled_calls(&app, "mtx-1").await[0]["status"], "done");
    app.admin("DELETE", "/api/v1/streamers/mtx-1", None, 204)
        .await;

    // Astra: close-session with X-Session-ID as sent.
    let astra = fake_api(&[], (200, r#"{"status":true}"#));
    register(&app, "astra-1", "astra", &astra.url).await;
    let headers = [
        ("X-Session-ID", "88"),
        ("X-Channel-ID", "a001"),
        ("X-Real-IP", "192.0.2.10"),
        ("X-Real-Path", "/play/a001/index.m3u8"),
    ];
    assert_eq!(
        app.hook_get("/hook/astra?token=t1", &headers).await.status,
        200
    );
    kick(&app, &session_of(&app, "astra", "a001").await).await;
    let seen = astra.wait_for(1).await;
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("POST", "/control/")
    );
    let body: Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(body, json!({"cmd": "close-session", "id": "88"}));
    assert_eq!(settled_calls(&app, "astra-1").await[0]["status"], "done");
    app.admin("DELETE", "/api/v1/streamers/astra-1", None, 204)
        .await;

    // Flussonic: the session_id of its auth backend call.
    let flussonic = fake_api(&[], (204, ""));
    register(&app, "flu-1", "flussonic", &flussonic.url).await;
    let query = "/hook/flussonic?name=sport%2Fespn&proto=hls&ip=192.0.2.3&request_type=new_session\
                 &session_id=5f2a6e84-0001&token=t1";
    assert_eq!(app.hook_get(query, &[]).await.status, 200);
    kick(&app, &session_of(&app, "flussonic", "sport/espn").await).await;
    let seen = flussonic.wait_for(1).await;
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("DELETE", "/streamer/api/v3/sessions/5f2a6e84-0001")
    );
    assert_eq!(settled_calls(&app, "flu-1").await[0]["status"], "done");
}

#[tokio::test]
async fn a_call_is_given_up_once_its_retry_window_has_passed() {
    let app = spawn_app_with(|settings| {
        settings.streamer_call_retry = Duration::from_secs(3);
    })
    .await;
    seed_admins(&app).await;
    app.create(user("alice").token("t1")).await;
    let srs = fake_api(&[], (500, "down"));
    register(&app, "srs-1", "srs", &srs.url).await;
    srs_plays(&app, "41", "livestream", "t1").await;
    kick(&app, &session_of(&app, "srs", "live/livestream").await).await;

    // 1 s, then 2 s apart: the third attempt would come past 3 s.
    let calls = settled_calls(&app, "srs-1").await;
    assert_eq!(calls[0]["status"], "failed", "{calls:?}");
    assert_eq!(calls[0]["attempts"], 2, "{calls:?}");
    assert!(calls[0]["result"].as_str().unwrap().contains("HTTP 500"));
    assert_eq!(srs.seen().len(), 2);
    let metrics = app.metrics_text().await;
    assert_eq!(metric(&metrics, "srs", "given_up"), 1.0, "{metrics}");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(srs.seen().len(), 2, "nothing after giving up");
}

#[tokio::test]
async fn account_changes_end_the_sessions_they_bar_and_drop_them() {
    let app = spawn_admin_app().await;
    app.package("sports", &["live/sport*"]).await;
    app.package("news", &["live/news*"]).await;
    app.create(user("dis").token("t-dis")).await;
    app.create(user("tok").token("t-keep")).await;
    app.create(user("pkg").token("t-pkg").packages(&["sports", "news"]))
        .await;
    let srs = fake_api(&[], (200, r#"{"code":0}"#));
    register(&app, "srs-1", "srs", &srs.url).await;

    // Disabled while watching.
    srs_plays(&app, "c-dis", "stream", "t-dis").await;
    app.admin(
        "PATCH",
        "/api/v1/users/dis",
        Some(json!({"enabled": false})),
        200,
    )
    .await;
    // One of two tokens revoked: only its session ends.
    let gone = app
        .admin(
            "POST",
            "/api/v1/users/tok/tokens",
            Some(json!({"token": "t-gone", "label": "to revoke"})),
            201,
        )
        .await["id"]
        .clone();
    srs_plays(&app, "c-gone", "a", "t-gone").await;
    srs_plays(&app, "c-keep", "b", "t-keep").await;
    assert_eq!(open_sessions(&app, "tok").await, 2);
    app.admin(
        "DELETE",
        &format!("/api/v1/users/tok/tokens/{gone}"),
        None,
        204,
    )
    .await;
    assert_eq!(
        open_sessions(&app, "tok").await,
        1,
        "the other token's session goes on"
    );
    // A package taken away: its streams' sessions end, the others' go on.
    srs_plays(&app, "c-sport", "sport1", "t-pkg").await;
    srs_plays(&app, "c-news", "news1", "t-pkg").await;
    app.admin(
        "PATCH",
        "/api/v1/users/pkg",
        Some(json!({"packages": ["news"]})),
        200,
    )
    .await;

    let ended = ended_sessions(&app).await;
    let streams: Vec<&str> = ended.iter().map(|(s, _)| s.as_str()).collect();
    assert!(streams.contains(&"live/stream"), "{ended:?}");
    assert!(streams.contains(&"live/sport1"), "{ended:?}");
    assert!(!streams.contains(&"live/news1"), "{ended:?}");
    assert!(
        ended.iter().all(|(_, reason)| reason == "kicked"),
        "{ended:?}"
    );
    let seen = srs.wait_for(3).await;
    let mut targets: Vec<&str> = seen
        .iter()
        .map(|s| s.path.trim_start_matches("/api/v1/clients/"))
        .collect();
    targets.sort();
    assert_eq!(targets, ["c-dis", "c-gone", "c-sport"]);
    // Counted by the replica whose admin write ended them.
    let metrics = parse_metrics(&app.metrics_text().await);
    assert_eq!(
        metrics.get("playgate_sessions_ended_total{reason=\"kicked\"}"),
        Some(&3.0)
    );
    // The disabled user's refresh still says why.
    let again = app
        .hook_post_json("/hook/srs", &srs_play("c-dis", "stream", "t-dis"))
        .await;
    assert_eq!(again.json()["reason"], "user_disabled");
}

/// A replica whose policy view has not heard of a change yet (B, whose
/// listener's answers are held back, as while a notification is on its
/// way) admits what the change bars: a disabled user, a deleted token, a
/// package taken away. The change's own triggers found nothing to end;
/// the sweeper ends these by the database's state and the streamer is told
/// to drop them, while B still does not know.
#[tokio::test]
async fn admissions_by_a_replica_that_has_not_heard_of_a_change_are_ended_and_dropped() {
    let quick = Duration::from_millis(200);
    let a = spawn_app_with(|settings| settings.sweep_interval = quick).await;
    seed_admins(&a).await;
    let relay = HeldRelay::to_postgres().await;
    let through_relay = database_settings(&relay.url_of(&a.db), None, None, None).listen;
    let b = spawn_on(a.db.clone(), |settings| {
        settings.database.listen = through_relay;
        settings.sweep_interval = quick;
    })
    .await;
    a.package("sports", &["live/sport*"]).await;
    a.package("news", &["live/news*"]).await;
    a.create(user("dis").token("t-dis")).await;
    a.create(user("tok").token("t-keep")).await;
    a.create(user("pkg").token("t-pkg").packages(&["sports", "news"]))
        .await;
    let gone = a
        .admin(
            "POST",
            "/api/v1/users/tok/tokens",
            Some(json!({"token": "t-gone"})),
            201,
        )
        .await["id"]
        .clone();
    let srs = fake_api(&[], (200, r#"{"code":0}"#));
    register(&a, "srs-1", "srs", &srs.url).await;
    b.reload().await;

    relay.hold();
    a.admin(
        "PATCH",
        "/api/v1/users/dis",
        Some(json!({"enabled": false})),
        200,
    )
    .await;
    a.admin(
        "DELETE",
        &format!("/api/v1/users/tok/tokens/{gone}"),
        None,
        204,
    )
    .await;
    a.admin(
        "PATCH",
        "/api/v1/users/pkg",
        Some(json!({"packages": ["news"]})),
        200,
    )
    .await;
    srs_plays(&b, "c-dis", "stream", "t-dis").await;
    srs_plays(&b, "c-gone", "a", "t-gone").await;
    srs_plays(&b, "c-keep", "b", "t-keep").await;
    srs_plays(&b, "c-sport", "sport1", "t-pkg").await;
    srs_plays(&b, "c-news", "news1", "t-pkg").await;
    // What a stale view does: srs_plays asserts each play was allowed
    // (SRS is answered 403 on a denial). The sweeper, every 200 ms, may
    // already be ending them, so no count is taken here.
    let open = |login: &'static str| {
        let a = &a;
        async move { open_sessions(a, login).await }
    };
    let seen = srs.wait_for(3).await;
    let mut dropped: Vec<&str> = seen
        .iter()
        .map(|s| s.path.trim_start_matches("/api/v1/clients/"))
        .collect();
    dropped.sort();
    assert_eq!(dropped, ["c-dis", "c-gone", "c-sport"]);
    // The sessions the database still allows go on, sweep after sweep.
    tokio::time::sleep(quick * 4).await;
    assert_eq!(
        (open("dis").await, open("tok").await, open("pkg").await),
        (0, 1, 1)
    );
    assert_eq!(srs.seen().len(), 3);
    let ended = ended_sessions(&a).await;
    let kicked = |stream: &str| (stream.to_string(), "kicked".to_string());
    assert_eq!(
        ended,
        [
            kicked("live/a"),
            kicked("live/sport1"),
            kicked("live/stream")
        ]
    );
    relay.release();
}

/// (stream, end reason) of every ended session, by stream.
async fn ended_sessions(app: &TestApp) -> Vec<(String, String)> {
    app.db()
        .await
        .query(
            "SELECT stream, end_reason FROM session_log WHERE ended_at IS NOT NULL ORDER BY stream",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

async fn open_sessions(app: &TestApp, login: &str) -> i64 {
    app.db()
        .await
        .query_one(
            "SELECT count(*) FROM sessions WHERE login = $1 AND ended_at IS NULL",
            &[&login],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn an_expiry_that_passes_ends_the_sessions_at_the_next_sweep() {
    let app = spawn_app_with(|settings| settings.sweep_interval = Duration::from_secs(1)).await;
    seed_admins(&app).await;
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    app.create(user("brief").token("t-brief").expires_at(&soon))
        .await;
    let srs = fake_api(&[], (200, r#"{"code":0}"#));
    register(&app, "srs-1", "srs", &srs.url).await;
    srs_plays(&app, "c-brief", "stream", "t-brief").await;
    let seen = srs.wait_for(1).await;
    assert_eq!(seen.len(), 1, "dropped once the account expired");
    assert_eq!(seen[0].path, "/api/v1/clients/c-brief");
    assert_eq!(
        app.sessions_of_dialect("srs").await,
        vec![(Some("brief".into()), true, Some("kicked".into()))]
    );
}

#[tokio::test]
async fn zapping_drops_the_replaced_channel() {
    let app = spawn_admin_app().await;
    app.create(user("zap").token("t-zap").limit(1)).await;
    let srs = fake_api(&[], (200, r#"{"code":0}"#));
    register(&app, "srs-1", "srs", &srs.url).await;
    // The same device (client IP, no user agent) switches channels.
    srs_plays(&app, "c-ch1", "ch1", "t-zap").await;
    srs_plays(&app, "c-ch2", "ch2", "t-zap").await;
    let seen = srs.wait_for(1).await;
    assert_eq!(seen[0].path, "/api/v1/clients/c-ch1");
    assert_eq!(
        settled_calls(&app, "srs-1").await[0]["end_reason"],
        "replaced"
    );
}

#[tokio::test]
async fn kick_oldest_drops_the_oldest() {
    let app = spawn_app_with(|settings| {
        settings.limit_policy = playgate::domain::LimitPolicy::KickOldest;
    })
    .await;
    seed_admins(&app).await;
    app.create(user("two").token("t-two").limit(1)).await;
    let srs = fake_api(&[], (200, r#"{"code":0}"#));
    register(&app, "srs-1", "srs", &srs.url).await;
    srs_plays(&app, "c-first", "same", "t-two").await;
    // Another device: from another client address.
    let second = srs_play("c-second", "same", "t-two").replace("192.0.2.8", "192.0.2.99");
    assert_eq!(app.hook_post_json("/hook/srs", &second).await.status, 200);
    let seen = srs.wait_for(1).await;
    assert_eq!(seen[0].path, "/api/v1/clients/c-first");
    assert_eq!(settled_calls(&app, "srs-1").await[0]["end_reason"], "limit");
}

#[tokio::test]
async fn only_sessions_of_a_registered_streamer_with_an_id_are_dropped_once() {
    let db = TestDb::new();
    let app = spawn_on(Arc::clone(&db), |_| {}).await;
    let other_replica = spawn_on(db, |_| {}).await;
    seed_admins(&app).await;
    app.create(user("alice").token("t1")).await;
    let srs = fake_api(&[], (200, r#"{"code":0}"#));
    // Hooks from elsewhere only: nothing of 127.0.0.1 is this streamer's.
    app.admin(
        "POST",
        "/api/v1/streamers",
        Some(json!({"name": "far", "kind": "srs", "control_url": srs.url,
                    "addresses": ["10.0.0.0/8"]})),
        201,
    )
    .await;
    srs_plays(&app, "c-1", "one", "t1").await;
    kick(&app, &session_of(&app, "srs", "live/one").await).await;
    // /hook/decide has no control API.
    app.decide(with(play("tv/1", "192.0.2.1"), json!({"token": "t1"})))
        .await;
    kick(&app, &session_of(&app, "decide", "tv/1").await).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(srs.seen().is_empty(), "{:?}", srs.seen());

    // Now registered for this address (the most specific network wins);
    // both replicas look for due calls, one makes each.
    app.admin(
        "POST",
        "/api/v1/streamers",
        Some(
            json!({"name": "near", "kind": "srs", "control_url": srs.url,
                    "addresses": ["127.0.0.0/24"]}),
        ),
        201,
    )
    .await;
    for n in 0..5 {
        let client = format!("c-n{n}");
        let stream = format!("n{n}");
        srs_plays(&app, &client, &stream, "t1").await;
        kick(
            &other_replica,
            &session_of(&app, "srs", &format!("live/{stream}")).await,
        )
        .await;
    }
    let seen = srs.wait_for(5).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(srs.seen().len(), 5, "each call made once: {seen:?}");
    assert!(app
        .admin("GET", "/api/v1/streamers/far/calls", None, 200)
        .await["items"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn the_test_button_reports_whether_the_control_api_answers() {
    let app = spawn_admin_app().await;
    let srs = fake_api(&[(401, "")], (200, r#"{"code":0,"data":{"major":5}}"#));
    register(&app, "srs-1", "srs", &srs.url).await;
    let refused = app
        .admin("POST", "/api/v1/streamers/srs-1/test", None, 200)
        .await;
    assert_eq!(refused["ok"], false, "{refused}");
    assert!(refused["detail"].as_str().unwrap().contains("credentials"));
    let fine = app
        .admin("POST", "/api/v1/streamers/srs-1/test", None, 200)
        .await;
    assert_eq!(fine["ok"], true, "{fine}");
    let seen = srs.seen();
    assert_eq!(seen[1].path, "/api/v1/versions");
    assert_eq!(seen[1].method, "GET");

    // Nothing listens here.
    app.admin(
        "PATCH",
        "/api/v1/streamers/srs-1",
        Some(
            json!({"control_url": format!("http://127.0.0.1:{}", crate::e2e_support::free_port())}),
        ),
        200,
    )
    .await;
    let down = app
        .admin("POST", "/api/v1/streamers/srs-1/test", None, 200)
        .await;
    assert_eq!(down["ok"], false);
    assert!(
        down["detail"].as_str().unwrap().contains("connect"),
        "{down}"
    );
    app.admin("POST", "/api/v1/streamers/nope/test", None, 404)
        .await;
}

/// `?streamer=` takes a registered streamer's name (its networks' sessions)
/// as well as the address a session records; `?sort=` orders the list.
#[tokio::test]
async fn sessions_are_filtered_by_streamer_and_sorted() {
    let app = spawn_admin_app().await;
    for (login, token) in [("ann", "t-ann"), ("bea", "t-bea"), ("cid", "t-cid")] {
        app.create(user(login).token(token)).await;
    }
    app.admin(
        "POST",
        "/api/v1/streamers",
        Some(
            json!({"name": "edge-b", "kind": "srs", "control_url": "http://127.0.0.1:9",
                    "addresses": ["127.0.0.2/32"]}),
        ),
        201,
    )
    .await;
    // /hook/decide's `streamer` is what its caller says: ann and cid on
    // 127.0.0.1, bea on 127.0.0.2 (edge-b's network).
    for (token, session, bytes, streamer) in [
        ("t-ann", "s1", 5_000, "127.0.0.1"),
        ("t-bea", "s2", 7_000, "127.0.0.2"),
        ("t-cid", "s3", 9_000, "127.0.0.1"),
    ] {
        let stream = if token == "t-bea" { "kids" } else { "news" };
        app.decide(
            json!({"stream": stream, "ip": "192.0.2.1", "token": token, "session": session,
                          "bytes": bytes, "streamer": streamer}),
        )
        .await;
    }
    let users = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["user"].as_str().unwrap().to_string())
            .collect()
    };
    let by_name = app
        .admin("GET", "/api/v1/sessions?streamer=edge-b", None, 200)
        .await;
    assert_eq!(
        (users(&by_name), &by_name["total"]),
        (vec!["bea".to_string()], &json!(1))
    );
    let by_address = app
        .admin("GET", "/api/v1/sessions?streamer=127.0.0.1", None, 200)
        .await;
    assert_eq!(users(&by_address), ["ann", "cid"]);
    let most_bytes = app
        .admin("GET", "/api/v1/sessions?sort=-bytes", None, 200)
        .await;
    assert_eq!(users(&most_bytes), ["cid", "bea", "ann"]);
    let by_user = app
        .admin("GET", "/api/v1/sessions?sort=-user", None, 200)
        .await;
    assert_eq!(users(&by_user), ["cid", "bea", "ann"]);
    let by_stream = app
        .admin("GET", "/api/v1/sessions?sort=stream&limit=1", None, 200)
        .await;
    assert_eq!(
        (users(&by_stream), &by_stream["total"]),
        (vec!["bea".to_string()], &json!(3))
    );
    let bad = app
        .api("GET", "/api/v1/sessions?sort=price", ADMIN, None)
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert_eq!(bad.body["field"], "sort");
}
