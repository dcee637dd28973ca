//! Catalog look-ups and role steps shared by instance and binding operations.

use osbkit::BackendError;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::connect::Server;
use super::names::InstanceNames;
use super::sql::{execute, execute_ignoring, quote_ident, to_backend_error};

/// Tells whether `role` exists.
pub async fn role_exists(server: &Server, client: &Client, role: &str) -> Result<bool, BackendError> {
    let row = client
        .query_opt("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1", &[&role])
        .await
        .map_err(|error| to_backend_error(&server.key, "look up role", error))?;
    Ok(row.is_some())
}

/// Tells whether `database` exists.
pub async fn database_exists(
    server: &Server,
    client: &Client,
    database: &str,
) -> Result<bool, BackendError> {
    let row = client
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1",
            &[&database],
        )
        .await
        .map_err(|error| to_backend_error(&server.key, "look up database", error))?;
    Ok(row.is_some())
}

/// Creates `role` without login unless it exists.
pub async fn ensure_group_role(
    server: &Server,
    client: &Client,
    step: &'static str,
    role: &str,
) -> Result<(), BackendError> {
    if role_exists(server, client, role).await? {
        return Ok(());
    }
    let statement = format!("CREATE ROLE {} NOLOGIN", quote_ident(role));
    execute_ignoring(&server.key, client, step, &statement, &SqlState::DUPLICATE_OBJECT).await
}

/// Returns the server's `server_version_num`, such as 150020.
pub async fn server_version(server: &Server, client: &Client) -> Result<i32, BackendError> {
    let row = client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await
        .map_err(|error| to_backend_error(&server.key, "read server version", error))?;
    Ok(row.get(0))
}

/// Tells whether the admin role is a superuser. A role with only CREATEROLE
/// and CREATEDB must be a member of an owner role to create a database
/// owned by it.
pub async fn admin_is_superuser(server: &Server, client: &Client) -> Result<bool, BackendError> {
    let row = client
        .query_one(
            "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(|error| to_backend_error(&server.key, "read admin role", error))?;
    Ok(row.get(0))
}

/// Ends every session logged in as one of `roles`.
pub async fn terminate_sessions(
    server: &Server,
    client: &Client,
    step: &'static str,
    roles: &[String],
) -> Result<(), BackendError> {
    client
        .execute(
            "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity \
             WHERE usename = ANY($1) AND pid <> pg_catalog.pg_backend_pid()",
            &[&roles],
        )
        .await
        .map_err(|error| to_backend_error(&server.key, step, error))?;
    Ok(())
}

/// Returns the binding roles of the instance that exist, found by name.
pub async fn binding_roles(
    server: &Server,
    client: &Client,
    names: &InstanceNames,
) -> Result<Vec<String>, BackendError> {
    let rows = client
        .query(
            "SELECT rolname FROM pg_catalog.pg_roles \
             WHERE left(rolname, length($1)) = $1 ORDER BY rolname",
            &[&names.binding_prefix],
        )
        .await
        .map_err(|error| to_backend_error(&server.key, "list binding roles", error))?;
    Ok(rows
        .iter()
        .map(|row| row.get::<_, String>(0))
        .filter(|role| names.is_binding_role(role))
        .collect())
}

/// Drops `role` if it exists. The caller has already removed its objects
/// from the instance's database. Objects or privileges it still has in the
/// admin database are dropped there, because the role was the broker's and
/// they were made through it; any in other databases make this fail with a
/// message naming the role.
pub async fn drop_role(
    server: &Server,
    client: &Client,
    step: &'static str,
    role: &str,
) -> Result<(), BackendError> {
    let statement = format!("DROP ROLE IF EXISTS {}", quote_ident(role));
    match client.batch_execute(&statement).await {
        Err(error) if error.code() == Some(&SqlState::DEPENDENT_OBJECTS_STILL_EXIST) => {
            let drop_owned = format!("DROP OWNED BY {}", quote_ident(role));
            execute(&server.key, client, step, &drop_owned).await?;
            execute(&server.key, client, step, &statement).await
        }
        result => result.map_err(|error| to_backend_error(&server.key, step, error)),
    }
}
