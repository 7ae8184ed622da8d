//! Webhooks (SPEC §12), their events and delivery attempts (sql/V21).
//!
//! The secret is stored in clear (each delivery is signed with it), read
//! only by `claim` for the delivery worker and returned by nothing the
//! admin API answers with. Session events are written by triggers in the
//! transaction that starts or ends the session; `enqueue` writes the
//! others (`limit.reached`, `webhook.test`).

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::sql::params;
use super::{Db, StoreError};

/// A webhook as the admin API shows it: never the secret.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Webhook)]
pub struct WebhookRow {
    pub id: i64,
    /// Where events are POSTed (http or https).
    pub url: String,
    /// Some of `session.started`, `session.ended`, `limit.reached`.
    pub events: Vec<String>,
    /// A disabled webhook gets no new events (attempts already queued go on).
    pub enabled: bool,
    pub comment: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, url, events, enabled, comment, created_at, updated_at";

fn webhook_row(row: &tokio_postgres::Row) -> WebhookRow {
    WebhookRow {
        id: row.get(0),
        url: row.get(1),
        events: row.get(2),
        enabled: row.get(3),
        comment: row.get(4),
        created_at: row.get(5),
        updated_at: row.get(6),
    }
}

/// A webhook to insert; `Debug` shows everything but the secret.
pub struct NewWebhook<'a> {
    pub url: &'a str,
    pub events: &'a [String],
    pub enabled: bool,
    pub secret: &'a str,
    pub comment: &'a str,
}

impl fmt::Debug for NewWebhook<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewWebhook")
            .field("url", &self.url)
            .field("events", &self.events)
            .field("enabled", &self.enabled)
            .field("secret", &"[redacted]")
            .field("comment", &self.comment)
            .finish()
    }
}

/// What a PATCH changes; None leaves a field as it is.
#[derive(Debug, Default)]
pub struct WebhookChanges<'a> {
    pub url: Option<&'a str>,
    pub events: Option<&'a [String]>,
    pub enabled: Option<bool>,
    pub comment: Option<&'a str>,
}

/// One attempt to deliver an event (`GET /api/v1/webhooks/{id}/deliveries`).
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = WebhookDelivery)]
pub struct DeliveryRow {
    pub id: i64,
    /// `session.started`, `session.ended`, `limit.reached` or `webhook.test`.
    pub event_type: String,
    /// 1 for the first attempt of an event, then 2, 3, …
    pub attempt: i32,
    /// `pending` (due at `at`, or under way), `delivered` or `failed`.
    pub status: String,
    /// The receiver's HTTP status, when it answered.
    pub response_status: Option<i32>,
    /// Why the attempt failed, in a line (no answer, refused address, …).
    pub error: Option<String>,
    /// When the attempt was made; for a pending one, when it is due.
    pub at: DateTime<Utc>,
}

/// A pending attempt a worker has claimed until `lease_until`.
pub struct Claimed {
    pub delivery_id: i64,
    pub webhook_id: i64,
    pub attempt: i32,
    pub lease_until: DateTime<Utc>,
    pub url: String,
    pub secret: String,
    /// The `webhook-id` of every attempt of this event: `msg_<msg_id>`.
    pub msg_id: Uuid,
    pub event_type: String,
    pub event_at: DateTime<Utc>,
    pub data: Value,
}

impl fmt::Debug for Claimed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claimed")
            .field("delivery_id", &self.delivery_id)
            .field("webhook_id", &self.webhook_id)
            .field("attempt", &self.attempt)
            .field("url", &self.url)
            .field("secret", &"[redacted]")
            .field("msg_id", &self.msg_id)
            .field("event_type", &self.event_type)
            .finish()
    }
}

/// One page of webhooks, oldest first, and how many there are.
pub async fn list<C: Db>(
    client: &C,
    limit: i64,
    offset: i64,
) -> Result<(Vec<WebhookRow>, i64), StoreError> {
    let rows = client
        .query_typed(
            &format!("SELECT {COLUMNS} FROM webhooks ORDER BY id LIMIT $1 OFFSET $2"),
            params![&limit, &offset],
        )
        .await?;
    let total: i64 = client
        .query_typed_one("SELECT count(*) FROM webhooks", params![])
        .await?
        .get(0);
    Ok((rows.iter().map(webhook_row).collect(), total))
}

pub async fn get<C: Db>(client: &C, id: i64) -> Result<Option<WebhookRow>, StoreError> {
    Ok(client
        .query_typed_opt(
            &format!("SELECT {COLUMNS} FROM webhooks WHERE id = $1"),
            params![&id],
        )
        .await?
        .as_ref()
        .map(webhook_row))
}

