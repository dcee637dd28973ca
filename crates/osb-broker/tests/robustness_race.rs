//! Concurrent identical and conflicting provisions and binds on one id:
//! exactly one resource results, and every response has a status the
//! specification allows.

mod support;

use std::sync::Arc;

use serde_json::{json, Value};
use support::*;

const SYNC_PLAN: &str = "a7ce0000-0000-4000-8000-000000000001";
const ASYNC_PLAN: &str = "a7ce0000-0000-4000-8000-000000000002";

const RACE_SERVICES: &str = r#"
[[services]]
id = "6b0a6e8c-0000-4000-8000-000000000001"
name = "simulated-db"
description = "A simulated database"
bindable = true
instances_retrievable = true
bindings_retrievable = true

[[services.plans]]
id = "a7ce0000-0000-4000-8000-000000000001"
name = "sync"
description = "Synchronous, slow enough for requests to overlap"
backend = { type = "simulated", delay_ms = 300 }

[[services.plans]]
id = "a7ce0000-0000-4000-8000-000000000002"
name = "async"
description = "Asynchronous, slow enough for requests to overlap"
maximum_polling_duration = 60
backend = { type = "simulated", execution = "async_only", delay_ms = 500 }
"#;

/// How many requests race for one id.
const RACERS: usize = 50;

/// Sends `bodies` concurrently as PUTs to `path` and returns the replies in order.
async fn race(broker: &Arc<TestBroker>, path: &str, bodies: Vec<Value>) -> Vec<Reply> {
    let mut tasks = Vec::new();
    for body in bodies {
        let broker = broker.clone();
        let path = path.to_owned();
        tasks.push(tokio::spawn(async move { broker.put(&path, &body).await }));
    }
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.expect("a racing request panicked"));
    }
    replies
}

/// Checks that every reply has a status the specification allows for a PUT,
/// and that every 422 is a ConcurrencyError.
fn assert_spec_statuses(replies: &[Reply], context: &str) {
    for (index, reply) in replies.iter().enumerate() {
        assert!(
            [200, 201, 202, 409, 422].contains(&reply.status),
            "{context}: request {index} got status {}: {}",
            reply.status,
            reply.text
        );
        if reply.status >= 400 {
            assert_osb_error_body(reply, &format!("{context}: request {index}"));
        }
        if reply.status == 422 {
            assert_eq!(
                reply.error(),
                Some("ConcurrencyError"),
                "{context}: request {index} got a 422 other than ConcurrencyError: {}",
                reply.text
            );
        }
    }
}

fn count(replies: &[Reply], status: u16) -> usize {
    replies
        .iter()
        .filter(|reply| reply.status == status)
        .count()
}

fn provision_with(plan_id: &str, parameters: Value) -> Value {
    let mut body = provision_body(SERVICE_ID, plan_id);
    body["parameters"] = parameters;
    body
}

