//! `osb provision`, `osb update`, `osb upgrade` and `osb deprovision`.

use osbkit_types::{
    JsonObject, LastOperationResponse, MaintenanceInfo, PreviousValues, ProvisionRequest,
    ProvisionResponse, UpdateRequest, UpdateResponse,
};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use uuid::Uuid;

use super::catalog::{find_offering, find_plan, recorded_plan};
use super::lifecycle::{
    decode_object, operation_failed, polling_deadline, read_create_answer, run_delete,
    CreateAnswer, DeleteJob, HasOperation, Recorded,
};
use super::{check_name, parse_parameters, Session};
use crate::cli::OperationArgs;
use crate::client::mitigation::Orphan;
use crate::client::poll::{PollOutcome, PollRequest};
use crate::client::progress::Progress;
use crate::client::{BrokerRequest, Deadline, Resource};
use crate::clock::now_unix;
use crate::error::{CliError, CliResult};
use crate::output::print;
use crate::platform::PlatformKind;
use crate::record::{InstanceRow, State};

/// Provisions an instance and records it, mitigating an orphan when the outcome is uncertain.
pub async fn provision(
    session: &Session,
    service: &str,
    plan: &str,
    name: &str,
    parameters: Option<&str>,
    operation: &OperationArgs,
) -> CliResult<()> {
    let doing = format!("could not provision {name:?}");
    check_name("instance", name)?;
    let parameters = parameters.map(parse_parameters).transpose()?;
    if session.record.instance_by_name(name)?.is_some() {
        return Err(
            CliError::usage(format!("instance {name:?} already exists")).with_hint(format!(
                "choose another name, or delete it first with `osb deprovision {name}`"
            )),
        );
    }

    let catalog = session
        .client
        .catalog()
        .await
        .map_err(|error| error.context(&doing))?;
    let offering = find_offering(&catalog, service)?;
    let plan = find_plan(offering, plan)?;
    let platform = session.client.platform();
    let context = platform.instance_context(name);
    let (organization_guid, space_guid) = platform.provision_guids();
    let maintenance_info = plan.maintenance_info.as_ref().map(version_only);

    let row = InstanceRow {
        id: Uuid::new_v4().to_string(),
        name: name.to_owned(),
        service_id: offering.id.clone(),
        service_name: offering.name.clone(),
        plan_id: plan.id.clone(),
        plan_name: plan.name.clone(),
        tags: offering.tags.clone(),
        provider: provider_name(offering, session),
        maintenance_version: maintenance_info.as_ref().map(|info| info.version.clone()),
        context: context.clone(),
        dashboard_url: None,
        state: State::Creating.as_str().to_owned(),
        usable: true,
        created_at: now_unix(),
        updated_at: now_unix(),
    };
    let body = to_json(&ProvisionRequest {
        service_id: offering.id.clone(),
        plan_id: plan.id.clone(),
        organization_guid,
        space_guid,
        context: Some(context),
        parameters,
        maintenance_info,
    });

    // The row exists before the request, so a crash leaves a trace to clean up.
    session.record.insert_instance(&row)?;
    let operation_id = session
        .record
        .start_operation("instance", &row.id, name, "provision")?;
    let resource = Resource::instance(&row.id);
    let identity_platform = platform_of(&row);
    let label = format!("provisioning {name:?}");
    let mut progress = Progress::start(&label);
    let deadline = Deadline::after(operation.timeout);

    let result = session
        .client
        .send_mutation(
            |accepts_incomplete| {
                mutation(
                    Method::PUT,
                    &resource,
                    accepts_incomplete,
                    identity_platform,
                )
                .body(body.clone())
            },
            operation.prefer_sync,
            deadline,
            &progress,
            &label,
        )
        .await;

    let failure = match read_create_answer::<ProvisionResponse, ProvisionResponse>(result) {
        CreateAnswer::Done { body } => {
            let dashboard_url = body.get("dashboard_url").and_then(Value::as_str);
            session.record.set_dashboard_url(&row.id, dashboard_url)?;
            None
        }
        CreateAnswer::Accepted { operation: token } => {
            session
                .record
                .set_operation_token(operation_id, token.as_deref())?;
            let poll = PollRequest {
                resource: resource.clone(),
                service_id: row.service_id.clone(),
                plan_id: row.plan_id.clone(),
                operation: token,
                deleting: false,
                identity_platform,
            };
            let poll_deadline = polling_deadline(deadline, plan.maximum_polling_duration);
            match session
                .client
                .poll_last_operation(&poll, poll_deadline, &progress, &label)
                .await
            {
                PollOutcome::Succeeded => None,
                PollOutcome::Failed(body) => Some(Failure::Uncertain(operation_failed(&body))),
                PollOutcome::Gone => Some(Failure::Uncertain(CliError::failed(
                    "last_operation answered 410 Gone",
                ))),
                PollOutcome::Unknown { reason } => {
                    Some(Failure::Uncertain(CliError::failed(reason)))
                }
            }
        }
        CreateAnswer::Rejected(error) => Some(Failure::Rejected(error)),
        CreateAnswer::Malformed200(error) => Some(Failure::Kept(error)),
        CreateAnswer::Uncertain(error) => Some(Failure::Uncertain(error)),
    };

    let Some(failure) = failure else {
        session.record.set_instance_state(&row.id, State::Ready)?;
        session
            .record
            .finish_operation(operation_id, "succeeded", None)?;
        progress.finish();
        return print(&format!("provisioned {name:?} (instance {})\n", row.id));
    };

    let error = match failure {
        Failure::Rejected(error) => {
            // A 4xx leaves the broker unchanged, so the instance never existed.
            session.record.delete_instance(&row.id)?;
            error
        }
        Failure::Kept(error) => {
            session
                .record
                .set_instance_state(&row.id, State::CreateFailed)?;
            error.with_hint(format!(
                "the broker may hold the instance; delete it with `osb deprovision {name}`"
            ))
        }
        Failure::Uncertain(error) => {
            let orphan = Orphan {
                resource: resource.clone(),
                service_id: row.service_id.clone(),
                plan_id: row.plan_id.clone(),
                identity_platform,
            };
            progress.note(&format!(
                "{error}; deleting instance {} (orphan mitigation)",
                row.id
            ));
            match session.client.mitigate_orphan(&orphan, &progress).await {
                Ok(()) => {
                    progress.note(&format!(
                        "orphan mitigation deleted instance {} at the broker",
                        row.id
                    ));
                    session.record.delete_instance(&row.id)?;
                    error
                }
                Err(problem) => {
                    session
                        .record
                        .set_instance_state(&row.id, State::CreateFailed)?;
                    error.replace_hint(format!(
                        "orphan mitigation of instance {} failed ({problem}); try again with `osb deprovision {name}`",
                        row.id
                    ))
                }
            }
        }
    };
    session
        .record
        .finish_operation(operation_id, "failed", Some(&error.message))?;
    Err(error.context(doing))
}

