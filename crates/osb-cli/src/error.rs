//! The error every command returns, and the exit code it maps to.

use std::fmt;

/// Why a command stopped, which decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The broker rejected the request, or the operation failed (exit code 1).
    Failed,
    /// A mistake in the command line, the configuration or the local record (exit code 2).
    Usage,
    /// The broker could not be reached or did not answer (exit code 2).
    Connection,
    /// Stdout was closed by the reader, as `osb instances | head -1` does:
    /// nothing is printed and the exit code is 0.
    BrokenPipe,
}

/// A message for the user, with a hint when the fix is known.
///
/// The message must never contain a password or credentials: it is printed
/// as is on stderr.
#[derive(Debug, Clone)]
pub struct CliError {
    pub kind: ErrorKind,
    pub message: String,
    pub hint: Option<String>,
}

impl CliError {
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Failed, message)
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, message)
    }

    pub fn connection(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Connection, message)
    }

    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds a hint, keeping an earlier one.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        if self.hint.is_none() {
            self.hint = Some(hint.into());
        }
        self
    }

    /// Sets the hint, replacing an earlier one.
    pub fn replace_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Prefixes the message with what the command was doing, as in
    /// `could not provision "orders-db": <message>`.
    pub fn context(mut self, doing: impl fmt::Display) -> Self {
        self.message = format!("{doing}: {}", self.message);
        self
    }

    pub fn exit_code(&self) -> i32 {
        match self.kind {
            ErrorKind::BrokenPipe => 0,
            ErrorKind::Failed => 1,
            ErrorKind::Usage | ErrorKind::Connection => 2,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<crate::record::RecordError> for CliError {
    fn from(error: crate::record::RecordError) -> Self {
        CliError::usage(error.to_string())
            .with_hint("the local record lives in $OSB_HOME/record.db (default ~/.osb)")
    }
}

pub type CliResult<T> = Result<T, CliError>;
