//! A backend that gives each instance a database on a shared PostgreSQL
//! server and each binding a login role.
//!
//! Per instance the broker makes a database owned by a non-login owner role,
//! and a non-login reader role for read-only bindings. A read-write binding
//! is a login role that is a member of the owner role and whose sessions run
//! as it, so the tables it makes belong to the owner and outlive it. Unbind
//! hands anything the login role still owns to the owner role. All names
//! derive from the server's `name_prefix` and the ids (see [`names`]), and
//! provision marks the database with a comment, so that provision,
//! deprovision and reconcile leave alone a database of that name that the
//! broker did not make. Every step
//! checks the catalogs or uses `IF [NOT] EXISTS`, so an operation that
//! stopped between two statements finishes when run again.

mod binding;
mod catalog;
pub mod config;
mod connect;
mod credentials;
mod instance;
pub mod names;
mod params;
pub mod reconcile;
mod sql;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use osbkit::types::JsonObject;
use osbkit::{
    Backend, BackendError, BindJob, BindingOutcome, DeprovisionJob, Execution, InstanceOutcome,
    OperationKind, ProvisionJob, UnbindJob, UpdateJob,
};

pub use config::{ExecutionMode, PlanConfig, ServerConfig, TlsMode};
pub use credentials::PASSWORD_LEN;
pub use reconcile::{KnownInstance, ReconcileReport};

use connect::Server;

/// The steps after which [`PostgresBackend::inject_fault_after`] can stop
/// an operation, in the order each operation runs them.
pub mod steps {
    pub const PROVISION: &[&str] = &[
        "provision:owner_role",
        "provision:database",
        "provision:database_settings",
        "provision:schema",
        "provision:reader_role",
        "provision:extensions",
    ];
    pub const UPDATE: &[&str] = &["update:database_settings", "update:extensions"];
    pub const BIND: &[&str] = &["bind:reader_role", "bind:role", "bind:grants", "bind:login"];
    pub const UNBIND: &[&str] = &[
        "unbind:block_login",
        "unbind:end_sessions",
        "unbind:reassign_objects",
        "unbind:drop_role",
    ];
    pub const DEPROVISION: &[&str] = &[
        "deprovision:block_connections",
        "deprovision:drop_database",
        "deprovision:drop_binding_roles",
        "deprovision:drop_group_roles",
    ];
}

/// The maximum number of operations that run at once; the others wait their
/// turn. With two connections each, this stays well inside PostgreSQL's
/// default `max_connections` of 100.
const MAX_CONCURRENT_OPERATIONS: usize = 16;

/// The PostgreSQL backend for every plan whose `backend.type` is `postgresql`.
#[derive(Debug)]
pub struct PostgresBackend {
    servers: BTreeMap<String, Arc<Server>>,
    plans: HashMap<String, PlanConfig>,
    /// A step after which operations fail, for crash tests. The config cannot set it.
    fault_after: Mutex<Option<String>>,
    /// Bounds the operations running at once, since each holds up to two
    /// server connections and a burst must not exhaust `max_connections`.
    operations: tokio::sync::Semaphore,
}

impl PostgresBackend {
    /// Checks the configuration and prepares connections to every server in
    /// `servers`. Connects to none, so the broker starts while a server is down.
    /// The error names the field at fault and how to fix it.
    pub async fn new(
        servers: &BTreeMap<String, ServerConfig>,
        plans: Vec<(String, PlanConfig)>,
    ) -> Result<Self, String> {
        let mut prepared = BTreeMap::new();
        for (key, server_config) in servers {
            prepared.insert(key.clone(), Arc::new(Server::new(key, server_config)?));
        }
        let mut plan_map = HashMap::new();
        for (plan_id, plan) in plans {
            plan.validate(&plan_id)?;
            if !prepared.contains_key(&plan.server) {
                let known: Vec<&str> = prepared.keys().map(String::as_str).collect();
                return Err(format!(
                    "plan {plan_id:?}: backend.server is {:?} but [postgresql.servers] has no such \
                     entry (configured: {}); add [postgresql.servers.{}] or fix the name",
                    plan.server,
                    if known.is_empty() { "none".to_owned() } else { known.join(", ") },
                    plan.server,
                ));
            }
            if plan_map.insert(plan_id.clone(), plan).is_some() {
                return Err(format!(
                    "plan id {plan_id:?} appears twice; give each plan its own id"
                ));
            }
        }
        Ok(PostgresBackend {
            servers: prepared,
            plans: plan_map,
            fault_after: Mutex::new(None),
            operations: tokio::sync::Semaphore::new(MAX_CONCURRENT_OPERATIONS),
        })
    }

