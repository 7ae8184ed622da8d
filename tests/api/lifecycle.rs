//! Start-up, migrations, readiness, bootstrap admin, configuration errors and
//! graceful shutdown of the real binary.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use playgate::store::migrations;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = spawn_app().await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status().as_u16(), 200);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status().as_u16(), 200);
    assert_eq!(
        ready.json::<serde_json::Value>().await.unwrap()["status"],
        "ready"
    );
    let metrics = app.get("/metrics").await;
    assert!(metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let samples = parse_metrics(&metrics.text().await.unwrap());
    assert_eq!(
        samples[&format!(
            r#"playgate_build_info{{version="{}"}}"#,
            env!("CARGO_PKG_VERSION")
        )],
        1.0
    );
    let missing = app.get("/no/such/route").await;
    assert_eq!(missing.status().as_u16(), 404);
}

#[tokio::test]
async fn readiness_reports_an_unmigrated_database() {
    let app = spawn_app().await;
    app.db()
        .await
        .batch_execute("DELETE FROM playgate_migrations")
        .await
        .unwrap();
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status().as_u16(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert!(
        body["reason"].as_str().unwrap().contains("schema"),
        "{body}"
    );
}

#[tokio::test]
async fn two_instances_starting_together_migrate_once() {
    let db = TestDb::new();
    let (first, second) = tokio::join!(spawn_on(db.clone(), |_| {}), spawn_on(db.clone(), |_| {}));
    let rows = first
        .db()
        .await
        .query(
            "SELECT version FROM playgate_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap();
    let versions: Vec<i32> = rows.iter().map(|row| row.get(0)).collect();
    let expected: Vec<i32> = migrations::MIGRATIONS.iter().map(|m| m.version).collect();
    assert_eq!(versions, expected);
    for app in [&first, &second] {
        assert_eq!(app.get("/readyz").await.status().as_u16(), 200);
    }
    // A third start finds nothing to apply.
    let applied = playgate::app::migrate(&first.state.settings.database.listen)
        .await
        .unwrap();
    assert!(applied.is_empty());
}

#[tokio::test]
async fn bootstrap_admin_is_created_once() {
    let db = TestDb::new();
    let first = spawn_on(db.clone(), |s| {
        s.bootstrap_admin = Some(("root".into(), "first-pw".into()))
    })
    .await;
    let second = spawn_on(db.clone(), |s| {
        s.bootstrap_admin = Some(("other".into(), "second-pw".into()))
    })
    .await;
    let admins: Vec<String> = first
        .db()
        .await
        .query("SELECT login FROM users WHERE kind = 'admin'", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(admins, vec!["root".to_string()]);
    let decision = second
        .decide(with(
            play("news", "192.0.2.1"),
            json!({"login": "root", "password": "first-pw"}),
        ))
        .await;
    assert_eq!(reason(&decision), "ok");
}

#[tokio::test]
async fn database_is_created_when_missing() {
    let db = TestDb::new();
    let app = spawn_on(db.clone(), |_| {}).await;
    let name: String = app
        .db()
        .await
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, db.name);
}

fn playgate_binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_playgate"));
    for (name, _) in std::env::vars() {
        if name.starts_with("PLAYGATE_") || name == "DATABASE_URL" {
            command.env_remove(name);
        }
    }
    command
}

#[test]
fn invalid_configuration_names_the_variable() {
    let cases = [
        ("PLAYGATE_SESSION_DURATION", "soon"),
        ("PLAYGATE_LIMIT_POLICY", "random"),
        ("PLAYGATE_SESSION_COMMIT", "off"),
        ("PLAYGATE_LISTEN", "not-an-address"),
        ("PLAYGATE_HOOK_NETWORKS", "10.0.0.0/40"),
        ("PLAYGATE_HOOK_NETWORKS", "*,10.0.0.0/8"),
        ("PLAYGATE_FORWARD_AUTH_URI_HEADER", "X Original URI"),
        ("PLAYGATE_FORWARD_AUTH_IP_HEADER", "X-Real-IP:"),
        // Checked by `serve` before it touches the database.
        (
            "PLAYGATE_GEOIP_COUNTRY_DB",
            "/nonexistent/GeoLite2-Country.mmdb",
        ),
        ("PLAYGATE_GEOIP_ASN_DB", "/nonexistent/GeoLite2-ASN.mmdb"),
        ("PLAYGATE_GEOIP_ASN_DB", "Cargo.toml"),
    ];
    for (variable, value) in cases {
        let output = playgate_binary()
            .arg("serve")
            .env(variable, value)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{variable}={value} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(variable), "{variable}: {stderr}");
    }
}

