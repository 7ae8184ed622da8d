//! The admin REST API under `/api/v1` (SPEC §4): one module per resource,
//! authentication and roles in the `auth` extractors, every SQL statement in
//! `store/`. A write runs in one transaction with its audit entry, then the
//! local policy view is reloaded before answering, so the change is in force
//! at the next decision on this replica (the others reload on NOTIFY).

pub mod access_rules;
pub mod audit;
pub mod auth;
pub mod import;
pub mod ip_rules;
pub mod links;
pub mod login;
pub mod openapi;
pub mod packages;
pub mod sessions;
pub mod signing_keys;
pub mod stats;
pub mod streamers;
pub mod timeline;
pub mod tokens;
pub mod users;
pub mod webhooks;

pub use openapi::ApiDoc;

use actix_web::{web, HttpRequest};
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::audit as audit_log;
use auth::AdminUser;

use crate::http::ApiError;
use crate::http::AppState;

/// Request bodies of the admin API (the import has its own, larger limit).
const MAX_JSON_BYTES: usize = 64 * 1024;
/// `POST /api/v1/import`: 100 000 users with tokens are about 10 MB.
pub const MAX_IMPORT_BYTES: usize = 256 * 1024 * 1024;
const DEFAULT_PAGE: i64 = 100;
const MAX_PAGE: i64 = 1000;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .wrap(actix_web::middleware::from_fn(login::no_browser_challenge))
            .app_data(json_config(MAX_JSON_BYTES))
            .app_data(query_config())
            .route(
                "/openapi.json",
                web::get().to(crate::http::openapi::openapi_json),
            )
            .route("/users", web::get().to(users::list))
            .route("/users", web::post().to(users::create))
            .route("/users/{login}", web::get().to(users::get))
            .route("/users/{login}", web::patch().to(users::update))
            .route("/users/{login}", web::delete().to(users::delete))
            .route("/users/{login}/tokens", web::get().to(tokens::list))
            .route("/users/{login}/tokens", web::post().to(tokens::create))
            .route(
                "/users/{login}/tokens/{id}",
                web::delete().to(tokens::delete),
            )
            .route("/packages", web::get().to(packages::list))
            .route("/packages", web::post().to(packages::create))
            .route("/packages/{name}", web::get().to(packages::get))
            .route("/packages/{name}", web::patch().to(packages::update))
            .route("/packages/{name}", web::delete().to(packages::delete))
            .route("/ip-rules", web::get().to(ip_rules::list))
            .route("/ip-rules", web::post().to(ip_rules::create))
            .route("/ip-rules/{id}", web::get().to(ip_rules::get))
            .route("/ip-rules/{id}", web::patch().to(ip_rules::update))
            .route("/ip-rules/{id}", web::delete().to(ip_rules::delete))
            .route("/access-rules", web::get().to(access_rules::list))
            .route("/access-rules", web::post().to(access_rules::create))
            .route("/access-rules/{id}", web::get().to(access_rules::get))
            .route("/access-rules/{id}", web::patch().to(access_rules::update))
            .route("/access-rules/{id}", web::delete().to(access_rules::delete))
            .route("/links", web::post().to(links::issue))
            .route("/signing-keys", web::get().to(signing_keys::list))
            .route("/signing-keys", web::post().to(signing_keys::create))
            .route("/signing-keys/{id}", web::get().to(signing_keys::get))
            .route("/signing-keys/{id}", web::patch().to(signing_keys::update))
            .route("/signing-keys/{id}", web::delete().to(signing_keys::delete))
            .route("/webhooks", web::get().to(webhooks::list))
            .route("/webhooks", web::post().to(webhooks::create))
            .route("/webhooks/{id}", web::get().to(webhooks::get))
            .route("/webhooks/{id}", web::patch().to(webhooks::update))
            .route("/webhooks/{id}", web::delete().to(webhooks::delete))
            .route(
                "/webhooks/{id}/deliveries",
                web::get().to(webhooks::deliveries),
            )
            .route("/webhooks/{id}/test", web::post().to(webhooks::test))
            .route("/sessions", web::get().to(sessions::list))
            .route("/sessions/{id}", web::get().to(sessions::get))
            .route("/sessions/{id}", web::delete().to(sessions::kick))
            .route("/streamers", web::get().to(streamers::list))
            .route("/streamers", web::post().to(streamers::create))
            .route("/streamers/{name}", web::get().to(streamers::get))
            .route("/streamers/{name}", web::patch().to(streamers::update))
            .route("/streamers/{name}", web::delete().to(streamers::delete))
            .route("/streamers/{name}/calls", web::get().to(streamers::calls))
            .route("/streamers/{name}/test", web::post().to(streamers::test))
            .route("/audit", web::get().to(audit::list))
            .route("/stats/streams", web::get().to(stats::streams))
            .route("/stats/countries", web::get().to(stats::countries))
            .route("/stats/denials", web::get().to(stats::denials))
            .route("/stats/users/{login}", web::get().to(stats::user))
            .route("/stats/timeline", web::get().to(timeline::timeline))
            .route("/login", web::post().to(login::login))
            .route("/login", web::get().to(login::current))
            .route("/logout", web::post().to(login::logout))
            .service(
                web::resource("/import")
                    .app_data(json_config(MAX_IMPORT_BYTES))
                    .route(web::post().to(import::import)),
            ),
    );
}

