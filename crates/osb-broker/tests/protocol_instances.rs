//! Service instances within the request: provision, fetch, update and
//! deprovision, their statuses, bodies and idempotency.

mod support;

use serde_json::{json, Value};
use support::*;

fn fetch_path(instance_id: &str) -> String {
    instance_path(instance_id, false)
}

async fn assert_not_provisioned(broker: &TestBroker, instance_id: &str, context: &str) {
    let fetched = broker.get(&fetch_path(instance_id)).await;
    assert_eq!(
        fetched.status, 404,
        "{context}: the instance must not exist: {}",
        fetched.text
    );
}

// Provision

#[tokio::test]
async fn provision_new_instance_returns_201() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();

    let reply = broker.provision(&instance_id, PLAN_SYNC, false).await;

    assert_eq!(reply.status, 201, "provision: {}", reply.text);
    assert!(
        reply.body.is_object(),
        "the body must be a JSON object: {}",
        reply.text
    );
    assert_eq!(
        reply.body["dashboard_url"],
        format!("https://dashboard.example.test/{instance_id}"),
        "the dashboard_url must be in the provision response"
    );
    assert!(
        reply.body.get("operation").is_none(),
        "a synchronous provision has no operation"
    );
}

#[tokio::test]
async fn provision_ignores_accepts_incomplete_when_synchronous() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();

    let reply = broker.provision(&instance_id, PLAN_SYNC, true).await;

    assert_eq!(
        reply.status, 201,
        "a synchronous plan may return 201 despite accepts_incomplete: {}",
        reply.text
    );
    let fetched = broker.get(&fetch_path(&instance_id)).await;
    assert_eq!(
        fetched.status, 200,
        "the instance exists at once: {}",
        fetched.text
    );
}

#[tokio::test]
async fn provision_repeat_identical_returns_200() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    let mut body = provision_body(SERVICE_ID, PLAN_SYNC);
    body["parameters"] = json!({"size_gb": 5});

    let first = broker.provision_body(&instance_id, &body, false).await;
    assert_eq!(first.status, 201, "first provision: {}", first.text);
    body["context"]["instance_name"] = json!("renamed-by-the-platform");
    let second = broker.provision_body(&instance_id, &body, false).await;

    assert_eq!(
        second.status, 200,
        "an identical repeat must return 200: {}",
        second.text
    );
    assert_eq!(
        second.body["dashboard_url"], first.body["dashboard_url"],
        "the repeat must return the same dashboard_url"
    );
}

#[tokio::test]
async fn provision_repeat_different_returns_409() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    let mut original = provision_body(SERVICE_ID, PLAN_SYNC);
    original["parameters"] = json!({"size_gb": 5});
    let first = broker.provision_body(&instance_id, &original, false).await;
    assert_eq!(first.status, 201, "first provision: {}", first.text);

    let mut other_parameters = original.clone();
    other_parameters["parameters"] = json!({"size_gb": 6});
    let mut other_plan = original.clone();
    other_plan["plan_id"] = json!(PLAN_SYNC_LARGE);
    other_plan.as_object_mut().unwrap().remove("parameters");
    let mut other_space = original.clone();
    other_space["space_guid"] = json!("another-space");
    let mut other_organization = original.clone();
    other_organization["organization_guid"] = json!("another-org");

    for (name, body) in [
        ("other parameters", other_parameters),
        ("other plan", other_plan),
        ("other space_guid", other_space),
        ("other organization_guid", other_organization),
    ] {
        let reply = broker.provision_body(&instance_id, &body, false).await;
        reply.assert_osb_error(409, &format!("provision with {name}"));
    }

    let fetched = broker.get(&fetch_path(&instance_id)).await;
    assert_eq!(fetched.status, 200, "fetch: {}", fetched.text);
    assert_eq!(
        fetched.body["plan_id"], PLAN_SYNC,
        "the conflicting requests must not change the plan"
    );
    assert_eq!(
        fetched.body["parameters"],
        json!({"size_gb": 5}),
        "the conflicting requests must not change the parameters"
    );
}

