//! SPEC §7 metrics, read back from /metrics with a text-format parser.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use playgate::domain::RuleAction;
use serde_json::json;

use crate::helpers::*;

fn sample(samples: &HashMap<String, f64>, key: &str) -> f64 {
    samples.get(key).copied().unwrap_or(0.0)
}

fn stream_sample(samples: &HashMap<String, f64>, family: &str, stream: &str) -> f64 {
    sample(samples, &format!(r#"{family}{{stream="{stream}"}}"#))
}

/// Polls /metrics until `check` holds (the cluster gauges are read on a timer).
async fn metrics_until(
    app: &TestApp,
    check: impl Fn(&HashMap<String, f64>) -> bool,
) -> HashMap<String, f64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let samples = parse_metrics(&app.metrics_text().await);
        if check(&samples) {
            return samples;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never matched: {samples:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn counters_and_gauges_equal_what_was_done() {
    let app = spawn_app_with(|settings| settings.stats_interval = Duration::from_secs(1)).await;
    app.create(user("alice").token("a").limit(5)).await;
    app.create(user("bob").token("b").disabled()).await;
    let start = |token: &str, stream: &str, session: &str| {
        with(
            play(stream, "192.0.2.1"),
            json!({"token": token, "stream": stream, "session": session}),
        )
    };
    for (stream, session) in [("news", "1"), ("news", "2"), ("sport", "3")] {
        assert_eq!(reason(&app.decide(start("a", stream, session)).await), "ok");
    }
    // A refresh and a repeated start are not new sessions.
    app.decide(with(start("a", "news", "1"), json!({"event": "refresh"})))
        .await;
    app.decide(start("a", "news", "2")).await;
    assert_eq!(
        reason(&app.decide(start("b", "news", "9")).await),
        "user_disabled"
    );
    app.decide(with(start("a", "sport", "3"), json!({"event": "stop"})))
        .await;

    let samples = metrics_until(&app, |s| {
        stream_sample(s, "playgate_viewers", "news") == 2.0
            && !s.contains_key(r#"playgate_viewers{stream="sport"}"#)
    })
    .await;
    assert_eq!(
        stream_sample(&samples, "playgate_sessions_started_total", "news"),
        2.0
    );
    assert_eq!(
        stream_sample(&samples, "playgate_sessions_started_total", "sport"),
        1.0
    );
    assert_eq!(sample(&samples, "playgate_active_sessions"), 2.0);
    assert_eq!(sample(&samples, "playgate_users"), 2.0);
    assert_eq!(decisions(&samples, "decide", "allow", "ok"), 6.0);
    assert_eq!(decisions(&samples, "decide", "deny", "user_disabled"), 1.0);
    assert_eq!(
        sample(
            &samples,
            r#"playgate_decision_duration_seconds_count{dialect="decide"}"#
        ),
        7.0
    );
    assert!(sample(&samples, r#"playgate_db_pool_connections{state="max"}"#) >= 1.0);
    // Never a user or an IP as a label.
    let text = app.metrics_text().await;
    assert!(!text.contains("alice") && !text.contains("192.0.2.1"));
}

#[tokio::test]
async fn distinct_streams_beyond_the_limit_fold_into_other() {
    let app = spawn_app().await;
    app.ip_rule("203.0.113.0/24", RuleAction::Allow).await;
    let mut tasks = Vec::new();
    for n in 0..1001 {
        let url = format!("{}/hook/decide", app.address);
        let http = app.http.clone();
        tasks.push(tokio::spawn(async move {
            let body = json!({"stream": format!("channel-{n}"), "ip": "203.0.113.1"});
            http.post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
        if tasks.len() == 16 {
            for task in tasks.drain(..) {
                assert_eq!(task.await.unwrap(), 200);
            }
        }
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    let samples = parse_metrics(&app.metrics_text().await);
    let started: Vec<(&String, &f64)> = samples
        .iter()
        .filter(|(key, _)| key.starts_with("playgate_sessions_started_total{"))
        .collect();
    assert_eq!(started.len(), 1001, "1000 streams and other");
    assert_eq!(
        stream_sample(&samples, "playgate_sessions_started_total", "other"),
        1.0
    );
    assert_eq!(
        started.iter().map(|(_, value)| **value).sum::<f64>(),
        1001.0
    );
}

#[tokio::test]
async fn an_hour_of_watching_adds_an_hour_however_it_ended() {
    let app = spawn_app_with(|settings| settings.sweep_interval = Duration::from_secs(1)).await;
    app.create(user("alice").token("t")).await;
    let request = |stream: &str, event: &str| {
        with(
            play(stream, "192.0.2.1"),
            json!({"token": "t", "session": stream, "event": event}),
        )
    };
    for stream in ["refreshed", "stopped", "abandoned"] {
        app.decide(request(stream, "start")).await;
    }
    // Pretend each has been watched for an hour, last seen 60 s ago (one duration).
    app.db()
        .await
        .batch_execute(
            "UPDATE sessions SET started_at = now() - interval '3600 seconds',
                                 last_seen_at = now() - interval '60 seconds'",
        )
        .await
        .unwrap();
    // Refreshed every duration so far: the last minute accrues when the
    // heartbeat is written (answered from memory, written within seconds).
    app.decide(request("refreshed", "refresh")).await;
    app.decide(request("stopped", "stop")).await;
    // The abandoned one expired without a stop: the sweeper counts it.
    app.db()
        .await
        .batch_execute(
            "UPDATE sessions SET expires_at = now() - interval '1 second',
                                 last_seen_at = now() - interval '91 seconds'
              WHERE stream = 'abandoned'",
        )
        .await
        .unwrap();
    let samples = metrics_until(&app, |s| {
        stream_sample(s, "playgate_watch_seconds_total", "abandoned") > 0.0
            && stream_sample(s, "playgate_watch_seconds_total", "refreshed") > 0.0
    })
    .await;
    let near = |value: f64, expected: f64| (value - expected).abs() < 2.0;
    assert!(near(
        stream_sample(&samples, "playgate_watch_seconds_total", "refreshed"),
        60.0
    ));
    assert!(near(
        stream_sample(&samples, "playgate_watch_seconds_total", "stopped"),
        60.0
    ));
    // Last seen 91 s before expiry: watched until its answer stopped holding (60 s).
    assert!(near(
        stream_sample(&samples, "playgate_watch_seconds_total", "abandoned"),
        60.0
    ));
    // Counted once: more sweeps add nothing.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let later = parse_metrics(&app.metrics_text().await);
    assert_eq!(
        stream_sample(&later, "playgate_watch_seconds_total", "abandoned"),
        stream_sample(&samples, "playgate_watch_seconds_total", "abandoned")
    );
}
