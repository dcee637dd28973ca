//! `osb credentials`: a binding's credentials in the format an application expects.

use std::path::Path;

use serde_json::Value;

use super::bindings::fetch_credentials;
use super::Session;
use crate::cli::SecretEncoding;
use crate::client::progress::Progress;
use crate::credentials_format::{BindingCredentials, CredentialsFormat};
use crate::error::{CliError, CliResult};
use crate::output::{print, print_json};
use crate::platform::PlatformKind;

/// The arguments of `osb credentials`.
pub struct CredentialsArgs<'a> {
    pub binding: &'a str,
    pub format: CredentialsFormat,
    pub directory: Option<&'a Path>,
    pub secret_encoding: SecretEncoding,
    pub refresh: bool,
}

pub async fn show(session: &Session, args: &CredentialsArgs<'_>) -> CliResult<()> {
    let doing = format!("could not show the credentials of {:?}", args.binding);
    let binding = session.binding(args.binding)?;
    let instance = session
        .record
        .instance_by_id(&binding.instance_id)?
        .ok_or_else(|| {
            CliError::usage(format!(
                "the instance of binding {:?} is missing from the local record",
                args.binding
            ))
        })?;
    if args.directory.is_some() && args.format != CredentialsFormat::Servicebinding {
        return Err(CliError::usage(
            "DIR is only used with --format servicebinding",
        ));
    }

    let mut response = session.record.credentials(&binding.id)?;
    if args.refresh || response.is_none() {
        let progress = Progress::hidden();
        response = fetch_credentials(session, &instance, &binding.id, &progress)
            .await?
            .or(response);
    }
    let Some(Value::Object(response)) = response else {
        return Err(CliError::failed(format!(
            "{doing}: no credentials found for it in the local record"
        ))
        .with_hint("the broker returned none; check `osb fetch binding NAME`"));
    };

    let namespace = match PlatformKind::of_context(&instance.context) {
        Some(PlatformKind::Kubernetes) => instance
            .context
            .get("namespace")
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ => None,
    };
    let credentials = BindingCredentials {
        binding_name: binding.name.clone(),
        binding_id: binding.id.clone(),
        instance_name: instance.name.clone(),
        instance_id: instance.id.clone(),
        service_name: instance.service_name.clone(),
        plan_name: instance.plan_name.clone(),
        tags: instance.tags.clone(),
        provider: instance.provider.clone(),
        namespace,
        response,
    };

    match args.format {
        CredentialsFormat::Json => print_json(&credentials.credentials()),
        CredentialsFormat::Vcap => print_json(&credentials.to_vcap_services()),
        CredentialsFormat::Env => {
            let lines = credentials
                .to_env_lines()
                .map_err(|problem| CliError::failed(format!("{doing}: {problem}")))?;
            print(&lines)
        }
        CredentialsFormat::K8sSecret => {
            let manifest = credentials
                .to_kubernetes_secret(args.secret_encoding)
                .map_err(|problem| CliError::failed(format!("{doing}: {problem}")))?;
            print(&manifest)
        }
        CredentialsFormat::Servicebinding => {
            let root = args.directory.ok_or_else(|| {
                CliError::usage("--format servicebinding needs a DIR").with_hint(
                    "the files go to DIR/<binding name>/, as under $SERVICE_BINDING_ROOT",
                )
            })?;
            let directory = credentials
                .write_servicebinding_dir(root)
                .map_err(|problem| CliError::usage(format!("{doing}: {problem}")))?;
            print(&format!("{}\n", directory.display()))
        }
    }
}
