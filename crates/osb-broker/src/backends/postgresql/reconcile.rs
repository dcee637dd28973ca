//! Comparison of the servers with the broker's records: databases and roles
//! named as the broker names them but with no record, and records whose
//! database is gone.
//!
//! The caller passes every instance and binding record of the state store,
//! including those whose operation is still running, so that nothing in
//! progress looks orphaned.

use std::collections::{BTreeSet, HashSet};
use std::fmt;

use osbkit::BackendError;
use serde::Serialize;
use tokio_postgres::Client;

use super::catalog::{
    database_exists, database_info, drop_role, grant_to_admin, role_exists, terminate_sessions,
    DatabaseInfo,
};
use super::connect::Server;
use super::instance::{close_and_drop_database, is_ours};
use super::names::{InstanceNames, ParsedName};
use super::sql::{execute, quote_ident, to_backend_error};
use super::PostgresBackend;

/// An instance record of the state store.
#[derive(Debug, Clone)]
pub struct KnownInstance {
    pub instance_id: String,
    pub plan_id: String,
}

/// A database or role on a server.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ServerObject {
    /// The key under `[postgresql.servers]`.
    pub server: String,
    pub name: String,
}

/// A record whose database does not exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissingDatabase {
    pub instance_id: String,
    pub server: String,
    pub database: String,
}

/// Objects and records that disagree, as found by [`find_orphans`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    /// Databases named and marked by the broker with no instance record.
    pub orphan_databases: Vec<ServerObject>,
    /// Roles named by the broker with no instance or binding record.
    pub orphan_roles: Vec<ServerObject>,
    /// Instance records whose database is gone.
    pub missing_databases: Vec<MissingDatabase>,
}

impl ReconcileReport {
    /// Tells whether the servers and the records agree.
    pub fn is_clean(&self) -> bool {
        self.orphan_databases.is_empty()
            && self.orphan_roles.is_empty()
            && self.missing_databases.is_empty()
    }
}

impl fmt::Display for ReconcileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_clean() {
            return writeln!(
                f,
                "no orphans: every database and role the broker made has a record"
            );
        }
        for object in &self.orphan_databases {
            writeln!(
                f,
                "orphan database {} on server {}",
                object.name, object.server
            )?;
        }
        for object in &self.orphan_roles {
            writeln!(f, "orphan role {} on server {}", object.name, object.server)?;
        }
        for missing in &self.missing_databases {
            writeln!(
                f,
                "instance {} has no database: {} is missing on server {}",
                missing.instance_id, missing.database, missing.server
            )?;
        }
        Ok(())
    }
}

/// Lists, on every configured server, the broker's databases and roles that
/// no record in `known_instances` or `known_binding_ids` accounts for, and
/// the instances whose database is missing. Only names made with the
/// server's `name_prefix` count, and only databases the broker marked as
/// its own (see [`is_ours`]). Instances of plans this backend does not serve
/// count as known on every server, so they protect their objects wherever
/// those are.
pub async fn find_orphans(
    backend: &PostgresBackend,
    known_instances: &[KnownInstance],
    known_binding_ids: &[String],
) -> Result<ReconcileReport, BackendError> {
    let mut report = ReconcileReport::default();
    for server in backend.servers() {
        let naming = &server.naming;
        let binding_hashes: HashSet<String> = known_binding_ids
            .iter()
            .map(|id| naming.short_hash(id))
            .collect();
        let mut instance_hashes = HashSet::new();
        let mut expected = Vec::new();
        for known in known_instances {
            match backend.server_of_plan(&known.plan_id) {
                Some(plan_server) if plan_server.key == server.key => {
                    instance_hashes.insert(naming.short_hash(&known.instance_id));
                    expected.push(known);
                }
                Some(_) => {}
                None => {
                    instance_hashes.insert(naming.short_hash(&known.instance_id));
                }
            }
        }
        let admin = server.admin().await?;

        let databases = list_databases(server, &admin).await?;
        for (name, info) in &databases {
            let Some(parsed) = naming.parse_database(name) else {
                continue;
            };
            let names = naming.instance_from_hash(parsed.instance_hash());
            if !is_ours(info, &names) {
                continue;
            }
            if !instance_hashes.contains(parsed.instance_hash()) {
                report.orphan_databases.push(object(server, name));
            }
        }

        // NOTE: roles carry no marker, so a role that someone else named as
        // the broker names them, with this server's prefix, is listed too.
        let roles = list_names(server, &admin, "SELECT rolname FROM pg_catalog.pg_roles").await?;
        for name in &roles {
            let Some(parsed) = naming.parse_role(name) else {
                continue;
            };
            let known_instance = instance_hashes.contains(parsed.instance_hash());
            let orphan = match &parsed {
                ParsedName::Binding { binding_hash, .. } => {
                    !known_instance || !binding_hashes.contains(binding_hash)
                }
                _ => !known_instance,
            };
            if orphan {
                report.orphan_roles.push(object(server, name));
            }
        }

        for known in expected {
            let database = naming.instance(&known.instance_id).database;
            if !databases.iter().any(|(name, _)| *name == database) {
                report.missing_databases.push(MissingDatabase {
                    instance_id: known.instance_id.clone(),
                    server: server.key.clone(),
                    database,
                });
            }
        }
    }
    report.orphan_databases.sort();
    report.orphan_roles.sort();
    Ok(report)
}

