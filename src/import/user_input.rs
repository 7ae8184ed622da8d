//! A user as the admin API and the JSON import take it (SPEC §1 fields), and
//! its one validation: `POST /users`, `PATCH /users/{login}`,
//! `POST /import` all go through `validate_input`, and `import-astra`
//! through the same field parsers of `domain::validate`.

use serde::{Deserialize, Deserializer};
use serde_json::{json, Map, Value};

use crate::domain::validate;
use crate::domain::ValidationError;
use crate::store::users::UserChanges;

/// Deserialises a present field, `null` included, as `Some(..)`; with
/// `#[serde(default)]` an absent field stays `None`.
pub fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Deserialises a present field as its JSON value, `null` included, for
/// `validate::limit_json` to judge; with `#[serde(default)]` an absent
/// field stays `None`.
pub fn json_value<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// `"token": "<clear>"` keeps that token; `"token": true` generates one.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum TokenValue {
    Generate(bool),
    Given(String),
}

/// The user fields of SPEC §1, as POST (create), PATCH (absent = unchanged;
/// `null` clears `password`, `token`, `expires_at`, `max_sessions`,
/// `max_devices`) and the import take them. The limits are taken as any
/// JSON value: a wrong type is then a 422 naming the field, like a
/// negative number.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    /// 1–64 characters of `A-Za-z0-9._@-`; required to create, renames on PATCH.
    pub login: Option<String>,
    /// Stored as a bcrypt hash only; `null` or `""` = no password.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub password: Option<Option<String>>,
    /// `user` (default), `observer` or `admin`.
    pub kind: Option<String>,
    pub comment: Option<String>,
    /// A clear token to keep (stored as SHA-256), or `true` to generate one
    /// (returned once, in the answer). On PATCH it replaces the user's tokens;
    /// `null` removes them.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>, example = json!("8732684ydbeb8"))]
    pub token: Option<Option<TokenValue>>,
    /// IP addresses or CIDR networks (IPv4 or IPv6) bound to the user.
    pub ips: Option<Vec<String>>,
    pub stb: Option<String>,
    /// RFC 3339; after it the account may not play. `null` = never.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Option<String>>,
    /// Concurrent sessions, ≥ 0; `null` = unlimited.
    #[serde(default, deserialize_with = "json_value")]
    #[schema(value_type = Option<i32>, minimum = 0)]
    pub max_sessions: Option<Value>,
    /// Distinct devices the user may watch on at once, ≥ 0; `null` =
    /// unlimited. A device is the `device` id the streamer, a signed link or
    /// `/hook/decide` sends, else the client IP and user agent (SPEC §11).
    #[serde(default, deserialize_with = "json_value")]
    #[schema(value_type = Option<i32>, minimum = 0)]
    pub max_devices: Option<Value>,
    /// Package names (must exist); empty = every stream.
    pub packages: Option<Vec<String>>,
    /// ISO 3166-1 alpha-2 codes (`XX` = unknown) the user may watch from,
    /// by GeoIP; empty = anywhere. Otherwise `country_mismatch`.
    pub countries: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

/// The validated input (passwords still clear: hashed by the caller).
#[derive(Debug, Default)]
pub struct Validated {
    pub changes: UserChanges,
    pub password: Option<Option<String>>,
    pub token: Option<Option<TokenValue>>,
    pub packages: Option<Vec<String>>,
    /// What the audit log records: fields and values, secrets as "[set]".
    pub audit: Map<String, Value>,
}

pub fn validate_input(input: UserInput, creating: bool) -> Result<Validated, ValidationError> {
    let mut v = Validated::default();
    match (&input.login, creating) {
        (Some(login), _) => {
            v.changes.login = Some(validate::login("login", login)?.into_string());
            v.audit.insert("login".into(), json!(login));
        }
        (None, true) => return Err(ValidationError::new("login", "login is required")),
        (None, false) => {}
    }
    if let Some(password) = input.password {
        let password = password.filter(|p| !p.is_empty());
        if password.as_ref().is_some_and(|p| p.len() > 72) {
            return Err(ValidationError::new("password", "longer than 72 bytes"));
        }
        v.audit
            .insert("password".into(), json!(password.as_ref().map(|_| "[set]")));
        v.password = Some(password);
    }
    if let Some(kind) = &input.kind {
        v.changes.kind = Some(validate::kind(kind)?);
        v.audit.insert("kind".into(), json!(kind));
    }
    if let Some(comment) = &input.comment {
        v.changes.comment = Some(validate::text("comment", comment)?);
        v.audit.insert("comment".into(), json!(comment));
    }
    if let Some(token) = input.token {
        match &token {
            Some(TokenValue::Given(clear)) => {
                validate::token("token", clear)?;
                v.audit.insert("token".into(), json!("[set]"));
            }
            Some(TokenValue::Generate(true)) => {
                v.audit.insert("token".into(), json!("[generated]"));
            }
            Some(TokenValue::Generate(false)) | None => {
                v.audit.insert("token".into(), Value::Null);
            }
        }
        v.token = Some(token.filter(|t| !matches!(t, TokenValue::Generate(false))));
    }
    if let Some(ips) = &input.ips {
        let networks = validate::networks("ips", ips)?;
        v.audit.insert(
            "ips".into(),
            json!(networks.iter().map(ToString::to_string).collect::<Vec<_>>()),
        );
        v.changes.ips = Some(networks);
    }
    if let Some(stb) = &input.stb {
        v.changes.stb = Some(validate::text("stb", stb)?);
        v.audit.insert("stb".into(), json!(stb));
    }
    if let Some(expires_at) = &input.expires_at {
        let at = expires_at
            .as_deref()
            .map(|text| validate::time("expires_at", text))
            .transpose()?;
        v.audit.insert("expires_at".into(), json!(at));
        v.changes.expires_at = Some(at);
    }
    if let Some(max_sessions) = &input.max_sessions {
        let max = validate::limit_json("max_sessions", max_sessions)?;
        v.audit.insert("max_sessions".into(), json!(max));
        v.changes.max_sessions = Some(max);
    }
    if let Some(max_devices) = &input.max_devices {
        let max = validate::limit_json("max_devices", max_devices)?;
        v.audit.insert("max_devices".into(), json!(max));
        v.changes.max_devices = Some(max);
    }
    if let Some(packages) = input.packages {
        let mut names = Vec::with_capacity(packages.len());
        for name in packages {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        v.audit.insert("packages".into(), json!(names));
        v.packages = Some(names);
    }
    if let Some(countries) = &input.countries {
        let codes = crate::domain::access_rule::countries("countries", countries)?;
        v.audit.insert("countries".into(), json!(codes));
        v.changes.countries = Some(codes);
    }
    if let Some(enabled) = input.enabled {
        v.changes.enabled = Some(enabled);
        v.audit.insert("enabled".into(), json!(enabled));
    }
    Ok(v)
}
