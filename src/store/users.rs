//! Users and their packages: create, read, change, delete. The bulk import
//! is `user_import`, token lookups are `tokens`.

use chrono::{DateTime, Utc};
use ipnet::IpNet;

use super::sql::params;
use super::{Client, StoreError};
use crate::domain::UserKind;

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
    pub max_devices: Option<i32>,
    pub enabled: bool,
    pub packages: Vec<String>,
    /// ISO 3166-1 alpha-2 codes (validated); empty = anywhere.
    pub countries: Vec<String>,
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
            max_devices: None,
            enabled: true,
            packages: Vec::new(),
            countries: Vec::new(),
        }
    }
}

pub(super) fn networks_as_text(networks: &[IpNet]) -> Vec<String> {
    networks.iter().map(ToString::to_string).collect()
}

pub async fn admin_exists(client: &Client) -> Result<bool, StoreError> {
    Ok(client
        .query_typed_one(
            "SELECT EXISTS (SELECT 1 FROM users WHERE kind = 'admin')",
            params![],
        )
        .await?
        .get(0))
}

/// Serialises the writes that could take away the last admin (a change of
/// `enabled`, `kind` or `expires_at`, a delete, an import): taken first in
/// the transaction, before any row lock, so that two of them cannot each
/// see the other's admin still there and both commit.
pub async fn lock_admins<C: super::Db>(client: &C) -> Result<(), StoreError> {
    client
        .execute_typed(
            "SELECT pg_advisory_xact_lock(hashtext('playgate admins'))",
            params![],
        )
        .await?;
    Ok(())
}

