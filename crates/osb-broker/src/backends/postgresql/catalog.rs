//! Catalog look-ups and role steps shared by instance and binding operations.

use osbkit::BackendError;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::connect::Server;
use super::names::InstanceNames;
use super::sql::{execute, execute_ignoring, quote_ident, to_backend_error};

/// Tells whether `role` exists.
pub async fn role_exists(
    server: &Server,
    client: &Client,
    role: &str,
) -> Result<bool, BackendError> {
    let row = client
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1",
            &[&role],
        )
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

/// The catalog entry of a database: owner, comment and state.
#[derive(Debug, Clone)]
pub struct DatabaseInfo {
    /// The role that owns it.
    pub owner: String,
    /// Its comment, if any.
    pub comment: Option<String>,
    /// Whether it is invalid: a `DROP DATABASE` began on it but did not
    /// finish, and it can only be dropped now. PostgreSQL 15 and later mark
    /// it with a connection limit of -2.
    pub invalid: bool,
}

/// Returns the owner, comment and state of `database`, or `None` when
/// there is no such database.
pub async fn database_info(
    server: &Server,
    client: &Client,
    database: &str,
) -> Result<Option<DatabaseInfo>, BackendError> {
    let row = client
        .query_opt(
            "SELECT pg_catalog.pg_get_userbyid(datdba)::text,                     pg_catalog.shobj_description(oid, 'pg_database'),                     datconnlimit = -2              FROM pg_catalog.pg_database WHERE datname = $1",
            &[&database],
        )
        .await
        .map_err(|error| to_backend_error(&server.key, "look up database", error))?;
    Ok(row.map(|row| DatabaseInfo {
        owner: row.get(0),
        comment: row.get(1),
        invalid: row.get(2),
    }))
}

/// Tells whether `database` exists and accepts connections, which it stops
/// doing early in a deprovision, and which an invalid database never does.
pub async fn database_accepts_connections(
    server: &Server,
    client: &Client,
    database: &str,
) -> Result<bool, BackendError> {
    let row = client
        .query_opt(
            "SELECT datallowconn AND datconnlimit <> -2 FROM pg_catalog.pg_database \
             WHERE datname = $1",
            &[&database],
        )
        .await
        .map_err(|error| to_backend_error(&server.key, "look up database", error))?;
    Ok(row.is_some_and(|row| row.get::<_, bool>(0)))
}

/// Tells whether `role` is a direct member of `group`.
pub async fn is_member(
    server: &Server,
    client: &Client,
    role: &str,
    group: &str,
) -> Result<bool, BackendError> {
    let row = client
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_auth_members m \
             JOIN pg_catalog.pg_roles r ON r.oid = m.member \
             JOIN pg_catalog.pg_roles g ON g.oid = m.roleid \
             WHERE r.rolname = $1 AND g.rolname = $2",
            &[&role, &group],
        )
        .await
        .map_err(|error| to_backend_error(&server.key, "look up role membership", error))?;
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
    execute_ignoring(
        &server.key,
        client,
        step,
        &statement,
        &SqlState::DUPLICATE_OBJECT,
    )
    .await
}

/// Returns the server's `server_version_num`, such as 150020.
pub async fn server_version(server: &Server, client: &Client) -> Result<i32, BackendError> {
    let row = client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await
        .map_err(|error| to_backend_error(&server.key, "read server version", error))?;
    Ok(row.get(0))
}

/// Tells whether the admin role is a superuser.
async fn admin_is_superuser(server: &Server, client: &Client) -> Result<bool, BackendError> {
    let row = client
        .query_one(
            "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(|error| to_backend_error(&server.key, "read admin role", error))?;
    Ok(row.get(0))
}

/// Makes the admin role a member of `role` unless it is a superuser. A role
/// with only CREATEDB and CREATEROLE needs the membership to create a
/// database owned by `role`, to reassign or drop what `role` owns, and to end
/// its sessions.
pub async fn grant_to_admin(
    server: &Server,
    client: &Client,
    step: &'static str,
    role: &str,
) -> Result<(), BackendError> {
    if admin_is_superuser(server, client).await? {
        return Ok(());
    }
    let grant = format!("GRANT {} TO CURRENT_USER", quote_ident(role));
    execute(&server.key, client, step, &grant).await
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
/// admin database are dropped there, because they were made through a role
/// of the broker. Any in other databases make this fail with an error
/// naming the role.
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
