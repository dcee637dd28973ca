//! One module per command group, and the session they share: the broker
//! client, the local record and the output format.

mod bindings;
mod catalog;
mod credentials;
mod fetch;
mod instances;
mod lifecycle;
mod listing;
mod profiles;

use std::path::Path;

use osbkit_types::JsonObject;
use serde_json::Value;

use crate::cli::{Cli, Command};
use crate::client::BrokerClient;
use crate::error::{CliError, CliResult};
use crate::output::OutputFormat;
use crate::platform::PlatformSettings;
use crate::record::{BindingRow, InstanceRow, Record};
use crate::target::{resolve_settings, OsbHome, Target};

/// The broker client, local record and output format of a command that talks to a broker.
pub struct Session {
    pub client: BrokerClient,
    pub record: Record,
    pub output: OutputFormat,
}

impl Session {
    /// Resolves the target, builds the client and opens the record.
    fn open(cli: &Cli, home: &OsbHome) -> CliResult<Self> {
        let config = home.load_config()?;
        let settings = resolve_settings(&config, &cli.target, &cli.platform)?;
        let target = Target::from_settings(&settings)?;
        let platform = PlatformSettings::from_settings(&settings);
        home.ensure_dir()?;
        let record = Record::open(&home.record_path(), &target.record_key())?;
        let client = BrokerClient::new(target, platform, cli.target.request_timeout)?;
        Ok(Self {
            client,
            record,
            output: cli.output,
        })
    }

    /// Looks up an instance by name in the record.
    pub fn instance(&self, name: &str) -> CliResult<InstanceRow> {
        self.record.instance_by_name(name)?.ok_or_else(|| {
            CliError::usage(format!("instance {name:?} not found in the local record"))
                .with_hint("list the instances with `osb instances`")
        })
    }

    /// Looks up a binding by name in the record.
    pub fn binding(&self, name: &str) -> CliResult<BindingRow> {
        self.record.binding_by_name(name)?.ok_or_else(|| {
            CliError::usage(format!("binding {name:?} not found in the local record"))
                .with_hint("list the bindings with `osb bindings`")
        })
    }
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> CliResult<()> {
    // `osb check` uses no local record.
    if let Command::Check(args) = &cli.command {
        return crate::check::run(&cli, args).await;
    }
    let home = OsbHome::from_env()?;
    if let Command::Profile { action } = &cli.command {
        return profiles::run(&cli, &home, action);
    }
    let session = Session::open(&cli, &home)?;

    match &cli.command {
        Command::Catalog => catalog::show(&session).await,
        Command::Provision {
            service,
            plan,
            name,
            parameters,
            operation,
        } => {
            instances::provision(
                &session,
                service,
                plan,
                name,
                parameters.as_deref(),
                operation,
            )
            .await
        }
        Command::Update {
            name,
            plan,
            parameters,
            operation,
        } => {
            instances::update(
                &session,
                name,
                plan.as_deref(),
                parameters.as_deref(),
                operation,
            )
            .await
        }
        Command::Upgrade { name, operation } => instances::upgrade(&session, name, operation).await,
        Command::Deprovision {
            name,
            purge,
            operation,
        } => instances::deprovision(&session, name, *purge, operation).await,
        Command::Bind {
            instance,
            name,
            parameters,
            app,
            operation,
        } => {
            let request = bindings::BindArgs {
                instance,
                name,
                parameters: parameters.as_deref(),
                app: app.as_deref(),
            };
            bindings::bind(&session, &request, operation).await
        }
        Command::Unbind {
            binding,
            purge,
            operation,
        } => bindings::unbind(&session, binding, *purge, operation).await,
        Command::Rotate { binding, operation } => {
            bindings::rotate(&session, binding, operation).await
        }
        Command::Credentials {
            binding,
            format,
            directory,
            secret_encoding,
            refresh,
        } => {
            let request = credentials::CredentialsArgs {
                binding,
                format: *format,
                directory: directory.as_deref(),
                secret_encoding: *secret_encoding,
                refresh: *refresh,
            };
            credentials::show(&session, &request).await
        }
        Command::Instances => listing::instances(&session),
        Command::Bindings { instance } => listing::bindings(&session, instance.as_deref()),
        Command::Show { name } => listing::show(&session, name),
        Command::Fetch { what } => fetch::run(&session, what).await,
        Command::Profile { .. } => unreachable!("handled before the session opens"),
        Command::Check(_) => unreachable!("handled before the session opens"),
    }
}

/// Reads `-c`: a JSON object, or the path of a file that contains one.
/// Parse errors name the position, never the content, which may hold secrets.
pub fn parse_parameters(argument: &str) -> CliResult<JsonObject> {
    let trimmed = argument.trim_start();
    let (text, source) = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        (argument.to_owned(), "-c".to_owned())
    } else {
        let path = Path::new(argument);
        let text = std::fs::read_to_string(path).map_err(|error| {
            CliError::usage(format!(
                "could not read parameters file {}: {error}",
                path.display()
            ))
            .with_hint("-c takes a JSON object such as '{\"size\":2}' or the path of a JSON file")
        })?;
        (text, path.display().to_string())
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(CliError::usage(format!(
            "invalid parameters in {source}: expected a JSON object"
        ))),
        Err(error) => Err(CliError::usage(format!(
            "invalid JSON in {source}: {error}"
        ))),
    }
}

/// Rejects names that would be awkward in tables, shells and file names.
pub fn check_name(kind: &str, name: &str) -> CliResult<()> {
    let valid = !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name != "."
        && name != "..";
    if valid {
        Ok(())
    } else {
        Err(CliError::usage(format!("invalid {kind} name {name:?}"))
            .with_hint("use letters, digits, '-', '_' and '.', at most 255 characters"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_parameters_parse() {
        let parameters = parse_parameters(r#"{"size": 2}"#).unwrap();
        assert_eq!(parameters["size"], 2);
    }

    #[test]
    fn parameters_file_parses() {
        let path = std::env::temp_dir().join(format!("osb-params-{}.json", uuid::Uuid::new_v4()));
        std::fs::write(&path, r#"{"tier": "gold"}"#).unwrap();
        let parameters = parse_parameters(path.to_str().unwrap()).unwrap();
        assert_eq!(parameters["tier"], "gold");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn invalid_parameters_not_echoed() {
        let error = parse_parameters(r#"{"password": "hunter2""#).unwrap_err();
        assert!(!error.message.contains("hunter2"));
        assert!(parse_parameters("[1, 2]").is_err());
        assert!(parse_parameters("/nonexistent/params.json").is_err());
    }

    #[test]
    fn names_checked() {
        assert!(check_name("instance", "orders-db.v2").is_ok());
        assert!(check_name("instance", "").is_err());
        assert!(check_name("instance", "a b").is_err());
        assert!(check_name("instance", "..").is_err());
        assert!(check_name("instance", "a/b").is_err());
    }
}
