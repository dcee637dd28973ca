//! Headers every request passes through: the API version, HTTP Basic
//! authentication with several users and hashed passwords, the identity
//! headers, Content-Type, unknown fields and ids, and unknown routes.

mod support;

use base64::Engine;
use reqwest::Method;
use serde_json::json;
use support::*;

/// Returns every route of the API, with a body where the route takes one.
fn every_endpoint() -> Vec<(Method, String, Option<serde_json::Value>)> {
    let instance = instance_path("headers-instance", false);
    let binding = binding_path("headers-instance", "headers-binding", false);
    vec![
        (Method::GET, "/v2/catalog".to_owned(), None),
        (
            Method::PUT,
            instance.clone(),
            Some(provision_body(SERVICE_ID, PLAN_SYNC)),
        ),
        (Method::GET, instance.clone(), None),
        (
            Method::PATCH,
            instance.clone(),
            Some(json!({"service_id": SERVICE_ID})),
        ),
        (
            Method::DELETE,
            delete_path(&instance, PLAN_SYNC, false),
            None,
        ),
        (Method::GET, last_operation_path(&instance, None), None),
        (
            Method::PUT,
            binding.clone(),
            Some(bind_body(SERVICE_ID, PLAN_SYNC)),
        ),
        (Method::GET, binding.clone(), None),
        (
            Method::DELETE,
            delete_path(&binding, PLAN_SYNC, false),
            None,
        ),
        (Method::GET, last_operation_path(&binding, None), None),
    ]
}

fn with_body(
    request: reqwest::RequestBuilder,
    body: &Option<serde_json::Value>,
) -> reqwest::RequestBuilder {
    match body {
        Some(body) => request
            .header("Content-Type", "application/json")
            .body(body.to_string()),
        None => request,
    }
}

#[tokio::test]
async fn missing_version_header_returns_412() {
    let broker = TestBroker::start_standard();

    for (method, path, body) in every_endpoint() {
        let request = broker
            .client
            .request(method.clone(), format!("{}{path}", broker.base_url))
            .header("Authorization", basic_auth(USERNAME, PASSWORD));
        let reply = send(with_body(request, &body)).await;

        let context = format!("{method} {path} without X-Broker-API-Version");
        reply.assert_osb_error(412, &context);
        let description = reply.body["description"].as_str().unwrap_or("");
        assert!(
            description.contains("2.17"),
            "{context}: the description must name the version to send: {description}"
        );
    }
}

#[tokio::test]
async fn empty_version_header_returns_412() {
    let broker = TestBroker::start_standard();

    let request = broker
        .client
        .get(format!("{}/v2/catalog", broker.base_url))
        .header("X-Broker-API-Version", "")
        .header("Authorization", basic_auth(USERNAME, PASSWORD));
    let reply = send(request).await;

    reply.assert_osb_error(412, "an empty X-Broker-API-Version");
    assert!(
        reply.body["description"]
            .as_str()
            .unwrap_or("")
            .contains("2.17"),
        "the description must name the version to send: {}",
        reply.text
    );
}

#[tokio::test]
async fn unsupported_version_returns_412_naming_version() {
    let broker = TestBroker::start_standard();

    for version in ["2.18", "3.0", "1.17", "2.10", "2", "latest", "2.17.1"] {
        let request = broker
            .client
            .get(format!("{}/v2/catalog", broker.base_url))
            .header("X-Broker-API-Version", version)
            .header("Authorization", basic_auth(USERNAME, PASSWORD));
        let reply = send(request).await;

        let context = format!("X-Broker-API-Version {version}");
        reply.assert_osb_error(412, &context);
        assert_eq!(
            reply.error(),
            Some("PreconditionFailed"),
            "{context}: error code"
        );
        assert!(
            reply.body["description"]
                .as_str()
                .unwrap_or("")
                .contains("2.17"),
            "{context}: the description must name the version to send: {}",
            reply.text
        );
    }
}

