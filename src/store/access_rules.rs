//! Access rules (SPEC §10): ordered by a dense, 1-based `position`. Every
//! write locks the table first, so that two admins moving rules at once
//! cannot leave a gap or a duplicate place (the unique constraint is
//! checked at commit, after the others have shifted).

use chrono::{DateTime, Utc};

use super::sql::params;
use super::{Db, StoreError};
use crate::domain::access_rule::{AccessRuleRecord, RawConditions, RuleConditions};
use crate::domain::{parse_network, RuleAction};

/// A rule as the admin API answers it; an absent condition is `[]`.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AccessRuleRow {
    pub id: i64,
    /// 1-based place in the list: rules are checked in this order.
    pub position: i32,
    /// `allow` (no later rule applies) or `deny` (`rule_denied`).
    pub action: String,
    pub enabled: bool,
    pub comment: String,
    /// CIDR networks (normalised).
    pub networks: Vec<String>,
    /// ISO 3166-1 alpha-2 codes, `XX` = unknown.
    pub countries: Vec<String>,
    pub asns: Vec<i64>,
    /// Case-insensitive globs (`*`); `""` = no user agent.
    pub user_agents: Vec<String>,
    /// Host names or `*.example.com`; `""` = no referer. Starts only.
    pub referers: Vec<String>,
    /// Stream names or globs (`*`).
    pub streams: Vec<String>,
    pub protocols: Vec<String>,
    pub dialects: Vec<String>,
    /// Conditions that match when none of their values does.
    pub negate: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl AccessRuleRow {
    /// The conditions as the API takes them, to merge a PATCH into.
    pub fn raw_conditions(&self) -> RawConditions {
        RawConditions {
            networks: self.networks.clone(),
            countries: self.countries.clone(),
            asns: self.asns.clone(),
            user_agents: self.user_agents.clone(),
            referers: self.referers.clone(),
            streams: self.streams.clone(),
            protocols: self.protocols.clone(),
            dialects: self.dialects.clone(),
            negate: self.negate.clone(),
        }
    }
}

pub const COLUMNS: &str = "id, position, action, enabled, comment, networks::text[], countries, \
     asns, user_agents, referers, streams, protocols, dialects, negate, created_at, updated_at";

fn rule_row(row: &tokio_postgres::Row) -> AccessRuleRow {
    AccessRuleRow {
        id: row.get(0),
        position: row.get(1),
        action: row.get(2),
        enabled: row.get(3),
        comment: row.get(4),
        networks: row.get(5),
        countries: row.get(6),
        asns: row.get(7),
        user_agents: row.get(8),
        referers: row.get(9),
        streams: row.get(10),
        protocols: row.get(11),
        dialects: row.get(12),
        negate: row.get(13),
        created_at: row.get(14),
        updated_at: row.get(15),
    }
}

/// The policy view's record of a row read with `COLUMNS`.
pub fn record(row: &tokio_postgres::Row) -> AccessRuleRecord {
    let rule = rule_row(row);
    AccessRuleRecord {
        id: rule.id,
        position: rule.position,
        action: if rule.action == "allow" {
            RuleAction::Allow
        } else {
            RuleAction::Deny
        },
        conditions: RuleConditions {
            networks: rule
                .networks
                .iter()
                .filter_map(|n| parse_network(n))
                .collect(),
            countries: rule.countries,
            asns: rule
                .asns
                .iter()
                .filter_map(|&asn| u32::try_from(asn).ok())
                .collect(),
            user_agents: rule.user_agents,
            referers: rule.referers,
            streams: rule.streams,
            protocols: rule.protocols,
            dialects: rule.dialects,
            negate: rule.negate,
        },
    }
}

/// What a write sets (every field: a PATCH is merged by the caller).
#[derive(Debug)]
pub struct RuleWrite<'a> {
    pub action: RuleAction,
    pub enabled: bool,
    pub comment: &'a str,
    pub conditions: &'a RuleConditions,
}

/// One page of rules in position order, and how many there are.
pub async fn list<C: Db>(
    client: &C,
    limit: i64,
    offset: i64,
) -> Result<(Vec<AccessRuleRow>, i64), StoreError> {
    let rows = client
        .query_typed(
            &format!("SELECT {COLUMNS} FROM access_rules ORDER BY position LIMIT $1 OFFSET $2"),
            params![&limit, &offset],
        )
        .await?;
    let total: i64 = client
        .query_typed_one("SELECT count(*) FROM access_rules", params![])
        .await?
        .get(0);
    Ok((rows.iter().map(rule_row).collect(), total))
}

pub async fn get<C: Db>(client: &C, id: i64) -> Result<Option<AccessRuleRow>, StoreError> {
    Ok(client
        .query_typed_opt(
            &format!("SELECT {COLUMNS} FROM access_rules WHERE id = $1"),
            params![&id],
        )
        .await?
        .as_ref()
        .map(rule_row))
}

