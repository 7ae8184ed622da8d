//! Signed links (SPEC §9) end to end (issue 19, "Proof"): ffmpeg plays the
//! HLS of a real nginx-rtmp through nginx `auth_request` → playgate's
//! forward-auth (tests/nginx/e2e.conf, the harness of e2e_nginx.rs) with
//! the link in the playlist's URL: a native link, securetoken links (one
//! made by the independent referee tests/referees/sign_links.py, one
//! issued by playgate), a link whose end passes while its viewer watches,
//! and a `once` link.
//!
//! forward-auth names the stream by the URI's path without its last
//! segment (`/live/stream/index.m3u8` → `live/stream`, a securetoken
//! `subject: "stream"`) and passes the path itself
//! (`/live/stream/index.m3u8`, `subject: "path"`). The player's playlist
//! reloads carry the link again; its segments (relative URLs) carry the
//! viewer cookie instead.
//!
//! Needs `nginx`, `libnginx-mod-rtmp`, `ffmpeg` and `python3`
//! (scripts/install-test-deps). Without them a test prints that it was
//! skipped; with `CI=true` it fails.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::e2e_nginx::{tools, Nginx};
use crate::e2e_support::*;
use crate::helpers::*;

const SIGN_LINKS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/referees/sign_links.py");
const PLAYLIST: &str = "/live/stream/index.m3u8";

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// An enabled key; `secret` None: generated.
async fn make_key(app: &TestApp, id: &str, format: &str, secret: Option<&str>, options: Value) {
    let body = json!({"id": id, "format": format, "secret": secret, "options": options});
    app.admin("POST", "/api/v1/signing-keys", Some(body), 201)
        .await;
    app.reload().await;
}

/// POST /api/v1/links: the query and the end (unix seconds).
async fn issue(app: &TestApp, request: Value) -> (String, i64) {
    let issued = app.admin("POST", "/api/v1/links", Some(request), 201).await;
    let end = chrono::DateTime::parse_from_rfc3339(issued["expires_at"].as_str().unwrap())
        .unwrap()
        .timestamp();
    (issued["query"].as_str().unwrap().to_string(), end)
}

/// The requests of nginx's access log that `what` picks and that were
/// served (200, or 206 for ffmpeg's range requests), with the second each
/// was logged at (the `combined` format's `[$time_local]`).
fn served(nginx: &Nginx, what: impl Fn(&str) -> bool) -> Vec<(i64, String)> {
    nginx
        .access_log()
        .lines()
        .filter_map(|line| {
            let request = line.split('"').nth(1)?;
            let status = line.split('"').nth(2)?.split_whitespace().next()?;
            if !matches!(status, "200" | "206") || !what(request) {
                return None;
            }
            let time = line.split('[').nth(1)?.split(']').next()?;
            let at = chrono::DateTime::parse_from_str(time, "%d/%b/%Y:%H:%M:%S %z").ok()?;
            Some((at.timestamp(), request.to_string()))
        })
        .collect()
}

