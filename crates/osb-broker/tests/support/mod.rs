//! Starts the real `osb-broker` binary for HTTP tests and sends requests to it.
//!
//! Each [`TestBroker`] gets its own directory with a configuration file and
//! a SQLite state file, listens on a port chosen by the system, and is
//! killed when dropped. Its standard error is kept for log checks.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};

pub const API_VERSION: &str = "2.17";
pub const USERNAME: &str = "platform-user";
pub const PASSWORD: &str = "Broker-Password-7Qk2x9";
/// A Base64-encoded 32-byte key for `state.encryption_key`.
pub const ENCRYPTION_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// How long a broker may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one HTTP request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

// Ids of the standard catalog.
pub const SERVICE_ID: &str = "6b0a6e8c-0000-4000-8000-000000000001";
pub const STATIC_SERVICE_ID: &str = "6b0a6e8c-0000-4000-8000-000000000002";
pub const UNBINDABLE_SERVICE_ID: &str = "6b0a6e8c-0000-4000-8000-000000000003";
/// Synchronous, with schemas, maintenance 1.0.0, rotatable bindings, a dashboard.
pub const PLAN_SYNC: &str = "7c1b0000-0000-4000-8000-000000000001";
/// Synchronous, maintenance 2.0.0: the target of plan changes.
pub const PLAN_SYNC_LARGE: &str = "7c1b0000-0000-4000-8000-000000000002";
/// Only asynchronous, 400 ms per operation, with a dashboard.
pub const PLAN_ASYNC: &str = "7c1b0000-0000-4000-8000-000000000003";
/// Asynchronous when the platform allows it, 300 ms per operation.
pub const PLAN_PREFERRED: &str = "7c1b0000-0000-4000-8000-000000000004";
/// Synchronous, and provision fails with an internal error.
pub const PLAN_FAIL_PROVISION: &str = "7c1b0000-0000-4000-8000-000000000005";
/// Synchronous, and update, deprovision, bind and unbind fail with an internal error.
pub const PLAN_FAIL_LATER: &str = "7c1b0000-0000-4000-8000-000000000006";
/// Only asynchronous, 200 ms per operation, and provision fails.
pub const PLAN_ASYNC_FAIL_PROVISION: &str = "7c1b0000-0000-4000-8000-000000000007";
/// Only asynchronous, 200 ms per operation, and update, deprovision, bind and unbind fail.
pub const PLAN_ASYNC_FAIL_LATER: &str = "7c1b0000-0000-4000-8000-000000000008";
/// Synchronous, and provision fails because the simulated server is down.
pub const PLAN_UNAVAILABLE: &str = "7c1b0000-0000-4000-8000-000000000009";
/// Synchronous, and the backend rejects updates as unprocessable.
pub const PLAN_UNPROCESSABLE_UPDATE: &str = "7c1b0000-0000-4000-8000-00000000000a";
/// Synchronous, and the backend rejects the parameters of every provision.
pub const PLAN_INVALID_PARAMETERS: &str = "7c1b0000-0000-4000-8000-00000000000b";
/// Synchronous, and binds need an app_guid.
pub const PLAN_REQUIRES_APP: &str = "7c1b0000-0000-4000-8000-00000000000c";
/// Only asynchronous, 3 s per operation, maximum_polling_duration of 1 s.
pub const PLAN_TOO_SLOW: &str = "7c1b0000-0000-4000-8000-00000000000d";
/// Synchronous and not bindable, although its offering is.
pub const PLAN_UNBINDABLE: &str = "7c1b0000-0000-4000-8000-00000000000e";
/// Synchronous and not plan_updateable, although its offering is.
pub const PLAN_FIXED: &str = "7c1b0000-0000-4000-8000-00000000000f";
/// Synchronous, and credentials expire after an hour.
pub const PLAN_EXPIRING: &str = "7c1b0000-0000-4000-8000-000000000010";
/// Only asynchronous, 1.5 s per operation, so a test can act while one runs.
pub const PLAN_ASYNC_SLOW: &str = "7c1b0000-0000-4000-8000-000000000013";
/// Only asynchronous, 100 ms per operation, and the backend rejects the
/// parameters of every provision.
pub const PLAN_ASYNC_REJECT_PROVISION: &str = "7c1b0000-0000-4000-8000-000000000014";
/// Only asynchronous, 100 ms per operation, and the backend rejects updates
/// as unprocessable.
pub const PLAN_ASYNC_REJECT_UPDATE: &str = "7c1b0000-0000-4000-8000-000000000015";
/// Only asynchronous, 100 ms per operation, and binds need an app_guid.
pub const PLAN_ASYNC_REQUIRES_APP: &str = "7c1b0000-0000-4000-8000-000000000016";
/// The static offering's plan: every binding gets the same API key.
pub const PLAN_STATIC: &str = "7c1b0000-0000-4000-8000-000000000011";
/// The unbindable offering's plan.
pub const PLAN_NO_BIND: &str = "7c1b0000-0000-4000-8000-000000000012";
/// The API key of the static plan, which must only appear in bind responses.
pub const STATIC_API_KEY: &str = "static-api-key-3vJ8pQ";

