//! End to end, drop calls (issue 21; SPEC §12): a real nginx-rtmp with
//! its control module (`rtmp_control all`, as docs/streamers/nginx-rtmp.md
//! shows) registered as a streamer, and `notify_update_timeout 60s`, so
//! that without the call a viewer would only be cut at the next on_update a
//! minute later. ffmpeg players watching through it are dropped at once
//! when an admin kicks one, when zapping replaces one and when the user is
//! disabled.
//!
//! Needs `nginx`, `libnginx-mod-rtmp` and `ffmpeg` (scripts/install-test-deps).
//! Without them the test prints that it was skipped; with `CI=true` it fails.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::e2e_nginx::{tools, Nginx, CONFIG_TEMPLATE};
use crate::e2e_support::Running;
use crate::e2e_zapping::{two_channels, until_it_plays};
use crate::helpers::*;

/// tests/nginx/e2e.conf with a minute between on_update calls and the
/// control location of docs/streamers/nginx-rtmp.md.
fn template() -> String {
    let with_control = CONFIG_TEMPLATE
        .replace("notify_update_timeout {UPDATE_EVERY};", "notify_update_timeout 60s;")
        .replace(
            "        location /live/ {",
            "        location /control {\n            rtmp_control all;\n        }\n\n        location /live/ {",
        );
    assert!(with_control.contains("rtmp_control all;"));
    assert!(with_control.contains("notify_update_timeout 60s;"));
    with_control
}

/// How long `player` takes to stop after `action`; panics past 20 s.
async fn dropped_within(
    app: &TestApp,
    nginx: &Nginx,
    player: &mut Running,
    what: &str,
) -> Duration {
    let since = Instant::now();
    while player.is_running() {
        if since.elapsed() > Duration::from_secs(20) {
            let calls = app
                .admin("GET", "/api/v1/streamers/edge/calls", None, 200)
                .await;
            panic!(
                "{what}: the player was not dropped\ncalls: {calls}\nnginx logs:\n{}",
                nginx.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = since.elapsed();
    eprintln!("{what}: the player was dropped {took:?} after");
    took
}

async fn play(
    nginx: &Nginx,
    tools: &crate::e2e_nginx::Tools,
    app: &TestApp,
    channel: &str,
) -> Running {
    let log = format!("{channel}-{}.log", uuid::Uuid::new_v4());
    let progress = format!("{log}.progress");
    let mut player = nginx.player(
        tools,
        &nginx.rtmp_url_of(channel, "?token=zap-token"),
        300,
        &log,
        &progress,
    );
    until_it_plays(app, nginx, &mut player, &progress, &log).await;
    player
}

async fn active_on(app: &TestApp, stream: &str) -> String {
    app.db()
        .await
        .query_one(
            "SELECT id::text FROM sessions WHERE stream = $1 AND ended_at IS NULL",
            &[&stream],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_rtmp_drops_kicked_replaced_and_disabled_viewers_at_once() {
    let Some(tools) = tools("nginx_rtmp_drops_kicked_replaced_and_disabled_viewers_at_once") else {
        return;
    };
    let app = spawn_app().await;
    assert_eq!(app.state.settings.session_duration, Duration::from_secs(60));
    seed_admins(&app).await;
    app.create(user("zap").token("zap-token").limit(1)).await;
    let nginx = Nginx::start_with(&tools, &template(), &app.address).await;
    app.admin(
        "POST",
        "/api/v1/streamers",
        Some(json!({"name": "edge", "kind": "nginx-rtmp",
                    "control_url": format!("http://127.0.0.1:{}/control", nginx.http_port),
                    "addresses": ["127.0.0.1/32"]})),
        201,
    )
    .await;
    let probe = app
        .admin("POST", "/api/v1/streamers/edge/test", None, 200)
        .await;
    assert_eq!(probe["ok"], true, "{probe}");
    let _publishers = two_channels(&tools, &nginx).await;

    // Zapping: ch2 on the same device replaces ch1, whose player still runs.
    let mut ch1 = play(&nginx, &tools, &app, "ch1").await;
    let mut ch2 = play(&nginx, &tools, &app, "ch2").await;
    let replaced = dropped_within(&app, &nginx, &mut ch1, "replaced by zapping").await;
    assert!(ch2.is_running());

    // The user disabled while watching ch2.
    app.admin(
        "PATCH",
        "/api/v1/users/zap",
        Some(json!({"enabled": false})),
        200,
    )
    .await;
    let disabled = dropped_within(&app, &nginx, &mut ch2, "user disabled").await;
    app.admin(
        "PATCH",
        "/api/v1/users/zap",
        Some(json!({"enabled": true})),
        200,
    )
    .await;

    // An admin's kick.
    let mut player = play(&nginx, &tools, &app, "ch1").await;
    let session = active_on(&app, "live/ch1").await;
    app.admin("DELETE", &format!("/api/v1/sessions/{session}"), None, 204)
        .await;
    let kicked = dropped_within(&app, &nginx, &mut player, "kicked").await;

    // Far sooner than the next on_update (60 s): the drop call did it.
    for took in [replaced, disabled, kicked] {
        assert!(took < Duration::from_secs(10), "{took:?}");
    }
    let calls = app
        .admin("GET", "/api/v1/streamers/edge/calls", None, 200)
        .await;
    let calls = calls["items"].as_array().unwrap();
    let reasons: Vec<&str> = calls
        .iter()
        .map(|call| call["end_reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["kicked", "kicked", "replaced"], "{calls:?}");
    for call in calls {
        assert_eq!(call["status"], "done", "{call}");
        assert_eq!(call["result"], "dropped", "{call}");
    }
    let updates = nginx
        .logs()
        .lines()
        .filter(|line| line.contains("notify: update '"))
        .count();
    assert_eq!(
        updates,
        0,
        "no on_update came in between:\n{}",
        nginx.logs()
    );
}
