//! The admin API's part of the OpenAPI document (`GET /api/v1/openapi.json`,
//! served by `http::openapi`): every handler under `src/admin/` annotated
//! with `#[utoipa::path]` is listed here.
//!
//! To document a new route: annotate its handler and add it to `paths(...)`.

use utoipa::OpenApi;

use super::{
    access_rules, audit, import, ip_rules, links, login, packages, sessions, signing_keys, stats,
    streamers, timeline, tokens, users, webhooks,
};

#[derive(OpenApi)]
#[openapi(paths(
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
    ip_rules::update,
    ip_rules::delete,
    access_rules::list,
    access_rules::create,
    access_rules::get,
    access_rules::update,
    access_rules::delete,
    links::issue,
    signing_keys::list,
    signing_keys::create,
    signing_keys::get,
    signing_keys::update,
    signing_keys::delete,
    webhooks::list,
    webhooks::create,
    webhooks::get,
    webhooks::update,
    webhooks::delete,
    webhooks::deliveries,
    webhooks::test,
    sessions::list,
    sessions::get,
    sessions::kick,
    streamers::list,
    streamers::create,
    streamers::get,
    streamers::update,
    streamers::delete,
    streamers::calls,
    streamers::test,
    audit::list,
    import::import,
    stats::streams,
    stats::countries,
    stats::denials,
    stats::user,
    timeline::timeline,
    login::login,
    login::current,
    login::logout,
))]
pub struct ApiDoc;
