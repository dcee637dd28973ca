//! Broker targets from flags, environment and profiles; exit codes; and
//! passwords that never show.

mod common;

use std::process::Stdio;

use common::{Setup, PASSWORD, SERVICE, USER};

#[test]
fn saved_profile_used_without_flags() {
    let setup = Setup::new(SERVICE);
    let osb = &setup.osb;
    osb.run_bare(&[
        "profile",
        "save",
        "local",
        "--url",
        &osb.url,
        "--user",
        USER,
        "--password",
        PASSWORD,
    ])
    .success();
    let config = std::fs::read_to_string(osb.home.join("config.yaml")).unwrap();
    assert!(config.contains("current: local"), "{config}");

    osb.run_bare(&["provision", "simulated-db", "sync", "db"])
        .success();
    let listed = osb.run_bare(&["instances", "-o", "json"]).success().json();
    assert_eq!(listed[0]["name"], "db");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(osb.home.join("config.yaml"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the profile file holds passwords");
    }
}

#[test]
fn profile_list_hides_password() {
    let setup = Setup::new(SERVICE);
    let osb = &setup.osb;
    osb.run_bare(&[
        "profile",
        "save",
        "a",
        "--url",
        &osb.url,
        "--user",
        USER,
        "--password",
        PASSWORD,
    ])
    .success();
    let table = osb.run_bare(&["profile", "list"]).success();
    assert!(table.stdout.contains("***"), "{}", table.stdout);
    assert!(!table.stdout.contains(PASSWORD));
    let json = osb.run_bare(&["profile", "list", "-o", "json"]).success();
    assert!(!json.stdout.contains(PASSWORD));
    assert_eq!(json.json()[0]["password_set"], true);
}

#[test]
fn named_profile_selected_by_flag() {
    let setup = Setup::new(SERVICE);
    let osb = &setup.osb;
    osb.run_bare(&["profile", "save", "broken", "--url", "http://127.0.0.1:9"])
        .success();
    osb.run_bare(&[
        "profile",
        "save",
        "good",
        "--url",
        &osb.url,
        "--user",
        USER,
        "--password",
        PASSWORD,
    ])
    .success();
    osb.run_bare(&["profile", "use", "broken"]).success();
    osb.run_bare(&["catalog"]).expect_code(2);
    osb.run_bare(&["catalog", "--profile", "good"]).success();
    let run = osb
        .run_bare(&["catalog", "--profile", "missing"])
        .expect_code(2);
    assert!(
        run.stderr.contains("profile \"missing\" not found"),
        "{}",
        run.stderr
    );
}

#[test]
fn flags_override_environment() {
    let setup = Setup::new(SERVICE);
    let run = setup
        .osb
        .bare_command()
        .env("OSB_URL", "http://127.0.0.1:9")
        .env("OSB_USER", USER)
        .env("OSB_PASSWORD", "wrong")
        .args(["catalog", "--url", &setup.osb.url, "--password", PASSWORD])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

#[test]
fn wrong_password_fails_without_echo() {
    let setup = Setup::new(SERVICE);
    let run = setup
        .osb
        .run_bare(&[
            "catalog",
            "--url",
            &setup.osb.url,
            "--user",
            USER,
            "--password",
            "not-the-password-42",
        ])
        .expect_code(1);
    assert!(
        run.stderr
            .starts_with("osb: could not fetch the catalog: broker answered 401"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("hint: check --user and --password"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("not-the-password-42"));
}

#[test]
fn unreachable_broker_is_exit_2() {
    let dir = common::TempDir::new();
    let osb = common::Osb {
        home: dir.path().join("home"),
        url: "http://127.0.0.1:9".into(),
    };
    let run = osb.run(&["catalog"]).expect_code(2);
    assert!(
        run.stderr
            .starts_with("osb: could not connect to http://127.0.0.1:9/"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint: check --url"), "{}", run.stderr);
    assert!(!run.stderr.contains(PASSWORD));
}

#[test]
fn missing_url_is_usage_error() {
    let dir = common::TempDir::new();
    let osb = common::Osb {
        home: dir.path().join("home"),
        url: String::new(),
    };
    let run = osb.run_bare(&["catalog"]).expect_code(2);
    assert!(
        run.stderr.starts_with("osb: no broker URL given"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("hint: pass --url, set OSB_URL"),
        "{}",
        run.stderr
    );
}

#[test]
fn help_hides_password_from_environment() {
    let dir = common::TempDir::new();
    let osb = common::Osb {
        home: dir.path().join("home"),
        url: String::new(),
    };
    let output = osb
        .bare_command()
        .env("OSB_PASSWORD", "env-secret-99")
        .env("OSB_USER", "shown-user")
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(help.contains("--password"), "{help}");
    assert!(!help.contains("env-secret-99"), "{help}");
}

#[test]
fn unknown_names_are_usage_errors() {
    let setup = Setup::new(SERVICE);
    let run = setup.osb.run(&["deprovision", "nope"]).expect_code(2);
    assert!(
        run.stderr
            .starts_with("osb: instance \"nope\" not found in the local record"),
        "{}",
        run.stderr
    );
    assert!(run
        .stderr
        .contains("hint: list the instances with `osb instances`"));
    setup.osb.run(&["credentials", "nope"]).expect_code(2);
    setup.osb.run(&["provision", "simulated-db"]).expect_code(2);
    let invalid = setup
        .osb
        .run(&["provision", "simulated-db", "sync", "bad name"])
        .expect_code(2);
    assert!(
        invalid.stderr.contains("invalid instance name"),
        "{}",
        invalid.stderr
    );
}

#[test]
fn broken_pipe_ends_quietly() {
    let setup = Setup::new(SERVICE);
    let osb = env!("CARGO_BIN_EXE_osb");
    // The reader closes its end at once and stays alive, so osb writes into a closed pipe.
    let script = format!("'{osb}' catalog --output json | {{ exec 0<&-; sleep 1; }}; echo \"status=${{PIPESTATUS[0]}}\"");
    let output = setup
        .osb
        .bare_command()
        .env("OSB_URL", &setup.osb.url)
        .env("OSB_USER", USER)
        .env("OSB_PASSWORD", PASSWORD)
        .program_bash(&script)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stdout.contains("status=0"),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(stderr.is_empty(), "{stderr}");
}

/// Runs a bash script with the environment of an `osb` command.
trait ProgramBash {
    fn program_bash(&mut self, script: &str) -> std::process::Command;
}

impl ProgramBash for std::process::Command {
    fn program_bash(&mut self, script: &str) -> std::process::Command {
        let mut bash = std::process::Command::new("bash");
        bash.args(["-c", script]);
        for (key, value) in self.get_envs() {
            match value {
                Some(value) => bash.env(key, value),
                None => bash.env_remove(key),
            };
        }
        bash
    }
}
