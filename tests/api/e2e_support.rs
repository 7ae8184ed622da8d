//! What the end-to-end tests with real proxies and streamers share: finding
//! the tools (skipped locally, a failure under `CI=true`), free ports, child
//! processes that die with the test, and a raw HTTP client that sends a path
//! exactly as written (reqwest would resolve `..` and `//` before sending).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::io::{Read, Write};

pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The tools `find` returns, or None after saying the test is skipped; with
/// `CI=true` a missing tool fails the test instead.
pub fn tools_or_skip<T>(test: &str, find: impl FnOnce() -> Result<T, &'static str>) -> Option<T> {
    match find() {
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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process that is killed (and reaped) when dropped.
pub struct Running {
    name: &'static str,
    child: Child,
}

impl Running {
    pub fn spawn(name: &'static str, command: &mut Command, log: &Path) -> Running {
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

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the exit, at most `limit` (then kills it and panics).
    pub async fn finish(mut self, limit: Duration) -> bool {
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

/// Waits until something listens on the loopback port, or panics with `logs()`
/// once `process` has exited or 10 s have passed.
pub async fn wait_for_port(port: u16, process: &mut Running, logs: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if !process.is_running() || Instant::now() > deadline {
            panic!("{} did not start:\n{}", process.name, logs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// ffmpeg reads `seconds` of the URL and discards it: true when it played.
/// Its HLS demuxer is a player that keeps the playlist's cookies for the
/// segments.
pub async fn ffmpeg_plays(ffmpeg: &Path, url: &str, seconds: u32, log: &Path) -> bool {
    Running::spawn(
        "ffmpeg player",
        Command::new(ffmpeg).args([
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
        log,
    )
    .finish(Duration::from_secs(u64::from(seconds) + 30))
    .await
}

/// An answer read off the wire.
#[derive(Debug)]
pub struct RawAnswer {
    pub status: u16,
    /// The header lines, as sent.
    pub head: String,
    pub body: String,
}

impl RawAnswer {
    /// The values of a header (case-insensitive name), in order.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.head
            .lines()
            .filter_map(|line| line.split_once(':'))
            .filter(|(key, _)| key.trim().eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim().to_string())
            .collect()
    }
}

/// `GET <target>` to 127.0.0.1:`port` with the target sent byte for byte,
/// plus these headers, as a client that forges them would.
pub async fn raw_get(port: u16, target: &str, headers: &[(&str, &str)]) -> RawAnswer {
    let mut request =
        format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    // Blocking I/O, off the test's runtime.
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .expect("the proxy answers within 10 s");
        answer
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text}"));
    RawAnswer {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}
