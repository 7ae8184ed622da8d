//! Integration tests: one binary, real HTTP, real PostgreSQL, a fresh database per test.

mod decide;
mod helpers;
mod lifecycle;
mod metrics;
mod private_pg;
mod reliability;
mod sessions;
mod soak;
