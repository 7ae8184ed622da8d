//! `/hook/forward-auth` contract: the original URI and the client address
//! only from the configured headers (`X-Original-URI` / `X-Real-IP` by
//! default, Traefik's `X-Forwarded-Uri` / `X-Forwarded-For` when configured),
//! paths that spell another stream refused, HLS continuation, trusted
//! proxies, and the `PLAYGATE_HOOK_NETWORKS` guard of every hook. What real
//! proxies send is tested in e2e_nginx.rs and e2e_caddy.rs.

use playgate::config::{HlsContinuation, HookNetworks};

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
    // Disabling the user ended the session (sql/V20): a segment without
    // credentials has no session to continue any more.
    assert_eq!(
        app.sessions_of_dialect("forward-auth").await,
        vec![(Some("alice".into()), true, Some("kicked".into()))]
    );
    assert_eq!(get("/live/news/2.ts").await.status, 401);
    assert_eq!(
        app.decision_count("forward-auth", "deny", "no_credentials")
            .await,
        1.0
    );
    // With its token again, the reason is the account's.
    assert_eq!(get("/live/news/3.ts?token=t1").await.status, 403);
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

// ---- HLS and DASH viewers: the viewer cookie and the playback session id (SPEC §3) ----

const UA: &str = "AppleCoreMedia/1.0";

/// A forward-auth request from `ip` with the player's user agent and `extra` headers.
async fn player_get(app: &TestApp, uri: &str, ip: &str, extra: &[(&str, &str)]) -> HookAnswer {
    let mut headers = vec![
        ("X-Original-URI", uri),
        ("X-Real-IP", ip),
        ("User-Agent", UA),
    ];
    headers.extend_from_slice(extra);
    app.hook_get("/hook/forward-auth", &headers).await
}

