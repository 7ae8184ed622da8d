//! PgBouncer (Debian's) for the tests: one of its own for a test
//! (`PgBouncer::start`), or one shared by a whole test run that routes every
//! test application's pool through it (`TEST_THROUGH_PGBOUNCER=1`, SPEC §13:
//! `scripts/test` runs the session, admission and propagation tests so).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::helpers::{server_url, TestDb};
use crate::private_pg::{free_port, missing};

/// A pgbouncer of its own on a free loopback port; stopped on drop.
pub struct PgBouncer {
    port: u16,
    dir: PathBuf,
    child: Child,
}

fn pgbouncer_binary() -> Option<PathBuf> {
    [
        "/usr/sbin/pgbouncer",
        "/usr/bin/pgbouncer",
        "/usr/local/bin/pgbouncer",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|path| path.exists())
}

/// The uid and gid of `postgres`, when running as root (pgbouncer refuses root).
fn unprivileged() -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let output = Command::new("id").args([flag, "postgres"]).output().ok()?;
        String::from_utf8_lossy(&output.stdout).trim().parse().ok()
    };
    let me = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&me.stdout).trim() != "0" {
        return None;
    }
    Some((id("-u")?, id("-g")?))
}

impl PgBouncer {
    /// In front of the server of `TEST_DATABASE_URL`, every database, at
    /// most `pool_size` server connections per database (few, so that
    /// clients really share them).
    pub fn start(pool_size: usize) -> Option<PgBouncer> {
        PgBouncer::start_with(pool_size, || Ok(()))
    }

    /// As `start`; `prepare` runs in the child before it becomes pgbouncer.
    fn start_with(
        pool_size: usize,
        prepare: impl FnMut() -> std::io::Result<()> + Send + Sync + 'static,
    ) -> Option<PgBouncer> {
        let Some(binary) = pgbouncer_binary() else {
            missing("pgbouncer");
            return None;
        };
        let server: tokio_postgres::Config = server_url().parse().unwrap();
        let host = match &server.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(host) => host.clone(),
            #[allow(unreachable_patterns)]
            _ => "127.0.0.1".to_string(),
        };
        let server_port = server.get_ports().first().copied().unwrap_or(5432);
        let user = server.get_user().unwrap_or("postgres").to_string();
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "playgate-pgbouncer-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("users.txt"), format!("\"{user}\" \"\"\n")).unwrap();
        std::fs::write(
            dir.join("pgbouncer.ini"),
            format!(
                "[databases]\n\
                 * = host={host} port={server_port}\n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir =\n\
                 auth_type = trust\n\
                 auth_file = {dir}/users.txt\n\
                 pool_mode = transaction\n\
                 admin_users = {user}\n\
                 default_pool_size = {pool_size}\n\
                 max_client_conn = 500\n\
                 logfile = {dir}/pgbouncer.log\n",
                dir = dir.display(),
            ),
        )
        .unwrap();
        let mut command = Command::new(binary);
        command
            .arg(dir.join("pgbouncer.ini"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        use std::os::unix::process::CommandExt;
        // SAFETY: `prepare` only makes async-signal-safe calls (prctl).
        unsafe {
            command.pre_exec(prepare);
        }
        if let Some((uid, gid)) = unprivileged() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .unwrap();
            assert!(status.success());
            command.uid(uid).gid(gid);
        }
        let child = command.spawn().expect("start pgbouncer");
        let bouncer = PgBouncer { port, dir, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "pgbouncer did not start: {}",
                std::fs::read_to_string(bouncer.dir.join("pgbouncer.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(bouncer)
    }

    pub fn url(&self, db: &TestDb) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{}", self.port, db.name)
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `TEST_THROUGH_PGBOUNCER=1`: test applications on the default server get
/// their pool through a shared pgbouncer in transaction mode, with
/// `PLAYGATE_DB_PREPARED=off` and a direct `PLAYGATE_LISTEN_DATABASE_URL`.
pub fn through_pgbouncer() -> bool {
    std::env::var("TEST_THROUGH_PGBOUNCER").as_deref() == Ok("1")
}

/// The shared pgbouncer's URL for `db`.
pub fn shared_url(db: &TestDb) -> String {
    format!(
        "postgres://postgres@127.0.0.1:{}/{}",
        shared_port(),
        db.name
    )
}

/// The shared pgbouncer's port; it is started once and lives as long as the
/// test process.
pub fn shared_port() -> u16 {
    static SHARED: OnceLock<u16> = OnceLock::new();
    *SHARED.get_or_init(|| {
        // Its parent is a thread that never ends, so that it is stopped
        // (PR_SET_PDEATHSIG) when the test process ends, not with a test.
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let bouncer = PgBouncer::start_with(4, || {
                // SAFETY: prctl with constant arguments.
                let done = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) };
                if done == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
            let Some(bouncer) = bouncer else {
                drop(sender);
                return;
            };
            // It has read its files; nothing is left behind in /tmp.
            let _ = std::fs::remove_dir_all(&bouncer.dir);
            sender.send(bouncer.port).unwrap();
            let _keep = bouncer;
            loop {
                std::thread::park();
            }
        });
        match receiver.recv() {
            Ok(port) => port,
            Err(_) => panic!("TEST_THROUGH_PGBOUNCER=1 needs pgbouncer"),
        }
    })
}

/// The databases pgbouncer's clients are connected to (its admin console's
/// `SHOW CLIENTS`).
pub async fn client_databases(port: u16) -> Vec<String> {
    let url = format!("postgres://postgres@127.0.0.1:{port}/pgbouncer");
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("pgbouncer's admin console");
    tokio::spawn(connection);
    let rows = client.simple_query("SHOW CLIENTS").await.unwrap();
    rows.iter()
        .filter_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get("database").map(str::to_string),
            _ => None,
        })
        .collect()
}

/// Whether `db` is on the server the shared pgbouncer stands in front of.
pub fn is_on_default_server(db: &TestDb) -> bool {
    db.url.starts_with(&format!("{}/", server_url()))
}
