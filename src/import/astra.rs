//! `playgate import-astra <astra.conf>`: Cesbo Astra's users and categories
//! into playgate (issue 9; the file format is described in
//! `shared/astra-config.md`).
//!
//! Two steps: [`parse`] turns the JSON into a typed [`Plan`] (pure, no
//! database), and [`apply`] compares the plan with the database and writes
//! the differences through `store` in one transaction (or only reports them,
//! for `--dry-run`). Re-importing the same file writes nothing.
//!
//! Mapping: `users` (key = login; `type` 1/2/3 → admin/observer/user;
//! `enable`; `comment`; `token`; `ip`; `expire` → `expires_at`;
//! `conlimit`/`connlimit` → `max_sessions`; `packages` = category names) and
//! one package per `categories[].name`, whose streams are the `id`s of the
//! `make_stream` entries whose `groups` object has that category as a key.
//! Astra's password `cipher` cannot be checked outside Astra: imported users
//! get no password.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde_json::{json, Map, Value};

use crate::domain::validate;
use crate::domain::validate::clip;
use crate::domain::Login;
use crate::domain::UserKind;
use crate::store::user_import::{self, ImportUser};
use crate::store::users::UserRow;
use crate::store::{audit, packages, tokens, users, StoreError};

/// The audit log's actor for this command.
pub const ACTOR: &str = "import-astra";

/// A clear token: never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(pub String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token([hidden])")
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanUser {
    pub login: String,
    pub kind: UserKind,
    pub enabled: bool,
    pub comment: String,
    pub token: Option<Token>,
    pub ips: Vec<IpNet>,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_sessions: Option<i32>,
    /// playgate package names (categories mapped by [`package_name`]).
    pub packages: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanPackage {
    pub name: String,
    /// The Astra category it comes from.
    pub category: String,
    /// Stream ids (Astra's `X-Channel-ID`), sorted, unique.
    pub streams: Vec<String>,
}

/// What an Astra file asks for, validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// By login.
    pub users: Vec<PlanUser>,
    /// By name.
    pub packages: Vec<PlanPackage>,
    /// Names users refer to that are not categories of this file (they
    /// must already exist in playgate).
    pub other_packages: Vec<String>,
    /// Streams in the file.
    pub streams: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum AstraError {
    #[error("not valid JSON at line {line}, column {column}: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{0}")]
    Shape(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn shape(message: impl Into<String>) -> AstraError {
    AstraError::Shape(message.into())
}

fn user_error(login: &str, field: &str, message: impl fmt::Display) -> AstraError {
    shape(format!(
        "user '{}': field '{field}': {message}",
        clip(login)
    ))
}

/// What a JSON value is, for messages (never the value itself: it may be a secret).
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An integer written as a number or a string; null, missing or "" = None.
fn integer(login: &str, field: &str, value: Option<&Value>) -> Result<Option<i64>, AstraError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Ok(Some(i)),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(f as i64)),
            _ => Err(user_error(login, field, "expected an integer")),
        },
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s.trim().parse::<i64>().map(Some).map_err(|_| {
            user_error(
                login,
                field,
                format!("expected an integer, got the string '{}'", clip(s)),
            )
        }),
        Some(other) => Err(user_error(
            login,
            field,
            format!("expected an integer, got {}", type_name(other)),
        )),
    }
}

/// A boolean; Astra-style `1`/`0` and `"true"`/`"false"` are accepted too.
fn boolean(login: &str, field: &str, value: Option<&Value>) -> Result<Option<bool>, AstraError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::Number(n)) if n.as_i64() == Some(1) => Ok(Some(true)),
        Some(Value::Number(n)) if n.as_i64() == Some(0) => Ok(Some(false)),
        Some(Value::String(s)) => match s.trim() {
            "true" | "1" => Ok(Some(true)),
            "false" | "0" => Ok(Some(false)),
            _ => Err(user_error(
                login,
                field,
                format!("expected true or false, got the string '{}'", clip(s)),
            )),
        },
        Some(other) => Err(user_error(
            login,
            field,
            format!("expected true or false, got {}", type_name(other)),
        )),
    }
}

