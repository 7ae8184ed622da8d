//! Session history (sql/V12): ended sessions leave the active table for
//! `session_history`, partitioned by day, and stay visible to the admin API
//! and the statistics; old days are dropped whole; heartbeats write no index.

use std::time::{Duration, Instant};

use crate::helpers::*;

async fn count(app: &TestApp, query: &str) -> i64 {
    app.db().await.query_one(query, &[]).await.unwrap().get(0)
}

/// Polls until `query` (a count) reaches `want`, for at most 10 s.
async fn wait_count(app: &TestApp, query: &str, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let have = count(app, query).await;
        if have == want {
            return;
        }
        assert!(Instant::now() < deadline, "{query}: {have}, want {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn ended_sessions_move_to_the_history_and_stay_visible() {
    let app = spawn_app_with(|settings| settings.sweep_interval = Duration::from_secs(1)).await;
    seed_admins(&app).await;
    app.create(user("alice").token("t").limit(2)).await;
    let stopped = app.decide(session("t", "a", "start")).await;
    let kicked = app.decide(session("t", "b", "start")).await;
    app.decide(session("t", "a", "stop")).await;
    let kicked_id = kicked["session_id"].as_str().unwrap();
    app.admin(
        "DELETE",
        &format!("/api/v1/sessions/{kicked_id}"),
        None,
        204,
    )
    .await;

    // The stopped session moves at the next sweep; the kicked one stays in
    // the active table while its key is refused.
    wait_count(&app, "SELECT count(*) FROM session_history", 1).await;
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM sessions WHERE ended_at IS NOT NULL"
        )
        .await,
        1
    );
    assert_eq!(
        reason(&app.decide(session("t", "b", "start")).await),
        "session_kicked",
        "the kicked key is still refused"
    );

    let history = app
        .admin("GET", "/api/v1/sessions?state=ended&user=alice", None, 200)
        .await;
    assert_eq!(history["total"], 2);
    assert_eq!(history["items"][0]["end_reason"], "kicked", "newest first");
    assert_eq!(history["items"][1]["end_reason"], "stopped");
    let stopped_id = stopped["session_id"].as_str().unwrap();
    let moved = app
        .admin("GET", &format!("/api/v1/sessions/{stopped_id}"), None, 200)
        .await;
    assert_eq!(moved["end_reason"], "stopped");
    let stats = app
        .admin("GET", "/api/v1/stats/users/alice", None, 200)
        .await;
    assert_eq!(stats["sessions"], 2);
    let streams = app.admin("GET", "/api/v1/stats/streams", None, 200).await;
    assert_eq!(streams["items"][0]["plays"], 2, "{streams}");
}

#[tokio::test]
async fn history_past_its_days_is_dropped_a_day_at_a_time() {
    let app = spawn_app_with(|settings| {
        settings.sweep_interval = Duration::from_secs(1);
        settings.history_days = 30;
    })
    .await;
    let client = app.db().await;
    // Three ended sessions: 40 days old (its own partition), 10 days old,
    // and 400 days old in no daily partition (the default one).
    client
        .batch_execute(
            "SELECT playgate_history_partitions((now() AT TIME ZONE 'UTC')::date - 40, (now() AT TIME ZONE 'UTC')::date - 40);
             SELECT playgate_history_partitions((now() AT TIME ZONE 'UTC')::date - 10, (now() AT TIME ZONE 'UTC')::date - 10);
             INSERT INTO session_history (id, key, login, stream, client_ip, started_at, last_seen_at,
                                          expires_at, ended_at, end_reason)
             SELECT gen_random_uuid(), 'k' || d, 'old', 'news', '192.0.2.1', at - interval '1 hour', at, at, at, 'stopped'
               FROM (VALUES (40), (10), (400)) AS v(d), LATERAL (SELECT now() - make_interval(days => d) AS at) t;
             INSERT INTO denial_counts (minute, reason, count)
             SELECT date_trunc('minute', now() - make_interval(days => d)), 'session_limit', d
               FROM (VALUES (40), (10)) AS v(d);",
        )
        .await
        .unwrap();
    let old_day = format!(
        "session_history_{}",
        (chrono::Utc::now() - chrono::Duration::days(40)).format("%Y%m%d")
    );
    wait_count(
        &app,
        &format!("SELECT count(*) FROM pg_class WHERE relname = '{old_day}'"),
        0,
    )
    .await;
    wait_count(&app, "SELECT count(*) FROM session_history_default", 0).await;
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM session_history WHERE key = 'k10'"
        )
        .await,
        1,
        "history younger than PLAYGATE_HISTORY_DAYS is kept"
    );
    // Denials by reason are kept as long as the history.
    wait_count(
        &app,
        "SELECT count(*) FROM denial_counts WHERE count = 40",
        0,
    )
    .await;
    assert_eq!(
        count(&app, "SELECT count(*) FROM denial_counts WHERE count = 10").await,
        1
    );
    // The sweeper keeps the days around today ready for the next moves.
    let today = format!("session_history_{}", chrono::Utc::now().format("%Y%m%d"));
    assert_eq!(
        count(
            &app,
            &format!("SELECT count(*) FROM pg_class WHERE relname = '{today}'")
        )
        .await,
        1
    );
}

/// A heartbeat changes only columns no index covers, so PostgreSQL can
/// update the row in place (HOT) instead of writing every index of
/// `sessions`: the cost that made heartbeat batches storm (issue 16).
#[tokio::test]
async fn heartbeats_write_no_index() {
    let app = spawn_app().await;
    // What a heartbeat sets (sessions::heartbeat): no index names it, in its
    // columns, an expression or its predicate.
    let covering: Vec<String> = app
        .db()
        .await
        .query(
            "SELECT indexrelid::regclass::text FROM pg_index
              WHERE indrelid = 'sessions'::regclass
                AND pg_get_indexdef(indexrelid) ~ '(last_seen_at|expires_at|bytes)'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(
        covering.is_empty(),
        "indexes a heartbeat would write: {covering:?}"
    );

    for i in 0..20 {
        app.create(user(&format!("u{i}")).token(format!("t{i}")))
            .await;
    }
    for round in 0..4 {
        for i in 0..20 {
            let event = if round == 0 { "start" } else { "refresh" };
            let answer = app
                .decide(session(&format!("t{i}"), &format!("s{i}"), event))
                .await;
            assert_eq!(reason(&answer), "ok");
        }
        // Past the heartbeat spacing, so the next round's refreshes are written.
        tokio::time::sleep(Duration::from_millis(5200)).await;
    }
    // Statistics reach pg_stat_user_tables when a backend goes idle, within
    // seconds.
    let query =
        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'sessions'";
    let deadline = Instant::now() + Duration::from_secs(30);
    let (updates, hot): (i64, i64) = loop {
        let row = app.db().await.query_one(query, &[]).await.unwrap();
        let (updates, hot): (i64, i64) = (row.get(0), row.get(1));
        if updates >= 40 || Instant::now() > deadline {
            break (updates, hot);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(updates >= 40, "heartbeats written: {updates}");
    // Most, not all: an update that finds no room in its page (old versions
    // not yet prunable on a busy server) writes the indexes after all. With
    // an index on expires_at (before sql/V12) none was HOT.
    assert!(
        hot * 2 >= updates,
        "{hot} of {updates} heartbeats were HOT updates"
    );
}