/// The catalog most tests use: one simulated offering with a plan for each
/// behaviour, a static offering and an offering that cannot be bound.
pub const STANDARD_SERVICES: &str = r#"
[[services]]
id = "6b0a6e8c-0000-4000-8000-000000000001"
name = "simulated-db"
description = "A simulated database"
bindable = true
instances_retrievable = true
bindings_retrievable = true
plan_updateable = true
allow_context_updates = true
tags = ["simulated", "test"]
metadata = { displayName = "Simulated database" }

[[services.plans]]
id = "7c1b0000-0000-4000-8000-000000000001"
name = "small"
description = "Synchronous"
free = true
binding_rotatable = true
maintenance_info = { version = "1.0.0", description = "First release" }
backend = { type = "simulated", dashboard_url = "https://dashboard.example.test/" }

[services.plans.schemas.service_instance.create.parameters]
"$schema" = "http://json-schema.org/draft-07/schema#"
type = "object"
properties.size_gb = { type = "integer", minimum = 1, maximum = 100 }

[services.plans.schemas.service_instance.update.parameters]
"$schema" = "http://json-schema.org/draft-07/schema#"
type = "object"
properties.size_gb = { type = "integer", minimum = 1, maximum = 100 }

[services.plans.schemas.service_binding.create.parameters]
"$schema" = "http://json-schema.org/draft-07/schema#"
type = "object"
properties.role = { type = "string", enum = ["read", "write"] }

[[services.plans]]
id = "7c1b0000-0000-4000-8000-000000000002"
name = "large"
description = "Synchronous, the target of plan changes"
free = false
maintenance_info = { version = "2.0.0" }
backend = { type = "simulated" }

[[services.plans]]
id = "7c1b0000-0000-4000-8000-000000000003"
name = "async"
description = "Only asynchronous"
maximum_polling_duration = 60
backend = { type = "simulated", execution = "async_only", delay_ms = 400, dashboard_url = "https://dashboard.example.test/" }

[[services.plans]]
id = "7c1b0000-0000-4000-8000-000000000004"
name = "preferred"
description = "Asynchronous when allowed"
backend = { type = "simulated", execution = "async_preferred", delay_ms = 300 }

[[services.plans]]
id = "7c1b0000-0000-4000-8000-000000000005"
name = "fail-provision"
description = "Provision fails"
backend = { type = "simulated", fail_on = ["provision"] }

[[services.plans]]
id = "7c1b0000-0000-4000-8000-000000000006"
name = "fail-later"
description = "Everything but provision fails"
backend = { type = "simulated", fail_on = ["update", "deprovision", "bind", "unbind"] }

[[services.plans]]
id = "7c1b0000-0000-4000-8000-000000000007"
name = "async-fail-provision"
description = "Asynchronous provision fails"
backend = { type = "simulated", execution = "async_only", delay_ms = 200, fail_on = ["provision"] }

[[services.plans]]
id = "7c1b0000-0000-4000-8000-000000000008"
name = "async-fail-later"
description = "Asynchronous; everything but provision fails"
backend = { type = "simulated", execution = "async_only", delay_ms = 200, fail_on = ["update", "deprovision", "bind", "unbind"] }

[[services.plans]]
id = "7c1b0000-0000-4000-8000-000000000009"
name = "unavailable"
description = "The server is down"
backend = { type = "simulated", fail_on = ["provision"], fail_kind = "unavailable" }

[[services.plans]]
id = "7c1b0000-0000-4000-8000-00000000000a"
name = "unprocessable-update"
description = "Updates are rejected"
backend = { type = "simulated", fail_on = ["update"], fail_kind = "unprocessable" }

