//! IP rules: networks that are always allowed (anonymously) or always denied.

use super::Db;
use chrono::{DateTime, Utc};
use ipnet::IpNet;

use super::sql::params;
use super::StoreError;
use crate::domain::RuleAction;

#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct IpRuleRow {
    pub id: i64,
    /// Normalised CIDR network (`198.51.100.0/24`, `2001:db8::/32`, `192.0.2.7/32`).
    pub network: String,
    /// `allow` or `deny`.
    pub action: String,
    pub comment: String,
    pub created_at: DateTime<Utc>,
    /// When the rule stops applying (a temporary ban); null = never.
    pub expires_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, network::text, action, comment, created_at, expires_at";

fn rule_row(row: &tokio_postgres::Row) -> IpRuleRow {
    IpRuleRow {
        id: row.get(0),
        network: row.get(1),
        action: row.get(2),
        comment: row.get(3),
        created_at: row.get(4),
        expires_at: row.get(5),
    }
}

pub fn action_str(action: RuleAction) -> &'static str {
    match action {
        RuleAction::Allow => "allow",
        RuleAction::Deny => "deny",
    }
}

/// One page of rules (by network) and the total; `action` filters when given.
pub async fn list<C: Db>(
    client: &C,
    action: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<IpRuleRow>, i64), StoreError> {
    let rows = client
        .query_typed(
            &format!(
                "SELECT {COLUMNS} FROM ip_rules WHERE ($1::text IS NULL OR action = $1)
                  ORDER BY network, action LIMIT $2 OFFSET $3"
            ),
            params![&action, &limit, &offset],
        )
        .await?;
    let total: i64 = client
        .query_typed_one(
            "SELECT count(*) FROM ip_rules WHERE ($1::text IS NULL OR action = $1)",
            params![&action],
        )
        .await?
        .get(0);
    Ok((rows.iter().map(rule_row).collect(), total))
}

pub async fn get<C: Db>(client: &C, id: i64) -> Result<Option<IpRuleRow>, StoreError> {
    Ok(client
        .query_typed_opt(
            &format!("SELECT {COLUMNS} FROM ip_rules WHERE id = $1"),
            params![&id],
        )
        .await?
        .as_ref()
        .map(rule_row))
}

pub async fn insert<C: Db>(
    client: &C,
    network: IpNet,
    action: RuleAction,
    comment: &str,
    expires_at: Option<DateTime<Utc>>,
) -> Result<IpRuleRow, StoreError> {
    let row = client
        .query_typed_one(
            &format!(
                "INSERT INTO ip_rules (network, action, comment, expires_at)
                 VALUES ($1::text::cidr, $2, $3, $4) RETURNING {COLUMNS}"
            ),
            params![
                &network.trunc().to_string(),
                &action_str(action),
                &comment,
                &expires_at
            ],
        )
        .await?;
    Ok(rule_row(&row))
}

/// The rule, locked until the transaction ends; None when unknown.
pub async fn get_for_update<C: Db>(client: &C, id: i64) -> Result<Option<IpRuleRow>, StoreError> {
    Ok(client
        .query_typed_opt(
            &format!("SELECT {COLUMNS} FROM ip_rules WHERE id = $1 FOR UPDATE"),
            params![&id],
        )
        .await?
        .as_ref()
        .map(rule_row))
}

/// Sets the comment and the expiry in place (network and action are what
/// the rule is: another pair is another rule).
pub async fn update<C: Db>(
    client: &C,
    id: i64,
    comment: &str,
    expires_at: Option<DateTime<Utc>>,
) -> Result<Option<IpRuleRow>, StoreError> {
    Ok(client
        .query_typed_opt(
            &format!(
                "UPDATE ip_rules SET comment = $2, expires_at = $3 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            params![&id, &comment, &expires_at],
        )
        .await?
        .as_ref()
        .map(rule_row))
}

/// Deletes the rule; returns it, or None when unknown.
pub async fn delete<C: Db>(client: &C, id: i64) -> Result<Option<IpRuleRow>, StoreError> {
    Ok(client
        .query_typed_opt(
            &format!("DELETE FROM ip_rules WHERE id = $1 RETURNING {COLUMNS}"),
            params![&id],
        )
        .await?
        .as_ref()
        .map(rule_row))
}
