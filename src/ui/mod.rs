//! The web interface at `/ui/`: plain HTML, CSS and JavaScript embedded in
//! the binary. It talks only to the admin API (cookie session from
//! `POST /api/v1/login`). Served with a strict Content-Security-Policy (no
//! inline script or style, nothing from elsewhere) and cache headers: the
//! page is revalidated on every load, the assets carry a version in their
//! URL (`?v=<build>`) and are cached for a day.

use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::{web, HttpResponse, HttpResponseBuilder};
use sha2::{Digest, Sha256};

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");

/// Everything from this origin only; no inline script or style, no frames,
/// no plugins, forms post only here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

/// A digest of the assets: their URLs change whenever their content does.
fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let digest = Sha256::new()
            .chain_update(SCRIPT)
            .chain_update(STYLE)
            .finalize();
        hex::encode(&digest[..6])
    })
}

fn index_html() -> &'static str {
    static PAGE: OnceLock<String> = OnceLock::new();
    PAGE.get_or_init(|| INDEX.replace("{{VERSION}}", version()))
}

/// The web interface's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(redirect, index, script, style))]
pub struct ApiDoc;

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/ui", web::get().to(redirect))
        .route("/ui/", web::get().to(index))
        .route("/ui/app.js", web::get().to(script))
        .route("/ui/app.css", web::get().to(style));
}

fn secured(mut builder: HttpResponseBuilder) -> HttpResponseBuilder {
    builder
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
    builder
}

#[utoipa::path(get, path = "/ui", tag = "web interface",
    responses((status = 308, description = "redirects to /ui/")))]
async fn redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/ui/"))
        .finish()
}

/// The page: revalidated on every load, so a new build's asset URLs are seen.
#[utoipa::path(get, path = "/ui/", tag = "web interface",
    responses((status = 200, description = "the web interface (HTML; strict Content-Security-Policy)")))]
async fn index() -> HttpResponse {
    secured(HttpResponse::Ok())
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(index_html())
}

/// Assets: their URL carries the version, so they may be cached for a day.
fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    secured(HttpResponse::Ok())
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .insert_header((header::ETAG, format!("\"{}\"", version())))
        .body(body)
}

#[utoipa::path(get, path = "/ui/app.js", tag = "web interface",
    responses((status = 200, description = "the web interface's script")))]
async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

#[utoipa::path(get, path = "/ui/app.css", tag = "web interface",
    responses((status = 200, description = "the web interface's style sheet")))]
async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE)
}
