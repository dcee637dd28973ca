//! Asynchronous operations: 202 and its `operation`, repeated requests while
//! an operation runs, `last_operation` with `Retry-After`, final states that
//! are kept, `maximum_polling_duration`, and 404 against 410 while polling.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

/// The longest `operation` value the specification allows.
const MAX_OPERATION_LENGTH: usize = 10_000;

fn assert_operation_token(reply: &Reply, context: &str) -> String {
    let operation = reply.operation().unwrap_or_default();
    assert!(
        !operation.is_empty(),
        "{context}: a 202 carries a non-empty operation: {}",
        reply.text
    );
    assert!(
        operation.len() <= MAX_OPERATION_LENGTH,
        "{context}: the operation has {} characters, more than {MAX_OPERATION_LENGTH}",
        operation.len()
    );
    operation
}

/// Polls a last_operation path until it returns something other than
/// 200 `in progress`, for at most 30 seconds, and returns that reply.
async fn poll_until_not_in_progress(broker: &TestBroker, path: &str) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = broker.get(path).await;
        if reply.status != 200 || reply.body["state"] != "in progress" {
            return reply;
        }
        assert!(
            Instant::now() < deadline,
            "GET {path} still in progress after 30 seconds"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn start_async_provision(broker: &TestBroker, instance_id: &str, plan_id: &str) -> String {
    let reply = broker.provision(instance_id, plan_id, true).await;
    assert_eq!(reply.status, 202, "asynchronous provision: {}", reply.text);
    assert_operation_token(&reply, "asynchronous provision")
}

// Provision

#[tokio::test]
async fn async_provision_returns_202_then_succeeds() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();

    let reply = broker.provision(&instance_id, PLAN_ASYNC, true).await;

    assert_eq!(reply.status, 202, "asynchronous provision: {}", reply.text);
    let operation = assert_operation_token(&reply, "asynchronous provision");
    let state = broker
        .wait_instance_operation(&instance_id, Some(&operation))
        .await;
    assert_eq!(state["state"], "succeeded", "final state: {state}");
    assert!(
        state.get("instance_usable").is_none(),
        "instance_usable only follows failed updates and deprovisions"
    );
    assert!(
        state.get("update_repeatable").is_none(),
        "update_repeatable only follows failed updates"
    );
    let fetched = broker.get(&instance_path(&instance_id, false)).await;
    assert_eq!(
        fetched.status, 200,
        "fetch right after success: {}",
        fetched.text
    );
    assert_eq!(fetched.body["plan_id"], PLAN_ASYNC, "fetched plan_id");
}

#[tokio::test]
async fn async_preferred_without_flag_runs_synchronously() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();

    let reply = broker.provision(&instance_id, PLAN_PREFERRED, false).await;

    assert_eq!(
        reply.status, 201,
        "without accepts_incomplete the broker must not return 202: {}",
        reply.text
    );
    let fetched = broker.get(&instance_path(&instance_id, false)).await;
    assert_eq!(
        fetched.status, 200,
        "the instance exists at once: {}",
        fetched.text
    );

    let update = broker
        .patch(
            &instance_path(&instance_id, false),
            &json!({"service_id": SERVICE_ID, "parameters": {"a": 1}}),
        )
        .await;
    assert_eq!(update.status, 200, "synchronous update: {}", update.text);
    let deleted = broker
        .delete(&delete_path(
            &instance_path(&instance_id, false),
            PLAN_PREFERRED,
            false,
        ))
        .await;
    assert_eq!(
        deleted.status, 200,
        "synchronous deprovision: {}",
        deleted.text
    );
}