/// How a create failed, which decides what happens to the record.
enum Failure {
    /// Nothing was created: the row goes.
    Rejected(CliError),
    /// The broker may hold the resource but mitigation is not allowed: the row stays as failed.
    Kept(CliError),
    /// The broker may hold the resource: orphan mitigation runs.
    Uncertain(CliError),
}

/// Changes an instance's plan or parameters. Updates are never mitigated.
pub async fn update(
    session: &Session,
    name: &str,
    plan: Option<&str>,
    parameters: Option<&str>,
    operation: &OperationArgs,
) -> CliResult<()> {
    let doing = format!("could not update {name:?}");
    let row = session.instance(name)?;
    let parameters = parameters.map(parse_parameters).transpose()?;
    if plan.is_none() && parameters.is_none() {
        return Err(CliError::usage("nothing to update")
            .with_hint("pass --plan PLAN, -c PARAMETERS or both"));
    }
    check_updatable(&row)?;

    let catalog = session
        .client
        .catalog()
        .await
        .map_err(|error| error.context(&doing))?;
    let (offering, current_plan) = recorded_plan(&catalog, &row.service_id, &row.plan_id)
        .map_err(|error| error.context(&doing))?;
    let new_plan = match plan {
        Some(plan) => Some(find_plan(offering, plan)?).filter(|plan| plan.id != row.plan_id),
        None => None,
    };
    if new_plan.is_some() && !offering.plan_updateable(current_plan) {
        return Err(CliError::usage(format!(
            "{doing}: plan {:?} of service offering {:?} is not plan_updateable",
            current_plan.name, offering.name
        )));
    }

    let target = match new_plan {
        Some(plan) => PlanChange {
            plan_id: plan.id.clone(),
            plan_name: plan.name.clone(),
            maintenance_info: plan.maintenance_info.as_ref().map(version_only),
        },
        None => PlanChange::unchanged(&row),
    };
    let request = UpdateRequest {
        service_id: row.service_id.clone(),
        plan_id: new_plan.map(|plan| plan.id.clone()),
        context: Some(row.context.clone()),
        parameters,
        previous_values: Some(previous_values(&row)),
        // Moving to a plan moves to its maintenance version, as Cloud Foundry does.
        maintenance_info: new_plan
            .and_then(|plan| plan.maintenance_info.as_ref().map(version_only)),
    };
    run_update(
        session,
        &row,
        &request,
        target,
        "update",
        current_plan.maximum_polling_duration,
        operation,
    )
    .await
    .map_err(|error| error.context(doing))
}

