//! A database error is logged with the server's own message (issue 14):
//! tokio-postgres's `Display` of a server error is only "db error", the
//! message is in its `source()`. The real binary runs with its real logger,
//! a table is renamed behind its back, and the 500 it answers must have the
//! server's message in its log line.

use std::time::Duration;

use crate::helpers::*;

#[tokio::test]
async fn a_database_error_is_logged_with_the_servers_message() {
    let db = TestDb::new();
    let mut served = ServedBinary::serve(&[
        ("DATABASE_URL", db.url.clone()),
        ("PLAYGATE_BOOTSTRAP_ADMIN", "root:root-password".into()),
        ("RUST_LOG", "info".into()),
    ]);

    let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute("ALTER TABLE audit_log RENAME TO audit_log_elsewhere")
        .await
        .unwrap();

    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/audit", served.base))
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

    let logged = served
        .line_where(Duration::from_secs(10), |line| {
            line.contains("internal error")
        })
        .unwrap_or_else(|| panic!("no internal error was logged: {:#?}", served.log));
    assert!(
        logged.contains(r#"relation "audit_log" does not exist"#),
        "the server's message is not in the log line: {logged}"
    );
}
