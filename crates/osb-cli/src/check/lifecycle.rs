//! The lifecycle of one plan: provision, fetch, update, bind (in
//! `binding`), deprovision and last_operation, with the checks that need a
//! live instance around each step.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use super::binding;
use super::catalog::PlanInfo;
use super::cleanup::InstanceRef;
use super::expect::{self, Operation};
use super::http::{Call, Reply};
use super::poll::{self, PollResult, Target};
use super::report::{Report, Verdict};
use super::schema::BodySchema;
use super::{Context, PlanSettings};
use crate::client::Deadline;
use crate::error::CliResult;

/// A maintenance_info version that no catalog is expected to use.
pub const CONFLICTING_MAINTENANCE_VERSION: &str = "99.99.99-osb-check";

/// An instance being exercised, and how its plan responded.
pub struct LiveInstance<'a> {
    pub context: &'a Context,
    pub plan: &'a PlanInfo,
    pub settings: &'a PlanSettings,
    pub instance: InstanceRef,
    /// The provision request body, for identical and conflicting repeats.
    pub body: Value,
    /// Whether the broker asked for `accepts_incomplete=true`.
    pub needs_async: bool,
}

impl LiveInstance<'_> {
    /// Returns the deadline of one asynchronous operation: the --timeout,
    /// or the plan's maximum_polling_duration when that is shorter.
    pub fn deadline(&self) -> Deadline {
        let mut limit = self.context.timeout;
        if let Some(seconds) = self.plan.maximum_polling_duration {
            limit = limit.min(Duration::from_secs(seconds));
        }
        Deadline::after(limit)
    }

    pub async fn send(&self, call: &Call) -> Reply {
        self.context.probe.send(call).await
    }
}

/// Builds a provision request body for a plan.
pub fn provision_body(
    context: &Context,
    plan: &PlanInfo,
    settings: &PlanSettings,
    instance_id: &str,
) -> Value {
    let platform = context.probe.platform();
    let (organization_guid, space_guid) = platform.provision_guids();
    let name = format!("osb-check-{}", &instance_id[..8.min(instance_id.len())]);
    let mut body = json!({
        "service_id": plan.service_id,
        "plan_id": plan.plan_id,
        "organization_guid": organization_guid,
        "space_guid": space_guid,
        "context": platform.instance_context(&name),
    });
    if let Some(parameters) = &settings.parameters {
        body["parameters"] = parameters.clone();
    }
    if let Some(version) = &plan.maintenance_version {
        body["maintenance_info"] = json!({ "version": version });
    }
    body
}

/// Runs the lifecycle checks of one plan. Resources are registered for
/// cleanup before they are requested, so after an early return the final
/// cleanup still deletes them.
pub async fn run(
    context: &Context,
    plan: &PlanInfo,
    settings: &PlanSettings,
    report: &mut Report,
) -> CliResult<()> {
    let instance_id = Uuid::new_v4().to_string();
    let instance = InstanceRef {
        instance_id: instance_id.clone(),
        service_id: plan.service_id.clone(),
        plan_id: plan.plan_id.clone(),
    };
    let body = provision_body(context, plan, settings, &instance_id);
    let mut live = LiveInstance {
        context,
        plan,
        settings,
        instance,
        body,
        needs_async: false,
    };

    if !provision(&mut live, report).await? {
        return Ok(());
    }
    repeat_provision(&live, report).await?;
    fetch_instance(&live, report).await?;
    update(&live, report).await?;
    change_plan(&live, report).await?;
    if plan.bindable {
        binding::run(&live, report).await?;
    } else {
        report.record(
            "bind.lifecycle",
            "bind, fetch and unbind",
            Verdict::Skip("the plan is not bindable".into()),
            &[],
        )?;
    }
    deprovision(&live, report).await
}

