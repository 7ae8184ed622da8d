//! Issue 15, the admin API's trust boundaries: a cross-site form cannot
//! write with a browser's cached credentials (415), a body is read only
//! after its credentials are verified, and a web-interface session ends
//! when its user's password, kind or enabled flag changes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::json;

use crate::helpers::*;
use crate::ui_login::{sign_in, with_cookie};

/// What a cross-site `<form enctype="text/plain">` can send: the browser
/// attaches its cached Basic credentials, and the body is JSON-shaped text.
#[tokio::test]
async fn cross_site_form_writes_are_refused() {
    let app = spawn_admin_app().await;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let mut request = app
            .http
            .post(format!("{}/api/v1/users", app.address))
            .basic_auth("root", Some("root-pw"))
            .body(r#"{"login": "mallory", "kind": "admin", "password": "takeover"}"#);
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 415, "{content_type:?}");
    }
    // A body-less POST (a form with no fields) is no write either.
    let response = app
        .http
        .post(format!("{}/api/v1/users/root/tokens", app.address))
        .basic_auth("root", Some("root-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);
    assert_eq!(
        app.api("GET", "/api/v1/users/mallory", ADMIN, None)
            .await
            .status,
        404
    );
    // The same write as JSON goes through.
    app.admin(
        "POST",
        "/api/v1/users",
        Some(json!({"login": "alice"})),
        201,
    )
    .await;
    let response = app
        .http
        .post(format!("{}/api/v1/users", app.address))
        .basic_auth("root", Some("root-pw"))
        .header("Content-Type", "application/json; charset=utf-8")
        .body(r#"{"login": "bob"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
}

/// A large import from a caller with wrong credentials is refused before its
/// body is read. An unknown login costs a full bcrypt (of the dummy hash):
/// a server that read bodies while checking credentials would take in the
/// whole 64 MiB meanwhile, one that waits leaves the client blocked on a
/// full socket after a few MiB.
#[tokio::test]
async fn an_unauthenticated_body_is_not_read() {
    let app = spawn_admin_app().await;
    let produced = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&produced);
    let chunks = futures_util::stream::unfold(0usize, move |sent| {
        let counter = Arc::clone(&counter);
        async move {
            if sent == 64 {
                return None;
            }
            tokio::task::yield_now().await;
            counter.fetch_add(1, Ordering::SeqCst);
            let mut chunk = vec![b' '; 1 << 20];
            if sent == 0 {
                chunk[0] = b'[';
            }
            Some((Ok::<_, std::io::Error>(chunk), sent + 1))
        }
    });
    let answer = app
        .http
        .post(format!("{}/api/v1/import", app.address))
        .basic_auth("nobody", Some("guess"))
        .header("Content-Type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await;
    let sent_before_the_answer = produced.load(Ordering::SeqCst);
    // The server answers 401 and stops reading: the client sees the answer,
    // or a reset while still sending, never an answer after the whole body.
    if let Ok(response) = answer {
        assert_eq!(response.status().as_u16(), 401);
    }
    assert!(
        sent_before_the_answer < 32,
        "{sent_before_the_answer} MiB of the body were read before the credentials were refused"
    );
}

#[tokio::test]
async fn web_sessions_end_with_a_password_change_a_demotion_or_a_disable() {
    let app = spawn_admin_app().await;
    app.admin(
        "POST",
        "/api/v1/users",
        Some(json!({"login": "ops", "password": "ops-password", "kind": "admin"})),
        201,
    )
    .await;
    let signed_in = || async {
        let answer = sign_in(&app, "ops", "ops-password", &[]).await;
        assert_eq!(answer.status, 200);
        answer.cookie.unwrap()
    };
    let live = |cookie: String| {
        let app = &app;
        async move {
            with_cookie(app, "GET", "/api/v1/users", &cookie, None, None)
                .await
                .0
        }
    };

    // A change that is not about access leaves the session alone.
    let cookie = signed_in().await;
    app.admin(
        "PATCH",
        "/api/v1/users/ops",
        Some(json!({"comment": "on call"})),
        200,
    )
    .await;
    assert_eq!(live(cookie.clone()).await, 200);

    for change in [
        json!({"password": "new-ops-password"}),
        json!({"kind": "observer"}),
        json!({"enabled": false}),
    ] {
        let cookie = signed_in().await;
        assert_eq!(live(cookie.clone()).await, 200);
        app.admin("PATCH", "/api/v1/users/ops", Some(change.clone()), 200)
            .await;
        assert_eq!(live(cookie).await, 401, "after {change}");
        // Back to a state that can sign in again.
        app.admin(
            "PATCH",
            "/api/v1/users/ops",
            Some(json!({"password": "ops-password", "kind": "admin", "enabled": true})),
            200,
        )
        .await;
    }
}

/// `X-Forwarded-Proto: https` makes the cookie Secure only from a trusted
/// proxy; then it is a `__Host-` cookie.
#[tokio::test]
async fn the_secure_cookie_follows_only_a_trusted_proxy() {
    let app = spawn_admin_app().await;
    let secure = sign_in(&app, "root", "root-pw", &[("X-Forwarded-Proto", "https")]).await;
    assert!(
        secure.set_cookie.starts_with("__Host-playgate_session=")
            && secure.set_cookie.contains("; Secure"),
        "{}",
        secure.set_cookie
    );
    let untrusted = spawn_app_with(|settings| {
        settings.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
    })
    .await;
    seed_admins(&untrusted).await;
    let forged = sign_in(
        &untrusted,
        "root",
        "root-pw",
        &[("X-Forwarded-Proto", "https")],
    )
    .await;
    assert_eq!(forged.status, 200);
    assert!(
        forged.set_cookie.starts_with("playgate_session=") && !forged.set_cookie.contains("Secure"),
        "{}",
        forged.set_cookie
    );
}
