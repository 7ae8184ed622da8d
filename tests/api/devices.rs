//! Sessions that match real viewing (SPEC §1 Device, §2 steps 7–9, §11):
//! zapping, device limits, capacity caps and kicks that hold, each on two
//! replicas of one database, concurrently where the issue asks for it.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::helpers::*;

/// A start of `stream` by a player with this session id, from 192.0.2.10
/// with this user agent (the device, when no id is sent).
fn start(token: &str, stream: &str, session: &str, agent: &str) -> Value {
    with(
        play(stream, "192.0.2.10"),
        json!({"token": token, "session": session, "user_agent": agent}),
    )
}

async fn two_replicas(configure: impl Fn(&mut playgate::config::Settings) + Clone) -> [TestApp; 2] {
    let a = spawn_app_with(configure.clone()).await;
    let b = spawn_on(a.db.clone(), configure).await;
    [a, b]
}

/// Sets a column the admin API sets, behind both replicas' backs, and
/// reloads their policy views.
async fn set(apps: &[TestApp; 2], statement: &str) {
    apps[0].db().await.execute(statement, &[]).await.unwrap();
    for app in apps {
        app.reload().await;
    }
}

/// (allowed, refused `stream_full`) among the decisions.
fn allowed_and_full(decisions: &[Value]) -> (usize, usize) {
    let allowed = decisions.iter().filter(|d| d["allow"] == true).count();
    let full = decisions
        .iter()
        .filter(|d| reason(d) == "stream_full")
        .count();
    (allowed, full)
}

