//! `/api/v1/stats/*`: viewing statistics from the session history.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::auth::ObserverUser;
use crate::http::ApiError;
use crate::http::AppState;
use crate::http::ErrorBody;
use crate::store::stats::{self, CountryStats, StreamStats, UserStats};
use crate::store::users;

/// Longest window one request may ask for.
const MAX_WINDOW_DAYS: i64 = 366;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WindowQuery {
    /// RFC 3339; default: 24 hours before `to`.
    pub from: Option<String>,
    /// RFC 3339; default: now.
    pub to: Option<String>,
}

impl WindowQuery {
    fn bounds(&self) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
        let (from, to) = super::time_window(&self.from, &self.to)?;
        let to = to.unwrap_or_else(Utc::now);
        let from = from.unwrap_or(to - Duration::hours(24));
        if from >= to {
            return Err(ApiError::invalid("from", "must be before 'to'"));
        }
        if to - from > Duration::days(MAX_WINDOW_DAYS) {
            return Err(ApiError::invalid(
                "from",
                format!("the window is longer than {MAX_WINDOW_DAYS} days"),
            ));
        }
        Ok((from, to))
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct StreamStatsList {
    pub items: Vec<StreamStats>,
}

#[utoipa::path(get, path = "/api/v1/stats/streams", tag = "stats", params(WindowQuery),
    description = "Per stream over the window: viewers now, sessions started (plays), distinct users, seconds watched inside the window, most concurrent viewers.",
    responses((status = 200, body = StreamStatsList), (status = 401), (status = 403), (status = 422, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn streams(
    _caller: ObserverUser,
    state: web::Data<AppState>,
    query: web::Query<WindowQuery>,
) -> Result<HttpResponse, ApiError> {
    let (from, to) = query.bounds()?;
    let client = state.stats_pool.get().await?;
    let items = stats::streams(&client, from, to).await?;
    Ok(HttpResponse::Ok().json(StreamStatsList { items }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CountryStatsList {
    pub items: Vec<CountryStats>,
}

#[utoipa::path(get, path = "/api/v1/stats/countries", tag = "stats", params(WindowQuery),
    description = "Per country the client addresses were in when their sessions started (SPEC §10; GeoIP, `XX` = unknown or no country database): the figures of /api/v1/stats/streams.",
    responses((status = 200, body = CountryStatsList), (status = 401), (status = 403), (status = 422, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn countries(
    _caller: ObserverUser,
    state: web::Data<AppState>,
    query: web::Query<WindowQuery>,
) -> Result<HttpResponse, ApiError> {
    let (from, to) = query.bounds()?;
    let client = state.stats_pool.get().await?;
    let items = stats::countries(&client, from, to).await?;
    Ok(HttpResponse::Ok().json(CountryStatsList { items }))
}

/// Denials of one reason in the window.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DenialStats {
    /// A reason code of SPEC §2 (`session_limit` is how account sharing shows).
    pub reason: String,
    pub count: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DenialStatsList {
    pub items: Vec<DenialStats>,
}

#[utoipa::path(get, path = "/api/v1/stats/denials", tag = "stats", params(WindowQuery),
    description = "Denials per reason over the window, most first, from the per-minute counts every replica writes every PLAYGATE_STATS_INTERVAL (whole minutes: a minute counts when it starts inside the window).",
    responses((status = 200, body = DenialStatsList), (status = 401), (status = 403), (status = 422, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn denials(
    _caller: ObserverUser,
    state: web::Data<AppState>,
    query: web::Query<WindowQuery>,
) -> Result<HttpResponse, ApiError> {
    let (from, to) = query.bounds()?;
    let client = state.stats_pool.get().await?;
    let items = crate::store::denials::totals(&client, from, to)
        .await?
        .into_iter()
        .map(|(reason, count)| DenialStats { reason, count })
        .collect();
    Ok(HttpResponse::Ok().json(DenialStatsList { items }))
}

#[utoipa::path(get, path = "/api/v1/stats/users/{login}", tag = "stats", params(("login" = String, Path), WindowQuery),
    description = "One user's sessions and seconds watched over the window, per stream. External users (ministra:<id>) have statistics too.",
    responses((status = 200, body = UserStats), (status = 401), (status = 403), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn user(
    _caller: ObserverUser,
    state: web::Data<AppState>,
    login: web::Path<String>,
    query: web::Query<WindowQuery>,
) -> Result<HttpResponse, ApiError> {
    let (from, to) = query.bounds()?;
    let client = state.stats_pool.get().await?;
    let stats = stats::user(&client, &login, from, to).await?;
    // Known by either an account or a viewing history (portal users have no account).
    if stats.sessions == 0
        && users::get(&client, &login).await?.is_none()
        && !stats::has_history(&client, &login).await?
    {
        return Err(ApiError::no_such("user", &login));
    }
    Ok(HttpResponse::Ok().json(stats))
}
