//! Refreshes answered from a replica's memory (issue 6): written to
//! PostgreSQL in batches, while kicks, stops and limits stay in force across
//! replicas.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::*;

fn refreshes_from(app_metrics: &str, source: &str) -> f64 {
    parse_metrics(app_metrics)
        .get(&format!(
            r#"playgate_session_refreshes_total{{source="{source}"}}"#
        ))
        .copied()
        .unwrap_or(0.0)
}

async fn from_memory(app: &TestApp) -> f64 {
    refreshes_from(&app.metrics_text().await, "memory")
}

fn player(session: &str, event: &str) -> serde_json::Value {
    with(
        play("news", "192.0.2.10"),
        json!({"token": "t1", "session": session, "event": event}),
    )
}

/// Polls `check` every 20 ms until it holds; the time it took, or a failure
/// naming `what` after `limit`.
async fn within<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn refreshes_are_answered_from_memory_and_written_in_batches() {
    // Rows of 8 s are written at most every 2 s (a quarter of their hold).
    let app = spawn_app_with(|settings| {
        settings.session_duration = Duration::from_secs(8);
        settings.session_grace = Duration::ZERO;
    })
    .await;
    app.create(user("alice").token("t1")).await;
    let started = app.decide(player("p1", "start")).await;
    assert_eq!(reason(&started), "ok");
    let id: uuid::Uuid = started["session_id"].as_str().unwrap().parse().unwrap();
    let seen = |id: uuid::Uuid| {
        let app = &app;
        async move {
            let row = app
                .db()
                .await
                .query_one(
                    "SELECT last_seen_at, expires_at, bytes FROM sessions WHERE id = $1",
                    &[&id],
                )
                .await
                .unwrap();
            let seen: chrono::DateTime<chrono::Utc> = row.get(0);
            let expires: chrono::DateTime<chrono::Utc> = row.get(1);
            (seen, expires, row.get::<_, Option<i64>>(2))
        }
    };
    let (first_seen, first_expiry, _) = seen(id).await;

    tokio::time::sleep(Duration::from_millis(300)).await;
    let refreshed = app
        .decide(with(player("p1", "refresh"), json!({"bytes": 4096})))
        .await;
    assert_eq!(reason(&refreshed), "ok");
    assert_eq!(refreshed["session_id"], started["session_id"]);
    assert_eq!(refreshed["active_sessions"], 1);
    assert_eq!(from_memory(&app).await, 1.0);

    // The heartbeat reaches the row with the next batch, dated when it was answered.
    let delay = within(Duration::from_secs(3), "heartbeat written", || async {
        seen(id).await.2 == Some(4096)
    })
    .await;
    println!("heartbeat written {delay:?} after the refresh");
    let (last_seen, expiry, _) = seen(id).await;
    assert!(last_seen >= first_seen + chrono::Duration::milliseconds(250));
    assert!(expiry >= first_expiry + chrono::Duration::milliseconds(250));
    assert!(last_seen <= chrono::Utc::now());
    // …and the time watched since the start is counted then.
    within(Duration::from_secs(3), "watch time counted", || async {
        let samples = parse_metrics(&app.metrics_text().await);
        samples
            .get(r#"playgate_watch_seconds_total{stream="news"}"#)
            .is_some_and(|seconds| *seconds >= 0.25)
    })
    .await;
    assert_eq!(app.active_sessions("alice").await, 1);
}

#[tokio::test]
async fn a_kick_through_one_replica_ends_refreshes_on_another_within_a_second() {
    let kicker = spawn_admin_app().await;
    kicker.create(user("alice").token("t1")).await;
    let player_side = spawn_on(kicker.db.clone(), |_| {}).await;
    player_side.reload().await;

    let started = player_side.decide(player("p1", "start")).await;
    assert_eq!(reason(&started), "ok");
    let refreshed = player_side.decide(player("p1", "refresh")).await;
    assert_eq!(reason(&refreshed), "ok");
    assert_eq!(from_memory(&player_side).await, 1.0);

    let id = started["session_id"].as_str().unwrap();
    kicker
        .admin("DELETE", &format!("/api/v1/sessions/{id}"), None, 204)
        .await;
    let delay = within(Duration::from_secs(1), "kick in force", || async {
        reason(&player_side.decide(player("p1", "refresh")).await) == "session_kicked"
    })
    .await;
    println!("kick through the other replica in force after {delay:?}");
    // Still kicked: the memory of the session is gone, not just stale.
    let again = player_side.decide(player("p1", "refresh")).await;
    assert_eq!(reason(&again), "session_kicked");
}

#[tokio::test]
async fn a_kick_through_the_same_replica_is_in_force_at_once() {
    let app = spawn_admin_app().await;
    app.create(user("alice").token("t1")).await;
    let started = app.decide(player("p1", "start")).await;
    assert_eq!(reason(&app.decide(player("p1", "refresh")).await), "ok");
    let id = started["session_id"].as_str().unwrap();
    app.admin("DELETE", &format!("/api/v1/sessions/{id}"), None, 204)
        .await;
    assert_eq!(
        reason(&app.decide(player("p1", "refresh")).await),
        "session_kicked"
    );
}

#[tokio::test]
async fn a_stop_through_another_replica_makes_the_next_refresh_a_new_session() {
    let first = spawn_app().await;
    first.create(user("alice").token("t1")).await;
    let second = spawn_on(first.db.clone(), |_| {}).await;
    second.reload().await;

    let started = second.decide(player("p1", "start")).await;
    assert_eq!(reason(&second.decide(player("p1", "refresh")).await), "ok");
    assert_eq!(from_memory(&second).await, 1.0);
    let stopped = first.decide(player("p1", "stop")).await;
    assert_eq!(stopped["session_id"], started["session_id"]);

    within(Duration::from_secs(1), "stop in force", || async {
        let refreshed = second.decide(player("p1", "refresh")).await;
        assert_eq!(reason(&refreshed), "ok");
        refreshed["session_id"] != started["session_id"]
    })
    .await;
    let (ended, end_reason) = first
        .session_state(started["session_id"].as_str().unwrap())
        .await;
    assert!(ended);
    assert_eq!(end_reason.as_deref(), Some("stopped"));
    assert_eq!(first.active_sessions("alice").await, 1);
}

#[tokio::test]
async fn batched_heartbeats_keep_the_limit_exact() {
    // Rows hold 3 s: without the batches writing the heartbeats, the first
    // viewer's row would expire and free the slot.
    let short = |settings: &mut playgate::config::Settings| {
        settings.session_duration = Duration::from_secs(3);
        settings.session_grace = Duration::ZERO;
    };
    let first = spawn_app_with(short).await;
    first.create(user("alice").token("t1").limit(1)).await;
    let second = spawn_on(first.db.clone(), short).await;
    second.reload().await;

    assert_eq!(reason(&first.decide(player("p1", "start")).await), "ok");
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        assert_eq!(reason(&first.decide(player("p1", "refresh")).await), "ok");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(from_memory(&first).await >= 5.0);
    assert_eq!(
        reason(&second.decide(player("p2", "start")).await),
        "session_limit"
    );
    assert_eq!(first.active_sessions("alice").await, 1);

    // Once the first viewer is gone, the slot frees.
    first.decide(player("p1", "stop")).await;
    assert_eq!(reason(&second.decide(player("p2", "start")).await), "ok");
}

#[tokio::test]
async fn hls_segments_are_answered_from_memory() {
    let app = spawn_app().await;
    app.create(user("alice").token("t1").limit(1)).await;
    let get = |uri: &'static str| async { app.hls_get(uri, "198.51.100.1").await.status };
    assert_eq!(get("/live/news/index.m3u8?token=t1").await, 200);
    for uri in ["/live/news/1.ts", "/live/news/2.ts", "/live/news/3.ts"] {
        assert_eq!(get(uri).await, 200, "{uri}");
    }
    assert_eq!(from_memory(&app).await, 3.0);
    assert_eq!(app.active_sessions("alice").await, 1);
    // That a user disabled meanwhile is refused at the next segment (answered
    // from memory too) is hook_forward_auth::continuation_rechecks_the_user.
}
