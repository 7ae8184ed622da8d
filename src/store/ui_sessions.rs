//! Sessions of the web interface: a row per signed-in browser, keyed by the
//! SHA-256 of the cookie's value (the value itself is never stored).

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::sql::params;
use super::{Client, StoreError};

fn hash(cookie: &str) -> Vec<u8> {
    Sha256::digest(cookie.as_bytes()).to_vec()
}

/// Starts a session for the user `login` that ends at `expires_at`; false
/// when there is no such user. Expired sessions of anyone are removed on
/// the way (sign-ins are rare; this keeps the table small without a task).
pub async fn create(
    client: &Client,
    cookie: &str,
    login: &str,
    expires_at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    client
        .execute_typed(
            "DELETE FROM ui_sessions WHERE expires_at <= now()",
            params![],
        )
        .await?;
    let inserted = client
        .execute_typed(
            "INSERT INTO ui_sessions (hash, user_id, expires_at)
             SELECT $1, id, $3 FROM users WHERE login = $2",
            params![&hash(cookie), &login, &expires_at],
        )
        .await?;
    Ok(inserted == 1)
}

/// The user behind a live session: (login, kind, enabled, expires_at of the account).
pub async fn find(
    client: &Client,
    cookie: &str,
) -> Result<Option<(String, String, bool, Option<DateTime<Utc>>)>, StoreError> {
    let row = client
        .query_typed_opt(
            "SELECT u.login, u.kind, u.enabled, u.expires_at
               FROM ui_sessions s JOIN users u ON u.id = s.user_id
              WHERE s.hash = $1 AND s.expires_at > now()",
            params![&hash(cookie)],
        )
        .await?;
    Ok(row.map(|row| (row.get(0), row.get(1), row.get(2), row.get(3))))
}

/// Ends a session (sign-out); true when it existed.
pub async fn delete(client: &Client, cookie: &str) -> Result<bool, StoreError> {
    Ok(client
        .execute_typed(
            "DELETE FROM ui_sessions WHERE hash = $1",
            params![&hash(cookie)],
        )
        .await?
        == 1)
}