#[tokio::test]
async fn older_minor_versions_are_accepted() {
    let broker = TestBroker::start_standard();

    for version in ["2.11", "2.13", "2.14", "2.16", "2.17"] {
        let request = broker
            .client
            .get(format!("{}/v2/catalog", broker.base_url))
            .header("X-Broker-API-Version", version)
            .header("Authorization", basic_auth(USERNAME, PASSWORD));
        let reply = send(request).await;

        assert_eq!(
            reply.status, 200,
            "X-Broker-API-Version {version}: {}",
            reply.text
        );
        assert!(
            reply.body["services"].is_array(),
            "X-Broker-API-Version {version}: services"
        );
    }
}

#[tokio::test]
async fn rejected_version_creates_nothing() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();

    let request = broker
        .client
        .put(format!(
            "{}{}",
            broker.base_url,
            instance_path(&instance_id, false)
        ))
        .header("X-Broker-API-Version", "3.0")
        .header("Authorization", basic_auth(USERNAME, PASSWORD))
        .header("Content-Type", "application/json")
        .body(provision_body(SERVICE_ID, PLAN_SYNC).to_string());
    let reply = send(request).await;
    reply.assert_osb_error(412, "provision with version 3.0");

    let fetched = broker.get(&instance_path(&instance_id, false)).await;
    fetched.assert_osb_error(404, "fetch after the rejected provision");
}

#[tokio::test]
async fn missing_credentials_return_401() {
    let broker = TestBroker::start_standard();

    for (method, path, body) in every_endpoint() {
        let request = broker
            .client
            .request(method.clone(), format!("{}{path}", broker.base_url))
            .header("X-Broker-API-Version", API_VERSION);
        let reply = send(with_body(request, &body)).await;

        let context = format!("{method} {path} without Authorization");
        reply.assert_osb_error(401, &context);
        let challenge = reply.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.starts_with("Basic"),
            "{context}: WWW-Authenticate must offer Basic, got {challenge:?}"
        );
    }
}

#[tokio::test]
async fn wrong_password_returns_401() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();

    let request = broker
        .client
        .put(format!(
            "{}{}",
            broker.base_url,
            instance_path(&instance_id, false)
        ))
        .header("X-Broker-API-Version", API_VERSION)
        .header("Authorization", basic_auth(USERNAME, "not-the-password"))
        .header("Content-Type", "application/json")
        .body(provision_body(SERVICE_ID, PLAN_SYNC).to_string());
    let reply = send(request).await;
    reply.assert_osb_error(401, "provision with a wrong password");

    let fetched = broker.get(&instance_path(&instance_id, false)).await;
    fetched.assert_osb_error(404, "fetch after the unauthenticated provision");
}

#[tokio::test]
async fn malformed_authorization_headers_return_401() {
    let broker = TestBroker::start_standard();
    let encoded_without_colon = base64::engine::general_purpose::STANDARD.encode(USERNAME);
    let headers = [
        "Bearer abc".to_owned(),
        "Basic".to_owned(),
        "Basic %%%not-base64%%%".to_owned(),
        format!("Basic {encoded_without_colon}"),
        basic_auth("", ""),
        basic_auth(USERNAME, ""),
        basic_auth("nobody", PASSWORD),
        basic_auth(&USERNAME.to_uppercase(), PASSWORD),
    ];

    for header in headers {
        let request = broker
            .client
            .get(format!("{}/v2/catalog", broker.base_url))
            .header("X-Broker-API-Version", API_VERSION)
            .header("Authorization", header.as_str());
        let reply = send(request).await;

        reply.assert_osb_error(401, &format!("Authorization {header:?}"));
    }
}

#[tokio::test]
async fn every_configured_user_is_accepted() {
    let head = "[[credentials]]\nusername = \"old-user\"\npassword = \"old-secret\"\n\n\
                [[credentials]]\nusername = \"new-user\"\npassword = \"new-secret\"\n";
    let broker = TestBroker::start(head, STANDARD_SERVICES);

    for (username, password) in [("old-user", "old-secret"), ("new-user", "new-secret")] {
        let request = broker
            .client
            .get(format!("{}/v2/catalog", broker.base_url))
            .header("X-Broker-API-Version", API_VERSION)
            .header("Authorization", basic_auth(username, password));
        let reply = send(request).await;
        assert_eq!(reply.status, 200, "user {username}: {}", reply.text);
    }

    for (username, password) in [("old-user", "new-secret"), ("new-user", "old-secret")] {
        let request = broker
            .client
            .get(format!("{}/v2/catalog", broker.base_url))
            .header("X-Broker-API-Version", API_VERSION)
            .header("Authorization", basic_auth(username, password));
        let reply = send(request).await;
        reply.assert_osb_error(
            401,
            &format!("user {username} with another user's password"),
        );
    }
}

