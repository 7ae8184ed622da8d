//! Admin API: users and tokens, validation, errors, pagination, secrets.

use serde_json::{json, Value};

use crate::helpers::*;

fn alice() -> Value {
    json!({"login": "alice", "password": "87326848", "kind": "user", "token": "8732684ydbeb8",
           "ips": ["10.1.2.3/16"], "expires_at": "2027-01-01T00:00:00Z", "max_sessions": 2,
           "packages": ["sports"], "enabled": true, "comment": "test user", "stb": "00:1a:79:00:00:01"})
}

#[tokio::test]
async fn create_get_patch_delete_a_user() {
    let app = spawn_admin_app().await;
    app.admin(
        "POST",
        "/api/v1/packages",
        Some(json!({"name": "sports", "streams": ["sport/*"]})),
        201,
    )
    .await;
    let created = app.admin("POST", "/api/v1/users", Some(alice()), 201).await;
    assert_eq!(created["login"], "alice");
    assert_eq!(created["ips"], json!(["10.1.0.0/16"]));
    assert_eq!(created["packages"], json!(["sports"]));
    assert_eq!(created["max_sessions"], 2);
    assert_eq!(created["expires_at"], "2027-01-01T00:00:00Z");
    assert_eq!(created["has_password"], true);
    assert_eq!(created["tokens"], 1);
    // A given token is not echoed; neither the password nor its hash ever is.
    assert!(created.get("token").is_none(), "{created}");
    assert!(created.get("password").is_none() && created.get("password_hash").is_none());

    let fetched = app.admin("GET", "/api/v1/users/alice", None, 200).await;
    assert_eq!(fetched["comment"], "test user");
    assert_eq!(fetched["stb"], "00:1a:79:00:00:01");

    // The given token and password work at the next decision.
    let by_token = app
        .decide(json!({"stream": "sport/1", "ip": "10.1.9.9", "token": "8732684ydbeb8"}))
        .await;
    assert_eq!(reason(&by_token), "ok");
    let by_password = app
        .decide(json!({"stream": "sport/1", "ip": "10.1.9.9", "login": "alice", "password": "87326848"}))
        .await;
    assert_eq!(reason(&by_password), "ok");

    // PATCH: any field; null clears; the password is re-hashed.
    let patched = app
        .admin(
            "PATCH",
            "/api/v1/users/alice",
            Some(
                json!({"password": "new-secret", "max_sessions": null, "expires_at": null,
                        "ips": [], "packages": [], "comment": "patched", "kind": "observer"}),
            ),
            200,
        )
        .await;
    assert_eq!(patched["max_sessions"], Value::Null);
    assert_eq!(patched["expires_at"], Value::Null);
    assert_eq!(patched["packages"], json!([]));
    assert_eq!(patched["kind"], "observer");
    assert_eq!(patched["stb"], "00:1a:79:00:00:01", "untouched fields stay");
    let old = app
        .decide(
            json!({"stream": "news", "ip": "192.0.2.1", "login": "alice", "password": "87326848"}),
        )
        .await;
    assert_eq!(reason(&old), "bad_credentials");
    let new = app
        .decide(json!({"stream": "news", "ip": "192.0.2.1", "login": "alice", "password": "new-secret"}))
        .await;
    assert_eq!(reason(&new), "ok");
    // Now an observer: may read the admin API with the new password.
    assert_eq!(
        app.api(
            "GET",
            "/api/v1/users",
            Auth::Basic("alice", "new-secret"),
            None
        )
        .await
        .status,
        200
    );

    // Rename.
    let renamed = app
        .admin(
            "PATCH",
            "/api/v1/users/alice",
            Some(json!({"login": "alice2"})),
            200,
        )
        .await;
    assert_eq!(renamed["login"], "alice2");
    app.admin("GET", "/api/v1/users/alice", None, 404).await;

    app.admin("DELETE", "/api/v1/users/alice2", None, 204).await;
    let gone = app.admin("GET", "/api/v1/users/alice2", None, 404).await;
    assert!(gone["error"].as_str().unwrap().contains("alice2"));
    app.admin("DELETE", "/api/v1/users/alice2", None, 404).await;
    let denied = app
        .decide(json!({"stream": "news", "ip": "192.0.2.1", "token": "8732684ydbeb8"}))
        .await;
    assert_eq!(reason(&denied), "unknown_token");
}