/// The logins of the admins who can use the admin API: enabled and not
/// expired (as this transaction sees them).
pub async fn live_admins<C: super::Db>(client: &C) -> Result<Vec<String>, StoreError> {
    Ok(client
        .query_typed(
            "SELECT login FROM users
              WHERE kind = 'admin' AND enabled AND (expires_at IS NULL OR expires_at > now())
              ORDER BY login",
            params![],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect())
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
        .execute_typed(
            "SELECT pg_advisory_xact_lock(hashtext('playgate bootstrap admin'))",
            params![],
        )
        .await?;
    let exists: bool = transaction
        .query_typed_one(
            "SELECT EXISTS (SELECT 1 FROM users WHERE kind = 'admin')",
            params![],
        )
        .await?
        .get(0);
    if exists {
        return Ok(false);
    }
    transaction
        .execute_typed(
            "INSERT INTO users (login, password_hash, kind, comment) VALUES ($1, $2, 'admin', 'bootstrap admin')
             ON CONFLICT (login) DO UPDATE SET kind = 'admin', password_hash = EXCLUDED.password_hash,
                                               enabled = true, updated_at = now()",
            params![&login, &password_hash],
        )
        .await?;
    transaction
        .execute_typed(
            "INSERT INTO audit_log (actor, action, object_type, object_id, changes)
             VALUES ('playgate', 'create', 'user', $1, '{\"kind\": \"admin\", \"bootstrap\": true}')",
            params![&login],
        )
        .await?;
    transaction.commit().await?;
    Ok(true)
}

/// A user as the admin API shows it: never the password or its hash.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct UserRow {
    pub login: String,
    /// `user`, `observer` or `admin`.
    pub kind: String,
    pub comment: String,
    /// Networks bound to the user, normalised (`10.1.0.0/16`, `192.0.2.7/32`).
    pub ips: Vec<String>,
    pub stb: String,
    pub expires_at: Option<DateTime<Utc>>,
    /// Concurrent sessions; null = unlimited.
    pub max_sessions: Option<i32>,
    /// Distinct devices at once (a device: the `device` id the streamer or
    /// caller sent, else client IP and user agent); null = unlimited.
    pub max_devices: Option<i32>,
    pub packages: Vec<String>,
    /// Countries (ISO 3166-1 alpha-2, `XX` = unknown) the user may watch
    /// from; empty = anywhere (`country_mismatch`).
    pub countries: Vec<String>,
    pub enabled: bool,
    /// Whether a password is set (the hash itself is never shown).
    pub has_password: bool,
    /// How many tokens the user has (see `/users/{login}/tokens`).
    pub tokens: i64,
    /// Active sessions now, counted by the database (read-only).
    pub active_sessions: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const USER_COLUMNS: &str = "u.login, u.kind, u.comment, u.ips::text[], u.stb, u.expires_at, u.max_sessions,
    u.max_devices, COALESCE((SELECT array_agg(p.name ORDER BY p.name) FROM user_packages up JOIN packages p ON p.id = up.package_id
               WHERE up.user_id = u.id), '{}'),
    u.enabled, u.password_hash IS NOT NULL, (SELECT count(*) FROM tokens t WHERE t.user_id = u.id),
    u.created_at, u.updated_at, u.countries,
    (SELECT count(*) FROM sessions s WHERE s.login = u.login AND s.ended_at IS NULL AND s.expires_at > now())";

fn user_row(row: &tokio_postgres::Row) -> UserRow {
    UserRow {
        login: row.get(0),
        kind: row.get(1),
        comment: row.get(2),
        ips: row.get(3),
        stb: row.get(4),
        expires_at: row.get(5),
        max_sessions: row.get(6),
        max_devices: row.get(7),
        packages: row.get(8),
        enabled: row.get(9),
        has_password: row.get(10),
        tokens: row.get(11),
        created_at: row.get(12),
        updated_at: row.get(13),
        countries: row.get(14),
        active_sessions: row.get(15),
    }
}

#[derive(Clone, Debug, Default)]
pub struct UserFilter {
    /// Substring of the login or the comment (case-insensitive).
    pub q: Option<String>,
    pub kind: Option<String>,
    pub enabled: Option<bool>,
}

/// A LIKE pattern matching `text` anywhere, wildcards in it taken literally.
pub fn contains_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

const USER_FILTER: &str = "($1::text IS NULL OR u.login ILIKE $1 OR u.comment ILIKE $1)
       AND ($2::text IS NULL OR u.kind = $2) AND ($3::bool IS NULL OR u.enabled = $3)";

/// One page of users (by login) and the total matching the filter.
pub async fn list<C: super::Db>(
    client: &C,
    filter: &UserFilter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<UserRow>, i64), StoreError> {
    let q = filter.q.as_deref().map(contains_pattern);
    let rows = client
        .query_typed(
            &format!(
                "SELECT {USER_COLUMNS} FROM users u WHERE {USER_FILTER}
                  ORDER BY u.login LIMIT $4 OFFSET $5"
            ),
            params![&q, &filter.kind, &filter.enabled, &limit, &offset],
        )
        .await?;
    let total: i64 = client
        .query_typed_one(
            &format!("SELECT count(*) FROM users u WHERE {USER_FILTER}"),
            params![&q, &filter.kind, &filter.enabled],
        )
        .await?
        .get(0);
    Ok((rows.iter().map(user_row).collect(), total))
}

pub async fn get<C: super::Db>(client: &C, login: &str) -> Result<Option<UserRow>, StoreError> {
    let row = client
        .query_typed_opt(
            &format!("SELECT {USER_COLUMNS} FROM users u WHERE u.login = $1"),
            params![&login],
        )
        .await?;
    Ok(row.as_ref().map(user_row))
}

/// The user's id, the row locked until the transaction ends.
pub async fn lock_id<C: super::Db>(client: &C, login: &str) -> Result<Option<i64>, StoreError> {
    Ok(client
        .query_typed_opt(
            "SELECT id FROM users WHERE login = $1 FOR UPDATE",
            params![&login],
        )
        .await?
        .map(|row| row.get(0)))
}

/// Inserts the user row alone (no packages); returns its id.
pub async fn insert<C: super::Db>(client: &C, user: &NewUser) -> Result<i64, StoreError> {
    Ok(client
        .query_typed_one(
            "INSERT INTO users (login, password_hash, kind, comment, ips, stb, expires_at, max_sessions,
                                max_devices, enabled, countries)
             VALUES ($1, $2, $3, $4, $5::text[]::cidr[], $6, $7, $8, $9, $10, $11) RETURNING id",
            params![
                &user.login,
                &user.password_hash,
                &user.kind.as_str(),
                &user.comment,
                &networks_as_text(&user.ips),
                &user.stb,
                &user.expires_at,
                &user.max_sessions,
                &user.max_devices,
                &user.enabled,
                &user.countries,
            ],
        )
        .await?
        .get(0))
}

