//! The error catalogue: every failure the server can respond with, mapped
//! to its status and `error` code in one place.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use osbkit_types::{error_codes, ErrorBody, API_VERSION};

/// A failed request, as the client will see it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BrokerError {
    /// 400: malformed body, missing field, unknown id, invalid parameters.
    #[error("{0}")]
    BadRequest(String),

    /// 401: missing or wrong credentials.
    #[error("authentication failed")]
    Unauthorized,

    /// 404: the resource does not exist, or is still being created.
    #[error("{0}")]
    NotFound(String),

    /// 404 for a route the API does not have.
    #[error("no such route")]
    UnknownRoute,

    /// 405 for a route that exists with another method.
    #[error("method not allowed")]
    MethodNotAllowed,

    /// 409: the resource exists with other attributes.
    #[error("{0}")]
    Conflict(String),

    /// 410: the resource to delete does not exist.
    #[error("{0}")]
    Gone(String),

    /// 412: the version header is missing, empty or unsupported.
    #[error("unsupported API version")]
    VersionMismatch(Option<String>),

    /// 413: the body exceeds the size limit.
    #[error("request body too large")]
    PayloadTooLarge(usize),

    /// 422 `AsyncRequired`.
    #[error("{0}")]
    AsyncRequired(String),

    /// 422 `ConcurrencyError`.
    #[error("{0}")]
    Concurrency(String),

    /// 422 `RequiresApp`.
    #[error("{0}")]
    RequiresApp(String),

    /// 422 `MaintenanceInfoConflict`.
    #[error("{0}")]
    MaintenanceInfoConflict(String),

    /// 422 without a reserved code: a change the service cannot make.
    #[error("{description}")]
    Unprocessable {
        description: String,
        /// Set for update and deprovision errors only.
        instance_usable: Option<bool>,
        /// Set for update errors only.
        update_repeatable: Option<bool>,
    },

    /// 500: the cause went to the log; the client gets the request identity.
    #[error("internal error")]
    Internal { request_identity: String },

    /// 503: a server behind the broker is down.
    #[error("{description}")]
    Unavailable { description: String },
}

impl BrokerError {
    /// Returns the status the specification prescribes for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            BrokerError::BadRequest(_) => StatusCode::BAD_REQUEST,
            BrokerError::Unauthorized => StatusCode::UNAUTHORIZED,
            BrokerError::NotFound(_) | BrokerError::UnknownRoute => StatusCode::NOT_FOUND,
            BrokerError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            BrokerError::Conflict(_) => StatusCode::CONFLICT,
            BrokerError::Gone(_) => StatusCode::GONE,
            BrokerError::VersionMismatch(_) => StatusCode::PRECONDITION_FAILED,
            BrokerError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            BrokerError::AsyncRequired(_)
            | BrokerError::Concurrency(_)
            | BrokerError::RequiresApp(_)
            | BrokerError::MaintenanceInfoConflict(_)
            | BrokerError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            BrokerError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            BrokerError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Returns the OSB error body.
    pub fn body(&self) -> ErrorBody {
        let (error, description) = match self {
            BrokerError::BadRequest(text) => ("BadRequest", text.clone()),
            BrokerError::Unauthorized => (
                "Unauthorized",
                "missing or invalid credentials: send HTTP Basic authentication with a broker user"
                    .to_owned(),
            ),
            BrokerError::NotFound(text) => ("NotFound", text.clone()),
            BrokerError::UnknownRoute => (
                "NotFound",
                "no such endpoint: the API's routes start with /v2/catalog or /v2/service_instances/"
                    .to_owned(),
            ),
            BrokerError::MethodNotAllowed => (
                "MethodNotAllowed",
                "this endpoint does not accept this HTTP method".to_owned(),
            ),
            BrokerError::Conflict(text) => ("Conflict", text.clone()),
            BrokerError::Gone(text) => ("Gone", text.clone()),
            BrokerError::VersionMismatch(sent) => (
                "PreconditionFailed",
                match sent {
                    Some(version) => format!(
                        "unsupported X-Broker-API-Version {version:?}: this broker implements {API_VERSION}, send \"X-Broker-API-Version: {API_VERSION}\""
                    ),
                    None => format!(
                        "missing X-Broker-API-Version header: send \"X-Broker-API-Version: {API_VERSION}\""
                    ),
                },
            ),
            BrokerError::PayloadTooLarge(limit) => (
                "PayloadTooLarge",
                format!("the request body exceeds the limit of {limit} bytes"),
            ),
            BrokerError::AsyncRequired(text) => (error_codes::ASYNC_REQUIRED, text.clone()),
            BrokerError::Concurrency(text) => (error_codes::CONCURRENCY_ERROR, text.clone()),
            BrokerError::RequiresApp(text) => (error_codes::REQUIRES_APP, text.clone()),
            BrokerError::MaintenanceInfoConflict(text) => {
                (error_codes::MAINTENANCE_INFO_CONFLICT, text.clone())
            }
            BrokerError::Unprocessable {
                description,
                instance_usable,
                update_repeatable,
            } => {
                return ErrorBody {
                    error: Some("UnprocessableEntity".to_owned()),
                    description: Some(description.clone()),
                    instance_usable: *instance_usable,
                    update_repeatable: *update_repeatable,
                }
            }
            BrokerError::Internal { request_identity } => (
                "InternalError",
                format!(
                    "the broker failed to process the request; its operators can find the cause in the broker's log under request identity {request_identity}"
                ),
            ),
            BrokerError::Unavailable { description } => ("ServiceUnavailable", description.clone()),
        };
        ErrorBody {
            error: Some(error.to_owned()),
            description: Some(description),
            instance_usable: None,
            update_repeatable: None,
        }
    }
}

impl IntoResponse for BrokerError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), axum::Json(self.body())).into_response();
        if self == BrokerError::Unauthorized {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Basic realm=\"osbkit\""),
            );
        }
        response
    }
}
