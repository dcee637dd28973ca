//! Brokers sharing a server, databases the broker did not make, invalid
//! databases left by a drop that did not finish, and parameter checks
//! before an operation is accepted.

mod postgresql_support;

use std::collections::BTreeMap;

use osb_broker::backends::postgresql::names::{InstanceNames, Naming};
use osb_broker::backends::postgresql::reconcile::{delete_orphans, find_orphans};
use osb_broker::backends::postgresql::PostgresBackend;
use osbkit::{Backend, BackendError, OperationKind};
use postgresql_support::*;
use serde_json::json;
use tokio_postgres::Client;

/// The prefix of the second broker in these tests.
const OTHER_PREFIX: &str = "osbtestb";

async fn database_comment(admin: &Client, database: &str) -> Option<String> {
    admin
        .query_one(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
            &[&database],
        )
        .await
        .expect("query pg_database")
        .get(0)
}

fn assert_not_ours(result: Result<impl Sized, BackendError>, database: &str) {
    match result {
        Err(BackendError::Unprocessable(message)) => {
            let named = format!("a database named {database} already exists");
            assert!(message.contains(&named), "{message}");
            assert!(message.contains("server default"), "{message}");
            assert!(
                message.contains("not made for this instance by this broker"),
                "{message}"
            );
        }
        Err(other) => panic!("expected a rejection, got {other}"),
        Ok(_) => panic!("provision took over a database it did not make"),
    }
}

#[tokio::test]
async fn prefixes_keep_brokers_apart() {
    let first = backend().await;
    let second = backend_with_prefix(OTHER_PREFIX).await;
    let admin = admin().await;
    let instance_id = new_id();
    let binding_id = new_id();
    let first_names = InstanceNames::new(&instance_id);
    let second_names = Naming::new(OTHER_PREFIX)
        .expect("valid prefix")
        .instance(&instance_id);
    let _first_guard = guard(&instance_id);
    let _second_guard = guard_names(second_names.clone());
    assert_ne!(first_names.database, second_names.database);
    assert!(second_names.database.starts_with("osbtestb_"));

    for backend in [&first, &second] {
        backend
            .provision(&provision_job(&instance_id, SMALL_PLAN, json!({})))
            .await
            .expect("provision succeeds");
        bind_uri(
            backend,
            &bind_job(&instance_id, &binding_id, SMALL_PLAN, json!({})),
        )
        .await;
    }
    assert_eq!(
        database_owner(&admin, &first_names.database).await,
        Some(first_names.owner.clone())
    );
    assert_eq!(
        database_owner(&admin, &second_names.database).await,
        Some(second_names.owner.clone())
    );

    // The second broker has no records, so everything with its prefix is an
    // orphan, and nothing of the first broker's is.
    let report = find_orphans(&second, &[], &[])
        .await
        .expect("find_orphans succeeds");
    let listed: Vec<&String> = report
        .orphan_databases
        .iter()
        .chain(&report.orphan_roles)
        .map(|object| &object.name)
        .collect();
    assert!(
        listed.iter().all(|name| name.starts_with("osbtestb_")),
        "{listed:?}"
    );
    assert!(listed.contains(&&second_names.database), "{listed:?}");
    assert!(!listed.contains(&&first_names.database), "{listed:?}");

    second
        .deprovision(&deprovision_job(&instance_id, SMALL_PLAN, &[&binding_id]))
        .await
        .expect("deprovision succeeds");
    assert!(!database_exists(&admin, &second_names.database).await);
    assert!(!role_exists(&admin, &second_names.owner).await);
    assert!(database_exists(&admin, &first_names.database).await);
    assert!(role_exists(&admin, &first_names.owner).await);
    assert!(role_exists(&admin, &first_names.binding_role(&binding_id)).await);

    cleanup(&first, &instance_id, SMALL_PLAN).await;
    assert_nothing_left(&admin, &instance_id).await;
}

#[tokio::test]
async fn provision_marks_database() {
    let backend = backend().await;
    let admin = admin().await;
    let instance_id = new_id();
    let _guard = guard(&instance_id);
    let names = InstanceNames::new(&instance_id);
    backend
        .provision(&provision_job(&instance_id, SMALL_PLAN, json!({})))
        .await
        .expect("provision succeeds");
    assert_eq!(
        database_comment(&admin, &names.database).await,
        Some(names.marker.clone())
    );
    // Running it again finds its own database.
    backend
        .provision(&provision_job(&instance_id, SMALL_PLAN, json!({})))
        .await
        .expect("provision runs again");
    cleanup(&backend, &instance_id, SMALL_PLAN).await;
    assert_nothing_left(&admin, &instance_id).await;
}

