//! End to end with nginx-rtmp's own relay (issue 18 item 6): a real nginx
//! whose application `live` pushes every stream to application `relayed`
//! (`push`), both with `on_play` / `on_update` / `on_play_done` pointed at
//! playgate. The push is a session nginx opens itself, which plays `live`
//! with no `app` and `flashver=ngx-local-relay` (ngx_rtmp_relay_module.c):
//! playgate must answer it 200 and record nothing, or the stream never
//! reaches `relayed`. ffmpeg publishes, ffprobe/ffmpeg play from `relayed`.
//!
//! Needs `nginx`, `libnginx-mod-rtmp` and `ffmpeg` (scripts/install-test-deps).
//! Without them the test prints that it was skipped; with `CI=true` it fails.

use std::time::{Duration, Instant};

use crate::e2e_nginx::{tools, Nginx};
use crate::helpers::*;
use crate::hook_nginx_rtmp::listed_sessions;

/// Application `live` of tests/nginx/e2e.conf plus the push, and the
/// application it pushes to: the "Relays" snippet of
/// docs/streamers/nginx-rtmp.md (`relay_snippet_is_documented`).
const CONFIG_TEMPLATE: &str = r#"
daemon off;
master_process off;
pid {DIR}/nginx.pid;
error_log {DIR}/error.log info;
load_module {RTMP_MODULE};

events {
    worker_connections 256;
}

rtmp {
    server {
        listen 127.0.0.1:{RTMP_PORT};

        application live {
            live on;
            on_play      http://{PLAYGATE}/hook/nginx-rtmp;
            on_update    http://{PLAYGATE}/hook/nginx-rtmp;
            on_play_done http://{PLAYGATE}/hook/nginx-rtmp;
            notify_update_timeout {UPDATE_EVERY};
            hls on;
            hls_path {DIR}/hls;
            hls_nested on;
            hls_fragment 1s;
            hls_playlist_length 4s;

            # nginx's own relay of every stream published here: it plays
            # the stream through these hooks with no app; playgate answers
            # 200 and records nothing.
            push rtmp://127.0.0.1:{RTMP_PORT}/relayed;
        }

        application relayed {
            live on;
            on_play      http://{PLAYGATE}/hook/nginx-rtmp;
            on_update    http://{PLAYGATE}/hook/nginx-rtmp;
            on_play_done http://{PLAYGATE}/hook/nginx-rtmp;
            notify_update_timeout {UPDATE_EVERY};
        }
    }
}

