//! Polling `last_operation` after a 202 Accepted.
//!
//! The platform polls until `state` is `succeeded` or `failed`, sends the
//! broker's `operation` token and the `service_id` and `plan_id` hints on
//! every poll, waits as long as `Retry-After` requests, and gives up at the
//! deadline (the plan's `maximum_polling_duration` or `--timeout`), which
//! counts as a failure. Invalid answers are polled through, as the
//! specification asks, except those that cannot heal (400, 401, 403, 412).

use std::time::Duration;

use osbkit_types::{LastOperationResponse, OperationState};
use reqwest::header::RETRY_AFTER;
use reqwest::{Method, StatusCode};

use super::progress::Progress;
use super::{BrokerClient, BrokerRequest, Deadline, RawResponse, Resource};
use crate::clock::{now_unix, parse_http_date};
use crate::platform::PlatformKind;

/// First wait between polls; it grows by half after each poll.
const FIRST_INTERVAL: Duration = Duration::from_millis(300);
/// Longest wait between polls unless the broker requests more with Retry-After.
const MAX_INTERVAL: Duration = Duration::from_secs(15);
/// Upper bound on the number of polls, whatever the deadline.
const MAX_POLLS: u32 = 10_000;

/// The resource and operation to poll.
#[derive(Debug, Clone)]
pub struct PollRequest {
    pub resource: Resource,
    pub service_id: String,
    /// For a plan change, the plan before the update.
    pub plan_id: String,
    /// The `operation` of the 202 body, sent back unchanged.
    pub operation: Option<String>,
    /// A delete: 410 Gone then means success.
    pub deleting: bool,
    pub identity_platform: PlatformKind,
}

/// The end of polling.
#[derive(Debug, Clone)]
pub enum PollOutcome {
    Succeeded,
    Failed(LastOperationResponse),
    /// 410 Gone while polling a delete: the resource no longer exists.
    Gone,
    /// No final state by the deadline, or a response that cannot change by
    /// polling again. The operation counts as failed, and its real state is unknown.
    Unknown {
        reason: String,
    },
}

impl BrokerClient {
    /// Polls `last_operation` until a final state, 410 on a delete, or the deadline.
    pub async fn poll_last_operation(
        &self,
        poll: &PollRequest,
        deadline: Deadline,
        progress: &Progress,
        label: &str,
    ) -> PollOutcome {
        let mut interval = FIRST_INTERVAL;
        let mut last_problem = String::from("the operation was still in progress");

        for _ in 0..MAX_POLLS {
            if deadline.passed() {
                return PollOutcome::Unknown {
                    reason: format!("polling timed out: {last_problem}"),
                };
            }
            let request = self.last_operation_request(poll);
            let wait = match self.send_raw(&request, self.timeout_within(deadline)).await {
                Ok(response) => match read_poll_answer(&response, poll.deleting) {
                    PollAnswer::Final(outcome) => return outcome,
                    PollAnswer::InProgress(description) => {
                        progress.set(match &description {
                            Some(text) => format!("{label}: in progress: {text}"),
                            None => format!("{label}: in progress"),
                        });
                        last_problem = String::from("the operation was still in progress");
                        retry_after(&response).unwrap_or(interval)
                    }
                    PollAnswer::Invalid(problem) => {
                        last_problem = problem;
                        retry_after(&response).unwrap_or(interval)
                    }
                    PollAnswer::Fatal(problem) => return PollOutcome::Unknown { reason: problem },
                },
                Err(error) => {
                    last_problem = error.to_string();
                    interval
                }
            };
            tokio::time::sleep(wait.min(deadline.remaining())).await;
            interval = (interval.mul_f64(1.5)).min(MAX_INTERVAL);
        }
        PollOutcome::Unknown {
            reason: format!("gave up after {MAX_POLLS} polls: {last_problem}"),
        }
    }

