//! `/hook/flussonic` contract: the Authorization Backend API query
//! (`new_session` / `update_session`), and the Ministra
//! `chk_flussonic_tmp_link.php` drop-in.

use crate::helpers::*;

fn query(request_type: &str, token: &str, ip: &str) -> String {
    format!(
        "/hook/flussonic?name=sport%2Fespn&proto=hls&ip={ip}&request_type={request_type}&request_number=0\
         &session_id=5f2a6e84-6a2b-4f66-9a52-2d1c1a8b0001&stream_clients=3&total_clients=10&token={token}\
         &user_agent=VLC%2F3.0&referer=http%3A%2F%2Fportal&host=edge.example.com&bytes=0&duration=0"
    )
}

#[tokio::test]
async fn allow_headers_refresh_and_deny() {
    let app = spawn_app().await;
    app.create(user("alice").token("t1").limit(2)).await;
    let allowed = app
        .hook_get(&query("new_session", "t1", "192.0.2.3"), &[])
        .await;
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.header("x-authduration"), Some("60"));
    assert_eq!(allowed.header("x-userid"), Some("alice"));
    assert_eq!(allowed.header("x-max-sessions"), Some("2"));

    let update = app
        .hook_get(&query("update_session", "t1", "192.0.2.3"), &[])
        .await;
    assert_eq!(update.status, 200);
    assert_eq!(app.sessions_of_dialect("flussonic").await.len(), 1);

    // The user is disabled: the next update_session cuts the viewer off.
    app.db()
        .await
        .execute("UPDATE users SET enabled = false", &[])
        .await
        .unwrap();
    app.reload().await;
    let cut = app
        .hook_get(&query("update_session", "t1", "192.0.2.3"), &[])
        .await;
    assert_eq!(cut.status, 403);
    assert_eq!(cut.header("x-userid"), None);

    let unknown = app
        .hook_get(&query("new_session", "nope", "192.0.2.4"), &[])
        .await;
    assert_eq!(unknown.status, 403);
    assert_eq!(
        app.decision_count("flussonic", "deny", "unknown_token")
            .await,
        1.0
    );
    // Flussonic sends no stop: the session ends by timeout.
}

#[tokio::test]
async fn ministra_drop_in() {
    let app = spawn_app().await;
    app.create(user("alice").token("tmp-key")).await;
    // Called by Astra's Ministra backend type: token in the query, the rest in Astra's headers.
    let answer = app
        .hook_get(
            "/hook/flussonic?token=tmp-key",
            &[
                ("X-Real-IP", "192.0.2.20"),
                ("X-Real-Path", "/play/a001/index.m3u8"),
                ("X-Session-ID", "5"),
            ],
        )
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("x-userid"), Some("alice"));
    let denied = app
        .hook_get(
            "/hook/flussonic?token=other",
            &[("X-Real-IP", "192.0.2.20"), ("X-Channel-ID", "a001")],
        )
        .await;
    assert_eq!(denied.status, 403);
}

#[tokio::test]
async fn malformed_is_400() {
    let app = spawn_app().await;
    for path in [
        "/hook/flussonic?ip=192.0.2.3&token=t",
        "/hook/flussonic?name=a&token=t",
        "/hook/flussonic?name=a&ip=192.0.2.3&request_type=close_session",
        "/hook/flussonic?name=a&ip=192.0.2.3&bytes=many",
    ] {
        let answer = app.hook_get(path, &[]).await;
        assert_eq!(answer.status, 400, "{path}");
    }
    assert_eq!(
        app.decision_count("flussonic", "deny", "bad_request").await,
        4.0
    );
}
