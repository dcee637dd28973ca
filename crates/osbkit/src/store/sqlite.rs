//! The embedded default store: one SQLite file in WAL mode.
//!
//! One connection writes and a few read, each query on tokio's blocking
//! threads. Every write step runs in a `BEGIN IMMEDIATE` transaction on the
//! single writer, so steps are serialised without busy retries. The database
//! runs with `synchronous = NORMAL`: a committed step survives a crash of the
//! broker process, and only a crash of the whole machine can lose the last
//! few commits.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use osbkit_types::{JsonObject, OperationState};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{
    BindBlocked, BindingRecord, BindingState, Completion, Created, InstanceRecord, InstanceState,
    Locked, OperationRecord, Store, StoreError,
};
use crate::backend::OperationKind;

/// Each entry is applied once, in order, and counted in `PRAGMA user_version`.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE instances (
    id TEXT PRIMARY KEY,
    service_id TEXT NOT NULL,
    plan_id TEXT NOT NULL,
    parameters TEXT NOT NULL,
    context TEXT,
    organization_guid TEXT NOT NULL,
    space_guid TEXT NOT NULL,
    maintenance_version TEXT,
    provision_request TEXT NOT NULL,
    dashboard_url TEXT,
    metadata TEXT,
    state TEXT NOT NULL,
    active_operation TEXT,
    created_by TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE bindings (
    id TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL,
    service_id TEXT NOT NULL,
    plan_id TEXT NOT NULL,
    parameters TEXT NOT NULL,
    bind_request TEXT NOT NULL,
    state TEXT NOT NULL,
    active_operation TEXT,
    sealed_response BLOB,
    created_by TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX bindings_by_instance ON bindings (instance_id);
CREATE TABLE operations (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    binding_id TEXT,
    state TEXT NOT NULL,
    description TEXT,
    asynchronous INTEGER NOT NULL,
    job TEXT NOT NULL,
    deadline INTEGER,
    instance_usable INTEGER,
    update_repeatable INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX operations_by_resource ON operations (instance_id, binding_id);
CREATE INDEX operations_in_progress ON operations (state) WHERE state = 'in progress';
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"#];

/// How many connections serve reads.
const READERS: usize = 4;

/// The maximum number of write steps committed in one transaction.
const MAX_BATCH: usize = 128;

/// A write step, run inside the batch's transaction. It returns whether it
/// succeeded, and a callback that receives the outcome of the commit.
type WriteStep = Box<dyn FnOnce(&Connection) -> (bool, Reply) + Send>;
type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;

/// A [`Store`] in one SQLite database file.
///
/// Reads run on the caller's thread, because they are indexed point lookups
/// and in WAL mode a reader does not wait for the writer's transactions.
/// Writes go to one writer thread. It commits every step waiting at the time
/// in one transaction, each step of a batch inside its own savepoint, and
/// replies to the callers only after the commit. Under load this turns many
/// small commits into a few larger ones without weakening any step's
/// atomicity.
#[derive(Clone)]
pub struct SqliteStore {
    writer: std::sync::mpsc::Sender<WriteStep>,
    readers: Arc<Vec<Mutex<Connection>>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("SqliteStore")
    }
}

impl SqliteStore {
    /// Opens the database at `path`, creating it and its folder if needed,
    /// and applies pending migrations.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|error| {
                StoreError::new(format!(
                    "cannot create the folder {} for the state database: {error}",
                    parent.display()
                ))
            })?;
        }

        let mut writer = open_connection(path)?;
        migrate(&mut writer)?;
        restrict_to_owner(path)?;
        // Fewer, larger checkpoints: a page changed many times between two
        // checkpoints is copied into the database file once.
        writer
            .execute_batch(
                "PRAGMA wal_autocheckpoint = 10000; PRAGMA journal_size_limit = 67108864;",
            )
            .map_err(StoreError::new)?;
        let readers = (0..READERS)
            .map(|_| open_connection(path).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;

        let (sender, receiver) = std::sync::mpsc::channel::<WriteStep>();
        std::thread::Builder::new()
            .name("sqlite-writer".to_owned())
            .spawn(move || write_batches(writer, receiver))
            .map_err(StoreError::new)?;
        Ok(SqliteStore {
            writer: sender,
            readers: Arc::new(readers),
        })
    }

    async fn read<T, F>(&self, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        // Take a free reader if there is one; otherwise wait on one chosen by thread.
        let free = self
            .readers
            .iter()
            .find_map(|reader| reader.try_lock().ok());
        let connection = match free {
            Some(connection) => connection,
            None => {
                let index = thread_index() % self.readers.len();
                self.readers[index].lock().map_err(|_| poisoned())?
            }
        };
        query(&connection).map_err(StoreError::new)
    }

    async fn write<T, F>(&self, step: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let write_step: WriteStep = Box::new(move |connection| {
            let result = step(connection);
            let succeeded = result.is_ok();
            let reply: Reply = Box::new(move |commit| {
                let outcome = match (result, commit) {
                    (Ok(value), Ok(())) => Ok(value),
                    (Err(error), _) => Err(StoreError::new(error)),
                    (Ok(_), Err(error)) => Err(StoreError::new(error)),
                };
                let _ = sender.send(outcome);
            });
            (succeeded, reply)
        });
        self.writer
            .send(write_step)
            .map_err(|_| StoreError::new("the state database writer has stopped"))?;
        receiver.await.map_err(|_| {
            StoreError::new("the state database could not run the write; the log has the cause")
        })?
    }
}

