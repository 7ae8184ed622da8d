//! `GET /api/v1/openapi.json`: the OpenAPI 3 description of every admin and
//! hook route, generated from the handlers' `#[utoipa::path]` annotations and
//! the request/answer types' `ToSchema` derives, so it follows the code.
//!
//! To document a new route: annotate its handler with `#[utoipa::path]` and
//! add it to `paths(...)` below. Routes whose handlers live outside
//! `src/admin/` (the hooks, health, metrics) are described by the doc-only
//! functions at the end of this file. The integration test
//! `admin_openapi::every_registered_route_is_described` walks the real router
//! and fails when a registered route is missing here (or vice versa).

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::users::ErrorBody;
use super::{audit, import, ip_rules, login, packages, sessions, stats, timeline, tokens, users};
use crate::decision::Decision;
use crate::hooks::decide::DecideRequest;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "playgate",
        description = "Authorization backend for streaming servers: hooks for the streamers and the admin API (SPEC §3, §4)."
    ),
    paths(
        openapi_json,
        users::list,
        users::create,
        users::get,
        users::update,
        users::delete,
        tokens::list,
        tokens::create,
        tokens::delete,
        packages::list,
        packages::create,
        packages::get,
        packages::update,
        packages::delete,
        ip_rules::list,
        ip_rules::create,
        ip_rules::get,
        ip_rules::delete,
        sessions::list,
        sessions::get,
        sessions::kick,
        audit::list,
        import::import,
        stats::streams,
        stats::user,
        timeline::timeline,
        login::login,
        login::current,
        login::logout,
        // Routes registered outside src/admin/: hooks, health, metrics.
        hook_decide,
        hook_astra,
        hook_flussonic,
        hook_nginx_rtmp_get,
        hook_nginx_rtmp_post,
        hook_srs,
        hook_mediamtx,
        hook_ovenmediaengine,
        hook_forward_auth,
        hook_forward_auth_head,
        healthz,
        readyz,
        metrics,
        ui_redirect,
        ui_index,
        ui_script,
        ui_style,
    ),
    components(schemas(ErrorBody)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "users"), (name = "tokens"), (name = "packages"), (name = "ip-rules"),
        (name = "sessions"), (name = "audit"), (name = "import"), (name = "stats"),
        (name = "web interface", description = "cookie sessions of the web interface at /ui/"),
        (name = "hooks", description = "called by the streaming servers"),
        (name = "operations", description = "health, readiness, metrics, this description")
    )
)]
pub struct ApiDoc;

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

/// The description as JSON text, built once.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .expect("the OpenAPI description serialises")
    })
}

pub async fn serve() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document())
}

#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "this OpenAPI 3 description (no authentication)")))]
#[allow(dead_code)]
fn openapi_json() {}

// ---- Doc-only descriptions of routes whose handlers live elsewhere ----

#[utoipa::path(post, path = "/hook/decide", tag = "hooks", request_body = DecideRequest,
    responses((status = 200, body = Decision, description = "the decision, also for a deny"),
              (status = 400, body = ErrorBody, description = "malformed request"),
              (status = 413, description = "body over 64 KiB")))]
#[allow(dead_code)]
fn hook_decide() {}

#[utoipa::path(get, path = "/hook/astra", tag = "hooks",
    description = "Cesbo Astra \"HTTP Request\" backend: the client's query plus X-Real-IP, X-Real-Path, X-Real-UA, X-Session-ID, X-Channel-ID.",
    params(("token" = Option<String>, Query, description = "the viewer's token"),
           ("auth" = Option<String>, Query, description = "login:password"),
           ("X-Real-IP" = Option<String>, Header, description = "client IP"),
           ("X-Channel-ID" = Option<String>, Header, description = "stream (channel id)"),
           ("X-Session-ID" = Option<String>, Header, description = "Astra's session id")),
    responses((status = 200, description = "allow; X-Session-Name carries the login"),
              (status = 403, description = "deny"),
              (status = 400, body = ErrorBody, description = "malformed request")))]
#[allow(dead_code)]
fn hook_astra() {}

#[utoipa::path(get, path = "/hook/flussonic", tag = "hooks",
    description = "Flussonic auth_backend / on_play; also a drop-in for Ministra's chk_flussonic_tmp_link.php.",
    params(("name" = Option<String>, Query, description = "stream name"),
           ("ip" = Option<String>, Query, description = "client IP"),
           ("token" = Option<String>, Query, description = "the viewer's token"),
           ("session_id" = Option<String>, Query, description = "Flussonic's session id"),
           ("request_type" = Option<String>, Query, description = "new_session or update_session")),
    responses((status = 200, description = "allow; X-AuthDuration, X-UserId, X-Max-Sessions"),
              (status = 403, description = "deny"),
              (status = 400, body = ErrorBody, description = "malformed request")))]
#[allow(dead_code)]
fn hook_flussonic() {}

