//! The local platform record: instances, bindings, their credentials and
//! the operations run on them, in SQLite at `$OSB_HOME/record.db`.
//!
//! Like a platform's database it is the source of truth for what exists. A
//! command writes a row as `creating` (or `updating`, `deleting`) before it
//! sends the request, and settles it afterwards, so a command that dies
//! halfway leaves a row that shows it. Names are unique per broker URL, and
//! every query is scoped to the current broker.

use std::path::{Path, PathBuf};

use osbkit_types::JsonObject;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::Value;

use crate::clock::now_unix;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("could not open the local record {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("local record query failed: {0}")]
    Query(#[from] rusqlite::Error),
    #[error("the local record holds invalid JSON in {column}: {source}")]
    Json {
        column: &'static str,
        source: serde_json::Error,
    },
}

pub type RecordResult<T> = Result<T, RecordError>;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS instances (
    id TEXT PRIMARY KEY,
    broker_url TEXT NOT NULL,
    name TEXT NOT NULL,
    service_id TEXT NOT NULL,
    service_name TEXT NOT NULL,
    plan_id TEXT NOT NULL,
    plan_name TEXT NOT NULL,
    tags TEXT NOT NULL,
    provider TEXT NOT NULL,
    maintenance_version TEXT,
    context TEXT NOT NULL,
    dashboard_url TEXT,
    state TEXT NOT NULL,
    usable INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (broker_url, name)
);
CREATE TABLE IF NOT EXISTS bindings (
    id TEXT PRIMARY KEY,
    broker_url TEXT NOT NULL,
    name TEXT NOT NULL,
    instance_id TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    predecessor_id TEXT,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (broker_url, name)
);
CREATE TABLE IF NOT EXISTS credentials (
    binding_id TEXT PRIMARY KEY REFERENCES bindings(id) ON DELETE CASCADE,
    response TEXT NOT NULL,
    fetched_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS operations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    broker_url TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    resource_name TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    token TEXT,
    description TEXT,
    started_at INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX IF NOT EXISTS operations_by_resource ON operations (resource_id);
";

/// The life-cycle state of a recorded instance or binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Creating,
    Ready,
    Updating,
    Deleting,
    CreateFailed,
    UpdateFailed,
    DeleteFailed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Creating => "creating",
            State::Ready => "ready",
            State::Updating => "updating",
            State::Deleting => "deleting",
            State::CreateFailed => "create failed",
            State::UpdateFailed => "update failed",
            State::DeleteFailed => "delete failed",
        }
    }

    /// Reads a state as stored by `as_str`.
    pub fn parse(text: &str) -> Option<State> {
        [
            State::Creating,
            State::Ready,
            State::Updating,
            State::Deleting,
            State::CreateFailed,
            State::UpdateFailed,
            State::DeleteFailed,
        ]
        .into_iter()
        .find(|state| state.as_str() == text)
    }
}

