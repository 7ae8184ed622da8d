//! Admin API authentication and roles: admin / observer / user / anonymous
//! × read / write, Basic and Bearer.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn role_matrix_for_reads_and_writes() {
    let app = spawn_admin_app().await;
    let wrong = Auth::Basic("root", "not-the-password");
    let unknown = Auth::Basic("nobody", "x");
    let cases = [
        (ADMIN, 200, 201),
        (OBSERVER, 200, 403),
        (VIEWER, 403, 403),
        (Auth::None, 401, 401),
        (wrong, 401, 401),
        (unknown, 401, 401),
        (Auth::Bearer("no-such-token"), 401, 401),
    ];
    for (index, (auth, read, write)) in cases.into_iter().enumerate() {
        let read_answer = app.api("GET", "/api/v1/users", auth, None).await;
        assert_eq!(
            read_answer.status, read,
            "{auth:?} read: {}",
            read_answer.body
        );
        let body = json!({"name": format!("p{index}"), "streams": ["news"]});
        let write_answer = app.api("POST", "/api/v1/packages", auth, Some(body)).await;
        assert_eq!(
            write_answer.status, write,
            "{auth:?} write: {}",
            write_answer.body
        );
        for answer in [&read_answer, &write_answer] {
            if answer.status == 401 {
                assert_eq!(
                    answer.headers["www-authenticate"],
                    r#"Basic realm="playgate""#
                );
            }
            if answer.status >= 400 {
                assert!(answer.body["error"].is_string(), "{}", answer.body);
            }
        }
    }
    // Every read and every write route applies the roles.
    for (method, path) in [
        ("GET", "/api/v1/users/viewer"),
        ("GET", "/api/v1/users/viewer/tokens"),
        ("GET", "/api/v1/packages"),
        ("GET", "/api/v1/ip-rules"),
        ("GET", "/api/v1/sessions"),
        ("GET", "/api/v1/audit"),
    ] {
        assert_eq!(
            app.api(method, path, OBSERVER, None).await.status,
            200,
            "{path}"
        );
        assert_eq!(
            app.api(method, path, VIEWER, None).await.status,
            403,
            "{path}"
        );
        assert_eq!(
            app.api(method, path, Auth::None, None).await.status,
            401,
            "{path}"
        );
    }
    for (method, path, body) in [
        ("POST", "/api/v1/users", json!({"login": "x"})),
        ("PATCH", "/api/v1/users/viewer", json!({"comment": "x"})),
        ("DELETE", "/api/v1/users/viewer", json!(null)),
        ("POST", "/api/v1/users/viewer/tokens", json!({})),
        ("DELETE", "/api/v1/users/viewer/tokens/1", json!(null)),
        ("PATCH", "/api/v1/packages/p0", json!({"comment": "x"})),
        ("DELETE", "/api/v1/packages/p0", json!(null)),
        (
            "POST",
            "/api/v1/ip-rules",
            json!({"network": "192.0.2.0/24", "action": "deny"}),
        ),
        ("DELETE", "/api/v1/ip-rules/1", json!(null)),
        (
            "DELETE",
            "/api/v1/sessions/00000000-0000-0000-0000-000000000000",
            json!(null),
        ),
        ("POST", "/api/v1/import", json!([])),
    ] {
        let body = (!body.is_null()).then_some(body);
        assert_eq!(
            app.api(method, path, OBSERVER, body.clone()).await.status,
            403,
            "{method} {path}"
        );
        assert_eq!(
            app.api(method, path, VIEWER, body.clone()).await.status,
            403,
            "{method} {path}"
        );
        assert_eq!(
            app.api(method, path, Auth::None, body).await.status,
            401,
            "{method} {path}"
        );
    }
    // Nothing was changed by the refused writes.
    assert_eq!(
        app.admin("GET", "/api/v1/users/viewer", None, 200).await["comment"],
        ""
    );
}

/// Issue 15: a playback token (the default scope) leaks through players,
/// logs and shared links, so even an admin's never opens the admin API; it
/// still plays.
#[tokio::test]
async fn playback_tokens_are_not_api_credentials() {
    let app = spawn_admin_app().await;
    let created = app
        .admin("POST", "/api/v1/users/root/tokens", Some(json!({})), 201)
        .await;
    assert_eq!(created["scope"], "play");
    let token = created["token"].as_str().unwrap().to_string();
    for (method, path, body) in [
        ("GET", "/api/v1/users", None),
        ("POST", "/api/v1/packages", Some(json!({"name": "p"}))),
    ] {
        let answer = app.api(method, path, Auth::Bearer(&token), body).await;
        assert_eq!(answer.status, 401, "{method} {path}");
    }
    let play = app
        .decide(json!({"stream": "news", "ip": "192.0.2.1", "token": token}))
        .await;
    assert_eq!(
        (play["allow"].as_bool(), play["user"].as_str()),
        (Some(true), Some("root"))
    );
    let bad = app
        .api(
            "POST",
            "/api/v1/users/root/tokens",
            ADMIN,
            Some(json!({"scope": "admin"})),
        )
        .await;
    assert_eq!(
        (bad.status, bad.body["field"].as_str()),
        (422, Some("scope"))
    );
}

#[tokio::test]
async fn bearer_tokens_of_staff_authenticate() {
    let app = spawn_admin_app().await;
    let created = app
        .admin(
            "POST",
            "/api/v1/users/watcher/tokens",
            Some(json!({"label": "grafana", "scope": "api"})),
            201,
        )
        .await;
    let token = created["token"].as_str().unwrap().to_string();
    assert_eq!(
        app.api("GET", "/api/v1/users", Auth::Bearer(&token), None)
            .await
            .status,
        200
    );
    assert_eq!(
        app.api(
            "POST",
            "/api/v1/packages",
            Auth::Bearer(&token),
            Some(json!({"name": "p"}))
        )
        .await
        .status,
        403
    );
    // An expired token, a disabled account: 401.
    app.admin(
        "PATCH",
        "/api/v1/users/watcher",
        Some(json!({"enabled": false})),
        200,
    )
    .await;
    assert_eq!(
        app.api("GET", "/api/v1/users", Auth::Bearer(&token), None)
            .await
            .status,
        401
    );
    assert_eq!(
        app.api("GET", "/api/v1/users", OBSERVER, None).await.status,
        401
    );
    let expired = app
        .admin(
            "POST",
            "/api/v1/users/root/tokens",
            Some(json!({"token": "old-root-token", "expires_at": "2020-01-01T00:00:00Z", "scope": "api"})),
            201,
        )
        .await;
    assert_eq!(expired["token"], "old-root-token");
    assert_eq!(
        app.api("GET", "/api/v1/users", Auth::Bearer("old-root-token"), None)
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn malformed_authorization_is_401() {
    let app = spawn_admin_app().await;
    for header in [
        "Basic",
        "Basic !!!",
        "Basic bm9jb2xvbg==",
        "Digest abc",
        "Bearer ",
    ] {
        let response = app
            .http
            .get(format!("{}/api/v1/users", app.address))
            .header("Authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401, "{header}");
        assert!(response.headers().contains_key("www-authenticate"));
    }
}

#[tokio::test]
async fn bootstrap_admin_can_use_the_api() {
    let app = spawn_app_with(|s| s.bootstrap_admin = Some(("boot".into(), "boot-pw".into()))).await;
    let answer = app
        .api("GET", "/api/v1/users", Auth::Basic("boot", "boot-pw"), None)
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["items"][0]["login"], "boot");
    assert_eq!(answer.body["items"][0]["kind"], "admin");
}
