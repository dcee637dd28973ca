//! The `osb-broker` binary with examples/postgresql.toml, driven over HTTP
//! as a platform would, against the local PostgreSQL server.

mod postgresql_support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use osb_broker::backends::postgresql::names::InstanceNames;
use postgresql_support::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const SERVICE: &str = "3f9a1c2e-7b4d-4e8f-a6c5-2d1e0f9b8a7c";
const SMALL: &str = "8c2d4e6f-1a3b-4c5d-9e7f-0a1b2c3d4e5f";
const READONLY: &str = "5e7f9a1b-3c5d-4e6f-8a9b-1c2d3e4f5a6b";

/// Polls of `last_operation`, 100 ms apart.
const MAX_POLLS: usize = 300;

struct Broker {
    base: String,
    http: reqwest::Client,
    _child: Child,
    dir: PathBuf,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts the binary with the example config on a free port and a fresh
/// state file, and returns once it prints its address.
async fn start_broker() -> Broker {
    start_broker_with("").await
}

/// Like [`start_broker`], with `extra` added at the end of the config.
async fn start_broker_with(extra: &str) -> Broker {
    admin().await;
    let dir = std::env::temp_dir().join(format!("osbkit-http-{}", new_id()));
    std::fs::create_dir(&dir).expect("create temporary folder");
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/postgresql.toml"
    );
    let config = std::fs::read_to_string(example).expect("read examples/postgresql.toml");
    let state = dir.join("state.db");
    let config = config
        .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"")
        .replace(
            "sqlite = \"./osb-broker-postgresql.db\"",
            &format!("sqlite = \"{}\"", state.display()),
        );
    assert!(
        config.contains("127.0.0.1:0"),
        "the example's listen line changed"
    );
    let config = format!("{config}\n{extra}");
    let config_path = dir.join("postgresql.toml");
    std::fs::write(&config_path, config).expect("write config");

    let mut child = Command::new(env!("CARGO_BIN_EXE_osb-broker"))
        .arg("serve")
        .arg("--config")
        .arg(&config_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start osb-broker");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let address = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read broker output") {
            if let Some(address) = line.strip_prefix("listening on ") {
                return address.trim().to_owned();
            }
        }
        panic!("osb-broker exited without printing its address");
    })
    .await
    .expect("osb-broker prints its address within 30 seconds");
    // Keep reading stdout so the broker never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    Broker {
        base: address,
        http: reqwest::Client::new(),
        _child: child,
        dir,
    }
}