/// Moves an instance to its plan's current `maintenance_info.version`.
pub async fn upgrade(session: &Session, name: &str, operation: &OperationArgs) -> CliResult<()> {
    let doing = format!("could not upgrade {name:?}");
    let row = session.instance(name)?;
    check_updatable(&row)?;
    let catalog = session
        .client
        .catalog()
        .await
        .map_err(|error| error.context(&doing))?;
    let (_, plan) = recorded_plan(&catalog, &row.service_id, &row.plan_id)
        .map_err(|error| error.context(&doing))?;
    let Some(maintenance_info) = plan.maintenance_info.as_ref().map(version_only) else {
        return print(&format!(
            "{name:?} is up to date: plan {:?} has no maintenance_info\n",
            plan.name
        ));
    };
    if row.maintenance_version.as_deref() == Some(maintenance_info.version.as_str()) {
        return print(&format!(
            "{name:?} is up to date at maintenance version {}\n",
            maintenance_info.version
        ));
    }

    let target = PlanChange {
        plan_id: row.plan_id.clone(),
        plan_name: row.plan_name.clone(),
        maintenance_info: Some(maintenance_info.clone()),
    };
    let request = UpdateRequest {
        service_id: row.service_id.clone(),
        plan_id: None,
        context: Some(row.context.clone()),
        parameters: None,
        previous_values: Some(previous_values(&row)),
        maintenance_info: Some(maintenance_info),
    };
    run_update(
        session,
        &row,
        &request,
        target,
        "upgrade",
        plan.maximum_polling_duration,
        operation,
    )
    .await
    .map_err(|error| error.context(doing))
}

/// The plan and maintenance version an update moves the instance to.
struct PlanChange {
    plan_id: String,
    plan_name: String,
    maintenance_info: Option<MaintenanceInfo>,
}

impl PlanChange {
    fn unchanged(row: &InstanceRow) -> Self {
        Self {
            plan_id: row.plan_id.clone(),
            plan_name: row.plan_name.clone(),
            maintenance_info: row
                .maintenance_version
                .clone()
                .map(|version| MaintenanceInfo {
                    version,
                    description: None,
                }),
        }
    }
}

