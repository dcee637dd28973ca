//! Shared setup for the PostgreSQL backend tests: the local server, job
//! builders and catalog checks.
//!
//! The tests need PostgreSQL at 127.0.0.1:5432 that lets `postgres` in
//! without a password (trust). Each test uses fresh uuid ids, so tests run
//! in parallel and only ever touch their own `osb_` objects.

#![allow(dead_code)]

use std::collections::BTreeMap;

use osb_broker::backends::postgresql::names::InstanceNames;
use osb_broker::backends::postgresql::{
    ExecutionMode, PlanConfig, PostgresBackend, ServerConfig, TlsMode,
};
use osbkit::types::JsonObject;
use osbkit::{Backend, BindJob, DeprovisionJob, JobContext, ProvisionJob, UnbindJob, UpdateJob};
use serde_json::Value;
use tokio_postgres::{Client, NoTls};

pub const ADMIN_URL: &str = "postgresql://postgres@127.0.0.1:5432/postgres";
pub const SERVICE_ID: &str = "postgresql-service";
/// A read-write plan that allows two extensions and limits connections.
pub const SMALL_PLAN: &str = "small-plan";
/// A plan whose bindings are read-only unless `read_only` is false.
pub const READONLY_PLAN: &str = "readonly-plan";
/// A plan with a higher connection limit and one more extension.
pub const LARGE_PLAN: &str = "large-plan";

/// Connects as the admin role, or fails the test with how to start the server.
pub async fn admin() -> Client {
    connect(ADMIN_URL).await.unwrap_or_else(|error| {
        panic!(
            "PostgreSQL is not running on 127.0.0.1:5432: start it with \
             `pg_ctlcluster 15 main start` (or your service manager) and let the role \
             postgres connect from 127.0.0.1 with trust authentication ({error})"
        )
    })
}

/// Connects with `url`, driving the connection in the background.
pub async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

pub fn server_config(url: &str) -> ServerConfig {
    ServerConfig {
        url: url.to_owned(),
        tls: TlsMode::Disable,
        ca_file: None,
        public_host: None,
        public_port: None,
        connect_timeout_seconds: 5,
        name_prefix: "osb".to_owned(),
    }
}

pub fn plan(connection_limit: Option<i32>, extensions: &[&str], read_only: bool) -> PlanConfig {
    PlanConfig {
        server: "default".to_owned(),
        connection_limit,
        extensions: extensions.iter().map(|name| (*name).to_owned()).collect(),
        read_only,
        jdbc_url: true,
        execution: ExecutionMode::AsyncPreferred,
    }
}

pub fn plans() -> Vec<(String, PlanConfig)> {
    vec![
        (
            SMALL_PLAN.to_owned(),
            plan(Some(10), &["pgcrypto", "hstore"], false),
        ),
        (READONLY_PLAN.to_owned(), plan(None, &[], true)),
        (
            LARGE_PLAN.to_owned(),
            plan(Some(20), &["pgcrypto", "hstore", "citext"], false),
        ),
    ]
}

/// Builds a backend for the local server, after checking that it runs.
pub async fn backend() -> PostgresBackend {
    admin().await;
    backend_for(ADMIN_URL).await
}

/// Builds a backend for the local server whose names start with `prefix`.
pub async fn backend_with_prefix(prefix: &str) -> PostgresBackend {
    admin().await;
    let mut server = server_config(ADMIN_URL);
    server.name_prefix = prefix.to_owned();
    let servers = BTreeMap::from([("default".to_owned(), server)]);
    PostgresBackend::new(&servers, plans())
        .await
        .expect("the test configuration is valid")
}