[[services.plans]]
id = "7c1b0000-0000-4000-8000-00000000000b"
name = "invalid-parameters"
description = "Parameters are rejected"
backend = { type = "simulated", fail_on = ["provision"], fail_kind = "invalid_parameters" }

[[services.plans]]
id = "7c1b0000-0000-4000-8000-00000000000c"
name = "requires-app"
description = "Binds need an application"
backend = { type = "simulated", requires_app = true }

[[services.plans]]
id = "7c1b0000-0000-4000-8000-00000000000d"
name = "too-slow"
description = "Runs past its maximum polling duration"
maximum_polling_duration = 1
backend = { type = "simulated", execution = "async_only", delay_ms = 3000 }

[[services.plans]]
id = "7c1b0000-0000-4000-8000-00000000000e"
name = "unbindable"
description = "Cannot be bound"
bindable = false
backend = { type = "simulated" }

[[services.plans]]
id = "7c1b0000-0000-4000-8000-00000000000f"
name = "fixed"
description = "Cannot change plans"
plan_updateable = false
backend = { type = "simulated" }

[[services.plans]]
id = "7c1b0000-0000-4000-8000-000000000013"
name = "async-slow"
description = "Only asynchronous and slow"
maximum_polling_duration = 60
backend = { type = "simulated", execution = "async_only", delay_ms = 1500 }

[[services.plans]]
id = "7c1b0000-0000-4000-8000-000000000014"
name = "async-reject-provision"
description = "Asynchronous; the backend rejects the parameters"
backend = { type = "simulated", execution = "async_only", delay_ms = 100, fail_on = ["provision"], fail_kind = "invalid_parameters" }

[[services.plans]]
id = "7c1b0000-0000-4000-8000-000000000015"
name = "async-reject-update"
description = "Asynchronous; the backend rejects updates"
backend = { type = "simulated", execution = "async_only", delay_ms = 100, fail_on = ["update"], fail_kind = "unprocessable" }

[[services.plans]]
id = "7c1b0000-0000-4000-8000-000000000016"
name = "async-requires-app"
description = "Asynchronous; binds need an application"
backend = { type = "simulated", execution = "async_only", delay_ms = 100, requires_app = true }

[[services.plans]]
id = "7c1b0000-0000-4000-8000-000000000010"
name = "expiring"
description = "Credentials expire"
backend = { type = "simulated", binding_ttl_seconds = 3600 }

[[services]]
id = "6b0a6e8c-0000-4000-8000-000000000002"
name = "shared-api"
description = "One shared account"
bindable = true
bindings_retrievable = true

[[services.plans]]
id = "7c1b0000-0000-4000-8000-000000000011"
name = "standard"
description = "The same API key for everyone"
backend = { type = "static", credentials = { url = "https://api.example.test", api_key = "static-api-key-3vJ8pQ" } }

[[services]]
id = "6b0a6e8c-0000-4000-8000-000000000003"
name = "no-bind"
description = "Cannot be bound"
bindable = false

[[services.plans]]
id = "7c1b0000-0000-4000-8000-000000000012"
name = "only"
description = "The only plan"
backend = { type = "simulated" }
"#;

/// Returns a fresh id for an instance or a binding.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Returns the `Authorization` header value for HTTP Basic.
pub fn basic_auth(username: &str, password: &str) -> String {
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    format!("Basic {encoded}")
}

/// Returns the head of the configuration file: one broker user and the limits.
pub fn standard_head() -> String {
    format!(
        "[[credentials]]\nusername = \"{USERNAME}\"\npassword = \"{PASSWORD}\"\n\n\
         [limits]\nretry_after_seconds = 1\n"
    )
}

/// A directory under the target's temporary folder, removed when dropped.
pub struct WorkDir {
    pub path: PathBuf,
}

impl WorkDir {
    fn new() -> WorkDir {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("osb-broker-{}", new_id()));
        std::fs::create_dir_all(&path).expect("create the test directory");
        WorkDir { path }
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A response, with the body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    /// The parsed body, or `Value::Null` when it is not JSON.
    pub body: Value,
}

impl Reply {
    /// Returns a header as text, if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    }

    /// Returns the `operation` field of the body.
    pub fn operation(&self) -> Option<String> {
        self.body["operation"].as_str().map(str::to_owned)
    }

    /// Returns the `error` field of the body.
    pub fn error(&self) -> Option<&str> {
        self.body["error"].as_str()
    }