/// A recorded service instance.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct InstanceRow {
    pub id: String,
    pub name: String,
    pub service_id: String,
    pub service_name: String,
    pub plan_id: String,
    pub plan_name: String,
    /// The offering's tags, for VCAP_SERVICES.
    pub tags: Vec<String>,
    /// The provider of the offering, for servicebinding.io.
    pub provider: String,
    pub maintenance_version: Option<String>,
    pub context: JsonObject,
    pub dashboard_url: Option<String>,
    pub state: String,
    /// False after a failed update or deprovision marked it unusable.
    pub usable: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A recorded service binding.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BindingRow {
    pub id: String,
    pub name: String,
    pub instance_id: String,
    pub instance_name: String,
    pub predecessor_id: Option<String>,
    pub state: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One operation run on an instance or binding.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OperationRow {
    pub id: i64,
    pub resource_type: String,
    pub resource_id: String,
    pub resource_name: String,
    pub kind: String,
    pub state: String,
    pub token: Option<String>,
    pub description: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

/// The record, scoped to one broker.
pub struct Record {
    connection: Connection,
    broker_url: String,
}

impl Record {
    /// Opens or creates the record file, with owner-only permissions because it contains credentials.
    pub fn open(path: &Path, broker_url: &str) -> RecordResult<Self> {
        let open_error = |source| RecordError::Open {
            path: path.to_owned(),
            source,
        };
        let connection = Connection::open(path).map_err(open_error)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Best effort: the directory is already owner-only.
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        Self::with_connection(connection, broker_url).map_err(|error| match error {
            RecordError::Query(source) => open_error(source),
            other => other,
        })
    }

    /// Opens a record in memory, for tests.
    #[cfg(test)]
    pub fn in_memory(broker_url: &str) -> RecordResult<Self> {
        Self::with_connection(Connection::open_in_memory()?, broker_url)
    }

    fn with_connection(connection: Connection, broker_url: &str) -> RecordResult<Self> {
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        connection.execute_batch(SCHEMA)?;
        Ok(Self {
            connection,
            broker_url: broker_url.to_owned(),
        })
    }

    pub fn insert_instance(&self, row: &InstanceRow) -> RecordResult<()> {
        self.connection.execute(
            "INSERT INTO instances (id, broker_url, name, service_id, service_name, plan_id, plan_name,
                tags, provider, maintenance_version, context, dashboard_url, state, usable, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            params![
                row.id,
                self.broker_url,
                row.name,
                row.service_id,
                row.service_name,
                row.plan_id,
                row.plan_name,
                serde_json::to_string(&row.tags).unwrap_or_else(|_| "[]".into()),
                row.provider,
                row.maintenance_version,
                Value::Object(row.context.clone()).to_string(),
                row.dashboard_url,
                row.state,
                row.usable,
                row.created_at,
                row.updated_at,
            ],
        )?;
        Ok(())
    }

    pub fn instance_by_name(&self, name: &str) -> RecordResult<Option<InstanceRow>> {
        self.connection
            .query_row(
                &format!("{INSTANCE_SELECT} WHERE broker_url = ?1 AND name = ?2"),
                params![self.broker_url, name],
                read_instance,
            )
            .optional()?
            .transpose()
    }

    pub fn instance_by_id(&self, id: &str) -> RecordResult<Option<InstanceRow>> {
        self.connection
            .query_row(
                &format!("{INSTANCE_SELECT} WHERE id = ?1"),
                params![id],
                read_instance,
            )
            .optional()?
            .transpose()
    }

    pub fn instances(&self) -> RecordResult<Vec<InstanceRow>> {
        let mut statement = self.connection.prepare(&format!(
            "{INSTANCE_SELECT} WHERE broker_url = ?1 ORDER BY name"
        ))?;
        let rows = statement.query_map(params![self.broker_url], read_instance)?;
        rows.map(|row| row.map_err(RecordError::from).and_then(|instance| instance))
            .collect()
    }

    pub fn set_instance_state(&self, id: &str, state: State) -> RecordResult<()> {
        self.connection.execute(
            "UPDATE instances SET state = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, state.as_str(), now_unix()],
        )?;
        Ok(())
    }

    pub fn set_instance_usable(&self, id: &str, usable: bool) -> RecordResult<()> {
        self.connection.execute(
            "UPDATE instances SET usable = ?2 WHERE id = ?1",
            params![id, usable],
        )?;
        Ok(())
    }

    /// Stores the plan and maintenance version an instance moved to.
    pub fn set_instance_plan(
        &self,
        id: &str,
        plan_id: &str,
        plan_name: &str,
        maintenance_version: Option<&str>,
    ) -> RecordResult<()> {
        self.connection.execute(
            "UPDATE instances SET plan_id = ?2, plan_name = ?3, maintenance_version = ?4, updated_at = ?5
             WHERE id = ?1",
            params![id, plan_id, plan_name, maintenance_version, now_unix()],
        )?;
        Ok(())
    }

    /// Stores a new dashboard URL. `None` keeps the old one, as the specification requires.
    pub fn set_dashboard_url(&self, id: &str, dashboard_url: Option<&str>) -> RecordResult<()> {
        if let Some(url) = dashboard_url {
            self.connection.execute(
                "UPDATE instances SET dashboard_url = ?2 WHERE id = ?1",
                params![id, url],
            )?;
        }
        Ok(())
    }

    /// Deletes an instance with its bindings and their credentials.
    pub fn delete_instance(&self, id: &str) -> RecordResult<()> {
        self.connection
            .execute("DELETE FROM instances WHERE id = ?1", params![id])?;
        Ok(())
    }

    pub fn insert_binding(&self, row: &BindingRow) -> RecordResult<()> {
        self.connection.execute(
            "INSERT INTO bindings (id, broker_url, name, instance_id, predecessor_id, state, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                row.id,
                self.broker_url,
                row.name,
                row.instance_id,
                row.predecessor_id,
                row.state,
                row.created_at,
                row.updated_at,
            ],
        )?;
        Ok(())
    }

    pub fn binding_by_name(&self, name: &str) -> RecordResult<Option<BindingRow>> {
        Ok(self
            .connection
            .query_row(
                &format!("{BINDING_SELECT} WHERE b.broker_url = ?1 AND b.name = ?2"),
                params![self.broker_url, name],
                read_binding,
            )
            .optional()?)
    }

    /// Lists the bindings of the broker, or of one instance.
    pub fn bindings(&self, instance_id: Option<&str>) -> RecordResult<Vec<BindingRow>> {
        let mut statement = self.connection.prepare(&format!(
            "{BINDING_SELECT} WHERE b.broker_url = ?1 AND (?2 IS NULL OR b.instance_id = ?2) ORDER BY b.name"
        ))?;
        let rows = statement.query_map(params![self.broker_url, instance_id], read_binding)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn set_binding_state(&self, id: &str, state: State) -> RecordResult<()> {
        self.connection.execute(
            "UPDATE bindings SET state = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, state.as_str(), now_unix()],
        )?;
        Ok(())
    }

    pub fn rename_binding(&self, id: &str, name: &str) -> RecordResult<()> {
        self.connection.execute(
            "UPDATE bindings SET name = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, name, now_unix()],
        )?;
        Ok(())
    }

    pub fn delete_binding(&self, id: &str) -> RecordResult<()> {
        self.connection
            .execute("DELETE FROM bindings WHERE id = ?1", params![id])?;
        Ok(())
    }

    /// Stores the whole binding response (credentials, endpoints, metadata).
    pub fn save_credentials(&self, binding_id: &str, response: &Value) -> RecordResult<()> {
        self.connection.execute(
            "INSERT INTO credentials (binding_id, response, fetched_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (binding_id) DO UPDATE SET response = excluded.response, fetched_at = excluded.fetched_at",
            params![binding_id, response.to_string(), now_unix()],
        )?;
        Ok(())
    }

    pub fn credentials(&self, binding_id: &str) -> RecordResult<Option<Value>> {
        let text: Option<String> = self
            .connection
            .query_row(
                "SELECT response FROM credentials WHERE binding_id = ?1",
                params![binding_id],
                |row| row.get(0),
            )
            .optional()?;
        text.map(|text| {
            serde_json::from_str(&text).map_err(|source| RecordError::Json {
                column: "credentials.response",
                source,
            })
        })
        .transpose()
    }

    /// Records the start of an operation and returns its id.
    pub fn start_operation(
        &self,
        resource_type: &str,
        resource_id: &str,
        resource_name: &str,
        kind: &str,
    ) -> RecordResult<i64> {
        self.connection.execute(
            "INSERT INTO operations (broker_url, resource_type, resource_id, resource_name, kind, state, started_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'in progress', ?6)",
            params![self.broker_url, resource_type, resource_id, resource_name, kind, now_unix()],
        )?;
        Ok(self.connection.last_insert_rowid())
    }

    /// Stores the broker's `operation` token of a 202 response.
    pub fn set_operation_token(&self, id: i64, token: Option<&str>) -> RecordResult<()> {
        self.connection.execute(
            "UPDATE operations SET token = ?2 WHERE id = ?1",
            params![id, token],
        )?;
        Ok(())
    }

    /// Records how an operation ended: `succeeded` or `failed`, with a description.
    pub fn finish_operation(
        &self,
        id: i64,
        state: &str,
        description: Option<&str>,
    ) -> RecordResult<()> {
        self.connection.execute(
            "UPDATE operations SET state = ?2, description = ?3, finished_at = ?4 WHERE id = ?1",
            params![id, state, description, now_unix()],
        )?;
        Ok(())
    }

    /// Lists the operations of a resource, oldest first.
    pub fn operations_for(&self, resource_id: &str) -> RecordResult<Vec<OperationRow>> {
        let mut statement = self.connection.prepare(
            "SELECT id, resource_type, resource_id, resource_name, kind, state, token, description, started_at, finished_at
             FROM operations WHERE resource_id = ?1 ORDER BY id",
        )?;
        let rows = statement.query_map(params![resource_id], |row| {
            Ok(OperationRow {
                id: row.get(0)?,
                resource_type: row.get(1)?,
                resource_id: row.get(2)?,
                resource_name: row.get(3)?,
                kind: row.get(4)?,
                state: row.get(5)?,
                token: row.get(6)?,
                description: row.get(7)?,
                started_at: row.get(8)?,
                finished_at: row.get(9)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

const INSTANCE_SELECT: &str = "SELECT id, name, service_id, service_name, plan_id, plan_name, tags, provider,
    maintenance_version, context, dashboard_url, state, usable, created_at, updated_at FROM instances";

const BINDING_SELECT: &str =
    "SELECT b.id, b.name, b.instance_id, i.name, b.predecessor_id, b.state,
    b.created_at, b.updated_at FROM bindings b JOIN instances i ON i.id = b.instance_id";

/// Reads an instance row; the outer error is SQLite's, the inner one a broken JSON column.
fn read_instance(row: &Row<'_>) -> rusqlite::Result<RecordResult<InstanceRow>> {
    let tags: String = row.get(6)?;
    let tags = match serde_json::from_str(&tags) {
        Ok(tags) => tags,
        Err(source) => {
            return Ok(Err(RecordError::Json {
                column: "instances.tags",
                source,
            }))
        }
    };
    let context: String = row.get(9)?;
    let context = match serde_json::from_str(&context) {
        Ok(context) => context,
        Err(source) => {
            return Ok(Err(RecordError::Json {
                column: "instances.context",
                source,
            }))
        }
    };
    Ok(Ok(InstanceRow {
        id: row.get(0)?,
        name: row.get(1)?,
        service_id: row.get(2)?,
        service_name: row.get(3)?,
        plan_id: row.get(4)?,
        plan_name: row.get(5)?,
        tags,
        provider: row.get(7)?,
        maintenance_version: row.get(8)?,
        context,
        dashboard_url: row.get(10)?,
        state: row.get(11)?,
        usable: row.get(12)?,
        created_at: row.get(13)?,
        updated_at: row.get(14)?,
    }))
}

fn read_binding(row: &Row<'_>) -> rusqlite::Result<BindingRow> {
    Ok(BindingRow {
        id: row.get(0)?,
        name: row.get(1)?,
        instance_id: row.get(2)?,
        instance_name: row.get(3)?,
        predecessor_id: row.get(4)?,
        state: row.get(5)?,
        created_at: row.get(6)?,
        updated_at: row.get(7)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn instance(id: &str, name: &str) -> InstanceRow {
        InstanceRow {
            id: id.into(),
            name: name.into(),
            service_id: "svc".into(),
            service_name: "db".into(),
            plan_id: "plan".into(),
            plan_name: "small".into(),
            tags: vec!["sql".into()],
            provider: "example".into(),
            maintenance_version: Some("1.0.0".into()),
            context: json!({ "platform": "cloudfoundry" })
                .as_object()
                .unwrap()
                .clone(),
            dashboard_url: None,
            state: State::Creating.as_str().into(),
            usable: true,
            created_at: 1,
            updated_at: 1,
        }
    }

    fn binding(id: &str, name: &str, instance_id: &str) -> BindingRow {
        BindingRow {
            id: id.into(),
            name: name.into(),
            instance_id: instance_id.into(),
            instance_name: String::new(),
            predecessor_id: None,
            state: State::Ready.as_str().into(),
            created_at: 1,
            updated_at: 1,
        }
    }

    #[test]
    fn instance_round_trips() {
        let record = Record::in_memory("http://b").unwrap();
        record.insert_instance(&instance("i1", "orders")).unwrap();
        let read = record.instance_by_name("orders").unwrap().unwrap();
        assert_eq!(read, instance("i1", "orders"));
        record.set_instance_state("i1", State::Ready).unwrap();
        record
            .set_instance_plan("i1", "plan2", "large", None)
            .unwrap();
        let read = record.instance_by_id("i1").unwrap().unwrap();
        assert_eq!(read.state, "ready");
        assert_eq!(read.plan_name, "large");
        assert_eq!(read.maintenance_version, None);
    }

    #[test]
    fn names_scoped_per_broker() {
        let path = std::env::temp_dir().join(format!("osb-record-{}.db", uuid::Uuid::new_v4()));
        let first = Record::open(&path, "http://a").unwrap();
        let second = Record::open(&path, "http://b").unwrap();
        first.insert_instance(&instance("i1", "orders")).unwrap();
        second.insert_instance(&instance("i2", "orders")).unwrap();
        assert_eq!(first.instances().unwrap().len(), 1);
        assert!(first.insert_instance(&instance("i3", "orders")).is_err());
        drop((first, second));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn deleting_instance_removes_bindings_and_credentials() {
        let record = Record::in_memory("http://b").unwrap();
        record.insert_instance(&instance("i1", "orders")).unwrap();
        record.insert_binding(&binding("b1", "app", "i1")).unwrap();
        record
            .save_credentials("b1", &json!({ "credentials": { "uri": "x" } }))
            .unwrap();
        assert_eq!(
            record.bindings(Some("i1")).unwrap()[0].instance_name,
            "orders"
        );
        record.delete_instance("i1").unwrap();
        assert!(record.binding_by_name("app").unwrap().is_none());
        assert!(record.credentials("b1").unwrap().is_none());
    }

    #[test]
    fn credentials_replaced_on_save() {
        let record = Record::in_memory("http://b").unwrap();
        record.insert_instance(&instance("i1", "orders")).unwrap();
        record.insert_binding(&binding("b1", "app", "i1")).unwrap();
        record
            .save_credentials("b1", &json!({ "credentials": { "v": 1 } }))
            .unwrap();
        record
            .save_credentials("b1", &json!({ "credentials": { "v": 2 } }))
            .unwrap();
        assert_eq!(
            record.credentials("b1").unwrap().unwrap()["credentials"]["v"],
            2
        );
    }

    #[test]
    fn operations_recorded_in_order() {
        let record = Record::in_memory("http://b").unwrap();
        let first = record
            .start_operation("instance", "i1", "orders", "provision")
            .unwrap();
        record.set_operation_token(first, Some("op-1")).unwrap();
        record.finish_operation(first, "succeeded", None).unwrap();
        record
            .start_operation("instance", "i1", "orders", "update")
            .unwrap();
        let operations = record.operations_for("i1").unwrap();
        assert_eq!(operations.len(), 2);
        assert_eq!(operations[0].token.as_deref(), Some("op-1"));
        assert_eq!(operations[0].state, "succeeded");
        assert_eq!(operations[1].state, "in progress");
    }
}
