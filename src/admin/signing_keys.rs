//! `/api/v1/signing-keys` and `/api/v1/signing-keys/{id}` (SPEC §9): the
//! keys playback links are signed with. Admins only, reads included: a
//! key's format and options tell how its links are made. The secret is
//! given or generated from the operating system's CSPRNG, answered once (by
//! the POST that creates the key), and never listed, audited or logged.
//! Every enabled key is in each replica's policy view within a second of a
//! change (NOTIFY `signing_keys`).

use std::fmt;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::auth::{AdminJson, AdminUser, ObserverUser};
use super::{audited, Audit, Page, PageQuery};
use crate::domain::validate::{self, clip};
use crate::domain::{UserKind, ValidationError};
use crate::http::ApiError;
use crate::http::AppState;
use crate::http::ErrorBody;
use crate::links::{self, KeyOptions};
use crate::store::signing_keys::{self, NewSigningKey, SigningKeyRow};

/// A key as `POST /api/v1/signing-keys` takes it. `Debug` hides the secret.
#[derive(Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SigningKeyInput {
    /// Required: the key id links name, 1–32 of `a-z0-9-`.
    pub id: Option<String>,
    /// Required: `playgate`, `securetoken`, `nginx`, `wowza` or `akamai`.
    pub format: Option<String>,
    /// 16–256 bytes without control characters (`akamai`: hex, an even
    /// number of digits); absent or `null`: generated, 256 bits (43
    /// characters of base64url, `akamai`: 64 hex digits). Answered once.
    pub secret: Option<String>,
    /// A JSON object of the format's options (absent ones take their
    /// defaults): `securetoken` `{"subject": "stream"|"path", "check_ip":
    /// bool}`, `nginx` `{"template": "…$secret…"}`, `wowza` `{"prefix":
    /// "[a-z0-9]+", "algorithm": "sha256"|"sha384"|"sha512", "check_ip":
    /// bool}`, `akamai` `{"param": "…", "algorithm": "sha256"|"sha1"|"md5"}`,
    /// `playgate` none.
    #[schema(value_type = Option<Object>)]
    pub options: Option<Value>,
    pub comment: Option<String>,
    /// Default `true`.
    pub enabled: Option<bool>,
}

impl fmt::Debug for SigningKeyInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyInput")
            .field("id", &self.id)
            .field("format", &self.format)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("options", &self.options)
            .field("comment", &self.comment)
            .field("enabled", &self.enabled)
            .finish()
    }
}

/// What `PATCH /api/v1/signing-keys/{id}` changes; any other field is a
/// 422 (a key's id, format, secret and options are what its links were
/// made with: make a new key instead).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SigningKeyChanges {
    /// A disabled key's links are refused on every replica within a second.
    pub enabled: Option<bool>,
    /// `null` empties it.
    pub comment: Option<String>,
}

/// A created key: the secret appears here and nowhere else, ever.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedSigningKey {
    #[serde(flatten)]
    pub row: SigningKeyRow,
    pub secret: String,
}

impl fmt::Debug for CreatedSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedSigningKey")
            .field("row", &self.row)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// The link formats of SPEC §9, as the verifier knows them.
pub use crate::links::LinkFormat as Format;

const MIN_SECRET: usize = 16;
const MAX_SECRET: usize = 256;
/// The options as JSON text at most: a template, a prefix, a name or two.
const MAX_OPTIONS: usize = 1024;

/// 1–32 of `a-z0-9-`.
pub fn key_id(value: &str) -> Result<String, ValidationError> {
    // The verifier's rule, so that every stored key parses.
    if links::validate_key_id(value).is_ok() {
        Ok(value.to_string())
    } else {
        Err(ValidationError::new(
            "id",
            format!(
                "'{}' is not a valid key id: 1-32 of a-z, 0-9 and '-'",
                clip(value)
            ),
        ))
    }
}

pub fn format(value: &str) -> Result<Format, ValidationError> {
    Format::parse(value).ok_or_else(|| {
        ValidationError::new(
            "format",
            format!(
                "'{}' is not playgate, securetoken, nginx, wowza or akamai",
                clip(value)
            ),
        )
    })
}

/// A given secret: 16–256 bytes, no control characters; `akamai`'s is hex
/// (an even number of digits), since its HMAC key is the hex-decoded
/// secret. The messages never quote it.
pub fn secret(format: Format, value: &str) -> Result<(), ValidationError> {
    let problem = if !(MIN_SECRET..=MAX_SECRET).contains(&value.len()) {
        Some(format!(
            "a secret has {MIN_SECRET}-{MAX_SECRET} bytes (this one has {}); leave it out to generate one",
            value.len()
        ))
    } else if value.chars().any(char::is_control) {
        Some("a secret has no control characters".to_string())
    } else if links::validate_secret(format, value).is_err() {
        // Within the length above, only akamai's hex rule is left to fail.
        Some(
            "an akamai secret is hexadecimal, an even number of digits (its HMAC key is the decoded bytes)"
                .to_string(),
        )
    } else {
        None
    };
    match problem {
        Some(problem) => Err(ValidationError::new("secret", problem)),
        None => Ok(()),
    }
}