#[tokio::test]
async fn invalid_fields_are_422_with_the_field() {
    let app = spawn_admin_app().await;
    let cases = [
        (json!({"login": ""}), "login"),
        (json!({"login": "bad login"}), "login"),
        (json!({"login": "x".repeat(65)}), "login"),
        (json!({"comment": "no login"}), "login"),
        (json!({"login": "a", "kind": "root"}), "kind"),
        (json!({"login": "a", "ips": ["10.0.0.0/33"]}), "ips"),
        (json!({"login": "a", "ips": ["not-an-ip"]}), "ips"),
        (
            json!({"login": "a", "expires_at": "2027-01-01"}),
            "expires_at",
        ),
        (
            json!({"login": "a", "expires_at": "tomorrow"}),
            "expires_at",
        ),
        (json!({"login": "a", "max_sessions": -1}), "max_sessions"),
        // A limit of the wrong type is an invalid field too, not a 400.
        (json!({"login": "a", "max_sessions": "two"}), "max_sessions"),
        (
            json!({"login": "a", "packages": ["no-such-package"]}),
            "packages",
        ),
        (json!({"login": "a", "token": ""}), "token"),
    ];
    for (body, field) in cases {
        let answer = app
            .api("POST", "/api/v1/users", ADMIN, Some(body.clone()))
            .await;
        assert_eq!(answer.status, 422, "{body}: {}", answer.body);
        assert_eq!(answer.body["field"], field, "{body}: {}", answer.body);
        assert!(answer.body["error"].is_string());
    }
    let patch = app
        .api(
            "PATCH",
            "/api/v1/users/viewer",
            ADMIN,
            Some(json!({"max_sessions": -5})),
        )
        .await;
    assert_eq!(
        (patch.status, patch.body["field"].as_str()),
        (422, Some("max_sessions"))
    );
    // Packages: glob syntax; IP rules: networks and actions.
    for (body, field) in [
        (json!({"name": "p", "streams": ["sp?rt"]}), "streams"),
        (json!({"name": "p", "streams": [""]}), "streams"),
        (json!({"name": "a/b"}), "name"),
        (json!({"streams": ["x"]}), "name"),
    ] {
        let answer = app
            .api("POST", "/api/v1/packages", ADMIN, Some(body.clone()))
            .await;
        assert_eq!(
            (answer.status, answer.body["field"].as_str()),
            (422, Some(field)),
            "{body}"
        );
    }
    for (body, field) in [
        (json!({"network": "300.1.1.1", "action": "deny"}), "network"),
        (
            json!({"network": "10.0.0.0/8", "action": "block"}),
            "action",
        ),
        (json!({"action": "deny"}), "network"),
    ] {
        let answer = app
            .api("POST", "/api/v1/ip-rules", ADMIN, Some(body.clone()))
            .await;
        assert_eq!(
            (answer.status, answer.body["field"].as_str()),
            (422, Some(field)),
            "{body}"
        );
    }
    let answer = app.api("GET", "/api/v1/users?limit=-1", ADMIN, None).await;
    assert_eq!(
        (answer.status, answer.body["field"].as_str()),
        (422, Some("limit"))
    );
    let answer = app.api("GET", "/api/v1/users?kind=god", ADMIN, None).await;
    assert_eq!(
        (answer.status, answer.body["field"].as_str()),
        (422, Some("kind"))
    );
    // Nothing was created by the refused requests.
    assert_eq!(
        app.admin("GET", "/api/v1/users", None, 200).await["total"],
        3
    );
}

