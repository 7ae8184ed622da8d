//! Integration tests: one binary, real HTTP, real PostgreSQL, a fresh database per test.

mod admin_auth;
mod admin_import;
mod admin_openapi;
mod admin_resources;
mod admin_users;
mod decide;
mod e2e_nginx;
mod helpers;
mod hook_astra;
mod hook_flussonic;
mod hook_forward_auth;
mod hook_mediamtx;
mod hook_nginx_rtmp;
mod hook_ome;
mod hook_srs;
mod lifecycle;
mod metrics;
mod ministra;
mod private_pg;
mod reliability;
mod sessions;
mod soak;
mod ui_browser;
mod ui_login;
mod ui_timeline;
