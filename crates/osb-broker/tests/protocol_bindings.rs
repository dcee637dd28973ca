//! Service bindings within the request: bind, fetch and unbind, their
//! statuses and bodies, credentials, endpoints, expiry and rotation.

mod support;

use serde_json::{json, Value};
use support::*;

/// Provisions an instance of `plan_id` and returns its id.
async fn ready_instance(broker: &TestBroker, plan_id: &str) -> String {
    let instance_id = new_id();
    broker.provision_ready(&instance_id, plan_id).await;
    instance_id
}

fn unbind_path(instance_id: &str, binding_id: &str, plan_id: &str) -> String {
    delete_path(
        &binding_path(instance_id, binding_id, false),
        plan_id,
        false,
    )
}

/// Returns whether `text` has the form `yyyy-mm-ddThh:mm:ss.sZ`, with one or
/// more fraction digits.
fn is_iso8601_utc(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        range
            .into_iter()
            .all(|i| bytes.get(i).is_some_and(u8::is_ascii_digit))
    };
    bytes.len() >= 22
        && digits(0..4)
        && bytes[4] == b'-'
        && digits(5..7)
        && bytes[7] == b'-'
        && digits(8..10)
        && bytes[10] == b'T'
        && digits(11..13)
        && bytes[13] == b':'
        && digits(14..16)
        && bytes[16] == b':'
        && digits(17..19)
        && bytes[19] == b'.'
        && digits(20..bytes.len() - 1)
        && text.ends_with('Z')
}

fn is_port_or_range(port: &str) -> bool {
    let valid = |number: &str| !number.is_empty() && number.chars().all(|c| c.is_ascii_digit());
    match port.split_once('-') {
        Some((low, high)) => valid(low) && valid(high),
        None => valid(port),
    }
}

#[tokio::test]
async fn bind_new_binding_returns_201_with_credentials() {
    let broker = TestBroker::start_standard();
    let instance_id = ready_instance(&broker, PLAN_SYNC).await;
    let binding_id = new_id();

    let reply = broker
        .put(
            &binding_path(&instance_id, &binding_id, false),
            &bind_body(SERVICE_ID, PLAN_SYNC),
        )
        .await;

    assert_eq!(reply.status, 201, "bind: {}", reply.text);
    let credentials = &reply.body["credentials"];
    assert!(
        credentials.is_object(),
        "credentials must be an object: {}",
        reply.text
    );
    assert!(
        credentials["username"].is_string(),
        "credentials carry a username"
    );
    assert!(
        credentials["password"]
            .as_str()
            .is_some_and(|p| !p.is_empty()),
        "credentials carry a password"
    );
}

#[tokio::test]
async fn bind_static_plan_returns_configured_credentials() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    let reply = broker
        .provision_body(
            &instance_id,
            &provision_body(STATIC_SERVICE_ID, PLAN_STATIC),
            false,
        )
        .await;
    assert_eq!(reply.status, 201, "provision: {}", reply.text);

    let binding_id = new_id();
    let reply = broker
        .put(
            &binding_path(&instance_id, &binding_id, false),
            &bind_body(STATIC_SERVICE_ID, PLAN_STATIC),
        )
        .await;

    assert_eq!(reply.status, 201, "bind: {}", reply.text);
    let expected = json!({"url": "https://api.example.test", "api_key": STATIC_API_KEY});
    assert_eq!(
        reply.body["credentials"], expected,
        "the static plan's credentials"
    );
    let fetched = broker
        .get(&binding_path(&instance_id, &binding_id, false))
        .await;
    assert_eq!(
        fetched.status, 200,
        "fetch of a static binding: {}",
        fetched.text
    );
    assert_eq!(
        fetched.body["credentials"], expected,
        "the fetched credentials"
    );
}

