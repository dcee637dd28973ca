//! Error responses. Every one is an OSB JSON body with `error` and
//! `description`, and reserved codes name their cases. The usable flags
//! appear only where allowed, and rejected requests change nothing.
//! Internal failures name the request identity, never the backend's error text.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use support::*;

/// The text every failure of the simulated backend carries.
const BACKEND_FAILURE_TEXT: &str = "simulated failure";

#[tokio::test]
async fn every_error_status_has_osb_body() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    broker.provision_ready(&instance_id, PLAN_SYNC).await;
    let instance = instance_path(&instance_id, false);
    let mut different = provision_body(SERVICE_ID, PLAN_SYNC);
    different["parameters"] = json!({"size_gb": 50});

    let cases: Vec<(u16, Reply)> = vec![
        (
            400,
            broker
                .put(
                    &instance_path(&new_id(), false),
                    &json!({"plan_id": PLAN_SYNC}),
                )
                .await,
        ),
        (404, broker.get(&instance_path(&new_id(), false)).await),
        (404, broker.get("/v2/no-such-route").await),
        (405, broker.call(Method::POST, "/v2/catalog", None).await),
        (
            409,
            broker.provision_body(&instance_id, &different, false).await,
        ),
        (
            410,
            broker
                .delete(&delete_path(
                    &instance_path(&new_id(), false),
                    PLAN_SYNC,
                    false,
                ))
                .await,
        ),
        (422, broker.provision(&new_id(), PLAN_ASYNC, false).await),
        (
            500,
            broker
                .provision(&new_id(), PLAN_FAIL_PROVISION, false)
                .await,
        ),
        (
            503,
            broker.provision(&new_id(), PLAN_UNAVAILABLE, false).await,
        ),
        (
            401,
            send(
                broker
                    .client
                    .get(format!("{}{instance}", broker.base_url))
                    .header("X-Broker-API-Version", API_VERSION),
            )
            .await,
        ),
        (
            412,
            send(
                broker
                    .client
                    .get(format!("{}{instance}", broker.base_url))
                    .header("Authorization", basic_auth(USERNAME, PASSWORD)),
            )
            .await,
        ),
    ];

    for (status, reply) in cases {
        reply.assert_osb_error(status, &format!("the {status} case"));
        let content_type = reply.header("content-type").unwrap_or_default();
        assert!(
            content_type.starts_with("application/json"),
            "the {status} case must be sent as application/json, got {content_type:?}"
        );
    }
}

#[tokio::test]
async fn oversized_body_returns_413_osb_body() {
    let head = format!(
        "{}\n[limits]\nmax_body_bytes = 2048\nretry_after_seconds = 1\n",
        credentials_only()
    );
    let broker = TestBroker::start(&head, STANDARD_SERVICES);
    let instance_id = new_id();
    let mut body = provision_body(SERVICE_ID, PLAN_SYNC);
    body["parameters"] = json!({"padding": "x".repeat(4096)});

    let reply = broker.provision_body(&instance_id, &body, false).await;

    reply.assert_osb_error(413, "a body over max_body_bytes");
    assert!(
        reply.body["description"]
            .as_str()
            .unwrap_or("")
            .contains("2048"),
        "the description names the limit: {}",
        reply.text
    );
    let fetched = broker.get(&instance_path(&instance_id, false)).await;
    assert_eq!(
        fetched.status, 404,
        "the rejected provision created nothing"
    );
}

fn credentials_only() -> String {
    format!("[[credentials]]\nusername = \"{USERNAME}\"\npassword = \"{PASSWORD}\"\n")
}

