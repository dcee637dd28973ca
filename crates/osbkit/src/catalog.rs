//! The catalog: checked once at start-up, then served from memory.
//!
//! [`CatalogIndex::new`] checks every catalog rule of the specification:
//! unique non-empty ids and names, CLI-friendly names, allowed `requires`
//! values, SemVer maintenance versions, and JSON Schemas with `$schema`, no
//! external `$ref` and at most 64 kB. It also compiles each plan's schemas,
//! so that a request never meets a broken catalog.

use std::collections::{HashMap, HashSet};

use jsonschema::Validator;
use osbkit_types::{Catalog, JsonObject, ServiceOffering, ServicePlan};
use serde_json::Value;

/// The largest schema the specification allows, in bytes of JSON.
const MAX_SCHEMA_BYTES: usize = 64 * 1024;

/// The only values the specification allows in `requires`.
const ALLOWED_REQUIRES: [&str; 3] = ["syslog_drain", "route_forwarding", "volume_mount"];

/// The operation whose parameters a schema checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaUse {
    Provision,
    Update,
    Bind,
}

/// A plan with its offering and its compiled schemas.
pub struct PlanEntry {
    pub offering: ServiceOffering,
    pub plan: ServicePlan,
    provision_schema: Option<Validator>,
    update_schema: Option<Validator>,
    bind_schema: Option<Validator>,
}

impl PlanEntry {
    /// Checks parameters against the plan's schema for `schema_use`, if it
    /// has one. The error names each failing field and why, without the
    /// value, which may be secret.
    pub fn validate(&self, schema_use: SchemaUse, parameters: &JsonObject) -> Result<(), String> {
        let validator = match schema_use {
            SchemaUse::Provision => &self.provision_schema,
            SchemaUse::Update => &self.update_schema,
            SchemaUse::Bind => &self.bind_schema,
        };
        let Some(validator) = validator else {
            return Ok(());
        };

        let instance = Value::Object(parameters.clone());
        let problems: Vec<String> = validator
            .iter_errors(&instance)
            .take(5)
            .map(|error| {
                let path = error.instance_path().to_string();
                let field = if path.is_empty() {
                    "parameters".to_owned()
                } else {
                    format!("parameters{}", path.replace('/', "."))
                };
                format!("{field}: {}", error.masked())
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "invalid parameters for plan \"{}\": {}",
                self.plan.name,
                problems.join("; ")
            ))
        }
    }

    /// Returns whether the plan can be bound.
    pub fn bindable(&self) -> bool {
        self.offering.plan_bindable(&self.plan)
    }
}

/// The catalog with its plans indexed by id.
pub struct CatalogIndex {
    catalog: Catalog,
    json: bytes::Bytes,
    plans: HashMap<String, PlanEntry>,
}

impl CatalogIndex {
    /// Checks the catalog and compiles its schemas. The error lists every
    /// problem, each with the path of the field at fault.
    pub fn new(catalog: Catalog) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        check_catalog(&catalog, &mut problems);

        let mut plans = HashMap::new();
        for (offering_index, offering) in catalog.services.iter().enumerate() {
            for (plan_index, plan) in offering.plans.iter().enumerate() {
                let path = format!("services[{offering_index}].plans[{plan_index}]");
                let entry = compile_plan(offering, plan, &path, &mut problems);
                plans.insert(plan.id.clone(), entry);
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }

        let json = serde_json::to_vec(&catalog).expect("a catalog always serializes");
        Ok(CatalogIndex {
            catalog,
            json: json.into(),
            plans,
        })
    }

    /// Returns the catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Returns the catalog as the JSON body of `GET /v2/catalog`.
    pub fn json(&self) -> bytes::Bytes {
        self.json.clone()
    }