#[tokio::test]
async fn synchronous_success_statuses_per_operation() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    let binding_id = new_id();
    let instance = format!(
        "{}?accepts_incomplete=false",
        instance_path(&instance_id, false)
    );
    let binding = format!(
        "{}?accepts_incomplete=false",
        binding_path(&instance_id, &binding_id, false)
    );
    let delete_query =
        format!("service_id={SERVICE_ID}&plan_id={PLAN_PREFERRED}&accepts_incomplete=false");

    let provision = broker
        .put(&instance, &provision_body(SERVICE_ID, PLAN_PREFERRED))
        .await;
    assert_eq!(
        provision.status, 201,
        "synchronous provision: {}",
        provision.text
    );
    let update = broker
        .patch(
            &instance,
            &json!({"service_id": SERVICE_ID, "parameters": {"a": 1}}),
        )
        .await;
    assert_eq!(update.status, 200, "synchronous update: {}", update.text);
    let bind = broker
        .put(&binding, &bind_body(SERVICE_ID, PLAN_PREFERRED))
        .await;
    assert_eq!(bind.status, 201, "synchronous bind: {}", bind.text);
    let unbind = broker
        .delete(&format!(
            "{}?{delete_query}",
            binding_path(&instance_id, &binding_id, false)
        ))
        .await;
    assert_eq!(unbind.status, 200, "synchronous unbind: {}", unbind.text);
    assert_eq!(unbind.body, json!({}), "synchronous unbind body");
    let deprovision = broker
        .delete(&format!(
            "{}?{delete_query}",
            instance_path(&instance_id, false)
        ))
        .await;
    assert_eq!(
        deprovision.status, 200,
        "synchronous deprovision: {}",
        deprovision.text
    );
    assert_eq!(deprovision.body, json!({}), "synchronous deprovision body");
}

#[tokio::test]
async fn async_preferred_with_flag_returns_202() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();

    let reply = broker.provision(&instance_id, PLAN_PREFERRED, true).await;

    assert_eq!(
        reply.status, 202,
        "with accepts_incomplete=true: {}",
        reply.text
    );
    assert_operation_token(&reply, "asynchronous provision");
}

#[tokio::test]
async fn repeated_provision_in_progress_returns_same_operation() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    let operation = start_async_provision(&broker, &instance_id, PLAN_ASYNC_SLOW).await;

    let repeat = broker.provision(&instance_id, PLAN_ASYNC_SLOW, true).await;

    assert_eq!(
        repeat.status, 202,
        "a repeat during provisioning must return 202: {}",
        repeat.text
    );
    assert_eq!(
        repeat.operation().as_deref(),
        Some(operation.as_str()),
        "the same operation"
    );
    let state = broker
        .wait_instance_operation(&instance_id, Some(&operation))
        .await;
    assert_eq!(state["state"], "succeeded", "final state: {state}");
}

#[tokio::test]
async fn different_provision_in_progress_returns_409() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    let operation = start_async_provision(&broker, &instance_id, PLAN_ASYNC_SLOW).await;

    let mut other = provision_body(SERVICE_ID, PLAN_ASYNC_SLOW);
    other["parameters"] = json!({"other": true});
    let reply = broker.provision_body(&instance_id, &other, true).await;

    reply.assert_osb_error(409, "a different provision while one runs");
    let state = broker
        .wait_instance_operation(&instance_id, Some(&operation))
        .await;
    assert_eq!(
        state["state"], "succeeded",
        "the first provision still succeeds: {state}"
    );
    let fetched = broker.get(&instance_path(&instance_id, false)).await;
    assert_eq!(
        fetched.body["parameters"],
        json!({}),
        "the first provision's parameters are kept"
    );
}

#[tokio::test]
async fn fetch_during_provisioning_returns_404() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    start_async_provision(&broker, &instance_id, PLAN_ASYNC_SLOW).await;

    let fetched = broker.get(&instance_path(&instance_id, false)).await;

    fetched.assert_osb_error(404, "fetch while provisioning");
}

#[tokio::test]
async fn deprovision_during_provisioning_returns_concurrency_error() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    let operation = start_async_provision(&broker, &instance_id, PLAN_ASYNC_SLOW).await;
    let delete = delete_path(&instance_path(&instance_id, false), PLAN_ASYNC_SLOW, true);

    let reply = broker.delete(&delete).await;

    reply.assert_osb_error(422, "deprovision while provisioning");
    assert_eq!(reply.error(), Some("ConcurrencyError"), "error code");
    let state = broker
        .wait_instance_operation(&instance_id, Some(&operation))
        .await;
    assert_eq!(
        state["state"], "succeeded",
        "the rejected delete leaves the provision running: {state}"
    );
    let reply = broker.delete(&delete).await;
    assert_eq!(
        reply.status, 202,
        "deprovision once provisioned: {}",
        reply.text
    );
}