async fn assert_hashed_password_works(hash: &str) {
    let head = format!(
        "[[credentials]]\nusername = \"hashed-user\"\npassword = \"{hash}\"\n\n\
         [[credentials]]\nusername = \"plain-user\"\npassword = \"plain-secret\"\n"
    );
    let broker = TestBroker::start(&head, STANDARD_SERVICES);

    for attempt in 0..2 {
        let request = broker
            .client
            .get(format!("{}/v2/catalog", broker.base_url))
            .header("X-Broker-API-Version", API_VERSION)
            .header("Authorization", basic_auth("hashed-user", "hashed-secret"));
        let reply = send(request).await;
        assert_eq!(
            reply.status, 200,
            "attempt {attempt} with the hashed password: {}",
            reply.text
        );
    }

    let wrong = [
        ("hashed-user", "wrong-secret"),
        ("hashed-user", hash),
        ("plain-user", "hashed-secret"),
    ];
    for (username, password) in wrong {
        let request = broker
            .client
            .get(format!("{}/v2/catalog", broker.base_url))
            .header("X-Broker-API-Version", API_VERSION)
            .header("Authorization", basic_auth(username, password));
        let reply = send(request).await;
        reply.assert_osb_error(401, &format!("user {username} with password {password:?}"));
    }

    let request = broker
        .client
        .get(format!("{}/v2/catalog", broker.base_url))
        .header("X-Broker-API-Version", API_VERSION)
        .header("Authorization", basic_auth("plain-user", "plain-secret"));
    let reply = send(request).await;
    assert_eq!(
        reply.status, 200,
        "the plain user beside the hashed one: {}",
        reply.text
    );
}

#[tokio::test]
async fn bcrypt_hashed_password_authenticates() {
    let hash = bcrypt::hash("hashed-secret", 4).expect("hash with bcrypt");
    assert_hashed_password_works(&hash).await;
}

#[tokio::test]
async fn argon2_hashed_password_authenticates() {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(b"sixteen-byte-sal").expect("encode the salt");
    let hash = argon2::Argon2::default()
        .hash_password(b"hashed-secret", &salt)
        .expect("hash with Argon2")
        .to_string();
    assert_hashed_password_works(&hash).await;
}

#[tokio::test]
async fn request_identity_is_echoed() {
    let broker = TestBroker::start_standard();
    let identity = "5a1f7e02-9c1d-4b3a-8d4e-2f6a7b8c9d0e";

    let ok = send(
        broker
            .request(Method::GET, "/v2/catalog")
            .header("X-Broker-API-Request-Identity", identity),
    )
    .await;
    assert_eq!(ok.status, 200, "catalog: {}", ok.text);
    assert_eq!(
        ok.header("x-broker-api-request-identity").as_deref(),
        Some(identity),
        "a 200 must echo the request identity"
    );

    let not_found = send(
        broker
            .request(Method::GET, &instance_path(&new_id(), false))
            .header("X-Broker-API-Request-Identity", identity),
    )
    .await;
    assert_eq!(
        not_found.status, 404,
        "fetch of an unknown instance: {}",
        not_found.text
    );
    assert_eq!(
        not_found.header("x-broker-api-request-identity").as_deref(),
        Some(identity),
        "a 404 must echo the request identity"
    );

    let unauthorized = send(
        broker
            .client
            .get(format!("{}/v2/catalog", broker.base_url))
            .header("X-Broker-API-Version", API_VERSION)
            .header("X-Broker-API-Request-Identity", identity),
    )
    .await;
    assert_eq!(unauthorized.status, 401, "catalog without credentials");
    assert_eq!(
        unauthorized
            .header("x-broker-api-request-identity")
            .as_deref(),
        Some(identity),
        "a 401 must echo the request identity"
    );

    let wrong_version = send(
        broker
            .client
            .get(format!("{}/v2/catalog", broker.base_url))
            .header("X-Broker-API-Version", "1.0")
            .header("Authorization", basic_auth(USERNAME, PASSWORD))
            .header("X-Broker-API-Request-Identity", identity),
    )
    .await;
    assert_eq!(wrong_version.status, 412, "catalog with version 1.0");
    assert_eq!(
        wrong_version
            .header("x-broker-api-request-identity")
            .as_deref(),
        Some(identity),
        "a 412 must echo the request identity"
    );
}

