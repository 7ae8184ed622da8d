//! The key of the HLS viewer cookie (SPEC §3), shared by every replica
//! through the database when `PLAYGATE_VIEWER_COOKIE_SECRET` is unset.

use super::sql::params;
use super::{Client, Db, StoreError};

/// The shared key: `candidate` if no replica stored one yet (the first to
/// start wins a race), else the stored one.
pub async fn shared_key(client: &Client, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
    client
        .execute_typed(
            "INSERT INTO viewer_cookie_key (secret) VALUES ($1) ON CONFLICT (id) DO NOTHING",
            params![&candidate],
        )
        .await?;
    let row = client
        .query_typed_one("SELECT secret FROM viewer_cookie_key", params![])
        .await?;
    Ok(row.get(0))
}
