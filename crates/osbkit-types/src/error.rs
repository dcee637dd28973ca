use serde::{Deserialize, Serialize};

/// The body of every error response.
///
/// `error` is a single CamelCase word for the condition, and `description`
/// is text meant for the person who made the request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Only on errors from update and deprovision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_usable: Option<bool>,
    /// Only on errors from update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_repeatable: Option<bool>,
}

/// The `error` codes that the specification reserves for particular cases.
pub mod error_codes {
    /// The request needs `accepts_incomplete=true`.
    pub const ASYNC_REQUIRED: &str = "AsyncRequired";
    /// Another operation is changing the same resource.
    pub const CONCURRENCY_ERROR: &str = "ConcurrencyError";
    /// The bind needs an `app_guid`.
    pub const REQUIRES_APP: &str = "RequiresApp";
    /// The request's `maintenance_info.version` differs from the catalog's.
    pub const MAINTENANCE_INFO_CONFLICT: &str = "MaintenanceInfoConflict";
}
