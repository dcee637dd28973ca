//! Durable state: instances, bindings and operations.
//!
//! Every method is one atomic step, so that racing requests, on one broker
//! or on several replicas sharing a database, see consistent state. At most
//! one operation changes an instance at a time: the store grants that lock
//! by writing the operation's id into the instance's `active_operation`,
//! and [`Store::finish`] releases it together with the operation's effects.

mod sqlite;

pub use sqlite::SqliteStore;

use async_trait::async_trait;
use osbkit_types::{InstanceMetadata, JsonObject, OperationState};
use serde::{Deserialize, Serialize};

use crate::backend::OperationKind;

/// The lifecycle state of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    /// Its provision is running.
    Provisioning,
    /// Provisioned; updates and binds may run.
    Ready,
    /// Its last provision failed; an identical provision retries it and a
    /// deprovision removes what it left.
    ProvisionFailed,
    /// Its deprovision is running.
    Deprovisioning,
}

/// The lifecycle state of a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingState {
    Binding,
    Ready,
    BindFailed,
    Unbinding,
}

/// A stored service instance.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRecord {
    pub id: String,
    pub service_id: String,
    pub plan_id: String,
    pub parameters: JsonObject,
    pub context: Option<JsonObject>,
    pub organization_guid: String,
    pub space_guid: String,
    pub maintenance_version: Option<String>,
    /// The attributes of the provision request, compared with a repeated one.
    pub provision_request: serde_json::Value,
    pub dashboard_url: Option<String>,
    pub metadata: Option<InstanceMetadata>,
    pub state: InstanceState,
    /// The operation that holds the instance's lock.
    pub active_operation: Option<String>,
    pub created_by: String,
}

/// A stored binding. Its credentials are sealed by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct BindingRecord {
    pub id: String,
    pub instance_id: String,
    pub service_id: String,
    pub plan_id: String,
    pub parameters: JsonObject,
    /// The attributes of the bind request, compared with a repeated one.
    pub bind_request: serde_json::Value,
    pub state: BindingState,
    pub active_operation: Option<String>,
    /// The encrypted JSON of the binding response, credentials included.
    pub sealed_response: Option<Vec<u8>>,
    pub created_by: String,
}

/// A stored operation, synchronous or not.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationRecord {
    /// The opaque token the platform polls with.
    pub id: String,
    pub kind: OperationKind,
    pub instance_id: String,
    pub binding_id: Option<String>,
    pub state: OperationState,
    pub description: Option<String>,
    /// True when the response was 202 Accepted and the platform polls.
    pub asynchronous: bool,
    /// The job's input, kept to run it again after a restart.
    pub job: StoredJob,
    /// Unix seconds after which the operation is failed.
    pub deadline: Option<i64>,
    pub instance_usable: Option<bool>,
    pub update_repeatable: Option<bool>,
    pub created_at: i64,
}

/// The request-specific input of an operation, kept so a worker can resume it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredJob {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_identity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub originating_identity: Option<(String, JsonObject)>,
    /// Update: the plan after the update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_id: Option<String>,
    /// Update: the parameters the request sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<JsonObject>,
    /// Update: the new context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<JsonObject>,
    /// Update: the maintenance version the instance moves to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_version: Option<String>,
    /// Bind: request fields that the backend receives again on resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_guid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_resource: Option<JsonObject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predecessor_binding_id: Option<String>,
    /// Deprovision: the instance's provision had failed, so a failed
    /// deprovision leaves it failed rather than ready.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub provision_failed: bool,
}

/// The outcome of an operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Completion {
    /// Provision or update succeeded with this result.
    InstanceReady {
        dashboard_url: Option<String>,
        metadata: Option<InstanceMetadata>,
    },
    /// Bind succeeded; the sealed binding response.
    BindingReady { sealed_response: Vec<u8> },
    /// Deprovision or unbind succeeded: the record is removed.
    Deleted,
    /// The operation failed; the resource stays for a retry or a delete.
    Failed {
        description: String,
        instance_usable: Option<bool>,
        update_repeatable: Option<bool>,
    },
    /// The backend rejected the request before creating anything: a record
    /// this operation created is removed, any other is left as it was.
    Rejected {
        description: String,
        instance_usable: Option<bool>,
        update_repeatable: Option<bool>,
    },
}