#[tokio::test]
async fn last_operation_in_progress_sends_retry_after() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    let operation = start_async_provision(&broker, &instance_id, PLAN_ASYNC_SLOW).await;

    let reply = broker
        .get(&last_operation_path(
            &instance_path(&instance_id, false),
            Some(&operation),
        ))
        .await;

    assert_eq!(reply.status, 200, "last_operation: {}", reply.text);
    assert_eq!(reply.body["state"], "in progress", "state while running");
    assert_eq!(
        reply.header("retry-after").as_deref(),
        Some("1"),
        "Retry-After in seconds while running"
    );
    let done = broker
        .wait_instance_operation(&instance_id, Some(&operation))
        .await;
    assert_eq!(done["state"], "succeeded", "final state: {done}");
    let reply = broker
        .get(&last_operation_path(
            &instance_path(&instance_id, false),
            Some(&operation),
        ))
        .await;
    assert!(
        reply.header("retry-after").is_none(),
        "no Retry-After once the operation ended"
    );
}

#[tokio::test]
async fn final_operation_state_is_kept() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    let operation = start_async_provision(&broker, &instance_id, PLAN_ASYNC).await;
    let done = broker
        .wait_instance_operation(&instance_id, Some(&operation))
        .await;
    assert_eq!(done["state"], "succeeded", "final state: {done}");
    let resource = instance_path(&instance_id, false);

    for attempt in 0..3 {
        let with_token = broker
            .get(&last_operation_path(&resource, Some(&operation)))
            .await;
        assert_eq!(
            with_token.status, 200,
            "attempt {attempt} with the token: {}",
            with_token.text
        );
        assert_eq!(
            with_token.body["state"], "succeeded",
            "attempt {attempt} with the token"
        );
        let without_token = broker.get(&last_operation_path(&resource, None)).await;
        assert_eq!(
            without_token.body["state"], "succeeded",
            "attempt {attempt} without the token"
        );
        let with_hints = broker
            .get(&format!(
                "{}&service_id={SERVICE_ID}&plan_id={PLAN_ASYNC}",
                last_operation_path(&resource, Some(&operation))
            ))
            .await;
        assert_eq!(
            with_hints.body["state"], "succeeded",
            "attempt {attempt} with query hints"
        );
    }

    let broker = broker.restart();
    let after_restart = broker
        .get(&last_operation_path(&resource, Some(&operation)))
        .await;
    assert_eq!(
        after_restart.status, 200,
        "after a restart: {}",
        after_restart.text
    );
    assert_eq!(
        after_restart.body["state"], "succeeded",
        "the final state survives a restart"
    );
}

#[tokio::test]
async fn failed_async_provision_reports_failed() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    let operation = start_async_provision(&broker, &instance_id, PLAN_ASYNC_FAIL_PROVISION).await;

    let state = broker
        .wait_instance_operation(&instance_id, Some(&operation))
        .await;

    assert_eq!(state["state"], "failed", "final state: {state}");
    assert!(
        state["description"]
            .as_str()
            .is_some_and(|text| !text.is_empty()),
        "a failed operation has a non-empty description: {state}"
    );
    assert!(
        !state.to_string().contains("simulated failure"),
        "the backend's error text must not reach the client: {state}"
    );
    assert!(
        state.get("instance_usable").is_none(),
        "no instance_usable for a failed provision: {state}"
    );
    assert!(
        state.get("update_repeatable").is_none(),
        "no update_repeatable for a failed provision: {state}"
    );
    let fetched = broker.get(&instance_path(&instance_id, false)).await;
    assert_eq!(
        fetched.status, 404,
        "a failed provision leaves no fetchable instance"
    );
    let delete = broker
        .delete(&delete_path(
            &instance_path(&instance_id, false),
            PLAN_ASYNC_FAIL_PROVISION,
            true,
        ))
        .await;
    assert_eq!(
        delete.status, 202,
        "what a failed provision left can be deleted: {}",
        delete.text
    );
}

#[tokio::test]
async fn rejected_async_provision_polls_as_failed() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    let operation = start_async_provision(&broker, &instance_id, PLAN_ASYNC_REJECT_PROVISION).await;
    let path = last_operation_path(&instance_path(&instance_id, false), Some(&operation));

    let end = poll_until_not_in_progress(&broker, &path).await;

    assert_eq!(
        end.status, 200,
        "polling a provision that the backend rejected must return 200 with state failed, not {}: {}",
        end.status, end.text
    );
    assert_eq!(end.body["state"], "failed", "final state: {}", end.text);
    assert!(
        end.body["description"]
            .as_str()
            .is_some_and(|text| !text.is_empty()),
        "the failure has a description: {}",
        end.text
    );
}

