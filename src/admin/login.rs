//! `POST /api/v1/login`, `GET /api/v1/login`, `POST /api/v1/logout`: the
//! cookie session of the web interface at `/ui/`.
//!
//! Sign-in takes the login and password of an `admin` or `observer` (a plain
//! `user` is refused) and sets `playgate_session`: a random 256-bit value,
//! HttpOnly, SameSite=Strict, Path=/, for `SESSION_HOURS`; over HTTPS (this
//! server's TLS, or `X-Forwarded-Proto: https` from a trusted proxy) it is
//! Secure and named `__Host-playgate_session`. It ends early when the user's
//! password, kind or enabled flag changes (a trigger, sql/V10). The database keeps
//! only its SHA-256 and the expiry. The answer carries the CSRF token that
//! cookie-authenticated writes must send in `X-Playgate-CSRF` (see `auth.rs`).
//! Failed sign-ins are damped per client IP like other credential failures
//! (`--auth-failure-limit` within `--auth-failure-window`: then 429).

use actix_web::http::header::{HeaderValue, CACHE_CONTROL, SET_COOKIE};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::{
    client_ip, csrf_token, session_cookie, verify_password, Caller, JsonBody, PasswordCheck,
    SECURE_SESSION_COOKIE, SESSION_COOKIE,
};
use crate::domain::UserKind;
use crate::http::request::https_via_trusted_proxy;
use crate::http::ApiError;
use crate::http::AppState;
use crate::http::ErrorBody;
use crate::rate_limit::Guesser;
use crate::store::ui_sessions;

/// How long a sign-in lasts.
pub const SESSION_HOURS: i64 = 12;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct LoginInput {
    pub login: String,
    pub password: String,
}

/// The signed-in user and the token for `X-Playgate-CSRF`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoginAnswer {
    pub login: String,
    /// `admin` or `observer`.
    pub kind: String,
    pub csrf: String,
}

/// Whether the browser talks HTTPS: this server's own TLS, or
/// `X-Forwarded-Proto: https` from a trusted proxy (from anyone else the
/// header is the client's to choose).
fn over_tls(request: &HttpRequest, state: &AppState) -> bool {
    request.app_config().secure()
        || https_via_trusted_proxy(request, &state.settings.trusted_proxies)
}

fn cookie(request: &HttpRequest, state: &AppState, value: &str, max_age: i64) -> HeaderValue {
    let text = if over_tls(request, state) {
        format!("{SECURE_SESSION_COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict; Secure")
    } else {
        format!("{SESSION_COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict")
    };
    HeaderValue::from_str(&text).expect("cookie header is ASCII")
}

/// A JSON error without `WWW-Authenticate` (a browser would pop up its own dialog).
fn refusal(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": message }))
}

#[utoipa::path(post, path = "/api/v1/login", tag = "web interface", request_body = LoginInput,
    responses((status = 200, body = LoginAnswer, description = "signed in: sets the `playgate_session` cookie (HttpOnly, SameSite=Strict)"),
              (status = 401, body = ErrorBody, description = "wrong login or password"),
              (status = 403, body = ErrorBody, description = "a plain `user` may not sign in"),
              (status = 429, body = ErrorBody, description = "too many failed sign-ins from this address")))]
pub async fn login(
    request: HttpRequest,
    state: web::Data<AppState>,
    JsonBody(input): JsonBody<LoginInput>,
) -> Result<HttpResponse, ApiError> {
    let limiter = &state.failures;
    let ip = client_ip(&request, &state);
    if ip.is_some_and(|ip| limiter.is_limited(&Guesser::client(ip))) {
        return Ok(refusal(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed sign-ins; try again later",
        ));
    }
    let Caller { login, kind } = match verify_password(&state, &input.login, &input.password).await
    {
        PasswordCheck::Caller(caller) => caller,
        PasswordCheck::Wrong => {
            if let Some(ip) = ip {
                limiter.record_failure(&Guesser::client(ip));
            }
            return Ok(refusal(StatusCode::UNAUTHORIZED, "wrong login or password"));
        }
        PasswordCheck::Busy => {
            return Ok(refusal(
                StatusCode::TOO_MANY_REQUESTS,
                "too many sign-ins under way; try again shortly",
            ))
        }
    };
    if kind == UserKind::User {
        return Ok(refusal(
            StatusCode::FORBIDDEN,
            "this account has no access to the web interface",
        ));
    }
    let value = crate::domain::token::random_secret();
    let expires_at = Utc::now() + chrono::Duration::hours(SESSION_HOURS);
    let client = state.pool.get().await?;
    if !ui_sessions::create(&client, &value, &login, expires_at).await? {
        return Ok(refusal(StatusCode::UNAUTHORIZED, "wrong login or password"));
    }
    Ok(HttpResponse::Ok()
        .insert_header((
            SET_COOKIE,
            cookie(&request, &state, &value, SESSION_HOURS * 3600),
        ))
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(LoginAnswer {
            login,
            kind: kind.as_str().to_string(),
            csrf: csrf_token(&value),
        }))
}

#[utoipa::path(get, path = "/api/v1/login", tag = "web interface",
    responses((status = 200, body = LoginAnswer, description = "who the session cookie belongs to, and its CSRF token"),
              (status = 401, body = ErrorBody, description = "no live session")))]
pub async fn current(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let signed_out = || refusal(StatusCode::UNAUTHORIZED, "not signed in");
    let Some(value) = session_cookie(&request) else {
        return Ok(signed_out());
    };
    let client = state.pool.get().await?;
    let Some((login, kind, enabled, expires_at)) = ui_sessions::find(&client, &value).await? else {
        return Ok(signed_out());
    };
    let live = enabled && expires_at.is_none_or(|at| at > Utc::now());
    if !live || kind == "user" {
        return Ok(signed_out());
    }
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(LoginAnswer {
            login,
            kind,
            csrf: csrf_token(&value),
        }))
}

#[utoipa::path(post, path = "/api/v1/logout", tag = "web interface",
    responses((status = 204, description = "signed out: the session is ended and the cookie cleared")))]
pub async fn logout(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if let Some(value) = session_cookie(&request) {
        let client = state.pool.get().await?;
        ui_sessions::delete(&client, &value).await?;
    }
    Ok(HttpResponse::NoContent()
        .insert_header((SET_COOKIE, cookie(&request, &state, "", 0)))
        .finish())
}

/// Middleware of the admin scope: a browser request of the web interface
/// (it carries the session cookie or the CSRF header) gets its 401 without
/// `WWW-Authenticate`, so the browser shows the sign-in page, not its own
/// Basic dialog. Other clients see the challenge as before.
pub async fn no_browser_challenge(
    request: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let from_ui = request.headers().contains_key(super::auth::CSRF_HEADER)
        || (request
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .is_none()
            && session_cookie(request.request()).is_some());
    let mut response = next.call(request).await?;
    if from_ui {
        response
            .headers_mut()
            .remove(actix_web::http::header::WWW_AUTHENTICATE);
    }
    Ok(response)
}
