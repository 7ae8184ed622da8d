//! The web interface's cookie session: `POST /api/v1/login`, `/logout`,
//! cookie flags, CSRF on cookie writes, refused kinds, damping, and `/ui/`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

/// What a sign-in answered: status, the cookie pair (`name=value`), the
/// whole Set-Cookie header, and the body.
pub struct SignIn {
    pub status: u16,
    pub cookie: Option<String>,
    pub set_cookie: String,
    pub body: Value,
}

pub async fn sign_in(
    app: &TestApp,
    login: &str,
    password: &str,
    headers: &[(&str, &str)],
) -> SignIn {
    let mut request = app
        .http
        .post(format!("{}/api/v1/login", app.address))
        .json(&json!({"login": login, "password": password}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let set_cookie = response
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let cookie = set_cookie
        .split(';')
        .next()
        .filter(|pair| pair.starts_with("playgate_session=") && pair.len() > 17)
        .map(str::to_string);
    let body = response.json().await.unwrap_or(Value::Null);
    SignIn {
        status,
        cookie,
        set_cookie,
        body,
    }
}

/// A request with the cookie (and optionally the CSRF header).
pub async fn with_cookie(
    app: &TestApp,
    method: &str,
    path: &str,
    cookie: &str,
    csrf: Option<&str>,
    body: Option<Value>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = app
        .http
        .request(method, format!("{}{}", app.address, path))
        .header("Cookie", cookie);
    if let Some(csrf) = csrf {
        request = request.header("X-Playgate-CSRF", csrf);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        headers,
    )
}

#[tokio::test]
async fn admin_signs_in_with_a_strict_http_only_cookie_stored_as_a_hash() {
    let app = spawn_admin_app().await;
    let answer = sign_in(&app, "root", "root-pw", &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["login"], "root");
    assert_eq!(answer.body["kind"], "admin");
    let csrf = answer.body["csrf"].as_str().unwrap().to_string();
    assert_eq!(csrf.len(), 64);
    let flags = answer.set_cookie.to_ascii_lowercase();
    assert!(flags.contains("httponly"), "{flags}");
    assert!(flags.contains("samesite=strict"), "{flags}");
    assert!(flags.contains("path=/"), "{flags}");
    assert!(flags.contains("max-age="), "{flags}");
    assert!(
        !flags.contains("secure"),
        "plain HTTP: no Secure flag: {flags}"
    );
    let cookie = answer.cookie.unwrap();
    let value = cookie.trim_start_matches("playgate_session=");

    // Only a hash of the value is kept, with an expiry in the future.
    let client = app.db().await;
    let rows = client
        .query(
            "SELECT encode(hash, 'hex'), expires_at > now() + interval '1 hour' FROM ui_sessions",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let stored: String = rows[0].get(0);
    assert!(!stored.contains(value));
    assert!(rows[0].get::<_, bool>(1));
    let dump: String = client
        .query_one("SELECT string_agg(t::text, ' ') FROM ui_sessions t", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!dump.contains(value));

    // The cookie reads the admin API, and says who is signed in.
    let (status, body, _) = with_cookie(&app, "GET", "/api/v1/users", &cookie, None, None).await;
    assert_eq!(status, 200, "{body}");
    let (status, me, _) = with_cookie(&app, "GET", "/api/v1/login", &cookie, None, None).await;
    assert_eq!(status, 200);
    assert_eq!(me["login"], "root");
    assert_eq!(me["csrf"], csrf.as_str());

    // Sign-out ends the session on the server and clears the cookie.
    let (status, _, headers) =
        with_cookie(&app, "POST", "/api/v1/logout", &cookie, None, None).await;
    assert_eq!(status, 204);
    let cleared = headers.get("set-cookie").unwrap().to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let (status, _, headers) = with_cookie(&app, "GET", "/api/v1/users", &cookie, None, None).await;
    assert_eq!(status, 401);
    assert!(
        headers.get("www-authenticate").is_none(),
        "a browser request must not trigger the Basic dialog"
    );
    let count: i64 = client
        .query_one("SELECT count(*) FROM ui_sessions", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 0);
}

#[tokio::test]
async fn cookie_is_secure_behind_tls() {
    let app = spawn_admin_app().await;
    let answer = sign_in(&app, "root", "root-pw", &[("X-Forwarded-Proto", "https")]).await;
    assert_eq!(answer.status, 200);
    assert!(
        answer.set_cookie.contains("; Secure"),
        "{}",
        answer.set_cookie
    );
}

#[tokio::test]
async fn cookie_writes_need_the_csrf_token_basic_writes_do_not() {
    let app = spawn_admin_app().await;
    let answer = sign_in(&app, "root", "root-pw", &[]).await;
    let cookie = answer.cookie.unwrap();
    let csrf = answer.body["csrf"].as_str().unwrap().to_string();
    let new_user = |login: &str| Some(json!({"login": login}));

    let (status, body, _) =
        with_cookie(&app, "POST", "/api/v1/users", &cookie, None, new_user("a1")).await;
    assert_eq!(status, 403, "{body}");
    let (status, _, _) = with_cookie(
        &app,
        "POST",
        "/api/v1/users",
        &cookie,
        Some("0".repeat(64).as_str()),
        new_user("a2"),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, _) =
        with_cookie(&app, "DELETE", "/api/v1/users/viewer", &cookie, None, None).await;
    assert_eq!(status, 403);
    let (status, body, _) = with_cookie(
        &app,
        "POST",
        "/api/v1/users",
        &cookie,
        Some(&csrf),
        new_user("a3"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body, _) = with_cookie(
        &app,
        "PATCH",
        "/api/v1/users/a3",
        &cookie,
        Some(&csrf),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The audit names the signed-in admin.
    let audit = app
        .admin("GET", "/api/v1/audit?object_id=a3", None, 200)
        .await;
    assert_eq!(audit["items"][0]["actor"], "root");

    // Basic auth is unaffected, with or without a stray cookie.
    app.admin("POST", "/api/v1/users", new_user("a4"), 201)
        .await;
    let answer = app
        .http
        .post(format!("{}/api/v1/users", app.address))
        .basic_auth("root", Some("root-pw"))
        .header("Cookie", cookie.as_str())
        .json(&json!({"login": "a5"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201);
}

#[tokio::test]
async fn observer_reads_but_cannot_write_and_user_cannot_sign_in() {
    let app = spawn_admin_app().await;
    let answer = sign_in(&app, "watcher", "watcher-pw", &[]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["kind"], "observer");
    let cookie = answer.cookie.unwrap();
    let csrf = answer.body["csrf"].as_str().unwrap().to_string();
    let (status, _, _) = with_cookie(&app, "GET", "/api/v1/sessions", &cookie, None, None).await;
    assert_eq!(status, 200);
    let (status, _, _) = with_cookie(
        &app,
        "POST",
        "/api/v1/users",
        &cookie,
        Some(&csrf),
        Some(json!({"login": "nope"})),
    )
    .await;
    assert_eq!(status, 403);

    let refused = sign_in(&app, "viewer", "viewer-pw", &[]).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.cookie.is_none());
    let wrong = sign_in(&app, "root", "nope", &[]).await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.cookie.is_none());
    let unknown = sign_in(&app, "ghost", "nope", &[]).await;
    assert_eq!(unknown.status, 401);

    // A disabled admin's open session stops working.
    let root = sign_in(&app, "root", "root-pw", &[]).await.cookie.unwrap();
    app.db()
        .await
        .execute("UPDATE users SET enabled = false WHERE login = 'root'", &[])
        .await
        .unwrap();
    let (status, _, _) = with_cookie(&app, "GET", "/api/v1/users", &root, None, None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn failed_sign_ins_are_damped_per_address() {
    let app = spawn_app_with(|settings| {
        settings.auth_failure_limit = 3;
        settings.auth_failure_window = Duration::from_secs(60);
    })
    .await;
    let mut spec = user("root").password("root-pw");
    spec.user.kind = playgate::domain::UserKind::Admin;
    app.create(spec).await;
    for _ in 0..3 {
        assert_eq!(sign_in(&app, "root", "guess", &[]).await.status, 401);
    }
    let damped = sign_in(&app, "root", "root-pw", &[]).await;
    assert_eq!(damped.status, 429, "{}", damped.body);
    assert!(damped.cookie.is_none());
}

#[tokio::test]
async fn ui_is_served_with_a_strict_policy_and_caching() {
    let app = spawn_app().await;
    let page = app.get("/ui/").await;
    assert_eq!(page.status(), 200);
    let csp = page
        .headers()
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(page.headers().get("cache-control").unwrap(), "no-cache");
    let html = page.text().await.unwrap();
    assert!(!html.contains("<script>"), "no inline script");
    let script = html
        .split("src=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    assert!(script.starts_with("/ui/app.js?v="), "{script}");
    let asset = app.get(&script).await;
    assert_eq!(asset.status(), 200);
    assert!(asset
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(asset
        .headers()
        .get("cache-control")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("max-age="));
    let css = app.get("/ui/app.css").await;
    assert_eq!(css.status(), 200);
    // /ui redirects to /ui/ (reqwest follows it).
    let followed = app.get("/ui").await;
    assert_eq!(followed.status(), 200);
    assert!(followed.url().path().ends_with("/ui/"));
}
