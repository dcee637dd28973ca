//! The `simulated` backend: resources that exist only in the broker's
//! records, with configurable delays, execution modes and injected failures.
//!
//! It lets tests and demonstrations exercise every path of the protocol
//! (asynchronous operations, failures at a chosen step, restarts in the
//! middle of an operation, expiring credentials) without an outside server.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use osbkit::types::{BindingMetadata, Endpoint, JsonObject};
use osbkit::{
    Backend, BackendError, BindJob, BindingOutcome, DeprovisionJob, Execution, InstanceOutcome,
    OperationKind, ProvisionJob, UnbindJob, UpdateJob,
};
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The execution mode of a plan's operations, as written in the configuration.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionSetting {
    #[default]
    Synchronous,
    AsyncPreferred,
    AsyncOnly,
}

impl From<ExecutionSetting> for Execution {
    fn from(setting: ExecutionSetting) -> Self {
        match setting {
            ExecutionSetting::Synchronous => Execution::Synchronous,
            ExecutionSetting::AsyncPreferred => Execution::AsyncPreferred,
            ExecutionSetting::AsyncOnly => Execution::AsyncOnly,
        }
    }
}

/// The failure an injected fault produces.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FailKind {
    /// A 500, or a failed operation.
    #[default]
    Internal,
    /// A 503: the simulated server is down.
    Unavailable,
    /// A 400 for the parameters.
    InvalidParameters,
    /// A 422 without a reserved code.
    Unprocessable,
}

/// The settings of one `simulated` plan.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedPlan {
    /// The execution mode: `synchronous`, `async_preferred` or `async_only`.
    #[serde(default)]
    pub execution: ExecutionSetting,
    /// How long each operation takes, in milliseconds.
    #[serde(default)]
    pub delay_ms: u64,
    /// The operations that fail: provision, update, deprovision, bind, unbind.
    #[serde(default)]
    pub fail_on: Vec<String>,
    /// The failure that the operations in `fail_on` produce.
    #[serde(default)]
    pub fail_kind: FailKind,
    /// Whether a bind needs `bind_resource.app_guid`.
    #[serde(default)]
    pub requires_app: bool,
    /// Whether operations interrupted by a restart run again; when false
    /// they are failed instead.
    #[serde(default = "default_true")]
    pub resumable: bool,
    /// When set, credentials expire this many seconds after the bind.
    pub binding_ttl_seconds: Option<u64>,
    /// When set, each instance's dashboard is this URL followed by its id.
    pub dashboard_url: Option<String>,
}

fn default_true() -> bool {
    true
}

/// The backend of every `simulated` plan.
#[derive(Debug, Default)]
pub struct SimulatedBackend {
    plans: HashMap<String, SimulatedPlan>,
}

impl SimulatedBackend {
    /// Adds a plan's settings, checking the names in `fail_on`.
    pub fn add_plan(&mut self, plan_id: &str, plan: SimulatedPlan) -> Result<(), String> {
        for name in &plan.fail_on {
            if OperationKind::parse(name).is_none() {
                return Err(format!(
                    "fail_on: {name:?} is not an operation; use provision, update, deprovision, bind or unbind"
                ));
            }
        }
        self.plans.insert(plan_id.to_owned(), plan);
        Ok(())
    }

    fn plan(&self, plan_id: &str) -> Result<&SimulatedPlan, BackendError> {
        self.plans.get(plan_id).ok_or_else(|| {
            BackendError::internal(format!("plan {plan_id:?} is not a simulated plan"))
        })
    }

    /// Waits the plan's delay, then fails when the plan lists `kind` in `fail_on`.
    async fn step(
        &self,
        plan_id: &str,
        kind: OperationKind,
    ) -> Result<&SimulatedPlan, BackendError> {
        let plan = self.plan(plan_id)?;
        if plan.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(plan.delay_ms)).await;
        }
        if !plan.fail_on.iter().any(|name| name == kind.as_str()) {
            return Ok(plan);
        }

        let what = format!("simulated failure of {}", kind.as_str());
        Err(match plan.fail_kind {
            FailKind::Internal => BackendError::internal(what),
            FailKind::Unavailable => BackendError::Unavailable {
                what: "the simulated server".to_owned(),
                source: what.into(),
            },
            FailKind::InvalidParameters => {
                BackendError::InvalidParameters(format!("{what}: the parameters were rejected"))
            }
            FailKind::Unprocessable => BackendError::Unprocessable(what),
        })
    }
}