/// Commits waiting write steps in batches, on the writer thread, until
/// every store handle is dropped.
fn write_batches(connection: Connection, receiver: std::sync::mpsc::Receiver<WriteStep>) {
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(step) => batch.push(step),
                Err(_) => break,
            }
        }

        if let Err(error) = run_cached(&connection, "BEGIN IMMEDIATE") {
            // Dropping the steps without running them returns an error to their callers.
            tracing::error!(error = %error, steps = batch.len(), "could not begin a state database transaction");
            continue;
        }

        // A lone step needs no savepoint: when it fails, the whole transaction rolls back.
        let use_savepoints = batch.len() > 1;
        let mut replies = Vec::with_capacity(batch.len());
        let mut all_succeeded = true;
        for step in batch {
            let savepoint = use_savepoints && run_cached(&connection, "SAVEPOINT step").is_ok();
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| step(&connection)));
            let (succeeded, reply) = match outcome {
                Ok(result) => result,
                Err(_) => {
                    tracing::error!("a state database step panicked; it was rolled back");
                    let reply: Reply = Box::new(|_| {});
                    (false, reply)
                }
            };
            if savepoint {
                if !succeeded {
                    let _ = run_cached(&connection, "ROLLBACK TO step");
                }
                let _ = run_cached(&connection, "RELEASE step");
            }
            all_succeeded &= succeeded;
            replies.push(reply);
        }

        let finish = if use_savepoints || all_succeeded {
            "COMMIT"
        } else {
            "ROLLBACK"
        };
        let commit = run_cached(&connection, finish)
            .map(|_| ())
            .map_err(|error| {
                let _ = connection.execute_batch("ROLLBACK");
                tracing::error!(error = %error, "could not commit to the state database");
                error.to_string()
            });
        for reply in replies {
            reply(commit.clone());
        }
    }
}

/// Runs a statement without parameters through the statement cache.
fn run_cached(connection: &Connection, sql: &str) -> rusqlite::Result<usize> {
    connection.prepare_cached(sql)?.execute([])
}

/// Runs a statement through the statement cache, so it is parsed once.
fn execute_cached(
    connection: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    connection.prepare_cached(sql)?.execute(params)
}

fn poisoned() -> StoreError {
    StoreError::new("a state database connection was poisoned by a panic")
}

fn thread_index() -> usize {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    std::thread::current().id().hash(&mut hasher);
    hasher.finish() as usize
}

