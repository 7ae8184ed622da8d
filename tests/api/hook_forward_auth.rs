//! `/hook/forward-auth` contract: nginx auth_request (`X-Original-URI`),
//! Traefik / Caddy (`X-Forwarded-Uri`, `X-Forwarded-For`), HLS continuation,
//! trusted proxies, and the `PLAYGATE_HOOK_NETWORKS` guard of every hook.

use crate::helpers::*;

#[tokio::test]
async fn hls_viewer_is_one_session() {
    let app = spawn_app().await;
    app.create(user("alice").token("t1").limit(1)).await;
    let get = |uri: &'static str, ip: &'static str| app.hls_get(uri, ip);
    // A segment before any playlist: no session to continue.
    let early = get("/live/news/0.ts", "198.51.100.1").await;
    assert_eq!(early.status, 401);
    assert_eq!(
        early.header("www-authenticate"),
        Some(r#"Basic realm="playgate""#)
    );

    let playlist = get("/live/news/index.m3u8?token=t1", "198.51.100.1").await;
    assert_eq!(playlist.status, 200);
    assert_eq!(playlist.header("x-playgate-user"), Some("alice"));
    for uri in ["/live/news/720p.m3u8", "/live/news/1.ts", "/live/news/2.ts"] {
        assert_eq!(get(uri, "198.51.100.1").await.status, 200, "{uri}");
    }
    assert_eq!(
        get("/live/news/index.m3u8?token=t1", "198.51.100.1")
            .await
            .status,
        200
    );
    // Another client IP, or another stream, continues nothing.
    assert_eq!(get("/live/news/3.ts", "198.51.100.2").await.status, 401);
    assert_eq!(get("/live/sport/3.ts", "198.51.100.1").await.status, 401);
    assert_eq!(app.sessions_of_dialect("forward-auth").await.len(), 1);
    assert_eq!(app.active_sessions("alice").await, 1);

    // Wrong credentials are a 403, not a prompt.
    assert_eq!(
        get("/live/news/index.m3u8?token=nope", "198.51.100.3")
            .await
            .status,
        403
    );
}

#[tokio::test]
async fn continuation_rechecks_the_user() {
    let app = spawn_app().await;
    app.create(user("alice").token("t1")).await;
    let get = |uri: &'static str| app.hls_get(uri, "198.51.100.1");
    assert_eq!(get("/live/news/index.m3u8?token=t1").await.status, 200);
    assert_eq!(get("/live/news/1.ts").await.status, 200);
    app.db()
        .await
        .execute(
            "UPDATE users SET enabled = false WHERE login = 'alice'",
            &[],
        )
        .await
        .unwrap();
    app.reload().await;
    assert_eq!(get("/live/news/2.ts").await.status, 403);
    assert_eq!(
        app.decision_count("forward-auth", "deny", "user_disabled")
            .await,
        1.0
    );
}

#[tokio::test]
async fn traefik_and_caddy_headers_basic_auth_and_override() {
    let app = spawn_app().await;
    app.create(user("bob").password("pw")).await;
    app.create(user("alice").token("t1").packages(&[])).await;
    // Traefik / Caddy: X-Forwarded-Uri and X-Forwarded-For from a trusted (loopback) proxy.
    let answer = app
        .hook_get(
            "/hook/forward-auth",
            &[
                ("X-Forwarded-Uri", "/hls/cam1/index.m3u8"),
                ("X-Forwarded-For", "203.0.113.50, 10.0.0.3"),
                ("Authorization", "Basic Ym9iOnB3"),
            ],
        )
        .await;
    assert_eq!(answer.status, 200);
    let session: uuid::Uuid = answer
        .header("x-playgate-session")
        .unwrap()
        .parse()
        .unwrap();
    let row = playgate::store::sessions::get(&app.db().await, session)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.stream.as_str(), row.client_ip.as_str()),
        ("hls/cam1", "203.0.113.50")
    );

    let answer = app
        .hook_get(
            "/hook/forward-auth",
            &[
                ("X-Playgate-Stream", "news"),
                ("X-Forwarded-Uri", "/whatever/x.m3u8?token=t1"),
            ],
        )
        .await;
    assert_eq!(answer.status, 200);
    let session: uuid::Uuid = answer
        .header("x-playgate-session")
        .unwrap()
        .parse()
        .unwrap();
    let row = playgate::store::sessions::get(&app.db().await, session)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.stream, "news");
}

#[tokio::test]
async fn forwarded_headers_from_untrusted_peers_are_ignored() {
    let app = spawn_app_with(|s| s.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()]).await;
    app.create(user("alice").token("t1").ips(&["198.51.100.0/24"]))
        .await;
    // The peer (127.0.0.1) is not trusted: its X-Real-IP is not believed,
    // so the token user bound to 198.51.100.0/24 does not match.
    let answer = app
        .hook_get(
            "/hook/forward-auth",
            &[
                ("X-Original-URI", "/live/news/index.m3u8?token=t1"),
                ("X-Real-IP", "198.51.100.1"),
            ],
        )
        .await;
    assert_eq!(answer.status, 403);
    assert_eq!(
        app.decision_count("forward-auth", "deny", "ip_mismatch")
            .await,
        1.0
    );
}

#[tokio::test]
async fn malformed_is_400() {
    let app = spawn_app().await;
    for headers in [
        vec![],
        vec![("X-Original-URI", "/index.m3u8")],
        vec![
            ("X-Original-URI", "/live/a/index.m3u8"),
            ("X-Real-IP", "nope"),
        ],
    ] {
        assert_eq!(
            app.hook_get("/hook/forward-auth", &headers).await.status,
            400,
            "{headers:?}"
        );
    }
    assert_eq!(
        app.decision_count("forward-auth", "deny", "bad_request")
            .await,
        3.0
    );
}

#[tokio::test]
async fn hook_networks_limit_every_hook() {
    let app = spawn_app_with(|s| s.hook_networks = vec!["192.0.2.0/24".parse().unwrap()]).await;
    app.create(user("alice").token("t1")).await;
    let answer = app
        .hook_get(
            "/hook/forward-auth",
            &[("X-Original-URI", "/live/a/index.m3u8?token=t1")],
        )
        .await;
    assert_eq!(answer.status, 403);
    assert!(answer.body.contains("PLAYGATE_HOOK_NETWORKS"));
    let (status, _) = app
        .post_decide(&with(
            play("a", "192.0.2.1"),
            serde_json::json!({"token": "t1"}),
        ))
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        app.get("/healthz").await.status(),
        200,
        "only /hook/* is guarded"
    );

    let open = spawn_app_with(|s| s.hook_networks = vec!["127.0.0.0/8".parse().unwrap()]).await;
    open.create(user("alice").token("t1")).await;
    let answer = open
        .hook_get(
            "/hook/forward-auth",
            &[("X-Original-URI", "/live/a/index.m3u8?token=t1")],
        )
        .await;
    assert_eq!(answer.status, 200);
}