#[tokio::test]
async fn provision_invalid_parameters_returns_400() {
    let broker = TestBroker::start_standard();

    for parameters in [
        json!({"size_gb": 0}),
        json!({"size_gb": "big"}),
        json!({"size_gb": 101}),
    ] {
        let instance_id = new_id();
        let mut body = provision_body(SERVICE_ID, PLAN_SYNC);
        body["parameters"] = parameters.clone();

        let reply = broker.provision_body(&instance_id, &body, false).await;

        let context = format!("provision with parameters {parameters}");
        reply.assert_osb_error(400, &context);
        assert!(
            reply.body["description"]
                .as_str()
                .unwrap_or("")
                .contains("size_gb"),
            "{context}: the description must name the field: {}",
            reply.text
        );
        assert_not_provisioned(&broker, &instance_id, &context).await;
    }
}

#[tokio::test]
async fn provision_rejected_by_backend_returns_400() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();

    let reply = broker
        .provision(&instance_id, PLAN_INVALID_PARAMETERS, false)
        .await;

    reply.assert_osb_error(400, "provision whose parameters the backend rejects");
    assert_not_provisioned(&broker, &instance_id, "after the rejected provision").await;
    let retry = broker.provision(&instance_id, PLAN_SYNC, false).await;
    assert_eq!(
        retry.status, 201,
        "the id is free again after a rejection: {}",
        retry.text
    );
}

#[tokio::test]
async fn provision_missing_mandatory_fields_returns_400() {
    let broker = TestBroker::start_standard();
    let complete = provision_body(SERVICE_ID, PLAN_SYNC);
    let mut cases: Vec<(String, Value)> = Vec::new();
    for field in ["service_id", "plan_id", "organization_guid", "space_guid"] {
        let mut missing = complete.clone();
        missing.as_object_mut().unwrap().remove(field);
        cases.push((format!("without {field}"), missing));
        let mut empty = complete.clone();
        empty[field] = json!("");
        cases.push((format!("with an empty {field}"), empty));
    }
    let mut unknown_service = complete.clone();
    unknown_service["service_id"] = json!("no-such-service");
    cases.push(("with an unknown service_id".to_owned(), unknown_service));
    let mut unknown_plan = complete.clone();
    unknown_plan["plan_id"] = json!("no-such-plan");
    cases.push(("with an unknown plan_id".to_owned(), unknown_plan));
    let mut foreign_plan = complete.clone();
    foreign_plan["plan_id"] = json!(PLAN_STATIC);
    cases.push(("with a plan of another offering".to_owned(), foreign_plan));
    let mut parameters_not_object = complete.clone();
    parameters_not_object["parameters"] = json!([1, 2]);
    cases.push((
        "with parameters that are not an object".to_owned(),
        parameters_not_object,
    ));
    let mut context_not_object = complete.clone();
    context_not_object["context"] = json!("cloudfoundry");
    cases.push((
        "with a context that is not an object".to_owned(),
        context_not_object,
    ));

    for (name, body) in cases {
        let instance_id = new_id();
        let reply = broker.provision_body(&instance_id, &body, false).await;
        let context = format!("provision {name}");
        reply.assert_osb_error(400, &context);
        assert_not_provisioned(&broker, &instance_id, &context).await;
    }
}

#[tokio::test]
async fn provision_async_only_without_flag_returns_422() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();

    for path in [
        instance_path(&instance_id, false),
        format!("{}?accepts_incomplete=false", fetch_path(&instance_id)),
    ] {
        let reply = broker
            .put(&path, &provision_body(SERVICE_ID, PLAN_ASYNC))
            .await;

        reply.assert_osb_error(422, &format!("PUT {path}"));
        assert_eq!(
            reply.error(),
            Some("AsyncRequired"),
            "PUT {path}: error code"
        );
    }
    assert_not_provisioned(&broker, &instance_id, "after AsyncRequired").await;
    let last_operation = broker
        .get(&last_operation_path(&fetch_path(&instance_id), None))
        .await;
    assert_eq!(
        last_operation.status, 404,
        "no operation may exist after AsyncRequired"
    );
}