#[tokio::test]
async fn rejected_async_update_reports_usable_flags() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    broker
        .provision_ready(&instance_id, PLAN_ASYNC_REJECT_UPDATE)
        .await;

    let reply = broker
        .patch(
            &instance_path(&instance_id, true),
            &json!({"service_id": SERVICE_ID, "parameters": {"size": 2}}),
        )
        .await;
    assert_eq!(reply.status, 202, "asynchronous update: {}", reply.text);
    let state = broker
        .wait_instance_operation(&instance_id, reply.operation().as_deref())
        .await;

    assert_eq!(state["state"], "failed", "final state: {state}");
    assert!(
        state["instance_usable"].is_boolean(),
        "a failed update reports instance_usable: {state}"
    );
    assert!(
        state["update_repeatable"].is_boolean(),
        "a failed update reports update_repeatable: {state}"
    );
    let fetched = broker.get(&instance_path(&instance_id, false)).await;
    assert_eq!(
        fetched.body["parameters"],
        json!({}),
        "a rejected update changes nothing"
    );
}

#[tokio::test]
async fn maximum_polling_duration_fails_operation() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    let started = Instant::now();
    let operation = start_async_provision(&broker, &instance_id, PLAN_TOO_SLOW).await;

    let state = broker
        .wait_instance_operation(&instance_id, Some(&operation))
        .await;

    assert_eq!(
        state["state"], "failed",
        "an operation past maximum_polling_duration fails: {state}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(2800),
        "the operation must fail soon after its 1 s maximum, not when the 3 s job ends: {:?}",
        started.elapsed()
    );
    assert!(
        state["description"]
            .as_str()
            .unwrap_or("")
            .contains("maximum_polling_duration"),
        "the description names the limit: {state}"
    );
    let job_end = started + Duration::from_millis(3500);
    tokio::time::sleep(job_end.saturating_duration_since(Instant::now())).await;
    let later = broker
        .wait_instance_operation(&instance_id, Some(&operation))
        .await;
    assert_eq!(
        later["state"], "failed",
        "the late end of the job must not revive the operation: {later}"
    );
    let fetched = broker.get(&instance_path(&instance_id, false)).await;
    assert_eq!(
        fetched.status, 404,
        "the expired provision leaves no instance: {}",
        fetched.text
    );
}

// Update

#[tokio::test]
async fn async_update_repeats_return_same_operation() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    broker.provision_ready(&instance_id, PLAN_ASYNC_SLOW).await;
    let update = json!({"service_id": SERVICE_ID, "parameters": {"size": 2}});
    let path = instance_path(&instance_id, true);

    let first = broker.patch(&path, &update).await;
    assert_eq!(first.status, 202, "asynchronous update: {}", first.text);
    let operation = assert_operation_token(&first, "asynchronous update");
    let repeat = broker.patch(&path, &update).await;

    assert_eq!(
        repeat.status, 202,
        "a repeated update while it runs: {}",
        repeat.text
    );
    assert_eq!(
        repeat.operation().as_deref(),
        Some(operation.as_str()),
        "the same operation"
    );
    let different = broker
        .patch(
            &path,
            &json!({"service_id": SERVICE_ID, "parameters": {"size": 3}}),
        )
        .await;
    different.assert_osb_error(422, "a different update while one runs");
    assert_eq!(different.error(), Some("ConcurrencyError"), "error code");
    let state = broker
        .wait_instance_operation(&instance_id, Some(&operation))
        .await;
    assert_eq!(state["state"], "succeeded", "final state: {state}");
    let fetched = broker.get(&instance_path(&instance_id, false)).await;
    assert_eq!(
        fetched.body["parameters"],
        json!({"size": 2}),
        "the first update is applied"
    );
}

#[tokio::test]
async fn fetch_during_update_returns_concurrency_error() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    broker.provision_ready(&instance_id, PLAN_ASYNC_SLOW).await;
    let first = broker
        .patch(
            &instance_path(&instance_id, true),
            &json!({"service_id": SERVICE_ID, "parameters": {"size": 2}}),
        )
        .await;
    assert_eq!(first.status, 202, "asynchronous update: {}", first.text);

    let fetched = broker.get(&instance_path(&instance_id, false)).await;

    fetched.assert_osb_error(422, "fetch while updating");
    assert_eq!(fetched.error(), Some("ConcurrencyError"), "error code");
}

