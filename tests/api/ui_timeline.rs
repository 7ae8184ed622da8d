//! `GET /api/v1/stats/timeline`: concurrent viewers from the session history.

use crate::helpers::*;

/// A finished session of `stream` from `start` to `end` (minutes after 10:00 UTC).
async fn session(app: &TestApp, key: &str, stream: &str, start: i32, end: Option<i32>) {
    let base = "2026-01-05 10:00:00+00";
    let client = app.db().await;
    match end {
        Some(end) => client
            .execute(
                "INSERT INTO sessions (key, login, stream, client_ip, started_at, last_seen_at, expires_at, ended_at, end_reason)
                 VALUES ($1, 'u', $2, '192.0.2.1', $3::text::timestamptz + make_interval(mins => $4),
                         $3::text::timestamptz + make_interval(mins => $5), $3::text::timestamptz + make_interval(mins => $5),
                         $3::text::timestamptz + make_interval(mins => $5), 'stopped')",
                &[&key, &stream, &base, &start, &end],
            )
            .await
            .unwrap(),
        None => client
            .execute(
                "INSERT INTO sessions (key, login, stream, client_ip, started_at, expires_at)
                 VALUES ($1, 'u', $2, '192.0.2.1', $3::text::timestamptz + make_interval(mins => $4), now() + interval '1 hour')",
                &[&key, &stream, &base, &start],
            )
            .await
            .unwrap(),
    };
}

fn viewers(body: &serde_json::Value) -> Vec<i64> {
    body["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["viewers"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn timeline_counts_sessions_open_at_each_point() {
    let app = spawn_admin_app().await;
    // a: 10:00–10:30, b: 10:10–10:20, c (other stream): 10:15–10:45, d: 10:25, still open.
    session(&app, "a", "news", 0, Some(30)).await;
    session(&app, "b", "news", 10, Some(20)).await;
    session(&app, "c", "sport", 15, Some(45)).await;
    session(&app, "d", "news", 25, None).await;
    let range = "from=2026-01-05T09:55:00Z&to=2026-01-05T10:50:00Z&step=300";
    let all = app
        .admin("GET", &format!("/api/v1/stats/timeline?{range}"), None, 200)
        .await;
    let points = all["points"].as_array().unwrap();
    assert_eq!(points.len(), 12);
    assert_eq!(points[0]["t"], "2026-01-05T09:55:00Z");
    // 9:55 10:00 10:05 10:10 10:15 10:20 10:25 10:30 10:35 10:40 10:45 10:50
    assert_eq!(viewers(&all), vec![0, 1, 1, 2, 3, 2, 3, 2, 2, 2, 1, 1]);
    let news = app
        .admin(
            "GET",
            &format!("/api/v1/stats/timeline?stream=news&{range}"),
            None,
            200,
        )
        .await;
    assert_eq!(viewers(&news), vec![0, 1, 1, 2, 2, 1, 2, 1, 1, 1, 1, 1]);

    // Observers may read it; plain users and strangers may not.
    let answer = app
        .api(
            "GET",
            &format!("/api/v1/stats/timeline?{range}"),
            OBSERVER,
            None,
        )
        .await;
    assert_eq!(answer.status, 200);
    let answer = app
        .api(
            "GET",
            &format!("/api/v1/stats/timeline?{range}"),
            VIEWER,
            None,
        )
        .await;
    assert_eq!(answer.status, 403);
    let answer = app
        .api("GET", "/api/v1/stats/timeline", Auth::None, None)
        .await;
    assert_eq!(answer.status, 401);
}

#[tokio::test]
async fn timeline_defaults_and_validation() {
    let app = spawn_admin_app().await;
    let last_day = app.admin("GET", "/api/v1/stats/timeline", None, 200).await;
    let points = last_day["points"].as_array().unwrap();
    assert!((100..=130).contains(&points.len()), "{}", points.len());
    for bad in [
        "from=yesterday",
        "step=0",
        "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
        "from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z&step=1",
    ] {
        let answer = app
            .api("GET", &format!("/api/v1/stats/timeline?{bad}"), ADMIN, None)
            .await;
        assert_eq!(answer.status, 422, "{bad}: {}", answer.body);
    }
}
