//! How a platform reads the response to a create (provision, bind) or a delete
//! (deprovision, unbind), following the orphan mitigation table of the
//! specification: which responses mean done, accepted, rejected with nothing
//! changed, or uncertain enough that the resource must be deleted again.

use std::time::Duration;

use osbkit_types::LastOperationResponse;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Session;
use crate::cli::OperationArgs;
use crate::client::mitigation::Orphan;
use crate::client::poll::{PollOutcome, PollRequest};
use crate::client::progress::Progress;
use crate::client::{BrokerRequest, Deadline, RawResponse, Resource, TransportError};
use crate::error::{CliError, CliResult};
use crate::platform::PlatformKind;
use crate::record::{Record, State};

/// The meaning of a provision or bind response.
#[derive(Debug)]
pub enum CreateAnswer {
    /// 200 or 201 with a valid body.
    Done { body: Value },
    /// 202 with a valid body.
    Accepted { operation: Option<String> },
    /// Nothing changed at the broker: a 4xx (ConcurrencyError and 408
    /// included), or no connection was made.
    Rejected(CliError),
    /// A 200 with a malformed body: a failure, without orphan mitigation.
    Malformed200(CliError),
    /// The broker may have created the resource: a timeout, a 5xx, a 2xx
    /// other than 200/201/202, or a 201/202 with a malformed body.
    Uncertain(CliError),
}

/// Reads a create response. A `Done` body must decode as `D`, an `Accepted` one as `A`.
pub fn read_create_answer<D: DeserializeOwned, A: DeserializeOwned + HasOperation>(
    result: Result<RawResponse, TransportError>,
) -> CreateAnswer {
    let response = match result {
        Ok(response) => response,
        Err(error) if error.may_have_reached_broker() => {
            return CreateAnswer::Uncertain(error.into())
        }
        Err(error) => return CreateAnswer::Rejected(error.into()),
    };
    match response.status {
        StatusCode::OK | StatusCode::CREATED => match decode_object::<D>(&response) {
            Some(body) => CreateAnswer::Done { body },
            None if response.status == StatusCode::OK => {
                CreateAnswer::Malformed200(malformed(&response))
            }
            None => CreateAnswer::Uncertain(malformed(&response)),
        },
        StatusCode::ACCEPTED => match response.json::<A>() {
            Some(body) if decode_object::<A>(&response).is_some() => CreateAnswer::Accepted {
                operation: body.operation(),
            },
            _ => CreateAnswer::Uncertain(malformed(&response)),
        },
        status if status.is_client_error() => {
            CreateAnswer::Rejected(response.into_broker_error().into())
        }
        _ => CreateAnswer::Uncertain(response.into_broker_error().into()),
    }
}

/// The meaning of a deprovision or unbind response.
#[derive(Debug)]
pub enum DeleteAnswer {
    /// 200 with a valid body.
    Done,
    /// 410 Gone: the broker does not know the resource.
    Gone,
    /// 202 with a valid body.
    Accepted { operation: Option<String> },
    /// Nothing changed at the broker: a 4xx, or no connection was made.
    Rejected(CliError),
    /// A failure whose outcome is unknown but that the specification does
    /// not mitigate: a timeout, a 200 or 202 with a malformed body.
    Failed(CliError),
    /// A 5xx or a 2xx other than 200/201/202: the delete is retried by orphan mitigation.
    Uncertain(CliError),
}

/// Reads a delete response.
pub fn read_delete_answer(result: Result<RawResponse, TransportError>) -> DeleteAnswer {
    let response = match result {
        Ok(response) => response,
        Err(error) if error.may_have_reached_broker() => return DeleteAnswer::Failed(error.into()),
        Err(error) => return DeleteAnswer::Rejected(error.into()),
    };
    match response.status {
        StatusCode::OK => match decode_object::<Value>(&response) {
            Some(_) => DeleteAnswer::Done,
            None => DeleteAnswer::Failed(malformed(&response)),
        },
        StatusCode::GONE => DeleteAnswer::Gone,
        StatusCode::ACCEPTED => match response.json::<osbkit_types::AsyncOperationResponse>() {
            Some(body) if decode_object::<Value>(&response).is_some() => DeleteAnswer::Accepted {
                operation: body.operation,
            },
            _ => DeleteAnswer::Failed(malformed(&response)),
        },
        status if status.is_client_error() => {
            DeleteAnswer::Rejected(response.into_broker_error().into())
        }
        _ => DeleteAnswer::Uncertain(response.into_broker_error().into()),
    }
}

