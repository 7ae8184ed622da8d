//! playgate: the authorization backend streaming servers call before a viewer
//! may watch a stream. See README.md for the architecture.

pub mod admin;
pub mod app;
pub mod astra;
pub mod config;
pub mod credentials;
pub mod decision;
pub mod error;
pub mod hooks;
pub mod metrics;
pub mod policy_view;
pub mod rate_limit;
pub mod store;
pub mod ui;
pub mod upstream;

pub use app::{AppHandle, AppState, Application};
pub use config::{Settings, SettingsArgs};