/// Provisions the instance; returns whether it exists afterwards.
async fn provision(live: &mut LiveInstance<'_>, report: &mut Report) -> CliResult<bool> {
    let cleanup = &live.context.cleanup;
    cleanup.add_instance(&live.instance);

    let call = Call::put(live.instance.path(), live.body.clone());
    let first = live.send(&call).await;
    let verdict = match first.code() {
        201 => expect::status(&first, &[201], Operation::Other),
        422 => expect::status_and_code(&first, 422, "AsyncRequired", Operation::Other),
        _ => Verdict::Fail(format!(
            "expected 201, or 422 AsyncRequired for an asynchronous plan, got {}",
            first.summary()
        )),
    };
    report.record(
        "provision.without-accepts-incomplete",
        "provision without accepts_incomplete gets 201, or 422 AsyncRequired",
        verdict,
        &[&first.exchange],
    )?;

    let reply = if first.code() == 422 && first.error_code() == Some("AsyncRequired") {
        live.needs_async = true;
        let second = live.send(&call.clone().accepts_incomplete(true)).await;
        let verdict = expect::status(&second, &[201, 202], Operation::Other);
        report.record(
            "provision.accepts-incomplete",
            "provision with accepts_incomplete=true gets 201 or 202",
            verdict,
            &[&second.exchange],
        )?;
        second
    } else {
        first
    };

    match reply.code() {
        201 => {
            let verdict = expect::success_body(&reply, BodySchema::ProvisionResponse, true);
            report.record(
                "provision.body",
                "the provision response body is valid",
                verdict,
                &[&reply.exchange],
            )?;
            Ok(true)
        }
        202 => {
            let verdict = expect::success_body(&reply, BodySchema::ProvisionAsync, true);
            report.record(
                "provision.body",
                "the provision response body is valid",
                verdict,
                &[&reply.exchange],
            )?;
            let operation = poll::operation_of(&reply);
            while_provisioning(live, operation.as_deref(), report).await?;
            let target = Target::Instance(live.instance.clone());
            let result = poll::wait(
                &live.context.probe,
                &target,
                operation.as_deref(),
                live.deadline(),
                false,
            )
            .await;
            let succeeded = record_poll(
                report,
                "provision.last-operation",
                "last_operation of an asynchronous provision ends in succeeded",
                &result,
            )?;
            if succeeded {
                remembered(live, operation.as_deref(), report).await?;
            }
            Ok(succeeded)
        }
        _ => {
            let reason = format!("the instance was not provisioned ({})", reply.summary());
            report.record(
                "provision.lifecycle",
                "the rest of the lifecycle",
                Verdict::Skip(reason),
                &[],
            )?;
            Ok(false)
        }
    }
}

/// Checks that last_operation still reports the final state of a
/// provision after it was reported once (recommended).
async fn remembered(
    live: &LiveInstance<'_>,
    operation: Option<&str>,
    report: &mut Report,
) -> CliResult<()> {
    let target = Target::Instance(live.instance.clone());
    let reply = live
        .send(&poll::last_operation_call(&target, operation))
        .await;
    let state = reply
        .json
        .as_ref()
        .and_then(|body| body.get("state"))
        .and_then(Value::as_str);
    let verdict = if reply.code() == 200 && state == Some("succeeded") {
        Verdict::Pass
    } else {
        Verdict::Warn(format!(
            "expected 200 with state \"succeeded\", got {}",
            reply.summary()
        ))
    };
    report.record(
        "last-operation.remembered",
        "last_operation still reports succeeded after the provision ended (recommended)",
        verdict,
        &[&reply.exchange],
    )
}

/// Records how polling ended; returns whether the operation succeeded.
pub fn record_poll(
    report: &mut Report,
    id: &str,
    behaviour: &str,
    result: &PollResult,
) -> CliResult<bool> {
    let succeeded = matches!(result.state.as_deref(), Some("succeeded") | Some("gone"));
    let mut problems = result.problems.clone();
    match result.state.as_deref() {
        Some("succeeded") | Some("gone") | None => {}
        Some(state) => problems.push(format!("the operation ended in state {state:?}")),
    }
    let exchanges: Vec<_> = result.exchanges.iter().collect();
    report.record(
        id,
        behaviour,
        Verdict::fail_unless_empty(problems),
        &exchanges,
    )?;
    Ok(succeeded)
}