    /// Asserts that this is an OSB error: the status, a JSON object body with
    /// a non-empty CamelCase `error` and a non-empty `description`.
    pub fn assert_osb_error(&self, status: u16, context: &str) {
        assert_eq!(self.status, status, "{context}: status; body {}", self.text);
        assert_osb_error_body(self, context);
    }
}

/// Asserts that a reply has an OSB error body, whatever its status.
pub fn assert_osb_error_body(reply: &Reply, context: &str) {
    assert!(
        reply.body.is_object(),
        "{context}: the body must be a JSON object, got {:?}",
        reply.text
    );
    let error = reply.body["error"].as_str().unwrap_or("");
    assert!(
        !error.is_empty(),
        "{context}: the body must have a non-empty \"error\": {}",
        reply.text
    );
    assert!(
        error.chars().all(|c| c.is_ascii_alphanumeric())
            && error.starts_with(|c: char| c.is_ascii_uppercase()),
        "{context}: \"error\" must be one CamelCase word, got {error:?}"
    );
    let description = reply.body["description"].as_str().unwrap_or("");
    assert!(
        !description.is_empty(),
        "{context}: the body must have a non-empty \"description\": {}",
        reply.text
    );
}

/// A running broker, killed when dropped.
pub struct TestBroker {
    pub base_url: String,
    pub address: String,
    pub dir: Arc<WorkDir>,
    pub client: reqwest::Client,
    child: Option<Child>,
    log: Arc<Mutex<String>>,
    env: Vec<(String, String)>,
    args: Vec<String>,
}

impl TestBroker {
    /// Starts a broker with the standard head and catalog.
    pub fn start_standard() -> TestBroker {
        TestBroker::start(&standard_head(), STANDARD_SERVICES)
    }

    /// Starts a broker with the standard head and the given services.
    pub fn start_services(services: &str) -> TestBroker {
        TestBroker::start(&standard_head(), services)
    }

    /// Starts a broker whose configuration is `head` and `services`; the
    /// state section is added here.
    pub fn start(head: &str, services: &str) -> TestBroker {
        TestBroker::start_with_env(head, services, &[])
    }

    /// Starts a broker with extra environment variables, such as `RUST_LOG`.
    pub fn start_with_env(head: &str, services: &str, env: &[(&str, &str)]) -> TestBroker {
        TestBroker::start_with_args(head, services, env, &[])
    }