    /// Returns the plan with this id, checking that it belongs to `service_id`.
    pub fn plan(&self, service_id: &str, plan_id: &str) -> Result<&PlanEntry, String> {
        let Some(offering) = self.catalog.offering(service_id) else {
            return Err(format!(
                "unknown service_id {service_id:?}: it is not in this broker's catalog"
            ));
        };
        match self.plans.get(plan_id) {
            Some(entry) if entry.offering.id == offering.id => Ok(entry),
            Some(_) => Err(format!(
                "plan_id {plan_id:?} does not belong to service offering {:?}",
                offering.name
            )),
            None => Err(format!(
                "unknown plan_id {plan_id:?}: service offering {:?} has no such plan",
                offering.name
            )),
        }
    }

    /// Returns the plan with this id, whatever its offering.
    pub fn plan_by_id(&self, plan_id: &str) -> Option<&PlanEntry> {
        self.plans.get(plan_id)
    }
}

fn compile_plan(
    offering: &ServiceOffering,
    plan: &ServicePlan,
    path: &str,
    problems: &mut Vec<String>,
) -> PlanEntry {
    let schemas = plan.schemas.as_ref();
    let instance = schemas.and_then(|s| s.service_instance.as_ref());
    let provision = instance
        .and_then(|s| s.create.as_ref())
        .and_then(|s| s.parameters.as_ref());
    let update = instance
        .and_then(|s| s.update.as_ref())
        .and_then(|s| s.parameters.as_ref());
    let bind = schemas
        .and_then(|s| s.service_binding.as_ref())
        .and_then(|s| s.create.as_ref())
        .and_then(|s| s.parameters.as_ref());

    let mut compile = |schema: Option<&Value>, field: &str| -> Option<Validator> {
        let schema = schema?;
        let field = format!("{path}.schemas.{field}.parameters");
        compile_schema(schema, &field, problems)
    };
    PlanEntry {
        offering: offering.clone(),
        plan: plan.clone(),
        provision_schema: compile(provision, "service_instance.create"),
        update_schema: compile(update, "service_instance.update"),
        bind_schema: compile(bind, "service_binding.create"),
    }
}

fn compile_schema(schema: &Value, field: &str, problems: &mut Vec<String>) -> Option<Validator> {
    if !schema.is_object() {
        problems.push(format!("{field}: a JSON Schema must be an object"));
        return None;
    }
    if schema.get("$schema").and_then(Value::as_str).is_none() {
        problems.push(format!(
            "{field}: the schema has no \"$schema\" key; add one such as \"http://json-schema.org/draft-07/schema#\""
        ));
    }
    let size = serde_json::to_vec(schema)
        .map(|bytes| bytes.len())
        .unwrap_or(0);
    if size > MAX_SCHEMA_BYTES {
        problems.push(format!(
            "{field}: the schema is {size} bytes; the specification allows at most {MAX_SCHEMA_BYTES}"
        ));
    }
    if let Some(reference) = find_external_ref(schema) {
        problems.push(format!(
            "{field}: \"$ref\": {reference:?} points outside the schema; only local references starting with '#' are allowed"
        ));
        return None;
    }
    match jsonschema::validator_for(schema) {
        Ok(validator) => Some(validator),
        Err(error) => {
            problems.push(format!("{field}: invalid JSON Schema: {error}"));
            None
        }
    }
}

fn find_external_ref(schema: &Value) -> Option<String> {
    match schema {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                if !reference.starts_with('#') {
                    return Some(reference.clone());
                }
            }
            map.values().find_map(find_external_ref)
        }
        Value::Array(items) => items.iter().find_map(find_external_ref),
        _ => None,
    }
}

