//! One error type for every HTTP answer that is not a decision: client errors
//! are JSON with a one-line message; internal errors are logged once, here,
//! with their whole cause chain, and answered with an opaque 500 (503 when
//! the database is unreachable or did not answer in time).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use tokio_postgres::error::SqlState;

use crate::domain::ValidationError;
use crate::store::StoreError;

pub use crate::domain::validate::clip;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub field: Option<&'static str>,
    /// The users a conflict is about, for a client to link them.
    pub users: Vec<String>,
}

/// The body of every error answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// One line: what was wrong.
    pub error: String,
    /// The offending field (422, 409).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
    /// The users a `409` is about (a package delete that would leave them
    /// with no package): at most 10 logins; the message gives the count.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: one_line(message.into()),
            field: None,
            users: Vec::new(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not found")
    }

    /// Missing or wrong credentials; answered with `WWW-Authenticate: Basic`.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }

    /// An unknown object, named in the message.
    pub fn no_such(what: &str, name: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no such {what}: '{}'", clip(name)),
        )
    }

    pub fn conflict(field: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            field: Some(field),
            ..ApiError::new(StatusCode::CONFLICT, message)
        }
    }

    /// The same error, about these users.
    pub fn about_users(self, users: Vec<String>) -> ApiError {
        ApiError { users, ..self }
    }

    /// An invalid field: 422 with the field's name.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            field: Some(field),
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
        }
    }

    /// Logged here, with what caused it; the client learns nothing of it.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        log::error!("internal error: {detail}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }

    pub fn into_response(self) -> HttpResponse {
        ResponseError::error_response(&self)
    }
}

/// Reasons are answered on one line, whatever the parser said.
fn one_line(message: String) -> String {
    if message.contains('\n') {
        message.split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        message
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((
                actix_web::http::header::WWW_AUTHENTICATE,
                r#"Basic realm="playgate""#,
            ));
        }
        response.json(ErrorBody {
            error: self.message.clone(),
            field: self.field,
            users: self.users.clone(),
        })
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::Timeout => {
                log::warn!("{error}");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database did not answer in time",
                )
            }
            unavailable if unavailable.is_unavailable() => {
                log::warn!("database unavailable: {unavailable}");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
            }
            other if other.sql_state() != Some(&SqlState::UNIQUE_VIOLATION) => {
                ApiError::internal(other)
            }
            other => match other.constraint() {
                // Named unique constraints of the schema: a conflicting object.
                Some("users_login_key") => ApiError::conflict("login", "login already exists"),
                Some("tokens_hash_key") => ApiError::conflict("token", "token already exists"),
                Some("packages_name_key") => {
                    ApiError::conflict("name", "package name already exists")
                }
                Some("streamers_pkey") => {
                    ApiError::conflict("name", "a streamer with this name already exists")
                }
                Some("streamer_networks_pkey") => ApiError::conflict(
                    "addresses",
                    "one of these networks belongs to another streamer",
                ),
                Some("ip_rules_network_action_key") => ApiError::conflict(
                    "network",
                    "a rule with this network and action already exists",
                ),
                _ => ApiError::internal(other),
            },
        }
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(error: deadpool_postgres::PoolError) -> ApiError {
        ApiError::from(StoreError::from(error))
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(error: tokio_postgres::Error) -> ApiError {
        ApiError::from(StoreError::from(error))
    }
}

impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> ApiError {
        ApiError::invalid(error.field, error.message)
    }
}
