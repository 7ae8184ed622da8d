//! The nonces of `once` links already used (SPEC §9): a link with `once`
//! starts one session only, across every replica. The primary key decides
//! which of two simultaneous starts is the one (sql/V15).

use chrono::{DateTime, Utc};

use super::sql::params;
use super::{Client, StoreError};

/// Records the nonce's first use; false when it was used before (by any
/// replica), which refuses the start `link_used`.
pub async fn first_use(
    client: &Client,
    key_id: &str,
    nonce: &str,
    expires_at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let inserted = client
        .execute_typed(
            "INSERT INTO link_uses (nonce, key_id, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (nonce) DO NOTHING",
            params![&nonce, &key_id, &expires_at],
        )
        .await?;
    Ok(inserted == 1)
}
