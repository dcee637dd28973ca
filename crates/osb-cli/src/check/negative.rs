//! Checks of requests that a broker must reject: a missing or unsupported
//! version header, missing or wrong credentials, malformed provision
//! requests, and requests for instances that do not exist.

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use super::catalog::{catalog_call, PlanInfo};
use super::cleanup::{BindingRef, InstanceRef};
use super::expect::{self, Operation};
use super::http::{Auth, Call, Probe, Reply, Version};
use super::lifecycle::{provision_body, CONFLICTING_MAINTENANCE_VERSION};
use super::poll::{self, Target};
use super::report::{Report, Verdict};
use super::{Context, PlanSettings};
use crate::client::Deadline;
use crate::error::CliResult;

/// Checks the version header rules on the catalog endpoint.
pub async fn version_header(probe: &Probe, report: &mut Report) -> CliResult<()> {
    let reply = probe.send(&catalog_call().version(Version::Missing)).await;
    let verdict = match reply.code() {
        400 | 412 => Verdict::Pass,
        200 => Verdict::Warn(
            "the broker accepted a request without X-Broker-API-Version; 412 is recommended".into(),
        ),
        _ => Verdict::Fail(format!(
            "expected 400 or 412 (or 200), got {}",
            reply.summary()
        )),
    };
    report.record(
        "version.missing",
        "a request without X-Broker-API-Version gets 412 or 400",
        verdict,
        &[&reply.exchange],
    )?;

    let reply = probe
        .send(&catalog_call().version(Version::Value("1.0".into())))
        .await;
    let verdict = match reply.code() {
        412 if error_description(&reply).is_some() => Verdict::Pass,
        412 => Verdict::Warn("the 412 body has no description naming the version to use".into()),
        400 => Verdict::Warn("400 for an unsupported version; the specification names 412".into()),
        200 => Verdict::Warn("the broker accepted API version 1.0; 412 is recommended".into()),
        _ => Verdict::Fail(format!("expected 412, got {}", reply.summary())),
    };
    report.record(
        "version.unsupported",
        "a request with X-Broker-API-Version 1.0 gets 412 naming the version to use",
        verdict,
        &[&reply.exchange],
    )
}

fn error_description(reply: &Reply) -> Option<&str> {
    reply
        .json
        .as_ref()?
        .get("description")?
        .as_str()
        .filter(|text| !text.is_empty())
}

/// Requests without credentials or with a wrong password get 401, when the
/// broker is called with credentials at all.
pub async fn authentication(
    probe: &Probe,
    plan: Option<&PlanInfo>,
    report: &mut Report,
) -> CliResult<()> {
    let unknown = InstanceRef {
        instance_id: Uuid::new_v4().to_string(),
        service_id: plan.map_or_else(|| "osb-check".to_owned(), |plan| plan.service_id.clone()),
        plan_id: plan.map_or_else(|| "osb-check".to_owned(), |plan| plan.plan_id.clone()),
    };
    let cases = [
        (
            "auth.catalog-missing",
            "the catalog without credentials gets 401",
            catalog_call().auth(Auth::Missing),
        ),
        (
            "auth.catalog-wrong",
            "the catalog with a wrong password gets 401",
            catalog_call().auth(Auth::WrongPassword),
        ),
        (
            "auth.last-operation-missing",
            "last_operation without credentials gets 401",
            poll::last_operation_call(&Target::Instance(unknown.clone()), None).auth(Auth::Missing),
        ),
        (
            "auth.deprovision-wrong",
            "a deprovision with a wrong password gets 401",
            Call::delete(unknown.path())
                .query("service_id", &unknown.service_id)
                .query("plan_id", &unknown.plan_id)
                .auth(Auth::WrongPassword),
        ),
    ];
    for (id, behaviour, call) in cases {
        if !probe.uses_auth() {
            let reason = Verdict::Skip(
                "no user given, so the broker is assumed to need no authentication".into(),
            );
            report.record(id, behaviour, reason, &[])?;
            continue;
        }
        let reply = probe.send(&call).await;
        let verdict = expect::status(&reply, &[401], Operation::Other);
        report.record(id, behaviour, verdict, &[&reply.exchange])?;
    }
    Ok(())
}