    /// Starts a broker with extra environment variables and with `args`
    /// placed before the `serve` subcommand, such as `--log-format json`.
    pub fn start_with_args(
        head: &str,
        services: &str,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> TestBroker {
        let dir = Arc::new(WorkDir::new());
        let state = dir.path.join("state.db");
        let config = format!(
            "{head}\n[state]\nsqlite = \"{}\"\nencryption_key = \"{ENCRYPTION_KEY}\"\n\n{services}",
            state.display()
        );
        std::fs::write(dir.path.join("broker.toml"), config).expect("write the configuration");
        let env = env
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        let args = args.iter().map(|arg| (*arg).to_owned()).collect();
        TestBroker::spawn(dir, env, args)
    }

    fn spawn(dir: Arc<WorkDir>, env: Vec<(String, String)>, args: Vec<String>) -> TestBroker {
        let mut command = Command::new(env!("CARGO_BIN_EXE_osb-broker"));
        command
            .args(&args)
            .arg("serve")
            .arg("--config")
            .arg(dir.path.join("broker.toml"))
            .arg("--listen")
            .arg("127.0.0.1:0")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in &env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start osb-broker");

        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let log_writer = log.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|read| read > 0) {
                log_writer.lock().unwrap().push_str(&line);
                line.clear();
            }
        });

        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|read| read > 0) {
                if let Some(url) = line.trim().strip_prefix("listening on ") {
                    let _ = sender.send(url.to_owned());
                }
                line.clear();
            }
        });

        let base_url = match receiver.recv_timeout(START_TIMEOUT) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "osb-broker did not print its address within {START_TIMEOUT:?}; its log:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        let address = base_url
            .strip_prefix("http://")
            .expect("the address line starts with http://")
            .to_owned();
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("build the HTTP client");
        TestBroker {
            base_url,
            address,
            dir,
            client,
            child: Some(child),
            log,
            env,
            args,
        }
    }

    /// Kills the process with SIGKILL, leaving its state file behind.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the process and starts a new one on the same configuration and
    /// state file. The new process listens on another port.
    pub fn restart(mut self) -> TestBroker {
        self.kill();
        TestBroker::spawn(self.dir.clone(), self.env.clone(), self.args.clone())
    }

    /// Returns whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Returns everything the broker wrote to standard error so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Returns a request with the version header, the broker user and no body.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base_url))
            .header("X-Broker-API-Version", API_VERSION)
            .header("Authorization", basic_auth(USERNAME, PASSWORD))
    }

    /// Sends a request with the standard headers and an optional JSON body.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        send(request).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Reply {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, path, None).await
    }

    /// Provisions `instance_id` on a plan of the simulated offering.
    pub async fn provision(
        &self,
        instance_id: &str,
        plan_id: &str,
        accepts_incomplete: bool,
    ) -> Reply {
        self.provision_body(
            instance_id,
            &provision_body(SERVICE_ID, plan_id),
            accepts_incomplete,
        )
        .await
    }

    /// Sends a provision with the given body.
    pub async fn provision_body(
        &self,
        instance_id: &str,
        body: &Value,
        accepts_incomplete: bool,
    ) -> Reply {
        self.put(&instance_path(instance_id, accepts_incomplete), body)
            .await
    }

    /// Provisions with `accepts_incomplete=true` and, when the response is
    /// 202, waits until the provision ends.
    /// Panics unless the instance ends up provisioned.
    pub async fn provision_ready(&self, instance_id: &str, plan_id: &str) -> Reply {
        let reply = self.provision(instance_id, plan_id, true).await;
        match reply.status {
            201 => reply,
            202 => {
                let state = self
                    .wait_instance_operation(instance_id, reply.operation().as_deref())
                    .await;
                assert_eq!(
                    state["state"], "succeeded",
                    "provision of {instance_id} failed: {state}"
                );
                reply
            }
            _ => panic!(
                "provision of {instance_id} failed: {} {}",
                reply.status, reply.text
            ),
        }
    }

    /// Binds and panics unless the response is 201.
    pub async fn bind_ready(&self, instance_id: &str, binding_id: &str, plan_id: &str) -> Reply {
        let reply = self
            .put(
                &binding_path(instance_id, binding_id, false),
                &bind_body(SERVICE_ID, plan_id),
            )
            .await;
        assert_eq!(
            reply.status, 201,
            "bind of {binding_id} failed: {}",
            reply.text
        );
        reply
    }

    /// Polls the instance's last_operation until it is no longer in progress,
    /// for at most 30 seconds, and returns the last body.
    pub async fn wait_instance_operation(
        &self,
        instance_id: &str,
        operation: Option<&str>,
    ) -> Value {
        let path = last_operation_path(&instance_path(instance_id, false), operation);
        self.wait_operation(&path).await
    }

    /// Polls a binding's last_operation until it is no longer in progress.
    pub async fn wait_binding_operation(
        &self,
        instance_id: &str,
        binding_id: &str,
        operation: Option<&str>,
    ) -> Value {
        let path = last_operation_path(&binding_path(instance_id, binding_id, false), operation);
        self.wait_operation(&path).await
    }

    async fn wait_operation(&self, path: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let reply = self.get(path).await;
            assert_eq!(reply.status, 200, "GET {path}: {}", reply.text);
            if reply.body["state"] != "in progress" {
                return reply.body;
            }
            assert!(
                Instant::now() < deadline,
                "GET {path} still reports \"in progress\" after 30 seconds"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends a prepared request and reads the whole response.
pub async fn send(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.expect("the broker sends a response");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("read the response body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        text,
        body,
    }
}

/// Returns `/v2/service_instances/ID`, with `?accepts_incomplete=true` when asked.
pub fn instance_path(instance_id: &str, accepts_incomplete: bool) -> String {
    let mut path = format!("/v2/service_instances/{instance_id}");
    if accepts_incomplete {
        path.push_str("?accepts_incomplete=true");
    }
    path
}

/// Returns the path of a binding, with `?accepts_incomplete=true` when asked.
pub fn binding_path(instance_id: &str, binding_id: &str, accepts_incomplete: bool) -> String {
    let mut path = format!("/v2/service_instances/{instance_id}/service_bindings/{binding_id}");
    if accepts_incomplete {
        path.push_str("?accepts_incomplete=true");
    }
    path
}

/// Returns the path of a DELETE for an instance or binding resource path.
pub fn delete_path(resource: &str, plan_id: &str, accepts_incomplete: bool) -> String {
    let mut path = format!("{resource}?service_id={SERVICE_ID}&plan_id={plan_id}");
    if accepts_incomplete {
        path.push_str("&accepts_incomplete=true");
    }
    path
}

/// Returns the last_operation path of a resource path, with the operation.
pub fn last_operation_path(resource: &str, operation: Option<&str>) -> String {
    match operation {
        Some(operation) => format!("{resource}/last_operation?operation={operation}"),
        None => format!("{resource}/last_operation"),
    }
}

/// Returns a valid provision body.
pub fn provision_body(service_id: &str, plan_id: &str) -> Value {
    json!({
        "service_id": service_id,
        "plan_id": plan_id,
        "organization_guid": "org-guid-1",
        "space_guid": "space-guid-1",
        "context": {
            "platform": "cloudfoundry",
            "organization_guid": "org-guid-1",
            "organization_name": "org",
            "space_guid": "space-guid-1",
            "space_name": "space",
            "instance_name": "db"
        }
    })
}

/// Returns a valid bind body.
pub fn bind_body(service_id: &str, plan_id: &str) -> Value {
    json!({
        "service_id": service_id,
        "plan_id": plan_id,
        "bind_resource": {"app_guid": "app-guid-1"},
        "context": {"platform": "cloudfoundry"}
    })
}

/// Sends raw bytes over one HTTP/1.1 connection and returns the status and
/// body, for requests a client library would normalize (such as `..` in a
/// path). Returns `None` when the broker closed the connection without a
/// response.
pub fn raw_request(address: &str, request: &[u8]) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(address).expect("connect to the broker");
    stream
        .set_read_timeout(Some(REQUEST_TIMEOUT))
        .expect("set a read timeout");
    stream.write_all(request).ok()?;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Some((status, body))
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || tail.len() < size {
            break;
        }
        out.push_str(&tail[..size]);
        rest = tail[size..].trim_start_matches("\r\n");
    }
    out
}