pub async fn insert<C: Db>(client: &C, new: &NewWebhook<'_>) -> Result<WebhookRow, StoreError> {
    let row = client
        .query_typed_one(
            &format!(
                "INSERT INTO webhooks (url, events, enabled, secret, comment)
                 VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
            ),
            params![
                &new.url,
                &new.events,
                &new.enabled,
                &new.secret,
                &new.comment
            ],
        )
        .await
        .map_err(without_row)?;
    Ok(webhook_row(&row))
}

/// Changes the given fields; None when there is no such webhook.
pub async fn update<C: Db>(
    client: &C,
    id: i64,
    changes: &WebhookChanges<'_>,
) -> Result<Option<WebhookRow>, StoreError> {
    let row = client
        .query_typed_opt(
            &format!(
                "UPDATE webhooks SET url = COALESCE($2, url), events = COALESCE($3, events),
                        enabled = COALESCE($4, enabled), comment = COALESCE($5, comment),
                        updated_at = now()
                  WHERE id = $1
              RETURNING {COLUMNS}"
            ),
            params![
                &id,
                &changes.url,
                &changes.events,
                &changes.enabled,
                &changes.comment
            ],
        )
        .await
        .map_err(without_row)?;
    Ok(row.as_ref().map(webhook_row))
}

/// Deletes the webhook and its attempts; returns it, or None when unknown.
pub async fn delete<C: Db>(client: &C, id: i64) -> Result<Option<WebhookRow>, StoreError> {
    Ok(client
        .query_typed_opt(
            &format!("DELETE FROM webhooks WHERE id = $1 RETURNING {COLUMNS}"),
            params![&id],
        )
        .await?
        .as_ref()
        .map(webhook_row))
}

/// One page of a webhook's attempts, newest first, and how many there are.
pub async fn deliveries<C: Db>(
    client: &C,
    webhook: i64,
    limit: i64,
    offset: i64,
) -> Result<(Vec<DeliveryRow>, i64), StoreError> {
    let rows = client
        .query_typed(
            "SELECT d.id, e.type, d.attempt, d.status, d.response_status, d.error,
                    COALESCE(d.attempted_at, d.due_at)
               FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id
              WHERE d.webhook_id = $1
              ORDER BY d.id DESC LIMIT $2 OFFSET $3",
            params![&webhook, &limit, &offset],
        )
        .await?;
    let total: i64 = client
        .query_typed_one(
            "SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $1",
            params![&webhook],
        )
        .await?
        .get(0);
    let items = rows
        .iter()
        .map(|row| DeliveryRow {
            id: row.get(0),
            event_type: row.get(1),
            attempt: row.get(2),
            status: row.get(3),
            response_status: row.get(4),
            error: row.get(5),
            at: row.get(6),
        })
        .collect();
    Ok((items, total))
}

/// An event for every enabled webhook subscribing to `event_type`, or for
/// `webhook` alone (a test); returns the deliveries queued (0: nobody
/// subscribes, nothing written).
pub async fn enqueue<C: Db>(
    client: &C,
    event_type: &str,
    data: &Value,
    webhook: Option<i64>,
) -> Result<i32, StoreError> {
    Ok(client
        .query_typed_one(
            "SELECT playgate_webhook_enqueue($1, $2, $3)",
            params![&event_type, data, &webhook],
        )
        .await?
        .get(0))
}

/// Whether some enabled webhook subscribes to `event_type`.
pub async fn subscribed<C: Db>(client: &C, event_type: &str) -> Result<bool, StoreError> {
    Ok(client
        .query_typed_one(
            "SELECT EXISTS (SELECT 1 FROM webhooks WHERE enabled AND $1 = ANY (events))",
            params![&event_type],
        )
        .await?
        .get(0))
}

/// Claims up to `limit` due pending attempts until now + `lease`: another
/// worker skips them meanwhile, and takes them up once the lease is over
/// (the claimer died or hangs).
pub async fn claim<C: Db>(
    client: &C,
    limit: i64,
    lease: Duration,
) -> Result<Vec<Claimed>, StoreError> {
    let rows = client
        .query_typed(
            "UPDATE webhook_deliveries d
                SET due_at = now() + make_interval(secs => $2), attempted_at = now()
               FROM webhook_events e, webhooks w
              WHERE d.id IN (SELECT id FROM webhook_deliveries
                              WHERE status = 'pending' AND due_at <= now()
                              ORDER BY due_at LIMIT $1
                                FOR UPDATE SKIP LOCKED)
                AND e.id = d.event_id AND w.id = d.webhook_id
          RETURNING d.id, d.webhook_id, d.attempt, d.due_at, w.url, w.secret, e.msg_id, e.type,
                    e.at, e.data",
            params![&limit, &lease.as_secs_f64()],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| Claimed {
            delivery_id: row.get(0),
            webhook_id: row.get(1),
            attempt: row.get(2),
            lease_until: row.get(3),
            url: row.get(4),
            secret: row.get(5),
            msg_id: row.get(6),
            event_type: row.get(7),
            event_at: row.get(8),
            data: row.get(9),
        })
        .collect())
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub delivered: bool,
    pub response_status: Option<i32>,
    pub error: Option<String>,
    /// A failed attempt: when the next one is due (None: given up).
    pub retry_at: Option<DateTime<Utc>>,
}

