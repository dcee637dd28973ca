//! The broker's log never contains a secret: not the broker password, not
//! binding credentials, not parameter values, not the encryption key, even
//! at the debug and trace levels and in both log formats.

mod support;

use std::time::Duration;

use base64::Engine;
use reqwest::Method;
use serde_json::json;
use support::*;

/// Parameter values that must never be logged.
const PROVISION_SECRET: &str = "provision-param-secret-Xq81";
const UPDATE_SECRET: &str = "update-param-secret-Lr42";
const BIND_SECRET: &str = "bind-param-secret-Vm07";
const INVALID_VALUE_SECRET: &str = "invalid-value-secret-Pz55";
const MALFORMED_SECRET: &str = "malformed-body-secret-Jd93";
const FAILED_PROVISION_SECRET: &str = "failed-provision-secret-Tk68";
const WRONG_PASSWORD: &str = "wrong-password-secret-Hc24";

/// Drives every kind of request that carries a secret and returns the
/// binding passwords and URIs that the broker generated.
async fn exercise_secrets(broker: &TestBroker) -> Vec<String> {
    let mut generated = Vec::new();
    let instance_id = new_id();

    let mut provision = provision_body(SERVICE_ID, PLAN_SYNC);
    provision["parameters"] = json!({"size_gb": 5, "admin_password": PROVISION_SECRET});
    let reply = broker.provision_body(&instance_id, &provision, false).await;
    assert_eq!(reply.status, 201, "provision: {}", reply.text);
    let repeat = broker.provision_body(&instance_id, &provision, false).await;
    assert_eq!(repeat.status, 200, "repeated provision: {}", repeat.text);

    let update = json!({"service_id": SERVICE_ID, "parameters": {"admin_password": UPDATE_SECRET}});
    let reply = broker
        .patch(&instance_path(&instance_id, false), &update)
        .await;
    assert_eq!(reply.status, 200, "update: {}", reply.text);
    let fetched = broker.get(&instance_path(&instance_id, false)).await;
    assert_eq!(fetched.status, 200, "fetch: {}", fetched.text);

    let binding_id = new_id();
    let mut bind = bind_body(SERVICE_ID, PLAN_SYNC);
    bind["parameters"] = json!({"role": "read", "token": BIND_SECRET});
    let path = binding_path(&instance_id, &binding_id, false);
    let bound = broker.put(&path, &bind).await;
    assert_eq!(bound.status, 201, "bind: {}", bound.text);
    generated.push(
        bound.body["credentials"]["password"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
    );
    generated.push(
        bound.body["credentials"]["uri"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
    );
    let repeat = broker.put(&path, &bind).await;
    assert_eq!(repeat.status, 200, "repeated bind: {}", repeat.text);
    let fetched = broker.get(&path).await;
    assert_eq!(fetched.status, 200, "fetch binding: {}", fetched.text);

    let async_instance = new_id();
    let mut async_provision = provision_body(SERVICE_ID, PLAN_ASYNC);
    async_provision["parameters"] = json!({"admin_password": PROVISION_SECRET});
    let reply = broker
        .provision_body(&async_instance, &async_provision, true)
        .await;
    assert_eq!(reply.status, 202, "asynchronous provision: {}", reply.text);
    let state = broker
        .wait_instance_operation(&async_instance, reply.operation().as_deref())
        .await;
    assert_eq!(
        state["state"], "succeeded",
        "asynchronous provision: {state}"
    );
    let async_binding = new_id();
    let mut async_bind = bind_body(SERVICE_ID, PLAN_ASYNC);
    async_bind["parameters"] = json!({"token": BIND_SECRET});
    let reply = broker
        .put(
            &binding_path(&async_instance, &async_binding, true),
            &async_bind,
        )
        .await;
    assert_eq!(reply.status, 202, "asynchronous bind: {}", reply.text);
    let state = broker
        .wait_binding_operation(
            &async_instance,
            &async_binding,
            reply.operation().as_deref(),
        )
        .await;
    assert_eq!(state["state"], "succeeded", "asynchronous bind: {state}");
    let fetched = broker
        .get(&binding_path(&async_instance, &async_binding, false))
        .await;
    assert_eq!(
        fetched.status, 200,
        "fetch of the asynchronous binding: {}",
        fetched.text
    );
    generated.push(
        fetched.body["credentials"]["password"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
    );

    let static_instance = new_id();
    let reply = broker
        .provision_body(
            &static_instance,
            &provision_body(STATIC_SERVICE_ID, PLAN_STATIC),
            false,
        )
        .await;
    assert_eq!(reply.status, 201, "static provision: {}", reply.text);
    let reply = broker
        .put(
            &binding_path(&static_instance, &new_id(), false),
            &bind_body(STATIC_SERVICE_ID, PLAN_STATIC),
        )
        .await;
    assert_eq!(reply.status, 201, "static bind: {}", reply.text);

    let mut invalid = provision_body(SERVICE_ID, PLAN_SYNC);
    invalid["parameters"] = json!({"size_gb": INVALID_VALUE_SECRET});
    let reply = broker.provision_body(&new_id(), &invalid, false).await;
    assert_eq!(
        reply.status, 400,
        "provision with an invalid value: {}",
        reply.text
    );
    assert!(
        !reply.text.contains(INVALID_VALUE_SECRET),
        "the error response must not echo the invalid value: {}",
        reply.text
    );

    let malformed =
        format!(r#"{{"service_id": "{SERVICE_ID}", "parameters": {{"key": "{MALFORMED_SECRET}"}}"#);
    let reply = send(
        broker
            .request(Method::PUT, &instance_path(&new_id(), false))
            .header("Content-Type", "application/json")
            .body(malformed),
    )
    .await;
    assert_eq!(reply.status, 400, "malformed provision: {}", reply.text);
    assert!(
        !reply.text.contains(MALFORMED_SECRET),
        "the error response must not echo the malformed body: {}",
        reply.text
    );

    let mut failing = provision_body(SERVICE_ID, PLAN_FAIL_PROVISION);
    failing["parameters"] = json!({"admin_password": FAILED_PROVISION_SECRET});
    let reply = broker.provision_body(&new_id(), &failing, false).await;
    assert_eq!(reply.status, 500, "failing provision: {}", reply.text);

    let reply = send(
        broker
            .client
            .get(format!("{}/v2/catalog", broker.base_url))
            .header("X-Broker-API-Version", API_VERSION)
            .header("Authorization", basic_auth(USERNAME, WRONG_PASSWORD)),
    )
    .await;
    assert_eq!(reply.status, 401, "wrong password: {}", reply.text);

    let reply = broker
        .delete(&delete_path(
            &binding_path(&instance_id, &binding_id, false),
            PLAN_SYNC,
            false,
        ))
        .await;
    assert_eq!(reply.status, 200, "unbind: {}", reply.text);
    let reply = broker
        .delete(&delete_path(
            &instance_path(&instance_id, false),
            PLAN_SYNC,
            false,
        ))
        .await;
    assert_eq!(reply.status, 200, "deprovision: {}", reply.text);

    generated
}

fn assert_log_has_no_secrets(log: &str, generated: &[String]) {
    let encoded_credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("{USERNAME}:{PASSWORD}"));
    let mut secrets = vec![
        ("the broker password", PASSWORD.to_owned()),
        ("the encoded Authorization header", encoded_credentials),
        ("a wrong password", WRONG_PASSWORD.to_owned()),
        ("the encryption key", ENCRYPTION_KEY.to_owned()),
        ("the static plan's API key", STATIC_API_KEY.to_owned()),
        ("a provision parameter", PROVISION_SECRET.to_owned()),
        ("an update parameter", UPDATE_SECRET.to_owned()),
        ("a bind parameter", BIND_SECRET.to_owned()),
        (
            "an invalid parameter value",
            INVALID_VALUE_SECRET.to_owned(),
        ),
        ("a value in a malformed body", MALFORMED_SECRET.to_owned()),
        (
            "a parameter of a failed provision",
            FAILED_PROVISION_SECRET.to_owned(),
        ),
    ];
    for value in generated {
        assert!(!value.is_empty(), "every generated credential was returned");
        secrets.push(("a binding credential", value.clone()));
    }

    for (name, secret) in secrets {
        let line = log.lines().find(|line| line.contains(&secret));
        assert!(
            line.is_none(),
            "the log contains {name}: {}",
            line.unwrap_or("")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_log_contains_no_secrets() {
    let broker = TestBroker::start_with_env(
        &standard_head(),
        STANDARD_SERVICES,
        &[("RUST_LOG", "debug")],
    );

    let generated = exercise_secrets(&broker).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let log = broker.log();
    assert!(
        log.contains("DEBUG"),
        "the log must be at debug level for this test to mean anything: {log}"
    );
    assert!(
        log.contains("request finished"),
        "the log records requests: {log}"
    );
    assert_log_has_no_secrets(&log, &generated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_json_log_contains_no_secrets() {
    let broker = TestBroker::start_with_args(
        &standard_head(),
        STANDARD_SERVICES,
        &[("RUST_LOG", "trace")],
        &["--log-format", "json"],
    );

    let generated = exercise_secrets(&broker).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let log = broker.log();
    assert!(
        log.contains("\"level\":\"DEBUG\""),
        "the log must be JSON with debug events: {}",
        &log[..log.len().min(2000)]
    );
    assert_log_has_no_secrets(&log, &generated);
}

#[tokio::test]
async fn log_format_environment_variable_is_accepted() {
    let broker = TestBroker::start_with_env(
        &standard_head(),
        STANDARD_SERVICES,
        &[("OSB_BROKER_LOG_FORMAT", "json")],
    );

    let reply = broker.get("/v2/catalog").await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    assert_eq!(reply.status, 200, "catalog: {}", reply.text);
    let log = broker.log();
    let first_line = log.lines().next().unwrap_or("");
    assert!(
        first_line.starts_with('{'),
        "OSB_BROKER_LOG_FORMAT=json selects the JSON log format: {first_line}"
    );
}
