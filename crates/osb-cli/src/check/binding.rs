//! The binding part of a plan's lifecycle: bind, repeats, fetch binding,
//! unbind and binding last_operation, on a provisioned instance.

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use super::cleanup::BindingRef;
use super::expect::{self, Operation};
use super::http::{Call, Reply};
use super::lifecycle::{record_poll, same_operation, LiveInstance};
use super::poll::{self, Target};
use super::report::{Report, Verdict};
use super::schema::BodySchema;
use crate::error::CliResult;
use crate::platform::binding_context;

/// The binding fields that need a `requires` value in the catalog.
const REQUIRED_DECLARATIONS: [(&str, &str); 3] = [
    ("syslog_drain_url", "syslog_drain"),
    ("route_service_url", "route_forwarding"),
    ("volume_mounts", "volume_mount"),
];

/// Runs the binding checks on a live instance.
pub async fn run(live: &LiveInstance<'_>, report: &mut Report) -> CliResult<()> {
    let binding = BindingRef {
        instance: live.instance.clone(),
        binding_id: Uuid::new_v4().to_string(),
    };
    let body = bind_body(live, &Uuid::new_v4().to_string());
    let Some(asynchronous) = bind(live, &binding, &body, report).await? else {
        return Ok(());
    };
    repeat_bind(live, &binding, &body, asynchronous, report).await?;
    fetch_binding(live, &binding, report).await?;
    malformed_binds(live, report).await?;
    unbind(live, &binding, report).await
}

fn bind_body(live: &LiveInstance<'_>, app_guid: &str) -> Value {
    let instance_context = live.body["context"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut body = json!({
        "service_id": live.plan.service_id,
        "plan_id": live.plan.plan_id,
        "context": binding_context(&instance_context),
        "bind_resource": { "app_guid": app_guid },
    });
    if let Some(parameters) = &live.settings.bind_parameters {
        body["parameters"] = parameters.clone();
    }
    body
}

/// Creates the binding; returns whether it needed `accepts_incomplete`,
/// or `None` when it was not created.
async fn bind(
    live: &LiveInstance<'_>,
    binding: &BindingRef,
    body: &Value,
    report: &mut Report,
) -> CliResult<Option<bool>> {
    live.context.cleanup.add_binding(binding);
    let call = Call::put(binding.path(), body.clone());
    let first = live.send(&call).await;
    let verdict = match first.code() {
        201 => expect::status(&first, &[201], Operation::Other),
        422 => expect::status_and_code(&first, 422, "AsyncRequired", Operation::Other),
        _ => Verdict::Fail(format!(
            "expected 201, or 422 AsyncRequired, got {}",
            first.summary()
        )),
    };
    report.record(
        "bind.without-accepts-incomplete",
        "a bind without accepts_incomplete gets 201, or 422 AsyncRequired",
        verdict,
        &[&first.exchange],
    )?;

    let asynchronous = first.code() == 422 && first.error_code() == Some("AsyncRequired");
    let reply = if asynchronous {
        let second = live.send(&call.clone().accepts_incomplete(true)).await;
        let verdict = expect::status(&second, &[201, 202], Operation::Other);
        report.record(
            "bind.accepts-incomplete",
            "a bind with accepts_incomplete=true gets 201 or 202",
            verdict,
            &[&second.exchange],
        )?;
        second
    } else {
        first
    };

    match reply.code() {
        201 => {
            let verdict = binding_body(live, &reply, BodySchema::BindingResponse);
            report.record(
                "bind.body",
                "the bind response body is valid",
                verdict,
                &[&reply.exchange],
            )?;
            Ok(Some(asynchronous))
        }
        202 => {
            let mut verdicts = vec![expect::success_body(
                &reply,
                BodySchema::AsyncOperation,
                true,
            )];
            if reply
                .json
                .as_ref()
                .is_some_and(|body| body.get("credentials").is_some())
            {
                verdicts.push(Verdict::Fail("a 202 from bind carries credentials".into()));
            }
            report.record(
                "bind.body",
                "the bind response body is valid, without credentials in a 202",
                expect::combine(verdicts),
                &[&reply.exchange],
            )?;
            let operation = poll::operation_of(&reply);
            while_binding(live, binding, body, operation.as_deref(), report).await?;
            let target = Target::Binding(binding.clone());
            let result = poll::wait(
                &live.context.probe,
                &target,
                operation.as_deref(),
                live.deadline(),
                false,
            )
            .await;
            let done = record_poll(
                report,
                "bind.last-operation",
                "last_operation of an asynchronous bind ends in succeeded",
                &result,
            )?;
            Ok(done.then_some(true))
        }
        _ => {
            let reason = format!("the binding was not created ({})", reply.summary());
            report.record(
                "bind.lifecycle",
                "the rest of the binding checks",
                Verdict::Skip(reason),
                &[],
            )?;
            Ok(None)
        }
    }
}

/// Checks a binding body: the schema, the `requires` declarations,
/// non-empty endpoint ports, and the metadata timestamps.
fn binding_body(live: &LiveInstance<'_>, reply: &Reply, schema: BodySchema) -> Verdict {
    let mut verdicts = vec![expect::success_body(reply, schema, false)];
    let Some(body) = reply.json.as_ref() else {
        return expect::combine(verdicts);
    };
    for (field, declaration) in REQUIRED_DECLARATIONS {
        if body.get(field).is_some() && !live.plan.requires.iter().any(|value| value == declaration)
        {
            verdicts.push(Verdict::Fail(format!(
                "`{field}` returned, but the offering does not declare requires: [{declaration:?}]"
            )));
        }
    }
    if let Some(endpoints) = body.get("endpoints").and_then(Value::as_array) {
        for endpoint in endpoints {
            if endpoint
                .get("ports")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty)
            {
                verdicts.push(Verdict::Fail(
                    "an endpoint has an empty `ports` array".into(),
                ));
            }
        }
    }
    if body
        .get("credentials")
        .is_some_and(|credentials| !credentials.is_object())
    {
        verdicts.push(Verdict::Fail("`credentials` is not an object".into()));
    }
    verdicts.push(metadata_times(body));
    expect::combine(verdicts)
}

