//! `/api/v1/streamers` and `/api/v1/streamers/{name}` (SPEC §12): the
//! streaming servers playgate tells to drop a viewer when it ends the
//! viewer's session itself. The control API's password is write-only:
//! never answered, audited or logged.

use std::fmt;

use actix_web::{web, HttpResponse};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::{AdminJson, AdminUser, ObserverUser};
use super::{audited, Audit, Page, PageQuery};
use crate::domain::validate::{self, clip};
use crate::http::ApiError;
use crate::http::AppState;
use crate::http::ErrorBody;
use crate::outbox::streamer_calls;
use crate::store::streamers::{self, StreamerCallRow, StreamerRow, StreamerWrite};

/// The hook route names of the streamers with a control API playgate can call.
pub const KINDS: [&str; 5] = ["nginx-rtmp", "srs", "mediamtx", "astra", "flussonic"];

/// A streamer as POST takes it, and the fields PATCH may change (absent =
/// unchanged). `Debug` hides the password.
#[derive(Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamerInput {
    /// POST only: 1–64 of `A-Za-z0-9._-`, starting with a letter or digit.
    pub name: Option<String>,
    /// `nginx-rtmp`, `srs`, `mediamtx`, `astra` or `flussonic`.
    pub kind: Option<String>,
    /// The control API's base URL, http or https, without credentials
    /// (`http://10.0.0.5:8080/control` for nginx-rtmp's `rtmp_control`
    /// location, `http://10.0.0.6:1985` for SRS, `http://10.0.0.7:9997` for
    /// MediaMTX, `http://10.0.0.8:8000` for Astra and Flussonic).
    pub control_url: Option<String>,
    /// HTTP Basic user for the control API; empty = none.
    pub username: Option<String>,
    /// Write-only; `""` clears it.
    pub password: Option<String>,
    /// The networks its hook calls come from (addresses or CIDR): a
    /// session belongs to the streamer whose network holds the caller's
    /// address, the most specific one.
    pub addresses: Option<Vec<String>>,
    pub comment: Option<String>,
}

impl fmt::Debug for StreamerInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamerInput")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("control_url", &self.control_url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("addresses", &self.addresses)
            .field("comment", &self.comment)
            .finish()
    }
}

fn name(value: &str) -> Result<String, ApiError> {
    let valid = (1..=64).contains(&value.len())
        && value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(value.to_string())
    } else {
        Err(ApiError::invalid(
            "name",
            format!(
                "'{}' is not a streamer name: 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit",
                clip(value)
            ),
        ))
    }
}

fn kind(value: &str) -> Result<&'static str, ApiError> {
    KINDS
        .iter()
        .find(|kind| **kind == value)
        .copied()
        .ok_or_else(|| {
            ApiError::invalid(
                "kind",
                format!(
                    "'{}' is not a streamer kind with a control API: {}",
                    clip(value),
                    KINDS.join(", ")
                ),
            )
        })
}

/// An http(s) URL with a host and no credentials in it (they belong in
/// `username`/`password`, which are never shown).
fn control_url(value: &str) -> Result<String, ApiError> {
    let invalid = |why: &str| ApiError::invalid("control_url", why.to_string());
    let value = value.trim();
    let rest = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"))
        .ok_or_else(|| invalid("must start with http:// or https://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(invalid("must name a host"));
    }
    if authority.contains('@') {
        return Err(invalid(
            "must not hold credentials: give username and password instead",
        ));
    }
    if value.contains(['?', '#']) || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            "must be a base URL without query, fragment or spaces",
        ));
    }
    if value.len() > 1024 {
        return Err(invalid("longer than 1024 bytes"));
    }
    Ok(value.trim_end_matches('/').to_string())
}

fn credential(field: &'static str, value: &str) -> Result<String, ApiError> {
    if value.len() > 256 || value.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            "at most 256 bytes, no control characters",
        ));
    }
    Ok(value.to_string())
}

fn addresses(values: &[String]) -> Result<Vec<IpNet>, ApiError> {
    if values.is_empty() {
        return Err(ApiError::invalid(
            "addresses",
            "at least one network its hook calls come from is required",
        ));
    }
    if values.len() > 256 {
        return Err(ApiError::invalid("addresses", "at most 256 networks"));
    }
    Ok(validate::networks("addresses", values)?
        .into_iter()
        .map(|network| network.trunc())
        .collect())
}