fn bind_with(plan_id: &str, parameters: Value) -> Value {
    let mut body = bind_body(SERVICE_ID, plan_id);
    body["parameters"] = parameters;
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn identical_provisions_create_one_instance() {
    let broker = Arc::new(TestBroker::start_services(RACE_SERVICES));
    let instance_id = new_id();
    let bodies = vec![provision_with(SYNC_PLAN, json!({"size": 1})); RACERS];

    let replies = race(&broker, &instance_path(&instance_id, false), bodies).await;

    assert_spec_statuses(&replies, "identical provisions");
    assert_eq!(
        count(&replies, 201),
        1,
        "exactly one provision creates the instance"
    );
    assert_eq!(
        count(&replies, 409),
        0,
        "identical provisions never conflict"
    );
    let fetched = broker.get(&instance_path(&instance_id, false)).await;
    assert_eq!(fetched.status, 200, "the instance exists: {}", fetched.text);
    assert_eq!(
        fetched.body["parameters"],
        json!({"size": 1}),
        "its parameters"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conflicting_provisions_create_one_instance() {
    let broker = Arc::new(TestBroker::start_services(RACE_SERVICES));
    let instance_id = new_id();
    let bodies = (0..RACERS)
        .map(|index| provision_with(SYNC_PLAN, json!({"racer": index})))
        .collect();

    let replies = race(&broker, &instance_path(&instance_id, false), bodies).await;

    assert_spec_statuses(&replies, "conflicting provisions");
    assert_eq!(
        count(&replies, 201),
        1,
        "exactly one provision creates the instance"
    );
    assert_eq!(
        count(&replies, 200),
        0,
        "a different provision never gets 200"
    );
    let winner = replies
        .iter()
        .position(|reply| reply.status == 201)
        .expect("one 201");
    let fetched = broker.get(&instance_path(&instance_id, false)).await;
    assert_eq!(fetched.status, 200, "the instance exists: {}", fetched.text);
    assert_eq!(
        fetched.body["parameters"],
        json!({"racer": winner}),
        "the instance has the parameters of the request that got 201"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn identical_async_provisions_share_one_operation() {
    let broker = Arc::new(TestBroker::start_services(RACE_SERVICES));
    let instance_id = new_id();
    let bodies = vec![provision_with(ASYNC_PLAN, json!({"size": 1})); RACERS];

    let replies = race(&broker, &instance_path(&instance_id, true), bodies).await;

    assert_spec_statuses(&replies, "identical asynchronous provisions");
    assert_eq!(
        count(&replies, 202),
        RACERS,
        "every identical asynchronous provision gets 202"
    );
    let operations: std::collections::HashSet<Option<String>> =
        replies.iter().map(Reply::operation).collect();
    assert_eq!(
        operations.len(),
        1,
        "all share one operation: {operations:?}"
    );
    let operation = replies[0].operation();
    let state = broker
        .wait_instance_operation(&instance_id, operation.as_deref())
        .await;
    assert_eq!(
        state["state"], "succeeded",
        "the one provision succeeds: {state}"
    );
}

async fn ready_instance(broker: &TestBroker) -> String {
    let instance_id = new_id();
    let reply = broker.provision(&instance_id, SYNC_PLAN, false).await;
    assert_eq!(reply.status, 201, "provision: {}", reply.text);
    instance_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn identical_binds_create_one_binding() {
    let broker = Arc::new(TestBroker::start_services(RACE_SERVICES));
    let instance_id = ready_instance(&broker).await;
    let binding_id = new_id();
    let bodies = vec![bind_with(SYNC_PLAN, json!({"role": "read"})); RACERS];
    let path = binding_path(&instance_id, &binding_id, false);

    let replies = race(&broker, &path, bodies).await;

    assert_spec_statuses(&replies, "identical binds");
    assert_eq!(
        count(&replies, 201),
        1,
        "exactly one bind creates the binding"
    );
    assert_eq!(count(&replies, 409), 0, "identical binds never conflict");
    let created = replies
        .iter()
        .find(|reply| reply.status == 201)
        .expect("one 201");
    for reply in replies.iter().filter(|reply| reply.status == 200) {
        assert_eq!(
            reply.body["credentials"], created.body["credentials"],
            "every 200 returns the credentials of the one binding"
        );
    }
    let fetched = broker.get(&path).await;
    assert_eq!(fetched.status, 200, "the binding exists: {}", fetched.text);
    assert_eq!(
        fetched.body["credentials"], created.body["credentials"],
        "its credentials"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conflicting_binds_create_one_binding() {
    let broker = Arc::new(TestBroker::start_services(RACE_SERVICES));
    let instance_id = ready_instance(&broker).await;
    let binding_id = new_id();
    let bodies = (0..RACERS)
        .map(|index| bind_with(SYNC_PLAN, json!({"racer": index})))
        .collect();
    let path = binding_path(&instance_id, &binding_id, false);

    let replies = race(&broker, &path, bodies).await;

    assert_spec_statuses(&replies, "conflicting binds");
    assert_eq!(
        count(&replies, 201),
        1,
        "exactly one bind creates the binding"
    );
    assert_eq!(count(&replies, 200), 0, "a different bind never gets 200");
    let winner = replies
        .iter()
        .position(|reply| reply.status == 201)
        .expect("one 201");
    let fetched = broker.get(&path).await;
    assert_eq!(fetched.status, 200, "the binding exists: {}", fetched.text);
    assert_eq!(
        fetched.body["parameters"],
        json!({"racer": winner}),
        "the binding has the parameters of the request that got 201"
    );
    assert_eq!(
        fetched.body["credentials"], replies[winner].body["credentials"],
        "the binding has the credentials of the 201"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_binds_on_one_instance_stay_distinct() {
    let broker = Arc::new(TestBroker::start_services(RACE_SERVICES));
    let instance_id = ready_instance(&broker).await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let broker = broker.clone();
        let instance_id = instance_id.clone();
        tasks.push(tokio::spawn(async move {
            let binding_id = new_id();
            let reply = broker
                .put(
                    &binding_path(&instance_id, &binding_id, false),
                    &bind_body(SERVICE_ID, SYNC_PLAN),
                )
                .await;
            (binding_id, reply)
        }));
    }

    let mut passwords = std::collections::HashSet::new();
    for task in tasks {
        let (binding_id, reply) = task.await.expect("a bind task panicked");
        assert!(
            reply.status == 201
                || (reply.status == 422 && reply.error() == Some("ConcurrencyError")),
            "bind {binding_id}: expected 201 or 422 ConcurrencyError, got {}: {}",
            reply.status,
            reply.text
        );
        if reply.status == 201 {
            let password = reply.body["credentials"]["password"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            assert!(
                passwords.insert(password),
                "bind {binding_id} got another binding's password"
            );
            let fetched = broker
                .get(&binding_path(&instance_id, &binding_id, false))
                .await;
            assert_eq!(
                fetched.status, 200,
                "bind {binding_id} is fetchable: {}",
                fetched.text
            );
        }
    }
    assert!(
        !passwords.is_empty(),
        "at least one concurrent bind succeeds"
    );
}
