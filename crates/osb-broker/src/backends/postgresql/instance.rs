//! Provision, update and deprovision: an instance's database and group roles.

use std::time::Duration;

use osbkit::{BackendError, DeprovisionJob, InstanceOutcome, ProvisionJob, UpdateJob};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::catalog::{
    binding_roles, database_exists, database_info, drop_role, ensure_group_role, grant_to_admin,
    server_version, terminate_sessions, DatabaseInfo,
};
use super::connect::{PooledClient, Server};
use super::names::InstanceNames;
use super::params::requested_extensions;
use super::sql::{execute, quote_ident, quote_literal, to_backend_error};
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
    let names = server.naming.instance(&job.instance_id);
    let admin = server.admin().await?;

    // A database of this name that is not ours stops the provision before
    // anything is made. One of ours is owned by the owner role, so one
    // without a marker is checked again once the role exists.
    if let Some(info) = database_info(server, &admin, &names.database).await? {
        if !is_ours(&info, &names) {
            return Err(not_ours(server, &names));
        }
    }

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
    let names = server.naming.instance(&job.instance_id);
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
    let names = server.naming.instance(&job.instance_id);
    let mut admin = server.admin().await?;

    let info = database_info(server, &admin, &names.database).await?;
    let ours = match info {
        Some(info) if is_ours(&info, &names) => Some(info),
        Some(_) => {
            // Made by someone else, so the broker leaves it alone. Its own
            // roles, if any, still go.
            tracing::warn!(
                instance_id = %job.instance_id,
                server = %server.key,
                database = %names.database,
                "database was not made for this instance by this broker; leaving it alone"
            );
            None
        }
        None => None,
    };
    // An invalid database is one whose drop began and did not finish; it
    // accepts no ALTER, and dropping it again finishes the job.
    if let Some(info) = &ours {
        if !info.invalid {
            block_connections(server, &mut admin, &names).await?;
        }
    }
    backend.checkpoint("deprovision:block_connections")?;

    if ours.is_some() {
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

/// Tells whether a database with the instance's name is the broker's.
/// It is when it has the instance's marker as its comment. It also is when
/// it has no comment and belongs to the instance's owner role: a database
/// made before markers existed, or one whose provision stopped between
/// `CREATE DATABASE` and the comment.
pub fn is_ours(info: &DatabaseInfo, names: &InstanceNames) -> bool {
    match &info.comment {
        Some(comment) => *comment == names.marker,
        None => info.owner == names.owner,
    }
}

/// Returns the error for a database of the instance's name that the broker
/// did not make for the instance.
fn not_ours(server: &Server, names: &InstanceNames) -> BackendError {
    tracing::error!(
        server = %server.key,
        database = %names.database,
        "a database of the instance's name exists but was not made for it by this broker"
    );
    BackendError::Unprocessable(format!(
        "a database named {} already exists on server {}; it was not made for this \
         instance by this broker, so the broker leaves it alone. If several brokers share \
         the server, give each its own name_prefix; otherwise ask the operator to look \
         into that database",
        names.database, server.key
    ))
}

/// Creates the instance's database and marks it as the broker's, or checks
/// that the one already there is the broker's, from an earlier run.
async fn ensure_database(
    server: &Server,
    admin: &Client,
    names: &InstanceNames,
) -> Result<(), BackendError> {
    let info = match database_info(server, admin, &names.database).await? {
        Some(info) => info,
        None => {
            // CREATE DATABASE cannot run inside a transaction, so a crash
            // leaves either no database or a whole one, maybe without the
            // marker, which comes right after.
            let statement = format!(
                "CREATE DATABASE {} OWNER {} TEMPLATE template0",
                quote_ident(&names.database),
                quote_ident(&names.owner)
            );
            match admin.batch_execute(&statement).await {
                Ok(()) => return mark_database(server, admin, names).await,
                // Someone made it since the look-up; check theirs.
                Err(error) if error.code() == Some(&SqlState::DUPLICATE_DATABASE) => {
                    database_info(server, admin, &names.database)
                        .await?
                        .ok_or_else(|| {
                            BackendError::internal(format!(
                                "database {} was made and dropped by someone else \
                                 during the provision",
                                names.database
                            ))
                        })?
                }
                Err(error) => return Err(to_backend_error(&server.key, "create database", error)),
            }
        }
    };
    match &info.comment {
        Some(comment) if *comment == names.marker => {
            if info.owner == names.owner {
                return Ok(());
            }
            // Ours, but its owner changed since; repair it.
            let statement = format!(
                "ALTER DATABASE {} OWNER TO {}",
                quote_ident(&names.database),
                quote_ident(&names.owner)
            );
            execute(&server.key, admin, "set database owner", &statement).await
        }
        // An earlier run stopped before the marker. The owner role alone
        // does not prove it: the database must also be as CREATE DATABASE
        // left it.
        None if info.owner == names.owner && !info.invalid => {
            if database_is_empty(server, names).await? {
                mark_database(server, admin, names).await
            } else {
                Err(not_ours(server, names))
            }
        }
        _ => Err(not_ours(server, names)),
    }
}

/// Puts the instance's marker on its database.
async fn mark_database(
    server: &Server,
    admin: &Client,
    names: &InstanceNames,
) -> Result<(), BackendError> {
    let statement = format!(
        "COMMENT ON DATABASE {} IS {}",
        quote_ident(&names.database),
        quote_literal(&names.marker)
    );
    execute(&server.key, admin, "mark database", &statement).await
}

/// Tells whether the instance's database contains nothing but what
/// `CREATE DATABASE` puts in it.
async fn database_is_empty(server: &Server, names: &InstanceNames) -> Result<bool, BackendError> {
    let database = server
        .connect(Some(&names.database), "connect to instance database")
        .await?;
    let row = database
        .query_one(
            "WITH user_schemas AS ( \
                 SELECT oid, nspname FROM pg_catalog.pg_namespace \
                 WHERE nspname NOT IN ('pg_catalog', 'information_schema') \
                   AND nspname !~ '^pg_(toast|temp_|toast_temp_)' \
             ) \
             SELECT NOT EXISTS (SELECT 1 FROM user_schemas WHERE nspname <> 'public') \
                AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class \
                                WHERE relnamespace IN (SELECT oid FROM user_schemas)) \
                AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc \
                                WHERE pronamespace IN (SELECT oid FROM user_schemas)) \
                AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type \
                                WHERE typnamespace IN (SELECT oid FROM user_schemas)) \
                AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension \
                                WHERE extname <> 'plpgsql')",
            &[],
        )
        .await
        .map_err(|error| to_backend_error(&server.key, "check database is empty", error))?;
    Ok(row.get(0))
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
///
/// An invalid database, whose drop began and did not finish, takes no
/// sessions. PostgreSQL 15 rejects an ALTER of it with a FATAL error
/// (SQLSTATE 55000) that also ends the session. That counts as done here,
/// and `admin` is replaced with a new connection for the drop that follows.
pub async fn block_connections<'a>(
    server: &'a Server,
    admin: &mut PooledClient<'a>,
    names: &InstanceNames,
) -> Result<(), BackendError> {
    let database = quote_ident(&names.database);
    let statements = format!(
        "ALTER DATABASE {database} ALLOW_CONNECTIONS false;\n\
         ALTER DATABASE {database} CONNECTION LIMIT 0;"
    );
    let error = match admin.batch_execute(&statements).await {
        Ok(()) => return Ok(()),
        Err(error) => error,
    };
    if error.code() != Some(&SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE) {
        return Err(to_backend_error(&server.key, "block connections", error));
    }
    // The session may be gone, so a new one checks that the database is
    // invalid, or already dropped, before the error counts as done.
    // NOTE: the tests reach invalid databases only through the look-up
    // before this step, so this branch has not run in them.
    *admin = server.admin().await?;
    match database_info(server, admin, &names.database).await? {
        Some(info) if !info.invalid => {
            Err(to_backend_error(&server.key, "block connections", error))
        }
        _ => {
            tracing::info!(
                server = %server.key,
                database = %names.database,
                "database is invalid, from a drop that did not finish; dropping it again"
            );
            Ok(())
        }
    }
}

/// Blocks connections to the broker's database `info` describes, unless it
/// is invalid, and drops it.
pub async fn close_and_drop_database<'a>(
    server: &'a Server,
    admin: &mut PooledClient<'a>,
    names: &InstanceNames,
    info: &DatabaseInfo,
) -> Result<(), BackendError> {
    if !info.invalid {
        block_connections(server, admin, names).await?;
    }
    drop_database(server, admin, names).await
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
