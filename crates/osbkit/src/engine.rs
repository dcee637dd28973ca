//! Runs operations: within a request, in the background, and again after a
//! restart.
//!
//! An operation is a stored record. The engine reads the records it needs,
//! calls the backend, and writes the outcome with [`Store::finish`], which
//! also releases the resource's lock. Background operations are bounded by
//! the plan's `maximum_polling_duration` and failed once past it.

use std::time::Duration;

use osbkit_types::{BindingResponse, OperationState};
use rand::distributions::Alphanumeric;
use rand::Rng;
use tracing::{error, info, warn, Instrument};

use crate::backend::{
    BackendError, BindJob, DeprovisionJob, JobContext, OperationKind, ProvisionJob, UnbindJob,
    UpdateJob,
};
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::identity::OriginatingIdentity;
use crate::store::{now, Completion, OperationRecord, Store, StoreError, StoredJob};

/// Length of operation tokens: 20 alphanumerics carry 119 bits.
const OPERATION_TOKEN_LENGTH: usize = 20;

/// The result of a successful operation, for the response to a synchronous request.
pub(crate) enum Success {
    Instance {
        dashboard_url: Option<String>,
        metadata: Option<osbkit_types::InstanceMetadata>,
    },
    Binding(Box<BindingResponse>),
    Deleted,
}

/// Why an operation failed: the backend's error, or the broker's own.
enum Failure {
    Backend(BackendError),
    Broker(String),
}

/// Builds a new operation record, still to be written by a store method.
pub(crate) fn new_operation(
    kind: OperationKind,
    instance_id: &str,
    binding_id: Option<&str>,
    asynchronous: bool,
    job: StoredJob,
    maximum_duration: Option<u64>,
) -> OperationRecord {
    let token: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(OPERATION_TOKEN_LENGTH)
        .map(char::from)
        .collect();
    let created_at = now();
    OperationRecord {
        id: token,
        kind,
        instance_id: instance_id.to_owned(),
        binding_id: binding_id.map(str::to_owned),
        state: OperationState::InProgress,
        description: None,
        asynchronous,
        job,
        deadline: maximum_duration
            .filter(|_| asynchronous)
            .map(|seconds| created_at.saturating_add(seconds as i64)),
        instance_usable: None,
        update_repeatable: None,
        created_at,
    }
}

/// Runs an operation within the request and stores its outcome.
pub(crate) async fn run_now(
    broker: &Broker,
    operation: &OperationRecord,
) -> Result<Success, BrokerError> {
    let result = execute(broker, operation).await;
    let completion = completion_for(broker, operation, &result);
    let request_identity = operation.job.request_identity.clone().unwrap_or_default();
    if let Err(error) = broker.inner.store.finish(&operation.id, &completion).await {
        error!(operation = %operation.id, error = %error, "could not store the outcome of an operation");
        return Err(BrokerError::Internal { request_identity });
    }

    match result {
        Ok(success) => Ok(success),
        Err(Failure::Backend(error)) => {
            Err(to_broker_error(operation.kind, error, request_identity))
        }
        Err(Failure::Broker(_)) => Err(BrokerError::Internal { request_identity }),
    }
}

/// Runs an operation in the background. The platform polls its record.
pub(crate) fn spawn(broker: &Broker, operation: OperationRecord) {
    let broker = broker.clone();
    let span = tracing::info_span!(
        "operation",
        operation = %operation.id,
        kind = operation.kind.as_str(),
        instance_id = %operation.instance_id,
        binding_id = operation.binding_id.as_deref().unwrap_or(""),
    );
    tokio::spawn(
        async move {
            info!("operation started");
            let result = match operation.deadline {
                Some(deadline) => {
                    let left = Duration::from_secs(deadline.saturating_sub(now()).max(0) as u64);
                    match tokio::time::timeout(left, execute(&broker, &operation)).await {
                        Ok(result) => result,
                        Err(_) => {
                            expire(&broker, &operation).await;
                            return;
                        }
                    }
                }
                None => execute(&broker, &operation).await,
            };
            let completion = completion_for(&broker, &operation, &result);
            match broker.inner.store.finish(&operation.id, &completion).await {
                Ok(_) if result.is_ok() => info!("operation succeeded"),
                Ok(_) => info!("operation failed"),
                Err(error) => {
                    error!(error = %error, "could not store the outcome of an operation; it resumes at the next start")
                }
            }
        }
        .instrument(span),
    );
}

/// Fails an operation that ran past its deadline. Does nothing if it ended.
pub(crate) async fn expire(broker: &Broker, operation: &OperationRecord) {
    let seconds = operation
        .deadline
        .map(|deadline| deadline - operation.created_at)
        .unwrap_or_default();
    let completion = Completion::Failed {
        description: format!(
            "the {} did not finish within the plan's maximum_polling_duration of {seconds} seconds",
            operation.kind.as_str()
        ),
        instance_usable: usable_flag(operation.kind),
        update_repeatable: repeatable_flag(operation.kind),
    };
    match broker.inner.store.finish(&operation.id, &completion).await {
        Ok(true) => warn!(operation = %operation.id, "operation failed: past its deadline"),
        Ok(false) => {}
        Err(error) => {
            error!(operation = %operation.id, error = %error, "could not fail an overdue operation")
        }
    }
}