#[tokio::test]
async fn reserved_error_codes_name_their_cases() {
    let broker = TestBroker::start_standard();
    let app_instance = new_id();
    broker
        .provision_ready(&app_instance, PLAN_REQUIRES_APP)
        .await;
    let slow_instance = new_id();
    broker
        .provision_ready(&slow_instance, PLAN_ASYNC_SLOW)
        .await;
    let update = broker
        .patch(
            &instance_path(&slow_instance, true),
            &json!({"service_id": SERVICE_ID, "parameters": {"a": 1}}),
        )
        .await;
    assert_eq!(update.status, 202, "asynchronous update: {}", update.text);
    let mut old_maintenance = provision_body(SERVICE_ID, PLAN_SYNC);
    old_maintenance["maintenance_info"] = json!({"version": "0.0.1"});

    let cases = [
        (
            "AsyncRequired",
            broker.provision(&new_id(), PLAN_ASYNC, false).await,
        ),
        (
            "ConcurrencyError",
            broker
                .patch(
                    &instance_path(&slow_instance, true),
                    &json!({"service_id": SERVICE_ID, "parameters": {"a": 2}}),
                )
                .await,
        ),
        (
            "RequiresApp",
            broker
                .put(
                    &binding_path(&app_instance, &new_id(), false),
                    &json!({"service_id": SERVICE_ID, "plan_id": PLAN_REQUIRES_APP}),
                )
                .await,
        ),
        (
            "MaintenanceInfoConflict",
            broker
                .provision_body(&new_id(), &old_maintenance, false)
                .await,
        ),
    ];

    for (code, reply) in cases {
        reply.assert_osb_error(422, code);
        assert_eq!(reply.error(), Some(code), "the {code} case: {}", reply.text);
    }
}

/// Asserts that neither usable flag is in an error body.
fn assert_no_usable_flags(reply: &Reply, context: &str) {
    assert!(
        reply.status >= 400,
        "{context}: expected an error, got {}: {}",
        reply.status,
        reply.text
    );
    assert!(
        reply.body.get("instance_usable").is_none(),
        "{context}: instance_usable is only for update and deprovision errors: {}",
        reply.text
    );
    assert!(
        reply.body.get("update_repeatable").is_none(),
        "{context}: update_repeatable is only for update errors: {}",
        reply.text
    );
}

#[tokio::test]
async fn usable_flags_only_in_update_and_deprovision_errors() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    broker.provision_ready(&instance_id, PLAN_SYNC).await;
    let failing_instance = new_id();
    broker
        .provision_ready(&failing_instance, PLAN_FAIL_LATER)
        .await;
    let app_instance = new_id();
    broker
        .provision_ready(&app_instance, PLAN_REQUIRES_APP)
        .await;
    let binding_id = new_id();
    broker
        .bind_ready(&instance_id, &binding_id, PLAN_SYNC)
        .await;
    let mut different = provision_body(SERVICE_ID, PLAN_SYNC);
    different["parameters"] = json!({"size_gb": 50});
    let mut different_bind = bind_body(SERVICE_ID, PLAN_SYNC);
    different_bind["parameters"] = json!({"role": "write"});

    let cases = [
        (
            "provision conflict",
            broker.provision_body(&instance_id, &different, false).await,
        ),
        (
            "provision AsyncRequired",
            broker.provision(&new_id(), PLAN_ASYNC, false).await,
        ),
        (
            "provision internal error",
            broker
                .provision(&new_id(), PLAN_FAIL_PROVISION, false)
                .await,
        ),
        (
            "provision unavailable",
            broker.provision(&new_id(), PLAN_UNAVAILABLE, false).await,
        ),
        (
            "provision invalid parameters",
            broker
                .provision(&new_id(), PLAN_INVALID_PARAMETERS, false)
                .await,
        ),
        (
            "fetch unknown instance",
            broker.get(&instance_path(&new_id(), false)).await,
        ),
        (
            "bind conflict",
            broker
                .put(
                    &binding_path(&instance_id, &binding_id, false),
                    &different_bind,
                )
                .await,
        ),
        (
            "bind RequiresApp",
            broker
                .put(
                    &binding_path(&app_instance, &new_id(), false),
                    &json!({"service_id": SERVICE_ID, "plan_id": PLAN_REQUIRES_APP}),
                )
                .await,
        ),
        (
            "bind internal error",
            broker
                .put(
                    &binding_path(&failing_instance, &new_id(), false),
                    &bind_body(SERVICE_ID, PLAN_FAIL_LATER),
                )
                .await,
        ),
        (
            "unbind unknown binding",
            broker
                .delete(&delete_path(
                    &binding_path(&instance_id, &new_id(), false),
                    PLAN_SYNC,
                    false,
                ))
                .await,
        ),
        (
            "last_operation unknown instance",
            broker
                .get(&last_operation_path(&instance_path(&new_id(), false), None))
                .await,
        ),
    ];
    for (name, reply) in &cases {
        assert_no_usable_flags(reply, name);
    }

    let deprovision = broker
        .delete(&delete_path(
            &instance_path(&failing_instance, false),
            PLAN_FAIL_LATER,
            false,
        ))
        .await;
    assert_eq!(
        deprovision.status, 500,
        "failing deprovision: {}",
        deprovision.text
    );
    assert!(
        deprovision.body.get("update_repeatable").is_none(),
        "update_repeatable is only for update errors: {}",
        deprovision.text
    );
}