/// A string; null or missing = None. Numbers are taken as their text.
fn string(login: &str, field: &str, value: Option<&Value>) -> Result<Option<String>, AstraError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(user_error(
            login,
            field,
            format!("expected a string, got {}", type_name(other)),
        )),
    }
}

/// The playgate package name for an Astra category: playgate names have no
/// spaces or `/`, so those become `_` ("Premium Sport" → "Premium_Sport").
pub fn package_name(category: &str) -> String {
    category
        .trim()
        .chars()
        .map(|c| {
            if c == '/' || c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Parses an Astra configuration file into a plan; nothing is written.
pub fn parse(text: &str) -> Result<Plan, AstraError> {
    let root: Value = serde_json::from_str(text).map_err(|e| AstraError::Json {
        line: e.line(),
        column: e.column(),
        // serde's text ends with " at line L column C", said already.
        message: e
            .to_string()
            .split(" at line ")
            .next()
            .unwrap_or_default()
            .to_string(),
    })?;
    let Value::Object(root) = root else {
        return Err(shape(format!(
            "the file is {}, not a JSON object",
            type_name(&root)
        )));
    };

    // Categories → packages.
    let mut categories: BTreeMap<String, PlanPackage> = BTreeMap::new();
    let mut by_category: HashMap<String, String> = HashMap::new();
    match root.get("categories") {
        None | Some(Value::Null) => {}
        Some(Value::Array(entries)) => {
            for (index, entry) in entries.iter().enumerate() {
                let name = entry.get("name").and_then(Value::as_str).ok_or_else(|| {
                    shape(format!(
                        "categories[{index}]: 'name' is missing or not a string"
                    ))
                })?;
                if by_category.contains_key(name) {
                    continue;
                }
                let package = package_name(name);
                validate::package_name("name", &package).map_err(|e| {
                    shape(format!(
                        "categories[{index}] '{}': {}",
                        clip(name),
                        e.message
                    ))
                })?;
                if let Some(other) = categories.get(&package) {
                    return Err(shape(format!(
                        "categories '{}' and '{}' would both be the package '{package}'",
                        clip(&other.category),
                        clip(name)
                    )));
                }
                by_category.insert(name.to_string(), package.clone());
                categories.insert(
                    package.clone(),
                    PlanPackage {
                        name: package,
                        category: name.to_string(),
                        streams: Vec::new(),
                    },
                );
            }
        }
        Some(other) => {
            return Err(shape(format!(
                "'categories' is {}, not an array",
                type_name(other)
            )))
        }
    }

    // Streams → the packages of their categories.
    let mut streams = 0;
    match root.get("make_stream") {
        None | Some(Value::Null) => {}
        Some(Value::Array(entries)) => {
            for (index, entry) in entries.iter().enumerate() {
                let id = match entry.get("id") {
                    Some(Value::String(id)) if !id.is_empty() => id.clone(),
                    Some(Value::Number(id)) => id.to_string(),
                    _ => {
                        return Err(shape(format!(
                            "make_stream[{index}]: 'id' is missing or not a string"
                        )))
                    }
                };
                validate::patterns(std::slice::from_ref(&id)).map_err(|e| {
                    shape(format!(
                        "make_stream[{index}] '{}': not usable as a stream name: {}",
                        clip(&id),
                        e.message
                    ))
                })?;
                if id.contains('*') {
                    return Err(shape(format!(
                        "make_stream[{index}] '{}': a '*' in a stream id would be a wildcard in playgate",
                        clip(&id)
                    )));
                }
                streams += 1;
                match entry.get("groups") {
                    None | Some(Value::Null) => {}
                    Some(Value::Object(groups)) => {
                        for category in groups.keys() {
                            if let Some(package) = by_category.get(category) {
                                let package = categories.get_mut(package).expect("mapped");
                                package.streams.push(id.clone());
                            }
                        }
                    }
                    Some(other) => {
                        return Err(shape(format!(
                            "make_stream[{index}] '{}': 'groups' is {}, not an object",
                            clip(&id),
                            type_name(other)
                        )))
                    }
                }
            }
        }
        Some(other) => {
            return Err(shape(format!(
                "'make_stream' is {}, not an array",
                type_name(other)
            )))
        }
    }
    for package in categories.values_mut() {
        package.streams.sort();
        package.streams.dedup();
    }

    // Users.
    let mut plan_users = Vec::new();
    let mut other_packages = BTreeSet::new();
    let mut tokens: HashMap<String, String> = HashMap::new();
    match root.get("users") {
        None | Some(Value::Null) => {}
        Some(Value::Object(entries)) => {
            let mut logins: Vec<&String> = entries.keys().collect();
            logins.sort();
            for login in logins {
                let user = user(login, &entries[login], &by_category, &mut other_packages)?;
                if let Some(token) = &user.token {
                    if let Some(other) = tokens.insert(token.0.clone(), login.clone()) {
                        return Err(user_error(
                            login,
                            "token",
                            format!("the same token as user '{}'", clip(&other)),
                        ));
                    }
                }
                plan_users.push(user);
            }
        }
        Some(other) => {
            return Err(shape(format!(
                "'users' is {}, not an object",
                type_name(other)
            )))
        }
    }

    Ok(Plan {
        users: plan_users,
        packages: categories.into_values().collect(),
        other_packages: other_packages.into_iter().collect(),
        streams,
    })
}

fn user(
    login: &str,
    value: &Value,
    by_category: &HashMap<String, String>,
    other_packages: &mut BTreeSet<String>,
) -> Result<PlanUser, AstraError> {
    let Value::Object(fields) = value else {
        return Err(shape(format!(
            "user '{}': expected an object, got {}",
            clip(login),
            type_name(value)
        )));
    };
    if Login::parse(login).is_none() {
        return Err(shape(format!(
            "user '{}': not a valid playgate login (1-64 characters of A-Z a-z 0-9 . _ @ -)",
            clip(login)
        )));
    }
    let kind = match integer(login, "type", fields.get("type"))? {
        Some(1) => UserKind::Admin,
        Some(2) => UserKind::Observer,
        // The Astra UI creates users as type 3; a missing type is the least privilege.
        Some(3) | None => UserKind::User,
        Some(other) => {
            return Err(user_error(
                login,
                "type",
                format!("{other} is not 1 (admin), 2 (observer) or 3 (user)"),
            ))
        }
    };
    let enabled = boolean(login, "enable", fields.get("enable"))?.unwrap_or(true);
    let comment = string(login, "comment", fields.get("comment"))?.unwrap_or_default();
    let comment =
        validate::text("comment", &comment).map_err(|e| user_error(login, "comment", e.message))?;
    let token = match fields.get("token") {
        None | Some(Value::Null) => None,
        Some(Value::String(token)) if token.trim().is_empty() => None,
        Some(Value::String(token)) => {
            let token = token.trim();
            validate::token("token", token).map_err(|e| user_error(login, "token", e.message))?;
            Some(Token(token.to_string()))
        }
        Some(other) => {
            return Err(user_error(
                login,
                "token",
                format!("expected a string, got {}", type_name(other)),
            ))
        }
    };
    // Astra documents one IPv4 address; a list separated by spaces or commas
    // (and CIDR) is taken too.
    let ips = match string(login, "ip", fields.get("ip"))? {
        None => Vec::new(),
        Some(text) => {
            let parts: Vec<String> = text
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|part| !part.is_empty())
                .map(str::to_string)
                .collect();
            validate::networks("ip", &parts).map_err(|e| user_error(login, "ip", e.message))?
        }
    };
    let expires_at = match integer(login, "expire", fields.get("expire"))? {
        None | Some(0) => None,
        Some(seconds) if seconds < 0 => {
            return Err(user_error(login, "expire", "a negative unix time"))
        }
        Some(seconds) => Some(
            DateTime::from_timestamp(seconds, 0)
                .ok_or_else(|| user_error(login, "expire", "out of range"))?,
        ),
    };
    let conlimit = integer(login, "conlimit", fields.get("conlimit"))?;
    let connlimit = integer(login, "connlimit", fields.get("connlimit"))?;
    let (limit_field, limit) = match (conlimit, connlimit) {
        (Some(a), Some(b)) if a != b => {
            return Err(user_error(
                login,
                "conlimit",
                format!("conlimit {a} and connlimit {b} disagree"),
            ))
        }
        (Some(a), _) => ("conlimit", Some(a)),
        (None, b) => ("connlimit", b),
    };
    let max_sessions = match limit {
        None | Some(0) => None,
        Some(n) => {
            Some(validate::max_sessions(n).map_err(|e| user_error(login, limit_field, e.message))?)
        }
    };
    let packages = match fields.get("packages") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(names)) => {
            let mut packages = Vec::with_capacity(names.len());
            for name in names {
                let Value::String(name) = name else {
                    return Err(user_error(
                        login,
                        "packages",
                        format!("expected category names, got {}", type_name(name)),
                    ));
                };
                let package = match by_category.get(name) {
                    Some(package) => package.clone(),
                    None => {
                        let package = package_name(name);
                        validate::package_name("packages", &package)
                            .map_err(|e| user_error(login, "packages", e.message))?;
                        other_packages.insert(package.clone());
                        package
                    }
                };
                if !packages.contains(&package) {
                    packages.push(package);
                }
            }
            packages.sort();
            packages
        }
        Some(other) => {
            return Err(user_error(
                login,
                "packages",
                format!(
                    "expected an array of category names, got {}",
                    type_name(other)
                ),
            ))
        }
    };
    Ok(PlanUser {
        login: login.to_string(),
        kind,
        enabled,
        comment,
        token,
        ips,
        expires_at,
        max_sessions,
        packages,
    })
}

