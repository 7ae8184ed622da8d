//! Registered streamers, the networks their hook calls come from, and the
//! outbox of drop calls to their control APIs (sql/V20, SPEC §12).

use std::time::Duration;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use uuid::Uuid;

use super::sql::params;
use super::{Db, StoreError};

/// A streamer as the admin API shows it: never its password.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct StreamerRow {
    pub name: String,
    /// The hook route name of its dialect: `nginx-rtmp`, `srs`, `mediamtx`, `astra`, `flussonic`.
    pub kind: String,
    pub control_url: String,
    pub username: String,
    /// Whether a password is set (it is write-only).
    pub password_set: bool,
    /// Networks its hook calls come from (normalised CIDR).
    pub addresses: Vec<String>,
    pub comment: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "s.name, s.kind, s.control_url, s.username, s.password <> '', \
     ARRAY(SELECT n.network::text FROM streamer_networks n WHERE n.streamer = s.name ORDER BY n.network), \
     s.comment, s.created_at, s.updated_at";

fn streamer_row(row: &tokio_postgres::Row) -> StreamerRow {
    StreamerRow {
        name: row.get(0),
        kind: row.get(1),
        control_url: row.get(2),
        username: row.get(3),
        password_set: row.get(4),
        addresses: row.get(5),
        comment: row.get(6),
        created_at: row.get(7),
        updated_at: row.get(8),
    }
}

/// What a create or an update writes; `password` None keeps the stored one.
pub struct StreamerWrite<'a> {
    pub kind: &'a str,
    pub control_url: &'a str,
    pub username: &'a str,
    pub password: Option<&'a str>,
    pub addresses: &'a [IpNet],
    pub comment: &'a str,
}

pub async fn list<C: Db>(
    client: &C,
    limit: i64,
    offset: i64,
) -> Result<(Vec<StreamerRow>, i64), StoreError> {
    let rows = client
        .query_typed(
            &format!("SELECT {COLUMNS} FROM streamers s ORDER BY s.name LIMIT $1 OFFSET $2"),
            params![&limit, &offset],
        )
        .await?;
    let total: i64 = client
        .query_typed_one("SELECT count(*) FROM streamers", params![])
        .await?
        .get(0);
    Ok((rows.iter().map(streamer_row).collect(), total))
}

pub async fn get<C: Db>(client: &C, name: &str) -> Result<Option<StreamerRow>, StoreError> {
    Ok(client
        .query_typed_opt(
            &format!("SELECT {COLUMNS} FROM streamers s WHERE s.name = $1"),
            params![&name],
        )
        .await?
        .as_ref()
        .map(streamer_row))
}

/// The streamer, locked until the transaction ends.
pub async fn get_for_update<C: Db>(
    client: &C,
    name: &str,
) -> Result<Option<StreamerRow>, StoreError> {
    Ok(client
        .query_typed_opt(
            &format!("SELECT {COLUMNS} FROM streamers s WHERE s.name = $1 FOR UPDATE"),
            params![&name],
        )
        .await?
        .as_ref()
        .map(streamer_row))
}

/// The first of these networks another streamer already has, and that
/// streamer: one network belongs to one streamer.
pub async fn network_taken<C: Db>(
    client: &C,
    name: &str,
    networks: &[IpNet],
) -> Result<Option<(String, String)>, StoreError> {
    let networks: Vec<String> = networks.iter().map(|n| n.trunc().to_string()).collect();
    Ok(client
        .query_typed_opt(
            "SELECT network::text, streamer FROM streamer_networks
              WHERE network = ANY($1::text[]::cidr[]) AND streamer <> $2 ORDER BY network LIMIT 1",
            params![&networks, &name],
        )
        .await?
        .map(|row| (row.get(0), row.get(1))))
}

async fn set_networks<C: Db>(client: &C, name: &str, networks: &[IpNet]) -> Result<(), StoreError> {
    let networks: Vec<String> = networks.iter().map(|n| n.trunc().to_string()).collect();
    client
        .execute_typed(
            "DELETE FROM streamer_networks WHERE streamer = $1 AND NOT (network = ANY($2::text[]::cidr[]))",
            params![&name, &networks],
        )
        .await?;
    client
        .execute_typed(
            "INSERT INTO streamer_networks (network, streamer)
             SELECT n::cidr, $1 FROM unnest($2::text[]) n ON CONFLICT (network) DO NOTHING",
            params![&name, &networks],
        )
        .await?;
    Ok(())
}

pub async fn insert<C: Db>(
    client: &C,
    name: &str,
    write: &StreamerWrite<'_>,
) -> Result<StreamerRow, StoreError> {
    client
        .execute_typed(
            "INSERT INTO streamers (name, kind, control_url, username, password, comment)
             VALUES ($1, $2, $3, $4, $5, $6)",
            params![
                &name,
                &write.kind,
                &write.control_url,
                &write.username,
                &write.password.unwrap_or(""),
                &write.comment
            ],
        )
        .await?;
    set_networks(client, name, write.addresses).await?;
    get(client, name)
        .await?
        .ok_or_else(|| StoreError::Other("a streamer just inserted is missing".into()))
}

pub async fn update<C: Db>(
    client: &C,
    name: &str,
    write: &StreamerWrite<'_>,
) -> Result<Option<StreamerRow>, StoreError> {
    let changed = client
        .execute_typed(
            "UPDATE streamers SET kind = $2, control_url = $3, username = $4,
                                  password = COALESCE($5, password), comment = $6, updated_at = now()
              WHERE name = $1",
            params![
                &name,
                &write.kind,
                &write.control_url,
                &write.username,
                &write.password,
                &write.comment
            ],
        )
        .await?;
    if changed == 0 {
        return Ok(None);
    }
    set_networks(client, name, write.addresses).await?;
    get(client, name).await
}

