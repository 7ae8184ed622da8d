//! Reads of the policy tables for the in-memory view: all of them at once
//! (the full reload), a few users, the packages, the IP rules, the signing
//! keys.

use tokio_postgres::{IsolationLevel, Row};

use super::sql::params;
use super::{Client, StoreError};
use crate::domain::access_rule::AccessRuleRecord;
use crate::domain::{
    parse_network, IpRuleRecord, PackageRecord, PolicyRecords, RuleAction, SigningKeyRecord,
    TokenRecord, UserKind, UserRecord,
};

/// The columns `user_record` expects, packages last.
const USER_COLUMNS: &str = "u.id, u.login, u.password_hash, u.kind, u.ips::text[], u.expires_at, u.max_sessions, u.enabled, u.max_devices, u.countries";

fn user_record(row: &Row) -> UserRecord {
    let ips: Vec<String> = row.get(4);
    let kind: &str = row.get(3);
    UserRecord {
        id: row.get(0),
        login: row.get(1),
        password_hash: row.get(2),
        kind: UserKind::parse(kind).unwrap_or(UserKind::User),
        ips: ips.iter().filter_map(|ip| parse_network(ip)).collect(),
        expires_at: row.get(5),
        max_sessions: row.get(6),
        enabled: row.get(7),
        max_devices: row.get(8),
        countries: row.get(9),
        package_ids: row.get(10),
    }
}

fn token_record(
    hash: &[u8],
    user_id: i64,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
) -> Option<TokenRecord> {
    Some(TokenRecord {
        hash: hash.try_into().ok()?,
        user_id,
        expires_at,
    })
}

/// What a full reload reads, in one snapshot of the database: the policy
/// records, and the enabled signing keys of playback links beside them.
#[derive(Clone, Debug, Default)]
pub struct FullRead {
    pub records: PolicyRecords,
    pub signing_keys: Vec<SigningKeyRecord>,
    pub access_rules: Vec<AccessRuleRecord>,
}

/// The whole policy, read in one snapshot of the database.
pub async fn load_all(client: &mut Client) -> Result<FullRead, StoreError> {
    let transaction = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    // A million users take seconds to read: more than the cap meant for
    // requests, and this read is in the background.
    transaction
        .batch_execute("SET LOCAL statement_timeout = '5min'")
        .await?;
    let users = transaction
        .query_typed(
            &format!(
                "SELECT {USER_COLUMNS},
                        COALESCE(array_agg(up.package_id) FILTER (WHERE up.package_id IS NOT NULL), '{{}}')
                   FROM users u LEFT JOIN user_packages up ON up.user_id = u.id
                  GROUP BY u.id"
            ),
            params![],
        )
        .await?
        .iter()
        .map(user_record)
        .collect();
    let tokens = transaction
        .query_typed("SELECT hash, user_id, expires_at FROM tokens", params![])
        .await?
        .iter()
        .filter_map(|row| token_record(row.get(0), row.get(1), row.get(2)))
        .collect();
    let packages = packages_in(&*transaction).await?;
    let ip_rules = ip_rules_in(&*transaction).await?;
    let signing_keys = signing_keys_in(&*transaction).await?;
    let access_rules = access_rules_in(&*transaction).await?;
    transaction.commit().await?;
    Ok(FullRead {
        records: PolicyRecords {
            users,
            tokens,
            packages,
            ip_rules,
        },
        signing_keys,
        access_rules,
    })
}

