//! Kill-and-retry: each operation stops after each of its steps, as a
//! broker killed there would, and the same job run again must finish with
//! no duplicate and no orphan.

mod postgresql_support;

use osb_broker::backends::postgresql::names::InstanceNames;
use osb_broker::backends::postgresql::{steps, PostgresBackend};
use osbkit::{Backend, BackendError};
use postgresql_support::*;
use serde_json::json;

fn assert_injected(result: Result<impl Sized, BackendError>, step: &str) {
    match result {
        Err(BackendError::Internal(error)) => {
            assert!(error.to_string().contains(step), "{step}: {error}")
        }
        Err(other) => panic!("{step}: expected the injected fault, got {other}"),
        Ok(_) => panic!("{step}: the operation ran past its injected fault"),
    }
}

/// Asserts that the instance has everything a finished provision makes.
async fn assert_provisioned(admin: &tokio_postgres::Client, instance_id: &str, step: &str) {
    let names = InstanceNames::new(instance_id);
    assert_eq!(
        database_owner(admin, &names.database).await,
        Some(names.owner.clone()),
        "{step}"
    );
    assert!(role_exists(admin, &names.reader).await, "{step}");
    assert!(
        !can_connect(admin, "public", &names.database).await,
        "{step}"
    );
    assert!(
        can_connect(admin, &names.reader, &names.database).await,
        "{step}"
    );
    assert_eq!(connection_limit(admin, &names.database).await, 10, "{step}");

    let database = connect(&format!(
        "postgresql://postgres@127.0.0.1:5432/{}",
        names.database
    ))
    .await
    .expect("connect to the instance database");
    let extensions = database
        .query(
            "SELECT extname::text FROM pg_extension WHERE extname = 'hstore'",
            &[],
        )
        .await
        .expect("query pg_extension");
    assert_eq!(extensions.len(), 1, "{step}: hstore is installed");
    let objects = instance_objects(admin, instance_id).await;
    assert_eq!(
        objects.len(),
        3,
        "{step}: database, owner, reader: {objects:?}"
    );
}

#[tokio::test]
async fn provision_resumes_after_each_step() {
    let backend = backend().await;
    let admin = admin().await;
    for step in steps::PROVISION {
        let instance_id = new_id();
        let _instance_id_guard = guard(&instance_id);
        let job = provision_job(&instance_id, SMALL_PLAN, json!({"extensions": ["hstore"]}));

        backend.inject_fault_after(Some(step));
        assert_injected(backend.provision(&job).await, step);
        backend.inject_fault_after(None);

        backend
            .provision(&job)
            .await
            .unwrap_or_else(|error| panic!("{step}: provision again fails: {error}"));
        assert_provisioned(&admin, &instance_id, step).await;

        cleanup(&backend, &instance_id, SMALL_PLAN).await;
        assert_nothing_left(&admin, &instance_id).await;
    }
}

#[tokio::test]
async fn failed_provision_leaves_nothing_after_deprovision() {
    let backend = backend().await;
    let admin = admin().await;
    for step in steps::PROVISION {
        let instance_id = new_id();
        let _instance_id_guard = guard(&instance_id);
        backend.inject_fault_after(Some(step));
        assert_injected(
            backend
                .provision(&provision_job(&instance_id, SMALL_PLAN, json!({})))
                .await,
            step,
        );
        backend.inject_fault_after(None);

        backend
            .deprovision(&deprovision_job(&instance_id, SMALL_PLAN, &[]))
            .await
            .unwrap_or_else(|error| panic!("{step}: deprovision fails: {error}"));
        assert_nothing_left(&admin, &instance_id).await;
    }
}

async fn provisioned(backend: &PostgresBackend) -> String {
    let instance_id = new_id();
    backend
        .provision(&provision_job(&instance_id, SMALL_PLAN, json!({})))
        .await
        .expect("provision succeeds");
    instance_id
}

#[tokio::test]
async fn bind_resumes_after_each_step() {
    let backend = backend().await;
    let admin = admin().await;
    let instance_id = provisioned(&backend).await;
    let _instance_id_guard = guard(&instance_id);
    let names = InstanceNames::new(&instance_id);
    let mut bound = 0;
    for read_only in [false, true] {
        for step in steps::BIND {
            let binding_id = new_id();
            let role = names.binding_role(&binding_id);
            let job = bind_job(
                &instance_id,
                &binding_id,
                SMALL_PLAN,
                json!({"read_only": read_only}),
            );

            backend.inject_fault_after(Some(step));
            assert_injected(backend.bind(&job).await, step);
            backend.inject_fault_after(None);
            // Only the last step enables login, with a password that was never returned.
            if *step != "bind:login" && role_exists(&admin, &role).await {
                assert!(
                    !role_can_login(&admin, &role).await,
                    "{step}: login before the bind finished"
                );
            }

            let uri = bind_uri(&backend, &job).await;
            bound += 1;
            let client = connect(&uri)
                .await
                .unwrap_or_else(|error| panic!("{step}: the binding cannot connect: {error}"));
            let write = client
                .batch_execute("CREATE TABLE IF NOT EXISTS t (n int)")
                .await;
            assert_eq!(
                write.is_ok(),
                !read_only,
                "{step}, read_only {read_only}: {write:?}"
            );
            assert_eq!(
                is_member(&admin, &role, &names.owner).await,
                !read_only,
                "{step}"
            );
            assert_eq!(
                is_member(&admin, &role, &names.reader).await,
                read_only,
                "{step}"
            );

            let objects = instance_objects(&admin, &instance_id).await;
            assert_eq!(
                objects.len(),
                3 + bound,
                "{step}: one role per binding: {objects:?}"
            );
        }
    }
    cleanup(&backend, &instance_id, SMALL_PLAN).await;
    assert_nothing_left(&admin, &instance_id).await;
}

