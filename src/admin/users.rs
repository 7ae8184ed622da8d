//! `/api/v1/users` and `/api/v1/users/{login}`.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Map, Value};

use super::auth::{AdminUser, ObserverUser};
use super::{page_bounds, reload_policy, tokens, Page};
use crate::domain::validate;
use crate::domain::UserKind;
use crate::http::AppState;
use crate::http::{ApiError, ErrorBody};
use crate::password;
use crate::store::users::{self, NewUser, UserChanges, UserFilter, UserRow};
use crate::store::{audit, sessions};

/// Deserialises a present field, `null` included, as `Some(..)`; with
/// `#[serde(default)]` an absent field stays `None`.
pub fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `"token": "<clear>"` keeps that token; `"token": true` generates one.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum TokenValue {
    Generate(bool),
    Given(String),
}

/// The user fields of SPEC §1, as POST (create), PATCH (absent = unchanged;
/// `null` clears `password`, `token`, `expires_at`, `max_sessions`) and the
/// import take them.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    /// 1–64 characters of `A-Za-z0-9._@-`; required to create, renames on PATCH.
    pub login: Option<String>,
    /// Stored as a bcrypt hash only; `null` or `""` = no password.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub password: Option<Option<String>>,
    /// `user` (default), `observer` or `admin`.
    pub kind: Option<String>,
    pub comment: Option<String>,
    /// A clear token to keep (stored as SHA-256), or `true` to generate one
    /// (returned once, in the answer). On PATCH it replaces the user's tokens;
    /// `null` removes them.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>, example = json!("8732684ydbeb8"))]
    pub token: Option<Option<TokenValue>>,
    /// IP addresses or CIDR networks (IPv4 or IPv6) bound to the user.
    pub ips: Option<Vec<String>>,
    pub stb: Option<String>,
    /// RFC 3339; after it the account may not play. `null` = never.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Option<String>>,
    /// Concurrent sessions, ≥ 0; `null` = unlimited.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>)]
    pub max_sessions: Option<Option<i64>>,
    /// Package names (must exist); empty = every stream.
    pub packages: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

/// A user as answered; `token` only right after one was generated.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserAnswer {
    #[serde(flatten)]
    pub user: UserRow,
    /// The generated clear token, shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// The validated input (passwords still clear: hashed by the caller).
#[derive(Debug, Default)]
pub struct Validated {
    pub changes: UserChanges,
    pub password: Option<Option<String>>,
    pub token: Option<Option<TokenValue>>,
    pub packages: Option<Vec<String>>,
    /// What the audit log records: fields and values, secrets as "[set]".
    pub audit: Map<String, Value>,
}