http {
    access_log {DIR}/access.log;
    client_body_temp_path {DIR}/tmp/body;
    proxy_temp_path {DIR}/tmp/proxy;
    fastcgi_temp_path {DIR}/tmp/fastcgi;
    uwsgi_temp_path {DIR}/tmp/uwsgi;
    scgi_temp_path {DIR}/tmp/scgi;

    server {
        listen 127.0.0.1:{HTTP_PORT};
        return 404;
    }
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_push_relay_is_no_viewer_and_the_pushed_stream_plays() {
    let Some(tools) = tools("nginx_push_relay_is_no_viewer_and_the_pushed_stream_plays") else {
        return;
    };
    let app = spawn_admin_app().await;
    app.create(user("alice").token("alice-token")).await;
    let nginx = Nginx::start_with(&tools, CONFIG_TEMPLATE, &app.address).await;
    let relayed =
        |query: &str| format!("rtmp://127.0.0.1:{}/relayed/stream{query}", nginx.rtmp_port);
    let mut publisher = nginx.publish(&tools);
    nginx.wait_for_hls(&mut publisher).await;

    // The push starts with the publish; nginx retries a refused one every
    // 3 s (push_reconnect), so give it a few tries.
    let deadline = Instant::now() + Duration::from_secs(20);
    for attempt in 1.. {
        let log = format!("probe-relayed-{attempt}.log");
        if nginx
            .probe(&tools, &relayed("?token=alice-token"), &log)
            .await
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pushed stream does not play from relayed:\n{}",
            nginx.logs()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // The relay outlives its on_update calls (every 2 s; a refused one
    // would drop it): the viewer still watches.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let relay_client = format!("client: 127.0.0.1:{}/relayed", nginx.rtmp_port);
    let relay_updates = nginx
        .logs()
        .lines()
        .filter(|line| line.contains("notify: update") && line.contains(&relay_client))
        .count();
    assert!(
        relay_updates >= 2,
        "the relay was re-asked:\n{}",
        nginx.logs()
    );
    assert!(
        nginx
            .watch(&tools, &relayed("?token=alice-token"), 2, "watch.log")
            .await,
        "the viewer watches relayed:\n{}",
        nginx.logs()
    );

    // relayed is guarded: no token, no play, even for a client that says
    // it is a relay (its connect's flashVer).
    assert!(
        !nginx
            .probe(&tools, &relayed(""), "probe-no-token.log")
            .await
    );
    assert!(
        !nginx
            .probe_with(
                &tools,
                &["-rtmp_flashver", "ngx-local-relay"],
                &relayed(""),
                "probe-relay-flashver.log"
            )
            .await,
        "a relay's flashVer lets no client in"
    );

    // The publisher leaves: the relay's play_done.
    assert!(publisher.is_running(), "the publisher was never cut off");
    drop(publisher);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !nginx
        .logs()
        .lines()
        .any(|line| line.contains("notify: play_done") && line.contains(&relay_client))
    {
        assert!(
            Instant::now() < deadline,
            "the relay ended:\n{}",
            nginx.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Only the viewer's sessions, none of the relay (nor of live/stream).
    let listed = listed_sessions(&app).await;
    assert!(!listed.is_empty(), "the viewer's sessions are listed");
    for (user, stream) in &listed {
        assert_eq!(
            (user.as_deref(), stream.as_str()),
            (Some("alice"), "relayed/stream"),
            "{listed:?}"
        );
    }
    // Not one of the relay's calls was a bad request or a denial.
    let metrics = parse_metrics(&app.metrics_text().await);
    let denials: Vec<_> = metrics
        .iter()
        .filter(|(key, value)| {
            key.starts_with("playgate_decisions_total")
                && key.contains("nginx-rtmp")
                && key.contains("deny")
                && **value > 0.0
        })
        .collect();
    assert_eq!(
        decisions(&metrics, "nginx-rtmp", "deny", "no_credentials"),
        2.0,
        "{denials:?}"
    );
    assert_eq!(
        denials.len(),
        1,
        "the two tokenless probes only: {denials:?}"
    );
    assert!(decisions(&metrics, "nginx-rtmp", "allow", "ok") >= 2.0);
}

/// The relay part of the tested configuration is on
/// docs/streamers/nginx-rtmp.md, with the test's addresses replaced by the
/// docs' (the rest of application `live` is checked by
/// `readme_nginx_snippets_are_the_tested_config`).
#[test]
fn relay_snippet_is_documented() {
    let docs = include_str!("../../docs/streamers/nginx-rtmp.md");
    let docs_lines: Vec<&str> = docs.lines().map(str::trim).collect();
    let rtmp = &CONFIG_TEMPLATE[CONFIG_TEMPLATE.find("# nginx's own relay").unwrap()
        ..CONFIG_TEMPLATE.find("http {").unwrap()];
    let mut checked = 0;
    for line in rtmp.lines().map(str::trim).filter(|line| !line.is_empty()) {
        let expected = line
            .replace("{PLAYGATE}", "playgate:8080")
            .replace("127.0.0.1:{RTMP_PORT}", "127.0.0.1:1935")
            .replace("{UPDATE_EVERY}", "30s");
        assert!(
            docs_lines.contains(&expected.as_str()),
            "docs lack the tested relay line: {expected}"
        );
        checked += 1;
    }
    assert!(checked > 10, "only {checked} lines checked");
}
