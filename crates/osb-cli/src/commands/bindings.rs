//! `osb bind`, `osb unbind` and `osb rotate`.

use osbkit_types::{AsyncOperationResponse, BindRequest, BindingResponse, Catalog, JsonObject};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use super::catalog::recorded_plan;
use super::instances::{mutation, platform_of};
use super::lifecycle::{
    operation_failed, polling_deadline, read_create_answer, run_delete, CreateAnswer, DeleteJob,
    Recorded,
};
use super::{check_name, parse_parameters, Session};
use crate::cli::OperationArgs;
use crate::client::mitigation::Orphan;
use crate::client::poll::{PollOutcome, PollRequest};
use crate::client::progress::Progress;
use crate::client::{Deadline, Resource};
use crate::clock::now_unix;
use crate::error::{CliError, CliResult};
use crate::output::print;
use crate::platform::binding_context;
use crate::record::{BindingRow, InstanceRow, State};

/// The arguments of `osb bind`.
pub struct BindArgs<'a> {
    pub instance: &'a str,
    pub name: &'a str,
    pub parameters: Option<&'a str>,
    pub app: Option<&'a str>,
}

/// Creates a binding and stores its credentials.
pub async fn bind(
    session: &Session,
    args: &BindArgs<'_>,
    operation: &OperationArgs,
) -> CliResult<()> {
    let doing = format!("could not bind {:?} to {:?}", args.name, args.instance);
    check_name("binding", args.name)?;
    let parameters = args.parameters.map(parse_parameters).transpose()?;
    let instance = session.instance(args.instance)?;
    check_name_free(session, args.name)?;
    check_bindable_state(&instance)?;
    let catalog = session
        .client
        .catalog()
        .await
        .map_err(|error| error.context(&doing))?;
    let (offering, plan) = recorded_plan(&catalog, &instance.service_id, &instance.plan_id)
        .map_err(|error| error.context(&doing))?;
    if !offering.plan_bindable(plan) {
        return Err(CliError::usage(format!(
            "{doing}: plan {:?} of service offering {:?} is not bindable",
            plan.name, offering.name
        )));
    }

    let new_binding = NewBinding {
        name: args.name,
        parameters,
        app: args.app,
        predecessor_id: None,
    };
    let binding_id = create_binding(session, &catalog, &instance, &new_binding, operation)
        .await
        .map_err(|error| error.context(&doing))?;
    print(&format!(
        "bound {:?} to {:?} (binding {binding_id})\n",
        args.name, args.instance
    ))
}

/// Rotates a binding: a new binding with `predecessor_binding_id` takes over the name.
pub async fn rotate(session: &Session, name: &str, operation: &OperationArgs) -> CliResult<()> {
    let doing = format!("could not rotate {name:?}");
    let old = session.binding(name)?;
    if State::parse(&old.state) != Some(State::Ready) {
        return Err(
            CliError::usage(format!("{doing}: the binding is {}", old.state))
                .with_hint("only ready bindings can be rotated; see `osb show NAME`"),
        );
    }
    let instance = session.instance(&old.instance_name)?;
    check_bindable_state(&instance)?;
    let catalog = session
        .client
        .catalog()
        .await
        .map_err(|error| error.context(&doing))?;
    let (offering, plan) = recorded_plan(&catalog, &instance.service_id, &instance.plan_id)
        .map_err(|error| error.context(&doing))?;
    if plan.binding_rotatable != Some(true) {
        return Err(CliError::usage(format!(
            "{doing}: plan {:?} of service offering {:?} is not binding_rotatable",
            plan.name, offering.name
        ))
        .with_hint("create a new binding with `osb bind` and delete the old one instead"));
    }

    // The predecessor gives up its name first, because names are unique.
    let short_id: String = old.id.chars().take(8).collect();
    let old_new_name = format!("{name}-{short_id}");
    check_name_free(session, &old_new_name)?;
    session.record.rename_binding(&old.id, &old_new_name)?;
    let new_binding = NewBinding {
        name,
        parameters: None,
        app: None,
        predecessor_id: Some(old.id.clone()),
    };
    match create_binding(session, &catalog, &instance, &new_binding, operation).await {
        Ok(binding_id) => print(&format!(
            "rotated {name:?} (binding {binding_id}); the predecessor stays valid as {old_new_name:?} until you run `osb unbind {old_new_name}`\n"
        )),
        Err(error) => {
            session.record.rename_binding(&old.id, name)?;
            Err(error.context(doing))
        }
    }
}