/// Makes the database and its WAL files readable by their owner only, since
/// they contain parameters and, in development mode, the encryption key.
fn restrict_to_owner(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let mut files = vec![path.to_path_buf()];
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        files.push(name.into());
    }
    for file in files.iter().filter(|file| file.exists()) {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).map_err(
            |error| {
                StoreError::new(format!(
                    "cannot restrict the permissions of {}: {error}",
                    file.display()
                ))
            },
        )?;
    }
    Ok(())
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let connection = Connection::open(path).map_err(|error| {
        StoreError::new(format!(
            "cannot open the state database {}: {error}",
            path.display()
        ))
    })?;
    connection
        .execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA busy_timeout = 5000;
             PRAGMA foreign_keys = ON;",
        )
        .map_err(StoreError::new)?;
    Ok(connection)
}

fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    let applied: usize = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(StoreError::new)?;
    if applied > MIGRATIONS.len() {
        return Err(StoreError::new(format!(
            "the state database is at schema version {applied}, newer than this broker's {}; run a newer broker",
            MIGRATIONS.len()
        )));
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
        let transaction = connection.transaction().map_err(StoreError::new)?;
        transaction
            .execute_batch(migration)
            .map_err(StoreError::new)?;
        transaction
            .pragma_update(None, "user_version", index + 1)
            .map_err(StoreError::new)?;
        transaction.commit().map_err(StoreError::new)?;
    }
    Ok(())
}

// Conversions between records and rows.

fn instance_state_name(state: InstanceState) -> &'static str {
    match state {
        InstanceState::Provisioning => "provisioning",
        InstanceState::Ready => "ready",
        InstanceState::ProvisionFailed => "provision_failed",
        InstanceState::Deprovisioning => "deprovisioning",
    }
}

fn parse_instance_state(name: &str) -> InstanceState {
    match name {
        "provisioning" => InstanceState::Provisioning,
        "provision_failed" => InstanceState::ProvisionFailed,
        "deprovisioning" => InstanceState::Deprovisioning,
        _ => InstanceState::Ready,
    }
}

fn binding_state_name(state: BindingState) -> &'static str {
    match state {
        BindingState::Binding => "binding",
        BindingState::Ready => "ready",
        BindingState::BindFailed => "bind_failed",
        BindingState::Unbinding => "unbinding",
    }
}

fn parse_binding_state(name: &str) -> BindingState {
    match name {
        "binding" => BindingState::Binding,
        "bind_failed" => BindingState::BindFailed,
        "unbinding" => BindingState::Unbinding,
        _ => BindingState::Ready,
    }
}

fn parse_operation_state(name: &str) -> OperationState {
    match name {
        "succeeded" => OperationState::Succeeded,
        "failed" => OperationState::Failed,
        _ => OperationState::InProgress,
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("stored values always serialize")
}

fn optional_json<T: serde::Serialize>(value: &Option<T>) -> Option<String> {
    value.as_ref().map(to_json)
}

fn from_json<T: serde::de::DeserializeOwned>(text: String) -> rusqlite::Result<T> {
    serde_json::from_str(&text).map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(error))
    })
}

fn from_optional_json<T: serde::de::DeserializeOwned>(
    text: Option<String>,
) -> rusqlite::Result<Option<T>> {
    text.map(from_json).transpose()
}

const INSTANCE_COLUMNS: &str = "id, service_id, plan_id, parameters, context, organization_guid, \
    space_guid, maintenance_version, provision_request, dashboard_url, metadata, state, \
    active_operation, created_by";

fn instance_from_row(row: &Row) -> rusqlite::Result<InstanceRecord> {
    Ok(InstanceRecord {
        id: row.get(0)?,
        service_id: row.get(1)?,
        plan_id: row.get(2)?,
        parameters: from_json::<JsonObject>(row.get(3)?)?,
        context: from_optional_json(row.get(4)?)?,
        organization_guid: row.get(5)?,
        space_guid: row.get(6)?,
        maintenance_version: row.get(7)?,
        provision_request: from_json(row.get(8)?)?,
        dashboard_url: row.get(9)?,
        metadata: from_optional_json(row.get(10)?)?,
        state: parse_instance_state(&row.get::<_, String>(11)?),
        active_operation: row.get(12)?,
        created_by: row.get(13)?,
    })
}