/// Builds a backend whose only server is at `url`.
pub async fn backend_for(url: &str) -> PostgresBackend {
    let servers = BTreeMap::from([("default".to_owned(), server_config(url))]);
    PostgresBackend::new(&servers, plans())
        .await
        .expect("the test configuration is valid")
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub fn object(value: Value) -> JsonObject {
    value
        .as_object()
        .cloned()
        .expect("parameters are a JSON object")
}

pub fn provision_job(instance_id: &str, plan_id: &str, parameters: Value) -> ProvisionJob {
    ProvisionJob {
        context: JobContext::default(),
        instance_id: instance_id.to_owned(),
        service_id: SERVICE_ID.to_owned(),
        plan_id: plan_id.to_owned(),
        parameters: object(parameters),
        platform_context: None,
        organization_guid: "org".to_owned(),
        space_guid: "space".to_owned(),
    }
}

pub fn update_job(
    instance_id: &str,
    from_plan: &str,
    to_plan: &str,
    parameters: Value,
) -> UpdateJob {
    UpdateJob {
        context: JobContext::default(),
        instance_id: instance_id.to_owned(),
        service_id: SERVICE_ID.to_owned(),
        previous_plan_id: from_plan.to_owned(),
        plan_id: to_plan.to_owned(),
        previous_parameters: JsonObject::new(),
        parameters: object(parameters),
        platform_context: None,
        maintenance_version: None,
    }
}

pub fn deprovision_job(instance_id: &str, plan_id: &str, binding_ids: &[&str]) -> DeprovisionJob {
    DeprovisionJob {
        context: JobContext::default(),
        instance_id: instance_id.to_owned(),
        service_id: SERVICE_ID.to_owned(),
        plan_id: plan_id.to_owned(),
        binding_ids: binding_ids.iter().map(|id| (*id).to_owned()).collect(),
    }
}

pub fn bind_job(instance_id: &str, binding_id: &str, plan_id: &str, parameters: Value) -> BindJob {
    BindJob {
        context: JobContext::default(),
        instance_id: instance_id.to_owned(),
        binding_id: binding_id.to_owned(),
        service_id: SERVICE_ID.to_owned(),
        plan_id: plan_id.to_owned(),
        parameters: object(parameters),
        app_guid: Some("app".to_owned()),
        bind_resource: None,
        platform_context: None,
        predecessor_binding_id: None,
    }
}

pub fn unbind_job(instance_id: &str, binding_id: &str, plan_id: &str) -> UnbindJob {
    UnbindJob {
        context: JobContext::default(),
        instance_id: instance_id.to_owned(),
        binding_id: binding_id.to_owned(),
        service_id: SERVICE_ID.to_owned(),
        plan_id: plan_id.to_owned(),
    }
}

/// Binds and returns the `uri` of the credentials.
pub async fn bind_uri(backend: &PostgresBackend, job: &BindJob) -> String {
    let outcome = backend.bind(job).await.expect("bind succeeds");
    let credentials = outcome.credentials.expect("bind returns credentials");
    credentials["uri"]
        .as_str()
        .expect("credentials have a string uri")
        .to_owned()
}

pub async fn database_exists(admin: &Client, database: &str) -> bool {
    admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&database])
        .await
        .expect("query pg_database")
        .is_some()
}

pub async fn database_owner(admin: &Client, database: &str) -> Option<String> {
    admin
        .query_opt(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1",
            &[&database],
        )
        .await
        .expect("query pg_database")
        .map(|row| row.get(0))
}

pub async fn connection_limit(admin: &Client, database: &str) -> i32 {
    admin
        .query_one(
            "SELECT datconnlimit FROM pg_database WHERE datname = $1",
            &[&database],
        )
        .await
        .expect("query pg_database")
        .get(0)
}

pub async fn role_exists(admin: &Client, role: &str) -> bool {
    admin
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
        .await
        .expect("query pg_roles")
        .is_some()
}

pub async fn role_can_login(admin: &Client, role: &str) -> bool {
    admin
        .query_one(
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1",
            &[&role],
        )
        .await
        .expect("query pg_roles")
        .get(0)
}

