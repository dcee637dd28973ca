//! The trait a service implements to become a broker.
//!
//! A backend does the resource work of each operation and nothing else. The
//! framework has already checked the request against the catalog, the
//! plan's schemas and the stored state. It chooses the HTTP status, stores
//! the outcome and serves `last_operation` itself. A backend cannot respond
//! with a status the specification forbids, because it never sees HTTP.
//!
//! Every method must be safe to run again with the same input after a crash
//! at any point, because the framework re-runs operations that were in
//! progress when the broker stopped.

use async_trait::async_trait;
use osbkit_types::{BindingMetadata, Endpoint, InstanceMetadata, JsonObject, VolumeMount};

use crate::identity::OriginatingIdentity;

/// The operations of the specification that change state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperationKind {
    Provision,
    Update,
    Deprovision,
    Bind,
    Unbind,
}

impl OperationKind {
    /// Returns the lower-case name used in the store and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationKind::Provision => "provision",
            OperationKind::Update => "update",
            OperationKind::Deprovision => "deprovision",
            OperationKind::Bind => "bind",
            OperationKind::Unbind => "unbind",
        }
    }

    /// Parses the name that [`OperationKind::as_str`] returns.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "provision" => OperationKind::Provision,
            "update" => OperationKind::Update,
            "deprovision" => OperationKind::Deprovision,
            "bind" => OperationKind::Bind,
            "unbind" => OperationKind::Unbind,
            _ => return None,
        })
    }
}

/// The execution mode of one kind of operation on one plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Execution {
    /// Always within the request; `accepts_incomplete` is ignored.
    Synchronous,
    /// In the background when the platform sends `accepts_incomplete=true`,
    /// within the request otherwise.
    AsyncPreferred,
    /// Only in the background: without `accepts_incomplete=true` the request
    /// gets 422 `AsyncRequired`.
    AsyncOnly,
}

/// The fields that every job carries besides its own.
#[derive(Debug, Clone, Default)]
pub struct JobContext {
    /// The platform user who caused the request, when the platform sent one.
    pub originating_identity: Option<OriginatingIdentity>,
    /// The `X-Broker-API-Request-Identity` of the request that started the job.
    pub request_identity: String,
    /// The operation token, stable across restarts of the job.
    pub operation: String,
}

/// A provision to carry out.
#[derive(Debug, Clone)]
pub struct ProvisionJob {
    pub context: JobContext,
    pub instance_id: String,
    pub service_id: String,
    pub plan_id: String,
    pub parameters: JsonObject,
    pub platform_context: Option<JsonObject>,
    pub organization_guid: String,
    pub space_guid: String,
}

/// An update to carry out. `plan_id` is the plan after the update.
#[derive(Debug, Clone)]
pub struct UpdateJob {
    pub context: JobContext,
    pub instance_id: String,
    pub service_id: String,
    pub previous_plan_id: String,
    pub plan_id: String,
    /// The instance's parameters before the update.
    pub previous_parameters: JsonObject,
    /// The parameters the request sent; empty when it sent none.
    pub parameters: JsonObject,
    pub platform_context: Option<JsonObject>,
    /// The maintenance version the instance moves to, when it changes.
    pub maintenance_version: Option<String>,
}

/// A deprovision to carry out. The instance's bindings, if the platform left
/// any, go with it.
#[derive(Debug, Clone)]
pub struct DeprovisionJob {
    pub context: JobContext,
    pub instance_id: String,
    pub service_id: String,
    pub plan_id: String,
    pub binding_ids: Vec<String>,
}

/// A bind to carry out.
#[derive(Debug, Clone)]
pub struct BindJob {
    pub context: JobContext,
    pub instance_id: String,
    pub binding_id: String,
    pub service_id: String,
    pub plan_id: String,
    pub parameters: JsonObject,
    pub app_guid: Option<String>,
    pub bind_resource: Option<JsonObject>,
    pub platform_context: Option<JsonObject>,
    /// The binding whose credentials this one rotates.
    pub predecessor_binding_id: Option<String>,
}

/// An unbind to carry out.
#[derive(Debug, Clone)]
pub struct UnbindJob {
    pub context: JobContext,
    pub instance_id: String,
    pub binding_id: String,
    pub service_id: String,
    pub plan_id: String,
}

/// The result of a provision or update.
#[derive(Debug, Clone, Default)]
pub struct InstanceOutcome {
    pub dashboard_url: Option<String>,
    pub metadata: Option<InstanceMetadata>,
}