/// The `operation` field of a 202 body.
pub trait HasOperation {
    fn operation(&self) -> Option<String>;
}

impl HasOperation for osbkit_types::ProvisionResponse {
    fn operation(&self) -> Option<String> {
        self.operation.clone()
    }
}

impl HasOperation for osbkit_types::AsyncOperationResponse {
    fn operation(&self) -> Option<String> {
        self.operation.clone()
    }
}

impl HasOperation for osbkit_types::UpdateResponse {
    fn operation(&self) -> Option<String> {
        self.operation.clone()
    }
}

/// Returns the body as a JSON object, if it is one and decodes as `T`.
pub fn decode_object<T: DeserializeOwned>(response: &RawResponse) -> Option<Value> {
    let value: Value = response.json()?;
    if !value.is_object() {
        return None;
    }
    serde_json::from_value::<T>(value.clone()).ok()?;
    Some(value)
}

fn malformed(response: &RawResponse) -> CliError {
    CliError::failed(format!(
        "broker answered {} with a malformed body (request identity {})",
        response.status.as_u16(),
        response.request_identity
    ))
}

/// Returns the polling deadline: the operation's deadline, or the plan's
/// `maximum_polling_duration` from now when that comes first.
pub fn polling_deadline(
    operation_deadline: Deadline,
    maximum_polling_duration: Option<u64>,
) -> Deadline {
    match maximum_polling_duration {
        Some(seconds) => operation_deadline.min(Deadline::after(Duration::from_secs(seconds))),
        None => operation_deadline,
    }
}

/// An instance or binding row in the record.
#[derive(Debug, Clone, Copy)]
pub enum Recorded<'a> {
    Instance(&'a str),
    Binding(&'a str),
}

impl Recorded<'_> {
    fn set_state(&self, record: &Record, state: State) -> CliResult<()> {
        match self {
            Recorded::Instance(id) => record.set_instance_state(id, state)?,
            Recorded::Binding(id) => record.set_binding_state(id, state)?,
        }
        Ok(())
    }

    fn forget(&self, record: &Record) -> CliResult<()> {
        match self {
            Recorded::Instance(id) => record.delete_instance(id)?,
            Recorded::Binding(id) => record.delete_binding(id)?,
        }
        Ok(())
    }

    fn mark_unusable(&self, record: &Record, body: &LastOperationResponse) -> CliResult<()> {
        if let (Recorded::Instance(id), Some(false)) = (self, body.instance_usable) {
            record.set_instance_usable(id, false)?;
        }
        Ok(())
    }
}

/// A deprovision or unbind to run.
pub struct DeleteJob<'a> {
    pub recorded: Recorded<'a>,
    pub resource: Resource,
    /// "deprovision" or "unbind", for the operations table.
    pub kind: &'a str,
    pub name: &'a str,
    pub service_id: &'a str,
    pub plan_id: &'a str,
    pub identity_platform: PlatformKind,
    pub previous_state: State,
    pub maximum_polling_duration: Option<u64>,
}

