//! `osb catalog`, and resolving offering and plan names through the catalog.

use osbkit_types::{Catalog, ServiceOffering, ServicePlan};

use super::Session;
use crate::error::{CliError, CliResult};
use crate::output::{print, print_json, OutputFormat, Table};

/// Prints the offerings and their plans, or the raw catalog with `--output json`.
pub async fn show(session: &Session) -> CliResult<()> {
    let catalog = session.client.catalog().await?;
    if session.output == OutputFormat::Json {
        return print_json(&catalog);
    }
    let mut table = Table::new(&[
        "service",
        "plan",
        "free",
        "bindable",
        "updateable",
        "rotatable",
        "maintenance",
        "description",
    ]);
    for offering in &catalog.services {
        for plan in &offering.plans {
            table.push(vec![
                offering.name.clone(),
                plan.name.clone(),
                yes_no(plan.free.unwrap_or(true)),
                yes_no(offering.plan_bindable(plan)),
                yes_no(offering.plan_updateable(plan)),
                yes_no(plan.binding_rotatable.unwrap_or(false)),
                plan.maintenance_info
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |info| info.version.clone()),
                plan.description.clone(),
            ]);
        }
    }
    print(&table.render())
}

fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_owned()
}

/// Finds an offering by name (case-sensitive, as the specification compares
/// names) or by id.
pub fn find_offering<'a>(catalog: &'a Catalog, name: &str) -> CliResult<&'a ServiceOffering> {
    catalog
        .services
        .iter()
        .find(|offering| offering.name == name)
        .or_else(|| catalog.offering(name))
        .ok_or_else(|| {
            let names: Vec<&str> = catalog
                .services
                .iter()
                .map(|offering| offering.name.as_str())
                .collect();
            CliError::usage(format!(
                "service offering {name:?} not found in the catalog"
            ))
            .with_hint(format!("the broker offers: {}", names.join(", ")))
        })
}

/// Finds a plan of an offering by name or by id.
pub fn find_plan<'a>(offering: &'a ServiceOffering, name: &str) -> CliResult<&'a ServicePlan> {
    offering
        .plans
        .iter()
        .find(|plan| plan.name == name)
        .or_else(|| offering.plan(name))
        .ok_or_else(|| {
            let names: Vec<&str> = offering
                .plans
                .iter()
                .map(|plan| plan.name.as_str())
                .collect();
            CliError::usage(format!(
                "plan {name:?} not found in service offering {:?}",
                offering.name
            ))
            .with_hint(format!("its plans are: {}", names.join(", ")))
        })
}

/// Finds the recorded offering and plan of an instance in a fresh catalog.
pub fn recorded_plan<'a>(
    catalog: &'a Catalog,
    service_id: &str,
    plan_id: &str,
) -> CliResult<(&'a ServiceOffering, &'a ServicePlan)> {
    let offering = catalog.offering(service_id).ok_or_else(|| {
        CliError::failed(format!(
            "service offering {service_id} is no longer in the broker's catalog"
        ))
    })?;
    let plan = offering.plan(plan_id).ok_or_else(|| {
        CliError::failed(format!(
            "plan {plan_id} is no longer in the broker's catalog"
        ))
    })?;
    Ok((offering, plan))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        serde_json::from_value(serde_json::json!({
            "services": [{
                "id": "svc-id", "name": "db", "description": "d", "bindable": true,
                "plans": [
                    { "id": "plan-small", "name": "small", "description": "s" },
                    { "id": "plan-large", "name": "Large", "description": "l" }
                ]
            }]
        }))
        .unwrap()
    }

    #[test]
    fn offering_found_by_name_or_id() {
        let catalog = catalog();
        assert_eq!(find_offering(&catalog, "db").unwrap().id, "svc-id");
        assert_eq!(find_offering(&catalog, "svc-id").unwrap().name, "db");
        let error = find_offering(&catalog, "DB").unwrap_err();
        assert!(error.hint.unwrap().contains("db"));
    }

    #[test]
    fn plan_names_case_sensitive() {
        let catalog = catalog();
        let offering = find_offering(&catalog, "db").unwrap();
        assert_eq!(find_plan(offering, "Large").unwrap().id, "plan-large");
        assert!(find_plan(offering, "large").is_err());
        assert_eq!(find_plan(offering, "plan-small").unwrap().name, "small");
    }
}
