//! A small in-memory broker for the `osb check` tests, with switches that
//! each break specific rules of the specification.
//!
//! Without faults it follows the rules that `osb check` tests: one
//! offering with a synchronous plan and an asynchronous-only plan, whose
//! operations end `ASYNC_DELAY` after they start. It runs in the test's
//! tokio runtime on 127.0.0.1 with an ephemeral port.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use serde_json::{json, Value};

pub const USER: &str = "admin";
pub const PASSWORD: &str = "fixture-secret-4411";
/// The password of every binding's credentials, to check that reports mask it.
pub const CREDENTIAL_PASSWORD: &str = "credential-secret-9052";

pub const SERVICE_ID: &str = "fixture-service";
pub const SYNC_PLAN_ID: &str = "fixture-plan-sync";
pub const ASYNC_PLAN_ID: &str = "fixture-plan-async";
const MAINTENANCE_VERSION: &str = "1.0.0";

/// How long an asynchronous operation runs.
const ASYNC_DELAY: Duration = Duration::from_millis(700);
/// How long a provision runs with `Fault::SlowAsync`.
const SLOW_ASYNC_DELAY: Duration = Duration::from_secs(30);

/// A rule the fixture breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Every request gets 200 with `{}`.
    OkToEverything,
    /// Duplicate ids and names, bad names, versions, schemas, `requires`
    /// and dashboard_client, and ids that change between fetches.
    BadCatalog,
    /// Requests without or with wrong credentials are served.
    NoAuth,
    /// Requests without or with an old version header are served.
    NoVersionCheck,
    /// Deleting what does not exist gets 200 instead of 410.
    No410,
    /// An identical repeat of a completed provision or bind gets 201.
    CreatedOnRepeat,
    /// A provision or bind with other attributes for an existing id gets 200.
    NoConflict,
    /// 422 responses carry `Unprocessable` instead of the reserved codes.
    WrongErrorCodes,
    /// Malformed bodies and missing fields are accepted.
    NoValidation,
    /// The asynchronous plan responds 202 without accepts_incomplete.
    AsyncWithoutAcceptsIncomplete,
    /// last_operation reports `done` instead of `succeeded`.
    BadLastOperation,
    /// A repeat during an operation gets another `operation`.
    NewOperationOnRepeat,
    /// Fetching an instance or binding whose creation runs gets 200.
    FetchWhileCreating,
    /// A 202 from bind carries credentials, and success bodies have wrong types.
    BadBodies,
    /// Unknown ids get 200 from fetch and last_operation.
    No404,
    /// Every deprovision gets 500, so nothing can be cleaned up.
    Undeletable,
    /// Responses come as text/plain and without the request identity.
    BareHeaders,
    /// Asynchronous provisions run for `SLOW_ASYNC_DELAY`.
    SlowAsync,
}

#[derive(Debug, Clone)]
struct Operation {
    id: String,
    kind: &'static str,
    ends_at: Instant,
}

#[derive(Debug, Clone)]
struct Instance {
    plan_id: String,
    attributes: Value,
    operation: Option<Operation>,
    ready: bool,
}

#[derive(Debug, Clone)]
struct Binding {
    plan_id: String,
    attributes: Value,
    operation: Option<Operation>,
    ready: bool,
}

#[derive(Debug, Default)]
struct Store {
    instances: HashMap<String, Instance>,
    bindings: HashMap<(String, String), Binding>,
    deleted_instances: HashSet<String>,
    deleted_bindings: HashSet<(String, String)>,
    /// Instances ever created, for tests that check nothing was created.
    created_instances: usize,
    catalog_fetches: usize,
}

struct Shared {
    faults: HashSet<Fault>,
    store: Mutex<Store>,
}

/// A running fixture broker; it stops when the test's runtime ends.
pub struct Fixture {
    pub url: String,
    shared: Arc<Shared>,
}

