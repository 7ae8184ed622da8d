//! `/hook/nginx-rtmp` contract: the form fields of `ngx_rtmp_notify_module.c`
//! (POST form, or the query string with `notify_method get`).

use crate::helpers::*;

const COMMON: &str =
    "app=live&flashver=LNX%209%2C0%2C124%2C2&swfurl=&tcurl=rtmp%3A%2F%2Fedge%3A1935%2Flive\
                      &pageurl=&addr=192.0.2.7&clientid=17";

async fn post_form(app: &TestApp, body: &str) -> HookAnswer {
    app.hook(
        app.http
            .post(format!("{}/hook/nginx-rtmp", app.address))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.to_string()),
    )
    .await
}

#[tokio::test]
async fn play_update_and_play_done() {
    let app = spawn_app().await;
    app.create(user("alice").token("t1").limit(1)).await;

    let play = format!("{COMMON}&call=play&name=news&start=-2000&duration=0&reset=0&token=t1");
    assert_eq!(post_form(&app, &play).await.status, 200);
    let update = format!("{COMMON}&call=update_play&time=30&timestamp=30000&name=news&token=t1");
    assert_eq!(post_form(&app, &update).await.status, 200);
    assert_eq!(app.active_sessions("alice").await, 1);

    let done = format!("{COMMON}&call=play_done&name=news&token=t1");
    assert_eq!(post_form(&app, &done).await.status, 200);
    assert_eq!(
        app.sessions_of_dialect("nginx-rtmp").await,
        vec![(Some("alice".into()), true, Some("stopped".into()))]
    );
}

#[tokio::test]
async fn notify_method_get_and_deny() {
    let app = spawn_app().await;
    app.create(user("alice").token("t1")).await;
    let allowed = app
        .hook_get(
            &format!("/hook/nginx-rtmp?{COMMON}&call=play&name=news&token=t1"),
            &[],
        )
        .await;
    assert_eq!(allowed.status, 200);
    for query in ["&token=bad", ""] {
        let denied = app
            .hook_get(
                &format!("/hook/nginx-rtmp?{COMMON}&call=play&name=news{query}"),
                &[],
            )
            .await;
        assert_eq!(denied.status, 403, "{query}");
    }
    assert_eq!(
        app.decision_count("nginx-rtmp", "deny", "unknown_token")
            .await,
        1.0
    );
    assert_eq!(
        app.decision_count("nginx-rtmp", "deny", "no_credentials")
            .await,
        1.0
    );
}

#[tokio::test]
async fn publish_side_calls() {
    let app = spawn_app().await;
    // Keep-alives and ends of a publish share on_update / on_done: success, nothing recorded.
    for call in ["update_publish", "publish_done"] {
        let answer = post_form(&app, &format!("{COMMON}&call={call}&name=news&time=30")).await;
        assert_eq!(answer.status, 200, "{call}");
    }
    assert!(app.sessions_of_dialect("nginx-rtmp").await.is_empty());
    // Starting to publish is not a play.
    let publish = post_form(&app, &format!("{COMMON}&call=publish&name=news&type=live")).await;
    assert_eq!(publish.status, 403);
    assert_eq!(
        app.decision_count("nginx-rtmp", "deny", "publish_not_allowed")
            .await,
        1.0
    );
    let metrics = app.metrics_text().await;
    assert_eq!(
        parse_metrics(&metrics)
            .iter()
            .filter(|(k, _)| k.starts_with("playgate_decisions_total") && k.contains("nginx-rtmp"))
            .count(),
        1,
        "only the publish start was a decision: {metrics}"
    );
}

#[tokio::test]
async fn malformed_is_400_and_counted() {
    let app = spawn_app().await;
    for body in [
        String::new(),
        format!("{COMMON}&call=seek&name=news"),
        "call=play&app=live&name=news&addr=not-an-ip".to_string(),
        "call=play&app=live&addr=192.0.2.7".to_string(),
        "call=play&app=live&name=%00&addr=192.0.2.7".to_string(),
    ] {
        let answer = post_form(&app, &body).await;
        assert_eq!(answer.status, 400, "{body}");
        assert!(answer.json()["error"]
            .as_str()
            .is_some_and(|e| !e.contains('\n')));
    }
    assert_eq!(
        app.decision_count("nginx-rtmp", "deny", "bad_request")
            .await,
        5.0
    );
}
