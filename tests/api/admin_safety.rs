//! Admin API writes that would open everything or lock everyone out (issue
//! 22): deleting a package that is some user's only one (no package = every
//! stream), and taking away the last enabled admin.

use serde_json::{json, Value};

use crate::helpers::*;

fn play(stream: &str, token: &str) -> Value {
    json!({"stream": stream, "ip": "192.0.2.1", "token": token})
}

#[tokio::test]
async fn deleting_the_only_package_of_users_is_refused_naming_them() {
    let app = spawn_admin_app().await;
    for (name, streams) in [("news", json!(["news"])), ("sports", json!(["sport/*"]))] {
        app.admin(
            "POST",
            "/api/v1/packages",
            Some(json!({"name": name, "streams": streams})),
            201,
        )
        .await;
    }
    for (login, packages) in [
        ("fan", json!(["news"])),
        ("gina", json!(["news"])),
        ("both", json!(["news", "sports"])),
    ] {
        app.admin(
            "POST",
            "/api/v1/users",
            Some(json!({"login": login, "token": format!("{login}-token"), "packages": packages})),
            201,
        )
        .await;
    }
    assert_eq!(
        reason(&app.decide(play("hbo", "fan-token")).await),
        "stream_not_allowed"
    );

    let refused = app
        .api("DELETE", "/api/v1/packages/news", ADMIN, None)
        .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert_eq!(refused.body["field"], "name");
    let message = refused.body["error"].as_str().unwrap();
    assert!(
        message.contains("2 users") && message.contains("fan") && message.contains("gina"),
        "{message}"
    );
    assert!(!message.contains("both"), "{message}");
    assert_eq!(refused.body["users"], json!(["fan", "gina"]));

    // Nothing changed: the package is there, its users still limited to it.
    let news = app.admin("GET", "/api/v1/packages/news", None, 200).await;
    assert_eq!(news["users"], 3);
    assert_eq!(
        app.admin("GET", "/api/v1/users/fan", None, 200).await["packages"],
        json!(["news"])
    );
    assert_eq!(
        reason(&app.decide(play("hbo", "fan-token")).await),
        "stream_not_allowed"
    );
    assert_eq!(reason(&app.decide(play("news", "fan-token")).await), "ok");
    let audit = app
        .admin("GET", "/api/v1/audit?object_type=package", None, 200)
        .await;
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["action"] != "delete"),
        "a refused delete is not audited: {audit}"
    );

    // Many users: ten are named, the rest counted.
    let many: Vec<Value> = (0..12)
        .map(|n| json!({"login": format!("u{n:02}"), "packages": ["news"]}))
        .collect();
    app.admin("POST", "/api/v1/import", Some(Value::Array(many)), 200)
        .await;
    let refused = app
        .api("DELETE", "/api/v1/packages/news", ADMIN, None)
        .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    let message = refused.body["error"].as_str().unwrap();
    assert!(
        message.contains("14 users") && message.contains("and 4 more"),
        "{message}"
    );
    assert_eq!(refused.body["users"].as_array().unwrap().len(), 10);
    assert_eq!(refused.body["users"][0], "fan");

    // An unknown package is still 404.
    assert_eq!(
        app.api("DELETE", "/api/v1/packages/nothing", ADMIN, None)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn a_package_all_of_whose_users_have_another_is_deleted() {
    let app = spawn_admin_app().await;
    for (name, streams) in [
        ("news", json!(["news"])),
        ("sports", json!(["sport/*"])),
        ("movies", json!(["hbo"])),
    ] {
        app.admin(
            "POST",
            "/api/v1/packages",
            Some(json!({"name": name, "streams": streams})),
            201,
        )
        .await;
    }
    app.admin(
        "POST",
        "/api/v1/users",
        Some(json!({"login": "fan", "token": "fan-token", "packages": ["news", "sports"]})),
        201,
    )
    .await;
    app.admin(
        "POST",
        "/api/v1/users",
        Some(json!({"login": "cinephile", "token": "cine-token", "packages": ["news", "movies"]})),
        201,
    )
    .await;
    // Choosing "every stream" on purpose is the admin's call, not refused.
    app.admin(
        "POST",
        "/api/v1/users",
        Some(json!({"login": "vip", "packages": []})),
        201,
    )
    .await;
    app.admin("DELETE", "/api/v1/packages/news", None, 204)
        .await;
    assert_eq!(
        app.admin("GET", "/api/v1/users/fan", None, 200).await["packages"],
        json!(["sports"])
    );
    assert_eq!(
        reason(&app.decide(play("news", "fan-token")).await),
        "stream_not_allowed"
    );
    assert_eq!(
        reason(&app.decide(play("hbo", "fan-token")).await),
        "stream_not_allowed"
    );
    assert_eq!(reason(&app.decide(play("hbo", "cine-token")).await), "ok");

    // Once its last user is reassigned (here: explicitly to every stream),
    // the package goes.
    assert_eq!(
        app.api("DELETE", "/api/v1/packages/movies", ADMIN, None)
            .await
            .status,
        409
    );
    app.admin(
        "PATCH",
        "/api/v1/users/cinephile",
        Some(json!({"packages": []})),
        200,
    )
    .await;
    app.admin("DELETE", "/api/v1/packages/movies", None, 204)
        .await;
}

#[tokio::test]
async fn a_package_delete_racing_an_assignment_never_leaves_a_user_with_none() {
    let app = spawn_admin_app().await;
    app.admin(
        "POST",
        "/api/v1/packages",
        Some(json!({"name": "keep", "streams": ["keep"]})),
        201,
    )
    .await;
    app.admin(
        "POST",
        "/api/v1/users",
        Some(json!({"login": "fan", "packages": ["keep"]})),
        201,
    )
    .await;
    for round in 0..8 {
        let name = format!("p{round}");
        app.admin(
            "POST",
            "/api/v1/packages",
            Some(json!({"name": name, "streams": [name]})),
            201,
        )
        .await;
        app.admin(
            "PATCH",
            "/api/v1/users/fan",
            Some(json!({"packages": ["keep", name]})),
            200,
        )
        .await;
        // fan's packages become just this one while it is being deleted:
        // one of the two must fail, whichever comes first.
        let path = format!("/api/v1/packages/{name}");
        let (assigned, deleted) = tokio::join!(
            app.api(
                "PATCH",
                "/api/v1/users/fan",
                ADMIN,
                Some(json!({"packages": [name]}))
            ),
            app.api("DELETE", &path, ADMIN, None),
        );
        let outcome = (assigned.status, deleted.status);
        assert!(
            outcome == (200, 409) || outcome == (422, 204),
            "round {round}: {outcome:?} {} / {}",
            assigned.body,
            deleted.body
        );
        let packages = app.admin("GET", "/api/v1/users/fan", None, 200).await["packages"].clone();
        assert_ne!(
            packages,
            json!([]),
            "round {round}: fan may now watch every stream"
        );
        app.admin(
            "PATCH",
            "/api/v1/users/fan",
            Some(json!({"packages": ["keep"]})),
            200,
        )
        .await;
    }
}

/// (kind, enabled, expires_at) of a user.
async fn account(app: &TestApp, login: &str) -> (String, bool, Value) {
    let user = app
        .admin("GET", &format!("/api/v1/users/{login}"), None, 200)
        .await;
    (
        user["kind"].as_str().unwrap().to_string(),
        user["enabled"].as_bool().unwrap(),
        user["expires_at"].clone(),
    )
}

#[tokio::test]
async fn the_last_admin_cannot_be_disabled_demoted_expired_or_deleted() {
    let app = spawn_admin_app().await;
    // Admins who cannot use the API do not count.
    app.admin(
        "POST",
        "/api/v1/users",
        Some(json!({"login": "retired", "kind": "admin", "enabled": false})),
        201,
    )
    .await;
    app.admin(
        "POST",
        "/api/v1/users",
        Some(json!({"login": "lapsed", "kind": "admin", "expires_at": "2001-01-01T00:00:00Z"})),
        201,
    )
    .await;
    let now = chrono::Utc::now().to_rfc3339();
    for (change, field) in [
        (json!({"enabled": false}), "enabled"),
        (json!({"kind": "observer"}), "kind"),
        (json!({"kind": "user", "comment": "x"}), "kind"),
        (json!({"expires_at": "2001-01-01T00:00:00Z"}), "expires_at"),
        (json!({"expires_at": now}), "expires_at"),
        (json!({"enabled": false, "kind": "user"}), "enabled"),
    ] {
        let answer = app
            .api("PATCH", "/api/v1/users/root", ADMIN, Some(change.clone()))
            .await;
        assert_eq!(answer.status, 409, "{change}: {}", answer.body);
        assert_eq!(answer.body["field"], field, "{change}");
        assert!(
            answer.body["error"]
                .as_str()
                .unwrap()
                .contains("last enabled admin"),
            "{}",
            answer.body
        );
        assert_eq!(
            account(&app, "root").await,
            ("admin".to_string(), true, Value::Null),
            "after {change}"
        );
    }
    let answer = app.api("DELETE", "/api/v1/users/root", ADMIN, None).await;
    assert_eq!(answer.status, 409, "{}", answer.body);
    assert_eq!(answer.body["field"], "login");
    assert_eq!(
        account(&app, "root").await,
        ("admin".to_string(), true, Value::Null)
    );
    // Changes that leave it an admin are fine: a later expiry, a comment.
    app.admin(
        "PATCH",
        "/api/v1/users/root",
        Some(json!({"expires_at": "2999-01-01T00:00:00Z", "comment": "still here"})),
        200,
    )
    .await;
    app.admin(
        "PATCH",
        "/api/v1/users/root",
        Some(json!({"expires_at": null, "kind": "admin", "enabled": true})),
        200,
    )
    .await;

    // With a second enabled admin, the first may go.
    app.admin(
        "POST",
        "/api/v1/users",
        Some(json!({"login": "ops", "password": "ops-password", "kind": "admin"})),
        201,
    )
    .await;
    let ops = Auth::Basic("ops", "ops-password");
    app.admin(
        "PATCH",
        "/api/v1/users/root",
        Some(json!({"kind": "observer"})),
        200,
    )
    .await;
    // Now ops is the last one, and the same holds for it.
    let answer = app
        .api(
            "PATCH",
            "/api/v1/users/ops",
            ops,
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(
        (answer.status, answer.body["field"].as_str()),
        (409, Some("enabled"))
    );
    assert_eq!(
        app.api("DELETE", "/api/v1/users/ops", ops, None)
            .await
            .status,
        409
    );
    assert_eq!(
        app.api(
            "PATCH",
            "/api/v1/users/root",
            ops,
            Some(json!({"kind": "admin"}))
        )
        .await
        .status,
        200
    );
    assert_eq!(
        app.api("DELETE", "/api/v1/users/ops", ADMIN, None)
            .await
            .status,
        204
    );
}

#[tokio::test]
async fn two_concurrent_demotions_of_the_last_two_admins_one_succeeds() {
    let app = spawn_admin_app().await;
    app.admin(
        "POST",
        "/api/v1/users",
        Some(json!({"login": "ops", "password": "ops-password", "kind": "admin"})),
        201,
    )
    .await;
    let staff = [("root", ADMIN), ("ops", Auth::Basic("ops", "ops-password"))];
    let changes = [
        json!({"kind": "user"}),
        json!({"enabled": false}),
        json!({"expires_at": "2001-01-01T00:00:00Z"}),
        json!({"kind": "observer"}),
    ];
    for round in 0..8 {
        // Each admin takes away its own powers: both are authenticated
        // before either write, so only the lock decides.
        let first = &changes[round % changes.len()];
        let second = &changes[(round + 1) % changes.len()];
        let (a, b) = tokio::join!(
            app.api(
                "PATCH",
                "/api/v1/users/root",
                staff[0].1,
                Some(first.clone())
            ),
            app.api(
                "PATCH",
                "/api/v1/users/ops",
                staff[1].1,
                Some(second.clone())
            ),
        );
        let mut statuses = [a.status, b.status];
        statuses.sort();
        assert_eq!(
            statuses,
            [200, 409],
            "round {round}: {} / {}",
            a.body,
            b.body
        );
        let (gone, survivor) = if a.status == 200 {
            (staff[0].0, staff[1].1)
        } else {
            (staff[1].0, staff[0].1)
        };
        let admins = app
            .api(
                "GET",
                "/api/v1/users?kind=admin&enabled=true",
                survivor,
                None,
            )
            .await;
        assert_eq!(admins.status, 200, "{}", admins.body);
        // Back to two admins for the next round.
        let restored = app
            .api(
                "PATCH",
                &format!("/api/v1/users/{gone}"),
                survivor,
                Some(json!({"kind": "admin", "enabled": true, "expires_at": null})),
            )
            .await;
        assert_eq!(restored.status, 200, "{}", restored.body);
    }
}

#[tokio::test]
async fn an_import_that_takes_away_the_last_admin_is_refused_whole() {
    let app = spawn_admin_app().await;
    for (item, field) in [
        (json!({"login": "root", "enabled": false}), "enabled"),
        (json!({"login": "root", "kind": "user"}), "kind"),
        (
            json!({"login": "root", "expires_at": "2001-01-01T00:00:00Z"}),
            "expires_at",
        ),
    ] {
        let answer = app
            .api(
                "POST",
                "/api/v1/import",
                ADMIN,
                Some(json!([
                    {"login": "newbie", "token": "newbie-token"},
                    {"login": "viewer", "comment": "changed"},
                    item
                ])),
            )
            .await;
        assert_eq!(answer.status, 409, "{item}: {}", answer.body);
        assert_eq!(answer.body["field"], field);
        let message = answer.body["error"].as_str().unwrap();
        assert!(
            message.contains("item 2 ('root')") && message.contains("last enabled admin"),
            "{message}"
        );
        // Nothing written.
        assert_eq!(
            app.api("GET", "/api/v1/users/newbie", ADMIN, None)
                .await
                .status,
            404
        );
        assert_eq!(
            app.admin("GET", "/api/v1/users/viewer", None, 200).await["comment"],
            ""
        );
        assert_eq!(
            account(&app, "root").await,
            ("admin".to_string(), true, Value::Null)
        );
        assert_eq!(
            reason(&app.decide(play("news", "newbie-token")).await),
            "unknown_token"
        );
    }
    // The same import that also makes another admin goes through.
    app.admin(
        "POST",
        "/api/v1/import",
        Some(json!([
            {"login": "newbie", "kind": "admin", "password": "newbie-password"},
            {"login": "root", "enabled": false}
        ])),
        200,
    )
    .await;
    let newbie = Auth::Basic("newbie", "newbie-password");
    let root = app.api("GET", "/api/v1/users/root", newbie, None).await;
    assert_eq!(root.body["enabled"], false, "{}", root.body);
}