/// `max_devices` (SPEC §1, §11): set on create, changed and cleared by
/// PATCH like `max_sessions`, validated with a 422 naming it, audited.
#[tokio::test]
async fn max_devices_round_trips_is_validated_and_audited() {
    let app = spawn_admin_app().await;
    let created = app
        .admin(
            "POST",
            "/api/v1/users",
            Some(json!({"login": "dora", "max_sessions": 3, "max_devices": 2})),
            201,
        )
        .await;
    assert_eq!(
        (
            created["max_sessions"].clone(),
            created["max_devices"].clone()
        ),
        (json!(3), json!(2))
    );
    let fetched = app.admin("GET", "/api/v1/users/dora", None, 200).await;
    assert_eq!(fetched["max_devices"], 2);
    let listed = app.admin("GET", "/api/v1/users?q=dora", None, 200).await;
    assert_eq!(listed["items"][0]["max_devices"], 2, "{listed}");
    // A user created without it is unlimited (null), and shown so.
    let plain = app
        .admin("POST", "/api/v1/users", Some(json!({"login": "ed"})), 201)
        .await;
    assert_eq!(plain["max_devices"], Value::Null);
    assert!(plain.as_object().unwrap().contains_key("max_devices"));

    // PATCH: another value; absent = unchanged; null clears; 0 is a limit.
    let patched = app
        .admin(
            "PATCH",
            "/api/v1/users/dora",
            Some(json!({"max_devices": 1})),
            200,
        )
        .await;
    assert_eq!(patched["max_devices"], 1);
    let other = app
        .admin(
            "PATCH",
            "/api/v1/users/dora",
            Some(json!({"comment": "other field"})),
            200,
        )
        .await;
    assert_eq!(
        (other["max_devices"].clone(), other["max_sessions"].clone()),
        (json!(1), json!(3)),
        "untouched"
    );
    let cleared = app
        .admin(
            "PATCH",
            "/api/v1/users/dora",
            Some(json!({"max_devices": null})),
            200,
        )
        .await;
    assert_eq!(cleared["max_devices"], Value::Null);
    assert_eq!(cleared["max_sessions"], 3, "max_sessions stays");
    let zero = app
        .admin(
            "PATCH",
            "/api/v1/users/dora",
            Some(json!({"max_devices": 0})),
            200,
        )
        .await;
    assert_eq!(zero["max_devices"], 0);
    let top = app
        .admin(
            "PATCH",
            "/api/v1/users/dora",
            Some(json!({"max_devices": i32::MAX})),
            200,
        )
        .await;
    assert_eq!(top["max_devices"], i32::MAX);

    // Invalid: negative, not a number, beyond the column: 422 naming it,
    // nothing written (on create or on change).
    for bad in [
        json!(-1),
        json!("x"),
        json!(1u64 << 40),
        json!(i64::from(i32::MAX) + 1),
        json!(1.5),
        json!(true),
        json!([2]),
    ] {
        let answer = app
            .api(
                "POST",
                "/api/v1/users",
                ADMIN,
                Some(json!({"login": "fay", "max_devices": bad})),
            )
            .await;
        assert_eq!(
            (answer.status, answer.body["field"].as_str()),
            (422, Some("max_devices")),
            "POST {bad}: {}",
            answer.body
        );
        let error = answer.body["error"].as_str().unwrap();
        assert!(
            error.contains("max_devices") && !error.contains('\n'),
            "{error}"
        );
        let answer = app
            .api(
                "PATCH",
                "/api/v1/users/dora",
                ADMIN,
                Some(json!({"max_devices": bad, "comment": "not saved"})),
            )
            .await;
        assert_eq!(
            (answer.status, answer.body["field"].as_str()),
            (422, Some("max_devices")),
            "PATCH {bad}: {}",
            answer.body
        );
    }
    app.admin("GET", "/api/v1/users/fay", None, 404).await;
    let dora = app.admin("GET", "/api/v1/users/dora", None, 200).await;
    assert_eq!(
        (dora["max_devices"].clone(), dora["comment"].clone()),
        (json!(i32::MAX), json!("other field"))
    );

    // The audit names the field and its new value, null included.
    let audit = app
        .admin(
            "GET",
            "/api/v1/audit?object_type=user&object_id=dora&limit=100",
            None,
            200,
        )
        .await;
    let changes: Vec<Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| e["changes"].clone())
        .collect();
    assert_eq!(changes.len(), 6, "{audit}");
    let devices: Vec<Option<&Value>> = changes.iter().map(|c| c.get("max_devices")).collect();
    assert_eq!(
        devices,
        [
            Some(&json!(2)),
            Some(&json!(1)),
            None,
            Some(&Value::Null),
            Some(&json!(0)),
            Some(&json!(i32::MAX)),
        ],
        "{audit}"
    );
}

