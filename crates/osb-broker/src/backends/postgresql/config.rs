//! The settings an operator writes for PostgreSQL servers and plans.

use std::fmt;
use std::path::PathBuf;

use osbkit::Execution;
use serde::Deserialize;

use super::names::DEFAULT_PREFIX;

/// The server key a plan uses when it names none.
pub const DEFAULT_SERVER: &str = "default";

/// One shared PostgreSQL server, reached with an administrator role that may
/// create databases and roles.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Admin connection URL, such as `postgresql://postgres@127.0.0.1:5432/postgres`.
    /// The database in it is where the broker runs cluster-wide statements.
    pub url: String,
    /// Whether connections use TLS, for the broker and in the credentials.
    #[serde(default)]
    pub tls: TlsMode,
    /// PEM file with the certificate authorities that sign the server's
    /// certificate. Required by `verify-full`. Its content goes into the
    /// credentials as `sslrootcert`.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Host that applications connect to, when it differs from the admin URL's.
    #[serde(default)]
    pub public_host: Option<String>,
    /// Port that applications connect to, when it differs from the admin URL's.
    #[serde(default)]
    pub public_port: Option<u16>,
    /// Seconds to wait for a connection before the server counts as unavailable.
    #[serde(default = "default_connect_timeout_seconds")]
    pub connect_timeout_seconds: u64,
    /// The start of the name of every database and role the broker makes on
    /// this server: a lower-case letter, then up to 11 lower-case letters or
    /// digits. Brokers sharing a server need different prefixes.
    #[serde(default = "default_name_prefix")]
    pub name_prefix: String,
}

fn default_connect_timeout_seconds() -> u64 {
    10
}

fn default_name_prefix() -> String {
    DEFAULT_PREFIX.to_owned()
}

// The URL may carry the admin password, so Debug shows it redacted.
impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("url", &redact_url(&self.url))
            .field("tls", &self.tls)
            .field("ca_file", &self.ca_file)
            .field("public_host", &self.public_host)
            .field("public_port", &self.public_port)
            .field("connect_timeout_seconds", &self.connect_timeout_seconds)
            .field("name_prefix", &self.name_prefix)
            .finish()
    }
}

/// Returns `url` with the password of its user part and every query value
/// replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut redacted = match base.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            // A password may contain '/' or '@' when not percent-encoded, so
            // the last '@' ends the user part.
            Some((userinfo, hosts_and_path)) => match userinfo.split_once(':') {
                Some((user, _password)) => format!("{scheme}://{user}:***@{hosts_and_path}"),
                None => base.to_owned(),
            },
            None => base.to_owned(),
        },
        // Not a URL, perhaps a key=value string that may hold a password.
        None => return "***".to_owned(),
    };
    if let Some(query) = query {
        let keys: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) => format!("{key}=***"),
                None => pair.to_owned(),
            })
            .collect();
        redacted.push('?');
        redacted.push_str(&keys.join("&"));
    }
    redacted
}

/// The TLS mode of connections to a server, for the broker and applications.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// Plain TCP.
    #[default]
    Disable,
    /// TLS without checking the server's certificate, as libpq's `sslmode=require`.
    Require,
    /// TLS with the certificate checked against `ca_file` and the host name.
    VerifyFull,
}

impl TlsMode {
    /// Returns libpq's `sslmode` value for this mode.
    pub fn sslmode(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Require => "require",
            TlsMode::VerifyFull => "verify-full",
        }
    }
}

/// The execution mode of a plan's operations, as written in the config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionMode {
    Synchronous,
    #[default]
    AsyncPreferred,
    AsyncOnly,
}

impl From<ExecutionMode> for Execution {
    fn from(mode: ExecutionMode) -> Self {
        match mode {
            ExecutionMode::Synchronous => Execution::Synchronous,
            ExecutionMode::AsyncPreferred => Execution::AsyncPreferred,
            ExecutionMode::AsyncOnly => Execution::AsyncOnly,
        }
    }
}

/// The `backend` table of a plan whose `type` is `postgresql`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanConfig {
    /// Key into `[postgresql.servers]`.
    #[serde(default = "default_server")]
    pub server: String,
    /// Maximum concurrent connections to each instance's database, or no limit when absent.
    #[serde(default)]
    pub connection_limit: Option<i32>,
    /// Extensions that parameters may ask for, such as `pgcrypto`.
    #[serde(default)]
    pub extensions: Vec<String>,
    /// Whether bindings are read-only unless their `read_only` parameter is false.
    #[serde(default)]
    pub read_only: bool,
    /// Whether credentials carry a `jdbcUrl`.
    #[serde(default = "default_true")]
    pub jdbc_url: bool,
    /// Whether operations run within the request or in the background.
    #[serde(default)]
    pub execution: ExecutionMode,
}

fn default_server() -> String {
    DEFAULT_SERVER.to_owned()
}

fn default_true() -> bool {
    true
}

impl PlanConfig {
    /// Checks the values serde cannot, naming the field and the fix.
    pub fn validate(&self, plan_id: &str) -> Result<(), String> {
        if let Some(limit) = self.connection_limit {
            if limit < 1 {
                return Err(format!(
                    "plan {plan_id:?}: backend.connection_limit is {limit}; \
                     set a positive number or remove it for no limit"
                ));
            }
        }
        for extension in &self.extensions {
            if !is_valid_extension_name(extension) {
                return Err(format!(
                    "plan {plan_id:?}: backend.extensions contains {extension:?}; \
                     an extension name has 1 to 63 characters from a-z, 0-9, '_' and '-'"
                ));
            }
        }
        Ok(())
    }
}

/// Tells whether `name` looks like the name of a PostgreSQL extension, such as
/// `pgcrypto` or `uuid-ossp`.
pub fn is_valid_extension_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_hides_password() {
        let url = "postgresql://admin:s3cret@db.example:5432/postgres?password=x";
        let redacted = redact_url(url);
        assert!(!redacted.contains("s3cret"), "{redacted}");
        assert!(!redacted.contains("=x"), "{redacted}");
        assert_eq!(
            redacted,
            "postgresql://admin:***@db.example:5432/postgres?password=***"
        );
    }

    #[test]
    fn redact_url_keeps_url_without_password() {
        let url = "postgresql://postgres@127.0.0.1:5432/postgres";
        assert_eq!(redact_url(url), url);
    }

    #[test]
    fn redact_url_hides_key_value_strings() {
        assert_eq!(redact_url("host=x password=y"), "***");
    }

    #[test]
    fn extension_names() {
        assert!(is_valid_extension_name("pgcrypto"));
        assert!(is_valid_extension_name("uuid-ossp"));
        assert!(!is_valid_extension_name(""));
        assert!(!is_valid_extension_name("x\"; DROP"));
        assert!(!is_valid_extension_name("PGCRYPTO"));
    }
}