/// Deletes a binding. With `purge`, only removes it from the local record.
pub async fn unbind(
    session: &Session,
    name: &str,
    purge: bool,
    operation: &OperationArgs,
) -> CliResult<()> {
    let doing = format!("could not unbind {name:?}");
    let binding = session.binding(name)?;
    if purge {
        session.record.delete_binding(&binding.id)?;
        return print(&format!(
            "removed {name:?} (binding {}) from the local record; the broker was not asked\n",
            binding.id
        ));
    }
    let instance = session
        .record
        .instance_by_id(&binding.instance_id)?
        .ok_or_else(|| {
            CliError::usage(format!(
                "the instance of binding {name:?} is missing from the local record"
            ))
        })?;
    let maximum_polling_duration = match session.client.catalog().await {
        Ok(catalog) => recorded_plan(&catalog, &instance.service_id, &instance.plan_id)
            .ok()
            .and_then(|(_, plan)| plan.maximum_polling_duration),
        Err(_) => None,
    };
    let job = DeleteJob {
        recorded: Recorded::Binding(&binding.id),
        resource: Resource::binding(&instance.id, &binding.id),
        kind: "unbind",
        name,
        service_id: &instance.service_id,
        plan_id: &instance.plan_id,
        identity_platform: platform_of(&instance),
        previous_state: State::parse(&binding.state).unwrap_or(State::Ready),
        maximum_polling_duration,
    };
    run_delete(session, &job, operation)
        .await
        .map_err(|error| error.context(doing))?;
    print(&format!("unbound {name:?} (binding {})\n", binding.id))
}

/// The binding that `create_binding` creates.
struct NewBinding<'a> {
    name: &'a str,
    parameters: Option<JsonObject>,
    app: Option<&'a str>,
    predecessor_id: Option<String>,
}

/// Sends the bind, polls it, fetches the credentials of an asynchronous
/// bind, and mitigates an orphan when the outcome is uncertain. Returns the new binding id.
async fn create_binding(
    session: &Session,
    catalog: &Catalog,
    instance: &InstanceRow,
    new: &NewBinding<'_>,
    operation: &OperationArgs,
) -> CliResult<String> {
    let record = &session.record;
    let (_, plan) = recorded_plan(catalog, &instance.service_id, &instance.plan_id)?;
    let row = BindingRow {
        id: Uuid::new_v4().to_string(),
        name: new.name.to_owned(),
        instance_id: instance.id.clone(),
        instance_name: instance.name.clone(),
        predecessor_id: new.predecessor_id.clone(),
        state: State::Creating.as_str().to_owned(),
        created_at: now_unix(),
        updated_at: now_unix(),
    };
    let request = BindRequest {
        service_id: instance.service_id.clone(),
        plan_id: instance.plan_id.clone(),
        context: Some(binding_context(&instance.context)),
        parameters: new.parameters.clone(),
        app_guid: None,
        bind_resource: new.app.map(|guid| object(json!({ "app_guid": guid }))),
        predecessor_binding_id: new.predecessor_id.clone(),
    };
    let body = serde_json::to_value(&request).unwrap_or(Value::Null);
    let kind = if new.predecessor_id.is_some() {
        "rotate"
    } else {
        "bind"
    };

    record.insert_binding(&row)?;
    let operation_id = record.start_operation("binding", &row.id, new.name, kind)?;
    let resource = Resource::binding(&instance.id, &row.id);
    let identity_platform = platform_of(instance);
    let label = format!("binding {:?}", new.name);
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

    let failure = match read_create_answer::<BindingResponse, AsyncOperationResponse>(result) {
        CreateAnswer::Done { body } => {
            record.save_credentials(&row.id, &body)?;
            None
        }
        CreateAnswer::Accepted { operation: token } => {
            record.set_operation_token(operation_id, token.as_deref())?;
            let poll = PollRequest {
                resource: resource.clone(),
                service_id: instance.service_id.clone(),
                plan_id: instance.plan_id.clone(),
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
                PollOutcome::Succeeded => {
                    // An asynchronous bind returns its credentials through GET.
                    fetch_credentials(session, instance, &row.id, &progress).await?;
                    None
                }
                PollOutcome::Failed(body) => Some(BindFailure::Uncertain(operation_failed(&body))),
                PollOutcome::Gone => Some(BindFailure::Uncertain(CliError::failed(
                    "last_operation answered 410 Gone",
                ))),
                PollOutcome::Unknown { reason } => {
                    Some(BindFailure::Uncertain(CliError::failed(reason)))
                }
            }
        }
        CreateAnswer::Rejected(error) => Some(BindFailure::Rejected(error)),
        CreateAnswer::Malformed200(error) => Some(BindFailure::Kept(error)),
        CreateAnswer::Uncertain(error) => Some(BindFailure::Uncertain(error)),
    };

    let Some(failure) = failure else {
        record.set_binding_state(&row.id, State::Ready)?;
        record.finish_operation(operation_id, "succeeded", None)?;
        progress.finish();
        return Ok(row.id);
    };

    let error = match failure {
        BindFailure::Rejected(error) => {
            record.delete_binding(&row.id)?;
            error
        }
        BindFailure::Kept(error) => {
            record.set_binding_state(&row.id, State::CreateFailed)?;
            error.with_hint(format!(
                "the broker may hold the binding; delete it with `osb unbind {}`",
                new.name
            ))
        }
        BindFailure::Uncertain(error) => {
            progress.note(&format!(
                "{error}; deleting binding {} (orphan mitigation)",
                row.id
            ));
            let orphan = Orphan {
                resource: resource.clone(),
                service_id: instance.service_id.clone(),
                plan_id: instance.plan_id.clone(),
                identity_platform,
            };
            match session.client.mitigate_orphan(&orphan, &progress).await {
                Ok(()) => {
                    progress.note(&format!(
                        "orphan mitigation deleted binding {} at the broker",
                        row.id
                    ));
                    record.delete_binding(&row.id)?;
                    error
                }
                Err(problem) => {
                    record.set_binding_state(&row.id, State::CreateFailed)?;
                    error.replace_hint(format!(
                        "orphan mitigation of binding {} failed ({problem}); try again with `osb unbind {}`",
                        row.id, new.name
                    ))
                }
            }
        }
    };
    record.finish_operation(operation_id, "failed", Some(&error.message))?;
    Err(error)
}

