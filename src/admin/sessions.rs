//! `/api/v1/sessions` (active, or `?state=ended` history) and
//! `/api/v1/sessions/{id}` (GET; DELETE = kick).

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::auth::{AdminUser, ObserverUser};
use super::{audited, page_bounds, Audit, Page};
use crate::http::ApiError;
use crate::http::AppState;
use crate::http::ErrorBody;

use crate::store::sessions::{self, SessionFilter, SessionRow, SessionSort};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionQuery {
    /// `active` (default; oldest first) or `ended` (history, newest first).
    pub state: Option<String>,
    /// Login.
    pub user: Option<String>,
    pub stream: Option<String>,
    /// The address of the streamer that called the hook, or a registered
    /// streamer's name (the sessions its networks called in).
    pub streamer: Option<String>,
    /// A piece of the login, the stream or the client IP, in any case
    /// (`sport` finds `sport/football1` and the user `sporty`); at most
    /// 256 characters, none a control character.
    pub q: Option<String>,
    /// RFC 3339: sessions that ended (history) or started (active) at or
    /// after this time.
    pub from: Option<String>,
    /// RFC 3339: … before this time.
    pub to: Option<String>,
    /// `started`, `last_seen`, `ended`, `user`, `stream` or `bytes`; `-`
    /// first for descending (`-bytes`). Default: active oldest first,
    /// history newest first.
    pub sort: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// Longer than any login, stream name or address.
const MAX_SEARCH: usize = 256;

fn session_id(id: &str) -> Result<Uuid, ApiError> {
    id.parse().map_err(|_| ApiError::no_such("session", id))
}

#[utoipa::path(get, path = "/api/v1/sessions", tag = "sessions", params(SessionQuery),
    responses((status = 200, body = Page<SessionRow>), (status = 401), (status = 403), (status = 422, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn list(
    _caller: ObserverUser,
    state: web::Data<AppState>,
    query: web::Query<SessionQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let (limit, offset) = page_bounds(query.limit, query.offset)?;
    let ended = match query.state.as_deref() {
        None | Some("active") => false,
        Some("ended") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "state",
                format!(
                    "'{}' is not active or ended",
                    crate::http::error::clip(other)
                ),
            ))
        }
    };
    let search = match query.q.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(q) if q.chars().count() > MAX_SEARCH => {
            return Err(ApiError::invalid(
                "q",
                format!("longer than {MAX_SEARCH} characters"),
            ))
        }
        // The fields are searched as one text with \x01 between them.
        Some(q) if q.chars().any(char::is_control) => {
            return Err(ApiError::invalid(
                "q",
                "control characters cannot be searched",
            ))
        }
        Some(q) => Some(q.to_string()),
    };
    let (from, to) = super::time_window(&query.from, &query.to)?;
    let sort = match query.sort.as_deref().filter(|sort| !sort.is_empty()) {
        None => None,
        Some(text) => Some(SessionSort::parse(text).ok_or_else(|| {
            ApiError::invalid(
                "sort",
                format!(
                    "'{}' is not one of started, last_seen, ended, user, stream, bytes (with - for descending)",
                    crate::http::error::clip(text)
                ),
            )
        })?),
    };
    let filter = SessionFilter {
        sort,
        ended,
        login: query.user,
        stream: query.stream,
        streamer: query.streamer,
        search,
        from,
        to,
    };
    let client = state.pool.get().await?;
    let (items, total) = sessions::list(&client, &filter, limit, offset).await?;
    Ok(HttpResponse::Ok().json(Page { items, total }))
}

#[utoipa::path(get, path = "/api/v1/sessions/{id}", tag = "sessions", params(("id" = Uuid, Path)),
    responses((status = 200, body = SessionRow), (status = 401), (status = 403), (status = 404, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn get(
    _caller: ObserverUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let session = session_id(&id)?;
    let client = state.pool.get().await?;
    let row = sessions::get(&client, session)
        .await?
        .ok_or_else(|| ApiError::no_such("session", &id))?;
    Ok(HttpResponse::Ok().json(row))
}

#[utoipa::path(delete, path = "/api/v1/sessions/{id}", tag = "sessions", params(("id" = Uuid, Path)),
    responses((status = 204, description = "kicked: ended now, its next refresh is denied `session_kicked` for one session duration"),
              (status = 401), (status = 403), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "the session has already ended")),
    security(("basic" = []), ("bearer" = [])))]
pub async fn kick(
    caller: AdminUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let session = session_id(&id)?;
    let hold = state.engine.session_duration();
    audited(&state, &caller, async |transaction| {
        let row = sessions::get(transaction, session)
            .await?
            .ok_or_else(|| ApiError::no_such("session", &id))?;
        if !sessions::kick(transaction, session, hold).await? {
            return Err(ApiError::conflict("id", "the session has already ended"));
        }
        let changes = json!({"user": row.user, "stream": row.stream, "client_ip": row.client_ip});
        Ok(((), Audit::other("kick", "session", id.as_str(), changes)))
    })
    .await?;
    state.metrics.sessions_ended("kicked", 1);
    // In force on this replica before the answer; the others hear of it by notification.
    state.engine.forget_session(session);
    Ok(HttpResponse::NoContent().finish())
}
