//! Webhooks (SPEC §12, issue 21): the admin API, and deliveries to a real
//! receiver on 127.0.0.1 — session and limit events with the contract's
//! data, signatures checked by the official Standard Webhooks library
//! (PyPI `standardwebhooks`, tests/referees/verify_webhook.py, in the venv
//! of scripts/install-test-deps; skipped locally without it, a failure
//! under `CI=true`), retries with one `webhook-id`, at least once across
//! replicas, and decisions untouched by a dead receiver.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};

use crate::e2e_support::tools_or_skip;
use crate::helpers::*;

const VERIFY_WEBHOOK: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/referees/verify_webhook.py"
);
/// How long a test waits for a delivery (they take well under a second).
const PATIENCE: Duration = Duration::from_secs(20);

// ---- A receiver ----

#[derive(Clone, Copy, Debug)]
enum Reply {
    Status(u16),
    /// Never answers (until the receiver stops).
    Hang,
}

/// One request as the receiver got it.
#[derive(Clone, Debug)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    content_type: String,
    body: String,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
    fn event_type(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_string()
    }
}

/// An HTTP server on 127.0.0.1 that records every request and answers
/// with its script, then 200.
struct Receiver {
    url: String,
    log: Arc<Mutex<Vec<Received>>>,
    server: actix_web::dev::ServerHandle,
}