/// `expires_at` and `renew_before` use `yyyy-mm-ddThh:mm:ss.sZ` (ISO 8601
/// in UTC), and `renew_before` is not after `expires_at`.
fn metadata_times(body: &Value) -> Verdict {
    let text = |field: &str| {
        body.pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_str)
    };
    let mut problems = Vec::new();
    for field in ["expires_at", "renew_before"] {
        if let Some(value) = text(field) {
            if !is_utc_timestamp(value) {
                problems.push(format!(
                    "metadata.{field} {value:?} is not yyyy-mm-ddThh:mm:ss.sZ"
                ));
            }
        }
    }
    if let (Some(expires), Some(renew)) = (text("expires_at"), text("renew_before")) {
        // Timestamps of this one format in UTC sort as text, once the
        // fractions have the same length.
        if problems.is_empty() && normalise_fraction(renew) > normalise_fraction(expires) {
            problems.push("metadata.renew_before is after metadata.expires_at".into());
        }
    }
    Verdict::fail_unless_empty(problems)
}

fn is_utc_timestamp(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() < 20 || !text.ends_with('Z') {
        return false;
    }
    let digits = |range: std::ops::Range<usize>| bytes[range].iter().all(u8::is_ascii_digit);
    let fixed = digits(0..4)
        && bytes[4] == b'-'
        && digits(5..7)
        && bytes[7] == b'-'
        && digits(8..10)
        && bytes[10] == b'T'
        && digits(11..13)
        && bytes[13] == b':'
        && digits(14..16)
        && bytes[16] == b':'
        && digits(17..19);
    let rest = &text[19..text.len() - 1];
    let fraction_valid = rest.is_empty()
        || (rest.len() > 1
            && rest.starts_with('.')
            && rest[1..].bytes().all(|b| b.is_ascii_digit()));
    fixed && fraction_valid
}

fn normalise_fraction(text: &str) -> String {
    let seconds = &text[..19];
    let fraction = text[19..text.len() - 1].trim_start_matches('.');
    format!("{seconds}.{fraction:0<9}")
}