#[tokio::test]
async fn rejected_requests_change_nothing() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    let binding_id = new_id();
    let mut provision = provision_body(SERVICE_ID, PLAN_SYNC);
    provision["parameters"] = json!({"size_gb": 10});
    let reply = broker.provision_body(&instance_id, &provision, false).await;
    assert_eq!(reply.status, 201, "provision: {}", reply.text);
    let mut bind = bind_body(SERVICE_ID, PLAN_SYNC);
    bind["parameters"] = json!({"role": "read"});
    let reply = broker
        .put(&binding_path(&instance_id, &binding_id, false), &bind)
        .await;
    assert_eq!(reply.status, 201, "bind: {}", reply.text);
    let instance_before = broker.get(&instance_path(&instance_id, false)).await.body;
    let binding_before = broker
        .get(&binding_path(&instance_id, &binding_id, false))
        .await
        .body;

    let mut conflicting = provision.clone();
    conflicting["plan_id"] = json!(PLAN_SYNC_LARGE);
    let mut conflicting_bind = bind.clone();
    conflicting_bind["parameters"] = json!({"role": "write"});
    let instance = instance_path(&instance_id, false);
    let binding = binding_path(&instance_id, &binding_id, false);
    let rejected: Vec<(&str, Reply)> = vec![
        ("conflicting provision", broker.provision_body(&instance_id, &conflicting, false).await),
        ("update with invalid parameters", broker.patch(&instance, &json!({"service_id": SERVICE_ID, "parameters": {"size_gb": 1000}})).await),
        (
            "update with an old maintenance version",
            broker
                .patch(&instance, &json!({"service_id": SERVICE_ID, "plan_id": PLAN_SYNC_LARGE, "maintenance_info": {"version": "0.1.0"}}))
                .await,
        ),
        ("update with an unknown plan", broker.patch(&instance, &json!({"service_id": SERVICE_ID, "plan_id": "nope"})).await),
        ("deprovision without plan_id", broker.delete(&format!("{instance}?service_id={SERVICE_ID}")).await),
        ("conflicting bind", broker.put(&binding, &conflicting_bind).await),
        ("unbind without service_id", broker.delete(&format!("{binding}?plan_id={PLAN_SYNC}")).await),
    ];
    for (name, reply) in &rejected {
        assert!(
            (400..500).contains(&reply.status),
            "{name}: expected a 4xx, got {}: {}",
            reply.status,
            reply.text
        );
    }

    let instance_after = broker.get(&instance).await.body;
    let binding_after = broker.get(&binding).await.body;
    assert_eq!(
        instance_after, instance_before,
        "rejected requests must not change the instance"
    );
    assert_eq!(
        binding_after, binding_before,
        "rejected requests must not change the binding"
    );
}

/// Sends a request with a request identity and returns the reply.
async fn call_with_identity(
    broker: &TestBroker,
    method: Method,
    path: &str,
    body: Option<&Value>,
    identity: &str,
) -> Reply {
    let mut request = broker
        .request(method, path)
        .header("X-Broker-API-Request-Identity", identity);
    if let Some(body) = body {
        request = request
            .header("Content-Type", "application/json")
            .body(body.to_string());
    }
    send(request).await
}

fn assert_internal_error_hides_cause(reply: &Reply, identity: &str, context: &str) {
    reply.assert_osb_error(500, context);
    assert!(
        !reply.text.contains(BACKEND_FAILURE_TEXT),
        "{context}: the backend's error text must not reach the client: {}",
        reply.text
    );
    assert!(
        reply.body["description"]
            .as_str()
            .unwrap_or("")
            .contains(identity),
        "{context}: the description must name the request identity {identity}: {}",
        reply.text
    );
}

