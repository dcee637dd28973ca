//! The broker's configuration file, in TOML or YAML, with environment
//! variables overriding its fields.
//!
//! A variable named `OSB_BROKER_` followed by a field path, with `__`
//! between nested names, overrides that field: `OSB_BROKER_LISTEN`,
//! `OSB_BROKER_STATE__ENCRYPTION_KEY`. Every error names the file, the field
//! and a fix.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml, Yaml};
use figment::Figment;
use osbkit::auth::{Credential, Password};
use osbkit::types::{Catalog, ServiceOffering};
use serde::Deserialize;

use crate::backends::postgresql;
use crate::backends::simulated::SimulatedPlan;
use crate::backends::static_credentials::StaticPlan;

/// The prefix of environment variables that override fields.
pub const ENV_PREFIX: &str = "OSB_BROKER_";

/// The whole configuration.
#[derive(Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub dev_mode: bool,
    pub credentials: Vec<Credential>,
    pub state: StateConfig,
    pub limits: Limits,
    pub catalog: Catalog,
    /// The backend settings of each plan, by plan id.
    pub plan_backends: HashMap<String, PlanBackend>,
    pub postgresql_servers: BTreeMap<String, postgresql::ServerConfig>,
}

/// The file's shape before the catalog and backends are separated.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_listen")]
    listen: SocketAddr,
    #[serde(default)]
    dev_mode: bool,
    #[serde(default)]
    credentials: Vec<RawCredential>,
    #[serde(default)]
    state: StateConfig,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    services: Vec<serde_json::Value>,
    #[serde(default)]
    postgresql: PostgresqlSection,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredential {
    username: String,
    /// A plain password, or a bcrypt or Argon2 hash.
    password: String,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PostgresqlSection {
    #[serde(default)]
    servers: BTreeMap<String, postgresql::ServerConfig>,
}

/// The location and encryption of the broker's state.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// The SQLite database file, created on first start.
    #[serde(default = "default_sqlite_path")]
    pub sqlite: PathBuf,
    /// A Base64-encoded 32-byte key that encrypts stored credentials.
    pub encryption_key: Option<String>,
}

impl std::fmt::Debug for StateConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("StateConfig")
            .field("sqlite", &self.sqlite)
            .field(
                "encryption_key",
                &self.encryption_key.as_ref().map(|_| "***"),
            )
            .finish()
    }
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            sqlite: default_sqlite_path(),
            encryption_key: None,
        }
    }
}

/// Limits on requests and polling.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// The largest request body accepted, in bytes.
    #[serde(default = "default_body_limit")]
    pub max_body_bytes: usize,
    /// The `Retry-After` sent while an operation is in progress, in seconds.
    #[serde(default = "default_retry_after")]
    pub retry_after_seconds: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: default_body_limit(),
            retry_after_seconds: default_retry_after(),
        }
    }
}

/// The backend of one plan, chosen by `backend.type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum PlanBackend {
    Static(StaticPlan),
    Simulated(SimulatedPlan),
    Postgresql(postgresql::PlanConfig),
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_sqlite_path() -> PathBuf {
    PathBuf::from("osb-broker.db")
}

fn default_body_limit() -> usize {
    1024 * 1024
}

fn default_retry_after() -> u64 {
    2
}

/// A configuration that cannot be used, with the file it came from.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration in {file}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub message: String,
}

