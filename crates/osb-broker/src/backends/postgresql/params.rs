//! Checks of request parameters. The framework has validated them against
//! the plan's JSON Schema, but a schema may be looser than this backend, so
//! every value is checked again before it comes near SQL.

use osbkit::types::JsonObject;
use osbkit::BackendError;
use serde_json::Value;

use super::config::{is_valid_extension_name, PlanConfig};

/// Characters of a client's value quoted back in an error message.
const MAX_QUOTED_CHARS: usize = 64;

/// Returns the extensions `parameters` ask for, in order and without
/// repeats, after checking that `plan` allows each one.
pub fn requested_extensions(
    parameters: &JsonObject,
    plan: &PlanConfig,
) -> Result<Vec<String>, BackendError> {
    reject_unknown_keys(parameters, &["extensions"])?;
    let Some(value) = parameters.get("extensions") else {
        return Ok(Vec::new());
    };
    let Value::Array(items) = value else {
        return Err(invalid("extensions must be an array of extension names"));
    };
    let mut extensions: Vec<String> = Vec::new();
    for item in items {
        let Value::String(name) = item else {
            return Err(invalid("extensions must contain only strings"));
        };
        // Exact match against the operator's list, which was checked at startup.
        if !is_valid_extension_name(name) || !plan.extensions.iter().any(|allowed| allowed == name)
        {
            return Err(invalid(&format!(
                "extension {} is not allowed on this plan; allowed: {}",
                quote_for_message(name),
                allowed_list(plan)
            )));
        }
        if !extensions.contains(name) {
            extensions.push(name.clone());
        }
    }
    Ok(extensions)
}

/// Returns whether a binding is read-only: its `read_only` parameter, or
/// the plan's default when absent.
pub fn binding_read_only(parameters: &JsonObject, plan: &PlanConfig) -> Result<bool, BackendError> {
    reject_unknown_keys(parameters, &["read_only"])?;
    match parameters.get("read_only") {
        None | Some(Value::Null) => Ok(plan.read_only),
        Some(Value::Bool(read_only)) => Ok(*read_only),
        Some(_) => Err(invalid("read_only must be true or false")),
    }
}

fn reject_unknown_keys(parameters: &JsonObject, known: &[&str]) -> Result<(), BackendError> {
    match parameters.keys().find(|key| !known.contains(&key.as_str())) {
        Some(key) => Err(invalid(&format!(
            "unknown parameter {}; this service accepts: {}",
            quote_for_message(key),
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

fn allowed_list(plan: &PlanConfig) -> String {
    if plan.extensions.is_empty() {
        "none".to_owned()
    } else {
        plan.extensions.join(", ")
    }
}

/// Quotes a client's value for a message, cut short so a huge value does
/// not make a huge response.
fn quote_for_message(text: &str) -> String {
    let mut quoted: String = text.chars().take(MAX_QUOTED_CHARS).collect();
    if quoted.len() < text.len() {
        quoted.push('…');
    }
    format!("{quoted:?}")
}

fn invalid(message: &str) -> BackendError {
    BackendError::InvalidParameters(message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::postgresql::config::ExecutionMode;
    use serde_json::json;

    fn plan() -> PlanConfig {
        PlanConfig {
            server: "default".into(),
            connection_limit: None,
            extensions: vec!["pgcrypto".into(), "hstore".into()],
            read_only: false,
            jdbc_url: true,
            execution: ExecutionMode::AsyncPreferred,
        }
    }

    fn object(value: Value) -> JsonObject {
        value.as_object().cloned().expect("an object")
    }

    #[test]
    fn extensions_allowed_and_deduplicated() {
        let parameters = object(json!({"extensions": ["pgcrypto", "hstore", "pgcrypto"]}));
        let extensions = requested_extensions(&parameters, &plan()).expect("allowed");
        assert_eq!(extensions, vec!["pgcrypto", "hstore"]);
    }

    #[test]
    fn extensions_rejected_when_not_allowed() {
        for name in ["postgis", "pgcrypto\"; DROP DATABASE x; --", "PGCRYPTO", ""] {
            let parameters = object(json!({ "extensions": [name] }));
            let error = requested_extensions(&parameters, &plan()).expect_err(name);
            assert!(
                matches!(error, BackendError::InvalidParameters(_)),
                "{name}"
            );
        }
    }

    #[test]
    fn extensions_rejected_when_not_strings() {
        for value in [json!("pgcrypto"), json!([1]), json!({"a": 1})] {
            let parameters = object(json!({ "extensions": value }));
            assert!(requested_extensions(&parameters, &plan()).is_err());
        }
    }

    #[test]
    fn unknown_parameter_rejected() {
        let parameters = object(json!({"superuser": true}));
        assert!(requested_extensions(&parameters, &plan()).is_err());
        assert!(binding_read_only(&parameters, &plan()).is_err());
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let message = quote_for_message(&"x".repeat(1000));
        assert!(message.len() < 100, "{message}");
    }

    #[test]
    fn read_only_defaults_to_plan() {
        let mut read_only_plan = plan();
        read_only_plan.read_only = true;
        let empty = JsonObject::new();
        assert!(!binding_read_only(&empty, &plan()).expect("valid"));
        assert!(binding_read_only(&empty, &read_only_plan).expect("valid"));
        let writable = object(json!({"read_only": false}));
        assert!(!binding_read_only(&writable, &read_only_plan).expect("valid"));
        let wrong = object(json!({"read_only": "yes"}));
        assert!(binding_read_only(&wrong, &plan()).is_err());
    }
}
