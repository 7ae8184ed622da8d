//! `GET /api/v1/stats/timeline?stream=&from=&to=&step=`: concurrent viewers
//! over time, from the session history (SPEC §4).

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::auth::ObserverUser;
use crate::http::ApiError;
use crate::http::AppState;
use crate::http::ErrorBody;
use crate::store::stats::{self, TimelinePoint};

/// At most this many points in one answer.
pub const MAX_POINTS: i64 = 5_000;
/// Points when no `step` is given.
const DEFAULT_POINTS: i64 = 120;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimelineQuery {
    /// One stream; absent = every stream.
    pub stream: Option<String>,
    /// RFC 3339; default: `to` minus 24 hours.
    pub from: Option<String>,
    /// RFC 3339; default: now.
    pub to: Option<String>,
    /// Seconds between points (≥ 1); default: the range in about 120 steps.
    /// At most 5000 points per answer.
    pub step: Option<i64>,
}

/// `viewers` = sessions open at instant `t`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Timeline {
    #[schema(value_type = Vec<Object>, example = json!([{"t": "2026-01-01T00:00:00Z", "viewers": 3}]))]
    pub points: Vec<TimelinePoint>,
}

fn instant(field: &'static str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ApiError::invalid(field, format!("{field} must be an RFC 3339 time")))
}

#[utoipa::path(get, path = "/api/v1/stats/timeline", tag = "stats", params(TimelineQuery),
    responses((status = 200, body = Timeline), (status = 401), (status = 403), (status = 422, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn timeline(
    _caller: ObserverUser,
    state: web::Data<AppState>,
    query: web::Query<TimelineQuery>,
) -> Result<HttpResponse, ApiError> {
    let to = match &query.to {
        Some(text) => instant("to", text)?,
        None => Utc::now(),
    };
    let from = match &query.from {
        Some(text) => instant("from", text)?,
        None => to - chrono::Duration::hours(24),
    };
    if from >= to {
        return Err(ApiError::invalid("from", "from must be before to"));
    }
    let range = (to - from).num_seconds().max(1);
    let step = match query.step {
        Some(step) if step < 1 => return Err(ApiError::invalid("step", "step must be at least 1")),
        Some(step) => step,
        None => (range / DEFAULT_POINTS).max(1),
    };
    if range / step + 1 > MAX_POINTS {
        return Err(ApiError::invalid(
            "step",
            format!("at most {MAX_POINTS} points: choose a larger step"),
        ));
    }
    let stream = query.stream.as_deref().filter(|s| !s.is_empty());
    let client = state.stats_pool.get().await?;
    let points = stats::timeline(&client, stream, from, to, step).await?;
    Ok(HttpResponse::Ok().json(Timeline { points }))
}