/// Sends a PATCH, polls it, and records the outcome. A failed update keeps
/// the old plan, because a broker applies nothing on a 4xx or 5xx.
async fn run_update(
    session: &Session,
    row: &InstanceRow,
    request: &UpdateRequest,
    target: PlanChange,
    kind: &str,
    maximum_polling_duration: Option<u64>,
    operation: &OperationArgs,
) -> CliResult<()> {
    let body = to_json(request);
    let resource = Resource::instance(&row.id);
    let identity_platform = platform_of(row);
    let previous_state = State::parse(&row.state).unwrap_or(State::Ready);
    let label = format!("{kind} of {:?}", row.name);

    session
        .record
        .set_instance_state(&row.id, State::Updating)?;
    let operation_id = session
        .record
        .start_operation("instance", &row.id, &row.name, kind)?;
    let mut progress = Progress::start(&label);
    let deadline = Deadline::after(operation.timeout);
    let result = session
        .client
        .send_mutation(
            |accepts_incomplete| {
                mutation(
                    Method::PATCH,
                    &resource,
                    accepts_incomplete,
                    identity_platform,
                )
                .body(body.clone())
            },
            operation.prefer_sync,
            deadline,
            &progress,
            &label,
        )
        .await;

    let outcome = match result {
        Err(error) if !error.may_have_reached_broker() => UpdateOutcome::Unchanged(error.into()),
        Err(error) => UpdateOutcome::Unknown(error.into()),
        Ok(response) => match response.status {
            StatusCode::OK => match decode_object::<UpdateResponse>(&response) {
                Some(body) => {
                    let dashboard_url = body.get("dashboard_url").and_then(Value::as_str);
                    session.record.set_dashboard_url(&row.id, dashboard_url)?;
                    UpdateOutcome::Applied
                }
                None => UpdateOutcome::Unknown(CliError::failed(format!(
                    "broker answered 200 with a malformed body (request identity {})",
                    response.request_identity
                ))),
            },
            StatusCode::ACCEPTED => match decode_object::<UpdateResponse>(&response)
                .and_then(|body| serde_json::from_value::<UpdateResponse>(body).ok())
            {
                Some(body) => {
                    session
                        .record
                        .set_dashboard_url(&row.id, body.dashboard_url.as_deref())?;
                    let token = body.operation();
                    session
                        .record
                        .set_operation_token(operation_id, token.as_deref())?;
                    // While a plan change runs, polls name the plan before the update.
                    let poll = PollRequest {
                        resource: resource.clone(),
                        service_id: row.service_id.clone(),
                        plan_id: row.plan_id.clone(),
                        operation: token,
                        deleting: false,
                        identity_platform,
                    };
                    let poll_deadline = polling_deadline(deadline, maximum_polling_duration);
                    match session
                        .client
                        .poll_last_operation(&poll, poll_deadline, &progress, &label)
                        .await
                    {
                        PollOutcome::Succeeded => UpdateOutcome::Applied,
                        PollOutcome::Failed(body) => UpdateOutcome::Failed(body),
                        PollOutcome::Gone => UpdateOutcome::Unknown(CliError::failed(
                            "last_operation answered 410 Gone",
                        )),
                        PollOutcome::Unknown { reason } => {
                            UpdateOutcome::Unknown(CliError::failed(reason))
                        }
                    }
                }
                None => UpdateOutcome::Unknown(CliError::failed(format!(
                    "broker answered 202 with a malformed body (request identity {})",
                    response.request_identity
                ))),
            },
            _ => {
                let error = response.into_broker_error();
                if error.body.instance_usable == Some(false) {
                    session.record.set_instance_usable(&row.id, false)?;
                }
                UpdateOutcome::Unchanged(error.into())
            }
        },
    };
    progress.finish();

    match outcome {
        UpdateOutcome::Applied => {
            session.record.set_instance_plan(
                &row.id,
                &target.plan_id,
                &target.plan_name,
                target
                    .maintenance_info
                    .as_ref()
                    .map(|info| info.version.as_str()),
            )?;
            session.record.set_instance_usable(&row.id, true)?;
            session.record.set_instance_state(&row.id, State::Ready)?;
            session
                .record
                .finish_operation(operation_id, "succeeded", None)?;
            let version = target
                .maintenance_info
                .map(|info| format!(", maintenance version {}", info.version))
                .unwrap_or_default();
            print(&format!(
                "updated {:?} (plan {}{version})\n",
                row.name, target.plan_name
            ))
        }
        UpdateOutcome::Failed(body) => {
            let usable = body.instance_usable.unwrap_or(true);
            session.record.set_instance_usable(&row.id, usable)?;
            session
                .record
                .set_instance_state(&row.id, State::UpdateFailed)?;
            let error = operation_failed(&body);
            session
                .record
                .finish_operation(operation_id, "failed", Some(&error.message))?;
            Err(match body.update_repeatable {
                Some(false) => {
                    error.with_hint("the broker says repeating this update will fail again")
                }
                _ => error,
            })
        }
        UpdateOutcome::Unchanged(error) => {
            session.record.set_instance_state(&row.id, previous_state)?;
            session
                .record
                .finish_operation(operation_id, "failed", Some(&error.message))?;
            Err(error)
        }
        UpdateOutcome::Unknown(error) => {
            session
                .record
                .set_instance_state(&row.id, State::UpdateFailed)?;
            session
                .record
                .finish_operation(operation_id, "failed", Some(&error.message))?;
            Err(error.with_hint(
                "the broker may still be working on it; check with `osb fetch instance NAME`",
            ))
        }
    }
}

