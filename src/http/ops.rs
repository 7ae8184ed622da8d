//! `/healthz`, `/readyz`, `/metrics` (SPEC §5).

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;
use crate::store::migrations;

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "alive")))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when the database answers, is migrated, and the policy view is loaded.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "database reachable, migrated, policy view loaded"),
              (status = 503, description = "not ready, with a reason")))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let checked = async {
        let client = state.pool.get().await?;
        migrations::current_version(&client).await
    }
    .await;
    let problem = match checked {
        Ok(Some(version)) if version >= migrations::latest_version() => {
            if state.policy.is_loaded() {
                None
            } else {
                Some("policy view not loaded".to_string())
            }
        }
        Ok(version) => Some(format!(
            "database schema at version {}, {} needed",
            version.unwrap_or(0),
            migrations::latest_version()
        )),
        Err(e) => {
            log::warn!("readiness check: {e}");
            Some("database unavailable".to_string())
        }
    };
    match problem {
        None => HttpResponse::Ok().json(json!({"status": "ready"})),
        Some(reason) => HttpResponse::ServiceUnavailable()
            .json(json!({"status": "not ready", "reason": reason})),
    }
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    state.metrics.set_pool_connections(state.pool.status());
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