/// Runs the checks that need a provision still in progress: an identical repeat
/// gets 202 with the same operation, fetching the instance gets 404, and
/// an update gets 422 ConcurrencyError unless the broker runs it.
async fn while_provisioning(
    live: &LiveInstance<'_>,
    operation: Option<&str>,
    report: &mut Report,
) -> CliResult<()> {
    let probe = &live.context.probe;
    let target = Target::Instance(live.instance.clone());
    let state = probe
        .send(&poll::last_operation_call(&target, operation))
        .await;
    let in_progress = state
        .json
        .as_ref()
        .and_then(|body| body.get("state"))
        .and_then(Value::as_str)
        == Some("in progress");
    let behaviour_repeat = "an identical provision while it runs gets 202 with the same operation";
    let behaviour_fetch = "fetching an instance whose provision runs gets 404";
    let behaviour_update =
        "an update while the provision runs gets 422 ConcurrencyError, or is accepted";
    if !in_progress {
        let reason = Verdict::Skip(format!(
            "the provision was no longer in progress ({})",
            state.summary()
        ));
        report.record(
            "provision.repeat-in-progress",
            behaviour_repeat,
            reason.clone(),
            &[],
        )?;
        report.record(
            "fetch-instance.in-progress",
            behaviour_fetch,
            reason.clone(),
            &[],
        )?;
        return report.record("update.concurrent", behaviour_update, reason, &[]);
    }

    let call = Call::put(live.instance.path(), live.body.clone()).accepts_incomplete(true);
    let repeat = probe.send(&call).await;
    let verdict = same_operation(&repeat, operation);
    report.record(
        "provision.repeat-in-progress",
        behaviour_repeat,
        verdict,
        &[&repeat.exchange],
    )?;

    if live.plan.instances_retrievable {
        let fetch = probe.send(&fetch_instance_call(live)).await;
        let verdict = expect::status(&fetch, &[404], Operation::Other);
        report.record(
            "fetch-instance.in-progress",
            behaviour_fetch,
            verdict,
            &[&fetch.exchange],
        )?;
    } else {
        let reason = Verdict::Skip("the offering is not instances_retrievable".into());
        report.record("fetch-instance.in-progress", behaviour_fetch, reason, &[])?;
    }

    let update = probe
        .send(
            &Call::patch(
                live.instance.path(),
                json!({ "service_id": live.plan.service_id }),
            )
            .accepts_incomplete(true),
        )
        .await;
    let verdict = match update.code() {
        422 => expect::status_and_code(&update, 422, "ConcurrencyError", Operation::Update),
        200 | 202 => Verdict::Pass,
        _ => Verdict::Fail(format!(
            "expected 422 ConcurrencyError (or 200 or 202), got {}",
            update.summary()
        )),
    };
    report.record(
        "update.concurrent",
        behaviour_update,
        verdict,
        &[&update.exchange],
    )
}

/// Checks that a repeated request got 202 with the original operation.
pub fn same_operation(repeat: &Reply, operation: Option<&str>) -> Verdict {
    if repeat.code() != 202 {
        return Verdict::Fail(format!("expected 202, got {}", repeat.summary()));
    }
    let again = poll::operation_of(repeat);
    if again.as_deref() == operation {
        Verdict::Pass
    } else {
        Verdict::Fail(format!(
            "the operation changed from {operation:?} to {again:?}"
        ))
    }
}

fn fetch_instance_call(live: &LiveInstance<'_>) -> Call {
    Call::get(live.instance.path())
        .query("service_id", &live.plan.service_id)
        .query("plan_id", &live.plan.plan_id)
}

/// Identical and conflicting repeats of the provision once it completed.
async fn repeat_provision(live: &LiveInstance<'_>, report: &mut Report) -> CliResult<()> {
    let call =
        Call::put(live.instance.path(), live.body.clone()).accepts_incomplete(live.needs_async);
    let repeat = live.send(&call).await;
    let verdict = match repeat.code() {
        200 => expect::success_body(&repeat, BodySchema::ProvisionResponse, true),
        202 if live.needs_async => Verdict::Pass,
        201 => Verdict::Fail(
            "201 means this request created the instance, but it already existed".into(),
        ),
        _ => Verdict::Warn(format!("expected 200, got {}", repeat.summary())),
    };
    report.record(
        "provision.repeat-identical",
        "an identical provision of an existing instance gets 200",
        verdict,
        &[&repeat.exchange],
    )?;
    if repeat.code() == 202 {
        wait_quietly(live, &repeat, false).await;
    }

    // The same instance id in another space: different attributes.
    let mut body = live.body.clone();
    body["organization_guid"] = json!(Uuid::new_v4().to_string());
    body["space_guid"] = json!(Uuid::new_v4().to_string());
    let call = Call::put(live.instance.path(), body).accepts_incomplete(true);
    let conflict = live.send(&call).await;
    let verdict = expect::status(&conflict, &[409], Operation::Other);
    report.record(
        "provision.repeat-conflict",
        "a provision of an existing instance id with other attributes gets 409",
        verdict,
        &[&conflict.exchange],
    )?;
    if conflict.code() == 202 {
        wait_quietly(live, &conflict, false).await;
    }
    Ok(())
}