#[tokio::test]
async fn bind_repeat_identical_returns_200() {
    let broker = TestBroker::start_standard();
    let instance_id = ready_instance(&broker, PLAN_SYNC).await;
    let binding_id = new_id();
    let mut body = bind_body(SERVICE_ID, PLAN_SYNC);
    body["parameters"] = json!({"role": "read"});
    let path = binding_path(&instance_id, &binding_id, false);

    let first = broker.put(&path, &body).await;
    assert_eq!(first.status, 201, "first bind: {}", first.text);
    let second = broker.put(&path, &body).await;

    assert_eq!(
        second.status, 200,
        "an identical repeat must return 200: {}",
        second.text
    );
    assert_eq!(
        second.body["credentials"], first.body["credentials"],
        "the repeat must return the same credentials"
    );
}

#[tokio::test]
async fn bind_repeat_different_returns_409() {
    let broker = TestBroker::start_standard();
    let instance_id = ready_instance(&broker, PLAN_SYNC).await;
    let binding_id = new_id();
    let path = binding_path(&instance_id, &binding_id, false);
    let mut original = bind_body(SERVICE_ID, PLAN_SYNC);
    original["parameters"] = json!({"role": "read"});
    let first = broker.put(&path, &original).await;
    assert_eq!(first.status, 201, "first bind: {}", first.text);

    let mut other_parameters = original.clone();
    other_parameters["parameters"] = json!({"role": "write"});
    let mut other_app = original.clone();
    other_app["bind_resource"]["app_guid"] = json!("another-app");

    for (name, body) in [
        ("other parameters", other_parameters),
        ("another app_guid", other_app),
    ] {
        let reply = broker.put(&path, &body).await;
        reply.assert_osb_error(409, &format!("bind with {name}"));
    }
    let fetched = broker.get(&path).await;
    assert_eq!(fetched.status, 200, "fetch: {}", fetched.text);
    assert_eq!(
        fetched.body["parameters"],
        json!({"role": "read"}),
        "the binding keeps its parameters"
    );
    assert_eq!(
        fetched.body["credentials"], first.body["credentials"],
        "the binding keeps its credentials"
    );
}

#[tokio::test]
async fn bind_malformed_request_returns_400() {
    let broker = TestBroker::start_standard();
    let instance_id = ready_instance(&broker, PLAN_SYNC).await;
    let complete = bind_body(SERVICE_ID, PLAN_SYNC);
    let mut cases: Vec<(String, Value)> = Vec::new();
    for field in ["service_id", "plan_id"] {
        let mut missing = complete.clone();
        missing.as_object_mut().unwrap().remove(field);
        cases.push((format!("without {field}"), missing));
        let mut empty = complete.clone();
        empty[field] = json!("");
        cases.push((format!("with an empty {field}"), empty));
    }
    let mut other_plan = complete.clone();
    other_plan["plan_id"] = json!(PLAN_SYNC_LARGE);
    cases.push((
        "with a plan other than the instance's".to_owned(),
        other_plan,
    ));
    let mut unknown_plan = complete.clone();
    unknown_plan["plan_id"] = json!("no-such-plan");
    cases.push(("with an unknown plan_id".to_owned(), unknown_plan));
    let mut invalid_parameters = complete.clone();
    invalid_parameters["parameters"] = json!({"role": "admin"});
    cases.push((
        "with parameters violating the schema".to_owned(),
        invalid_parameters,
    ));
    let mut parameters_not_object = complete.clone();
    parameters_not_object["parameters"] = json!("read");
    cases.push((
        "with parameters that are not an object".to_owned(),
        parameters_not_object,
    ));

    for (name, body) in cases {
        let binding_id = new_id();
        let path = binding_path(&instance_id, &binding_id, false);
        let reply = broker.put(&path, &body).await;
        let context = format!("bind {name}");
        reply.assert_osb_error(400, &context);
        let fetched = broker.get(&path).await;
        assert_eq!(
            fetched.status, 404,
            "{context}: the rejected bind must create nothing"
        );
    }
}