#[tokio::test]
async fn operations_during_update_return_concurrency_error() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    broker.provision_ready(&instance_id, PLAN_ASYNC_SLOW).await;
    let first = broker
        .patch(
            &instance_path(&instance_id, true),
            &json!({"service_id": SERVICE_ID, "parameters": {"size": 2}}),
        )
        .await;
    assert_eq!(first.status, 202, "asynchronous update: {}", first.text);

    let delete = broker
        .delete(&delete_path(
            &instance_path(&instance_id, false),
            PLAN_ASYNC_SLOW,
            true,
        ))
        .await;
    delete.assert_osb_error(422, "deprovision while updating");
    assert_eq!(
        delete.error(),
        Some("ConcurrencyError"),
        "deprovision error code"
    );

    let binding_id = new_id();
    let bind = broker
        .put(
            &binding_path(&instance_id, &binding_id, true),
            &bind_body(SERVICE_ID, PLAN_ASYNC_SLOW),
        )
        .await;
    bind.assert_osb_error(422, "bind while updating");
    assert_eq!(bind.error(), Some("ConcurrencyError"), "bind error code");

    let state = broker
        .wait_instance_operation(&instance_id, first.operation().as_deref())
        .await;
    assert_eq!(
        state["state"], "succeeded",
        "the update still succeeds: {state}"
    );
    let binding = broker
        .get(&binding_path(&instance_id, &binding_id, false))
        .await;
    assert_eq!(binding.status, 404, "the rejected bind created nothing");
}

#[tokio::test]
async fn failed_async_update_reports_usable_flags() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    broker
        .provision_ready(&instance_id, PLAN_ASYNC_FAIL_LATER)
        .await;

    let reply = broker
        .patch(
            &instance_path(&instance_id, true),
            &json!({"service_id": SERVICE_ID, "parameters": {"size": 2}}),
        )
        .await;
    assert_eq!(reply.status, 202, "asynchronous update: {}", reply.text);
    let state = broker
        .wait_instance_operation(&instance_id, reply.operation().as_deref())
        .await;

    assert_eq!(state["state"], "failed", "final state: {state}");
    assert!(
        state["instance_usable"].is_boolean(),
        "a failed update reports instance_usable: {state}"
    );
    assert!(
        state["update_repeatable"].is_boolean(),
        "a failed update reports update_repeatable: {state}"
    );
    assert!(
        !state.to_string().contains("simulated failure"),
        "the backend's error text must not reach the client: {state}"
    );
    let fetched = broker.get(&instance_path(&instance_id, false)).await;
    assert_eq!(
        fetched.status, 200,
        "fetch after the failed update: {}",
        fetched.text
    );
    assert_eq!(
        fetched.body["parameters"],
        json!({}),
        "a failed update changes nothing"
    );
}

// Deprovision

#[tokio::test]
async fn async_deprovision_polls_to_410() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    broker.provision_ready(&instance_id, PLAN_ASYNC_SLOW).await;
    let delete = delete_path(&instance_path(&instance_id, false), PLAN_ASYNC_SLOW, true);

    let first = broker.delete(&delete).await;
    assert_eq!(
        first.status, 202,
        "asynchronous deprovision: {}",
        first.text
    );
    let operation = assert_operation_token(&first, "asynchronous deprovision");
    let repeat = broker.delete(&delete).await;

    assert_eq!(
        repeat.status, 202,
        "a repeated delete while it runs: {}",
        repeat.text
    );
    assert_eq!(
        repeat.operation().as_deref(),
        Some(operation.as_str()),
        "the same operation"
    );
    let path = last_operation_path(&instance_path(&instance_id, false), Some(&operation));
    let end = poll_until_not_in_progress(&broker, &path).await;
    end.assert_osb_error(410, "last_operation once the asynchronous delete finished");
    let fetched = broker.get(&instance_path(&instance_id, false)).await;
    assert_eq!(fetched.status, 404, "the instance is gone");
    let again = broker.delete(&delete).await;
    again.assert_osb_error(410, "delete after the asynchronous delete");
}

