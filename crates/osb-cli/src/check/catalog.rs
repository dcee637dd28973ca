//! The catalog rules: `GET /v2/catalog` and the content of every service
//! offering and plan.
//!
//! The rules read the catalog as plain JSON, so that a catalog the wire
//! types cannot decode still gets a result for each rule.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

use super::http::{mask_secrets, Call, Exchange, Probe, Reply};
use super::report::{Report, Verdict};
use super::schema::{validate, BodySchema};
use crate::error::{CliError, CliResult};

/// Maximum size of a parameters schema, 64 kB read as 65,536 bytes of JSON.
const MAX_SCHEMA_BYTES: usize = 64 * 1024;

/// Recommended maximum length of names and descriptions.
const RECOMMENDED_MAX_CHARS: usize = 255;

/// The values the specification allows in an offering's `requires`.
const REQUIRES_VALUES: [&str; 3] = ["syslog_drain", "route_forwarding", "volume_mount"];

/// One catalog rule, applied to the `services` array.
type Rule = fn(&[Value]) -> Verdict;

/// The facts about one plan that the lifecycle checks use.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanInfo {
    pub service_id: String,
    pub service_name: String,
    pub plan_id: String,
    pub plan_name: String,
    pub bindable: bool,
    pub instances_retrievable: bool,
    pub bindings_retrievable: bool,
    pub requires: Vec<String>,
    pub maintenance_version: Option<String>,
    /// Seconds, from `maximum_polling_duration`.
    pub maximum_polling_duration: Option<u64>,
    /// Whether instances may change plan, the plan's flag winning over the offering's.
    pub plan_updateable: bool,
    /// Another plan of the same offering, the target of a plan change.
    pub other_plan_id: Option<String>,
}

impl PlanInfo {
    /// `SERVICE:PLAN` by name, as `--plan` takes it.
    pub fn label(&self) -> String {
        format!("{}:{}", self.service_name, self.plan_name)
    }
}

/// Fetches the catalog with the configured headers. A transport error is a
/// connection error of the whole command, because no check can run.
pub async fn fetch(probe: &Probe) -> CliResult<Reply> {
    let reply = probe.send(&catalog_call()).await;
    if let Some(error) = &reply.transport_error {
        return Err(CliError::connection(format!(
            "could not fetch the catalog from {}: {error}",
            probe.base_url()
        ))
        .with_hint("check the URL and that the broker is running"));
    }
    Ok(reply)
}

pub fn catalog_call() -> Call {
    Call::get(vec!["v2".into(), "catalog".into()])
}

/// Runs every catalog rule on a fetched catalog. Returns its plans, or
/// `None` when the catalog could not be read.
pub async fn check(
    probe: &Probe,
    reply: &Reply,
    report: &mut Report,
) -> CliResult<Option<Vec<PlanInfo>>> {
    let exchange = &reply.exchange;
    let status = if reply.code() == 200 && reply.is_json_object() {
        Verdict::Pass
    } else if reply.code() == 200 {
        Verdict::Fail("the body is not a JSON object".into())
    } else {
        Verdict::Fail(format!("expected 200, got {}", reply.summary()))
    };
    let readable = status.is_pass();
    report.record(
        "catalog.status",
        "GET /v2/catalog returns 200 with a JSON object",
        status,
        &[exchange],
    )?;

    let Some(services) = reply
        .json
        .as_ref()
        .and_then(|body| body.get("services"))
        .and_then(Value::as_array)
        .filter(|_| readable)
    else {
        let verdict = if readable {
            Verdict::Fail("the body has no `services` array".into())
        } else {
            Verdict::Skip("the catalog could not be read".into())
        };
        report.record(
            "catalog.services",
            "the catalog has a `services` array",
            verdict,
            &[exchange],
        )?;
        return Ok(None);
    };
    report.record(
        "catalog.services",
        "the catalog has a `services` array",
        Verdict::Pass,
        &[],
    )?;
    headers(reply, report)?;

    let body = reply.json.as_ref().cloned().unwrap_or_default();
    let masked = masked_exchange(exchange, &body);
    let rules: [(&str, &str, Rule); 11] = [
        ("catalog.openapi-schema", "the catalog matches the OpenAPI Catalog schema", |services| {
            Verdict::fail_unless_empty(validate(BodySchema::Catalog, &serde_json::json!({ "services": services })))
        }),
        ("catalog.offering-fields", "offerings have a non-empty name, id and description, a boolean bindable and at least one plan", offering_fields),
        ("catalog.plan-fields", "plans have a non-empty id, name and description", plan_fields),
        ("catalog.ids-unique", "offering and plan ids are unique", ids_unique),
        ("catalog.names-unique", "offering names are unique, and plan names are unique within their offering", names_unique),
        ("catalog.optional-types", "optional fields have the specified types", optional_types),
        ("catalog.requires", "`requires` contains only syslog_drain, route_forwarding and volume_mount", requires_values),
        ("catalog.maintenance-info", "maintenance_info.version is a SemVer 2.0 version", maintenance_info),
        ("catalog.dashboard-client", "dashboard_client has a non-empty id and secret", dashboard_client),
        ("catalog.schemas", "plan schemas are JSON Schemas with $schema, no external $ref, at most 64 kB", parameter_schemas),
        ("catalog.cli-names", "offering and plan names are CLI-friendly and at most 255 characters (recommended)", cli_names),
    ];
    for (id, behaviour, rule) in rules {
        let verdict = rule(services);
        report.record(id, behaviour, verdict, &[&masked])?;
    }

    stable_ids(probe, services, report).await?;
    Ok(Some(plans(services)))
}