/// Resumes or fails every operation that was in progress at the last stop.
// TODO: with a store shared by several replicas, each replica would resume
// every operation; operations need a lease per worker before such a store.
pub(crate) async fn resume(broker: &Broker) -> Result<usize, StoreError> {
    let operations = broker.inner.store.operations_in_progress().await?;
    for operation in &operations {
        let plan_id = plan_of(broker.inner.store.as_ref(), operation).await?;
        let resumable = plan_id
            .as_deref()
            .is_some_and(|plan_id| broker.inner.backend.resumable(plan_id, operation.kind));

        if operation.asynchronous && resumable {
            info!(operation = %operation.id, kind = operation.kind.as_str(), "resuming an operation interrupted by a restart");
            spawn(broker, operation.clone());
            continue;
        }

        let description = if operation.asynchronous {
            "the broker restarted during this operation and the service cannot resume it; delete the resource or send the request again"
        } else {
            "the broker restarted while processing this request; send the request again"
        };
        warn!(operation = %operation.id, kind = operation.kind.as_str(), "failing an operation interrupted by a restart");
        let completion = Completion::Failed {
            description: description.to_owned(),
            instance_usable: usable_flag(operation.kind),
            update_repeatable: repeatable_flag(operation.kind),
        };
        broker
            .inner
            .store
            .finish(&operation.id, &completion)
            .await?;
    }
    Ok(operations.len())
}

async fn plan_of(
    store: &dyn Store,
    operation: &OperationRecord,
) -> Result<Option<String>, StoreError> {
    if let Some(binding_id) = &operation.binding_id {
        return Ok(store
            .binding(binding_id)
            .await?
            .map(|binding| binding.plan_id));
    }
    Ok(store
        .instance(&operation.instance_id)
        .await?
        .map(|instance| instance.plan_id))
}

fn usable_flag(kind: OperationKind) -> Option<bool> {
    matches!(kind, OperationKind::Update | OperationKind::Deprovision).then_some(true)
}

fn repeatable_flag(kind: OperationKind) -> Option<bool> {
    (kind == OperationKind::Update).then_some(true)
}

fn job_context(operation: &OperationRecord) -> JobContext {
    JobContext {
        originating_identity: operation
            .job
            .originating_identity
            .clone()
            .map(|(platform, value)| OriginatingIdentity { platform, value }),
        request_identity: operation.job.request_identity.clone().unwrap_or_default(),
        operation: operation.id.clone(),
    }
}

/// Loads what the job needs and calls the backend.
async fn execute(broker: &Broker, operation: &OperationRecord) -> Result<Success, Failure> {
    let store = broker.inner.store.as_ref();
    let backend = broker.inner.backend.as_ref();
    let missing = |what: &str| {
        Failure::Broker(format!(
            "the {what} record disappeared during the operation"
        ))
    };
    let store_failed = |error: StoreError| Failure::Broker(error.to_string());

    let instance = store
        .instance(&operation.instance_id)
        .await
        .map_err(store_failed)?
        .ok_or_else(|| missing("instance"))?;
    let context = job_context(operation);

    match operation.kind {
        OperationKind::Provision => {
            let job = ProvisionJob {
                context,
                instance_id: instance.id,
                service_id: instance.service_id,
                plan_id: instance.plan_id,
                parameters: instance.parameters,
                platform_context: instance.context,
                organization_guid: instance.organization_guid,
                space_guid: instance.space_guid,
            };
            let outcome = backend.provision(&job).await.map_err(Failure::Backend)?;
            Ok(Success::Instance {
                dashboard_url: outcome.dashboard_url,
                metadata: outcome.metadata,
            })
        }
        OperationKind::Update => {
            let stored = &operation.job;
            let plan_id = stored
                .plan_id
                .clone()
                .unwrap_or_else(|| instance.plan_id.clone());
            let parameters = stored.parameters.clone().unwrap_or_default();
            // A change of context alone needs nothing from the service.
            if plan_id == instance.plan_id
                && parameters.is_empty()
                && stored.maintenance_version.is_none()
            {
                return Ok(Success::Instance {
                    dashboard_url: None,
                    metadata: None,
                });
            }
            let job = UpdateJob {
                context,
                instance_id: instance.id,
                service_id: instance.service_id,
                previous_plan_id: instance.plan_id,
                plan_id,
                previous_parameters: instance.parameters,
                parameters,
                platform_context: stored.context.clone().or(instance.context),
                maintenance_version: stored.maintenance_version.clone(),
            };
            let outcome = backend.update(&job).await.map_err(Failure::Backend)?;
            Ok(Success::Instance {
                dashboard_url: outcome.dashboard_url,
                metadata: outcome.metadata,
            })
        }
        OperationKind::Deprovision => {
            let binding_ids = store
                .binding_ids(&instance.id)
                .await
                .map_err(store_failed)?;
            let job = DeprovisionJob {
                context,
                instance_id: instance.id,
                service_id: instance.service_id,
                plan_id: instance.plan_id,
                binding_ids,
            };
            backend.deprovision(&job).await.map_err(Failure::Backend)?;
            Ok(Success::Deleted)
        }
        OperationKind::Bind | OperationKind::Unbind => {
            let binding_id = operation.binding_id.clone().unwrap_or_default();
            let binding = store
                .binding(&binding_id)
                .await
                .map_err(store_failed)?
                .ok_or_else(|| missing("binding"))?;
            if operation.kind == OperationKind::Unbind {
                let job = UnbindJob {
                    context,
                    instance_id: instance.id,
                    binding_id: binding.id,
                    service_id: binding.service_id,
                    plan_id: binding.plan_id,
                };
                backend.unbind(&job).await.map_err(Failure::Backend)?;
                return Ok(Success::Deleted);
            }

            let stored = &operation.job;
            let job = BindJob {
                context,
                instance_id: instance.id,
                binding_id: binding.id,
                service_id: binding.service_id,
                plan_id: binding.plan_id,
                parameters: binding.parameters,
                app_guid: stored.app_guid.clone(),
                bind_resource: stored.bind_resource.clone(),
                platform_context: stored.context.clone(),
                predecessor_binding_id: stored.predecessor_binding_id.clone(),
            };
            let outcome = backend.bind(&job).await.map_err(Failure::Backend)?;
            Ok(Success::Binding(Box::new(BindingResponse {
                metadata: outcome.metadata,
                credentials: outcome.credentials,
                syslog_drain_url: outcome.syslog_drain_url,
                route_service_url: outcome.route_service_url,
                volume_mounts: outcome.volume_mounts,
                endpoints: outcome.endpoints,
                parameters: None,
            })))
        }
    }
}