#[tokio::test]
async fn provision_maintenance_mismatch_returns_422() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    let mut body = provision_body(SERVICE_ID, PLAN_SYNC);
    body["maintenance_info"] = json!({"version": "0.9.0"});

    let reply = broker.provision_body(&instance_id, &body, false).await;

    reply.assert_osb_error(422, "provision with an old maintenance version");
    assert_eq!(reply.error(), Some("MaintenanceInfoConflict"), "error code");
    assert_not_provisioned(&broker, &instance_id, "after MaintenanceInfoConflict").await;

    let mut no_maintenance_plan = provision_body(SERVICE_ID, PLAN_ASYNC);
    no_maintenance_plan["maintenance_info"] = json!({"version": "1.0.0"});
    let reply = broker
        .provision_body(&new_id(), &no_maintenance_plan, true)
        .await;
    reply.assert_osb_error(422, "maintenance_info for a plan without one");
    assert_eq!(
        reply.error(),
        Some("MaintenanceInfoConflict"),
        "error code for a plan without one"
    );

    body["maintenance_info"] = json!({"version": "1.0.0", "description": "ignored"});
    let reply = broker.provision_body(&instance_id, &body, false).await;
    assert_eq!(
        reply.status, 201,
        "the catalog's version is accepted: {}",
        reply.text
    );
}

#[tokio::test]
async fn provision_returns_dashboard_url_initially() {
    let broker = TestBroker::start_standard();
    let sync_id = new_id();
    let async_id = new_id();

    let sync = broker.provision(&sync_id, PLAN_SYNC, false).await;
    let asynchronous = broker.provision(&async_id, PLAN_ASYNC, true).await;

    assert_eq!(sync.status, 201, "synchronous provision: {}", sync.text);
    assert_eq!(
        sync.body["dashboard_url"],
        format!("https://dashboard.example.test/{sync_id}"),
        "the synchronous response carries the dashboard_url"
    );
    assert_eq!(
        asynchronous.status, 202,
        "asynchronous provision: {}",
        asynchronous.text
    );
    assert_eq!(
        asynchronous.body["dashboard_url"],
        format!("https://dashboard.example.test/{async_id}"),
        "a broker that has a dashboard_url must return it in the initial response, even when it provisions asynchronously: {}",
        asynchronous.text
    );
}

// Fetch

#[tokio::test]
async fn fetch_instance_returns_its_attributes() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    let mut body = provision_body(SERVICE_ID, PLAN_SYNC);
    body["parameters"] = json!({"size_gb": 7});
    let reply = broker.provision_body(&instance_id, &body, false).await;
    assert_eq!(reply.status, 201, "provision: {}", reply.text);

    let fetched = broker.get(&fetch_path(&instance_id)).await;

    assert_eq!(fetched.status, 200, "fetch: {}", fetched.text);
    assert_eq!(fetched.body["service_id"], SERVICE_ID, "service_id");
    assert_eq!(fetched.body["plan_id"], PLAN_SYNC, "plan_id");
    assert_eq!(
        fetched.body["parameters"],
        json!({"size_gb": 7}),
        "parameters"
    );
    assert_eq!(
        fetched.body["dashboard_url"],
        format!("https://dashboard.example.test/{instance_id}"),
        "dashboard_url"
    );
    assert_eq!(
        fetched.body["maintenance_info"]["version"], "1.0.0",
        "maintenance_info.version"
    );
    let with_hints = broker
        .get(&format!(
            "{}?service_id={SERVICE_ID}&plan_id={PLAN_SYNC}",
            fetch_path(&instance_id)
        ))
        .await;
    assert_eq!(
        with_hints.status, 200,
        "fetch with query hints: {}",
        with_hints.text
    );
}

#[tokio::test]
async fn fetch_instance_works_for_every_plan() {
    let broker = TestBroker::start_standard();

    for plan_id in [
        PLAN_SYNC,
        PLAN_SYNC_LARGE,
        PLAN_FAIL_LATER,
        PLAN_FIXED,
        PLAN_UNBINDABLE,
        PLAN_ASYNC,
    ] {
        let instance_id = new_id();
        broker.provision_ready(&instance_id, plan_id).await;

        let fetched = broker.get(&fetch_path(&instance_id)).await;

        assert_eq!(
            fetched.status, 200,
            "fetch of an instance of plan {plan_id}: {}",
            fetched.text
        );
        assert_eq!(fetched.body["plan_id"], plan_id, "plan {plan_id}: plan_id");
    }
}

#[tokio::test]
async fn fetch_missing_instance_returns_404() {
    let broker = TestBroker::start_standard();

    let reply = broker.get(&fetch_path(&new_id())).await;

    reply.assert_osb_error(404, "fetch of an unknown instance");
}