/// One user or package and what happens to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Created,
    /// The fields that differ.
    Updated(Vec<&'static str>),
    Unchanged,
}

#[derive(Clone, Debug, Default)]
pub struct Report {
    pub dry_run: bool,
    pub streams: usize,
    pub packages: Vec<(String, usize, Change)>,
    /// (login, kind, change)
    pub users: Vec<(String, UserKind, Change)>,
    pub tokens_added: usize,
    /// (login, kind, why) of users that cannot log in after the import.
    pub no_login: Vec<(String, UserKind, &'static str)>,
}

impl Report {
    fn count<T>(items: &[T], change: impl Fn(&T) -> &Change) -> (usize, usize, usize) {
        let mut counts = (0, 0, 0);
        for item in items {
            match change(item) {
                Change::Created => counts.0 += 1,
                Change::Updated(_) => counts.1 += 1,
                Change::Unchanged => counts.2 += 1,
            }
        }
        counts
    }

    /// (created, updated, unchanged) users.
    pub fn user_counts(&self) -> (usize, usize, usize) {
        Report::count(&self.users, |u| &u.2)
    }

    /// (created, updated, unchanged) packages.
    pub fn package_counts(&self) -> (usize, usize, usize) {
        Report::count(&self.packages, |p| &p.2)
    }

