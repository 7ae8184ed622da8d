//! Signing keys of playback links (issue 19, SPEC §9): the admin API
//! (admins only, the secret shown once), its validation, and the keys in
//! every replica's policy view within a second of a change.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

const KEYS: &str = "/api/v1/signing-keys";
const SECRET: &str = "given-secret-0123456789-abcdef";

fn path(id: &str) -> String {
    format!("{KEYS}/{id}")
}

/// The ids of the keys in this replica's policy view, newest first.
fn view_ids(app: &TestApp) -> Vec<String> {
    app.state
        .policy
        .snapshot()
        .signing_keys()
        .iter()
        .map(|key| key.id.clone())
        .collect()
}

#[tokio::test]
async fn signing_keys_round_trip_through_the_api_and_into_the_view() {
    let app = spawn_admin_app().await;
    let created = app
        .admin(
            "POST",
            KEYS,
            Some(
                json!({"id": "portal-1", "format": "playgate", "secret": SECRET,
                        "comment": "the billing portal"}),
            ),
            201,
        )
        .await;
    assert_eq!(created["id"], "portal-1");
    assert_eq!(created["format"], "playgate");
    assert_eq!(created["secret"], SECRET);
    assert_eq!(created["options"], json!({}));
    assert_eq!(created["comment"], "the billing portal");
    assert_eq!(created["enabled"], true);
    assert!(created["created_at"].is_string() && created["updated_at"].is_string());

    // Stored as given (verification needs it back), in force here at once.
    let stored: String = app
        .db()
        .await
        .query_one("SELECT secret FROM signing_keys WHERE id = 'portal-1'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, SECRET);
    let view = app.state.policy.snapshot();
    let key = &view.signing_keys()[0];
    assert_eq!(
        (key.id.as_str(), key.format.as_str(), key.secret.as_str()),
        ("portal-1", "playgate", SECRET)
    );
    assert_eq!(key.options, json!({}));
    assert!(
        !format!("{key:?}").contains(SECRET),
        "Debug shows the secret"
    );

    let nginx = app
        .admin(
            "POST",
            KEYS,
            Some(json!({"id": "edge", "format": "nginx", "enabled": false,
                        "options": {"template": "$secure_link_expires$uri $secret"}})),
            201,
        )
        .await;
    assert_eq!(nginx["enabled"], false);
    assert_eq!(
        nginx["options"],
        json!({"template": "$secure_link_expires$uri $secret"})
    );
    app.admin(
        "POST",
        KEYS,
        Some(json!({"id": "cdn", "format": "akamai", "options": {"algorithm": "sha1"}})),
        201,
    )
    .await;
    // A disabled key is not in the view; the newest comes first.
    assert_eq!(view_ids(&app), ["cdn", "portal-1"]);

    // List: oldest first, paged, never a secret.
    let list = app.admin("GET", KEYS, None, 200).await;
    assert_eq!(list["total"], 3);
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["portal-1", "edge", "cdn"]);
    assert!(list["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|item| item.get("secret").is_none()));
    let page = app
        .admin("GET", &format!("{KEYS}?limit=1&offset=1"), None, 200)
        .await;
    assert_eq!(
        (
            page["total"].as_i64(),
            page["items"].as_array().unwrap().len()
        ),
        (Some(3), 1)
    );
    assert_eq!(page["items"][0]["id"], "edge");

    let one = app.admin("GET", &path("portal-1"), None, 200).await;
    assert_eq!(one["comment"], "the billing portal");
    assert!(one.get("secret").is_none(), "{one}");

    // PATCH: enabled and comment.
    let disabled = app
        .admin(
            "PATCH",
            &path("portal-1"),
            Some(json!({"enabled": false, "comment": "retired"})),
            200,
        )
        .await;
    assert_eq!(
        (disabled["enabled"].as_bool(), disabled["comment"].as_str()),
        (Some(false), Some("retired"))
    );
    assert!(disabled.get("secret").is_none());
    assert_eq!(view_ids(&app), ["cdn"]);
    let enabled = app
        .admin("PATCH", &path("edge"), Some(json!({"enabled": true})), 200)
        .await;
    assert_eq!(enabled["comment"], "", "absent fields are unchanged");
    assert_eq!(view_ids(&app), ["cdn", "edge"]);

    // DELETE, then it is gone everywhere.
    app.admin("DELETE", &path("cdn"), None, 204).await;
    assert_eq!(view_ids(&app), ["edge"]);
    for (method, body) in [
        ("GET", None),
        ("PATCH", Some(json!({"enabled": true}))),
        ("DELETE", None),
    ] {
        let answer = app.api(method, &path("cdn"), ADMIN, body).await;
        assert_eq!(answer.status, 404, "{method}: {}", answer.body);
    }
    assert_eq!(app.admin("GET", KEYS, None, 200).await["total"], 2);

    // Audited: create, update, delete; never the secret.
    let audit = app
        .admin(
            "GET",
            "/api/v1/audit?object_type=signing_key&limit=1000",
            None,
            200,
        )
        .await;
    let entries: Vec<(String, String)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| {
            assert_eq!(e["actor"], "root");
            (
                e["action"].as_str().unwrap().to_string(),
                e["object_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("create", "portal-1"),
        ("create", "edge"),
        ("create", "cdn"),
        ("update", "portal-1"),
        ("update", "edge"),
        ("delete", "cdn"),
    ]
    .iter()
    .map(|(a, i)| (a.to_string(), i.to_string()))
    .collect();
    assert_eq!(entries, expected);
    let items = audit["items"].as_array().unwrap();
    let create = items
        .iter()
        .find(|e| e["object_id"] == "portal-1" && e["action"] == "create")
        .unwrap();
    assert_eq!(create["changes"]["secret"], "[set]");
    assert_eq!(create["changes"]["format"], "playgate");
    let generated = items
        .iter()
        .find(|e| e["object_id"] == "edge" && e["action"] == "create")
        .unwrap();
    assert_eq!(generated["changes"]["secret"], "[generated]");
    let update = items
        .iter()
        .find(|e| e["object_id"] == "portal-1" && e["action"] == "update")
        .unwrap();
    assert_eq!(
        update["changes"],
        json!({"enabled": false, "comment": "retired"})
    );
    assert!(!audit.to_string().contains(SECRET));
}

#[tokio::test]
async fn generated_secrets_have_their_formats_shape_and_are_shown_once() {
    let app = spawn_admin_app().await;
    let mut secrets = Vec::new();
    for format in ["playgate", "securetoken", "nginx", "wowza", "akamai"] {
        for n in 0..2 {
            let id = format!("{format}-{n}");
            let created = app
                .admin("POST", KEYS, Some(json!({"id": id, "format": format})), 201)
                .await;
            let secret = created["secret"].as_str().unwrap().to_string();
            if format == "akamai" {
                assert_eq!(secret.len(), 64, "{secret}");
                assert!(
                    secret
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                    "{secret}"
                );
            } else {
                // 256 bits of base64url without padding.
                assert_eq!(secret.len(), 43, "{secret}");
                assert!(
                    secret
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                    "{secret}"
                );
            }
            // The view holds it, for the verifier.
            let view = app.state.policy.snapshot();
            let key = view.signing_keys().iter().find(|k| k.id == id).unwrap();
            assert_eq!(key.secret, secret);
            secrets.push(secret);
        }
    }
    let mut distinct = secrets.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), secrets.len(), "generated secrets repeat");

    // Shown once: no read, change or audit entry carries any of them.
    let mut seen = String::new();
    seen.push_str(
        &app.admin("GET", &format!("{KEYS}?limit=1000"), None, 200)
            .await
            .to_string(),
    );
    seen.push_str(
        &app.admin("GET", &path("akamai-0"), None, 200)
            .await
            .to_string(),
    );
    seen.push_str(
        &app.admin(
            "PATCH",
            &path("nginx-1"),
            Some(json!({"comment": "x"})),
            200,
        )
        .await
        .to_string(),
    );
    app.admin("DELETE", &path("wowza-0"), None, 204).await;
    seen.push_str(
        &app.admin("GET", "/api/v1/audit?limit=1000", None, 200)
            .await
            .to_string(),
    );
    let audit: String = app
        .db()
        .await
        .query_one(
            "SELECT coalesce(string_agg(changes::text, ' '), '') FROM audit_log",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    seen.push_str(&audit);
    for secret in &secrets {
        assert!(!seen.contains(secret.as_str()), "{secret} shown again");
    }
}

#[tokio::test]
async fn invalid_keys_are_422_naming_the_field_and_a_duplicate_is_409() {
    let app = spawn_admin_app().await;
    let nul = format!("{SECRET}\u{0}");
    let cases = [
        (json!({"format": "playgate"}), "id"),
        (json!({"id": "", "format": "playgate"}), "id"),
        (json!({"id": "Portal", "format": "playgate"}), "id"),
        (json!({"id": "a_b", "format": "playgate"}), "id"),
        (json!({"id": "x".repeat(33), "format": "playgate"}), "id"),
        (json!({"id": "k"}), "format"),
        (json!({"id": "k", "format": "hmac"}), "format"),
        (
            json!({"id": "k", "format": "playgate", "secret": "too-short"}),
            "secret",
        ),
        (
            json!({"id": "k", "format": "playgate", "secret": "x".repeat(257)}),
            "secret",
        ),
        (
            json!({"id": "k", "format": "playgate", "secret": nul}),
            "secret",
        ),
        (
            json!({"id": "k", "format": "nginx", "secret": format!("{SECRET}\n")}),
            "secret",
        ),
        (
            json!({"id": "k", "format": "akamai", "secret": SECRET}),
            "secret",
        ),
        (
            json!({"id": "k", "format": "akamai", "secret": "0123456789abcdef0"}),
            "secret",
        ),
        (
            json!({"id": "k", "format": "playgate", "options": []}),
            "options",
        ),
        (
            json!({"id": "k", "format": "playgate", "options": "x"}),
            "options",
        ),
        (
            json!({"id": "k", "format": "playgate", "options": {"check_ip": true}}),
            "options",
        ),
        (
            json!({"id": "k", "format": "securetoken", "options": {"subject": "url"}}),
            "options",
        ),
        (
            json!({"id": "k", "format": "securetoken", "options": {"check_ip": "yes"}}),
            "options",
        ),
        (
            json!({"id": "k", "format": "nginx", "options": {"template": "$uri$remote_addr"}}),
            "options",
        ),
        (
            json!({"id": "k", "format": "nginx", "options": {"templates": "$secret"}}),
            "options",
        ),
        (
            json!({"id": "k", "format": "wowza", "options": {"prefix": "wowza token"}}),
            "options",
        ),
        (
            json!({"id": "k", "format": "wowza", "options": {"algorithm": "sha1"}}),
            "options",
        ),
        (
            json!({"id": "k", "format": "akamai", "options": {"param": "to ken"}}),
            "options",
        ),
        (
            json!({"id": "k", "format": "akamai", "options": {"algorithm": "sha512"}}),
            "options",
        ),
        (
            json!({"id": "k", "format": "playgate", "comment": "x".repeat(5000)}),
            "comment",
        ),
    ];
    for (body, field) in cases {
        let answer = app.api("POST", KEYS, ADMIN, Some(body.clone())).await;
        assert_eq!(answer.status, 422, "{body}: {}", answer.body);
        assert_eq!(answer.body["field"], field, "{body}: {}", answer.body);
        assert!(answer.body["error"].is_string());
        // A refused secret is not quoted back.
        assert!(!answer.body.to_string().contains(SECRET), "{}", answer.body);
    }
    // Unknown top-level fields and wrong JSON types are 400, as everywhere.
    for body in [
        json!({"id": "k", "format": "playgate", "colour": "red"}),
        json!({"id": "k", "format": "playgate", "enabled": "yes"}),
    ] {
        assert_eq!(app.api("POST", KEYS, ADMIN, Some(body)).await.status, 400);
    }
    assert_eq!(
        app.admin("GET", KEYS, None, 200).await["total"],
        0,
        "nothing written"
    );

    // Valid options of each format are accepted as given.
    for (id, format, options) in [
        (
            "st",
            "securetoken",
            json!({"subject": "path", "check_ip": false}),
        ),
        (
            "ng",
            "nginx",
            json!({"template": "$secure_link_expires$uri $secret"}),
        ),
        (
            "wz",
            "wowza",
            json!({"prefix": "mytoken", "algorithm": "sha384", "check_ip": true}),
        ),
        (
            "ak",
            "akamai",
            json!({"param": "hdnts", "algorithm": "md5"}),
        ),
        ("pg", "playgate", json!({})),
    ] {
        let created = app
            .admin(
                "POST",
                KEYS,
                Some(json!({"id": id, "format": format, "options": options})),
                201,
            )
            .await;
        assert_eq!(created["options"], options);
    }
    let akamai = app
        .admin(
            "POST",
            KEYS,
            Some(json!({"id": "ak-given", "format": "akamai", "secret": "00112233445566778899AABBCCDDEEFF"})),
            201,
        )
        .await;
    assert_eq!(akamai["secret"], "00112233445566778899AABBCCDDEEFF");

    // A duplicate id: 409, and the first key is untouched.
    let again = app
        .api(
            "POST",
            KEYS,
            ADMIN,
            Some(json!({"id": "pg", "format": "nginx", "secret": SECRET})),
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(again.body["field"], "id");
    assert_eq!(
        app.admin("GET", &path("pg"), None, 200).await["format"],
        "playgate"
    );
    let stored: String = app
        .db()
        .await
        .query_one("SELECT secret FROM signing_keys WHERE id = 'pg'", &[])
        .await
        .unwrap()
        .get(0);
    assert_ne!(stored, SECRET);

    // PATCH changes enabled and comment only: anything else is 422.
    for (body, field) in [
        (json!({"secret": SECRET}), Some("secret")),
        (json!({"format": "nginx"}), Some("format")),
        (json!({"options": {}}), Some("options")),
        (json!({"id": "pg2"}), Some("id")),
        (json!({"enabled": "no"}), Some("enabled")),
        (json!({"comment": 7}), Some("comment")),
        (json!({"enabled": false, "colour": "red"}), None),
    ] {
        let answer = app
            .api("PATCH", &path("pg"), ADMIN, Some(body.clone()))
            .await;
        assert_eq!(answer.status, 422, "{body}: {}", answer.body);
        assert_eq!(
            answer.body["field"].as_str(),
            field,
            "{body}: {}",
            answer.body
        );
        assert!(!answer.body.to_string().contains(SECRET));
    }
    assert_eq!(
        app.admin("GET", &path("pg"), None, 200).await["enabled"],
        true
    );
    // Only the successful creates were audited.
    assert_eq!(
        app.admin("GET", "/api/v1/audit?object_type=signing_key", None, 200)
            .await["total"],
        6
    );
}

#[tokio::test]
async fn only_admins_see_or_change_signing_keys() {
    let app = spawn_admin_app().await;
    app.admin(
        "POST",
        KEYS,
        Some(json!({"id": "k1", "format": "playgate"})),
        201,
    )
    .await;
    let requests = [
        ("GET", KEYS.to_string(), None),
        (
            "POST",
            KEYS.to_string(),
            Some(json!({"id": "k2", "format": "playgate"})),
        ),
        ("GET", path("k1"), None),
        ("PATCH", path("k1"), Some(json!({"enabled": false}))),
        ("DELETE", path("k1"), None),
    ];
    for (method, route, body) in &requests {
        let anonymous = app.api(method, route, Auth::None, body.clone()).await;
        assert_eq!(anonymous.status, 401, "{method} {route}");
        assert!(anonymous.headers.contains_key("www-authenticate"));
        // Observers may read the rest of the API, not the keys (SPEC §9: admin).
        let observer = app.api(method, route, OBSERVER, body.clone()).await;
        assert_eq!(
            observer.status, 403,
            "observer {method} {route}: {}",
            observer.body
        );
        let viewer = app.api(method, route, VIEWER, body.clone()).await;
        assert_eq!(viewer.status, 403, "viewer {method} {route}");
    }
    assert_eq!(
        app.api("GET", "/api/v1/packages", OBSERVER, None)
            .await
            .status,
        200
    );

    // Writes take JSON only (a cross-site form cannot make one).
    for (method, route) in [("POST", KEYS.to_string()), ("PATCH", path("k1"))] {
        for content_type in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            None,
        ] {
            let mut request = app
                .http
                .request(
                    reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                    format!("{}{route}", app.address),
                )
                .basic_auth("root", Some("root-pw"))
                .body(r#"{"id": "k3", "format": "playgate", "enabled": false}"#);
            if let Some(content_type) = content_type {
                request = request.header("Content-Type", content_type);
            }
            let answer = request.send().await.unwrap();
            assert_eq!(answer.status().as_u16(), 415, "{method} {content_type:?}");
        }
    }
    let list = app.admin("GET", KEYS, None, 200).await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["enabled"], true);
}

/// Polls B's policy view until `done` holds of its key ids; fails if that
/// takes a second or more from `started`. Prints the delay.
async fn wait_on(b: &TestApp, started: Instant, what: &str, done: impl Fn(&[String]) -> bool) {
    loop {
        let ids = view_ids(b);
        let elapsed = started.elapsed();
        if done(&ids) {
            println!("{what}: in force on B after {elapsed:?}");
            return;
        }
        assert!(
            elapsed < Duration::from_secs(1),
            "{what}: B's keys are still {ids:?} after {elapsed:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_key_disabled_or_deleted_on_one_replica_leaves_the_others_within_a_second() {
    let a = spawn_admin_app().await;
    let b = spawn_on(a.db.clone(), |_| {}).await;
    assert!(view_ids(&b).is_empty());

    let started = Instant::now();
    a.admin(
        "POST",
        KEYS,
        Some(json!({"id": "k1", "format": "playgate", "secret": SECRET})),
        201,
    )
    .await;
    wait_on(&b, started, "create k1", |ids| ids == ["k1"]).await;
    let view = b.state.policy.snapshot();
    assert_eq!(
        view.signing_keys()[0].secret,
        SECRET,
        "B reads the secret back"
    );

    let started = Instant::now();
    a.admin(
        "POST",
        KEYS,
        Some(json!({"id": "k2", "format": "wowza", "options": {"algorithm": "sha512"}})),
        201,
    )
    .await;
    wait_on(&b, started, "create k2", |ids| ids == ["k2", "k1"]).await;
    assert_eq!(
        b.state.policy.snapshot().signing_keys()[0].options,
        json!({"algorithm": "sha512"})
    );

    let started = Instant::now();
    a.admin("PATCH", &path("k1"), Some(json!({"enabled": false})), 200)
        .await;
    wait_on(&b, started, "disable k1", |ids| ids == ["k2"]).await;

    let started = Instant::now();
    a.admin("PATCH", &path("k1"), Some(json!({"enabled": true})), 200)
        .await;
    wait_on(&b, started, "enable k1", |ids| ids == ["k2", "k1"]).await;

    let started = Instant::now();
    a.admin("DELETE", &path("k2"), None, 204).await;
    wait_on(&b, started, "delete k2", |ids| ids == ["k1"]).await;

    let started = Instant::now();
    a.admin("DELETE", &path("k1"), None, 204).await;
    wait_on(&b, started, "delete k1", |ids| ids.is_empty()).await;

    // A full reload (the 30 s check, a reconnect) agrees with what the notifications did.
    b.state.policy.full_reload().await.unwrap();
    assert!(view_ids(&b).is_empty());
}

/// The real binary at `RUST_LOG=debug` (as `secret_logging.rs` does):
/// given and generated secrets, a refused one, every route; the whole log
/// is searched for each of them.
#[tokio::test]
async fn no_signing_key_secret_reaches_the_log_at_debug() {
    const ADMIN_PASSWORD: &str = "adm1n-keys-pw";
    const GIVEN: &str = "g1ven-signing-s3cret-value";
    const REFUSED: &str = "refused-s3cret-not-hex-zz";
    let db = TestDb::new();
    let mut served = ServedBinary::serve(&[
        ("DATABASE_URL", db.url.clone()),
        ("PLAYGATE_BOOTSTRAP_ADMIN", format!("root:{ADMIN_PASSWORD}")),
        ("RUST_LOG", "debug".into()),
    ]);
    let base = served.base.clone();
    let http = reqwest::Client::new();
    let call = |method: &str, route: &str, body: Option<Value>| {
        let mut request = http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{base}{route}"),
            )
            .basic_auth("root", Some(ADMIN_PASSWORD));
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let answer = request.send().await.unwrap();
            let status = answer.status().as_u16();
            (status, answer.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let mut secrets = vec![GIVEN.to_string(), REFUSED.to_string()];
    let (status, _) = call(
        "POST",
        KEYS,
        Some(json!({"id": "given", "format": "securetoken", "secret": GIVEN})),
    )
    .await;
    assert_eq!(status, 201);
    for (id, format) in [
        ("gen-pg", "playgate"),
        ("gen-ak", "akamai"),
        ("gen-ng", "nginx"),
    ] {
        let (status, created) = call("POST", KEYS, Some(json!({"id": id, "format": format}))).await;
        assert_eq!(status, 201);
        secrets.push(created["secret"].as_str().unwrap().to_string());
    }
    let refused = [
        json!({"id": "bad", "format": "akamai", "secret": REFUSED}),
        json!({"id": "given", "format": "playgate", "secret": REFUSED}),
        json!({"id": "bad", "format": "playgate", "secret": REFUSED, "colour": 1}),
    ];
    for (body, expected) in refused.into_iter().zip([422, 409, 400]) {
        assert_eq!(call("POST", KEYS, Some(body)).await.0, expected);
    }
    assert_eq!(call("GET", KEYS, None).await.0, 200);
    assert_eq!(call("GET", &path("given"), None).await.0, 200);
    assert_eq!(
        call("PATCH", &path("given"), Some(json!({"enabled": false})))
            .await
            .0,
        200
    );
    assert_eq!(
        call("PATCH", &path("given"), Some(json!({"secret": REFUSED})))
            .await
            .0,
        422
    );
    assert_eq!(call("DELETE", &path("gen-ng"), None).await.0, 204);
    assert_eq!(call("GET", "/api/v1/audit", None).await.0, 200);

    assert!(served.stop());
    let log = served.log.join("\n");
    assert!(log.contains(" DEBUG "), "not at debug level:\n{log}");
    // The listener re-read the keys (the path that holds the secrets).
    assert!(log.contains("signing keys re-read"), "{log}");
    for secret in &secrets {
        if let Some(line) = log.lines().find(|line| line.contains(secret.as_str())) {
            panic!("{secret} appears in the log: {line}");
        }
    }
}

#[tokio::test]
async fn the_openapi_document_describes_signing_keys() {
    let app = spawn_app().await;
    let document = app
        .api("GET", "/api/v1/openapi.json", Auth::None, None)
        .await
        .body;
    let paths = &document["paths"];
    for verb in ["get", "post"] {
        assert!(paths[KEYS][verb].is_object(), "{verb} {KEYS}");
    }
    for verb in ["get", "patch", "delete"] {
        assert!(
            paths["/api/v1/signing-keys/{id}"][verb].is_object(),
            "{verb}"
        );
    }
    let schemas = &document["components"]["schemas"];
    for schema in [
        "SigningKeyRow",
        "SigningKeyInput",
        "SigningKeyChanges",
        "CreatedSigningKey",
    ] {
        assert!(schemas[schema].is_object(), "schema {schema} missing");
    }
    assert!(schemas["SigningKeyRow"]["properties"]["secret"].is_null());
}
