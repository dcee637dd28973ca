//! `GET .../last_operation` for instances and bindings.

use axum::extract::State;
use axum::http::header::RETRY_AFTER;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Json;
use osbkit_types::{LastOperationResponse, OperationState};

use super::extract::{BindingPath, Caller, InstancePath, OsbQuery};
use super::instances::internal;
use crate::backend::OperationKind;
use crate::broker::Broker;
use crate::engine;
use crate::error::BrokerError;
use crate::store::{now, OperationRecord};

pub(crate) async fn instance(
    State(broker): State<Broker>,
    InstancePath(instance_id): InstancePath,
    query: OsbQuery,
    caller: Caller,
) -> Result<Response, BrokerError> {
    let store = &broker.inner.store;
    let exists = store
        .instance(&instance_id)
        .await
        .map_err(internal(&caller))?
        .is_some();
    let operation = find_operation(&broker, &caller, &query, &instance_id, None, exists).await?;
    respond(
        &broker,
        operation,
        exists,
        OperationKind::Deprovision,
        || format!("service instance {instance_id:?} does not exist"),
    )
    .await
}

pub(crate) async fn binding(
    State(broker): State<Broker>,
    BindingPath(instance_id, binding_id): BindingPath,
    query: OsbQuery,
    caller: Caller,
) -> Result<Response, BrokerError> {
    let store = &broker.inner.store;
    let exists = store
        .binding(&binding_id)
        .await
        .map_err(internal(&caller))?
        .is_some_and(|binding| binding.instance_id == instance_id);
    let operation = find_operation(
        &broker,
        &caller,
        &query,
        &instance_id,
        Some(&binding_id),
        exists,
    )
    .await?;
    respond(&broker, operation, exists, OperationKind::Unbind, || {
        format!("service binding {binding_id:?} does not exist on instance {instance_id:?}")
    })
    .await
}

/// Finds the operation named in the query, or the resource's newest one.
/// An unknown token on a resource that exists is a client mistake (400).
async fn find_operation(
    broker: &Broker,
    caller: &Caller,
    query: &OsbQuery,
    instance_id: &str,
    binding_id: Option<&str>,
    resource_exists: bool,
) -> Result<Option<OperationRecord>, BrokerError> {
    query.optional("service_id")?;
    query.optional("plan_id")?;
    let store = &broker.inner.store;
    let Some(token) = query.optional("operation")? else {
        return store
            .latest_operation(instance_id, binding_id)
            .await
            .map_err(internal(caller));
    };

    let operation = store.operation(token).await.map_err(internal(caller))?;
    let operation = operation.filter(|operation| {
        operation.instance_id == instance_id && operation.binding_id.as_deref() == binding_id
    });
    if operation.is_none() && resource_exists {
        return Err(BrokerError::BadRequest(format!(
            "operation {token:?} is not an operation of this resource; send the operation value of the 202 response"
        )));
    }
    Ok(operation)
}

async fn respond(
    broker: &Broker,
    operation: Option<OperationRecord>,
    resource_exists: bool,
    delete_kind: OperationKind,
    missing: impl Fn() -> String,
) -> Result<Response, BrokerError> {
    let Some(mut operation) = operation else {
        return Err(BrokerError::NotFound(missing()));
    };
    // A creation the backend rejected removed its record, but the platform
    // still polls it and must learn why it failed.
    let rejected_creation = matches!(
        operation.kind,
        OperationKind::Provision | OperationKind::Bind
    ) && operation.state == OperationState::Failed;
    if !resource_exists && !rejected_creation {
        let deleted_asynchronously = operation.kind == delete_kind
            && operation.asynchronous
            && operation.state == OperationState::Succeeded;
        return Err(if deleted_asynchronously {
            BrokerError::Gone(missing())
        } else {
            BrokerError::NotFound(missing())
        });
    }

    if operation.state == OperationState::InProgress
        && operation.deadline.is_some_and(|deadline| deadline <= now())
    {
        engine::expire(broker, &operation).await;
        if let Ok(Some(updated)) = broker.inner.store.operation(&operation.id).await {
            operation = updated;
        }
    }

    let failed = operation.state == OperationState::Failed;
    let body = LastOperationResponse {
        state: operation.state,
        description: operation.description.filter(|text| !text.is_empty()),
        instance_usable: operation.instance_usable.filter(|_| failed),
        update_repeatable: operation.update_repeatable.filter(|_| failed),
    };
    let mut response = Json(body).into_response();
    if operation.state == OperationState::InProgress {
        let seconds = broker.inner.retry_after.as_secs().max(1).to_string();
        if let Ok(value) = HeaderValue::from_str(&seconds) {
            response.headers_mut().insert(RETRY_AFTER, value);
        }
    }
    Ok(response)
}
