//! `/api/v1/webhooks`, `/api/v1/webhooks/{id}`, its `deliveries` and its
//! `test` (SPEC §12): where session and limit events are POSTed. Admins
//! write, observers read. The secret (`whsec_<base64>`) is given or
//! generated, answered once by the POST that creates the webhook, and never
//! listed, audited or logged. Deliveries are the outbox worker's
//! (`outbox::webhooks`).

use std::fmt;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::auth::{AdminJson, AdminUser, ObserverUser};
use super::{audited, Audit, Page, PageQuery};
use crate::domain::validate::{self, clip};
use crate::http::ApiError;
use crate::http::AppState;
use crate::http::ErrorBody;
use crate::outbox::webhooks::{self as outbox, EVENT_TYPES, TEST_EVENT};
use crate::store::webhooks::{self, DeliveryRow, NewWebhook, WebhookChanges, WebhookRow};

/// A webhook as `POST /api/v1/webhooks` takes it. `Debug` hides the secret.
#[derive(Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// Required: http or https, with a host. Loopback and private
    /// addresses are allowed; link-local and cloud metadata ones are not
    /// (unless `PLAYGATE_WEBHOOK_ALLOW_LINK_LOCAL=true`).
    pub url: Option<String>,
    /// Required, at least one of `session.started`, `session.ended`,
    /// `limit.reached`.
    pub events: Option<Vec<String>>,
    /// `whsec_` and the base64 of 24–64 bytes; absent or `null`: generated
    /// (32 bytes). Answered once.
    pub secret: Option<String>,
    pub comment: Option<String>,
    /// Default `true`.
    pub enabled: Option<bool>,
}

impl fmt::Debug for WebhookInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookInput")
            .field("url", &self.url)
            .field("events", &self.events)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("comment", &self.comment)
            .field("enabled", &self.enabled)
            .finish()
    }
}

/// What `PATCH /api/v1/webhooks/{id}` changes; any other field is a 422
/// (the secret cannot be changed: create another webhook).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    /// A disabled webhook gets no new events.
    pub enabled: Option<bool>,
    /// `null` empties it.
    pub comment: Option<String>,
}

/// A created webhook: the secret appears here and nowhere else, ever.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub row: WebhookRow,
    /// Verify deliveries with it (Standard Webhooks); shown only now.
    pub secret: String,
}

impl fmt::Debug for CreatedWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedWebhook")
            .field("row", &self.row)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// The answer of `POST /api/v1/webhooks/{id}/test`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TestQueued {
    /// `webhook.test`.
    pub event_type: String,
    /// Attempts queued: 1.
    pub queued: i32,
}

fn webhook_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| ApiError::no_such("webhook", id))
}

/// A receiver's URL (see `outbox::webhooks::check_url`), normalised.
fn url(state: &AppState, value: &str) -> Result<String, ApiError> {
    outbox::check_url(value, &state.settings.webhooks)
        .map(|url| url.to_string())
        .map_err(|reason| ApiError::invalid("url", reason))
}

/// One or more known event types, each once, in the order of `EVENT_TYPES`.
fn events(given: &[String]) -> Result<Vec<String>, ApiError> {
    if given.is_empty() {
        return Err(ApiError::invalid(
            "events",
            "name at least one of session.started, session.ended, limit.reached",
        ));
    }
    if let Some(unknown) = given.iter().find(|e| !EVENT_TYPES.contains(&e.as_str())) {
        return Err(ApiError::invalid(
            "events",
            format!(
                "'{}' is not session.started, session.ended or limit.reached",
                clip(unknown)
            ),
        ));
    }
    Ok(EVENT_TYPES
        .iter()
        .filter(|known| given.iter().any(|e| e == *known))
        .map(|known| known.to_string())
        .collect())
}

/// After a webhook write: this replica's engine knows at once whether to
/// queue `limit.reached` (the others within a poll of their workers).
async fn refresh_subscriptions(state: &AppState) {
    if let Err(e) = state.webhooks.refresh().await {
        log::warn!("reading webhook subscriptions after a write failed: {e}");
    }
}