const BINDING_COLUMNS: &str = "id, instance_id, service_id, plan_id, parameters, bind_request, \
    state, active_operation, sealed_response, created_by";

fn binding_from_row(row: &Row) -> rusqlite::Result<BindingRecord> {
    Ok(BindingRecord {
        id: row.get(0)?,
        instance_id: row.get(1)?,
        service_id: row.get(2)?,
        plan_id: row.get(3)?,
        parameters: from_json::<JsonObject>(row.get(4)?)?,
        bind_request: from_json(row.get(5)?)?,
        state: parse_binding_state(&row.get::<_, String>(6)?),
        active_operation: row.get(7)?,
        sealed_response: row.get(8)?,
        created_by: row.get(9)?,
    })
}

const OPERATION_COLUMNS: &str = "id, kind, instance_id, binding_id, state, description, \
    asynchronous, job, deadline, instance_usable, update_repeatable, created_at";

fn operation_from_row(row: &Row) -> rusqlite::Result<OperationRecord> {
    let kind: String = row.get(1)?;
    Ok(OperationRecord {
        id: row.get(0)?,
        kind: OperationKind::parse(&kind).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                1,
                rusqlite::types::Type::Text,
                format!("unknown operation kind {kind:?}").into(),
            )
        })?,
        instance_id: row.get(2)?,
        binding_id: row.get(3)?,
        state: parse_operation_state(&row.get::<_, String>(4)?),
        description: row.get(5)?,
        asynchronous: row.get(6)?,
        job: from_json(row.get(7)?)?,
        deadline: row.get(8)?,
        instance_usable: row.get(9)?,
        update_repeatable: row.get(10)?,
        created_at: row.get(11)?,
    })
}

fn select_instance(connection: &Connection, id: &str) -> rusqlite::Result<Option<InstanceRecord>> {
    connection
        .prepare_cached(&format!(
            "SELECT {INSTANCE_COLUMNS} FROM instances WHERE id = ?1"
        ))?
        .query_row([id], instance_from_row)
        .optional()
}

fn select_binding(connection: &Connection, id: &str) -> rusqlite::Result<Option<BindingRecord>> {
    connection
        .prepare_cached(&format!(
            "SELECT {BINDING_COLUMNS} FROM bindings WHERE id = ?1"
        ))?
        .query_row([id], binding_from_row)
        .optional()
}

fn select_operation(
    connection: &Connection,
    id: Option<&str>,
) -> rusqlite::Result<Option<OperationRecord>> {
    let Some(id) = id else {
        return Ok(None);
    };
    connection
        .prepare_cached(&format!(
            "SELECT {OPERATION_COLUMNS} FROM operations WHERE id = ?1"
        ))?
        .query_row([id], operation_from_row)
        .optional()
}

fn insert_operation(connection: &Connection, operation: &OperationRecord) -> rusqlite::Result<()> {
    connection
        .prepare_cached(&format!(
            "INSERT INTO operations ({OPERATION_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
        ))?
        .execute(params![
            operation.id,
            operation.kind.as_str(),
            operation.instance_id,
            operation.binding_id,
            operation.state.as_str(),
            operation.description,
            operation.asynchronous,
            to_json(&operation.job),
            operation.deadline,
            operation.instance_usable,
            operation.update_repeatable,
            operation.created_at,
        ])?;
    Ok(())
}