/// Waits for an operation that a check started by mistake, so that it
/// does not block the next step. Its problems are not reported.
pub async fn wait_quietly(live: &LiveInstance<'_>, reply: &Reply, deleting: bool) {
    let operation = poll::operation_of(reply);
    let target = Target::Instance(live.instance.clone());
    poll::wait(
        &live.context.probe,
        &target,
        operation.as_deref(),
        live.deadline(),
        deleting,
    )
    .await;
}

async fn fetch_instance(live: &LiveInstance<'_>, report: &mut Report) -> CliResult<()> {
    let behaviour = "fetching a provisioned instance gets 200 with its service_id and plan_id";
    if !live.plan.instances_retrievable {
        let reason = Verdict::Skip("the offering is not instances_retrievable".into());
        return report.record("fetch-instance.ok", behaviour, reason, &[]);
    }
    let reply = live.send(&fetch_instance_call(live)).await;
    let verdict = if reply.code() == 200 {
        let mut verdicts = vec![expect::success_body(
            &reply,
            BodySchema::InstanceResource,
            false,
        )];
        for (field, expected) in [
            ("service_id", &live.plan.service_id),
            ("plan_id", &live.plan.plan_id),
        ] {
            let actual = reply
                .json
                .as_ref()
                .and_then(|body| body.get(field))
                .and_then(Value::as_str);
            if actual.is_some_and(|actual| actual != expected) {
                verdicts.push(Verdict::Fail(format!(
                    "`{field}` is {actual:?}, expected {expected:?}"
                )));
            }
        }
        expect::combine(verdicts)
    } else {
        Verdict::Fail(format!("expected 200, got {}", reply.summary()))
    };
    report.record("fetch-instance.ok", behaviour, verdict, &[&reply.exchange])?;

    let unknown = InstanceRef {
        instance_id: Uuid::new_v4().to_string(),
        ..live.instance.clone()
    };
    let reply = live
        .send(
            &Call::get(unknown.path())
                .query("service_id", &unknown.service_id)
                .query("plan_id", &unknown.plan_id),
        )
        .await;
    let verdict = expect::status(&reply, &[404], Operation::Other);
    report.record(
        "fetch-instance.unknown",
        "fetching an unknown instance gets 404",
        verdict,
        &[&reply.exchange],
    )
}

