//! `/api/v1/users` and `/api/v1/users/{login}`.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::auth::{AdminJson, AdminUser, ObserverUser};
use super::{audited, page_bounds, tokens, Audit, Page};
use crate::domain::validate;
use crate::domain::UserKind;
use crate::http::AppState;
use crate::http::{ApiError, ErrorBody};
use crate::import::user_input::{validate_input, UserInput};
use crate::password;
use crate::store::packages as package_store;
use crate::store::sessions;
use crate::store::users::{self, NewUser, UserFilter, UserRow};

/// A user as answered; `token` only right after one was generated.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserAnswer {
    #[serde(flatten)]
    pub user: UserRow,
    /// The generated clear token, shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// 422 `packages` when one of these names is not a package.
pub async fn check_packages<C: crate::store::Db>(
    client: &C,
    packages: &[String],
) -> Result<(), ApiError> {
    let unknown = users::unknown_packages(client, packages).await?;
    match unknown.first() {
        None => Ok(()),
        Some(name) => Err(ApiError::invalid(
            "packages",
            format!("no such package: '{}'", crate::http::error::clip(name)),
        )),
    }
}

/// The field of a change that could take a user's admin powers away, in the
/// order a refusal names it: disabling, another kind, an expiry (in the past
/// or not: whether it already counts is for the database's clock to say).
pub fn demoting_field(
    enabled: Option<bool>,
    kind: Option<UserKind>,
    expires_at: Option<Option<DateTime<Utc>>>,
) -> Option<&'static str> {
    if enabled == Some(false) {
        Some("enabled")
    } else if kind.is_some_and(|kind| kind != UserKind::Admin) {
        Some("kind")
    } else if matches!(expires_at, Some(Some(_))) {
        Some("expires_at")
    } else {
        None
    }
}