#[tokio::test]
async fn bind_on_unbindable_plan_is_rejected() {
    let broker = TestBroker::start_standard();
    let unbindable_plan = ready_instance(&broker, PLAN_UNBINDABLE).await;
    let unbindable_offering = new_id();
    let reply = broker
        .provision_body(
            &unbindable_offering,
            &provision_body(UNBINDABLE_SERVICE_ID, PLAN_NO_BIND),
            false,
        )
        .await;
    assert_eq!(reply.status, 201, "provision: {}", reply.text);

    for (instance_id, service_id, plan_id) in [
        (&unbindable_plan, SERVICE_ID, PLAN_UNBINDABLE),
        (&unbindable_offering, UNBINDABLE_SERVICE_ID, PLAN_NO_BIND),
    ] {
        let binding_id = new_id();
        let path = binding_path(instance_id, &binding_id, false);
        let reply = broker.put(&path, &bind_body(service_id, plan_id)).await;
        let context = format!("bind on plan {plan_id}");
        reply.assert_osb_error(400, &context);
        assert!(
            reply.body["description"]
                .as_str()
                .unwrap_or("")
                .contains("bindable"),
            "{context}: the description must say the plan is not bindable: {}",
            reply.text
        );
        let fetched = broker.get(&path).await;
        assert_eq!(fetched.status, 404, "{context}: no binding may exist");
    }
}

#[tokio::test]
async fn bind_without_app_guid_returns_422_requires_app() {
    let broker = TestBroker::start_standard();
    let instance_id = ready_instance(&broker, PLAN_REQUIRES_APP).await;
    let binding_id = new_id();
    let path = binding_path(&instance_id, &binding_id, false);
    let without_app = json!({"service_id": SERVICE_ID, "plan_id": PLAN_REQUIRES_APP});

    let reply = broker.put(&path, &without_app).await;

    reply.assert_osb_error(422, "bind without app_guid");
    assert_eq!(reply.error(), Some("RequiresApp"), "error code");
    let fetched = broker.get(&path).await;
    assert_eq!(
        fetched.status, 404,
        "the rejected bind must create nothing: {}",
        fetched.text
    );

    let with_app = broker
        .put(&path, &bind_body(SERVICE_ID, PLAN_REQUIRES_APP))
        .await;
    assert_eq!(
        with_app.status, 201,
        "bind with bind_resource.app_guid: {}",
        with_app.text
    );
    let deprecated =
        json!({"service_id": SERVICE_ID, "plan_id": PLAN_REQUIRES_APP, "app_guid": "app-guid-2"});
    let reply = broker
        .put(&binding_path(&instance_id, &new_id(), false), &deprecated)
        .await;
    assert_eq!(
        reply.status, 201,
        "bind with the deprecated top-level app_guid: {}",
        reply.text
    );
}

#[tokio::test]
async fn bind_async_only_without_flag_returns_422() {
    let broker = TestBroker::start_standard();
    let instance_id = ready_instance(&broker, PLAN_ASYNC).await;
    let binding_id = new_id();
    let path = binding_path(&instance_id, &binding_id, false);

    let reply = broker.put(&path, &bind_body(SERVICE_ID, PLAN_ASYNC)).await;

    reply.assert_osb_error(
        422,
        "bind of an asynchronous-only plan without accepts_incomplete",
    );
    assert_eq!(reply.error(), Some("AsyncRequired"), "error code");
    let fetched = broker.get(&path).await;
    assert_eq!(
        fetched.status, 404,
        "the rejected bind must create nothing: {}",
        fetched.text
    );
}

#[tokio::test]
async fn bind_on_missing_instance_is_rejected() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();

    let reply = broker
        .put(
            &binding_path(&instance_id, &new_id(), false),
            &bind_body(SERVICE_ID, PLAN_SYNC),
        )
        .await;

    assert!(
        reply.status == 400 || reply.status == 404,
        "binding an unknown instance returns 400 or 404, got {}: {}",
        reply.status,
        reply.text
    );
    assert_osb_error_body(&reply, "bind on an unknown instance");
}

