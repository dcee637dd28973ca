//! `GET /v2/catalog` as served: its shape and the rules on offerings and
//! plans, and the start-up rejection of configurations whose catalog breaks
//! those rules.

mod support;

use std::collections::HashSet;

use serde_json::Value;
use support::*;

fn services(catalog: &Value) -> &Vec<Value> {
    catalog["services"]
        .as_array()
        .expect("services is an array")
}

fn plans(offering: &Value) -> &Vec<Value> {
    offering["plans"].as_array().expect("plans is an array")
}

fn is_cli_friendly(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && name.chars().any(|c| c.is_ascii_alphanumeric())
}

fn is_semver(version: &str) -> bool {
    let core = version.split(['-', '+']).next().unwrap_or("");
    let numbers: Vec<&str> = core.split('.').collect();
    numbers.len() == 3
        && numbers.iter().all(|number| {
            !number.is_empty()
                && number.chars().all(|c| c.is_ascii_digit())
                && (number.len() == 1 || !number.starts_with('0'))
        })
}

/// A catalog that uses every optional field of offerings and plans.
const RICH_SERVICES: &str = r##"
[[services]]
id = "9e0d0000-0000-4000-8000-000000000001"
name = "Log-Drain.v2"
description = "A service with every optional field"
bindable = true
requires = ["syslog_drain", "route_forwarding", "volume_mount"]
tags = ["logs", "drain"]
instances_retrievable = true
bindings_retrievable = true
allow_context_updates = false
plan_updateable = false
metadata = { displayName = "Log drain", longDescription = "Drains logs" }
dashboard_client = { id = "dashboard-client", secret = "dashboard-secret-value", redirect_uri = "https://dashboard.example.test" }

[[services.plans]]
id = "9e0d0000-0000-4000-8000-000000000002"
name = "basic"
description = "A plan with every optional field"
free = false
bindable = true
plan_updateable = true
binding_rotatable = true
maximum_polling_duration = 120
metadata = { bullets = ["one", "two"], displayName = "Basic" }
maintenance_info = { version = "1.2.3-beta.1+build.5", description = "Adds drains" }
backend = { type = "simulated" }

[services.plans.schemas.service_instance.create.parameters]
"$schema" = "http://json-schema.org/draft-07/schema#"
type = "object"
definitions.size = { type = "integer" }
properties.size = { "$ref" = "#/definitions/size" }

[services.plans.schemas.service_binding.create.parameters]
"$schema" = "http://json-schema.org/draft-04/schema#"
type = "object"
"##;

#[tokio::test]
async fn catalog_returns_200_with_services() {
    let broker = TestBroker::start_standard();

    let reply = broker.get("/v2/catalog").await;

    assert_eq!(reply.status, 200, "catalog: {}", reply.text);
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "the catalog must be sent as application/json, got {content_type:?}"
    );
    assert!(
        reply.body.is_object(),
        "the catalog must be a JSON object: {}",
        reply.text
    );
    let services = services(&reply.body);
    assert_eq!(
        services.len(),
        3,
        "the catalog must list the configured offerings"
    );
    let names: Vec<&str> = services.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(
        names,
        ["simulated-db", "shared-api", "no-bind"],
        "offering names in order"
    );
}

#[tokio::test]
async fn catalog_ids_stable_across_fetches_and_restarts() {
    let broker = TestBroker::start_standard();
    let first = broker.get("/v2/catalog").await;
    let second = broker.get("/v2/catalog").await;
    let broker = broker.restart();
    let third = broker.get("/v2/catalog").await;

    let ids = |catalog: &Value| -> Vec<String> {
        services(catalog)
            .iter()
            .flat_map(|offering| {
                std::iter::once(offering["id"].as_str().unwrap_or("").to_owned()).chain(
                    plans(offering)
                        .iter()
                        .map(|plan| plan["id"].as_str().unwrap_or("").to_owned()),
                )
            })
            .collect()
    };
    assert_eq!(
        ids(&first.body),
        ids(&second.body),
        "ids must not change between fetches"
    );
    assert_eq!(
        ids(&first.body),
        ids(&third.body),
        "ids must not change across a restart"
    );
    assert!(
        ids(&first.body).contains(&PLAN_SYNC.to_owned()),
        "the configured plan id is served"
    );
    assert_eq!(
        first.body, third.body,
        "the catalog must be the same after a restart"
    );
}

