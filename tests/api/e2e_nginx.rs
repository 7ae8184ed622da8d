//! End to end with real streamers: a private nginx with the RTMP module calls
//! playgate's hooks (`on_play`, `on_update`, `on_play_done`, and
//! `auth_request` → forward-auth for its HLS), ffmpeg publishes a generated
//! test pattern, ffprobe/ffmpeg play it.
//!
//! Needs `nginx`, `libnginx-mod-rtmp` and `ffmpeg` (scripts/install-test-deps).
//! Without them a test prints that it was skipped; with `CI=true` it fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::*;

const CONFIG_TEMPLATE: &str = include_str!("../nginx/e2e.conf");
const RTMP_MODULE_PATHS: &[&str] = &[
    "/usr/lib/nginx/modules/ngx_rtmp_module.so",
    "/usr/lib64/nginx/modules/ngx_rtmp_module.so",
];

struct Tools {
    nginx: PathBuf,
    rtmp_module: PathBuf,
    ffmpeg: PathBuf,
    ffprobe: PathBuf,
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn rtmp_module() -> Option<PathBuf> {
    if let Some(found) = RTMP_MODULE_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
    {
        return Some(found);
    }
    let listed = Command::new("dpkg")
        .args(["-L", "libnginx-mod-rtmp"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&listed.stdout)
        .lines()
        .find(|line| line.ends_with("ngx_rtmp_module.so"))
        .map(PathBuf::from)
}

/// The tools, or None after saying the test is skipped (a failure under CI=true).
fn tools(test: &str) -> Option<Tools> {
    let found = (|| {
        Ok::<_, &str>(Tools {
            nginx: which("nginx").ok_or("nginx")?,
            rtmp_module: rtmp_module().ok_or("libnginx-mod-rtmp")?,
            ffmpeg: which("ffmpeg").ok_or("ffmpeg")?,
            ffprobe: which("ffprobe").ok_or("ffprobe")?,
        })
    })();
    match found {
        Ok(tools) => Some(tools),
        Err(missing) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{test}: {missing} is not installed (run scripts/install-test-deps)")
        }
        Err(missing) => {
            eprintln!("skipped {test}: {missing} is not installed (scripts/install-test-deps)");
            None
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process that is killed (and reaped) when dropped.
struct Running {
    name: &'static str,
    child: Child,
}

impl Running {
    fn spawn(name: &'static str, command: &mut Command, log: &Path) -> Running {
        let out = std::fs::File::create(log).unwrap();
        let err = out.try_clone().unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Running { name, child }
    }

    fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the exit, at most `limit` (then kills it and panics).
    async fn finish(mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("{} did not finish within {limit:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private nginx (own prefix, config and loopback ports in a temp dir).
struct Nginx {
    dir: PathBuf,
    rtmp_port: u16,
    http_port: u16,
    // Declared before nothing else that needs it: dropped (killed) first.
    process: Option<Running>,
}

impl Nginx {
    async fn start(tools: &Tools, playgate: &str) -> Nginx {
        let dir = std::env::temp_dir().join(format!("playgate-e2e-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        std::fs::create_dir_all(dir.join("hls")).unwrap();
        let rtmp_port = free_port();
        let http_port = free_port();
        let config = CONFIG_TEMPLATE
            .replace("{DIR}", dir.to_str().unwrap())
            .replace("{RTMP_MODULE}", tools.rtmp_module.to_str().unwrap())
            .replace("{RTMP_PORT}", &rtmp_port.to_string())
            .replace("{HTTP_PORT}", &http_port.to_string())
            .replace("{PLAYGATE}", playgate.trim_start_matches("http://"))
            .replace("{UPDATE_EVERY}", "2s");
        std::fs::write(dir.join("nginx.conf"), config).unwrap();
        let process = Running::spawn(
            "nginx",
            Command::new(&tools.nginx)
                .arg("-p")
                .arg(&dir)
                .arg("-c")
                .arg(dir.join("nginx.conf"))
                .arg("-e")
                .arg(dir.join("error.log")),
            &dir.join("nginx.out"),
        );
        let mut nginx = Nginx {
            dir,
            rtmp_port,
            http_port,
            process: Some(process),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let up = std::net::TcpStream::connect(("127.0.0.1", rtmp_port)).is_ok()
                && std::net::TcpStream::connect(("127.0.0.1", http_port)).is_ok();
            if up {
                break;
            }
            let running = nginx.process.as_mut().unwrap().is_running();
            if !running || Instant::now() > deadline {
                panic!("nginx did not start:\n{}", nginx.logs());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        nginx
    }

    fn logs(&self) -> String {
        ["nginx.out", "error.log"]
            .iter()
            .map(|file| std::fs::read_to_string(self.dir.join(file)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn rtmp_url(&self, query: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/stream{query}", self.rtmp_port)
    }

    fn hls_url(&self, query: &str) -> String {
        format!(
            "http://127.0.0.1:{}/live/stream/index.m3u8{query}",
            self.http_port
        )
    }

    /// ffmpeg publishing a generated test pattern to live/stream.
    fn publish(&self, tools: &Tools) -> Running {
        Running::spawn(
            "ffmpeg publisher",
            Command::new(&tools.ffmpeg).args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-re",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=320x240:rate=25",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
                "-g",
                "25",
                "-f",
                "flv",
                &self.rtmp_url(""),
            ]),
            &self.dir.join("publisher.log"),
        )
    }

    /// Waits until the HLS playlist of live/stream exists (the publisher is live).
    async fn wait_for_hls(&self, publisher: &mut Running) {
        let playlist = self.dir.join("hls/stream/index.m3u8");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !playlist.is_file() {
            if !publisher.is_running() || Instant::now() > deadline {
                panic!(
                    "the stream did not go live:\n{}\n{}",
                    std::fs::read_to_string(self.dir.join("publisher.log")).unwrap_or_default(),
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// ffprobe the URL: true when it found a video stream.
    async fn probe(&self, tools: &Tools, url: &str, log: &str) -> bool {
        let log = self.dir.join(log);
        let ok = Running::spawn(
            "ffprobe",
            Command::new(&tools.ffprobe).args([
                "-v",
                "error",
                "-rw_timeout",
                "5000000",
                "-show_entries",
                "stream=codec_name",
                "-of",
                "csv=p=0",
                url,
            ]),
            &log,
        )
        .finish(Duration::from_secs(30))
        .await;
        ok && std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("h264")
    }

    /// ffmpeg reads `seconds` of the URL and discards it: true when it played.
    async fn watch(&self, tools: &Tools, url: &str, seconds: u32, log: &str) -> bool {
        Running::spawn(
            "ffmpeg player",
            Command::new(&tools.ffmpeg).args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-rw_timeout",
                "5000000",
                "-i",
                url,
                "-t",
                &seconds.to_string(),
                "-f",
                "null",
                "-",
            ]),
            &self.dir.join(log),
        )
        .finish(Duration::from_secs(u64::from(seconds) + 30))
        .await
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        drop(self.process.take());
        if std::thread::panicking() {
            eprintln!("nginx logs in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// (id, ended, end_reason, started_at < last_seen_at) of a user's sessions of a dialect.
async fn sessions_of(
    app: &TestApp,
    login: &str,
    dialect: &str,
) -> Vec<(uuid::Uuid, bool, Option<String>, bool)> {
    app.db()
        .await
        .query(
            "SELECT id, ended_at IS NOT NULL, end_reason, last_seen_at > started_at
               FROM sessions WHERE login = $1 AND dialect = $2 ORDER BY started_at",
            &[&login, &dialect],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_rtmp_plays_only_with_a_valid_token_and_ends_the_session() {
    let Some(tools) = tools("nginx_rtmp_plays_only_with_a_valid_token_and_ends_the_session") else {
        return;
    };
    let app = spawn_app().await;
    app.create(user("alice").token("alice-token").limit(2))
        .await;
    let nginx = Nginx::start(&tools, &app.address).await;
    let mut publisher = nginx.publish(&tools);
    nginx.wait_for_hls(&mut publisher).await;

    assert!(
        nginx
            .probe(
                &tools,
                &nginx.rtmp_url("?token=alice-token"),
                "probe-ok.log"
            )
            .await,
        "a valid token plays:\n{}",
        nginx.logs()
    );
    assert!(
        !nginx
            .probe(&tools, &nginx.rtmp_url("?token=wrong"), "probe-bad.log")
            .await,
        "a bad token is refused"
    );
    assert!(
        !nginx
            .probe(&tools, &nginx.rtmp_url(""), "probe-none.log")
            .await,
        "no token is refused"
    );

    // A viewer that stays a while: on_update refreshes it, on_play_done ends it.
    assert!(
        nginx
            .watch(
                &tools,
                &nginx.rtmp_url("?token=alice-token"),
                5,
                "watch.log"
            )
            .await,
        "the viewer plays for 5 s:\n{}",
        nginx.logs()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let sessions = loop {
        let sessions = sessions_of(&app, "alice", "nginx-rtmp").await;
        if sessions.len() == 2 && sessions.iter().all(|s| s.1) {
            break sessions;
        }
        if Instant::now() > deadline {
            panic!("sessions not ended by on_play_done: {sessions:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for (id, _, end_reason, _) in &sessions {
        assert_eq!(end_reason.as_deref(), Some("stopped"), "session {id}");
    }
    assert!(sessions[1].3, "on_update refreshed the watching session");

    // The publisher went through several on_update (update_publish) calls
    // and was never cut off; the refusals were counted.
    assert!(publisher.is_running(), "the publisher is still live");
    let metrics = parse_metrics(&app.metrics_text().await);
    assert!(decisions(&metrics, "nginx-rtmp", "allow", "ok") >= 2.0);
    assert_eq!(
        decisions(&metrics, "nginx-rtmp", "deny", "unknown_token"),
        1.0
    );
    assert_eq!(
        decisions(&metrics, "nginx-rtmp", "deny", "no_credentials"),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_hls_behind_auth_request_is_one_session_per_viewer() {
    let Some(tools) = tools("nginx_hls_behind_auth_request_is_one_session_per_viewer") else {
        return;
    };
    let app = spawn_app().await;
    app.create(user("alice").token("alice-token").limit(1))
        .await;
    let nginx = Nginx::start(&tools, &app.address).await;
    let mut publisher = nginx.publish(&tools);
    nginx.wait_for_hls(&mut publisher).await;

    assert!(
        !nginx
            .probe(&tools, &nginx.hls_url(""), "probe-none.log")
            .await,
        "the playlist without a token is refused"
    );
    assert!(
        !nginx
            .probe(&tools, &nginx.hls_url("?token=wrong"), "probe-bad.log")
            .await,
        "the playlist with a bad token is refused"
    );
    assert!(
        nginx
            .probe(&tools, &nginx.hls_url("?token=alice-token"), "probe-ok.log")
            .await,
        "the playlist with a token plays:\n{}",
        nginx.logs()
    );
    // Watching for a few seconds fetches the playlist again and several
    // segments (relative URLs, without the token): still one session, and
    // within a limit of 1.
    assert!(
        nginx
            .watch(&tools, &nginx.hls_url("?token=alice-token"), 4, "watch.log")
            .await,
        "the viewer plays HLS for 4 s:\n{}",
        nginx.logs()
    );
    let access_log = std::fs::read_to_string(nginx.dir.join("access.log")).unwrap_or_default();
    let segments = access_log
        .lines()
        .filter(|line| {
            line.contains(".ts HTTP/") && (line.contains(" 200 ") || line.contains(" 206 "))
        })
        .count();
    assert!(segments >= 2, "segments were served:\n{access_log}");

    let sessions = sessions_of(&app, "alice", "forward-auth").await;
    assert_eq!(sessions.len(), 1, "one viewer, one session: {sessions:?}");
    assert!(sessions[0].3, "segment requests refreshed the session");
    let metrics = parse_metrics(&app.metrics_text().await);
    assert!(
        decisions(&metrics, "forward-auth", "allow", "ok") > 2.0,
        "playlists and segments were each authorized"
    );
    assert!(decisions(&metrics, "forward-auth", "deny", "no_credentials") >= 1.0);
    assert!(decisions(&metrics, "forward-auth", "deny", "unknown_token") >= 1.0);
}

/// The docs' nginx snippets (docs/streamers/nginx-rtmp.md and
/// docs/streamers/forward-auth.md) are the configuration these tests run:
/// every line of the rtmp application and the http locations, with the
/// test's addresses replaced by the docs'.
#[test]
fn readme_nginx_snippets_are_the_tested_config() {
    let docs = [
        include_str!("../../docs/streamers/nginx-rtmp.md"),
        include_str!("../../docs/streamers/forward-auth.md"),
    ]
    .concat();
    let docs_lines: Vec<&str> = docs.lines().map(str::trim).collect();
    let mut checked = 0;
    let mut depth_of_block: Option<usize> = None;
    for line in CONFIG_TEMPLATE.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if depth_of_block.is_none()
            && (trimmed == "application live {" || trimmed.starts_with("location "))
        {
            depth_of_block = Some(indent);
        }
        let Some(block_indent) = depth_of_block else {
            continue;
        };
        let expected = trimmed
            .replace("{PLAYGATE}", "playgate:8080")
            .replace("{DIR}/hls", "/var/lib/nginx/hls")
            .replace("{UPDATE_EVERY}", "30s");
        assert!(
            docs_lines.contains(&expected.as_str()),
            "docs lack the tested nginx line: {expected}"
        );
        checked += 1;
        if trimmed == "}" && indent == block_indent {
            depth_of_block = None;
        }
    }
    assert!(checked > 30, "only {checked} lines checked");
}
