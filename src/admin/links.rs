//! `POST /api/v1/links`: a signed playback link for a portal to hand a
//! viewer (SPEC §9), made with one of the enabled signing keys of the
//! policy view: with `key`, that one; else the newest `playgate` key.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::AdminJson;
use super::{audited, Audit};
use crate::domain::validate::{self, clip};
use crate::domain::{parse_network, Login};
use crate::http::{ApiError, AppState, ErrorBody};
use crate::links::{self, IssueError, IssueRequest, LinkFormat};

/// A link lives at most a week: a portal makes a fresh one per viewing.
const MAX_TTL: i64 = 604_800;
/// Without `ttl` or `expires_at`.
const DEFAULT_TTL: i64 = 3600;
const MAX_STREAM_LEN: usize = 1024;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkInput {
    /// The stream the link is for (a `playgate` link may name a `*` glob).
    stream: String,
    /// The path the viewer will request, which `nginx`, `akamai` (as its
    /// ACL, globs allowed) and path-subject `securetoken` links sign;
    /// default `/` + stream.
    uri: Option<String>,
    /// The user the link identifies (`playgate`, `securetoken`): every user
    /// check and limit applies. Without it the viewer is anonymous.
    user: Option<String>,
    /// Seconds from now (1–604800; default 3600), or `expires_at`.
    ttl: Option<i64>,
    /// RFC 3339, within a week.
    expires_at: Option<String>,
    /// The client address (or, for `playgate`, a network) the link is for.
    ip: Option<String>,
    /// `playgate` only: the link starts one session.
    once: Option<bool>,
    /// The signing key's id; default the newest enabled `playgate` key.
    key: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct IssuedLink {
    /// The query string to append to the stream's URL (after `?`).
    query: String,
    expires_at: DateTime<Utc>,
    key: String,
    format: String,
}

#[utoipa::path(post, path = "/api/v1/links", tag = "links", request_body = LinkInput,
    description = "Issue a signed playback link (admins, and api-scope tokens of admins).",
    responses((status = 201, body = IssuedLink, description = "the link's query parameters"),
              (status = 401), (status = 403), (status = 415),
              (status = 422, body = ErrorBody, description = "a field the key's format cannot carry, no such key or user, a window out of range")),
    security(("basic" = []), ("bearer" = [])))]
pub async fn issue(
    AdminJson(caller, input): AdminJson<LinkInput>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let stream = input.stream.trim_matches('/');
    if stream.is_empty() || stream.len() > MAX_STREAM_LEN {
        return Err(ApiError::invalid(
            "stream",
            format!("stream: 1-{MAX_STREAM_LEN} bytes"),
        ));
    }
    validate::text("stream", stream)?;
    let now = Utc::now();
    let expires_at = expiry(now, input.ttl, input.expires_at.as_deref())?;
    let user = match input.user.as_deref() {
        None => None,
        Some(text) => Some(Login::parse(text).ok_or_else(|| {
            ApiError::invalid(
                "user",
                format!("'{}' is not a login: {}", clip(text), Login::SYNTAX),
            )
        })?),
    };
    let ip = match input.ip.as_deref() {
        None => None,
        Some(text) => Some(parse_network(text).ok_or_else(|| {
            ApiError::invalid(
                "ip",
                format!("'{}' is not an address or a network", clip(text)),
            )
        })?),
    };
    let once = input.once.unwrap_or(false);

    let snapshot = state.policy.snapshot();
    if let Some(login) = &user {
        if snapshot.user(login.as_str()).is_none() {
            return Err(ApiError::invalid(
                "user",
                format!("no such user: '{login}'"),
            ));
        }
    }
    let keys = snapshot.link_keys();
    let key = match input.key.as_deref() {
        Some(id) => keys.iter().find(|key| key.id() == id).ok_or_else(|| {
            ApiError::invalid(
                "key",
                format!("no enabled signing key '{}'", clip(id)),
            )
        })?,
        None => keys
            .iter()
            .find(|key| key.format() == LinkFormat::Playgate)
            .ok_or_else(|| {
                ApiError::invalid(
                    "key",
                    "no enabled playgate signing key: create one (POST /api/v1/signing-keys) or name a key",
                )
            })?,
    };
    let request = IssueRequest {
        stream,
        uri: input.uri.as_deref(),
        user: user.as_ref(),
        expires_at: expires_at.timestamp(),
        not_before: None,
        ip,
        once,
    };
    let query = links::issue(key, &request, now.timestamp())
        .map_err(|error| ApiError::invalid(issue_field(&error), error.to_string()))?;
    let (key_id, format) = (key.id().to_string(), key.format().as_str());
    drop(snapshot);

    // Who made a link for whom, never the link itself.
    let changes = json!({
        "stream": stream, "user": user.as_ref().map(Login::as_str), "key": key_id,
        "expires_at": expires_at, "once": once, "ip": ip.map(|ip| ip.to_string()),
    });
    audited(&state, &caller, async |_transaction| {
        Ok(((), Audit::other("issue", "link", stream, changes)))
    })
    .await?;
    Ok(HttpResponse::Created().json(IssuedLink {
        query,
        expires_at,
        key: key_id,
        format: format.to_string(),
    }))
}

/// The link's end: `ttl` seconds from now, or `expires_at`, within a week.
fn expiry(
    now: DateTime<Utc>,
    ttl: Option<i64>,
    expires_at: Option<&str>,
) -> Result<DateTime<Utc>, ApiError> {
    let at = match (ttl, expires_at) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid("ttl", "give ttl or expires_at, not both"))
        }
        (Some(ttl), None) if (1..=MAX_TTL).contains(&ttl) => now + Duration::seconds(ttl),
        (Some(_), None) => {
            return Err(ApiError::invalid(
                "ttl",
                format!("ttl: 1-{MAX_TTL} seconds"),
            ))
        }
        (None, Some(text)) => validate::time("expires_at", text)?,
        (None, None) => now + Duration::seconds(DEFAULT_TTL),
    };
    if at <= now || at > now + Duration::seconds(MAX_TTL) {
        return Err(ApiError::invalid(
            "expires_at",
            "expires_at: later than now, at most a week from now",
        ));
    }
    // Links carry whole seconds.
    Ok(DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at))
}

fn issue_field(error: &IssueError) -> &'static str {
    match error {
        IssueError::EmptyStream => "stream",
        IssueError::Window => "expires_at",
        IssueError::NeedsIp | IssueError::IpNotCarried(_) | IssueError::NotAnAddress(_) => "ip",
        IssueError::UserNotCarried => "user",
        IssueError::OnceNotCarried => "once",
        IssueError::NotBeforeNotCarried => "not_before",
        IssueError::Uri(_) => "uri",
    }
}
