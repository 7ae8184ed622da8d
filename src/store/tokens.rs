//! A user's tokens: stored as SHA-256 only, never the clear value.

use super::Db;
use chrono::{DateTime, Utc};

use super::sql::params;
use super::StoreError;
use crate::domain::{hash_token, TokenScope};

/// A token as the admin API lists it: no clear value, no hash.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TokenRow {
    pub id: i64,
    pub label: String,
    /// `play` (playback only) or `api` (also an admin-API Bearer credential).
    pub scope: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// When a session was last started with it (active sessions and the
    /// history; a session ended within the last sweep may not count yet).
    /// Null: never, or only before sessions recorded their token.
    pub last_used_at: Option<DateTime<Utc>>,
}

fn token_row(row: &tokio_postgres::Row) -> TokenRow {
    TokenRow {
        id: row.get(0),
        label: row.get(1),
        expires_at: row.get(2),
        created_at: row.get(3),
        scope: row.get(4),
        last_used_at: row.get(5),
    }
}

/// One page of the user's tokens (oldest first) and how many there are.
pub async fn list<C: Db>(
    client: &C,
    user_id: i64,
    limit: i64,
    offset: i64,
) -> Result<(Vec<TokenRow>, i64), StoreError> {
    let rows = client
        .query_typed(
            "SELECT t.id, t.label, t.expires_at, t.created_at, t.scope,
                    GREATEST((SELECT max(s.started_at) FROM sessions s
                               WHERE s.login = u.login AND s.ended_at IS NULL AND s.token_hash = t.hash),
                             (SELECT max(h.started_at) FROM session_history h
                               WHERE h.login = u.login AND h.token_hash = t.hash))
               FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.user_id = $1
              ORDER BY t.id LIMIT $2 OFFSET $3",
            params![&user_id, &limit, &offset],
        )
        .await?;
    let total: i64 = client
        .query_typed_one(
            "SELECT count(*) FROM tokens WHERE user_id = $1",
            params![&user_id],
        )
        .await?
        .get(0);
    Ok((rows.iter().map(token_row).collect(), total))
}

/// Stores the SHA-256 of `clear_token` for the user.
pub async fn insert<C: Db>(
    client: &C,
    user_id: i64,
    clear_token: &str,
    label: &str,
    expires_at: Option<DateTime<Utc>>,
    scope: TokenScope,
) -> Result<TokenRow, StoreError> {
    let hash = hash_token(clear_token).to_vec();
    let row = client
        .query_typed_one(
            "INSERT INTO tokens (user_id, hash, label, expires_at, scope) VALUES ($1, $2, $3, $4, $5)
             RETURNING id, label, expires_at, created_at, scope, NULL::timestamptz",
            params![&user_id, &hash, &label, &expires_at, &scope.as_str()],
        )
        .await?;
    Ok(token_row(&row))
}

/// Deletes one token of this user; false when the user has no such token.
pub async fn delete<C: Db>(client: &C, user_id: i64, id: i64) -> Result<bool, StoreError> {
    Ok(client
        .execute_typed(
            "DELETE FROM tokens WHERE user_id = $1 AND id = $2",
            params![&user_id, &id],
        )
        .await?
        == 1)
}

/// Removes every token of the user; returns how many there were.
pub async fn delete_all<C: Db>(client: &C, user_id: i64) -> Result<u64, StoreError> {
    Ok(client
        .execute_typed("DELETE FROM tokens WHERE user_id = $1", params![&user_id])
        .await?)
}

/// Who an admin-API bearer token belongs to: (login, kind, enabled, expires_at),
/// when the token exists, has not expired and has the `api` scope.
pub async fn find_by_token(
    client: &super::Client,
    clear_token: &str,
) -> Result<Option<(String, String, bool, Option<DateTime<Utc>>)>, StoreError> {
    let hash = hash_token(clear_token).to_vec();
    let row = client
        .query_typed_opt(
            "SELECT u.login, u.kind, u.enabled, u.expires_at FROM tokens t JOIN users u ON u.id = t.user_id
              WHERE t.hash = $1 AND t.scope = 'api' AND (t.expires_at IS NULL OR t.expires_at > now())",
            params![&hash],
        )
        .await?;
    Ok(row.map(|row| (row.get(0), row.get(1), row.get(2), row.get(3))))
}

/// Who holds each of these clear tokens: (index in `tokens`, owner's login),
/// for the tokens that exist (compared by SHA-256, as stored).
pub async fn token_owners<C: super::Db>(
    client: &C,
    tokens: &[String],
) -> Result<Vec<(usize, String)>, StoreError> {
    if tokens.is_empty() {
        return Ok(Vec::new());
    }
    let hashes: Vec<Vec<u8>> = tokens.iter().map(|t| hash_token(t).to_vec()).collect();
    Ok(client
        .query_typed(
            "SELECT h.n, u.login FROM unnest($1::bytea[]) WITH ORDINALITY h(hash, n)
               JOIN tokens t ON t.hash = h.hash JOIN users u ON u.id = t.user_id",
            params![&hashes],
        )
        .await?
        .iter()
        .map(|row| (row.get::<_, i64>(0) as usize - 1, row.get(1)))
        .collect())
}
