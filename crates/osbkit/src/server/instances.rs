//! Provision, fetch, update and deprovision of service instances.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use osbkit_types::{
    AsyncOperationResponse, FetchInstanceResponse, MaintenanceInfo, ProvisionRequest,
    ProvisionResponse, UpdateRequest, UpdateResponse,
};
use serde_json::json;

use super::extract::{Caller, InstancePath, OsbJson, OsbQuery};
use crate::backend::{Execution, OperationKind};
use crate::broker::Broker;
use crate::catalog::{PlanEntry, SchemaUse};
use crate::engine::{self, Success};
use crate::error::BrokerError;
use crate::store::{Created, InstanceRecord, InstanceState, Locked, OperationRecord, StoredJob};

pub(crate) async fn provision(
    State(broker): State<Broker>,
    InstancePath(instance_id): InstancePath,
    query: OsbQuery,
    caller: Caller,
    OsbJson(request): OsbJson<ProvisionRequest>,
) -> Result<Response, BrokerError> {
    let accepts_incomplete = query.accepts_incomplete()?;
    require_non_empty(&[
        ("service_id", &request.service_id),
        ("plan_id", &request.plan_id),
        ("organization_guid", &request.organization_guid),
        ("space_guid", &request.space_guid),
    ])?;
    let entry = plan_entry(&broker, &request.service_id, &request.plan_id)?;
    check_maintenance(entry, request.maintenance_info.as_ref())?;
    let parameters = request.parameters.clone().unwrap_or_default();
    entry
        .validate(SchemaUse::Provision, &parameters)
        .map_err(BrokerError::BadRequest)?;
    check_parameters(
        &broker,
        entry,
        OperationKind::Provision,
        &parameters,
        &caller,
    )?;
    let asynchronous =
        run_asynchronously(&broker, entry, OperationKind::Provision, accepts_incomplete)?;

    let operation = engine::new_operation(
        OperationKind::Provision,
        &instance_id,
        None,
        asynchronous,
        stored_job(&caller),
        entry.plan.maximum_polling_duration,
    );
    let instance = InstanceRecord {
        id: instance_id.clone(),
        service_id: request.service_id.clone(),
        plan_id: request.plan_id.clone(),
        parameters,
        context: request.context.clone(),
        organization_guid: request.organization_guid.clone(),
        space_guid: request.space_guid.clone(),
        maintenance_version: entry
            .plan
            .maintenance_info
            .as_ref()
            .map(|m| m.version.clone()),
        provision_request: provision_attributes(&request),
        dashboard_url: broker
            .inner
            .backend
            .dashboard_url(&entry.plan.id, &instance_id),
        metadata: None,
        state: InstanceState::Provisioning,
        active_operation: Some(operation.id.clone()),
        created_by: operation.id.clone(),
    };

    let store = &broker.inner.store;
    match store
        .create_instance(&instance, &operation)
        .await
        .map_err(internal(&caller))?
    {
        Created::Inserted => {}
        Created::Exists { existing, active } => {
            if existing.provision_request != instance.provision_request {
                return Err(BrokerError::Conflict(format!(
                    "service instance {instance_id:?} already exists with different attributes"
                )));
            }
            match (existing.state, active) {
                (InstanceState::Ready, _) => {
                    let body = ProvisionResponse {
                        dashboard_url: existing.dashboard_url,
                        operation: None,
                        metadata: existing.metadata,
                    };
                    return Ok((StatusCode::OK, Json(body)).into_response());
                }
                (InstanceState::Provisioning, Some(active)) if accepts_incomplete => {
                    let body = ProvisionResponse {
                        dashboard_url: existing.dashboard_url,
                        operation: Some(active.id),
                        metadata: None,
                    };
                    return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
                }
                (InstanceState::ProvisionFailed, None) => {
                    let retry = store
                        .lock_instance(
                            &operation,
                            &[InstanceState::ProvisionFailed],
                            InstanceState::Provisioning,
                            false,
                        )
                        .await
                        .map_err(internal(&caller))?;
                    if !matches!(retry, Locked::Acquired(_)) {
                        return Err(busy(&instance_id));
                    }
                    tracing::info!("retrying a failed provision");
                }
                _ => return Err(busy(&instance_id)),
            }
        }
    }

    if asynchronous {
        engine::spawn(&broker, operation.clone());
        let body = ProvisionResponse {
            dashboard_url: instance.dashboard_url,
            operation: Some(operation.id),
            metadata: None,
        };
        return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
    }
    match engine::run_now(&broker, &operation).await? {
        Success::Instance {
            dashboard_url,
            metadata,
        } => {
            tracing::info!("service instance provisioned");
            let body = ProvisionResponse {
                dashboard_url: dashboard_url.or(instance.dashboard_url),
                operation: None,
                metadata,
            };
            Ok((StatusCode::CREATED, Json(body)).into_response())
        }
        _ => Err(BrokerError::Internal {
            request_identity: caller.request_identity,
        }),
    }
}

