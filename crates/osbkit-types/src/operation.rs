use serde::{Deserialize, Serialize};

/// The state of an asynchronous operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OperationState {
    #[serde(rename = "in progress")]
    InProgress,
    #[serde(rename = "succeeded")]
    Succeeded,
    #[serde(rename = "failed")]
    Failed,
}

impl OperationState {
    /// Returns the string the specification uses for this state.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationState::InProgress => "in progress",
            OperationState::Succeeded => "succeeded",
            OperationState::Failed => "failed",
        }
    }

    /// Returns true once the operation has ended, either way.
    pub fn is_final(self) -> bool {
        self != OperationState::InProgress
    }
}

/// The body of `GET .../last_operation` for instances and bindings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastOperationResponse {
    pub state: OperationState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Only for a failed update or deprovision of an instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_usable: Option<bool>,
    /// Only for a failed update of an instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_repeatable: Option<bool>,
}

/// The query of `GET .../last_operation`. Every field is an optional hint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LastOperationQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
}

/// The body of a 202 Accepted response to a delete, bind or update.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AsyncOperationResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
}
