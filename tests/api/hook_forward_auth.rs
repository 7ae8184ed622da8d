//! `/hook/forward-auth` contract: the original URI and the client address
//! only from the configured headers (`X-Original-URI` / `X-Real-IP` by
//! default, Traefik's `X-Forwarded-Uri` / `X-Forwarded-For` when configured),
//! paths that spell another stream refused, HLS continuation, trusted
//! proxies, and the `PLAYGATE_HOOK_NETWORKS` guard of every hook. What real
//! proxies send is tested in e2e_nginx.rs and e2e_caddy.rs.

use playgate::config::HookNetworks;

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

/// The stream of the session a forward-auth answer names.
async fn session_of(app: &TestApp, answer: &HookAnswer) -> playgate::store::sessions::SessionRow {
    let session: uuid::Uuid = answer
        .header("x-playgate-session")
        .expect("an allow names its session")
        .parse()
        .unwrap();
    playgate::store::sessions::get(&app.db().await, session)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn traefik_headers_when_configured_and_basic_auth() {
    let app = spawn_app_with(|s| {
        s.forward_auth_uri_header = "x-forwarded-uri".into();
        s.forward_auth_ip_header = "x-forwarded-for".into();
        s.trusted_proxies = vec![
            "127.0.0.0/8".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ];
    })
    .await;
    app.create(user("bob").password("pw")).await;
    // Traefik: X-Forwarded-Uri and X-Forwarded-For (read from the right,
    // past trusted hops); a client's X-Original-URI and X-Real-IP count for nothing.
    let answer = app
        .hook_get(
            "/hook/forward-auth",
            &[
                ("X-Forwarded-Uri", "/hls/cam1/index.m3u8"),
                ("X-Forwarded-For", "192.0.2.1, 203.0.113.50, 10.0.0.3"),
                ("X-Original-URI", "/hls/other/index.m3u8"),
                ("X-Real-IP", "198.51.100.7"),
                ("Authorization", "Basic Ym9iOnB3"),
            ],
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let row = session_of(&app, &answer).await;
    assert_eq!(
        (row.stream.as_str(), row.client_ip.as_str()),
        ("hls/cam1", "203.0.113.50")
    );
}

#[tokio::test]
async fn no_header_names_the_stream_or_the_uri_but_the_configured_one() {
    let app = spawn_app().await;
    app.package("free", &["live/free"]).await;
    app.create(user("alice").token("t1").packages(&["free"]))
        .await;
    // The audit's attack: a stream header naming a stream the user may watch.
    let answer = app
        .hook_get(
            "/hook/forward-auth",
            &[
                ("X-Original-URI", "/live/premium/index.m3u8?token=t1"),
                ("X-Playgate-Stream", "live/free"),
            ],
        )
        .await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert_eq!(answer.body, "stream_not_allowed");
    // By default X-Forwarded-Uri is a client header like any other.
    let answer = app
        .hook_get(
            "/hook/forward-auth",
            &[("X-Forwarded-Uri", "/live/free/index.m3u8?token=t1")],
        )
        .await;
    assert_eq!(answer.status, 400);
    assert!(answer.body.contains("x-original-uri"), "{}", answer.body);
    let answer = app
        .hook_get(
            "/hook/forward-auth",
            &[
                ("X-Original-URI", "/live/free/index.m3u8?token=t1"),
                ("X-Forwarded-Uri", "/live/premium/index.m3u8?token=t1"),
                ("X-Playgate-Stream", "live/premium"),
            ],
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(session_of(&app, &answer).await.stream, "live/free");
}

#[tokio::test]
async fn paths_that_spell_another_stream_are_refused() {
    let app = spawn_app().await;
    app.package("sport", &["live/sport/*"]).await;
    app.create(user("fan").token("fan-token").packages(&["sport"]))
        .await;
    let ok = app
        .hls_get("/live/sport/one/index.m3u8?token=fan-token", "198.51.100.1")
        .await;
    assert_eq!(ok.status, 200);
    for uri in [
        "/live/sport/../premium/index.m3u8?token=fan-token",
        "/live/sport/%2e%2e/premium/index.m3u8?token=fan-token",
        "/live/sport/%2E%2E/premium/index.m3u8?token=fan-token",
        "/live/sport/./../premium/index.m3u8?token=fan-token",
        "//live/premium/index.m3u8?token=fan-token",
        "/live/sport//premium/index.m3u8?token=fan-token",
        "/live/sport%2F..%2Fpremium/index.m3u8?token=fan-token",
        "/live/sport/x%2f..%2f..%2fpremium/index.m3u8?token=fan-token",
    ] {
        let answer = app.hls_get(uri, "198.51.100.1").await;
        assert_eq!(answer.status, 400, "{uri}: {}", answer.body);
        let error = answer.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            error.starts_with("path '") && !error.contains('\n'),
            "{uri}: {error}"
        );
    }
    assert_eq!(
        app.decision_count("forward-auth", "deny", "bad_request")
            .await,
        8.0
    );
    // A percent-encoded name is the decoded stream.
    let answer = app
        .hls_get(
            "/live/sport/%6Fne/index.m3u8?token=fan-token",
            "198.51.100.1",
        )
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(session_of(&app, &answer).await.stream, "live/sport/one");
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
        // A client's copy kept beside the proxy's: which one counts would be a guess.
        vec![
            ("X-Original-URI", "/live/a/index.m3u8"),
            ("X-Original-URI", "/live/b/index.m3u8"),
        ],
        vec![
            ("X-Original-URI", "/live/a/index.m3u8"),
            ("X-Real-IP", "198.51.100.1"),
            ("X-Real-IP", "127.0.0.1"),
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
        5.0
    );
}

#[tokio::test]
async fn hook_networks_limit_every_hook() {
    let app = spawn_app_with(|s| {
        s.hook_networks = HookNetworks::Only(vec!["192.0.2.0/24".parse().unwrap()])
    })
    .await;
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

    // `*` lets anyone call; by default (loopback and private ranges) the
    // tests' loopback caller may.
    for networks in [Some(HookNetworks::Anyone), None] {
        let open = spawn_app_with(|s| {
            if let Some(networks) = networks {
                s.hook_networks = networks;
            }
        })
        .await;
        open.create(user("alice").token("t1")).await;
        let answer = open
            .hook_get(
                "/hook/forward-auth",
                &[("X-Original-URI", "/live/a/index.m3u8?token=t1")],
            )
            .await;
        assert_eq!(answer.status, 200);
    }
}
