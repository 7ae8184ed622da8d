//! A `/hook/decide` stop names a session by the same key as its start, and
//! that key includes the caller's address (issue 15, item 2): a stop with
//! someone's session id, stream and ip used to end their session.
//!
//! Caller A is the test's usual client (127.0.0.1); caller B is bound to
//! 127.0.0.2.

use serde_json::{json, Value};

use crate::helpers::*;

fn watching(extra: Value) -> Value {
    with(play("news", "192.0.2.1"), extra)
}

#[tokio::test]
async fn another_caller_cannot_stop_a_session() {
    let app = spawn_app().await;
    app.create(user("alice").token("t").limit(1)).await;
    let caller_b = client_from("127.0.0.2");

    let started = app
        .decide(watching(
            json!({"token": "t", "session": "player-1", "streamer": "edge-1"}),
        ))
        .await;
    assert_eq!(reason(&started), "ok");
    let id = started["session_id"].as_str().unwrap().to_string();

    // B names the same session, stream, ip and streamer: without the token,
    // and with it.
    for extra in [
        json!({"session": "player-1", "streamer": "edge-1", "event": "stop"}),
        json!({"token": "t", "session": "player-1", "streamer": "edge-1", "event": "stop"}),
    ] {
        let stopped = app.decide_via(&caller_b, watching(extra)).await;
        assert_eq!(reason(&stopped), "ok", "a stop always answers success");
        assert!(stopped["session_id"].is_null(), "{stopped}");
        assert_eq!(app.session_state(&id).await, (false, None));
    }
    assert_eq!(app.active_sessions("alice").await, 1);
    // A's session plays on.
    let refreshed = app
        .decide(watching(
            json!({"token": "t", "session": "player-1", "streamer": "edge-1", "event": "refresh"}),
        ))
        .await;
    assert_eq!(reason(&refreshed), "ok");
    assert_eq!(refreshed["session_id"], started["session_id"]);
    // B cannot refresh into it either: a start of B's own, over the limit.
    let intruder = app
        .decide_via(
            &caller_b,
            watching(
                json!({"token": "t", "session": "player-1", "streamer": "edge-1",
                            "event": "refresh"}),
            ),
        )
        .await;
    assert_eq!(reason(&intruder), "session_limit", "{intruder}");

    // A's own stop ends it.
    let stopped = app
        .decide(watching(
            json!({"session": "player-1", "streamer": "edge-1", "event": "stop"}),
        ))
        .await;
    assert_eq!(stopped["session_id"], started["session_id"]);
    assert_eq!(app.session_state(&id).await, (true, Some("stopped".into())));
}

#[tokio::test]
async fn another_caller_cannot_stop_a_session_keyed_by_its_credentials() {
    let app = spawn_app().await;
    app.create(user("alice").token("t")).await;
    let caller_b = client_from("127.0.0.2");
    // No session id: the key is derived (credential, stream, ip, agent, caller).
    let request =
        |event: &str| watching(json!({"token": "t", "user_agent": "VLC", "event": event}));
    let started = app.decide(request("start")).await;
    let id = started["session_id"].as_str().unwrap().to_string();
    app.decide_via(&caller_b, request("stop")).await;
    let without_token = watching(json!({"user_agent": "VLC", "event": "stop"}));
    app.decide_via(&caller_b, without_token.clone()).await;
    app.decide(without_token).await;
    assert_eq!(app.session_state(&id).await, (false, None));
    app.decide(request("stop")).await;
    assert_eq!(app.session_state(&id).await, (true, Some("stopped".into())));
}
