//! The PostgreSQL backend driven through the `Backend` trait against the
//! local server, checking the catalogs after each step.

mod postgresql_support;

use std::collections::BTreeMap;
use std::process::Command;
use std::str::FromStr;

use osb_broker::backends::postgresql::names::InstanceNames;
use osb_broker::backends::postgresql::{PostgresBackend, PASSWORD_LEN};
use osbkit::{Backend, BackendError};
use postgresql_support::*;
use serde_json::json;
use tokio_postgres::error::SqlState;

async fn extension_installed(url: &str, extension: &str) -> bool {
    let client = connect(url).await.expect("connect to instance database");
    client
        .query_opt(
            "SELECT 1 FROM pg_extension WHERE extname = $1",
            &[&extension],
        )
        .await
        .expect("query pg_extension")
        .is_some()
}

fn instance_admin_url(names: &InstanceNames) -> String {
    format!("postgresql://postgres@127.0.0.1:5432/{}", names.database)
}

#[tokio::test]
async fn provision_creates_isolated_database() {
    let backend = backend().await;
    let admin = admin().await;
    let instance_id = new_id();
    let _instance_id_guard = guard(&instance_id);
    let names = InstanceNames::new(&instance_id);
    let job = provision_job(
        &instance_id,
        SMALL_PLAN,
        json!({"extensions": ["pgcrypto"]}),
    );

    backend.provision(&job).await.expect("provision succeeds");

    assert!(database_exists(&admin, &names.database).await);
    assert_eq!(
        database_owner(&admin, &names.database).await,
        Some(names.owner.clone())
    );
    assert!(
        !role_can_login(&admin, &names.owner).await,
        "the owner role must not log in"
    );
    assert!(
        !role_can_login(&admin, &names.reader).await,
        "the reader role must not log in"
    );
    assert_eq!(connection_limit(&admin, &names.database).await, 10);
    assert!(
        !can_connect(&admin, "public", &names.database).await,
        "PUBLIC may connect"
    );
    assert!(can_connect(&admin, &names.owner, &names.database).await);

    let instance_url = instance_admin_url(&names);
    assert!(extension_installed(&instance_url, "pgcrypto").await);
    assert!(!extension_installed(&instance_url, "hstore").await);
    let database = connect(&instance_url).await.expect("connect as admin");
    let row = database
        .query_one(
            "SELECT pg_get_userbyid(nspowner), has_schema_privilege('public', 'public', 'CREATE'), \
             has_schema_privilege('public', 'public', 'USAGE') FROM pg_namespace WHERE nspname = 'public'",
            &[],
        )
        .await
        .expect("query public schema");
    assert_eq!(row.get::<_, String>(0), names.owner);
    assert!(!row.get::<_, bool>(1), "PUBLIC may create in schema public");
    assert!(!row.get::<_, bool>(2), "PUBLIC may use schema public");
    drop(database);

    // A repeated provision changes nothing and creates no duplicate.
    backend
        .provision(&job)
        .await
        .expect("repeated provision succeeds");
    let objects = instance_objects(&admin, &instance_id).await;
    assert_eq!(objects.len(), 3, "database, owner and reader: {objects:?}");

    cleanup(&backend, &instance_id, SMALL_PLAN).await;
    assert_nothing_left(&admin, &instance_id).await;
}

