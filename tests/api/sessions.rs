//! Sessions: refresh, stop, timeout, limits across replicas, kick, changes in
//! force at the next refresh.

use std::time::{Duration, Instant};

use playgate::config::LimitPolicy;
use playgate::domain::RuleAction;
use playgate::store::sessions;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn refresh_never_counts_against_its_own_limit() {
    let app = spawn_app().await;
    app.create(user("alice").token("t").limit(1)).await;
    let started = app.decide(session("t", "a", "start")).await;
    assert_eq!(reason(&started), "ok");
    for _ in 0..3 {
        let refreshed = app.decide(session("t", "a", "refresh")).await;
        assert_eq!(reason(&refreshed), "ok");
        assert_eq!(refreshed["session_id"], started["session_id"]);
        assert_eq!(refreshed["active_sessions"], 1);
    }
    // A restart with the same key reuses the slot too.
    let again = app.decide(session("t", "a", "start")).await;
    assert_eq!(again["session_id"], started["session_id"]);
    assert_eq!(app.active_sessions("alice").await, 1);
    assert_eq!(
        reason(&app.decide(session("t", "b", "start")).await),
        "session_limit"
    );
}

#[tokio::test]
async fn derived_key_reuses_the_slot_of_a_reconnecting_player() {
    let app = spawn_app().await;
    app.create(user("alice").token("t").limit(1)).await;
    let request = with(
        play("news", "192.0.2.1"),
        json!({"token": "t", "user_agent": "VLC/3"}),
    );
    let first = app.decide(request.clone()).await;
    let second = app.decide(request.clone()).await;
    assert_eq!(reason(&second), "ok");
    assert_eq!(first["session_id"], second["session_id"]);
    let other_agent = with(request, json!({"user_agent": "mpv"}));
    assert_eq!(reason(&app.decide(other_agent).await), "session_limit");
}

#[tokio::test]
async fn refresh_of_an_unknown_session_is_a_start() {
    let app = spawn_app().await;
    app.create(user("alice").token("t").limit(1)).await;
    let refreshed = app.decide(session("t", "never-seen", "refresh")).await;
    assert_eq!(reason(&refreshed), "ok");
    assert_eq!(refreshed["active_sessions"], 1);
    assert_eq!(
        reason(&app.decide(session("t", "other", "refresh")).await),
        "session_limit"
    );
}

#[tokio::test]
async fn stop_frees_the_slot() {
    let app = spawn_app().await;
    app.create(user("alice").token("t").limit(1)).await;
    let first = app
        .decide(with(session("t", "a", "start"), json!({"bytes": 10})))
        .await;
    assert_eq!(
        reason(&app.decide(session("t", "b", "start")).await),
        "session_limit"
    );
    let stopped = app
        .decide(with(session("t", "a", "stop"), json!({"bytes": 4096})))
        .await;
    assert_eq!(stopped["allow"], true);
    assert_eq!(stopped["session_id"], first["session_id"]);
    let id = first["session_id"].as_str().unwrap();
    assert_eq!(app.session_state(id).await, (true, Some("stopped".into())));
    let stored = sessions::get(&app.db().await, id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.bytes, Some(4096));
    assert_eq!(reason(&app.decide(session("t", "b", "start")).await), "ok");
    // A stop for a session nobody knows still succeeds for the streamer.
    let unknown = app.decide(session("t", "zzz", "stop")).await;
    assert_eq!(unknown["allow"], true);
    assert_eq!(unknown["session_id"], Value::Null);
}

