//! Users, their tokens and packages, and IP rules: the policy tables.

use chrono::{DateTime, Utc};
use ipnet::IpNet;

use super::{Client, StoreError};
use crate::decision::hash_token;
use crate::decision::policy::{RuleAction, UserKind};

/// A user to create. `password_hash` is already bcrypt: hashing is slow and
/// belongs off the async executor, in the caller.
#[derive(Clone, Debug)]
pub struct NewUser {
    pub login: String,
    pub password_hash: Option<String>,
    pub kind: UserKind,
    pub comment: String,
    pub ips: Vec<IpNet>,
    pub stb: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_sessions: Option<i32>,
    pub enabled: bool,
    pub packages: Vec<String>,
}

impl NewUser {
    pub fn new(login: impl Into<String>) -> NewUser {
        NewUser {
            login: login.into(),
            password_hash: None,
            kind: UserKind::User,
            comment: String::new(),
            ips: Vec::new(),
            stb: String::new(),
            expires_at: None,
            max_sessions: None,
            enabled: true,
            packages: Vec::new(),
        }
    }
}

fn networks_as_text(networks: &[IpNet]) -> Vec<String> {
    networks.iter().map(ToString::to_string).collect()
}

/// Creates the user (and its package links) in one transaction; returns its id.
pub async fn create(client: &mut Client, user: &NewUser) -> Result<i64, StoreError> {
    let transaction = client.transaction().await?;
    let id: i64 = transaction
        .query_one(
            "INSERT INTO users (login, password_hash, kind, comment, ips, stb, expires_at, max_sessions, enabled)
             VALUES ($1, $2, $3, $4, $5::text[]::cidr[], $6, $7, $8, $9) RETURNING id",
            &[
                &user.login,
                &user.password_hash,
                &user.kind.as_str(),
                &user.comment,
                &networks_as_text(&user.ips),
                &user.stb,
                &user.expires_at,
                &user.max_sessions,
                &user.enabled,
            ],
        )
        .await?
        .get(0);
    if !user.packages.is_empty() {
        let linked = transaction
            .execute(
                "INSERT INTO user_packages (user_id, package_id)
                 SELECT $1, id FROM packages WHERE name = ANY($2)",
                &[&id, &user.packages],
            )
            .await?;
        if linked as usize != user.packages.len() {
            return Err(StoreError::Other("unknown package".into()));
        }
    }
    transaction.commit().await?;
    Ok(id)
}

/// Stores a token for a user as its SHA-256 only; returns the token's id.
pub async fn add_token(
    client: &Client,
    user_id: i64,
    clear_token: &str,
    label: &str,
    expires_at: Option<DateTime<Utc>>,
) -> Result<i64, StoreError> {
    let hash = hash_token(clear_token).to_vec();
    Ok(client
        .query_one(
            "INSERT INTO tokens (user_id, hash, label, expires_at) VALUES ($1, $2, $3, $4) RETURNING id",
            &[&user_id, &hash, &label, &expires_at],
        )
        .await?
        .get(0))
}

pub async fn create_package(
    client: &Client,
    name: &str,
    comment: &str,
    streams: &[String],
) -> Result<i64, StoreError> {
    Ok(client
        .query_one(
            "INSERT INTO packages (name, comment, streams) VALUES ($1, $2, $3) RETURNING id",
            &[&name, &comment, &streams],
        )
        .await?
        .get(0))
}

pub async fn create_ip_rule(
    client: &Client,
    network: IpNet,
    action: RuleAction,
    comment: &str,
) -> Result<i64, StoreError> {
    let action = match action {
        RuleAction::Allow => "allow",
        RuleAction::Deny => "deny",
    };
    Ok(client
        .query_one(
            "INSERT INTO ip_rules (network, action, comment) VALUES ($1::text::cidr, $2, $3) RETURNING id",
            &[&network.trunc().to_string(), &action, &comment],
        )
        .await?
        .get(0))
}

pub async fn admin_exists(client: &Client) -> Result<bool, StoreError> {
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM users WHERE kind = 'admin')",
            &[],
        )
        .await?
        .get(0))
}

/// Creates (or promotes) the bootstrap admin when no admin exists. Returns
/// whether anything was written. Replicas starting together serialise on a lock.
pub async fn ensure_bootstrap_admin(
    client: &mut Client,
    login: &str,
    password_hash: &str,
) -> Result<bool, StoreError> {
    let transaction = client.transaction().await?;
    transaction
        .execute(
            "SELECT pg_advisory_xact_lock(hashtext('playgate bootstrap admin'))",
            &[],
        )
        .await?;
    let exists: bool = transaction
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM users WHERE kind = 'admin')",
            &[],
        )
        .await?
        .get(0);
    if exists {
        return Ok(false);
    }
    transaction
        .execute(
            "INSERT INTO users (login, password_hash, kind, comment) VALUES ($1, $2, 'admin', 'bootstrap admin')
             ON CONFLICT (login) DO UPDATE SET kind = 'admin', password_hash = EXCLUDED.password_hash,
                                               enabled = true, updated_at = now()",
            &[&login, &password_hash],
        )
        .await?;
    transaction
        .execute(
            "INSERT INTO audit_log (actor, action, object_type, object_id, changes)
             VALUES ('playgate', 'create', 'user', $1, '{\"kind\": \"admin\", \"bootstrap\": true}')",
            &[&login],
        )
        .await?;
    transaction.commit().await?;
    Ok(true)
}