/// Malformed updates, a maintenance_info conflict, and an update that
/// changes nothing.
async fn update(live: &LiveInstance<'_>, report: &mut Report) -> CliResult<()> {
    let path = live.instance.path();

    let malformed = live
        .send(
            &Call::new(Method::PATCH, path.clone())
                .text("{\"service_id\": ")
                .accepts_incomplete(true),
        )
        .await;
    let verdict = expect::status(&malformed, &[400], Operation::Update);
    report.record(
        "update.malformed-body",
        "an update whose body is not JSON gets 400",
        verdict,
        &[&malformed.exchange],
    )?;
    settle(live, &malformed).await;

    let body = json!({ "plan_id": live.plan.plan_id });
    let missing = live
        .send(&Call::patch(path.clone(), body).accepts_incomplete(true))
        .await;
    let verdict = expect::status(&missing, &[400], Operation::Update);
    report.record(
        "update.missing-service-id",
        "an update without service_id gets 400",
        verdict,
        &[&missing.exchange],
    )?;
    settle(live, &missing).await;

    let behaviour =
        "an update with another maintenance_info version gets 422 MaintenanceInfoConflict";
    if live.plan.maintenance_version.is_some() {
        let body = json!({
            "service_id": live.plan.service_id,
            "maintenance_info": { "version": CONFLICTING_MAINTENANCE_VERSION },
        });
        let conflict = live
            .send(&Call::patch(path.clone(), body).accepts_incomplete(true))
            .await;
        let verdict =
            expect::status_and_code(&conflict, 422, "MaintenanceInfoConflict", Operation::Update);
        report.record(
            "update.maintenance-info-conflict",
            behaviour,
            verdict,
            &[&conflict.exchange],
        )?;
        settle(live, &conflict).await;
    } else {
        let reason = Verdict::Skip("the plan has no maintenance_info".into());
        report.record("update.maintenance-info-conflict", behaviour, reason, &[])?;
    }

    // An update that changes nothing: no plan_id and no parameters, with
    // the context a platform sends.
    let body = json!({
        "service_id": live.plan.service_id,
        "context": live.body["context"],
        "previous_values": { "plan_id": live.plan.plan_id },
    });
    let call = Call::patch(path, body);
    let first = live.send(&call).await;
    let verdict = match first.code() {
        200 => expect::success_body(&first, BodySchema::Object, false),
        422 if first.error_code() == Some("AsyncRequired") => {
            expect::error_body(&first, Operation::Update)
        }
        422 => Verdict::Warn(format!(
            "the broker rejected an update that changes nothing: {}",
            first.summary()
        )),
        _ => Verdict::Fail(format!(
            "expected 200, or 422 AsyncRequired, got {}",
            first.summary()
        )),
    };
    report.record(
        "update.without-accepts-incomplete",
        "an update without accepts_incomplete gets 200, or 422 AsyncRequired",
        verdict,
        &[&first.exchange],
    )?;
    if first.error_code() != Some("AsyncRequired") {
        return Ok(());
    }

    let call = call.accepts_incomplete(true);
    let second = live.send(&call).await;
    let verdict = match second.code() {
        200 => expect::success_body(&second, BodySchema::Object, false),
        202 => expect::success_body(&second, BodySchema::AsyncOperation, false),
        _ => Verdict::Fail(format!("expected 200 or 202, got {}", second.summary())),
    };
    report.record(
        "update.accepts-incomplete",
        "an update with accepts_incomplete=true gets 200 or 202",
        verdict,
        &[&second.exchange],
    )?;
    if second.code() != 202 {
        return Ok(());
    }
    let operation = poll::operation_of(&second);
    if operation.as_deref() == Some("") {
        report.record(
            "update.operation",
            "an update's operation is not empty",
            Verdict::Fail("`operation` is an empty string".into()),
            &[&second.exchange],
        )?;
    }
    let repeat = live.send(&call).await;
    let verdict = match repeat.code() {
        202 => same_operation(&repeat, operation.as_deref()),
        200 => Verdict::Skip("the update had already ended".into()),
        _ => Verdict::Fail(format!("expected 202, got {}", repeat.summary())),
    };
    report.record(
        "update.repeat-in-progress",
        "an identical update while it runs gets 202 with the same operation",
        verdict,
        &[&repeat.exchange],
    )?;

    // A broker that can serve the instance during an update may return it.
    let behaviour = "fetching an instance whose update runs gets 422 ConcurrencyError, or 200";
    if live.plan.instances_retrievable {
        let fetch = live.send(&fetch_instance_call(live)).await;
        let verdict = match fetch.code() {
            200 => expect::success_body(&fetch, BodySchema::InstanceResource, false),
            _ => expect::status_and_code(&fetch, 422, "ConcurrencyError", Operation::Other),
        };
        report.record(
            "fetch-instance.during-update",
            behaviour,
            verdict,
            &[&fetch.exchange],
        )?;
    } else {
        let reason = Verdict::Skip("the offering is not instances_retrievable".into());
        report.record("fetch-instance.during-update", behaviour, reason, &[])?;
    }

    let target = Target::Instance(live.instance.clone());
    let result = poll::wait(
        &live.context.probe,
        &target,
        operation.as_deref(),
        live.deadline(),
        false,
    )
    .await;
    record_poll(
        report,
        "update.last-operation",
        "last_operation of an asynchronous update ends in succeeded",
        &result,
    )?;
    Ok(())
}