/// The result of [`Store::create_instance`] and [`Store::create_binding`].
// Returned once per request and matched at once, so boxing would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Created<T> {
    /// The record and its operation were written.
    Inserted,
    /// A record with this id exists: the caller compares it with the request.
    Exists {
        existing: T,
        active: Option<OperationRecord>,
    },
}

/// The result of a request for a resource's lock.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Locked<T> {
    /// The lock is held by the given operation, which was written.
    Acquired(T),
    NotFound,
    /// Another operation holds the lock, or (for instances) one of its
    /// bindings has an operation running.
    Busy(OperationRecord),
    /// The resource is unlocked but in a state the operation cannot start from.
    WrongState(T),
}

/// The result of [`Store::create_binding`] when the instance does not allow it.
#[derive(Debug, Clone, PartialEq)]
pub enum BindBlocked {
    InstanceNotFound,
    /// The instance is being provisioned, updated or deleted.
    InstanceBusy(InstanceState),
}

/// A failure of the store itself: the database is unreachable or damaged.
#[derive(Debug, thiserror::Error)]
#[error("state store failed: {0}")]
pub struct StoreError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

impl StoreError {
    /// Wraps any error.
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StoreError(error.into())
    }
}

/// Durable storage of the broker's state.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn instance(&self, id: &str) -> Result<Option<InstanceRecord>, StoreError>;
    async fn binding(&self, id: &str) -> Result<Option<BindingRecord>, StoreError>;
    async fn operation(&self, id: &str) -> Result<Option<OperationRecord>, StoreError>;

    /// Returns the newest operation on an instance (`binding_id` None) or on a binding.
    async fn latest_operation(
        &self,
        instance_id: &str,
        binding_id: Option<&str>,
    ) -> Result<Option<OperationRecord>, StoreError>;

    /// Inserts a new instance in state `Provisioning`, locked by `operation`,
    /// unless one with this id exists.
    async fn create_instance(
        &self,
        instance: &InstanceRecord,
        operation: &OperationRecord,
    ) -> Result<Created<InstanceRecord>, StoreError>;

    /// Takes an existing instance's lock for `operation` when it is in one of
    /// the `allowed` states, and moves it to `new_state`. With
    /// `require_idle_bindings`, a binding operation in progress makes the
    /// instance busy too.
    async fn lock_instance(
        &self,
        operation: &OperationRecord,
        allowed: &[InstanceState],
        new_state: InstanceState,
        require_idle_bindings: bool,
    ) -> Result<Locked<InstanceRecord>, StoreError>;

    /// Inserts a new binding in state `Binding`, locked by `operation`, when
    /// its instance is `Ready` and unlocked, unless one with this id exists.
    async fn create_binding(
        &self,
        binding: &BindingRecord,
        operation: &OperationRecord,
    ) -> Result<Result<Created<BindingRecord>, BindBlocked>, StoreError>;

    /// Takes an existing binding's lock for `operation` when it is in one of
    /// the `allowed` states, and moves it to `new_state`.
    async fn lock_binding(
        &self,
        operation: &OperationRecord,
        allowed: &[BindingState],
        new_state: BindingState,
    ) -> Result<Locked<BindingRecord>, StoreError>;

    /// Ends an operation that is still in progress, applies its effects and
    /// releases its lock. Ended operations are kept, so that `last_operation`
    /// can report them after their resource is gone. Returns false, changing nothing, when the operation
    /// had already ended (for example by its deadline).
    async fn finish(&self, operation_id: &str, completion: &Completion)
        -> Result<bool, StoreError>;

    /// Returns every operation still in progress, oldest first.
    async fn operations_in_progress(&self) -> Result<Vec<OperationRecord>, StoreError>;

    /// Returns the ids of the bindings of an instance.
    async fn binding_ids(&self, instance_id: &str) -> Result<Vec<String>, StoreError>;

    /// Returns the ids of every instance, for reconciliation with the servers.
    async fn all_instance_ids(&self) -> Result<Vec<String>, StoreError>;

    /// Returns the ids of every binding, for reconciliation with the servers.
    async fn all_binding_ids(&self) -> Result<Vec<String>, StoreError>;

    /// Reads a value of the broker's own settings.
    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError>;

    /// Writes a value of the broker's own settings unless one is there, and
    /// returns the value that is stored afterwards.
    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError>;
}

/// Returns the current time in Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or(0)
}
