//! End to end with real streamers: a private nginx with the RTMP module calls
//! playgate's hooks (`on_play`, `on_update`, `on_play_done`, and
//! `auth_request` → forward-auth for its HLS), ffmpeg publishes a generated
//! test pattern, ffprobe/ffmpeg play it.
//!
//! Needs `nginx`, `libnginx-mod-rtmp` and `ffmpeg` (scripts/install-test-deps).
//! Without them a test prints that it was skipped; with `CI=true` it fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::e2e_support::*;
use crate::helpers::*;

pub const CONFIG_TEMPLATE: &str = include_str!("../nginx/e2e.conf");
const RTMP_MODULE_PATHS: &[&str] = &[
    "/usr/lib/nginx/modules/ngx_rtmp_module.so",
    "/usr/lib64/nginx/modules/ngx_rtmp_module.so",
];

pub struct Tools {
    nginx: PathBuf,
    rtmp_module: PathBuf,
    ffmpeg: PathBuf,
    ffprobe: PathBuf,
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
pub fn tools(test: &str) -> Option<Tools> {
    tools_or_skip(test, || {
        Ok(Tools {
            nginx: which("nginx").ok_or("nginx")?,
            rtmp_module: rtmp_module().ok_or("libnginx-mod-rtmp")?,
            ffmpeg: which("ffmpeg").ok_or("ffmpeg")?,
            ffprobe: which("ffprobe").ok_or("ffprobe")?,
        })
    })
}

/// A private nginx (own prefix, config and loopback ports in a temp dir).
pub struct Nginx {
    pub dir: PathBuf,
    pub rtmp_port: u16,
    pub http_port: u16,
    // Declared before nothing else that needs it: dropped (killed) first.
    process: Option<Running>,
}

impl Nginx {
    pub async fn start(tools: &Tools, playgate: &str) -> Nginx {
        Nginx::start_with(tools, CONFIG_TEMPLATE, playgate).await
    }

    /// With another configuration: the placeholders of tests/nginx/e2e.conf,
    /// and an http server on {HTTP_PORT}.
    pub async fn start_with(tools: &Tools, template: &str, playgate: &str) -> Nginx {
        Nginx::launch(&tools.nginx, Some(&tools.rtmp_module), template, playgate).await
    }

    /// An nginx without the RTMP module (only `nginx` needs to be installed):
    /// a configuration of `http` servers, the placeholders of
    /// tests/nginx/e2e.conf but {RTMP_MODULE} and {RTMP_PORT}, a server on
    /// {HTTP_PORT}.
    pub async fn start_http(nginx: &Path, template: &str, playgate: &str) -> Nginx {
        Nginx::launch(nginx, None, template, playgate).await
    }

