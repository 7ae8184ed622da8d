//! A user's tokens: stored as SHA-256 only, never the clear value.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use super::StoreError;
use crate::decision::hash_token;

/// A token as the admin API lists it: no clear value, no hash.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TokenRow {
    pub id: i64,
    pub label: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

fn token_row(row: &tokio_postgres::Row) -> TokenRow {
    TokenRow {
        id: row.get(0),
        label: row.get(1),
        expires_at: row.get(2),
        created_at: row.get(3),
    }
}

/// One page of the user's tokens (oldest first) and how many there are.
pub async fn list<C: GenericClient>(
    client: &C,
    user_id: i64,
    limit: i64,
    offset: i64,
) -> Result<(Vec<TokenRow>, i64), StoreError> {
    let rows = client
        .query(
            "SELECT id, label, expires_at, created_at FROM tokens WHERE user_id = $1
              ORDER BY id LIMIT $2 OFFSET $3",
            &[&user_id, &limit, &offset],
        )
        .await?;
    let total: i64 = client
        .query_one(
            "SELECT count(*) FROM tokens WHERE user_id = $1",
            &[&user_id],
        )
        .await?
        .get(0);
    Ok((rows.iter().map(token_row).collect(), total))
}

/// Stores the SHA-256 of `clear_token` for the user.
pub async fn insert<C: GenericClient>(
    client: &C,
    user_id: i64,
    clear_token: &str,
    label: &str,
    expires_at: Option<DateTime<Utc>>,
) -> Result<TokenRow, StoreError> {
    let hash = hash_token(clear_token).to_vec();
    let row = client
        .query_one(
            "INSERT INTO tokens (user_id, hash, label, expires_at) VALUES ($1, $2, $3, $4)
             RETURNING id, label, expires_at, created_at",
            &[&user_id, &hash, &label, &expires_at],
        )
        .await?;
    Ok(token_row(&row))
}

/// Deletes one token of this user; false when the user has no such token.
pub async fn delete<C: GenericClient>(
    client: &C,
    user_id: i64,
    id: i64,
) -> Result<bool, StoreError> {
    Ok(client
        .execute(
            "DELETE FROM tokens WHERE user_id = $1 AND id = $2",
            &[&user_id, &id],
        )
        .await?
        == 1)
}

/// Removes every token of the user; returns how many there were.
pub async fn delete_all<C: GenericClient>(client: &C, user_id: i64) -> Result<u64, StoreError> {
    Ok(client
        .execute("DELETE FROM tokens WHERE user_id = $1", &[&user_id])
        .await?)
}
