//! Provision, update and deprovision: an instance's database and group roles.

use std::time::Duration;

use osbkit::{BackendError, DeprovisionJob, InstanceOutcome, ProvisionJob, UpdateJob};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::catalog::{
    binding_roles, database_exists, drop_role, ensure_group_role, grant_to_admin, server_version,
    terminate_sessions,
};
use super::connect::Server;
use super::names::InstanceNames;
use super::params::requested_extensions;
use super::sql::{execute, execute_ignoring, quote_ident, quote_literal, to_backend_error};
use super::PostgresBackend;

/// First `server_version_num` with `DROP DATABASE ... WITH (FORCE)`.
const FORCE_DROP_VERSION: i32 = 130_000;

/// Tries of terminate-then-drop on servers older than PostgreSQL 13.
const DROP_ATTEMPTS: u32 = 20;

pub async fn provision(
    backend: &PostgresBackend,
    job: &ProvisionJob,
) -> Result<InstanceOutcome, BackendError> {
    let plan = backend.plan(&job.plan_id)?;
    let extensions = requested_extensions(&job.parameters, plan)?;
    let server = backend.server(plan);
    let names = InstanceNames::new(&job.instance_id);
    let admin = server.admin().await?;

    ensure_group_role(server, &admin, "create owner role", &names.owner).await?;
    grant_to_admin(server, &admin, "grant owner role to admin", &names.owner).await?;
    backend.checkpoint("provision:owner_role")?;

    ensure_database(server, &admin, &names).await?;
    backend.checkpoint("provision:database")?;

    configure_database(server, &admin, &names, plan.connection_limit).await?;
    backend.checkpoint("provision:database_settings")?;

    let database = server
        .connect(Some(&names.database), "connect to instance database")
        .await?;
    configure_schema(server, &database, &names).await?;
    backend.checkpoint("provision:schema")?;

    ensure_reader(server, &admin, &database, &names).await?;
    backend.checkpoint("provision:reader_role")?;

    create_extensions(server, &database, &extensions).await?;
    backend.checkpoint("provision:extensions")?;

    tracing::info!(
        instance_id = %job.instance_id,
        server = %server.key,
        database = %names.database,
        "provisioned PostgreSQL database"
    );
    Ok(InstanceOutcome::default())
}

pub async fn update(
    backend: &PostgresBackend,
    job: &UpdateJob,
) -> Result<InstanceOutcome, BackendError> {
    let plan = backend.plan(&job.plan_id)?;
    let previous_plan = backend.plan(&job.previous_plan_id)?;
    if plan.server != previous_plan.server {
        return Err(BackendError::Unprocessable(
            "the new plan uses another PostgreSQL server, and an instance cannot move \
             between servers, so create a new instance instead"
                .to_owned(),
        ));
    }
    let extensions = requested_extensions(&job.parameters, plan)?;
    let server = backend.server(plan);
    let names = InstanceNames::new(&job.instance_id);
    let admin = server.admin().await?;
    if !database_exists(server, &admin, &names.database).await? {
        return Err(missing_database(&job.instance_id, &names));
    }

    configure_database(server, &admin, &names, plan.connection_limit).await?;
    backend.checkpoint("update:database_settings")?;

    // NOTE: extensions that the new plan no longer allows stay installed,
    // because dropping one would drop the application's data that uses it.
    if !extensions.is_empty() {
        let database = server
            .connect(Some(&names.database), "connect to instance database")
            .await?;
        create_extensions(server, &database, &extensions).await?;
    }
    backend.checkpoint("update:extensions")?;

    tracing::info!(instance_id = %job.instance_id, plan_id = %job.plan_id, "updated PostgreSQL database");
    Ok(InstanceOutcome::default())
}