#[tokio::test]
async fn bindings_share_tables_after_unbind() {
    let backend = backend().await;
    let admin = admin().await;
    let instance_id = new_id();
    let _instance_id_guard = guard(&instance_id);
    let names = InstanceNames::new(&instance_id);
    backend
        .provision(&provision_job(&instance_id, SMALL_PLAN, json!({})))
        .await
        .expect("provision succeeds");
    let first_id = new_id();
    let second_id = new_id();
    let first_uri = bind_uri(
        &backend,
        &bind_job(&instance_id, &first_id, SMALL_PLAN, json!({})),
    )
    .await;
    let second_uri = bind_uri(
        &backend,
        &bind_job(&instance_id, &second_id, SMALL_PLAN, json!({})),
    )
    .await;

    let first_role = names.binding_role(&first_id);
    assert!(role_can_login(&admin, &first_role).await);
    assert!(is_member(&admin, &first_role, &names.owner).await);
    assert!(!is_member(&admin, &first_role, &names.reader).await);
    let settings = role_settings(&admin, &first_role).await;
    assert!(
        settings.contains(&format!("role={}", names.owner)),
        "sessions must run as the owner role: {settings:?}"
    );

    let first = connect(&first_uri).await.expect("first binding connects");
    let row = first
        .query_one("SELECT current_user::text, session_user::text", &[])
        .await
        .expect("query current user");
    assert_eq!(row.get::<_, String>(0), names.owner);
    assert_eq!(row.get::<_, String>(1), first_role);
    first
        .batch_execute("CREATE TABLE notes (id serial PRIMARY KEY, body text); INSERT INTO notes (body) VALUES ('one');")
        .await
        .expect("first binding creates a table");

    let second = connect(&second_uri).await.expect("second binding connects");
    second
        .batch_execute(
            "INSERT INTO notes (body) VALUES ('two'); ALTER TABLE notes ADD COLUMN extra int;",
        )
        .await
        .expect("second binding writes and alters the first binding's table");

    backend
        .unbind(&unbind_job(&instance_id, &first_id, SMALL_PLAN))
        .await
        .expect("unbind succeeds");
    assert!(
        !role_exists(&admin, &first_role).await,
        "the first binding role is gone"
    );
    assert!(
        first.query_one("SELECT 1", &[]).await.is_err(),
        "the unbound binding's session must be ended"
    );
    assert!(
        connect(&first_uri).await.is_err(),
        "the unbound binding must not connect"
    );

    let count: i64 = second
        .query_one("SELECT count(*) FROM notes", &[])
        .await
        .expect("the table survives the unbind")
        .get(0);
    assert_eq!(count, 2);
    let table_owner: String = second
        .query_one(
            "SELECT tableowner::text FROM pg_tables WHERE tablename = 'notes'",
            &[],
        )
        .await
        .expect("query pg_tables")
        .get(0);
    assert_eq!(table_owner, names.owner);

    // Repeating the unbind finds nothing to do.
    backend
        .unbind(&unbind_job(&instance_id, &first_id, SMALL_PLAN))
        .await
        .expect("repeated unbind succeeds");

    drop(second);
    cleanup(&backend, &instance_id, SMALL_PLAN).await;
    assert_nothing_left(&admin, &instance_id).await;
}

#[tokio::test]
async fn unbind_hands_over_tables_made_without_owner_role() {
    let backend = backend().await;
    let admin = admin().await;
    let instance_id = new_id();
    let _instance_id_guard = guard(&instance_id);
    let names = InstanceNames::new(&instance_id);
    backend
        .provision(&provision_job(&instance_id, SMALL_PLAN, json!({})))
        .await
        .expect("provision succeeds");
    let first_id = new_id();
    let second_id = new_id();
    let first_uri = bind_uri(
        &backend,
        &bind_job(&instance_id, &first_id, SMALL_PLAN, json!({})),
    )
    .await;
    let second_uri = bind_uri(
        &backend,
        &bind_job(&instance_id, &second_id, SMALL_PLAN, json!({})),
    )
    .await;

    // RESET ROLE returns to the login role, which then owns what it creates.
    let first = connect(&first_uri).await.expect("first binding connects");
    first
        .batch_execute("RESET ROLE; CREATE TABLE private_notes (body text); INSERT INTO private_notes VALUES ('x');")
        .await
        .expect("login role creates a table");
    drop(first);

    backend
        .unbind(&unbind_job(&instance_id, &first_id, SMALL_PLAN))
        .await
        .expect("unbind succeeds");

    let second = connect(&second_uri).await.expect("second binding connects");
    let count: i64 = second
        .query_one("SELECT count(*) FROM private_notes", &[])
        .await
        .expect("the table now belongs to the owner role")
        .get(0);
    assert_eq!(count, 1);
    let owner: String = second
        .query_one(
            "SELECT tableowner::text FROM pg_tables WHERE tablename = 'private_notes'",
            &[],
        )
        .await
        .expect("query pg_tables")
        .get(0);
    assert_eq!(owner, names.owner);

    drop(second);
    cleanup(&backend, &instance_id, SMALL_PLAN).await;
    assert_nothing_left(&admin, &instance_id).await;
}