#[tokio::test]
async fn credentials_differ_between_bindings() {
    let broker = TestBroker::start_standard();
    let instance_id = ready_instance(&broker, PLAN_SYNC).await;

    let first = broker.bind_ready(&instance_id, &new_id(), PLAN_SYNC).await;
    let second = broker.bind_ready(&instance_id, &new_id(), PLAN_SYNC).await;

    assert_ne!(
        first.body["credentials"]["username"], second.body["credentials"]["username"],
        "each binding gets its own username"
    );
    assert_ne!(
        first.body["credentials"]["password"], second.body["credentials"]["password"],
        "each binding gets its own password"
    );
}

#[tokio::test]
async fn binding_expiry_uses_iso8601_and_order() {
    let broker = TestBroker::start_standard();
    let instance_id = ready_instance(&broker, PLAN_EXPIRING).await;

    let reply = broker
        .bind_ready(&instance_id, &new_id(), PLAN_EXPIRING)
        .await;

    let metadata = &reply.body["metadata"];
    let expires_at = metadata["expires_at"].as_str().unwrap_or("");
    let renew_before = metadata["renew_before"].as_str().unwrap_or("");
    assert!(
        is_iso8601_utc(expires_at),
        "expires_at {expires_at:?} must be yyyy-mm-ddThh:mm:ss.sZ"
    );
    assert!(
        is_iso8601_utc(renew_before),
        "renew_before {renew_before:?} must be yyyy-mm-ddThh:mm:ss.sZ"
    );
    assert!(
        renew_before < expires_at,
        "renew_before {renew_before} must come before expires_at {expires_at}"
    );
    let keys: Vec<&String> = metadata
        .as_object()
        .expect("metadata is an object")
        .keys()
        .collect();
    for key in keys {
        assert!(
            ["expires_at", "renew_before"].contains(&key.as_str()),
            "binding metadata must hold no connection data, found {key:?}"
        );
    }
    let password = reply.body["credentials"]["password"].as_str().unwrap_or("");
    assert!(
        !metadata.to_string().contains(password),
        "metadata must not contain the password"
    );
}

#[tokio::test]
async fn binding_endpoints_have_host_and_ports() {
    let broker = TestBroker::start_standard();
    let instance_id = ready_instance(&broker, PLAN_SYNC).await;

    let reply = broker.bind_ready(&instance_id, &new_id(), PLAN_SYNC).await;

    let endpoints = reply.body["endpoints"]
        .as_array()
        .expect("endpoints is an array");
    assert!(
        !endpoints.is_empty(),
        "the simulated plan lists its endpoint"
    );
    for endpoint in endpoints {
        assert!(
            endpoint["host"]
                .as_str()
                .is_some_and(|host| !host.is_empty()),
            "each endpoint has a host: {endpoint}"
        );
        let ports = endpoint["ports"].as_array().expect("ports is an array");
        assert!(!ports.is_empty(), "ports must not be empty: {endpoint}");
        for port in ports {
            assert!(
                port.as_str().is_some_and(is_port_or_range),
                "each port is a string such as \"443\" or \"9000-9010\": {port}"
            );
        }
        if let Some(protocol) = endpoint.get("protocol") {
            assert!(
                ["tcp", "udp", "all"].contains(&protocol.as_str().unwrap_or("")),
                "protocol must be tcp, udp or all: {protocol}"
            );
        }
    }
    let credentials = &reply.body["credentials"];
    let port = credentials["port"].to_string();
    assert!(
        endpoints
            .iter()
            .any(|endpoint| endpoint["host"] == credentials["host"]
                && endpoint["ports"]
                    .as_array()
                    .is_some_and(|ports| ports.iter().any(|p| p.as_str() == Some(port.as_str())))),
        "the endpoints must list the host and port of the credentials: {}",
        reply.text
    );
}

