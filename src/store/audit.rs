//! The audit log: who changed what, when. Never a password or a clear token.

use super::Db;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::sql::params;
use super::StoreError;

#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AuditRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// Login of the admin who made the change.
    pub actor: String,
    /// `create`, `update`, `delete`, `kick` or `import`.
    pub action: String,
    /// `user`, `token`, `package`, `ip_rule`, `session` or `users` (import).
    pub object_type: String,
    pub object_id: String,
    /// Changed fields and their new values; secrets appear only as `"[set]"`.
    #[schema(value_type = Object)]
    pub changes: Value,
}

/// Records one write, in the caller's transaction.
pub async fn record<C: Db>(
    client: &C,
    actor: &str,
    action: &str,
    object_type: &str,
    object_id: &str,
    changes: &Value,
) -> Result<(), StoreError> {
    client
        .execute_typed(
            "INSERT INTO audit_log (actor, action, object_type, object_id, changes)
             VALUES ($1, $2, $3, $4, $5)",
            params![&actor, &action, &object_type, &object_id, &changes],
        )
        .await?;
    Ok(())
}

#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    pub action: Option<String>,
    /// At or after.
    pub from: Option<DateTime<Utc>>,
    /// Before.
    pub to: Option<DateTime<Utc>>,
}

/// Newest first.
pub async fn list<C: Db>(
    client: &C,
    filter: &AuditFilter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<AuditRow>, i64), StoreError> {
    const WHERE: &str =
        "($1::text IS NULL OR actor = $1) AND ($2::text IS NULL OR object_type = $2)
                         AND ($3::text IS NULL OR object_id = $3) AND ($4::text IS NULL OR action = $4)
                         AND ($5::timestamptz IS NULL OR at >= $5) AND ($6::timestamptz IS NULL OR at < $6)";
    let rows = client
        .query_typed(
            &format!(
                "SELECT id, at, actor, action, object_type, object_id, changes FROM audit_log
                  WHERE {WHERE} ORDER BY at DESC, id DESC LIMIT $7 OFFSET $8"
            ),
            params![
                &filter.actor,
                &filter.object_type,
                &filter.object_id,
                &filter.action,
                &filter.from,
                &filter.to,
                &limit,
                &offset,
            ],
        )
        .await?;
    let total: i64 = client
        .query_typed_one(
            &format!("SELECT count(*) FROM audit_log WHERE {WHERE}"),
            params![
                &filter.actor,
                &filter.object_type,
                &filter.object_id,
                &filter.action,
                &filter.from,
                &filter.to
            ],
        )
        .await?
        .get(0);
    Ok((
        rows.iter()
            .map(|row| AuditRow {
                id: row.get(0),
                at: row.get(1),
                actor: row.get(2),
                action: row.get(3),
                object_type: row.get(4),
                object_id: row.get(5),
                changes: row.get(6),
            })
            .collect(),
        total,
    ))
}
