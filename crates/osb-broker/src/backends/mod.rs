//! The services the broker offers, one backend type per kind of resource,
//! and the router that sends each job to its plan's backend.

pub mod postgresql;
pub mod simulated;
pub mod static_credentials;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use osbkit::{
    Backend, BackendError, BindJob, BindingOutcome, DeprovisionJob, Execution, InstanceOutcome,
    OperationKind, ProvisionJob, UnbindJob, UpdateJob,
};

/// Sends each job to the backend of its plan.
pub struct PlanRouter {
    backends: HashMap<String, Arc<dyn Backend>>,
}

impl PlanRouter {
    /// Builds a router from plan ids and their backends. Plans that share a
    /// backend type share one backend value.
    pub fn new(backends: HashMap<String, Arc<dyn Backend>>) -> Self {
        PlanRouter { backends }
    }

    fn backend(&self, plan_id: &str) -> Result<&Arc<dyn Backend>, BackendError> {
        self.backends.get(plan_id).ok_or_else(|| {
            BackendError::internal(format!("plan {plan_id:?} has no backend configured"))
        })
    }
}

#[async_trait]
impl Backend for PlanRouter {
    fn execution(&self, plan_id: &str, kind: OperationKind) -> Execution {
        self.backends
            .get(plan_id)
            .map_or(Execution::Synchronous, |backend| {
                backend.execution(plan_id, kind)
            })
    }

    fn resumable(&self, plan_id: &str, kind: OperationKind) -> bool {
        self.backends
            .get(plan_id)
            .is_some_and(|backend| backend.resumable(plan_id, kind))
    }

    fn check_parameters(
        &self,
        plan_id: &str,
        kind: OperationKind,
        parameters: &osbkit::types::JsonObject,
    ) -> Result<(), BackendError> {
        self.backend(plan_id)?
            .check_parameters(plan_id, kind, parameters)
    }

    fn dashboard_url(&self, plan_id: &str, instance_id: &str) -> Option<String> {
        self.backends
            .get(plan_id)
            .and_then(|backend| backend.dashboard_url(plan_id, instance_id))
    }

    async fn provision(&self, job: &ProvisionJob) -> Result<InstanceOutcome, BackendError> {
        self.backend(&job.plan_id)?.provision(job).await
    }

    async fn update(&self, job: &UpdateJob) -> Result<InstanceOutcome, BackendError> {
        let current = self.backend(&job.previous_plan_id)?;
        let target = self.backend(&job.plan_id)?;
        if !Arc::ptr_eq(current, target) {
            return Err(BackendError::Unprocessable(
                "the new plan is served by another kind of backend, so the instance cannot move to it; provision a new instance instead".to_owned(),
            ));
        }
        current.update(job).await
    }

    async fn deprovision(&self, job: &DeprovisionJob) -> Result<(), BackendError> {
        self.backend(&job.plan_id)?.deprovision(job).await
    }

    async fn bind(&self, job: &BindJob) -> Result<BindingOutcome, BackendError> {
        self.backend(&job.plan_id)?.bind(job).await
    }

    async fn unbind(&self, job: &UnbindJob) -> Result<(), BackendError> {
        self.backend(&job.plan_id)?.unbind(job).await
    }
}