#[tokio::test]
async fn unbind_resumes_after_each_step() {
    let backend = backend().await;
    let admin = admin().await;
    let instance_id = provisioned(&backend).await;
    let _instance_id_guard = guard(&instance_id);
    let names = InstanceNames::new(&instance_id);
    let keeper_uri = bind_uri(
        &backend,
        &bind_job(&instance_id, &new_id(), SMALL_PLAN, json!({})),
    )
    .await;
    let keeper = connect(&keeper_uri).await.expect("keeper connects");

    for (index, step) in steps::UNBIND.iter().enumerate() {
        let binding_id = new_id();
        let role = names.binding_role(&binding_id);
        let uri = bind_uri(
            &backend,
            &bind_job(&instance_id, &binding_id, SMALL_PLAN, json!({})),
        )
        .await;
        let client = connect(&uri).await.expect("binding connects");
        let table = format!("made_by_{index}");
        client
            .batch_execute(&format!(
                "CREATE TABLE {table} (n int); INSERT INTO {table} VALUES (1); \
                 RESET ROLE; CREATE TABLE own_{table} (n int);"
            ))
            .await
            .expect("binding creates tables");

        let job = unbind_job(&instance_id, &binding_id, SMALL_PLAN);
        backend.inject_fault_after(Some(step));
        assert_injected(backend.unbind(&job).await, step);
        backend.inject_fault_after(None);
        if role_exists(&admin, &role).await {
            assert!(
                !role_can_login(&admin, &role).await,
                "{step}: login still allowed"
            );
        }

        backend
            .unbind(&job)
            .await
            .unwrap_or_else(|error| panic!("{step}: unbind again fails: {error}"));
        assert!(!role_exists(&admin, &role).await, "{step}: role left");
        for name in [table.clone(), format!("own_{table}")] {
            keeper
                .query_one(&format!("SELECT count(*) FROM {name}"), &[])
                .await
                .unwrap_or_else(|error| panic!("{step}: table {name} lost: {error}"));
        }
    }
    drop(keeper);
    cleanup(&backend, &instance_id, SMALL_PLAN).await;
    assert_nothing_left(&admin, &instance_id).await;
}

#[tokio::test]
async fn deprovision_resumes_after_each_step() {
    let backend = backend().await;
    let admin = admin().await;
    for step in steps::DEPROVISION {
        let instance_id = provisioned(&backend).await;
        let _instance_id_guard = guard(&instance_id);
        let writer_id = new_id();
        let reader_id = new_id();
        let writer_uri = bind_uri(
            &backend,
            &bind_job(&instance_id, &writer_id, SMALL_PLAN, json!({})),
        )
        .await;
        bind_uri(
            &backend,
            &bind_job(
                &instance_id,
                &reader_id,
                SMALL_PLAN,
                json!({"read_only": true}),
            ),
        )
        .await;
        let writer = connect(&writer_uri).await.expect("writer connects");

        let job = deprovision_job(&instance_id, SMALL_PLAN, &[&writer_id, &reader_id]);
        backend.inject_fault_after(Some(step));
        assert_injected(backend.deprovision(&job).await, step);
        backend.inject_fault_after(None);

        backend
            .deprovision(&job)
            .await
            .unwrap_or_else(|error| panic!("{step}: deprovision again fails: {error}"));
        assert_nothing_left(&admin, &instance_id).await;
        drop(writer);
    }
}

#[tokio::test]
async fn update_resumes_after_each_step() {
    let backend = backend().await;
    let admin = admin().await;
    let instance_id = provisioned(&backend).await;
    let _instance_id_guard = guard(&instance_id);
    let names = InstanceNames::new(&instance_id);
    for step in steps::UPDATE {
        let job = update_job(
            &instance_id,
            SMALL_PLAN,
            LARGE_PLAN,
            json!({"extensions": ["citext"]}),
        );
        backend.inject_fault_after(Some(step));
        assert_injected(backend.update(&job).await, step);
        backend.inject_fault_after(None);

        backend
            .update(&job)
            .await
            .unwrap_or_else(|error| panic!("{step}: update again fails: {error}"));
        assert_eq!(
            connection_limit(&admin, &names.database).await,
            20,
            "{step}"
        );
    }
    cleanup(&backend, &instance_id, LARGE_PLAN).await;
    assert_nothing_left(&admin, &instance_id).await;
}

// A platform may unbind after a deprovision that stopped with the database
// already closed to connections.
#[tokio::test]
async fn unbind_after_interrupted_deprovision() {
    let backend = backend().await;
    let admin = admin().await;
    let instance_id = provisioned(&backend).await;
    let _instance_id_guard = guard(&instance_id);
    let binding_id = new_id();
    bind_uri(
        &backend,
        &bind_job(&instance_id, &binding_id, SMALL_PLAN, json!({})),
    )
    .await;

    let step = "deprovision:block_connections";
    backend.inject_fault_after(Some(step));
    assert_injected(
        backend
            .deprovision(&deprovision_job(&instance_id, SMALL_PLAN, &[]))
            .await,
        step,
    );
    backend.inject_fault_after(None);

    backend
        .unbind(&unbind_job(&instance_id, &binding_id, SMALL_PLAN))
        .await
        .expect("unbind succeeds while the database is closed");
    let role = InstanceNames::new(&instance_id).binding_role(&binding_id);
    assert!(!role_exists(&admin, &role).await);

    cleanup(&backend, &instance_id, SMALL_PLAN).await;
    assert_nothing_left(&admin, &instance_id).await;
}