/// Changes the instance to another plan of its offering and back, when the
/// plan is plan_updateable.
async fn change_plan(live: &LiveInstance<'_>, report: &mut Report) -> CliResult<()> {
    let behaviour = "an update to another plan of a plan_updateable plan gets 200 or 202";
    let other = live.plan.other_plan_id.as_deref();
    let Some(other) = other.filter(|_| live.plan.plan_updateable) else {
        let reason = "the plan is not plan_updateable, or its offering has no other plan";
        return report.record(
            "update.plan-change",
            behaviour,
            Verdict::Skip(reason.into()),
            &[],
        );
    };
    let original = live.plan.plan_id.as_str();

    let (verdict, changed, exchanges) = update_plan(live, original, other).await;
    let exchanges: Vec<_> = exchanges.iter().collect();
    report.record("update.plan-change", behaviour, verdict, &exchanges)?;
    if !changed {
        return Ok(());
    }

    if live.plan.instances_retrievable {
        let fetch = live
            .send(
                &Call::get(live.instance.path())
                    .query("service_id", &live.plan.service_id)
                    .query("plan_id", other),
            )
            .await;
        let plan_id = fetch
            .json
            .as_ref()
            .and_then(|body| body.get("plan_id"))
            .and_then(Value::as_str);
        let verdict = match (fetch.code(), plan_id) {
            (200, Some(plan_id)) if plan_id != other => Verdict::Fail(format!(
                "`plan_id` is {plan_id:?} after the change to {other:?}"
            )),
            (200, _) => Verdict::Pass,
            _ => Verdict::Fail(format!("expected 200, got {}", fetch.summary())),
        };
        report.record(
            "fetch-instance.after-plan-change",
            "fetching an instance after a plan change returns the new plan",
            verdict,
            &[&fetch.exchange],
        )?;
    }

    // The rest of the checks use the original plan.
    let (verdict, _, exchanges) = update_plan(live, other, original).await;
    let exchanges: Vec<_> = exchanges.iter().collect();
    report.record(
        "update.plan-change-back",
        "an update back to the original plan gets 200 or 202",
        verdict,
        &exchanges,
    )
}

/// Sends a plan change, with accepts_incomplete=true if the broker requires
/// it, and waits for it. Returns the verdict, whether the plan changed,
/// and the exchanges behind the verdict.
async fn update_plan(
    live: &LiveInstance<'_>,
    from: &str,
    to: &str,
) -> (Verdict, bool, Vec<super::http::Exchange>) {
    let body = json!({
        "service_id": live.plan.service_id,
        "plan_id": to,
        "context": live.body["context"],
        "previous_values": { "plan_id": from },
    });
    let call = Call::patch(live.instance.path(), body);
    let mut reply = live.send(&call).await;
    let mut exchanges = vec![reply.exchange.clone()];
    if reply.code() == 422 && reply.error_code() == Some("AsyncRequired") {
        reply = live.send(&call.accepts_incomplete(true)).await;
        exchanges.push(reply.exchange.clone());
    }

    match reply.code() {
        200 => (
            expect::success_body(&reply, BodySchema::Object, false),
            true,
            exchanges,
        ),
        202 => {
            // Polling names the plan before the update.
            let target = Target::Instance(InstanceRef {
                plan_id: from.to_owned(),
                ..live.instance.clone()
            });
            let operation = poll::operation_of(&reply);
            let result = poll::wait(
                &live.context.probe,
                &target,
                operation.as_deref(),
                live.deadline(),
                false,
            )
            .await;
            exchanges.extend(result.exchanges.iter().cloned());
            match result.state.as_deref() {
                Some("succeeded") if result.problems.is_empty() => (Verdict::Pass, true, exchanges),
                Some("succeeded") => (Verdict::Fail(result.problems.join("; ")), true, exchanges),
                state => {
                    let mut problems = result.problems.clone();
                    problems.push(format!("the update ended in state {state:?}"));
                    (Verdict::Fail(problems.join("; ")), false, exchanges)
                }
            }
        }
        422 => {
            let reason = format!("the broker rejected the plan change: {}", reply.summary());
            (Verdict::Warn(reason), false, exchanges)
        }
        _ => {
            let reason = format!("expected 200 or 202, got {}", reply.summary());
            (Verdict::Fail(reason), false, exchanges)
        }
    }
}

/// Waits for an operation that a rejected request started anyway.
async fn settle(live: &LiveInstance<'_>, reply: &Reply) {
    if reply.code() == 202 {
        wait_quietly(live, reply, false).await;
    }
}