#[tokio::test]
async fn read_only_binding_cannot_write() {
    let backend = backend().await;
    let admin = admin().await;
    let instance_id = new_id();
    let _instance_id_guard = guard(&instance_id);
    let names = InstanceNames::new(&instance_id);
    backend
        .provision(&provision_job(&instance_id, SMALL_PLAN, json!({})))
        .await
        .expect("provision succeeds");
    let writer_uri = bind_uri(
        &backend,
        &bind_job(&instance_id, &new_id(), SMALL_PLAN, json!({})),
    )
    .await;
    let writer = connect(&writer_uri).await.expect("writer connects");
    writer
        .batch_execute("CREATE TABLE before_bind (n int); INSERT INTO before_bind VALUES (1);")
        .await
        .expect("writer creates a table");

    let reader_id = new_id();
    let reader_uri = bind_uri(
        &backend,
        &bind_job(
            &instance_id,
            &reader_id,
            SMALL_PLAN,
            json!({"read_only": true}),
        ),
    )
    .await;
    let reader_role = names.binding_role(&reader_id);
    assert!(
        !is_member(&admin, &reader_role, &names.owner).await,
        "a reader must not be an owner member"
    );
    assert!(is_member(&admin, &reader_role, &names.reader).await);
    let settings = role_settings(&admin, &reader_role).await;
    assert!(
        settings.contains(&"default_transaction_read_only=on".to_owned()),
        "{settings:?}"
    );

    // A table made after the bind is readable through default privileges.
    writer
        .batch_execute("CREATE TABLE after_bind (n int); INSERT INTO after_bind VALUES (2);")
        .await
        .expect("writer creates a second table");

    let reader = connect(&reader_uri).await.expect("reader connects");
    for table in ["before_bind", "after_bind"] {
        let count: i64 = reader
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap_or_else(|error| panic!("reader reads {table}: {error}"))
            .get(0);
        assert_eq!(count, 1, "{table}");
    }
    for statement in [
        "INSERT INTO before_bind VALUES (3)",
        "DELETE FROM after_bind",
        "CREATE TABLE mine (n int)",
        "SET default_transaction_read_only = off; INSERT INTO before_bind VALUES (3)",
        "SET default_transaction_read_only = off; CREATE TABLE public.mine (n int)",
        "SET default_transaction_read_only = off; CREATE SCHEMA mine",
        "SET ROLE NONE; SET default_transaction_read_only = off; DROP TABLE before_bind",
    ] {
        assert!(
            reader.batch_execute(statement).await.is_err(),
            "a read-only binding ran: {statement}"
        );
        let _ = reader.batch_execute("RESET ALL").await;
    }

    // A plan whose bindings are read-only by default.
    let plan_reader_id = new_id();
    let other_instance = new_id();
    let _other_instance_guard = guard(&other_instance);
    backend
        .provision(&provision_job(&other_instance, READONLY_PLAN, json!({})))
        .await
        .expect("provision on the read-only plan succeeds");
    let other_names = InstanceNames::new(&other_instance);
    backend
        .bind(&bind_job(
            &other_instance,
            &plan_reader_id,
            READONLY_PLAN,
            json!({}),
        ))
        .await
        .expect("bind on the read-only plan succeeds");
    let plan_reader_role = other_names.binding_role(&plan_reader_id);
    assert!(is_member(&admin, &plan_reader_role, &other_names.reader).await);
    assert!(!is_member(&admin, &plan_reader_role, &other_names.owner).await);

    drop((writer, reader));
    cleanup(&backend, &instance_id, SMALL_PLAN).await;
    cleanup(&backend, &other_instance, READONLY_PLAN).await;
    assert_nothing_left(&admin, &instance_id).await;
    assert_nothing_left(&admin, &other_instance).await;
}