/// The GeoLite2 Country file of scripts/install-test-deps, in AppState
/// from start-up on (src/geoip.rs tests the lookups themselves).
#[tokio::test]
async fn geoip_databases_are_opened_at_start() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/geoip-test-db/package/geolite2-country.mmdb");
    let Some(path) =
        crate::e2e_support::tools_or_skip("geoip_databases_are_opened_at_start", || {
            path.is_file()
                .then_some(path)
                .ok_or("the npm package @ip-location-db/geolite2-country-mmdb")
        })
    else {
        return;
    };
    let app = spawn_app_with(|settings| settings.geoip.country_db = Some(path)).await;
    let geoip = &app.state.geoip;
    assert!(geoip.has_country_db() && !geoip.has_asn_db());
    let google = geoip.lookup("8.8.8.8".parse().unwrap());
    assert_eq!((google.country_str(), google.asn), ("US", 0));
    assert_eq!(app.get("/healthz").await.status().as_u16(), 200);

    let app = spawn_app().await;
    assert!(!app.state.geoip.has_country_db());
    assert_eq!(
        app.state
            .geoip
            .lookup("8.8.8.8".parse().unwrap())
            .country_str(),
        "XX"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn sigterm_shuts_down_gracefully_with_exit_0() {
    let db = TestDb::new();
    let (mut child, listen) = start_binary(
        &[
            ("DATABASE_URL", &db.url),
            ("PLAYGATE_BOOTSTRAP_ADMIN", "root:right-pw"),
            // All eight run bcrypt rather than some being turned away.
            ("PLAYGATE_BCRYPT_CONCURRENCY", "8"),
        ],
        Stdio::null(),
    )
    .await;
    let http = reqwest::Client::new();
    // Slow requests in flight when the signal arrives (each pays bcrypt for a
    // wrong password): every one of them must still get its decision.
    let mut in_flight = Vec::new();
    for n in 0..8 {
        let (http, url) = (http.clone(), format!("http://{listen}/hook/decide"));
        in_flight.push(tokio::spawn(async move {
            let body = json!({"stream": "news", "ip": format!("192.0.2.{n}"), "login": "root", "password": format!("wrong-{n}")});
            let response = http.post(&url).json(&body).send().await.expect("in-flight request failed");
            let decision: serde_json::Value = response.json().await.expect("a decision");
            decision["reason"].as_str().unwrap_or_default().to_string()
        }));
    }
    // Load while the signal arrives: every request that got an answer got a decision.
    let url = format!("http://{listen}/hook/decide");
    let load = tokio::spawn(async move {
        let mut answered = 0;
        for n in 0..2000 {
            let body = json!({"stream": "news", "ip": "192.0.2.1", "session": format!("s{n}")});
            match http.post(&url).json(&body).send().await {
                Ok(response) => {
                    assert_eq!(response.status().as_u16(), 200);
                    answered += 1;
                }
                Err(_) => break,
            }
        }
        answered
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit within 30 s of SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");
    assert!(load.await.unwrap() > 0);
    for request in in_flight {
        assert_eq!(request.await.unwrap(), "bad_credentials");
    }
}

/// Starts the real binary on a free port and waits until it is ready.
async fn start_binary(envs: &[(&str, &str)], log: Stdio) -> (std::process::Child, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let child = playgate_binary()
        .args(["serve", "--listen", &listen])
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let healthcheck = playgate_binary()
            .args(["healthcheck", "--listen", &listen])
            .output()
            .unwrap();
        if healthcheck.status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "server never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (child, listen)
}

#[tokio::test]
async fn hooks_open_to_anyone_are_warned_about_at_start() {
    let db = TestDb::new();
    let log_path = std::env::temp_dir().join(format!(
        "playgate-log-{}.txt",
        uuid::Uuid::new_v4().simple()
    ));
    let log_file = std::fs::File::create(&log_path).unwrap();
    let (mut child, _) = start_binary(
        &[("DATABASE_URL", &db.url), ("PLAYGATE_HOOK_NETWORKS", "*")],
        Stdio::from(log_file),
    )
    .await;
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let log = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    assert!(
        log.lines()
            .any(|line| line.contains("WARN") && line.contains("PLAYGATE_HOOK_NETWORKS=*")),
        "{log}"
    );
}

#[tokio::test]
async fn secrets_never_reach_the_log() {
    let db = TestDb::new();
    let log_path = std::env::temp_dir().join(format!(
        "playgate-log-{}.txt",
        uuid::Uuid::new_v4().simple()
    ));
    let log_file = std::fs::File::create(&log_path).unwrap();
    let database_url = db.url.replace("postgres@", "postgres:db-secret-pw@");
    // The other URLs of SPEC §13, with passwords of their own (trust auth ignores them).
    let listen_url = db.url.replace("postgres@", "postgres:listen-secret-pw@");
    let server: tokio_postgres::Config = db.url.parse().unwrap();
    let host = match &server.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(host) => host.clone(),
        #[allow(unreachable_patterns)]
        _ => "127.0.0.1".to_string(),
    };
    let stats_url = format!(
        "host={host} port={} user=postgres password=stats-secret-pw dbname={}",
        server.get_ports().first().copied().unwrap_or(5432),
        db.name
    );
    let (mut child, listen) = start_binary(
        &[
            ("DATABASE_URL", &database_url),
            ("PLAYGATE_LISTEN_DATABASE_URL", &listen_url),
            ("PLAYGATE_STATS_DATABASE_URL", &stats_url),
            ("PLAYGATE_BOOTSTRAP_ADMIN", "root:boot-secret-pw"),
            (
                "PLAYGATE_VIEWER_COOKIE_SECRET",
                "viewer-cookie-secret-0123456789abcdef",
            ),
            ("RUST_LOG", "debug"),
        ],
        Stdio::from(log_file),
    )
    .await;
    let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(
            "INSERT INTO tokens (user_id, hash) SELECT id, sha256('clear-token-secret') FROM users WHERE login = 'root'",
        )
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let url = format!("http://{listen}/hook/decide");
    let bodies = [
        json!({"stream": "news", "ip": "192.0.2.1", "token": "clear-token-secret"}),
        json!({"stream": "news", "ip": "192.0.2.1", "token": "guessed-token-secret"}),
        json!({"stream": "news", "ip": "192.0.2.1", "login": "root", "password": "boot-secret-pw"}),
        json!({"stream": "news", "ip": "192.0.2.1", "login": "root", "password": "wrong-secret-pw"}),
        json!({"stream": "news", "ip": "not-an-ip", "token": "malformed-secret"}),
    ];
    let mut reasons = Vec::new();
    for body in bodies {
        // The token insert reaches the policy view by NOTIFY; retry the first until it is in force.
        for _ in 0..50 {
            let response = http.post(&url).json(&body).send().await.unwrap();
            let answer: serde_json::Value = response.json().await.unwrap_or_default();
            if answer["reason"] != "unknown_token" || body["token"] != "clear-token-secret" {
                reasons.push(answer["reason"].as_str().unwrap_or("400").to_string());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(
        reasons,
        ["ok", "unknown_token", "ok", "bad_credentials", "400"]
    );
    // A viewer cookie set, then presented (valid and forged).
    let forward_auth = format!("http://{listen}/hook/forward-auth");
    let playlist = http
        .get(&forward_auth)
        .header(
            "X-Original-URI",
            "/live/news/index.m3u8?token=clear-token-secret",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(playlist.status(), 200);
    let cookie = playlist.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let value = cookie.trim_start_matches("playgate_viewer=").to_string();
    for presented in [cookie.clone(), format!("{cookie}forged")] {
        http.get(&forward_auth)
            .header("X-Original-URI", "/live/news/1.ts")
            .header("Cookie", presented)
            .send()
            .await
            .unwrap();
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let log = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    assert!(
        log.contains("deny bad_credentials"),
        "the log is being captured"
    );
    for secret in [
        "db-secret-pw",
        "listen-secret-pw",
        "stats-secret-pw",
        "boot-secret-pw",
        "clear-token-secret",
        "guessed-token-secret",
        "wrong-secret-pw",
        "malformed-secret",
        "viewer-cookie-secret",
        &value,
    ] {
        assert!(!log.contains(secret), "{secret} appears in the log");
    }
}
