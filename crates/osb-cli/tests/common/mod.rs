//! Test support: a real `osb-broker` on an ephemeral port, the `osb` binary
//! with its own OSB_HOME, and a minimal HTTP client to check the broker's
//! state behind the command line's back.

#![allow(dead_code)]

pub mod fake_broker;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

pub const USER: &str = "admin";
pub const PASSWORD: &str = "broker-secret-7731";

/// The catalog most tests use. `{extra_plans}` is replaced with more plans.
pub const SERVICE: &str = r#"
[[services]]
id = "svc-id"
name = "simulated-db"
description = "A simulated database"
bindable = true
instances_retrievable = true
bindings_retrievable = true
plan_updateable = true
tags = ["sql", "simulated"]

[[services.plans]]
id = "plan-small"
name = "small"
description = "Small plan, asynchronous"
binding_rotatable = true
maximum_polling_duration = 60
maintenance_info = { version = "1.0.0" }
backend = { type = "simulated", execution = "async_preferred", delay_ms = 200 }

[[services.plans]]
id = "plan-sync"
name = "sync"
description = "Synchronous plan"
backend = { type = "simulated", execution = "synchronous" }

[[services.plans]]
id = "plan-static"
name = "shared"
description = "Shared account"
backend = { type = "static", credentials = { uri = "https://example.test", api_key = "it's-a-key" } }
"#;

/// A scratch directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!("osb-cli-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Builds `osb-broker` once per test binary and returns its path.
/// `OSB_BROKER_BIN` names a prebuilt binary instead.
fn broker_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(path) = std::env::var_os("OSB_BROKER_BIN") {
            return PathBuf::from(path);
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "osb-broker",
                "--bin",
                "osb-broker",
            ])
            .status()
            .expect("cargo could not be started to build osb-broker");
        assert!(status.success(), "building osb-broker failed");
        let osb = Path::new(env!("CARGO_BIN_EXE_osb"));
        osb.with_file_name(format!("osb-broker{}", std::env::consts::EXE_SUFFIX))
    })
}

/// A running broker with its own state database, stopped on drop.
pub struct Broker {
    child: Child,
    pub url: String,
    pub config_path: PathBuf,
}

impl Broker {
    /// Starts a broker whose configuration is the header (credentials,
    /// state file in `dir`) followed by `services`.
    pub fn start(dir: &Path, services: &str) -> Broker {
        let config_path = dir.join("broker.toml");
        let config = format!(
            "listen = \"127.0.0.1:0\"\ndev_mode = true\n\n[[credentials]]\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\n\n[state]\nsqlite = \"{}\"\n{services}",
            dir.join("broker-state.db").display()
        );
        std::fs::write(&config_path, config).unwrap();
        Self::start_with_config(&config_path, "127.0.0.1:0")
    }

    fn start_with_config(config_path: &Path, listen: &str) -> Broker {
        let mut child = Command::new(broker_binary())
            .args(["serve", "--config"])
            .arg(config_path)
            .args(["--listen", listen])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("osb-broker could not be started");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from osb-broker: {line:?}"))
            .to_owned();
        Broker {
            child,
            url,
            config_path: config_path.to_owned(),
        }
    }

    /// Stops this broker and starts another on the same address,
    /// configuration file and state database, for example after the catalog
    /// changed. The address stays, because the local record is keyed by URL.
    pub fn restart(mut self) -> Broker {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let address = self.url.strip_prefix("http://").unwrap().to_owned();
        Self::start_with_config(&self.config_path.clone(), &address)
    }

    /// Sends a request with Basic authentication and the API version header,
    /// and returns the status and the JSON body (`Null` if not JSON).
    pub fn request(&self, method: &str, path_and_query: &str) -> (u16, Value) {
        let address = self.url.strip_prefix("http://").unwrap();
        let mut stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
        write!(
            stream,
            "{method} {path_and_query} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Basic {auth}\r\nX-Broker-API-Version: 2.17\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status: u16 = response.split(' ').nth(1).unwrap().parse().unwrap();
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body)
            .unwrap_or("");
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    /// Returns the status of `GET` on an instance.
    pub fn instance_status(&self, instance_id: &str) -> u16 {
        self.request("GET", &format!("/v2/service_instances/{instance_id}"))
            .0
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `osb` binary with its own OSB_HOME, pointed at a broker.
pub struct Osb {
    pub home: PathBuf,
    pub url: String,
}

/// The result of one `osb` run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from_output(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Stdout parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("stdout is not JSON ({error}): {}", self.stdout))
    }

    /// Panics with both streams unless the exit code is as expected.
    pub fn expect_code(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "unexpected exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn success(self) -> Run {
        self.expect_code(0)
    }

    /// Returns the ids in `orphan mitigation deleted instance ID` (or binding) lines.
    pub fn mitigated_ids(&self) -> Vec<String> {
        self.stderr
            .lines()
            .filter_map(|line| line.split("orphan mitigation deleted ").nth(1))
            .filter_map(|rest| rest.split_whitespace().nth(1))
            .map(str::to_owned)
            .collect()
    }
}

impl Osb {
    pub fn new(dir: &Path, broker: &Broker) -> Osb {
        Osb {
            home: dir.join("osb-home"),
            url: broker.url.clone(),
        }
    }

    /// Builds a command with a clean environment: only OSB_HOME set, no proxies.
    pub fn bare_command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_osb"));
        for name in [
            "OSB_URL",
            "OSB_USER",
            "OSB_PASSWORD",
            "OSB_PROFILE",
            "OSB_API_VERSION",
            "OSB_PLATFORM",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
        ] {
            command.env_remove(name);
        }
        command.env("OSB_HOME", &self.home);
        command
    }

    /// Runs `osb` with the broker given through the environment variables.
    pub fn run(&self, args: &[&str]) -> Run {
        let output = self
            .bare_command()
            .env("OSB_URL", &self.url)
            .env("OSB_USER", USER)
            .env("OSB_PASSWORD", PASSWORD)
            .args(args)
            .output()
            .unwrap();
        Run::from_output(output)
    }

    /// Runs `osb` with exactly these arguments and no broker environment.
    pub fn run_bare(&self, args: &[&str]) -> Run {
        Run::from_output(self.bare_command().args(args).output().unwrap())
    }

    /// Returns the recorded instance of that name, from `osb instances --output json`.
    pub fn instance(&self, name: &str) -> Option<Value> {
        let list = self
            .run(&["instances", "--output", "json"])
            .success()
            .json();
        list.as_array()
            .unwrap()
            .iter()
            .find(|row| row["name"] == name)
            .cloned()
    }

    /// Returns the recorded binding of that name, from `osb bindings --output json`.
    pub fn binding(&self, name: &str) -> Option<Value> {
        let list = self.run(&["bindings", "--output", "json"]).success().json();
        list.as_array()
            .unwrap()
            .iter()
            .find(|row| row["name"] == name)
            .cloned()
    }
}

/// A broker and an `osb` that talks to it, in one scratch directory.
pub struct Setup {
    pub osb: Osb,
    pub broker: Broker,
    pub dir: TempDir,
}

impl Setup {
    pub fn new(services: &str) -> Setup {
        let dir = TempDir::new();
        let broker = Broker::start(dir.path(), services);
        let osb = Osb::new(dir.path(), &broker);
        Setup { osb, broker, dir }
    }
}
