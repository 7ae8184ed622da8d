//! `POST /api/v1/import`: create or update by login, one transaction, fast.

use std::time::Instant;

use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn import_creates_then_updates_and_is_idempotent() {
    let app = spawn_admin_app().await;
    app.admin(
        "POST",
        "/api/v1/packages",
        Some(json!({"name": "sports", "streams": ["sport/*"]})),
        201,
    )
    .await;
    let file = json!([
        {"login": "u1", "token": "tok-u1", "packages": ["sports"], "max_sessions": 1, "ips": ["10.0.0.0/8"]},
        {"login": "u2", "password": "pw-u2", "comment": "imported", "expires_at": "2030-01-01T00:00:00Z"},
        {"login": "viewer", "comment": "updated by import"}
    ]);
    let first = app
        .admin("POST", "/api/v1/import", Some(file.clone()), 200)
        .await;
    assert_eq!(first, json!({"created": 2, "updated": 1}));
    let second = app.admin("POST", "/api/v1/import", Some(file), 200).await;
    assert_eq!(second, json!({"created": 0, "updated": 3}));

    let u1 = app.admin("GET", "/api/v1/users/u1", None, 200).await;
    assert_eq!(
        (
            u1["packages"].clone(),
            u1["max_sessions"].clone(),
            u1["tokens"].clone()
        ),
        (json!(["sports"]), json!(1), json!(1))
    );
    assert_eq!(u1["ips"], json!(["10.0.0.0/8"]));
    let viewer = app.admin("GET", "/api/v1/users/viewer", None, 200).await;
    assert_eq!(viewer["comment"], "updated by import");
    assert_eq!(viewer["has_password"], true, "absent fields are kept");
    // In force at the next decision.
    let decision = app
        .decide(json!({"stream": "sport/1", "ip": "10.1.1.1", "token": "tok-u1"}))
        .await;
    assert_eq!(reason(&decision), "ok");
    let decision = app
        .decide(json!({"stream": "news", "ip": "10.1.1.1", "token": "tok-u1"}))
        .await;
    assert_eq!(reason(&decision), "stream_not_allowed");
    let decision = app
        .decide(json!({"stream": "news", "ip": "192.0.2.1", "login": "u2", "password": "pw-u2"}))
        .await;
    assert_eq!(reason(&decision), "ok");
    assert!(!app.dump().await.contains("pw-u2"));

    // One transaction: an invalid item or a conflict leaves nothing behind.
    for (file, status, field) in [
        (
            json!([{"login": "new1"}, {"login": "bad login"}]),
            422,
            "login",
        ),
        (json!([{"login": "new1"}, {"login": "new1"}]), 422, "login"),
        (
            json!([{"login": "new1", "packages": ["nope"]}]),
            422,
            "packages",
        ),
        (json!([{"login": "new1", "token": true}]), 422, "token"),
        (
            json!([{"login": "new1", "max_sessions": -2}]),
            422,
            "max_sessions",
        ),
        (
            json!([{"login": "new1", "max_devices": -1}]),
            422,
            "max_devices",
        ),
        (
            json!([{"login": "new1"}, {"login": "new2", "max_devices": "x"}]),
            422,
            "max_devices",
        ),
        (
            json!([{"login": "new1", "max_devices": 1u64 << 40}]),
            422,
            "max_devices",
        ),
        (
            json!([{"login": "new1"}, {"login": "new2", "token": "tok-u1"}]),
            409,
            "token",
        ),
    ] {
        let answer = app
            .api("POST", "/api/v1/import", ADMIN, Some(file.clone()))
            .await;
        assert_eq!(
            (answer.status, answer.body["field"].as_str()),
            (status, Some(field)),
            "{file}: {}",
            answer.body
        );
        assert_eq!(
            app.api("GET", "/api/v1/users/new1", ADMIN, None)
                .await
                .status,
            404,
            "{file}"
        );
    }
    let not_array = app
        .api("POST", "/api/v1/import", ADMIN, Some(json!({"login": "x"})))
        .await;
    assert_eq!(not_array.status, 400);
}

