//! PgBouncer in transaction pooling mode in front of the test PostgreSQL
//! (SPEC §13): with `PLAYGATE_DB_PREPARED=off` and a direct
//! `PLAYGATE_LISTEN_DATABASE_URL`, two replicas keep limits exact, refresh,
//! stop and see each other's admin changes; a listen URL through the
//! pooler, or prepared statements, stop start-up.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::*;
use crate::private_pg::{free_port, missing};

/// A pgbouncer of its own on a free loopback port; stopped on drop.
struct PgBouncer {
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
    /// In front of the server of `TEST_DATABASE_URL`, every database, few
    /// server connections (so that clients really share them).
    fn start() -> Option<PgBouncer> {
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
                 default_pool_size = 3\n\
                 max_client_conn = 500\n\
                 logfile = {dir}/pgbouncer.log\n",
                dir = dir.display()
            ),
        )
        .unwrap();
        let mut command = Command::new(binary);
        command
            .arg(dir.join("pgbouncer.ini"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((uid, gid)) = unprivileged() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .unwrap();
            assert!(status.success());
            use std::os::unix::process::CommandExt;
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

    fn url(&self, db: &TestDb) -> String {
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

fn start(session: &str) -> serde_json::Value {
    with(
        play("news", "192.0.2.1"),
        json!({"token": "limited-token", "session": session, "event": "start"}),
    )
}

/// Active sessions of `login`, asked directly (not through the pooler).
async fn active(direct: &tokio_postgres::Client, login: &str) -> i64 {
    direct
        .query_one(
            "SELECT count(*) FROM sessions WHERE login = $1 AND ended_at IS NULL AND expires_at > now()",
            &[&login],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn two_replicas_work_through_pgbouncer_in_transaction_mode() {
    let Some(bouncer) = PgBouncer::start() else {
        return;
    };
    let db = TestDb::new();
    let through = bouncer.url(&db);
    let direct_url = db.url.clone();
    let configure = |settings: &mut playgate::Settings| {
        settings.database = database_settings(&through, Some(&direct_url), None, Some("off"));
        // Short holds: heartbeats are written within a second or two.
        settings.session_duration = Duration::from_secs(4);
        settings.session_grace = Duration::from_secs(4);
    };
    let a = spawn_on(db.clone(), configure).await;
    let b = spawn_on(db.clone(), configure).await;
    let (direct, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    seed_admins(&a).await;
    a.create(user("limited").token("limited-token").limit(3))
        .await;
    b.reload().await;

    // 20 concurrent starts over both replicas for a user allowed 3: exactly 3.
    let mut tasks = Vec::new();
    for n in 0..20 {
        let (url, http) = if n % 2 == 0 {
            (format!("{}/hook/decide", a.address), a.http.clone())
        } else {
            (format!("{}/hook/decide", b.address), b.http.clone())
        };
        tasks.push(tokio::spawn(async move {
            let answer: serde_json::Value = http
                .post(url)
                .json(&start(&format!("s{n}")))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (n, answer)
        }));
    }
    let mut allowed = Vec::new();
    for task in tasks {
        let (n, answer) = task.await.unwrap();
        match reason(&answer) {
            "ok" => allowed.push((n, answer["session_id"].as_str().unwrap().to_string())),
            "session_limit" => {}
            other => panic!("unexpected answer {other}: {answer}"),
        }
    }
    assert_eq!(allowed.len(), 3, "{allowed:?}");
    assert_eq!(active(&direct, "limited").await, 3);

    // Refreshes: on the replica that admitted it (from memory, its heartbeat
    // written through the pooler) and on the other one (in PostgreSQL).
    let (n, id) = allowed[0].clone();
    let (admitted_by, other) = if n % 2 == 0 { (&a, &b) } else { (&b, &a) };
    let seen_before: chrono::DateTime<chrono::Utc> = direct
        .query_one(
            "SELECT last_seen_at FROM sessions WHERE id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let refresh = |session: String| {
        with(
            play("news", "192.0.2.1"),
            json!({"token": "limited-token", "session": session, "event": "refresh"}),
        )
    };
    let answer = admitted_by.decide(refresh(format!("s{n}"))).await;
    assert_eq!(
        (reason(&answer), answer["session_id"].as_str()),
        ("ok", Some(id.as_str()))
    );
    // Answered from memory: the heartbeat batch brings it to the row.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seen: chrono::DateTime<chrono::Utc> = direct
            .query_one(
                "SELECT last_seen_at FROM sessions WHERE id = $1::text::uuid",
                &[&id],
            )
            .await
            .unwrap()
            .get(0);
        if seen > seen_before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the heartbeat never reached the row"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answer = other.decide(refresh(format!("s{n}"))).await;
    assert_eq!(
        (reason(&answer), answer["session_id"].as_str()),
        ("ok", Some(id.as_str()))
    );

    // A stop frees a slot for a start on the other replica; still exact.
    let stop = with(
        play("news", "192.0.2.1"),
        json!({"token": "limited-token", "session": format!("s{n}"), "event": "stop"}),
    );
    assert_eq!(reason(&other.decide(stop).await), "ok");
    assert_eq!(active(&direct, "limited").await, 2);
    assert_eq!(reason(&admitted_by.decide(start("late")).await), "ok");
    assert_eq!(reason(&other.decide(start("later")).await), "session_limit");
    assert_eq!(active(&direct, "limited").await, 3);

    // An admin change through A is in force on B within a second.
    let changed = Instant::now();
    a.admin(
        "PATCH",
        "/api/v1/users/limited",
        Some(json!({"enabled": false})),
        200,
    )
    .await;
    loop {
        if reason(&b.decide(start("after-change")).await) == "user_disabled" {
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(1),
            "B did not see the change within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "admin change through pgbouncer in force on B after {:?}",
        changed.elapsed()
    );
    // Admin reads work through the pooler too.
    let listed = a
        .admin("GET", "/api/v1/sessions?user=limited", None, 200)
        .await;
    assert_eq!(listed["total"], 3, "{listed}");
    assert_eq!(a.get("/readyz").await.status().as_u16(), 200);
}

#[tokio::test]
async fn listen_or_prepared_statements_through_pgbouncer_stop_start_up() {
    let Some(bouncer) = PgBouncer::start() else {
        return;
    };
    let db = TestDb::new();
    // The database and its schema exist (created directly).
    drop(spawn_on(db.clone(), |_| {}).await);
    let through = bouncer.url(&db);

    // LISTEN through the pooler: the notification never arrives.
    let started = Instant::now();
    let database = database_settings(&through, Some(&through), None, Some("off"));
    let error = match try_spawn_on(db.clone(), |settings| settings.database = database).await {
        Ok(_) => panic!("started listening through pgbouncer"),
        Err(e) => e.to_string(),
    };
    assert!(
        error.starts_with("PLAYGATE_LISTEN_DATABASE_URL: ")
            && error.contains("did not reach the connection listening"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // The default (prepared statements, startup options): the pooler refuses.
    let database = database_settings(&through, Some(&db.url), None, None);
    let error = match try_spawn_on(db.clone(), |settings| settings.database = database).await {
        Ok(_) => panic!("started with startup options through pgbouncer"),
        Err(e) => e.to_string(),
    };
    assert!(
        error.starts_with("DATABASE_URL: ") && error.contains("unsupported startup parameter"),
        "{error}"
    );
}