/// How a bind failed, which decides what happens to the record.
enum BindFailure {
    Rejected(CliError),
    Kept(CliError),
    Uncertain(CliError),
}

/// Fetches a binding through GET and stores the response. A failure leaves
/// the binding recorded without credentials, with a note.
pub async fn fetch_credentials(
    session: &Session,
    instance: &InstanceRow,
    binding_id: &str,
    progress: &Progress,
) -> CliResult<Option<Value>> {
    let resource = Resource::binding(&instance.id, binding_id);
    match session
        .client
        .fetch(
            &resource,
            &instance.service_id,
            &instance.plan_id,
            platform_of(instance),
        )
        .await
    {
        Ok(body) => {
            session.record.save_credentials(binding_id, &body)?;
            Ok(Some(body))
        }
        Err(error) => {
            let error = CliError::from(error);
            progress.note(&format!(
                "could not fetch the credentials of binding {binding_id}: {error}; try `osb credentials NAME --refresh`"
            ));
            Ok(None)
        }
    }
}

fn check_name_free(session: &Session, name: &str) -> CliResult<()> {
    if session.record.binding_by_name(name)?.is_some() {
        return Err(CliError::usage(format!("binding {name:?} already exists"))
            .with_hint("choose another name, or delete it first with `osb unbind NAME`"));
    }
    Ok(())
}

/// Bindings need a ready (or failed-update but usable) instance.
fn check_bindable_state(instance: &InstanceRow) -> CliResult<()> {
    let ready = matches!(
        State::parse(&instance.state),
        Some(State::Ready | State::UpdateFailed)
    );
    if !ready {
        return Err(CliError::usage(format!(
            "instance {:?} is {}",
            instance.name, instance.state
        ))
        .with_hint("only ready instances can be bound; see `osb show NAME`"));
    }
    if !instance.usable {
        return Err(CliError::usage(format!(
            "instance {:?} is marked unusable by the broker",
            instance.name
        ))
        .with_hint("repair it with `osb update` or delete it"));
    }
    Ok(())
}

fn object(value: Value) -> JsonObject {
    match value {
        Value::Object(object) => object,
        _ => JsonObject::new(),
    }
}