/// Malformed JSON → 400 with a one-line reason (never actix's plain text).
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .content_type_required(false)
        .error_handler(|error, _request: &HttpRequest| {
            let status = match &error {
                actix_web::error::JsonPayloadError::Overflow { .. }
                | actix_web::error::JsonPayloadError::OverflowKnownLength { .. } => {
                    actix_web::http::StatusCode::PAYLOAD_TOO_LARGE
                }
                _ => actix_web::http::StatusCode::BAD_REQUEST,
            };
            ApiError::new(status, format!("invalid JSON body: {error}")).into()
        })
}

fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|error, _request: &HttpRequest| {
        ApiError::bad_request(format!("invalid query string: {error}")).into()
    })
}

/// `?limit=&offset=`: default 100, at most 1000 (larger limits are capped).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1–1000 (default 100; larger values are capped at 1000).
    pub limit: Option<i64>,
    /// Items to skip (default 0).
    pub offset: Option<i64>,
}

impl PageQuery {
    /// (limit, offset), validated.
    pub fn bounds(&self) -> Result<(i64, i64), ApiError> {
        page_bounds(self.limit, self.offset)
    }
}

/// (limit, offset) of a list request, validated; for query types that carry
/// their own filters next to `limit` and `offset`.
pub fn page_bounds(limit: Option<i64>, offset: Option<i64>) -> Result<(i64, i64), ApiError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if limit < 1 {
        return Err(ApiError::invalid("limit", "limit must be at least 1"));
    }
    let offset = offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::invalid("offset", "offset must not be negative"));
    }
    Ok((limit.min(MAX_PAGE), offset))
}

/// (from, to), each where given.
pub type TimeWindow = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// `?from=&to=` as given (RFC 3339, each optional), `from` before `to`
/// when both are: the window of a list (sessions, audit) or, with its
/// defaults, of the statistics.
pub fn time_window(from: &Option<String>, to: &Option<String>) -> Result<TimeWindow, ApiError> {
    let time = |field, value: &Option<String>| {
        value
            .as_deref()
            .map(|value| crate::domain::validate::time(field, value))
            .transpose()
    };
    let (from, to) = (time("from", from)?, time("to", to)?);
    if let (Some(from), Some(to)) = (from, to) {
        if from >= to {
            return Err(ApiError::invalid("from", "must be before 'to'"));
        }
    }
    Ok((from, to))
}

/// Every list answer: one page and the total number of matching items.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
}

/// What an audited write records, and whether it changed the policy.
pub struct Audit {
    pub action: &'static str,
    pub object_type: &'static str,
    pub object_id: String,
    /// Fields and values; secrets as "[set]".
    pub changes: Value,
    /// Users, tokens, packages, IP rules or signing keys changed: this replica's view is
    /// brought up to date before the answer.
    pub changes_policy: bool,
}

impl Audit {
    /// A write to the policy tables.
    pub fn policy(
        action: &'static str,
        object_type: &'static str,
        object_id: impl Into<String>,
        changes: Value,
    ) -> Audit {
        Audit {
            action,
            object_type,
            object_id: object_id.into(),
            changes,
            changes_policy: true,
        }
    }

    /// A write that leaves the policy as it is (a kick).
    pub fn other(
        action: &'static str,
        object_type: &'static str,
        object_id: impl Into<String>,
        changes: Value,
    ) -> Audit {
        Audit {
            changes_policy: false,
            ..Audit::policy(action, object_type, object_id, changes)
        }
    }
}

/// Every admin write: `write` runs in one transaction together with the
/// audit entry it describes, and a policy change is in force on this
/// replica when the answer leaves.
pub async fn audited<T>(
    state: &AppState,
    caller: &AdminUser,
    write: impl AsyncFnOnce(&Transaction<'_>) -> Result<(T, Audit), ApiError>,
) -> Result<T, ApiError> {
    let mut client = state.pool.get().await?;
    let transaction = client.transaction().await?;
    let (answer, entry) = write(&transaction).await?;
    audit_log::record(
        &transaction,
        caller.login(),
        entry.action,
        entry.object_type,
        &entry.object_id,
        &entry.changes,
    )
    .await?;
    // Sessions a disable, a token deletion or a package change ended.
    let kicked = crate::store::sessions::ended_by_account_changes(&transaction).await?;
    transaction.commit().await?;
    state
        .metrics
        .sessions_ended("kicked", kicked.min(u32::MAX.into()) as u32);
    if entry.changes_policy {
        reload_policy(state).await;
    }
    Ok(answer)
}

/// After a write has committed: make it visible to this replica's decisions
/// before answering. A failed reload is not the client's problem (the
/// change is committed; NOTIFY and the periodic reload catch up).
pub async fn reload_policy(state: &AppState) {
    if let Err(e) = state.policy.reload().await {
        log::warn!("policy reload after an admin write failed: {e}");
    }
}