/// Deletes the streamer with its networks and pending calls.
pub async fn delete<C: Db>(client: &C, name: &str) -> Result<Option<StreamerRow>, StoreError> {
    let Some(row) = get_for_update(client, name).await? else {
        return Ok(None);
    };
    client
        .execute_typed("DELETE FROM streamers WHERE name = $1", params![&name])
        .await?;
    Ok(Some(row))
}

/// How to reach one streamer's control API. `Debug` hides the password.
#[derive(Clone)]
pub struct ControlApi {
    pub name: String,
    pub kind: String,
    pub control_url: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for ControlApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlApi")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("control_url", &self.control_url)
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .finish()
    }
}

pub async fn control_api<C: Db>(client: &C, name: &str) -> Result<Option<ControlApi>, StoreError> {
    Ok(client
        .query_typed_opt(
            "SELECT name, kind, control_url, username, password FROM streamers WHERE name = $1",
            params![&name],
        )
        .await?
        .map(|row| ControlApi {
            name: row.get(0),
            kind: row.get(1),
            control_url: row.get(2),
            username: row.get(3),
            password: row.get(4),
        }))
}

/// One drop call due, claimed by this replica for `lease`.
#[derive(Clone, Debug)]
pub struct DueCall {
    pub id: i64,
    pub api: ControlApi,
    pub session_id: Uuid,
    /// The streamer's own id of the viewer.
    pub target: String,
    pub stream: String,
    pub protocol: String,
    /// Attempts made before this one.
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
}

/// Claims up to `limit` due calls: each is this replica's until `lease`
/// has passed (a replica that dies mid-call leaves it to another then).
pub async fn claim_calls<C: Db>(
    client: &C,
    limit: i64,
    lease: Duration,
) -> Result<Vec<DueCall>, StoreError> {
    let rows = client
        .query_typed(
            "WITH due AS (
                SELECT id FROM streamer_calls
                 WHERE status = 'pending' AND next_attempt_at <= now()
                 ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED),
             claimed AS (
                UPDATE streamer_calls c SET next_attempt_at = now() + make_interval(secs => $2)
                  FROM due WHERE c.id = due.id
                RETURNING c.id, c.streamer, c.session_id, c.target, c.stream, c.protocol,
                          c.attempts, c.created_at)
             SELECT c.id, s.name, s.kind, s.control_url, s.username, s.password, c.session_id,
                    c.target, c.stream, c.protocol, c.attempts, c.created_at
               FROM claimed c JOIN streamers s ON s.name = c.streamer
              ORDER BY c.id",
            params![&limit, &lease.as_secs_f64()],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| DueCall {
            id: row.get(0),
            api: ControlApi {
                name: row.get(1),
                kind: row.get(2),
                control_url: row.get(3),
                username: row.get(4),
                password: row.get(5),
            },
            session_id: row.get(6),
            target: row.get(7),
            stream: row.get(8),
            protocol: row.get(9),
            attempts: row.get(10),
            created_at: row.get(11),
        })
        .collect())
}

/// Records an attempt's result: `done` or `failed` for good, or pending
/// again after `retry_in`.
pub async fn call_attempted<C: Db>(
    client: &C,
    id: i64,
    status: &str,
    result: &str,
    retry_in: Option<Duration>,
) -> Result<(), StoreError> {
    let retry = retry_in.map(|delay| delay.as_secs_f64());
    client
        .execute_typed(
            "UPDATE streamer_calls
                SET attempts = attempts + 1, status = $2, result = $3,
                    next_attempt_at = CASE WHEN $4::float8 IS NULL THEN next_attempt_at
                                           ELSE now() + make_interval(secs => $4::float8) END,
                    finished_at = CASE WHEN $2 = 'pending' THEN NULL ELSE now() END
              WHERE id = $1",
            params![&id, &status, &result, &retry],
        )
        .await?;
    Ok(())
}

/// One drop call as the admin API shows it.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct StreamerCallRow {
    pub id: i64,
    pub session_id: Uuid,
    /// The streamer's own id of the viewer the call drops.
    pub target: String,
    pub stream: String,
    /// Why playgate ended the session: `kicked`, `limit`, `replaced`.
    pub end_reason: String,
    /// `pending`, `done`, `failed`.
    pub status: String,
    pub attempts: i32,
    /// The last attempt's outcome in words (an HTTP status, the streamer's answer, an error).
    pub result: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// The streamer's drop calls, newest first.
pub async fn calls<C: Db>(
    client: &C,
    streamer: &str,
    limit: i64,
    offset: i64,
) -> Result<(Vec<StreamerCallRow>, i64), StoreError> {
    let rows = client
        .query_typed(
            "SELECT id, session_id, target, stream, end_reason, status, attempts, result,
                    created_at, finished_at
               FROM streamer_calls WHERE streamer = $1
              ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
            params![&streamer, &limit, &offset],
        )
        .await?;
    let total: i64 = client
        .query_typed_one(
            "SELECT count(*) FROM streamer_calls WHERE streamer = $1",
            params![&streamer],
        )
        .await?
        .get(0);
    let items = rows
        .iter()
        .map(|row| StreamerCallRow {
            id: row.get(0),
            session_id: row.get(1),
            target: row.get(2),
            stream: row.get(3),
            end_reason: row.get(4),
            status: row.get(5),
            attempts: row.get(6),
            result: row.get(7),
            created_at: row.get(8),
            finished_at: row.get(9),
        })
        .collect();
    Ok((items, total))
}
