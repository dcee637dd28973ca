//! The platform duties when the broker fails: orphan mitigation where the
//! specification requires it, none where it forbids it, and a local record
//! that matches the broker's state afterwards.

mod common;

use common::{Run, Setup, SERVICE};

const FAILING_PLANS: &str = r#"
[[services.plans]]
id = "plan-fail-sync"
name = "fail-sync"
description = "Provision and bind answer 500"
backend = { type = "simulated", execution = "synchronous", fail_on = ["provision", "bind"] }

[[services.plans]]
id = "plan-unavailable"
name = "unavailable"
description = "Provision answers 503"
backend = { type = "simulated", execution = "synchronous", fail_on = ["provision"], fail_kind = "unavailable" }

[[services.plans]]
id = "plan-fail-async"
name = "fail-async"
description = "Provision and bind fail while running"
backend = { type = "simulated", execution = "async_preferred", delay_ms = 100, fail_on = ["provision", "bind"] }

[[services.plans]]
id = "plan-bad-parameters"
name = "bad-parameters"
description = "Provision answers 400"
backend = { type = "simulated", execution = "synchronous", fail_on = ["provision"], fail_kind = "invalid_parameters" }

[[services.plans]]
id = "plan-fail-update"
name = "fail-update"
description = "Update answers 500"
backend = { type = "simulated", execution = "synchronous", fail_on = ["update"] }

[[services.plans]]
id = "plan-fail-deprovision"
name = "fail-deprovision"
description = "Deprovision answers 500"
backend = { type = "simulated", execution = "synchronous", fail_on = ["deprovision"] }

[[services.plans]]
id = "plan-slow"
name = "slow"
description = "Asynchronous, two seconds per operation"
backend = { type = "simulated", execution = "async_preferred", delay_ms = 2000 }

[[services.plans]]
id = "plan-slow-sync"
name = "slow-sync"
description = "Synchronous, three seconds per operation"
backend = { type = "simulated", execution = "synchronous", delay_ms = 3000 }
"#;

fn setup() -> Setup {
    Setup::new(&format!("{SERVICE}{FAILING_PLANS}"))
}

/// Asserts that the run mitigated exactly one resource and returns its id.
fn single_mitigated_id(run: &Run) -> String {
    let ids = run.mitigated_ids();
    assert_eq!(
        ids.len(),
        1,
        "expected one orphan mitigation\nstderr:\n{}",
        run.stderr
    );
    ids[0].clone()
}

#[test]
fn server_error_on_provision_mitigated() {
    let setup = setup();
    let run = setup
        .osb
        .run(&["provision", "simulated-db", "fail-sync", "db"])
        .expect_code(1);
    assert!(
        run.stderr
            .contains("osb: could not provision \"db\": broker answered 500"),
        "{}",
        run.stderr
    );
    let id = single_mitigated_id(&run);
    assert!(
        setup.osb.instance("db").is_none(),
        "the record forgets a mitigated instance"
    );
    assert_eq!(setup.broker.instance_status(&id), 404);
    let show = setup.osb.run(&["show", "db"]);
    assert_eq!(show.code, 2);
}

#[test]
fn unavailable_on_provision_mitigated() {
    let setup = setup();
    let run = setup
        .osb
        .run(&["provision", "simulated-db", "unavailable", "db"])
        .expect_code(1);
    assert!(run.stderr.contains("broker answered 503"), "{}", run.stderr);
    let id = single_mitigated_id(&run);
    assert!(setup.osb.instance("db").is_none());
    assert_eq!(setup.broker.instance_status(&id), 404);
}

#[test]
fn failed_async_provision_mitigated() {
    let setup = setup();
    let run = setup
        .osb
        .run(&["provision", "simulated-db", "fail-async", "db"])
        .expect_code(1);
    assert!(
        run.stderr.contains("the operation failed"),
        "{}",
        run.stderr
    );
    let id = single_mitigated_id(&run);
    assert!(setup.osb.instance("db").is_none());
    assert_eq!(setup.broker.instance_status(&id), 404);
}

#[test]
fn polling_timeout_mitigates_instance() {
    let setup = setup();
    let run = setup
        .osb
        .run(&[
            "provision",
            "simulated-db",
            "slow",
            "db",
            "--timeout",
            "500ms",
        ])
        .expect_code(1);
    assert!(run.stderr.contains("polling timed out"), "{}", run.stderr);
    let id = single_mitigated_id(&run);
    assert!(setup.osb.instance("db").is_none());
    assert_eq!(setup.broker.instance_status(&id), 404);
}

// The broker finishes a synchronous provision after the client timed out,
// so the mitigating DELETE succeeds once the provision has ended.
#[test]
fn request_timeout_mitigates_instance() {
    let setup = setup();
    let run = setup
        .osb
        .run(&[
            "provision",
            "simulated-db",
            "slow-sync",
            "db",
            "--timeout",
            "500ms",
        ])
        .expect_code(2);
    assert!(
        run.stderr.contains("did not answer within"),
        "{}",
        run.stderr
    );
    let id = single_mitigated_id(&run);
    assert!(setup.osb.instance("db").is_none());
    assert_eq!(setup.broker.instance_status(&id), 404);
}

#[test]
fn client_error_not_mitigated() {
    let setup = setup();
    let run = setup
        .osb
        .run(&["provision", "simulated-db", "bad-parameters", "db"])
        .expect_code(1);
    assert!(run.stderr.contains("broker answered 400"), "{}", run.stderr);
    assert!(!run.stderr.contains("orphan mitigation"), "{}", run.stderr);
    assert!(
        setup.osb.instance("db").is_none(),
        "a 4xx leaves nothing to record"
    );
}