#[tokio::test]
async fn fetch_failed_provision_returns_404() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    let reply = broker
        .provision(&instance_id, PLAN_FAIL_PROVISION, false)
        .await;
    reply.assert_osb_error(500, "failing provision");

    let fetched = broker.get(&fetch_path(&instance_id)).await;

    fetched.assert_osb_error(404, "fetch after a failed provision");
}

// Update

#[tokio::test]
async fn plan_change_applies_when_plan_updateable() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    broker.provision_ready(&instance_id, PLAN_SYNC).await;

    let reply = broker
        .patch(
            &fetch_path(&instance_id),
            &json!({"service_id": SERVICE_ID, "plan_id": PLAN_SYNC_LARGE}),
        )
        .await;

    assert_eq!(reply.status, 200, "plan change: {}", reply.text);
    assert!(
        reply.body.is_object(),
        "the body must be a JSON object: {}",
        reply.text
    );
    let fetched = broker.get(&fetch_path(&instance_id)).await;
    assert_eq!(
        fetched.body["plan_id"], PLAN_SYNC_LARGE,
        "the instance moved to the new plan"
    );
    assert_eq!(
        fetched.body["maintenance_info"]["version"], "2.0.0",
        "the instance has the new plan's maintenance version"
    );
}

#[tokio::test]
async fn plan_change_rejected_when_not_updateable() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    broker.provision_ready(&instance_id, PLAN_FIXED).await;

    let reply = broker
        .patch(
            &fetch_path(&instance_id),
            &json!({"service_id": SERVICE_ID, "plan_id": PLAN_SYNC}),
        )
        .await;

    reply.assert_osb_error(
        400,
        "a plan change from a plan that is not plan_updateable is a request the platform must not send",
    );
    let fetched = broker.get(&fetch_path(&instance_id)).await;
    assert_eq!(
        fetched.body["plan_id"], PLAN_FIXED,
        "the plan must not change"
    );

    let parameters_only = broker
        .patch(
            &fetch_path(&instance_id),
            &json!({"service_id": SERVICE_ID, "parameters": {"a": 1}}),
        )
        .await;
    assert_eq!(
        parameters_only.status, 200,
        "parameter updates stay allowed: {}",
        parameters_only.text
    );
}

#[tokio::test]
async fn unsupported_update_returns_422_with_description() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    broker
        .provision_ready(&instance_id, PLAN_UNPROCESSABLE_UPDATE)
        .await;

    let reply = broker
        .patch(
            &fetch_path(&instance_id),
            &json!({"service_id": SERVICE_ID, "parameters": {"a": 1}}),
        )
        .await;

    reply.assert_osb_error(422, "update the backend cannot make");
    assert!(
        reply.body["instance_usable"].is_boolean(),
        "a failed update reports instance_usable: {}",
        reply.text
    );
    assert!(
        reply.body["update_repeatable"].is_boolean(),
        "a failed update reports update_repeatable: {}",
        reply.text
    );
    let fetched = broker.get(&fetch_path(&instance_id)).await;
    assert_eq!(
        fetched.body["parameters"],
        json!({}),
        "the rejected update must change nothing"
    );
}

#[tokio::test]
async fn context_only_update_returns_200() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    let mut body = provision_body(SERVICE_ID, PLAN_SYNC);
    body["parameters"] = json!({"size_gb": 3});
    broker.provision_body(&instance_id, &body, false).await;

    let update = json!({
        "service_id": SERVICE_ID,
        "context": {"platform": "cloudfoundry", "instance_name": "renamed", "space_name": "other"}
    });
    let reply = broker.patch(&fetch_path(&instance_id), &update).await;

    assert_eq!(reply.status, 200, "context-only update: {}", reply.text);
    let fetched = broker.get(&fetch_path(&instance_id)).await;
    assert_eq!(
        fetched.body["plan_id"], PLAN_SYNC,
        "a context update keeps the plan"
    );
    assert_eq!(
        fetched.body["parameters"],
        json!({"size_gb": 3}),
        "a context update keeps the parameters"
    );
}

