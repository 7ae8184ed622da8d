//! `/hook/srs` contract: SRS `http_hooks` JSON (`srs_app_http_hooks.cpp`).

use crate::helpers::*;

fn hook(action: &str, client_id: &str, param: &str) -> String {
    format!(
        r#"{{"server_id":"vid-0xk989d","service_id":"s7b2","action":"{action}","client_id":"{client_id}",
            "ip":"192.0.2.8","vhost":"__defaultVhost__","app":"live","stream":"livestream",
            "tcUrl":"rtmp://127.0.0.1:1935/live","param":"{param}","pageUrl":"",
            "stream_url":"/live/livestream","stream_id":"vid-124q9y3"}}"#
    )
}

#[tokio::test]
async fn play_stop_and_deny() {
    let app = spawn_app().await;
    app.create(user("alice").token("t1")).await;
    let allowed = app
        .hook_post_json("/hook/srs", &hook("on_play", "3c9e7x0h", "?token=t1"))
        .await;
    assert_eq!((allowed.status, allowed.body.as_str()), (200, "0"));

    let stopped = app
        .hook_post_json("/hook/srs", &hook("on_stop", "3c9e7x0h", "?token=t1"))
        .await;
    assert_eq!((stopped.status, stopped.body.as_str()), (200, "0"));
    assert_eq!(
        app.sessions_of_dialect("srs").await,
        vec![(Some("alice".into()), true, Some("stopped".into()))]
    );

    let denied = app
        .hook_post_json("/hook/srs", &hook("on_play", "9", "?token=bad"))
        .await;
    assert_eq!(denied.status, 403);
    let code = denied.json()["code"].as_i64().unwrap();
    assert_ne!(code, 0, "SRS rejects on a non-zero code");
    assert_eq!(denied.json()["reason"], "unknown_token");
}

#[tokio::test]
async fn on_close_ends_the_connection_session() {
    let app = spawn_app().await;
    app.create(user("alice").token("t1")).await;
    let play = app
        .hook_post_json("/hook/srs", &hook("on_play", "c7", "?token=t1"))
        .await;
    assert_eq!((play.status, play.body.as_str()), (200, "0"));
    let close = r#"{"action":"on_close","client_id":"c7","ip":"192.0.2.8","vhost":"__defaultVhost__",
                    "app":"live","send_bytes":123456,"recv_bytes":789}"#;
    let answer = app.hook_post_json("/hook/srs", close).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "0"));
    let row = app
        .db()
        .await
        .query_one("SELECT end_reason, bytes FROM session_log", &[])
        .await
        .unwrap();
    let row: (Option<String>, Option<i64>) = (row.get(0), row.get(1));
    assert_eq!(row, (Some("stopped".into()), Some(123456)));
}

#[tokio::test]
async fn publishing() {
    let app = spawn_app().await;
    let unpublish = app
        .hook_post_json("/hook/srs", &hook("on_unpublish", "p1", ""))
        .await;
    assert_eq!((unpublish.status, unpublish.body.as_str()), (200, "0"));
    let publish = app
        .hook_post_json("/hook/srs", &hook("on_publish", "p1", ""))
        .await;
    assert_eq!(publish.status, 403);
    assert_eq!(publish.json()["reason"], "publish_not_allowed");
    assert_eq!(
        app.decision_count("srs", "deny", "publish_not_allowed")
            .await,
        1.0
    );
    assert!(app.sessions_of_dialect("srs").await.is_empty());
}

#[tokio::test]
async fn malformed_is_400() {
    let app = spawn_app().await;
    for body in [
        "not json",
        r#"{"action":"on_play","ip":"192.0.2.8","app":"live"}"#,
        r#"{"action":"on_play","ip":"::zz","app":"live","stream":"s"}"#,
        r#"{"action":"on_play","ip":"192.0.2.8","app":"live","stream":"s","param":5}"#,
    ] {
        assert_eq!(
            app.hook_post_json("/hook/srs", body).await.status,
            400,
            "{body}"
        );
    }
    assert_eq!(app.decision_count("srs", "deny", "bad_request").await, 4.0);
}
