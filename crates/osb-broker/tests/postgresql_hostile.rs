//! Hostile ids and parameters must not reach SQL as anything but data.

mod postgresql_support;

use std::collections::BTreeMap;

use osb_broker::backends::postgresql::names::InstanceNames;
use osb_broker::backends::postgresql::PostgresBackend;
use osbkit::{Backend, BackendError};
use postgresql_support::*;
use serde_json::{json, Value};

fn hostile_ids() -> Vec<String> {
    let unique = new_id();
    vec![
        format!("{unique}'; DROP DATABASE postgres; --"),
        format!("{unique}\"; DROP ROLE postgres; --"),
        format!("{unique}\\'; SELECT pg_sleep(10); --"),
        format!("{unique} инстанс 🚀 $$ E'\\x00'"),
        format!("{unique}{}", "x".repeat(1000)),
        format!("{unique}{}", "';\"".repeat(333)),
    ]
}

async fn assert_server_intact(admin: &tokio_postgres::Client) {
    assert!(
        database_exists(admin, "postgres").await,
        "database postgres dropped"
    );
    assert!(
        role_exists(admin, "postgres").await,
        "role postgres dropped"
    );
}

#[tokio::test]
async fn hostile_ids_are_only_data() {
    let backend = backend().await;
    let admin = admin().await;
    for instance_id in hostile_ids() {
        let _instance_id_guard = guard(&instance_id);
        let binding_id = format!("{instance_id}-binding");
        let reader_id = format!("{instance_id}-reader");
        let names = InstanceNames::new(&instance_id);

        backend
            .provision(&provision_job(
                &instance_id,
                SMALL_PLAN,
                json!({"extensions": ["pgcrypto"]}),
            ))
            .await
            .expect("provision with a hostile id succeeds");
        assert!(database_exists(&admin, &names.database).await);
        let uri = bind_uri(
            &backend,
            &bind_job(&instance_id, &binding_id, SMALL_PLAN, json!({})),
        )
        .await;
        connect(&uri).await.expect("the binding connects");
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
        for name in instance_objects(&admin, &instance_id).await {
            assert!(name.len() <= 63, "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
        }

        backend
            .unbind(&unbind_job(&instance_id, &binding_id, SMALL_PLAN))
            .await
            .expect("unbind with a hostile id succeeds");
        backend
            .deprovision(&deprovision_job(&instance_id, SMALL_PLAN, &[&reader_id]))
            .await
            .expect("deprovision with a hostile id succeeds");
        assert_nothing_left(&admin, &instance_id).await;
        assert_server_intact(&admin).await;
    }
}

#[tokio::test]
async fn hostile_parameters_are_rejected() {
    let backend = backend().await;
    let admin = admin().await;
    let instance_id = new_id();
    let _instance_id_guard = guard(&instance_id);
    let long_name = "a".repeat(1000);
    let rejected_provisions: Vec<Value> = vec![
        json!({"extensions": ["pgcrypto\"; DROP DATABASE postgres; --"]}),
        json!({"extensions": ["pgcrypto'; DROP ROLE postgres; --"]}),
        json!({"extensions": ["postgis"]}),
        json!({"extensions": ["PGCRYPTO"]}),
        json!({"extensions": ["pgcrypto "]}),
        json!({"extensions": ["plpython3u"]}),
        json!({"extensions": [long_name]}),
        json!({"extensions": ["ünïcödé"]}),
        json!({"extensions": "pgcrypto"}),
        json!({"extensions": [null]}),
        json!({"superuser": true}),
    ];
    for parameters in rejected_provisions {
        let error = backend
            .provision(&provision_job(&instance_id, SMALL_PLAN, parameters.clone()))
            .await
            .expect_err("hostile parameters are rejected");
        let BackendError::InvalidParameters(message) = &error else {
            panic!("{parameters}: expected InvalidParameters, got {error}");
        };
        assert!(
            message.len() < 300,
            "{parameters}: message too long: {message}"
        );
        assert!(
            instance_objects(&admin, &instance_id).await.is_empty(),
            "{parameters}: rejected provision created objects"
        );
    }

    backend
        .provision(&provision_job(&instance_id, SMALL_PLAN, json!({})))
        .await
        .expect("provision succeeds");
    for parameters in [
        json!({"read_only": "true; DROP DATABASE postgres"}),
        json!({"read_only": 1}),
        json!({"role": "postgres"}),
    ] {
        let error = backend
            .bind(&bind_job(
                &instance_id,
                &new_id(),
                SMALL_PLAN,
                parameters.clone(),
            ))
            .await
            .expect_err("hostile bind parameters are rejected");
        assert!(
            matches!(error, BackendError::InvalidParameters(_)),
            "{parameters}: {error}"
        );
    }
    let error = backend
        .update(&update_job(
            &instance_id,
            SMALL_PLAN,
            SMALL_PLAN,
            json!({"extensions": ["adminpack"]}),
        ))
        .await
        .expect_err("an extension the plan does not allow is rejected");
    assert!(
        matches!(error, BackendError::InvalidParameters(_)),
        "{error}"
    );

    let objects = instance_objects(&admin, &instance_id).await;
    assert_eq!(
        objects.len(),
        3,
        "only database, owner and reader: {objects:?}"
    );
    cleanup(&backend, &instance_id, SMALL_PLAN).await;
    assert_nothing_left(&admin, &instance_id).await;
    assert_server_intact(&admin).await;
}

#[tokio::test]
async fn hostile_configuration_is_rejected() {
    let servers = BTreeMap::from([("default".to_owned(), server_config(ADMIN_URL))]);
    let mut bad_extension = plan(None, &["pgcrypto\"; DROP DATABASE postgres; --"], false);
    let error = PostgresBackend::new(&servers, vec![("p".to_owned(), bad_extension.clone())])
        .await
        .expect_err("a hostile extension name in the config is rejected");
    assert!(error.contains("backend.extensions"), "{error}");

    bad_extension.extensions.clear();
    bad_extension.server = "missing".to_owned();
    let error = PostgresBackend::new(&servers, vec![("p".to_owned(), bad_extension.clone())])
        .await
        .expect_err("an unknown server is rejected");
    assert!(error.contains("backend.server"), "{error}");

    bad_extension.server = "default".to_owned();
    bad_extension.connection_limit = Some(0);
    let error = PostgresBackend::new(&servers, vec![("p".to_owned(), bad_extension)])
        .await
        .expect_err("a zero connection limit is rejected");
    assert!(error.contains("connection_limit"), "{error}");

    let secret_url = "postgresql://postgres:hunter2-secret@127.0.0.1:5432/postgres";
    let secret_servers = BTreeMap::from([("default".to_owned(), server_config(secret_url))]);
    let debug = format!("{:?}", secret_servers);
    assert!(
        !debug.contains("hunter2"),
        "the admin password leaks through Debug: {debug}"
    );
    let backend = PostgresBackend::new(&secret_servers, Vec::new())
        .await
        .expect("valid configuration");
    let debug = format!("{backend:?}");
    assert!(
        !debug.contains("hunter2"),
        "the admin password leaks through Debug: {debug}"
    );

    let unparsable = BTreeMap::from([(
        "default".to_owned(),
        server_config("postgresql://postgres:hunter2-secret@127.0.0.1:notaport/postgres"),
    )]);
    let error = PostgresBackend::new(&unparsable, Vec::new())
        .await
        .expect_err("an invalid URL is rejected");
    assert!(
        !error.contains("hunter2"),
        "the admin password leaks into an error: {error}"
    );
    assert!(error.contains("postgresql.servers.default.url"), "{error}");
}
