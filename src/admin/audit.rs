//! `/api/v1/audit`: who changed what, when (newest first).

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::auth::ObserverUser;
use super::{page_bounds, Page};
use crate::http::ApiError;
use crate::http::AppState;
use crate::http::ErrorBody;
use crate::store::audit::{self, AuditFilter, AuditRow};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Login of the admin who made the change.
    pub actor: Option<String>,
    /// `user`, `token`, `package`, `ip_rule`, `session`, `users` (import).
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    /// `create`, `update`, `delete`, `kick`, `import`, `issue`.
    pub action: Option<String>,
    /// RFC 3339: entries at or after this time.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// RFC 3339: entries before this time.
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = Page<AuditRow>), (status = 401), (status = 403), (status = 422, body = ErrorBody)),
    security(("basic" = []), ("bearer" = [])))]
pub async fn list(
    _caller: ObserverUser,
    state: web::Data<AppState>,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let (limit, offset) = page_bounds(query.limit, query.offset)?;
    let (from, to) = super::time_window(&query.from, &query.to)?;
    let filter = AuditFilter {
        actor: query.actor,
        object_type: query.object_type,
        object_id: query.object_id,
        action: query.action.filter(|action| !action.is_empty()),
        from,
        to,
    };
    let client = state.pool.get().await?;
    let (items, total) = audit::list(&client, &filter, limit, offset).await?;
    Ok(HttpResponse::Ok().json(Page { items, total }))
}