#[tokio::test]
async fn sync_deprovision_last_operation_returns_404() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    broker.provision_ready(&instance_id, PLAN_PREFERRED).await;
    let deleted = broker
        .delete(&delete_path(
            &instance_path(&instance_id, false),
            PLAN_PREFERRED,
            false,
        ))
        .await;
    assert_eq!(
        deleted.status, 200,
        "synchronous deprovision: {}",
        deleted.text
    );

    let reply = broker
        .get(&last_operation_path(
            &instance_path(&instance_id, false),
            None,
        ))
        .await;

    reply.assert_osb_error(404, "last_operation of an instance deleted synchronously");
}

#[tokio::test]
async fn failed_async_deprovision_reports_usable() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    broker
        .provision_ready(&instance_id, PLAN_ASYNC_FAIL_LATER)
        .await;

    let reply = broker
        .delete(&delete_path(
            &instance_path(&instance_id, false),
            PLAN_ASYNC_FAIL_LATER,
            true,
        ))
        .await;
    assert_eq!(
        reply.status, 202,
        "asynchronous deprovision: {}",
        reply.text
    );
    let state = broker
        .wait_instance_operation(&instance_id, reply.operation().as_deref())
        .await;

    assert_eq!(state["state"], "failed", "final state: {state}");
    assert!(
        state["instance_usable"].is_boolean(),
        "a failed deprovision reports instance_usable: {state}"
    );
    assert!(
        state.get("update_repeatable").is_none(),
        "update_repeatable only follows updates: {state}"
    );
    let fetched = broker.get(&instance_path(&instance_id, false)).await;
    assert_eq!(
        fetched.status, 200,
        "the instance survives the failed deprovision: {}",
        fetched.text
    );
}

#[tokio::test]
async fn last_operation_unknown_instance_returns_404() {
    let broker = TestBroker::start_standard();

    let reply = broker
        .get(&last_operation_path(&instance_path(&new_id(), false), None))
        .await;
    reply.assert_osb_error(404, "last_operation of an unknown instance");
    let with_token = broker
        .get(&last_operation_path(
            &instance_path(&new_id(), false),
            Some("no-such-operation"),
        ))
        .await;
    with_token.assert_osb_error(404, "last_operation of an unknown instance with a token");
}

#[tokio::test]
async fn last_operation_foreign_token_is_rejected() {
    let broker = TestBroker::start_standard();
    let first = new_id();
    let second = new_id();
    let first_operation = start_async_provision(&broker, &first, PLAN_ASYNC).await;
    start_async_provision(&broker, &second, PLAN_ASYNC).await;

    let reply = broker
        .get(&last_operation_path(
            &instance_path(&second, false),
            Some(&first_operation),
        ))
        .await;

    assert!(
        reply.status == 400 || reply.status == 404,
        "another instance's operation token returns 400 or 404, got {}: {}",
        reply.status,
        reply.text
    );
    assert_osb_error_body(&reply, "another instance's operation token");
}

#[tokio::test]
async fn last_operation_malformed_query_returns_400() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    let operation = start_async_provision(&broker, &instance_id, PLAN_ASYNC).await;
    let resource = instance_path(&instance_id, false);

    for query in [
        "operation=",
        "service_id=",
        "plan_id=",
        &format!("operation={operation}&plan_id="),
    ] {
        let reply = broker
            .get(&format!("{resource}/last_operation?{query}"))
            .await;
        reply.assert_osb_error(400, &format!("last_operation?{query}"));
    }
}

// Bindings

async fn start_async_bind(
    broker: &TestBroker,
    instance_id: &str,
    binding_id: &str,
    plan_id: &str,
) -> String {
    let reply = broker
        .put(
            &binding_path(instance_id, binding_id, true),
            &bind_body(SERVICE_ID, plan_id),
        )
        .await;
    assert_eq!(reply.status, 202, "asynchronous bind: {}", reply.text);
    assert!(
        reply.body.get("credentials").is_none(),
        "a 202 must not carry credentials: {}",
        reply.text
    );
    assert_operation_token(&reply, "asynchronous bind")
}

