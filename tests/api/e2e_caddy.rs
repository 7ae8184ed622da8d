//! End to end with a real Caddy: `forward_auth` to playgate in front of a
//! folder of HLS files, configured with the snippet of
//! docs/streamers/forward-auth.md (tests/caddy/Caddyfile), and clients that
//! forge what Caddy passes on.
//!
//! Needs `caddy` (Debian package `caddy`) and, to play, `ffmpeg`
//! (scripts/install-test-deps). Without them a test prints that it was
//! skipped; with `CI=true` it fails.

use std::path::PathBuf;
use std::process::Command;

use crate::e2e_nginx::{
    forgeries_change_nothing, forgery_policy, the_viewer_cookie_keeps_the_neighbour_out,
    write_playlists,
};
use crate::e2e_support::*;
use crate::helpers::*;

const CONFIG_TEMPLATE: &str = include_str!("../caddy/Caddyfile");
/// The tested site block's address; the docs' snippet says `example.com`.
const SITE: &str = "http://127.0.0.1:{HTTP_PORT} {";

fn caddy(test: &str) -> Option<PathBuf> {
    tools_or_skip(test, || which("caddy").ok_or("caddy"))
}

/// A private Caddy (own config, storage and loopback port in a temp dir).
struct Caddy {
    dir: PathBuf,
    http_port: u16,
    process: Option<Running>,
}

impl Caddy {
    async fn start(caddy: &PathBuf, playgate: &str) -> Caddy {
        let dir = std::env::temp_dir().join(format!("playgate-caddy-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("hls")).unwrap();
        let http_port = free_port();
        let config = CONFIG_TEMPLATE
            .replace("{DIR}", dir.to_str().unwrap())
            .replace("{HTTP_PORT}", &http_port.to_string())
            .replace("{PLAYGATE}", playgate.trim_start_matches("http://"));
        std::fs::write(dir.join("Caddyfile"), config).unwrap();
        let mut process = Running::spawn(
            "caddy",
            Command::new(caddy)
                .arg("run")
                .arg("--config")
                .arg(dir.join("Caddyfile"))
                .arg("--adapter")
                .arg("caddyfile")
                // Caddy keeps its autosaved config and data under these: the temp dir.
                .env("HOME", &dir)
                .env("XDG_CONFIG_HOME", dir.join("config"))
                .env("XDG_DATA_HOME", dir.join("data")),
            &dir.join("caddy.log"),
        );
        let log = dir.join("caddy.log");
        wait_for_port(http_port, &mut process, || {
            std::fs::read_to_string(&log).unwrap_or_default()
        })
        .await;
        Caddy {
            dir,
            http_port,
            process: Some(process),
        }
    }
}

impl Drop for Caddy {
    fn drop(&mut self) {
        drop(self.process.take());
        if std::thread::panicking() {
            eprintln!("caddy logs in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_forward_auth_believes_only_what_caddy_sets() {
    let Some(caddy) = caddy("caddy_forward_auth_believes_only_what_caddy_sets") else {
        return;
    };
    let app = spawn_app().await;
    forgery_policy(&app).await;
    let caddy = Caddy::start(&caddy, &app.address).await;
    write_playlists(&caddy.dir.join("hls"));
    forgeries_change_nothing(&app, caddy.http_port, "caddy").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_passes_the_viewer_cookie_and_keeps_the_neighbour_out() {
    let test = "caddy_passes_the_viewer_cookie_and_keeps_the_neighbour_out";
    let Some((caddy, ffmpeg)) = tools_or_skip(test, || {
        Ok((
            which("caddy").ok_or("caddy")?,
            which("ffmpeg").ok_or("ffmpeg")?,
        ))
    }) else {
        return;
    };
    let app = spawn_app().await;
    app.create(user("alice").token("alice-token")).await;
    let caddy = Caddy::start(&caddy, &app.address).await;
    // A few seconds of HLS for Caddy to serve: /live/stream/index.m3u8.
    let folder = caddy.dir.join("hls/stream");
    std::fs::create_dir_all(&folder).unwrap();
    let made = Running::spawn(
        "ffmpeg packager",
        Command::new(&ffmpeg)
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=320x240:rate=25",
                "-t",
                "5",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-g",
                "25",
                "-f",
                "hls",
                "-hls_time",
                "1",
                "-hls_list_size",
                "0",
                "-hls_playlist_type",
                "vod",
            ])
            .arg(folder.join("index.m3u8")),
        &caddy.dir.join("packager.log"),
    )
    .finish(std::time::Duration::from_secs(60))
    .await;
    assert!(made, "ffmpeg made the HLS files");
    the_viewer_cookie_keeps_the_neighbour_out(
        &app,
        &ffmpeg,
        caddy.http_port,
        "/live/stream/index.m3u8",
        &folder,
        &caddy.dir,
        "caddy",
    )
    .await;
}

/// The docs' Caddy snippet (docs/streamers/forward-auth.md) is the site block
/// these tests run, with the test's addresses replaced by the docs'.
#[test]
fn docs_caddy_snippet_is_the_tested_config() {
    let docs = include_str!("../../docs/streamers/forward-auth.md");
    let docs_lines: Vec<&str> = docs.lines().map(str::trim).collect();
    let site = CONFIG_TEMPLATE
        .find(SITE)
        .expect("the template has the site block");
    let mut checked = 0;
    for line in CONFIG_TEMPLATE[site..].lines() {
        let expected = line
            .trim()
            .replace(SITE, "example.com {")
            .replace("{PLAYGATE}", "playgate:8080")
            .replace("{DIR}/hls", "/var/lib/nginx/hls");
        assert!(
            docs_lines.contains(&expected.as_str()),
            "docs lack the tested Caddy line: {expected}"
        );
        checked += 1;
    }
    assert!(checked > 10, "only {checked} lines checked");
}
