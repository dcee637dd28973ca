//! State that must stay truthful across failures: failed deletes, wrong
//! keys, mismatched ids and unknown operation tokens.

mod support;

use std::process::Command;

use reqwest::Method;
use support::*;

/// A catalog whose one plan fails both provision and deprovision.
const FAILING_SERVICES: &str = r#"
[[services]]
id = "6b0a6e8c-0000-4000-8000-000000000001"
name = "failing-db"
description = "Fails provision and deprovision"
bindable = true
instances_retrievable = true

[[services.plans]]
id = "7c1b0000-0000-4000-8000-0000000000f1"
name = "failing"
description = "Fails provision and deprovision"
backend = { type = "simulated", fail_on = ["provision", "deprovision"] }
"#;

const PLAN_FAILING: &str = "7c1b0000-0000-4000-8000-0000000000f1";

#[tokio::test]
async fn failed_delete_keeps_failed_provision() {
    let broker = TestBroker::start(&standard_head(), FAILING_SERVICES);
    let instance_id = new_id();

    let provision = broker.provision(&instance_id, PLAN_FAILING, false).await;
    assert_eq!(
        provision.status, 500,
        "the provision fails: {}",
        provision.text
    );
    let delete = broker
        .delete(&delete_path(
            &instance_path(&instance_id, false),
            PLAN_FAILING,
            false,
        ))
        .await;
    assert_eq!(delete.status, 500, "the delete fails too: {}", delete.text);

    let fetched = broker.get(&instance_path(&instance_id, false)).await;
    assert_eq!(
        fetched.status, 404,
        "an instance whose provision failed must not become fetchable: {}",
        fetched.text
    );
    let repeated = broker.provision(&instance_id, PLAN_FAILING, false).await;
    assert_eq!(
        repeated.status, 500,
        "a repeated provision runs again instead of answering 200: {}",
        repeated.text
    );
}

#[tokio::test]
async fn delete_with_other_service_rejected() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    broker.provision_ready(&instance_id, PLAN_SYNC).await;

    let path = format!(
        "{}?service_id=not-this-service&plan_id={PLAN_SYNC}",
        instance_path(&instance_id, false)
    );
    let reply = broker.delete(&path).await;
    reply.assert_osb_error(400, "a delete naming another service is rejected");
    let fetched = broker.get(&instance_path(&instance_id, false)).await;
    assert_eq!(
        fetched.status, 200,
        "the instance is still there: {}",
        fetched.text
    );
}

#[tokio::test]
async fn unknown_operation_token_rejected() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    broker.provision_ready(&instance_id, PLAN_SYNC).await;

    let reply = broker
        .get(&last_operation_path(
            &instance_path(&instance_id, false),
            Some("no-such-operation"),
        ))
        .await;
    reply.assert_osb_error(400, "an unknown operation token on an existing instance");
    let description = reply.body["description"].as_str().unwrap_or_default();
    assert!(
        !description.contains("does not exist"),
        "the description must not claim the instance is missing: {description}"
    );
}

#[tokio::test]
async fn non_object_bodies_rejected_plainly() {
    let broker = TestBroker::start_standard();
    for body in ["null", "[1, 2]", "\"text\"", "42"] {
        let reply = broker
            .request(Method::PUT, &instance_path(&new_id(), false))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .expect("the broker answers");
        assert_eq!(reply.status().as_u16(), 400, "body {body}");
        let json: serde_json::Value = reply.json().await.expect("an OSB JSON body");
        let description = json["description"].as_str().unwrap_or_default();
        assert_eq!(
            description, "the request body must be a JSON object",
            "body {body}"
        );
    }
}

#[tokio::test]
async fn other_encryption_key_refuses_start() {
    let mut broker = TestBroker::start_standard();
    let instance_id = new_id();
    broker.provision_ready(&instance_id, PLAN_SYNC).await;
    broker.kill();

    let other_key = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
    let output = Command::new(env!("CARGO_BIN_EXE_osb-broker"))
        .arg("serve")
        .arg("--config")
        .arg(broker.dir.path.join("broker.toml"))
        .arg("--listen")
        .arg("127.0.0.1:0")
        .env("OSB_BROKER_STATE__ENCRYPTION_KEY", other_key)
        .output()
        .expect("run osb-broker");
    assert!(!output.status.success(), "the broker must not start");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("state.encryption_key"),
        "the error names the field: {stderr}"
    );
    assert!(
        !stderr.contains(other_key),
        "the error does not print the key: {stderr}"
    );
}