fn insert_instance(connection: &Connection, instance: &InstanceRecord) -> rusqlite::Result<()> {
    connection
        .prepare_cached(&format!(
            "INSERT INTO instances ({INSTANCE_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
        ))?
        .execute(params![
            instance.id,
            instance.service_id,
            instance.plan_id,
            to_json(&instance.parameters),
            optional_json(&instance.context),
            instance.organization_guid,
            instance.space_guid,
            instance.maintenance_version,
            to_json(&instance.provision_request),
            instance.dashboard_url,
            optional_json(&instance.metadata),
            instance_state_name(InstanceState::Provisioning),
            instance.active_operation,
            instance.created_by,
        ])?;
    Ok(())
}

fn insert_binding(connection: &Connection, binding: &BindingRecord) -> rusqlite::Result<()> {
    connection
        .prepare_cached(&format!(
            "INSERT INTO bindings ({BINDING_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
        ))?
        .execute(params![
            binding.id,
            binding.instance_id,
            binding.service_id,
            binding.plan_id,
            to_json(&binding.parameters),
            to_json(&binding.bind_request),
            binding_state_name(BindingState::Binding),
            binding.active_operation,
            binding.sealed_response,
            binding.created_by,
        ])?;
    Ok(())
}

/// Applies a finished operation's effects to its instance or binding.
fn apply_completion(
    transaction: &Connection,
    operation: &OperationRecord,
    completion: &Completion,
) -> rusqlite::Result<()> {
    let instance_id = operation.instance_id.as_str();
    let binding_id = operation.binding_id.as_deref().unwrap_or_default();
    let release_instance = |state: Option<InstanceState>| -> rusqlite::Result<()> {
        match state {
            Some(state) => execute_cached(
                transaction,
                "UPDATE instances SET state = ?1, active_operation = NULL \
                 WHERE id = ?2 AND active_operation = ?3",
                params![instance_state_name(state), instance_id, operation.id],
            ),
            None => execute_cached(
                transaction,
                "UPDATE instances SET active_operation = NULL \
                 WHERE id = ?1 AND active_operation = ?2",
                params![instance_id, operation.id],
            ),
        }
        .map(|_| ())
    };
    let release_binding = |state: BindingState| -> rusqlite::Result<()> {
        transaction
            .execute(
                "UPDATE bindings SET state = ?1, active_operation = NULL \
                 WHERE id = ?2 AND active_operation = ?3",
                params![binding_state_name(state), binding_id, operation.id],
            )
            .map(|_| ())
    };

    use OperationKind::*;
    match (operation.kind, completion) {
        (
            Provision,
            Completion::InstanceReady {
                dashboard_url,
                metadata,
            },
        ) => {
            execute_cached(
                transaction,
                "UPDATE instances SET dashboard_url = COALESCE(?1, dashboard_url), metadata = ?2 WHERE id = ?3",
                params![dashboard_url, optional_json(metadata), instance_id],
            )?;
            release_instance(Some(InstanceState::Ready))
        }
        (
            Update,
            Completion::InstanceReady {
                dashboard_url,
                metadata,
            },
        ) => {
            let Some(mut instance) = select_instance(transaction, instance_id)? else {
                return Ok(());
            };
            let job = &operation.job;
            if let Some(plan_id) = &job.plan_id {
                instance.plan_id = plan_id.clone();
            }
            if let Some(parameters) = &job.parameters {
                instance.parameters.extend(parameters.clone());
            }
            if job.context.is_some() {
                instance.context = job.context.clone();
            }
            if job.maintenance_version.is_some() {
                instance.maintenance_version = job.maintenance_version.clone();
            }
            if dashboard_url.is_some() {
                instance.dashboard_url = dashboard_url.clone();
            }
            if metadata.is_some() {
                instance.metadata = metadata.clone();
            }
            execute_cached(
                transaction,
                "UPDATE instances SET plan_id = ?1, parameters = ?2, context = ?3, \
                 maintenance_version = ?4, dashboard_url = ?5, metadata = ?6 WHERE id = ?7",
                params![
                    instance.plan_id,
                    to_json(&instance.parameters),
                    optional_json(&instance.context),
                    instance.maintenance_version,
                    instance.dashboard_url,
                    optional_json(&instance.metadata),
                    instance_id
                ],
            )?;
            release_instance(None)
        }
        (Deprovision, Completion::Deleted) => {
            // Only the delete stays, for last_operation to report 410 Gone.
            // TODO: drop these last records too after a retention period.
            execute_cached(
                transaction,
                "DELETE FROM operations WHERE instance_id = ?1 AND id != ?2",
                params![instance_id, operation.id],
            )?;
            execute_cached(
                transaction,
                "DELETE FROM bindings WHERE instance_id = ?1",
                [instance_id],
            )?;
            execute_cached(
                transaction,
                "DELETE FROM instances WHERE id = ?1",
                [instance_id],
            )
            .map(|_| ())
        }
        (Bind, Completion::BindingReady { sealed_response }) => {
            execute_cached(
                transaction,
                "UPDATE bindings SET sealed_response = ?1 WHERE id = ?2",
                params![sealed_response, binding_id],
            )?;
            release_binding(BindingState::Ready)
        }
        (Unbind, Completion::Deleted) => {
            execute_cached(
                transaction,
                "DELETE FROM operations WHERE instance_id = ?1 AND binding_id = ?2 AND id != ?3",
                params![instance_id, binding_id, operation.id],
            )?;
            execute_cached(
                transaction,
                "DELETE FROM bindings WHERE id = ?1",
                [binding_id],
            )
            .map(|_| ())
        }
        (Provision, Completion::Rejected { .. }) => {
            let removed = execute_cached(
                transaction,
                "DELETE FROM instances WHERE id = ?1 AND created_by = ?2",
                params![instance_id, operation.id],
            )?;
            if removed == 0 {
                release_instance(Some(InstanceState::ProvisionFailed))?;
            }
            Ok(())
        }
        (Bind, Completion::Rejected { .. }) => {
            let removed = execute_cached(
                transaction,
                "DELETE FROM bindings WHERE id = ?1 AND created_by = ?2",
                params![binding_id, operation.id],
            )?;
            if removed == 0 {
                release_binding(BindingState::BindFailed)?;
            }
            Ok(())
        }
        (Provision, _) => release_instance(Some(InstanceState::ProvisionFailed)),
        (Update, _) => release_instance(None),
        (Deprovision, _) if operation.job.provision_failed => {
            release_instance(Some(InstanceState::ProvisionFailed))
        }
        (Deprovision, _) => release_instance(Some(InstanceState::Ready)),
        (Bind, _) => release_binding(BindingState::BindFailed),
        (Unbind, _) => release_binding(BindingState::Ready),
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn instance(&self, id: &str) -> Result<Option<InstanceRecord>, StoreError> {
        let id = id.to_owned();
        self.read(move |connection| select_instance(connection, &id))
            .await
    }

    async fn binding(&self, id: &str) -> Result<Option<BindingRecord>, StoreError> {
        let id = id.to_owned();
        self.read(move |connection| select_binding(connection, &id))
            .await
    }

    async fn operation(&self, id: &str) -> Result<Option<OperationRecord>, StoreError> {
        let id = id.to_owned();
        self.read(move |connection| select_operation(connection, Some(&id)))
            .await
    }

    async fn latest_operation(
        &self,
        instance_id: &str,
        binding_id: Option<&str>,
    ) -> Result<Option<OperationRecord>, StoreError> {
        let instance_id = instance_id.to_owned();
        let binding_id = binding_id.map(str::to_owned);
        self.read(move |connection| {
            connection
                .prepare_cached(&format!(
                    "SELECT {OPERATION_COLUMNS} FROM operations \
                     WHERE instance_id = ?1 AND binding_id IS ?2 ORDER BY rowid DESC LIMIT 1"
                ))?
                .query_row(params![instance_id, binding_id], operation_from_row)
                .optional()
        })
        .await
    }

    async fn create_instance(
        &self,
        instance: &InstanceRecord,
        operation: &OperationRecord,
    ) -> Result<Created<InstanceRecord>, StoreError> {
        let instance = instance.clone();
        let operation = operation.clone();
        self.write(move |transaction| {
            if let Some(existing) = select_instance(transaction, &instance.id)? {
                let active = select_operation(transaction, existing.active_operation.as_deref())?;
                return Ok(Created::Exists { existing, active });
            }
            insert_instance(transaction, &instance)?;
            insert_operation(transaction, &operation)?;
            Ok(Created::Inserted)
        })
        .await
    }

    async fn lock_instance(
        &self,
        operation: &OperationRecord,
        allowed: &[InstanceState],
        new_state: InstanceState,
        require_idle_bindings: bool,
    ) -> Result<Locked<InstanceRecord>, StoreError> {
        let operation = operation.clone();
        let allowed = allowed.to_vec();
        self.write(move |transaction| {
            let Some(mut instance) = select_instance(transaction, &operation.instance_id)? else {
                return Ok(Locked::NotFound);
            };
            if let Some(active) =
                select_operation(transaction, instance.active_operation.as_deref())?
            {
                return Ok(Locked::Busy(active));
            }
            if !allowed.contains(&instance.state) {
                return Ok(Locked::WrongState(instance));
            }
            if require_idle_bindings {
                let busy_binding: Option<String> = transaction
                    .prepare_cached(
                        "SELECT active_operation FROM bindings \
                         WHERE instance_id = ?1 AND active_operation IS NOT NULL LIMIT 1",
                    )?
                    .query_row([&operation.instance_id], |row| row.get(0))
                    .optional()?;
                if let Some(active) = select_operation(transaction, busy_binding.as_deref())? {
                    return Ok(Locked::Busy(active));
                }
            }

            execute_cached(
                transaction,
                "UPDATE instances SET state = ?1, active_operation = ?2 WHERE id = ?3",
                params![
                    instance_state_name(new_state),
                    operation.id,
                    operation.instance_id
                ],
            )?;
            insert_operation(transaction, &operation)?;
            instance.state = new_state;
            instance.active_operation = Some(operation.id.clone());
            Ok(Locked::Acquired(instance))
        })
        .await
    }

    async fn create_binding(
        &self,
        binding: &BindingRecord,
        operation: &OperationRecord,
    ) -> Result<Result<Created<BindingRecord>, BindBlocked>, StoreError> {
        let binding = binding.clone();
        let operation = operation.clone();
        self.write(move |transaction| {
            if let Some(existing) = select_binding(transaction, &binding.id)? {
                let active = select_operation(transaction, existing.active_operation.as_deref())?;
                return Ok(Ok(Created::Exists { existing, active }));
            }
            let Some(instance) = select_instance(transaction, &binding.instance_id)? else {
                return Ok(Err(BindBlocked::InstanceNotFound));
            };
            if instance.state != InstanceState::Ready || instance.active_operation.is_some() {
                return Ok(Err(BindBlocked::InstanceBusy(instance.state)));
            }
            insert_binding(transaction, &binding)?;
            insert_operation(transaction, &operation)?;
            Ok(Ok(Created::Inserted))
        })
        .await
    }

    async fn lock_binding(
        &self,
        operation: &OperationRecord,
        allowed: &[BindingState],
        new_state: BindingState,
    ) -> Result<Locked<BindingRecord>, StoreError> {
        let operation = operation.clone();
        let allowed = allowed.to_vec();
        self.write(move |transaction| {
            let binding_id = operation.binding_id.clone().unwrap_or_default();
            let Some(mut binding) = select_binding(transaction, &binding_id)? else {
                return Ok(Locked::NotFound);
            };
            if let Some(active) =
                select_operation(transaction, binding.active_operation.as_deref())?
            {
                return Ok(Locked::Busy(active));
            }
            // A deprovision in progress owns the bindings too.
            let instance_lock: Option<Option<String>> = transaction
                .prepare_cached("SELECT active_operation FROM instances WHERE id = ?1")?
                .query_row([&binding.instance_id], |row| row.get(0))
                .optional()?;
            if let Some(active) = select_operation(transaction, instance_lock.flatten().as_deref())?
            {
                if active.kind == OperationKind::Deprovision {
                    return Ok(Locked::Busy(active));
                }
            }
            if !allowed.contains(&binding.state) {
                return Ok(Locked::WrongState(binding));
            }

            execute_cached(
                transaction,
                "UPDATE bindings SET state = ?1, active_operation = ?2 WHERE id = ?3",
                params![binding_state_name(new_state), operation.id, binding_id],
            )?;
            insert_operation(transaction, &operation)?;
            binding.state = new_state;
            binding.active_operation = Some(operation.id.clone());
            Ok(Locked::Acquired(binding))
        })
        .await
    }

    async fn finish(
        &self,
        operation_id: &str,
        completion: &Completion,
    ) -> Result<bool, StoreError> {
        let operation_id = operation_id.to_owned();
        let completion = completion.clone();
        self.write(move |transaction| {
            let Some(operation) = select_operation(transaction, Some(&operation_id))? else {
                return Ok(false);
            };
            if operation.state != OperationState::InProgress {
                return Ok(false);
            }

            let (state, description, usable, repeatable) = match &completion {
                Completion::Failed {
                    description,
                    instance_usable,
                    update_repeatable,
                } => (
                    OperationState::Failed,
                    Some(description.clone()),
                    *instance_usable,
                    *update_repeatable,
                ),
                Completion::Rejected {
                    description,
                    instance_usable,
                    update_repeatable,
                } => (
                    OperationState::Failed,
                    Some(description.clone()),
                    *instance_usable,
                    *update_repeatable,
                ),
                _ => (OperationState::Succeeded, None, None, None),
            };
            execute_cached(
                transaction,
                "UPDATE operations SET state = ?1, description = ?2, instance_usable = ?3, \
                 update_repeatable = ?4 WHERE id = ?5",
                params![
                    state.as_str(),
                    description,
                    usable,
                    repeatable,
                    operation_id
                ],
            )?;
            apply_completion(transaction, &operation, &completion)?;
            Ok(true)
        })
        .await
    }

    async fn operations_in_progress(&self) -> Result<Vec<OperationRecord>, StoreError> {
        self.read(|connection| {
            connection
                .prepare_cached(&format!(
                    "SELECT {OPERATION_COLUMNS} FROM operations \
                     WHERE state = 'in progress' ORDER BY rowid"
                ))?
                .query_map([], operation_from_row)?
                .collect()
        })
        .await
    }

    async fn binding_ids(&self, instance_id: &str) -> Result<Vec<String>, StoreError> {
        let instance_id = instance_id.to_owned();
        self.read(move |connection| {
            connection
                .prepare_cached("SELECT id FROM bindings WHERE instance_id = ?1 ORDER BY id")?
                .query_map([instance_id], |row| row.get(0))?
                .collect()
        })
        .await
    }

    async fn all_instance_ids(&self) -> Result<Vec<String>, StoreError> {
        self.read(|connection| {
            connection
                .prepare_cached("SELECT id FROM instances ORDER BY id")?
                .query_map([], |row| row.get(0))?
                .collect()
        })
        .await
    }

    async fn all_binding_ids(&self) -> Result<Vec<String>, StoreError> {
        self.read(|connection| {
            connection
                .prepare_cached("SELECT id FROM bindings ORDER BY id")?
                .query_map([], |row| row.get(0))?
                .collect()
        })
        .await
    }

    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_owned();
        self.read(move |connection| {
            connection
                .query_row("SELECT value FROM settings WHERE key = ?1", [key], |row| {
                    row.get(0)
                })
                .optional()
        })
        .await
    }

    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError> {
        let key = key.to_owned();
        let value = value.to_owned();
        self.write(move |transaction| {
            execute_cached(
                transaction,
                "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                params![key, value],
            )?;
            transaction.query_row("SELECT value FROM settings WHERE key = ?1", [key], |row| {
                row.get(0)
            })
        })
        .await
    }
}
