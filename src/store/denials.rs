//! Denials counted per minute and reason (SPEC §4 `/api/v1/stats/denials`):
//! what the replicas add up, and what the statistics read.

use chrono::{DateTime, Utc};

use super::sql::params;
use super::{Client, StoreError};

/// Denials of one reason in one minute, from one replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DenialCount {
    /// The minute's start.
    pub minute: DateTime<Utc>,
    pub reason: &'static str,
    pub count: i64,
}

/// Adds the counts to what other replicas (and earlier writes) stored, in
/// one statement (the sweeper drops minutes past the history's days).
pub async fn add(client: &Client, counts: &[DenialCount]) -> Result<(), StoreError> {
    let minutes: Vec<DateTime<Utc>> = counts.iter().map(|c| c.minute).collect();
    let reasons: Vec<&str> = counts.iter().map(|c| c.reason).collect();
    let numbers: Vec<i64> = counts.iter().map(|c| c.count).collect();
    client
        .execute_typed(
            "INSERT INTO denial_counts AS d (minute, reason, count)
             SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::int8[])
             ON CONFLICT (minute, reason) DO UPDATE SET count = d.count + EXCLUDED.count",
            params![&minutes, &reasons, &numbers],
        )
        .await?;
    Ok(())
}

/// Denials per reason in the minutes that start in [from, to), most first.
pub async fn totals(
    client: &Client,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(client
        .query_typed(
            "SELECT reason, sum(count)::int8 FROM denial_counts
              WHERE minute >= date_trunc('minute', $1::timestamptz) AND minute < $2
              GROUP BY reason ORDER BY 2 DESC, 1",
            params![&from, &to],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}