#[tokio::test]
async fn import_of_100_000_token_users() {
    let app = spawn_admin_app().await;
    let users: Vec<Value> = (0..100_000)
        .map(|i| json!({"login": format!("sub{i:06}"), "token": format!("token-{i:06}-{}", i * 7919), "max_sessions": 2}))
        .collect();
    let body = serde_json::to_vec(&users).unwrap();
    eprintln!("import body: {} users, {} bytes", users.len(), body.len());
    let started = Instant::now();
    let response = app
        .http
        .post(format!("{}/api/v1/import", app.address))
        .basic_auth("root", Some("root-pw"))
        .header("Content-Type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, json!({"created": 100_000, "updated": 0}));
    eprintln!("IMPORT 100000 users (created): {elapsed:.2?}");

    let started = Instant::now();
    let response = app
        .http
        .post(format!("{}/api/v1/import", app.address))
        .basic_auth("root", Some("root-pw"))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let answer: Value = response.json().await.unwrap();
    eprintln!(
        "IMPORT 100000 users again (updated): {:.2?}",
        started.elapsed()
    );
    assert_eq!(answer, json!({"created": 0, "updated": 100_000}));

    let decision = app.decide(json!({"stream": "news", "ip": "192.0.2.1", "token": format!("token-099999-{}", 99_999 * 7919)})).await;
    assert_eq!(
        (reason(&decision), decision["user"].as_str()),
        ("ok", Some("sub099999"))
    );
    assert_eq!(
        app.admin("GET", "/api/v1/users?q=sub&limit=1", None, 200)
            .await["total"],
        100_000
    );
}

/// `max_devices` in the import: set when present, kept when absent (like
/// `max_sessions`), cleared by null; new users without it are unlimited.
#[tokio::test]
async fn import_sets_keeps_and_clears_max_devices() {
    let app = spawn_admin_app().await;
    let first = app
        .admin(
            "POST",
            "/api/v1/import",
            Some(json!([
                {"login": "d1", "token": "tok-d1", "max_devices": 2, "max_sessions": 4},
                {"login": "d2", "token": "tok-d2"},
                {"login": "d3", "max_devices": 0}
            ])),
            200,
        )
        .await;
    assert_eq!(first, json!({"created": 3, "updated": 0}));
    let devices = |login: &'static str| {
        let app = &app;
        async move {
            let user = app
                .admin("GET", &format!("/api/v1/users/{login}"), None, 200)
                .await;
            (user["max_devices"].clone(), user["max_sessions"].clone())
        }
    };
    assert_eq!(devices("d1").await, (json!(2), json!(4)));
    assert_eq!(devices("d2").await, (Value::Null, Value::Null));
    assert_eq!(devices("d3").await, (json!(0), Value::Null));

    // Absent: unchanged; a value: set; null: cleared.
    let second = app
        .admin(
            "POST",
            "/api/v1/import",
            Some(json!([
                {"login": "d1", "comment": "no limits named"},
                {"login": "d2", "max_devices": 3},
                {"login": "d3", "max_devices": null}
            ])),
            200,
        )
        .await;
    assert_eq!(second, json!({"created": 0, "updated": 3}));
    assert_eq!(devices("d1").await, (json!(2), json!(4)));
    assert_eq!(devices("d2").await, (json!(3), Value::Null));
    assert_eq!(devices("d3").await, (Value::Null, Value::Null));
    let d1 = app.admin("GET", "/api/v1/users/d1", None, 200).await;
    assert_eq!(d1["comment"], "no limits named");

    // A refused import changes nobody's limit.
    let answer = app
        .api(
            "POST",
            "/api/v1/import",
            ADMIN,
            Some(json!([{"login": "d1", "max_devices": 9}, {"login": "d2", "max_devices": -3}])),
        )
        .await;
    assert_eq!(
        (answer.status, answer.body["field"].as_str()),
        (422, Some("max_devices")),
        "{}",
        answer.body
    );
    let error = answer.body["error"].as_str().unwrap();
    assert!(error.starts_with("item 1 ('d2'): "), "{error}");
    assert_eq!(devices("d1").await, (json!(2), json!(4)));
}