#[tokio::test]
async fn update_without_plan_keeps_plan() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    let mut body = provision_body(SERVICE_ID, PLAN_SYNC);
    body["parameters"] = json!({"size_gb": 3});
    broker.provision_body(&instance_id, &body, false).await;

    let reply = broker
        .patch(
            &fetch_path(&instance_id),
            &json!({"service_id": SERVICE_ID, "parameters": {"size_gb": 4}}),
        )
        .await;
    assert_eq!(reply.status, 200, "parameter update: {}", reply.text);
    let fetched = broker.get(&fetch_path(&instance_id)).await;
    assert_eq!(
        fetched.body["plan_id"], PLAN_SYNC,
        "an update without plan_id keeps the plan"
    );
    assert_eq!(
        fetched.body["parameters"]["size_gb"], 4,
        "the parameter update is applied"
    );

    let reply = broker
        .patch(
            &fetch_path(&instance_id),
            &json!({"service_id": SERVICE_ID, "plan_id": PLAN_SYNC_LARGE}),
        )
        .await;
    assert_eq!(reply.status, 200, "plan update: {}", reply.text);
    let fetched = broker.get(&fetch_path(&instance_id)).await;
    assert_eq!(
        fetched.body["plan_id"], PLAN_SYNC_LARGE,
        "the plan update is applied"
    );
    assert_eq!(
        fetched.body["parameters"]["size_gb"], 4,
        "an update without parameters keeps the parameters"
    );
}

#[tokio::test]
async fn update_without_effect_returns_200() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    broker.provision_ready(&instance_id, PLAN_SYNC).await;

    for body in [
        json!({"service_id": SERVICE_ID}),
        json!({"service_id": SERVICE_ID, "plan_id": PLAN_SYNC}),
        json!({"service_id": SERVICE_ID, "maintenance_info": {"version": "1.0.0"}}),
    ] {
        let reply = broker.patch(&fetch_path(&instance_id), &body).await;
        assert_eq!(reply.status, 200, "update {body}: {}", reply.text);
        assert!(
            reply.body.is_object(),
            "update {body}: the body must be a JSON object"
        );
    }
}

#[tokio::test]
async fn update_malformed_request_returns_400() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    let mut body = provision_body(SERVICE_ID, PLAN_SYNC);
    body["parameters"] = json!({"size_gb": 3});
    broker.provision_body(&instance_id, &body, false).await;

    let cases = [
        ("without service_id", json!({"plan_id": PLAN_SYNC_LARGE})),
        (
            "with an empty service_id",
            json!({"service_id": "", "plan_id": PLAN_SYNC_LARGE}),
        ),
        (
            "with another offering's service_id",
            json!({"service_id": STATIC_SERVICE_ID, "plan_id": PLAN_STATIC}),
        ),
        (
            "with an unknown plan_id",
            json!({"service_id": SERVICE_ID, "plan_id": "no-such-plan"}),
        ),
        (
            "with an empty plan_id",
            json!({"service_id": SERVICE_ID, "plan_id": ""}),
        ),
        (
            "with parameters violating the schema",
            json!({"service_id": SERVICE_ID, "parameters": {"size_gb": -1}}),
        ),
        (
            "with parameters that are not an object",
            json!({"service_id": SERVICE_ID, "parameters": "big"}),
        ),
    ];
    for (name, update) in cases {
        let reply = broker.patch(&fetch_path(&instance_id), &update).await;
        let context = format!("update {name}");
        reply.assert_osb_error(400, &context);
        let fetched = broker.get(&fetch_path(&instance_id)).await;
        assert_eq!(
            fetched.body["plan_id"], PLAN_SYNC,
            "{context}: the plan must not change"
        );
        assert_eq!(
            fetched.body["parameters"],
            json!({"size_gb": 3}),
            "{context}: the parameters must not change"
        );
    }
}

#[tokio::test]
async fn update_missing_instance_returns_404() {
    let broker = TestBroker::start_standard();

    let reply = broker
        .patch(
            &fetch_path(&new_id()),
            &json!({"service_id": SERVICE_ID, "parameters": {"size_gb": 2}}),
        )
        .await;

    reply.assert_osb_error(404, "update of an unknown instance");
}

