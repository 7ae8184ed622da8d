//! A private PostgreSQL cluster (initdb + pg_ctl in a temp dir) that a test
//! may configure, stop, start, copy into a streaming standby and promote, to
//! see what playgate does during an outage, with TLS, through a failover.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

pub struct PrivatePostgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    /// `-c name=value` settings given at every start.
    settings: Mutex<Vec<String>>,
}

fn postgres_bin_dir() -> Option<PathBuf> {
    let output = Command::new("pg_config").arg("--bindir").output().ok()?;
    let from_pg_config = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if from_pg_config.join("initdb").exists() {
        return Some(from_pg_config);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A component a test needs is missing: skip locally, fail in CI.
pub fn missing(component: &str) {
    eprintln!("SKIPPED: {component} not found");
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI needs {component}"
    );
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// "pid (comm) state ppid …" of /proc/PID/stat, after the comm (which may hold spaces).
fn stat_fields(pid: &str) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

fn processes_with_parent(parent: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|pid| {
            stat_fields(pid).is_some_and(|fields| fields.get(1).map(String::as_str) == Some(parent))
        })
        .collect()
}

/// Exists and is not a zombie.
fn is_running(pid: &str) -> bool {
    stat_fields(pid).is_some_and(|fields| fields.first().map(String::as_str) != Some("Z"))
}

fn checked(what: &str, output: std::process::Output) {
    assert!(
        output.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl PrivatePostgres {
    /// Initialises and starts a cluster; None (with a message) when the
    /// PostgreSQL server binaries are not installed.
    pub fn start() -> Option<PrivatePostgres> {
        let cluster = PrivatePostgres::init()?;
        cluster.resume();
        Some(cluster)
    }

    /// A cluster initialised but not started, to configure first.
    pub fn init() -> Option<PrivatePostgres> {
        let cluster = PrivatePostgres::empty()?;
        let output = cluster
            .command("initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(cluster.data())
            .output()
            .unwrap();
        checked("initdb", output);
        Some(cluster)
    }

    fn empty() -> Option<PrivatePostgres> {
        let Some(bin) = postgres_bin_dir() else {
            missing("PostgreSQL server binaries (initdb, pg_ctl)");
            return None;
        };
        let dir =
            std::env::temp_dir().join(format!("playgate-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let cluster = PrivatePostgres {
            port: free_port(),
            dir,
            bin,
            settings: Mutex::new(Vec::new()),
        };
        cluster.give_to_postgres(&cluster.dir);
        Some(cluster)
    }

    /// initdb and the server refuse to run as root: their files belong to postgres.
    fn give_to_postgres(&self, path: &Path) {
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(path)
                .status()
                .unwrap();
            assert!(status.success());
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    pub fn server_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    /// A server setting for every start from now on (`ssl`, `ssl_cert_file`, …).
    pub fn set(&self, name: &str, value: &str) {
        self.settings
            .lock()
            .unwrap()
            .push(format!("-c {name}={value}"));
    }

    /// Copies a file into the cluster's directory, readable by the server
    /// alone (as a key file must be); returns its path.
    pub fn install_file(&self, from: &Path, name: &str) -> PathBuf {
        let to = self.dir.join(name);
        std::fs::copy(from, &to).unwrap();
        self.give_to_postgres(&to);
        let status = Command::new("chmod").arg("600").arg(&to).status().unwrap();
        assert!(status.success());
        to
    }

    /// Starts (again) and waits until it accepts connections.
    pub fn resume(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off {}",
            self.port,
            self.dir.display(),
            self.settings.lock().unwrap().join(" ")
        );
        let output = self
            .command("pg_ctl")
            .args(["-w", "-t", "30", "-l"])
            .arg(self.dir.join("log"))
            .arg("-D")
            .arg(self.data())
            .args(["-o", &options, "start"])
            .output()
            .unwrap();
        if !output.status.success() {
            let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
            panic!(
                "pg_ctl start: {}\n{log}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }

    /// Stops at once, as a crash or a network cut would look to clients.
    pub fn halt(&self) {
        let output = self
            .command("pg_ctl")
            .args(["-w", "-m", "immediate", "-D"])
            .arg(self.data())
            .arg("stop")
            .output()
            .unwrap();
        checked("pg_ctl stop", output);
    }

    /// SIGKILL to the postmaster and every process it started, at once: a
    /// crash of the machine as far as unwritten WAL is concerned (what sits
    /// in shared memory is gone; what was written survives in the page cache).
    pub fn kill9(&self) {
        let pid_file = self.data().join("postmaster.pid");
        let postmaster = std::fs::read_to_string(&pid_file).unwrap();
        let postmaster = postmaster.lines().next().unwrap().trim().to_string();
        // Stopped first, so that it forks no backend between the look at
        // its children and the kill.
        let signal = |signal: &str, pids: &[String]| {
            let status = Command::new("kill")
                .arg(signal)
                .args(pids)
                .status()
                .unwrap();
            assert!(status.success(), "kill {signal} {pids:?}");
        };
        signal("-STOP", std::slice::from_ref(&postmaster));
        let mut pids = processes_with_parent(&postmaster);
        pids.push(postmaster);
        signal("-9", &pids);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while pids.iter().any(|pid| is_running(pid)) {
            assert!(
                std::time::Instant::now() < deadline,
                "survived kill -9: {pids:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // The dead postmaster may stay a zombie (nobody here reaps it), which
        // the next start would take for a running server by its lock files.
        std::fs::remove_file(pid_file).unwrap();
        let _ = std::fs::remove_file(self.dir.join(format!(".s.PGSQL.{}.lock", self.port)));
    }

    /// A streaming standby of this (running) cluster on a port of its own,
    /// started: `pg_basebackup -R` writes its connection to this primary.
    pub fn standby(&self) -> PrivatePostgres {
        let standby = PrivatePostgres::empty().expect("the primary's binaries");
        let output = standby
            .command("pg_basebackup")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-X", "stream", "-R", "--no-sync", "-D"])
            .arg(standby.data())
            .output()
            .unwrap();
        checked("pg_basebackup", output);
        // The walreceiver names itself so that the primary can wait for it.
        standby.set("cluster_name", "standby");
        standby.resume();
        standby
    }

    /// Ends recovery: the standby becomes a primary (waits until it is).
    pub fn promote(&self) {
        let output = self
            .command("pg_ctl")
            .args(["-w", "-t", "30", "-D"])
            .arg(self.data())
            .arg("promote")
            .output()
            .unwrap();
        checked("pg_ctl promote", output);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-m", "immediate", "-D"])
            .arg(self.data())
            .arg("stop")
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