fn segments_served(nginx: &Nginx) -> usize {
    served(nginx, |request| request.contains(".ts ")).len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_plays_hls_through_nginx_with_a_native_and_securetoken_links() {
    let test = "ffmpeg_plays_hls_through_nginx_with_a_native_and_securetoken_links";
    let Some(tools) = tools(test) else {
        return;
    };
    let Some(python) = tools_or_skip(test, || which("python3").ok_or("python3")) else {
        return;
    };
    let app = spawn_app().await;
    seed_admins(&app).await;
    const FLU_SECRET: &str = "e2e-flussonic-secret-0123456789";
    make_key(&app, "pg", "playgate", None, json!({})).await;
    make_key(&app, "flu", "securetoken", Some(FLU_SECRET), json!({})).await;
    make_key(
        &app,
        "alta",
        "securetoken",
        None,
        json!({"subject": "path"}),
    )
    .await;
    let nginx = Nginx::start(&tools, &app.address).await;
    let mut publisher = nginx.publish(&tools);
    nginx.wait_for_hls(&mut publisher).await;

    assert!(
        !nginx
            .probe(&tools, &nginx.hls_url(""), "probe-none.log")
            .await,
        "no link, no play"
    );
    let (native, _) = issue(&app, json!({"stream": "live/stream", "ttl": 600})).await;
    let last = native.chars().last().unwrap();
    let tampered = format!(
        "{}{}",
        &native[..native.len() - 1],
        if last == 'A' { 'B' } else { 'A' }
    );
    assert!(
        !nginx
            .probe(
                &tools,
                &nginx.hls_url(&format!("?{tampered}")),
                "probe-tampered.log"
            )
            .await,
        "a tampered link is refused"
    );

    // A securetoken link of the independent referee: subject = the stream
    // forward-auth names, the address nginx sees.
    let now = unix_now();
    let output = Command::new(&python)
        .arg(SIGN_LINKS)
        .args(["securetoken", "sign", "--secret", FLU_SECRET])
        .args(["--subject", "live/stream", "--ip", "127.0.0.1"])
        .args(["--start", &(now - 60).to_string()])
        .args(["--end", &(now + 600).to_string()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let by_referee = String::from_utf8(output.stdout).unwrap().trim().to_string();
    // A securetoken link of the path subject, issued by playgate.
    let (by_path, _) = issue(
        &app,
        json!({"stream": "live/stream", "uri": PLAYLIST, "ip": "127.0.0.1", "key": "alta"}),
    )
    .await;
    assert!(by_path.starts_with("token="), "{by_path}");

    for (what, query) in [
        ("native link", &native),
        ("securetoken by stream (referee)", &by_referee),
        ("securetoken by path (playgate)", &by_path),
    ] {
        let before = segments_served(&nginx);
        let log = format!("watch-{}.log", what.split_whitespace().next().unwrap());
        assert!(
            nginx
                .watch(&tools, &nginx.hls_url(&format!("?{query}")), 4, &log)
                .await,
            "{what}: ffmpeg plays for 4 s:\n{}\n{}",
            std::fs::read_to_string(nginx.dir.join(&log)).unwrap_or_default(),
            nginx.logs()
        );
        let segments = segments_served(&nginx) - before;
        assert!(segments >= 2, "{what}: {segments} segments served");
    }
    let sessions = app
        .db()
        .await
        .query(
            "SELECT count(*) FROM session_log WHERE dialect = 'forward-auth' AND login IS NULL",
            &[],
        )
        .await
        .unwrap()[0]
        .get::<_, i64>(0);
    assert!(sessions >= 1, "the links' viewers are anonymous sessions");
    assert!(
        app.decision_count("forward-auth", "deny", "link_invalid")
            .await
            >= 1.0,
        "the tampered link was refused as invalid"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_past_its_end_starts_no_one_but_its_viewer_plays_on() {
    let Some(tools) = tools("a_link_past_its_end_starts_no_one_but_its_viewer_plays_on") else {
        return;
    };
    let app = spawn_app_with(|settings| settings.link_skew = Duration::ZERO).await;
    seed_admins(&app).await;
    make_key(&app, "pg", "playgate", None, json!({})).await;
    let nginx = Nginx::start(&tools, &app.address).await;
    let mut publisher = nginx.publish(&tools);
    nginx.wait_for_hls(&mut publisher).await;

    const TTL: i64 = 6;
    let (link, end) = issue(&app, json!({"stream": "live/stream", "ttl": TTL})).await;
    let url = nginx.hls_url(&format!("?{link}"));
    // A viewer that reads 16 s, well past the link's end.
    let player = nginx.player(&tools, &url, 16, "long.log", "long.progress");
    while unix_now() <= end + 1 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // After the end (skew 0), another player with the same link.
    assert!(
        !nginx
            .probe_with(
                &tools,
                &["-user_agent", "late-player/1.0"],
                &url,
                "probe-late.log"
            )
            .await,
        "a new start after the link's end is refused"
    );
    assert!(
        app.decision_count("forward-auth", "deny", "link_expired")
            .await
            >= 1.0
    );
    assert!(
        player.finish(Duration::from_secs(40)).await,
        "the viewer that started before the end played to its end:\n{}\n{}",
        std::fs::read_to_string(nginx.dir.join("long.log")).unwrap_or_default(),
        nginx.logs()
    );
    let frames = nginx.frames_read("long.progress");
    assert!(
        frames >= 25 * 12,
        "the viewer read {frames} frames (25 per second)"
    );
    // Served after the end: the playlist reloaded with the same link, and
    // segments.
    let after_end = |what: &dyn Fn(&str) -> bool| {
        served(&nginx, what)
            .into_iter()
            .filter(|(at, _)| *at > end)
            .count()
    };
    let playlists = after_end(&|request| request.contains("index.m3u8?pglink="));
    let segments = after_end(&|request| request.contains(".ts "));
    assert!(
        playlists >= 2 && segments >= 2,
        "after the end ({end}): {playlists} playlists, {segments} segments served:\n{}",
        nginx.access_log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_once_link_plays_once() {
    let Some(tools) = tools("a_once_link_plays_once") else {
        return;
    };
    let app = spawn_app().await;
    seed_admins(&app).await;
    make_key(&app, "pg", "playgate", None, json!({})).await;
    let nginx = Nginx::start(&tools, &app.address).await;
    let mut publisher = nginx.publish(&tools);
    nginx.wait_for_hls(&mut publisher).await;

    let (link, _) = issue(&app, json!({"stream": "live/stream", "once": true})).await;
    let url = nginx.hls_url(&format!("?{link}"));
    assert!(
        nginx.watch(&tools, &url, 4, "first.log").await,
        "the first player plays:\n{}",
        nginx.logs()
    );
    assert!(segments_served(&nginx) >= 2);
    // The playlist reloads of that player went on with the link; a second
    // player (another device) is refused.
    assert!(
        !nginx
            .probe_with(
                &tools,
                &["-user_agent", "second-player/1.0"],
                &url,
                "probe-second.log"
            )
            .await,
        "a second player with the once link is refused"
    );
    assert!(
        app.decision_count("forward-auth", "deny", "link_used")
            .await
            >= 1.0
    );
}

/// A spent `once` link, or a link past its end, starts no second player on
/// the same device. Behind forward-auth the session key is derived from
/// (dialect, streamer, stream, client IP, user agent), so a second ffmpeg
/// at the same address with the same agent and the same link names the
/// first player's session; only the first player carries that session's
/// `playgate_viewer` cookie, and a cookie-bound session is never continued
/// by IP and user agent alone (SPEC §3, §9). Found by this test (the first
/// version admitted the second player with 200 and the first one's cookie).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_link_starts_no_second_player_on_the_same_device() {
    let Some(tools) = tools("a_spent_link_starts_no_second_player_on_the_same_device") else {
        return;
    };
    let app = spawn_app_with(|settings| settings.link_skew = Duration::ZERO).await;
    seed_admins(&app).await;
    make_key(&app, "pg", "playgate", None, json!({})).await;
    let nginx = Nginx::start(&tools, &app.address).await;
    let mut publisher = nginx.publish(&tools);
    nginx.wait_for_hls(&mut publisher).await;

    let (once, _) = issue(&app, json!({"stream": "live/stream", "once": true})).await;
    let url = nginx.hls_url(&format!("?{once}"));
    assert!(nginx.watch(&tools, &url, 3, "once-first.log").await);
    let second_once = nginx.watch(&tools, &url, 3, "once-second.log").await;

    let (short, end) = issue(&app, json!({"stream": "live/stream", "ttl": 4})).await;
    let url = nginx.hls_url(&format!("?{short}"));
    assert!(nginx.watch(&tools, &url, 3, "short-first.log").await);
    while unix_now() <= end + 1 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let second_expired = nginx.watch(&tools, &url, 3, "short-second.log").await;
    assert_eq!(
        (second_once, second_expired),
        (false, false),
        "(a second player plays with the spent once link, with the expired link)"
    );
}