/// The rule, read under the list's lock (a PATCH merges into it).
pub async fn get_for_update<C: Db>(
    client: &C,
    id: i64,
) -> Result<Option<AccessRuleRow>, StoreError> {
    lock(client).await?;
    get(client, id).await
}

/// Serialises writes to the list, and tells how long it is.
async fn lock<C: Db>(client: &C) -> Result<i32, StoreError> {
    client
        .batch_execute("LOCK TABLE access_rules IN SHARE ROW EXCLUSIVE MODE")
        .await?;
    let count: i64 = client
        .query_typed_one("SELECT count(*) FROM access_rules", params![])
        .await?
        .get(0);
    Ok(i32::try_from(count).unwrap_or(i32::MAX))
}

fn conditions_params(c: &RuleConditions) -> (Vec<String>, Vec<i64>) {
    (
        c.networks.iter().map(|n| n.to_string()).collect(),
        c.asns.iter().map(|&asn| i64::from(asn)).collect(),
    )
}

/// Inserts the rule at `position` (clamped to the list; default: last),
/// shifting the rules from there on down by one. Must run in a transaction.
pub async fn insert<C: Db>(
    client: &C,
    position: Option<i32>,
    rule: &RuleWrite<'_>,
) -> Result<AccessRuleRow, StoreError> {
    let count = lock(client).await?;
    let place = position.unwrap_or(count + 1).clamp(1, count + 1);
    client
        .execute_typed(
            "UPDATE access_rules SET position = position + 1 WHERE position >= $1",
            params![&place],
        )
        .await?;
    let (networks, asns) = conditions_params(rule.conditions);
    let c = rule.conditions;
    let row = client
        .query_typed_one(
            &format!(
                "INSERT INTO access_rules (position, action, enabled, comment, networks, countries,
                        asns, user_agents, referers, streams, protocols, dialects, negate)
                 VALUES ($1, $2, $3, $4, $5::text[]::cidr[], $6, $7, $8, $9, $10, $11, $12, $13)
                 RETURNING {COLUMNS}"
            ),
            params![
                &place,
                &super::ip_rules::action_str(rule.action),
                &rule.enabled,
                &rule.comment,
                &networks,
                &c.countries,
                &asns,
                &c.user_agents,
                &c.referers,
                &c.streams,
                &c.protocols,
                &c.dialects,
                &c.negate,
            ],
        )
        .await?;
    Ok(rule_row(&row))
}

/// Replaces the rule's fields and, when `position` is given, moves it there
/// (clamped), shifting the rules in between. None when there is no such
/// rule. Must run in a transaction.
pub async fn update<C: Db>(
    client: &C,
    id: i64,
    position: Option<i32>,
    rule: &RuleWrite<'_>,
) -> Result<Option<AccessRuleRow>, StoreError> {
    let count = lock(client).await?;
    let Some(current) = client
        .query_typed_opt(
            "SELECT position FROM access_rules WHERE id = $1",
            params![&id],
        )
        .await?
    else {
        return Ok(None);
    };
    let from: i32 = current.get(0);
    let to = position.unwrap_or(from).clamp(1, count.max(1));
    if to < from {
        client
            .execute_typed(
                "UPDATE access_rules SET position = position + 1 WHERE position >= $1 AND position < $2",
                params![&to, &from],
            )
            .await?;
    } else if to > from {
        client
            .execute_typed(
                "UPDATE access_rules SET position = position - 1 WHERE position > $1 AND position <= $2",
                params![&from, &to],
            )
            .await?;
    }
    let (networks, asns) = conditions_params(rule.conditions);
    let c = rule.conditions;
    let row = client
        .query_typed_one(
            &format!(
                "UPDATE access_rules SET position = $2, action = $3, enabled = $4, comment = $5,
                        networks = $6::text[]::cidr[], countries = $7, asns = $8, user_agents = $9,
                        referers = $10, streams = $11, protocols = $12, dialects = $13, negate = $14,
                        updated_at = now()
                  WHERE id = $1
              RETURNING {COLUMNS}"
            ),
            params![
                &id,
                &to,
                &super::ip_rules::action_str(rule.action),
                &rule.enabled,
                &rule.comment,
                &networks,
                &c.countries,
                &asns,
                &c.user_agents,
                &c.referers,
                &c.streams,
                &c.protocols,
                &c.dialects,
                &c.negate,
            ],
        )
        .await?;
    Ok(Some(rule_row(&row)))
}

/// Deletes the rule and closes the gap; returns it, or None when unknown.
/// Must run in a transaction.
pub async fn delete<C: Db>(client: &C, id: i64) -> Result<Option<AccessRuleRow>, StoreError> {
    lock(client).await?;
    let Some(row) = client
        .query_typed_opt(
            &format!("DELETE FROM access_rules WHERE id = $1 RETURNING {COLUMNS}"),
            params![&id],
        )
        .await?
        .as_ref()
        .map(rule_row)
    else {
        return Ok(None);
    };
    client
        .execute_typed(
            "UPDATE access_rules SET position = position - 1 WHERE position > $1",
            params![&row.position],
        )
        .await?;
    Ok(Some(row))
}