#[tokio::test]
async fn malformed_requests_are_400_conflicts_409_unknown_404() {
    let app = spawn_admin_app().await;
    let response = app
        .http
        .post(format!("{}/api/v1/users", app.address))
        .basic_auth("root", Some("root-pw"))
        .header("Content-Type", "application/json")
        .body("{\"login\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(!error.contains('\n') && error.contains("JSON"), "{error}");
    for body in [
        json!({"login": "a", "colour": "red"}),
        json!({"login": "a", "enabled": "yes"}),
        json!([1]),
    ] {
        let answer = app
            .api("POST", "/api/v1/users", ADMIN, Some(body.clone()))
            .await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.body);
    }
    assert_eq!(
        app.api("GET", "/api/v1/users?enabled=maybe", ADMIN, None)
            .await
            .status,
        400
    );

    app.admin(
        "POST",
        "/api/v1/users",
        Some(json!({"login": "bob", "token": "tok-1"})),
        201,
    )
    .await;
    let dup = app
        .api(
            "POST",
            "/api/v1/users",
            ADMIN,
            Some(json!({"login": "bob"})),
        )
        .await;
    assert_eq!(
        (dup.status, dup.body["field"].as_str()),
        (409, Some("login")),
        "{}",
        dup.body
    );
    let dup = app
        .api(
            "POST",
            "/api/v1/users",
            ADMIN,
            Some(json!({"login": "carol", "token": "tok-1"})),
        )
        .await;
    assert_eq!(
        (dup.status, dup.body["field"].as_str()),
        (409, Some("token"))
    );
    let dup = app
        .api(
            "POST",
            "/api/v1/users/viewer/tokens",
            ADMIN,
            Some(json!({"token": "tok-1"})),
        )
        .await;
    assert_eq!(
        (dup.status, dup.body["field"].as_str()),
        (409, Some("token"))
    );
    let dup = app
        .api(
            "PATCH",
            "/api/v1/users/viewer",
            ADMIN,
            Some(json!({"login": "bob"})),
        )
        .await;
    assert_eq!(
        (dup.status, dup.body["field"].as_str()),
        (409, Some("login"))
    );
    assert_eq!(
        app.api("GET", "/api/v1/users/carol", ADMIN, None)
            .await
            .status,
        404,
        "the failed create left nothing"
    );
    app.admin("POST", "/api/v1/packages", Some(json!({"name": "p"})), 201)
        .await;
    let dup = app
        .api(
            "POST",
            "/api/v1/packages",
            ADMIN,
            Some(json!({"name": "p"})),
        )
        .await;
    assert_eq!(
        (dup.status, dup.body["field"].as_str()),
        (409, Some("name"))
    );
    app.admin(
        "POST",
        "/api/v1/ip-rules",
        Some(json!({"network": "192.0.2.9/24", "action": "deny"})),
        201,
    )
    .await;
    let dup = app
        .api(
            "POST",
            "/api/v1/ip-rules",
            ADMIN,
            Some(json!({"network": "192.0.2.0/24", "action": "deny"})),
        )
        .await;
    assert_eq!(
        (dup.status, dup.body["field"].as_str()),
        (409, Some("network"))
    );

    for (method, path) in [
        ("GET", "/api/v1/users/nobody"),
        ("PATCH", "/api/v1/users/nobody"),
        ("DELETE", "/api/v1/users/nobody"),
        ("GET", "/api/v1/users/nobody/tokens"),
        ("POST", "/api/v1/users/nobody/tokens"),
        ("DELETE", "/api/v1/users/bob/tokens/999999"),
        ("DELETE", "/api/v1/users/bob/tokens/abc"),
        ("GET", "/api/v1/packages/nothing"),
        ("PATCH", "/api/v1/packages/nothing"),
        ("DELETE", "/api/v1/packages/nothing"),
        ("GET", "/api/v1/ip-rules/999999"),
        ("DELETE", "/api/v1/ip-rules/xyz"),
        (
            "GET",
            "/api/v1/sessions/6a2f41a3-c54c-fce8-32d2-0324e1c32e22",
        ),
        ("DELETE", "/api/v1/sessions/not-a-uuid"),
        ("GET", "/api/v1/no-such-resource"),
    ] {
        let body = matches!(method, "PATCH" | "POST").then(|| json!({}));
        let answer = app.api(method, path, ADMIN, body).await;
        assert_eq!(answer.status, 404, "{method} {path}: {}", answer.body);
        assert!(answer.body["error"].is_string());
    }
}

