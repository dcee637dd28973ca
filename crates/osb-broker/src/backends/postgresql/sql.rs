//! Quoting for statements that cannot take bind parameters, and the mapping
//! of driver errors to [`BackendError`].
//!
//! DDL such as `CREATE DATABASE` or `CREATE ROLE ... PASSWORD` accepts no `$1`
//! parameters, so names and literals are quoted here. Names are always
//! quoted even though the broker only makes `[a-z0-9_]` names.

use std::fmt;

use osbkit::BackendError;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

/// Quotes `name` as a PostgreSQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes `text` as a PostgreSQL string literal that reads the same whatever
/// `standard_conforming_strings` is set to.
pub fn quote_literal(text: &str) -> String {
    let doubled = text.replace('\'', "''");
    if doubled.contains('\\') {
        format!("E'{}'", doubled.replace('\\', "\\\\"))
    } else {
        format!("'{doubled}'")
    }
}

/// A failed statement, with the step it belonged to.
#[derive(Debug)]
pub struct StepError {
    pub step: &'static str,
    pub source: tokio_postgres::Error,
}

// The driver's Display prints only "db error" and keeps the server's message
// in the source, so it is written out here for the log.
impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgreSQL step {} failed: {}", self.step, self.source)?;
        if let Some(db_error) = self.source.as_db_error() {
            write!(
                f,
                ": {} (SQLSTATE {})",
                db_error.message(),
                db_error.code().code()
            )?;
        } else if let Some(cause) = std::error::Error::source(&self.source) {
            write!(f, ": {cause}")?;
        }
        Ok(())
    }
}

impl std::error::Error for StepError {}

/// Tells whether `error` means the server cannot be reached or is not
/// accepting work, rather than that a statement was wrong.
pub fn is_unavailable(error: &tokio_postgres::Error) -> bool {
    let Some(db_error) = error.as_db_error() else {
        // I/O, closed connection, TLS, timeout, authentication exchange.
        return true;
    };
    let code = db_error.code();
    let class = &code.code()[..2];
    // 08: connection exception, 57P: shutdown or recovery, 53: out of resources.
    class == "08"
        || class == "53"
        || *code == SqlState::ADMIN_SHUTDOWN
        || *code == SqlState::CRASH_SHUTDOWN
        || *code == SqlState::CANNOT_CONNECT_NOW
}

/// Converts a driver error into the error the framework expects. `server`
/// is the configured server key, safe to show to clients.
pub fn to_backend_error(
    server: &str,
    step: &'static str,
    error: tokio_postgres::Error,
) -> BackendError {
    let unavailable = is_unavailable(&error);
    let step_error = StepError {
        step,
        source: error,
    };
    if unavailable {
        BackendError::Unavailable {
            what: format!("the PostgreSQL server {server:?}"),
            source: Box::new(step_error),
        }
    } else {
        BackendError::internal(step_error)
    }
}

/// Runs `statements` without parameters, as the simple query protocol
/// does, so several may be sent at once.
pub async fn execute(
    server: &str,
    client: &Client,
    step: &'static str,
    statements: &str,
) -> Result<(), BackendError> {
    client
        .batch_execute(statements)
        .await
        .map_err(|error| to_backend_error(server, step, error))
}

/// Runs `statement` and ignores the error with `ignored` SQLSTATE, for
/// statements without `IF NOT EXISTS` that a concurrent run may win.
pub async fn execute_ignoring(
    server: &str,
    client: &Client,
    step: &'static str,
    statement: &str,
    ignored: &SqlState,
) -> Result<(), BackendError> {
    match client.batch_execute(statement).await {
        Err(error) if error.code() == Some(ignored) => Ok(()),
        result => result.map_err(|error| to_backend_error(server, step, error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_ident_doubles_quotes() {
        assert_eq!(quote_ident("osb_x"), "\"osb_x\"");
        assert_eq!(quote_ident("a\"; DROP"), "\"a\"\"; DROP\"");
    }

    #[test]
    fn quote_literal_doubles_quotes_and_backslashes() {
        assert_eq!(quote_literal("abc"), "'abc'");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\'b"), "E'a\\\\''b'");
    }
}