#[tokio::test]
async fn sessions_not_refreshed_end_by_timeout() {
    let app = spawn_app_with(|settings| {
        settings.session_duration = Duration::from_secs(1);
        settings.session_grace = Duration::from_secs(1);
        settings.sweep_interval = Duration::from_secs(1);
    })
    .await;
    app.create(user("alice").token("t").limit(1)).await;
    let first = app.decide(session("t", "a", "start")).await;
    assert_eq!(first["duration"], 1);
    assert_eq!(
        reason(&app.decide(session("t", "b", "start")).await),
        "session_limit"
    );
    let id = first["session_id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !app.session_state(&id).await.0 {
        assert!(Instant::now() < deadline, "session never timed out");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(app.session_state(&id).await, (true, Some("timeout".into())));
    let row = app
        .db()
        .await
        .query_one(
            "SELECT ended_at = last_seen_at + interval '1 second' FROM session_log WHERE id = $1",
            &[&id.parse::<uuid::Uuid>().unwrap()],
        )
        .await
        .unwrap();
    assert!(
        row.get::<_, bool>(0),
        "a timed-out session ends when its last answer stopped holding"
    );
    assert_eq!(reason(&app.decide(session("t", "b", "start")).await), "ok");
}

/// Refreshes until the answer changes (the view reloads on NOTIFY), at most 3 s.
async fn refresh_until(app: &TestApp, request: &Value, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let decision = app.decide(request.clone()).await;
        if reason(&decision) == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still {decision} instead of {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn database_changes_are_in_force_at_the_next_refresh() {
    let app = spawn_app().await;
    app.create(user("alice").token("alice-t")).await;
    app.create(user("bob").token("bob-t")).await;
    app.create(user("carol").token("carol-t")).await;
    let alice = session("alice-t", "a", "refresh");
    let bob = session("bob-t", "b", "refresh");
    let carol = with(
        session("carol-t", "c", "refresh"),
        json!({"ip": "198.51.100.4"}),
    );
    for request in [&alice, &bob, &carol] {
        assert_eq!(reason(&app.decide(request.clone()).await), "ok");
    }
    // Written straight to the database, as another replica or an operator would:
    // only the NOTIFY trigger tells this replica.
    let client = app.db().await;
    client
        .execute(
            "UPDATE users SET enabled = false WHERE login = 'alice'",
            &[],
        )
        .await
        .unwrap();
    client
        .execute(
            "DELETE FROM tokens WHERE user_id = (SELECT id FROM users WHERE login = 'bob')",
            &[],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO ip_rules (network, action) VALUES ('198.51.100.0/24', 'deny')",
            &[],
        )
        .await
        .unwrap();
    refresh_until(&app, &alice, "user_disabled").await;
    refresh_until(&app, &bob, "unknown_token").await;
    refresh_until(&app, &carol, "ip_denied").await;
}

#[tokio::test]
async fn limits_are_exact_across_two_replicas() {
    // Exactness is the point here, not the database timeout: on a loaded
    // machine 50 admissions queued on one user's lock may wait past 2 s.
    let patient = |s: &mut playgate::Settings| s.db_timeout = Duration::from_secs(20);
    let first = spawn_app_with(patient).await;
    let second = spawn_on(first.db.clone(), patient).await;
    first.create(user("alice").token("t").limit(3)).await;
    second.reload().await;

    let mut tasks = Vec::new();
    for n in 0..50 {
        let app = if n % 2 == 0 { &first } else { &second };
        let url = format!("{}/hook/decide", app.address);
        let http = app.http.clone();
        tasks.push(tokio::spawn(async move {
            let body = session("t", &format!("viewer-{n}"), "start");
            let decision: Value = http
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            decision
        }));
    }
    let mut allowed = 0;
    for task in tasks {
        let decision = task.await.unwrap();
        match reason(&decision) {
            "ok" => allowed += 1,
            "session_limit" => assert_eq!(decision["active_sessions"], 3),
            other => panic!("unexpected {other}: {decision}"),
        }
    }
    assert_eq!(allowed, 3);
    assert_eq!(first.active_sessions("alice").await, 3);
}

#[tokio::test]
async fn kick_oldest_ends_the_oldest_session() {
    let app = spawn_app_with(|settings| settings.limit_policy = LimitPolicy::KickOldest).await;
    app.create(user("alice").token("t").limit(2)).await;
    let oldest = app.decide(session("t", "s1", "start")).await;
    app.decide(session("t", "s2", "start")).await;
    let newest = app.decide(session("t", "s3", "start")).await;
    assert_eq!(reason(&newest), "ok");
    assert_eq!(newest["active_sessions"], 2);
    let oldest_id = oldest["session_id"].as_str().unwrap();
    assert_eq!(
        app.session_state(oldest_id).await,
        (true, Some("limit".into()))
    );
    assert_eq!(app.active_sessions("alice").await, 2);
    // The kicked player's next refresh is denied rather than kicking another.
    let refused = app.decide(session("t", "s1", "refresh")).await;
    assert_eq!(
        (refused["allow"].clone(), reason(&refused)),
        (json!(false), "session_limit")
    );
    assert_eq!(
        reason(&app.decide(session("t", "s3", "refresh")).await),
        "ok"
    );
    assert_eq!(app.active_sessions("alice").await, 2);
}

#[tokio::test]
async fn kicked_session_stays_denied_for_one_duration() {
    let app = spawn_app_with(|settings| settings.session_duration = Duration::from_secs(2)).await;
    app.create(user("alice").token("t")).await;
    let started = app.decide(session("t", "a", "start")).await;
    let id: uuid::Uuid = started["session_id"].as_str().unwrap().parse().unwrap();
    assert!(sessions::kick(&app.db().await, id, Duration::from_secs(2))
        .await
        .unwrap());
    assert_eq!(
        app.session_state(&id.to_string()).await,
        (true, Some("kicked".into()))
    );
    // Kicked behind the replica's back (not through its admin API): in force
    // once PostgreSQL's notification arrives (milliseconds).
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while reason(&app.decide(session("t", "a", "refresh")).await) != "session_kicked" {
        assert!(std::time::Instant::now() < deadline, "kick not in force");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        reason(&app.decide(session("t", "a", "start")).await),
        "session_kicked"
    );
    // The kick holds for the user, stream and address, whatever new
    // session id the player reconnects with (SPEC §2 step 7)...
    assert_eq!(
        reason(&app.decide(session("t", "b", "start")).await),
        "session_kicked"
    );
    // ...and for nothing else: another stream, another address.
    let elsewhere = json!({"token": "t", "session": "c"});
    assert_eq!(
        reason(
            &app.decide(with(play("sport", "192.0.2.1"), elsewhere.clone()))
                .await
        ),
        "ok"
    );
    assert_eq!(
        reason(&app.decide(with(play("news", "192.0.2.9"), elsewhere)).await),
        "ok"
    );
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let back = app.decide(session("t", "a", "refresh")).await;
    assert_eq!(reason(&back), "ok");
    assert_ne!(back["session_id"], started["session_id"]);
}

#[tokio::test]
async fn allow_rule_added_lets_anonymous_viewers_in() {
    let app = spawn_app().await;
    assert_eq!(
        reason(&app.decide(play("news", "203.0.113.9")).await),
        "no_credentials"
    );
    app.ip_rule("203.0.113.0/24", RuleAction::Allow).await;
    assert_eq!(
        reason(&app.decide(play("news", "203.0.113.9")).await),
        "ip_allowed"
    );
}
