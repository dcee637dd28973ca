//! Bind, fetch and unbind of service bindings.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use osbkit_types::{BindRequest, BindingResponse};
use serde_json::json;

use super::extract::{BindingPath, Caller, OsbJson, OsbQuery};
use super::instances::{
    accepted, busy, check_parameters, internal, not_found, plan_entry, require_non_empty,
    run_asynchronously, stored_job,
};
use crate::backend::OperationKind;
use crate::broker::Broker;
use crate::catalog::SchemaUse;
use crate::engine::{self, Success};
use crate::error::BrokerError;
use crate::store::{BindBlocked, BindingRecord, BindingState, Created, Locked};

pub(crate) async fn bind(
    State(broker): State<Broker>,
    BindingPath(instance_id, binding_id): BindingPath,
    query: OsbQuery,
    caller: Caller,
    OsbJson(request): OsbJson<BindRequest>,
) -> Result<Response, BrokerError> {
    let accepts_incomplete = query.accepts_incomplete()?;
    require_non_empty(&[
        ("service_id", &request.service_id),
        ("plan_id", &request.plan_id),
    ])?;
    let entry = plan_entry(&broker, &request.service_id, &request.plan_id)?;
    if !entry.bindable() {
        return Err(BrokerError::BadRequest(format!(
            "plan {:?} is not bindable",
            entry.plan.name
        )));
    }

    let store = &broker.inner.store;
    let Some(instance) = store
        .instance(&instance_id)
        .await
        .map_err(internal(&caller))?
    else {
        return Err(not_found(&instance_id));
    };
    if instance.service_id != request.service_id || instance.plan_id != request.plan_id {
        return Err(BrokerError::BadRequest(format!(
            "service_id and plan_id must be those of instance {instance_id:?}"
        )));
    }
    if let Some(predecessor) = &request.predecessor_binding_id {
        check_predecessor(&broker, &caller, entry, &instance_id, predecessor).await?;
    }
    let parameters = request.parameters.clone().unwrap_or_default();
    entry
        .validate(SchemaUse::Bind, &parameters)
        .map_err(BrokerError::BadRequest)?;
    check_parameters(&broker, entry, OperationKind::Bind, &parameters, &caller)?;
    let asynchronous = run_asynchronously(&broker, entry, OperationKind::Bind, accepts_incomplete)?;

    let mut job = stored_job(&caller);
    job.app_guid = request.app_guid().map(str::to_owned);
    job.bind_resource = request.bind_resource.clone();
    job.context = request.context.clone();
    job.predecessor_binding_id = request.predecessor_binding_id.clone();
    let operation = engine::new_operation(
        OperationKind::Bind,
        &instance_id,
        Some(&binding_id),
        asynchronous,
        job,
        entry.plan.maximum_polling_duration,
    );
    let binding = BindingRecord {
        id: binding_id.clone(),
        instance_id: instance_id.clone(),
        service_id: request.service_id.clone(),
        plan_id: request.plan_id.clone(),
        parameters,
        bind_request: bind_attributes(&instance_id, &request),
        state: BindingState::Binding,
        active_operation: Some(operation.id.clone()),
        sealed_response: None,
        created_by: operation.id.clone(),
    };

    let created = store
        .create_binding(&binding, &operation)
        .await
        .map_err(internal(&caller))?;
    match created {
        Ok(Created::Inserted) => {}
        Err(BindBlocked::InstanceNotFound) => return Err(not_found(&instance_id)),
        Err(BindBlocked::InstanceBusy(_)) => return Err(busy(&instance_id)),
        Ok(Created::Exists { existing, active }) => {
            if existing.bind_request != binding.bind_request {
                return Err(BrokerError::Conflict(format!(
                    "service binding {binding_id:?} already exists with different attributes"
                )));
            }
            match (existing.state, active) {
                (BindingState::Ready, _) => {
                    let response = open_response(&broker, &caller, &existing)?;
                    return Ok((StatusCode::OK, Json(response)).into_response());
                }
                (BindingState::Binding, Some(active)) if accepts_incomplete => {
                    return Ok(accepted(&active.id));
                }
                (BindingState::BindFailed, None) => {
                    let retry = store
                        .lock_binding(
                            &operation,
                            &[BindingState::BindFailed],
                            BindingState::Binding,
                        )
                        .await
                        .map_err(internal(&caller))?;
                    if !matches!(retry, Locked::Acquired(_)) {
                        return Err(busy(&binding_id));
                    }
                    tracing::info!("retrying a failed bind");
                }
                _ => return Err(busy(&binding_id)),
            }
        }
    }

    if asynchronous {
        engine::spawn(&broker, operation.clone());
        return Ok(accepted(&operation.id));
    }
    match engine::run_now(&broker, &operation).await? {
        Success::Binding(response) => {
            tracing::info!("service binding created");
            Ok((StatusCode::CREATED, Json(response)).into_response())
        }
        _ => Err(BrokerError::Internal {
            request_identity: caller.request_identity,
        }),
    }
}