#[async_trait]
impl Backend for SimulatedBackend {
    fn execution(&self, plan_id: &str, _kind: OperationKind) -> Execution {
        self.plans
            .get(plan_id)
            .map_or(Execution::Synchronous, |plan| plan.execution.into())
    }

    fn resumable(&self, plan_id: &str, _kind: OperationKind) -> bool {
        self.plans.get(plan_id).is_some_and(|plan| plan.resumable)
    }

    fn dashboard_url(&self, plan_id: &str, instance_id: &str) -> Option<String> {
        let base = self.plans.get(plan_id)?.dashboard_url.as_ref()?;
        Some(format!("{base}{instance_id}"))
    }

    async fn provision(&self, job: &ProvisionJob) -> Result<InstanceOutcome, BackendError> {
        self.step(&job.plan_id, OperationKind::Provision).await?;
        Ok(InstanceOutcome::default())
    }

    async fn update(&self, job: &UpdateJob) -> Result<InstanceOutcome, BackendError> {
        self.step(&job.plan_id, OperationKind::Update).await?;
        Ok(InstanceOutcome::default())
    }

    async fn deprovision(&self, job: &DeprovisionJob) -> Result<(), BackendError> {
        self.step(&job.plan_id, OperationKind::Deprovision).await?;
        Ok(())
    }

    async fn bind(&self, job: &BindJob) -> Result<BindingOutcome, BackendError> {
        let plan = self.plan(&job.plan_id)?;
        if plan.requires_app && job.app_guid.is_none() {
            return Err(BackendError::RequiresApp);
        }
        let plan = self.step(&job.plan_id, OperationKind::Bind).await?;

        let username = format!("sim-{}", &hex_digest(&job.binding_id)[..16]);
        let password: String = rand::rngs::OsRng
            .sample_iter(&Alphanumeric)
            .take(32)
            .map(char::from)
            .collect();
        let mut credentials = JsonObject::new();
        credentials.insert(
            "uri".to_owned(),
            format!(
                "simulated://{username}:{password}@127.0.0.1:7000/{}",
                job.instance_id
            )
            .into(),
        );
        credentials.insert("username".to_owned(), username.into());
        credentials.insert("password".to_owned(), password.into());
        credentials.insert("host".to_owned(), "127.0.0.1".into());
        credentials.insert("port".to_owned(), 7000.into());

        Ok(BindingOutcome {
            credentials: Some(credentials),
            metadata: plan.binding_ttl_seconds.map(expiry_metadata),
            endpoints: vec![Endpoint {
                host: "127.0.0.1".to_owned(),
                ports: vec!["7000".to_owned()],
                protocol: Some("tcp".to_owned()),
            }],
            ..Default::default()
        })
    }

    async fn unbind(&self, job: &UnbindJob) -> Result<(), BackendError> {
        self.step(&job.plan_id, OperationKind::Unbind).await?;
        Ok(())
    }
}

fn hex_digest(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Credentials that expire after `ttl` seconds, to be renewed in the last fifth.
fn expiry_metadata(ttl: u64) -> BindingMetadata {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    BindingMetadata {
        expires_at: Some(iso8601(now + ttl)),
        renew_before: Some(iso8601(now + ttl * 4 / 5)),
    }
}

/// Formats Unix seconds as `yyyy-mm-ddThh:mm:ss.sZ`, the form the
/// specification requires for binding expiry.
pub fn iso8601(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let remainder = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.0Z",
        remainder / 3600,
        remainder / 60 % 60,
        remainder % 60
    )
}

/// Converts days since 1970-01-01 to a proleptic Gregorian date, with Howard
/// Hinnant's `civil_from_days` algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_formats_known_instants() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.0Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00.0Z");
        assert_eq!(iso8601(1_798_761_599), "2026-12-31T23:59:59.0Z");
    }

    #[test]
    fn unknown_fail_on_names_are_rejected() {
        let plan = SimulatedPlan {
            fail_on: vec!["provison".to_owned()],
            ..Default::default()
        };
        assert!(SimulatedBackend::default().add_plan("p", plan).is_err());
    }
}