#[tokio::test]
async fn malformed_originating_identity_returns_400() {
    let broker = TestBroker::start_standard();
    let encode = |json: &str| base64::engine::general_purpose::STANDARD.encode(json);
    let headers = [
        "cloudfoundry".to_owned(),
        format!("cloudfoundry  {}", encode(r#"{"user_id":"u"}"#)),
        "cloudfoundry %%%".to_owned(),
        format!("cloudfoundry {}", encode("[1, 2]")),
        format!("cloudfoundry {}", encode("not json")),
        format!("cloudfoundry {}", encode(r#"{"user":"u"}"#)),
        format!("kubernetes {}", encode(r#"{"username":"duke"}"#)),
    ];

    for header in headers {
        let instance_id = new_id();
        let request = broker
            .request(Method::PUT, &instance_path(&instance_id, false))
            .header("X-Broker-API-Originating-Identity", header.as_str())
            .header("Content-Type", "application/json")
            .body(provision_body(SERVICE_ID, PLAN_SYNC).to_string());
        let reply = send(request).await;

        let context = format!("originating identity {header:?}");
        reply.assert_osb_error(400, &context);
        let fetched = broker.get(&instance_path(&instance_id, false)).await;
        assert_eq!(
            fetched.status, 404,
            "{context}: the rejected provision created an instance"
        );
    }
}

#[tokio::test]
async fn valid_originating_identity_is_accepted() {
    let broker = TestBroker::start_standard();
    let encode = |json: &str| base64::engine::general_purpose::STANDARD.encode(json);
    let headers = [
        format!(
            "cloudfoundry {}",
            encode(r#"{"user_id":"683ea748-3092-4ff4-b656-39cacc4d5360"}"#)
        ),
        format!(
            "kubernetes {}",
            encode(
                r#"{"username":"duke","uid":"c2dde242","groups":["admin","dev"],"extra":{"mydata":["data1"]}}"#
            )
        ),
        format!("other-platform {}", encode(r#"{"anything":1}"#)),
    ];

    for header in headers {
        let instance_id = new_id();
        let request = broker
            .request(Method::PUT, &instance_path(&instance_id, false))
            .header("X-Broker-API-Originating-Identity", header.as_str())
            .header("Content-Type", "application/json")
            .body(provision_body(SERVICE_ID, PLAN_SYNC).to_string());
        let reply = send(request).await;

        assert_eq!(
            reply.status, 201,
            "originating identity {header:?}: {}",
            reply.text
        );
    }
}

#[tokio::test]
async fn unknown_json_fields_are_ignored() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();
    let binding_id = new_id();

    let mut provision = provision_body(SERVICE_ID, PLAN_SYNC);
    provision["x-vendor-extension"] = json!({"nested": [1, 2, 3]});
    provision["future_field"] = json!("value");
    let reply = broker.provision_body(&instance_id, &provision, false).await;
    assert_eq!(
        reply.status, 201,
        "provision with unknown fields: {}",
        reply.text
    );

    let update = json!({
        "service_id": SERVICE_ID,
        "parameters": {"size_gb": 2},
        "x-vendor-extension": true,
        "previous_values": {"plan_id": PLAN_SYNC, "unknown": 1}
    });
    let reply = broker
        .patch(&instance_path(&instance_id, false), &update)
        .await;
    assert_eq!(
        reply.status, 200,
        "update with unknown fields: {}",
        reply.text
    );

    let mut bind = bind_body(SERVICE_ID, PLAN_SYNC);
    bind["x-vendor-extension"] = json!(42);
    bind["bind_resource"]["future_field"] = json!("value");
    let reply = broker
        .put(&binding_path(&instance_id, &binding_id, false), &bind)
        .await;
    assert_eq!(
        reply.status, 201,
        "bind with unknown fields: {}",
        reply.text
    );

    let reply = broker
        .get(&format!(
            "{}?unknown_query=1",
            instance_path(&instance_id, false)
        ))
        .await;
    assert_eq!(
        reply.status, 200,
        "fetch with an unknown query parameter: {}",
        reply.text
    );
}

#[tokio::test]
async fn percent_encoded_ids_are_decoded() {
    let broker = TestBroker::start_standard();
    let suffix = new_id();
    let encoded_instance = format!("instance%20{suffix}%3Aa");
    let encoded_binding = format!("binding%2B{suffix}");

    let reply = broker.provision(&encoded_instance, PLAN_SYNC, false).await;
    assert_eq!(
        reply.status, 201,
        "provision of {encoded_instance}: {}",
        reply.text
    );

    let spelled_out = format!("instance%20{suffix}%3aa");
    let fetched = broker.get(&instance_path(&spelled_out, false)).await;
    assert_eq!(
        fetched.status, 200,
        "the same id with lower-case percent escapes must name the same instance: {}",
        fetched.text
    );

    let reply = broker
        .put(
            &binding_path(&encoded_instance, &encoded_binding, false),
            &bind_body(SERVICE_ID, PLAN_SYNC),
        )
        .await;
    assert_eq!(
        reply.status, 201,
        "bind of {encoded_binding}: {}",
        reply.text
    );
    let fetched = broker
        .get(&binding_path(
            &encoded_instance,
            &format!("binding+{suffix}"),
            false,
        ))
        .await;
    assert_eq!(
        fetched.status, 200,
        "the decoded binding id: {}",
        fetched.text
    );

    let unreserved = format!("A-z.0_9~{suffix}");
    let reply = broker.provision(&unreserved, PLAN_SYNC, false).await;
    assert_eq!(
        reply.status, 201,
        "provision of an id of unreserved characters: {}",
        reply.text
    );
}

#[tokio::test]
async fn wrong_content_type_returns_400() {
    let broker = TestBroker::start_standard();
    let instance_id = new_id();

    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
    ] {
        let request = broker
            .request(Method::PUT, &instance_path(&instance_id, false))
            .header("Content-Type", content_type)
            .body(provision_body(SERVICE_ID, PLAN_SYNC).to_string());
        let reply = send(request).await;
        reply.assert_osb_error(400, &format!("provision as {content_type}"));
    }

    let fetched = broker.get(&instance_path(&instance_id, false)).await;
    assert_eq!(
        fetched.status, 404,
        "a rejected provision must create nothing"
    );

    let request = broker
        .request(Method::PUT, &instance_path(&instance_id, false))
        .header("Content-Type", "application/json; charset=utf-8")
        .body(provision_body(SERVICE_ID, PLAN_SYNC).to_string());
    let reply = send(request).await;
    assert_eq!(
        reply.status, 201,
        "application/json with a charset: {}",
        reply.text
    );
}

#[tokio::test]
async fn unknown_route_returns_osb_404() {
    let broker = TestBroker::start_standard();

    for path in [
        "/",
        "/v2",
        "/v2/catalogs",
        "/v3/catalog",
        "/v2/service_instances",
        "/v2/service_instances/a/service_bindings",
        "/v2/service_instances/a/b/c/d/e",
    ] {
        let reply = broker.get(path).await;
        reply.assert_osb_error(404, &format!("GET {path}"));
    }
}

#[tokio::test]
async fn wrong_method_returns_osb_405() {
    let broker = TestBroker::start_standard();
    let instance = instance_path("some-instance", false);
    let binding = binding_path("some-instance", "some-binding", false);

    let cases = [
        (Method::POST, "/v2/catalog".to_owned()),
        (Method::DELETE, "/v2/catalog".to_owned()),
        (Method::POST, instance.clone()),
        (Method::PATCH, binding.clone()),
        (Method::POST, binding),
        (Method::PUT, last_operation_path(&instance, None)),
    ];
    for (method, path) in cases {
        let reply = broker.call(method.clone(), &path, None).await;
        reply.assert_osb_error(405, &format!("{method} {path}"));
    }
}