#[tokio::test]
async fn provision_rejects_foreign_database() {
    let backend = backend().await;
    let admin = admin().await;
    let instance_id = new_id();
    let _guard = guard(&instance_id);
    let names = InstanceNames::new(&instance_id);
    // Someone else's database that happens to have the instance's name.
    admin
        .batch_execute(&format!("CREATE DATABASE \"{}\"", names.database))
        .await
        .expect("create a foreign database");
    admin
        .batch_execute(&format!(
            "COMMENT ON DATABASE \"{}\" IS 'another tool''s'",
            names.database
        ))
        .await
        .expect("comment on the foreign database");

    let result = backend
        .provision(&provision_job(&instance_id, SMALL_PLAN, json!({})))
        .await;
    assert_not_ours(result, &names.database);
    assert_eq!(
        database_owner(&admin, &names.database).await,
        Some("postgres".to_owned()),
        "the database keeps its owner"
    );
    assert!(
        !role_exists(&admin, &names.owner).await,
        "a rejected provision makes nothing"
    );

    // Reconcile does not list it, and deprovision leaves it alone.
    let report = find_orphans(&backend, &[], &[])
        .await
        .expect("find_orphans succeeds");
    assert!(report
        .orphan_databases
        .iter()
        .all(|object| object.name != names.database));
    backend
        .deprovision(&deprovision_job(&instance_id, SMALL_PLAN, &[]))
        .await
        .expect("deprovision succeeds");
    assert!(database_exists(&admin, &names.database).await);
    assert_eq!(
        database_comment(&admin, &names.database).await.as_deref(),
        Some("another tool's")
    );
}

#[tokio::test]
async fn provision_rejects_unmarked_database_with_content() {
    let backend = backend().await;
    let admin = admin().await;
    let instance_id = new_id();
    let _guard = guard(&instance_id);
    let names = InstanceNames::new(&instance_id);
    // Owned by a role of the owner role's name, but not empty: not a
    // database whose provision stopped right after CREATE DATABASE.
    admin
        .batch_execute(&format!("CREATE ROLE \"{}\" NOLOGIN", names.owner))
        .await
        .expect("create the owner role");
    admin
        .batch_execute(&format!(
            "CREATE DATABASE \"{}\" OWNER \"{}\"",
            names.database, names.owner
        ))
        .await
        .expect("create an unmarked database");
    let database = connect(&format!(
        "postgresql://postgres@127.0.0.1:5432/{}",
        names.database
    ))
    .await
    .expect("connect to the database");
    database
        .batch_execute("CREATE TABLE someone_elses (n int)")
        .await
        .expect("create a table");
    drop(database);

    let result = backend
        .provision(&provision_job(&instance_id, SMALL_PLAN, json!({})))
        .await;
    assert_not_ours(result, &names.database);
    assert_eq!(database_comment(&admin, &names.database).await, None);
}

#[tokio::test]
async fn provision_adopts_unmarked_empty_database() {
    let backend = backend().await;
    let admin = admin().await;
    let instance_id = new_id();
    let _guard = guard(&instance_id);
    let names = InstanceNames::new(&instance_id);
    // What a broker killed between CREATE DATABASE and COMMENT leaves.
    admin
        .batch_execute(&format!("CREATE ROLE \"{}\" NOLOGIN", names.owner))
        .await
        .expect("create the owner role");
    admin
        .batch_execute(&format!(
            "CREATE DATABASE \"{}\" OWNER \"{}\" TEMPLATE template0",
            names.database, names.owner
        ))
        .await
        .expect("create an unmarked database");
    backend
        .provision(&provision_job(&instance_id, SMALL_PLAN, json!({})))
        .await
        .expect("provision finishes");
    assert_eq!(
        database_comment(&admin, &names.database).await,
        Some(names.marker.clone())
    );
    cleanup(&backend, &instance_id, SMALL_PLAN).await;
    assert_nothing_left(&admin, &instance_id).await;
}

#[tokio::test]
async fn name_prefix_validated() {
    for prefix in ["", "1osb", "OSB", "osb_", "abcdefghijklm", "o-b"] {
        let mut server = server_config(ADMIN_URL);
        server.name_prefix = prefix.to_owned();
        let servers = BTreeMap::from([("default".to_owned(), server)]);
        let error = PostgresBackend::new(&servers, plans())
            .await
            .expect_err(prefix);
        assert!(
            error.contains("postgresql.servers.default.name_prefix"),
            "{prefix}: {error}"
        );
    }
    let mut server = server_config(ADMIN_URL);
    server.name_prefix = "abcdefghijk1".to_owned();
    let servers = BTreeMap::from([("default".to_owned(), server)]);
    PostgresBackend::new(&servers, plans())
        .await
        .expect("a 12-character prefix is valid");
}

/// Marks the database invalid as PostgreSQL 15 does when a `DROP DATABASE`
/// begins, which is what a broker killed during the drop leaves behind.
async fn make_invalid(admin: &Client, database: &str) {
    let updated = admin
        .execute(
            "UPDATE pg_database SET datconnlimit = -2 WHERE datname = $1",
            &[&database],
        )
        .await
        .expect("mark the database invalid");
    assert_eq!(updated, 1);
}