/// Checks the recommended headers of a response: `Content-Type: application/json`
/// on a body, and the request identity echoed.
fn headers(reply: &Reply, report: &mut Report) -> CliResult<()> {
    let content_type = reply
        .headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let verdict = if content_type
        .split(';')
        .next()
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
    {
        Verdict::Pass
    } else {
        Verdict::Warn(format!("Content-Type is {content_type:?}"))
    };
    report.record(
        "headers.content-type",
        "a response body comes with Content-Type: application/json (recommended)",
        verdict,
        &[],
    )?;

    let echoed = reply
        .headers
        .get(osbkit_types::REQUEST_IDENTITY_HEADER)
        .and_then(|value| value.to_str().ok());
    let verdict = match echoed {
        Some(value) if value == reply.request_identity => Verdict::Pass,
        Some(value) => Verdict::Warn(format!("sent {:?}, got {value:?}", reply.request_identity)),
        None => Verdict::Warn("the response has no X-Broker-API-Request-Identity header".into()),
    };
    report.record(
        "headers.request-identity",
        "the response echoes X-Broker-API-Request-Identity (recommended)",
        verdict,
        &[],
    )
}

/// The catalog exchange with the body masked: `dashboard_client.secret`
/// must not reach a report.
fn masked_exchange(exchange: &Exchange, body: &Value) -> Exchange {
    let mut body = body.clone();
    mask_secrets(&mut body);
    let status_line = exchange.response.lines().next().unwrap_or_default();
    Exchange {
        request: exchange.request.clone(),
        response: format!(
            "{status_line}\n{}",
            super::http::masked_text(body.to_string().as_bytes())
        ),
    }
}

/// Names an offering or plan for messages, falling back to its id or position.
fn label(object: &Value, index: usize, kind: &str) -> String {
    object
        .get("name")
        .and_then(Value::as_str)
        .filter(|name| !name.is_empty())
        .or_else(|| object.get("id").and_then(Value::as_str))
        .map(|name| format!("{kind} {name:?}"))
        .unwrap_or_else(|| format!("{kind} #{}", index + 1))
}

