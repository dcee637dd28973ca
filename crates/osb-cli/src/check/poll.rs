//! Polling `last_operation` until an asynchronous operation ends, noting
//! every response that breaks the rules of the endpoint on the way.

use std::time::Duration;

use serde_json::Value;

use super::cleanup::{BindingRef, InstanceRef};
use super::http::{Call, Exchange, Probe, Reply};
use super::schema::{validate, BodySchema};
use crate::client::Deadline;

/// First wait between two polls; it grows to `MAX_INTERVAL`.
const FIRST_INTERVAL: Duration = Duration::from_millis(250);
const MAX_INTERVAL: Duration = Duration::from_secs(2);

/// Maximum wait honoured from a Retry-After header, so a run stays bounded.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// Invalid responses in a row after which polling stops.
const MAX_INVALID_IN_A_ROW: usize = 3;

/// Maximum operation length for provision, deprovision, bind and unbind.
pub const MAX_OPERATION_CHARS: usize = 10_000;

/// The resource whose last operation is polled.
#[derive(Debug, Clone)]
pub enum Target {
    Instance(InstanceRef),
    Binding(BindingRef),
}

impl Target {
    fn path(&self) -> Vec<String> {
        let mut path = match self {
            Target::Instance(instance) => instance.path(),
            Target::Binding(binding) => binding.path(),
        };
        path.push("last_operation".into());
        path
    }

    fn instance(&self) -> &InstanceRef {
        match self {
            Target::Instance(instance) => instance,
            Target::Binding(binding) => &binding.instance,
        }
    }
}

/// The end state of polling and the problems seen.
#[derive(Debug, Clone, Default)]
pub struct PollResult {
    /// `succeeded`, `failed`, or `gone` for a 410 while deleting; `None`
    /// when polling stopped without a final state.
    pub state: Option<String>,
    /// The rules the responses broke.
    pub problems: Vec<String>,
    /// The exchanges behind the problems, and the last exchange.
    pub exchanges: Vec<Exchange>,
}

/// Reads `operation` from a 202 body.
pub fn operation_of(reply: &Reply) -> Option<String> {
    reply
        .json
        .as_ref()?
        .get("operation")?
        .as_str()
        .map(str::to_owned)
}

/// Builds the last_operation request with the `service_id`, `plan_id` and
/// `operation` query parameters.
pub fn last_operation_call(target: &Target, operation: Option<&str>) -> Call {
    let instance = target.instance();
    let mut call = Call::get(target.path())
        .query("service_id", &instance.service_id)
        .query("plan_id", &instance.plan_id);
    if let Some(operation) = operation {
        call = call.query("operation", operation);
    }
    call
}

/// Polls until a final state, the deadline, or `MAX_INVALID_IN_A_ROW`
/// invalid responses. A 410 ends polling as `gone` when `deleting` is set,
/// and is an invalid response otherwise.
pub async fn wait(
    probe: &Probe,
    target: &Target,
    operation: Option<&str>,
    deadline: Deadline,
    deleting: bool,
) -> PollResult {
    let call = last_operation_call(target, operation);
    let mut result = PollResult::default();
    let mut interval = FIRST_INTERVAL;
    let mut invalid_in_a_row = 0;

    loop {
        let reply = probe.send(&call).await;
        let mut wait = interval;
        match reply.code() {
            200 => {
                let problems =
                    last_operation_problems(&reply, matches!(target, Target::Instance(_)));
                if problems.is_empty() {
                    invalid_in_a_row = 0;
                } else {
                    invalid_in_a_row += 1;
                    note(&mut result, problems, &reply);
                }
                let state = reply
                    .json
                    .as_ref()
                    .and_then(|body| body.get("state"))
                    .and_then(Value::as_str);
                if let Some(state @ ("succeeded" | "failed")) = state {
                    result.state = Some(state.to_owned());
                    result.exchanges.push(reply.exchange.clone());
                    return result;
                }
                if let Some(retry_after) = retry_after(&reply) {
                    wait = retry_after;
                }
            }
            410 if deleting => {
                result.state = Some("gone".to_owned());
                return result;
            }
            410 => {
                invalid_in_a_row += 1;
                let problem = "410 Gone while polling an operation that is not a delete".to_owned();
                note(&mut result, vec![problem], &reply);
            }
            _ => {
                invalid_in_a_row += 1;
                let problem = format!("last_operation returned {}", reply.summary());
                note(&mut result, vec![problem], &reply);
            }
        }
        if invalid_in_a_row >= MAX_INVALID_IN_A_ROW {
            result.problems.push(format!(
                "polling stopped after {MAX_INVALID_IN_A_ROW} invalid responses in a row"
            ));
            return result;
        }
        if deadline.remaining() <= wait {
            result
                .problems
                .push("the operation did not end before the timeout".to_owned());
            result.exchanges.push(reply.exchange);
            return result;
        }
        tokio::time::sleep(wait).await;
        interval = (interval * 3 / 2).min(MAX_INTERVAL);
    }
}

fn note(result: &mut PollResult, problems: Vec<String>, reply: &Reply) {
    for problem in problems {
        if !result.problems.contains(&problem) {
            result.problems.push(problem);
        }
    }
    if result.exchanges.len() < 3 {
        result.exchanges.push(reply.exchange.clone());
    }
}

/// Checks a 200 from last_operation: the OpenAPI schema, a non-empty
/// description, and `instance_usable` and `update_repeatable` only where
/// they are defined.
pub fn last_operation_problems(reply: &Reply, instance: bool) -> Vec<String> {
    let Some(body) = reply.json.as_ref().filter(|body| body.is_object()) else {
        return vec!["the last_operation body is not a JSON object".to_owned()];
    };
    let mut problems = validate(BodySchema::LastOperation, body);
    if body.get("description").and_then(Value::as_str) == Some("") {
        problems.push("`description` is empty".to_owned());
    }
    if instance {
        let failed = body.get("state").and_then(Value::as_str) == Some("failed");
        for field in ["instance_usable", "update_repeatable"] {
            if !failed && body.get(field).is_some() {
                problems.push(format!(
                    "`{field}` in a last_operation whose state is not failed"
                ));
            }
        }
    }
    problems
}

/// Reads Retry-After in seconds, capped at `MAX_RETRY_AFTER`. An HTTP
/// date is ignored and the usual interval applies.
fn retry_after(reply: &Reply) -> Option<Duration> {
    let text = reply
        .headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    let seconds: u64 = text.trim().parse().ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}
