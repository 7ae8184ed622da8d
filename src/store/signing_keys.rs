//! Signing keys of playback links (SPEC §9). The secret is stored as given
//! (an HMAC is verified with the key itself), read only by the policy view
//! (`policy::load_signing_keys`) and returned by nothing here: a key as the
//! admin API answers it has no secret.

use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::sql::params;
use super::{Db, StoreError};

/// A key as the admin API lists it: never the secret.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SigningKeyRow {
    /// The key id links name (1–32 of `a-z0-9-`).
    pub id: String,
    /// `playgate`, `securetoken`, `nginx`, `wowza` or `akamai`.
    pub format: String,
    /// The format's options as given (absent ones take their defaults).
    #[schema(value_type = Object)]
    pub options: Value,
    pub comment: String,
    /// A disabled key signs and verifies nothing.
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, format, options, comment, enabled, created_at, updated_at";

fn key_row(row: &tokio_postgres::Row) -> SigningKeyRow {
    SigningKeyRow {
        id: row.get(0),
        format: row.get(1),
        options: row.get(2),
        comment: row.get(3),
        enabled: row.get(4),
        created_at: row.get(5),
        updated_at: row.get(6),
    }
}

/// A key to insert; `Debug` shows everything but the secret.
pub struct NewSigningKey<'a> {
    pub id: &'a str,
    pub format: &'a str,
    pub secret: &'a str,
    pub options: &'a Value,
    pub comment: &'a str,
    pub enabled: bool,
}

impl fmt::Debug for NewSigningKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSigningKey")
            .field("id", &self.id)
            .field("format", &self.format)
            .field("secret", &"[redacted]")
            .field("options", &self.options)
            .field("comment", &self.comment)
            .field("enabled", &self.enabled)
            .finish()
    }
}

/// One page of keys, oldest first (then by id), and how many there are.
pub async fn list<C: Db>(
    client: &C,
    limit: i64,
    offset: i64,
) -> Result<(Vec<SigningKeyRow>, i64), StoreError> {
    let rows = client
        .query_typed(
            &format!(
                "SELECT {COLUMNS} FROM signing_keys ORDER BY created_at, id LIMIT $1 OFFSET $2"
            ),
            params![&limit, &offset],
        )
        .await?;
    let total: i64 = client
        .query_typed_one("SELECT count(*) FROM signing_keys", params![])
        .await?
        .get(0);
    Ok((rows.iter().map(key_row).collect(), total))
}

pub async fn get<C: Db>(client: &C, id: &str) -> Result<Option<SigningKeyRow>, StoreError> {
    Ok(client
        .query_typed_opt(
            &format!("SELECT {COLUMNS} FROM signing_keys WHERE id = $1"),
            params![&id],
        )
        .await?
        .as_ref()
        .map(key_row))
}

/// Inserts the key; None when a key with this id exists already.
pub async fn insert<C: Db>(
    client: &C,
    key: &NewSigningKey<'_>,
) -> Result<Option<SigningKeyRow>, StoreError> {
    let row = client
        .query_typed_opt(
            &format!(
                "INSERT INTO signing_keys (id, format, secret, options, comment, enabled)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (id) DO NOTHING
                 RETURNING {COLUMNS}"
            ),
            params![
                &key.id,
                &key.format,
                &key.secret,
                key.options,
                &key.comment,
                &key.enabled,
            ],
        )
        .await
        .map_err(without_row)?;
    Ok(row.as_ref().map(key_row))
}

/// Changes `enabled` and `comment` where given; None when there is no such key.
pub async fn update<C: Db>(
    client: &C,
    id: &str,
    enabled: Option<bool>,
    comment: Option<&str>,
) -> Result<Option<SigningKeyRow>, StoreError> {
    let row = client
        .query_typed_opt(
            &format!(
                "UPDATE signing_keys SET enabled = COALESCE($2, enabled),
                        comment = COALESCE($3, comment), updated_at = now()
                  WHERE id = $1
              RETURNING {COLUMNS}"
            ),
            params![&id, &enabled, &comment],
        )
        .await
        .map_err(without_row)?;
    Ok(row.as_ref().map(key_row))
}

/// Deletes the key; returns it, or None when unknown.
pub async fn delete<C: Db>(client: &C, id: &str) -> Result<Option<SigningKeyRow>, StoreError> {
    Ok(client
        .query_typed_opt(
            &format!("DELETE FROM signing_keys WHERE id = $1 RETURNING {COLUMNS}"),
            params![&id],
        )
        .await?
        .as_ref()
        .map(key_row))
}

/// A constraint violation's DETAIL quotes the whole row ("Failing row
/// contains (…)"), the secret included, and a database error is logged
/// with its DETAIL: such an error of a statement that writes a key row is
/// kept without it. The admin API validates every field first, so this is
/// a second line of defence; other errors (the database unreachable) stay
/// as they are.
fn without_row(error: tokio_postgres::Error) -> StoreError {
    match error.as_db_error() {
        Some(db) if db.code().code().starts_with("23") => StoreError::Other(format!(
            "database: {} ({}) on signing_keys",
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
        let options = serde_json::json!({});
        let key = NewSigningKey {
            id: "k1",
            format: "playgate",
            secret: "very-secret-value-1234",
            options: &options,
            comment: "",
            enabled: true,
        };
        let shown = format!("{key:?}");
        assert!(
            shown.contains("k1") && !shown.contains("very-secret"),
            "{shown}"
        );
    }
}