enum UpdateOutcome {
    Applied,
    /// The operation ran and failed, with the broker's last_operation body.
    Failed(LastOperationResponse),
    /// The broker rejected the request or was not reached, so nothing changed.
    Unchanged(CliError),
    /// The update may or may not have been applied.
    Unknown(CliError),
}

/// Deletes an instance. With `purge`, only removes it from the local record.
pub async fn deprovision(
    session: &Session,
    name: &str,
    purge: bool,
    operation: &OperationArgs,
) -> CliResult<()> {
    let doing = format!("could not deprovision {name:?}");
    let row = session.instance(name)?;
    if purge {
        session.record.delete_instance(&row.id)?;
        return print(&format!(
            "removed {name:?} (instance {}) and its bindings from the local record; the broker was not asked\n",
            row.id
        ));
    }
    let bindings = session.record.bindings(Some(&row.id))?;
    if !bindings.is_empty() {
        let names: Vec<&str> = bindings
            .iter()
            .map(|binding| binding.name.as_str())
            .collect();
        return Err(CliError::usage(format!(
            "{doing}: it still has bindings: {}",
            names.join(", ")
        ))
        .with_hint("delete them first with `osb unbind BINDING`"));
    }

    let maximum_polling_duration = match session.client.catalog().await {
        Ok(catalog) => recorded_plan(&catalog, &row.service_id, &row.plan_id)
            .ok()
            .and_then(|(_, plan)| plan.maximum_polling_duration),
        Err(_) => None,
    };
    let job = DeleteJob {
        recorded: Recorded::Instance(&row.id),
        resource: Resource::instance(&row.id),
        kind: "deprovision",
        name,
        service_id: &row.service_id,
        plan_id: &row.plan_id,
        identity_platform: platform_of(&row),
        previous_state: State::parse(&row.state).unwrap_or(State::Ready),
        maximum_polling_duration,
    };
    run_delete(session, &job, operation)
        .await
        .map_err(|error| error.context(doing))?;
    print(&format!("deprovisioned {name:?} (instance {})\n", row.id))
}

/// Builds a mutating request for a resource with `accepts_incomplete`.
pub fn mutation(
    method: Method,
    resource: &Resource,
    accepts_incomplete: bool,
    platform: PlatformKind,
) -> BrokerRequest {
    let mut request = BrokerRequest::new(method, resource.path()).identity_platform(platform);
    if accepts_incomplete {
        request = request.query("accepts_incomplete", "true");
    }
    request
}

/// The platform of an instance's recorded context, which its requests' originating identity must match.
pub fn platform_of(row: &InstanceRow) -> PlatformKind {
    PlatformKind::of_context(&row.context).unwrap_or_default()
}

fn check_updatable(row: &InstanceRow) -> CliResult<()> {
    match State::parse(&row.state) {
        Some(State::Ready | State::UpdateFailed) => Ok(()),
        _ => Err(
            CliError::usage(format!("instance {:?} is {}", row.name, row.state))
                .with_hint("only ready instances can be updated; see `osb show NAME`"),
        ),
    }
}

fn previous_values(row: &InstanceRow) -> PreviousValues {
    PreviousValues {
        plan_id: Some(row.plan_id.clone()),
        maintenance_info: row
            .maintenance_version
            .clone()
            .map(|version| MaintenanceInfo {
                version,
                description: None,
            }),
        ..PreviousValues::default()
    }
}

/// Only `version` counts in a request's `maintenance_info`.
fn version_only(info: &MaintenanceInfo) -> MaintenanceInfo {
    MaintenanceInfo {
        version: info.version.clone(),
        description: None,
    }
}

/// Returns the provider for servicebinding.io: the offering's
/// `providerDisplayName` metadata, else the broker's host.
fn provider_name(offering: &osbkit_types::ServiceOffering, session: &Session) -> String {
    offering
        .metadata
        .as_ref()
        .and_then(|metadata: &JsonObject| metadata.get("providerDisplayName"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            session
                .client
                .target()
                .url
                .host_str()
                .unwrap_or("broker")
                .to_owned()
        })
}

fn to_json(value: &impl serde::Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}