fn plans_of(offering: &Value) -> &[Value] {
    offering
        .get("plans")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn non_empty_string(object: &Value, field: &str) -> bool {
    object
        .get(field)
        .and_then(Value::as_str)
        .is_some_and(|text| !text.is_empty())
}

fn offering_fields(services: &[Value]) -> Verdict {
    let mut problems = Vec::new();
    for (index, offering) in services.iter().enumerate() {
        let name = label(offering, index, "offering");
        for field in ["name", "id", "description"] {
            if !non_empty_string(offering, field) {
                problems.push(format!("{name}: `{field}` is missing or empty"));
            }
        }
        if !offering.get("bindable").is_some_and(Value::is_boolean) {
            problems.push(format!("{name}: `bindable` is missing or not a boolean"));
        }
        if plans_of(offering).is_empty() {
            problems.push(format!("{name}: `plans` is missing or empty"));
        }
    }
    Verdict::fail_unless_empty(problems)
}

fn plan_fields(services: &[Value]) -> Verdict {
    let mut problems = Vec::new();
    for (index, offering) in services.iter().enumerate() {
        let offering_name = label(offering, index, "offering");
        for (plan_index, plan) in plans_of(offering).iter().enumerate() {
            let plan_name = label(plan, plan_index, "plan");
            for field in ["id", "name", "description"] {
                if !non_empty_string(plan, field) {
                    problems.push(format!(
                        "{offering_name}, {plan_name}: `{field}` is missing or empty"
                    ));
                }
            }
        }
    }
    Verdict::fail_unless_empty(problems)
}

fn ids_unique(services: &[Value]) -> Verdict {
    let mut problems = Vec::new();
    let mut offering_ids = HashSet::new();
    let mut plan_ids = HashSet::new();
    for offering in services {
        if let Some(id) = offering.get("id").and_then(Value::as_str) {
            if !offering_ids.insert(id) {
                problems.push(format!("offering id {id:?} appears more than once"));
            }
        }
        for plan in plans_of(offering) {
            if let Some(id) = plan.get("id").and_then(Value::as_str) {
                if !plan_ids.insert(id) {
                    problems.push(format!("plan id {id:?} appears more than once"));
                }
            }
        }
    }
    Verdict::fail_unless_empty(problems)
}

fn names_unique(services: &[Value]) -> Verdict {
    let mut problems = Vec::new();
    let mut offering_names = HashSet::new();
    for offering in services {
        let Some(name) = offering.get("name").and_then(Value::as_str) else {
            continue;
        };
        if !offering_names.insert(name) {
            problems.push(format!("offering name {name:?} appears more than once"));
        }
        let mut plan_names = HashSet::new();
        for plan in plans_of(offering) {
            if let Some(plan_name) = plan.get("name").and_then(Value::as_str) {
                if !plan_names.insert(plan_name) {
                    problems.push(format!(
                        "offering {name:?} has more than one plan named {plan_name:?}"
                    ));
                }
            }
        }
    }
    Verdict::fail_unless_empty(problems)
}

fn optional_types(services: &[Value]) -> Verdict {
    let mut problems = Vec::new();
    let mut expect =
        |object: &Value, owner: &str, field: &str, kind: &str, valid: fn(&Value) -> bool| {
            if let Some(value) = object.get(field) {
                if !valid(value) {
                    problems.push(format!("{owner}: `{field}` is not {kind}"));
                }
            }
        };
    for (index, offering) in services.iter().enumerate() {
        let name = label(offering, index, "offering");
        expect(offering, &name, "tags", "an array of strings", |value| {
            value
                .as_array()
                .is_some_and(|items| items.iter().all(Value::is_string))
        });
        for flag in [
            "instances_retrievable",
            "bindings_retrievable",
            "allow_context_updates",
            "plan_updateable",
        ] {
            expect(offering, &name, flag, "a boolean", Value::is_boolean);
        }
        expect(offering, &name, "metadata", "an object", Value::is_object);
        for (plan_index, plan) in plans_of(offering).iter().enumerate() {
            let plan_name = format!("{name}, {}", label(plan, plan_index, "plan"));
            for flag in ["free", "bindable", "plan_updateable", "binding_rotatable"] {
                expect(plan, &plan_name, flag, "a boolean", Value::is_boolean);
            }
            expect(plan, &plan_name, "metadata", "an object", Value::is_object);
            expect(
                plan,
                &plan_name,
                "maximum_polling_duration",
                "a non-negative integer",
                |value| value.as_u64().is_some(),
            );
        }
    }
    Verdict::fail_unless_empty(problems)
}

fn requires_values(services: &[Value]) -> Verdict {
    let mut problems = Vec::new();
    for (index, offering) in services.iter().enumerate() {
        let Some(requires) = offering.get("requires") else {
            continue;
        };
        let name = label(offering, index, "offering");
        match requires.as_array() {
            Some(values) => {
                for value in values {
                    if !value
                        .as_str()
                        .is_some_and(|text| REQUIRES_VALUES.contains(&text))
                    {
                        problems.push(format!("{name}: `requires` contains {value}"));
                    }
                }
            }
            None => problems.push(format!("{name}: `requires` is not an array")),
        }
    }
    Verdict::fail_unless_empty(problems)
}

fn maintenance_info(services: &[Value]) -> Verdict {
    let mut problems = Vec::new();
    for (index, offering) in services.iter().enumerate() {
        let name = label(offering, index, "offering");
        for (plan_index, plan) in plans_of(offering).iter().enumerate() {
            let Some(info) = plan.get("maintenance_info") else {
                continue;
            };
            let plan_name = format!("{name}, {}", label(plan, plan_index, "plan"));
            match info.get("version").and_then(Value::as_str) {
                Some(version) if is_semver(version) => {}
                Some(version) => problems.push(format!(
                    "{plan_name}: version {version:?} is not SemVer 2.0"
                )),
                None => problems.push(format!(
                    "{plan_name}: maintenance_info has no string `version`"
                )),
            }
            if info
                .get("description")
                .is_some_and(|value| !value.is_string())
            {
                problems.push(format!(
                    "{plan_name}: maintenance_info.description is not a string"
                ));
            }
        }
    }
    Verdict::fail_unless_empty(problems)
}

fn dashboard_client(services: &[Value]) -> Verdict {
    let mut problems = Vec::new();
    for (index, offering) in services.iter().enumerate() {
        let Some(client) = offering.get("dashboard_client") else {
            continue;
        };
        let name = label(offering, index, "offering");
        if !client.is_object() {
            problems.push(format!("{name}: dashboard_client is not an object"));
            continue;
        }
        for field in ["id", "secret"] {
            if !non_empty_string(client, field) {
                problems.push(format!(
                    "{name}: dashboard_client.{field} is missing or empty"
                ));
            }
        }
        if client
            .get("redirect_uri")
            .is_some_and(|value| !value.is_string())
        {
            problems.push(format!(
                "{name}: dashboard_client.redirect_uri is not a string"
            ));
        }
    }
    Verdict::fail_unless_empty(problems)
}

fn parameter_schemas(services: &[Value]) -> Verdict {
    let mut problems = Vec::new();
    for (index, offering) in services.iter().enumerate() {
        let name = label(offering, index, "offering");
        for (plan_index, plan) in plans_of(offering).iter().enumerate() {
            let Some(schemas) = plan.get("schemas") else {
                continue;
            };
            let plan_name = format!("{name}, {}", label(plan, plan_index, "plan"));
            for pointer in [
                "/service_instance/create/parameters",
                "/service_instance/update/parameters",
                "/service_binding/create/parameters",
            ] {
                if let Some(schema) = schemas.pointer(pointer) {
                    let place = format!("{plan_name}: schemas{}", pointer.replace('/', "."));
                    problems.extend(
                        schema_problems(schema)
                            .into_iter()
                            .map(|problem| format!("{place} {problem}")),
                    );
                }
            }
        }
    }
    Verdict::fail_unless_empty(problems)
}

/// Checks one parameters schema and returns its problems.
fn schema_problems(schema: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if !schema.is_object() {
        return vec!["is not a JSON object".into()];
    }
    if !schema.get("$schema").is_some_and(Value::is_string) {
        problems.push("has no `$schema` key".into());
    }
    let size = schema.to_string().len();
    if size > MAX_SCHEMA_BYTES {
        problems.push(format!("is {size} bytes, more than 64 kB"));
    }
    let mut external = Vec::new();
    find_external_refs(schema, &mut external);
    if external.is_empty() {
        if let Err(error) = jsonschema::validator_for(schema) {
            problems.push(format!("is not a valid JSON Schema: {error}"));
        }
    } else {
        problems.push(format!("has external $ref {}", external.join(", ")));
    }
    problems
}

/// Collects every `$ref` that does not point inside the schema itself.
fn find_external_refs(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            for (key, child) in object {
                match (key.as_str(), child) {
                    ("$ref", Value::String(reference)) if !reference.starts_with('#') => {
                        found.push(format!("{reference:?}"));
                    }
                    // Property names and enum values are data, not keywords.
                    ("enum" | "const" | "examples" | "default", _) => {}
                    _ => find_external_refs(child, found),
                }
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|item| find_external_refs(item, found)),
        _ => {}
    }
}

