//! The bulk import of users (`POST /api/v1/import`, `import-astra`):
//! set-based, a few statements over `unnest`ed arrays whatever the number.

use chrono::{DateTime, Utc};
use ipnet::IpNet;

use super::sql::params;
use super::StoreError;
use crate::domain::hash_token;
use crate::domain::UserKind;

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
    pub max_devices: Option<Option<i32>>,
    pub enabled: Option<bool>,
    pub packages: Option<Vec<String>>,
    /// Validated ISO codes; None = unchanged.
    pub countries: Option<Vec<String>>,
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
/// transaction; logins must be unique in `users` (checked by the caller),
/// who also holds `packages::lock_assignments` from before it checked that
/// the packages exist (a package deleted meanwhile would be skipped).
pub async fn import<C: super::Db>(
    client: &C,
    users: &[ImportUser],
) -> Result<ImportOutcome, StoreError> {
    client
        .execute_typed(
            "SELECT pg_advisory_xact_lock(hashtext('playgate import'))",
            params![],
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
    let mut set_devices = Vec::with_capacity(n);
    let mut max_devices = Vec::with_capacity(n);
    let mut enabled = Vec::with_capacity(n);
    let mut countries = Vec::with_capacity(n);
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
                .map(|networks| super::users::networks_as_text(networks).join(" ")),
        );
        stb.push(user.stb.as_deref());
        set_expires.push(user.expires_at.is_some());
        expires_at.push(user.expires_at.flatten());
        set_max.push(user.max_sessions.is_some());
        max_sessions.push(user.max_sessions.flatten());
        set_devices.push(user.max_devices.is_some());
        max_devices.push(user.max_devices.flatten());
        enabled.push(user.enabled);
        // Space-separated too: validated codes are two letters.
        countries.push(user.countries.as_ref().map(|codes| codes.join(" ")));
    }
    const INPUT: &str = "CREATE TEMP TABLE import_input ON COMMIT DROP AS
        SELECT * FROM unnest($1::text[], $2::bool[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                             $8::bool[], $9::timestamptz[], $10::bool[], $11::int4[], $12::bool[],
                             $13::bool[], $14::int4[], $15::text[])
            AS i(login, set_password, password_hash, kind, comment, ips, stb,
                 set_expires, expires_at, set_max, max_sessions, enabled, set_devices, max_devices,
                 countries)";
    client
        .execute_typed(
            INPUT,
            params![
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
                &set_devices,
                &max_devices,
                &countries,
            ],
        )
        .await?;
    log::debug!("import: input table in {:?}", started.elapsed());
    // Existing users are counted as updated; only rows that really change are
    // rewritten (a re-import of the same file writes almost nothing).
    let updated: i64 = client
        .query_typed_one(
            "SELECT count(*) FROM import_input i JOIN users u ON u.login = i.login",
            params![],
        )
        .await?
        .get(0);
    let updated = updated as u64;
    client
        .execute_typed(
            "WITH n AS (
                SELECT u.id,
                       CASE WHEN i.set_password THEN i.password_hash ELSE u.password_hash END AS password_hash,
                       COALESCE(i.kind, u.kind) AS kind,
                       COALESCE(i.comment, u.comment) AS comment,
                       COALESCE(string_to_array(i.ips, ' ')::cidr[], u.ips) AS ips,
                       COALESCE(i.stb, u.stb) AS stb,
                       CASE WHEN i.set_expires THEN i.expires_at ELSE u.expires_at END AS expires_at,
                       CASE WHEN i.set_max THEN i.max_sessions ELSE u.max_sessions END AS max_sessions,
                       CASE WHEN i.set_devices THEN i.max_devices ELSE u.max_devices END AS max_devices,
                       COALESCE(i.enabled, u.enabled) AS enabled,
                       COALESCE(string_to_array(i.countries, ' '), u.countries) AS countries
                  FROM import_input i JOIN users u ON u.login = i.login)
             UPDATE users u SET password_hash = n.password_hash, kind = n.kind, comment = n.comment,
                                ips = n.ips, stb = n.stb, expires_at = n.expires_at,
                                max_sessions = n.max_sessions, max_devices = n.max_devices,
                                enabled = n.enabled, countries = n.countries, updated_at = now()
               FROM n
              WHERE u.id = n.id
                AND (u.password_hash, u.kind, u.comment, u.ips, u.stb, u.expires_at, u.max_sessions,
                     u.max_devices, u.enabled, u.countries)
                    IS DISTINCT FROM
                    (n.password_hash, n.kind, n.comment, n.ips, n.stb, n.expires_at, n.max_sessions,
                     n.max_devices, n.enabled, n.countries)",
            params![],
        )
        .await?;
    let created = client
        .execute_typed(
            "INSERT INTO users (login, password_hash, kind, comment, ips, stb, expires_at, max_sessions,
                                max_devices, enabled, countries)
             SELECT i.login, i.password_hash, COALESCE(i.kind, 'user'), COALESCE(i.comment, ''),
                    COALESCE(string_to_array(i.ips, ' ')::cidr[], '{}'), COALESCE(i.stb, ''),
                    i.expires_at, i.max_sessions, i.max_devices, COALESCE(i.enabled, true),
                    COALESCE(string_to_array(i.countries, ' '), '{}')
               FROM import_input i
              WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.login = i.login)",
            params![],
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
            .execute_typed(
                "DELETE FROM user_packages up USING users u
                  WHERE up.user_id = u.id AND u.login = ANY($1)",
                params![&with_packages],
            )
            .await?;
        client
            .execute_typed(
                "INSERT INTO user_packages (user_id, package_id)
                 SELECT DISTINCT u.id, p.id FROM unnest($1::text[], $2::text[]) l(login, package)
                   JOIN users u ON u.login = l.login JOIN packages p ON p.name = l.package",
                params![&links_login, &links_package],
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
            .execute_typed(
                "INSERT INTO tokens (user_id, hash)
                 SELECT u.id, t.hash FROM unnest($1::text[], $2::bytea[]) t(login, hash)
                   JOIN users u ON u.login = t.login
                 ON CONFLICT (hash) DO NOTHING",
                params![&token_login, &token_hash],
            )
            .await?;
        // Every token new: no conflict possible. Otherwise some existed
        // already, the user's own (a re-import) or another user's.
        let conflict = if inserted as usize == token_login.len() {
            None
        } else {
            client
                .query_typed_opt(
                    "SELECT t.login FROM unnest($1::text[], $2::bytea[]) t(login, hash)
                       JOIN tokens k ON k.hash = t.hash JOIN users u ON u.id = k.user_id
                      WHERE u.login <> t.login LIMIT 1",
                    params![&token_login, &token_hash],
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