/// The users `ids` that exist, and their tokens, in one statement (so one
/// snapshot of the database).
pub async fn load_users(
    client: &tokio_postgres::Client,
    ids: &[i64],
) -> Result<(Vec<UserRecord>, Vec<TokenRecord>), StoreError> {
    let rows = client
        .query_typed(
            &format!(
                "SELECT {USER_COLUMNS},
                        ARRAY(SELECT up.package_id FROM user_packages up WHERE up.user_id = u.id),
                        ARRAY(SELECT t.hash FROM tokens t WHERE t.user_id = u.id ORDER BY t.id),
                        ARRAY(SELECT t.expires_at FROM tokens t WHERE t.user_id = u.id ORDER BY t.id)
                   FROM users u
                  WHERE u.id = ANY($1)"
            ),
            params![&ids],
        )
        .await?;
    let mut users = Vec::with_capacity(rows.len());
    let mut tokens = Vec::new();
    for row in &rows {
        let user = user_record(row);
        let hashes: Vec<&[u8]> = row.get(11);
        let expiries: Vec<Option<chrono::DateTime<chrono::Utc>>> = row.get(12);
        tokens.extend(
            hashes
                .into_iter()
                .zip(expiries)
                .filter_map(|(hash, expires_at)| token_record(hash, user.id, expires_at)),
        );
        users.push(user);
    }
    Ok((users, tokens))
}

pub async fn load_packages(
    client: &tokio_postgres::Client,
) -> Result<Vec<PackageRecord>, StoreError> {
    packages_in(client).await
}

pub async fn load_ip_rules(
    client: &tokio_postgres::Client,
) -> Result<Vec<IpRuleRecord>, StoreError> {
    ip_rules_in(client).await
}

/// The enabled access rules (in any order: the view sorts them).
pub async fn load_access_rules(
    client: &tokio_postgres::Client,
) -> Result<Vec<AccessRuleRecord>, StoreError> {
    access_rules_in(client).await
}

async fn access_rules_in(
    client: &impl tokio_postgres::GenericClient,
) -> Result<Vec<AccessRuleRecord>, StoreError> {
    Ok(client
        .query_typed(
            &format!(
                "SELECT {} FROM access_rules WHERE enabled",
                super::access_rules::COLUMNS
            ),
            params![],
        )
        .await?
        .iter()
        .map(super::access_rules::record)
        .collect())
}

/// The enabled signing keys, newest first.
pub async fn load_signing_keys(
    client: &tokio_postgres::Client,
) -> Result<Vec<SigningKeyRecord>, StoreError> {
    signing_keys_in(client).await
}

async fn signing_keys_in(
    client: &impl tokio_postgres::GenericClient,
) -> Result<Vec<SigningKeyRecord>, StoreError> {
    Ok(client
        .query_typed(
            "SELECT id, format, secret, options FROM signing_keys WHERE enabled
              ORDER BY created_at DESC, id",
            params![],
        )
        .await?
        .into_iter()
        .map(|row| SigningKeyRecord {
            id: row.get(0),
            format: row.get(1),
            secret: row.get(2),
            options: row.get(3),
        })
        .collect())
}

async fn packages_in(
    client: &impl tokio_postgres::GenericClient,
) -> Result<Vec<PackageRecord>, StoreError> {
    Ok(client
        .query_typed("SELECT id, name, streams FROM packages", params![])
        .await?
        .into_iter()
        .map(|row| PackageRecord {
            id: row.get(0),
            name: row.get(1),
            streams: row.get(2),
        })
        .collect())
}

async fn ip_rules_in(
    client: &impl tokio_postgres::GenericClient,
) -> Result<Vec<IpRuleRecord>, StoreError> {
    Ok(client
        .query_typed(
            "SELECT network::text, action, expires_at FROM ip_rules",
            params![],
        )
        .await?
        .into_iter()
        .filter_map(|row| {
            let network: String = row.get(0);
            let action: String = row.get(1);
            Some(IpRuleRecord {
                expires_at: row.get(2),
                network: parse_network(&network)?,
                action: if action == "deny" {
                    RuleAction::Deny
                } else {
                    RuleAction::Allow
                },
            })
        })
        .collect())
}

/// Sends `payload` on `channel` (delivered once this statement commits).
pub async fn notify(client: &Client, channel: &str, payload: &str) -> Result<(), StoreError> {
    client
        .execute_typed("SELECT pg_notify($1, $2)", params![&channel, &payload])
        .await?;
    Ok(())
}