impl Fixture {
    /// Starts a fixture with these faults on an ephemeral port.
    pub async fn start(faults: &[Fault]) -> Fixture {
        let shared = Arc::new(Shared {
            faults: faults.iter().copied().collect(),
            store: Mutex::new(Store::default()),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Fixture { url, shared }
    }

    /// Instances that exist now, finished or not.
    pub fn live_instances(&self) -> usize {
        let mut store = self.shared.store.lock().unwrap();
        settle(&mut store);
        store.instances.len()
    }

    /// Bindings that exist now, finished or not.
    pub fn live_bindings(&self) -> usize {
        let mut store = self.shared.store.lock().unwrap();
        settle(&mut store);
        store.bindings.len()
    }

    /// Instances ever created.
    pub fn created_instances(&self) -> usize {
        self.shared.store.lock().unwrap().created_instances
    }
}

/// Applies the operations whose time has come.
fn settle(store: &mut Store) {
    let now = Instant::now();
    let mut finished_instances = Vec::new();
    for (id, instance) in store.instances.iter_mut() {
        if let Some(operation) = instance.operation.clone() {
            if operation.ends_at <= now {
                instance.operation = None;
                match operation.kind {
                    "deprovision" => finished_instances.push(id.clone()),
                    _ => instance.ready = true,
                }
            }
        }
    }
    for id in finished_instances {
        store.instances.remove(&id);
        store
            .bindings
            .retain(|(instance_id, _), _| instance_id != &id);
        store.deleted_instances.insert(id);
    }
    let mut finished_bindings = Vec::new();
    for (key, binding) in store.bindings.iter_mut() {
        if let Some(operation) = binding.operation.clone() {
            if operation.ends_at <= now {
                binding.operation = None;
                match operation.kind {
                    "unbind" => finished_bindings.push(key.clone()),
                    _ => binding.ready = true,
                }
            }
        }
    }
    for key in finished_bindings {
        store.bindings.remove(&key);
        store.deleted_bindings.insert(key);
    }
}

/// One parsed request.
struct Request {
    method: Method,
    segments: Vec<String>,
    query: HashMap<String, String>,
    body: Option<Value>,
    body_is_json: bool,
}

impl Request {
    fn accepts_incomplete(&self) -> bool {
        self.query.get("accepts_incomplete").map(String::as_str) == Some("true")
    }

    fn field(&self, name: &str) -> Option<&str> {
        self.body.as_ref()?.get(name)?.as_str()
    }
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn error(status: StatusCode, code: &str, description: &str) -> Response {
    reply(status, json!({ "error": code, "description": description }))
}

fn bad_request(description: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "BadRequest", description)
}

impl Shared {
    fn has(&self, fault: Fault) -> bool {
        self.faults.contains(&fault)
    }

    fn delay(&self, kind: &str) -> Duration {
        if self.has(Fault::SlowAsync) && kind == "provision" {
            SLOW_ASYNC_DELAY
        } else {
            ASYNC_DELAY
        }
    }

    /// Builds a 422 with the reserved code, or a wrong one with `WrongErrorCodes`.
    fn reserved(&self, code: &str) -> Response {
        let code = if self.has(Fault::WrongErrorCodes) {
            "Unprocessable"
        } else {
            code
        };
        error(
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
            "rejected by the fixture",
        )
    }

    fn gone(&self) -> Response {
        if self.has(Fault::No410) {
            reply(StatusCode::OK, json!({}))
        } else {
            error(StatusCode::GONE, "Gone", "it does not exist")
        }
    }

    fn not_found(&self) -> Response {
        if self.has(Fault::No404) {
            reply(StatusCode::OK, json!({ "state": "succeeded" }))
        } else {
            error(StatusCode::NOT_FOUND, "NotFound", "it does not exist")
        }
    }

    fn new_operation(&self, kind: &'static str, id: &str) -> Operation {
        Operation {
            id: format!("{kind}-{id}-{}", uuid::Uuid::new_v4()),
            kind,
            ends_at: Instant::now() + self.delay(kind),
        }
    }

    /// Returns the `operation` to send back for a repeat while `operation` runs.
    fn repeated_operation(&self, operation: &Operation) -> String {
        if self.has(Fault::NewOperationOnRepeat) {
            format!("{}-again", operation.id)
        } else {
            operation.id.clone()
        }
    }

    fn accepted(&self, operation: &str) -> Response {
        reply(StatusCode::ACCEPTED, json!({ "operation": operation }))
    }

    /// Whether a new operation on this plan runs asynchronously; `None`
    /// when it must and the request does not allow it.
    fn asynchronous(&self, plan_id: &str, request: &Request) -> Option<bool> {
        if plan_id != ASYNC_PLAN_ID {
            return Some(false);
        }
        (request.accepts_incomplete() || self.has(Fault::AsyncWithoutAcceptsIncomplete))
            .then_some(true)
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let identity = headers.get("X-Broker-API-Request-Identity").cloned();
    let mut response = route(&shared, method, &uri, &headers, &body);
    if shared.has(Fault::BareHeaders) {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    } else if let Some(identity) = identity {
        response
            .headers_mut()
            .insert("X-Broker-API-Request-Identity", identity);
    }
    response
}

fn route(shared: &Shared, method: Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Response {
    if shared.has(Fault::OkToEverything) {
        return reply(StatusCode::OK, json!({}));
    }
    if !shared.has(Fault::NoAuth) {
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
        );
        if headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            != Some(expected.as_str())
        {
            return error(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "invalid credentials",
            );
        }
    }
    if !shared.has(Fault::NoVersionCheck) {
        let version = headers
            .get("X-Broker-API-Version")
            .and_then(|value| value.to_str().ok());
        if !version.is_some_and(|version| version.starts_with("2.")) {
            return error(
                StatusCode::PRECONDITION_FAILED,
                "PreconditionFailed",
                "send X-Broker-API-Version: 2.17",
            );
        }
    }

    let parsed = reqwest::Url::parse(&format!("http://fixture{uri}")).unwrap();
    let query = parsed.query_pairs().into_owned().collect();
    let json_body: Option<Value> = serde_json::from_slice(body).ok();
    let request = Request {
        method,
        segments: uri
            .path()
            .trim_matches('/')
            .split('/')
            .map(str::to_owned)
            .collect(),
        query,
        body_is_json: body.is_empty() || json_body.is_some(),
        body: json_body,
    };
    let mut store = shared.store.lock().unwrap();
    settle(&mut store);
    let segments: Vec<&str> = request.segments.iter().map(String::as_str).collect();
    match (request.method.clone(), segments.as_slice()) {
        (Method::GET, ["v2", "catalog"]) => {
            store.catalog_fetches += 1;
            reply(StatusCode::OK, catalog(shared, store.catalog_fetches))
        }
        (Method::PUT, ["v2", "service_instances", id]) => {
            provision(shared, &mut store, id, &request)
        }
        (Method::GET, ["v2", "service_instances", id]) => fetch_instance(shared, &store, id),
        (Method::PATCH, ["v2", "service_instances", id]) => {
            update(shared, &mut store, id, &request)
        }
        (Method::DELETE, ["v2", "service_instances", id]) => {
            deprovision(shared, &mut store, id, &request)
        }
        (Method::GET, ["v2", "service_instances", id, "last_operation"]) => {
            instance_last_operation(shared, &store, id)
        }
        (Method::PUT, ["v2", "service_instances", id, "service_bindings", binding_id]) => {
            bind(shared, &mut store, id, binding_id, &request)
        }
        (Method::GET, ["v2", "service_instances", id, "service_bindings", binding_id]) => {
            fetch_binding(shared, &store, id, binding_id)
        }
        (Method::DELETE, ["v2", "service_instances", id, "service_bindings", binding_id]) => {
            unbind(shared, &mut store, id, binding_id, &request)
        }
        (
            Method::GET,
            ["v2", "service_instances", id, "service_bindings", binding_id, "last_operation"],
        ) => binding_last_operation(shared, &store, id, binding_id),
        _ => error(StatusCode::NOT_FOUND, "NotFound", "no such endpoint"),
    }
}

fn catalog(shared: &Shared, fetch: usize) -> Value {
    let schema = json!({
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "object",
        "properties": { "size": { "type": "integer" } }
    });
    let mut catalog = json!({
        "services": [{
            "id": SERVICE_ID,
            "name": "fixture-db",
            "description": "A fixture database",
            "bindable": true,
            "instances_retrievable": true,
            "bindings_retrievable": true,
            "plan_updateable": true,
            "plans": [
                {
                    "id": SYNC_PLAN_ID,
                    "name": "sync",
                    "description": "Synchronous",
                    "maintenance_info": { "version": MAINTENANCE_VERSION },
                    "schemas": { "service_instance": { "create": { "parameters": schema } } }
                },
                {
                    "id": ASYNC_PLAN_ID,
                    "name": "async",
                    "description": "Asynchronous only",
                    "maintenance_info": { "version": MAINTENANCE_VERSION }
                }
            ]
        }]
    });
    if shared.has(Fault::BadCatalog) {
        let bad = json!({
            "id": format!("changing-id-{fetch}"),
            "name": "bad offering",
            "description": "",
            "bindable": "yes",
            "requires": ["nfs"],
            "tags": "not-a-list",
            "dashboard_client": { "id": "client", "secret": "" },
            "plans": [
                {
                    "id": SYNC_PLAN_ID,
                    "name": "dup",
                    "description": "",
                    "maintenance_info": { "version": "1.0" },
                    "schemas": { "service_instance": { "create": { "parameters": {
                        "type": "object",
                        "properties": { "x": { "$ref": "https://schemas.example.test/x.json" } }
                    } } } }
                },
                { "id": "other", "name": "dup", "description": "d" }
            ]
        });
        catalog["services"]
            .as_array_mut()
            .unwrap()
            .push(bad.clone());
        let mut duplicate = bad;
        duplicate["id"] = json!(SERVICE_ID);
        duplicate["name"] = json!("fixture-db");
        duplicate["plans"] = json!([]);
        catalog["services"].as_array_mut().unwrap().push(duplicate);
    }
    catalog
}

/// Checks the fields every provision needs; `None` when they are valid.
fn invalid_provision(shared: &Shared, request: &Request) -> Option<Response> {
    if shared.has(Fault::NoValidation) {
        return None;
    }
    if !request.body_is_json || !request.body.as_ref().is_some_and(Value::is_object) {
        return Some(bad_request("the body is not a JSON object"));
    }
    for field in ["service_id", "plan_id", "organization_guid", "space_guid"] {
        if request.field(field).is_none_or(str::is_empty) {
            return Some(bad_request(&format!("{field} is missing")));
        }
    }
    if request.field("service_id") != Some(SERVICE_ID) {
        return Some(bad_request("unknown service_id"));
    }
    if !matches!(request.field("plan_id"), Some(SYNC_PLAN_ID | ASYNC_PLAN_ID)) {
        return Some(bad_request("unknown plan_id"));
    }
    None
}

fn maintenance_conflict(request: &Request) -> bool {
    request
        .body
        .as_ref()
        .and_then(|body| body.pointer("/maintenance_info/version"))
        .and_then(Value::as_str)
        .is_some_and(|version| version != MAINTENANCE_VERSION)
}

fn provision(shared: &Shared, store: &mut Store, id: &str, request: &Request) -> Response {
    if let Some(response) = invalid_provision(shared, request) {
        return response;
    }
    if maintenance_conflict(request) {
        return shared.reserved("MaintenanceInfoConflict");
    }
    let body = request.body.clone().unwrap_or_default();
    let attributes = json!([
        body.get("plan_id"),
        body.get("organization_guid"),
        body.get("space_guid"),
        body.get("parameters")
    ]);
    let plan_id = request.field("plan_id").unwrap_or(SYNC_PLAN_ID).to_owned();
    if let Some(existing) = store.instances.get(id) {
        if existing.attributes != attributes && !shared.has(Fault::NoConflict) {
            return error(
                StatusCode::CONFLICT,
                "Conflict",
                "the instance exists with other attributes",
            );
        }
        return match &existing.operation {
            Some(operation) if operation.kind == "provision" && request.accepts_incomplete() => {
                shared.accepted(&shared.repeated_operation(operation))
            }
            Some(_) => shared.reserved("ConcurrencyError"),
            None if shared.has(Fault::CreatedOnRepeat) => reply(StatusCode::CREATED, json!({})),
            None => reply(StatusCode::OK, json!({})),
        };
    }
    let Some(asynchronous) = shared.asynchronous(&plan_id, request) else {
        return shared.reserved("AsyncRequired");
    };
    let operation = asynchronous.then(|| shared.new_operation("provision", id));
    store.created_instances += 1;
    store.instances.insert(
        id.to_owned(),
        Instance {
            plan_id,
            attributes,
            operation: operation.clone(),
            ready: !asynchronous,
        },
    );
    match operation {
        Some(operation) => shared.accepted(&operation.id),
        None if shared.has(Fault::BadBodies) => {
            reply(StatusCode::CREATED, json!({ "dashboard_url": 5 }))
        }
        None => reply(StatusCode::CREATED, json!({ "dashboard_url": null })),
    }
}

fn fetch_instance(shared: &Shared, store: &Store, id: &str) -> Response {
    match store.instances.get(id) {
        Some(instance) if instance.ready || shared.has(Fault::FetchWhileCreating) => {
            let plan_id = if shared.has(Fault::BadBodies) {
                "another-plan"
            } else {
                instance.plan_id.as_str()
            };
            reply(
                StatusCode::OK,
                json!({ "service_id": SERVICE_ID, "plan_id": plan_id }),
            )
        }
        _ => shared.not_found(),
    }
}

fn update(shared: &Shared, store: &mut Store, id: &str, request: &Request) -> Response {
    if !shared.has(Fault::NoValidation) {
        if !request.body_is_json || !request.body.as_ref().is_some_and(Value::is_object) {
            return bad_request("the body is not a JSON object");
        }
        if request.field("service_id").is_none_or(str::is_empty) {
            return bad_request("service_id is missing");
        }
    }
    if maintenance_conflict(request) {
        return shared.reserved("MaintenanceInfoConflict");
    }
    let Some(instance) = store.instances.get(id).cloned() else {
        return error(StatusCode::NOT_FOUND, "NotFound", "no such instance");
    };
    if let Some(operation) = &instance.operation {
        if operation.kind == "update" && request.accepts_incomplete() {
            return shared.accepted(&shared.repeated_operation(operation));
        }
        return shared.reserved("ConcurrencyError");
    }
    let Some(asynchronous) = shared.asynchronous(&instance.plan_id, request) else {
        return shared.reserved("AsyncRequired");
    };
    let operation = asynchronous.then(|| shared.new_operation("update", id));
    if let Some(instance) = store.instances.get_mut(id) {
        if let Some(plan_id) = request.field("plan_id") {
            instance.plan_id = plan_id.to_owned();
        }
        instance.operation = operation.clone();
    }
    match operation {
        Some(operation) => shared.accepted(&operation.id),
        None => reply(StatusCode::OK, json!({})),
    }
}

fn has_ids(shared: &Shared, request: &Request) -> bool {
    shared.has(Fault::NoValidation)
        || (request
            .query
            .get("service_id")
            .is_some_and(|id| !id.is_empty())
            && request
                .query
                .get("plan_id")
                .is_some_and(|id| !id.is_empty()))
}

fn deprovision(shared: &Shared, store: &mut Store, id: &str, request: &Request) -> Response {
    if !has_ids(shared, request) {
        return bad_request("service_id and plan_id are required");
    }
    if shared.has(Fault::Undeletable) {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "the fixture cannot delete",
        );
    }
    let Some(instance) = store.instances.get(id).cloned() else {
        return shared.gone();
    };
    // A delete during a provision stops the provision and starts deleting.
    match &instance.operation {
        Some(operation) if operation.kind == "deprovision" && request.accepts_incomplete() => {
            return shared.accepted(&shared.repeated_operation(operation));
        }
        Some(operation) if operation.kind != "provision" => {
            return shared.reserved("ConcurrencyError")
        }
        _ => {}
    }
    let Some(asynchronous) = shared.asynchronous(&instance.plan_id, request) else {
        return shared.reserved("AsyncRequired");
    };
    if !asynchronous {
        store.instances.remove(id);
        store
            .bindings
            .retain(|(instance_id, _), _| instance_id != id);
        store.deleted_instances.insert(id.to_owned());
        return reply(StatusCode::OK, json!({}));
    }
    let operation = shared.new_operation("deprovision", id);
    let accepted = shared.accepted(&operation.id);
    if let Some(instance) = store.instances.get_mut(id) {
        instance.operation = Some(operation);
    }
    accepted
}

fn state_body(shared: &Shared, operation: Option<&Operation>) -> Value {
    match operation {
        Some(_) => json!({ "state": "in progress" }),
        None if shared.has(Fault::BadLastOperation) => json!({ "state": "done" }),
        None => json!({ "state": "succeeded" }),
    }
}

fn instance_last_operation(shared: &Shared, store: &Store, id: &str) -> Response {
    match store.instances.get(id) {
        Some(instance) => reply(
            StatusCode::OK,
            state_body(shared, instance.operation.as_ref()),
        ),
        None if store.deleted_instances.contains(id) => shared.gone(),
        None => shared.not_found(),
    }
}

fn credentials() -> Value {
    json!({ "uri": "fixture://db", "password": CREDENTIAL_PASSWORD })
}

fn bind(
    shared: &Shared,
    store: &mut Store,
    id: &str,
    binding_id: &str,
    request: &Request,
) -> Response {
    if !shared.has(Fault::NoValidation) {
        if !request.body_is_json || !request.body.as_ref().is_some_and(Value::is_object) {
            return bad_request("the body is not a JSON object");
        }
        for field in ["service_id", "plan_id"] {
            if request.field(field).is_none_or(str::is_empty) {
                return bad_request(&format!("{field} is missing"));
            }
        }
    }
    let Some(instance) = store.instances.get(id).cloned() else {
        return error(StatusCode::NOT_FOUND, "NotFound", "no such instance");
    };
    let key = (id.to_owned(), binding_id.to_owned());
    let attributes = request.body.as_ref().map_or(Value::Null, |body| {
        json!([body.get("bind_resource"), body.get("parameters")])
    });
    if let Some(existing) = store.bindings.get(&key) {
        if existing.attributes != attributes && !shared.has(Fault::NoConflict) {
            return error(
                StatusCode::CONFLICT,
                "Conflict",
                "the binding exists with other attributes",
            );
        }
        return match &existing.operation {
            Some(operation) if operation.kind == "bind" && request.accepts_incomplete() => {
                shared.accepted(&shared.repeated_operation(operation))
            }
            Some(_) => shared.reserved("ConcurrencyError"),
            None if shared.has(Fault::CreatedOnRepeat) => {
                reply(StatusCode::CREATED, json!({ "credentials": credentials() }))
            }
            None => reply(StatusCode::OK, json!({ "credentials": credentials() })),
        };
    }
    let Some(asynchronous) = shared.asynchronous(&instance.plan_id, request) else {
        return shared.reserved("AsyncRequired");
    };
    let operation = asynchronous.then(|| shared.new_operation("bind", binding_id));
    store.bindings.insert(
        key,
        Binding {
            plan_id: instance.plan_id.clone(),
            attributes,
            operation: operation.clone(),
            ready: !asynchronous,
        },
    );
    match operation {
        Some(operation) if shared.has(Fault::BadBodies) => reply(
            StatusCode::ACCEPTED,
            json!({ "operation": operation.id, "credentials": credentials() }),
        ),
        Some(operation) => shared.accepted(&operation.id),
        None if shared.has(Fault::BadBodies) => reply(
            StatusCode::CREATED,
            json!({ "credentials": credentials(), "syslog_drain_url": "syslog://fixture", "endpoints": [{ "host": "h", "ports": [] }] }),
        ),
        None => reply(StatusCode::CREATED, json!({ "credentials": credentials() })),
    }
}

fn fetch_binding(shared: &Shared, store: &Store, id: &str, binding_id: &str) -> Response {
    match store.bindings.get(&(id.to_owned(), binding_id.to_owned())) {
        Some(binding) if binding.ready || shared.has(Fault::FetchWhileCreating) => {
            let body = if shared.has(Fault::BadBodies) {
                json!({ "credentials": "not-an-object" })
            } else {
                json!({ "credentials": credentials() })
            };
            reply(StatusCode::OK, body)
        }
        _ => shared.not_found(),
    }
}

fn unbind(
    shared: &Shared,
    store: &mut Store,
    id: &str,
    binding_id: &str,
    request: &Request,
) -> Response {
    if !has_ids(shared, request) {
        return bad_request("service_id and plan_id are required");
    }
    let key = (id.to_owned(), binding_id.to_owned());
    let Some(binding) = store.bindings.get(&key).cloned() else {
        return shared.gone();
    };
    if let Some(operation) = &binding.operation {
        if operation.kind == "unbind" && request.accepts_incomplete() {
            return shared.accepted(&shared.repeated_operation(operation));
        }
        return shared.reserved("ConcurrencyError");
    }
    let Some(asynchronous) = shared.asynchronous(&binding.plan_id, request) else {
        return shared.reserved("AsyncRequired");
    };
    if !asynchronous {
        store.bindings.remove(&key);
        store.deleted_bindings.insert(key);
        return reply(StatusCode::OK, json!({}));
    }
    let operation = shared.new_operation("unbind", binding_id);
    let accepted = shared.accepted(&operation.id);
    if let Some(binding) = store.bindings.get_mut(&key) {
        binding.operation = Some(operation);
    }
    accepted
}

fn binding_last_operation(shared: &Shared, store: &Store, id: &str, binding_id: &str) -> Response {
    let key = (id.to_owned(), binding_id.to_owned());
    match store.bindings.get(&key) {
        Some(binding) => reply(
            StatusCode::OK,
            state_body(shared, binding.operation.as_ref()),
        ),
        None if store.deleted_bindings.contains(&key) => shared.gone(),
        None => shared.not_found(),
    }
}
