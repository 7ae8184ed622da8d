//! Outages and hostile clients: the database going away, brute force.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::*;
use crate::private_pg::PrivatePostgres;

#[tokio::test]
async fn repeated_failures_from_one_ip_are_damped() {
    let app = spawn_app_with(|settings| settings.auth_failure_limit = 3).await;
    app.create(user("alice").token("right").password("pw"))
        .await;
    let from = |ip: &str, extra: serde_json::Value| with(play("news", ip), extra);
    for guess in ["a", "b"] {
        let decision = app
            .decide(from("192.0.2.66", json!({"token": guess})))
            .await;
        assert_eq!(reason(&decision), "unknown_token");
    }
    let decision = app
        .decide(from(
            "192.0.2.66",
            json!({"login": "alice", "password": "nope"}),
        ))
        .await;
    assert_eq!(reason(&decision), "bad_credentials");
    // The attacker's IP is now refused, even with the right token…
    for extra in [json!({"token": "guess"}), json!({"token": "right"})] {
        assert_eq!(
            reason(&app.decide(from("192.0.2.66", extra)).await),
            "rate_limited"
        );
    }
    // …while the right user elsewhere is not locked out.
    let elsewhere = app
        .decide(from("198.51.100.1", json!({"token": "right"})))
        .await;
    assert_eq!(reason(&elsewhere), "ok");
    let by_password = app
        .decide(from(
            "198.51.100.2",
            json!({"login": "alice", "password": "pw"}),
        ))
        .await;
    assert_eq!(reason(&by_password), "ok");
    let samples = parse_metrics(&app.metrics_text().await);
    assert_eq!(decisions(&samples, "decide", "deny", "rate_limited"), 2.0);
}

