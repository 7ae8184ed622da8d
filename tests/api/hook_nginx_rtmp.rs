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

/// What a real nginx-rtmp sent for its own relays, the session it opens to
/// the other server (`ngx_rtmp_relay_create_connection` in
/// `ngx_rtmp_relay_module.c`: no `app`, `flashver` "ngx-local-relay",
/// `addr` the relay URL): `push rtmp://127.0.0.1:19350/relayed;` plays the
/// local stream (clientid 3), `pull rtmp://127.0.0.1:19350/relayed;`
/// publishes the pulled one (clientid 12).
const RELAY_CALLS: &[&str] = &[
    "clientid=3&call=play&name=stream&start=0&duration=0&reset=0",
    "clientid=3&call=update_play&time=2&timestamp=1880&name=stream",
    "clientid=3&call=play_done&name=stream",
    "clientid=3&call=done&name=stream",
    "clientid=12&call=publish&name=stream&type=",
    "clientid=12&call=update_publish&time=2&timestamp=4320&name=stream",
    "clientid=12&call=publish_done&name=stream",
];
const RELAY: &str =
    "app=&flashver=ngx-local-relay&swfurl=&tcurl=&pageurl=&addr=127.0.0.1:19350/relayed";

/// (user, stream) of every session the admin API lists, active and ended.
pub async fn listed_sessions(app: &TestApp) -> Vec<(Option<String>, String)> {
    let mut listed = Vec::new();
    for state in ["active", "ended"] {
        let page = app
            .admin("GET", &format!("/api/v1/sessions?state={state}"), None, 200)
            .await;
        for item in page["items"].as_array().expect("a page of sessions") {
            listed.push((
                item["user"].as_str().map(str::to_string),
                item["stream"].as_str().unwrap_or_default().to_string(),
            ));
        }
    }
    listed
}

#[tokio::test]
async fn relays_get_200_and_are_recorded_nowhere() {
    let app = spawn_admin_app().await;
    app.create(user("alice").token("t1")).await;
    // A viewer, so that the lists below are known to show sessions.
    let play = format!("{COMMON}&call=play&name=stream&start=-2000&duration=0&reset=0&token=t1");
    assert_eq!(post_form(&app, &play).await.status, 200);

    for call in RELAY_CALLS {
        let body = format!("{RELAY}&{call}");
        let posted = post_form(&app, &body).await;
        assert_eq!((posted.status, posted.body.as_str()), (200, "ok"), "{body}");
        let got = app.hook_get(&format!("/hook/nginx-rtmp?{body}"), &[]).await;
        assert_eq!((got.status, got.body.as_str()), (200, "ok"), "GET {body}");
    }
    assert_eq!(
        listed_sessions(&app).await,
        vec![(Some("alice".into()), "live/stream".into())],
        "only the viewer"
    );
    let metrics = parse_metrics(&app.metrics_text().await);
    let nginx_decisions: Vec<_> = metrics
        .iter()
        .filter(|(k, _)| k.starts_with("playgate_decisions_total") && k.contains("nginx-rtmp"))
        .collect();
    assert_eq!(
        nginx_decisions.len(),
        1,
        "only the viewer was decided (no bad_request, no publish_not_allowed): {nginx_decisions:?}"
    );
    assert_eq!(decisions(&metrics, "nginx-rtmp", "allow", "ok"), 1.0);

    // A client's connect may carry a relay's flashVer (ffmpeg
    // -rtmp_flashver): it still needs a credential.
    let forged = "app=live&flashver=ngx-local-relay&swfurl=&tcurl=rtmp://127.0.0.1:1935/live\
                  &pageurl=&addr=192.0.2.9&clientid=20&call=play&name=stream&start=0&duration=0&reset=0";
    assert_eq!(post_form(&app, forged).await.status, 403);
    assert_eq!(
        app.decision_count("nginx-rtmp", "deny", "no_credentials")
            .await,
        1.0
    );
}