#[tokio::test]
async fn deprovision_drops_invalid_database() {
    let backend = backend().await;
    let admin = admin().await;
    let instance_id = new_id();
    let binding_id = new_id();
    let reader_binding_id = new_id();
    let _guard = guard(&instance_id);
    let names = InstanceNames::new(&instance_id);
    backend
        .provision(&provision_job(&instance_id, SMALL_PLAN, json!({})))
        .await
        .expect("provision succeeds");
    bind_uri(
        &backend,
        &bind_job(&instance_id, &binding_id, SMALL_PLAN, json!({})),
    )
    .await;
    bind_uri(
        &backend,
        &bind_job(
            &instance_id,
            &reader_binding_id,
            SMALL_PLAN,
            json!({"read_only": true}),
        ),
    )
    .await;
    make_invalid(&admin, &names.database).await;

    backend
        .deprovision(&deprovision_job(&instance_id, SMALL_PLAN, &[&binding_id]))
        .await
        .expect("deprovision finishes the drop");
    assert_nothing_left(&admin, &instance_id).await;
}

#[tokio::test]
async fn deprovision_resumes_after_killed_drop() {
    // The first run stops after blocking connections, and the DROP DATABASE
    // it then sent began on the server and stopped, as with a SIGKILL.
    let backend = backend().await;
    let admin = admin().await;
    let instance_id = new_id();
    let binding_id = new_id();
    let _guard = guard(&instance_id);
    let names = InstanceNames::new(&instance_id);
    backend
        .provision(&provision_job(&instance_id, SMALL_PLAN, json!({})))
        .await
        .expect("provision succeeds");
    bind_uri(
        &backend,
        &bind_job(&instance_id, &binding_id, SMALL_PLAN, json!({})),
    )
    .await;
    backend.inject_fault_after(Some("deprovision:block_connections"));
    let result = backend
        .deprovision(&deprovision_job(&instance_id, SMALL_PLAN, &[&binding_id]))
        .await;
    assert!(result.is_err(), "the injected fault stops the first run");
    backend.inject_fault_after(None);
    make_invalid(&admin, &names.database).await;

    backend
        .deprovision(&deprovision_job(&instance_id, SMALL_PLAN, &[&binding_id]))
        .await
        .expect("the resumed deprovision finishes the drop");
    assert_nothing_left(&admin, &instance_id).await;
}

#[tokio::test]
async fn reconcile_drops_invalid_orphan_database() {
    let backend = backend().await;
    let admin = admin().await;
    let instance_id = new_id();
    let _guard = guard(&instance_id);
    let names = InstanceNames::new(&instance_id);
    backend
        .provision(&provision_job(&instance_id, SMALL_PLAN, json!({})))
        .await
        .expect("provision succeeds");
    make_invalid(&admin, &names.database).await;

    let mut report = find_orphans(&backend, &[], &[])
        .await
        .expect("find_orphans succeeds");
    // Other tests run at the same time; only this test's objects go.
    let ours = [
        names.database.clone(),
        names.owner.clone(),
        names.reader.clone(),
    ];
    report
        .orphan_databases
        .retain(|object| ours.contains(&object.name));
    report
        .orphan_roles
        .retain(|object| ours.contains(&object.name));
    report.missing_databases.clear();
    assert_eq!(report.orphan_databases.len(), 1, "{report}");
    delete_orphans(&backend, &report)
        .await
        .expect("delete_orphans succeeds");
    assert_nothing_left(&admin, &instance_id).await;
}

#[tokio::test]
async fn check_parameters_rejects_invalid() {
    let backend = backend().await;
    let invalid = [
        (OperationKind::Provision, json!({"superuser": true})),
        (OperationKind::Provision, json!({"extensions": ["postgis"]})),
        (OperationKind::Update, json!({"extensions": "pgcrypto"})),
        (OperationKind::Bind, json!({"read_only": "yes"})),
        (OperationKind::Bind, json!({"extensions": ["pgcrypto"]})),
    ];
    for (kind, parameters) in invalid {
        let result = backend.check_parameters(SMALL_PLAN, kind, &object(parameters.clone()));
        assert!(
            matches!(result, Err(BackendError::InvalidParameters(_))),
            "{kind:?} {parameters}: {result:?}"
        );
    }
    let valid = [
        (
            OperationKind::Provision,
            json!({"extensions": ["pgcrypto"]}),
        ),
        (OperationKind::Update, json!({})),
        (OperationKind::Bind, json!({"read_only": true})),
        (OperationKind::Deprovision, json!({"anything": 1})),
    ];
    for (kind, parameters) in valid {
        backend
            .check_parameters(SMALL_PLAN, kind, &object(parameters.clone()))
            .unwrap_or_else(|error| panic!("{kind:?} {parameters}: {error}"));
    }
}
