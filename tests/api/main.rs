//! Integration tests: one binary, real HTTP, real PostgreSQL, a fresh database per test.

mod admin_auth;
mod admin_import;
mod admin_openapi;
mod admin_resources;
mod admin_users;
mod decide;
mod helpers;
mod lifecycle;
mod sessions;