/// Checks that need a bind in progress: an identical repeat gets 202 with
/// the same operation, and fetching the binding gets 404.
async fn while_binding(
    live: &LiveInstance<'_>,
    binding: &BindingRef,
    body: &Value,
    operation: Option<&str>,
    report: &mut Report,
) -> CliResult<()> {
    let target = Target::Binding(binding.clone());
    let state = live
        .send(&poll::last_operation_call(&target, operation))
        .await;
    let in_progress = state
        .json
        .as_ref()
        .and_then(|body| body.get("state"))
        .and_then(Value::as_str)
        == Some("in progress");
    let behaviour_repeat = "an identical bind while it runs gets 202 with the same operation";
    let behaviour_fetch = "fetching a binding whose bind runs gets 404";
    if !in_progress {
        let reason = Verdict::Skip(format!(
            "the bind was no longer in progress ({})",
            state.summary()
        ));
        report.record(
            "bind.repeat-in-progress",
            behaviour_repeat,
            reason.clone(),
            &[],
        )?;
        return report.record("fetch-binding.in-progress", behaviour_fetch, reason, &[]);
    }
    let repeat = live
        .send(&Call::put(binding.path(), body.clone()).accepts_incomplete(true))
        .await;
    report.record(
        "bind.repeat-in-progress",
        behaviour_repeat,
        same_operation(&repeat, operation),
        &[&repeat.exchange],
    )?;
    if live.plan.bindings_retrievable {
        let fetch = live.send(&fetch_binding_call(binding)).await;
        let verdict = expect::status(&fetch, &[404], Operation::Other);
        report.record(
            "fetch-binding.in-progress",
            behaviour_fetch,
            verdict,
            &[&fetch.exchange],
        )
    } else {
        let reason = Verdict::Skip("the offering is not bindings_retrievable".into());
        report.record("fetch-binding.in-progress", behaviour_fetch, reason, &[])
    }
}

fn fetch_binding_call(binding: &BindingRef) -> Call {
    Call::get(binding.path())
        .query("service_id", &binding.instance.service_id)
        .query("plan_id", &binding.instance.plan_id)
}

async fn repeat_bind(
    live: &LiveInstance<'_>,
    binding: &BindingRef,
    body: &Value,
    asynchronous: bool,
    report: &mut Report,
) -> CliResult<()> {
    let call = Call::put(binding.path(), body.clone()).accepts_incomplete(asynchronous);
    let repeat = live.send(&call).await;
    let verdict = match repeat.code() {
        200 => binding_body(live, &repeat, BodySchema::BindingResponse),
        202 if asynchronous => Verdict::Pass,
        201 => Verdict::Fail(
            "201 means this request created the binding, but it already existed".into(),
        ),
        _ => Verdict::Warn(format!("expected 200, got {}", repeat.summary())),
    };
    report.record(
        "bind.repeat-identical",
        "an identical bind of an existing binding gets 200",
        verdict,
        &[&repeat.exchange],
    )?;
    settle(live, binding, &repeat, false).await;

    // The specification names "different parameters", so the bind
    // parameters change, with one more property.
    let mut conflicting = body.clone();
    let mut parameters = live
        .settings
        .bind_parameters
        .clone()
        .unwrap_or_else(|| json!({}));
    if let Some(object) = parameters.as_object_mut() {
        object.insert(
            "osb_check_conflict".into(),
            json!(Uuid::new_v4().to_string()),
        );
    }
    conflicting["parameters"] = parameters;
    let conflict = live
        .send(&Call::put(binding.path(), conflicting).accepts_incomplete(true))
        .await;
    let verdict = match conflict.code() {
        400 => Verdict::Warn(
            "400: the broker may have rejected the extra parameter before comparing the binding"
                .into(),
        ),
        _ => expect::status(&conflict, &[409], Operation::Other),
    };
    report.record(
        "bind.repeat-conflict",
        "a bind of an existing binding id with other parameters gets 409",
        verdict,
        &[&conflict.exchange],
    )?;
    settle(live, binding, &conflict, false).await;
    Ok(())
}

