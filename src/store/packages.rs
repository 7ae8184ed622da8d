//! Packages: named sets of stream patterns.

use super::Db;
use chrono::{DateTime, Utc};

use super::sql::params;
use super::StoreError;

#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PackageRow {
    pub name: String,
    pub comment: String,
    /// Exact stream names or `*` globs.
    pub streams: Vec<String>,
    /// Active sessions on the streams matching this package, all viewers
    /// together, at most; null = no cap.
    pub max_viewers: Option<i32>,
    /// How many users have this package.
    pub users: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "p.name, p.comment, p.streams, p.max_viewers,
    (SELECT count(*) FROM user_packages up WHERE up.package_id = p.id), p.created_at, p.updated_at";

fn package_row(row: &tokio_postgres::Row) -> PackageRow {
    PackageRow {
        name: row.get(0),
        comment: row.get(1),
        streams: row.get(2),
        max_viewers: row.get(3),
        users: row.get(4),
        created_at: row.get(5),
        updated_at: row.get(6),
    }
}

pub async fn list<C: Db>(
    client: &C,
    limit: i64,
    offset: i64,
) -> Result<(Vec<PackageRow>, i64), StoreError> {
    let rows = client
        .query_typed(
            &format!("SELECT {COLUMNS} FROM packages p ORDER BY p.name LIMIT $1 OFFSET $2"),
            params![&limit, &offset],
        )
        .await?;
    let total: i64 = client
        .query_typed_one("SELECT count(*) FROM packages", params![])
        .await?
        .get(0);
    Ok((rows.iter().map(package_row).collect(), total))
}

pub async fn get<C: Db>(client: &C, name: &str) -> Result<Option<PackageRow>, StoreError> {
    Ok(client
        .query_typed_opt(
            &format!("SELECT {COLUMNS} FROM packages p WHERE p.name = $1"),
            params![&name],
        )
        .await?
        .as_ref()
        .map(package_row))
}

pub async fn insert<C: Db>(
    client: &C,
    name: &str,
    comment: &str,
    streams: &[String],
    max_viewers: Option<i32>,
) -> Result<(), StoreError> {
    client
        .execute_typed(
            "INSERT INTO packages (name, comment, streams, max_viewers) VALUES ($1, $2, $3, $4)",
            params![&name, &comment, &streams, &max_viewers],
        )
        .await?;
    Ok(())
}

/// Fields of a package to change; None = unchanged. `max_viewers`' inner
/// Option is the new value (None = no cap).
#[derive(Clone, Debug, Default)]
pub struct PackageChanges {
    pub name: Option<String>,
    pub comment: Option<String>,
    pub streams: Option<Vec<String>>,
    pub max_viewers: Option<Option<i32>>,
}

/// Changes the given fields; false when there is no such package.
pub async fn update<C: Db>(
    client: &C,
    name: &str,
    changes: &PackageChanges,
) -> Result<bool, StoreError> {
    Ok(client
        .execute_typed(
            "UPDATE packages SET name = COALESCE($2, name), comment = COALESCE($3, comment),
                    streams = COALESCE($4, streams),
                    max_viewers = CASE WHEN $5 THEN $6 ELSE max_viewers END, updated_at = now()
              WHERE name = $1",
            params![
                &name,
                &changes.name,
                &changes.comment,
                &changes.streams,
                &changes.max_viewers.is_some(),
                &changes.max_viewers.flatten(),
            ],
        )
        .await?
        == 1)
}

/// Deletes the package (its user links go with it); false when unknown.
pub async fn delete<C: Db>(client: &C, name: &str) -> Result<bool, StoreError> {
    Ok(client
        .execute_typed("DELETE FROM packages WHERE name = $1", params![&name])
        .await?
        == 1)
}

/// The packages with these names, by name.
pub async fn get_many<C: Db>(client: &C, names: &[String]) -> Result<Vec<PackageRow>, StoreError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .query_typed(
            &format!("SELECT {COLUMNS} FROM packages p WHERE p.name = ANY($1) ORDER BY p.name"),
            params![&names],
        )
        .await?;
    Ok(rows.iter().map(package_row).collect())
}

/// Serialises every change of who has which package with the deletion of
/// packages (a transaction-scoped lock, taken before the names are checked):
/// a user given a package that is being deleted cannot end up with none,
/// which would mean every stream.
pub async fn lock_assignments<C: super::Db>(client: &C) -> Result<(), StoreError> {
    client
        .execute_typed(
            "SELECT pg_advisory_xact_lock(hashtext('playgate package assignments'))",
            params![],
        )
        .await?;
    Ok(())
}

/// The users for whom this package is the only one (deleting it would leave
/// them with none, i.e. every stream): the first `limit` logins by login,
/// and how many there are.
pub async fn sole_users<C: super::Db>(
    client: &C,
    name: &str,
    limit: i64,
) -> Result<(Vec<String>, i64), StoreError> {
    let rows = client
        .query_typed(
            "SELECT u.login, count(*) OVER ()
               FROM packages p
               JOIN user_packages up ON up.package_id = p.id
               JOIN users u ON u.id = up.user_id
              WHERE p.name = $1
                AND NOT EXISTS (SELECT 1 FROM user_packages o
                                 WHERE o.user_id = up.user_id AND o.package_id <> p.id)
              ORDER BY u.login LIMIT $2",
            params![&name, &limit],
        )
        .await?;
    let total = rows.first().map_or(0, |row| row.get(1));
    Ok((rows.iter().map(|row| row.get(0)).collect(), total))
}
