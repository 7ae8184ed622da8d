//! `GET /api/v1/openapi.json`: the OpenAPI 3 description of every route,
//! generated from the handlers' `#[utoipa::path]` annotations and the
//! request/answer types' `ToSchema` derives, so it follows the code.
//!
//! Each layer describes its own routes (`hooks::ApiDoc`, `admin::ApiDoc`,
//! `ui::ApiDoc`, `Operations` here); the application merges them into one
//! document and hands it to `serve` as app data. The integration test
//! `admin_openapi::every_registered_route_is_described` walks the real router
//! and fails when a registered route is missing (or vice versa).

use actix_web::{web, HttpResponse};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::ops;
use super::ErrorBody;

/// The merged description, as JSON text.
pub struct Document(pub String);

/// What every part shares: the title, the security schemes, the tags, the
/// error body, and the operations routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "playgate",
        description = "Authorization backend for streaming servers: hooks for the streamers and the admin API (SPEC §3, §4)."
    ),
    paths(openapi_json, ops::healthz, ops::readyz, ops::metrics),
    components(schemas(ErrorBody)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "users"), (name = "tokens"), (name = "packages"), (name = "ip-rules"), (name = "access-rules"),
        (name = "sessions"), (name = "audit"), (name = "import"), (name = "stats"),
        (name = "web interface", description = "cookie sessions of the web interface at /ui/"),
        (name = "hooks", description = "called by the streaming servers"),
        (name = "operations", description = "health, readiness, metrics, this description")
    )
)]
pub struct Operations;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The operations part merged with the other layers' parts.
pub fn document(parts: impl IntoIterator<Item = utoipa::openapi::OpenApi>) -> Document {
    let mut merged = Operations::openapi();
    for part in parts {
        merged.merge(part);
    }
    Document(
        merged
            .to_json()
            .expect("the OpenAPI description serialises"),
    )
}

#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "this OpenAPI 3 description (no authentication)")))]
pub async fn openapi_json(document: web::Data<Document>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document.0.clone())
}