#[tokio::test]
async fn other_instances_cannot_connect() {
    let backend = backend().await;
    let admin = admin().await;
    let first_instance = new_id();
    let _first_instance_guard = guard(&first_instance);
    let second_instance = new_id();
    let _second_instance_guard = guard(&second_instance);
    for instance_id in [&first_instance, &second_instance] {
        backend
            .provision(&provision_job(instance_id, SMALL_PLAN, json!({})))
            .await
            .expect("provision succeeds");
    }
    let first_names = InstanceNames::new(&first_instance);
    let second_names = InstanceNames::new(&second_instance);
    let writer_id = new_id();
    let reader_id = new_id();
    let writer_uri = bind_uri(
        &backend,
        &bind_job(&first_instance, &writer_id, SMALL_PLAN, json!({})),
    )
    .await;
    let reader_uri = bind_uri(
        &backend,
        &bind_job(
            &first_instance,
            &reader_id,
            SMALL_PLAN,
            json!({"read_only": true}),
        ),
    )
    .await;

    for role in [
        &first_names.binding_role(&writer_id),
        &first_names.binding_role(&reader_id),
        &first_names.owner,
    ] {
        assert!(
            !can_connect(&admin, role, &second_names.database).await,
            "{role} may connect to another instance's database"
        );
    }
    assert!(!can_connect(&admin, "public", &second_names.database).await);

    for uri in [&writer_uri, &reader_uri] {
        // Only the path changes: the user name starts with the database name too.
        let (base, _) = uri.rsplit_once('/').expect("the uri has a path");
        let other = format!("{base}/{}", second_names.database);
        let error = connect(&other)
            .await
            .expect_err("a binding of one instance must not connect to another's database");
        assert_eq!(
            error.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{error:?}"
        );
    }

    cleanup(&backend, &first_instance, SMALL_PLAN).await;
    cleanup(&backend, &second_instance, SMALL_PLAN).await;
    assert_nothing_left(&admin, &first_instance).await;
    assert_nothing_left(&admin, &second_instance).await;
}