/// Waits for an operation a check started by mistake; its problems are not reported.
async fn settle(live: &LiveInstance<'_>, binding: &BindingRef, reply: &Reply, deleting: bool) {
    if reply.code() == 202 {
        let operation = poll::operation_of(reply);
        let target = Target::Binding(binding.clone());
        poll::wait(
            &live.context.probe,
            &target,
            operation.as_deref(),
            live.deadline(),
            deleting,
        )
        .await;
    }
}

async fn fetch_binding(
    live: &LiveInstance<'_>,
    binding: &BindingRef,
    report: &mut Report,
) -> CliResult<()> {
    let behaviour = "fetching a binding gets 200 with a valid body";
    if !live.plan.bindings_retrievable {
        let reason = Verdict::Skip("the offering is not bindings_retrievable".into());
        return report.record("fetch-binding.ok", behaviour, reason, &[]);
    }
    let reply = live.send(&fetch_binding_call(binding)).await;
    let verdict = match reply.code() {
        200 => binding_body(live, &reply, BodySchema::BindingResource),
        _ => Verdict::Fail(format!("expected 200, got {}", reply.summary())),
    };
    report.record("fetch-binding.ok", behaviour, verdict, &[&reply.exchange])?;

    let unknown = BindingRef {
        instance: binding.instance.clone(),
        binding_id: Uuid::new_v4().to_string(),
    };
    let reply = live.send(&fetch_binding_call(&unknown)).await;
    let verdict = expect::status(&reply, &[404], Operation::Other);
    report.record(
        "fetch-binding.unknown",
        "fetching an unknown binding gets 404",
        verdict,
        &[&reply.exchange],
    )
}

/// Binds with a body that is not JSON and with missing ids, each under a
/// new binding id.
async fn malformed_binds(live: &LiveInstance<'_>, report: &mut Report) -> CliResult<()> {
    let full = bind_body(live, &Uuid::new_v4().to_string());
    let without = |field: &str| {
        let mut body = full.clone();
        if let Some(object) = body.as_object_mut() {
            object.remove(field);
        }
        body
    };
    let cases = [
        (
            "bind.malformed-body",
            "a bind whose body is not JSON gets 400",
            None,
        ),
        (
            "bind.missing-service-id",
            "a bind without service_id gets 400",
            Some(without("service_id")),
        ),
        (
            "bind.missing-plan-id",
            "a bind without plan_id gets 400",
            Some(without("plan_id")),
        ),
    ];
    for (id, behaviour, body) in cases {
        let binding = BindingRef {
            instance: live.instance.clone(),
            binding_id: Uuid::new_v4().to_string(),
        };
        live.context.cleanup.add_binding(&binding);
        let call = match body {
            Some(body) => Call::put(binding.path(), body),
            None => Call::new(Method::PUT, binding.path()).text("{\"service_id\": "),
        };
        let reply = live.send(&call.accepts_incomplete(true)).await;
        let verdict = expect::status(&reply, &[400], Operation::Other);
        report.record(id, behaviour, verdict, &[&reply.exchange])?;
        settle(live, &binding, &reply, false).await;
        // Keep it for the cleanup when the broker may have created it.
        if !matches!(reply.code(), 0 | 200..=202) {
            live.context.cleanup.remove_binding(&binding.binding_id);
        }
    }
    Ok(())
}