impl Receiver {
    fn start(script: Vec<Reply>) -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let (server_log, server_script) = (Arc::clone(&log), script);
        let server = HttpServer::new(move || {
            let (log, script) = (Arc::clone(&server_log), Arc::clone(&server_script));
            App::new().default_service(web::to(move |request: HttpRequest, body: web::Bytes| {
                let (log, script) = (Arc::clone(&log), Arc::clone(&script));
                async move {
                    let header = |name: &str| {
                        request
                            .headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string()
                    };
                    log.lock().unwrap().push(Received {
                        id: header("webhook-id"),
                        timestamp: header("webhook-timestamp"),
                        signature: header("webhook-signature"),
                        content_type: header("content-type"),
                        body: String::from_utf8_lossy(&body).into_owned(),
                    });
                    let reply = script
                        .lock()
                        .unwrap()
                        .pop_front()
                        .unwrap_or(Reply::Status(200));
                    match reply {
                        Reply::Status(code) => HttpResponse::build(
                            actix_web::http::StatusCode::from_u16(code).unwrap(),
                        )
                        .finish(),
                        Reply::Hang => {
                            tokio::time::sleep(Duration::from_secs(600)).await;
                            HttpResponse::Ok().finish()
                        }
                    }
                }
            }))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Receiver {
            url: format!("http://127.0.0.1:{port}/playgate-events"),
            log,
            server: handle,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until `count` requests have come; all of them.
    async fn wait_for(&self, count: usize) -> Vec<Received> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} deliveries arrived: {received:#?}",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.server.stop(false));
    }
}

// ---- Helpers ----

/// A webhook to `url` for `events`; (id, secret).
async fn create_webhook(app: &TestApp, url: &str, events: &[&str]) -> (i64, String) {
    let created = app
        .admin(
            "POST",
            "/api/v1/webhooks",
            Some(json!({"url": url, "events": events})),
            201,
        )
        .await;
    (
        created["id"].as_i64().unwrap(),
        created["secret"].as_str().unwrap().to_string(),
    )
}

async fn deliveries(app: &TestApp, webhook: i64) -> Value {
    app.admin(
        "GET",
        &format!("/api/v1/webhooks/{webhook}/deliveries"),
        None,
        200,
    )
    .await
}

/// The deliveries of a webhook once `count` attempts are no longer pending.
async fn settled(app: &TestApp, webhook: i64, count: usize) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let attempts = deliveries(app, webhook).await;
        let done = attempts["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|item| item["status"] != json!("pending"))
            .count();
        if done >= count {
            return attempts;
        }
        assert!(Instant::now() < deadline, "{attempts}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The counter once it reads `expected` (the recorder counts an attempt
/// just after writing it), or whatever it reads after 5 s.
async fn metric_when(app: &TestApp, result: &str, expected: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let value = webhook_metric(&app.metrics_text().await, result);
        if value == expected || Instant::now() > deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn webhook_metric(text: &str, result: &str) -> f64 {
    parse_metrics(text)
        .get(&format!(
            "playgate_webhook_deliveries_total{{result=\"{result}\"}}"
        ))
        .copied()
        .unwrap_or(0.0)
}

/// The venv's python with `standardwebhooks` (scripts/install-test-deps).
fn standardwebhooks_python(test: &str) -> Option<PathBuf> {
    tools_or_skip(test, || {
        let venv = std::env::var_os("REFEREES_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("target/referees-venv"));
        let python = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(venv)
            .join("bin/python");
        let imports = Command::new(&python)
            .args(["-c", "import standardwebhooks"])
            .output()
            .is_ok_and(|output| output.status.success());
        match imports {
            true => Ok(python),
            false => Err("standardwebhooks (PyPI, in target/referees-venv)"),
        }
    })
}

/// The library's verdict on a delivery: (exit code, output).
fn verify_with_library(python: &Path, secret: &str, received: &Received) -> (i32, String) {
    let input = json!({
        "secret": secret,
        "headers": {"webhook-id": received.id, "webhook-timestamp": received.timestamp,
                    "webhook-signature": received.signature},
        "body": received.body,
    });
    let mut child = Command::new(python)
        .arg(VERIFY_WEBHOOK)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run verify_webhook.py");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let mut text = String::from_utf8_lossy(&output.stdout).trim().to_string();
    text.push_str(String::from_utf8_lossy(&output.stderr).trim());
    (output.status.code().unwrap_or(-1), text)
}

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

// ---- The admin API ----

#[tokio::test]
async fn webhooks_are_managed_through_the_api() {
    let app = spawn_admin_app().await;
    let created = app
        .admin(
            "POST",
            "/api/v1/webhooks",
            Some(
                json!({"url": "http://127.0.0.1:1/billing", "enabled": false,
                        "events": ["session.ended", "session.started"], "comment": "billing"}),
            ),
            201,
        )
        .await;
    let id = created["id"].as_i64().unwrap();
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(
        secret.starts_with("whsec_") && secret.len() >= 6 + 32,
        "{secret}"
    );
    assert_eq!(
        created["events"],
        json!(["session.started", "session.ended"])
    );
    assert_eq!(created["enabled"], json!(false));
    assert_eq!(created["comment"], json!("billing"));

    // Never again the secret: not listed, not got, not audited.
    let listed = app.admin("GET", "/api/v1/webhooks", None, 200).await;
    assert_eq!(listed["total"], json!(1));
    assert_eq!(listed["items"][0]["id"], json!(id));
    let got = app
        .admin("GET", &format!("/api/v1/webhooks/{id}"), None, 200)
        .await;
    assert_eq!(
        keys(&got),
        [
            "comment",
            "created_at",
            "enabled",
            "events",
            "id",
            "updated_at",
            "url"
        ]
    );
    assert!(!listed.to_string().contains(&secret));

    // Observers read, and only read.
    let observed = app.api("GET", "/api/v1/webhooks", OBSERVER, None).await;
    assert_eq!(observed.status, 200);
    let refused = app
        .api(
            "POST",
            "/api/v1/webhooks",
            OBSERVER,
            Some(json!({"url": "http://127.0.0.1:1/", "events": ["session.started"]})),
        )
        .await;
    assert_eq!(refused.status, 403);
    let refused = app
        .api(
            "PATCH",
            &format!("/api/v1/webhooks/{id}"),
            OBSERVER,
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(refused.status, 403);
    let refused = app.api("GET", "/api/v1/webhooks", VIEWER, None).await;
    assert_eq!(refused.status, 403);

    let patched = app
        .admin(
            "PATCH",
            &format!("/api/v1/webhooks/{id}"),
            Some(
                json!({"url": "http://[::1]:1/crm", "events": ["limit.reached"],
                        "comment": null}),
            ),
            200,
        )
        .await;
    assert_eq!(patched["url"], json!("http://[::1]:1/crm"));
    assert_eq!(patched["events"], json!(["limit.reached"]));
    assert_eq!(patched["comment"], json!(""));
    assert_eq!(patched["enabled"], json!(false));
    for (body, field) in [
        (
            json!({"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
            Some("secret"),
        ),
        (json!({"events": []}), Some("events")),
        (json!({"events": ["session.paused"]}), Some("events")),
        (json!({"events": "session.started"}), Some("events")),
        (json!({"url": "gopher://127.0.0.1/"}), Some("url")),
        (json!({"url": "http://169.254.169.254/"}), Some("url")),
        (json!({"enabled": "yes"}), Some("enabled")),
        (json!({"colour": "red"}), None),
    ] {
        let answer = app
            .api(
                "PATCH",
                &format!("/api/v1/webhooks/{id}"),
                ADMIN,
                Some(body.clone()),
            )
            .await;
        assert_eq!(answer.status, 422, "{body}: {}", answer.body);
        assert_eq!(answer.body["field"].as_str(), field, "{body}");
        assert!(answer.body["error"]
            .as_str()
            .is_some_and(|e| !e.contains('\n')));
    }

    // A secret given in the format is kept, and answered once.
    let given = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let second = app
        .admin(
            "POST",
            "/api/v1/webhooks",
            Some(
                json!({"url": "https://crm.example/in", "events": ["limit.reached"],
                        "secret": given, "enabled": false}),
            ),
            201,
        )
        .await;
    assert_eq!(second["secret"], json!(given));
    let second_id = second["id"].as_i64().unwrap();

    let audit = app.admin("GET", "/api/v1/audit", None, 200).await;
    let entries: Vec<&Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["object_type"] == json!("webhook"))
        .collect();
    let actions: Vec<&str> = entries
        .iter()
        .map(|entry| entry["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions.len(), 3, "{audit}");
    assert!(actions.contains(&"create") && actions.contains(&"update"));
    let audit_text = audit.to_string();
    assert!(!audit_text.contains(&secret) && !audit_text.contains(given));
    assert!(audit_text.contains("[generated]") && audit_text.contains("[set]"));

    app.admin("DELETE", &format!("/api/v1/webhooks/{id}"), None, 204)
        .await;
    app.admin("GET", &format!("/api/v1/webhooks/{id}"), None, 404)
        .await;
    app.admin("DELETE", &format!("/api/v1/webhooks/{id}"), None, 404)
        .await;
    app.admin(
        "GET",
        &format!("/api/v1/webhooks/{id}/deliveries"),
        None,
        404,
    )
    .await;
    app.admin(
        "POST",
        &format!("/api/v1/webhooks/{id}/test"),
        Some(json!({})),
        404,
    )
    .await;
    app.admin("GET", "/api/v1/webhooks/abc", None, 404).await;
    let listed = app.admin("GET", "/api/v1/webhooks", None, 200).await;
    assert_eq!(listed["total"], json!(1));
    assert_eq!(listed["items"][0]["id"], json!(second_id));
    let empty = deliveries(&app, second_id).await;
    assert_eq!(empty, json!({"items": [], "total": 0}));
}

#[tokio::test]
async fn bad_webhooks_get_a_reason() {
    let app = spawn_admin_app().await;
    let ok = |extra: Value| {
        with(
            json!({"url": "http://127.0.0.1:1/x", "events": ["session.started"],
                   "enabled": false}),
            extra,
        )
    };
    for (body, field, says) in [
        (
            ok(json!({"url": "ftp://127.0.0.1/x"})),
            "url",
            "http or https",
        ),
        (ok(json!({"url": "not a url"})), "url", "not a URL"),
        (
            ok(json!({"url": "http://169.254.169.254/latest/meta-data/"})),
            "url",
            "link-local",
        ),
        (
            ok(json!({"url": "http://169.254.1.2:8080/"})),
            "url",
            "link-local",
        ),
        (ok(json!({"url": "http://[fe80::1]/"})), "url", "link-local"),
        (
            ok(json!({"url": "http://[fd00:ec2::254]/"})),
            "url",
            "metadata",
        ),
        (
            ok(json!({"url": "http://metadata.google.internal/computeMetadata/v1/"})),
            "url",
            "metadata",
        ),
        (
            ok(json!({"url": "https://crm:hunter2@crm.example/in"})),
            "url",
            "password",
        ),
        (json!({"events": ["session.started"]}), "url", "required"),
        (
            ok(json!({"events": ["session.paused"]})),
            "events",
            "session.paused",
        ),
        (ok(json!({"events": []})), "events", "at least one"),
        (json!({"url": "http://127.0.0.1:1/x"}), "events", "required"),
        (
            ok(json!({"secret": "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})),
            "secret",
            "whsec_",
        ),
        (ok(json!({"secret": "whsec_!!!"})), "secret", "base64"),
        (ok(json!({"secret": "whsec_c2hvcnQ="})), "secret", "bytes"),
    ] {
        let answer = app
            .api("POST", "/api/v1/webhooks", ADMIN, Some(body.clone()))
            .await;
        assert_eq!(answer.status, 422, "{body}: {}", answer.body);
        assert_eq!(answer.body["field"], json!(field), "{body}");
        let error = answer.body["error"].as_str().unwrap();
        assert!(
            error.contains(says) && !error.contains('\n'),
            "{body}: {error}"
        );
    }
    // Malformed or unknown fields: 400 with a reason; a form: 415.
    for body in [
        ok(json!({"colour": "red"})),
        ok(json!({"events": "session.started"})),
    ] {
        let answer = app
            .api("POST", "/api/v1/webhooks", ADMIN, Some(body.clone()))
            .await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.body);
        assert!(answer.body["error"].is_string());
    }
    let form = app
        .http
        .post(format!("{}/api/v1/webhooks", app.address))
        .basic_auth("root", Some("root-pw"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("url=http://127.0.0.1/")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status().as_u16(), 415);
    // Loopback and private receivers are allowed.
    for url in [
        "http://127.0.0.1:1/x",
        "http://[::1]:1/x",
        "http://10.20.30.40/x",
        "https://192.168.1.5/x",
        "http://billing.internal/x",
    ] {
        app.admin(
            "POST",
            "/api/v1/webhooks",
            Some(ok(json!({"url": url}))),
            201,
        )
        .await;
    }

    // PLAYGATE_WEBHOOK_NETWORKS: only there.
    let fenced = spawn_app_with(|settings| {
        settings.webhooks.networks = Some(vec!["127.0.0.0/8".parse().unwrap()])
    })
    .await;
    seed_admins(&fenced).await;
    fenced
        .admin("POST", "/api/v1/webhooks", Some(ok(json!({}))), 201)
        .await;
    let outside = fenced
        .api(
            "POST",
            "/api/v1/webhooks",
            ADMIN,
            Some(ok(json!({"url": "http://10.20.30.40/x"}))),
        )
        .await;
    assert_eq!(outside.status, 422, "{}", outside.body);
    assert!(outside.body["error"]
        .as_str()
        .unwrap()
        .contains("PLAYGATE_WEBHOOK_NETWORKS"));

    // PLAYGATE_WEBHOOK_ALLOW_LINK_LOCAL=true lets link-local ones through.
    let allowing = spawn_app_with(|settings| settings.webhooks.allow_link_local = true).await;
    seed_admins(&allowing).await;
    for url in [
        "http://169.254.169.254/hook",
        "http://[fe80::1]/hook",
        "http://metadata.google.internal/hook",
    ] {
        allowing
            .admin(
                "POST",
                "/api/v1/webhooks",
                Some(ok(json!({"url": url}))),
                201,
            )
            .await;
    }
}

// ---- Deliveries ----

#[tokio::test]
async fn session_events_carry_the_contract_data_and_verify_with_standardwebhooks() {
    let app = spawn_admin_app().await;
    let receiver = Receiver::start(vec![]);
    let (webhook, secret) =
        create_webhook(&app, &receiver.url, &["session.started", "session.ended"]).await;
    app.create(user("alice").token("alice-token")).await;

    let started = app
        .decide(with(
            session("alice-token", "s1", "start"),
            json!({"streamer": "edge-1"}),
        ))
        .await;
    assert_eq!(reason(&started), "ok", "{started}");
    let session_id = started["session_id"].as_str().unwrap().to_string();
    let first = receiver.wait_for(1).await;
    assert_eq!(first[0].event_type(), "session.started");
    // Long enough for a whole second watched.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let stopped = app
        .decide(with(
            session("alice-token", "s1", "stop"),
            json!({"streamer": "edge-1", "bytes": 4096}),
        ))
        .await;
    assert!(stopped["allow"].as_bool().unwrap(), "{stopped}");
    let received = receiver.wait_for(2).await;
    assert_eq!(received.len(), 2, "{received:#?}");

    let start = received[0].json();
    assert_eq!(start["type"], json!("session.started"));
    assert!(start["timestamp"].as_str().unwrap().ends_with('Z'));
    let data = &start["data"];
    assert_eq!(
        keys(data),
        [
            "client_ip",
            "country",
            "dialect",
            "session_id",
            "started_at",
            "stream",
            "streamer",
            "user"
        ]
    );
    assert_eq!(data["session_id"], json!(session_id));
    assert_eq!(data["user"], json!("alice"));
    assert_eq!(data["stream"], json!("news"));
    assert_eq!(data["client_ip"], json!("192.0.2.1"));
    assert_eq!(data["dialect"], json!("decide"));
    assert_eq!(data["streamer"], json!("edge-1"));
    assert_eq!(data["country"], Value::Null);
    let started_at: chrono::DateTime<chrono::Utc> =
        data["started_at"].as_str().unwrap().parse().unwrap();

    let end = received[1].json();
    assert_eq!(end["type"], json!("session.ended"));
    let data = &end["data"];
    assert_eq!(
        keys(data),
        [
            "bytes",
            "client_ip",
            "country",
            "dialect",
            "end_reason",
            "ended_at",
            "session_id",
            "started_at",
            "stream",
            "streamer",
            "user",
            "watch_seconds"
        ]
    );
    assert_eq!(data["session_id"], json!(session_id));
    assert_eq!(data["user"], json!("alice"));
    assert_eq!(data["end_reason"], json!("stopped"));
    assert_eq!(data["bytes"], json!(4096));
    let ended_at: chrono::DateTime<chrono::Utc> =
        data["ended_at"].as_str().unwrap().parse().unwrap();
    let watched = (ended_at - started_at).num_milliseconds() as f64 / 1000.0;
    assert!(watched >= 1.5, "{watched}");
    assert_eq!(data["watch_seconds"], json!(watched.round() as i64));

    for delivery in &received {
        assert!(delivery.id.starts_with("msg_"), "{delivery:?}");
        assert!(delivery.signature.starts_with("v1,"), "{delivery:?}");
        assert_eq!(delivery.content_type, "application/json");
        let sent: i64 = delivery.timestamp.parse().unwrap();
        assert!((sent - chrono::Utc::now().timestamp()).abs() < 60);
    }
    assert_ne!(received[0].id, received[1].id);

    // Recorded once the answers are in.
    let attempts = settled(&app, webhook, 2).await;
    assert_eq!(attempts["total"], json!(2), "{attempts}");
    for (item, event_type) in attempts["items"]
        .as_array()
        .unwrap()
        .iter()
        .zip(["session.ended", "session.started"])
    {
        assert_eq!(
            keys(item),
            [
                "at",
                "attempt",
                "error",
                "event_type",
                "id",
                "response_status",
                "status"
            ]
        );
        assert_eq!(item["event_type"], json!(event_type));
        assert_eq!(item["status"], json!("delivered"));
        assert_eq!(item["attempt"], json!(1));
        assert_eq!(item["response_status"], json!(200));
        assert_eq!(item["error"], Value::Null);
    }
    assert_eq!(metric_when(&app, "delivered", 2.0).await, 2.0);

    // The official library accepts what playgate signed, and nothing else.
    let Some(python) = standardwebhooks_python(
        "session_events_carry_the_contract_data_and_verify_with_standardwebhooks",
    ) else {
        return;
    };
    for delivery in &received {
        let (code, out) = verify_with_library(&python, &secret, delivery);
        assert_eq!(code, 0, "standardwebhooks refused {delivery:?}: {out}");
        let verified: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(verified, delivery.json());
    }
    let mut tampered = received[1].clone();
    tampered.body = tampered.body.replace("4096", "4097");
    assert_eq!(verify_with_library(&python, &secret, &tampered).0, 1);
    let other_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    assert_eq!(
        verify_with_library(&python, other_secret, &received[0]).0,
        1
    );
}

/// Admissions arriving together are one INSERT (the admission batch): the
/// statement trigger reports each of its sessions.
#[tokio::test]
async fn every_session_of_an_admission_batch_is_reported() {
    let app = spawn_admin_app().await;
    let receiver = Receiver::start(vec![]);
    create_webhook(&app, &receiver.url, &["session.started"]).await;
    app.create(user("erin").token("erin-token")).await;
    let starts = (0..30).map(|n| {
        let body = with(
            session("erin-token", &format!("b{n}"), "start"),
            json!({"ip": format!("192.0.2.{}", n + 10)}),
        );
        let app = &app;
        async move { app.decide(body).await }
    });
    let decisions = futures_util::future::join_all(starts).await;
    let mut started: Vec<String> = decisions
        .iter()
        .map(|d| {
            assert_eq!(reason(d), "ok", "{d}");
            d["session_id"].as_str().unwrap().to_string()
        })
        .collect();
    let mut reported: Vec<String> = receiver
        .wait_for(30)
        .await
        .iter()
        .map(|r| r.json()["data"]["session_id"].as_str().unwrap().to_string())
        .collect();
    started.sort();
    reported.sort();
    assert_eq!(reported, started);
}

#[tokio::test]
async fn a_start_refused_by_the_limit_is_reported() {
    let app = spawn_admin_app().await;
    let receiver = Receiver::start(vec![]);
    let (webhook, _) = create_webhook(&app, &receiver.url, &["limit.reached"]).await;
    app.create(user("bob").token("bob-token").limit(1)).await;

    let first = app.decide(session("bob-token", "s1", "start")).await;
    assert_eq!(reason(&first), "ok");
    let second = app.decide(session("bob-token", "s2", "start")).await;
    assert_eq!(reason(&second), "session_limit", "{second}");

    let received = receiver.wait_for(1).await;
    let event = received[0].json();
    assert_eq!(event["type"], json!("limit.reached"));
    assert_eq!(
        event["data"],
        json!({"user": "bob", "stream": "news", "client_ip": "192.0.2.1",
               "reason": "session_limit", "max_sessions": 1, "active_sessions": 1})
    );
    // Only what it subscribed to: no session.started of s1.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 1, "{:#?}", receiver.received());
    let attempts = deliveries(&app, webhook).await;
    assert_eq!(attempts["total"], json!(1));
    assert_eq!(attempts["items"][0]["event_type"], json!("limit.reached"));
}

#[tokio::test]
async fn failed_attempts_are_retried_with_the_same_webhook_id() {
    let app = spawn_app_with(|settings| {
        settings.webhooks.retry_base = Duration::from_millis(100);
    })
    .await;
    seed_admins(&app).await;
    let receiver = Receiver::start(vec![Reply::Status(500); 5]);
    let (webhook, _) = create_webhook(&app, &receiver.url, &["session.started"]).await;
    // The web interface's "Send test" button.
    let queued = app
        .admin(
            "POST",
            &format!("/api/v1/webhooks/{webhook}/test"),
            Some(json!({})),
            202,
        )
        .await;
    assert_eq!(queued, json!({"event_type": "webhook.test", "queued": 1}));

    let received = receiver.wait_for(6).await;
    assert_eq!(received.len(), 6);
    assert!(
        received.iter().all(|r| r.id == received[0].id),
        "{received:#?}"
    );
    assert!(received.iter().all(|r| r.body == received[0].body));
    assert_eq!(received[0].event_type(), "webhook.test");
    assert_eq!(received[0].json()["data"]["webhook_id"], json!(webhook));

    let attempts = settled(&app, webhook, 6).await;
    assert_eq!(attempts["total"], json!(6), "{attempts}");
    let items = attempts["items"].as_array().unwrap();
    assert_eq!(items[0]["attempt"], json!(6));
    assert_eq!(items[0]["status"], json!("delivered"));
    assert_eq!(items[0]["response_status"], json!(200));
    for (n, item) in items[1..].iter().enumerate() {
        assert_eq!(item["attempt"], json!(5 - n as i64), "{attempts}");
        assert_eq!(item["status"], json!("failed"));
        assert_eq!(item["response_status"], json!(500));
        assert_eq!(item["error"], json!("answered HTTP 500"));
        assert_eq!(item["event_type"], json!("webhook.test"));
    }
    // Counted once the attempt is recorded, just after the write.
    metric_when(&app, "delivered", 1.0).await;
    let metrics = app.metrics_text().await;
    assert_eq!(webhook_metric(&metrics, "failed"), 5.0);
    assert_eq!(webhook_metric(&metrics, "delivered"), 1.0);
    assert_eq!(webhook_metric(&metrics, "gave_up"), 0.0);
}

#[tokio::test]
async fn a_delivery_cut_off_with_its_replica_is_made_by_another() {
    let db = TestDb::new();
    let short_lease = |settings: &mut playgate::Settings| {
        settings.webhooks.lease = Duration::from_secs(2);
    };
    let first = spawn_on(Arc::clone(&db), short_lease).await;
    seed_admins(&first).await;
    let receiver = Receiver::start(vec![Reply::Hang]);
    let (webhook, _) = create_webhook(&first, &receiver.url, &["session.started"]).await;
    first.create(user("carol").token("carol-token")).await;
    let started = first.decide(session("carol-token", "s1", "start")).await;
    assert_eq!(reason(&started), "ok");

    // The first replica has it under way, and dies before any answer.
    let held = receiver.wait_for(1).await;
    first.stop().await;
    drop(first);
    let second = spawn_on(Arc::clone(&db), short_lease).await;
    let received = receiver.wait_for(2).await;
    assert_eq!(received[1].id, held[0].id, "{received:#?}");
    assert_eq!(received[1].body, held[0].body);
    assert_eq!(received[1].event_type(), "session.started");

    let deadline = Instant::now() + PATIENCE;
    loop {
        let attempts = second
            .admin(
                "GET",
                &format!("/api/v1/webhooks/{webhook}/deliveries"),
                None,
                200,
            )
            .await;
        if attempts["items"][0]["status"] == json!("delivered") {
            assert_eq!(attempts["total"], json!(1), "{attempts}");
            break;
        }
        assert!(Instant::now() < deadline, "{attempts}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metric_when(&second, "delivered", 1.0).await, 1.0);
}

#[tokio::test]
async fn dead_receivers_do_not_touch_decisions() {
    let app = spawn_admin_app().await;
    let hanging = Receiver::start(vec![Reply::Hang; 1000]);
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let events = ["session.started", "session.ended", "limit.reached"];
    create_webhook(&app, &hanging.url, &events).await;
    let (refused, _) =
        create_webhook(&app, &format!("http://127.0.0.1:{closed}/gone"), &events).await;
    app.create(user("dave").token("dave-token").limit(2)).await;

    for n in 0..40 {
        let key = format!("s{}", n % 3);
        let start = app.decide(session("dave-token", &key, "start")).await;
        let expected = if n % 3 == 2 { "session_limit" } else { "ok" };
        assert_eq!(reason(&start), expected, "{n}: {start}");
        if n % 3 == 2 {
            for key in ["s0", "s1"] {
                let stop = app.decide(session("dave-token", key, "stop")).await;
                assert!(stop["allow"].as_bool().unwrap(), "{stop}");
            }
        }
    }
    // The refused connections are failed attempts, with why.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let attempts = deliveries(&app, refused).await;
        let failed = attempts["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|item| item["status"] == json!("failed"));
        if let Some(failed) = failed {
            assert_eq!(failed["response_status"], Value::Null);
            let error = failed["error"].as_str().unwrap();
            assert!(!error.is_empty(), "{attempts}");
            break;
        }
        assert!(Instant::now() < deadline, "{attempts}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!hanging.received().is_empty());
    let after = app.decide(session("dave-token", "late", "start")).await;
    assert_eq!(reason(&after), "ok");
}

#[tokio::test]
async fn the_sweeper_purges_events_past_the_history() {
    let app = spawn_admin_app().await;
    let (webhook, _) = create_webhook(&app, "http://127.0.0.1:1/x", &["session.started"]).await;
    app.admin(
        "PATCH",
        &format!("/api/v1/webhooks/{webhook}"),
        Some(json!({"enabled": false})),
        200,
    )
    .await;
    let client = app.db().await;
    for days in [100, 1] {
        client
            .execute(
                "WITH e AS (INSERT INTO webhook_events (type, data, at)
                            VALUES ('session.started', '{}', now() - make_interval(days => $1))
                            RETURNING id)
                 INSERT INTO webhook_deliveries (webhook_id, event_id, attempt, status)
                 SELECT $2, id, 1, 'failed' FROM e",
                &[&days, &webhook],
            )
            .await
            .unwrap();
    }
    // The application's own sweeper may hold the lock at that moment.
    let mut sweeper = app.db().await;
    for _ in 0..50 {
        let swept = playgate::store::sessions::sweep(&mut sweeper, 90, Duration::from_secs(60))
            .await
            .unwrap();
        if swept.ran {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let left: Vec<i32> = client
        .query(
            "SELECT extract(day FROM now() - e.at)::int FROM webhook_deliveries d
               JOIN webhook_events e ON e.id = d.event_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(left, [1]);
    assert_eq!(deliveries(&app, webhook).await["total"], json!(1));
}

// ---- The web interface ----

/// The Webhooks page: a bad URL refused next to it, a webhook created with
/// its events (the secret shown once), a test delivery that arrives and
/// shows as delivered, an edit, a delete (asked first).
#[tokio::test]
async fn webhooks_in_the_browser() {
    let Some((chromium, chromedriver)) = crate::ui_browser::browser("webhooks_in_the_browser")
    else {
        return;
    };
    let app = spawn_admin_app().await;
    let receiver = Receiver::start(vec![]);
    let browser = crate::ui_browser::Browser::start(&chromium, &chromedriver).await;
    let address = app.address.clone();
    browser.sign_in(&address, "root", "root-pw").await;
    browser.click("#nav a[data-page=webhooks]").await;
    browser.wait_text("No webhooks yet", true).await;

    browser.click("#new-webhook").await;
    browser.fill("#f-url", "ftp://127.0.0.1/x").await;
    browser.click("[data-testid=save]").await;
    let error = browser.text_of(".error[data-for=url]:not(:empty)").await;
    assert!(error.contains("http or https"), "{error}");
    browser.fill("#f-url", &receiver.url).await;
    browser.click("[id='f-event-limit.reached']").await;
    browser.fill("#f-comment", "crm").await;
    browser.click("[data-testid=save]").await;
    let secret = browser.text_of("#new-webhook-secret").await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    browser.find("#copy-webhook-secret").await;
    browser.click("[data-testid=webhook-secret] .primary").await;
    let listed = app.admin("GET", "/api/v1/webhooks", None, 200).await;
    let webhook = &listed["items"][0];
    assert_eq!(
        webhook["events"],
        json!(["session.started", "session.ended", "limit.reached"]),
        "{listed}"
    );
    assert_eq!(webhook["comment"], json!("crm"));
    assert_eq!(webhook["url"], json!(receiver.url));

    // Send test: the delivery arrives and the dialog shows it delivered.
    browser.wait_text("crm", true).await;
    browser.click("[data-testid=webhook-test]").await;
    browser
        .find("[data-testid=deliveries] tr[data-status=delivered]")
        .await;
    assert_eq!(receiver.wait_for(1).await[0].event_type(), "webhook.test");
    browser.screenshot("webhook-deliveries").await;
    browser
        .click("[data-testid=deliveries-dialog] .primary")
        .await;

    // Edit: one event less, disabled.
    browser.click("[data-testid=webhook-edit]").await;
    browser.click("[id='f-event-session.started']").await;
    browser.click("#f-enabled").await;
    browser.click("[data-testid=save]").await;
    browser.wait_text("disabled", true).await;
    let id = webhook["id"].as_i64().unwrap();
    let edited = app
        .admin("GET", &format!("/api/v1/webhooks/{id}"), None, 200)
        .await;
    assert_eq!(edited["events"], json!(["session.ended", "limit.reached"]));
    assert_eq!(edited["enabled"], json!(false));
    let page = browser
        .script("return document.documentElement.outerHTML;", json!([]))
        .await;
    assert!(!page.as_str().unwrap().contains(&secret));
    browser.screenshot("webhooks").await;

    browser.click("[data-testid=webhook-delete]").await;
    browser.click("[data-testid=confirm-yes]").await;
    browser.wait_text("No webhooks yet", true).await;
    assert_eq!(
        app.admin("GET", "/api/v1/webhooks", None, 200).await["total"],
        json!(0)
    );
}

/// Deleting a webhook while its attempts are being recorded: the delete
/// locks the webhook and cascades to the attempts, the worker used to lock
/// an attempt and then the webhook (for the next attempt's row): a
/// deadlock, a 500 to the admin (found by scripts/bench --webhooks).
#[tokio::test]
async fn a_webhook_is_deleted_while_its_attempts_fail_and_retry() {
    let app = spawn_app_with(|settings| {
        settings.webhooks.retry_base = Duration::from_millis(20);
    })
    .await;
    seed_admins(&app).await;
    for round in 0..5 {
        let receiver = Receiver::start(vec![Reply::Status(500); 100_000]);
        let (webhook, _) = create_webhook(&app, &receiver.url, &["session.started"]).await;
        for _ in 0..40 {
            app.admin(
                "POST",
                &format!("/api/v1/webhooks/{webhook}/test"),
                Some(json!({})),
                202,
            )
            .await;
        }
        receiver.wait_for(40).await;
        let deleted = app
            .api(
                "DELETE",
                &format!("/api/v1/webhooks/{webhook}"),
                ADMIN,
                None,
            )
            .await;
        assert_eq!(deleted.status, 204, "round {round}: {}", deleted.body);
    }
}
