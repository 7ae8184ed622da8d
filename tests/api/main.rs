//! Integration tests: one binary, real HTTP, real PostgreSQL, a fresh database per test.

mod decide;
mod e2e_nginx;
mod helpers;
mod hook_forward_auth;
mod hook_nginx_rtmp;
mod lifecycle;
mod sessions;