#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", params(PageQuery),
    responses((status = 200, body = Page<WebhookRow>, description = "the webhooks, oldest first; never their secrets"),
              (status = 401), (status = 403), (status = 422, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn list(
    _caller: ObserverUser,
    state: web::Data<AppState>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (limit, offset) = page.bounds()?;
    let client = state.pool.get().await?;
    let (items, total) = webhooks::list(&client, limit, offset).await?;
    Ok(HttpResponse::Ok().json(Page { items, total }))
}

#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", request_body = WebhookInput,
    responses((status = 201, body = CreatedWebhook, description = "the webhook, with its secret: the only time it is shown"),
              (status = 400, body = ErrorBody), (status = 401), (status = 403),
              (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn create(
    AdminJson(caller, input): AdminJson<WebhookInput>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let url = input
        .url
        .as_deref()
        .ok_or_else(|| ApiError::invalid("url", "url is required"))
        .and_then(|given| self::url(&state, given))?;
    let events = input
        .events
        .as_deref()
        .ok_or_else(|| {
            ApiError::invalid(
                "events",
                "events is required (session.started, session.ended, limit.reached)",
            )
        })
        .and_then(events)?;
    let comment = validate::text("comment", input.comment.as_deref().unwrap_or(""))?;
    let enabled = input.enabled.unwrap_or(true);
    let (secret, how) = match input.secret {
        Some(given) => {
            outbox::secret_key(&given).map_err(|reason| ApiError::invalid("secret", reason))?;
            (given, "[set]")
        }
        None => (outbox::generate_secret(), "[generated]"),
    };
    let row = audited(&state, &caller, async |transaction| {
        let new = NewWebhook {
            url: &url,
            events: &events,
            enabled,
            secret: &secret,
            comment: &comment,
        };
        let row = webhooks::insert(transaction, &new).await?;
        let changes = json!({
            "url": row.url, "events": row.events, "enabled": row.enabled,
            "comment": row.comment, "secret": how,
        });
        let entry = Audit::other("create", "webhook", row.id.to_string(), changes);
        Ok((row, entry))
    })
    .await?;
    refresh_subscriptions(&state).await;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/webhooks/{}", row.id)))
        .json(CreatedWebhook { row, secret }))
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path)),
    responses((status = 200, body = WebhookRow, description = "the webhook, never its secret"),
              (status = 401), (status = 403), (status = 404, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn get(
    _caller: ObserverUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let webhook = webhook_id(&id)?;
    let client = state.pool.get().await?;
    let row = webhooks::get(&client, webhook)
        .await?
        .ok_or_else(|| ApiError::no_such("webhook", &id))?;
    Ok(HttpResponse::Ok().json(row))
}

/// The changes of a PATCH body, validated; any other field is a 422.
struct Patch {
    url: Option<String>,
    events: Option<Vec<String>>,
    enabled: Option<bool>,
    comment: Option<String>,
}

fn patch(state: &AppState, body: Map<String, Value>) -> Result<Patch, ApiError> {
    let mut patch = Patch {
        url: None,
        events: None,
        enabled: None,
        comment: None,
    };
    for (name, value) in body {
        match (name.as_str(), value) {
            ("url", Value::String(given)) => patch.url = Some(url(state, &given)?),
            ("url", _) => return Err(ApiError::invalid("url", "url must be a string")),
            ("events", Value::Array(items)) => {
                let given: Option<Vec<String>> = items
                    .into_iter()
                    .map(|item| item.as_str().map(str::to_string))
                    .collect();
                let given = given.ok_or_else(|| {
                    ApiError::invalid("events", "events must be an array of strings")
                })?;
                patch.events = Some(events(&given)?);
            }
            ("events", _) => {
                return Err(ApiError::invalid(
                    "events",
                    "events must be an array of strings",
                ))
            }
            ("enabled", Value::Bool(on)) => patch.enabled = Some(on),
            ("enabled", _) => {
                return Err(ApiError::invalid(
                    "enabled",
                    "enabled must be true or false",
                ))
            }
            ("comment", Value::String(text)) => {
                patch.comment = Some(validate::text("comment", &text)?)
            }
            ("comment", Value::Null) => patch.comment = Some(String::new()),
            ("comment", _) => {
                return Err(ApiError::invalid("comment", "comment must be a string"))
            }
            ("secret", _) => {
                return Err(ApiError::invalid(
                    "secret",
                    "a webhook's secret cannot be changed: create another webhook, then delete this one",
                ))
            }
            (other, _) => {
                return Err(ApiError::new(
                    actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
                    format!(
                        "unknown field '{}': PATCH changes url, events, enabled and comment",
                        clip(other)
                    ),
                ))
            }
        }
    }
    Ok(patch)
}

#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path)),
    request_body = WebhookPatch,
    responses((status = 200, body = WebhookRow), (status = 400, body = ErrorBody), (status = 401), (status = 403),
              (status = 404, body = ErrorBody), (status = 415, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "an invalid field, the secret, or a field PATCH does not change")),
    security(("basic" = []), ("bearer" = [])))]
pub async fn update(
    AdminJson(caller, body): AdminJson<Map<String, Value>>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let webhook = webhook_id(&id)?;
    let patch = patch(&state, body)?;
    let mut audit = Map::new();
    if let Some(url) = &patch.url {
        audit.insert("url".into(), json!(url));
    }
    if let Some(events) = &patch.events {
        audit.insert("events".into(), json!(events));
    }
    if let Some(enabled) = patch.enabled {
        audit.insert("enabled".into(), json!(enabled));
    }
    if let Some(comment) = &patch.comment {
        audit.insert("comment".into(), json!(comment));
    }
    let row = audited(&state, &caller, async |transaction| {
        let changes = WebhookChanges {
            url: patch.url.as_deref(),
            events: patch.events.as_deref(),
            enabled: patch.enabled,
            comment: patch.comment.as_deref(),
        };
        let row = webhooks::update(transaction, webhook, &changes)
            .await?
            .ok_or_else(|| ApiError::no_such("webhook", &id))?;
        let entry = Audit::other("update", "webhook", id.as_str(), Value::Object(audit));
        Ok((row, entry))
    })
    .await?;
    refresh_subscriptions(&state).await;
    Ok(HttpResponse::Ok().json(row))
}

#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path)),
    responses((status = 204, description = "deleted, with its queued and past attempts"),
              (status = 401), (status = 403), (status = 404, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn delete(
    caller: AdminUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let webhook = webhook_id(&id)?;
    audited(&state, &caller, async |transaction| {
        let row = webhooks::delete(transaction, webhook)
            .await?
            .ok_or_else(|| ApiError::no_such("webhook", &id))?;
        let changes = json!({"url": row.url});
        Ok(((), Audit::other("delete", "webhook", id.as_str(), changes)))
    })
    .await?;
    refresh_subscriptions(&state).await;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = i64, Path), PageQuery),
    responses((status = 200, body = Page<DeliveryRow>, description = "the webhook's delivery attempts, newest first"),
              (status = 401), (status = 403), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn deliveries(
    _caller: ObserverUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let webhook = webhook_id(&id)?;
    let (limit, offset) = page.bounds()?;
    let client = state.pool.get().await?;
    if webhooks::get(&client, webhook).await?.is_none() {
        return Err(ApiError::no_such("webhook", &id));
    }
    let (items, total) = webhooks::deliveries(&client, webhook, limit, offset).await?;
    Ok(HttpResponse::Ok().json(Page { items, total }))
}

#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", tag = "webhooks", params(("id" = i64, Path)),
    request_body(content = Object, description = "`{}`"),
    description = "Queues a `webhook.test` event for this webhook alone (enabled or not), delivered, signed and retried like any other; its attempts show in `/deliveries`. `data`: `{\"webhook_id\", \"message\"}`.",
    responses((status = 202, body = TestQueued), (status = 400, body = ErrorBody), (status = 401), (status = 403),
              (status = 404, body = ErrorBody), (status = 415, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn test(
    AdminJson(caller, _body): AdminJson<Value>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let webhook = webhook_id(&id)?;
    let queued = audited(&state, &caller, async |transaction| {
        if webhooks::get(transaction, webhook).await?.is_none() {
            return Err(ApiError::no_such("webhook", &id));
        }
        let data = json!({"webhook_id": webhook, "message": "a test delivery from playgate"});
        let queued = webhooks::enqueue(transaction, TEST_EVENT, &data, Some(webhook)).await?;
        let changes = json!({"event_type": TEST_EVENT});
        Ok((
            queued,
            Audit::other("test", "webhook", id.as_str(), changes),
        ))
    })
    .await?;
    Ok(HttpResponse::Accepted().json(TestQueued {
        event_type: TEST_EVENT.to_string(),
        queued,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lists() {
        let given = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            events(&given(&[
                "limit.reached",
                "session.started",
                "limit.reached"
            ]))
            .unwrap(),
            given(&["session.started", "limit.reached"])
        );
        for bad in [&[][..], &["session.paused"], &["webhook.test"]] {
            let error = events(&given(bad)).unwrap_err();
            assert_eq!(error.status.as_u16(), 422);
        }
    }

    #[test]
    fn debug_hides_secrets() {
        let input = WebhookInput {
            url: Some("http://crm.example/in".into()),
            secret: Some("whsec_aGlkZGVuLXNlY3JldC12YWx1ZS0wMTIzNDU2Nzg5".into()),
            ..WebhookInput::default()
        };
        let shown = format!("{input:?}");
        assert!(
            shown.contains("crm.example") && !shown.contains("whsec_"),
            "{shown}"
        );
    }
}