pub(crate) async fn fetch(
    State(broker): State<Broker>,
    InstancePath(instance_id): InstancePath,
    query: OsbQuery,
    caller: Caller,
) -> Result<Response, BrokerError> {
    query.optional("service_id")?;
    query.optional("plan_id")?;
    let store = &broker.inner.store;
    let Some(instance) = store
        .instance(&instance_id)
        .await
        .map_err(internal(&caller))?
    else {
        return Err(not_found(&instance_id));
    };

    match instance.state {
        InstanceState::Provisioning | InstanceState::ProvisionFailed => {
            return Err(BrokerError::NotFound(format!(
                "service instance {instance_id:?} is not provisioned (yet); poll last_operation"
            )))
        }
        InstanceState::Deprovisioning => return Err(busy(&instance_id)),
        InstanceState::Ready if instance.active_operation.is_some() => {
            return Err(busy(&instance_id))
        }
        InstanceState::Ready => {}
    }

    let body = FetchInstanceResponse {
        service_id: Some(instance.service_id),
        plan_id: Some(instance.plan_id),
        dashboard_url: instance.dashboard_url,
        parameters: Some(instance.parameters),
        maintenance_info: instance.maintenance_version.map(|version| MaintenanceInfo {
            version,
            description: None,
        }),
        metadata: instance.metadata,
    };
    Ok(Json(body).into_response())
}

pub(crate) async fn update(
    State(broker): State<Broker>,
    InstancePath(instance_id): InstancePath,
    query: OsbQuery,
    caller: Caller,
    OsbJson(request): OsbJson<UpdateRequest>,
) -> Result<Response, BrokerError> {
    let accepts_incomplete = query.accepts_incomplete()?;
    require_non_empty(&[("service_id", &request.service_id)])?;
    if request.plan_id.as_deref() == Some("") {
        return Err(BrokerError::BadRequest(
            "plan_id is empty: leave it out to keep the plan".to_owned(),
        ));
    }
    let store = &broker.inner.store;
    let Some(instance) = store
        .instance(&instance_id)
        .await
        .map_err(internal(&caller))?
    else {
        return Err(not_found(&instance_id));
    };
    if request.service_id != instance.service_id {
        return Err(BrokerError::BadRequest(format!(
            "service_id {:?} is not the service of instance {instance_id:?}",
            request.service_id
        )));
    }

    let current = plan_entry(&broker, &instance.service_id, &instance.plan_id)?;
    let target_plan_id = request.plan_id.clone().unwrap_or(instance.plan_id.clone());
    let target = plan_entry(&broker, &request.service_id, &target_plan_id)?;
    let plan_changes = target_plan_id != instance.plan_id;
    if plan_changes && !current.offering.plan_updateable(&current.plan) {
        return Err(BrokerError::BadRequest(format!(
            "plan {:?} cannot be changed to another plan: it is not plan_updateable",
            current.plan.name
        )));
    }
    check_maintenance(target, request.maintenance_info.as_ref())?;
    if let Some(parameters) = &request.parameters {
        target
            .validate(SchemaUse::Update, parameters)
            .map_err(BrokerError::BadRequest)?;
        check_parameters(&broker, target, OperationKind::Update, parameters, &caller)?;
    }

    let maintenance_version = request
        .maintenance_info
        .as_ref()
        .map(|info| info.version.clone())
        .filter(|version| Some(version) != instance.maintenance_version.as_ref())
        // A plan change moves the instance to the new plan's version.
        .or_else(|| {
            plan_changes
                .then(|| {
                    target
                        .plan
                        .maintenance_info
                        .as_ref()
                        .map(|m| m.version.clone())
                })
                .flatten()
        });
    let parameters = request.parameters.clone().filter(|p| !p.is_empty());
    let context = request
        .context
        .clone()
        .filter(|c| Some(c) != instance.context.as_ref());
    if !plan_changes && parameters.is_none() && context.is_none() && maintenance_version.is_none() {
        return Ok(Json(json!({})).into_response());
    }

    let asynchronous =
        run_asynchronously(&broker, target, OperationKind::Update, accepts_incomplete)?;
    let mut job = stored_job(&caller);
    job.plan_id = plan_changes.then_some(target_plan_id);
    job.parameters = parameters;
    job.context = context;
    job.maintenance_version = maintenance_version;
    let operation = engine::new_operation(
        OperationKind::Update,
        &instance_id,
        None,
        asynchronous,
        job.clone(),
        target.plan.maximum_polling_duration,
    );

    let locked = store
        .lock_instance(
            &operation,
            &[InstanceState::Ready],
            InstanceState::Ready,
            false,
        )
        .await
        .map_err(internal(&caller))?;
    match locked {
        Locked::Acquired(_) => {}
        Locked::NotFound => return Err(not_found(&instance_id)),
        Locked::Busy(active)
            if active.kind == OperationKind::Update
                && accepts_incomplete
                && same_update(&active, &job) =>
        {
            return Ok(accepted(&active.id));
        }
        Locked::Busy(_) => return Err(busy(&instance_id)),
        Locked::WrongState(_) => {
            return Err(BrokerError::Unprocessable {
                description: format!(
                "service instance {instance_id:?} cannot be updated: its provision did not succeed"
            ),
                instance_usable: Some(false),
                update_repeatable: Some(true),
            })
        }
    }

    if asynchronous {
        engine::spawn(&broker, operation.clone());
        let body = UpdateResponse {
            operation: Some(operation.id),
            ..Default::default()
        };
        return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
    }
    match engine::run_now(&broker, &operation).await? {
        Success::Instance {
            dashboard_url,
            metadata,
        } => {
            tracing::info!("service instance updated");
            let body = UpdateResponse {
                dashboard_url,
                operation: None,
                metadata,
            };
            Ok(Json(body).into_response())
        }
        _ => Err(BrokerError::Internal {
            request_identity: caller.request_identity,
        }),
    }
}

