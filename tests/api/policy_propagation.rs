//! Policy changes: made through one replica's admin API, in force on another
//! replica's hooks within a second (DESIGN: LISTEN/NOTIFY); and the
//! incremental path (one user re-read, not the whole table) gets renames,
//! token deletions, IP bindings and deletions right.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

const DEADLINE: Duration = Duration::from_secs(1);

/// Two replicas on one database: A with the admin staff, B polled. B does
/// not damp failed credentials, since polling for a token counts as such.
async fn two_replicas() -> (TestApp, TestApp) {
    let a = spawn_admin_app().await;
    let b = spawn_on(a.db.clone(), |s| s.auth_failure_limit = 0).await;
    (a, b)
}

/// Sends the admin request to A, then polls B's /hook/decide with `probe`
/// until it answers `expected`: fails if that takes a second or more from
/// the admin request. Prints the delay.
async fn change_and_wait(
    a: &TestApp,
    b: &TestApp,
    (method, path, body, status): (&str, &str, Option<Value>, u16),
    probe: Value,
    expected: &str,
) -> Value {
    let started = Instant::now();
    let answer = a.admin(method, path, body, status).await;
    let answered = started.elapsed();
    loop {
        let decision = b.decide(probe.clone()).await;
        let elapsed = started.elapsed();
        if reason(&decision) == expected {
            println!(
                "{method} {path}: A answered in {answered:?}, in force on B after {elapsed:?} \
                 (B's overlay: {} users)",
                b.state.policy.snapshot().overlay_len()
            );
            return answer;
        }
        assert!(
            elapsed < DEADLINE,
            "{method} {path}: B still answers {} after {elapsed:?}, expected {expected}",
            reason(&decision)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn token_probe(stream: &str, ip: &str, token: &str) -> Value {
    json!({"stream": stream, "ip": ip, "token": token})
}

#[tokio::test]
async fn admin_changes_through_one_replica_are_in_force_on_another_within_a_second() {
    let (a, b) = two_replicas().await;
    let zoe = token_probe("news", "192.0.2.10", "zoe-token");
    assert_eq!(reason(&b.decide(zoe.clone()).await), "unknown_token");

    // Create a user with a token.
    change_and_wait(
        &a,
        &b,
        (
            "POST",
            "/api/v1/users",
            Some(json!({"login": "zoe", "token": "zoe-token"})),
            201,
        ),
        zoe.clone(),
        "ok",
    )
    .await;
    // Add a token.
    let second = change_and_wait(
        &a,
        &b,
        (
            "POST",
            "/api/v1/users/zoe/tokens",
            Some(json!({"token": "zoe-second"})),
            201,
        ),
        token_probe("news", "192.0.2.10", "zoe-second"),
        "ok",
    )
    .await;
    // Disable the user, then enable it again.
    change_and_wait(
        &a,
        &b,
        (
            "PATCH",
            "/api/v1/users/zoe",
            Some(json!({"enabled": false})),
            200,
        ),
        zoe.clone(),
        "user_disabled",
    )
    .await;
    change_and_wait(
        &a,
        &b,
        (
            "PATCH",
            "/api/v1/users/zoe",
            Some(json!({"enabled": true})),
            200,
        ),
        zoe.clone(),
        "ok",
    )
    .await;
    // Delete a token: that one stops working, the other one does not.
    change_and_wait(
        &a,
        &b,
        (
            "DELETE",
            &format!("/api/v1/users/zoe/tokens/{}", second["id"]),
            None,
            204,
        ),
        token_probe("news", "192.0.2.10", "zoe-second"),
        "unknown_token",
    )
    .await;
    assert_eq!(reason(&b.decide(zoe.clone()).await), "ok");
    // Add a deny IP rule.
    change_and_wait(
        &a,
        &b,
        (
            "POST",
            "/api/v1/ip-rules",
            Some(json!({"network": "198.51.100.0/24", "action": "deny"})),
            201,
        ),
        token_probe("news", "198.51.100.7", "zoe-token"),
        "ip_denied",
    )
    .await;
    // Change the user's packages; then the package's streams.
    a.admin(
        "POST",
        "/api/v1/packages",
        Some(json!({"name": "newsroom", "streams": ["news"]})),
        201,
    )
    .await;
    change_and_wait(
        &a,
        &b,
        (
            "PATCH",
            "/api/v1/users/zoe",
            Some(json!({"packages": ["newsroom"]})),
            200,
        ),
        token_probe("sport/f1", "192.0.2.10", "zoe-token"),
        "stream_not_allowed",
    )
    .await;
    assert_eq!(reason(&b.decide(zoe.clone()).await), "ok");
    change_and_wait(
        &a,
        &b,
        (
            "PATCH",
            "/api/v1/packages/newsroom",
            Some(json!({"streams": ["news", "sport/*"]})),
            200,
        ),
        token_probe("sport/f1", "192.0.2.10", "zoe-token"),
        "ok",
    )
    .await;
    // Delete the user.
    change_and_wait(
        &a,
        &b,
        ("DELETE", "/api/v1/users/zoe", None, 204),
        zoe,
        "unknown_token",
    )
    .await;
}

/// One replica: each change is in force when the admin API answers, through
/// the re-read of the one user it touched.
#[tokio::test]
async fn the_incremental_path_forgets_old_logins_tokens_bindings_and_users() {
    let app = spawn_admin_app().await;
    let password = |login: &str| json!({"stream": "news", "ip": "192.0.2.20", "login": login, "password": "ann-pw"});
    app.admin(
        "POST",
        "/api/v1/users",
        Some(json!({"login": "ann", "password": "ann-pw", "token": "ann-token"})),
        201,
    )
    .await;
    assert_eq!(reason(&app.decide(password("ann")).await), "ok");

    // Renamed: the old login is unknown, the new one and the token work.
    app.admin(
        "PATCH",
        "/api/v1/users/ann",
        Some(json!({"login": "anna"})),
        200,
    )
    .await;
    assert!(
        app.state.policy.snapshot().overlay_len() > 0,
        "the rename went through a re-read of the user, not a full reload"
    );
    assert_eq!(
        reason(&app.decide(password("ann")).await),
        "bad_credentials"
    );
    assert_eq!(reason(&app.decide(password("anna")).await), "ok");
    let by_token = app
        .decide(token_probe("news", "192.0.2.20", "ann-token"))
        .await;
    assert_eq!(
        (reason(&by_token), by_token["user"].as_str()),
        ("ok", Some("anna"))
    );

    // A deleted token is unknown; the user's other token still works.
    let extra = app
        .admin(
            "POST",
            "/api/v1/users/anna/tokens",
            Some(json!({"token": "ann-extra"})),
            201,
        )
        .await;
    assert_eq!(
        reason(
            &app.decide(token_probe("news", "192.0.2.20", "ann-extra"))
                .await
        ),
        "ok"
    );
    app.admin(
        "DELETE",
        &format!("/api/v1/users/anna/tokens/{}", extra["id"]),
        None,
        204,
    )
    .await;
    assert_eq!(
        reason(
            &app.decide(token_probe("news", "192.0.2.20", "ann-extra"))
                .await
        ),
        "unknown_token"
    );
    assert_eq!(
        reason(
            &app.decide(token_probe("news", "192.0.2.20", "ann-token"))
                .await
        ),
        "ok"
    );

    // IP bindings: two users on one network, the older one wins; its
    // binding removed, the other one is found; both removed, nobody.
    for login in ["office-old", "office-new"] {
        app.admin(
            "POST",
            "/api/v1/users",
            Some(json!({"login": login, "ips": ["10.20.0.0/16"]})),
            201,
        )
        .await;
    }
    let anonymous = json!({"stream": "news", "ip": "10.20.1.1"});
    let who = |decision: Value| decision["user"].as_str().map(str::to_string);
    assert_eq!(
        who(app.decide(anonymous.clone()).await),
        Some("office-old".into())
    );
    app.admin(
        "PATCH",
        "/api/v1/users/office-old",
        Some(json!({"ips": []})),
        200,
    )
    .await;
    assert_eq!(
        who(app.decide(anonymous.clone()).await),
        Some("office-new".into())
    );
    app.admin(
        "PATCH",
        "/api/v1/users/office-new",
        Some(json!({"ips": ["10.21.0.0/16"]})),
        200,
    )
    .await;
    assert_eq!(
        reason(&app.decide(anonymous.clone()).await),
        "no_credentials"
    );
    assert_eq!(
        who(app
            .decide(json!({"stream": "news", "ip": "10.21.3.3"}))
            .await),
        Some("office-new".into())
    );

    // Deleted: gone by login, by token and by IP.
    app.admin("DELETE", "/api/v1/users/anna", None, 204).await;
    app.admin("DELETE", "/api/v1/users/office-new", None, 204)
        .await;
    assert_eq!(
        reason(&app.decide(password("anna")).await),
        "bad_credentials"
    );
    assert_eq!(
        reason(
            &app.decide(token_probe("news", "192.0.2.20", "ann-token"))
                .await
        ),
        "unknown_token"
    );
    assert_eq!(
        reason(
            &app.decide(json!({"stream": "news", "ip": "10.21.3.3"}))
                .await
        ),
        "no_credentials"
    );
    // A full reload agrees with what the re-reads made of it.
    app.state.policy.full_reload().await.unwrap();
    assert_eq!(app.state.policy.snapshot().overlay_len(), 0);
    assert_eq!(
        reason(&app.decide(password("anna")).await),
        "bad_credentials"
    );
    assert_eq!(
        who(app
            .decide(json!({"stream": "news", "ip": "10.20.1.1"}))
            .await),
        None
    );
    assert_eq!(
        reason(&app.decide(password("ann")).await),
        "bad_credentials"
    );
}

/// An import commits thousands of users in one statement: the replicas get
/// one notification for it and reload once, and the import's own answer
/// comes when they are in force.
#[tokio::test]
async fn a_bulk_change_is_one_full_reload() {
    let (a, b) = two_replicas().await;
    let users: Vec<Value> = (0..3000)
        .map(|n| json!({"login": format!("bulk{n}"), "token": format!("bulk-token-{n}")}))
        .collect();
    let started = Instant::now();
    a.admin("POST", "/api/v1/import", Some(Value::Array(users)), 200)
        .await;
    let probe = token_probe("news", "192.0.2.30", "bulk-token-2999");
    assert_eq!(reason(&a.decide(probe.clone()).await), "ok");
    loop {
        let decision = b.decide(probe.clone()).await;
        if reason(&decision) == "ok" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "import not in force on B: {decision}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "import of 3000 users in force on B after {:?}",
        started.elapsed()
    );
    // Folded into the base: no user was re-read one by one.
    assert_eq!(b.state.policy.snapshot().overlay_len(), 0);
    assert!(b.state.policy.snapshot().user_count() >= 3000);
}

/// The listening connections cut (a PostgreSQL restart, a proxy timeout):
/// a change made meanwhile is caught up by the reconnection's full reload,
/// and changes after it are re-read one by one again.
#[tokio::test]
async fn a_lost_listening_connection_is_restored_and_caught_up() {
    let (a, b) = two_replicas().await;
    let yan = token_probe("news", "192.0.2.40", "yan-token");
    change_and_wait(
        &a,
        &b,
        (
            "POST",
            "/api/v1/users",
            Some(json!({"login": "yan", "token": "yan-token"})),
            201,
        ),
        yan.clone(),
        "ok",
    )
    .await;
    // Every connection to the database but this one: both replicas'
    // listeners, and the pools' connections too.
    a.db()
        .await
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    let started = Instant::now();
    // A pooled connection may be found dead once (503: the server ended it,
    // an outage rather than a refused statement): the next one is fresh.
    let mut answer = a
        .api(
            "PATCH",
            "/api/v1/users/yan",
            ADMIN,
            Some(json!({"enabled": false})),
        )
        .await;
    for _ in 0..8 {
        // Answered as a database outage (the connection was terminated).
        if answer.status != 500 && answer.status != 503 {
            break;
        }
        answer = a
            .api(
                "PATCH",
                "/api/v1/users/yan",
                ADMIN,
                Some(json!({"enabled": false})),
            )
            .await;
    }
    assert_eq!(answer.status, 200, "{}", answer.body);
    loop {
        let decision = b.decide(yan.clone()).await;
        if reason(&decision) == "user_disabled" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "B never caught up: {decision}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "caught up after the listeners were cut: {:?}",
        started.elapsed()
    );
    // Listening again (B's own marker comes back through its new listener).
    b.reload().await;
    change_and_wait(
        &a,
        &b,
        (
            "PATCH",
            "/api/v1/users/yan",
            Some(json!({"enabled": true})),
            200,
        ),
        yan,
        "ok",
    )
    .await;
}
