//! PgBouncer in transaction pooling mode in front of the test PostgreSQL
//! (SPEC §13): with `PLAYGATE_DB_PREPARED=off` and a direct
//! `PLAYGATE_LISTEN_DATABASE_URL`, two replicas keep limits exact, refresh,
//! stop and see each other's admin changes; a listen URL through the
//! pooler, or prepared statements, stop start-up.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::*;
use crate::pooler::PgBouncer;

fn start(session: &str) -> serde_json::Value {
    with(
        play("news", "192.0.2.1"),
        json!({"token": "limited-token", "session": session, "event": "start"}),
    )
}

/// Active sessions of `login`, asked directly (not through the pooler).
async fn active(direct: &tokio_postgres::Client, login: &str) -> i64 {
    direct
        .query_one(
            "SELECT count(*) FROM sessions WHERE login = $1 AND ended_at IS NULL AND expires_at > now()",
            &[&login],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn two_replicas_work_through_pgbouncer_in_transaction_mode() {
    let Some(bouncer) = PgBouncer::start(3) else {
        return;
    };
    let db = TestDb::new();
    let through = bouncer.url(&db);
    let direct_url = db.url.clone();
    let configure = |settings: &mut playgate::Settings| {
        settings.database = database_settings(&through, Some(&direct_url), None, Some("off"));
        // Short holds: heartbeats are written within a second or two.
        settings.session_duration = Duration::from_secs(4);
        settings.session_grace = Duration::from_secs(4);
    };
    let a = spawn_on(db.clone(), configure).await;
    let b = spawn_on(db.clone(), configure).await;
    let (direct, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    seed_admins(&a).await;
    a.create(user("limited").token("limited-token").limit(3))
        .await;
    b.reload().await;

    // 20 concurrent starts over both replicas for a user allowed 3: exactly 3.
    let mut tasks = Vec::new();
    for n in 0..20 {
        let (url, http) = if n % 2 == 0 {
            (format!("{}/hook/decide", a.address), a.http.clone())
        } else {
            (format!("{}/hook/decide", b.address), b.http.clone())
        };
        tasks.push(tokio::spawn(async move {
            let answer: serde_json::Value = http
                .post(url)
                .json(&start(&format!("s{n}")))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (n, answer)
        }));
    }
    let mut allowed = Vec::new();
    for task in tasks {
        let (n, answer) = task.await.unwrap();
        match reason(&answer) {
            "ok" => allowed.push((n, answer["session_id"].as_str().unwrap().to_string())),
            "session_limit" => {}
            other => panic!("unexpected answer {other}: {answer}"),
        }
    }
    assert_eq!(allowed.len(), 3, "{allowed:?}");
    assert_eq!(active(&direct, "limited").await, 3);

    // Refreshes: on the replica that admitted it (from memory, its heartbeat
    // written through the pooler) and on the other one (in PostgreSQL).
    let (n, id) = allowed[0].clone();
    let (admitted_by, other) = if n % 2 == 0 { (&a, &b) } else { (&b, &a) };
    let seen_before: chrono::DateTime<chrono::Utc> = direct
        .query_one(
            "SELECT last_seen_at FROM sessions WHERE id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let refresh = |session: String| {
        with(
            play("news", "192.0.2.1"),
            json!({"token": "limited-token", "session": session, "event": "refresh"}),
        )
    };
    let answer = admitted_by.decide(refresh(format!("s{n}"))).await;
    assert_eq!(
        (reason(&answer), answer["session_id"].as_str()),
        ("ok", Some(id.as_str()))
    );
    // Answered from memory: the heartbeat batch brings it to the row.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seen: chrono::DateTime<chrono::Utc> = direct
            .query_one(
                "SELECT last_seen_at FROM sessions WHERE id = $1::text::uuid",
                &[&id],
            )
            .await
            .unwrap()
            .get(0);
        if seen > seen_before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the heartbeat never reached the row"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answer = other.decide(refresh(format!("s{n}"))).await;
    assert_eq!(
        (reason(&answer), answer["session_id"].as_str()),
        ("ok", Some(id.as_str()))
    );

    // A stop frees a slot for a start on the other replica; still exact.
    let stop = with(
        play("news", "192.0.2.1"),
        json!({"token": "limited-token", "session": format!("s{n}"), "event": "stop"}),
    );
    assert_eq!(reason(&other.decide(stop).await), "ok");
    assert_eq!(active(&direct, "limited").await, 2);
    assert_eq!(reason(&admitted_by.decide(start("late")).await), "ok");
    assert_eq!(reason(&other.decide(start("later")).await), "session_limit");
    assert_eq!(active(&direct, "limited").await, 3);

    // An admin change through A is in force on B within a second.
    let changed = Instant::now();
    a.admin(
        "PATCH",
        "/api/v1/users/limited",
        Some(json!({"enabled": false})),
        200,
    )
    .await;
    loop {
        if reason(&b.decide(start("after-change")).await) == "user_disabled" {
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(1),
            "B did not see the change within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "admin change through pgbouncer in force on B after {:?}",
        changed.elapsed()
    );
    // Admin reads work through the pooler too. Disabling the user ended its
    // three sessions (sql/V20); a start B admitted before its view had the
    // change may still be open (its next refresh is refused).
    let listed = a
        .admin("GET", "/api/v1/sessions?user=limited", None, 200)
        .await;
    assert!(listed["total"].as_i64().unwrap() <= 1, "{listed}");
    let ended = a
        .admin(
            "GET",
            "/api/v1/sessions?user=limited&state=ended",
            None,
            200,
        )
        .await;
    let kicked = ended["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["end_reason"] == "kicked")
        .count();
    assert_eq!(kicked, 3, "{ended}");
    assert_eq!(a.get("/readyz").await.status().as_u16(), 200);
}

#[tokio::test]
async fn listen_or_prepared_statements_through_pgbouncer_stop_start_up() {
    let Some(bouncer) = PgBouncer::start(3) else {
        return;
    };
    let db = TestDb::new();
    // The database and its schema exist (created directly).
    drop(spawn_on(db.clone(), |_| {}).await);
    let through = bouncer.url(&db);

    // LISTEN through the pooler: the notification never arrives.
    let started = Instant::now();
    let database = database_settings(&through, Some(&through), None, Some("off"));
    let error = match try_spawn_on(db.clone(), |settings| settings.database = database).await {
        Ok(_) => panic!("started listening through pgbouncer"),
        Err(e) => e.to_string(),
    };
    assert!(
        error.starts_with("PLAYGATE_LISTEN_DATABASE_URL: ")
            && error.contains("did not reach the connection listening"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // The default (prepared statements, startup options): the pooler refuses.
    let database = database_settings(&through, Some(&db.url), None, None);
    let error = match try_spawn_on(db.clone(), |settings| settings.database = database).await {
        Ok(_) => panic!("started with startup options through pgbouncer"),
        Err(e) => e.to_string(),
    };
    assert!(
        error.starts_with("DATABASE_URL: ") && error.contains("unsupported startup parameter"),
        "{error}"
    );
}

/// The second pass of `scripts/test` (`TEST_THROUGH_PGBOUNCER=1`) really
/// puts the applications behind the shared pgbouncer: its admin console
/// lists the test application's connections to the test database.
#[tokio::test]
async fn the_shared_pgbouncer_carries_the_test_applications() {
    if !crate::pooler::through_pgbouncer() {
        eprintln!("SKIPPED: runs with TEST_THROUGH_PGBOUNCER=1 (scripts/test's second pass)");
        return;
    }
    let app = spawn_app().await;
    app.create(user("alice").token("alice-token")).await;
    assert_eq!(
        reason(&app.decide(session("alice-token", "s1", "start")).await),
        "ok"
    );
    let databases = crate::pooler::client_databases(crate::pooler::shared_port()).await;
    assert!(
        databases.iter().any(|name| *name == app.db.name),
        "no client of {} in pgbouncer: {databases:?}",
        app.db.name
    );
}
