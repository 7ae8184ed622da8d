//! Plain SQL migrations from `sql/`, applied in order under an advisory lock
//! so that replicas starting together apply each exactly once.

use sha2::{Digest, Sha256};

use super::sql::params;
use super::StoreError;

pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every file of `sql/`, in order. A unit test checks that none is missing.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "schema",
        sql: include_str!("../../sql/V1__schema.sql"),
    },
    Migration {
        version: 3,
        name: "stats_indexes",
        sql: include_str!("../../sql/V3__stats_indexes.sql"),
    },
    Migration {
        version: 4,
        name: "open_viewer_index",
        sql: include_str!("../../sql/V4__open_viewer_index.sql"),
    },
    Migration {
        version: 5,
        name: "ui_sessions",
        sql: include_str!("../../sql/V5__ui_sessions.sql"),
    },
    Migration {
        version: 6,
        name: "session_ended_notify",
        sql: include_str!("../../sql/V6__session_ended_notify.sql"),
    },
    Migration {
        version: 7,
        name: "policy_change_payloads",
        sql: include_str!("../../sql/V7__policy_change_payloads.sql"),
    },
    Migration {
        version: 8,
        name: "admit_function",
        sql: include_str!("../../sql/V8__admit_function.sql"),
    },
    Migration {
        version: 9,
        name: "open_viewer_index_hashed",
        sql: include_str!("../../sql/V9__open_viewer_index_hashed.sql"),
    },
    Migration {
        version: 10,
        name: "token_scope_and_web_session_ends",
        sql: include_str!("../../sql/V10__token_scope_and_web_session_ends.sql"),
    },
    Migration {
        version: 11,
        name: "viewer_cookie_key",
        sql: include_str!("../../sql/V11__viewer_cookie_key.sql"),
    },
    Migration {
        version: 12,
        name: "session_history",
        sql: include_str!("../../sql/V12__session_history.sql"),
    },
    Migration {
        version: 13,
        name: "admission_plans",
        sql: include_str!("../../sql/V13__admission_plans.sql"),
    },
    Migration {
        version: 14,
        name: "devices_zapping_capacity",
        sql: include_str!("../../sql/V14__devices_zapping_capacity.sql"),
    },
    Migration {
        version: 15,
        name: "signing_keys",
        sql: include_str!("../../sql/V15__signing_keys.sql"),
    },
    Migration {
        version: 16,
        name: "access_rules",
        sql: include_str!("../../sql/V16__access_rules.sql"),
    },
    Migration {
        version: 17,
        name: "session_geo",
        sql: include_str!("../../sql/V17__session_geo.sql"),
    },
    Migration {
        version: 18,
        name: "ip_rule_expiry",
        sql: include_str!("../../sql/V18__ip_rule_expiry.sql"),
    },
    Migration {
        version: 19,
        name: "denial_counts",
        sql: include_str!("../../sql/V19__denial_counts.sql"),
    },
    Migration {
        version: 20,
        name: "streamers",
        sql: include_str!("../../sql/V20__streamers.sql"),
    },
    Migration {
        version: 21,
        name: "webhooks",
        sql: include_str!("../../sql/V21__webhooks.sql"),
    },
    Migration {
        version: 22,
        name: "search_indexes",
        sql: include_str!("../../sql/V22__search_indexes.sql"),
    },
    Migration {
        version: 23,
        name: "session_bars",
        sql: include_str!("../../sql/V23__session_bars.sql"),
    },
];

pub fn latest_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// An arbitrary constant shared by every playgate process.
const MIGRATION_LOCK: i64 = 0x706c_6179_6761_7465; // "playgate"

fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

/// Applies pending migrations; returns the versions applied by this call.
/// All of them in one transaction under a transaction-scoped lock: replicas
/// starting together wait for each other, a failure leaves the schema as it
/// was, and nothing outlives the transaction (no session state, so a
/// pooler in transaction mode could not leak the lock).
pub async fn run(client: &mut tokio_postgres::Client) -> Result<Vec<i32>, StoreError> {
    let transaction = client.transaction().await?;
    transaction
        .execute_typed("SELECT pg_advisory_xact_lock($1)", params![&MIGRATION_LOCK])
        .await?;
    transaction
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS playgate_migrations (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                checksum   text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await?;
    let recorded: Vec<(i32, String)> = transaction
        .query_typed(
            "SELECT version, checksum FROM playgate_migrations",
            params![],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let mut applied = Vec::new();
    for migration in MIGRATIONS {
        let sum = checksum(migration.sql);
        if let Some((_, recorded_sum)) = recorded.iter().find(|(v, _)| *v == migration.version) {
            if *recorded_sum != sum {
                return Err(StoreError::Other(format!(
                    "migration V{}__{} differs from the one applied: released migrations must not be edited",
                    migration.version, migration.name
                )));
            }
            continue;
        }
        transaction.batch_execute(migration.sql).await?;
        transaction
            .execute_typed(
                "INSERT INTO playgate_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                params![&migration.version, &migration.name, &sum],
            )
            .await?;
        applied.push(migration);
    }
    transaction.commit().await?;
    for migration in &applied {
        log::info!(
            "applied migration V{}__{}",
            migration.version,
            migration.name
        );
    }
    Ok(applied.iter().map(|migration| migration.version).collect())
}

/// The newest applied version, or None when nothing was ever applied.
pub async fn current_version(client: &tokio_postgres::Client) -> Result<Option<i32>, StoreError> {
    let exists: bool = client
        .query_typed_one(
            "SELECT to_regclass('playgate_migrations') IS NOT NULL",
            params![],
        )
        .await?
        .get(0);
    if !exists {
        return Ok(None);
    }
    Ok(client
        .query_typed_one("SELECT max(version) FROM playgate_migrations", params![])
        .await?
        .get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sql_file_is_listed_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/sql");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".sql"))
            .collect();
        files.sort_by_key(|name| name[1..name.find("__").unwrap()].parse::<i32>().unwrap());
        let listed: Vec<String> = MIGRATIONS
            .iter()
            .map(|m| format!("V{}__{}.sql", m.version, m.name))
            .collect();
        assert_eq!(files, listed);
        assert!(MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version));
    }
}