/// Tells whether `role` is a direct member of `group`.
pub async fn is_member(admin: &Client, role: &str, group: &str) -> bool {
    admin
        .query_opt(
            "SELECT 1 FROM pg_auth_members m \
             JOIN pg_roles r ON r.oid = m.member JOIN pg_roles g ON g.oid = m.roleid \
             WHERE r.rolname = $1 AND g.rolname = $2",
            &[&role, &group],
        )
        .await
        .expect("query pg_auth_members")
        .is_some()
}

/// Tells whether `role` ('public' for PUBLIC) may connect to `database`.
pub async fn can_connect(admin: &Client, role: &str, database: &str) -> bool {
    admin
        .query_one(
            "SELECT has_database_privilege($1, $2, 'CONNECT')",
            &[&role, &database],
        )
        .await
        .expect("query has_database_privilege")
        .get(0)
}

/// Returns the role-specific settings of `role`, such as `role=osb_..._owner`.
pub async fn role_settings(admin: &Client, role: &str) -> Vec<String> {
    admin
        .query_opt(
            "SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole \
             WHERE r.rolname = $1 AND s.setdatabase = 0",
            &[&role],
        )
        .await
        .expect("query pg_db_role_setting")
        .map(|row| row.get::<_, Vec<String>>(0))
        .unwrap_or_default()
}

/// Lists every database and role of the instance, binding roles included.
pub async fn instance_objects(admin: &Client, instance_id: &str) -> Vec<String> {
    let names = InstanceNames::new(instance_id);
    let rows = admin
        .query(
            "SELECT datname::text FROM pg_database WHERE left(datname, length($1)) = $1 \
             UNION ALL SELECT rolname::text FROM pg_roles WHERE left(rolname, length($1)) = $1",
            &[&names.database],
        )
        .await
        .expect("query catalogs");
    rows.iter().map(|row| row.get(0)).collect()
}

/// Asserts that nothing of the instance remains on the server.
pub async fn assert_nothing_left(admin: &Client, instance_id: &str) {
    let left = instance_objects(admin, instance_id).await;
    assert!(left.is_empty(), "objects left on the server: {left:?}");
}

/// Drops every object of an instance when dropped, so a test that fails
/// halfway leaves nothing behind. Uses plain SQL, not the backend under test.
pub struct InstanceGuard {
    names: InstanceNames,
}

pub fn guard(instance_id: &str) -> InstanceGuard {
    guard_names(InstanceNames::new(instance_id))
}

/// Like [`guard`], for the names of a backend with another name prefix.
pub fn guard_names(names: InstanceNames) -> InstanceGuard {
    InstanceGuard { names }
}

impl Drop for InstanceGuard {
    fn drop(&mut self) {
        let names = self.names.clone();
        // Drop runs inside the test's runtime, so the cleanup gets a thread
        // and a runtime of its own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("build cleanup runtime");
            runtime.block_on(drop_instance_objects(names));
        });
        let _ = cleanup.join();
    }
}

async fn drop_instance_objects(names: InstanceNames) {
    let Ok(admin) = connect(ADMIN_URL).await else {
        return;
    };
    let drop_database = format!(
        "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
        names.database
    );
    let _ = admin.batch_execute(&drop_database).await;
    let Ok(rows) = admin
        .query(
            "SELECT rolname::text FROM pg_roles WHERE left(rolname, length($1)) = $1 \
             ORDER BY rolname LIKE '%\\_b\\_%' DESC, rolname LIKE '%\\_reader' DESC",
            &[&names.database],
        )
        .await
    else {
        return;
    };
    for row in rows {
        let role: String = row.get(0);
        let _ = admin
            .batch_execute(&format!(
                "DROP OWNED BY \"{role}\"; DROP ROLE IF EXISTS \"{role}\""
            ))
            .await;
    }
}

/// Deprovisions, for cleanup at the end of a test.
pub async fn cleanup(backend: &PostgresBackend, instance_id: &str, plan_id: &str) {
    backend.inject_fault_after(None);
    backend
        .deprovision(&deprovision_job(instance_id, plan_id, &[]))
        .await
        .expect("cleanup deprovision succeeds");
}