#[tokio::test]
async fn binding_omits_undeclared_requires_fields() {
    let broker = TestBroker::start_standard();
    let instance_id = ready_instance(&broker, PLAN_SYNC).await;

    let reply = broker.bind_ready(&instance_id, &new_id(), PLAN_SYNC).await;

    for field in ["syslog_drain_url", "route_service_url", "volume_mounts"] {
        assert!(
            reply.body.get(field).is_none(),
            "{field} needs a requires declaration the offering does not make: {}",
            reply.text
        );
    }
}

#[tokio::test]
async fn rotation_keeps_both_bindings_valid() {
    let broker = TestBroker::start_standard();
    let instance_id = ready_instance(&broker, PLAN_SYNC).await;
    let old_id = new_id();
    let new_binding_id = new_id();
    let old = broker.bind_ready(&instance_id, &old_id, PLAN_SYNC).await;

    let mut body = bind_body(SERVICE_ID, PLAN_SYNC);
    body["predecessor_binding_id"] = json!(old_id);
    let rotated = broker
        .put(&binding_path(&instance_id, &new_binding_id, false), &body)
        .await;

    assert_eq!(rotated.status, 201, "rotation: {}", rotated.text);
    assert!(
        rotated.body["credentials"].is_object(),
        "the rotation returns credentials"
    );
    assert_ne!(
        rotated.body["credentials"]["password"], old.body["credentials"]["password"],
        "the new binding has new credentials"
    );
    let old_fetched = broker
        .get(&binding_path(&instance_id, &old_id, false))
        .await;
    assert_eq!(
        old_fetched.status, 200,
        "the predecessor stays valid: {}",
        old_fetched.text
    );
    assert_eq!(
        old_fetched.body["credentials"], old.body["credentials"],
        "the predecessor keeps its credentials"
    );
    let new_fetched = broker
        .get(&binding_path(&instance_id, &new_binding_id, false))
        .await;
    assert_eq!(
        new_fetched.status, 200,
        "the new binding is valid: {}",
        new_fetched.text
    );
}

#[tokio::test]
async fn rotation_of_unknown_predecessor_returns_400() {
    let broker = TestBroker::start_standard();
    let instance_id = ready_instance(&broker, PLAN_SYNC).await;
    let other_instance = ready_instance(&broker, PLAN_SYNC).await;
    let foreign_binding = new_id();
    broker
        .bind_ready(&other_instance, &foreign_binding, PLAN_SYNC)
        .await;

    for predecessor in [new_id(), foreign_binding] {
        let binding_id = new_id();
        let mut body = bind_body(SERVICE_ID, PLAN_SYNC);
        body["predecessor_binding_id"] = json!(predecessor);
        let path = binding_path(&instance_id, &binding_id, false);
        let reply = broker.put(&path, &body).await;
        let context = format!("rotation of {predecessor}");
        reply.assert_osb_error(400, &context);
        let fetched = broker.get(&path).await;
        assert_eq!(
            fetched.status, 404,
            "{context}: the rejected rotation must create nothing"
        );
    }
}

#[tokio::test]
async fn rotation_on_non_rotatable_plan_returns_400() {
    let broker = TestBroker::start_standard();
    let instance_id = ready_instance(&broker, PLAN_EXPIRING).await;
    let old_id = new_id();
    broker
        .bind_ready(&instance_id, &old_id, PLAN_EXPIRING)
        .await;

    let mut body = bind_body(SERVICE_ID, PLAN_EXPIRING);
    body["predecessor_binding_id"] = json!(old_id);
    let reply = broker
        .put(&binding_path(&instance_id, &new_id(), false), &body)
        .await;

    reply.assert_osb_error(400, "rotation on a plan without binding_rotatable");
}