pub(crate) async fn deprovision(
    State(broker): State<Broker>,
    InstancePath(instance_id): InstancePath,
    query: OsbQuery,
    caller: Caller,
) -> Result<Response, BrokerError> {
    let accepts_incomplete = query.accepts_incomplete()?;
    let service_id = query.required("service_id")?;
    let plan_id = query.required("plan_id")?;

    let store = &broker.inner.store;
    let Some(instance) = store
        .instance(&instance_id)
        .await
        .map_err(internal(&caller))?
    else {
        return Err(gone(&instance_id));
    };
    if service_id != instance.service_id {
        return Err(BrokerError::BadRequest(format!(
            "service_id {service_id:?} is not the service of instance {instance_id:?}"
        )));
    }
    // The instance's own plan decides, since the platform may send a stale one.
    let entry = plan_entry(&broker, &instance.service_id, &instance.plan_id)
        .or_else(|_| plan_entry(&broker, service_id, plan_id))?;
    let asynchronous = run_asynchronously(
        &broker,
        entry,
        OperationKind::Deprovision,
        accepts_incomplete,
    )?;

    let mut job = stored_job(&caller);
    job.provision_failed = instance.state == InstanceState::ProvisionFailed;
    let operation = engine::new_operation(
        OperationKind::Deprovision,
        &instance_id,
        None,
        asynchronous,
        job,
        entry.plan.maximum_polling_duration,
    );
    let locked = store
        .lock_instance(
            &operation,
            &[InstanceState::Ready, InstanceState::ProvisionFailed],
            InstanceState::Deprovisioning,
            true,
        )
        .await
        .map_err(internal(&caller))?;
    match locked {
        Locked::Acquired(_) => {}
        Locked::NotFound => return Err(gone(&instance_id)),
        Locked::Busy(active) if active.kind == OperationKind::Deprovision && accepts_incomplete => {
            return Ok(accepted(&active.id));
        }
        Locked::Busy(_) | Locked::WrongState(_) => return Err(busy(&instance_id)),
    }

    if asynchronous {
        engine::spawn(&broker, operation.clone());
        return Ok(accepted(&operation.id));
    }
    engine::run_now(&broker, &operation).await?;
    tracing::info!("service instance deprovisioned");
    Ok(Json(json!({})).into_response())
}