    fn last_operation_request(&self, poll: &PollRequest) -> BrokerRequest {
        let mut request = BrokerRequest::new(Method::GET, poll.resource.last_operation_path())
            .query("service_id", &poll.service_id)
            .query("plan_id", &poll.plan_id)
            .identity_platform(poll.identity_platform);
        if let Some(operation) = poll
            .operation
            .as_ref()
            .filter(|operation| !operation.is_empty())
        {
            request = request.query("operation", operation);
        }
        request
    }
}

enum PollAnswer {
    Final(PollOutcome),
    InProgress(Option<String>),
    /// A response the specification requires polling through.
    Invalid(String),
    /// A response that polling again cannot change.
    Fatal(String),
}

fn read_poll_answer(response: &RawResponse, deleting: bool) -> PollAnswer {
    match response.status {
        StatusCode::OK => match response.json::<LastOperationResponse>() {
            Some(body) => match body.state {
                OperationState::Succeeded => PollAnswer::Final(PollOutcome::Succeeded),
                OperationState::Failed => PollAnswer::Final(PollOutcome::Failed(body)),
                OperationState::InProgress => PollAnswer::InProgress(body.description),
            },
            None => PollAnswer::Invalid("last_operation answered 200 with an invalid body".into()),
        },
        StatusCode::GONE if deleting => PollAnswer::Final(PollOutcome::Gone),
        StatusCode::BAD_REQUEST
        | StatusCode::UNAUTHORIZED
        | StatusCode::FORBIDDEN
        | StatusCode::PRECONDITION_FAILED => PollAnswer::Fatal(format!(
            "last_operation: {}",
            response.clone().into_broker_error()
        )),
        _ => PollAnswer::Invalid(format!(
            "last_operation: {}",
            response.clone().into_broker_error()
        )),
    }
}

/// Reads `Retry-After` as seconds or as an HTTP date.
fn retry_after(response: &RawResponse) -> Option<Duration> {
    let value = response.headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = parse_http_date(value)?;
    Some(Duration::from_secs(
        at.saturating_sub(now_unix()).max(0) as u64
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn response(status: u16, body: &str, retry: Option<&str>) -> RawResponse {
        let mut headers = HeaderMap::new();
        if let Some(value) = retry {
            headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        }
        RawResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body: body.as_bytes().to_vec(),
            request_identity: "r".into(),
        }
    }

    #[test]
    fn retry_after_seconds_read() {
        assert_eq!(
            retry_after(&response(200, "", Some("7"))),
            Some(Duration::from_secs(7))
        );
        assert_eq!(retry_after(&response(200, "", None)), None);
        assert_eq!(retry_after(&response(200, "", Some("soon"))), None);
    }

    #[test]
    fn retry_after_past_date_means_now() {
        let past = response(200, "", Some("Sun, 06 Nov 1994 08:49:37 GMT"));
        assert_eq!(retry_after(&past), Some(Duration::ZERO));
    }

    #[test]
    fn gone_final_only_when_deleting() {
        assert!(matches!(
            read_poll_answer(&response(410, "{}", None), true),
            PollAnswer::Final(PollOutcome::Gone)
        ));
        assert!(matches!(
            read_poll_answer(&response(410, "{}", None), false),
            PollAnswer::Invalid(_)
        ));
    }

    #[test]
    fn states_map_to_outcomes() {
        let failed = read_poll_answer(
            &response(200, r#"{"state":"failed","description":"x"}"#, None),
            false,
        );
        assert!(matches!(failed, PollAnswer::Final(PollOutcome::Failed(_))));
        let running = read_poll_answer(&response(200, r#"{"state":"in progress"}"#, None), false);
        assert!(matches!(running, PollAnswer::InProgress(None)));
        let invalid = read_poll_answer(&response(200, r#"{"state":"done"}"#, None), false);
        assert!(matches!(invalid, PollAnswer::Invalid(_)));
        let unauthorized = read_poll_answer(&response(401, "{}", None), false);
        assert!(matches!(unauthorized, PollAnswer::Fatal(_)));
        let server_error = read_poll_answer(&response(503, "{}", None), false);
        assert!(matches!(server_error, PollAnswer::Invalid(_)));
    }
}
