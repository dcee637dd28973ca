//! `osb fetch instance` and `osb fetch binding`: the broker's GET endpoints.

use serde_json::Value;

use super::catalog::recorded_plan;
use super::instances::platform_of;
use super::Session;
use crate::cli::FetchCommand;
use crate::client::Resource;
use crate::error::{CliError, CliResult};
use crate::output::{print, print_json, render_fields, OutputFormat};

pub async fn run(session: &Session, what: &FetchCommand) -> CliResult<()> {
    match what {
        FetchCommand::Instance { name } => fetch_instance(session, name).await,
        FetchCommand::Binding { name } => fetch_binding(session, name).await,
    }
}

async fn fetch_instance(session: &Session, name: &str) -> CliResult<()> {
    let doing = format!("could not fetch instance {name:?}");
    let instance = session.instance(name)?;
    let catalog = session
        .client
        .catalog()
        .await
        .map_err(|error| error.context(&doing))?;
    let (offering, _) = recorded_plan(&catalog, &instance.service_id, &instance.plan_id)
        .map_err(|error| error.context(&doing))?;
    if offering.instances_retrievable != Some(true) {
        return Err(CliError::usage(format!(
            "{doing}: service offering {:?} is not instances_retrievable",
            offering.name
        )));
    }
    let resource = Resource::instance(&instance.id);
    let body = session
        .client
        .fetch(
            &resource,
            &instance.service_id,
            &instance.plan_id,
            platform_of(&instance),
        )
        .await
        .map_err(|error| CliError::from(error).context(&doing))?;
    print_body(session.output, &body)
}

/// Fetches a binding and stores the response as the binding's credentials.
async fn fetch_binding(session: &Session, name: &str) -> CliResult<()> {
    let doing = format!("could not fetch binding {name:?}");
    let binding = session.binding(name)?;
    let instance = session.instance(&binding.instance_name)?;
    let catalog = session
        .client
        .catalog()
        .await
        .map_err(|error| error.context(&doing))?;
    let (offering, _) = recorded_plan(&catalog, &instance.service_id, &instance.plan_id)
        .map_err(|error| error.context(&doing))?;
    if offering.bindings_retrievable != Some(true) {
        return Err(CliError::usage(format!(
            "{doing}: service offering {:?} is not bindings_retrievable",
            offering.name
        )));
    }
    let resource = Resource::binding(&instance.id, &binding.id);
    let body = session
        .client
        .fetch(
            &resource,
            &instance.service_id,
            &instance.plan_id,
            platform_of(&instance),
        )
        .await
        .map_err(|error| CliError::from(error).context(&doing))?;
    session.record.save_credentials(&binding.id, &body)?;
    print_body(session.output, &body)
}

/// Prints a GET body: as JSON, or one line per top-level field.
fn print_body(output: OutputFormat, body: &Value) -> CliResult<()> {
    if output == OutputFormat::Json {
        return print_json(body);
    }
    let fields: Vec<(&str, String)> = body
        .as_object()
        .map(|object| {
            object
                .iter()
                .map(|(key, value)| {
                    let text = match value {
                        Value::String(text) => text.clone(),
                        other => other.to_string(),
                    };
                    (key.as_str(), text)
                })
                .collect()
        })
        .unwrap_or_default();
    print(&render_fields(&fields))
}
