//! Who is calling the admin API, decided once per request in an extractor:
//! HTTP Basic (login:password, bcrypt off the executor, remembered briefly)
//! or `Authorization: Bearer <token>` (a token of the user, by SHA-256).
//! Without an `Authorization` header, the web interface's session cookie
//! (`playgate_session`, see `login.rs`) is accepted instead; a write
//! (any method but GET/HEAD/OPTIONS) made with the cookie must also carry the
//! session's CSRF token in `X-Playgate-CSRF`, or it is refused (403).
//! `ObserverUser` lets observers and admins in (reads), `AdminUser` only
//! admins (writes). Missing or wrong credentials → 401 with
//! `WWW-Authenticate: Basic`; a known user without the role → 403.

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest};
use chrono::Utc;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use crate::domain::UserKind;
use crate::http::request::decode_basic;
use crate::http::{ApiError, AppState};
use crate::password::Check;
use crate::rate_limit::Guesser;
use crate::store::{tokens, ui_sessions};

/// The web interface's session cookie over plain HTTP.
pub const SESSION_COOKIE: &str = "playgate_session";
/// Its name over HTTPS: a `__Host-` cookie is Secure, Path=/ and host-only,
/// so no sibling subdomain or plain-HTTP page can set or shadow it.
pub const SECURE_SESSION_COOKIE: &str = "__Host-playgate_session";
/// The header a cookie-authenticated write must carry (the token from sign-in).
pub const CSRF_HEADER: &str = "X-Playgate-CSRF";

/// The CSRF token of a session, derived from the cookie's value (which the
/// database never sees), so it needs no storage of its own.
pub fn csrf_token(cookie: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(format!("playgate-csrf:{cookie}").as_bytes()))
}

/// The value of the session cookie, when the request carries one.
pub fn session_cookie(request: &HttpRequest) -> Option<String> {
    request
        .headers()
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| {
            (*name == SECURE_SESSION_COOKIE || *name == SESSION_COOKIE) && !value.is_empty()
        })
        .map(|(_, value)| value.to_string())
}

/// Equal strings, compared in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The authenticated caller of an admin route.
#[derive(Clone, Debug)]
pub struct Caller {
    pub login: String,
    pub kind: UserKind,
}

/// May read: an `observer` or an `admin`.
#[derive(Clone, Debug)]
pub struct ObserverUser(pub Caller);

/// May read and write: an `admin`.
#[derive(Clone, Debug)]
pub struct AdminUser(pub Caller);

impl AdminUser {
    pub fn login(&self) -> &str {
        &self.0.login
    }
}

enum Presented {
    Basic { login: String, password: String },
    Bearer(String),
}