async fn active_streams(app: &TestApp, login: &str) -> Vec<String> {
    app.db()
        .await
        .query(
            "SELECT stream FROM sessions
              WHERE login = $1 AND ended_at IS NULL AND expires_at > now() ORDER BY stream",
            &[&login],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test]
async fn a_limit_of_one_switches_channels_at_once_on_either_replica() {
    let apps = two_replicas(|_| {}).await;
    apps[0].create(user("zap").token("zap-t").limit(1)).await;
    apps[1].reload().await;
    let streams = ["ch1", "ch2", "ch3", "ch4", "ch5"];
    let mut previous: Option<(String, Value)> = None;
    for switch in 0..20 {
        let stream = streams[switch % streams.len()];
        let session = format!("player-{switch}");
        let app = &apps[switch % 2];
        let decision = app.decide(start("zap-t", stream, &session, "stb")).await;
        assert_eq!(reason(&decision), "ok", "switch {switch} to {stream}");
        assert_eq!(decision["active_sessions"], 1, "switch {switch}");
        assert_eq!(active_streams(app, "zap").await, [stream]);
        if let Some((old_session, old_decision)) = previous {
            let old_id = old_decision["session_id"].as_str().unwrap();
            assert_eq!(
                apps[0].session_state(old_id).await,
                (true, Some("replaced".into()))
            );
            // The replaced player's refresh is refused, on either replica,
            // rather than becoming a start that pushes the new one out.
            let old_stream = streams[(switch - 1) % streams.len()];
            let refresh = with(
                start("zap-t", old_stream, &old_session, "stb"),
                json!({"event": "refresh"}),
            );
            assert_eq!(
                reason(&apps[(switch + 1) % 2].decide(refresh).await),
                "session_limit"
            );
            assert_eq!(active_streams(app, "zap").await, [stream]);
        }
        previous = Some((session, decision));
    }
    // Zapping back to a channel under a replaced session id is a start.
    let back = apps[0]
        .decide(start("zap-t", "ch1", "player-15", "stb"))
        .await;
    assert_eq!(reason(&back), "ok");
    let text = apps[0].metrics_text().await + &apps[1].metrics_text().await;
    let replaced: f64 = text
        .lines()
        .filter(|line| line.starts_with("playgate_sessions_ended_total{reason=\"replaced\"}"))
        .map(|line| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(replaced, 20.0, "19 switches and the way back");
}

#[tokio::test]
async fn two_devices_switching_at_once_stay_within_the_limit() {
    let apps = two_replicas(|_| {}).await;
    apps[0].create(user("home").token("home-t").limit(2)).await;
    apps[1].reload().await;
    // Two set-top boxes of one household, each zapping through 5 channels,
    // their requests racing over both replicas.
    let zaps = (0..10).map(|switch| {
        let apps = &apps;
        async move {
            let mut reasons = Vec::new();
            for device in ["tv-1", "tv-2"] {
                let stream = format!("{device}-ch{}", switch % 5);
                let body = with(
                    start("home-t", &stream, &format!("{device}-{switch}"), "stb"),
                    json!({"device": device}),
                );
                reasons.push(apps[switch % 2].decide(body));
            }
            join_all(reasons).await
        }
    });
    let mut decisions = Vec::new();
    for round in zaps {
        decisions.extend(round.await);
        assert!(apps[0].active_sessions("home").await <= 2);
    }
    assert!(
        decisions.iter().all(|d| reason(d) == "ok"),
        "{:?}",
        decisions.iter().map(reason).collect::<Vec<_>>()
    );
    assert_eq!(apps[0].active_sessions("home").await, 2);
    // A third box is one device too many for two sessions.
    let third = with(
        start("home-t", "ch9", "tv-3-0", "stb"),
        json!({"device": "tv-3"}),
    );
    assert_eq!(reason(&apps[1].decide(third).await), "session_limit");
}

#[tokio::test]
async fn two_players_of_one_device_under_the_limit_keep_both_channels() {
    let apps = two_replicas(|_| {}).await;
    apps[0]
        .create(user("family").token("family-t").limit(2))
        .await;
    apps[1].reload().await;
    // Same address, same player software: one device key, two TVs.
    for (app, stream, session) in [(&apps[0], "news", "a"), (&apps[1], "sport", "b")] {
        assert_eq!(
            reason(&app.decide(start("family-t", stream, session, "tv")).await),
            "ok"
        );
    }
    assert_eq!(active_streams(&apps[0], "family").await, ["news", "sport"]);
}

#[tokio::test]
async fn zapping_count_keeps_the_old_session_counting() {
    let apps = two_replicas(|settings| settings.zapping = playgate::domain::Zapping::Count).await;
    apps[0].create(user("zap").token("zap-t").limit(1)).await;
    apps[1].reload().await;
    assert_eq!(
        reason(&apps[0].decide(start("zap-t", "ch1", "p1", "stb")).await),
        "ok"
    );
    assert_eq!(
        reason(&apps[1].decide(start("zap-t", "ch2", "p2", "stb")).await),
        "session_limit"
    );
}

#[tokio::test]
async fn a_device_limit_of_two_admits_exactly_two_of_three_devices() {
    let apps = two_replicas(|_| {}).await;
    apps[0].create(user("share").token("share-t")).await;
    set(
        &apps,
        "UPDATE users SET max_devices = 2 WHERE login = 'share'",
    )
    .await;
    for round in 0..5 {
        let starts = ["tv", "phone", "laptop"]
            .iter()
            .enumerate()
            .map(|(i, device)| {
                let body = with(
                    start("share-t", "news", &format!("{device}-{round}"), device),
                    json!({"device": format!("{device}-{round}")}),
                );
                apps[i % 2].decide(body)
            });
        let decisions = join_all(starts).await;
        let allowed = decisions.iter().filter(|d| d["allow"] == true).count();
        let refused: Vec<&str> = decisions
            .iter()
            .filter(|d| d["allow"] == false)
            .map(reason)
            .collect();
        assert_eq!(allowed, 2, "round {round}: {refused:?}");
        assert_eq!(refused, ["device_limit"], "round {round}");
        // A device already watching may open another stream.
        let watching = decisions.iter().position(|d| d["allow"] == true).unwrap();
        let device = format!("{}-{round}", ["tv", "phone", "laptop"][watching]);
        let second = with(
            start("share-t", "sport", &format!("{device}-second"), "x"),
            json!({"device": device}),
        );
        assert_eq!(reason(&apps[round % 2].decide(second).await), "ok");
        apps[0]
            .db()
            .await
            .execute("UPDATE sessions SET ended_at = now(), end_reason = 'stopped' WHERE ended_at IS NULL", &[])
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn sixty_starts_on_two_replicas_fill_a_package_of_five_exactly() {
    let apps = two_replicas(|_| {}).await;
    apps[0].package("sports", &["sport/*"]).await;
    set(
        &apps,
        "UPDATE packages SET max_viewers = 5 WHERE name = 'sports'",
    )
    .await;
    apps[0].create(user("fan").token("fan-t")).await;
    apps[1].reload().await;
    let starts = (0..60).map(|i| {
        apps[i % 2].decide(start(
            "fan-t",
            "sport/f1",
            &format!("fan-{i}"),
            &format!("p{i}"),
        ))
    });
    let decisions = join_all(starts).await;
    let (allowed, full) = allowed_and_full(&decisions);
    assert_eq!((allowed, full), (5, 55));
    // The cap counts every stream of the package, anyone's; others are free.
    assert_eq!(
        reason(
            &apps[0]
                .decide(start("fan-t", "sport/tennis", "t", "p"))
                .await
        ),
        "stream_full"
    );
    assert_eq!(
        reason(&apps[1].decide(start("fan-t", "news", "n", "p")).await),
        "ok"
    );
    // A refresh of an admitted viewer is never refused for the cap.
    let admitted = decisions.iter().position(|d| d["allow"] == true).unwrap();
    let refresh = with(
        start(
            "fan-t",
            "sport/f1",
            &format!("fan-{admitted}"),
            &format!("p{admitted}"),
        ),
        json!({"event": "refresh"}),
    );
    assert_eq!(
        reason(&apps[(admitted + 1) % 2].decide(refresh).await),
        "ok"
    );
}

#[tokio::test]
async fn the_service_cap_counts_every_viewer_anonymous_ones_too() {
    let apps = two_replicas(|settings| settings.max_viewers = Some(3)).await;
    apps[0]
        .ip_rule("198.51.100.0/24", playgate::domain::RuleAction::Allow)
        .await;
    apps[1].reload().await;
    let starts = (0..20).map(|i| {
        let body = with(
            play(
                &format!("stream-{}", i % 4),
                &format!("198.51.100.{}", i + 1),
            ),
            json!({"session": format!("v{i}")}),
        );
        apps[i % 2].decide(body)
    });
    let decisions = join_all(starts).await;
    let (allowed, full) = allowed_and_full(&decisions);
    assert_eq!((allowed, full), (3, 17));
}

#[tokio::test]
async fn a_kick_holds_for_one_duration_whatever_session_id_comes_back() {
    let duration = Duration::from_secs(3);
    let apps = two_replicas(move |settings| settings.session_duration = duration).await;
    seed_admins(&apps[0]).await;
    apps[0].create(user("watcher2").token("viewer-t")).await;
    apps[1].reload().await;
    let started = apps[0]
        .decide(start("viewer-t", "live/a", "conn-1", "ffmpeg"))
        .await;
    let id = started["session_id"].as_str().unwrap();
    apps[0]
        .admin("DELETE", &format!("/api/v1/sessions/{id}"), None, 204)
        .await;
    // nginx-rtmp's player reconnects at once with a new clientid, ten times.
    let kicked_at = std::time::Instant::now();
    for attempt in 0..10 {
        let body = start(
            "viewer-t",
            "live/a",
            &format!("conn-{}", attempt + 2),
            "ffmpeg",
        );
        assert_eq!(
            reason(&apps[attempt % 2].decide(body).await),
            "session_kicked",
            "attempt {attempt}"
        );
    }
    // The same user elsewhere (another address) is not held.
    let other_address = with(
        play("live/a", "192.0.2.99"),
        json!({"token": "viewer-t", "session": "elsewhere"}),
    );
    assert_eq!(reason(&apps[1].decide(other_address).await), "ok");
    // Refused attempts did not extend the hold: one duration from the kick.
    tokio::time::sleep(duration.saturating_sub(kicked_at.elapsed()) + Duration::from_millis(300))
        .await;
    let back = apps[1]
        .decide(start("viewer-t", "live/a", "conn-99", "ffmpeg"))
        .await;
    assert_eq!(reason(&back), "ok");
}