/// The result of a bind. The framework stores it encrypted and serves it
/// again on fetch and on an identical repeated bind.
#[derive(Debug, Clone, Default)]
pub struct BindingOutcome {
    pub credentials: Option<JsonObject>,
    pub metadata: Option<BindingMetadata>,
    pub endpoints: Vec<Endpoint>,
    pub syslog_drain_url: Option<String>,
    pub route_service_url: Option<String>,
    pub volume_mounts: Vec<VolumeMount>,
}

/// A backend's failure to carry out a job.
///
/// Only the variants that describe the request reach the client with their
/// text. [`BackendError::Internal`] and [`BackendError::Unavailable`] are
/// logged with their cause, and the client gets a generic description.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The parameters are valid JSON for the schema but not acceptable
    /// (400). Nothing was created.
    #[error("invalid parameters: {0}")]
    InvalidParameters(String),

    /// The change is not supported or the resource's state prevents it
    /// (422). Nothing was changed.
    #[error("unprocessable: {0}")]
    Unprocessable(String),

    /// The bind needs an `app_guid` (422 `RequiresApp`).
    #[error("this binding needs an app_guid")]
    RequiresApp,

    /// A server the backend depends on cannot be reached (503).
    #[error("{what} is unavailable: {source}")]
    Unavailable {
        /// The name of the unavailable server, safe to show the client ("the PostgreSQL server").
        what: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// Anything else (500).
    #[error(transparent)]
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl BackendError {
    /// Wraps any error as an internal one.
    pub fn internal(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        BackendError::Internal(error.into())
    }

    /// Returns true when the client's request, not the broker, is at fault.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            BackendError::InvalidParameters(_)
                | BackendError::Unprocessable(_)
                | BackendError::RequiresApp
        )
    }

    /// Returns the description the client may see.
    pub fn public_description(&self) -> String {
        match self {
            BackendError::InvalidParameters(text) | BackendError::Unprocessable(text) => {
                text.clone()
            }
            BackendError::RequiresApp => {
                "this plan needs an application: send bind_resource.app_guid".to_owned()
            }
            BackendError::Unavailable { what, .. } => {
                format!("{what} is unavailable; try again later")
            }
            BackendError::Internal(_) => "the broker failed internally".to_owned(),
        }
    }
}

/// A service behind the broker.
///
/// Only provision and deprovision are required. The defaults of the other
/// operations behave as the specification asks of a broker without them:
/// update and bind are rejected, and unbind has nothing to remove.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Tells how `kind` runs on `plan_id`. The default runs everything
    /// within the request.
    fn execution(&self, plan_id: &str, kind: OperationKind) -> Execution {
        let _ = (plan_id, kind);
        Execution::Synchronous
    }

    /// Tells whether an operation interrupted by a restart may run again.
    /// When false, the framework fails it with a description instead.
    fn resumable(&self, plan_id: &str, kind: OperationKind) -> bool {
        let _ = (plan_id, kind);
        true
    }

    /// Checks a request's parameters before the operation is accepted, beyond
    /// what the plan's JSON Schema checks, so that an asynchronous request
    /// with invalid parameters gets a 400 at once instead of a failed
    /// operation later. `kind` is provision, update or bind.
    fn check_parameters(
        &self,
        plan_id: &str,
        kind: OperationKind,
        parameters: &JsonObject,
    ) -> Result<(), BackendError> {
        let _ = (plan_id, kind, parameters);
        Ok(())
    }

    /// Returns the dashboard URL of an instance about to be provisioned. The
    /// specification requires it in the first provision response, which for
    /// an asynchronous provision comes before the backend runs.
    fn dashboard_url(&self, plan_id: &str, instance_id: &str) -> Option<String> {
        let _ = (plan_id, instance_id);
        None
    }

    /// Creates the resources of a new instance.
    async fn provision(&self, job: &ProvisionJob) -> Result<InstanceOutcome, BackendError>;

    /// Applies a plan, parameter, context or maintenance change.
    async fn update(&self, job: &UpdateJob) -> Result<InstanceOutcome, BackendError> {
        let _ = job;
        Err(BackendError::Unprocessable(
            "this service does not support updates".to_owned(),
        ))
    }

    /// Deletes every resource of the instance, including those of bindings
    /// the platform did not unbind. Deleting what is already gone succeeds.
    async fn deprovision(&self, job: &DeprovisionJob) -> Result<(), BackendError>;

    /// Creates credentials or other resources for an application.
    async fn bind(&self, job: &BindJob) -> Result<BindingOutcome, BackendError> {
        let _ = job;
        Err(BackendError::Unprocessable(
            "this service does not support bindings".to_owned(),
        ))
    }

    /// Deletes every resource of the binding. Deleting what is already gone
    /// succeeds.
    async fn unbind(&self, job: &UnbindJob) -> Result<(), BackendError> {
        let _ = job;
        Ok(())
    }
}