#[test]
fn server_error_on_bind_mitigated() {
    let setup = setup_with_bind_failure();
    setup
        .osb
        .run(&["provision", "simulated-db", "bind-fails", "db"])
        .success();
    let run = setup.osb.run(&["bind", "db", "app"]).expect_code(1);
    assert!(
        run.stderr
            .contains("could not bind \"app\" to \"db\": broker answered 500"),
        "{}",
        run.stderr
    );
    let binding_id = single_mitigated_id(&run);
    assert!(setup.osb.binding("app").is_none());
    assert_eq!(setup.osb.instance("db").unwrap()["state"], "ready");
    let instance_id = setup.osb.instance("db").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = setup.broker.request(
        "GET",
        &format!("/v2/service_instances/{instance_id}/service_bindings/{binding_id}"),
    );
    assert_eq!(status, 404);
}

fn setup_with_bind_failure() -> Setup {
    Setup::new(&format!(
        "{SERVICE}{}",
        r#"
[[services.plans]]
id = "plan-bind-fails"
name = "bind-fails"
description = "Bind answers 500"
backend = { type = "simulated", execution = "synchronous", fail_on = ["bind"] }

[[services.plans]]
id = "plan-bind-fails-async"
name = "bind-fails-async"
description = "Bind fails while running"
backend = { type = "simulated", execution = "async_preferred", delay_ms = 100, fail_on = ["bind"] }
"#
    ))
}

#[test]
fn failed_async_bind_mitigated() {
    let setup = setup_with_bind_failure();
    setup
        .osb
        .run(&["provision", "simulated-db", "bind-fails-async", "db"])
        .success();
    let run = setup.osb.run(&["bind", "db", "app"]).expect_code(1);
    assert!(
        run.stderr.contains("the operation failed"),
        "{}",
        run.stderr
    );
    single_mitigated_id(&run);
    assert!(setup.osb.binding("app").is_none());
}

#[test]
fn failed_update_changes_nothing() {
    let setup = setup();
    setup
        .osb
        .run(&[
            "provision",
            "simulated-db",
            "fail-update",
            "db",
            "-c",
            r#"{"version": 1}"#,
        ])
        .success();
    let run = setup
        .osb
        .run(&["update", "db", "-c", r#"{"version": 2}"#])
        .expect_code(1);
    assert!(
        run.stderr
            .contains("could not update \"db\": broker answered 500"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("orphan mitigation"),
        "updates are never mitigated\n{}",
        run.stderr
    );

    let instance = setup.osb.instance("db").unwrap();
    assert_eq!(instance["plan_name"], "fail-update");
    assert_eq!(instance["state"], "ready");
    let fetched = setup
        .osb
        .run(&["fetch", "instance", "db", "-o", "json"])
        .success()
        .json();
    assert_eq!(fetched["parameters"]["version"], 1);
    let shown = setup
        .osb
        .run(&["show", "db", "-o", "json"])
        .success()
        .json();
    assert_eq!(shown["operations"][1]["kind"], "update");
    assert_eq!(shown["operations"][1]["state"], "failed");
}

#[test]
fn failed_deprovision_keeps_instance() {
    let setup = setup();
    setup
        .osb
        .run(&["provision", "simulated-db", "fail-deprovision", "db"])
        .success();
    let id = setup.osb.instance("db").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let run = setup.osb.run(&["deprovision", "db"]).expect_code(1);
    assert!(run.stderr.contains("broker answered 500"), "{}", run.stderr);
    assert!(
        run.stderr.contains("deleting it again failed too"),
        "{}",
        run.stderr
    );

    let instance = setup
        .osb
        .instance("db")
        .expect("a failed delete keeps the instance");
    assert_eq!(instance["state"], "delete failed");
    assert_eq!(setup.broker.instance_status(&id), 200);

    setup.osb.run(&["deprovision", "db", "--purge"]).success();
    assert!(setup.osb.instance("db").is_none());
}

#[test]
fn record_matches_broker_after_failures() {
    let setup = setup();
    let mut mitigated = Vec::new();
    for plan in [
        "fail-sync",
        "sync",
        "unavailable",
        "small",
        "fail-async",
        "bad-parameters",
    ] {
        let name = format!("db-{plan}");
        let run = setup.osb.run(&["provision", "simulated-db", plan, &name]);
        mitigated.extend(run.mitigated_ids());
    }
    assert_eq!(
        mitigated.len(),
        3,
        "fail-sync, unavailable and fail-async are mitigated"
    );

    let recorded = setup.osb.run(&["instances", "-o", "json"]).success().json();
    let names: Vec<&str> = recorded
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["db-small", "db-sync"]);
    for row in recorded.as_array().unwrap() {
        assert_eq!(row["state"], "ready");
        assert_eq!(
            setup.broker.instance_status(row["id"].as_str().unwrap()),
            200
        );
    }
    for id in &mitigated {
        assert_eq!(
            setup.broker.instance_status(id),
            404,
            "instance {id} was mitigated"
        );
    }
}

#[test]
fn concurrent_binds_both_succeed() {
    let setup = setup();
    setup
        .osb
        .run(&["provision", "simulated-db", "slow", "db"])
        .success();
    let first = setup
        .osb
        .bare_command()
        .env("OSB_URL", &setup.osb.url)
        .env("OSB_USER", common::USER)
        .env("OSB_PASSWORD", common::PASSWORD)
        .args(["bind", "db", "first"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let second = setup.osb.run(&["bind", "db", "second"]);
    let first = first.wait_with_output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(setup.osb.binding("first").is_some());
    assert!(setup.osb.binding("second").is_some());
}
