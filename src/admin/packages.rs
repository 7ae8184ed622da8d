//! `/api/v1/packages` and `/api/v1/packages/{name}`.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::auth::{AdminJson, AdminUser, ObserverUser};
use super::{audited, Audit, Page, PageQuery};
use crate::domain::validate;
use crate::http::ApiError;
use crate::http::AppState;
use crate::http::ErrorBody;

use crate::import::user_input::json_value;
use crate::store::packages::{self, PackageChanges, PackageRow};

/// A package as POST (create) and PATCH (absent = unchanged) take it.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PackageInput {
    /// Required to create; renames on PATCH.
    pub name: Option<String>,
    pub comment: Option<String>,
    /// Exact stream names or globs with `*` (`sport/*`, `*_hd`).
    pub streams: Option<Vec<String>>,
    /// Active sessions on the streams matching this package (all users and
    /// anonymous viewers together) at most, ≥ 0; beyond it a start is
    /// denied `stream_full`. `null` = no cap (PATCH: clears it).
    #[serde(default, deserialize_with = "json_value")]
    #[schema(value_type = Option<i32>, minimum = 0)]
    pub max_viewers: Option<Value>,
}

struct ValidPackage {
    changes: PackageChanges,
    audit: Map<String, Value>,
}

fn validate_input(input: PackageInput) -> Result<ValidPackage, ApiError> {
    let mut audit = Map::new();
    let name = input
        .name
        .map(|name| validate::package_name("name", &name))
        .transpose()?;
    if let Some(name) = &name {
        audit.insert("name".into(), json!(name));
    }
    let comment = input
        .comment
        .map(|c| validate::text("comment", &c))
        .transpose()?;
    if let Some(comment) = &comment {
        audit.insert("comment".into(), json!(comment));
    }
    let streams = input.streams.map(|s| validate::patterns(&s)).transpose()?;
    if let Some(streams) = &streams {
        audit.insert("streams".into(), json!(streams));
    }
    let max_viewers = input
        .max_viewers
        .map(|max| validate::limit_json("max_viewers", &max))
        .transpose()?;
    if let Some(max) = max_viewers {
        audit.insert("max_viewers".into(), json!(max));
    }
    Ok(ValidPackage {
        changes: PackageChanges {
            name,
            comment,
            streams,
            max_viewers,
        },
        audit,
    })
}

#[utoipa::path(get, path = "/api/v1/packages", tag = "packages", params(PageQuery),
    responses((status = 200, body = Page<PackageRow>), (status = 401), (status = 403)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn list(
    _caller: ObserverUser,
    state: web::Data<AppState>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (limit, offset) = page.bounds()?;
    let client = state.pool.get().await?;
    let (items, total) = packages::list(&client, limit, offset).await?;
    Ok(HttpResponse::Ok().json(Page { items, total }))
}

#[utoipa::path(post, path = "/api/v1/packages", tag = "packages", request_body = PackageInput,
    responses((status = 201, body = PackageRow), (status = 400, body = ErrorBody), (status = 401), (status = 403),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn create(
    AdminJson(caller, input): AdminJson<PackageInput>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let v = validate_input(input)?;
    let c = &v.changes;
    let name = c
        .name
        .clone()
        .ok_or_else(|| ApiError::invalid("name", "name is required"))?;
    let row = audited(&state, &caller, async |transaction| {
        packages::insert(
            transaction,
            &name,
            c.comment.as_deref().unwrap_or(""),
            c.streams.as_deref().unwrap_or(&[]),
            c.max_viewers.flatten(),
        )
        .await?;
        let row = packages::get(transaction, &name)
            .await?
            .ok_or_else(ApiError::not_found)?;
        let entry = Audit::policy("create", "package", name.as_str(), Value::Object(v.audit));
        Ok((row, entry))
    })
    .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/packages/{name}")))
        .json(row))
}

#[utoipa::path(get, path = "/api/v1/packages/{name}", tag = "packages", params(("name" = String, Path)),
    responses((status = 200, body = PackageRow), (status = 401), (status = 403), (status = 404, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn get(
    _caller: ObserverUser,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    let row = packages::get(&client, &name)
        .await?
        .ok_or_else(|| ApiError::no_such("package", &name))?;
    Ok(HttpResponse::Ok().json(row))
}

#[utoipa::path(patch, path = "/api/v1/packages/{name}", tag = "packages", params(("name" = String, Path)),
    request_body = PackageInput,
    responses((status = 200, body = PackageRow), (status = 400, body = ErrorBody), (status = 401), (status = 403),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn update(
    AdminJson(caller, input): AdminJson<PackageInput>,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    let v = validate_input(input)?;
    let row = audited(&state, &caller, async |transaction| {
        if !packages::update(transaction, &name, &v.changes).await? {
            return Err(ApiError::no_such("package", &name));
        }
        let new_name = v.changes.name.as_deref().unwrap_or(&name);
        let row = packages::get(transaction, new_name)
            .await?
            .ok_or_else(ApiError::not_found)?;
        let entry = Audit::policy("update", "package", name.as_str(), Value::Object(v.audit));
        Ok((row, entry))
    })
    .await?;
    Ok(HttpResponse::Ok().json(row))
}

/// How many of the users a refused package delete names.
const NAMED_USERS: i64 = 10;

#[utoipa::path(delete, path = "/api/v1/packages/{name}", tag = "packages", params(("name" = String, Path)),
    responses((status = 204, description = "deleted; its users keep their other packages"), (status = 401), (status = 403),
              (status = 404, body = ErrorBody),
              (status = 409, description = "the only package of some users (named in `users`, at most 10)", body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn delete(
    caller: AdminUser,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    audited(&state, &caller, async |transaction| {
        // A user with no package may watch every stream: deleting someone's
        // only package would grant them everything. Checked under the lock
        // every package assignment takes, so none slips in meanwhile.
        packages::lock_assignments(transaction).await?;
        let (users, total) = packages::sole_users(transaction, &name, NAMED_USERS).await?;
        if total > 0 {
            return Err(sole_package(&name, users, total));
        }
        if !packages::delete(transaction, &name).await? {
            return Err(ApiError::no_such("package", &name));
        }
        Ok((
            (),
            Audit::policy("delete", "package", name.as_str(), json!({})),
        ))
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// 409 naming (some of) the users whose only package this is.
fn sole_package(name: &str, users: Vec<String>, total: i64) -> ApiError {
    let mut named = users.join(", ");
    if total > users.len() as i64 {
        named.push_str(&format!(" and {} more", total - users.len() as i64));
    }
    let whom = if total == 1 {
        "1 user".to_string()
    } else {
        format!("{total} users")
    };
    ApiError::conflict(
        "name",
        format!(
            "package '{}' is the only package of {whom} ({named}); with no package left they could watch every stream: reassign them first",
            crate::http::error::clip(name)
        ),
    )
    .about_users(users)
}