#[tokio::test]
async fn offering_required_fields_are_valid() {
    let broker = TestBroker::start_standard();
    let catalog = broker.get("/v2/catalog").await.body;

    let mut names = HashSet::new();
    for offering in services(&catalog) {
        let name = offering["name"].as_str().unwrap_or("");
        assert!(
            !name.is_empty(),
            "offering name must be a non-empty string: {offering}"
        );
        assert!(
            names.insert(name.to_owned()),
            "offering name {name:?} is used twice"
        );
        assert!(
            is_cli_friendly(name),
            "offering name {name:?} must be CLI-friendly"
        );

        let id = offering["id"].as_str().unwrap_or("");
        assert!(
            !id.is_empty(),
            "offering {name}: id must be a non-empty string"
        );
        let description = offering["description"].as_str().unwrap_or("");
        assert!(
            !description.is_empty(),
            "offering {name}: description must be non-empty"
        );
        assert!(
            name.chars().count() <= 255,
            "offering {name}: names should have at most 255 characters"
        );
        assert!(
            description.chars().count() <= 255,
            "offering {name}: descriptions should have at most 255 characters"
        );
        assert!(
            offering["bindable"].is_boolean(),
            "offering {name}: bindable must be a boolean"
        );
        assert!(
            !plans(offering).is_empty(),
            "offering {name}: it must have at least one plan"
        );
    }
}

#[tokio::test]
async fn ids_are_globally_unique() {
    let broker = TestBroker::start_standard();
    let catalog = broker.get("/v2/catalog").await.body;

    let mut ids = HashSet::new();
    for offering in services(&catalog) {
        let id = offering["id"].as_str().unwrap_or("").to_owned();
        assert!(ids.insert(id.clone()), "id {id:?} is used twice");
        for plan in plans(offering) {
            let id = plan["id"].as_str().unwrap_or("").to_owned();
            assert!(!id.is_empty(), "plan id must be a non-empty string: {plan}");
            assert!(ids.insert(id.clone()), "id {id:?} is used twice");
        }
    }
}

#[tokio::test]
async fn plan_required_fields_are_valid() {
    let broker = TestBroker::start_standard();
    let catalog = broker.get("/v2/catalog").await.body;

    for offering in services(&catalog) {
        let offering_name = offering["name"].as_str().unwrap_or("");
        let mut plan_names = HashSet::new();
        for plan in plans(offering) {
            let name = plan["name"].as_str().unwrap_or("");
            assert!(
                !name.is_empty(),
                "{offering_name}: plan name must be non-empty: {plan}"
            );
            assert!(
                is_cli_friendly(name),
                "{offering_name}: plan name {name:?} must be CLI-friendly"
            );
            assert!(
                plan_names.insert(name.to_owned()),
                "{offering_name}: plan name {name:?} is used twice in one offering"
            );
            let description = plan["description"].as_str().unwrap_or("");
            assert!(
                !description.is_empty(),
                "{offering_name}/{name}: description must be non-empty"
            );
            assert!(
                name.chars().count() <= 255 && description.chars().count() <= 255,
                "{offering_name}/{name}: names and descriptions should have at most 255 characters"
            );
        }
    }
}

#[tokio::test]
async fn optional_fields_keep_spec_types() {
    let broker = TestBroker::start_services(RICH_SERVICES);
    let reply = broker.get("/v2/catalog").await;
    assert_eq!(reply.status, 200, "catalog: {}", reply.text);
    let offering = &services(&reply.body)[0];
    let plan = &plans(offering)[0];

    assert_eq!(
        offering["requires"],
        serde_json::json!(["syslog_drain", "route_forwarding", "volume_mount"]),
        "requires is served as configured"
    );
    assert_eq!(
        offering["tags"],
        serde_json::json!(["logs", "drain"]),
        "tags"
    );
    assert_eq!(
        offering["instances_retrievable"], true,
        "instances_retrievable"
    );
    assert_eq!(
        offering["bindings_retrievable"], true,
        "bindings_retrievable"
    );
    assert_eq!(
        offering["allow_context_updates"], false,
        "allow_context_updates"
    );
    assert_eq!(
        offering["plan_updateable"], false,
        "plan_updateable keeps the spec's spelling"
    );
    assert!(
        offering.get("plan_updatable").is_none(),
        "no corrected spelling may appear"
    );
    assert!(
        offering["metadata"].is_object(),
        "offering metadata is an object"
    );
    assert_eq!(
        offering["dashboard_client"]["id"], "dashboard-client",
        "dashboard_client.id"
    );
    assert_eq!(
        offering["dashboard_client"]["redirect_uri"], "https://dashboard.example.test",
        "dashboard_client.redirect_uri"
    );

    assert_eq!(plan["free"], false, "free");
    assert_eq!(plan["bindable"], true, "plan bindable");
    assert_eq!(
        plan["plan_updateable"], true,
        "plan plan_updateable overrides the offering's"
    );
    assert_eq!(plan["binding_rotatable"], true, "binding_rotatable");
    assert!(
        plan["maximum_polling_duration"].is_u64(),
        "maximum_polling_duration is an integer"
    );
    assert_eq!(
        plan["maximum_polling_duration"], 120,
        "maximum_polling_duration"
    );
    assert!(plan["metadata"].is_object(), "plan metadata is an object");
    assert_eq!(
        plan["maintenance_info"]["version"], "1.2.3-beta.1+build.5",
        "maintenance version"
    );
    assert_eq!(
        plan["maintenance_info"]["description"], "Adds drains",
        "maintenance description"
    );
}

