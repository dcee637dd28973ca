//! The `static` backend: every binding of a plan gets the same fixed
//! credentials, such as those of one shared SaaS account.
//!
//! Provision and deprovision create nothing; the broker's records are the
//! whole instance.

use std::collections::HashMap;

use async_trait::async_trait;
use osbkit::types::JsonObject;
use osbkit::{
    Backend, BackendError, BindJob, BindingOutcome, DeprovisionJob, InstanceOutcome, ProvisionJob,
    UpdateJob,
};
use serde::Deserialize;

/// The settings of one `static` plan.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticPlan {
    /// Returned as the `credentials` of every binding.
    pub credentials: JsonObject,
}

impl std::fmt::Debug for StaticPlan {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("StaticPlan { credentials: *** }")
    }
}

/// The backend of every `static` plan.
#[derive(Debug, Default)]
pub struct StaticBackend {
    plans: HashMap<String, StaticPlan>,
}

impl StaticBackend {
    /// Adds a plan's settings.
    pub fn add_plan(&mut self, plan_id: &str, plan: StaticPlan) {
        self.plans.insert(plan_id.to_owned(), plan);
    }
}

#[async_trait]
impl Backend for StaticBackend {
    async fn provision(&self, _job: &ProvisionJob) -> Result<InstanceOutcome, BackendError> {
        Ok(InstanceOutcome::default())
    }

    async fn update(&self, _job: &UpdateJob) -> Result<InstanceOutcome, BackendError> {
        Ok(InstanceOutcome::default())
    }

    async fn deprovision(&self, _job: &DeprovisionJob) -> Result<(), BackendError> {
        Ok(())
    }

    async fn bind(&self, job: &BindJob) -> Result<BindingOutcome, BackendError> {
        let plan = self.plans.get(&job.plan_id).ok_or_else(|| {
            BackendError::internal(format!("plan {:?} is not a static plan", job.plan_id))
        })?;
        Ok(BindingOutcome {
            credentials: Some(plan.credentials.clone()),
            ..Default::default()
        })
    }
}