fn check_catalog(catalog: &Catalog, problems: &mut Vec<String>) {
    let mut offering_ids = HashSet::new();
    let mut offering_names = HashSet::new();
    let mut plan_ids = HashSet::new();

    for (index, offering) in catalog.services.iter().enumerate() {
        let path = format!("services[{index}]");
        check_id(&offering.id, &path, &mut offering_ids, problems);
        check_name(&offering.name, &path, &mut offering_names, problems);
        check_description(&offering.description, &path, problems);
        for value in &offering.requires {
            if !ALLOWED_REQUIRES.contains(&value.as_str()) {
                problems.push(format!(
                    "{path}.requires: {value:?} is not allowed; use syslog_drain, route_forwarding or volume_mount"
                ));
            }
        }
        if let Some(client) = &offering.dashboard_client {
            if client.id.is_empty() || client.secret.is_empty() {
                problems.push(format!(
                    "{path}.dashboard_client: id and secret must both be non-empty"
                ));
            }
        }
        if offering.plans.is_empty() {
            problems.push(format!("{path}.plans: an offering needs at least one plan"));
        }

        let mut plan_names = HashSet::new();
        for (plan_index, plan) in offering.plans.iter().enumerate() {
            let path = format!("{path}.plans[{plan_index}]");
            // Offering and plan ids share one namespace, because both must be globally unique.
            if offering_ids.contains(&plan.id) {
                problems.push(format!(
                    "{path}.id: {:?} is also an offering id; ids must be globally unique",
                    plan.id
                ));
            }
            check_id(&plan.id, &path, &mut plan_ids, problems);
            check_name(&plan.name, &path, &mut plan_names, problems);
            check_description(&plan.description, &path, problems);
            if let Some(info) = &plan.maintenance_info {
                if !is_semver(&info.version) {
                    problems.push(format!(
                        "{path}.maintenance_info.version: {:?} is not a SemVer 2.0 version such as \"1.2.3\"",
                        info.version
                    ));
                }
            }
        }
    }
}

fn check_id(id: &str, path: &str, seen: &mut HashSet<String>, problems: &mut Vec<String>) {
    if id.trim().is_empty() {
        problems.push(format!(
            "{path}.id: must not be empty; a GUID is recommended"
        ));
    } else if !seen.insert(id.to_owned()) {
        problems.push(format!(
            "{path}.id: {id:?} is used twice; ids must be unique"
        ));
    }
}

fn check_name(name: &str, path: &str, seen: &mut HashSet<String>, problems: &mut Vec<String>) {
    if name.is_empty() {
        problems.push(format!("{path}.name: must not be empty"));
        return;
    }
    if !is_cli_friendly(name) {
        problems.push(format!(
            "{path}.name: {name:?} is not CLI-friendly; use only letters, digits, '.' and '-'"
        ));
    }
    if !seen.insert(name.to_owned()) {
        problems.push(format!(
            "{path}.name: {name:?} is used twice; names must be unique"
        ));
    }
}

fn check_description(description: &str, path: &str, problems: &mut Vec<String>) {
    if description.trim().is_empty() {
        problems.push(format!("{path}.description: must not be empty"));
    }
}

/// Returns whether a name uses only ASCII letters, digits, `.` and `-`, and
/// has at least one letter or digit.
pub fn is_cli_friendly(name: &str) -> bool {
    name.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && name.chars().any(|c| c.is_ascii_alphanumeric())
}