/// Drops the orphan databases and roles of `report`, which should come from
/// [`find_orphans`] just before, after the operator confirmed it. Returns
/// the objects dropped. Leaves the records of missing databases alone,
/// because the platform deprovisions those instances.
pub async fn delete_orphans(
    backend: &PostgresBackend,
    report: &ReconcileReport,
) -> Result<Vec<ServerObject>, BackendError> {
    let mut deleted = Vec::new();
    for server in backend.servers() {
        let naming = &server.naming;
        let mut admin = server.admin().await?;

        for orphan in report
            .orphan_databases
            .iter()
            .filter(|o| o.server == server.key)
        {
            // Only databases the broker made are dropped, even from an
            // edited report.
            let Some(parsed) = naming.parse_database(&orphan.name) else {
                continue;
            };
            let names = naming.instance_from_hash(parsed.instance_hash());
            if let Some(info) = database_info(server, &admin, &names.database).await? {
                if !is_ours(&info, &names) {
                    tracing::warn!(server = %server.key, database = %orphan.name, "not dropping a database the broker did not make");
                    continue;
                }
                if role_exists(server, &admin, &names.owner).await? {
                    grant_to_admin(server, &admin, "grant orphan owner to admin", &names.owner)
                        .await?;
                }
                close_and_drop_database(server, &mut admin, &names, &info).await?;
            }
            tracing::info!(server = %server.key, database = %orphan.name, "dropped orphan database");
            deleted.push(orphan.clone());
        }

        // Binding roles first, because they are members of the group roles.
        let mut roles: Vec<(u8, ParsedName, &ServerObject)> = report
            .orphan_roles
            .iter()
            .filter(|o| o.server == server.key)
            .filter_map(|o| {
                naming
                    .parse_role(&o.name)
                    .map(|parsed| (drop_order(&parsed), parsed, o))
            })
            .collect();
        roles.sort_by_key(|(order, _, _)| *order);
        for (_, parsed, orphan) in roles {
            let names = naming.instance_from_hash(parsed.instance_hash());
            grant_to_admin(server, &admin, "grant orphan role to admin", &orphan.name).await?;
            terminate_sessions(
                server,
                &admin,
                "end orphan role sessions",
                std::slice::from_ref(&orphan.name),
            )
            .await?;
            if matches!(parsed, ParsedName::Binding { .. }) {
                hand_over_objects(server, &admin, &names, &orphan.name).await?;
            }
            drop_role(server, &admin, "drop orphan role", &orphan.name).await?;
            tracing::info!(server = %server.key, role = %orphan.name, "dropped orphan role");
            deleted.push(orphan.clone());
        }
    }
    Ok(deleted)
}

fn drop_order(parsed: &ParsedName) -> u8 {
    match parsed {
        ParsedName::Binding { .. } => 0,
        ParsedName::Reader { .. } => 1,
        ParsedName::Owner { .. } | ParsedName::Database { .. } => 2,
    }
}

/// Gives the objects of an orphan binding role in a database that is still
/// there to that database's owner role.
async fn hand_over_objects(
    server: &Server,
    admin: &Client,
    names: &InstanceNames,
    role: &str,
) -> Result<(), BackendError> {
    if !database_exists(server, admin, &names.database).await? {
        return Ok(());
    }
    let database = server
        .connect(Some(&names.database), "connect to instance database")
        .await?;
    let statements = format!(
        "REASSIGN OWNED BY {role} TO {owner};\nDROP OWNED BY {role};",
        role = quote_ident(role),
        owner = quote_ident(&names.owner)
    );
    execute(
        &server.key,
        &database,
        "hand over orphan role objects",
        &statements,
    )
    .await
}

/// Returns the names from `query` that start as the server's names do.
async fn list_names(
    server: &Server,
    admin: &Client,
    query: &str,
) -> Result<BTreeSet<String>, BackendError> {
    let rows = admin
        .query(query, &[])
        .await
        .map_err(|error| to_backend_error(&server.key, "list catalog", error))?;
    let start = server.naming.name_start();
    Ok(rows
        .iter()
        .map(|row| row.get::<_, String>(0))
        .filter(|name| name.starts_with(&start))
        .collect())
}

/// Returns the databases whose names start as the server's names do.
async fn list_databases(
    server: &Server,
    admin: &Client,
) -> Result<Vec<(String, DatabaseInfo)>, BackendError> {
    let rows = admin
        .query(
            "SELECT datname::text, pg_catalog.pg_get_userbyid(datdba)::text, \
                    pg_catalog.shobj_description(oid, 'pg_database'), datconnlimit = -2 \
             FROM pg_catalog.pg_database \
             WHERE left(datname, length($1)) = $1 ORDER BY datname",
            &[&server.naming.name_start()],
        )
        .await
        .map_err(|error| to_backend_error(&server.key, "list databases", error))?;
    Ok(rows
        .iter()
        .map(|row| {
            (
                row.get(0),
                DatabaseInfo {
                    owner: row.get(1),
                    comment: row.get(2),
                    invalid: row.get(3),
                },
            )
        })
        .collect())
}

fn object(server: &Server, name: &str) -> ServerObject {
    ServerObject {
        server: server.key.clone(),
        name: name.to_owned(),
    }
}