#[tokio::test]
async fn deprovision_with_open_connections() {
    let backend = backend().await;
    let admin = admin().await;
    let instance_id = new_id();
    let _instance_id_guard = guard(&instance_id);
    let names = InstanceNames::new(&instance_id);
    backend
        .provision(&provision_job(&instance_id, SMALL_PLAN, json!({})))
        .await
        .expect("provision succeeds");
    let writer_id = new_id();
    let reader_id = new_id();
    let writer_uri = bind_uri(
        &backend,
        &bind_job(&instance_id, &writer_id, SMALL_PLAN, json!({})),
    )
    .await;
    let reader_uri = bind_uri(
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
    let reader = connect(&reader_uri).await.expect("reader connects");
    // An open transaction holding a lock must not block the drop.
    writer
        .batch_execute("CREATE TABLE t (n int); BEGIN; LOCK TABLE t;")
        .await
        .expect("writer locks a table");

    // Only the writer is passed; the reader role is found by its name.
    backend
        .deprovision(&deprovision_job(&instance_id, SMALL_PLAN, &[&writer_id]))
        .await
        .expect("deprovision succeeds with sessions open");

    assert!(!database_exists(&admin, &names.database).await);
    assert_nothing_left(&admin, &instance_id).await;
    assert!(
        writer.query_one("SELECT 1", &[]).await.is_err(),
        "writer session ended"
    );
    assert!(
        reader.query_one("SELECT 1", &[]).await.is_err(),
        "reader session ended"
    );

    // Deleting what is already gone succeeds.
    backend
        .deprovision(&deprovision_job(&instance_id, SMALL_PLAN, &[&writer_id]))
        .await
        .expect("repeated deprovision succeeds");
}

#[tokio::test]
async fn credentials_parse_and_connect() {
    let backend = backend().await;
    let admin = admin().await;
    let instance_id = new_id();
    let _instance_id_guard = guard(&instance_id);
    let binding_id = new_id();
    let names = InstanceNames::new(&instance_id);
    let role = names.binding_role(&binding_id);
    backend
        .provision(&provision_job(&instance_id, SMALL_PLAN, json!({})))
        .await
        .expect("provision succeeds");
    let outcome = backend
        .bind(&bind_job(&instance_id, &binding_id, SMALL_PLAN, json!({})))
        .await
        .expect("bind succeeds");
    let credentials = outcome.credentials.expect("credentials");

    let password = credentials["password"]
        .as_str()
        .expect("password")
        .to_owned();
    assert!(
        password.len() >= 32 && password.len() == PASSWORD_LEN,
        "{}",
        password.len()
    );
    assert!(password
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(credentials["username"], json!(role));
    assert_eq!(credentials["host"], json!("127.0.0.1"));
    assert_eq!(credentials["hostname"], json!("127.0.0.1"));
    assert_eq!(credentials["port"], json!(5432));
    assert_eq!(credentials["name"], json!(names.database));
    assert_eq!(credentials["database"], json!(names.database));
    assert!(
        credentials.get("sslmode").is_none(),
        "no TLS fields without TLS"
    );
    assert_eq!(outcome.endpoints.len(), 1);
    assert_eq!(outcome.endpoints[0].host, "127.0.0.1");
    assert_eq!(outcome.endpoints[0].ports, vec!["5432".to_owned()]);

    let uri = credentials["uri"].as_str().expect("uri");
    assert!(uri.starts_with("postgresql://"), "{uri}");
    let parsed = tokio_postgres::Config::from_str(uri).expect("uri parses");
    assert_eq!(parsed.get_user(), Some(role.as_str()));
    assert_eq!(parsed.get_password(), Some(password.as_bytes()));
    assert_eq!(parsed.get_dbname(), Some(names.database.as_str()));
    assert_eq!(parsed.get_ports(), &[5432]);

    let jdbc = credentials["jdbcUrl"].as_str().expect("jdbcUrl");
    let expected_prefix = format!("jdbc:postgresql://127.0.0.1:5432/{}?", names.database);
    assert!(jdbc.starts_with(&expected_prefix), "{jdbc}");
    // Without its `jdbc:` prefix the URL is one libpq reads too.
    let jdbc_parsed =
        tokio_postgres::Config::from_str(jdbc.trim_start_matches("jdbc:")).expect("jdbcUrl parses");
    assert_eq!(jdbc_parsed.get_user(), Some(role.as_str()));
    assert_eq!(jdbc_parsed.get_password(), Some(password.as_bytes()));

    let client = connect(uri)
        .await
        .expect("uri connects with tokio-postgres");
    let user: String = client
        .query_one("SELECT session_user::text", &[])
        .await
        .expect("query session user")
        .get(0);
    assert_eq!(user, role);
    drop(client);

    let output = Command::new("psql")
        .arg(uri)
        .args([
            "-X",
            "-A",
            "-t",
            "-c",
            "SELECT session_user || ' ' || current_user",
        ])
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .expect("run psql");
    assert!(
        output.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("{role} {}", names.owner)
    );

    // The server stores only the SCRAM verifier.
    let stored = stored_verifier(&admin, &role).await;
    assert!(stored.starts_with("SCRAM-SHA-256$"), "{stored}");
    assert!(!stored.contains(&password));

    cleanup(&backend, &instance_id, SMALL_PLAN).await;
    assert_nothing_left(&admin, &instance_id).await;
}

#[tokio::test]
async fn jdbc_url_can_be_switched_off() {
    admin().await;
    let mut plan = plan(None, &[], false);
    plan.jdbc_url = false;
    let servers = BTreeMap::from([("default".to_owned(), server_config(ADMIN_URL))]);
    let backend = PostgresBackend::new(&servers, vec![("no-jdbc".to_owned(), plan)])
        .await
        .expect("valid configuration");
    let instance_id = new_id();
    let _instance_id_guard = guard(&instance_id);
    backend
        .provision(&provision_job(&instance_id, "no-jdbc", json!({})))
        .await
        .expect("provision succeeds");
    let outcome = backend
        .bind(&bind_job(&instance_id, &new_id(), "no-jdbc", json!({})))
        .await
        .expect("bind succeeds");
    let credentials = outcome.credentials.expect("credentials");
    assert!(credentials.get("jdbcUrl").is_none());
    assert!(credentials.get("uri").is_some());
    cleanup(&backend, &instance_id, "no-jdbc").await;
}

async fn stored_verifier(admin: &tokio_postgres::Client, role: &str) -> String {
    admin
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            &[&role],
        )
        .await
        .expect("query pg_authid")
        .get(0)
}

// The local server trusts every connection from 127.0.0.1, so the stored
// verifier is compared here; postgresql_own_server checks the passwords.
#[tokio::test]
async fn repeated_bind_replaces_password() {
    let backend = backend().await;
    let admin = admin().await;
    let instance_id = new_id();
    let _instance_id_guard = guard(&instance_id);
    let binding_id = new_id();
    let role = InstanceNames::new(&instance_id).binding_role(&binding_id);
    backend
        .provision(&provision_job(&instance_id, SMALL_PLAN, json!({})))
        .await
        .expect("provision succeeds");
    let job = bind_job(&instance_id, &binding_id, SMALL_PLAN, json!({}));
    let old_uri = bind_uri(&backend, &job).await;
    let old_verifier = stored_verifier(&admin, &role).await;
    let new_uri = bind_uri(&backend, &job).await;
    assert_ne!(old_uri, new_uri);
    assert_ne!(old_verifier, stored_verifier(&admin, &role).await);
    let objects = instance_objects(&admin, &instance_id).await;
    assert_eq!(
        objects.len(),
        4,
        "database, owner, reader, one binding: {objects:?}"
    );
    cleanup(&backend, &instance_id, SMALL_PLAN).await;
    assert_nothing_left(&admin, &instance_id).await;
}

#[tokio::test]
async fn update_applies_new_plan() {
    let backend = backend().await;
    let admin = admin().await;
    let instance_id = new_id();
    let _instance_id_guard = guard(&instance_id);
    let names = InstanceNames::new(&instance_id);
    backend
        .provision(&provision_job(&instance_id, SMALL_PLAN, json!({})))
        .await
        .expect("provision succeeds");

    let error = backend
        .update(&update_job(
            &instance_id,
            SMALL_PLAN,
            SMALL_PLAN,
            json!({"extensions": ["citext"]}),
        ))
        .await
        .expect_err("citext is not allowed on the small plan");
    assert!(
        matches!(error, BackendError::InvalidParameters(_)),
        "{error}"
    );

    backend
        .update(&update_job(
            &instance_id,
            SMALL_PLAN,
            LARGE_PLAN,
            json!({"extensions": ["citext"]}),
        ))
        .await
        .expect("update to the large plan succeeds");
    assert_eq!(connection_limit(&admin, &names.database).await, 20);
    assert!(extension_installed(&instance_admin_url(&names), "citext").await);

    backend
        .update(&update_job(
            &instance_id,
            LARGE_PLAN,
            READONLY_PLAN,
            json!({}),
        ))
        .await
        .expect("update to a plan without a limit succeeds");
    assert_eq!(connection_limit(&admin, &names.database).await, -1);

    cleanup(&backend, &instance_id, READONLY_PLAN).await;
    assert_nothing_left(&admin, &instance_id).await;
}

#[tokio::test]
async fn missing_objects_are_already_deleted() {
    let backend = backend().await;
    let instance_id = new_id();
    let _instance_id_guard = guard(&instance_id);
    backend
        .unbind(&unbind_job(&instance_id, &new_id(), SMALL_PLAN))
        .await
        .expect("unbind of an unknown binding succeeds");
    backend
        .deprovision(&deprovision_job(&instance_id, SMALL_PLAN, &[]))
        .await
        .expect("deprovision of an unknown instance succeeds");
    let error = backend
        .bind(&bind_job(&instance_id, &new_id(), SMALL_PLAN, json!({})))
        .await
        .expect_err("bind to an instance without a database fails");
    assert!(matches!(error, BackendError::Internal(_)), "{error}");
}