/// Builds a raw HTTP/1.1 request with the standard headers.
pub fn raw_http(method: &str, target: &str, content_type: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         X-Broker-API-Version: {API_VERSION}\r\nAuthorization: {}\r\nContent-Length: {}\r\n",
        basic_auth(USERNAME, PASSWORD),
        body.len()
    );
    if let Some(content_type) = content_type {
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Runs `osb-broker serve` on a configuration that must be rejected, and
/// returns its standard error. Panics if the broker starts listening or does
/// not exit within 30 seconds.
pub fn start_failure(head: &str, services: &str) -> String {
    let dir = WorkDir::new();
    let config = format!(
        "{head}\n[state]\nsqlite = \"{}\"\nencryption_key = \"{ENCRYPTION_KEY}\"\n\n{services}",
        dir.path.join("state.db").display()
    );
    let config_path = dir.path.join("broker.toml");
    std::fs::write(&config_path, config).expect("write the configuration");
    let mut child = Command::new(env!("CARGO_BIN_EXE_osb-broker"))
        .arg("serve")
        .arg("--config")
        .arg(&config_path)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start osb-broker");

    let deadline = Instant::now() + START_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for osb-broker") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("osb-broker kept running with a configuration it must reject");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .expect("stdout is piped")
        .read_to_string(&mut stdout)
        .expect("read stdout");
    child
        .stderr
        .take()
        .expect("stderr is piped")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    assert!(
        !status.success(),
        "osb-broker must exit with a failure status"
    );
    assert!(
        !stdout.contains("listening on"),
        "osb-broker must not listen with a configuration it rejects: {stdout}"
    );
    stderr
}

/// Sends a raw request while reading the response on the same connection,
/// so that a response sent before the whole body was read still arrives.
/// Returns `None` when the broker closed the connection without a response.
pub fn raw_request_while_sending(address: &str, request: Vec<u8>) -> Option<(u16, String)> {
    let stream = TcpStream::connect(address).expect("connect to the broker");
    stream
        .set_read_timeout(Some(REQUEST_TIMEOUT))
        .expect("set a read timeout");
    let mut writer = stream.try_clone().expect("clone the connection");
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(&request);
    });
    let mut reader = stream;
    let mut response = Vec::new();
    let _ = reader.read_to_end(&mut response);
    let _ = reader.shutdown(std::net::Shutdown::Both);
    let _ = sender.join();
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}