#[tokio::test]
async fn list_filters_and_pagination() {
    let app = spawn_admin_app().await;
    let users: Vec<Value> = (0..25)
        .map(|i| {
            json!({"login": format!("sub{i:02}"), "comment": if i % 5 == 0 { "VIP customer" } else { "regular" },
                   "enabled": i % 2 == 0})
        })
        .collect();
    app.admin("POST", "/api/v1/import", Some(Value::Array(users)), 200)
        .await;

    let all = app.admin("GET", "/api/v1/users", None, 200).await;
    assert_eq!(all["total"], 28);
    assert_eq!(all["items"].as_array().unwrap().len(), 28);
    let page = app
        .admin("GET", "/api/v1/users?q=sub&limit=10&offset=20", None, 200)
        .await;
    assert_eq!(page["total"], 25);
    let logins: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["login"].as_str().unwrap())
        .collect();
    assert_eq!(logins, ["sub20", "sub21", "sub22", "sub23", "sub24"]);
    let vip = app.admin("GET", "/api/v1/users?q=vip", None, 200).await;
    assert_eq!(vip["total"], 5, "q matches the comment, case-insensitively");
    let disabled = app
        .admin("GET", "/api/v1/users?enabled=false", None, 200)
        .await;
    assert_eq!(disabled["total"], 12);
    let staff = app
        .admin("GET", "/api/v1/users?kind=admin", None, 200)
        .await;
    assert_eq!(staff["total"], 1);
    assert_eq!(staff["items"][0]["login"], "root");
    let literal = app.admin("GET", "/api/v1/users?q=%25", None, 200).await;
    assert_eq!(literal["total"], 0, "LIKE wildcards in q are literal");
    let capped = app
        .admin("GET", "/api/v1/users?limit=5000", None, 200)
        .await;
    assert_eq!(capped["total"], 28);
    let beyond = app
        .admin("GET", "/api/v1/users?offset=100", None, 200)
        .await;
    assert_eq!(
        (beyond["items"].as_array().unwrap().len(), &beyond["total"]),
        (0, &json!(28))
    );
}

#[tokio::test]
async fn tokens_are_generated_hashed_and_shown_once() {
    let app = spawn_admin_app().await;
    let created = app
        .admin(
            "POST",
            "/api/v1/users",
            Some(json!({"login": "dave", "password": "dave-secret-pw", "token": true})),
            201,
        )
        .await;
    let generated = created["token"].as_str().unwrap().to_string();
    assert!(generated.len() >= 22, "at least 128 bits: {generated}");
    assert!(
        generated
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "URL-safe"
    );
    let second = app
        .admin(
            "POST",
            "/api/v1/users/dave/tokens",
            Some(json!({"label": "tv", "expires_at": "2030-01-01T00:00:00Z"})),
            201,
        )
        .await;
    let second_token = second["token"].as_str().unwrap().to_string();
    assert_ne!(second_token, generated);
    assert_eq!(second["label"], "tv");
    let given = app
        .admin(
            "POST",
            "/api/v1/users/dave/tokens",
            Some(json!({"token": "astra-import-token"})),
            201,
        )
        .await;
    assert_eq!(given["token"], "astra-import-token");

    let listed = app
        .admin("GET", "/api/v1/users/dave/tokens", None, 200)
        .await;
    assert_eq!(listed["total"], 3);
    let page = app
        .admin(
            "GET",
            "/api/v1/users/dave/tokens?limit=1&offset=1",
            None,
            200,
        )
        .await;
    assert_eq!(
        (page["total"].as_i64(), page["items"][0]["label"].as_str()),
        (Some(3), Some("tv"))
    );
    let text = listed.to_string();
    assert!(
        !text.contains(&generated)
            && !text.contains(&second_token)
            && !text.contains("astra-import-token")
    );
    let user = app.admin("GET", "/api/v1/users/dave", None, 200).await;
    assert!(user.get("token").is_none());

    // Every token identifies dave at the next decision.
    for token in [&generated, &second_token, &"astra-import-token".to_string()] {
        let decision = app
            .decide(json!({"stream": "news", "ip": "192.0.2.1", "token": token}))
            .await;
        assert_eq!(
            (reason(&decision), decision["user"].as_str()),
            ("ok", Some("dave"))
        );
    }

    // Neither the clear tokens nor the password are anywhere in the database.
    let dump = app.dump().await;
    assert!(dump.contains("dave"), "the dump sees the data");
    for secret in [
        generated.as_str(),
        second_token.as_str(),
        "astra-import-token",
        "dave-secret-pw",
    ] {
        assert!(!dump.contains(secret), "{secret} found in the database");
    }

    // Deleting a token revokes it at the next decision.
    let id = listed["items"][0]["id"].as_i64().unwrap();
    app.admin(
        "DELETE",
        &format!("/api/v1/users/dave/tokens/{id}"),
        None,
        204,
    )
    .await;
    let decision = app
        .decide(json!({"stream": "news", "ip": "192.0.2.1", "token": generated}))
        .await;
    assert_eq!(reason(&decision), "unknown_token");
    app.admin(
        "DELETE",
        &format!("/api/v1/users/dave/tokens/{id}"),
        None,
        404,
    )
    .await;
    // Another user's token id is not reachable through this user.
    let other = app
        .admin("POST", "/api/v1/users/viewer/tokens", Some(json!({})), 201)
        .await;
    app.admin(
        "DELETE",
        &format!("/api/v1/users/dave/tokens/{}", other["id"]),
        None,
        404,
    )
    .await;

    // PATCH token: replaces the user's tokens.
    let patched = app
        .admin(
            "PATCH",
            "/api/v1/users/dave",
            Some(json!({"token": true})),
            200,
        )
        .await;
    let replaced = patched["token"].as_str().unwrap();
    assert_eq!(patched["tokens"], 1);
    let decision = app
        .decide(json!({"stream": "news", "ip": "192.0.2.1", "token": second_token}))
        .await;
    assert_eq!(reason(&decision), "unknown_token");
    let decision = app
        .decide(json!({"stream": "news", "ip": "192.0.2.1", "token": replaced}))
        .await;
    assert_eq!(reason(&decision), "ok");
}