#[tokio::test]
async fn update_async_only_without_flag_returns_422() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    broker.provision_ready(&instance_id, PLAN_ASYNC).await;

    let reply = broker
        .patch(
            &fetch_path(&instance_id),
            &json!({"service_id": SERVICE_ID, "parameters": {"a": 1}}),
        )
        .await;

    reply.assert_osb_error(
        422,
        "update of an asynchronous-only plan without accepts_incomplete",
    );
    assert_eq!(reply.error(), Some("AsyncRequired"), "error code");
    let fetched = broker.get(&fetch_path(&instance_id)).await;
    assert_eq!(
        fetched.body["parameters"],
        json!({}),
        "the rejected update must change nothing"
    );
}

#[tokio::test]
async fn update_maintenance_mismatch_returns_422() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    broker.provision_ready(&instance_id, PLAN_SYNC).await;

    let reply = broker
        .patch(
            &fetch_path(&instance_id),
            &json!({"service_id": SERVICE_ID, "parameters": {"size_gb": 9}, "maintenance_info": {"version": "9.9.9"}}),
        )
        .await;

    reply.assert_osb_error(422, "update with an unknown maintenance version");
    assert_eq!(reply.error(), Some("MaintenanceInfoConflict"), "error code");
    let fetched = broker.get(&fetch_path(&instance_id)).await;
    assert_eq!(
        fetched.body["parameters"],
        json!({}),
        "the rejected update must change nothing"
    );
    assert_eq!(
        fetched.body["maintenance_info"]["version"], "1.0.0",
        "the maintenance version must not change"
    );
}

#[tokio::test]
async fn failed_update_changes_nothing() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    let mut body = provision_body(SERVICE_ID, PLAN_FAIL_LATER);
    body["parameters"] = json!({"kept": true});
    let reply = broker.provision_body(&instance_id, &body, false).await;
    assert_eq!(reply.status, 201, "provision: {}", reply.text);

    let reply = broker
        .patch(
            &fetch_path(&instance_id),
            &json!({"service_id": SERVICE_ID, "parameters": {"kept": false}, "context": {"platform": "cloudfoundry", "space_name": "new"}}),
        )
        .await;

    reply.assert_osb_error(500, "update that fails inside the backend");
    assert!(
        !reply.text.contains("simulated failure"),
        "the backend's error text must not reach the client: {}",
        reply.text
    );
    let fetched = broker.get(&fetch_path(&instance_id)).await;
    assert_eq!(
        fetched.status, 200,
        "fetch after the failed update: {}",
        fetched.text
    );
    assert_eq!(
        fetched.body["plan_id"], PLAN_FAIL_LATER,
        "a 5xx update must not change the plan"
    );
    assert_eq!(
        fetched.body["parameters"],
        json!({"kept": true}),
        "a 5xx update must not change the parameters"
    );
}

#[tokio::test]
async fn update_keeps_dashboard_url() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    broker.provision_ready(&instance_id, PLAN_SYNC).await;

    let reply = broker
        .patch(
            &fetch_path(&instance_id),
            &json!({"service_id": SERVICE_ID, "parameters": {"size_gb": 8}}),
        )
        .await;
    assert_eq!(reply.status, 200, "update: {}", reply.text);

    let fetched = broker.get(&fetch_path(&instance_id)).await;
    assert_eq!(
        fetched.body["dashboard_url"],
        format!("https://dashboard.example.test/{instance_id}"),
        "an update that returns no dashboard_url keeps the previous one"
    );
}

// Deprovision

#[tokio::test]
async fn deprovision_returns_200_empty_object() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    broker.provision_ready(&instance_id, PLAN_SYNC).await;

    let reply = broker
        .delete(&delete_path(&fetch_path(&instance_id), PLAN_SYNC, false))
        .await;

    assert_eq!(reply.status, 200, "deprovision: {}", reply.text);
    assert_eq!(reply.body, json!({}), "the body must be {{}}");
}