#[tokio::test]
async fn database_outage_keeps_active_viewers_and_recovers() {
    let Some(cluster) = PrivatePostgres::start() else {
        return;
    };
    let db = TestDb::on(&cluster.server_url());
    let app = spawn_on(db, |settings| {
        settings.db_timeout = Duration::from_millis(800);
        settings.session_duration = Duration::from_secs(5);
    })
    .await;
    app.create(user("alice").token("t").limit(2)).await;
    let request = |session: &str, event: &str| {
        with(
            play("news", "192.0.2.1"),
            json!({"token": "t", "session": session, "event": event}),
        )
    };
    let before = app.decide(request("watching", "start")).await;
    assert_eq!(reason(&before), "ok");

    cluster.halt();
    // Every hook answers promptly, with a decision rather than a 5xx.
    let started = Instant::now();
    let refreshed = app.decide(request("watching", "refresh")).await;
    assert_eq!(reason(&refreshed), "ok", "an active session keeps playing");
    assert_eq!(refreshed["session_id"], before["session_id"]);
    let newcomer = app.decide(request("new", "start")).await;
    assert_eq!(
        (newcomer["allow"].clone(), reason(&newcomer)),
        (json!(false), "db_unavailable")
    );
    let mut tasks = Vec::new();
    for n in 0..20 {
        let url = format!("{}/hook/decide", app.address);
        let http = app.http.clone();
        tasks.push(tokio::spawn(async move {
            let body = json!({"stream": "news", "ip": "192.0.2.1", "token": "t", "session": format!("n{n}")});
            http.post(url).json(&body).send().await.unwrap().status().as_u16()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "hooks hung: {:?}",
        started.elapsed()
    );
    assert_eq!(app.get("/readyz").await.status().as_u16(), 503);
    assert_eq!(app.get("/healthz").await.status().as_u16(), 200);

    cluster.resume();
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.get("/readyz").await.status().as_u16() != 200 {
        assert!(Instant::now() < deadline, "never became ready again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Recovered by itself; nothing recorded before the outage was lost.
    let after = app.decide(request("new", "start")).await;
    assert_eq!(reason(&after), "ok");
    assert_eq!(after["active_sessions"], 2);
    let id: uuid::Uuid = before["session_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(app.session_state(&id.to_string()).await, (false, None));
}

/// One request on a connection of its own: the server may close a
/// connection after a hostile request, and a pooled one would be reused.
async fn fresh(request: impl FnOnce(&reqwest::Client) -> reqwest::RequestBuilder) -> u16 {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    request(&client)
        .send()
        .await
        .expect("an answer, not a reset")
        .status()
        .as_u16()
}

#[tokio::test]
async fn oversized_and_malformed_requests_get_4xx() {
    let app = spawn_app().await;
    let base = app.address.clone();
    let huge = "x".repeat(200_000);
    let client_error = |status: u16| (400..500).contains(&status);
    // A query far longer than any streamer sends (the client's URI limit is 64 KiB).
    let long_token = &huge[..60_000];
    let status = fresh(|c| {
        c.get(format!(
            "{base}/hook/flussonic?name=news&ip=192.0.2.1&token={long_token}"
        ))
    })
    .await;
    assert!(client_error(status), "long query: {status}");
    // A header far larger than any proxy sends.
    let status = fresh(|c| {
        c.get(format!("{base}/hook/forward-auth"))
            .header("X-Original-URI", huge.as_str())
    })
    .await;
    assert!(client_error(status), "big header: {status}");
    // Bytes that are not UTF-8, percent-encoded in a query and raw in a body.
    let status = fresh(|c| {
        c.get(format!(
            "{base}/hook/flussonic?name=%FF%FE&ip=192.0.2.1&token=t"
        ))
    })
    .await;
    assert!(client_error(status), "bad UTF-8 query: {status}");
    let status = fresh(|c| {
        c.post(format!("{base}/hook/srs"))
            .header("Content-Type", "application/json")
            .body(b"{\"action\": \"on_play\", \"ip\": \"\xff\"}".to_vec())
    })
    .await;
    assert_eq!(status, 400);
    // Bodies over the limit on hooks and on the admin API (which may refuse
    // the unauthenticated caller first).
    for path in ["/hook/srs", "/hook/mediamtx", "/api/v1/users"] {
        let body = format!("{{\"pad\": \"{huge}\"}}");
        let status = fresh(|c| {
            c.post(format!("{base}{path}"))
                .header("Content-Type", "application/json")
                .body(body)
        })
        .await;
        assert!(status == 413 || status == 401, "{path}: {status}");
    }
    // The server is still there and answers normally.
    assert_eq!(app.get("/healthz").await.status().as_u16(), 200);
}

#[tokio::test]
async fn admin_api_guessing_is_damped_per_client() {
    let app = spawn_app_with(|settings| settings.auth_failure_limit = 3).await;
    let mut root = user("root").password("root-pw");
    root.user.kind = playgate::domain::UserKind::Admin;
    app.create(root).await;
    // The test's peer is loopback, a trusted proxy: the configured client
    // header (X-Real-IP by default, as for forward-auth) names the client.
    let users_from = |client: &str, password: &str| {
        app.http
            .get(format!("{}/api/v1/users", app.address))
            .basic_auth("root", Some(password))
            .header("X-Real-IP", client)
            .send()
    };
    for guess in ["a", "b", "c"] {
        assert_eq!(
            users_from("198.51.100.66", guess)
                .await
                .unwrap()
                .status()
                .as_u16(),
            401
        );
    }
    let limited = users_from("198.51.100.66", "root-pw").await.unwrap();
    assert_eq!(limited.status().as_u16(), 429);
    let body: serde_json::Value = limited.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().starts_with("rate_limited"));
    // The right admin elsewhere is not locked out.
    assert_eq!(
        users_from("198.51.100.1", "root-pw")
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
}

#[tokio::test]
async fn admin_api_damping_reads_only_the_configured_client_header() {
    let app = spawn_app_with(|settings| settings.auth_failure_limit = 3).await;
    let mut root = user("root").password("root-pw");
    root.user.kind = playgate::domain::UserKind::Admin;
    app.create(root).await;
    // A guesser rotating X-Forwarded-For (not the configured header) is
    // still the one peer, and is damped as such.
    for (n, guess) in ["a", "b", "c", "root-pw"].iter().enumerate() {
        let status = app
            .http
            .get(format!("{}/api/v1/users", app.address))
            .basic_auth("root", Some(guess))
            .header("X-Forwarded-For", format!("198.51.100.{n}"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        assert_eq!(status, if n < 3 { 401 } else { 429 }, "guess {n}");
    }
}

/// A hook gives up on a statement after PLAYGATE_DB_TIMEOUT_MS; the
/// connection, still waiting for its answer, is closed rather than lent to
/// the next request (which would wait behind it: a primary gone silent in a
/// failover would hold up every pooled connection so).
#[tokio::test]
async fn a_statement_given_up_on_does_not_hold_up_the_next_request() {
    let app = spawn_app_with(|settings| {
        settings.database.pool_size = 1;
        settings.db_timeout = Duration::from_millis(1000);
    })
    .await;
    // Not through `create`, which holds the one connection while it reloads.
    let (locker, connection) = tokio_postgres::connect(&app.db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    locker
        .batch_execute(
            "WITH u AS (INSERT INTO users (login) VALUES ('alice') RETURNING id)
             INSERT INTO tokens (user_id, hash) SELECT id, sha256('t') FROM u",
        )
        .await
        .unwrap();
    app.reload().await;
    let request = |session: &str, event: &str| {
        with(
            play("news", "192.0.2.1"),
            json!({"token": "t", "session": session, "event": event}),
        )
    };
    let stuck = app.decide(request("stuck", "start")).await;
    assert_eq!(reason(&stuck), "ok");
    // Another connection holds the row: the stop's statement waits for it.
    let id = stuck["session_id"].as_str().unwrap();
    locker
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM sessions WHERE id = '{id}' FOR UPDATE"
        ))
        .await
        .unwrap();
    let stopped = Instant::now();
    assert_eq!(reason(&app.decide(request("stuck", "stop")).await), "ok");
    assert!(stopped.elapsed() < Duration::from_secs(3));
    // The pool's one connection still waits for the lock: the next request
    // is served by a new one.
    let next = app.decide(request("next", "start")).await;
    assert_eq!(reason(&next), "ok", "{next}");
    // (The abandoned stop itself may still end the session once the lock
    // is gone: the server does not know its client left.)
    locker.batch_execute("ROLLBACK").await.unwrap();
}
