//! End to end, sessions that match real viewing (issue 18; SPEC §2 steps 7
//! and 9, §11; docs/sessions.md): a viewer with `max_sessions = 1` zapping
//! between two live channels through a real nginx-rtmp (on_play /
//! on_update / on_play_done) and through nginx `auth_request` for HLS, and a
//! kicked RTMP player that reconnects with a new `clientid`.
//!
//! ffmpeg publishes live/ch1 and live/ch2; ffmpeg / ffprobe play them with
//! `?token=`. Every player runs on 127.0.0.1 with ffmpeg's own user agent
//! (the RTMP flashver, or `Lavf/…` for HLS), so all of them are one device:
//! the client IP and user agent (SPEC §1).
//!
//! Needs `nginx`, `libnginx-mod-rtmp` and `ffmpeg` (scripts/install-test-deps).
//! Without them a test prints that it was skipped; with `CI=true` it fails.

use std::time::{Duration, Instant};

use crate::e2e_nginx::{tools, Nginx};
use crate::e2e_support::Running;
use crate::helpers::*;

/// One row of `session_log`.
#[derive(Debug)]
struct Row {
    id: uuid::Uuid,
    key: String,
    stream: String,
    device: String,
    ended: bool,
    end_reason: Option<String>,
    refreshed: bool,
}

/// A user's sessions of a dialect, oldest first.
async fn sessions(app: &TestApp, login: &str, dialect: &str) -> Vec<Row> {
    app.db()
        .await
        .query(
            "SELECT id, key, stream, device, ended_at IS NOT NULL, end_reason,
                    last_seen_at > started_at
               FROM session_log WHERE login = $1 AND dialect = $2 ORDER BY started_at",
            &[&login, &dialect],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| Row {
            id: row.get(0),
            key: row.get(1),
            stream: row.get(2),
            device: row.get(3),
            ended: row.get(4),
            end_reason: row.get(5),
            refreshed: row.get(6),
        })
        .collect()
}

/// (stream, end_reason) of the rows, for assertions.
fn ends(rows: &[Row]) -> Vec<(&str, Option<&str>)> {
    rows.iter()
        .map(|row| (row.stream.as_str(), row.end_reason.as_deref()))
        .collect()
}

/// nginx numbers its connections, and names them `clientid` in its calls:
/// the session key ends `<clientid>/<stream>`.
fn clientid(row: &Row) -> String {
    let (before_stream, _) = row.key.rsplit_once(&format!("/{}", row.stream)).unwrap();
    before_stream.rsplit(':').next().unwrap().to_string()
}

/// nginx-rtmp's own log of a refused `on_update` (it then drops the client)
/// on connection `clientid` (`*<n>` in nginx's error log).
fn refused_updates(nginx: &Nginx, clientid: &str) -> usize {
    let connection = format!("*{clientid} ");
    nginx
        .logs()
        .lines()
        .filter(|line| line.contains(&connection) && line.contains("notify: update failed"))
        .count()
}

/// The `on_update` calls nginx-rtmp sent for connection `clientid`.
fn updates_sent(nginx: &Nginx, clientid: &str) -> usize {
    let connection = format!("*{clientid} ");
    nginx
        .logs()
        .lines()
        .filter(|line| line.contains(&connection) && line.contains("notify: update '"))
        .count()
}

/// Everything worth seeing when a test fails.
async fn state(app: &TestApp, nginx: &Nginx, login: &str) -> String {
    let metrics = app.metrics_text().await;
    let decisions: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("playgate_decisions_total"))
        .collect();
    format!(
        "sessions: {:#?}\n{}\nnginx logs in {}:\n{}",
        sessions(app, login, "nginx-rtmp").await,
        decisions.join("\n"),
        nginx.dir.display(),
        nginx.logs()
    )
}