fn presented(request: &HttpRequest) -> Result<Presented, ApiError> {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("credentials required"))?;
    let header = header
        .to_str()
        .map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
    let (scheme, value) = header
        .trim()
        .split_once(' ')
        .ok_or_else(|| ApiError::unauthorized("malformed Authorization header"))?;
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !value.is_empty() {
        return Ok(Presented::Bearer(value.to_string()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let (login, password) = decode_basic(value)
            .ok_or_else(|| ApiError::unauthorized("malformed Basic credentials"))?;
        return Ok(Presented::Basic { login, password });
    }
    Err(ApiError::unauthorized(
        "unsupported Authorization scheme (Basic or Bearer)",
    ))
}

/// The client of an admin request, for damping guesses: the peer, or the
/// address a trusted proxy forwarded in the same header as for forward-auth.
pub fn client_ip(request: &HttpRequest, state: &AppState) -> Option<std::net::IpAddr> {
    let settings = &state.settings;
    crate::http::request::client_ip(
        request,
        &settings.trusted_proxies,
        &settings.forward_auth_ip_header,
    )
    .ok()
    .or_else(|| request.peer_addr().map(|addr| addr.ip()))
}

/// `Content-Type: application/json`, parameters (charset) allowed.
fn is_json(request: &HttpRequest) -> bool {
    request
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// Identifies the caller; any failure is the same opaque 401.
async fn authenticate(request: HttpRequest) -> Result<Caller, ApiError> {
    let state = request
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal("AppState missing"))?;
    let now = Utc::now();
    // A web-interface session (256 random bits, not guessable) needs no damping.
    if request.headers().get(AUTHORIZATION).is_none() {
        if let Some(cookie) = session_cookie(&request) {
            return from_cookie(&state, &request, &cookie).await;
        }
    }
    // Guessing is damped per client IP, like on the hooks (behind an ingress,
    // the forwarded address of a trusted proxy is the client).
    let client_ip = client_ip(&request, &state);
    let failures = &state.failures;
    if client_ip.is_some_and(|ip| failures.is_limited(&Guesser::client(ip))) {
        return Err(ApiError::new(
            actix_web::http::StatusCode::TOO_MANY_REQUESTS,
            "rate_limited: too many failed credentials from this address, try again later",
        ));
    }
    let result = identify(&state, &request, now).await;
    if let (Err(error), Some(ip)) = (&result, client_ip) {
        if error.status == actix_web::http::StatusCode::UNAUTHORIZED && presented(&request).is_ok()
        {
            failures.record_failure(&Guesser::client(ip));
        }
    }
    result
}

/// Who the presented credentials belong to, if they are right.
async fn identify(
    state: &AppState,
    request: &HttpRequest,
    now: chrono::DateTime<Utc>,
) -> Result<Caller, ApiError> {
    let wrong = || ApiError::unauthorized("invalid credentials");
    let (login, kind, enabled, expires_at) = match presented(request)? {
        Presented::Basic { login, password } => {
            return match verify_password(state, &login, &password).await {
                PasswordCheck::Caller(caller) => Ok(caller),
                PasswordCheck::Wrong => Err(wrong()),
                PasswordCheck::Busy => Err(busy()),
            };
        }
        Presented::Bearer(token) => {
            let client = state.pool.get().await?;
            let (login, kind, enabled, expires_at) = tokens::find_by_token(&client, &token)
                .await?
                .ok_or_else(wrong)?;
            let kind = UserKind::parse(&kind).ok_or_else(wrong)?;
            (login, kind, enabled, expires_at)
        }
    };
    if !enabled || expires_at.is_some_and(|at| at <= now) {
        return Err(wrong());
    }
    Ok(Caller { login, kind })
}

/// What a login and password turned out to be.
pub enum PasswordCheck {
    Caller(Caller),
    Wrong,
    /// Every bcrypt slot was taken: nothing was checked (429, not a failure).
    Busy,
}

/// 429 for a password check that could not run (PasswordCheck::Busy).
pub fn busy() -> ApiError {
    ApiError::new(
        actix_web::http::StatusCode::TOO_MANY_REQUESTS,
        "rate_limited: too many password checks under way, try again shortly",
    )
}

/// A login and password checked against the in-memory view: the caller
/// when they match an enabled, unexpired account (any kind).
pub async fn verify_password(state: &AppState, login: &str, password: &str) -> PasswordCheck {
    // Users, their kinds and hashes come from the in-memory view.
    let user = state.policy.snapshot().user(login).cloned();
    let Some((user, hash)) = user.and_then(|u| u.password_hash.clone().map(|hash| (u, hash)))
    else {
        // As slow as a wrong password, so logins cannot be probed by timing.
        return match state.passwords.verify_unknown(login, password).await {
            Check::Busy => PasswordCheck::Busy,
            Check::Valid | Check::Invalid => PasswordCheck::Wrong,
        };
    };
    match state.passwords.verify(login, password, &hash).await {
        Check::Valid => {}
        Check::Invalid => return PasswordCheck::Wrong,
        Check::Busy => return PasswordCheck::Busy,
    }
    let live = user.enabled && user.expires_at.is_none_or(|at| at > Utc::now());
    if !live {
        return PasswordCheck::Wrong;
    }
    PasswordCheck::Caller(Caller {
        login: user.login.clone(),
        kind: user.kind,
    })
}

/// The web interface's cookie: a live session of a live account, and for a
/// write the session's CSRF token in its header.
async fn from_cookie(
    state: &AppState,
    request: &HttpRequest,
    cookie: &str,
) -> Result<Caller, ApiError> {
    let client = state.pool.get().await?;
    let (login, kind, enabled, expires_at) = ui_sessions::find(&client, cookie)
        .await?
        .ok_or_else(|| ApiError::unauthorized("signed out (the session has ended)"))?;
    let kind = UserKind::parse(&kind)
        .ok_or_else(|| ApiError::unauthorized("signed out (the session has ended)"))?;
    if !enabled || expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(ApiError::unauthorized("invalid credentials"));
    }
    let method = request.method();
    let reads = method == actix_web::http::Method::GET
        || method == actix_web::http::Method::HEAD
        || method == actix_web::http::Method::OPTIONS;
    if !reads {
        let presented = request
            .headers()
            .get(CSRF_HEADER)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("");
        if !same(presented, &csrf_token(cookie)) {
            return Err(ApiError::forbidden(
                "a write with the session cookie needs its X-Playgate-CSRF token",
            ));
        }
    }
    Ok(Caller { login, kind })
}

impl FromRequest for ObserverUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let request = request.clone();
        Box::pin(async move {
            let caller = authenticate(request).await?;
            match caller.kind {
                UserKind::Admin | UserKind::Observer => Ok(ObserverUser(caller)),
                UserKind::User => Err(ApiError::forbidden("no admin API access for this user")),
            }
        })
    }
}

impl FromRequest for AdminUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let request = request.clone();
        Box::pin(async move {
            let caller = authenticate(request).await?;
            match caller.kind {
                UserKind::Admin => Ok(AdminUser(caller)),
                UserKind::Observer => Err(ApiError::forbidden("observers may only read")),
                UserKind::User => Err(ApiError::forbidden("no admin API access for this user")),
            }
        })
    }
}

/// A JSON request body, taken only as `Content-Type: application/json`
/// (415 otherwise): a cross-site form (`text/plain`, urlencoded, multipart)
/// cannot make an admin write with a browser's cached credentials.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let request = request.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            if !is_json(&request) {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "admin writes take Content-Type: application/json",
                )
                .into());
            }
            let body = web::Json::<T>::from_request(&request, &mut payload).await?;
            Ok(JsonBody(body.into_inner()))
        })
    }
}

/// An admin's write and its JSON body. The body is read only after the
/// caller is known to be an admin: actix extracts a handler's arguments
/// together, so a separate `web::Json` would buffer a large body for a
/// caller with wrong credentials.
pub struct AdminJson<T>(pub AdminUser, pub T);

impl<T: DeserializeOwned + 'static> FromRequest for AdminJson<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let request = request.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let caller = AdminUser::from_request(&request, &mut Payload::None).await?;
            let JsonBody(body) = JsonBody::<T>::from_request(&request, &mut payload).await?;
            Ok(AdminJson(caller, body))
        })
    }
}