/// Requests for an instance and a binding that do not exist.
pub async fn unknown_resources(
    probe: &Probe,
    plan: Option<&PlanInfo>,
    report: &mut Report,
) -> CliResult<()> {
    let instance = InstanceRef {
        instance_id: Uuid::new_v4().to_string(),
        service_id: plan.map_or_else(|| "osb-check".to_owned(), |plan| plan.service_id.clone()),
        plan_id: plan.map_or_else(|| "osb-check".to_owned(), |plan| plan.plan_id.clone()),
    };
    let binding = BindingRef {
        instance: instance.clone(),
        binding_id: Uuid::new_v4().to_string(),
    };

    let reply = probe
        .send(&poll::last_operation_call(
            &Target::Instance(instance.clone()),
            None,
        ))
        .await;
    let verdict = expect::status(&reply, &[404], Operation::Other);
    report.record(
        "last-operation.unknown-instance",
        "last_operation of an unknown instance gets 404",
        verdict,
        &[&reply.exchange],
    )?;

    let reply = probe
        .send(&poll::last_operation_call(&Target::Binding(binding), None))
        .await;
    let verdict = expect::status(&reply, &[404], Operation::Other);
    report.record(
        "last-operation.unknown-binding",
        "last_operation of an unknown binding gets 404",
        verdict,
        &[&reply.exchange],
    )?;

    let call = Call::delete(instance.path())
        .query("service_id", &instance.service_id)
        .query("plan_id", &instance.plan_id)
        .accepts_incomplete(true);
    let reply = probe.send(&call).await;
    let verdict = expect::status(&reply, &[410], Operation::Deprovision);
    report.record(
        "deprovision.unknown",
        "deprovisioning an unknown instance gets 410",
        verdict,
        &[&reply.exchange],
    )
}

/// Provision requests that a broker must reject, each under a new instance
/// id that is registered for cleanup in case the broker creates it.
pub async fn malformed_provisions(
    context: &Context,
    plan: &PlanInfo,
    settings: &PlanSettings,
    report: &mut Report,
) -> CliResult<()> {
    let instance_id = Uuid::new_v4().to_string();
    let full = provision_body(context, plan, settings, &instance_id);
    let with = |field: &str, value: Option<Value>| {
        let mut body = full.clone();
        if let Some(object) = body.as_object_mut() {
            match value {
                Some(value) => object.insert(field.to_owned(), value),
                None => object.remove(field),
            };
        }
        body
    };

    let must_reject: [(&str, &str, Option<Value>); 7] = [
        (
            "provision.malformed-body",
            "a provision whose body is not JSON gets 400",
            None,
        ),
        (
            "provision.missing-service-id",
            "a provision without service_id gets 400",
            Some(with("service_id", None)),
        ),
        (
            "provision.missing-plan-id",
            "a provision without plan_id gets 400",
            Some(with("plan_id", None)),
        ),
        (
            "provision.missing-organization-guid",
            "a provision without organization_guid gets 400",
            Some(with("organization_guid", None)),
        ),
        (
            "provision.missing-space-guid",
            "a provision without space_guid gets 400",
            Some(with("space_guid", None)),
        ),
        (
            "provision.empty-service-id",
            "a provision with an empty service_id gets 400",
            Some(with("service_id", Some(json!("")))),
        ),
        (
            "provision.empty-plan-id",
            "a provision with an empty plan_id gets 400",
            Some(with("plan_id", Some(json!("")))),
        ),
    ];
    for (id, behaviour, body) in must_reject {
        let (reply, _) = provision_attempt(context, plan, body).await;
        let verdict = expect::status(&reply, &[400], Operation::Other);
        report.record(id, behaviour, verdict, &[&reply.exchange])?;
    }

    // The specification allows 400 for unknown ids, and 422 is a common response too.
    let unknown_id = format!("osb-check-unknown-{}", Uuid::new_v4());
    for (id, behaviour, field) in [
        (
            "provision.unknown-service-id",
            "a provision with an unknown service_id is rejected with 400",
            "service_id",
        ),
        (
            "provision.unknown-plan-id",
            "a provision with an unknown plan_id is rejected with 400",
            "plan_id",
        ),
    ] {
        let body = with(field, Some(json!(unknown_id)));
        let (reply, _) = provision_attempt(context, plan, Some(body)).await;
        let verdict = match reply.code() {
            400 | 422 => expect::error_body(&reply, Operation::Other),
            401..=499 => Verdict::Warn(format!("expected 400, got {}", reply.summary())),
            _ => Verdict::Fail(format!("expected 400, got {}", reply.summary())),
        };
        report.record(id, behaviour, verdict, &[&reply.exchange])?;
    }

    let behaviour =
        "a provision with another maintenance_info version gets 422 MaintenanceInfoConflict";
    if plan.maintenance_version.is_some() {
        let body = with(
            "maintenance_info",
            Some(json!({ "version": CONFLICTING_MAINTENANCE_VERSION })),
        );
        let (reply, _) = provision_attempt(context, plan, Some(body)).await;
        let verdict =
            expect::status_and_code(&reply, 422, "MaintenanceInfoConflict", Operation::Other);
        report.record(
            "provision.maintenance-info-conflict",
            behaviour,
            verdict,
            &[&reply.exchange],
        )?;
    } else {
        let reason = Verdict::Skip("the plan has no maintenance_info".into());
        report.record(
            "provision.maintenance-info-conflict",
            behaviour,
            reason,
            &[],
        )?;
    }

    let behaviour = "a provision without credentials gets 401";
    if context.probe.uses_auth() {
        let (reply, _) =
            provision_attempt_with(context, plan, Some(full.clone()), Auth::Missing).await;
        let verdict = expect::status(&reply, &[401], Operation::Other);
        report.record(
            "auth.provision-missing",
            behaviour,
            verdict,
            &[&reply.exchange],
        )?;
    } else {
        let reason = Verdict::Skip(
            "no user given, so the broker is assumed to need no authentication".into(),
        );
        report.record("auth.provision-missing", behaviour, reason, &[])?;
    }
    Ok(())
}