pub fn validate_input(input: UserInput, creating: bool) -> Result<Validated, ApiError> {
    let mut v = Validated::default();
    match (&input.login, creating) {
        (Some(login), _) => {
            v.changes.login = Some(validate::login("login", login)?.into_string());
            v.audit.insert("login".into(), json!(login));
        }
        (None, true) => return Err(ApiError::invalid("login", "login is required")),
        (None, false) => {}
    }
    if let Some(password) = input.password {
        let password = password.filter(|p| !p.is_empty());
        if password.as_ref().is_some_and(|p| p.len() > 72) {
            return Err(ApiError::invalid("password", "longer than 72 bytes"));
        }
        v.audit
            .insert("password".into(), json!(password.as_ref().map(|_| "[set]")));
        v.password = Some(password);
    }
    if let Some(kind) = &input.kind {
        v.changes.kind = Some(validate::kind(kind)?);
        v.audit.insert("kind".into(), json!(kind));
    }
    if let Some(comment) = &input.comment {
        v.changes.comment = Some(validate::text("comment", comment)?);
        v.audit.insert("comment".into(), json!(comment));
    }
    if let Some(token) = input.token {
        match &token {
            Some(TokenValue::Given(clear)) => {
                tokens::validate_clear(clear)?;
                v.audit.insert("token".into(), json!("[set]"));
            }
            Some(TokenValue::Generate(true)) => {
                v.audit.insert("token".into(), json!("[generated]"));
            }
            Some(TokenValue::Generate(false)) | None => {
                v.audit.insert("token".into(), Value::Null);
            }
        }
        v.token = Some(token.filter(|t| !matches!(t, TokenValue::Generate(false))));
    }
    if let Some(ips) = &input.ips {
        let networks = validate::networks("ips", ips)?;
        v.audit.insert(
            "ips".into(),
            json!(networks.iter().map(ToString::to_string).collect::<Vec<_>>()),
        );
        v.changes.ips = Some(networks);
    }
    if let Some(stb) = &input.stb {
        v.changes.stb = Some(validate::text("stb", stb)?);
        v.audit.insert("stb".into(), json!(stb));
    }
    if let Some(expires_at) = &input.expires_at {
        let at = expires_at
            .as_deref()
            .map(|text| validate::time("expires_at", text))
            .transpose()?;
        v.audit.insert("expires_at".into(), json!(at));
        v.changes.expires_at = Some(at);
    }
    if let Some(max_sessions) = input.max_sessions {
        let max = max_sessions.map(validate::max_sessions).transpose()?;
        v.audit.insert("max_sessions".into(), json!(max));
        v.changes.max_sessions = Some(max);
    }
    if let Some(packages) = input.packages {
        let mut names = Vec::with_capacity(packages.len());
        for name in packages {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        v.audit.insert("packages".into(), json!(names));
        v.packages = Some(names);
    }
    if let Some(enabled) = input.enabled {
        v.changes.enabled = Some(enabled);
        v.audit.insert("enabled".into(), json!(enabled));
    }
    Ok(v)
}

/// 422 `packages` when one of these names is not a package.
pub async fn check_packages<C: deadpool_postgres::GenericClient>(
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
    caller: AdminUser,
    state: web::Data<AppState>,
    body: web::Json<UserInput>,
) -> Result<HttpResponse, ApiError> {
    let v = validate_input(body.into_inner(), true)?;
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
        enabled: c.enabled.unwrap_or(true),
        packages: v.packages.clone().unwrap_or_default(),
    };
    let mut client = state.pool.get().await?;
    let transaction = client.transaction().await?;
    check_packages(&transaction, &user.packages).await?;
    let id = users::insert(&transaction, &user).await?;
    users::set_packages(&transaction, id, &user.packages).await?;
    let generated = match v.token.clone().flatten() {
        Some(token) => tokens::add(&transaction, id, token, "", None).await?,
        None => None,
    };
    audit::record(
        &transaction,
        caller.login(),
        "create",
        "user",
        &login,
        &Value::Object(v.audit),
    )
    .await?;
    let row = users::get(&transaction, &login)
        .await?
        .ok_or_else(ApiError::not_found)?;
    transaction.commit().await?;
    reload_policy(&state).await;
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
    caller: AdminUser,
    state: web::Data<AppState>,
    login: web::Path<String>,
    body: web::Json<UserInput>,
) -> Result<HttpResponse, ApiError> {
    let login = login.into_inner();
    let mut v = validate_input(body.into_inner(), false)?;
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
    let mut client = state.pool.get().await?;
    let transaction = client.transaction().await?;
    let id = users::lock_id(&transaction, &login)
        .await?
        .ok_or_else(|| ApiError::no_such("user", &login))?;
    if let Some(packages) = &v.packages {
        check_packages(&transaction, packages).await?;
        users::set_packages(&transaction, id, packages).await?;
    }
    users::update(&transaction, id, &v.changes).await?;
    let mut generated = None;
    if let Some(token) = v.token.clone() {
        crate::store::tokens::delete_all(&transaction, id).await?;
        if let Some(token) = token {
            generated = tokens::add(&transaction, id, token, "", None).await?;
        }
    }
    let new_login = v.changes.login.clone().unwrap_or(login.clone());
    audit::record(
        &transaction,
        caller.login(),
        "update",
        "user",
        &login,
        &Value::Object(v.audit),
    )
    .await?;
    let row = users::get(&transaction, &new_login)
        .await?
        .ok_or_else(ApiError::not_found)?;
    transaction.commit().await?;
    reload_policy(&state).await;
    Ok(HttpResponse::Ok().json(UserAnswer {
        user: row,
        token: generated,
    }))
}

#[utoipa::path(delete, path = "/api/v1/users/{login}", tag = "users",
    params(("login" = String, Path)),
    responses((status = 204, description = "deleted; the user's active sessions are ended (kicked)"),
              (status = 401), (status = 403), (status = 404, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn delete(
    caller: AdminUser,
    state: web::Data<AppState>,
    login: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let login = login.into_inner();
    let mut client = state.pool.get().await?;
    let transaction = client.transaction().await?;
    if !users::delete(&transaction, &login).await? {
        return Err(ApiError::no_such("user", &login));
    }
    audit::record(
        &transaction,
        caller.login(),
        "delete",
        "user",
        &login,
        &json!({}),
    )
    .await?;
    transaction.commit().await?;
    reload_policy(&state).await;
    let ended = sessions::end_all_for_user(&client, &login, "kicked").await?;
    state.engine.forget_user_sessions(&login);
    if ended > 0 {
        log::info!("user '{login}' deleted: {ended} active sessions ended");
    }
    Ok(HttpResponse::NoContent().finish())
}
