//! `POST /api/v1/import`: a JSON array of users (fields as in POST /users),
//! created or updated by login in one transaction, set-based (see
//! `store::user_import`): 100 000 users take seconds, not minutes.

use std::collections::HashSet;

use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::json;

use super::auth::AdminJson;
use super::users::{check_packages, demoting_field, last_admin};
use super::{audited, Audit};
use crate::http::ApiError;
use crate::http::AppState;
use crate::http::ErrorBody;
use crate::import::user_input::{validate_input, TokenValue, UserInput};

use crate::store::packages as package_store;
use crate::store::user_import::{self, ImportUser};
use crate::store::users as user_store;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportAnswer {
    pub created: u64,
    pub updated: u64,
}

/// An error about one item names it: `item 12 ('bob'): …`.
fn at(index: usize, login: &str, error: ApiError) -> ApiError {
    ApiError {
        message: format!(
            "item {index} ('{}'): {}",
            crate::http::error::clip(login),
            error.message
        ),
        ..error
    }
}

/// 409 naming the first item that takes away an admin's powers.
fn no_admin_left(users: &[ImportUser], admins: &[String]) -> ApiError {
    users
        .iter()
        .enumerate()
        .filter(|(_, u)| admins.contains(&u.login))
        .find_map(|(index, u)| {
            demoting_field(u.enabled, u.kind, u.expires_at)
                .map(|field| at(index, &u.login, last_admin(&u.login, field)))
        })
        .unwrap_or_else(|| ApiError::conflict("login", "the import would leave no enabled admin"))
}

#[utoipa::path(post, path = "/api/v1/import", tag = "import",
    request_body(content = Vec<UserInput>, description = "users as in POST /users; `token: true` is not accepted here"),
    responses((status = 200, body = ImportAnswer), (status = 400, body = ErrorBody), (status = 401), (status = 403),
              (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn import(
    AdminJson(caller, inputs): AdminJson<Vec<UserInput>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let started = std::time::Instant::now();
    let mut users = Vec::with_capacity(inputs.len());
    let mut seen = HashSet::with_capacity(inputs.len());
    let mut packages = HashSet::new();
    let mut passwords = Vec::new();
    for (index, input) in inputs.into_iter().enumerate() {
        let login = input.login.clone().unwrap_or_default();
        let v = validate_input(input, true).map_err(|e| at(index, &login, e.into()))?;
        if !seen.insert(login.clone()) {
            return Err(at(
                index,
                &login,
                ApiError::invalid("login", "the login appears twice in the import"),
            ));
        }
        let token = match v.token.flatten() {
            Some(TokenValue::Given(clear)) => Some(clear),
            Some(TokenValue::Generate(_)) => {
                return Err(at(
                    index,
                    &login,
                    ApiError::invalid("token", "an import takes given tokens only; generate them with POST /users/{login}/tokens"),
                ))
            }
            None => None,
        };
        if let Some(names) = &v.packages {
            packages.extend(names.iter().cloned());
        }
        let set_password = v.password.is_some();
        if let Some(Some(password)) = v.password {
            passwords.push((users.len(), password));
        }
        let c = v.changes;
        users.push(ImportUser {
            login,
            password_hash: set_password.then_some(None),
            kind: c.kind,
            comment: c.comment,
            ips: c.ips,
            stb: c.stb,
            expires_at: c.expires_at,
            max_sessions: c.max_sessions,
            max_devices: c.max_devices,
            enabled: c.enabled,
            countries: c.countries,
            packages: v.packages,
            token,
        });
    }
    // bcrypt is slow by design: the passwords of an import are hashed on the
    // blocking pool, spread over the cores.
    if !passwords.is_empty() {
        let hashed = web::block(move || {
            std::thread::scope(|scope| {
                let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
                let chunk = passwords.len().div_ceil(threads);
                let workers: Vec<_> = passwords
                    .chunks(chunk)
                    .map(|chunk| {
                        scope.spawn(move || {
                            chunk
                                .iter()
                                .map(|(index, password)| {
                                    crate::password::hash_blocking(password)
                                        .map(|hash| (*index, hash))
                                })
                                .collect::<Result<Vec<_>, _>>()
                        })
                    })
                    .collect();
                workers
                    .into_iter()
                    .map(|worker| worker.join().expect("bcrypt worker"))
                    .collect::<Result<Vec<_>, _>>()
            })
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
        for (index, hash) in hashed.into_iter().flatten() {
            users[index].password_hash = Some(Some(hash));
        }
    }

    let validated = started.elapsed();
    let packages: Vec<String> = packages.into_iter().collect();
    let outcome = audited(&state, &caller, async |transaction| {
        // The locks of PATCH /users, in the same order.
        user_store::lock_admins(transaction).await?;
        package_store::lock_assignments(transaction).await?;
        let admins = user_store::live_admins(transaction).await?;
        check_packages(transaction, &packages).await?;
        let outcome = user_import::import(transaction, &users).await?;
        if user_store::live_admins(transaction).await?.is_empty() {
            // Nothing is written: the error rolls the whole import back.
            return Err(no_admin_left(&users, &admins));
        }
        if let Some(login) = &outcome.token_conflict {
            return Err(ApiError::conflict(
                "token",
                format!(
                    "a token of '{}' already belongs to another user",
                    crate::http::error::clip(login)
                ),
            ));
        }
        let changes =
            json!({"created": outcome.created, "updated": outcome.updated, "users": users.len()});
        Ok((outcome, Audit::policy("import", "users", "import", changes)))
    })
    .await?;
    let committed = started.elapsed();
    log::info!(
        "import by '{}': {} created, {} updated in {:?} (validated {:?}, committed {:?})",
        caller.login(),
        outcome.created,
        outcome.updated,
        started.elapsed(),
        validated,
        committed,
    );
    Ok(HttpResponse::Ok().json(ImportAnswer {
        created: outcome.created,
        updated: outcome.updated,
    }))
}