/// `playgate_viewer=<value>` as a Cookie header, from an answer's Set-Cookie.
fn cookie_of(answer: &HookAnswer) -> String {
    let set_cookie = answer.header("set-cookie").expect("a viewer cookie");
    set_cookie.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn a_playlist_allow_sets_the_viewer_cookie_and_its_segments_continue_with_it() {
    let app = spawn_app().await;
    app.create(user("alice").token("t1")).await;
    let playlist = player_get(&app, "/live/news/index.m3u8?token=t1", "198.51.100.1", &[]).await;
    assert_eq!(playlist.status, 200);
    let set_cookie = playlist.header("set-cookie").unwrap();
    assert!(
        set_cookie.starts_with("playgate_viewer=v1."),
        "{set_cookie}"
    );
    for attribute in [
        "; Path=/live/news/",
        "; Max-Age=90",
        "; HttpOnly",
        "; SameSite=Lax",
    ] {
        assert!(
            set_cookie.contains(attribute),
            "{set_cookie} lacks {attribute}"
        );
    }
    assert!(!set_cookie.contains("Secure"), "the player came over http");
    let session = playlist.header("x-playgate-session").unwrap().to_string();
    let cookie = cookie_of(&playlist);

    // The cookie continues the session, from another address too (a phone
    // changing networks), and a segment's answer sets no new cookie.
    let segment = player_get(
        &app,
        "/live/news/1.ts",
        "203.0.113.9",
        &[("Cookie", &cookie)],
    )
    .await;
    assert_eq!(segment.status, 200, "{}", segment.body);
    assert_eq!(segment.header("x-playgate-session"), Some(session.as_str()));
    assert!(segment.header("set-cookie").is_none());
    // A child playlist renews it (its Max-Age runs from now).
    let child = player_get(
        &app,
        "/live/news/720p.m3u8",
        "198.51.100.1",
        &[("Cookie", &cookie)],
    )
    .await;
    assert_eq!(child.status, 200);
    assert_eq!(child.header("x-playgate-session"), Some(session.as_str()));
    assert!(child.header("set-cookie").is_some());

    // The player keeps cookies, so the session is bound to it: a neighbour
    // behind the same address with the same player, without the cookie, gets 401.
    let neighbour = player_get(&app, "/live/news/2.ts", "198.51.100.1", &[]).await;
    assert_eq!(neighbour.status, 401, "{}", neighbour.body);
    // Nor does a forged or another stream's cookie continue anything.
    let forged = cookie.replace("v1.", "v1.0");
    for (uri, cookie) in [
        ("/live/news/2.ts", forged.as_str()),
        ("/live/sport/2.ts", cookie.as_str()),
    ] {
        let answer = player_get(&app, uri, "198.51.100.1", &[("Cookie", cookie)]).await;
        assert_eq!(answer.status, 401, "{uri} {cookie}");
    }
    assert_eq!(app.sessions_of_dialect("forward-auth").await.len(), 1);
    // A kicked session's cookie continues nothing.
    let id: uuid::Uuid = session.parse().unwrap();
    playgate::store::sessions::kick(&app.db().await, id, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    // As the admin API does (other replicas hear it from PostgreSQL).
    app.state.engine.forget_session(id);
    let kicked = player_get(
        &app,
        "/live/news/3.ts",
        "198.51.100.1",
        &[("Cookie", &cookie)],
    )
    .await;
    assert_eq!(kicked.status, 401);
}

#[tokio::test]
async fn the_cookie_is_secure_when_a_trusted_proxy_says_https() {
    let app = spawn_app().await;
    app.create(user("alice").token("t1")).await;
    let playlist = player_get(
        &app,
        "/live/news/index.m3u8?token=t1",
        "198.51.100.1",
        &[("X-Forwarded-Proto", "https")],
    )
    .await;
    assert!(playlist.header("set-cookie").unwrap().ends_with("; Secure"));
}

#[tokio::test]
async fn the_playback_session_id_continues_and_binds_the_session() {
    let app = spawn_app().await;
    app.create(user("alice").token("t1")).await;
    let id = [("X-Playback-Session-Id", "6A1C9E3B-PLAYER-1")];
    let playlist = player_get(&app, "/live/news/index.m3u8?token=t1", "198.51.100.1", &id).await;
    assert_eq!(playlist.status, 200);
    let session = playlist.header("x-playgate-session").unwrap().to_string();
    // AVPlayer keeps no cookie here but sends its id with every request.
    let segment = player_get(&app, "/live/news/1.ts", "203.0.113.9", &id).await;
    assert_eq!(segment.status, 200, "{}", segment.body);
    assert_eq!(segment.header("x-playgate-session"), Some(session.as_str()));
    // Bound: the same address and player without the id, or with another, get 401.
    let neighbour = player_get(&app, "/live/news/2.ts", "198.51.100.1", &[]).await;
    assert_eq!(neighbour.status, 401);
    let other = [("X-Playback-Session-Id", "OTHER-PLAYER")];
    assert_eq!(
        player_get(&app, "/live/news/2.ts", "198.51.100.1", &other)
            .await
            .status,
        401
    );
    // Another stream's segment with the id continues nothing.
    assert_eq!(
        player_get(&app, "/live/sport/2.ts", "198.51.100.1", &id)
            .await
            .status,
        401
    );
    let row = app
        .db()
        .await
        .query_one(
            "SELECT playback_id FROM sessions WHERE id = $1",
            &[&session.parse::<uuid::Uuid>().unwrap()],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, Option<String>>(0).as_deref(),
        Some("6A1C9E3B-PLAYER-1")
    );
}

#[tokio::test]
async fn players_without_cookie_or_playback_id_continue_by_address_unless_strict() {
    for (mode, expected) in [(HlsContinuation::Ip, 200), (HlsContinuation::Strict, 401)] {
        let app = spawn_app_with(|s| s.hls_continuation = mode).await;
        app.create(user("alice").token("t1")).await;
        let playlist =
            player_get(&app, "/live/news/index.m3u8?token=t1", "198.51.100.1", &[]).await;
        assert_eq!(playlist.status, 200);
        // The player ignores the cookie: same stream, address and user agent.
        for segment in ["/live/news/1.ts", "/live/news/2.ts"] {
            let answer = player_get(&app, segment, "198.51.100.1", &[]).await;
            assert_eq!(answer.status, expected, "{mode:?} {segment}");
        }
        // A child playlist continued by address sets no cookie: a neighbour
        // riding on a cookie-less player's session must not bind it to
        // himself and shut that player out.
        let child = player_get(&app, "/live/news/720p.m3u8", "198.51.100.1", &[]).await;
        assert_eq!(child.status, expected, "{mode:?}");
        assert!(child.header("set-cookie").is_none(), "{mode:?}");
        // With the cookie, strict or not.
        let cookie = cookie_of(&playlist);
        let answer = player_get(
            &app,
            "/live/news/3.ts",
            "198.51.100.1",
            &[("Cookie", &cookie)],
        )
        .await;
        assert_eq!(answer.status, 200, "{mode:?}");
    }
}

#[tokio::test]
async fn replicas_share_the_cookie_key_and_learn_each_others_bindings() {
    let a = spawn_app().await;
    let b = spawn_on(a.db.clone(), |_| {}).await;
    a.create(user("alice").token("t1")).await;
    b.reload().await;
    let playlist = player_get(&a, "/live/news/index.m3u8?token=t1", "198.51.100.1", &[]).await;
    let cookie = cookie_of(&playlist);
    // Replica b continues it by address first (the player has not yet shown
    // that it keeps cookies), so b remembers it as continuable by address.
    for _ in 0..2 {
        let answer = player_get(&b, "/live/news/1.ts", "198.51.100.1", &[]).await;
        assert_eq!(answer.status, 200);
    }
    // The cookie comes back through a: bound, and b hears of it.
    let bound = player_get(
        &a,
        "/live/news/2.ts",
        "198.51.100.1",
        &[("Cookie", &cookie)],
    )
    .await;
    assert_eq!(bound.status, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let neighbour = player_get(&b, "/live/news/3.ts", "198.51.100.1", &[]).await;
        if neighbour.status == 401 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "replica b still continues the bound session by address"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // b verifies a's cookie (one key, kept in the database).
    let answer = player_get(
        &b,
        "/live/news/4.ts",
        "198.51.100.1",
        &[("Cookie", &cookie)],
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("x-playgate-session"),
        playlist.header("x-playgate-session")
    );
}

#[tokio::test]
async fn a_configured_cookie_secret_is_the_key() {
    let secret = "a-viewer-cookie-secret-of-32-bytes!!";
    let a = spawn_app_with(|s| s.viewer_cookie_secret = Some(secret.into())).await;
    let other = spawn_on(a.db.clone(), |s| {
        s.viewer_cookie_secret = Some(format!("{secret}-other"))
    })
    .await;
    a.create(user("alice").token("t1")).await;
    other.reload().await;
    let playlist = player_get(&a, "/live/news/index.m3u8?token=t1", "198.51.100.1", &[]).await;
    let cookie = cookie_of(&playlist);
    // Bind it through a, then a replica with another secret cannot read it.
    let bound = player_get(&a, "/live/news/1.ts", "203.0.113.9", &[("Cookie", &cookie)]).await;
    assert_eq!(bound.status, 200);
    let answer = player_get(
        &other,
        "/live/news/2.ts",
        "203.0.113.9",
        &[("Cookie", &cookie)],
    )
    .await;
    assert_eq!(answer.status, 401);
    let stored: i64 = a
        .db()
        .await
        .query_one("SELECT count(*) FROM viewer_cookie_key", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0, "a configured secret is not kept in the database");
}