#[tokio::test]
async fn changes_through_the_api_are_in_force_at_the_next_decision() {
    let app = spawn_admin_app().await;
    app.admin(
        "POST",
        "/api/v1/users",
        Some(json!({"login": "erin", "token": "erin-token"})),
        201,
    )
    .await;
    let play = |stream: &str| json!({"stream": stream, "ip": "192.0.2.1", "token": "erin-token"});
    assert_eq!(reason(&app.decide(play("news")).await), "ok");
    app.admin(
        "PATCH",
        "/api/v1/users/erin",
        Some(json!({"enabled": false})),
        200,
    )
    .await;
    assert_eq!(reason(&app.decide(play("news")).await), "user_disabled");
    app.admin(
        "PATCH",
        "/api/v1/users/erin",
        Some(json!({"enabled": true, "expires_at": "2001-01-01T00:00:00Z"})),
        200,
    )
    .await;
    assert_eq!(reason(&app.decide(play("news")).await), "user_expired");
    app.admin(
        "PATCH",
        "/api/v1/users/erin",
        Some(json!({"expires_at": null})),
        200,
    )
    .await;
    app.admin(
        "POST",
        "/api/v1/packages",
        Some(json!({"name": "kids", "streams": ["kids/*"]})),
        201,
    )
    .await;
    app.admin(
        "PATCH",
        "/api/v1/users/erin",
        Some(json!({"packages": ["kids"]})),
        200,
    )
    .await;
    assert_eq!(
        reason(&app.decide(play("news")).await),
        "stream_not_allowed"
    );
    assert_eq!(reason(&app.decide(play("kids/cartoons")).await), "ok");
    app.admin(
        "PATCH",
        "/api/v1/packages/kids",
        Some(json!({"streams": ["kids/*", "news"]})),
        200,
    )
    .await;
    assert_eq!(reason(&app.decide(play("news")).await), "ok");
    app.admin(
        "PATCH",
        "/api/v1/users/erin",
        Some(json!({"ips": ["10.0.0.0/8"]})),
        200,
    )
    .await;
    assert_eq!(reason(&app.decide(play("news")).await), "ip_mismatch");
    app.admin(
        "PATCH",
        "/api/v1/users/erin",
        Some(json!({"ips": [], "max_sessions": 0})),
        200,
    )
    .await;
    // (The active "news" session would merely be refreshed: it never counts against itself.)
    assert_eq!(
        reason(&app.decide(play("kids/other")).await),
        "session_limit"
    );
    app.admin(
        "PATCH",
        "/api/v1/users/erin",
        Some(json!({"max_sessions": null})),
        200,
    )
    .await;
    let rule = app
        .admin(
            "POST",
            "/api/v1/ip-rules",
            Some(json!({"network": "192.0.2.1", "action": "deny", "comment": "abuse"})),
            201,
        )
        .await;
    assert_eq!(rule["network"], "192.0.2.1/32");
    assert_eq!(reason(&app.decide(play("news")).await), "ip_denied");
    app.admin(
        "DELETE",
        &format!("/api/v1/ip-rules/{}", rule["id"]),
        None,
        204,
    )
    .await;
    assert_eq!(reason(&app.decide(play("news")).await), "ok");
    // No package = every stream, on purpose; then kids may be deleted.
    app.admin(
        "PATCH",
        "/api/v1/users/erin",
        Some(json!({"packages": []})),
        200,
    )
    .await;
    assert_eq!(
        reason(&app.decide(play("sport")).await),
        "ok",
        "no packages = every stream"
    );
    app.admin("DELETE", "/api/v1/packages/kids", None, 204)
        .await;
}