fn cli_names(services: &[Value]) -> Verdict {
    let mut problems = Vec::new();
    let mut check_name = |name: &str, owner: String| {
        if !is_cli_friendly(name) {
            problems.push(format!(
                "{owner} name {name:?} is not CLI-friendly (letters, digits, '.' and '-')"
            ));
        }
        if name.chars().count() > RECOMMENDED_MAX_CHARS {
            problems.push(format!(
                "{owner} name is longer than {RECOMMENDED_MAX_CHARS} characters"
            ));
        }
    };
    for offering in services {
        let Some(name) = offering.get("name").and_then(Value::as_str) else {
            continue;
        };
        check_name(name, "offering".into());
        for plan in plans_of(offering) {
            if let Some(plan_name) = plan.get("name").and_then(Value::as_str) {
                check_name(plan_name, format!("offering {name:?}: plan"));
            }
        }
    }
    Verdict::warn_unless_empty(problems)
}

/// Returns whether a name uses only ASCII letters, digits, `.` and `-`,
/// and has at least one letter or digit.
pub fn is_cli_friendly(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && name.chars().any(|c| c.is_ascii_alphanumeric())
}

/// Returns whether a version follows SemVer 2.0: MAJOR.MINOR.PATCH without
/// leading zeros, then an optional `-prerelease` and `+build`.
pub fn is_semver(version: &str) -> bool {
    let (rest, build) = match version.split_once('+') {
        Some((rest, build)) => (rest, Some(build)),
        None => (version, None),
    };
    let (core, prerelease) = match rest.split_once('-') {
        Some((core, prerelease)) => (core, Some(prerelease)),
        None => (rest, None),
    };
    let numeric = |part: &str| {
        !part.is_empty()
            && part.bytes().all(|b| b.is_ascii_digit())
            && (part == "0" || !part.starts_with('0'))
    };
    let identifier = |part: &str| {
        !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let core_parts: Vec<&str> = core.split('.').collect();
    if core_parts.len() != 3 || !core_parts.iter().all(|part| numeric(part)) {
        return false;
    }
    if let Some(prerelease) = prerelease {
        let valid = prerelease.split('.').all(|part| {
            identifier(part) && (!part.bytes().all(|b| b.is_ascii_digit()) || numeric(part))
        });
        if !valid {
            return false;
        }
    }
    build.is_none_or(|build| build.split('.').all(identifier))
}

/// Fetches the catalog a second time and compares the ids by name.
async fn stable_ids(probe: &Probe, services: &[Value], report: &mut Report) -> CliResult<()> {
    let second = probe.send(&catalog_call()).await;
    let Some(second_services) = second
        .json
        .as_ref()
        .and_then(|body| body.get("services"))
        .and_then(Value::as_array)
    else {
        let verdict = Verdict::Fail(format!("the second fetch got {}", second.summary()));
        return report.record(
            "catalog.stable-ids",
            "a second fetch returns the same ids",
            verdict,
            &[&second.exchange],
        );
    };
    let ids = |services: &[Value]| -> BTreeMap<String, String> {
        let mut ids = BTreeMap::new();
        for offering in services {
            let name = offering
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if let Some(id) = offering.get("id").and_then(Value::as_str) {
                ids.insert(name.to_owned(), id.to_owned());
            }
            for plan in plans_of(offering) {
                let plan_name = plan.get("name").and_then(Value::as_str).unwrap_or_default();
                if let Some(id) = plan.get("id").and_then(Value::as_str) {
                    ids.insert(format!("{name}:{plan_name}"), id.to_owned());
                }
            }
        }
        ids
    };
    let first = ids(services);
    let again = ids(second_services);
    let changed: Vec<String> = first
        .iter()
        .filter_map(|(name, id)| match again.get(name) {
            Some(other) if other != id => {
                Some(format!("{name} changed id from {id:?} to {other:?}"))
            }
            _ => None,
        })
        .collect();
    report.record(
        "catalog.stable-ids",
        "a second fetch returns the same ids",
        Verdict::fail_unless_empty(changed),
        &[],
    )
}

/// Reads the plans that the lifecycle checks can use; entries without an
/// id or name are left out, as their own rule already failed.
fn plans(services: &[Value]) -> Vec<PlanInfo> {
    let mut plans = Vec::new();
    for offering in services {
        let (Some(service_id), Some(service_name)) = (
            offering.get("id").and_then(Value::as_str),
            offering.get("name").and_then(Value::as_str),
        ) else {
            continue;
        };
        let flag = |object: &Value, name: &str| object.get(name).and_then(Value::as_bool);
        let requires: Vec<String> = offering
            .get("requires")
            .and_then(Value::as_array)
            .map(|values| {
                values
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        for plan in plans_of(offering) {
            let (Some(plan_id), Some(plan_name)) = (
                plan.get("id").and_then(Value::as_str),
                plan.get("name").and_then(Value::as_str),
            ) else {
                continue;
            };
            plans.push(PlanInfo {
                service_id: service_id.to_owned(),
                service_name: service_name.to_owned(),
                plan_id: plan_id.to_owned(),
                plan_name: plan_name.to_owned(),
                bindable: flag(plan, "bindable")
                    .or(flag(offering, "bindable"))
                    .unwrap_or(false),
                instances_retrievable: flag(offering, "instances_retrievable").unwrap_or(false),
                bindings_retrievable: flag(offering, "bindings_retrievable").unwrap_or(false),
                requires: requires.clone(),
                maintenance_version: plan
                    .pointer("/maintenance_info/version")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                maximum_polling_duration: plan
                    .get("maximum_polling_duration")
                    .and_then(Value::as_u64),
                plan_updateable: flag(plan, "plan_updateable")
                    .or(flag(offering, "plan_updateable"))
                    .unwrap_or(false),
                other_plan_id: plans_of(offering)
                    .iter()
                    .filter_map(|other| other.get("id").and_then(Value::as_str))
                    .find(|other| *other != plan_id)
                    .map(str::to_owned),
            });
        }
    }
    plans
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn semver_versions_recognised() {
        for version in [
            "1.0.0",
            "0.1.2",
            "10.20.30",
            "1.0.0-alpha.1",
            "1.0.0+build.5",
            "1.0.0-rc-1+x",
        ] {
            assert!(is_semver(version), "{version}");
        }
        for version in [
            "1.0",
            "01.0.0",
            "1.0.0-",
            "1.0.0-01",
            "v1.0.0",
            "1.0.0+",
            "1.0.0-a..b",
            "",
        ] {
            assert!(!is_semver(version), "{version}");
        }
    }

    #[test]
    fn cli_friendly_names() {
        assert!(is_cli_friendly("simulated-db.v2"));
        assert!(is_cli_friendly("Large"));
        assert!(!is_cli_friendly("my db"));
        assert!(!is_cli_friendly("my_db"));
        assert!(!is_cli_friendly("-"));
    }

    #[test]
    fn external_refs_found() {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "definitions": {"a": {"type": "string"}},
            "properties": {
                "x": {"$ref": "#/definitions/a"},
                "y": {"$ref": "https://example.test/s.json"},
                "$ref": {"type": "string"}
            }
        });
        let mut found = Vec::new();
        find_external_refs(&schema, &mut found);
        assert_eq!(found, vec!["\"https://example.test/s.json\"".to_owned()]);
    }

    #[test]
    fn schema_rules_report_each_problem() {
        assert!(schema_problems(
            &json!({"$schema": "http://json-schema.org/draft-04/schema#", "type": "object"})
        )
        .is_empty());
        let problems = schema_problems(&json!({"type": "object"}));
        assert_eq!(problems, vec!["has no `$schema` key".to_owned()]);
        let big = json!({"$schema": "http://json-schema.org/draft-04/schema#", "description": "x".repeat(70_000)});
        assert_eq!(schema_problems(&big).len(), 1);
    }

    #[test]
    fn rules_catch_duplicates_and_bad_fields() {
        let services = vec![
            json!({"name": "a", "id": "1", "description": "d", "bindable": true,
                   "requires": ["nfs"], "plans": [{"id": "p", "name": "x", "description": "d"},
                                                  {"id": "p", "name": "x", "description": ""}]}),
            json!({"name": "a", "id": "1", "description": "", "bindable": "yes", "plans": []}),
        ];
        assert!(matches!(ids_unique(&services), Verdict::Fail(_)));
        assert!(matches!(names_unique(&services), Verdict::Fail(_)));
        assert!(matches!(offering_fields(&services), Verdict::Fail(_)));
        assert!(matches!(plan_fields(&services), Verdict::Fail(_)));
        assert!(matches!(requires_values(&services), Verdict::Fail(_)));
        assert_eq!(plans(&services).len(), 2);
    }
}