#[tokio::test]
async fn internal_errors_hide_cause_name_identity() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    broker.provision_ready(&instance_id, PLAN_FAIL_LATER).await;
    let binding = binding_path(&instance_id, &new_id(), false);

    let cases = [
        (
            Method::PUT,
            instance_path(&new_id(), false),
            Some(provision_body(SERVICE_ID, PLAN_FAIL_PROVISION)),
        ),
        (
            Method::PATCH,
            instance_path(&instance_id, false),
            Some(json!({"service_id": SERVICE_ID, "parameters": {"x": 1}})),
        ),
        (
            Method::PUT,
            binding.clone(),
            Some(bind_body(SERVICE_ID, PLAN_FAIL_LATER)),
        ),
        (
            Method::DELETE,
            delete_path(&instance_path(&instance_id, false), PLAN_FAIL_LATER, false),
            None,
        ),
    ];
    for (method, path, body) in cases {
        let identity = new_id();
        let reply =
            call_with_identity(&broker, method.clone(), &path, body.as_ref(), &identity).await;
        assert_internal_error_hides_cause(&reply, &identity, &format!("{method} {path}"));
        assert_eq!(
            reply.header("x-broker-api-request-identity").as_deref(),
            Some(identity.as_str()),
            "{method} {path}: the identity is echoed"
        );
    }
}

#[tokio::test]
async fn internal_error_names_generated_identity() {
    let broker = TestBroker::start_standard();

    let reply = broker
        .provision(&new_id(), PLAN_FAIL_PROVISION, false)
        .await;

    let identity = reply
        .header("x-broker-api-request-identity")
        .expect("the broker sends a request identity when the platform sent none");
    assert!(!identity.is_empty(), "the generated identity is not empty");
    assert_internal_error_hides_cause(&reply, &identity, "provision without a request identity");
}

#[tokio::test]
async fn internal_error_cause_logged_under_identity() {
    let broker = TestBroker::start_standard();
    let identity = new_id();

    let reply = call_with_identity(
        &broker,
        Method::PUT,
        &instance_path(&new_id(), false),
        Some(&provision_body(SERVICE_ID, PLAN_FAIL_PROVISION)),
        &identity,
    )
    .await;
    assert_eq!(reply.status, 500, "failing provision: {}", reply.text);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let log = broker.log();
    let line = log
        .lines()
        .find(|line| line.contains(BACKEND_FAILURE_TEXT))
        .unwrap_or_else(|| panic!("the log must record the backend's error: {log}"));
    assert!(
        line.contains(&identity),
        "the log line with the cause must name the request identity {identity}: {line}"
    );
}

#[tokio::test]
async fn unavailable_backend_returns_503_without_cause() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();

    let reply = broker
        .provision(&instance_id, PLAN_UNAVAILABLE, false)
        .await;

    reply.assert_osb_error(503, "provision while the server is down");
    assert!(
        !reply.text.contains(BACKEND_FAILURE_TEXT),
        "the backend's error text must not reach the client: {}",
        reply.text
    );
    let fetched = broker.get(&instance_path(&instance_id, false)).await;
    assert_eq!(
        fetched.status, 404,
        "the failed provision created nothing fetchable"
    );
}

#[tokio::test]
async fn async_failure_hides_cause_names_operation() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    let identity = new_id();
    let reply = call_with_identity(
        &broker,
        Method::PUT,
        &instance_path(&instance_id, true),
        Some(&provision_body(SERVICE_ID, PLAN_ASYNC_FAIL_PROVISION)),
        &identity,
    )
    .await;
    assert_eq!(reply.status, 202, "asynchronous provision: {}", reply.text);
    let operation = reply.operation().expect("a 202 carries an operation");

    let state = broker
        .wait_instance_operation(&instance_id, Some(&operation))
        .await;

    assert_eq!(state["state"], "failed", "final state: {state}");
    let description = state["description"].as_str().unwrap_or("");
    assert!(
        !description.contains(BACKEND_FAILURE_TEXT),
        "the backend's error text must not reach the client: {description}"
    );
    assert!(
        description.contains(&operation),
        "the description names the operation that the log records: {description}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let log = broker.log();
    assert!(
        log.lines()
            .any(|line| line.contains(BACKEND_FAILURE_TEXT) && line.contains(&operation)),
        "the log records the cause under the operation {operation}: {log}"
    );
}