/// Deletes the instance: malformed deletes first, then the delete, a
/// repeat while it runs and after it ended, and a fetch of the deleted
/// instance.
async fn deprovision(live: &LiveInstance<'_>, report: &mut Report) -> CliResult<()> {
    let path = live.instance.path();
    let service_id = &live.plan.service_id;
    let plan_id = &live.plan.plan_id;

    for (id, behaviour, call) in [
        (
            "deprovision.missing-service-id",
            "a deprovision without service_id gets 400",
            Call::delete(path.clone()).query("plan_id", plan_id),
        ),
        (
            "deprovision.missing-plan-id",
            "a deprovision without plan_id gets 400",
            Call::delete(path.clone()).query("service_id", service_id),
        ),
    ] {
        let reply = live.send(&call.accepts_incomplete(true)).await;
        let verdict = expect::status(&reply, &[400], Operation::Deprovision);
        report.record(id, behaviour, verdict, &[&reply.exchange])?;
        if matches!(reply.code(), 200 | 202) {
            if reply.code() == 202 {
                wait_quietly(live, &reply, true).await;
            }
            let reason =
                Verdict::Skip("a malformed deprovision already deleted the instance".into());
            return report.record("deprovision.lifecycle", "deprovision", reason, &[]);
        }
    }

    let call = Call::delete(path.clone())
        .query("service_id", service_id)
        .query("plan_id", plan_id);
    let first = live.send(&call).await;
    let verdict = match first.code() {
        200 => expect::success_body(&first, BodySchema::Object, false),
        422 => expect::status_and_code(&first, 422, "AsyncRequired", Operation::Deprovision),
        _ => Verdict::Fail(format!(
            "expected 200, or 422 AsyncRequired, got {}",
            first.summary()
        )),
    };
    report.record(
        "deprovision.without-accepts-incomplete",
        "a deprovision without accepts_incomplete gets 200, or 422 AsyncRequired",
        verdict,
        &[&first.exchange],
    )?;

    let reply = if first.code() == 422 && first.error_code() == Some("AsyncRequired") {
        let call = call.clone().accepts_incomplete(true);
        let second = live.send(&call).await;
        let verdict = match second.code() {
            200 => expect::success_body(&second, BodySchema::Object, false),
            202 => expect::success_body(&second, BodySchema::AsyncOperation, true),
            _ => Verdict::Fail(format!("expected 200 or 202, got {}", second.summary())),
        };
        report.record(
            "deprovision.accepts-incomplete",
            "a deprovision with accepts_incomplete=true gets 200 or 202",
            verdict,
            &[&second.exchange],
        )?;
        if second.code() == 202 {
            let operation = poll::operation_of(&second);
            let repeat = live.send(&call).await;
            let verdict = match repeat.code() {
                202 => same_operation(&repeat, operation.as_deref()),
                410 | 200 => Verdict::Skip("the deprovision had already ended".into()),
                _ => Verdict::Fail(format!("expected 202, got {}", repeat.summary())),
            };
            report.record(
                "deprovision.repeat-in-progress",
                "an identical deprovision while it runs gets 202 with the same operation",
                verdict,
                &[&repeat.exchange],
            )?;
            let target = Target::Instance(live.instance.clone());
            let result = poll::wait(
                &live.context.probe,
                &target,
                operation.as_deref(),
                live.deadline(),
                true,
            )
            .await;
            let deleted = record_poll(
                report,
                "deprovision.last-operation",
                "last_operation of an asynchronous deprovision ends in succeeded or 410",
                &result,
            )?;
            if !deleted {
                return Ok(());
            }
        }
        second
    } else {
        first
    };
    if !matches!(reply.code(), 200 | 202) {
        return Ok(());
    }

    let again = live.send(&call.clone().accepts_incomplete(true)).await;
    let verdict = expect::status(&again, &[410], Operation::Deprovision);
    report.record(
        "deprovision.gone",
        "deprovisioning a deleted instance gets 410",
        verdict,
        &[&again.exchange],
    )?;
    if again.code() == 410 {
        live.context
            .cleanup
            .remove_instance(&live.instance.instance_id);
    }

    if live.plan.instances_retrievable {
        let fetch = live.send(&fetch_instance_call(live)).await;
        let verdict = expect::status(&fetch, &[404], Operation::Other);
        report.record(
            "fetch-instance.deleted",
            "fetching a deleted instance gets 404",
            verdict,
            &[&fetch.exchange],
        )?;
    }
    Ok(())
}