// Fetch

#[tokio::test]
async fn fetch_binding_returns_credentials_and_parameters() {
    let broker = TestBroker::start_standard();
    let instance_id = ready_instance(&broker, PLAN_SYNC).await;
    let binding_id = new_id();
    let path = binding_path(&instance_id, &binding_id, false);
    let mut body = bind_body(SERVICE_ID, PLAN_SYNC);
    body["parameters"] = json!({"role": "write"});
    let bound = broker.put(&path, &body).await;
    assert_eq!(bound.status, 201, "bind: {}", bound.text);

    let fetched = broker.get(&path).await;

    assert_eq!(fetched.status, 200, "fetch: {}", fetched.text);
    assert_eq!(
        fetched.body["credentials"], bound.body["credentials"],
        "credentials"
    );
    assert_eq!(
        fetched.body["endpoints"], bound.body["endpoints"],
        "endpoints"
    );
    assert_eq!(
        fetched.body["parameters"],
        json!({"role": "write"}),
        "parameters"
    );
    let with_hints = broker
        .get(&format!(
            "{path}?service_id={SERVICE_ID}&plan_id={PLAN_SYNC}"
        ))
        .await;
    assert_eq!(
        with_hints.status, 200,
        "fetch with query hints: {}",
        with_hints.text
    );
}

#[tokio::test]
async fn fetch_missing_binding_returns_404() {
    let broker = TestBroker::start_standard();
    let instance_id = ready_instance(&broker, PLAN_SYNC).await;
    let other_instance = ready_instance(&broker, PLAN_SYNC).await;
    let binding_id = new_id();
    broker
        .bind_ready(&instance_id, &binding_id, PLAN_SYNC)
        .await;

    let unknown = broker
        .get(&binding_path(&instance_id, &new_id(), false))
        .await;
    unknown.assert_osb_error(404, "fetch of an unknown binding");
    let wrong_instance = broker
        .get(&binding_path(&other_instance, &binding_id, false))
        .await;
    wrong_instance.assert_osb_error(404, "fetch of a binding under another instance");
    let unknown_instance = broker
        .get(&binding_path(&new_id(), &binding_id, false))
        .await;
    unknown_instance.assert_osb_error(404, "fetch of a binding under an unknown instance");
}

#[tokio::test]
async fn fetch_failed_bind_returns_404() {
    let broker = TestBroker::start_standard();
    let instance_id = ready_instance(&broker, PLAN_FAIL_LATER).await;
    let binding_id = new_id();
    let path = binding_path(&instance_id, &binding_id, false);
    let reply = broker
        .put(&path, &bind_body(SERVICE_ID, PLAN_FAIL_LATER))
        .await;
    reply.assert_osb_error(500, "failing bind");

    let fetched = broker.get(&path).await;

    fetched.assert_osb_error(404, "fetch after a failed bind");
}

// Unbind

#[tokio::test]
async fn unbind_returns_200_and_deletes_binding() {
    let broker = TestBroker::start_standard();
    let instance_id = ready_instance(&broker, PLAN_SYNC).await;
    let binding_id = new_id();
    let first = broker
        .bind_ready(&instance_id, &binding_id, PLAN_SYNC)
        .await;

    let reply = broker
        .delete(&unbind_path(&instance_id, &binding_id, PLAN_SYNC))
        .await;

    assert_eq!(reply.status, 200, "unbind: {}", reply.text);
    assert_eq!(reply.body, json!({}), "the body must be {{}}");
    let fetched = broker
        .get(&binding_path(&instance_id, &binding_id, false))
        .await;
    fetched.assert_osb_error(404, "fetch of the deleted binding");
    let again = broker
        .bind_ready(&instance_id, &binding_id, PLAN_SYNC)
        .await;
    assert_ne!(
        again.body["credentials"]["password"], first.body["credentials"]["password"],
        "a new binding with the old id gets new credentials"
    );
    let instance = broker.get(&instance_path(&instance_id, false)).await;
    assert_eq!(
        instance.status, 200,
        "unbind keeps the instance: {}",
        instance.text
    );
}