pub async fn deprovision(
    backend: &PostgresBackend,
    job: &DeprovisionJob,
) -> Result<(), BackendError> {
    let plan = backend.plan(&job.plan_id)?;
    let server = backend.server(plan);
    let names = InstanceNames::new(&job.instance_id);
    let admin = server.admin().await?;

    let exists = database_exists(server, &admin, &names.database).await?;
    if exists {
        block_connections(server, &admin, &names).await?;
    }
    backend.checkpoint("deprovision:block_connections")?;

    if exists {
        drop_database(server, &admin, &names).await?;
    }
    backend.checkpoint("deprovision:drop_database")?;

    // Roles found by name cover the bindings the framework lists and any
    // whose record was lost. Read-only roles are found only by name, because
    // they are not members of the owner role.
    let mut roles = binding_roles(server, &admin, &names).await?;
    for binding_id in &job.binding_ids {
        let role = names.binding_role(binding_id);
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    let mut all_roles = roles.clone();
    all_roles.extend([names.owner.clone(), names.reader.clone()]);
    terminate_sessions(server, &admin, "end sessions of instance roles", &all_roles).await?;
    for role in &roles {
        drop_role(server, &admin, "drop binding role", role).await?;
    }
    backend.checkpoint("deprovision:drop_binding_roles")?;

    drop_role(server, &admin, "drop reader role", &names.reader).await?;
    drop_role(server, &admin, "drop owner role", &names.owner).await?;
    backend.checkpoint("deprovision:drop_group_roles")?;

    tracing::info!(
        instance_id = %job.instance_id,
        server = %server.key,
        database = %names.database,
        binding_roles = roles.len(),
        "deprovisioned PostgreSQL database"
    );
    Ok(())
}

/// Returns the error for an instance whose database is missing.
pub fn missing_database(instance_id: &str, names: &InstanceNames) -> BackendError {
    BackendError::internal(format!(
        "database {} of instance {instance_id:?} was not found on the PostgreSQL server, \
         so deprovision the instance and create it again",
        names.database
    ))
}

async fn ensure_database(
    server: &Server,
    admin: &Client,
    names: &InstanceNames,
) -> Result<(), BackendError> {
    let owner = admin
        .query_opt(
            "SELECT pg_catalog.pg_get_userbyid(datdba) FROM pg_catalog.pg_database \
             WHERE datname = $1",
            &[&names.database],
        )
        .await
        .map_err(|error| to_backend_error(&server.key, "look up database", error))?
        .map(|row| row.get::<_, String>(0));
    match owner {
        Some(owner) if owner == names.owner => Ok(()),
        // Made by an earlier run under another owner; repair it.
        Some(_) => {
            let statement = format!(
                "ALTER DATABASE {} OWNER TO {}",
                quote_ident(&names.database),
                quote_ident(&names.owner)
            );
            execute(&server.key, admin, "set database owner", &statement).await
        }
        // CREATE DATABASE cannot run inside a transaction, so a crash leaves
        // either no database or a whole one.
        None => {
            let statement = format!(
                "CREATE DATABASE {} OWNER {} TEMPLATE template0",
                quote_ident(&names.database),
                quote_ident(&names.owner)
            );
            execute_ignoring(
                &server.key,
                admin,
                "create database",
                &statement,
                &SqlState::DUPLICATE_DATABASE,
            )
            .await
        }
    }
}

/// Applies the settings a plan controls and takes every default right on
/// the database from PUBLIC, so only the owner and reader roles connect.
async fn configure_database(
    server: &Server,
    admin: &Client,
    names: &InstanceNames,
    connection_limit: Option<i32>,
) -> Result<(), BackendError> {
    let database = quote_ident(&names.database);
    let statements = format!(
        "REVOKE ALL ON DATABASE {database} FROM PUBLIC;\n\
         ALTER DATABASE {database} CONNECTION LIMIT {};",
        connection_limit.unwrap_or(-1)
    );
    execute(&server.key, admin, "configure database", &statements).await
}

/// Gives the `public` schema to the owner role and takes it from PUBLIC,
/// which on PostgreSQL 14 and older may create objects there.
async fn configure_schema(
    server: &Server,
    database: &Client,
    names: &InstanceNames,
) -> Result<(), BackendError> {
    let statements = format!(
        "REVOKE ALL ON SCHEMA public FROM PUBLIC;\n\
         ALTER SCHEMA public OWNER TO {};",
        quote_ident(&names.owner)
    );
    execute(
        &server.key,
        database,
        "configure public schema",
        &statements,
    )
    .await
}

/// Creates the reader role and grants it read access to every table the
/// owner role has or will have. Runs again before each read-only bind, so
/// tables made in new schemas since are covered too.
pub async fn ensure_reader(
    server: &Server,
    admin: &Client,
    database: &Client,
    names: &InstanceNames,
) -> Result<(), BackendError> {
    ensure_group_role(server, admin, "create reader role", &names.reader).await?;
    let reader = quote_ident(&names.reader);
    let owner = quote_ident(&names.owner);
    let grant_connect = format!(
        "GRANT CONNECT ON DATABASE {} TO {reader}",
        quote_ident(&names.database)
    );
    execute(
        &server.key,
        admin,
        "grant connect to reader",
        &grant_connect,
    )
    .await?;

    // Schema names come from the catalog and may be anything a binding chose.
    let schemas = database
        .query(
            "SELECT nspname FROM pg_catalog.pg_namespace \
             WHERE nspowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $1) \
                OR nspname = 'public' ORDER BY nspname",
            &[&names.owner],
        )
        .await
        .map_err(|error| to_backend_error(&server.key, "list schemas", error))?;
    let mut statements = String::new();
    for row in &schemas {
        let schema = quote_ident(row.get::<_, &str>(0));
        statements.push_str(&format!(
            "GRANT USAGE ON SCHEMA {schema} TO {reader};\n\
             GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {reader};\n\
             GRANT SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {reader};\n"
        ));
    }
    statements.push_str(&format!(
        "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} GRANT USAGE ON SCHEMAS TO {reader};\n\
         ALTER DEFAULT PRIVILEGES FOR ROLE {owner} GRANT SELECT ON TABLES TO {reader};\n\
         ALTER DEFAULT PRIVILEGES FOR ROLE {owner} GRANT SELECT ON SEQUENCES TO {reader};"
    ));
    execute(
        &server.key,
        database,
        "grant read access to reader",
        &statements,
    )
    .await
}

async fn create_extensions(
    server: &Server,
    database: &Client,
    extensions: &[String],
) -> Result<(), BackendError> {
    for extension in extensions {
        let statement = format!("CREATE EXTENSION IF NOT EXISTS {}", quote_ident(extension));
        match database.batch_execute(&statement).await {
            Ok(()) => {}
            // The plan allows it, but the server has no such extension installed.
            Err(error) if error.code() == Some(&SqlState::UNDEFINED_FILE) => {
                tracing::error!(%extension, server = %server.key, "extension is not installed on the PostgreSQL server");
                return Err(BackendError::Unprocessable(format!(
                    "extension {extension:?} is not installed on the PostgreSQL server, \
                     so ask the broker operator to install it or to remove it from the plan"
                )));
            }
            Err(error) => return Err(to_backend_error(&server.key, "create extension", error)),
        }
    }
    Ok(())
}

/// Stops new sessions on the database, superusers' included.
pub async fn block_connections(
    server: &Server,
    admin: &Client,
    names: &InstanceNames,
) -> Result<(), BackendError> {
    let database = quote_ident(&names.database);
    let statements = format!(
        "ALTER DATABASE {database} ALLOW_CONNECTIONS false;\n\
         ALTER DATABASE {database} CONNECTION LIMIT 0;"
    );
    execute(&server.key, admin, "block connections", &statements).await
}

/// Drops the database while sessions may still be open in it.
pub async fn drop_database(
    server: &Server,
    admin: &Client,
    names: &InstanceNames,
) -> Result<(), BackendError> {
    let database = quote_ident(&names.database);
    if server_version(server, admin).await? >= FORCE_DROP_VERSION {
        let statement = format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)");
        return execute(&server.key, admin, "drop database", &statement).await;
    }

    // Older servers need the sessions ended before the drop. A session that
    // is still ending makes the drop fail with object_in_use, so it is retried.
    let statement = format!("DROP DATABASE IF EXISTS {database}");
    let terminate = format!(
        "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity \
         WHERE datname = {} AND pid <> pg_catalog.pg_backend_pid()",
        quote_literal(&names.database)
    );
    for _ in 1..DROP_ATTEMPTS {
        execute(&server.key, admin, "end database sessions", &terminate).await?;
        match admin.batch_execute(&statement).await {
            Err(error) if error.code() == Some(&SqlState::OBJECT_IN_USE) => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            result => {
                return result
                    .map_err(|error| to_backend_error(&server.key, "drop database", error))
            }
        }
    }
    execute(&server.key, admin, "end database sessions", &terminate).await?;
    execute(&server.key, admin, "drop database", &statement).await
}