/// Sends the DELETE, polls it, runs orphan mitigation where the specification
/// requires it, and removes the row once the broker confirmed the delete.
pub async fn run_delete(
    session: &Session,
    job: &DeleteJob<'_>,
    operation: &OperationArgs,
) -> CliResult<()> {
    let record = &session.record;
    let resource_type = match job.recorded {
        Recorded::Instance(_) => "instance",
        Recorded::Binding(_) => "binding",
    };
    let label = format!("{} of {:?}", job.kind, job.name);
    job.recorded.set_state(record, State::Deleting)?;
    let operation_id = record.start_operation(
        resource_type,
        resource_id(&job.resource),
        job.name,
        job.kind,
    )?;
    let mut progress = Progress::start(&label);
    let deadline = Deadline::after(operation.timeout);

    let result = session
        .client
        .send_mutation(
            |accepts_incomplete| {
                let mut request = BrokerRequest::new(Method::DELETE, job.resource.path())
                    .query("service_id", job.service_id)
                    .query("plan_id", job.plan_id)
                    .identity_platform(job.identity_platform);
                if accepts_incomplete {
                    request = request.query("accepts_incomplete", "true");
                }
                request
            },
            operation.prefer_sync,
            deadline,
            &progress,
            &label,
        )
        .await;

    let outcome = match read_delete_answer(result) {
        DeleteAnswer::Done => Ok(None),
        DeleteAnswer::Gone => Ok(Some(format!(
            "the broker answered 410 Gone: it no longer knew {}",
            job.resource.describe()
        ))),
        DeleteAnswer::Accepted { operation: token } => {
            record.set_operation_token(operation_id, token.as_deref())?;
            let poll = PollRequest {
                resource: job.resource.clone(),
                service_id: job.service_id.to_owned(),
                plan_id: job.plan_id.to_owned(),
                operation: token,
                deleting: true,
                identity_platform: job.identity_platform,
            };
            let poll_deadline = polling_deadline(deadline, job.maximum_polling_duration);
            match session
                .client
                .poll_last_operation(&poll, poll_deadline, &progress, &label)
                .await
            {
                PollOutcome::Succeeded | PollOutcome::Gone => Ok(None),
                PollOutcome::Failed(body) => {
                    job.recorded.mark_unusable(record, &body)?;
                    Err(DeleteFailure::Uncertain(operation_failed(&body)))
                }
                PollOutcome::Unknown { reason } => {
                    Err(DeleteFailure::Kept(CliError::failed(reason)))
                }
            }
        }
        DeleteAnswer::Rejected(error) => Err(DeleteFailure::Unchanged(error)),
        DeleteAnswer::Failed(error) => Err(DeleteFailure::Kept(error)),
        DeleteAnswer::Uncertain(error) => Err(DeleteFailure::Uncertain(error)),
    };

    let retry_hint = format!("run `osb {} {}` again", job.kind, job.name);
    let error = match outcome {
        Ok(note) => {
            progress.finish();
            if let Some(note) = &note {
                progress.note(note);
            }
            job.recorded.forget(record)?;
            record.finish_operation(operation_id, "succeeded", note.as_deref())?;
            return Ok(());
        }
        Err(DeleteFailure::Unchanged(error)) => {
            job.recorded.set_state(record, job.previous_state)?;
            error
        }
        Err(DeleteFailure::Kept(error)) => {
            job.recorded.set_state(record, State::DeleteFailed)?;
            error.with_hint(format!("the broker may still be deleting it; {retry_hint}"))
        }
        Err(DeleteFailure::Uncertain(error)) => {
            progress.note(&format!(
                "{error}; deleting {} again (orphan mitigation)",
                job.resource.describe()
            ));
            let orphan = Orphan {
                resource: job.resource.clone(),
                service_id: job.service_id.to_owned(),
                plan_id: job.plan_id.to_owned(),
                identity_platform: job.identity_platform,
            };
            match session.client.mitigate_orphan(&orphan, &progress).await {
                Ok(()) => {
                    progress.note(&format!(
                        "orphan mitigation deleted {} at the broker",
                        job.resource.describe()
                    ));
                    job.recorded.forget(record)?;
                    record.finish_operation(operation_id, "succeeded", Some(&error.message))?;
                    return Ok(());
                }
                Err(problem) => {
                    job.recorded.set_state(record, State::DeleteFailed)?;
                    error.replace_hint(format!(
                        "deleting it again failed too ({problem}); {retry_hint} later"
                    ))
                }
            }
        }
    };
    record.finish_operation(operation_id, "failed", Some(&error.message))?;
    Err(error)
}

enum DeleteFailure {
    /// Nothing changed at the broker.
    Unchanged(CliError),
    /// The outcome is unknown, and the specification does not retry it.
    Kept(CliError),
    /// The delete is retried by orphan mitigation.
    Uncertain(CliError),
}

/// Returns the id of the resource itself (the binding id for a binding).
pub fn resource_id(resource: &Resource) -> &str {
    match resource {
        Resource::Instance { instance_id } => instance_id,
        Resource::Binding { binding_id, .. } => binding_id,
    }
}