/// 409: this write would leave no enabled, unexpired admin, and with that
/// nobody who can use the admin API.
pub fn last_admin(login: &str, field: &'static str) -> ApiError {
    let what = match field {
        "enabled" => "disabled",
        "kind" => "demoted",
        "expires_at" => "expired",
        _ => "deleted",
    };
    ApiError::conflict(
        field,
        format!(
            "'{}' is the last enabled admin and cannot be {what}: nobody could use the admin API; make another user an admin first",
            crate::http::error::clip(login)
        ),
    )
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserListQuery {
    /// Substring of the login or the comment (case-insensitive).
    pub q: Option<String>,
    /// `user`, `observer` or `admin`.
    pub kind: Option<String>,
    pub enabled: Option<bool>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    params(UserListQuery),
    responses((status = 200, body = Page<UserRow>), (status = 401), (status = 403), (status = 422, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn list(
    _caller: ObserverUser,
    state: web::Data<AppState>,
    query: web::Query<UserListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let (limit, offset) = page_bounds(query.limit, query.offset)?;
    if let Some(kind) = &query.kind {
        validate::kind(kind)?;
    }
    let filter = UserFilter {
        q: query.q.filter(|q| !q.is_empty()),
        kind: query.kind,
        enabled: query.enabled,
    };
    let client = state.pool.get().await?;
    let (items, total) = users::list(&client, &filter, limit, offset).await?;
    Ok(HttpResponse::Ok().json(Page { items, total }))
}

#[utoipa::path(post, path = "/api/v1/users", tag = "users",
    request_body = UserInput,
    responses((status = 201, body = UserAnswer), (status = 400, body = ErrorBody), (status = 401), (status = 403),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn create(
    AdminJson(caller, input): AdminJson<UserInput>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let v = validate_input(input, true)?;
    let login = v.changes.login.clone().expect("validated");
    let password_hash = match v.password.clone().flatten() {
        Some(password) => Some(
            password::hash(&password)
                .await
                .map_err(ApiError::internal)?,
        ),
        None => None,
    };
    let c = &v.changes;
    let user = NewUser {
        login: login.clone(),
        password_hash,
        kind: c.kind.unwrap_or(UserKind::User),
        comment: c.comment.clone().unwrap_or_default(),
        ips: c.ips.clone().unwrap_or_default(),
        stb: c.stb.clone().unwrap_or_default(),
        expires_at: c.expires_at.flatten(),
        max_sessions: c.max_sessions.flatten(),
        max_devices: c.max_devices.flatten(),
        enabled: c.enabled.unwrap_or(true),
        packages: v.packages.clone().unwrap_or_default(),
        countries: c.countries.clone().unwrap_or_default(),
    };
    let (row, generated) = audited(&state, &caller, async |transaction| {
        if !user.packages.is_empty() {
            package_store::lock_assignments(transaction).await?;
        }
        check_packages(transaction, &user.packages).await?;
        let id = users::insert(transaction, &user).await?;
        users::set_packages(transaction, id, &user.packages).await?;
        let generated = match v.token.clone().flatten() {
            Some(token) => tokens::add(transaction, id, token, "", None).await?,
            None => None,
        };
        let row = users::get(transaction, &login)
            .await?
            .ok_or_else(ApiError::not_found)?;
        let entry = Audit::policy("create", "user", login.as_str(), Value::Object(v.audit));
        Ok(((row, generated), entry))
    })
    .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/users/{login}")))
        .json(UserAnswer {
            user: row,
            token: generated,
        }))
}

#[utoipa::path(get, path = "/api/v1/users/{login}", tag = "users",
    params(("login" = String, Path)),
    responses((status = 200, body = UserRow), (status = 401), (status = 403), (status = 404, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn get(
    _caller: ObserverUser,
    state: web::Data<AppState>,
    login: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    let user = users::get(&client, &login)
        .await?
        .ok_or_else(|| ApiError::no_such("user", &login))?;
    Ok(HttpResponse::Ok().json(user))
}

#[utoipa::path(patch, path = "/api/v1/users/{login}", tag = "users",
    params(("login" = String, Path)),
    request_body = UserInput,
    responses((status = 200, body = UserAnswer), (status = 400, body = ErrorBody), (status = 401), (status = 403),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn update(
    AdminJson(caller, input): AdminJson<UserInput>,
    state: web::Data<AppState>,
    login: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let login = login.into_inner();
    let mut v = validate_input(input, false)?;
    if let Some(password) = v.password.clone() {
        v.changes.password_hash = Some(match password {
            Some(password) => Some(
                password::hash(&password)
                    .await
                    .map_err(ApiError::internal)?,
            ),
            None => None,
        });
    }
    let demoting = demoting_field(v.changes.enabled, v.changes.kind, v.changes.expires_at);
    let (row, generated) = audited(&state, &caller, async |transaction| {
        // Locks in one order everywhere (admins, package assignments, the
        // user's row), so that concurrent writes wait instead of deadlocking.
        if demoting.is_some() {
            users::lock_admins(transaction).await?;
        }
        if v.packages.is_some() {
            package_store::lock_assignments(transaction).await?;
        }
        let id = users::lock_id(transaction, &login)
            .await?
            .ok_or_else(|| ApiError::no_such("user", &login))?;
        if let Some(packages) = &v.packages {
            check_packages(transaction, packages).await?;
            users::set_packages(transaction, id, packages).await?;
        }
        users::update(transaction, id, &v.changes).await?;
        if let Some(field) = demoting {
            // The caller is an admin, so one existed before this write.
            if users::live_admins(transaction).await?.is_empty() {
                return Err(last_admin(&login, field));
            }
        }
        let mut generated = None;
        if let Some(token) = v.token.clone() {
            crate::store::tokens::delete_all(transaction, id).await?;
            if let Some(token) = token {
                generated = tokens::add(transaction, id, token, "", None).await?;
            }
        }
        let new_login = v.changes.login.as_deref().unwrap_or(&login);
        let row = users::get(transaction, new_login)
            .await?
            .ok_or_else(ApiError::not_found)?;
        let entry = Audit::policy("update", "user", login.as_str(), Value::Object(v.audit));
        Ok(((row, generated), entry))
    })
    .await?;
    Ok(HttpResponse::Ok().json(UserAnswer {
        user: row,
        token: generated,
    }))
}

#[utoipa::path(delete, path = "/api/v1/users/{login}", tag = "users",
    params(("login" = String, Path)),
    responses((status = 204, description = "deleted; the user's active sessions are ended (kicked)"),
              (status = 401), (status = 403), (status = 404, body = ErrorBody),
              (status = 409, description = "the last enabled admin", body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn delete(
    caller: AdminUser,
    state: web::Data<AppState>,
    login: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let login = login.into_inner();
    audited(&state, &caller, async |transaction| {
        users::lock_admins(transaction).await?;
        if !users::delete(transaction, &login).await? {
            return Err(ApiError::no_such("user", &login));
        }
        if users::live_admins(transaction).await?.is_empty() {
            return Err(last_admin(&login, "login"));
        }
        Ok((
            (),
            Audit::policy("delete", "user", login.as_str(), json!({})),
        ))
    })
    .await?;
    let client = state.pool.get().await?;
    let ended = sessions::end_all_for_user(&client, &login, "kicked").await?;
    state
        .metrics
        .sessions_ended("kicked", ended.min(u32::MAX.into()) as u32);
    state.engine.forget_user_sessions(&login);
    if ended > 0 {
        log::info!("user '{login}' deleted: {ended} active sessions ended");
    }
    Ok(HttpResponse::NoContent().finish())
}