/// Turns a result into what the store records, logging failures with their cause.
fn completion_for(
    broker: &Broker,
    operation: &OperationRecord,
    result: &Result<Success, Failure>,
) -> Completion {
    let kind = operation.kind.as_str();
    match result {
        Ok(Success::Instance {
            dashboard_url,
            metadata,
        }) => Completion::InstanceReady {
            dashboard_url: dashboard_url.clone(),
            metadata: metadata.clone(),
        },
        Ok(Success::Binding(response)) => {
            let binding_id = operation.binding_id.as_deref().unwrap_or_default();
            let json = serde_json::to_vec(response).expect("a binding response always serializes");
            Completion::BindingReady {
                sealed_response: broker.inner.sealer.seal(binding_id, &json),
            }
        }
        Ok(Success::Deleted) => Completion::Deleted,
        Err(Failure::Backend(error)) if error.is_client_error() => {
            info!(operation = %operation.id, kind, instance_id = %operation.instance_id, reason = %error, "backend rejected the request");
            Completion::Rejected {
                description: error.public_description(),
                instance_usable: usable_flag(operation.kind),
                update_repeatable: repeatable_flag(operation.kind),
            }
        }
        Err(Failure::Backend(error)) => {
            error!(operation = %operation.id, kind, instance_id = %operation.instance_id, error = %error, "operation failed");
            Completion::Failed {
                description: format!(
                    "the {kind} failed: {}; the broker's log has the cause under operation {}",
                    error.public_description(),
                    operation.id
                ),
                instance_usable: usable_flag(operation.kind),
                update_repeatable: repeatable_flag(operation.kind),
            }
        }
        Err(Failure::Broker(cause)) => {
            error!(operation = %operation.id, kind, instance_id = %operation.instance_id, error = %cause, "operation failed");
            Completion::Failed {
                description: format!(
                    "the {kind} failed inside the broker; its log has the cause under operation {}",
                    operation.id
                ),
                instance_usable: usable_flag(operation.kind),
                update_repeatable: repeatable_flag(operation.kind),
            }
        }
    }
}

/// Maps a backend's error to the response to a synchronous request.
pub(crate) fn to_broker_error(
    kind: OperationKind,
    error: BackendError,
    request_identity: String,
) -> BrokerError {
    match error {
        BackendError::InvalidParameters(text) => BrokerError::BadRequest(text),
        BackendError::Unprocessable(text) => BrokerError::Unprocessable {
            description: text,
            instance_usable: usable_flag(kind),
            update_repeatable: repeatable_flag(kind),
        },
        BackendError::RequiresApp => BrokerError::RequiresApp(error.public_description()),
        BackendError::Unavailable { .. } => BrokerError::Unavailable {
            description: error.public_description(),
        },
        BackendError::Internal(_) => BrokerError::Internal { request_identity },
    }
}