/// Builds the error for a last_operation `failed` state, with the broker's description.
pub fn operation_failed(body: &LastOperationResponse) -> CliError {
    match &body.description {
        Some(description) => CliError::failed(format!("the operation failed: {description}")),
        None => CliError::failed("the operation failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use osbkit_types::{AsyncOperationResponse, BindingResponse, ProvisionResponse};
    use reqwest::header::HeaderMap;

    fn answer(status: u16, body: &str) -> Result<RawResponse, TransportError> {
        Ok(RawResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec(),
            request_identity: "r".into(),
        })
    }

    fn provision(status: u16, body: &str) -> CreateAnswer {
        read_create_answer::<ProvisionResponse, ProvisionResponse>(answer(status, body))
    }

    #[test]
    fn provision_answers_classified() {
        assert!(matches!(provision(201, "{}"), CreateAnswer::Done { .. }));
        assert!(matches!(provision(200, "{}"), CreateAnswer::Done { .. }));
        assert!(matches!(
            provision(202, r#"{"operation":"op-1"}"#),
            CreateAnswer::Accepted { operation: Some(ref op) } if op == "op-1"
        ));
        assert!(matches!(
            provision(202, "{}"),
            CreateAnswer::Accepted { operation: None }
        ));
    }

    #[test]
    fn malformed_bodies_mitigated_except_200() {
        assert!(matches!(
            provision(201, "not json"),
            CreateAnswer::Uncertain(_)
        ));
        assert!(matches!(provision(202, "[1]"), CreateAnswer::Uncertain(_)));
        assert!(matches!(
            provision(200, "not json"),
            CreateAnswer::Malformed200(_)
        ));
        let bind = read_create_answer::<BindingResponse, AsyncOperationResponse>(answer(
            201,
            r#"{"credentials":"x"}"#,
        ));
        assert!(matches!(bind, CreateAnswer::Uncertain(_)));
    }

    #[test]
    fn server_errors_mitigated_client_errors_not() {
        assert!(matches!(provision(500, "{}"), CreateAnswer::Uncertain(_)));
        assert!(matches!(provision(503, ""), CreateAnswer::Uncertain(_)));
        assert!(matches!(provision(204, ""), CreateAnswer::Uncertain(_)));
        assert!(matches!(provision(408, "{}"), CreateAnswer::Rejected(_)));
        assert!(matches!(provision(409, "{}"), CreateAnswer::Rejected(_)));
        assert!(matches!(
            provision(422, r#"{"error":"ConcurrencyError"}"#),
            CreateAnswer::Rejected(_)
        ));
    }

    #[test]
    fn timeouts_mitigated_connect_errors_not() {
        let timeout = read_create_answer::<ProvisionResponse, ProvisionResponse>(Err(
            TransportError::Timeout(Duration::from_secs(1)),
        ));
        assert!(matches!(timeout, CreateAnswer::Uncertain(_)));
        let refused = read_create_answer::<ProvisionResponse, ProvisionResponse>(Err(
            TransportError::Connect {
                url: "http://127.0.0.1:1".into(),
                cause: "refused".into(),
            },
        ));
        assert!(matches!(refused, CreateAnswer::Rejected(_)));
    }

    #[test]
    fn delete_answers_classified() {
        assert!(matches!(
            read_delete_answer(answer(200, "{}")),
            DeleteAnswer::Done
        ));
        assert!(matches!(
            read_delete_answer(answer(410, "{}")),
            DeleteAnswer::Gone
        ));
        assert!(matches!(
            read_delete_answer(answer(202, "{}")),
            DeleteAnswer::Accepted { operation: None }
        ));
        assert!(matches!(
            read_delete_answer(answer(200, "oops")),
            DeleteAnswer::Failed(_)
        ));
        assert!(matches!(
            read_delete_answer(answer(500, "{}")),
            DeleteAnswer::Uncertain(_)
        ));
        assert!(matches!(
            read_delete_answer(answer(400, "{}")),
            DeleteAnswer::Rejected(_)
        ));
        let timeout = read_delete_answer(Err(TransportError::Timeout(Duration::from_secs(1))));
        assert!(matches!(timeout, DeleteAnswer::Failed(_)));
    }
}
