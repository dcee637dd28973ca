//! `osb check` against the fixture broker in `support/`, whose switches
//! each break specific rules, and against the real `osb-broker`, which
//! must pass every check.

mod common;
mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;
use support::{Fault, Fixture};

/// Upper bound for one `osb check` run in these tests.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

struct CheckRun {
    code: i32,
    stdout: String,
    stderr: String,
}

impl CheckRun {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|error| {
            panic!(
                "stdout is not JSON ({error}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// Returns the ids of the checks with this outcome.
    fn ids(&self, outcome: &str) -> Vec<String> {
        self.json()["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|check| check["outcome"] == outcome)
            .map(|check| check["id"].as_str().unwrap().to_owned())
            .collect()
    }

    fn describe(&self) -> String {
        format!(
            "exit code {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Builds the `osb` command with a clean environment and its own OSB_HOME.
fn osb_command(home: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_osb"));
    for name in [
        "OSB_URL",
        "OSB_USER",
        "OSB_PASSWORD",
        "OSB_PROFILE",
        "OSB_API_VERSION",
        "OSB_PLATFORM",
    ] {
        command.env_remove(name);
    }
    command
        .env("OSB_HOME", home)
        .env("NO_PROXY", "127.0.0.1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

async fn run_check(url: &str, user: &str, password: &str, extra: &[&str]) -> CheckRun {
    let home = common::TempDir::new();
    let mut command = osb_command(home.path());
    command
        .args(["check", url, "--user", user, "--password", password])
        .args(extra);
    let output = tokio::time::timeout(RUN_TIMEOUT, command.output())
        .await
        .expect("osb check did not finish in time")
        .expect("osb could not be started");
    CheckRun {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

async fn check_fixture(fixture: &Fixture, extra: &[&str]) -> CheckRun {
    let mut arguments = vec!["--output", "json"];
    arguments.extend_from_slice(extra);
    run_check(&fixture.url, support::USER, support::PASSWORD, &arguments).await
}

/// Runs the checks against a fixture with these faults, and asserts that
/// each listed check fails and that the run leaves nothing behind.
async fn assert_fails(faults: &[Fault], expected: &[&str]) {
    let fixture = Fixture::start(faults).await;
    let run = check_fixture(&fixture, &[]).await;
    assert_eq!(run.code, 1, "{}", run.describe());
    let failed = run.ids("fail");
    for id in expected {
        assert!(
            failed.iter().any(|failed| failed == id),
            "{id} did not fail with {faults:?}; failed: {failed:?}"
        );
    }
    if !faults.contains(&Fault::Undeletable) && !faults.contains(&Fault::OkToEverything) {
        assert_eq!(
            fixture.live_instances(),
            0,
            "instances left behind with {faults:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn conforming_fixture_passes() {
    let fixture = Fixture::start(&[]).await;
    let run = check_fixture(&fixture, &[]).await;
    assert_eq!(run.code, 0, "{}", run.describe());
    assert_eq!(run.ids("fail"), Vec::<String>::new());
    assert_eq!(run.ids("warn"), Vec::<String>::new());
    assert!(run.ids("pass").len() > 100, "{}", run.describe());
    assert_eq!(fixture.live_instances(), 0);
    assert_eq!(fixture.live_bindings(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn ok_to_everything_fails_each_category() {
    assert_fails(
        &[Fault::OkToEverything],
        &[
            "catalog.services",
            "auth.catalog-missing",
            "last-operation.unknown-instance",
            "deprovision.unknown",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_catalog_fails_catalog_rules() {
    assert_fails(
        &[Fault::BadCatalog],
        &[
            "catalog.openapi-schema",
            "catalog.offering-fields",
            "catalog.plan-fields",
            "catalog.ids-unique",
            "catalog.names-unique",
            "catalog.optional-types",
            "catalog.requires",
            "catalog.maintenance-info",
            "catalog.dashboard-client",
            "catalog.schemas",
            "catalog.stable-ids",
        ],
    )
    .await;
    let fixture = Fixture::start(&[Fault::BadCatalog]).await;
    let run = check_fixture(&fixture, &["--no-provision"]).await;
    assert!(
        run.ids("warn").contains(&"catalog.cli-names".to_owned()),
        "{}",
        run.describe()
    );
    assert!(
        !run.stdout.contains("\"secret\": \"\""),
        "the dashboard secret must be masked"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_auth_fails_auth_checks() {
    assert_fails(
        &[Fault::NoAuth],
        &[
            "auth.catalog-missing",
            "auth.catalog-wrong",
            "auth.last-operation-missing",
            "auth.deprovision-wrong",
            "auth.provision-missing",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_version_check_warns() {
    let fixture = Fixture::start(&[Fault::NoVersionCheck]).await;
    let run = check_fixture(&fixture, &["--no-provision"]).await;
    assert_eq!(run.code, 0, "a MAY must not fail: {}", run.describe());
    let warned = run.ids("warn");
    assert!(
        warned.contains(&"version.missing".to_owned()),
        "{}",
        run.describe()
    );
    assert!(
        warned.contains(&"version.unsupported".to_owned()),
        "{}",
        run.describe()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_410_fails_gone_checks() {
    assert_fails(
        &[Fault::No410],
        &[
            "deprovision.unknown",
            "deprovision.gone",
            "unbind.unknown",
            "unbind.gone",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn created_on_repeat_fails_idempotency() {
    assert_fails(
        &[Fault::CreatedOnRepeat],
        &[
            "provision.repeat-identical",
            "provision.concurrent-identical",
            "bind.repeat-identical",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_conflict_fails_conflict_checks() {
    assert_fails(
        &[Fault::NoConflict],
        &["provision.repeat-conflict", "bind.repeat-conflict"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_error_codes_fail_reserved_codes() {
    assert_fails(
        &[Fault::WrongErrorCodes],
        &[
            "provision.without-accepts-incomplete",
            "provision.maintenance-info-conflict",
            "update.maintenance-info-conflict",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_validation_fails_malformed_checks() {
    assert_fails(
        &[Fault::NoValidation],
        &[
            "provision.malformed-body",
            "provision.missing-service-id",
            "provision.missing-space-guid",
            "provision.empty-plan-id",
            "update.malformed-body",
            "update.missing-service-id",
            "bind.malformed-body",
            "bind.missing-plan-id",
            "unbind.missing-service-id",
            "deprovision.missing-service-id",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unrequested_202_fails() {
    assert_fails(
        &[Fault::AsyncWithoutAcceptsIncomplete],
        &[
            "provision.without-accepts-incomplete",
            "update.without-accepts-incomplete",
            "bind.without-accepts-incomplete",
            "unbind.without-accepts-incomplete",
            "deprovision.without-accepts-incomplete",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_last_operation_fails_polling() {
    assert_fails(&[Fault::BadLastOperation], &["provision.last-operation"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn new_operation_on_repeat_fails() {
    assert_fails(
        &[Fault::NewOperationOnRepeat],
        &[
            "provision.repeat-in-progress",
            "update.repeat-in-progress",
            "bind.repeat-in-progress",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_while_creating_fails() {
    assert_fails(
        &[Fault::FetchWhileCreating],
        &["fetch-instance.in-progress", "fetch-binding.in-progress"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_bodies_fail_body_checks() {
    assert_fails(
        &[Fault::BadBodies],
        &[
            "provision.body",
            "bind.body",
            "fetch-instance.ok",
            "fetch-instance.after-plan-change",
            "fetch-binding.ok",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_404_fails_unknown_checks() {
    assert_fails(
        &[Fault::No404],
        &[
            "last-operation.unknown-instance",
            "last-operation.unknown-binding",
            "fetch-instance.unknown",
            "fetch-binding.unknown",
            "fetch-instance.deleted",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn undeletable_instances_reported() {
    assert_fails(
        &[Fault::Undeletable],
        &["deprovision.without-accepts-incomplete", "cleanup.delete"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bare_headers_warn() {
    let fixture = Fixture::start(&[Fault::BareHeaders]).await;
    let run = check_fixture(&fixture, &["--no-provision"]).await;
    let warned = run.ids("warn");
    assert!(
        warned.contains(&"headers.content-type".to_owned()),
        "{}",
        run.describe()
    );
    assert!(
        warned.contains(&"headers.request-identity".to_owned()),
        "{}",
        run.describe()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_provision_creates_nothing() {
    let fixture = Fixture::start(&[]).await;
    let run = check_fixture(&fixture, &["--no-provision"]).await;
    assert_eq!(run.code, 0, "{}", run.describe());
    assert_eq!(fixture.created_instances(), 0);
    assert!(run.ids("skip").contains(&"provision.lifecycle".to_owned()));
}

#[tokio::test(flavor = "multi_thread")]
async fn target_read_from_environment() {
    let fixture = Fixture::start(&[]).await;
    let home = common::TempDir::new();
    let mut command = osb_command(home.path());
    command
        .args(["check", "--no-provision"])
        .env("OSB_URL", &fixture.url)
        .env("OSB_USER", support::USER)
        .env("OSB_PASSWORD", support::PASSWORD);
    let output = tokio::time::timeout(RUN_TIMEOUT, command.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("pass  auth: the catalog without credentials gets 401"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failure_shows_exchange_with_secrets_masked() {
    let fixture = Fixture::start(&[Fault::CreatedOnRepeat]).await;
    let run = run_check(
        &fixture.url,
        support::USER,
        support::PASSWORD,
        &["--plan", "fixture-db:sync"],
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.describe());

    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        support::USER,
        support::PASSWORD
    ));
    assert!(
        run.stdout
            .contains("FAIL  bind: an identical bind of an existing binding gets 200"),
        "{}",
        run.describe()
    );

    assert!(run.stdout.contains("sent: PUT "), "{}", run.describe());
    assert!(
        run.stdout.contains("got:  201 Created"),
        "{}",
        run.describe()
    );
    assert!(
        run.stdout.contains("Authorization: Basic ***"),
        "{}",
        run.describe()
    );

    assert!(
        !run.stdout.contains(support::CREDENTIAL_PASSWORD),
        "credentials leaked: {}",
        run.stdout
    );
    assert!(!run.stdout.contains(support::PASSWORD), "password leaked");
    assert!(!run.stdout.contains(&basic), "Authorization leaked");

    let summary = run.stdout.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with("checks: ") && summary.contains(" failed, "),
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn junit_report_lists_failures() {
    let fixture = Fixture::start(&[Fault::No410]).await;
    let dir = common::TempDir::new();
    let junit = dir.path().join("report.xml");
    let run = check_fixture(&fixture, &["--junit", junit.to_str().unwrap()]).await;
    assert_eq!(run.code, 1, "{}", run.describe());
    let xml = std::fs::read_to_string(&junit).unwrap();
    let failed = run.json()["summary"]["failed"].as_u64().unwrap() as usize;
    assert!(failed > 0);
    assert_eq!(xml.matches("<failure ").count(), failed);
    assert!(xml.contains(&format!("failures=\"{failed}\"")));
    assert!(xml.trim_end().ends_with("</testsuites>"));
}

#[tokio::test(flavor = "multi_thread")]
async fn interrupt_deletes_created_instances() {
    let fixture = Fixture::start(&[Fault::SlowAsync]).await;
    let home = common::TempDir::new();
    let mut command = osb_command(home.path());
    command.args([
        "check",
        &fixture.url,
        "--user",
        support::USER,
        "--password",
        support::PASSWORD,
        "--plan",
        "fixture-db:async",
    ]);
    let child = command.spawn().unwrap();
    let pid = child.id().unwrap();

    let started = Instant::now();
    while fixture.live_instances() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no instance was provisioned"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    let output = tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("interrupted"), "stderr: {stderr}");
    assert_eq!(
        fixture.live_instances(),
        0,
        "the interrupted run left an instance behind"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_and_usage_errors_exit_2() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let run = run_check(&closed, "u", "p", &[]).await;
    assert_eq!(run.code, 2, "{}", run.describe());
    assert!(
        run.stderr.contains("could not fetch the catalog"),
        "{}",
        run.describe()
    );

    let fixture = Fixture::start(&[]).await;
    let run = run_check(
        &fixture.url,
        support::USER,
        support::PASSWORD,
        &["--plan", "fixture-db:missing"],
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.describe());
    assert!(
        run.stderr.contains("not found in the catalog"),
        "{}",
        run.describe()
    );
}

/// A catalog for the real broker with a synchronous plan, an
/// asynchronous-only plan and a static plan.
const BROKER_SERVICES: &str = r#"
[[services]]
id = "check-db"
name = "check-db"
description = "A simulated database"
bindable = true
instances_retrievable = true
bindings_retrievable = true
plan_updateable = true

[[services.plans]]
id = "check-db-sync"
name = "sync"
description = "Synchronous"
maintenance_info = { version = "1.0.0" }
backend = { type = "simulated" }

[services.plans.schemas.service_instance.create.parameters]
"$schema" = "http://json-schema.org/draft-07/schema#"
type = "object"
properties.size_gb = { type = "integer", minimum = 1 }

[[services.plans]]
id = "check-db-async"
name = "async"
description = "Asynchronous only"
maximum_polling_duration = 120
maintenance_info = { version = "2.0.0" }
backend = { type = "simulated", execution = "async_only", delay_ms = 500 }

[[services]]
id = "check-api"
name = "check-api"
description = "Shared credentials"
bindable = true
bindings_retrievable = true

[[services.plans]]
id = "check-api-standard"
name = "standard"
description = "Every binding gets the same key"
backend = { type = "static", credentials = { url = "https://api.example.test", api_key = "check-key" } }
"#;

/// The real broker passes every check. The broker binary is built by
/// `common`, or taken from OSB_BROKER_BIN.
#[tokio::test(flavor = "multi_thread")]
async fn real_broker_passes_every_check() {
    let dir = common::TempDir::new();
    let broker = tokio::task::spawn_blocking({
        let path = dir.path().to_owned();
        move || common::Broker::start(&path, BROKER_SERVICES)
    })
    .await
    .unwrap();
    let junit = dir.path().join("junit.xml");
    let run = run_check(
        &broker.url,
        common::USER,
        common::PASSWORD,
        &["--output", "json", "--junit", junit.to_str().unwrap()],
    )
    .await;
    assert_eq!(run.ids("fail"), Vec::<String>::new(), "{}", run.describe());
    assert_eq!(run.code, 0, "{}", run.describe());
    assert!(run.ids("pass").len() > 100, "{}", run.describe());
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(!xml.contains("<failure"));

    let text = run_check(
        &broker.url,
        common::USER,
        common::PASSWORD,
        &["--no-provision"],
    )
    .await;
    assert_eq!(text.code, 0, "{}", text.describe());
    let summary = text.stdout.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with("checks: ") && summary.contains(" passed, 0 failed, "),
        "{summary}"
    );

    // The configuration file picks the plan and its parameters: a valid
    // size passes, and a size the plan's schema rejects fails the provision.
    let config = dir.path().join("check.yaml");
    for (size, expected_code) in [(2, 0), (0, 1)] {
        let yaml =
            format!("plans:\n  - plan: check-db:sync\n    parameters: {{size_gb: {size}}}\n");
        std::fs::write(&config, yaml).unwrap();
        let run = run_check(
            &broker.url,
            common::USER,
            common::PASSWORD,
            &["--output", "json", "--config", config.to_str().unwrap()],
        )
        .await;
        assert_eq!(
            run.code,
            expected_code,
            "size_gb {size}: {}",
            run.describe()
        );
        let plans: Vec<Value> = run.json()["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|check| check.get("plan").cloned())
            .collect();
        assert!(!plans.is_empty());
        assert!(
            plans.iter().all(|plan| plan == "check-db:sync"),
            "{plans:?}"
        );
        if expected_code == 1 {
            let failed = run.ids("fail");
            let id = "provision.without-accepts-incomplete".to_owned();
            assert!(failed.contains(&id), "{failed:?}");
        }
    }
}
