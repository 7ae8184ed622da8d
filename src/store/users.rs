//! Users, their tokens and packages, and IP rules: the policy tables.

use chrono::{DateTime, Utc};
use ipnet::IpNet;

use super::{Client, StoreError};
use crate::decision::hash_token;
use crate::decision::policy::UserKind;

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
    let id = insert(&transaction, user).await?;
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
    pub max_sessions: Option<i32>,
    pub packages: Vec<String>,
    pub enabled: bool,
    /// Whether a password is set (the hash itself is never shown).
    pub has_password: bool,
    /// How many tokens the user has (see `/users/{login}/tokens`).
    pub tokens: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const USER_COLUMNS: &str = "u.login, u.kind, u.comment, u.ips::text[], u.stb, u.expires_at, u.max_sessions,
    COALESCE((SELECT array_agg(p.name ORDER BY p.name) FROM user_packages up JOIN packages p ON p.id = up.package_id
               WHERE up.user_id = u.id), '{}'),
    u.enabled, u.password_hash IS NOT NULL, (SELECT count(*) FROM tokens t WHERE t.user_id = u.id),
    u.created_at, u.updated_at";

fn user_row(row: &tokio_postgres::Row) -> UserRow {
    UserRow {
        login: row.get(0),
        kind: row.get(1),
        comment: row.get(2),
        ips: row.get(3),
        stb: row.get(4),
        expires_at: row.get(5),
        max_sessions: row.get(6),
        packages: row.get(7),
        enabled: row.get(8),
        has_password: row.get(9),
        tokens: row.get(10),
        created_at: row.get(11),
        updated_at: row.get(12),
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
pub async fn list<C: deadpool_postgres::GenericClient>(
    client: &C,
    filter: &UserFilter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<UserRow>, i64), StoreError> {
    let q = filter.q.as_deref().map(contains_pattern);
    let rows = client
        .query(
            &format!(
                "SELECT {USER_COLUMNS} FROM users u WHERE {USER_FILTER}
                  ORDER BY u.login LIMIT $4 OFFSET $5"
            ),
            &[&q, &filter.kind, &filter.enabled, &limit, &offset],
        )
        .await?;
    let total: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM users u WHERE {USER_FILTER}"),
            &[&q, &filter.kind, &filter.enabled],
        )
        .await?
        .get(0);
    Ok((rows.iter().map(user_row).collect(), total))
}

pub async fn get<C: deadpool_postgres::GenericClient>(
    client: &C,
    login: &str,
) -> Result<Option<UserRow>, StoreError> {
    let row = client
        .query_opt(
            &format!("SELECT {USER_COLUMNS} FROM users u WHERE u.login = $1"),
            &[&login],
        )
        .await?;
    Ok(row.as_ref().map(user_row))
}

/// The user's id, the row locked until the transaction ends.
pub async fn lock_id<C: deadpool_postgres::GenericClient>(
    client: &C,
    login: &str,
) -> Result<Option<i64>, StoreError> {
    Ok(client
        .query_opt(
            "SELECT id FROM users WHERE login = $1 FOR UPDATE",
            &[&login],
        )
        .await?
        .map(|row| row.get(0)))
}

/// Inserts the user row alone (no packages); returns its id.
pub async fn insert<C: deadpool_postgres::GenericClient>(
    client: &C,
    user: &NewUser,
) -> Result<i64, StoreError> {
    Ok(client
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
    pub enabled: Option<bool>,
}

pub async fn update<C: deadpool_postgres::GenericClient>(
    client: &C,
    id: i64,
    changes: &UserChanges,
) -> Result<(), StoreError> {
    let ips = changes.ips.as_deref().map(networks_as_text);
    client
        .execute(
            "UPDATE users SET
                login = COALESCE($2, login),
                password_hash = CASE WHEN $3 THEN $4 ELSE password_hash END,
                kind = COALESCE($5, kind),
                comment = COALESCE($6, comment),
                ips = COALESCE($7::text[]::cidr[], ips),
                stb = COALESCE($8, stb),
                expires_at = CASE WHEN $9 THEN $10 ELSE expires_at END,
                max_sessions = CASE WHEN $11 THEN $12 ELSE max_sessions END,
                enabled = COALESCE($13, enabled),
                updated_at = now()
              WHERE id = $1",
            &[
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
            ],
        )
        .await?;
    Ok(())
}

/// Replaces the user's packages with these (names checked by the caller).
pub async fn set_packages<C: deadpool_postgres::GenericClient>(
    client: &C,
    user_id: i64,
    packages: &[String],
) -> Result<(), StoreError> {
    client
        .execute("DELETE FROM user_packages WHERE user_id = $1", &[&user_id])
        .await?;
    client
        .execute(
            "INSERT INTO user_packages (user_id, package_id)
             SELECT $1, id FROM packages WHERE name = ANY($2)",
            &[&user_id, &packages],
        )
        .await?;
    Ok(())
}

/// The names among these that are not packages.
pub async fn unknown_packages<C: deadpool_postgres::GenericClient>(
    client: &C,
    names: &[String],
) -> Result<Vec<String>, StoreError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    Ok(client
        .query(
            "SELECT n FROM unnest($1::text[]) n WHERE NOT EXISTS (SELECT 1 FROM packages p WHERE p.name = n)",
            &[&names],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

/// Deletes the user (tokens and package links go with it); false when unknown.
pub async fn delete<C: deadpool_postgres::GenericClient>(
    client: &C,
    login: &str,
) -> Result<bool, StoreError> {
    Ok(client
        .execute("DELETE FROM users WHERE login = $1", &[&login])
        .await?
        == 1)
}

/// Who an admin-API bearer token belongs to: (login, kind, enabled, expires_at),
/// when the token exists and has not expired.
pub async fn find_by_token(
    client: &Client,
    clear_token: &str,
) -> Result<Option<(String, String, bool, Option<DateTime<Utc>>)>, StoreError> {
    let hash = hash_token(clear_token).to_vec();
    let row = client
        .query_opt(
            "SELECT u.login, u.kind, u.enabled, u.expires_at FROM tokens t JOIN users u ON u.id = t.user_id
              WHERE t.hash = $1 AND (t.expires_at IS NULL OR t.expires_at > now())",
            &[&hash],
        )
        .await?;
    Ok(row.map(|row| (row.get(0), row.get(1), row.get(2), row.get(3))))
}

/// One user of a bulk import, validated. Absent fields (None) keep their
/// value for an existing user and take the default for a new one; the inner
/// Option of nullable fields is the value (None = cleared).
#[derive(Clone, Debug, Default)]
pub struct ImportUser {
    pub login: String,
    pub password_hash: Option<Option<String>>,
    pub kind: Option<UserKind>,
    pub comment: Option<String>,
    pub ips: Option<Vec<IpNet>>,
    pub stb: Option<String>,
    pub expires_at: Option<Option<DateTime<Utc>>>,
    pub max_sessions: Option<Option<i32>>,
    pub enabled: Option<bool>,
    pub packages: Option<Vec<String>>,
    /// A clear token to make sure the user has (stored as SHA-256 only).
    pub token: Option<String>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportOutcome {
    pub created: u64,
    pub updated: u64,
    /// A token that already belongs to another user (nothing is kept then).
    pub token_conflict: Option<String>,
}

/// Creates or updates every user by login, set-based (a few statements over
/// `unnest`ed arrays, whatever the number of users). Runs in the caller's
/// transaction; logins must be unique in `users` (checked by the caller).
pub async fn import<C: deadpool_postgres::GenericClient>(
    client: &C,
    users: &[ImportUser],
) -> Result<ImportOutcome, StoreError> {
    client
        .execute(
            "SELECT pg_advisory_xact_lock(hashtext('playgate import'))",
            &[],
        )
        .await?;
    // A large import may take longer than the usual statement cap.
    client
        .batch_execute("SET LOCAL statement_timeout = '300s'")
        .await?;
    let started = std::time::Instant::now();
    let n = users.len();
    let mut login = Vec::with_capacity(n);
    let mut set_password = Vec::with_capacity(n);
    let mut password_hash = Vec::with_capacity(n);
    let mut kind = Vec::with_capacity(n);
    let mut comment = Vec::with_capacity(n);
    let mut ips = Vec::with_capacity(n);
    let mut stb = Vec::with_capacity(n);
    let mut set_expires = Vec::with_capacity(n);
    let mut expires_at = Vec::with_capacity(n);
    let mut set_max = Vec::with_capacity(n);
    let mut max_sessions = Vec::with_capacity(n);
    let mut enabled = Vec::with_capacity(n);
    for user in users {
        login.push(user.login.as_str());
        set_password.push(user.password_hash.is_some());
        password_hash.push(user.password_hash.clone().flatten());
        kind.push(user.kind.map(UserKind::as_str));
        comment.push(user.comment.as_deref());
        // A space-separated list: cidr text never contains a space.
        ips.push(
            user.ips
                .as_ref()
                .map(|networks| networks_as_text(networks).join(" ")),
        );
        stb.push(user.stb.as_deref());
        set_expires.push(user.expires_at.is_some());
        expires_at.push(user.expires_at.flatten());
        set_max.push(user.max_sessions.is_some());
        max_sessions.push(user.max_sessions.flatten());
        enabled.push(user.enabled);
    }
    const INPUT: &str = "CREATE TEMP TABLE import_input ON COMMIT DROP AS
        SELECT * FROM unnest($1::text[], $2::bool[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                             $8::bool[], $9::timestamptz[], $10::bool[], $11::int4[], $12::bool[])
            AS i(login, set_password, password_hash, kind, comment, ips, stb,
                 set_expires, expires_at, set_max, max_sessions, enabled)";
    client
        .execute(
            INPUT,
            &[
                &login,
                &set_password,
                &password_hash,
                &kind,
                &comment,
                &ips,
                &stb,
                &set_expires,
                &expires_at,
                &set_max,
                &max_sessions,
                &enabled,
            ],
        )
        .await?;
    log::debug!("import: input table in {:?}", started.elapsed());
    // Existing users are counted as updated; only rows that really change are
    // rewritten (a re-import of the same file writes almost nothing).
    let updated: i64 = client
        .query_one(
            "SELECT count(*) FROM import_input i JOIN users u ON u.login = i.login",
            &[],
        )
        .await?
        .get(0);
    let updated = updated as u64;
    client
        .execute(
            "WITH n AS (
                SELECT u.id,
                       CASE WHEN i.set_password THEN i.password_hash ELSE u.password_hash END AS password_hash,
                       COALESCE(i.kind, u.kind) AS kind,
                       COALESCE(i.comment, u.comment) AS comment,
                       COALESCE(string_to_array(i.ips, ' ')::cidr[], u.ips) AS ips,
                       COALESCE(i.stb, u.stb) AS stb,
                       CASE WHEN i.set_expires THEN i.expires_at ELSE u.expires_at END AS expires_at,
                       CASE WHEN i.set_max THEN i.max_sessions ELSE u.max_sessions END AS max_sessions,
                       COALESCE(i.enabled, u.enabled) AS enabled
                  FROM import_input i JOIN users u ON u.login = i.login)
             UPDATE users u SET password_hash = n.password_hash, kind = n.kind, comment = n.comment,
                                ips = n.ips, stb = n.stb, expires_at = n.expires_at,
                                max_sessions = n.max_sessions, enabled = n.enabled, updated_at = now()
               FROM n
              WHERE u.id = n.id
                AND (u.password_hash, u.kind, u.comment, u.ips, u.stb, u.expires_at, u.max_sessions, u.enabled)
                    IS DISTINCT FROM
                    (n.password_hash, n.kind, n.comment, n.ips, n.stb, n.expires_at, n.max_sessions, n.enabled)",
            &[],
        )
        .await?;
    let created = client
        .execute(
            "INSERT INTO users (login, password_hash, kind, comment, ips, stb, expires_at, max_sessions, enabled)
             SELECT i.login, i.password_hash, COALESCE(i.kind, 'user'), COALESCE(i.comment, ''),
                    COALESCE(string_to_array(i.ips, ' ')::cidr[], '{}'), COALESCE(i.stb, ''),
                    i.expires_at, i.max_sessions, COALESCE(i.enabled, true)
               FROM import_input i
              WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.login = i.login)",
            &[],
        )
        .await?;

    log::debug!("import: users written in {:?}", started.elapsed());
    // Packages: the users that name them get exactly these.
    let with_packages: Vec<&str> = users
        .iter()
        .filter(|u| u.packages.is_some())
        .map(|u| u.login.as_str())
        .collect();
    if !with_packages.is_empty() {
        let (links_login, links_package): (Vec<&str>, Vec<&str>) = users
            .iter()
            .flat_map(|u| {
                u.packages
                    .iter()
                    .flatten()
                    .map(move |p| (u.login.as_str(), p.as_str()))
            })
            .unzip();
        client
            .execute(
                "DELETE FROM user_packages up USING users u
                  WHERE up.user_id = u.id AND u.login = ANY($1)",
                &[&with_packages],
            )
            .await?;
        client
            .execute(
                "INSERT INTO user_packages (user_id, package_id)
                 SELECT DISTINCT u.id, p.id FROM unnest($1::text[], $2::text[]) l(login, package)
                   JOIN users u ON u.login = l.login JOIN packages p ON p.name = l.package",
                &[&links_login, &links_package],
            )
            .await?;
    }

    // Tokens: added when new; one that belongs to another user is a conflict.
    let (token_login, token_hash): (Vec<&str>, Vec<Vec<u8>>) = users
        .iter()
        .filter_map(|u| {
            u.token
                .as_deref()
                .map(|t| (u.login.as_str(), hash_token(t).to_vec()))
        })
        .unzip();
    log::debug!("import: packages linked in {:?}", started.elapsed());
    if !token_login.is_empty() {
        let inserted = client
            .execute(
                "INSERT INTO tokens (user_id, hash)
                 SELECT u.id, t.hash FROM unnest($1::text[], $2::bytea[]) t(login, hash)
                   JOIN users u ON u.login = t.login
                 ON CONFLICT (hash) DO NOTHING",
                &[&token_login, &token_hash],
            )
            .await?;
        // Every token new: no conflict possible. Otherwise some existed
        // already, the user's own (a re-import) or another user's.
        let conflict = if inserted as usize == token_login.len() {
            None
        } else {
            client
                .query_opt(
                    "SELECT t.login FROM unnest($1::text[], $2::bytea[]) t(login, hash)
                       JOIN tokens k ON k.hash = t.hash JOIN users u ON u.id = k.user_id
                      WHERE u.login <> t.login LIMIT 1",
                    &[&token_login, &token_hash],
                )
                .await?
        };
        log::debug!("import: tokens written in {:?}", started.elapsed());
        if let Some(row) = conflict {
            return Ok(ImportOutcome {
                created,
                updated,
                token_conflict: Some(row.get(0)),
            });
        }
    }
    Ok(ImportOutcome {
        created,
        updated,
        token_conflict: None,
    })
}

/// The users with these logins (as the admin API shows them), by login.
pub async fn get_many<C: deadpool_postgres::GenericClient>(
    client: &C,
    logins: &[String],
) -> Result<Vec<UserRow>, StoreError> {
    if logins.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            &format!("SELECT {USER_COLUMNS} FROM users u WHERE u.login = ANY($1) ORDER BY u.login"),
            &[&logins],
        )
        .await?;
    Ok(rows.iter().map(user_row).collect())
}

/// Who holds each of these clear tokens: (index in `tokens`, owner's login),
/// for the tokens that exist (compared by SHA-256, as stored).
pub async fn token_owners<C: deadpool_postgres::GenericClient>(
    client: &C,
    tokens: &[String],
) -> Result<Vec<(usize, String)>, StoreError> {
    if tokens.is_empty() {
        return Ok(Vec::new());
    }
    let hashes: Vec<Vec<u8>> = tokens.iter().map(|t| hash_token(t).to_vec()).collect();
    Ok(client
        .query(
            "SELECT h.n, u.login FROM unnest($1::bytea[]) WITH ORDINALITY h(hash, n)
               JOIN tokens t ON t.hash = h.hash JOIN users u ON u.id = t.user_id",
            &[&hashes],
        )
        .await?
        .iter()
        .map(|row| (row.get::<_, i64>(0) as usize - 1, row.get(1)))
        .collect())
}
