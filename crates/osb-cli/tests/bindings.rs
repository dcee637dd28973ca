//! Bind, unbind, rotate, and each credentials format parsed back.

mod common;

use std::collections::BTreeMap;

use base64::Engine as _;
use common::{Setup, SERVICE};
use serde_json::Value;

/// Creates instance `orders-db` on `plan` and its binding `orders-app`.
fn bound(plan: &str) -> Setup {
    let setup = Setup::new(SERVICE);
    setup
        .osb
        .run(&["provision", "simulated-db", plan, "orders-db"])
        .success();
    setup
        .osb
        .run(&["bind", "orders-db", "orders-app"])
        .success();
    setup
}

fn credentials_json(setup: &Setup, binding: &str) -> serde_json::Map<String, Value> {
    let run = setup
        .osb
        .run(&["credentials", binding, "--format", "json"])
        .success();
    run.json().as_object().unwrap().clone()
}

#[test]
fn async_bind_fetches_credentials() {
    let setup = bound("small");
    let binding = setup.osb.binding("orders-app").expect("binding recorded");
    assert_eq!(binding["state"], "ready");
    assert_eq!(binding["instance_name"], "orders-db");
    let credentials = credentials_json(&setup, "orders-app");
    assert!(credentials.contains_key("uri"), "{credentials:?}");
    assert!(credentials.contains_key("password"), "{credentials:?}");
}

#[test]
fn static_plan_binds_synchronously() {
    let setup = bound("shared");
    let credentials = credentials_json(&setup, "orders-app");
    assert_eq!(credentials["uri"], "https://example.test");
    assert_eq!(credentials["api_key"], "it's-a-key");
}

#[test]
fn vcap_services_parses_back() {
    let setup = bound("shared");
    let vcap = setup
        .osb
        .run(&["credentials", "orders-app", "--format", "vcap"])
        .success()
        .json();
    let instance = setup.osb.instance("orders-db").unwrap();
    let binding = setup.osb.binding("orders-app").unwrap();

    let entries = vcap["simulated-db"]
        .as_array()
        .expect("entries under the offering label");
    assert_eq!(entries.len(), 1);
    let entry = &entries[0];
    assert_eq!(entry["label"], "simulated-db");
    assert_eq!(entry["plan"], "shared");
    assert_eq!(entry["name"], "orders-app");
    assert_eq!(entry["binding_name"], "orders-app");
    assert_eq!(entry["instance_name"], "orders-db");
    assert_eq!(entry["instance_guid"], instance["id"]);
    assert_eq!(entry["binding_guid"], binding["id"]);
    assert_eq!(entry["tags"], serde_json::json!(["sql", "simulated"]));
    assert_eq!(entry["credentials"]["api_key"], "it's-a-key");
}

#[test]
fn kubernetes_secret_string_data_parses_back() {
    let setup = bound("shared");
    let yaml = setup
        .osb
        .run(&["credentials", "orders-app", "--format", "k8s-secret"])
        .success();
    let secret: Value = serde_yaml::from_str(&yaml.stdout).expect("the Secret is valid YAML");
    assert_eq!(secret["apiVersion"], "v1");
    assert_eq!(secret["kind"], "Secret");
    assert_eq!(secret["metadata"]["name"], "orders-app");
    assert_eq!(secret["stringData"]["uri"], "https://example.test");
    assert_eq!(secret["stringData"]["api_key"], "it's-a-key");
    assert_eq!(secret["stringData"]["type"], "simulated-db");
    assert!(secret["stringData"]["provider"].is_string());
}