impl Broker {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .basic_auth("admin", Some("admin"))
            .header("X-Broker-API-Version", "2.17");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("send request");
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// Polls `last_operation` until the operation ends; returns its state, or
    /// "gone" when the instance no longer exists (410).
    async fn wait(&self, instance_id: &str, operation: &Value) -> String {
        let mut path = format!("/v2/service_instances/{instance_id}/last_operation");
        if let Some(operation) = operation.as_str() {
            path.push_str(&format!("?operation={operation}"));
        }
        for _ in 0..MAX_POLLS {
            let (status, body) = self.call(Method::GET, &path, None).await;
            if status == StatusCode::GONE {
                return "gone".to_owned();
            }
            assert_eq!(status, StatusCode::OK, "{body}");
            let state = body["state"].as_str().expect("state").to_owned();
            if state != "in progress" {
                return state;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the operation on {instance_id} did not end within {MAX_POLLS} polls");
    }
}

fn provision_body(plan: &str, parameters: Value) -> Value {
    json!({
        "service_id": SERVICE,
        "plan_id": plan,
        "organization_guid": "org",
        "space_guid": "space",
        "parameters": parameters,
    })
}

fn bind_body(plan: &str, parameters: Value) -> Value {
    json!({
        "service_id": SERVICE,
        "plan_id": plan,
        "bind_resource": {"app_guid": "app"},
        "parameters": parameters,
    })
}

#[tokio::test]
async fn http_lifecycle_on_small_plan() {
    let broker = start_broker().await;
    let admin = admin().await;
    let instance_id = new_id();
    let _instance_guard = guard(&instance_id);
    let names = InstanceNames::new(&instance_id);
    let instance_path = format!("/v2/service_instances/{instance_id}");

    // The small plan provisions in the background when the platform allows.
    let (status, body) = broker
        .call(
            Method::PUT,
            &format!("{instance_path}?accepts_incomplete=true"),
            Some(provision_body(SMALL, json!({"extensions": ["pgcrypto"]}))),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        broker.wait(&instance_id, &body["operation"]).await,
        "succeeded"
    );
    assert_eq!(
        database_owner(&admin, &names.database).await,
        Some(names.owner.clone())
    );

    // An extension outside the schema's list is rejected before the backend.
    let (status, body) = broker
        .call(
            Method::PUT,
            &format!("/v2/service_instances/{}?accepts_incomplete=true", new_id()),
            Some(provision_body(SMALL, json!({"extensions": ["plpython3u"]}))),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let writer_id = new_id();
    let (status, body) = broker
        .call(
            Method::PUT,
            &format!("{instance_path}/service_bindings/{writer_id}"),
            Some(bind_body(SMALL, json!({}))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let writer_uri = body["credentials"]["uri"].as_str().expect("uri").to_owned();
    assert_eq!(body["endpoints"][0]["ports"], json!(["5432"]));
    let writer = connect(&writer_uri).await.expect("writer connects");
    writer
        .batch_execute("CREATE TABLE t (n int); INSERT INTO t VALUES (1);")
        .await
        .expect("writer writes");

    let reader_id = new_id();
    let (status, body) = broker
        .call(
            Method::PUT,
            &format!("{instance_path}/service_bindings/{reader_id}"),
            Some(bind_body(SMALL, json!({"read_only": true}))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let reader = connect(body["credentials"]["uri"].as_str().expect("uri"))
        .await
        .expect("reader connects");
    reader
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .expect("reader reads");
    assert!(reader
        .batch_execute("INSERT INTO t VALUES (2)")
        .await
        .is_err());

    // The fetched binding returns the same credentials.
    let (status, body) = broker
        .call(
            Method::GET,
            &format!(
                "{instance_path}/service_bindings/{writer_id}?service_id={SERVICE}&plan_id={SMALL}"
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["credentials"]["uri"], json!(writer_uri));

    let (status, body) = broker
        .call(
            Method::DELETE,
            &format!(
                "{instance_path}/service_bindings/{writer_id}?service_id={SERVICE}&plan_id={SMALL}"
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!role_exists(&admin, &names.binding_role(&writer_id)).await);

    // Deprovision with the reader's binding still there and its session open.
    let (status, body) = broker
        .call(
            Method::DELETE,
            &format!(
                "{instance_path}?accepts_incomplete=true&service_id={SERVICE}&plan_id={SMALL}"
            ),
            None,
        )
        .await;
    assert!(
        status == StatusCode::ACCEPTED || status == StatusCode::OK,
        "{status}: {body}"
    );
    if status == StatusCode::ACCEPTED {
        let state = broker.wait(&instance_id, &body["operation"]).await;
        assert!(state == "succeeded" || state == "gone", "{state}");
    }
    assert_nothing_left(&admin, &instance_id).await;
    drop((writer, reader));
}

#[tokio::test]
async fn http_readonly_plan_rejects_write_access() {
    let broker = start_broker().await;
    let admin = admin().await;
    let instance_id = new_id();
    let _instance_guard = guard(&instance_id);
    let names = InstanceNames::new(&instance_id);
    let instance_path = format!("/v2/service_instances/{instance_id}");

    // The read-only plan runs synchronously.
    let (status, body) = broker
        .call(
            Method::PUT,
            &instance_path,
            Some(provision_body(READONLY, json!({}))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let (status, body) = broker
        .call(
            Method::PUT,
            &format!("{instance_path}/service_bindings/{}", new_id()),
            Some(bind_body(READONLY, json!({"read_only": false}))),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let binding_id = new_id();
    let (status, body) = broker
        .call(
            Method::PUT,
            &format!("{instance_path}/service_bindings/{binding_id}"),
            Some(bind_body(READONLY, json!({}))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let role = names.binding_role(&binding_id);
    assert!(is_member(&admin, &role, &names.reader).await);
    assert!(!is_member(&admin, &role, &names.owner).await);

    let (status, body) = broker
        .call(
            Method::DELETE,
            &format!("{instance_path}?service_id={SERVICE}&plan_id={READONLY}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_nothing_left(&admin, &instance_id).await;
}

/// A plan of the example's service with no parameter schemas, whose
/// operations always run in the background.
const NO_SCHEMA: &str = "0b5d2c1e-9f3a-4d6b-8e7c-5a4b3c2d1e0f";
const NO_SCHEMA_PLAN: &str = r#"
[[services.plans]]
id = "0b5d2c1e-9f3a-4d6b-8e7c-5a4b3c2d1e0f"
name = "no-schema"
description = "A plan without parameter schemas"
free = true
backend = { type = "postgresql", server = "default", extensions = ["pgcrypto"], execution = "async_only" }
"#;

#[tokio::test]
async fn http_async_invalid_parameters_rejected() {
    let broker = start_broker_with(NO_SCHEMA_PLAN).await;
    let admin = admin().await;
    let instance_id = new_id();
    let _instance_guard = guard(&instance_id);
    let names = InstanceNames::new(&instance_id);
    let instance_path = format!("/v2/service_instances/{instance_id}?accepts_incomplete=true");

    for parameters in [
        json!({"superuser": true}),
        json!({"extensions": ["postgis"]}),
        json!({"extensions": "pgcrypto"}),
    ] {
        let (status, body) = broker
            .call(
                Method::PUT,
                &instance_path,
                Some(provision_body(NO_SCHEMA, parameters.clone())),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{parameters}: {body}");
    }
    assert!(!database_exists(&admin, &names.database).await);

    let (status, body) = broker
        .call(
            Method::PUT,
            &instance_path,
            Some(provision_body(
                NO_SCHEMA,
                json!({"extensions": ["pgcrypto"]}),
            )),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        broker.wait(&instance_id, &body["operation"]).await,
        "succeeded"
    );

    let binding_path = format!(
        "/v2/service_instances/{instance_id}/service_bindings/{}?accepts_incomplete=true",
        new_id()
    );
    for parameters in [json!({"read_only": "yes"}), json!({"extensions": []})] {
        let (status, body) = broker
            .call(
                Method::PUT,
                &binding_path,
                Some(bind_body(NO_SCHEMA, parameters.clone())),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{parameters}: {body}");
    }

    let (status, body) = broker
        .call(
            Method::PATCH,
            &instance_path,
            Some(json!({
                "service_id": SERVICE,
                "plan_id": NO_SCHEMA,
                "parameters": {"extensions": ["hstore"]},
            })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, body) = broker
        .call(
            Method::DELETE,
            &format!("{instance_path}&service_id={SERVICE}&plan_id={NO_SCHEMA}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(broker.wait(&instance_id, &body["operation"]).await, "gone");
    assert_nothing_left(&admin, &instance_id).await;
}