#[tokio::test]
async fn requires_lists_only_allowed_values() {
    let broker = TestBroker::start_services(RICH_SERVICES);
    let standard = TestBroker::start_standard();

    for catalog in [
        broker.get("/v2/catalog").await.body,
        standard.get("/v2/catalog").await.body,
    ] {
        for offering in services(&catalog) {
            let Some(requires) = offering.get("requires") else {
                continue;
            };
            for value in requires.as_array().expect("requires is an array") {
                let value = value.as_str().unwrap_or("");
                assert!(
                    ["syslog_drain", "route_forwarding", "volume_mount"].contains(&value),
                    "requires value {value:?} is not allowed"
                );
            }
        }
    }
}

#[tokio::test]
async fn maintenance_versions_are_semver() {
    let broker = TestBroker::start_standard();
    let catalog = broker.get("/v2/catalog").await.body;

    let mut seen = 0;
    for offering in services(&catalog) {
        for plan in plans(offering) {
            if let Some(info) = plan.get("maintenance_info") {
                let version = info["version"].as_str().unwrap_or("");
                assert!(
                    is_semver(version),
                    "maintenance_info.version {version:?} must be SemVer"
                );
                seen += 1;
            }
        }
    }
    assert_eq!(
        seen, 2,
        "two plans of the standard catalog have maintenance_info"
    );
}