/// Another streamer holding one of the networks: 409, naming both.
async fn check_networks_free(
    transaction: &deadpool_postgres::Transaction<'_>,
    name: &str,
    networks: &[IpNet],
) -> Result<(), ApiError> {
    if let Some((network, owner)) = streamers::network_taken(transaction, name, networks).await? {
        return Err(ApiError::conflict(
            "addresses",
            format!("{network} already belongs to streamer '{owner}'"),
        ));
    }
    Ok(())
}

/// What the audit log keeps of a streamer: never the password.
fn audited_fields(row: &StreamerRow) -> serde_json::Value {
    json!({"kind": row.kind, "control_url": row.control_url, "username": row.username,
           "password": if row.password_set { "[set]" } else { "" },
           "addresses": row.addresses, "comment": row.comment})
}

#[utoipa::path(get, path = "/api/v1/streamers", tag = "streamers", params(PageQuery),
    responses((status = 200, body = Page<StreamerRow>), (status = 401), (status = 403), (status = 422, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn list(
    _caller: ObserverUser,
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (limit, offset) = query.bounds()?;
    let client = state.pool.get().await?;
    let (items, total) = streamers::list(&client, limit, offset).await?;
    Ok(HttpResponse::Ok().json(Page { items, total }))
}

#[utoipa::path(post, path = "/api/v1/streamers", tag = "streamers", request_body = StreamerInput,
    responses((status = 201, body = StreamerRow), (status = 400, body = ErrorBody), (status = 401), (status = 403),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn create(
    AdminJson(caller, input): AdminJson<StreamerInput>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let name = name(
        input
            .name
            .as_deref()
            .ok_or_else(|| ApiError::invalid("name", "name is required"))?,
    )?;
    let kind = kind(
        input
            .kind
            .as_deref()
            .ok_or_else(|| ApiError::invalid("kind", "kind is required"))?,
    )?;
    let control_url = control_url(
        input
            .control_url
            .as_deref()
            .ok_or_else(|| ApiError::invalid("control_url", "control_url is required"))?,
    )?;
    let username = credential("username", input.username.as_deref().unwrap_or(""))?;
    let password = input
        .password
        .as_deref()
        .map(|password| credential("password", password))
        .transpose()?;
    let networks = addresses(input.addresses.as_deref().unwrap_or_default())?;
    let comment = validate::text("comment", input.comment.as_deref().unwrap_or(""))?;
    let row = audited(&state, &caller, async |transaction| {
        check_networks_free(transaction, &name, &networks).await?;
        let write = StreamerWrite {
            kind,
            control_url: &control_url,
            username: &username,
            password: password.as_deref(),
            addresses: &networks,
            comment: &comment,
        };
        let row = streamers::insert(transaction, &name, &write).await?;
        let entry = Audit::other("create", "streamer", name.as_str(), audited_fields(&row));
        Ok((row, entry))
    })
    .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/streamers/{}", row.name)))
        .json(row))
}

#[utoipa::path(get, path = "/api/v1/streamers/{name}", tag = "streamers", params(("name" = String, Path)),
    responses((status = 200, body = StreamerRow), (status = 401), (status = 403), (status = 404, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn get(
    _caller: ObserverUser,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    let row = streamers::get(&client, &name)
        .await?
        .ok_or_else(|| ApiError::no_such("streamer", &name))?;
    Ok(HttpResponse::Ok().json(row))
}

#[utoipa::path(patch, path = "/api/v1/streamers/{name}", tag = "streamers", params(("name" = String, Path)),
    request_body = StreamerInput,
    description = "Changes the given fields; `name` is the streamer itself and cannot change. `addresses` replaces the list; `password` absent keeps it, `\"\"` clears it.",
    responses((status = 200, body = StreamerRow), (status = 400, body = ErrorBody), (status = 401), (status = 403),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn update(
    AdminJson(caller, input): AdminJson<StreamerInput>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    if input.name.as_deref().is_some_and(|given| given != name) {
        return Err(ApiError::invalid(
            "name",
            "cannot be changed: create the streamer under the new name and delete this one",
        ));
    }
    let kind = input.kind.as_deref().map(kind).transpose()?;
    let control_url = input.control_url.as_deref().map(control_url).transpose()?;
    let username = input
        .username
        .as_deref()
        .map(|username| credential("username", username))
        .transpose()?;
    let password = input
        .password
        .as_deref()
        .map(|password| credential("password", password))
        .transpose()?;
    let networks = input.addresses.as_deref().map(addresses).transpose()?;
    let comment = input
        .comment
        .as_deref()
        .map(|comment| validate::text("comment", comment))
        .transpose()?;
    let row = audited(&state, &caller, async |transaction| {
        let before = streamers::get_for_update(transaction, &name)
            .await?
            .ok_or_else(|| ApiError::no_such("streamer", &name))?;
        let before_networks = before
            .addresses
            .iter()
            .map(|network| validate::network("addresses", network))
            .collect::<Result<Vec<_>, _>>()?;
        let networks = networks.unwrap_or(before_networks);
        check_networks_free(transaction, &name, &networks).await?;
        let write = StreamerWrite {
            kind: kind.unwrap_or(&before.kind),
            control_url: control_url.as_deref().unwrap_or(&before.control_url),
            username: username.as_deref().unwrap_or(&before.username),
            password: password.as_deref(),
            addresses: &networks,
            comment: comment.as_deref().unwrap_or(&before.comment),
        };
        let row = streamers::update(transaction, &name, &write)
            .await?
            .ok_or_else(|| ApiError::no_such("streamer", &name))?;
        let mut changes = json!({"before": audited_fields(&before), "after": audited_fields(&row)});
        if password.is_some() {
            changes["password_changed"] = json!(true);
        }
        Ok((
            row,
            Audit::other("update", "streamer", name.as_str(), changes),
        ))
    })
    .await?;
    Ok(HttpResponse::Ok().json(row))
}

#[utoipa::path(delete, path = "/api/v1/streamers/{name}", tag = "streamers", params(("name" = String, Path)),
    description = "Deletes the streamer with its networks and its drop calls, pending ones included.",
    responses((status = 204), (status = 401), (status = 403), (status = 404, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn delete(
    caller: AdminUser,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    audited(&state, &caller, async |transaction| {
        let row = streamers::delete(transaction, &name)
            .await?
            .ok_or_else(|| ApiError::no_such("streamer", &name))?;
        let entry = Audit::other("delete", "streamer", name.as_str(), audited_fields(&row));
        Ok(((), entry))
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/api/v1/streamers/{name}/calls", tag = "streamers",
    params(("name" = String, Path), PageQuery),
    description = "The drop calls made (or still to make) to this streamer, newest first.",
    responses((status = 200, body = Page<StreamerCallRow>), (status = 401), (status = 403),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn calls(
    _caller: ObserverUser,
    state: web::Data<AppState>,
    name: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (limit, offset) = query.bounds()?;
    let client = state.pool.get().await?;
    if streamers::get(&client, &name).await?.is_none() {
        return Err(ApiError::no_such("streamer", &name));
    }
    let (items, total) = streamers::calls(&client, &name, limit, offset).await?;
    Ok(HttpResponse::Ok().json(Page { items, total }))
}

/// `POST /api/v1/streamers/{name}/test`: whether the control API answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProbeAnswer {
    pub ok: bool,
    /// What the control API answered, or why it could not be reached.
    pub detail: String,
}

#[utoipa::path(post, path = "/api/v1/streamers/{name}/test", tag = "streamers", params(("name" = String, Path)),
    description = "Calls the control API once with a request that changes nothing (nginx-rtmp: a drop of client 0, which no connection is; SRS `GET /api/v1/versions`; MediaMTX `GET /v3/paths/list`; Astra `{\"cmd\": \"sessions\"}`; Flussonic `GET /streamer/api/v3/sessions`) and says whether it answered with these credentials.",
    responses((status = 200, body = ProbeAnswer), (status = 401), (status = 403), (status = 404, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn test(
    _caller: AdminUser,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let api = {
        let client = state.pool.get().await?;
        streamers::control_api(&client, &name)
            .await?
            .ok_or_else(|| ApiError::no_such("streamer", &name))?
    };
    let answer = match streamer_calls::probe(&streamer_calls::http_client(), &api).await {
        Ok(detail) => ProbeAnswer { ok: true, detail },
        Err(detail) => ProbeAnswer { ok: false, detail },
    };
    Ok(HttpResponse::Ok().json(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_urls_are_http_without_credentials() {
        assert_eq!(
            control_url("http://10.0.0.5:8080/control/").unwrap(),
            "http://10.0.0.5:8080/control"
        );
        assert!(control_url("https://edge-1.example:1985").is_ok());
        for bad in [
            "ftp://x",
            "http://",
            "http://admin:secret@10.0.0.5/control",
            "http://x/control?token=1",
            "http://x/a b",
        ] {
            assert!(control_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_and_kinds_are_checked() {
        assert!(name("edge-1.dc2").is_ok());
        assert!(name("-edge").is_err());
        assert!(name("edge/1").is_err());
        assert!(name("").is_err());
        assert_eq!(kind("srs").unwrap(), "srs");
        assert!(kind("ovenmediaengine").is_err());
    }
}