pub(crate) async fn fetch(
    State(broker): State<Broker>,
    BindingPath(instance_id, binding_id): BindingPath,
    query: OsbQuery,
    caller: Caller,
) -> Result<Response, BrokerError> {
    query.optional("service_id")?;
    query.optional("plan_id")?;
    let store = &broker.inner.store;
    let binding = store
        .binding(&binding_id)
        .await
        .map_err(internal(&caller))?
        .filter(|binding| binding.instance_id == instance_id);
    let Some(binding) = binding else {
        return Err(BrokerError::NotFound(format!(
            "service binding {binding_id:?} does not exist on instance {instance_id:?}"
        )));
    };
    if matches!(
        binding.state,
        BindingState::Binding | BindingState::BindFailed
    ) {
        return Err(BrokerError::NotFound(format!(
            "service binding {binding_id:?} is not created (yet); poll last_operation"
        )));
    }

    let mut response = open_response(&broker, &caller, &binding)?;
    response.parameters = Some(binding.parameters);
    Ok(Json(response).into_response())
}

pub(crate) async fn unbind(
    State(broker): State<Broker>,
    BindingPath(instance_id, binding_id): BindingPath,
    query: OsbQuery,
    caller: Caller,
) -> Result<Response, BrokerError> {
    let accepts_incomplete = query.accepts_incomplete()?;
    let service_id = query.required("service_id")?;
    query.required("plan_id")?;

    let store = &broker.inner.store;
    let binding = store
        .binding(&binding_id)
        .await
        .map_err(internal(&caller))?
        .filter(|binding| binding.instance_id == instance_id);
    let Some(binding) = binding else {
        return Err(BrokerError::Gone(format!(
            "service binding {binding_id:?} does not exist on instance {instance_id:?}"
        )));
    };
    if service_id != binding.service_id {
        return Err(BrokerError::BadRequest(format!(
            "service_id {service_id:?} is not the service of binding {binding_id:?}"
        )));
    }
    let entry = plan_entry(&broker, &binding.service_id, &binding.plan_id)?;
    let asynchronous =
        run_asynchronously(&broker, entry, OperationKind::Unbind, accepts_incomplete)?;

    let operation = engine::new_operation(
        OperationKind::Unbind,
        &instance_id,
        Some(&binding_id),
        asynchronous,
        stored_job(&caller),
        entry.plan.maximum_polling_duration,
    );
    let locked = store
        .lock_binding(
            &operation,
            &[BindingState::Ready, BindingState::BindFailed],
            BindingState::Unbinding,
        )
        .await
        .map_err(internal(&caller))?;
    match locked {
        Locked::Acquired(_) => {}
        Locked::NotFound => {
            return Err(BrokerError::Gone(format!(
                "service binding {binding_id:?} does not exist"
            )))
        }
        Locked::Busy(active) if active.kind == OperationKind::Unbind && accepts_incomplete => {
            return Ok(accepted(&active.id));
        }
        Locked::Busy(_) | Locked::WrongState(_) => return Err(busy(&binding_id)),
    }

    if asynchronous {
        engine::spawn(&broker, operation.clone());
        return Ok(accepted(&operation.id));
    }
    engine::run_now(&broker, &operation).await?;
    tracing::info!("service binding deleted");
    Ok(Json(json!({})).into_response())
}

async fn check_predecessor(
    broker: &Broker,
    caller: &Caller,
    entry: &crate::catalog::PlanEntry,
    instance_id: &str,
    predecessor: &str,
) -> Result<(), BrokerError> {
    if !entry.plan.binding_rotatable.unwrap_or(false) {
        return Err(BrokerError::BadRequest(format!(
            "plan {:?} does not allow binding rotation: binding_rotatable is false",
            entry.plan.name
        )));
    }
    let found = broker
        .inner
        .store
        .binding(predecessor)
        .await
        .map_err(internal(caller))?;
    match found {
        Some(binding)
            if binding.instance_id == instance_id && binding.state == BindingState::Ready =>
        {
            Ok(())
        }
        _ => Err(BrokerError::BadRequest(format!(
            "predecessor_binding_id {predecessor:?} is not a binding of instance {instance_id:?}"
        ))),
    }
}

fn open_response(
    broker: &Broker,
    caller: &Caller,
    binding: &BindingRecord,
) -> Result<BindingResponse, BrokerError> {
    let Some(sealed) = &binding.sealed_response else {
        return Ok(BindingResponse::default());
    };
    let opened = broker
        .inner
        .sealer
        .open(&binding.id, sealed)
        .map_err(|error| error.to_string())
        .and_then(|json| {
            serde_json::from_slice::<BindingResponse>(&json).map_err(|error| error.to_string())
        });
    opened.map_err(|error| {
        tracing::error!(error = %error, "could not open stored binding credentials");
        BrokerError::Internal {
            request_identity: caller.request_identity.clone(),
        }
    })
}

/// Returns the attributes that make two bind requests the same request.
fn bind_attributes(instance_id: &str, request: &BindRequest) -> serde_json::Value {
    json!({
        "instance_id": instance_id,
        "service_id": request.service_id,
        "plan_id": request.plan_id,
        "app_guid": request.app_guid(),
        "parameters": request.parameters.clone().unwrap_or_default(),
        "predecessor_binding_id": request.predecessor_binding_id,
    })
}
