//! SIGKILL during operations: after a restart on the same state file and
//! configuration, every interrupted operation ends, succeeded or failed, and
//! the resources can still be deleted.

mod support;

use std::time::{Duration, Instant};

use support::*;

const RESUMABLE_PLAN: &str = "c4a50000-0000-4000-8000-000000000001";
const NON_RESUMABLE_PLAN: &str = "c4a50000-0000-4000-8000-000000000002";
const SLOW_SYNC_PLAN: &str = "c4a50000-0000-4000-8000-000000000003";

const CRASH_SERVICES: &str = r#"
[[services]]
id = "6b0a6e8c-0000-4000-8000-000000000001"
name = "simulated-db"
description = "A simulated database"
bindable = true
instances_retrievable = true
bindings_retrievable = true

[[services.plans]]
id = "c4a50000-0000-4000-8000-000000000001"
name = "resumable"
description = "Slow asynchronous operations that resume after a restart"
maximum_polling_duration = 120
backend = { type = "simulated", execution = "async_only", delay_ms = 1500 }

[[services.plans]]
id = "c4a50000-0000-4000-8000-000000000002"
name = "non-resumable"
description = "Slow asynchronous operations that fail after a restart"
maximum_polling_duration = 120
backend = { type = "simulated", execution = "async_only", delay_ms = 1500, resumable = false }

[[services.plans]]
id = "c4a50000-0000-4000-8000-000000000003"
name = "slow-sync"
description = "Slow synchronous operations"
backend = { type = "simulated", delay_ms = 1500 }
"#;

/// How long to wait after a 202 before the kill, so the job has started.
const KILL_AFTER: Duration = Duration::from_millis(300);

