//! `/api/v1/stats/*` sums match the sessions that were created.

use serde_json::{json, Value};

use crate::helpers::*;

fn item<'a>(items: &'a Value, stream: &str) -> &'a Value {
    items["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["stream"] == stream)
        .unwrap_or_else(|| panic!("{stream} missing from {items}"))
}

#[tokio::test]
async fn stream_and_user_statistics_match_the_sessions() {
    let app = spawn_admin_app().await;
    app.create(user("alice").token("a")).await;
    app.create(user("bob").token("b")).await;
    let play = |token: &str, stream: &str, session: &str| {
        with(
            play(stream, "192.0.2.1"),
            json!({"token": token, "session": session}),
        )
    };
    for (token, stream, session) in [
        ("a", "news", "1"),
        ("a", "news", "2"),
        ("b", "news", "3"),
        ("b", "sport", "4"),
    ] {
        assert_eq!(
            reason(&app.decide(play(token, stream, session)).await),
            "ok"
        );
    }
    // Known durations: each session started at a fixed time in the last hours.
    let client = app.db().await;
    client
        .batch_execute(
            "UPDATE sessions SET started_at = now() - interval '2 hours', ended_at = now() - interval '1 hour',
                                 end_reason = 'stopped' WHERE key LIKE '%:1';
             UPDATE sessions SET started_at = now() - interval '30 minutes' WHERE key LIKE '%:2';
             UPDATE sessions SET started_at = now() - interval '3 days', ended_at = now() - interval '47 hours',
                                 end_reason = 'stopped' WHERE key LIKE '%:3';
             UPDATE sessions SET started_at = now() - interval '10 minutes' WHERE key LIKE '%:4';",
        )
        .await
        .unwrap();

    let day = app.admin("GET", "/api/v1/stats/streams", None, 200).await;
    let news = item(&day, "news");
    assert_eq!(news["viewers"], 1, "session 2 is open");
    assert_eq!(
        news["plays"], 2,
        "sessions 1 and 2 started in the last 24 h"
    );
    assert_eq!(news["unique_users"], 1, "bob's news session ended 47 h ago");
    let watched = news["watch_seconds"].as_f64().unwrap();
    assert!((watched - (3600.0 + 1800.0)).abs() < 30.0, "{watched}");
    assert_eq!(news["peak_viewers"], 1);
    let sport = item(&day, "sport");
    assert_eq!(
        (sport["viewers"].clone(), sport["plays"].clone()),
        (json!(1), json!(1))
    );
    assert!((sport["watch_seconds"].as_f64().unwrap() - 600.0).abs() < 30.0);

    // A window that holds bob's old session: clipped to the window.
    let from = (chrono::Utc::now() - chrono::Duration::hours(72) - chrono::Duration::minutes(1))
        .to_rfc3339();
    let to = (chrono::Utc::now() - chrono::Duration::hours(48)).to_rfc3339();
    let old = app
        .admin(
            "GET",
            &format!(
                "/api/v1/stats/streams?from={}&to={}",
                urlencode(&from),
                urlencode(&to)
            ),
            None,
            200,
        )
        .await;
    let old_news = item(&old, "news");
    assert_eq!(old_news["plays"], 1);
    assert!(
        (old_news["watch_seconds"].as_f64().unwrap() - 86_400.0).abs() < 120.0,
        "{old_news}"
    );

    let alice = app
        .admin("GET", "/api/v1/stats/users/alice", None, 200)
        .await;
    assert_eq!(alice["login"], "alice");
    assert_eq!(alice["sessions"], 2);
    assert!(
        (alice["watch_seconds"].as_f64().unwrap() - 5400.0).abs() < 30.0,
        "{alice}"
    );
    assert_eq!(alice["streams"][0]["stream"], "news");
    let bob = app.admin("GET", "/api/v1/stats/users/bob", None, 200).await;
    assert_eq!(
        bob["sessions"], 1,
        "only the sport session is in the last 24 h"
    );

    // Observers may read; errors are the API's.
    assert_eq!(
        app.api("GET", "/api/v1/stats/streams", OBSERVER, None)
            .await
            .status,
        200
    );
    assert_eq!(
        app.api("GET", "/api/v1/stats/streams", VIEWER, None)
            .await
            .status,
        403
    );
    assert_eq!(
        app.api("GET", "/api/v1/stats/streams", Auth::None, None)
            .await
            .status,
        401
    );
    let bad = app
        .api("GET", "/api/v1/stats/streams?from=yesterday", ADMIN, None)
        .await;
    assert_eq!(
        (bad.status, bad.body["field"].clone()),
        (422, json!("from"))
    );
    let reversed = app
        .api(
            "GET",
            &format!(
                "/api/v1/stats/streams?from={}&to={}",
                urlencode(&to),
                urlencode(&from)
            ),
            ADMIN,
            None,
        )
        .await;
    assert_eq!(reversed.status, 422);
    assert_eq!(
        app.api("GET", "/api/v1/stats/users/nobody", ADMIN, None)
            .await
            .status,
        404
    );
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// With `PLAYGATE_STATS_DATABASE_URL` the statistics and the timeline come
/// from that database (a replica in production; here another database, so
/// that where the answer came from shows), everything else from DATABASE_URL.
#[tokio::test]
async fn statistics_come_from_the_stats_database() {
    let stats_db = TestDb::new();
    // Its schema, and one session of its own.
    let elsewhere = spawn_on(stats_db.clone(), |_| {}).await;
    elsewhere.create(user("carol").token("c")).await;
    let start =
        |token: &str, stream: &str| with(play(stream, "192.0.2.1"), json!({"token": token}));
    assert_eq!(
        reason(&elsewhere.decide(start("c", "replica-only")).await),
        "ok"
    );

    let db = TestDb::new();
    let (main, stats) = (db.url.clone(), stats_db.url.clone());
    let app = spawn_on(db, |settings| {
        settings.database = database_settings(&main, None, Some(&stats), None);
    })
    .await;
    seed_admins(&app).await;
    app.create(user("alice").token("a")).await;
    assert_eq!(reason(&app.decide(start("a", "news")).await), "ok");

    let streams = app.admin("GET", "/api/v1/stats/streams", None, 200).await;
    let names: Vec<&str> = streams["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["stream"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["replica-only"], "{streams}");
    let carol = app
        .admin("GET", "/api/v1/stats/users/carol", None, 200)
        .await;
    assert_eq!(carol["sessions"], 1, "{carol}");
    let timeline = app
        .admin(
            "GET",
            "/api/v1/stats/timeline?stream=replica-only",
            None,
            200,
        )
        .await;
    let points = timeline["points"].as_array().unwrap();
    assert_eq!(points.last().unwrap()["viewers"], 1, "{timeline}");
    // The sessions API is not statistics: it reads DATABASE_URL.
    let sessions = app.admin("GET", "/api/v1/sessions", None, 200).await;
    assert_eq!(sessions["total"], 1);
    assert_eq!(sessions["items"][0]["stream"], "news");
}

/// Denials by reason (SPEC §4): counted per minute in memory, added to the
/// database every PLAYGATE_STATS_INTERVAL, summed over the window. A flood
/// of refusals is a row per reason and minute, not a row per denial.
#[tokio::test]
async fn denials_are_counted_by_reason() {
    let app = spawn_app_with(|settings| {
        settings.stats_interval = std::time::Duration::from_secs(1);
    })
    .await;
    seed_admins(&app).await;
    app.create(user("alice").token("t").limit(1)).await;
    assert_eq!(
        reason(&app.decide(session("t", "one", "start")).await),
        "ok"
    );
    // Account sharing: 30 more players on one account with a limit of 1.
    for n in 0..30 {
        let other = app
            .decide(session("t", &format!("other-{n}"), "start"))
            .await;
        assert_eq!(reason(&other), "session_limit");
    }
    assert_eq!(
        reason(&app.decide(play("news", "192.0.2.1")).await),
        "no_credentials"
    );
    let wanted = json!([{"reason": "session_limit", "count": 30},
                        {"reason": "no_credentials", "count": 1}]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let denials = app.admin("GET", "/api/v1/stats/denials", None, 200).await;
        if denials["items"] == wanted {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never counted: {denials}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let rows: i64 = app
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM denial_counts WHERE reason = 'session_limit'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        rows <= 2,
        "{rows} rows for 30 denials (a minute may turn over)"
    );
    // A window with none of them.
    let past = app
        .admin(
            "GET",
            "/api/v1/stats/denials?from=2001-01-01T00:00:00Z&to=2001-01-02T00:00:00Z",
            None,
            200,
        )
        .await;
    assert_eq!(past["items"], json!([]));
}