/// 256 bits from the operating system's CSPRNG (`links::generate_secret`).
pub fn generate_secret(format: Format) -> Result<String, ApiError> {
    Ok(links::generate_secret(format))
}

/// The format's options: a JSON object (absent or `null`: `{}`) of the
/// options it knows, each valid as the verifier will read it; kept as given.
pub fn options(format: Format, value: Option<Value>) -> Result<Value, ValidationError> {
    let value = value.unwrap_or(Value::Null);
    if value.to_string().len() > MAX_OPTIONS {
        return Err(ValidationError::new(
            "options",
            format!("options have at most {MAX_OPTIONS} bytes of JSON"),
        ));
    }
    let control = value.as_object().is_some_and(|fields| {
        fields
            .values()
            .any(|v| v.as_str().is_some_and(|t| t.chars().any(char::is_control)))
    });
    if control {
        return Err(ValidationError::new(
            "options",
            "options have no control characters",
        ));
    }
    KeyOptions::from_json(format, &value).map_err(|message| {
        ValidationError::new(
            "options",
            message.trim_start_matches("options: ").to_string(),
        )
    })?;
    Ok(match value {
        Value::Null => Value::Object(Map::new()),
        given => given,
    })
}

/// Keys are for admins only, reads included: an observer, who may read the
/// rest of the API, gets 403 here.
fn admin_only(caller: &ObserverUser) -> Result<(), ApiError> {
    if caller.0.kind == UserKind::Admin {
        Ok(())
    } else {
        Err(ApiError::forbidden("signing keys are for admins only"))
    }
}

