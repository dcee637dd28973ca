//! `osb instances`, `osb bindings` and `osb show`, read from the local record only.

use serde_json::json;

use super::Session;
use crate::clock::format_unix;
use crate::error::{CliError, CliResult};
use crate::output::{or_dash, print, print_json, render_fields, OutputFormat, Table};
use crate::record::{BindingRow, InstanceRow, OperationRow};

pub fn instances(session: &Session) -> CliResult<()> {
    let rows = session.record.instances()?;
    if session.output == OutputFormat::Json {
        return print_json(&rows);
    }
    let mut table = Table::new(&["name", "service", "plan", "state", "maintenance", "id"]);
    for row in &rows {
        let state = if row.usable {
            row.state.clone()
        } else {
            format!("{} (unusable)", row.state)
        };
        table.push(vec![
            row.name.clone(),
            row.service_name.clone(),
            row.plan_name.clone(),
            state,
            or_dash(row.maintenance_version.as_deref()),
            row.id.clone(),
        ]);
    }
    print(&table.render())
}

pub fn bindings(session: &Session, instance: Option<&str>) -> CliResult<()> {
    let instance_id = match instance {
        Some(name) => Some(session.instance(name)?.id),
        None => None,
    };
    let rows = session.record.bindings(instance_id.as_deref())?;
    if session.output == OutputFormat::Json {
        return print_json(&rows);
    }
    let mut table = Table::new(&["name", "instance", "state", "predecessor", "id"]);
    for row in &rows {
        table.push(vec![
            row.name.clone(),
            row.instance_name.clone(),
            row.state.clone(),
            or_dash(row.predecessor_id.as_deref()),
            row.id.clone(),
        ]);
    }
    print(&table.render())
}

/// Shows an instance, else a binding, of that name.
pub fn show(session: &Session, name: &str) -> CliResult<()> {
    if let Some(instance) = session.record.instance_by_name(name)? {
        let bindings = session.record.bindings(Some(&instance.id))?;
        let operations = session.record.operations_for(&instance.id)?;
        return show_instance(session.output, &instance, &bindings, &operations);
    }
    if let Some(binding) = session.record.binding_by_name(name)? {
        let operations = session.record.operations_for(&binding.id)?;
        return show_binding(session.output, &binding, &operations);
    }
    Err(CliError::usage(format!(
        "no instance or binding named {name:?} in the local record"
    ))
    .with_hint("list them with `osb instances` and `osb bindings`"))
}

fn show_instance(
    output: OutputFormat,
    instance: &InstanceRow,
    bindings: &[BindingRow],
    operations: &[OperationRow],
) -> CliResult<()> {
    if output == OutputFormat::Json {
        return print_json(
            &json!({ "instance": instance, "bindings": bindings, "operations": operations }),
        );
    }
    let binding_names: Vec<&str> = bindings
        .iter()
        .map(|binding| binding.name.as_str())
        .collect();
    let mut text = render_fields(&[
        ("name", instance.name.clone()),
        ("id", instance.id.clone()),
        (
            "service",
            format!("{} ({})", instance.service_name, instance.service_id),
        ),
        (
            "plan",
            format!("{} ({})", instance.plan_name, instance.plan_id),
        ),
        ("state", instance.state.clone()),
        (
            "usable",
            if instance.usable { "yes" } else { "no" }.to_owned(),
        ),
        (
            "maintenance",
            or_dash(instance.maintenance_version.as_deref()),
        ),
        ("dashboard", or_dash(instance.dashboard_url.as_deref())),
        ("bindings", or_dash(Some(&binding_names.join(", ")))),
        ("created", format_unix(instance.created_at)),
        ("updated", format_unix(instance.updated_at)),
    ]);
    text.push_str(&operations_table(operations));
    print(&text)
}

fn show_binding(
    output: OutputFormat,
    binding: &BindingRow,
    operations: &[OperationRow],
) -> CliResult<()> {
    if output == OutputFormat::Json {
        return print_json(&json!({ "binding": binding, "operations": operations }));
    }
    let mut text = render_fields(&[
        ("name", binding.name.clone()),
        ("id", binding.id.clone()),
        (
            "instance",
            format!("{} ({})", binding.instance_name, binding.instance_id),
        ),
        ("state", binding.state.clone()),
        ("predecessor", or_dash(binding.predecessor_id.as_deref())),
        ("created", format_unix(binding.created_at)),
        ("updated", format_unix(binding.updated_at)),
    ]);
    text.push_str(&operations_table(operations));
    print(&text)
}

fn operations_table(operations: &[OperationRow]) -> String {
    if operations.is_empty() {
        return String::new();
    }
    let mut table = Table::new(&["operation", "state", "started", "finished", "description"]);
    for operation in operations {
        table.push(vec![
            operation.kind.clone(),
            operation.state.clone(),
            format_unix(operation.started_at),
            operation
                .finished_at
                .map_or_else(|| "-".to_owned(), format_unix),
            or_dash(operation.description.as_deref()),
        ]);
    }
    format!("\n{}", table.render())
}