#[utoipa::path(get, path = "/hook/nginx-rtmp", tag = "hooks",
    description = "nginx-rtmp on_play / on_update / on_play_done with notify_method get (fields in the query).",
    params(("call" = Option<String>, Query, description = "play, update_play, play_done, done, publish, …"),
           ("app" = Option<String>, Query), ("name" = Option<String>, Query),
           ("addr" = Option<String>, Query, description = "client IP"),
           ("clientid" = Option<String>, Query), ("token" = Option<String>, Query)),
    responses((status = 200, description = "allow (and every stop)"),
              (status = 403, description = "deny"),
              (status = 400, body = ErrorBody, description = "malformed request")))]
#[allow(dead_code)]
fn hook_nginx_rtmp_get() {}

#[utoipa::path(post, path = "/hook/nginx-rtmp", tag = "hooks",
    description = "nginx-rtmp on_play / on_update / on_play_done (form body: call, app, name, addr, clientid, tcurl, client args).",
    responses((status = 200, description = "allow (and every stop)"),
              (status = 403, description = "deny"),
              (status = 400, body = ErrorBody, description = "malformed request")))]
#[allow(dead_code)]
fn hook_nginx_rtmp_post() {}

#[utoipa::path(post, path = "/hook/srs", tag = "hooks",
    description = "SRS http_hooks on_play / on_stop / on_close (JSON: action, client_id, ip, vhost, app, stream, param).",
    responses((status = 200, description = "allow: body 0"),
              (status = 403, description = "deny: a non-zero code"),
              (status = 400, body = ErrorBody, description = "malformed request")))]
#[allow(dead_code)]
fn hook_srs() {}

#[utoipa::path(post, path = "/hook/mediamtx", tag = "hooks",
    description = "MediaMTX authMethod http (JSON: user, password, token, ip, action, path, protocol, id, query).",
    responses((status = 200, description = "allow"),
              (status = 401, description = "no credentials: the client is asked for them"),
              (status = 403, description = "deny"),
              (status = 400, body = ErrorBody, description = "malformed request")))]
#[allow(dead_code)]
fn hook_mediamtx() {}

#[utoipa::path(post, path = "/hook/ovenmediaengine", tag = "hooks",
    description = "OvenMediaEngine AdmissionWebhooks (JSON client, request; X-OME-Signature verified when PLAYGATE_OME_SECRET is set).",
    params(("X-OME-Signature" = Option<String>, Header, description = "base64url(HMAC-SHA1(body)) without padding")),
    responses((status = 200, description = "JSON allowed, lifetime (ms), reason; {} for closing"),
              (status = 403, description = "bad signature"),
              (status = 400, body = ErrorBody, description = "malformed request")))]
#[allow(dead_code)]
fn hook_ovenmediaengine() {}

#[utoipa::path(get, path = "/hook/forward-auth", tag = "hooks",
    description = "nginx auth_request, Traefik ForwardAuth, Caddy forward_auth for HLS/DASH.",
    params(("X-Original-URI" = Option<String>, Header, description = "the player's URI (nginx)"),
           ("X-Forwarded-Uri" = Option<String>, Header, description = "the player's URI (Traefik, Caddy)"),
           ("X-Playgate-Stream" = Option<String>, Header, description = "stream name override"),
           ("X-Real-IP" = Option<String>, Header, description = "client IP, believed from trusted proxies only")),
    responses((status = 200, description = "allow"),
              (status = 401, description = "no credentials and no active session: WWW-Authenticate: Basic"),
              (status = 403, description = "deny"),
              (status = 400, body = ErrorBody, description = "malformed request")))]
#[allow(dead_code)]
fn hook_forward_auth() {}

#[utoipa::path(head, path = "/hook/forward-auth", tag = "hooks",
    description = "As GET, without a body.",
    responses((status = 200, description = "allow"), (status = 401, description = "no credentials"),
              (status = 403, description = "deny")))]
#[allow(dead_code)]
fn hook_forward_auth_head() {}

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "alive")))]
#[allow(dead_code)]
fn healthz() {}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "database reachable, migrated, policy view loaded"),
              (status = 503, description = "not ready, with a reason")))]
#[allow(dead_code)]
fn readyz() {}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
#[allow(dead_code)]
fn metrics() {}

#[utoipa::path(get, path = "/ui", tag = "web interface",
    responses((status = 308, description = "redirects to /ui/")))]
#[allow(dead_code)]
fn ui_redirect() {}

#[utoipa::path(get, path = "/ui/", tag = "web interface",
    responses((status = 200, description = "the web interface (HTML; strict Content-Security-Policy)")))]
#[allow(dead_code)]
fn ui_index() {}

#[utoipa::path(get, path = "/ui/app.js", tag = "web interface",
    responses((status = 200, description = "the web interface's script")))]
#[allow(dead_code)]
fn ui_script() {}

#[utoipa::path(get, path = "/ui/app.css", tag = "web interface",
    responses((status = 200, description = "the web interface's style sheet")))]
#[allow(dead_code)]
fn ui_style() {}
