//! Provision, update, upgrade and deprovision against a real osb-broker.

mod common;

use common::{Setup, SERVICE};

#[test]
fn async_plan_provisions_after_polling() {
    let setup = Setup::new(SERVICE);
    let run = setup
        .osb
        .run(&["provision", "simulated-db", "small", "orders-db"])
        .success();
    assert!(
        run.stdout.contains("provisioned \"orders-db\""),
        "{}",
        run.stdout
    );

    let instance = setup.osb.instance("orders-db").expect("instance recorded");
    assert_eq!(instance["state"], "ready");
    assert_eq!(instance["plan_id"], "plan-small");
    assert_eq!(instance["maintenance_version"], "1.0.0");
    let id = instance["id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);
    assert_eq!(setup.broker.instance_status(id), 200);
}

#[test]
fn sync_plan_provisions_with_parameters() {
    let setup = Setup::new(SERVICE);
    setup
        .osb
        .run(&[
            "provision",
            "simulated-db",
            "sync",
            "cache",
            "-c",
            r#"{"size": 3}"#,
        ])
        .success();
    let instance = setup.osb.instance("cache").unwrap();
    assert_eq!(instance["state"], "ready");

    let fetched = setup
        .osb
        .run(&["fetch", "instance", "cache", "--output", "json"])
        .success()
        .json();
    assert_eq!(fetched["plan_id"], "plan-sync");
    assert_eq!(fetched["parameters"]["size"], 3);
}

#[test]
fn context_follows_platform_flags() {
    let setup = Setup::new(SERVICE);
    setup
        .osb
        .run(&[
            "provision",
            "simulated-db",
            "sync",
            "k8s-db",
            "--platform",
            "kubernetes",
            "--namespace",
            "shop",
        ])
        .success();
    let context = &setup.osb.instance("k8s-db").unwrap()["context"];
    assert_eq!(context["platform"], "kubernetes");
    assert_eq!(context["namespace"], "shop");
    assert_eq!(context["instance_name"], "k8s-db");
    assert!(context["clusterid"].is_string());
}

#[test]
fn parameters_file_accepted() {
    let setup = Setup::new(SERVICE);
    let file = setup.dir.path().join("params.json");
    std::fs::write(&file, r#"{"tier": "gold"}"#).unwrap();
    setup
        .osb
        .run(&[
            "provision",
            "simulated-db",
            "sync",
            "gold-db",
            "-c",
            file.to_str().unwrap(),
        ])
        .success();
    let fetched = setup
        .osb
        .run(&["fetch", "instance", "gold-db", "-o", "json"])
        .success()
        .json();
    assert_eq!(fetched["parameters"]["tier"], "gold");
}

#[test]
fn update_changes_plan_in_record() {
    let setup = Setup::new(SERVICE);
    setup
        .osb
        .run(&["provision", "simulated-db", "small", "orders-db"])
        .success();
    setup
        .osb
        .run(&["update", "orders-db", "--plan", "sync"])
        .success();

    let instance = setup.osb.instance("orders-db").unwrap();
    assert_eq!(instance["plan_name"], "sync");
    assert_eq!(instance["state"], "ready");
    // The sync plan has no maintenance_info, so the instance has none either.
    assert!(instance["maintenance_version"].is_null());
    let fetched = setup
        .osb
        .run(&["fetch", "instance", "orders-db", "-o", "json"])
        .success()
        .json();
    assert_eq!(fetched["plan_id"], "plan-sync");
}

#[test]
fn update_parameters_keeps_plan() {
    let setup = Setup::new(SERVICE);
    setup
        .osb
        .run(&["provision", "simulated-db", "small", "orders-db"])
        .success();
    setup
        .osb
        .run(&["update", "orders-db", "-c", r#"{"size": 5}"#])
        .success();
    let instance = setup.osb.instance("orders-db").unwrap();
    assert_eq!(instance["plan_name"], "small");
    let fetched = setup
        .osb
        .run(&["fetch", "instance", "orders-db", "-o", "json"])
        .success()
        .json();
    assert_eq!(fetched["parameters"]["size"], 5);
}

#[test]
fn update_without_changes_is_usage_error() {
    let setup = Setup::new(SERVICE);
    setup
        .osb
        .run(&["provision", "simulated-db", "sync", "db"])
        .success();
    let run = setup.osb.run(&["update", "db"]).expect_code(2);
    assert!(
        run.stderr.starts_with("osb: nothing to update"),
        "{}",
        run.stderr
    );
}

#[test]
fn upgrade_moves_to_new_maintenance_version() {
    let setup = Setup::new(SERVICE);
    setup
        .osb
        .run(&["provision", "simulated-db", "small", "orders-db"])
        .success();
    let run = setup.osb.run(&["upgrade", "orders-db"]).success();
    assert!(run.stdout.contains("up to date"), "{}", run.stdout);

    // The operator releases maintenance version 1.1.0 of the plan.
    let config = std::fs::read_to_string(&setup.broker.config_path).unwrap();
    std::fs::write(
        &setup.broker.config_path,
        config.replace("\"1.0.0\"", "\"1.1.0\""),
    )
    .unwrap();
    let broker = setup.broker.restart();
    let osb = common::Osb::new(setup.dir.path(), &broker);

    osb.run(&["upgrade", "orders-db"]).success();
    let instance = osb.instance("orders-db").unwrap();
    assert_eq!(instance["maintenance_version"], "1.1.0");
    assert_eq!(instance["state"], "ready");
    let fetched = osb
        .run(&["fetch", "instance", "orders-db", "-o", "json"])
        .success()
        .json();
    assert_eq!(fetched["maintenance_info"]["version"], "1.1.0");
}

#[test]
fn deprovision_removes_instance_everywhere() {
    let setup = Setup::new(SERVICE);
    setup
        .osb
        .run(&["provision", "simulated-db", "small", "orders-db"])
        .success();
    let id = setup.osb.instance("orders-db").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    setup.osb.run(&["deprovision", "orders-db"]).success();
    assert!(setup.osb.instance("orders-db").is_none());
    let (status, _) = setup.broker.request(
        "DELETE",
        &format!("/v2/service_instances/{id}?service_id=svc-id&plan_id=plan-small"),
    );
    assert_eq!(status, 410);
}

#[test]
fn deprovision_refused_while_bound() {
    let setup = Setup::new(SERVICE);
    setup
        .osb
        .run(&["provision", "simulated-db", "sync", "db"])
        .success();
    setup.osb.run(&["bind", "db", "app"]).success();
    let run = setup.osb.run(&["deprovision", "db"]).expect_code(2);
    assert!(
        run.stderr.contains("still has bindings: app"),
        "{}",
        run.stderr
    );
    assert_eq!(setup.osb.instance("db").unwrap()["state"], "ready");
}

#[test]
fn duplicate_instance_name_rejected() {
    let setup = Setup::new(SERVICE);
    setup
        .osb
        .run(&["provision", "simulated-db", "sync", "db"])
        .success();
    let run = setup
        .osb
        .run(&["provision", "simulated-db", "sync", "db"])
        .expect_code(2);
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);
}

#[test]
fn unknown_plan_lists_known_ones() {
    let setup = Setup::new(SERVICE);
    let run = setup
        .osb
        .run(&["provision", "simulated-db", "huge", "db"])
        .expect_code(2);
    assert!(
        run.stderr.contains("plan \"huge\" not found"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("hint: its plans are: small, sync, shared"),
        "{}",
        run.stderr
    );
    assert!(setup.osb.instance("db").is_none());
}

#[test]
fn catalog_table_and_json() {
    let setup = Setup::new(SERVICE);
    let table = setup.osb.run(&["catalog"]).success();
    let header = table.stdout.lines().next().unwrap();
    assert!(header.starts_with("service"), "{header}");
    assert!(
        table.stdout.contains("simulated-db  small"),
        "{}",
        table.stdout
    );

    let json = setup
        .osb
        .run(&["catalog", "--output", "json"])
        .success()
        .json();
    assert_eq!(json["services"][0]["id"], "svc-id");
    assert_eq!(json["services"][0]["plans"].as_array().unwrap().len(), 3);
}

#[test]
fn show_lists_operations() {
    let setup = Setup::new(SERVICE);
    setup
        .osb
        .run(&["provision", "simulated-db", "small", "orders-db"])
        .success();
    setup
        .osb
        .run(&["update", "orders-db", "-c", "{}"])
        .success();
    let shown = setup
        .osb
        .run(&["show", "orders-db", "-o", "json"])
        .success()
        .json();
    let kinds: Vec<&str> = shown["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|operation| operation["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["provision", "update"]);
    assert_eq!(shown["operations"][0]["state"], "succeeded");
    assert!(
        shown["operations"][0]["token"].is_string(),
        "async provision keeps its operation token"
    );

    let table = setup.osb.run(&["show", "orders-db"]).success();
    assert!(
        table.stdout.contains("provision  succeeded"),
        "{}",
        table.stdout
    );
}