#[utoipa::path(get, path = "/api/v1/signing-keys", tag = "signing-keys", params(PageQuery),
    responses((status = 200, body = Page<SigningKeyRow>, description = "the keys, oldest first; never their secrets"),
              (status = 401), (status = 403, description = "not an admin (observers included)"),
              (status = 422, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn list(
    caller: ObserverUser,
    state: web::Data<AppState>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    admin_only(&caller)?;
    let (limit, offset) = page.bounds()?;
    let client = state.pool.get().await?;
    let (items, total) = signing_keys::list(&client, limit, offset).await?;
    Ok(HttpResponse::Ok().json(Page { items, total }))
}

#[utoipa::path(post, path = "/api/v1/signing-keys", tag = "signing-keys", request_body = SigningKeyInput,
    responses((status = 201, body = CreatedSigningKey, description = "the key, with its secret: the only time it is shown"),
              (status = 400, body = ErrorBody), (status = 401), (status = 403),
              (status = 409, body = ErrorBody, description = "a key with this id exists"),
              (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn create(
    AdminJson(caller, input): AdminJson<SigningKeyInput>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = input
        .id
        .as_deref()
        .ok_or_else(|| ApiError::invalid("id", "id is required"))
        .and_then(|id| Ok(key_id(id)?))?;
    let format = input
        .format
        .as_deref()
        .ok_or_else(|| {
            ApiError::invalid(
                "format",
                "format is required (playgate, securetoken, nginx, wowza or akamai)",
            )
        })
        .and_then(|f| Ok(format(f)?))?;
    let options = options(format, input.options)?;
    let comment = validate::text("comment", input.comment.as_deref().unwrap_or(""))?;
    let enabled = input.enabled.unwrap_or(true);
    let (secret, how) = match input.secret {
        Some(given) => {
            self::secret(format, &given)?;
            (given, "[set]")
        }
        None => (generate_secret(format)?, "[generated]"),
    };
    let row = audited(&state, &caller, async |transaction| {
        let key = NewSigningKey {
            id: &id,
            format: format.as_str(),
            secret: &secret,
            options: &options,
            comment: &comment,
            enabled,
        };
        let row = signing_keys::insert(transaction, &key)
            .await?
            .ok_or_else(|| {
                ApiError::conflict(
                    "id",
                    format!("a signing key '{id}' exists already: pick another id"),
                )
            })?;
        let changes = json!({
            "format": row.format, "options": row.options, "comment": row.comment,
            "enabled": row.enabled, "secret": how,
        });
        Ok((
            row,
            Audit::policy("create", "signing_key", id.as_str(), changes),
        ))
    })
    .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/signing-keys/{}", row.id)))
        .json(CreatedSigningKey { row, secret }))
}

#[utoipa::path(get, path = "/api/v1/signing-keys/{id}", tag = "signing-keys", params(("id" = String, Path)),
    responses((status = 200, body = SigningKeyRow, description = "the key, never its secret"),
              (status = 401), (status = 403), (status = 404, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn get(
    caller: ObserverUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    admin_only(&caller)?;
    let client = state.pool.get().await?;
    let row = signing_keys::get(&client, &id)
        .await?
        .ok_or_else(|| ApiError::no_such("signing key", &id))?;
    Ok(HttpResponse::Ok().json(row))
}

/// `enabled` and `comment`, from a PATCH body; any other field is a 422.
fn changes(body: Map<String, Value>) -> Result<(Option<bool>, Option<String>), ApiError> {
    let (mut enabled, mut comment) = (None, None);
    for (name, value) in body {
        match name.as_str() {
            "enabled" => match value {
                Value::Bool(on) => enabled = Some(on),
                _ => {
                    return Err(ApiError::invalid(
                        "enabled",
                        "enabled must be true or false",
                    ))
                }
            },
            "comment" => match value {
                Value::String(text) => comment = Some(validate::text("comment", &text)?),
                Value::Null => comment = Some(String::new()),
                _ => return Err(ApiError::invalid("comment", "comment must be a string")),
            },
            "id" | "format" | "secret" | "options" => {
                let field = match name.as_str() {
                    "id" => "id",
                    "format" => "format",
                    "secret" => "secret",
                    _ => "options",
                };
                return Err(ApiError::invalid(
                    field,
                    format!(
                        "a key's {field} cannot be changed (its links were made with it): create another key, then delete this one"
                    ),
                ));
            }
            other => {
                return Err(ApiError::new(
                    actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
                    format!(
                        "unknown field '{}': PATCH changes enabled and comment only",
                        clip(other)
                    ),
                ))
            }
        }
    }
    Ok((enabled, comment))
}

#[utoipa::path(patch, path = "/api/v1/signing-keys/{id}", tag = "signing-keys", params(("id" = String, Path)),
    request_body = SigningKeyChanges,
    responses((status = 200, body = SigningKeyRow), (status = 400, body = ErrorBody), (status = 401), (status = 403),
              (status = 404, body = ErrorBody), (status = 415, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "a field other than enabled and comment, or an invalid one")),
    security(("basic" = []), ("bearer" = [])))]
pub async fn update(
    AdminJson(caller, body): AdminJson<Map<String, Value>>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (enabled, comment) = changes(body)?;
    let mut audit = Map::new();
    if let Some(enabled) = enabled {
        audit.insert("enabled".into(), json!(enabled));
    }
    if let Some(comment) = &comment {
        audit.insert("comment".into(), json!(comment));
    }
    let row = audited(&state, &caller, async |transaction| {
        let row = signing_keys::update(transaction, &id, enabled, comment.as_deref())
            .await?
            .ok_or_else(|| ApiError::no_such("signing key", &id))?;
        let entry = Audit::policy("update", "signing_key", id.as_str(), Value::Object(audit));
        Ok((row, entry))
    })
    .await?;
    Ok(HttpResponse::Ok().json(row))
}

#[utoipa::path(delete, path = "/api/v1/signing-keys/{id}", tag = "signing-keys", params(("id" = String, Path)),
    responses((status = 204, description = "deleted: its links are refused on every replica within a second"),
              (status = 401), (status = 403), (status = 404, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn delete(
    caller: AdminUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    audited(&state, &caller, async |transaction| {
        let row = signing_keys::delete(transaction, &id)
            .await?
            .ok_or_else(|| ApiError::no_such("signing key", &id))?;
        let changes = json!({"format": row.format});
        Ok((
            (),
            Audit::policy("delete", "signing_key", id.as_str(), changes),
        ))
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for good in ["k1", "2026-rotation", "a", &"x".repeat(32)] {
            assert_eq!(key_id(good).unwrap(), good);
        }
        for bad in ["", "K1", "k_1", "k 1", "ключ", &"x".repeat(33)] {
            assert_eq!(key_id(bad).unwrap_err().field, "id", "{bad}");
        }
    }

    #[test]
    fn formats() {
        for format in Format::ALL {
            assert_eq!(self::format(format.as_str()), Ok(format));
        }
        assert_eq!(self::format("hmac").unwrap_err().field, "format");
        assert_eq!(self::format("Playgate").unwrap_err().field, "format");
    }

    #[test]
    fn given_secrets() {
        let ok = "0123456789abcdef";
        assert!(secret(Format::Playgate, ok).is_ok());
        assert!(secret(Format::Akamai, ok).is_ok());
        assert!(secret(Format::Akamai, &"AB".repeat(32)).is_ok());
        assert!(secret(Format::Nginx, "with spaces and ünïcode!").is_ok());
        assert!(secret(Format::Wowza, &"x".repeat(256)).is_ok());
        for (format, bad) in [
            (Format::Playgate, "short"),
            (Format::Playgate, &*"x".repeat(257)),
            (Format::Playgate, "0123456789abcdef\n"),
            (Format::SecureToken, "0123456789\0abcdef"),
            (Format::Akamai, "0123456789abcdefa"),
            (Format::Akamai, "0123456789abcdeg"),
        ] {
            let error = secret(format, bad).unwrap_err();
            assert_eq!(error.field, "secret", "{bad:?}");
            assert!(!error.message.contains(bad), "{}", error.message);
        }
    }

    #[test]
    fn generated_secrets() {
        for format in Format::ALL {
            let one = generate_secret(format).unwrap();
            let other = generate_secret(format).unwrap();
            assert_ne!(one, other);
            assert!(secret(format, &one).is_ok(), "{format:?}: {one}");
            if format == Format::Akamai {
                assert_eq!(one.len(), 64);
                assert!(one
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
            } else {
                assert_eq!(one.len(), 43);
                assert!(one
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            }
        }
    }

    #[test]
    fn options_per_format() {
        let ok = |format, value: Value| options(format, Some(value.clone())).map(|_| ());
        assert_eq!(options(Format::Playgate, None), Ok(json!({})));
        assert_eq!(options(Format::Nginx, Some(Value::Null)), Ok(json!({})));
        for (format, good) in [
            (Format::Playgate, json!({})),
            (
                Format::SecureToken,
                json!({"subject": "path", "check_ip": false}),
            ),
            (Format::SecureToken, json!({"subject": "stream"})),
            (
                Format::Nginx,
                json!({"template": "$secure_link_expires$uri$remote_addr $secret"}),
            ),
            (
                Format::Wowza,
                json!({"prefix": "wowzatoken", "algorithm": "sha512", "check_ip": true}),
            ),
            (
                Format::Akamai,
                json!({"param": "__token__", "algorithm": "md5"}),
            ),
        ] {
            assert_eq!(ok(format, good.clone()), Ok(()), "{format:?} {good}");
            assert_eq!(options(format, Some(good.clone())), Ok(good));
        }
        for (format, bad) in [
            (Format::Playgate, json!([])),
            (Format::Playgate, json!("x")),
            (Format::Playgate, json!({"subject": "stream"})),
            (Format::SecureToken, json!({"subject": "name"})),
            (Format::SecureToken, json!({"check_ip": "no"})),
            (Format::SecureToken, json!({"template": "$secret"})),
            (Format::Nginx, json!({"template": "$uri"})),
            (Format::Nginx, json!({"template": 1})),
            (Format::Nginx, json!({"template": "$secret\n"})),
            (Format::Wowza, json!({"prefix": "wow za"})),
            (Format::Wowza, json!({"prefix": ""})),
            (Format::Wowza, json!({"algorithm": "md5"})),
            (Format::Wowza, json!({"param": "x"})),
            (Format::Akamai, json!({"param": "a=b"})),
            (Format::Akamai, json!({"param": ""})),
            (Format::Akamai, json!({"algorithm": "sha384"})),
            (Format::Akamai, json!({"check_ip": true})),
        ] {
            assert_eq!(
                ok(format, bad.clone()).unwrap_err().field,
                "options",
                "{format:?} {bad}"
            );
        }
    }

    #[test]
    fn patches_change_enabled_and_comment_only() {
        let body = |value: Value| value.as_object().unwrap().clone();
        assert_eq!(
            changes(body(json!({"enabled": false, "comment": "old"}))).unwrap(),
            (Some(false), Some("old".into()))
        );
        assert_eq!(
            changes(body(json!({"comment": null}))).unwrap(),
            (None, Some(String::new()))
        );
        assert_eq!(changes(body(json!({}))).unwrap(), (None, None));
        for (bad, field) in [
            (json!({"enabled": "no"}), Some("enabled")),
            (json!({"comment": 3}), Some("comment")),
            (json!({"secret": "0123456789abcdef"}), Some("secret")),
            (json!({"format": "nginx"}), Some("format")),
            (json!({"options": {}}), Some("options")),
            (json!({"id": "k2"}), Some("id")),
            (json!({"colour": "red"}), None),
        ] {
            let error = changes(body(bad.clone())).unwrap_err();
            assert_eq!(error.status.as_u16(), 422, "{bad}");
            assert_eq!(error.field, field, "{bad}");
        }
    }

    #[test]
    fn debug_hides_secrets() {
        let input = SigningKeyInput {
            id: Some("k1".into()),
            secret: Some("hidden-secret-0123456789".into()),
            ..SigningKeyInput::default()
        };
        let shown = format!("{input:?}");
        assert!(
            shown.contains("k1") && !shown.contains("hidden-secret"),
            "{shown}"
        );
    }
}