    pub fn changes_anything(&self) -> bool {
        let (uc, uu, _) = self.user_counts();
        let (pc, pu, _) = self.package_counts();
        uc + uu + pc + pu > 0
    }
}

fn line(sign: char, name: &str, detail: String, change: &Change) -> Option<String> {
    match change {
        Change::Created => Some(format!("  {sign} {name} {detail}")),
        Change::Updated(fields) => Some(format!("  ~ {name} {detail}: {}", fields.join(", "))),
        Change::Unchanged => None,
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run { "would be " } else { "" };
        let (pc, pu, pn) = self.package_counts();
        writeln!(
            f,
            "packages (from categories, {} streams): {pc} {verb}created, {pu} {verb}updated, {pn} unchanged",
            self.streams
        )?;
        for (name, streams, change) in &self.packages {
            let plural = if *streams == 1 { "" } else { "s" };
            if let Some(text) = line('+', name, format!("({streams} stream{plural})"), change) {
                writeln!(f, "{text}")?;
            }
        }
        let (uc, uu, un) = self.user_counts();
        writeln!(
            f,
            "users: {uc} {verb}created, {uu} {verb}updated, {un} unchanged; {} token(s) {verb}added",
            self.tokens_added
        )?;
        for (login, kind, change) in &self.users {
            if let Some(text) = line('+', login, format!("({})", kind.as_str()), change) {
                writeln!(f, "{text}")?;
            }
        }
        writeln!(
            f,
            "passwords: Astra keeps only a cipher of unknown algorithm; imported users get no password \
             (existing playgate passwords are kept)"
        )?;
        if self.no_login.is_empty() {
            writeln!(f, "every user has a way to log in")?;
        } else {
            writeln!(
                f,
                "{} user(s) have no way to log in (set a password or a token with the admin API):",
                self.no_login.len()
            )?;
            for (login, kind, why) in &self.no_login {
                writeln!(f, "  {login} ({}): {why}", kind.as_str())?;
            }
        }
        if self.dry_run {
            write!(f, "dry run: nothing written")
        } else if self.changes_anything() {
            write!(f, "imported")
        } else {
            write!(f, "nothing to change")
        }
    }
}

fn networks_of(row: &UserRow) -> Vec<IpNet> {
    let mut networks: Vec<IpNet> = row.ips.iter().filter_map(|n| n.parse().ok()).collect();
    networks.sort();
    networks
}

/// The fields of an existing user that the plan changes.
fn user_changes(user: &PlanUser, row: &UserRow, has_token: bool) -> Vec<&'static str> {
    let mut fields = Vec::new();
    if row.kind != user.kind.as_str() {
        fields.push("kind");
    }
    if row.enabled != user.enabled {
        fields.push("enabled");
    }
    if row.comment != user.comment {
        fields.push("comment");
    }
    let mut ips = user.ips.clone();
    ips.sort();
    if networks_of(row) != ips {
        fields.push("ips");
    }
    if row.expires_at != user.expires_at {
        fields.push("expires_at");
    }
    if row.max_sessions != user.max_sessions {
        fields.push("max_sessions");
    }
    // Sorted here: the database orders names by its collation.
    let mut packages = row.packages.clone();
    packages.sort();
    if packages != user.packages {
        fields.push("packages");
    }
    if user.token.is_some() && !has_token {
        fields.push("token");
    }
    fields
}

