//! Orphan mitigation: deleting an instance or binding that the platform
//! cannot be sure was created, and retrying the delete until the broker
//! confirms it (200, 410 Gone, or a 202 whose operation succeeds).
//!
//! The callers decide when mitigation runs. The specification requires it
//! after a provision or bind that timed out, answered 5xx, answered a 2xx
//! other than 200/201/202, answered 201/202 with a malformed body, or whose
//! operation failed; never after a ConcurrencyError, a 4xx, a 200 or any
//! update failure.

use std::time::Duration;

use reqwest::{Method, StatusCode};

use super::poll::{PollOutcome, PollRequest};
use super::progress::Progress;
use super::{BrokerClient, BrokerRequest, Deadline, Resource};
use crate::platform::PlatformKind;

/// Maximum delete attempts, ConcurrencyError responses included.
pub const MAX_ATTEMPTS: u32 = 5;
/// Time allowed for all attempts together, polling included.
pub const TIME_LIMIT: Duration = Duration::from_secs(120);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// The resource to delete, with the hints the DELETE and its polling need.
#[derive(Debug, Clone)]
pub struct Orphan {
    pub resource: Resource,
    pub service_id: String,
    pub plan_id: String,
    pub identity_platform: PlatformKind,
}

impl BrokerClient {
    /// Deletes the orphan, retrying up to `MAX_ATTEMPTS` times within
    /// `TIME_LIMIT`. Returns the last problem when the broker never confirmed.
    pub async fn mitigate_orphan(
        &self,
        orphan: &Orphan,
        progress: &Progress,
    ) -> Result<(), String> {
        let deadline = Deadline::after(TIME_LIMIT);
        let label = format!("orphan mitigation of {}", orphan.resource.describe());
        let mut backoff = FIRST_BACKOFF;
        let mut last_problem = String::from("no attempt was made");

        for _ in 0..MAX_ATTEMPTS {
            if deadline.passed() {
                break;
            }
            progress.set(format!("{label}: deleting"));
            let request = BrokerRequest::new(Method::DELETE, orphan.resource.path())
                .query("accepts_incomplete", "true")
                .query("service_id", &orphan.service_id)
                .query("plan_id", &orphan.plan_id)
                .identity_platform(orphan.identity_platform);

            match self.send_raw(&request, self.timeout_within(deadline)).await {
                Ok(response)
                    if response.status == StatusCode::OK || response.status == StatusCode::GONE =>
                {
                    return Ok(());
                }
                Ok(response) if response.status == StatusCode::ACCEPTED => {
                    let operation = response
                        .json::<osbkit_types::AsyncOperationResponse>()
                        .and_then(|body| body.operation);
                    let poll = PollRequest {
                        resource: orphan.resource.clone(),
                        service_id: orphan.service_id.clone(),
                        plan_id: orphan.plan_id.clone(),
                        operation,
                        deleting: true,
                        identity_platform: orphan.identity_platform,
                    };
                    match self
                        .poll_last_operation(&poll, deadline, progress, &label)
                        .await
                    {
                        PollOutcome::Succeeded | PollOutcome::Gone => return Ok(()),
                        PollOutcome::Failed(body) => {
                            last_problem = format!(
                                "the delete failed: {}",
                                body.description.unwrap_or_else(|| "no description".into())
                            );
                        }
                        PollOutcome::Unknown { reason } => last_problem = reason,
                    }
                }
                Ok(response)
                    if response.status.is_client_error()
                        && response.error_code().as_deref()
                            != Some(osbkit_types::error_codes::CONCURRENCY_ERROR) =>
                {
                    // The broker rejects this delete and will keep rejecting it.
                    return Err(response.into_broker_error().to_string());
                }
                Ok(response) => last_problem = response.into_broker_error().to_string(),
                Err(error) => last_problem = error.to_string(),
            }
            tokio::time::sleep(backoff.min(deadline.remaining())).await;
            backoff *= 2;
        }
        Err(last_problem)
    }
}