    async fn launch(
        nginx: &Path,
        rtmp_module: Option<&Path>,
        template: &str,
        playgate: &str,
    ) -> Nginx {
        let dir = std::env::temp_dir().join(format!("playgate-e2e-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        std::fs::create_dir_all(dir.join("hls")).unwrap();
        let rtmp_port = free_port();
        let http_port = free_port();
        let mut config = template
            .replace("{DIR}", dir.to_str().unwrap())
            .replace("{RTMP_PORT}", &rtmp_port.to_string())
            .replace("{HTTP_PORT}", &http_port.to_string())
            .replace("{PLAYGATE}", playgate.trim_start_matches("http://"))
            .replace("{UPDATE_EVERY}", "2s");
        if let Some(module) = rtmp_module {
            config = config.replace("{RTMP_MODULE}", module.to_str().unwrap());
        }
        std::fs::write(dir.join("nginx.conf"), config).unwrap();
        let process = Running::spawn(
            "nginx",
            Command::new(nginx)
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
            let up = (rtmp_module.is_none()
                || std::net::TcpStream::connect(("127.0.0.1", rtmp_port)).is_ok())
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

    /// nginx's access log so far (the `combined` format of the configs).
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }

    pub fn logs(&self) -> String {
        ["nginx.out", "error.log"]
            .iter()
            .map(|file| std::fs::read_to_string(self.dir.join(file)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn rtmp_url(&self, query: &str) -> String {
        self.rtmp_url_of("stream", query)
    }

    /// rtmp://…/live/<name><query>.
    pub fn rtmp_url_of(&self, name: &str, query: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{name}{query}", self.rtmp_port)
    }

    pub fn hls_url(&self, query: &str) -> String {
        self.hls_url_of("stream", query)
    }

    /// The HLS playlist of live/<name> behind `auth_request`.
    pub fn hls_url_of(&self, name: &str, query: &str) -> String {
        format!(
            "http://127.0.0.1:{}/live/{name}/index.m3u8{query}",
            self.http_port
        )
    }

    /// ffmpeg publishing a generated test pattern to live/stream.
    pub fn publish(&self, tools: &Tools) -> Running {
        self.publish_to(tools, "stream", "publisher.log")
    }

    /// ffmpeg publishing a generated test pattern to live/<name>.
    pub fn publish_to(&self, tools: &Tools, name: &str, log: &str) -> Running {
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
                &self.rtmp_url_of(name, ""),
            ]),
            &self.dir.join(log),
        )
    }

    /// Waits until the HLS playlist of live/stream exists (the publisher is live).
    pub async fn wait_for_hls(&self, publisher: &mut Running) {
        self.wait_for_hls_of("stream", publisher, "publisher.log")
            .await
    }

    /// Waits until the HLS playlist of live/<name> exists (its publisher,
    /// logging to `log`, is live).
    pub async fn wait_for_hls_of(&self, name: &str, publisher: &mut Running, log: &str) {
        let playlist = self.dir.join("hls").join(name).join("index.m3u8");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !playlist.is_file() {
            if !publisher.is_running() || Instant::now() > deadline {
                panic!(
                    "the stream did not go live:\n{}\n{}",
                    std::fs::read_to_string(self.dir.join(log)).unwrap_or_default(),
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// ffprobe the URL: true when it found a video stream.
    pub async fn probe(&self, tools: &Tools, url: &str, log: &str) -> bool {
        self.probe_with(tools, &[], url, log).await
    }

    /// `probe` with these ffprobe options before the URL.
    pub async fn probe_with(&self, tools: &Tools, options: &[&str], url: &str, log: &str) -> bool {
        let log = self.dir.join(log);
        let ok = Running::spawn(
            "ffprobe",
            Command::new(&tools.ffprobe)
                .args([
                    "-v",
                    "error",
                    "-rw_timeout",
                    "5000000",
                    "-show_entries",
                    "stream=codec_name",
                    "-of",
                    "csv=p=0",
                ])
                .args(options)
                .arg(url),
            &log,
        )
        .finish(Duration::from_secs(30))
        .await;
        ok && std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("h264")
    }

    /// ffmpeg reads `seconds` of the URL and discards it: true when it played.
    pub async fn watch(&self, tools: &Tools, url: &str, seconds: u32, log: &str) -> bool {
        ffmpeg_plays(&tools.ffmpeg, url, seconds, &self.dir.join(log)).await
    }

    /// A player left running: ffmpeg reads `seconds` of the URL and
    /// discards it, writing its progress (`frame=N` lines) to `progress`.
    pub fn player(
        &self,
        tools: &Tools,
        url: &str,
        seconds: u32,
        log: &str,
        progress: &str,
    ) -> Running {
        Running::spawn(
            "ffmpeg player",
            Command::new(&tools.ffmpeg)
                .args([
                    "-hide_banner",
                    "-loglevel",
                    "error",
                    "-nostats",
                    "-rw_timeout",
                    "5000000",
                    "-progress",
                ])
                .arg(self.dir.join(progress))
                .args(["-i", url, "-t", &seconds.to_string(), "-f", "null", "-"]),
            &self.dir.join(log),
        )
    }

    /// The frames a `player` has read so far (its last `frame=` progress line).
    pub fn frames_read(&self, progress: &str) -> u64 {
        std::fs::read_to_string(self.dir.join(progress))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.strip_prefix("frame="))
            .filter_map(|frames| frames.trim().parse().ok())
            .next_back()
            .unwrap_or(0)
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
               FROM session_log WHERE login = $1 AND dialect = $2 ORDER BY started_at",
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

/// Files the proxies serve in the forgery tests: a free, a premium and a
/// sport playlist, each with a marker to look for in what the viewer gets.
pub fn write_playlists(hls: &std::path::Path) {
    for (folder, marker) in [
        ("free", "FREE-PLAYLIST"),
        ("premium", "PREMIUM-PLAYLIST"),
        ("sport/one", "SPORT-PLAYLIST"),
    ] {
        let dir = hls.join(folder);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("index.m3u8"),
            format!("#EXTM3U\n# {marker}\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n0.ts\n"),
        )
        .unwrap();
        std::fs::write(dir.join("0.ts"), marker).unwrap();
    }
}

/// Users and rules of the forgery tests: `alice` may watch live/free only,
/// `fan` live/sport/*, and `ips` is bound to 198.51.100.0/24 (IP
/// authorization, no credentials).
pub async fn forgery_policy(app: &TestApp) {
    app.package("free", &["live/free"]).await;
    app.package("sport", &["live/sport/*"]).await;
    app.create(user("alice").token("alice-token").packages(&["free"]))
        .await;
    app.create(user("fan").token("fan-token").packages(&["sport"]))
        .await;
    app.create(user("ips").ips(&["198.51.100.0/24"])).await;
}

/// Through the proxy on `port`: every forged header and path spelling of the
/// audit (issue 15), none of which may change the stream, the client address
/// or the user. `proxy` names the proxy in failure messages.
pub async fn forgeries_change_nothing(app: &TestApp, port: u16, proxy: &str) {
    let forged_client = [
        ("X-Real-IP", "198.51.100.7"),
        ("X-Forwarded-For", "198.51.100.7"),
    ];
    let forged_uri = [
        ("X-Original-URI", "/live/free/index.m3u8?token=alice-token"),
        ("X-Forwarded-Uri", "/live/free/index.m3u8?token=alice-token"),
        ("X-Playgate-Stream", "live/free"),
    ];
    let premium_refused = |answer: &RawAnswer, what: &str| {
        assert!(
            (400..500).contains(&answer.status) && !answer.body.contains("PREMIUM"),
            "{proxy}: {what}: {} {}",
            answer.status,
            answer.body
        );
    };

    // A free viewer forging the stream or the URI still asks for premium.
    let all: Vec<(&str, &str)> = forged_uri.iter().chain(&forged_client).copied().collect();
    let answer = raw_get(port, "/live/premium/index.m3u8?token=alice-token", &all).await;
    premium_refused(&answer, "stream and URI headers forged");
    assert_eq!(answer.status, 403, "{proxy}: {}", answer.body);
    // The same forgeries on a stream alice may watch: played, as herself,
    // from the address the proxy saw.
    let answer = raw_get(port, "/live/free/index.m3u8?token=alice-token", &all).await;
    assert_eq!(answer.status, 200, "{proxy}: {}", answer.body);
    assert!(
        answer.body.contains("FREE-PLAYLIST"),
        "{proxy}: {}",
        answer.body
    );

    // Anonymous playback as the IP-bound user: the client is 127.0.0.1.
    // (Another user agent than alice's, so that no session of hers is
    // continued: that is the HLS continuation's matter.)
    let forged_neighbour: Vec<(&str, &str)> = forged_client
        .iter()
        .copied()
        .chain([("User-Agent", "neighbour/1.0")])
        .collect();
    for (target, what) in [
        ("/live/premium/index.m3u8", "X-Real-IP of an IP-bound user"),
        (
            "/live/free/index.m3u8",
            "X-Real-IP of an IP-bound user, free",
        ),
    ] {
        let answer = raw_get(port, target, &forged_neighbour).await;
        assert_eq!(answer.status, 401, "{proxy}: {what}: {}", answer.body);
        assert!(
            !answer.header_values("WWW-Authenticate").is_empty(),
            "{proxy}: the challenge reaches the viewer: {}",
            answer.head
        );
        assert!(!answer.body.contains("PLAYLIST"), "{proxy}: {what}");
    }

    // A live/sport/* viewer spelling premium with dot segments, empty
    // segments or an encoded slash.
    let answer = raw_get(port, "/live/sport/one/index.m3u8?token=fan-token", &[]).await;
    assert_eq!(answer.status, 200, "{proxy}: the sport viewer plays sport");
    for target in [
        "/live/sport/../premium/index.m3u8?token=fan-token",
        "/live/sport/%2e%2e/premium/index.m3u8?token=fan-token",
        "/live/sport/%2E%2E/premium/index.m3u8?token=fan-token",
        "/live/sport/./../premium/index.m3u8?token=fan-token",
        "//live/premium/index.m3u8?token=fan-token",
        "/live//premium/index.m3u8?token=fan-token",
        "/live%2Fpremium/index.m3u8?token=fan-token",
        "/live/sport%2F..%2Fpremium/index.m3u8?token=fan-token",
    ] {
        let answer = raw_get(port, target, &forged_client).await;
        premium_refused(&answer, target);
    }

    // Every session is at the address the proxy saw, on a stream its user may watch.
    let rows = app
        .db()
        .await
        .query(
            "SELECT login, stream, host(client_ip) FROM sessions WHERE dialect = 'forward-auth'",
            &[],
        )
        .await
        .unwrap();
    let sessions: Vec<(Option<String>, String, String)> = rows
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    let mut expected = vec![
        (
            Some("alice".to_string()),
            "live/free".to_string(),
            "127.0.0.1".to_string(),
        ),
        (
            Some("fan".to_string()),
            "live/sport/one".to_string(),
            "127.0.0.1".to_string(),
        ),
    ];
    let mut sorted = sessions.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected, "{proxy}: sessions");

    // A deny rule on the proxy's client address holds whatever address it forges.
    app.ip_rule("127.0.0.1", playgate::domain::RuleAction::Deny)
        .await;
    let answer = raw_get(
        port,
        "/live/free/index.m3u8?token=alice-token",
        &[
            ("X-Real-IP", "203.0.113.9"),
            ("X-Forwarded-For", "203.0.113.9"),
        ],
    )
    .await;
    assert_eq!(answer.status, 403, "{proxy}: deny rule: {}", answer.body);
    assert!(!answer.body.contains("PLAYLIST"));
    assert_eq!(
        app.decision_count("forward-auth", "deny", "ip_denied")
            .await,
        1.0,
        "{proxy}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_forward_auth_believes_only_what_nginx_sets() {
    let Some(tools) = tools("nginx_forward_auth_believes_only_what_nginx_sets") else {
        return;
    };
    let app = spawn_app().await;
    forgery_policy(&app).await;
    let nginx = Nginx::start(&tools, &app.address).await;
    write_playlists(&nginx.dir.join("hls"));
    forgeries_change_nothing(&app, nginx.http_port, "nginx").await;
}

/// SPEC §3 "HLS and DASH viewers", through the proxy on `port`, whose
/// `playlist` (`/live/<name>/index.m3u8`, files in `hls_folder`) ffmpeg plays
/// with alice's token: the viewer cookie reaches the player and comes back
/// with its segments, which binds the session to it, so that a neighbour
/// behind the same address with the same player but without the cookie gets
/// 401 (item 11 of issue 15).
pub async fn the_viewer_cookie_keeps_the_neighbour_out(
    app: &TestApp,
    ffmpeg: &std::path::Path,
    port: u16,
    playlist: &str,
    hls_folder: &std::path::Path,
    log_dir: &std::path::Path,
    proxy: &str,
) {
    let url = format!("http://127.0.0.1:{port}{playlist}?token=alice-token");
    assert!(
        ffmpeg_plays(ffmpeg, &url, 2, &log_dir.join("cookie-player.log")).await,
        "{proxy}: ffmpeg plays HLS with the token:\n{}",
        std::fs::read_to_string(log_dir.join("cookie-player.log")).unwrap_or_default()
    );
    let rows = app
        .db()
        .await
        .query(
            "SELECT user_agent, cookie_seen, last_seen_at > started_at FROM sessions
              WHERE login = 'alice' AND dialect = 'forward-auth'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{proxy}: one viewer, one session");
    let player_agent: String = rows[0].get(0);
    assert!(
        rows[0].get::<_, bool>(1),
        "{proxy}: the cookie came back with the player's segments"
    );
    assert!(
        rows[0].get::<_, bool>(2),
        "{proxy}: segments refreshed the session"
    );

    // What the player got with the playlist.
    let folder = &playlist[..playlist.rfind('/').unwrap() + 1];
    let with_token = format!("{playlist}?token=alice-token");
    let answer = raw_get(port, &with_token, &[("User-Agent", &player_agent)]).await;
    assert_eq!(answer.status, 200, "{proxy}");
    let set_cookie = answer.header_values("Set-Cookie");
    assert_eq!(set_cookie.len(), 1, "{proxy}: {}", answer.head);
    assert!(
        set_cookie[0].starts_with("playgate_viewer=v1.")
            && set_cookie[0].contains(&format!("; Path={folder};"))
            && set_cookie[0].contains("; HttpOnly"),
        "{proxy}: {}",
        set_cookie[0]
    );
    let cookie = set_cookie[0].split(';').next().unwrap().to_string();

    // A segment of the playlist on disk (the newest: a live one may rotate).
    let listed = std::fs::read_to_string(hls_folder.join("index.m3u8")).unwrap();
    let segment = listed
        .lines()
        .rev()
        .find(|line| line.ends_with(".ts"))
        .expect("the playlist lists segments");
    let segment = format!("{folder}{segment}");
    let neighbour = raw_get(port, &segment, &[("User-Agent", &player_agent)]).await;
    assert_eq!(
        neighbour.status, 401,
        "{proxy}: a neighbour with the same player and address, no cookie: {}",
        neighbour.head
    );
    let viewer = raw_get(
        port,
        &segment,
        &[("User-Agent", &player_agent), ("Cookie", &cookie)],
    )
    .await;
    assert_eq!(viewer.status, 200, "{proxy}: the viewer with its cookie");
    assert!(
        viewer.header_values("Set-Cookie").is_empty(),
        "{proxy}: a segment sets no cookie: {}",
        viewer.head
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_passes_the_viewer_cookie_and_keeps_the_neighbour_out() {
    let Some(tools) = tools("nginx_passes_the_viewer_cookie_and_keeps_the_neighbour_out") else {
        return;
    };
    let app = spawn_app().await;
    app.create(user("alice").token("alice-token")).await;
    let nginx = Nginx::start(&tools, &app.address).await;
    let mut publisher = nginx.publish(&tools);
    nginx.wait_for_hls(&mut publisher).await;
    the_viewer_cookie_keeps_the_neighbour_out(
        &app,
        &tools.ffmpeg,
        nginx.http_port,
        "/live/stream/index.m3u8",
        &nginx.dir.join("hls/stream"),
        &nginx.dir,
        "nginx",
    )
    .await;
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
