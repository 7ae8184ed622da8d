//! `/hook/astra` contract: Astra's "HTTP Request" backend appends the
//! client's query and sends `X-Session-ID`, `X-Channel-ID`, `X-Real-*`.

use crate::helpers::*;

fn astra_headers<'a>(session: &'a str, ip: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("X-Session-ID", session),
        ("X-Channel-ID", "a001"),
        ("X-Real-IP", ip),
        ("X-Real-Path", "/play/a001/index.m3u8"),
        ("X-Real-UA", "VLC/3.0.18"),
        ("X-Real-Host", "live.example.com"),
    ]
}

#[tokio::test]
async fn allow_names_the_session_and_deny_is_403() {
    let app = spawn_app().await;
    app.create(user("alice").token("123").password("pw").limit(1))
        .await;
    let allowed = app
        .hook_get("/hook/astra?token=123", &astra_headers("88", "192.0.2.10"))
        .await;
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.header("x-session-name"), Some("alice"));
    // Astra asks again for the same session: the same slot, within a limit of 1.
    let again = app
        .hook_get("/hook/astra?token=123", &astra_headers("88", "192.0.2.10"))
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(app.sessions_of_dialect("astra").await.len(), 1);
    // Another session of the same user is over the limit.
    let other = app
        .hook_get("/hook/astra?token=123", &astra_headers("89", "192.0.2.11"))
        .await;
    assert_eq!(other.status, 403);
    assert_eq!(
        app.decision_count("astra", "deny", "session_limit").await,
        1.0
    );

    for query in ["?token=999", "", "?auth=alice:wrong"] {
        let denied = app
            .hook_get(
                &format!("/hook/astra{query}"),
                &astra_headers("90", "192.0.2.12"),
            )
            .await;
        assert_eq!(denied.status, 403, "{query}");
        assert_eq!(denied.header("x-session-name"), None);
    }
}

#[tokio::test]
async fn auth_pair_and_path_fallback() {
    let app = spawn_app().await;
    app.create(user("alice").password("pw")).await;
    // Alta spelling, no X-Channel-ID: the channel comes from X-Real-Path.
    let answer = app
        .hook_get(
            "/hook/astra?auth=alice:pw",
            &[
                ("X-Session-Id", "7"),
                ("X-Real-Ip", "192.0.2.10"),
                ("X-Real-Path", "/play/sport1/index.m3u8"),
                ("X-Real-Ua", "Kodi"),
            ],
        )
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("x-session-name"), Some("alice"));
    let row = app
        .db()
        .await
        .query_one("SELECT stream, protocol, user_agent FROM sessions", &[])
        .await
        .unwrap();
    let row: (String, String, String) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(row, ("sport1".into(), "hls".into(), "Kodi".into()));
}

#[tokio::test]
async fn malformed_is_400() {
    let app = spawn_app().await;
    for headers in [
        vec![("X-Channel-ID", "a001")],
        vec![("X-Real-IP", "192.0.2.10")],
        vec![("X-Channel-ID", "a001"), ("X-Real-IP", "192.0.2.300")],
    ] {
        assert_eq!(app.hook_get("/hook/astra", &headers).await.status, 400);
    }
    assert_eq!(
        app.decision_count("astra", "deny", "bad_request").await,
        3.0
    );
}