/// Returns whether `version` is a SemVer 2.0 version.
pub fn is_semver(version: &str) -> bool {
    let (version, build) = match version.split_once('+') {
        Some((version, build)) => (version, Some(build)),
        None => (version, None),
    };
    let (core, pre_release) = match version.split_once('-') {
        Some((core, pre_release)) => (core, Some(pre_release)),
        None => (version, None),
    };

    let numbers: Vec<&str> = core.split('.').collect();
    let numbers_valid = numbers.len() == 3
        && numbers.iter().all(|number| {
            !number.is_empty()
                && number.chars().all(|c| c.is_ascii_digit())
                && (number.len() == 1 || !number.starts_with('0'))
        });
    let identifiers_valid = |text: Option<&str>| {
        text.is_none_or(|text| {
            text.split('.').all(|identifier| {
                !identifier.is_empty()
                    && identifier
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
        })
    };
    numbers_valid && identifiers_valid(pre_release) && identifiers_valid(build)
}

#[cfg(test)]
mod tests {
    use super::*;
    use osbkit_types::{InputParametersSchema, MaintenanceInfo, Schemas, ServiceInstanceSchemas};
    use serde_json::json;

    fn offering(id: &str, name: &str, plans: Vec<ServicePlan>) -> ServiceOffering {
        ServiceOffering {
            id: id.to_owned(),
            name: name.to_owned(),
            description: "a service".to_owned(),
            bindable: true,
            plans,
            ..Default::default()
        }
    }

    fn plan(id: &str, name: &str) -> ServicePlan {
        ServicePlan {
            id: id.to_owned(),
            name: name.to_owned(),
            description: "a plan".to_owned(),
            ..Default::default()
        }
    }

    fn with_schema(mut plan: ServicePlan, schema: Value) -> ServicePlan {
        plan.schemas = Some(Schemas {
            service_instance: Some(ServiceInstanceSchemas {
                create: Some(InputParametersSchema {
                    parameters: Some(schema),
                }),
                update: None,
            }),
            service_binding: None,
        });
        plan
    }

    #[test]
    fn duplicate_ids_and_names_are_named() {
        let catalog = Catalog {
            services: vec![
                offering("s1", "db", vec![plan("p1", "small")]),
                offering("s1", "db", vec![plan("p1", "small"), plan("p2", "small")]),
            ],
        };
        let problems = CatalogIndex::new(catalog).err().unwrap();
        assert!(problems.iter().any(|p| p.starts_with("services[1].id")));
        assert!(problems.iter().any(|p| p.starts_with("services[1].name")));
        assert!(problems
            .iter()
            .any(|p| p.starts_with("services[1].plans[0].id")));
        assert!(problems
            .iter()
            .any(|p| p.starts_with("services[1].plans[1].name")));
    }

    #[test]
    fn names_must_be_cli_friendly() {
        assert!(is_cli_friendly("my-db.v2"));
        assert!(!is_cli_friendly("my db"));
        assert!(!is_cli_friendly("db_1"));
        assert!(!is_cli_friendly("-"));
        let catalog = Catalog {
            services: vec![offering("s1", "my db", vec![plan("p1", "small")])],
        };
        assert!(CatalogIndex::new(catalog).is_err());
    }

    #[test]
    fn semver_versions_are_checked() {
        for valid in ["1.0.0", "0.10.2-rc.1", "2.0.0+build.5", "1.2.3-alpha-1"] {
            assert!(is_semver(valid), "{valid}");
        }
        for invalid in ["1.0", "01.0.0", "1.0.0-", "v1.0.0", "1.0.0-a..b"] {
            assert!(!is_semver(invalid), "{invalid}");
        }
        let mut bad = plan("p1", "small");
        bad.maintenance_info = Some(MaintenanceInfo {
            version: "1.0".to_owned(),
            description: None,
        });
        let catalog = Catalog {
            services: vec![offering("s1", "db", vec![bad])],
        };
        assert!(CatalogIndex::new(catalog).is_err());
    }

    #[test]
    fn schemas_need_dollar_schema_and_local_refs() {
        let missing = with_schema(plan("p1", "a"), json!({"type": "object"}));
        let external = with_schema(
            plan("p2", "b"),
            json!({"$schema": "http://json-schema.org/draft-07/schema#", "$ref": "http://example.test/s.json"}),
        );
        let catalog = Catalog {
            services: vec![offering("s1", "db", vec![missing, external])],
        };
        let problems = CatalogIndex::new(catalog).err().unwrap();
        assert!(problems.iter().any(|p| p.contains("\"$schema\"")));
        assert!(problems
            .iter()
            .any(|p| p.contains("points outside the schema")));
    }

    #[test]
    fn validation_names_field_without_value() {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {"size": {"type": "integer", "maximum": 10}},
            "additionalProperties": false
        });
        let catalog = Catalog {
            services: vec![offering(
                "s1",
                "db",
                vec![with_schema(plan("p1", "small"), schema)],
            )],
        };
        let index = CatalogIndex::new(catalog).unwrap();
        let entry = index.plan("s1", "p1").unwrap();

        let mut parameters = JsonObject::new();
        parameters.insert("size".to_owned(), json!(987654));
        let error = entry
            .validate(SchemaUse::Provision, &parameters)
            .unwrap_err();
        assert!(error.contains("parameters.size"), "{error}");
        assert!(!error.contains("987654"), "{error}");

        parameters.insert("size".to_owned(), json!(3));
        assert!(entry.validate(SchemaUse::Provision, &parameters).is_ok());
    }
}