/// Sends two identical provisions of a new instance at once. At most one
/// of them may get 201, because only one request creates the instance.
pub async fn concurrent_provisions(
    context: &Context,
    plan: &PlanInfo,
    settings: &PlanSettings,
    report: &mut Report,
) -> CliResult<()> {
    let instance = InstanceRef {
        instance_id: Uuid::new_v4().to_string(),
        service_id: plan.service_id.clone(),
        plan_id: plan.plan_id.clone(),
    };
    context.cleanup.add_instance(&instance);
    let body = provision_body(context, plan, settings, &instance.instance_id);
    let call = Call::put(instance.path(), body).accepts_incomplete(true);
    let (first, second) = tokio::join!(context.probe.send(&call), context.probe.send(&call));

    let accepted = |reply: &Reply| {
        matches!(reply.code(), 200..=202)
            || (reply.code() == 422 && reply.error_code() == Some("ConcurrencyError"))
    };
    let created = [&first, &second]
        .iter()
        .filter(|reply| matches!(reply.code(), 201 | 202))
        .count();
    let verdict = if first.code() == 201 && second.code() == 201 {
        Verdict::Fail("both requests got 201, so both claim to have created the instance".into())
    } else if !accepted(&first) || !accepted(&second) || created == 0 {
        Verdict::Fail(format!(
            "expected 201 or 202 for one request and 200, 202 or 422 ConcurrencyError for the other, got {} and {}",
            first.summary(),
            second.summary()
        ))
    } else {
        Verdict::Pass
    };
    report.record(
        "provision.concurrent-identical",
        "two identical provisions at once create the instance once",
        verdict,
        &[&first.exchange, &second.exchange],
    )?;

    for reply in [&first, &second] {
        if reply.code() == 202 {
            let operation = poll::operation_of(reply);
            let deadline = Deadline::after(context.timeout);
            let target = Target::Instance(instance.clone());
            poll::wait(
                &context.probe,
                &target,
                operation.as_deref(),
                deadline,
                false,
            )
            .await;
        }
    }
    Ok(())
}

async fn provision_attempt(
    context: &Context,
    plan: &PlanInfo,
    body: Option<Value>,
) -> (Reply, InstanceRef) {
    provision_attempt_with(context, plan, body, Auth::Configured).await
}

/// Sends a provision that should be rejected, with a new instance id and
/// `accepts_incomplete=true`. If the broker accepts it, the instance is
/// waited for and left to the cleanup.
async fn provision_attempt_with(
    context: &Context,
    plan: &PlanInfo,
    body: Option<Value>,
    auth: Auth,
) -> (Reply, InstanceRef) {
    let instance = InstanceRef {
        instance_id: Uuid::new_v4().to_string(),
        service_id: plan.service_id.clone(),
        plan_id: plan.plan_id.clone(),
    };
    context.cleanup.add_instance(&instance);
    let call = match body {
        Some(body) => Call::put(instance.path(), body),
        None => Call::new(Method::PUT, instance.path()).text("{\"service_id\": "),
    };
    let reply = context
        .probe
        .send(&call.auth(auth).accepts_incomplete(true))
        .await;
    match reply.code() {
        202 => {
            let operation = poll::operation_of(&reply);
            let deadline = Deadline::after(context.timeout);
            let target = Target::Instance(instance.clone());
            poll::wait(
                &context.probe,
                &target,
                operation.as_deref(),
                deadline,
                false,
            )
            .await;
        }
        // No response: the broker may have created the instance.
        0 | 200 | 201 => {}
        _ => context.cleanup.remove_instance(&instance.instance_id),
    }
    (reply, instance)
}