/// Fields to change; None = unchanged. For nullable columns the inner
/// Option is the new value (None = cleared).
#[derive(Clone, Debug, Default)]
pub struct UserChanges {
    pub login: Option<String>,
    pub password_hash: Option<Option<String>>,
    pub kind: Option<UserKind>,
    pub comment: Option<String>,
    pub ips: Option<Vec<IpNet>>,
    pub stb: Option<String>,
    pub expires_at: Option<Option<DateTime<Utc>>>,
    pub max_sessions: Option<Option<i32>>,
    pub max_devices: Option<Option<i32>>,
    pub enabled: Option<bool>,
    pub countries: Option<Vec<String>>,
}

pub async fn update<C: super::Db>(
    client: &C,
    id: i64,
    changes: &UserChanges,
) -> Result<(), StoreError> {
    let ips = changes.ips.as_deref().map(networks_as_text);
    client
        .execute_typed(
            "UPDATE users SET
                login = COALESCE($2, login),
                password_hash = CASE WHEN $3 THEN $4 ELSE password_hash END,
                kind = COALESCE($5, kind),
                comment = COALESCE($6, comment),
                ips = COALESCE($7::text[]::cidr[], ips),
                stb = COALESCE($8, stb),
                expires_at = CASE WHEN $9 THEN $10 ELSE expires_at END,
                max_sessions = CASE WHEN $11 THEN $12 ELSE max_sessions END,
                max_devices = CASE WHEN $14 THEN $15 ELSE max_devices END,
                enabled = COALESCE($13, enabled),
                countries = COALESCE($16, countries),
                updated_at = now()
              WHERE id = $1",
            params![
                &id,
                &changes.login,
                &changes.password_hash.is_some(),
                &changes.password_hash.clone().flatten(),
                &changes.kind.map(UserKind::as_str),
                &changes.comment,
                &ips,
                &changes.stb,
                &changes.expires_at.is_some(),
                &changes.expires_at.flatten(),
                &changes.max_sessions.is_some(),
                &changes.max_sessions.flatten(),
                &changes.enabled,
                &changes.max_devices.is_some(),
                &changes.max_devices.flatten(),
                &changes.countries,
            ],
        )
        .await?;
    Ok(())
}

/// Replaces the user's packages with these (names checked by the caller).
pub async fn set_packages<C: super::Db>(
    client: &C,
    user_id: i64,
    packages: &[String],
) -> Result<(), StoreError> {
    client
        .execute_typed(
            "DELETE FROM user_packages WHERE user_id = $1",
            params![&user_id],
        )
        .await?;
    client
        .execute_typed(
            "INSERT INTO user_packages (user_id, package_id)
             SELECT $1, id FROM packages WHERE name = ANY($2)",
            params![&user_id, &packages],
        )
        .await?;
    Ok(())
}

/// The names among these that are not packages.
pub async fn unknown_packages<C: super::Db>(
    client: &C,
    names: &[String],
) -> Result<Vec<String>, StoreError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    Ok(client
        .query_typed(
            "SELECT n FROM unnest($1::text[]) n WHERE NOT EXISTS (SELECT 1 FROM packages p WHERE p.name = n)",
            params![&names],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

/// Deletes the user (tokens and package links go with it); false when unknown.
pub async fn delete<C: super::Db>(client: &C, login: &str) -> Result<bool, StoreError> {
    Ok(client
        .execute_typed("DELETE FROM users WHERE login = $1", params![&login])
        .await?
        == 1)
}

/// The users with these logins (as the admin API shows them), by login.
pub async fn get_many<C: super::Db>(
    client: &C,
    logins: &[String],
) -> Result<Vec<UserRow>, StoreError> {
    if logins.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .query_typed(
            &format!("SELECT {USER_COLUMNS} FROM users u WHERE u.login = ANY($1) ORDER BY u.login"),
            params![&logins],
        )
        .await?;
    Ok(rows.iter().map(user_row).collect())
}