    /// Makes every later operation fail with an internal error right after
    /// `step` (one of [`steps`]) until called with `None`. For crash tests:
    /// the failure leaves the server exactly as a broker killed there would.
    #[doc(hidden)]
    pub fn inject_fault_after(&self, step: Option<&str>) {
        *self.lock_fault() = step.map(str::to_owned);
    }

    fn lock_fault(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.fault_after
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Fails when a fault is injected after `step`.
    fn checkpoint(&self, step: &'static str) -> Result<(), BackendError> {
        debug_assert!(
            steps::PROVISION
                .iter()
                .chain(steps::UPDATE)
                .chain(steps::BIND)
                .chain(steps::UNBIND)
                .chain(steps::DEPROVISION)
                .any(|known| *known == step),
            "step {step} is missing from the steps lists"
        );
        if self.lock_fault().as_deref() == Some(step) {
            return Err(BackendError::internal(format!(
                "injected fault after step {step}"
            )));
        }
        Ok(())
    }

    fn plan(&self, plan_id: &str) -> Result<&PlanConfig, BackendError> {
        self.plans.get(plan_id).ok_or_else(|| {
            BackendError::internal(format!(
                "plan {plan_id:?} is not configured for the PostgreSQL backend"
            ))
        })
    }

    /// Waits for a turn to run an operation. The semaphore is never closed.
    async fn operation_permit(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.operations.acquire().await.ok()
    }

    fn server(&self, plan: &PlanConfig) -> &Server {
        // `new` checked that every plan's server exists.
        &self.servers[&plan.server]
    }

    fn servers(&self) -> impl Iterator<Item = &Server> {
        self.servers.values().map(|server| &**server)
    }

    fn server_of_plan(&self, plan_id: &str) -> Option<&Server> {
        self.plans.get(plan_id).map(|plan| self.server(plan))
    }
}

#[async_trait]
impl Backend for PostgresBackend {
    fn execution(&self, plan_id: &str, _kind: OperationKind) -> Execution {
        self.plans
            .get(plan_id)
            .map(|plan| plan.execution.into())
            .unwrap_or(Execution::AsyncPreferred)
    }

    fn resumable(&self, _plan_id: &str, _kind: OperationKind) -> bool {
        true
    }

    /// Runs the same checks as the operation itself, so that invalid
    /// parameters get a 400 before an asynchronous operation is accepted.
    fn check_parameters(
        &self,
        plan_id: &str,
        kind: OperationKind,
        parameters: &JsonObject,
    ) -> Result<(), BackendError> {
        // An unknown plan fails in the operation itself, with its own error.
        let Some(plan) = self.plans.get(plan_id) else {
            return Ok(());
        };
        match kind {
            OperationKind::Provision | OperationKind::Update => {
                params::requested_extensions(parameters, plan).map(|_| ())
            }
            OperationKind::Bind => params::binding_read_only(parameters, plan).map(|_| ()),
            OperationKind::Deprovision | OperationKind::Unbind => Ok(()),
        }
    }

    async fn provision(&self, job: &ProvisionJob) -> Result<InstanceOutcome, BackendError> {
        let _permit = self.operation_permit().await;
        instance::provision(self, job).await
    }

    async fn update(&self, job: &UpdateJob) -> Result<InstanceOutcome, BackendError> {
        let _permit = self.operation_permit().await;
        instance::update(self, job).await
    }

    async fn deprovision(&self, job: &DeprovisionJob) -> Result<(), BackendError> {
        let _permit = self.operation_permit().await;
        instance::deprovision(self, job).await
    }

    async fn bind(&self, job: &BindJob) -> Result<BindingOutcome, BackendError> {
        let _permit = self.operation_permit().await;
        binding::bind(self, job).await
    }

    async fn unbind(&self, job: &UnbindJob) -> Result<(), BackendError> {
        let _permit = self.operation_permit().await;
        binding::unbind(self, job).await
    }
}