/// A token's `last_used_at` is when a session last started with it.
#[tokio::test]
async fn tokens_say_when_they_were_last_used() {
    let app = spawn_admin_app().await;
    app.admin(
        "POST",
        "/api/v1/users",
        Some(serde_json::json!({"login": "lu", "token": "lu-used"})),
        201,
    )
    .await;
    app.admin(
        "POST",
        "/api/v1/users/lu/tokens",
        Some(serde_json::json!({"token": "lu-idle", "label": "idle"})),
        201,
    )
    .await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    app.decide(with(
        play("news", "192.0.2.1"),
        serde_json::json!({"token": "lu-used"}),
    ))
    .await;
    let tokens = app.admin("GET", "/api/v1/users/lu/tokens", None, 200).await;
    let items = tokens["items"].as_array().unwrap();
    let used = items.iter().find(|t| t["label"] == "").unwrap();
    let idle = items.iter().find(|t| t["label"] == "idle").unwrap();
    let at: chrono::DateTime<chrono::Utc> = used["last_used_at"].as_str().unwrap().parse().unwrap();
    assert!(at >= before, "{used}");
    assert!(idle["last_used_at"].is_null(), "{idle}");
}

/// Where the migration cannot make its trigram indexes (here pg_trgm was
/// installed beforehand in a schema off the search path, as some managed
/// services install extensions), the service still starts and the users
/// and history searches still find, by scans.
#[tokio::test]
async fn searches_work_without_the_trigram_indexes() {
    let db = TestDb::new();
    let (server, connection) =
        tokio_postgres::connect(&format!("{}/postgres", server_url()), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    server
        .batch_execute(&format!("CREATE DATABASE {}", db.name))
        .await
        .unwrap();
    let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute("CREATE SCHEMA elsewhere; CREATE EXTENSION pg_trgm SCHEMA elsewhere")
        .await
        .unwrap();
    let app = spawn_on(db, |_| {}).await;
    seed_admins(&app).await;
    let trigram_indexes: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE indexdef LIKE '%gin_trgm_ops%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        trigram_indexes, 0,
        "the fallback is what this test is about"
    );
    for login in ["Dora", "doreen", "alan"] {
        app.admin(
            "POST",
            "/api/v1/users",
            Some(json!({"login": login, "token": format!("{login}-t")})),
            201,
        )
        .await;
    }
    let found = app.admin("GET", "/api/v1/users?q=DOR", None, 200).await;
    assert_eq!(found["total"], 2);
    let play = json!({"stream": "news", "ip": "192.0.2.9", "token": "alan-t", "session": "s1"});
    assert_eq!(reason(&app.decide(play.clone()).await), "ok");
    app.decide(with(play, json!({"event": "stop"}))).await;
    let ended = app
        .admin("GET", "/api/v1/sessions?state=ended&q=ALA", None, 200)
        .await;
    assert_eq!(ended["total"], 1);
}