#[tokio::test]
async fn async_bind_returns_202_then_credentials() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    let binding_id = new_id();
    broker.provision_ready(&instance_id, PLAN_ASYNC_SLOW).await;

    let operation = start_async_bind(&broker, &instance_id, &binding_id, PLAN_ASYNC_SLOW).await;

    let repeat = broker
        .put(
            &binding_path(&instance_id, &binding_id, true),
            &bind_body(SERVICE_ID, PLAN_ASYNC_SLOW),
        )
        .await;
    assert_eq!(
        repeat.status, 202,
        "a repeated bind while it runs: {}",
        repeat.text
    );
    assert_eq!(
        repeat.operation().as_deref(),
        Some(operation.as_str()),
        "the same operation"
    );
    assert!(
        repeat.body.get("credentials").is_none(),
        "the repeated 202 carries no credentials"
    );
    let during = broker
        .get(&binding_path(&instance_id, &binding_id, false))
        .await;
    during.assert_osb_error(404, "fetch while binding");
    let polled = broker
        .get(&last_operation_path(
            &binding_path(&instance_id, &binding_id, false),
            Some(&operation),
        ))
        .await;
    assert_eq!(
        polled.status, 200,
        "binding last_operation: {}",
        polled.text
    );
    assert_eq!(polled.body["state"], "in progress", "state while binding");
    assert_eq!(
        polled.header("retry-after").as_deref(),
        Some("1"),
        "Retry-After while binding"
    );

    let state = broker
        .wait_binding_operation(&instance_id, &binding_id, Some(&operation))
        .await;
    assert_eq!(state["state"], "succeeded", "final state: {state}");
    let fetched = broker
        .get(&binding_path(&instance_id, &binding_id, false))
        .await;
    assert_eq!(
        fetched.status, 200,
        "fetch right after success: {}",
        fetched.text
    );
    assert!(
        fetched.body["credentials"]["password"]
            .as_str()
            .is_some_and(|p| !p.is_empty()),
        "the fetch after an asynchronous bind returns the credentials: {}",
        fetched.text
    );
}

#[tokio::test]
async fn unbind_during_bind_returns_concurrency_error() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    let binding_id = new_id();
    broker.provision_ready(&instance_id, PLAN_ASYNC_SLOW).await;
    let operation = start_async_bind(&broker, &instance_id, &binding_id, PLAN_ASYNC_SLOW).await;
    let unbind = delete_path(
        &binding_path(&instance_id, &binding_id, false),
        PLAN_ASYNC_SLOW,
        true,
    );

    let reply = broker.delete(&unbind).await;

    reply.assert_osb_error(422, "unbind while binding");
    assert_eq!(reply.error(), Some("ConcurrencyError"), "error code");
    let state = broker
        .wait_binding_operation(&instance_id, &binding_id, Some(&operation))
        .await;
    assert_eq!(
        state["state"], "succeeded",
        "the bind still succeeds: {state}"
    );
    let reply = broker.delete(&unbind).await;
    assert_eq!(reply.status, 202, "unbind once bound: {}", reply.text);
}

#[tokio::test]
async fn async_unbind_polls_to_410() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    let binding_id = new_id();
    broker.provision_ready(&instance_id, PLAN_ASYNC_SLOW).await;
    let operation = start_async_bind(&broker, &instance_id, &binding_id, PLAN_ASYNC_SLOW).await;
    let state = broker
        .wait_binding_operation(&instance_id, &binding_id, Some(&operation))
        .await;
    assert_eq!(state["state"], "succeeded", "bind: {state}");
    let unbind = delete_path(
        &binding_path(&instance_id, &binding_id, false),
        PLAN_ASYNC_SLOW,
        true,
    );

    let first = broker.delete(&unbind).await;
    assert_eq!(first.status, 202, "asynchronous unbind: {}", first.text);
    let operation = assert_operation_token(&first, "asynchronous unbind");
    let repeat = broker.delete(&unbind).await;

    assert_eq!(
        repeat.status, 202,
        "a repeated unbind while it runs: {}",
        repeat.text
    );
    assert_eq!(
        repeat.operation().as_deref(),
        Some(operation.as_str()),
        "the same operation"
    );
    let path = last_operation_path(
        &binding_path(&instance_id, &binding_id, false),
        Some(&operation),
    );
    let end = poll_until_not_in_progress(&broker, &path).await;
    end.assert_osb_error(
        410,
        "binding last_operation once the asynchronous unbind finished",
    );
    let again = broker.delete(&unbind).await;
    again.assert_osb_error(410, "unbind after the asynchronous unbind");
}

