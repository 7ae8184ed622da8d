//! Reads the policy tables whole, for the in-memory view.

use tokio_postgres::IsolationLevel;

use super::{Client, StoreError};
use crate::config::parse_network;
use crate::decision::policy::{
    IpRuleRecord, PackageRecord, PolicySnapshot, RuleAction, TokenRecord, UserKind, UserRecord,
};

/// One consistent read of users, tokens, packages and IP rules.
pub async fn load_snapshot(client: &mut Client) -> Result<PolicySnapshot, StoreError> {
    let transaction = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let users = transaction
        .query(
            "SELECT u.id, u.login, u.password_hash, u.kind, u.ips::text[], u.expires_at, u.max_sessions, u.enabled,
                    COALESCE(array_agg(up.package_id) FILTER (WHERE up.package_id IS NOT NULL), '{}')
               FROM users u LEFT JOIN user_packages up ON up.user_id = u.id
              GROUP BY u.id",
            &[],
        )
        .await?
        .into_iter()
        .map(|row| {
            let ips: Vec<String> = row.get(4);
            let kind: String = row.get(3);
            UserRecord {
                id: row.get(0),
                login: row.get(1),
                password_hash: row.get(2),
                kind: UserKind::parse(&kind).unwrap_or(UserKind::User),
                ips: ips.iter().filter_map(|ip| parse_network(ip)).collect(),
                expires_at: row.get(5),
                max_sessions: row.get(6),
                enabled: row.get(7),
                package_ids: row.get(8),
            }
        })
        .collect();
    let tokens = transaction
        .query("SELECT hash, user_id, expires_at FROM tokens", &[])
        .await?
        .into_iter()
        .filter_map(|row| {
            let hash: &[u8] = row.get(0);
            Some(TokenRecord {
                hash: hash.try_into().ok()?,
                user_id: row.get(1),
                expires_at: row.get(2),
            })
        })
        .collect();
    let packages = transaction
        .query("SELECT id, streams FROM packages", &[])
        .await?
        .into_iter()
        .map(|row| PackageRecord {
            id: row.get(0),
            streams: row.get(1),
        })
        .collect();
    let ip_rules = transaction
        .query("SELECT network::text, action FROM ip_rules", &[])
        .await?
        .into_iter()
        .filter_map(|row| {
            let network: String = row.get(0);
            let action: String = row.get(1);
            Some(IpRuleRecord {
                network: parse_network(&network)?,
                action: if action == "deny" {
                    RuleAction::Deny
                } else {
                    RuleAction::Allow
                },
            })
        })
        .collect();
    transaction.commit().await?;
    Ok(PolicySnapshot::build(users, tokens, packages, ip_rules))
}