/// Compares the plan with the database and, unless `dry_run`, writes the
/// differences in one transaction, recorded in the audit log.
pub async fn apply(
    client: &mut crate::store::Client,
    plan: &Plan,
    dry_run: bool,
) -> Result<Report, AstraError> {
    let transaction = client.transaction().await.map_err(StoreError::from)?;
    // The packages the users name are checked under the lock a package
    // delete takes: none can vanish before the users are linked to it.
    packages::lock_assignments(&transaction).await?;
    let mut report = Report {
        dry_run,
        streams: plan.streams,
        ..Report::default()
    };

    // Packages named by users that are not categories of this file must exist.
    let existing_others = packages::get_many(&transaction, &plan.other_packages).await?;
    for name in &plan.other_packages {
        if !existing_others.iter().any(|p| &p.name == name) {
            let login = plan
                .users
                .iter()
                .find(|u| u.packages.contains(name))
                .map_or("", |u| u.login.as_str());
            return Err(user_error(
                login,
                "packages",
                format!(
                    "'{}' is neither a category of the file nor a playgate package",
                    clip(name)
                ),
            ));
        }
    }

    let names: Vec<String> = plan.packages.iter().map(|p| p.name.clone()).collect();
    let existing: HashMap<String, _> = packages::get_many(&transaction, &names)
        .await?
        .into_iter()
        .map(|p| (p.name.clone(), p))
        .collect();
    for package in &plan.packages {
        let change = match existing.get(&package.name) {
            None => Change::Created,
            Some(row) => {
                let mut streams = row.streams.clone();
                streams.sort();
                streams.dedup();
                if streams == package.streams {
                    Change::Unchanged
                } else {
                    Change::Updated(vec!["streams"])
                }
            }
        };
        report
            .packages
            .push((package.name.clone(), package.streams.len(), change));
    }

    let logins: Vec<String> = plan.users.iter().map(|u| u.login.clone()).collect();
    let rows: HashMap<String, UserRow> = users::get_many(&transaction, &logins)
        .await?
        .into_iter()
        .map(|u| (u.login.clone(), u))
        .collect();
    let with_token: Vec<&PlanUser> = plan.users.iter().filter(|u| u.token.is_some()).collect();
    let clear: Vec<String> = with_token
        .iter()
        .map(|u| u.token.as_ref().expect("filtered").0.clone())
        .collect();
    let mut has_token: HashMap<&str, bool> = HashMap::new();
    for (index, owner) in tokens::token_owners(&transaction, &clear).await? {
        let user = with_token[index];
        if owner != user.login {
            return Err(AstraError::Conflict(format!(
                "user '{}': field 'token': the token already belongs to the playgate user '{}'",
                clip(&user.login),
                clip(&owner)
            )));
        }
        has_token.insert(user.login.as_str(), true);
    }

    let mut writes = Vec::new();
    for user in &plan.users {
        let has_token = has_token.contains_key(user.login.as_str());
        let change = match rows.get(&user.login) {
            None => Change::Created,
            Some(row) => {
                let fields = user_changes(user, row, has_token);
                if fields.is_empty() {
                    Change::Unchanged
                } else {
                    Change::Updated(fields)
                }
            }
        };
        if user.token.is_some() && !has_token {
            report.tokens_added += 1;
        }
        let has_password = rows.get(&user.login).is_some_and(|r| r.has_password);
        let tokens = rows.get(&user.login).map_or(0, |r| r.tokens)
            + i64::from(user.token.is_some() && !has_token);
        let why = match user.kind {
            UserKind::User if !has_password && tokens == 0 && user.ips.is_empty() => {
                Some("no token, no ip, no password")
            }
            // The admin API takes a password (Basic) or a token (Bearer).
            UserKind::Admin | UserKind::Observer if !has_password && tokens == 0 => {
                Some("no password, no token")
            }
            _ => None,
        };
        if let Some(why) = why {
            report.no_login.push((user.login.clone(), user.kind, why));
        }
        if change != Change::Unchanged {
            writes.push(ImportUser {
                login: user.login.clone(),
                password_hash: None,
                kind: Some(user.kind),
                comment: Some(user.comment.clone()),
                ips: Some(user.ips.clone()),
                stb: None,
                expires_at: Some(user.expires_at),
                max_sessions: Some(user.max_sessions),
                // Astra has no such field: absent, so a new user gets null
                // (unlimited) and an existing one keeps what an admin set.
                max_devices: None,
                enabled: Some(user.enabled),
                packages: Some(user.packages.clone()),
                // Nor countries: kept as an admin set them.
                countries: None,
                token: user.token.as_ref().map(|t| t.0.clone()),
            });
        }
        report.users.push((user.login.clone(), user.kind, change));
    }

    if dry_run || !report.changes_anything() {
        // Nothing written: the transaction only read.
        transaction.rollback().await.map_err(StoreError::from)?;
        return Ok(report);
    }

    for (package, (_, _, change)) in plan.packages.iter().zip(&report.packages) {
        match change {
            Change::Created => {
                let comment = format!("Astra category '{}'", package.category);
                // Astra has no capacity: no cap.
                packages::insert(
                    &transaction,
                    &package.name,
                    &comment,
                    &package.streams,
                    None,
                )
                .await?;
            }
            Change::Updated(_) => {
                let changes = packages::PackageChanges {
                    streams: Some(package.streams.clone()),
                    ..Default::default()
                };
                packages::update(&transaction, &package.name, &changes).await?;
            }
            Change::Unchanged => {}
        }
    }
    let outcome = user_import::import(&transaction, &writes).await?;
    if let Some(login) = outcome.token_conflict {
        return Err(AstraError::Conflict(format!(
            "user '{}': field 'token': the token already belongs to another user",
            clip(&login)
        )));
    }
    let (uc, uu, _) = report.user_counts();
    let (pc, pu, _) = report.package_counts();
    let changed_users: Vec<&str> = report
        .users
        .iter()
        .filter(|u| u.2 != Change::Unchanged)
        .map(|u| u.0.as_str())
        .collect();
    let mut changes = Map::new();
    changes.insert(
        "users".into(),
        json!({"created": uc, "updated": uu, "logins": changed_users}),
    );
    changes.insert("packages".into(), json!({"created": pc, "updated": pu}));
    changes.insert("tokens_added".into(), json!(report.tokens_added));
    audit::record(
        &transaction,
        ACTOR,
        "import",
        "users",
        "astra.conf",
        &Value::Object(changes),
    )
    .await?;
    transaction.commit().await.map_err(StoreError::from)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../tests/fixtures/astra.conf");

    fn user<'a>(plan: &'a Plan, login: &str) -> &'a PlanUser {
        plan.users.iter().find(|u| u.login == login).unwrap()
    }

    #[test]
    fn the_example_file() {
        let plan = parse(EXAMPLE).unwrap();
        assert_eq!(plan.streams, 2);
        assert_eq!(
            plan.packages,
            vec![
                PlanPackage {
                    name: "Basic".into(),
                    category: "Basic".into(),
                    streams: vec!["a00a".into()]
                },
                PlanPackage {
                    name: "Premium".into(),
                    category: "Premium".into(),
                    streams: vec!["a00b".into()]
                },
            ]
        );
        assert!(plan.other_packages.is_empty());
        let logins: Vec<&str> = plan.users.iter().map(|u| u.login.as_str()).collect();
        assert_eq!(logins, ["admin", "subscriber42", "support"]);
        let admin = user(&plan, "admin");
        assert_eq!(admin.kind, UserKind::Admin);
        assert!(admin.token.is_none() && admin.ips.is_empty() && admin.packages.is_empty());
        let support = user(&plan, "support");
        assert_eq!(
            (support.kind, support.comment.as_str()),
            (UserKind::Observer, "NOC")
        );
        let subscriber = user(&plan, "subscriber42");
        assert_eq!(subscriber.kind, UserKind::User);
        assert!(subscriber.enabled);
        assert_eq!(subscriber.token, Some(Token("3e3db68b1486".into())));
        assert_eq!(
            subscriber.ips,
            vec!["203.0.113.42/32".parse::<IpNet>().unwrap()]
        );
        assert_eq!(
            subscriber.expires_at,
            DateTime::from_timestamp(1893456000, 0)
        );
        assert_eq!(subscriber.max_sessions, Some(2));
        assert_eq!(subscriber.packages, vec!["Basic".to_string()]);
    }

    #[test]
    fn numbers_as_strings_connlimit_and_defaults() {
        let plan = parse(
            r#"{"users": {
                "a": {"type": "3", "expire": "1893456000", "connlimit": "4", "enable": "false"},
                "b": {"expire": 0, "conlimit": 0},
                "c": {"type": 2, "expire": "", "conlimit": "0", "enable": 1}
            }}"#,
        )
        .unwrap();
        let a = user(&plan, "a");
        assert_eq!(a.kind, UserKind::User);
        assert_eq!(a.expires_at, DateTime::from_timestamp(1893456000, 0));
        assert_eq!(a.max_sessions, Some(4));
        assert!(!a.enabled);
        let b = user(&plan, "b");
        assert_eq!((b.kind, b.enabled), (UserKind::User, true));
        assert_eq!((b.expires_at, b.max_sessions), (None, None));
        let c = user(&plan, "c");
        assert_eq!(
            (c.kind, c.enabled, c.max_sessions),
            (UserKind::Observer, true, None)
        );
    }

    #[test]
    fn bad_json_names_line_and_column() {
        let error = parse("{\n  \"users\": {\n    \"a\": {\"type\": 3,}\n  }\n}").unwrap_err();
        match error {
            AstraError::Json { line, column, .. } => assert_eq!((line, column), (3, 21)),
            other => panic!("{other:?}"),
        }
        assert!(
            error_text("{\n  \"users\": {\n    \"a\": {\"type\": 3,}\n  }\n}")
                .starts_with("not valid JSON at line 3, column 21: trailing comma")
        );
    }

    fn error_text(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn wrong_shapes_name_the_login_and_field() {
        let cases = [
            (
                r#"{"users": {"bob": {"expire": "soon"}}}"#,
                "user 'bob': field 'expire'",
            ),
            (
                r#"{"users": {"bob": {"type": 7}}}"#,
                "user 'bob': field 'type'",
            ),
            (
                r#"{"users": {"bob": {"conlimit": [2]}}}"#,
                "user 'bob': field 'conlimit'",
            ),
            (
                r#"{"users": {"bob": {"conlimit": 2, "connlimit": 3}}}"#,
                "user 'bob': field 'conlimit'",
            ),
            (
                r#"{"users": {"bob": {"enable": "maybe"}}}"#,
                "user 'bob': field 'enable'",
            ),
            (
                r#"{"users": {"bob": {"ip": "not-an-ip"}}}"#,
                "user 'bob': field 'ip'",
            ),
            (
                r#"{"users": {"bob": {"packages": "Basic"}}}"#,
                "user 'bob': field 'packages'",
            ),
            (
                r#"{"users": {"bob": {"comment": {}}}}"#,
                "user 'bob': field 'comment'",
            ),
            (r#"{"users": {"bob": 3}}"#, "user 'bob': expected an object"),
            (
                r#"{"users": {"bad login": {}}}"#,
                "user 'bad login': not a valid playgate login",
            ),
            (r#"{"users": []}"#, "'users' is an array"),
            (r#"[1]"#, "the file is an array, not a JSON object"),
        ];
        for (text, expected) in cases {
            let message = error_text(text);
            assert!(message.starts_with(expected), "{text}: {message}");
        }
    }

    #[test]
    fn a_token_is_never_shown() {
        let message = error_text(r#"{"users": {"bob": {"token": {"secret": "s3cr3t-value"}}}}"#);
        assert!(
            message.contains("field 'token'") && !message.contains("s3cr3t"),
            "{message}"
        );
        let plan = parse(r#"{"users": {"bob": {"token": "s3cr3t-value"}}}"#).unwrap();
        assert!(!format!("{plan:?}").contains("s3cr3t"));
        let shared =
            error_text(r#"{"users": {"a": {"token": "s3cr3t"}, "b": {"token": "s3cr3t"}}}"#);
        assert!(
            shared.contains("same token") && !shared.contains("s3cr3t\""),
            "{shared}"
        );
    }

    #[test]
    fn categories_with_spaces_and_streams_in_several_categories() {
        let plan = parse(
            r#"{"categories": [{"name": "Premium Sport"}, {"name": "Genre"}, {"name": "Genre"}],
                "make_stream": [
                  {"id": "s1", "groups": {"Premium Sport": "Football", "Genre": "Sport"}},
                  {"id": "s2", "groups": {"Genre": "News", "Unknown": "x"}},
                  {"id": "s3"}
                ],
                "users": {"u": {"packages": ["Premium Sport", "Genre", "Legacy"]}}}"#,
        )
        .unwrap();
        let packages: Vec<(&str, Vec<&str>)> = plan
            .packages
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.streams.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            packages,
            vec![("Genre", vec!["s1", "s2"]), ("Premium_Sport", vec!["s1"])]
        );
        assert_eq!(plan.streams, 3);
        assert_eq!(
            user(&plan, "u").packages,
            ["Genre", "Legacy", "Premium_Sport"]
        );
        assert_eq!(plan.other_packages, ["Legacy"]);
    }
}
