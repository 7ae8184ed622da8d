//! Admin API writes that would open everything (issue 22): deleting a
//! package that is some user's only one (no package = every stream).

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
