//! Bind and unbind: one login role per binding.

use osbkit::{BackendError, BindJob, BindingOutcome, UnbindJob};

use super::catalog::{
    database_accepts_connections, database_exists, drop_role, grant_to_admin, is_member,
    role_exists, terminate_sessions,
};
use super::credentials::{self, Password, Target};
use super::instance::{ensure_reader, missing_database};
use super::params::binding_read_only;
use super::sql::{execute, execute_ignoring, quote_ident, quote_literal};
use super::PostgresBackend;
use tokio_postgres::error::SqlState;

pub async fn bind(
    backend: &PostgresBackend,
    job: &BindJob,
) -> Result<BindingOutcome, BackendError> {
    let plan = backend.plan(&job.plan_id)?;
    let read_only = binding_read_only(&job.parameters, plan)?;
    let server = backend.server(plan);
    let names = server.naming.instance(&job.instance_id);
    let role = names.binding_role(&job.binding_id);
    let admin = server.admin().await?;
    if !database_exists(server, &admin, &names.database).await? {
        return Err(missing_database(&job.instance_id, &names));
    }

    if read_only {
        let database = server
            .connect(Some(&names.database), "connect to instance database")
            .await?;
        ensure_reader(server, &admin, &database, &names).await?;
    }
    backend.checkpoint("bind:reader_role")?;

    // The role cannot log in until its grants are in place and it has the
    // password of this run, because a run that stopped earlier returned no
    // credentials.
    let quoted_role = quote_ident(&role);
    if !role_exists(server, &admin, &role).await? {
        let create = format!("CREATE ROLE {quoted_role} NOLOGIN INHERIT");
        execute_ignoring(
            &server.key,
            &admin,
            "create binding role",
            &create,
            &SqlState::DUPLICATE_OBJECT,
        )
        .await?;
    }
    grant_to_admin(server, &admin, "grant binding role to admin", &role).await?;
    backend.checkpoint("bind:role")?;

    // Each kind undoes the other's membership, in case an earlier run of the
    // same binding id chose the other kind. The check avoids the server's
    // warning about revoking a membership that does not exist.
    let (wrong_group, right_group) = if read_only {
        (&names.owner, &names.reader)
    } else {
        (&names.reader, &names.owner)
    };
    if is_member(server, &admin, &role, wrong_group).await? {
        let revoke = format!("REVOKE {} FROM {quoted_role}", quote_ident(wrong_group));
        execute(&server.key, &admin, "revoke binding membership", &revoke).await?;
    }
    if !is_member(server, &admin, &role, right_group).await? {
        let grant = format!("GRANT {} TO {quoted_role}", quote_ident(right_group));
        execute(&server.key, &admin, "grant binding membership", &grant).await?;
    }
    let settings = if read_only {
        format!(
            "ALTER ROLE {quoted_role} RESET role;\n\
             ALTER ROLE {quoted_role} SET default_transaction_read_only = on;"
        )
    } else {
        // Sessions run as the owner role, so what they create belongs to it
        // and stays usable by every binding after this one is gone.
        format!(
            "ALTER ROLE {quoted_role} RESET default_transaction_read_only;\n\
             ALTER ROLE {quoted_role} SET role = {};",
            quote_literal(&names.owner)
        )
    };
    execute(&server.key, &admin, "configure binding role", &settings).await?;
    backend.checkpoint("bind:grants")?;

    // Only the SCRAM verifier goes to the server, so the password is in no
    // server log even with log_statement = 'all'.
    let password = Password::generate();
    let login = format!(
        "ALTER ROLE {quoted_role} LOGIN PASSWORD {}",
        quote_literal(&password.scram_verifier())
    );
    execute(&server.key, &admin, "enable binding login", &login).await?;
    backend.checkpoint("bind:login")?;

    let (credentials, endpoints) = credentials::build(&Target {
        server,
        database: &names.database,
        username: &role,
        password: &password,
        jdbc_url: plan.jdbc_url,
    });
    tracing::info!(
        instance_id = %job.instance_id,
        binding_id = %job.binding_id,
        role = %role,
        read_only,
        "created PostgreSQL binding role"
    );
    Ok(BindingOutcome {
        credentials: Some(credentials),
        endpoints,
        ..BindingOutcome::default()
    })
}

pub async fn unbind(backend: &PostgresBackend, job: &UnbindJob) -> Result<(), BackendError> {
    let plan = backend.plan(&job.plan_id)?;
    let server = backend.server(plan);
    let names = server.naming.instance(&job.instance_id);
    let role = names.binding_role(&job.binding_id);
    let admin = server.admin().await?;
    if !role_exists(server, &admin, &role).await? {
        return Ok(());
    }
    let quoted_role = quote_ident(&role);
    grant_to_admin(server, &admin, "grant binding role to admin", &role).await?;

    let block = format!("ALTER ROLE {quoted_role} NOLOGIN");
    execute(&server.key, &admin, "block binding login", &block).await?;
    backend.checkpoint("unbind:block_login")?;

    terminate_sessions(
        server,
        &admin,
        "end binding sessions",
        std::slice::from_ref(&role),
    )
    .await?;
    backend.checkpoint("unbind:end_sessions")?;

    // Objects the role owns in the instance's database go to the owner role,
    // so tables made with `RESET ROLE` survive too. A database that a
    // deprovision has closed is about to be dropped with everything in it.
    if database_accepts_connections(server, &admin, &names.database).await? {
        let database = server
            .connect(Some(&names.database), "connect to instance database")
            .await?;
        let statements = format!(
            "REASSIGN OWNED BY {quoted_role} TO {};\n\
             DROP OWNED BY {quoted_role};",
            quote_ident(&names.owner)
        );
        execute(
            &server.key,
            &database,
            "hand over binding objects",
            &statements,
        )
        .await?;
    }
    backend.checkpoint("unbind:reassign_objects")?;

    drop_role(server, &admin, "drop binding role", &role).await?;
    backend.checkpoint("unbind:drop_role")?;

    tracing::info!(
        instance_id = %job.instance_id,
        binding_id = %job.binding_id,
        role = %role,
        "dropped PostgreSQL binding role"
    );
    Ok(())
}