/// Records the outcomes of claimed attempts in one statement (one commit
/// for a whole batch of deliveries) and queues the next attempt of each to
/// be retried; answers the attempts written. One missing is one whose lease
/// had ended and that another worker claimed since: nothing is written.
///
/// The webhook's and the event's rows are locked (KEY SHARE, in the
/// WHERE: before each attempt's own row) as the next attempt's insert locks
/// them: deleting a webhook (or purging an event) locks its row first and
/// then cascades to the attempts, so taking the two in the other order
/// deadlocks (seen under scripts/bench --webhooks).
pub async fn finish_all<C: Db>(
    client: &C,
    finished: &[(&Claimed, &Outcome)],
) -> Result<Vec<i64>, StoreError> {
    if finished.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = finished.iter().map(|(c, _)| c.delivery_id).collect();
    let leases: Vec<DateTime<Utc>> = finished.iter().map(|(c, _)| c.lease_until).collect();
    let statuses: Vec<&str> = finished
        .iter()
        .map(|(_, o)| if o.delivered { "delivered" } else { "failed" })
        .collect();
    let responses: Vec<Option<i32>> = finished.iter().map(|(_, o)| o.response_status).collect();
    let errors: Vec<Option<&str>> = finished.iter().map(|(_, o)| o.error.as_deref()).collect();
    let retries: Vec<Option<DateTime<Utc>>> = finished.iter().map(|(_, o)| o.retry_at).collect();
    let rows = client
        .query_typed(
            "WITH input AS (
                SELECT * FROM unnest($1::int8[], $2::timestamptz[], $3::text[], $4::int4[],
                                     $5::text[], $6::timestamptz[])
                       AS i(id, lease, status, response_status, error, retry_at)
             ), done AS (
                UPDATE webhook_deliveries d
                   SET status = i.status, response_status = i.response_status, error = i.error
                  FROM input i
                 WHERE d.id = i.id AND d.status = 'pending' AND d.due_at = i.lease
                   AND EXISTS (SELECT 1 FROM webhooks w WHERE w.id = d.webhook_id FOR KEY SHARE)
                   AND EXISTS (SELECT 1 FROM webhook_events e WHERE e.id = d.event_id FOR KEY SHARE)
             RETURNING d.id, d.webhook_id, d.event_id, d.attempt, i.retry_at
             ), next AS (
                INSERT INTO webhook_deliveries (webhook_id, event_id, attempt, due_at)
                SELECT webhook_id, event_id, attempt + 1, retry_at FROM done WHERE retry_at IS NOT NULL
             )
             SELECT id FROM done",
            params![&ids, &leases, &statuses, &responses, &errors, &retries],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Events purged per sweep at most: a backlog goes in steps, never as one
/// long statement in the sweeper's transaction.
const PURGE_BATCH: i64 = 50_000;

/// Events (and so their attempts) older than `days`: well past the 24 h
/// of retries, kept as long as the session history they describe.
pub async fn purge<C: Db>(client: &C, days: u32) -> Result<u64, StoreError> {
    Ok(client
        .execute_typed(
            "DELETE FROM webhook_events
              WHERE id IN (SELECT id FROM webhook_events
                            WHERE at < now() - make_interval(days => $1) LIMIT $2)",
            params![&(days as i32), &PURGE_BATCH],
        )
        .await?)
}

/// A constraint violation's DETAIL quotes the whole row, the secret
/// included, and a database error is logged with its DETAIL: such an error
/// of a statement that writes a webhook row is kept without it.
fn without_row(error: tokio_postgres::Error) -> StoreError {
    match error.as_db_error() {
        Some(db) if db.code().code().starts_with("23") => StoreError::Other(format!(
            "database: {} ({}) on webhooks",
            db.message(),
            db.code().code()
        )),
        _ => StoreError::Db(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_secret() {
        let events = vec!["session.started".to_string()];
        let new = NewWebhook {
            url: "http://billing.example/hook",
            events: &events,
            enabled: true,
            secret: "whsec_c2VjcmV0LXZhbHVlLW9mLXRoZS13ZWJob29r",
            comment: "",
        };
        let shown = format!("{new:?}");
        assert!(shown.contains("billing.example") && !shown.contains("whsec_"));
    }
}