#[tokio::test]
async fn deprovision_removes_instance_and_bindings() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    let binding_id = new_id();
    broker.provision_ready(&instance_id, PLAN_SYNC).await;
    broker
        .bind_ready(&instance_id, &binding_id, PLAN_SYNC)
        .await;

    let reply = broker
        .delete(&delete_path(&fetch_path(&instance_id), PLAN_SYNC, false))
        .await;
    assert_eq!(reply.status, 200, "deprovision: {}", reply.text);

    let fetched = broker.get(&fetch_path(&instance_id)).await;
    fetched.assert_osb_error(404, "fetch of the deleted instance");
    let binding = broker
        .get(&binding_path(&instance_id, &binding_id, false))
        .await;
    binding.assert_osb_error(404, "fetch of a binding of the deleted instance");
    let unbind = broker
        .delete(&delete_path(
            &binding_path(&instance_id, &binding_id, false),
            PLAN_SYNC,
            false,
        ))
        .await;
    unbind.assert_osb_error(410, "unbind of a binding of the deleted instance");
}

#[tokio::test]
async fn deprovision_missing_instance_returns_410() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();

    let unknown = broker
        .delete(&delete_path(&fetch_path(&instance_id), PLAN_SYNC, false))
        .await;
    unknown.assert_osb_error(410, "deprovision of an unknown instance");

    broker.provision_ready(&instance_id, PLAN_SYNC).await;
    let first = broker
        .delete(&delete_path(&fetch_path(&instance_id), PLAN_SYNC, false))
        .await;
    assert_eq!(first.status, 200, "first deprovision: {}", first.text);
    let second = broker
        .delete(&delete_path(&fetch_path(&instance_id), PLAN_SYNC, false))
        .await;
    second.assert_osb_error(410, "second deprovision");
}

#[tokio::test]
async fn deprovision_missing_query_returns_400() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    broker.provision_ready(&instance_id, PLAN_SYNC).await;
    let path = fetch_path(&instance_id);

    for query in [
        String::new(),
        format!("?service_id={SERVICE_ID}"),
        format!("?plan_id={PLAN_SYNC}"),
        format!("?service_id=&plan_id={PLAN_SYNC}"),
        format!("?service_id={SERVICE_ID}&plan_id="),
        format!("?service_id={SERVICE_ID}&plan_id={PLAN_SYNC}&accepts_incomplete=maybe"),
    ] {
        let reply = broker.delete(&format!("{path}{query}")).await;
        let context = format!("DELETE with query {query:?}");
        reply.assert_osb_error(400, &context);
        let fetched = broker.get(&path).await;
        assert_eq!(
            fetched.status, 200,
            "{context}: the instance must still exist"
        );
    }
}

#[tokio::test]
async fn deprovision_async_only_without_flag_returns_422() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    broker.provision_ready(&instance_id, PLAN_ASYNC).await;

    let reply = broker
        .delete(&delete_path(&fetch_path(&instance_id), PLAN_ASYNC, false))
        .await;

    reply.assert_osb_error(
        422,
        "deprovision of an asynchronous-only plan without accepts_incomplete",
    );
    assert_eq!(reply.error(), Some("AsyncRequired"), "error code");
    let fetched = broker.get(&fetch_path(&instance_id)).await;
    assert_eq!(
        fetched.status, 200,
        "the instance must still exist: {}",
        fetched.text
    );
}

#[tokio::test]
async fn failed_deprovision_keeps_instance() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    broker.provision_ready(&instance_id, PLAN_FAIL_LATER).await;

    let reply = broker
        .delete(&delete_path(
            &fetch_path(&instance_id),
            PLAN_FAIL_LATER,
            false,
        ))
        .await;

    reply.assert_osb_error(500, "deprovision that fails inside the backend");
    let fetched = broker.get(&fetch_path(&instance_id)).await;
    assert_eq!(
        fetched.status, 200,
        "a failed deprovision keeps the instance: {}",
        fetched.text
    );
}

#[tokio::test]
async fn failed_provision_can_be_deleted() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    let reply = broker
        .provision(&instance_id, PLAN_FAIL_PROVISION, false)
        .await;
    reply.assert_osb_error(500, "failing provision");

    let reply = broker
        .delete(&delete_path(
            &fetch_path(&instance_id),
            PLAN_FAIL_PROVISION,
            false,
        ))
        .await;

    assert!(
        reply.status == 200 || reply.status == 410,
        "deleting what a failed provision left returns 200 or 410, got {}: {}",
        reply.status,
        reply.text
    );
    let again = broker
        .delete(&delete_path(
            &fetch_path(&instance_id),
            PLAN_FAIL_PROVISION,
            false,
        ))
        .await;
    again.assert_osb_error(410, "a second delete");
}