/// Returns the 202 response for an operation in progress.
pub(crate) fn accepted(operation_id: &str) -> Response {
    let body = AsyncOperationResponse {
        operation: Some(operation_id.to_owned()),
    };
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

/// Decides between running in the request and in the background.
pub(crate) fn run_asynchronously(
    broker: &Broker,
    entry: &PlanEntry,
    kind: OperationKind,
    accepts_incomplete: bool,
) -> Result<bool, BrokerError> {
    match broker.inner.backend.execution(&entry.plan.id, kind) {
        Execution::Synchronous => Ok(false),
        Execution::AsyncPreferred => Ok(accepts_incomplete),
        Execution::AsyncOnly if accepts_incomplete => Ok(true),
        Execution::AsyncOnly => Err(BrokerError::AsyncRequired(format!(
            "plan {:?} runs {} operations asynchronously only: repeat the request with accepts_incomplete=true",
            entry.plan.name,
            kind.as_str()
        ))),
    }
}

/// Runs the backend's own parameter check, which can reject what the
/// schema allows.
pub(crate) fn check_parameters(
    broker: &Broker,
    entry: &PlanEntry,
    kind: OperationKind,
    parameters: &osbkit_types::JsonObject,
    caller: &Caller,
) -> Result<(), BrokerError> {
    broker
        .inner
        .backend
        .check_parameters(&entry.plan.id, kind, parameters)
        .map_err(|error| {
            let request_identity = caller.request_identity.clone();
            if !error.is_client_error() {
                tracing::error!(error = %error, "backend parameter check failed");
            }
            engine::to_broker_error(kind, error, request_identity)
        })
}

pub(crate) fn plan_entry<'a>(
    broker: &'a Broker,
    service_id: &str,
    plan_id: &str,
) -> Result<&'a PlanEntry, BrokerError> {
    broker
        .inner
        .catalog
        .plan(service_id, plan_id)
        .map_err(BrokerError::BadRequest)
}

pub(crate) fn require_non_empty(fields: &[(&str, &str)]) -> Result<(), BrokerError> {
    for (name, value) in fields {
        if value.is_empty() {
            return Err(BrokerError::BadRequest(format!(
                "{name} is missing or empty in the request body"
            )));
        }
    }
    Ok(())
}

pub(crate) fn stored_job(caller: &Caller) -> StoredJob {
    StoredJob {
        request_identity: Some(caller.request_identity.clone()),
        originating_identity: caller
            .originating_identity
            .clone()
            .map(|identity| (identity.platform, identity.value)),
        ..Default::default()
    }
}

/// Returns a mapper from a store error to a 500 that names the request.
pub(crate) fn internal(caller: &Caller) -> impl Fn(crate::store::StoreError) -> BrokerError {
    let request_identity = caller.request_identity.clone();
    move |error| {
        tracing::error!(error = %error, "state store failed");
        BrokerError::Internal {
            request_identity: request_identity.clone(),
        }
    }
}

fn check_maintenance(
    entry: &PlanEntry,
    requested: Option<&MaintenanceInfo>,
) -> Result<(), BrokerError> {
    let Some(requested) = requested else {
        return Ok(());
    };
    let offered = entry
        .plan
        .maintenance_info
        .as_ref()
        .map(|m| m.version.as_str());
    if offered == Some(requested.version.as_str()) {
        return Ok(());
    }
    Err(BrokerError::MaintenanceInfoConflict(match offered {
        Some(version) => format!(
            "maintenance_info.version {:?} differs from plan {:?}'s version {version:?}; fetch the catalog again",
            requested.version, entry.plan.name
        ),
        None => format!(
            "plan {:?} has no maintenance_info; fetch the catalog again and leave maintenance_info out",
            entry.plan.name
        ),
    }))
}

/// Returns the attributes that make two provision requests the same
/// request. The context is left out because platforms may rename things
/// between retries.
fn provision_attributes(request: &ProvisionRequest) -> serde_json::Value {
    json!({
        "service_id": request.service_id,
        "plan_id": request.plan_id,
        "organization_guid": request.organization_guid,
        "space_guid": request.space_guid,
        "parameters": request.parameters.clone().unwrap_or_default(),
        "maintenance_version": request.maintenance_info.as_ref().map(|m| &m.version),
    })
}

fn same_update(active: &OperationRecord, job: &StoredJob) -> bool {
    active.job.plan_id == job.plan_id
        && active.job.parameters == job.parameters
        && active.job.context == job.context
        && active.job.maintenance_version == job.maintenance_version
}

pub(crate) fn not_found(instance_id: &str) -> BrokerError {
    BrokerError::NotFound(format!("service instance {instance_id:?} does not exist"))
}

fn gone(instance_id: &str) -> BrokerError {
    BrokerError::Gone(format!("service instance {instance_id:?} does not exist"))
}

pub(crate) fn busy(resource: &str) -> BrokerError {
    BrokerError::Concurrency(format!(
        "another operation is in progress on {resource:?}; wait for it to finish, then repeat the request"
    ))
}
