//! No secret reaches the log at `RUST_LOG=debug` (issue 15, item 9): the
//! real binary, a key=value `DATABASE_URL` with a password, a Ministra URL
//! with a password in its userinfo (the portal is not there: every check
//! logs a warning with the URL), a bootstrap admin; then an admin call,
//! hook calls with a token and with login:password, and a Ministra check.
//! Its whole standard error is searched for every secret it was given, the
//! token's SHA-256 and any bcrypt hash.

use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::helpers::*;

const DB_PASSWORD: &str = "s3cr3t-db-pw";
const MINISTRA_PASSWORD: &str = "m1nistra-s3cret";
const ADMIN_PASSWORD: &str = "adm1n-s3cret-pw";
const VIEWER_PASSWORD: &str = "v1ewer-s3cret-pw";
const TOKEN: &str = "t0ken-s3cret-value";
const PORTAL_TOKEN: &str = "p0rtal-t0ken-s3cret";
const LINK_KEY_SECRET: &str = "l1nk-key-s3cret-of-k1";
/// A webhook's secret, and its key (what the signatures are made with).
const WEBHOOK_SECRET: &str = "whsec_d2ViaG9vay1zM2NyZXQtb2YtdGhlLWNybS0wMTIz";
const WEBHOOK_KEY: &str = "webhook-s3cret-of-the-crm-0123";

/// `host=… port=… user=… password=… dbname=…` for the test database.
fn key_value_url(db: &TestDb) -> String {
    let server: tokio_postgres::Config = server_url().parse().expect("TEST_DATABASE_URL");
    let host = match server.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "127.0.0.1".to_string(),
    };
    let port = server.get_ports().first().copied().unwrap_or(5432);
    let user = server.get_user().unwrap_or("postgres");
    format!(
        "host={host} port={port} user={user} password={DB_PASSWORD} dbname={}",
        db.name
    )
}