#[tokio::test]
async fn binding_last_operation_unknown_returns_404() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    broker.provision_ready(&instance_id, PLAN_SYNC).await;
    let binding_id = new_id();
    broker
        .bind_ready(&instance_id, &binding_id, PLAN_SYNC)
        .await;
    let deleted = broker
        .delete(&delete_path(
            &binding_path(&instance_id, &binding_id, false),
            PLAN_SYNC,
            false,
        ))
        .await;
    assert_eq!(deleted.status, 200, "synchronous unbind: {}", deleted.text);

    let unknown = broker
        .get(&last_operation_path(
            &binding_path(&instance_id, &new_id(), false),
            None,
        ))
        .await;
    unknown.assert_osb_error(404, "last_operation of an unknown binding");
    let synchronously_deleted = broker
        .get(&last_operation_path(
            &binding_path(&instance_id, &binding_id, false),
            None,
        ))
        .await;
    synchronously_deleted
        .assert_osb_error(404, "last_operation of a binding deleted synchronously");
    let malformed = broker
        .get(&format!(
            "{}/last_operation?operation=",
            binding_path(&instance_id, &binding_id, false)
        ))
        .await;
    malformed.assert_osb_error(400, "binding last_operation with an empty operation");
}

#[tokio::test]
async fn failed_async_bind_reports_failed() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    let binding_id = new_id();
    broker
        .provision_ready(&instance_id, PLAN_ASYNC_FAIL_LATER)
        .await;
    let operation =
        start_async_bind(&broker, &instance_id, &binding_id, PLAN_ASYNC_FAIL_LATER).await;

    let state = broker
        .wait_binding_operation(&instance_id, &binding_id, Some(&operation))
        .await;

    assert_eq!(state["state"], "failed", "final state: {state}");
    assert!(
        state["description"]
            .as_str()
            .is_some_and(|text| !text.is_empty()),
        "a failed bind has a description: {state}"
    );
    assert!(
        state.get("instance_usable").is_none(),
        "no instance_usable for a binding: {state}"
    );
    assert!(
        state.get("update_repeatable").is_none(),
        "no update_repeatable for a binding: {state}"
    );
    let fetched = broker
        .get(&binding_path(&instance_id, &binding_id, false))
        .await;
    assert_eq!(
        fetched.status, 404,
        "a failed bind leaves no fetchable binding"
    );
}

#[tokio::test]
async fn async_bind_without_app_is_reported() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    let binding_id = new_id();
    broker
        .provision_ready(&instance_id, PLAN_ASYNC_REQUIRES_APP)
        .await;
    let body = json!({"service_id": SERVICE_ID, "plan_id": PLAN_ASYNC_REQUIRES_APP});

    let reply = broker
        .put(&binding_path(&instance_id, &binding_id, true), &body)
        .await;

    if reply.status == 422 {
        assert_eq!(
            reply.error(),
            Some("RequiresApp"),
            "a 422 names RequiresApp: {}",
            reply.text
        );
        return;
    }
    assert_eq!(
        reply.status, 202,
        "a bind without app_guid gets 422 RequiresApp or 202: {}",
        reply.text
    );
    let path = last_operation_path(
        &binding_path(&instance_id, &binding_id, false),
        reply.operation().as_deref(),
    );
    let end = poll_until_not_in_progress(&broker, &path).await;
    assert_eq!(
        end.status, 200,
        "polling a bind that the backend rejected must return 200 with state failed, not {}: {}",
        end.status, end.text
    );
    assert_eq!(end.body["state"], "failed", "final state: {}", end.text);
    assert!(
        end.body["description"]
            .as_str()
            .unwrap_or("")
            .contains("app_guid"),
        "the description names the missing app_guid: {}",
        end.text
    );
}

#[tokio::test]
async fn binding_last_operation_without_token_reports_latest() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    let binding_id = new_id();
    broker.provision_ready(&instance_id, PLAN_ASYNC).await;
    start_async_bind(&broker, &instance_id, &binding_id, PLAN_ASYNC).await;

    let state: Value = broker
        .wait_binding_operation(&instance_id, &binding_id, None)
        .await;

    assert_eq!(
        state["state"], "succeeded",
        "the binding's only operation: {state}"
    );
}