/// Waits until `player` has read frames, or panics if it exits first.
pub async fn until_it_plays(
    app: &TestApp,
    nginx: &Nginx,
    player: &mut Running,
    progress: &str,
    log: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while nginx.frames_read(progress) == 0 {
        if !player.is_running() || Instant::now() > deadline {
            panic!(
                "{log}: the player read no frames:\n{}\n{}",
                std::fs::read_to_string(nginx.dir.join(log)).unwrap_or_default(),
                state(app, nginx, "zap").await
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Two channels on the air: live/ch1 and live/ch2, their HLS written.
pub async fn two_channels(tools: &crate::e2e_nginx::Tools, nginx: &Nginx) -> [Running; 2] {
    let mut ch1 = nginx.publish_to(tools, "ch1", "publisher-ch1.log");
    let mut ch2 = nginx.publish_to(tools, "ch2", "publisher-ch2.log");
    nginx
        .wait_for_hls_of("ch1", &mut ch1, "publisher-ch1.log")
        .await;
    nginx
        .wait_for_hls_of("ch2", &mut ch2, "publisher-ch2.log")
        .await;
    [ch1, ch2]
}

/// How the zapping tests configure playgate: the default, `replace`.
fn zapping_settings(settings: &mut playgate::config::Settings) {
    assert_eq!(settings.zapping, playgate::domain::Zapping::Replace);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_rtmp_zapping_replaces_the_old_channel_while_its_player_still_runs() {
    let Some(tools) =
        tools("nginx_rtmp_zapping_replaces_the_old_channel_while_its_player_still_runs")
    else {
        return;
    };
    let app = spawn_app_with(zapping_settings).await;
    seed_admins(&app).await;
    app.create(user("zap").token("zap-token").limit(1)).await;
    let nginx = Nginx::start(&tools, &app.address).await;
    let _publishers = two_channels(&tools, &nginx).await;

    // A set-top box watches ch1 for a while: on_play, then on_update
    // (every 2 s) refreshes it.
    let mut ch1 = nginx.player(
        &tools,
        &nginx.rtmp_url_of("ch1", "?token=zap-token"),
        120,
        "ch1.log",
        "ch1.progress",
    );
    until_it_plays(&app, &nginx, &mut ch1, "ch1.progress", "ch1.log").await;
    let rows = sessions(&app, "zap", "nginx-rtmp").await;
    assert_eq!(ends(&rows), [("live/ch1", None)]);
    let ch1_client = clientid(&rows[0]);
    // A few seconds of ch1: nginx sends an on_update only after it accepted
    // the answer to the one before, so two sent is one accepted.
    let deadline = Instant::now() + Duration::from_secs(20);
    while updates_sent(&nginx, &ch1_client) < 2 {
        assert!(
            Instant::now() < deadline && ch1.is_running(),
            "ch1 is not refreshed by on_update:\n{}",
            state(&app, &nginx, "zap").await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // It opens ch2 before closing ch1: the ch1 player is still running.
    assert!(ch1.is_running(), "ch1 still plays when ch2 opens");
    let mut ch2 = nginx.player(
        &tools,
        &nginx.rtmp_url_of("ch2", "?token=zap-token"),
        120,
        "ch2.log",
        "ch2.progress",
    );
    until_it_plays(&app, &nginx, &mut ch2, "ch2.progress", "ch2.log").await;

    // ch2's on_play replaced the ch1 session in its admission.
    let rows = sessions(&app, "zap", "nginx-rtmp").await;
    assert_eq!(
        ends(&rows),
        [("live/ch1", Some("replaced")), ("live/ch2", None)],
        "{}",
        state(&app, &nginx, "zap").await
    );
    assert!(rows[0].ended && !rows[1].ended);
    assert_eq!(rows[0].device, rows[1].device, "one device");
    assert!(
        rows[0].device.starts_with("127.0.0.1 "),
        "the device is the client IP and the flashver: {}",
        rows[0].device
    );
    assert_eq!(clientid(&rows[0]), ch1_client);
    let ch1_id = rows[0].id;
    let ch2_client = clientid(&rows[1]);
    assert_ne!(ch1_client, ch2_client, "two connections");
    // The admin API says the same.
    let ended = app
        .admin("GET", "/api/v1/sessions?state=ended&user=zap", None, 200)
        .await;
    let ended = ended["items"].as_array().unwrap();
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["id"], ch1_id.to_string());
    assert_eq!(ended[0]["stream"], "live/ch1");
    assert_eq!(ended[0]["end_reason"], "replaced");
    let active = app
        .admin("GET", "/api/v1/sessions?state=active&user=zap", None, 200)
        .await;
    let active = active["items"].as_array().unwrap();
    assert_eq!(active.len(), 1, "{active:?}");
    assert_eq!(active[0]["stream"], "live/ch2");

    // The ch1 player, still running, is refused at its next on_update
    // (session_limit: a replaced session does not come back by itself), and
    // nginx drops it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while ch1.is_running() {
        assert!(
            Instant::now() < deadline,
            "the ch1 player was not dropped:\n{}",
            state(&app, &nginx, "zap").await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        refused_updates(&nginx, &ch1_client),
        1,
        "nginx dropped ch1 at a refused on_update:\n{}",
        nginx.logs()
    );

    // ch2 outlives ch1's refusal and its on_play_done: two more of its
    // on_update calls (nginx sends the next one only after an answer it
    // accepted) and it still plays.
    let frames = nginx.frames_read("ch2.progress");
    let updates = updates_sent(&nginx, &ch2_client);
    let deadline = Instant::now() + Duration::from_secs(20);
    while updates_sent(&nginx, &ch2_client) < updates + 2 {
        assert!(
            Instant::now() < deadline && ch2.is_running(),
            "ch2 stopped playing after ch1 was dropped:\n{}\n{}",
            std::fs::read_to_string(nginx.dir.join("ch2.log")).unwrap_or_default(),
            state(&app, &nginx, "zap").await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ch2.is_running());
    assert!(nginx.frames_read("ch2.progress") > frames, "ch2 plays on");
    assert_eq!(refused_updates(&nginx, &ch2_client), 0);
    let rows = sessions(&app, "zap", "nginx-rtmp").await;
    assert_eq!(
        ends(&rows),
        [("live/ch1", Some("replaced")), ("live/ch2", None)],
        "ch1's on_play_done ended nothing else"
    );

    // The user never got session_limit for a play: the only refusal with
    // that reason is the ch1 player's one on_update after it was replaced
    // (docs/sessions.md: a refresh of a replaced session is refused
    // session_limit), which nginx logged above.
    let metrics = parse_metrics(&app.metrics_text().await);
    assert_eq!(
        decisions(&metrics, "nginx-rtmp", "deny", "session_limit"),
        1.0,
        "{}",
        state(&app, &nginx, "zap").await
    );
    assert_eq!(
        metrics
            .get(r#"playgate_sessions_ended_total{reason="replaced"}"#)
            .copied(),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_rtmp_kicked_player_reconnecting_is_refused_for_one_duration() {
    let Some(tools) = tools("nginx_rtmp_kicked_player_reconnecting_is_refused_for_one_duration")
    else {
        return;
    };
    let duration = Duration::from_secs(6);
    let app = spawn_app_with(move |settings| settings.session_duration = duration).await;
    seed_admins(&app).await;
    app.create(user("zap").token("kick-token")).await;
    let nginx = Nginx::start(&tools, &app.address).await;
    let mut publisher = nginx.publish(&tools);
    nginx.wait_for_hls(&mut publisher).await;
    let url = nginx.rtmp_url("?token=kick-token");

    let mut player = nginx.player(&tools, &url, 120, "player.log", "player.progress");
    until_it_plays(&app, &nginx, &mut player, "player.progress", "player.log").await;
    let rows = sessions(&app, "zap", "nginx-rtmp").await;
    assert_eq!(ends(&rows), [("live/stream", None)]);
    let (id, player_client) = (rows[0].id, clientid(&rows[0]));

    app.admin("DELETE", &format!("/api/v1/sessions/{id}"), None, 204)
        .await;
    let kicked_at = Instant::now();

    // Cut at its next on_update (session_kicked): nginx drops it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while player.is_running() {
        assert!(
            Instant::now() < deadline,
            "the kicked player was not dropped:\n{}",
            state(&app, &nginx, "zap").await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        refused_updates(&nginx, &player_client),
        1,
        "{}",
        nginx.logs()
    );
    assert_eq!(
        app.decision_count("nginx-rtmp", "deny", "session_kicked")
            .await,
        1.0,
        "the refused on_update"
    );

    // It reconnects at once, a new connection (a new clientid, a new
    // session key) from the same address: refused, twice. (The hold is
    // 6 s; these come about a second after the kick.)
    for attempt in 1..=2 {
        let log = format!("reconnect-{attempt}.log");
        assert!(
            !nginx.probe(&tools, &url, &log).await,
            "reconnect {attempt}, {:?} after the kick (hold {duration:?}), plays:\n{}",
            kicked_at.elapsed(),
            state(&app, &nginx, "zap").await
        );
    }
    assert_eq!(
        app.decision_count("nginx-rtmp", "deny", "session_kicked")
            .await,
        3.0,
        "the reconnects were refused session_kicked:\n{}",
        state(&app, &nginx, "zap").await
    );
    let rows = sessions(&app, "zap", "nginx-rtmp").await;
    assert_eq!(ends(&rows), [("live/stream", Some("kicked"))], "{rows:?}");

    // One duration after the kick (refused attempts did not extend it), a
    // new play works.
    tokio::time::sleep(duration.saturating_sub(kicked_at.elapsed()) + Duration::from_millis(500))
        .await;
    assert!(
        nginx.probe(&tools, &url, "after-the-hold.log").await,
        "a play after the hold:\n{}",
        state(&app, &nginx, "zap").await
    );
    let rows = sessions(&app, "zap", "nginx-rtmp").await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].end_reason.as_deref(), Some("kicked"));
    assert_ne!(rows[1].key, rows[0].key, "a new session key");
}

/// The access log lines of requests under `/live/<name>/`.
fn requests_of(access_log: &[String], name: &str) -> Vec<String> {
    let prefix = format!("GET /live/{name}/");
    access_log
        .iter()
        .filter(|line| line.contains(&prefix))
        .cloned()
        .collect()
}

fn access_log(nginx: &Nginx) -> Vec<String> {
    std::fs::read_to_string(nginx.dir.join("access.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The status of an access log line (the combined format's `"request" status`).
fn status(line: &str) -> &str {
    line.split('"')
        .nth(2)
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_hls_zapping_back_and_forth_is_served_within_a_limit_of_one() {
    let Some(tools) = tools("nginx_hls_zapping_back_and_forth_is_served_within_a_limit_of_one")
    else {
        return;
    };
    let app = spawn_app_with(zapping_settings).await;
    app.create(user("zap").token("zap-token").limit(1)).await;
    let nginx = Nginx::start(&tools, &app.address).await;
    let _publishers = two_channels(&tools, &nginx).await;

    // ch1 → ch2 → ch1, each for a few seconds, one right after the other:
    // the previous channel's session is still active (HLS sends no stop).
    let mut seen = 0;
    for (zap, channel) in ["ch1", "ch2", "ch1"].into_iter().enumerate() {
        let log = format!("zap-{zap}-{channel}.log");
        let url = nginx.hls_url_of(channel, "?token=zap-token");
        let played = nginx.watch(&tools, &url, 3, &log).await;
        let lines = access_log(&nginx);
        let requests = requests_of(&lines[seen..], channel);
        seen = lines.len();
        assert!(
            played,
            "zap {zap} to {channel} plays:\n{}\n{}\nsessions: {:#?}\n{}",
            std::fs::read_to_string(nginx.dir.join(&log)).unwrap_or_default(),
            requests.join("\n"),
            sessions(&app, "zap", "forward-auth").await,
            nginx.logs()
        );
        let refused: Vec<&String> = requests
            .iter()
            .filter(|line| !matches!(status(line), "200" | "206"))
            .collect();
        assert!(
            refused.is_empty(),
            "zap {zap} to {channel}: every request served: {refused:#?}"
        );
        assert!(
            requests
                .iter()
                .any(|line| line.contains("/index.m3u8?token=")),
            "zap {zap} to {channel}: the playlist: {requests:#?}"
        );
        let segments = requests
            .iter()
            .filter(|line| line.contains(".ts HTTP/"))
            .count();
        assert!(
            segments >= 2,
            "zap {zap} to {channel}: segments served: {requests:#?}"
        );
        let rows = sessions(&app, "zap", "forward-auth").await;
        assert_eq!(rows.len(), zap + 1, "one session per zap: {rows:#?}");
        let current = rows.last().unwrap();
        assert_eq!(current.stream, format!("live/{channel}"));
        assert!(!current.ended, "{rows:#?}");
        assert!(current.refreshed, "its segments continued it: {rows:#?}");
        for earlier in &rows[..zap] {
            assert_eq!(
                earlier.end_reason.as_deref(),
                Some("replaced"),
                "zap {zap}: {rows:#?}"
            );
        }
        assert_eq!(app.active_sessions("zap").await, 1);
    }
    let rows = sessions(&app, "zap", "forward-auth").await;
    assert_eq!(
        ends(&rows),
        [
            ("live/ch1", Some("replaced")),
            ("live/ch2", Some("replaced")),
            ("live/ch1", None)
        ]
    );
    assert!(
        rows.iter().all(|row| row.device == rows[0].device),
        "one device"
    );

    let metrics = parse_metrics(&app.metrics_text().await);
    assert_eq!(
        decisions(&metrics, "forward-auth", "deny", "session_limit"),
        0.0
    );
    assert_eq!(
        metrics
            .get(r#"playgate_sessions_ended_total{reason="replaced"}"#)
            .copied(),
        Some(2.0)
    );
}
