//! `/hook/mediamtx` contract: MediaMTX `authMethod: http` JSON
//! (`internal/auth/manager.go`).

use crate::helpers::*;

fn auth(user: &str, password: &str, token: &str, action: &str, query: &str) -> String {
    format!(
        r#"{{"user":"{user}","password":"{password}","token":"{token}","ip":"192.0.2.4","action":"{action}",
            "path":"cam1","protocol":"rtsp","id":"9f3b1d7e-1c1a-4a7e-9a55-0c7d0b2f0001","query":"{query}",
            "userAgent":"VLC/3.0"}}"#
    )
}

#[tokio::test]
async fn credentials_allow_and_deny() {
    let app = spawn_app().await;
    app.create(user("alice").token("t1").password("pw")).await;
    // Basic / RTSP credentials (MediaMTX copies the password into `token`).
    let basic = app
        .hook_post_json("/hook/mediamtx", &auth("alice", "pw", "pw", "read", ""))
        .await;
    assert_eq!(basic.status, 200);
    // Bearer token.
    let bearer = app
        .hook_post_json("/hook/mediamtx", &auth("", "", "t1", "read", ""))
        .await;
    assert_eq!(bearer.status, 200);
    // HLS / WebRTC: ?token= only in the raw query.
    let query = app
        .hook_post_json("/hook/mediamtx", &auth("", "", "", "playback", "token=t1"))
        .await;
    assert_eq!(query.status, 200);

    // No credentials at all: 401, so MediaMTX asks the client for them.
    let none = app
        .hook_post_json("/hook/mediamtx", &auth("", "", "", "read", ""))
        .await;
    assert_eq!(none.status, 401);
    let wrong = app
        .hook_post_json("/hook/mediamtx", &auth("alice", "nope", "nope", "read", ""))
        .await;
    assert_eq!(wrong.status, 403);
    assert_eq!(
        app.decision_count("mediamtx", "deny", "bad_credentials")
            .await,
        1.0
    );
    // MediaMTX sends no stop: sessions end by timeout.
}

#[tokio::test]
async fn publish_is_not_a_play() {
    let app = spawn_app().await;
    app.create(user("alice").token("t1")).await;
    let publish = app
        .hook_post_json("/hook/mediamtx", &auth("", "", "t1", "publish", ""))
        .await;
    assert_eq!(publish.status, 403);
    assert_eq!(
        app.decision_count("mediamtx", "deny", "publish_not_allowed")
            .await,
        1.0
    );
}

#[tokio::test]
async fn malformed_is_400() {
    let app = spawn_app().await;
    for body in [
        "{}".to_string(),
        "[1,2]".to_string(),
        auth("", "", "t1", "api", ""),
        auth("", "", "t1", "read", "").replace("192.0.2.4", "localhost"),
        auth("", "", "t1", "read", "").replace(r#""path":"cam1""#, r#""path":"""#),
    ] {
        let answer = app.hook_post_json("/hook/mediamtx", &body).await;
        assert_eq!(answer.status, 400, "{body}");
    }
    assert_eq!(
        app.decision_count("mediamtx", "deny", "bad_request").await,
        5.0
    );
}