#[tokio::test]
async fn unbind_missing_binding_returns_410() {
    let broker = TestBroker::start_standard();
    let instance_id = ready_instance(&broker, PLAN_SYNC).await;
    let other_instance = ready_instance(&broker, PLAN_SYNC).await;
    let binding_id = new_id();
    broker
        .bind_ready(&instance_id, &binding_id, PLAN_SYNC)
        .await;

    let unknown = broker
        .delete(&unbind_path(&instance_id, &new_id(), PLAN_SYNC))
        .await;
    unknown.assert_osb_error(410, "unbind of an unknown binding");
    let wrong_instance = broker
        .delete(&unbind_path(&other_instance, &binding_id, PLAN_SYNC))
        .await;
    wrong_instance.assert_osb_error(410, "unbind of a binding under another instance");
    let fetched = broker
        .get(&binding_path(&instance_id, &binding_id, false))
        .await;
    assert_eq!(
        fetched.status, 200,
        "the binding under its own instance is untouched"
    );

    let first = broker
        .delete(&unbind_path(&instance_id, &binding_id, PLAN_SYNC))
        .await;
    assert_eq!(first.status, 200, "first unbind: {}", first.text);
    let second = broker
        .delete(&unbind_path(&instance_id, &binding_id, PLAN_SYNC))
        .await;
    second.assert_osb_error(410, "second unbind");
}

#[tokio::test]
async fn unbind_missing_query_returns_400() {
    let broker = TestBroker::start_standard();
    let instance_id = ready_instance(&broker, PLAN_SYNC).await;
    let binding_id = new_id();
    broker
        .bind_ready(&instance_id, &binding_id, PLAN_SYNC)
        .await;
    let path = binding_path(&instance_id, &binding_id, false);

    for query in [
        String::new(),
        format!("?service_id={SERVICE_ID}"),
        format!("?plan_id={PLAN_SYNC}"),
        format!("?service_id=&plan_id={PLAN_SYNC}"),
        format!("?service_id={SERVICE_ID}&plan_id="),
        format!("?service_id={SERVICE_ID}&plan_id={PLAN_SYNC}&accepts_incomplete=yes"),
    ] {
        let reply = broker.delete(&format!("{path}{query}")).await;
        let context = format!("unbind with query {query:?}");
        reply.assert_osb_error(400, &context);
        let fetched = broker.get(&path).await;
        assert_eq!(
            fetched.status, 200,
            "{context}: the binding must still exist"
        );
    }
}

#[tokio::test]
async fn unbind_async_only_without_flag_returns_422() {
    let broker = TestBroker::start_standard();
    let instance_id = ready_instance(&broker, PLAN_ASYNC).await;
    let binding_id = new_id();
    let bound = broker
        .put(
            &binding_path(&instance_id, &binding_id, true),
            &bind_body(SERVICE_ID, PLAN_ASYNC),
        )
        .await;
    assert_eq!(bound.status, 202, "asynchronous bind: {}", bound.text);
    let state = broker
        .wait_binding_operation(&instance_id, &binding_id, bound.operation().as_deref())
        .await;
    assert_eq!(state["state"], "succeeded", "bind: {state}");

    let reply = broker
        .delete(&unbind_path(&instance_id, &binding_id, PLAN_ASYNC))
        .await;

    reply.assert_osb_error(
        422,
        "unbind of an asynchronous-only plan without accepts_incomplete",
    );
    assert_eq!(reply.error(), Some("AsyncRequired"), "error code");
    let fetched = broker
        .get(&binding_path(&instance_id, &binding_id, false))
        .await;
    assert_eq!(
        fetched.status, 200,
        "the binding must still exist: {}",
        fetched.text
    );
}