/// Malformed unbinds, the unbind, a repeat while it runs and after it
/// ended, and a fetch of the deleted binding.
async fn unbind(
    live: &LiveInstance<'_>,
    binding: &BindingRef,
    report: &mut Report,
) -> CliResult<()> {
    let path = binding.path();
    let service_id = &live.plan.service_id;
    let plan_id = &live.plan.plan_id;

    for (id, behaviour, call) in [
        (
            "unbind.missing-service-id",
            "an unbind without service_id gets 400",
            Call::delete(path.clone()).query("plan_id", plan_id),
        ),
        (
            "unbind.missing-plan-id",
            "an unbind without plan_id gets 400",
            Call::delete(path.clone()).query("service_id", service_id),
        ),
    ] {
        let reply = live.send(&call.accepts_incomplete(true)).await;
        let verdict = expect::status(&reply, &[400], Operation::Other);
        report.record(id, behaviour, verdict, &[&reply.exchange])?;
        if matches!(reply.code(), 200 | 202) {
            settle(live, binding, &reply, true).await;
            let reason = Verdict::Skip("a malformed unbind already deleted the binding".into());
            return report.record("unbind.lifecycle", "unbind", reason, &[]);
        }
    }

    let unknown = BindingRef {
        instance: live.instance.clone(),
        binding_id: Uuid::new_v4().to_string(),
    };
    let reply = live
        .send(
            &Call::delete(unknown.path())
                .query("service_id", service_id)
                .query("plan_id", plan_id)
                .accepts_incomplete(true),
        )
        .await;
    let verdict = expect::status(&reply, &[410], Operation::Other);
    report.record(
        "unbind.unknown",
        "unbinding an unknown binding gets 410",
        verdict,
        &[&reply.exchange],
    )?;

    let call = Call::delete(path)
        .query("service_id", service_id)
        .query("plan_id", plan_id);
    let first = live.send(&call).await;
    let verdict = match first.code() {
        200 => expect::success_body(&first, BodySchema::Object, false),
        422 => expect::status_and_code(&first, 422, "AsyncRequired", Operation::Other),
        _ => Verdict::Fail(format!(
            "expected 200, or 422 AsyncRequired, got {}",
            first.summary()
        )),
    };
    report.record(
        "unbind.without-accepts-incomplete",
        "an unbind without accepts_incomplete gets 200, or 422 AsyncRequired",
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
            "unbind.accepts-incomplete",
            "an unbind with accepts_incomplete=true gets 200 or 202",
            verdict,
            &[&second.exchange],
        )?;
        if second.code() == 202 {
            let operation = poll::operation_of(&second);
            let repeat = live.send(&call).await;
            let verdict = match repeat.code() {
                202 => same_operation(&repeat, operation.as_deref()),
                410 | 200 => Verdict::Skip("the unbind had already ended".into()),
                _ => Verdict::Fail(format!("expected 202, got {}", repeat.summary())),
            };
            report.record(
                "unbind.repeat-in-progress",
                "an identical unbind while it runs gets 202 with the same operation",
                verdict,
                &[&repeat.exchange],
            )?;
            let target = Target::Binding(binding.clone());
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
                "unbind.last-operation",
                "last_operation of an asynchronous unbind ends in succeeded or 410",
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
    let verdict = expect::status(&again, &[410], Operation::Other);
    report.record(
        "unbind.gone",
        "unbinding a deleted binding gets 410",
        verdict,
        &[&again.exchange],
    )?;
    if again.code() == 410 {
        live.context.cleanup.remove_binding(&binding.binding_id);
    }
    if live.plan.bindings_retrievable {
        let fetch = live.send(&fetch_binding_call(binding)).await;
        let verdict = expect::status(&fetch, &[404], Operation::Other);
        report.record(
            "fetch-binding.deleted",
            "fetching a deleted binding gets 404",
            verdict,
            &[&fetch.exchange],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_specified_form() {
        assert!(is_utc_timestamp("2026-12-04T20:00:00.0Z"));
        assert!(is_utc_timestamp("2026-12-04T20:00:00Z"));
        assert!(!is_utc_timestamp("2026-12-04 20:00:00Z"));
        assert!(!is_utc_timestamp("2026-12-04T20:00:00+01:00"));
    }

    #[test]
    fn renew_after_expiry_rejected() {
        let body = json!({"metadata": {"expires_at": "2026-12-04T20:00:00.5Z", "renew_before": "2026-12-04T20:00:00.25Z"}});
        assert_eq!(metadata_times(&body), Verdict::Pass);
        let body = json!({"metadata": {"expires_at": "2026-12-04T20:00:00Z", "renew_before": "2026-12-04T21:00:00Z"}});
        assert!(matches!(metadata_times(&body), Verdict::Fail(_)));
    }
}
