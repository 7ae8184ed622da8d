//! `/api/v1/users/{login}/tokens`: several per user, stored as SHA-256 only;
//! the clear value is answered once, at creation.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::{AdminJson, AdminUser, ObserverUser};
use super::{audited, Audit, Page, PageQuery};
use crate::domain::token::random_secret;
use crate::domain::{validate, TokenScope};
use crate::http::ApiError;
use crate::http::AppState;
use crate::http::ErrorBody;
use crate::import::user_input::{present, TokenValue};
use crate::store::tokens::{self, TokenRow};
use crate::store::{users, StoreError};

/// Stores a `play` token (a user's token as POST/PATCH /users set it);
/// returns the clear value when it was generated here.
pub async fn add<C: crate::store::Db>(
    client: &C,
    user_id: i64,
    token: TokenValue,
    label: &str,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Option<String>, StoreError> {
    let (clear, generated) = match token {
        TokenValue::Given(clear) => (clear, false),
        TokenValue::Generate(_) => (random_secret(), true),
    };
    tokens::insert(client, user_id, &clear, label, expires_at, TokenScope::Play).await?;
    Ok(generated.then_some(clear))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenInput {
    /// A clear token to keep, or `true` / absent to generate one.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub token: Option<Option<TokenValue>>,
    pub label: Option<String>,
    /// `play` (default: playback only) or `api` (also an admin-API Bearer
    /// credential, for observers and admins).
    pub scope: Option<String>,
    /// RFC 3339; `null` = never expires.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<String>,
}

/// A created token: the clear value appears here and nowhere else, ever.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub row: TokenRow,
    pub token: String,
}

async fn user_id<C: crate::store::Db>(client: &C, login: &str) -> Result<i64, ApiError> {
    users::lock_id(client, login)
        .await?
        .ok_or_else(|| ApiError::no_such("user", login))
}

#[utoipa::path(get, path = "/api/v1/users/{login}/tokens", tag = "tokens",
    params(("login" = String, Path), PageQuery),
    responses((status = 200, body = Page<TokenRow>, description = "the user's tokens, without clear values"),
              (status = 401), (status = 403), (status = 404, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn list(
    _caller: ObserverUser,
    state: web::Data<AppState>,
    login: web::Path<String>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (limit, offset) = page.bounds()?;
    let mut client = state.pool.get().await?;
    let transaction = client.transaction().await?;
    let id = user_id(&transaction, &login).await?;
    let (items, total) = tokens::list(&transaction, id, limit, offset).await?;
    transaction.commit().await?;
    Ok(HttpResponse::Ok().json(Page { items, total }))
}

#[utoipa::path(post, path = "/api/v1/users/{login}/tokens", tag = "tokens",
    params(("login" = String, Path)),
    request_body = TokenInput,
    responses((status = 201, body = CreatedToken), (status = 400, body = ErrorBody), (status = 401), (status = 403),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn create(
    AdminJson(caller, input): AdminJson<TokenInput>,
    state: web::Data<AppState>,
    login: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let token = match input.token.flatten() {
        Some(TokenValue::Given(clear)) => {
            validate::token("token", &clear)?;
            clear
        }
        Some(TokenValue::Generate(_)) | None => random_secret(),
    };
    let label = validate::text("label", input.label.as_deref().unwrap_or(""))?;
    let scope = input
        .scope
        .as_deref()
        .map(validate::token_scope)
        .transpose()?
        .unwrap_or_default();
    let expires_at = input
        .expires_at
        .as_deref()
        .map(|at| validate::time("expires_at", at))
        .transpose()?;
    let row = audited(&state, &caller, async |transaction| {
        let id = user_id(transaction, &login).await?;
        let row = tokens::insert(transaction, id, &token, &label, expires_at, scope).await?;
        let changes = json!({"user": *login, "label": label, "expires_at": expires_at, "scope": scope.as_str()});
        let entry = Audit::policy("create", "token", format!("{login}/{}", row.id), changes);
        Ok((row, entry))
    })
    .await?;
    Ok(HttpResponse::Created().json(CreatedToken { row, token }))
}

#[utoipa::path(delete, path = "/api/v1/users/{login}/tokens/{id}", tag = "tokens",
    params(("login" = String, Path), ("id" = i64, Path)),
    responses((status = 204), (status = 401), (status = 403), (status = 404, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn delete(
    caller: AdminUser,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (login, token_id) = path.into_inner();
    let token_id: i64 = token_id
        .parse()
        .map_err(|_| ApiError::no_such("token", &token_id))?;
    audited(&state, &caller, async |transaction| {
        let id = user_id(transaction, &login).await?;
        if !tokens::delete(transaction, id, token_id).await? {
            return Err(ApiError::no_such("token", &token_id.to_string()));
        }
        let object = format!("{login}/{token_id}");
        Ok((
            (),
            Audit::policy("delete", "token", object, json!({"user": login})),
        ))
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
