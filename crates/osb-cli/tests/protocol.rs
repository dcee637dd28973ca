//! The exact requests `osb` sends, and how it handles responses a conforming
//! broker never gives, against a scripted fake broker.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::fake_broker::{catalog, FakeBroker, Reply, Request};
use common::{Osb, TempDir, PASSWORD, USER};
use serde_json::{json, Value};

fn plan(id: &str, extra: Value) -> Value {
    let mut plan = json!({ "id": id, "name": id, "description": "a plan" });
    plan.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    plan
}

/// Starts a fake broker that serves the catalog itself and everything else with `handler`.
fn fake(plans: Value, mut handler: impl FnMut(&Request) -> Reply + Send + 'static) -> FakeBroker {
    let catalog = catalog(plans);
    FakeBroker::start(move |request| {
        if request.is("GET", "/v2/catalog") {
            Reply::json(200, catalog.clone())
        } else {
            handler(request)
        }
    })
}

fn osb_for(dir: &TempDir, broker: &FakeBroker) -> Osb {
    Osb {
        home: dir.path().join("home"),
        url: broker.url.clone(),
    }
}

fn decode_identity(request: &Request) -> (String, Value) {
    let header = request
        .header("X-Broker-API-Originating-Identity")
        .expect("originating identity header");
    let (platform, value) = header
        .split_once(' ')
        .expect("platform and value separated by a space");
    let json = base64::engine::general_purpose::STANDARD
        .decode(value)
        .expect("value is Base64");
    (
        platform.to_owned(),
        serde_json::from_slice(&json).expect("value is a JSON object"),
    )
}

#[test]
fn every_request_carries_osb_headers() {
    let mut polls = 0;
    let broker = fake(
        json!([plan(
            "p1",
            json!({ "maintenance_info": { "version": "2.0.0" } })
        )]),
        move |request| {
            if request.is("PUT", "") {
                Reply::json(202, json!({ "operation": "op/1 x&y" }))
            } else {
                polls += 1;
                let state = if polls == 1 {
                    "in progress"
                } else {
                    "succeeded"
                };
                Reply::json(200, json!({ "state": state })).header("Retry-After", "1")
            }
        },
    );
    let dir = TempDir::new();
    let osb = osb_for(&dir, &broker);
    osb.run(&[
        "provision",
        "db",
        "p1",
        "orders-db",
        "--as",
        "alice",
        "-c",
        r#"{"size":1}"#,
    ])
    .success();

    let requests = broker.requests();
    assert_eq!(
        requests.len(),
        4,
        "catalog, PUT and two polls: {requests:#?}"
    );
    let expected_auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    let mut identities = Vec::new();
    for request in &requests {
        assert_eq!(
            request.header("X-Broker-API-Version"),
            Some("2.17"),
            "{}",
            request.path
        );
        assert_eq!(
            request.header("Authorization"),
            Some(expected_auth.as_str())
        );
        let identity = request.header("X-Broker-API-Request-Identity").unwrap();
        assert!(uuid::Uuid::parse_str(identity).is_ok(), "{identity}");
        identities.push(identity.to_owned());
        let (platform, user) = decode_identity(request);
        assert_eq!(platform, "cloudfoundry");
        assert_eq!(user, json!({ "user_id": "alice" }));
    }
    identities.sort();
    identities.dedup();
    assert_eq!(
        identities.len(),
        requests.len(),
        "a fresh request identity per request"
    );

    let put = &requests[1];
    assert_eq!(
        put.query.get("accepts_incomplete").map(String::as_str),
        Some("true")
    );
    assert_eq!(put.header("Content-Type"), Some("application/json"));
    assert_eq!(put.body["service_id"], "svc");
    assert_eq!(put.body["plan_id"], "p1");
    assert_eq!(put.body["parameters"], json!({ "size": 1 }));
    assert_eq!(put.body["maintenance_info"], json!({ "version": "2.0.0" }));
    let context = &put.body["context"];
    assert_eq!(context["platform"], "cloudfoundry");
    assert_eq!(context["instance_name"], "orders-db");
    for key in [
        "organization_guid",
        "organization_name",
        "space_guid",
        "space_name",
    ] {
        assert!(
            context[key].as_str().is_some_and(|value| !value.is_empty()),
            "context.{key}"
        );
    }
    assert_eq!(put.body["organization_guid"], context["organization_guid"]);
    assert_eq!(put.body["space_guid"], context["space_guid"]);

    for poll in &requests[2..] {
        assert!(poll.path.ends_with("/last_operation"), "{}", poll.path);
        assert_eq!(
            poll.query.get("operation").map(String::as_str),
            Some("op/1 x&y")
        );
        assert_eq!(
            poll.query.get("service_id").map(String::as_str),
            Some("svc")
        );
        assert_eq!(poll.query.get("plan_id").map(String::as_str), Some("p1"));
    }
    let gap = requests[3].received_at - requests[2].received_at;
    assert!(
        gap >= Duration::from_millis(950),
        "Retry-After: 1 was not honoured: {gap:?}"
    );
}