impl Config {
    /// Reads `path` (`.toml`, `.yaml` or `.yml`) and the environment overrides.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let error = |message: String| ConfigError {
            file: file.clone(),
            message,
        };
        if !path.exists() {
            return Err(error(
                "the file does not exist; pass an existing file to --config, such as examples/quickstart.toml".to_owned(),
            ));
        }

        let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let figment = match extension {
            "toml" => Figment::from(Toml::file(path)),
            "yaml" | "yml" => Figment::from(Yaml::file(path)),
            other => {
                return Err(error(format!(
                    "unknown file type {other:?}; name the file .toml, .yaml or .yml"
                )))
            }
        };
        let raw: RawConfig = figment
            // OSB_BROKER_LOG_FORMAT sets the --log-format option, not a field.
            .merge(
                Env::prefixed(ENV_PREFIX)
                    .ignore(&["log_format"])
                    .split("__"),
            )
            .extract()
            .map_err(|e| error(describe_figment_error(e)))?;
        Config::from_raw(raw).map_err(error)
    }

    fn from_raw(raw: RawConfig) -> Result<Config, String> {
        let credentials = raw
            .credentials
            .into_iter()
            .enumerate()
            .map(|(index, credential)| {
                if credential.username.is_empty() || credential.password.is_empty() {
                    return Err(format!(
                        "credentials[{index}]: username and password must both be non-empty"
                    ));
                }
                Ok(Credential {
                    username: credential.username,
                    password: Password::from_config(&credential.password),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if credentials.is_empty() {
            return Err(
                "credentials: no broker user is configured; add [[credentials]] with a username and password"
                    .to_owned(),
            );
        }

        let mut services = Vec::new();
        let mut plan_backends = HashMap::new();
        for (index, mut value) in raw.services.into_iter().enumerate() {
            let backends = take_plan_backends(&mut value, index)?;
            let offering: ServiceOffering =
                serde_json::from_value(value).map_err(|e| format!("services[{index}]: {e}"))?;
            for (plan_index, backend) in backends.into_iter().enumerate() {
                let plan_id = offering.plans[plan_index].id.clone();
                plan_backends.insert(plan_id, backend);
            }
            services.push(offering);
        }
        if services.is_empty() {
            return Err(
                "services: the catalog is empty; add at least one [[services]] entry with a plan"
                    .to_owned(),
            );
        }

        Ok(Config {
            listen: raw.listen,
            dev_mode: raw.dev_mode,
            credentials,
            state: raw.state,
            limits: raw.limits,
            catalog: Catalog { services },
            plan_backends,
            postgresql_servers: raw.postgresql.servers,
        })
    }
}

/// Removes `backend` from each plan of an offering and parses it.
fn take_plan_backends(
    offering: &mut serde_json::Value,
    index: usize,
) -> Result<Vec<PlanBackend>, String> {
    let plans = offering
        .get_mut("plans")
        .and_then(|plans| plans.as_array_mut())
        .ok_or_else(|| {
            format!("services[{index}].plans: missing; add at least one [[services.plans]]")
        })?;
    plans
        .iter_mut()
        .enumerate()
        .map(|(plan_index, plan)| {
            let path = format!("services[{index}].plans[{plan_index}].backend");
            let backend = plan
                .as_object_mut()
                .and_then(|plan| plan.remove("backend"))
                .ok_or_else(|| {
                    format!("{path}: missing; add backend = {{ type = \"simulated\" }} or another backend type")
                })?;
            serde_json::from_value(backend).map_err(|e| {
                let hint = if e.to_string().contains("unknown variant") {
                    "; known types are static, simulated and postgresql"
                } else {
                    ""
                };
                format!("{path}: {e}{hint}")
            })
        })
        .collect()
}

fn describe_figment_error(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|error| {
            let path = error.path.join(".");
            // A syntax error quotes the offending line, which may hold a
            // password: keep the position and the reason only.
            let kind = error
                .kind
                .to_string()
                .lines()
                .filter(|line| !line.trim_start().starts_with('|') && !line.contains(" | "))
                .collect::<Vec<_>>()
                .join(": ");
            if path.is_empty() {
                kind
            } else {
                format!("{path}: {kind}")
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<Config, String> {
        let raw: RawConfig = Figment::from(Toml::string(toml))
            .extract()
            .map_err(describe_figment_error)?;
        Config::from_raw(raw)
    }

    const MINIMAL: &str = r#"
        [[credentials]]
        username = "admin"
        password = "admin"
        [[services]]
        id = "s1"
        name = "db"
        description = "A database"
        bindable = true
        [[services.plans]]
        id = "p1"
        name = "small"
        description = "Small"
        backend = { type = "simulated", delay_ms = 5 }
    "#;

    #[test]
    fn backend_settings_leave_the_catalog() {
        let config = parse(MINIMAL).unwrap();
        assert!(matches!(
            config.plan_backends["p1"],
            PlanBackend::Simulated(_)
        ));
        let catalog = serde_json::to_value(&config.catalog).unwrap();
        assert!(catalog["services"][0]["plans"][0].get("backend").is_none());
    }

    #[test]
    fn unknown_backend_type_is_named() {
        let error = parse(&MINIMAL.replace("simulated", "oracle")).unwrap_err();
        assert!(error.contains("services[0].plans[0].backend"), "{error}");
        assert!(error.contains("known types"), "{error}");
    }

    #[test]
    fn unknown_top_level_field_is_rejected() {
        let error = parse(&format!("lisen = \"127.0.0.1:1\"\n{MINIMAL}")).unwrap_err();
        assert!(error.contains("lisen"), "{error}");
    }

    #[test]
    fn syntax_errors_do_not_quote_the_line() {
        let error =
            parse("[[credentials]]\nusername = \"a\"\npassword = \"Leak-S3cret\n").unwrap_err();
        assert!(!error.contains("Leak-S3cret"), "{error}");
        assert!(error.contains("line 3"), "{error}");
    }

    #[test]
    fn missing_credentials_are_rejected() {
        let without = MINIMAL.replace(
            "[[credentials]]\n        username = \"admin\"\n        password = \"admin\"",
            "",
        );
        assert!(parse(&without).unwrap_err().starts_with("credentials"));
    }
}