#[test]
fn kubernetes_secret_base64_data_decodes() {
    let setup = bound("shared");
    let yaml = setup
        .osb
        .run(&[
            "credentials",
            "orders-app",
            "--format",
            "k8s-secret",
            "--secret-encoding",
            "base64",
        ])
        .success();
    let secret: Value = serde_yaml::from_str(&yaml.stdout).unwrap();
    assert!(secret.get("stringData").is_none());
    let data = secret["data"].as_object().unwrap();
    let decode = |key: &str| {
        let encoded = data[key].as_str().unwrap();
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(decode("uri"), "https://example.test");
    assert_eq!(decode("api_key"), "it's-a-key");
}

#[test]
fn kubernetes_secret_in_instance_namespace() {
    let setup = Setup::new(SERVICE);
    let k8s = ["--platform", "kubernetes", "--namespace", "shop"];
    setup
        .osb
        .run(&[&["provision", "simulated-db", "shared", "db"][..], &k8s].concat())
        .success();
    setup.osb.run(&["bind", "db", "app"]).success();
    let yaml = setup
        .osb
        .run(&["credentials", "app", "-f", "k8s-secret"])
        .success();
    let secret: Value = serde_yaml::from_str(&yaml.stdout).unwrap();
    assert_eq!(secret["metadata"]["namespace"], "shop");
}

#[test]
fn servicebinding_tree_has_file_per_key() {
    let setup = bound("small");
    let root = setup.dir.path().join("bindings");
    let run = setup
        .osb
        .run(&[
            "credentials",
            "orders-app",
            "--format",
            "servicebinding",
            root.to_str().unwrap(),
        ])
        .success();
    let directory = root.join("orders-app");
    assert_eq!(run.stdout.trim(), directory.to_str().unwrap());

    let credentials = credentials_json(&setup, "orders-app");
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(&directory).unwrap() {
        let entry = entry.unwrap();
        let content = std::fs::read_to_string(entry.path()).unwrap();
        files.insert(entry.file_name().into_string().unwrap(), content);
    }
    assert_eq!(files["type"], "simulated-db");
    assert!(!files["provider"].is_empty());
    for (key, value) in &credentials {
        let expected = match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        assert_eq!(files.get(key), Some(&expected), "file for key {key}");
    }
    assert_eq!(
        files.len(),
        credentials.len() + 2,
        "one file per key plus type and provider"
    );
}

#[test]
fn env_lines_evaluate_in_shell() {
    let setup = bound("shared");
    let run = setup
        .osb
        .run(&["credentials", "orders-app", "--format", "env"])
        .success();
    assert!(
        run.stdout.contains("export API_KEY='it'\\''s-a-key'"),
        "{}",
        run.stdout
    );

    let script = format!("{}\nprintf '%s|%s' \"$URI\" \"$API_KEY\"", run.stdout);
    let output = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "https://example.test|it's-a-key"
    );
}

#[test]
fn rotation_keeps_predecessor_valid() {
    let setup = bound("small");
    let old = setup.osb.binding("orders-app").unwrap();
    let old_id = old["id"].as_str().unwrap().to_owned();
    let old_credentials = credentials_json(&setup, "orders-app");

    let run = setup.osb.run(&["rotate", "orders-app"]).success();
    let new = setup.osb.binding("orders-app").unwrap();
    assert_ne!(new["id"], old["id"]);
    assert_eq!(new["predecessor_id"], old_id.as_str());
    assert_eq!(new["state"], "ready");
    assert_ne!(credentials_json(&setup, "orders-app"), old_credentials);

    let renamed = format!("orders-app-{}", &old_id[..8]);
    assert!(run.stdout.contains(&renamed), "{}", run.stdout);
    let predecessor = setup
        .osb
        .binding(&renamed)
        .expect("predecessor kept under a new name");
    assert_eq!(predecessor["id"], old_id.as_str());
    assert_eq!(credentials_json(&setup, &renamed), old_credentials);

    setup.osb.run(&["unbind", &renamed]).success();
    assert!(setup.osb.binding(&renamed).is_none());
    assert!(setup.osb.binding("orders-app").is_some());
}

#[test]
fn rotation_refused_without_binding_rotatable() {
    let setup = bound("sync");
    let run = setup.osb.run(&["rotate", "orders-app"]).expect_code(2);
    assert!(
        run.stderr.contains("not binding_rotatable"),
        "{}",
        run.stderr
    );
    assert_eq!(
        setup
            .osb
            .run(&["bindings", "-o", "json"])
            .success()
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn unbind_removes_binding_everywhere() {
    let setup = bound("small");
    let instance_id = setup.osb.instance("orders-db").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let binding_id = setup.osb.binding("orders-app").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    setup.osb.run(&["unbind", "orders-app"]).success();
    assert!(setup.osb.binding("orders-app").is_none());
    let (status, _) = setup.broker.request(
        "GET",
        &format!("/v2/service_instances/{instance_id}/service_bindings/{binding_id}"),
    );
    assert_eq!(status, 404);
    setup.osb.run(&["deprovision", "orders-db"]).success();
}

#[test]
fn fetch_binding_refreshes_credentials() {
    let setup = bound("small");
    let fetched = setup
        .osb
        .run(&["fetch", "binding", "orders-app", "-o", "json"])
        .success()
        .json();
    assert_eq!(
        fetched["credentials"],
        Value::Object(credentials_json(&setup, "orders-app"))
    );
}

#[test]
fn bindings_listing_filters_by_instance() {
    let setup = bound("sync");
    setup
        .osb
        .run(&["provision", "simulated-db", "sync", "other-db"])
        .success();
    setup.osb.run(&["bind", "other-db", "other-app"]).success();
    let all = setup.osb.run(&["bindings", "-o", "json"]).success().json();
    assert_eq!(all.as_array().unwrap().len(), 2);
    let filtered = setup
        .osb
        .run(&["bindings", "other-db", "-o", "json"])
        .success()
        .json();
    assert_eq!(filtered.as_array().unwrap().len(), 1);
    assert_eq!(filtered[0]["name"], "other-app");
    let table = setup.osb.run(&["bindings"]).success();
    assert!(table.stdout.starts_with("name"), "{}", table.stdout);
}
