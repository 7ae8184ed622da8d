//! Web plumbing shared by the hooks, the admin API and the web interface:
//! the state every handler gets, the one error type and its body, reading
//! requests (client address, headers, Basic credentials), the operations
//! routes and the OpenAPI document they all contribute to.

pub mod error;
pub mod openapi;
pub mod ops;
pub mod request;
pub mod state;

pub use error::{ApiError, ErrorBody};
pub use state::AppState;