#[test]
fn kubernetes_identity_matches_context() {
    let broker = fake(json!([plan("p1", json!({}))]), |_| {
        Reply::json(201, json!({}))
    });
    let dir = TempDir::new();
    let osb = osb_for(&dir, &broker);
    osb.run(&[
        "provision",
        "db",
        "p1",
        "k",
        "--platform",
        "kubernetes",
        "--as",
        "duke",
        "--cluster-id",
        "c-1",
    ])
    .success();
    let put = &broker.operation_requests()[0];
    let (platform, user) = decode_identity(put);
    assert_eq!(platform, "kubernetes");
    assert_eq!(user["username"], "duke");
    assert!(user["uid"].is_string());
    assert!(user["groups"].is_array());
    assert!(user["extra"].is_object());
    assert_eq!(put.body["context"]["platform"], "kubernetes");
    assert_eq!(put.body["context"]["clusterid"], "c-1");
    assert_eq!(put.body["context"]["namespace"], "default");
}

#[test]
fn async_required_retried_with_accepts_incomplete() {
    let broker = fake(json!([plan("p1", json!({}))]), |request| {
        if request.query.contains_key("accepts_incomplete") {
            Reply::json(201, json!({}))
        } else {
            Reply::json(
                422,
                json!({ "error": "AsyncRequired", "description": "async only" }),
            )
        }
    });
    let dir = TempDir::new();
    let osb = osb_for(&dir, &broker);
    osb.run(&["provision", "db", "p1", "x", "--prefer-sync"])
        .success();
    let requests = broker.operation_requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert!(!requests[0].query.contains_key("accepts_incomplete"));
    assert_eq!(
        requests[1]
            .query
            .get("accepts_incomplete")
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(osb.instance("x").unwrap()["state"], "ready");
}

#[test]
fn concurrency_error_waited_out_without_mitigation() {
    let mut puts = 0;
    let broker = fake(json!([plan("p1", json!({}))]), move |request| {
        if request.method == "PUT" {
            puts += 1;
            if puts == 1 {
                return Reply::json(422, json!({ "error": "ConcurrencyError" }));
            }
            return Reply::json(201, json!({}));
        }
        Reply::json(500, json!({}))
    });
    let dir = TempDir::new();
    let osb = osb_for(&dir, &broker);
    osb.run(&["provision", "db", "p1", "x"]).success();
    let requests = broker.operation_requests();
    assert_eq!(requests.len(), 2, "two PUTs and no DELETE: {requests:#?}");
    assert!(requests.iter().all(|request| request.method == "PUT"));
    assert!(requests[1].received_at - requests[0].received_at >= Duration::from_millis(950));
}

#[test]
fn concurrency_error_gives_up_with_hint() {
    let broker = fake(json!([plan("p1", json!({}))]), |request| {
        if request.method == "PUT" {
            Reply::json(
                422,
                json!({ "error": "ConcurrencyError", "description": "busy" }),
            )
        } else {
            Reply::json(500, json!({}))
        }
    });
    let dir = TempDir::new();
    let osb = osb_for(&dir, &broker);
    let run = osb
        .run(&["provision", "db", "p1", "x", "--timeout", "2s"])
        .expect_code(1);
    assert!(
        run.stderr
            .contains("broker answered 422 ConcurrencyError: busy"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("hint: another operation is in progress"),
        "{}",
        run.stderr
    );
    assert!(
        broker
            .operation_requests()
            .iter()
            .all(|request| request.method == "PUT"),
        "no orphan mitigation"
    );
    assert!(osb.instance("x").is_none());
}

#[test]
fn malformed_201_mitigated() {
    let broker = fake(json!([plan("p1", json!({}))]), |request| {
        match request.method.as_str() {
            "PUT" => Reply::raw(201, "this is not JSON"),
            _ => Reply::json(200, json!({})),
        }
    });
    let dir = TempDir::new();
    let osb = osb_for(&dir, &broker);
    let run = osb.run(&["provision", "db", "p1", "x"]).expect_code(1);
    assert!(
        run.stderr
            .contains("broker answered 201 with a malformed body"),
        "{}",
        run.stderr
    );

    let requests = broker.operation_requests();
    let delete = requests
        .iter()
        .find(|request| request.method == "DELETE")
        .expect("orphan mitigation DELETE");
    assert_eq!(delete.path, requests[0].path);
    assert_eq!(
        delete.query.get("service_id").map(String::as_str),
        Some("svc")
    );
    assert_eq!(delete.query.get("plan_id").map(String::as_str), Some("p1"));
    assert!(osb.instance("x").is_none());
}

#[test]
fn malformed_200_not_mitigated() {
    let broker = fake(json!([plan("p1", json!({}))]), |request| {
        match request.method.as_str() {
            "PUT" => Reply::raw(200, "{\"dashboard_url\": 5"),
            _ => Reply::json(200, json!({})),
        }
    });
    let dir = TempDir::new();
    let osb = osb_for(&dir, &broker);
    let run = osb.run(&["provision", "db", "p1", "x"]).expect_code(1);
    assert!(
        run.stderr
            .contains("broker answered 200 with a malformed body"),
        "{}",
        run.stderr
    );
    assert!(broker
        .operation_requests()
        .iter()
        .all(|request| request.method != "DELETE"));
    assert_eq!(osb.instance("x").unwrap()["state"], "create failed");
}

#[test]
fn maximum_polling_duration_ends_polling() {
    let broker = fake(
        json!([plan("p1", json!({ "maximum_polling_duration": 1 }))]),
        |request| match request.method.as_str() {
            "PUT" => Reply::json(202, json!({ "operation": "slow" })),
            "DELETE" => Reply::json(200, json!({})),
            _ => Reply::json(200, json!({ "state": "in progress" })),
        },
    );
    let dir = TempDir::new();
    let osb = osb_for(&dir, &broker);
    let started = std::time::Instant::now();
    let run = osb.run(&["provision", "db", "p1", "x"]).expect_code(1);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "polling went on for {:?}",
        started.elapsed()
    );
    assert!(run.stderr.contains("polling timed out"), "{}", run.stderr);
    assert!(broker
        .operation_requests()
        .iter()
        .any(|request| request.method == "DELETE"));
    assert!(osb.instance("x").is_none());
}

#[test]
fn plan_update_polls_with_old_plan() {
    let broker = fake(
        json!([
            plan("p1", json!({})),
            plan("p2", json!({ "maintenance_info": { "version": "3.0.0" } }))
        ]),
        |request| match request.method.as_str() {
            "PUT" => Reply::json(201, json!({})),
            "PATCH" => Reply::json(202, json!({ "operation": "u1" })),
            _ => Reply::json(200, json!({ "state": "succeeded" })),
        },
    );
    let dir = TempDir::new();
    let osb = osb_for(&dir, &broker);
    osb.run(&["provision", "db", "p1", "x"]).success();
    osb.run(&["update", "x", "--plan", "p2"]).success();

    let requests = broker.operation_requests();
    let patch = requests
        .iter()
        .find(|request| request.method == "PATCH")
        .unwrap();
    assert_eq!(patch.body["plan_id"], "p2");
    assert_eq!(patch.body["previous_values"]["plan_id"], "p1");
    assert_eq!(patch.body["maintenance_info"]["version"], "3.0.0");
    assert!(
        patch.body.get("parameters").is_none(),
        "no parameters the user did not give"
    );
    let poll = requests
        .iter()
        .find(|request| request.path.ends_with("last_operation"))
        .unwrap();
    assert_eq!(poll.query.get("plan_id").map(String::as_str), Some("p1"));
    assert_eq!(poll.query.get("operation").map(String::as_str), Some("u1"));
    assert_eq!(osb.instance("x").unwrap()["plan_name"], "p2");
}

#[test]
fn plan_change_refused_when_not_updateable() {
    let broker = fake(
        json!([
            plan("p1", json!({ "plan_updateable": false })),
            plan("p2", json!({}))
        ]),
        |_| Reply::json(201, json!({})),
    );
    let dir = TempDir::new();
    let osb = osb_for(&dir, &broker);
    osb.run(&["provision", "db", "p1", "x"]).success();
    let run = osb.run(&["update", "x", "--plan", "p2"]).expect_code(2);
    assert!(
        run.stderr.contains("is not plan_updateable"),
        "{}",
        run.stderr
    );
    assert!(broker
        .operation_requests()
        .iter()
        .all(|request| request.method != "PATCH"));
}

#[test]
fn gone_while_polling_delete_is_success() {
    let broker = fake(json!([plan("p1", json!({}))]), |request| {
        match request.method.as_str() {
            "PUT" => Reply::json(201, json!({})),
            "DELETE" => Reply::json(202, json!({})),
            _ => Reply::json(410, json!({})),
        }
    });
    let dir = TempDir::new();
    let osb = osb_for(&dir, &broker);
    osb.run(&["provision", "db", "p1", "x"]).success();
    osb.run(&["deprovision", "x"]).success();
    assert!(osb.instance("x").is_none());
    let poll = broker
        .operation_requests()
        .into_iter()
        .find(|request| request.path.ends_with("last_operation"))
        .unwrap();
    assert!(
        !poll.query.contains_key("operation"),
        "no operation token was returned"
    );
}

#[test]
fn bind_sends_binding_context_and_app() {
    let broker = fake(json!([plan("p1", json!({}))]), |request| {
        match request.method.as_str() {
            "PUT" if request.path.contains("service_bindings") => {
                Reply::json(201, json!({ "credentials": { "token": "t-1" } }))
            }
            _ => Reply::json(201, json!({})),
        }
    });
    let dir = TempDir::new();
    let osb = osb_for(&dir, &broker);
    osb.run(&["provision", "db", "p1", "x"]).success();
    osb.run(&["bind", "x", "app", "--app", "guid-1"]).success();
    let bind = broker
        .operation_requests()
        .into_iter()
        .find(|request| request.path.contains("service_bindings"))
        .unwrap();
    assert_eq!(bind.body["service_id"], "svc");
    assert_eq!(bind.body["plan_id"], "p1");
    assert_eq!(bind.body["bind_resource"]["app_guid"], "guid-1");
    assert_eq!(bind.body["context"]["platform"], "cloudfoundry");
    assert!(bind.body["context"]["space_guid"].is_string());
    assert!(bind.body["context"].get("instance_name").is_none());
    let credentials = osb.run(&["credentials", "app"]).success().json();
    assert_eq!(credentials["token"], "t-1");
}

#[test]
fn requires_app_error_hints_flag() {
    let broker = fake(json!([plan("p1", json!({}))]), |request| {
        match request.method.as_str() {
            "PUT" if request.path.contains("service_bindings") => Reply::json(
                422,
                json!({ "error": "RequiresApp", "description": "needs an app" }),
            ),
            _ => Reply::json(201, json!({})),
        }
    });
    let dir = TempDir::new();
    let osb = osb_for(&dir, &broker);
    osb.run(&["provision", "db", "p1", "x"]).success();
    let run = osb.run(&["bind", "x", "app"]).expect_code(1);
    assert!(
        run.stderr
            .contains("broker answered 422 RequiresApp: needs an app"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("hint: this plan binds to an application: pass --app GUID"),
        "{}",
        run.stderr
    );
    assert!(osb.binding("app").is_none());
}
