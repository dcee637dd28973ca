//! Hostile and malformed input on every endpoint: broken JSON, wrong
//! content types, empty and 10 MB bodies, odd and overlong ids, odd query
//! strings. Malformed input gets a 4xx OSB JSON body, odd but valid ids
//! either work or get a 4xx, nothing gets a 5xx, and the broker stays alive.

mod support;

use serde_json::{json, Value};
use support::*;

/// Returns the endpoints that take a body, as a method and a request target.
fn body_endpoints(instance_id: &str, binding_id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("PUT", instance_path(instance_id, false)),
        ("PATCH", instance_path(instance_id, false)),
        ("PUT", binding_path(instance_id, binding_id, false)),
    ]
}

/// Every endpoint, as a method and a request target, for the given ids.
fn every_endpoint(instance_id: &str, binding_id: &str) -> Vec<(&'static str, String)> {
    let instance = format!("/v2/service_instances/{instance_id}");
    let binding = format!("{instance}/service_bindings/{binding_id}");
    let query = format!("?service_id={SERVICE_ID}&plan_id={PLAN_SYNC}");
    vec![
        ("PUT", instance.clone()),
        ("GET", instance.clone()),
        ("PATCH", instance.clone()),
        ("DELETE", format!("{instance}{query}")),
        ("GET", format!("{instance}/last_operation")),
        ("PUT", binding.clone()),
        ("GET", binding.clone()),
        ("DELETE", format!("{binding}{query}")),
        ("GET", format!("{binding}/last_operation")),
    ]
}

/// Returns the body a valid request to this endpoint carries, if any.
fn valid_body(method: &str, target: &str) -> Option<Value> {
    match method {
        "PUT" if target.contains("/service_bindings/") => Some(bind_body(SERVICE_ID, PLAN_SYNC)),
        "PUT" => Some(provision_body(SERVICE_ID, PLAN_SYNC)),
        "PATCH" => Some(json!({"service_id": SERVICE_ID, "parameters": {"size_gb": 2}})),
        _ => None,
    }
}

/// Asserts a 4xx status with an OSB error body from a raw response.
fn assert_raw_osb_4xx(response: Option<(u16, String)>, context: &str) -> u16 {
    let (status, body) = response.unwrap_or_else(|| {
        panic!("{context}: the broker closed the connection without a response")
    });
    assert!(
        (400..500).contains(&status),
        "{context}: expected a 4xx, got {status}: {body}"
    );
    let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let reply = Reply {
        status,
        headers: Default::default(),
        text: body,
        body: parsed,
    };
    assert_osb_error_body(&reply, context);
    status
}

async fn assert_alive(broker: &mut TestBroker) {
    assert!(broker.is_running(), "the broker process must still run");
    let reply = broker.get("/v2/catalog").await;
    assert_eq!(
        reply.status, 200,
        "the broker still serves the catalog: {}",
        reply.text
    );
}