#[tokio::test]
async fn no_secret_reaches_the_log_at_debug() {
    let db = TestDb::new();
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut served = ServedBinary::serve(&[
        ("DATABASE_URL", key_value_url(&db)),
        (
            "PLAYGATE_MINISTRA_URL",
            format!(
                "http://portal-user:{MINISTRA_PASSWORD}@127.0.0.1:{closed_port}/stalker_portal"
            ),
        ),
        ("PLAYGATE_BOOTSTRAP_ADMIN", format!("root:{ADMIN_PASSWORD}")),
        ("RUST_LOG", "debug".into()),
    ]);
    let base = served.base.clone();
    let http = reqwest::Client::new();

    // An admin call: a viewer with a password (hashed by bcrypt, written
    // with the hash as a statement parameter) and a token.
    let created = http
        .post(format!("{base}/api/v1/users"))
        .basic_auth("root", Some(ADMIN_PASSWORD))
        .json(&json!({"login": "alice", "password": VIEWER_PASSWORD, "token": TOKEN}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let listed = http
        .get(format!("{base}/api/v1/users"))
        .basic_auth("root", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status().as_u16(), 200);

    let decide = |body: serde_json::Value| {
        let (http, url) = (http.clone(), format!("{base}/hook/decide"));
        async move {
            let answer: serde_json::Value = http
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            answer["reason"].as_str().unwrap_or_default().to_string()
        }
    };
    // The admin write is in force on this replica when it answers; allow the
    // notification a moment all the same.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reason = decide(json!({"stream": "news", "ip": "192.0.2.1", "token": TOKEN})).await;
        if reason == "ok" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the token never worked: {reason}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut reasons = vec![
        decide(
            json!({"stream": "news", "ip": "192.0.2.2", "login": "alice",
                      "password": VIEWER_PASSWORD}),
        )
        .await,
        decide(
            json!({"stream": "news", "ip": "192.0.2.3", "login": "alice",
                      "password": format!("{VIEWER_PASSWORD}-wrong")}),
        )
        .await,
        // Unknown here: asked of the (absent) portal.
        decide(json!({"stream": "news", "ip": "192.0.2.4", "token": PORTAL_TOKEN})).await,
        // A credential of the wrong type: the 400's reason is logged.
        decide(json!({"stream": "news", "ip": "192.0.2.5", "token": 8_675_309_123_u64})).await,
    ];
    // A signing key with a given secret, a link made with it, played (and
    // a tampered copy refused) through /hook/decide and forward-auth.
    let key = http
        .post(format!("{base}/api/v1/signing-keys"))
        .basic_auth("root", Some(ADMIN_PASSWORD))
        .json(&json!({"id": "k1", "format": "playgate", "secret": LINK_KEY_SECRET}))
        .send()
        .await
        .unwrap();
    assert_eq!(key.status().as_u16(), 201);
    let issued: serde_json::Value = http
        .post(format!("{base}/api/v1/links"))
        .basic_auth("root", Some(ADMIN_PASSWORD))
        .json(&json!({"stream": "news"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let link = issued["query"].as_str().unwrap().to_string();
    let signature = link.rsplit('.').next().unwrap().to_string();
    reasons.push(decide(json!({"stream": "news", "ip": "192.0.2.7", "query": link})).await);
    let tampered = format!("{}x", &link[..link.len() - 1]);
    reasons.push(decide(json!({"stream": "news", "ip": "192.0.2.8", "query": tampered})).await);
    let hls = http
        .get(format!("{base}/hook/forward-auth"))
        .header("X-Original-URI", format!("/news/index.m3u8?{link}"))
        .header("X-Real-IP", "192.0.2.9")
        .send()
        .await
        .unwrap();
    reasons.push(hls.status().as_u16().to_string());
    let flussonic = http
        .get(format!(
            "{base}/hook/flussonic?name=news&ip=192.0.2.6&token={TOKEN}&session_id=f1"
        ))
        .send()
        .await
        .unwrap();
    reasons.push(flussonic.status().as_u16().to_string());
    assert_eq!(
        reasons,
        [
            "ok",
            "bad_credentials",
            "upstream_unavailable",
            "",
            "ok",
            "link_invalid",
            "200",
            "200"
        ]
    );

    // A webhook with a given secret, and a test delivery to a receiver
    // that is not there: the attempt fails (and is logged at debug).
    let webhook: serde_json::Value = http
        .post(format!("{base}/api/v1/webhooks"))
        .basic_auth("root", Some(ADMIN_PASSWORD))
        .json(
            &json!({"url": format!("http://127.0.0.1:{closed_port}/crm"),
                      "events": ["session.started"], "secret": WEBHOOK_SECRET}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(webhook["secret"], json!(WEBHOOK_SECRET), "{webhook}");
    let id = webhook["id"].as_i64().unwrap();
    let tested = http
        .post(format!("{base}/api/v1/webhooks/{id}/test"))
        .basic_auth("root", Some(ADMIN_PASSWORD))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(tested.status().as_u16(), 202);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let attempts: serde_json::Value = http
            .get(format!("{base}/api/v1/webhooks/{id}/deliveries"))
            .basic_auth("root", Some(ADMIN_PASSWORD))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if attempts["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|item| item["status"] == json!("failed")))
        {
            break;
        }
        assert!(Instant::now() < deadline, "no failed attempt: {attempts}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    assert!(served.stop());
    let log = served.log.join("\n");

    // The log is the one asked for: debug lines, the start, the portal warning.
    assert!(log.contains(" DEBUG "), "not at debug level:\n{log}");
    assert!(log.contains("starting with Settings"), "{log}");
    assert!(log.contains("password=[redacted]"), "{log}");
    assert!(log.contains("ministra portal unreachable"), "{log}");
    assert!(log.contains("portal-user:[redacted]@127.0.0.1"), "{log}");
    assert!(log.contains("deny bad_credentials"), "{log}");

    let token_digest = hex::encode(Sha256::digest(TOKEN.as_bytes()));
    for secret in [
        DB_PASSWORD,
        MINISTRA_PASSWORD,
        ADMIN_PASSWORD,
        VIEWER_PASSWORD,
        TOKEN,
        PORTAL_TOKEN,
        LINK_KEY_SECRET,
        &signature,
        WEBHOOK_SECRET,
        WEBHOOK_KEY,
        "d2ViaG9vay1zM2NyZXQ",
        "8675309123",
        &token_digest,
        "$2b$",
        "$2a$",
        "$2y$",
    ] {
        if let Some(line) = log.lines().find(|line| line.contains(secret)) {
            panic!("{secret} appears in the log: {line}");
        }
    }
}