/// Polls a last_operation path until it returns something other than
/// 200 `in progress`, for at most 30 seconds.
async fn poll_until_ended(broker: &TestBroker, path: &str) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = broker.get(path).await;
        if reply.status != 200 || reply.body["state"] != "in progress" {
            return reply;
        }
        assert!(
            Instant::now() < deadline,
            "GET {path} is stuck in progress 30 seconds after the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Provisions asynchronously and waits for success.
async fn provisioned(broker: &TestBroker, instance_id: &str, plan_id: &str) {
    let reply = broker.provision(instance_id, plan_id, true).await;
    assert_eq!(reply.status, 202, "provision: {}", reply.text);
    let state = broker
        .wait_instance_operation(instance_id, reply.operation().as_deref())
        .await;
    assert_eq!(state["state"], "succeeded", "provision: {state}");
}

/// Deletes an instance asynchronously and checks that it is gone.
async fn assert_deletable(broker: &TestBroker, instance_id: &str, plan_id: &str) {
    let resource = instance_path(instance_id, false);
    let reply = broker.delete(&delete_path(&resource, plan_id, true)).await;
    assert_eq!(
        reply.status, 202,
        "deprovision after the restart: {}",
        reply.text
    );
    let end = poll_until_ended(
        broker,
        &last_operation_path(&resource, reply.operation().as_deref()),
    )
    .await;
    assert!(
        end.status == 410 || (end.status == 200 && end.body["state"] == "succeeded"),
        "the deprovision after the restart must succeed, got {}: {}",
        end.status,
        end.text
    );
    let fetched = broker.get(&resource).await;
    assert_eq!(
        fetched.status, 404,
        "the instance is gone: {}",
        fetched.text
    );
}

#[tokio::test]
async fn killed_async_provision_resumes_after_restart() {
    let mut broker = TestBroker::start_services(CRASH_SERVICES);
    let instance_id = new_id();
    let reply = broker.provision(&instance_id, RESUMABLE_PLAN, true).await;
    assert_eq!(reply.status, 202, "provision: {}", reply.text);
    let operation = reply.operation().expect("a 202 carries an operation");
    tokio::time::sleep(KILL_AFTER).await;

    broker.kill();
    let broker = broker.restart();

    let path = last_operation_path(&instance_path(&instance_id, false), Some(&operation));
    let end = poll_until_ended(&broker, &path).await;
    assert_eq!(
        end.status, 200,
        "last_operation after the restart: {}",
        end.text
    );
    assert_eq!(
        end.body["state"], "succeeded",
        "a resumable provision resumes and succeeds: {}",
        end.text
    );
    let fetched = broker.get(&instance_path(&instance_id, false)).await;
    assert_eq!(
        fetched.status, 200,
        "the resumed instance is fetchable: {}",
        fetched.text
    );
    assert_deletable(&broker, &instance_id, RESUMABLE_PLAN).await;
}

#[tokio::test]
async fn killed_async_bind_resumes_after_restart() {
    let mut broker = TestBroker::start_services(CRASH_SERVICES);
    let instance_id = new_id();
    let binding_id = new_id();
    provisioned(&broker, &instance_id, RESUMABLE_PLAN).await;
    let reply = broker
        .put(
            &binding_path(&instance_id, &binding_id, true),
            &bind_body(SERVICE_ID, RESUMABLE_PLAN),
        )
        .await;
    assert_eq!(reply.status, 202, "bind: {}", reply.text);
    let operation = reply.operation().expect("a 202 carries an operation");
    tokio::time::sleep(KILL_AFTER).await;

    broker.kill();
    let broker = broker.restart();

    let binding = binding_path(&instance_id, &binding_id, false);
    let end = poll_until_ended(&broker, &last_operation_path(&binding, Some(&operation))).await;
    assert_eq!(
        end.status, 200,
        "binding last_operation after the restart: {}",
        end.text
    );
    assert_eq!(
        end.body["state"], "succeeded",
        "a resumable bind resumes and succeeds: {}",
        end.text
    );
    let fetched = broker.get(&binding).await;
    assert_eq!(
        fetched.status, 200,
        "the resumed binding is fetchable: {}",
        fetched.text
    );
    assert!(
        fetched.body["credentials"]["password"]
            .as_str()
            .is_some_and(|p| !p.is_empty()),
        "the resumed binding has credentials: {}",
        fetched.text
    );

    let unbind = broker
        .delete(&delete_path(&binding, RESUMABLE_PLAN, true))
        .await;
    assert_eq!(
        unbind.status, 202,
        "unbind after the restart: {}",
        unbind.text
    );
    let end = poll_until_ended(
        &broker,
        &last_operation_path(&binding, unbind.operation().as_deref()),
    )
    .await;
    assert!(
        end.status == 410 || (end.status == 200 && end.body["state"] == "succeeded"),
        "the unbind after the restart must succeed, got {}: {}",
        end.status,
        end.text
    );
    assert_deletable(&broker, &instance_id, RESUMABLE_PLAN).await;
}

#[tokio::test]
async fn killed_async_deprovision_finishes_after_restart() {
    let mut broker = TestBroker::start_services(CRASH_SERVICES);
    let instance_id = new_id();
    provisioned(&broker, &instance_id, RESUMABLE_PLAN).await;
    let resource = instance_path(&instance_id, false);
    let reply = broker
        .delete(&delete_path(&resource, RESUMABLE_PLAN, true))
        .await;
    assert_eq!(reply.status, 202, "deprovision: {}", reply.text);
    let operation = reply.operation().expect("a 202 carries an operation");
    tokio::time::sleep(KILL_AFTER).await;

    broker.kill();
    let broker = broker.restart();

    let end = poll_until_ended(&broker, &last_operation_path(&resource, Some(&operation))).await;
    assert_eq!(
        end.status, 410,
        "the resumed deprovision finishes and the instance is gone: {}",
        end.text
    );
    let fetched = broker.get(&resource).await;
    assert_eq!(
        fetched.status, 404,
        "the instance is gone: {}",
        fetched.text
    );
}

#[tokio::test]
async fn non_resumable_provision_fails_after_restart() {
    let mut broker = TestBroker::start_services(CRASH_SERVICES);
    let instance_id = new_id();
    let reply = broker
        .provision(&instance_id, NON_RESUMABLE_PLAN, true)
        .await;
    assert_eq!(reply.status, 202, "provision: {}", reply.text);
    let operation = reply.operation().expect("a 202 carries an operation");
    tokio::time::sleep(KILL_AFTER).await;

    broker.kill();
    let broker = broker.restart();

    let path = last_operation_path(&instance_path(&instance_id, false), Some(&operation));
    let end = poll_until_ended(&broker, &path).await;
    assert_eq!(
        end.status, 200,
        "last_operation after the restart: {}",
        end.text
    );
    assert_eq!(
        end.body["state"], "failed",
        "a non-resumable provision fails: {}",
        end.text
    );
    assert!(
        end.body["description"]
            .as_str()
            .is_some_and(|text| !text.is_empty()),
        "the failure has a description: {}",
        end.text
    );
    assert_deletable(&broker, &instance_id, NON_RESUMABLE_PLAN).await;
}

#[tokio::test]
async fn non_resumable_bind_fails_after_restart() {
    let mut broker = TestBroker::start_services(CRASH_SERVICES);
    let instance_id = new_id();
    let binding_id = new_id();
    provisioned(&broker, &instance_id, NON_RESUMABLE_PLAN).await;
    let reply = broker
        .put(
            &binding_path(&instance_id, &binding_id, true),
            &bind_body(SERVICE_ID, NON_RESUMABLE_PLAN),
        )
        .await;
    assert_eq!(reply.status, 202, "bind: {}", reply.text);
    let operation = reply.operation().expect("a 202 carries an operation");
    tokio::time::sleep(KILL_AFTER).await;

    broker.kill();
    let broker = broker.restart();

    let binding = binding_path(&instance_id, &binding_id, false);
    let end = poll_until_ended(&broker, &last_operation_path(&binding, Some(&operation))).await;
    assert_eq!(
        end.status, 200,
        "binding last_operation after the restart: {}",
        end.text
    );
    assert_eq!(
        end.body["state"], "failed",
        "a non-resumable bind fails: {}",
        end.text
    );
    assert!(
        end.body["description"]
            .as_str()
            .is_some_and(|text| !text.is_empty()),
        "the failure has a description: {}",
        end.text
    );
    let fetched = broker.get(&binding).await;
    assert_eq!(
        fetched.status, 404,
        "the failed binding is not fetchable: {}",
        fetched.text
    );
    assert_deletable(&broker, &instance_id, NON_RESUMABLE_PLAN).await;
}

#[tokio::test]
async fn killed_sync_provision_can_be_retried() {
    let mut broker = TestBroker::start_services(CRASH_SERVICES);
    let instance_id = new_id();
    let body = provision_body(SERVICE_ID, SLOW_SYNC_PLAN);
    let path = format!("{}{}", broker.base_url, instance_path(&instance_id, false));
    let client = broker.client.clone();
    let in_flight = tokio::spawn(async move {
        client
            .put(path)
            .header("X-Broker-API-Version", API_VERSION)
            .header("Authorization", basic_auth(USERNAME, PASSWORD))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    broker.kill();
    let outcome = in_flight.await.expect("the request task ends");
    assert!(
        outcome.is_err(),
        "the killed broker cannot respond to the request: {outcome:?}"
    );
    let broker = broker.restart();

    let state = poll_until_ended(
        &broker,
        &last_operation_path(&instance_path(&instance_id, false), None),
    )
    .await;
    assert!(
        state.status == 404 || (state.status == 200 && state.body["state"] == "failed"),
        "the interrupted provision is failed or unknown after the restart, got {}: {}",
        state.status,
        state.text
    );
    let retry = broker.provision(&instance_id, SLOW_SYNC_PLAN, false).await;
    assert_eq!(
        retry.status, 201,
        "an identical retry provisions the instance: {}",
        retry.text
    );
    let fetched = broker.get(&instance_path(&instance_id, false)).await;
    assert_eq!(
        fetched.status, 200,
        "the retried instance is fetchable: {}",
        fetched.text
    );
}
