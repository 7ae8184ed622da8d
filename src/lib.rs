//! playgate: the authorization backend streaming servers call before a viewer
//! may watch a stream. The layers and how a request travels through them:
//! docs/architecture.md.

// The vocabulary every layer shares; imports nothing of ours.
pub mod domain;

// Below the web: settings, storage, the policy cache, the decision.
pub mod background;
pub mod config;
pub mod decision;
pub mod geoip;
pub mod links;
pub mod metrics;
pub mod outbox;
pub mod password;
pub mod policy_view;
pub mod rate_limit;
pub mod store;
pub mod upstream;

// The web: shared plumbing, then the streamers' hooks, the admin API, the
// web interface and the imports.
pub mod admin;
pub mod hooks;
pub mod http;
pub mod import;
pub mod ui;

// Wiring it all together.
pub mod app;

pub use app::{AppHandle, Application};
pub use config::{Settings, SettingsArgs};
pub use http::AppState;