#[tokio::test]
async fn schemas_have_spec_shape() {
    let broker = TestBroker::start_services(RICH_SERVICES);
    let standard = TestBroker::start_standard();

    for catalog in [
        broker.get("/v2/catalog").await.body,
        standard.get("/v2/catalog").await.body,
    ] {
        for offering in services(&catalog) {
            for plan in plans(offering) {
                let Some(schemas) = plan.get("schemas") else {
                    continue;
                };
                let name = plan["name"].as_str().unwrap_or("");
                let keys: Vec<&String> = schemas
                    .as_object()
                    .expect("schemas is an object")
                    .keys()
                    .collect();
                for key in &keys {
                    assert!(
                        ["service_instance", "service_binding"].contains(&key.as_str()),
                        "plan {name}: unexpected schemas key {key:?}"
                    );
                }
                let parameters = [
                    &schemas["service_instance"]["create"]["parameters"],
                    &schemas["service_instance"]["update"]["parameters"],
                    &schemas["service_binding"]["create"]["parameters"],
                ];
                for schema in parameters.into_iter().filter(|schema| !schema.is_null()) {
                    assert!(
                        schema["$schema"].is_string(),
                        "plan {name}: every parameters schema has a $schema key: {schema}"
                    );
                    let text = schema.to_string();
                    assert!(
                        text.len() <= 64 * 1024,
                        "plan {name}: a schema is larger than 64 kB"
                    );
                    assert!(
                        !text.contains("\"$ref\":\"http") && !text.contains("\"$ref\":\"file"),
                        "plan {name}: a schema has an external $ref: {text}"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn catalog_hides_backend_settings() {
    let broker = TestBroker::start_standard();

    let reply = broker.get("/v2/catalog").await;

    assert_eq!(reply.status, 200, "catalog: {}", reply.text);
    assert!(
        !reply.text.contains(STATIC_API_KEY),
        "the static plan's credentials must not be in the catalog"
    );
    assert!(
        !reply.text.contains("\"backend\""),
        "backend settings must not be in the catalog"
    );
    assert!(
        !reply.text.contains("fail_on"),
        "simulated settings must not be in the catalog"
    );
}

#[test]
fn non_cli_friendly_name_fails_startup() {
    let services = STANDARD_SERVICES.replace("name = \"small\"", "name = \"small plan\"");

    let log = start_failure(&standard_head(), &services);

    assert!(
        log.contains("small plan"),
        "the error must name the bad name: {log}"
    );
}

#[test]
fn duplicate_plan_id_fails_startup() {
    let services = STANDARD_SERVICES.replace(PLAN_SYNC_LARGE, PLAN_SYNC);

    let log = start_failure(&standard_head(), &services);

    assert!(
        log.contains(PLAN_SYNC),
        "the error must name the duplicate id: {log}"
    );
}

#[test]
fn duplicate_offering_name_fails_startup() {
    let services = STANDARD_SERVICES.replace("name = \"shared-api\"", "name = \"simulated-db\"");

    let log = start_failure(&standard_head(), &services);

    assert!(
        log.contains("simulated-db"),
        "the error must name the duplicate name: {log}"
    );
}

#[test]
fn duplicate_plan_name_fails_startup() {
    let services = STANDARD_SERVICES.replace("name = \"large\"", "name = \"small\"");

    let log = start_failure(&standard_head(), &services);

    assert!(
        log.contains("\"small\""),
        "the error must name the duplicate plan name: {log}"
    );
}

#[test]
fn empty_description_fails_startup() {
    let services = STANDARD_SERVICES.replace("description = \"Synchronous\"", "description = \"\"");

    let log = start_failure(&standard_head(), &services);

    assert!(
        log.contains("description"),
        "the error must name the field: {log}"
    );
}

#[test]
fn unknown_requires_value_fails_startup() {
    let services = STANDARD_SERVICES.replace(
        "description = \"One shared account\"",
        "description = \"One shared account\"\nrequires = [\"log_shipping\"]",
    );

    let log = start_failure(&standard_head(), &services);

    assert!(
        log.contains("log_shipping"),
        "the error must name the value: {log}"
    );
}

#[test]
fn offering_without_plans_fails_startup() {
    let services = "[[services]]\nid = \"a\"\nname = \"empty\"\ndescription = \"No plans\"\nbindable = false\nplans = []\n";

    let log = start_failure(&standard_head(), services);

    assert!(
        log.contains("plan"),
        "the error must name the missing plans: {log}"
    );
}

#[test]
fn non_semver_maintenance_version_fails_startup() {
    let services = STANDARD_SERVICES.replace("version = \"1.0.0\"", "version = \"1.0\"");

    let log = start_failure(&standard_head(), &services);

    assert!(
        log.contains("maintenance_info"),
        "the error must name the field: {log}"
    );
}

#[test]
fn schema_without_dollar_schema_fails_startup() {
    let services = RICH_SERVICES.replace(
        "\"$schema\" = \"http://json-schema.org/draft-04/schema#\"\n",
        "",
    );

    let log = start_failure(&standard_head(), &services);

    assert!(
        log.contains("$schema"),
        "the error must name the missing key: {log}"
    );
}

#[test]
fn external_schema_ref_fails_startup() {
    let services = RICH_SERVICES.replace(
        "#/definitions/size",
        "https://schemas.example.test/size.json",
    );

    let log = start_failure(&standard_head(), &services);

    assert!(
        log.contains("$ref"),
        "the error must name the reference: {log}"
    );
}

#[test]
fn oversized_schema_fails_startup() {
    let long_description = "x".repeat(70 * 1024);
    let services = RICH_SERVICES.replace(
        "definitions.size = { type = \"integer\" }",
        &format!(
            "definitions.size = {{ type = \"integer\", description = \"{long_description}\" }}"
        ),
    );

    let log = start_failure(&standard_head(), &services);

    assert!(
        log.contains("64") || log.contains("bytes"),
        "the error must name the size limit: {log}"
    );
}

#[test]
fn empty_dashboard_client_secret_fails_startup() {
    let services = RICH_SERVICES.replace("secret = \"dashboard-secret-value\"", "secret = \"\"");

    let log = start_failure(&standard_head(), &services);

    assert!(
        log.contains("dashboard_client"),
        "the error must name the field: {log}"
    );
}
