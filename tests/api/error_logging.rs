//! A database error is logged with the server's own message (issue 14):
//! tokio-postgres's `Display` of a server error is only "db error", the
//! message is in its `source()`. The real binary runs with its real logger,
//! a table is renamed behind its back, and the 500 it answers must have the
//! server's message in its log line.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::helpers::*;

#[tokio::test]
async fn a_database_error_is_logged_with_the_servers_message() {
    let db = TestDb::new();
    let mut command = Command::new(env!("CARGO_BIN_EXE_playgate"));
    for (name, _) in std::env::vars() {
        if name.starts_with("PLAYGATE_") || name == "DATABASE_URL" || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    let mut child = command
        .arg("serve")
        .env("DATABASE_URL", &db.url)
        .env("PLAYGATE_LISTEN", "127.0.0.1:0")
        .env("PLAYGATE_BOOTSTRAP_ADMIN", "root:root-password")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start playgate");
    let (lines, received) = mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = Vec::new();
    let port = loop {
        let line = received
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("playgate did not start: {log:?}"));
        log.push(line.clone());
        if let Some((_, port)) = line.split_once("listening on port ") {
            break port.trim().to_string();
        }
    };

    let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute("ALTER TABLE audit_log RENAME TO audit_log_elsewhere")
        .await
        .unwrap();

    let response = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/v1/audit"))
        .basic_auth("root", Some("root-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    let body = response.text().await.unwrap();
    assert!(
        !body.contains("audit_log"),
        "the client learns nothing: {body}"
    );

    let logged = loop {
        match received.recv_timeout(Duration::from_secs(10)) {
            Ok(line) if line.contains("internal error") => break line,
            Ok(line) => log.push(line),
            Err(_) => panic!("no internal error was logged: {log:?}"),
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        logged.contains(r#"relation "audit_log" does not exist"#),
        "the server's message is not in the log line: {logged}"
    );
}
