//! Response bodies checked against the schemas of the official OpenAPI
//! description of the API (v2.17), copied into `spec/openapi.yaml` at the
//! repository root with its license.
//!
//! The OpenAPI file is looser than the specification text in most places,
//! and stricter in a few: where the specification allows a value that the
//! OpenAPI schema rejects, the schema is widened here, so that no broker
//! fails for what the specification allows.

use std::sync::OnceLock;

use serde_json::{json, Value};

/// The OpenAPI description, unmodified.
const OPENAPI_YAML: &str = include_str!("../../../../spec/openapi.yaml");

/// A schema under `components.schemas` of the OpenAPI description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodySchema {
    Catalog,
    ProvisionResponse,
    ProvisionAsync,
    /// The body of a 200 from update, deprovision and unbind.
    Object,
    AsyncOperation,
    InstanceResource,
    LastOperation,
    BindingResponse,
    BindingResource,
    Error,
}

impl BodySchema {
    fn component(self) -> &'static str {
        match self {
            BodySchema::Catalog => "Catalog",
            BodySchema::ProvisionResponse => "ServiceInstanceProvisionResponse",
            BodySchema::ProvisionAsync => "ServiceInstanceAsyncOperation",
            BodySchema::Object => "Object",
            BodySchema::AsyncOperation => "AsyncOperation",
            BodySchema::InstanceResource => "ServiceInstanceResource",
            BodySchema::LastOperation => "LastOperationResource",
            BodySchema::BindingResponse => "ServiceBindingResponse",
            BodySchema::BindingResource => "ServiceBindingResource",
            BodySchema::Error => "Error",
        }
    }
}

/// Returns `components` of the OpenAPI description, widened where the
/// specification allows more.
fn components() -> &'static Value {
    static COMPONENTS: OnceLock<Value> = OnceLock::new();
    COMPONENTS.get_or_init(|| {
        let document: Value = serde_yaml::from_str(OPENAPI_YAML)
            .expect("spec/openapi.yaml is valid YAML, because it is embedded at build time");
        let mut components = document
            .get("components")
            .cloned()
            .expect("spec/openapi.yaml has a components section");
        widen_to_specification(&mut components);
        components
    })
}

/// Applies the specification's allowances that the OpenAPI schemas lack.
fn widen_to_specification(components: &mut Value) {
    let schemas = &mut components["schemas"];
    // The specification allows `dashboard_url: null` in provision and update
    // responses, and `operation: null` in a provision response.
    for (schema, property) in [
        ("ServiceInstanceProvisionResponse", "dashboard_url"),
        ("ServiceInstanceAsyncOperation", "dashboard_url"),
        ("ServiceInstanceAsyncOperation", "operation"),
        ("ServiceInstanceResource", "dashboard_url"),
    ] {
        if let Some(definition) = schemas.pointer_mut(&format!("/{schema}/properties/{property}")) {
            definition["type"] = json!(["string", "null"]);
        }
    }
}

/// Validates a body against a schema and returns the problems, each naming
/// the JSON path of the value at fault.
pub fn validate(schema: BodySchema, body: &Value) -> Vec<String> {
    let root = json!({
        "$ref": format!("#/components/schemas/{}", schema.component()),
        "components": components(),
    });
    let validator = match jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .build(&root)
    {
        Ok(validator) => validator,
        Err(error) => {
            return vec![format!(
                "internal error: the {} schema does not compile: {error}",
                schema.component()
            )]
        }
    };
    validator
        .iter_errors(body)
        .map(|error| {
            let path = error.instance_path().to_string();
            let path = if path.is_empty() {
                "/".to_owned()
            } else {
                path
            };
            format!("{path}: {error} (OpenAPI schema {})", schema.component())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_compiles_and_accepts_example() {
        let cases = [
            (BodySchema::Catalog, json!({"services": []})),
            (
                BodySchema::ProvisionResponse,
                json!({"dashboard_url": null}),
            ),
            (BodySchema::ProvisionAsync, json!({"operation": null})),
            (BodySchema::Object, json!({})),
            (BodySchema::AsyncOperation, json!({"operation": "op-1"})),
            (
                BodySchema::InstanceResource,
                json!({"service_id": "s", "plan_id": "p"}),
            ),
            (BodySchema::LastOperation, json!({"state": "succeeded"})),
            (
                BodySchema::BindingResponse,
                json!({"credentials": {"uri": "x"}}),
            ),
            (BodySchema::BindingResource, json!({"credentials": {}})),
            (
                BodySchema::Error,
                json!({"error": "AsyncRequired", "description": "x"}),
            ),
        ];
        for (schema, body) in cases {
            assert_eq!(validate(schema, &body), Vec::<String>::new(), "{schema:?}");
        }
    }

    #[test]
    fn wrong_state_rejected_with_path() {
        let problems = validate(BodySchema::LastOperation, &json!({"state": "done"}));
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("/state:"), "{}", problems[0]);
    }

    #[test]
    fn nested_reference_checked() {
        let body = json!({"endpoints": [{"host": "h", "ports": [443]}]});
        assert!(!validate(BodySchema::BindingResponse, &body).is_empty());
        let body = json!({"services": [{"name": "n"}]});
        assert!(!validate(BodySchema::Catalog, &body).is_empty());
    }
}