#[tokio::test]
async fn malformed_json_returns_400_everywhere() {
    let mut broker = TestBroker::start_standard();
    let instance_id = new_id();
    broker.provision_ready(&instance_id, PLAN_SYNC).await;
    let deep_nesting = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("truncated JSON", br#"{"service_id": "#.to_vec()),
        ("plain text", b"not json at all".to_vec()),
        ("an array", b"[]".to_vec()),
        ("a string", br#""service""#.to_vec()),
        ("null", b"null".to_vec()),
        (
            "a number for service_id",
            br#"{"service_id": 5, "plan_id": "p"}"#.to_vec(),
        ),
        ("invalid UTF-8", b"{\"service_id\": \"\xff\xfe\"}".to_vec()),
        ("a trailing comma", br#"{"service_id": "a",}"#.to_vec()),
        (
            "two documents",
            br#"{"service_id": "a"} {"plan_id": "b"}"#.to_vec(),
        ),
        ("deep nesting", deep_nesting.into_bytes()),
        ("a NUL byte", b"{\"service_id\": \"a\0b\"}".to_vec()),
    ];

    for (method, target) in body_endpoints(&instance_id, &new_id()) {
        for (name, body) in &bodies {
            let request = raw_http(method, &target, Some("application/json"), body);
            let response = raw_request(&broker.address, &request);
            let status = assert_raw_osb_4xx(response, &format!("{method} {target} with {name}"));
            assert_eq!(status, 400, "{method} {target} with {name}: status");
        }
    }
    let fetched = broker.get(&instance_path(&instance_id, false)).await;
    assert_eq!(
        fetched.body["parameters"],
        json!({}),
        "the malformed updates changed nothing"
    );
    assert_alive(&mut broker).await;
}

#[tokio::test]
async fn wrong_content_type_returns_400_everywhere() {
    let mut broker = TestBroker::start_standard();
    let instance_id = new_id();
    broker.provision_ready(&instance_id, PLAN_SYNC).await;
    let binding_id = new_id();

    for (method, target) in body_endpoints(&instance_id, &binding_id) {
        let body = valid_body(method, &target)
            .expect("a body endpoint")
            .to_string();
        for content_type in [
            "text/plain",
            "application/xml",
            "multipart/form-data; boundary=x",
            "json",
            "application/jsonx",
        ] {
            let request = raw_http(method, &target, Some(content_type), body.as_bytes());
            let response = raw_request(&broker.address, &request);
            let status =
                assert_raw_osb_4xx(response, &format!("{method} {target} as {content_type}"));
            assert_eq!(status, 400, "{method} {target} as {content_type}: status");
        }
    }
    let binding = broker
        .get(&binding_path(&instance_id, &binding_id, false))
        .await;
    assert_eq!(binding.status, 404, "no binding was created");
    assert_alive(&mut broker).await;
}

#[tokio::test]
async fn empty_body_returns_400_everywhere() {
    let mut broker = TestBroker::start_standard();
    let instance_id = new_id();
    broker.provision_ready(&instance_id, PLAN_SYNC).await;

    for (method, target) in body_endpoints(&instance_id, &new_id()) {
        for (name, content_type, body) in [
            ("an empty body", Some("application/json"), &b""[..]),
            ("a blank body", Some("application/json"), &b"  \r\n "[..]),
            ("an empty body without Content-Type", None, &b""[..]),
            ("an empty object", Some("application/json"), &b"{}"[..]),
        ] {
            let request = raw_http(method, &target, content_type, body);
            let response = raw_request(&broker.address, &request);
            let status = assert_raw_osb_4xx(response, &format!("{method} {target} with {name}"));
            assert_eq!(status, 400, "{method} {target} with {name}: status");
        }
    }
    assert_alive(&mut broker).await;
}

#[tokio::test]
async fn ten_megabyte_body_returns_413() {
    let mut broker = TestBroker::start_standard();
    let instance_id = new_id();
    broker.provision_ready(&instance_id, PLAN_SYNC).await;
    let padding = "x".repeat(10 * 1024 * 1024);

    for (method, target) in body_endpoints(&instance_id, &new_id()) {
        let mut body = valid_body(method, &target).expect("a body endpoint");
        body["parameters"] = json!({"padding": padding});
        let request = raw_http(
            method,
            &target,
            Some("application/json"),
            body.to_string().as_bytes(),
        );
        let response = raw_request_while_sending(&broker.address, request);

        let context = format!("{method} {target} with a 10 MB body");
        let status = assert_raw_osb_4xx(response, &context);
        assert_eq!(status, 413, "{context}: status");
    }
    assert_alive(&mut broker).await;
}

#[tokio::test]
async fn ten_megabyte_body_on_bodiless_endpoints_is_harmless() {
    let mut broker = TestBroker::start_standard();
    let instance_id = new_id();
    broker.provision_ready(&instance_id, PLAN_SYNC).await;
    let padding = "x".repeat(10 * 1024 * 1024);
    let binding_id = new_id();

    for (method, target) in every_endpoint(&instance_id, &binding_id) {
        if method == "PUT" || method == "PATCH" {
            continue;
        }
        let request = raw_http(
            method,
            &target,
            Some("application/json"),
            padding.as_bytes(),
        );
        let response = raw_request_while_sending(&broker.address, request);

        let context = format!("{method} {target} with a 10 MB body");
        let (status, text) = response.unwrap_or_else(|| panic!("{context}: no response"));
        assert!(
            status < 500,
            "{context}: must not fail with a 5xx: {status} {text}"
        );
    }
    assert_alive(&mut broker).await;
}

#[tokio::test]
async fn overlong_ids_return_400_everywhere() {
    let mut broker = TestBroker::start_standard();
    let long = "a".repeat(1000);
    let long_unicode = "é".repeat(1000);
    let valid_instance = new_id();
    broker.provision_ready(&valid_instance, PLAN_SYNC).await;

    let id_pairs = [
        (long.clone(), new_id()),
        (valid_instance.clone(), long.clone()),
        (percent_encode(&long_unicode), new_id()),
    ];
    for (instance_id, binding_id) in id_pairs {
        for (method, target) in every_endpoint(&instance_id, &binding_id) {
            if instance_id == valid_instance && !target.contains("/service_bindings/") {
                continue;
            }
            let body = valid_body(method, &target)
                .map(|body| body.to_string())
                .unwrap_or_default();
            let content_type = (!body.is_empty()).then_some("application/json");
            let request = raw_http(method, &target, content_type, body.as_bytes());
            let response = raw_request(&broker.address, &request);
            let context = format!("{method} with a {}-character id", target.len());
            let status = assert_raw_osb_4xx(response, &context);
            assert_eq!(status, 400, "{context}: status");
        }
    }
    assert_alive(&mut broker).await;
}

/// Percent-encodes every byte that is not an unreserved character.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

/// Ids that are unusual but not malformed, as they appear in a request target.
fn odd_ids() -> Vec<(&'static str, String)> {
    let suffix = &new_id()[..8];
    vec![
        ("dot-dot", "..".to_owned()),
        ("dot", ".".to_owned()),
        ("encoded dot-dot", "%2E%2E".to_owned()),
        ("encoded slash", format!("a%2Fb-{suffix}")),
        (
            "encoded slash and dot-dot",
            format!("%2E%2E%2F%2E%2E%2Fetc-{suffix}"),
        ),
        ("encoded double quote", format!("%22quoted%22-{suffix}")),
        ("single quote", format!("it's-{suffix}")),
        (
            "encoded unicode",
            format!("{}-{suffix}", percent_encode("数据库-é-🚀")),
        ),
        ("encoded backslash", format!("a%5Cb-{suffix}")),
        ("encoded percent", format!("100%25-{suffix}")),
        ("encoded space", format!("a%20b-{suffix}")),
        ("encoded newline", format!("a%0Ab-{suffix}")),
        ("encoded NUL", format!("a%00b-{suffix}")),
        ("bad escape", format!("a%ZZb-{suffix}")),
        ("encoded invalid UTF-8", format!("a%FF%FEb-{suffix}")),
    ]
}

#[tokio::test]
async fn odd_ids_of_missing_resources_return_4xx() {
    let mut broker = TestBroker::start_standard();
    let valid_instance = new_id();
    broker.provision_ready(&valid_instance, PLAN_SYNC).await;

    for (name, id) in odd_ids() {
        for (instance_id, binding_id) in
            [(id.clone(), new_id()), (valid_instance.clone(), id.clone())]
        {
            for (method, target) in every_endpoint(&instance_id, &binding_id) {
                let binding_endpoint = target.contains("/service_bindings/");
                // The valid instance exists, and a PUT of a missing resource creates it.
                if method == "PUT" && (!binding_endpoint || instance_id == valid_instance) {
                    continue;
                }
                if !binding_endpoint && instance_id == valid_instance {
                    continue;
                }
                let body = valid_body(method, &target)
                    .map(|body| body.to_string())
                    .unwrap_or_default();
                let content_type = (!body.is_empty()).then_some("application/json");
                let request = raw_http(method, &target, content_type, body.as_bytes());
                let response = raw_request(&broker.address, &request);
                assert_raw_osb_4xx(
                    response,
                    &format!("{method} {target} ({name} id of a missing resource)"),
                );
            }
        }
    }
    assert_alive(&mut broker).await;
}

#[tokio::test]
async fn odd_ids_round_trip_or_return_400() {
    let mut broker = TestBroker::start_standard();

    for (name, id) in odd_ids() {
        let instance = format!("/v2/service_instances/{id}");
        let body = provision_body(SERVICE_ID, PLAN_SYNC).to_string();
        let request = raw_http("PUT", &instance, Some("application/json"), body.as_bytes());
        let (status, text) = raw_request(&broker.address, &request)
            .unwrap_or_else(|| panic!("provision of the {name} id: no response"));

        assert!(
            status == 201 || status == 400 || status == 404 || status == 405,
            "provision of the {name} id {id:?} must return 201 or a 4xx, got {status}: {text}"
        );
        if status != 201 {
            assert_raw_osb_4xx(Some((status, text)), &format!("provision of the {name} id"));
            continue;
        }
        let fetched = raw_request(&broker.address, &raw_http("GET", &instance, None, b""));
        let (fetch_status, fetch_text) =
            fetched.unwrap_or_else(|| panic!("fetch of the {name} id: no response"));
        assert_eq!(
            fetch_status, 200,
            "the {name} id {id:?} must name the same instance on fetch: {fetch_text}"
        );

        let binding = format!("{instance}/service_bindings/{id}");
        let bind = bind_body(SERVICE_ID, PLAN_SYNC).to_string();
        let bound = raw_request(
            &broker.address,
            &raw_http("PUT", &binding, Some("application/json"), bind.as_bytes()),
        );
        let (bind_status, bind_text) =
            bound.unwrap_or_else(|| panic!("bind of the {name} id: no response"));
        assert_eq!(
            bind_status, 201,
            "bind with the {name} id {id:?}: {bind_text}"
        );

        let query = format!("?service_id={SERVICE_ID}&plan_id={PLAN_SYNC}");
        let unbound = raw_request(
            &broker.address,
            &raw_http("DELETE", &format!("{binding}{query}"), None, b""),
        );
        assert_eq!(
            unbound.map(|(status, _)| status),
            Some(200),
            "unbind of the {name} id {id:?}"
        );
        let deleted = raw_request(
            &broker.address,
            &raw_http("DELETE", &format!("{instance}{query}"), None, b""),
        );
        assert_eq!(
            deleted.map(|(status, _)| status),
            Some(200),
            "deprovision of the {name} id {id:?}"
        );
    }
    assert_alive(&mut broker).await;
}

#[tokio::test]
async fn raw_special_characters_in_path_return_4xx() {
    let mut broker = TestBroker::start_standard();
    let targets = [
        "/v2/service_instances/\"quoted\"",
        "/v2/service_instances/a\"b/service_bindings/c",
        "/v2/service_instances/caf\u{e9}",
        "/v2/service_instances/../../etc/passwd",
        "/v2/service_instances/a/../b/last_operation",
        "/v2/service_instances/%",
        "/v2/service_instances/a%2",
    ];

    for target in targets {
        for method in ["GET", "DELETE", "PATCH"] {
            let body = if method == "PATCH" {
                json!({"service_id": SERVICE_ID}).to_string()
            } else {
                String::new()
            };
            let content_type = (!body.is_empty()).then_some("application/json");
            let request = raw_http(method, target, content_type, body.as_bytes());
            let response = raw_request(&broker.address, &request);
            assert_raw_osb_4xx(response, &format!("{method} {target:?}"));
        }
    }
    assert_alive(&mut broker).await;
}

#[tokio::test]
async fn odd_query_strings_return_4xx() {
    let mut broker = TestBroker::start_standard();
    let instance_id = new_id();
    broker.provision_ready(&instance_id, PLAN_SYNC).await;
    let instance = instance_path(&instance_id, false);
    let huge = "x".repeat(20_000);
    let queries = [
        "?accepts_incomplete=%ZZ".to_owned(),
        "?accepts_incomplete=TRUE".to_owned(),
        "?accepts_incomplete=1".to_owned(),
        "?accepts_incomplete".to_owned(),
        format!("?service_id={SERVICE_ID}&plan_id={PLAN_SYNC}&accepts_incomplete={huge}"),
        "?service_id=&plan_id=".to_owned(),
        format!("?service_id={SERVICE_ID}&plan_id={PLAN_SYNC}&accepts_incomplete=%FF%FE"),
    ];

    for query in &queries {
        let target = format!("{instance}{query}");
        let response = raw_request(&broker.address, &raw_http("DELETE", &target, None, b""));
        let context = format!("DELETE with query {}", &query[..query.len().min(60)]);
        assert_raw_osb_4xx(response, &context);
    }
    let fetched = broker.get(&instance).await;
    assert_eq!(
        fetched.status, 200,
        "the odd deletes left the instance: {}",
        fetched.text
    );
    let last_operation = raw_request(
        &broker.address,
        &raw_http(
            "GET",
            &format!("{instance}/last_operation?operation=%ZZ"),
            None,
            b"",
        ),
    );
    assert_raw_osb_4xx(
        last_operation,
        "last_operation with a bad escape in operation",
    );
    assert_alive(&mut broker).await;
}

#[tokio::test]
async fn odd_field_values_never_cause_5xx() {
    let mut broker = TestBroker::start_standard();
    let instance_id = new_id();
    broker.provision_ready(&instance_id, PLAN_SYNC).await;
    let long = "z".repeat(100_000);
    let values = [
        json!(long),
        json!("\u{0}\u{1}\u{7f}"),
        json!("数据库🚀"),
        json!("../../etc/passwd"),
        json!("\"'; DROP TABLE instances; --"),
        json!(1e308),
        json!(-1),
        json!(true),
        json!({"nested": {"deeper": [1, 2, {"x": null}]}}),
    ];

    for value in values {
        let mut provision = provision_body(SERVICE_ID, PLAN_SYNC);
        provision["organization_guid"] = value.clone();
        provision["parameters"] = json!({"free_form": value.clone()});
        let reply = broker.provision_body(&new_id(), &provision, false).await;
        let value_prefix: String = value.to_string().chars().take(40).collect();
        assert!(
            reply.status < 500,
            "provision with {value_prefix}: {} {}",
            reply.status,
            reply.text
        );
        if reply.status >= 400 {
            assert_osb_error_body(&reply, &format!("provision with {value_prefix}"));
        }

        let mut bind = bind_body(SERVICE_ID, PLAN_SYNC);
        bind["bind_resource"]["app_guid"] = value.clone();
        bind["context"] = json!({"platform": value.clone()});
        let reply = broker
            .put(&binding_path(&instance_id, &new_id(), false), &bind)
            .await;
        assert!(
            reply.status < 500,
            "bind with {value_prefix}: {} {}",
            reply.status,
            reply.text
        );
        if reply.status >= 400 {
            assert_osb_error_body(&reply, &format!("bind with {value_prefix}"));
        }
    }
    assert_alive(&mut broker).await;
}
