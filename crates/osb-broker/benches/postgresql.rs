//! Benchmark of the PostgreSQL service against the local server at
//! 127.0.0.1:5432 (role `postgres`, trust authentication).
//!
//!     cargo build --release -p osb-broker
//!     cargo bench -p osb-broker --bench postgresql
//!
//! It measures three things:
//!
//! 1. Full cycles (provision, bind, unbind, deprovision) through the release
//!    `osb-broker` binary over HTTP, on a plan that runs synchronously, at
//!    concurrency 1 and 8.
//! 2. The same cycles called directly on `PostgresBackend` in this process:
//!    the same SQL, without HTTP and without the state store. The broker's
//!    overhead is (HTTP time - direct time) / direct time.
//! 3. 100 concurrent provisions through HTTP, then 100 concurrent
//!    deprovisions: their errors and wall time.
//!
//! Every id is a fresh uuid, so the bench only makes and drops its own
//! `osb_<hash>` objects. At the end it deprovisions, directly on the backend,
//! every instance that it could not confirm gone, and checks that none of its
//! objects is left.
//!
//! Settings, from the environment:
//!
//! | variable               | default | meaning                                      |
//! |------------------------|---------|----------------------------------------------|
//! | `OSB_BENCH_RUNS`       | 3       | runs of every measurement                    |
//! | `OSB_BENCH_CYCLES_C1`  | 200     | cycles per run at concurrency 1              |
//! | `OSB_BENCH_CYCLES_C8`  | 400     | cycles per run at concurrency 8              |
//! | `OSB_BENCH_BURST`      | 100     | concurrent provisions in the burst test      |
//! | `OSB_BENCH_WARMUP`     | 5       | uncounted cycles before each run, per path   |
//! | `OSB_BENCH_BLOCKS`     | 4       | blocks each run's cycles are split into      |
//!
//! Within a run the two paths alternate block by block (direct, HTTP, HTTP,
//! direct, ...), because the load of a shared machine drifts. A path's wall
//! time is the sum of its blocks' wall times, and each block starts with idle
//! workers, so at concurrency 8 every block has a short ramp up and down.
//!
//! The broker runs with the environment's `RUST_LOG`, or its default (`info`),
//! and its log goes to /dev/null.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use osb_broker::backends::postgresql::names::InstanceNames;
use osb_broker::backends::postgresql::{
    ExecutionMode, PlanConfig, PostgresBackend, ServerConfig, TlsMode,
};
use osbkit::types::JsonObject;
use osbkit::{Backend, BindJob, DeprovisionJob, JobContext, ProvisionJob, UnbindJob};
use reqwest::StatusCode;
use serde_json::json;

const ADMIN_URL: &str = "postgresql://postgres@127.0.0.1:5432/postgres";
const SERVICE_ID: &str = "9d0c5a7e-2b41-4f7c-8e3a-6b1f0d2c4e58";
const PLAN_ID: &str = "1e6b3f9a-7c2d-4a5e-b0f8-3d9c2a1e7b64";
const USER: &str = "bench";
const PASSWORD: &str = "bench-password";
const CONCURRENCY: [usize; 2] = [1, 8];
/// Maximum time of one HTTP request before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the broker may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    // `cargo bench` passes --bench; `cargo test --benches` does not, and a
    // test run should not wait minutes for PostgreSQL.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!(
            "postgresql bench: skipped; run it with `cargo bench -p osb-broker --bench postgresql`"
        );
        return ExitCode::SUCCESS;
    }
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("postgresql bench: {message}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("postgresql bench: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(settings))
}

struct Settings {
    runs: usize,
    cycles: [usize; 2],
    burst: usize,
    warmup: usize,
    blocks: usize,
}

impl Settings {
    fn from_env() -> Result<Self, String> {
        Ok(Settings {
            runs: env_count("OSB_BENCH_RUNS", 3, 1)?,
            cycles: [
                env_count("OSB_BENCH_CYCLES_C1", 200, 1)?,
                env_count("OSB_BENCH_CYCLES_C8", 400, 1)?,
            ],
            burst: env_count("OSB_BENCH_BURST", 100, 1)?,
            warmup: env_count("OSB_BENCH_WARMUP", 5, 0)?,
            blocks: env_count("OSB_BENCH_BLOCKS", 4, 1)?,
        })
    }
}

/// Reads a whole number of at least `minimum` from the environment.
fn env_count(name: &str, default: usize, minimum: usize) -> Result<usize, String> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(value) => match value.trim().parse::<usize>() {
            Ok(count) if count >= minimum => Ok(count),
            _ => Err(format!(
                "{name} is {value:?}; set a whole number of at least {minimum}"
            )),
        },
    }
}

async fn run(settings: Settings) -> ExitCode {
    let binary = match broker_binary() {
        Ok(binary) => binary,
        Err(message) => {
            eprintln!("postgresql bench: {message}");
            return ExitCode::FAILURE;
        }
    };
    let server_version = match postgres_version().await {
        Ok(version) => version,
        Err(message) => {
            eprintln!("postgresql bench: {message}");
            return ExitCode::FAILURE;
        }
    };
    println!("broker binary: {}", binary.display());
    println!("PostgreSQL {server_version} at 127.0.0.1:5432");
    println!(
        "runs {}, cycles {} at concurrency 1 and {} at concurrency 8 in {} blocks, burst {}, warm-up {}",
        settings.runs,
        settings.cycles[0],
        settings.cycles[1],
        settings.blocks,
        settings.burst,
        settings.warmup
    );

    let created = Created::default();
    let outcome = measure_all(&settings, &binary, &created).await;
    let cleanup = clean_up(&created).await;

    let mut failed = false;
    match outcome {
        Ok(results) => {
            results.print_summary(&settings);
            if results.burst_errors() > 0 {
                eprintln!(
                    "postgresql bench: {} requests of the burst test failed; the target is 0",
                    results.burst_errors()
                );
                failed = true;
            }
        }
        Err(message) => {
            eprintln!("postgresql bench: {message}");
            failed = true;
        }
    }
    match cleanup {
        Ok(count) => {
            println!("\ncleanup: every instance of the bench is gone ({count} instance ids used)")
        }
        Err(message) => {
            eprintln!("postgresql bench: cleanup: {message}");
            failed = true;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Finds the release binary, which `cargo bench` does not build.
fn broker_binary() -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| {
            if dir.is_absolute() {
                dir
            } else {
                root.join(dir)
            }
        })
        .unwrap_or_else(|| root.join("target"));
    let binary = target.join("release").join("osb-broker");
    let built = std::fs::metadata(&binary)
        .and_then(|metadata| metadata.modified())
        .map_err(|_| {
            format!(
                "{} is missing; build it first with `cargo build --release -p osb-broker`",
                binary.display()
            )
        })?;
    if let Some(source) = newest_source(&root) {
        if source > built {
            println!(
                "warning: some crate sources are newer than {}; rebuild with \
                 `cargo build --release -p osb-broker` to measure them",
                binary.display()
            );
        }
    }
    Ok(binary)
}

/// Returns the newest modification time of the sources the broker is built from.
fn newest_source(root: &Path) -> Option<SystemTime> {
    let mut newest = None;
    let mut folders: Vec<PathBuf> = ["osbkit-types", "osbkit", "osb-broker"]
        .iter()
        .map(|name| root.join("crates").join(name).join("src"))
        .collect();
    // The source trees have a few hundred entries; the bound only guards
    // against a link cycle.
    for _ in 0..10_000 {
        let Some(folder) = folders.pop() else {
            break;
        };
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            if metadata.is_dir() {
                folders.push(entry.path());
            } else if let Ok(modified) = metadata.modified() {
                newest = newest.max(Some(modified));
            }
        }
    }
    newest
}

async fn admin_client() -> Result<tokio_postgres::Client, String> {
    let (client, connection) = tokio_postgres::connect(ADMIN_URL, tokio_postgres::NoTls)
        .await
        .map_err(|error| {
            format!(
                "PostgreSQL is not reachable at {ADMIN_URL} ({error}); start it and let the role \
                 postgres connect from 127.0.0.1 with trust authentication"
            )
        })?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

async fn postgres_version() -> Result<String, String> {
    let client = admin_client().await?;
    let row = client
        .query_one("SHOW server_version", &[])
        .await
        .map_err(|error| format!("SHOW server_version failed: {error}"))?;
    Ok(row.get(0))
}

/// The instances the bench created and has not yet seen deprovisioned.
#[derive(Clone, Default)]
struct Created {
    inner: Arc<Mutex<CreatedInner>>,
}

#[derive(Default)]
struct CreatedInner {
    /// Every instance id used, with its binding id when it had one.
    all: Vec<(String, Option<String>)>,
    /// Ids not yet confirmed deprovisioned.
    open: HashSet<String>,
}

impl Created {
    fn lock(&self) -> std::sync::MutexGuard<'_, CreatedInner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records an instance before anything of it exists on the server.
    fn open(&self, instance_id: &str, binding_id: Option<&str>) {
        let mut inner = self.lock();
        inner
            .all
            .push((instance_id.to_owned(), binding_id.map(str::to_owned)));
        inner.open.insert(instance_id.to_owned());
    }

    fn close(&self, instance_id: &str) {
        self.lock().open.remove(instance_id);
    }
}

/// Deprovisions, on the backend directly, every instance not confirmed gone,
/// then checks that no database or role of any bench id is left. Returns the
/// number of instance ids used.
async fn clean_up(created: &Created) -> Result<usize, String> {
    let (all, open) = {
        let inner = created.lock();
        (inner.all.clone(), inner.open.clone())
    };
    if !open.is_empty() {
        println!(
            "\ncleanup: deprovisioning {} instances not confirmed gone",
            open.len()
        );
        let backend = direct_backend().await?;
        for (instance_id, binding_id) in all.iter().filter(|(id, _)| open.contains(id)) {
            let binding_ids: Vec<String> = binding_id.iter().cloned().collect();
            backend
                .deprovision(&deprovision_job(instance_id, binding_ids))
                .await
                .map_err(|error| format!("deprovision of {instance_id} failed: {error}"))?;
            created.close(instance_id);
        }
    }

    let admin = admin_client().await?;
    let prefixes: Vec<String> = all
        .iter()
        .map(|(instance_id, _)| InstanceNames::new(instance_id).database)
        .collect();
    let rows = admin
        .query(
            "SELECT datname::text FROM pg_catalog.pg_database, unnest($1::text[]) AS p(prefix) \
             WHERE starts_with(datname::text, p.prefix) \
             UNION ALL \
             SELECT rolname::text FROM pg_catalog.pg_roles, unnest($1::text[]) AS p(prefix) \
             WHERE starts_with(rolname::text, p.prefix)",
            &[&prefixes],
        )
        .await
        .map_err(|error| format!("checking the catalogs failed: {error}"))?;
    if !rows.is_empty() {
        let left: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
        return Err(format!(
            "{} objects of the bench are left: {}",
            left.len(),
            left.join(", ")
        ));
    }
    Ok(all.len())
}

fn plan_config() -> PlanConfig {
    PlanConfig {
        server: "default".to_owned(),
        connection_limit: Some(10),
        extensions: Vec::new(),
        read_only: false,
        jdbc_url: true,
        execution: ExecutionMode::Synchronous,
    }
}

async fn direct_backend() -> Result<PostgresBackend, String> {
    let servers = BTreeMap::from([(
        "default".to_owned(),
        ServerConfig {
            url: ADMIN_URL.to_owned(),
            tls: TlsMode::Disable,
            ca_file: None,
            public_host: None,
            public_port: None,
            connect_timeout_seconds: 10,
            name_prefix: "osb".to_owned(),
        },
    )]);
    PostgresBackend::new(&servers, vec![(PLAN_ID.to_owned(), plan_config())]).await
}

/// Returns the broker's config, with the same server and plan as [`direct_backend`].
fn broker_config(state: &Path) -> Result<String, String> {
    let state = state
        .to_str()
        .ok_or("the temporary folder's path is not UTF-8")?;
    // A JSON string is a valid TOML basic string.
    let state = serde_json::to_string(state).map_err(|error| error.to_string())?;
    Ok(format!(
        r#"listen = "127.0.0.1:0"
dev_mode = true

[[credentials]]
username = "{USER}"
password = "{PASSWORD}"

[state]
sqlite = {state}

[postgresql.servers.default]
url = "{ADMIN_URL}"
tls = "disable"
connect_timeout_seconds = 10

[[services]]
id = "{SERVICE_ID}"
name = "postgresql-bench"
description = "A database per instance, for the benchmark"
bindable = true

[[services.plans]]
id = "{PLAN_ID}"
name = "bench"
description = "Synchronous, read-write bindings"
free = true
backend = {{ type = "postgresql", server = "default", connection_limit = 10, execution = "synchronous" }}
"#
    ))
}

/// A running `osb-broker serve`, stopped and its folder removed on drop.
struct BrokerProcess {
    child: Child,
    dir: PathBuf,
    base: String,
}

impl BrokerProcess {
    fn start(binary: &Path) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!("osb-bench-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir(&dir)
            .map_err(|error| format!("cannot create {}: {error}", dir.display()))?;

        let config_path = dir.join("broker.toml");
        let written = broker_config(&dir.join("state.db")).and_then(|config| {
            std::fs::write(&config_path, config)
                .map_err(|error| format!("cannot write {}: {error}", config_path.display()))
        });
        if let Err(message) = written {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(message);
        }

        let child = Command::new(binary)
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(error) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(format!("cannot start {}: {error}", binary.display()));
            }
        };

        // From here on, Drop stops the broker and removes the folder.
        let mut process = BrokerProcess {
            child,
            dir,
            base: String::new(),
        };

        let stdout = process
            .child
            .stdout
            .take()
            .ok_or("the broker's stdout is not piped")?;
        let (sender, receiver) = mpsc::channel();
        // Reads stdout until the broker closes it, so the broker does not block on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(address) = line.strip_prefix("listening on ") {
                    let _ = sender.send(address.trim().to_owned());
                }
            }
        });

        process.base = match receiver.recv_timeout(START_TIMEOUT) {
            Ok(address) => address,
            Err(_) => {
                let state = match process.child.try_wait() {
                    Ok(Some(status)) => format!("it exited with {status}"),
                    _ => "it is still running".to_owned(),
                };
                return Err(format!(
                    "{} printed no address within {} s and {state}; its log goes to /dev/null, \
                     so start it by hand with `serve --config` to see why",
                    binary.display(),
                    START_TIMEOUT.as_secs(),
                ));
            }
        };
        Ok(process)
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Makes requests to one broker.
#[derive(Clone)]
struct HttpPath {
    client: reqwest::Client,
    base: String,
}

impl HttpPath {
    fn new(base: &str) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|error| format!("cannot build the HTTP client: {error}"))?;
        Ok(HttpPath {
            client,
            base: base.to_owned(),
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
        expected: StatusCode,
        operation: &str,
    ) -> Result<(), String> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .basic_auth(USER, Some(PASSWORD))
            .header("X-Broker-API-Version", "2.17");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|error| format!("{operation}: {error}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status != expected {
            return Err(format!(
                "{operation}: expected {expected}, got {status}: {text}"
            ));
        }
        Ok(())
    }

    async fn provision(&self, instance_id: &str) -> Result<(), String> {
        let body = json!({
            "service_id": SERVICE_ID,
            "plan_id": PLAN_ID,
            "organization_guid": "bench-org",
            "space_guid": "bench-space",
        });
        self.call(
            reqwest::Method::PUT,
            &format!("/v2/service_instances/{instance_id}"),
            Some(body),
            StatusCode::CREATED,
            "provision",
        )
        .await
    }

    async fn deprovision(&self, instance_id: &str) -> Result<(), String> {
        self.call(
            reqwest::Method::DELETE,
            &format!(
                "/v2/service_instances/{instance_id}?service_id={SERVICE_ID}&plan_id={PLAN_ID}"
            ),
            None,
            StatusCode::OK,
            "deprovision",
        )
        .await
    }

    async fn cycle(&self, instance_id: &str, binding_id: &str) -> Result<(), String> {
        self.provision(instance_id).await?;
        let binding_path =
            format!("/v2/service_instances/{instance_id}/service_bindings/{binding_id}");
        let body = json!({
            "service_id": SERVICE_ID,
            "plan_id": PLAN_ID,
            "bind_resource": {"app_guid": "bench-app"},
        });
        self.call(
            reqwest::Method::PUT,
            &binding_path,
            Some(body),
            StatusCode::CREATED,
            "bind",
        )
        .await?;
        self.call(
            reqwest::Method::DELETE,
            &format!("{binding_path}?service_id={SERVICE_ID}&plan_id={PLAN_ID}"),
            None,
            StatusCode::OK,
            "unbind",
        )
        .await?;
        self.deprovision(instance_id).await
    }
}

fn job_context() -> JobContext {
    JobContext {
        originating_identity: None,
        request_identity: uuid::Uuid::new_v4().to_string(),
        operation: uuid::Uuid::new_v4().to_string(),
    }
}

fn deprovision_job(instance_id: &str, binding_ids: Vec<String>) -> DeprovisionJob {
    DeprovisionJob {
        context: job_context(),
        instance_id: instance_id.to_owned(),
        service_id: SERVICE_ID.to_owned(),
        plan_id: PLAN_ID.to_owned(),
        binding_ids,
    }
}

/// Runs the same cycle as [`HttpPath::cycle`] on the backend itself.
async fn direct_cycle(
    backend: &PostgresBackend,
    instance_id: &str,
    binding_id: &str,
) -> Result<(), String> {
    let provision = ProvisionJob {
        context: job_context(),
        instance_id: instance_id.to_owned(),
        service_id: SERVICE_ID.to_owned(),
        plan_id: PLAN_ID.to_owned(),
        parameters: JsonObject::new(),
        platform_context: None,
        organization_guid: "bench-org".to_owned(),
        space_guid: "bench-space".to_owned(),
    };
    backend
        .provision(&provision)
        .await
        .map_err(|error| format!("provision: {error}"))?;
    let bind = BindJob {
        context: job_context(),
        instance_id: instance_id.to_owned(),
        binding_id: binding_id.to_owned(),
        service_id: SERVICE_ID.to_owned(),
        plan_id: PLAN_ID.to_owned(),
        parameters: JsonObject::new(),
        app_guid: Some("bench-app".to_owned()),
        bind_resource: None,
        platform_context: None,
        predecessor_binding_id: None,
    };
    backend
        .bind(&bind)
        .await
        .map_err(|error| format!("bind: {error}"))?;
    let unbind = UnbindJob {
        context: job_context(),
        instance_id: instance_id.to_owned(),
        binding_id: binding_id.to_owned(),
        service_id: SERVICE_ID.to_owned(),
        plan_id: PLAN_ID.to_owned(),
    };
    backend
        .unbind(&unbind)
        .await
        .map_err(|error| format!("unbind: {error}"))?;
    backend
        .deprovision(&deprovision_job(instance_id, Vec::new()))
        .await
        .map_err(|error| format!("deprovision: {error}"))
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum PathKind {
    Direct,
    Http,
}

impl PathKind {
    fn label(self) -> &'static str {
        match self {
            PathKind::Direct => "direct (PostgresBackend)",
            PathKind::Http => "HTTP (osb-broker)",
        }
    }
}

/// The backend or broker that one path measures.
#[derive(Clone)]
enum Target {
    Direct(Arc<PostgresBackend>),
    Http(HttpPath),
}

impl Target {
    async fn cycle(&self, created: &Created) -> Result<Duration, String> {
        let instance_id = uuid::Uuid::new_v4().to_string();
        let binding_id = uuid::Uuid::new_v4().to_string();
        created.open(&instance_id, Some(&binding_id));
        let started = Instant::now();
        let result = match self {
            Target::Direct(backend) => direct_cycle(backend, &instance_id, &binding_id).await,
            Target::Http(http) => http.cycle(&instance_id, &binding_id).await,
        };
        let elapsed = started.elapsed();
        result.map_err(|error| format!("cycle of instance {instance_id}: {error}"))?;
        created.close(&instance_id);
        Ok(elapsed)
    }
}

/// One measured run of one path at one concurrency.
struct Sample {
    cycles: usize,
    wall: Duration,
    /// Per-cycle latencies, sorted.
    latencies: Vec<Duration>,
    /// CPU time of the process that ran the operations: the bench for the
    /// direct path, the broker for HTTP. PostgreSQL's CPU time is in neither.
    cpu: Duration,
}

impl Sample {
    /// Combines blocks of one path: their cycles, wall times and latencies add up.
    fn merge(blocks: Vec<Sample>) -> Sample {
        let mut merged = Sample {
            cycles: 0,
            wall: Duration::ZERO,
            latencies: Vec::new(),
            cpu: Duration::ZERO,
        };
        for mut block in blocks {
            merged.cycles += block.cycles;
            merged.wall += block.wall;
            merged.cpu += block.cpu;
            merged.latencies.append(&mut block.latencies);
        }
        merged.latencies.sort();
        merged
    }

    fn rate(&self) -> f64 {
        self.cycles as f64 / self.wall.as_secs_f64()
    }

    fn cpu_per_cycle(&self) -> Duration {
        self.cpu / u32::try_from(self.cycles.max(1)).unwrap_or(u32::MAX)
    }

    fn percentile(&self, fraction: f64) -> Duration {
        percentile(&self.latencies, fraction)
    }
}

/// Splits `cycles` into `blocks` nearly equal parts, or fewer when there
/// are fewer cycles than blocks.
fn block_sizes(cycles: usize, blocks: usize) -> Vec<usize> {
    let blocks = blocks.clamp(1, cycles.max(1));
    (0..blocks)
        .map(|index| cycles / blocks + usize::from(index < cycles % blocks))
        .collect()
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.is_empty() {
        f64::NAN
    } else if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

/// Runs `cycles` cycles on `concurrency` workers and stops at the first error.
async fn measure(
    target: &Target,
    concurrency: usize,
    cycles: usize,
    created: &Created,
) -> Result<Sample, String> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let target = target.clone();
        let next = next.clone();
        let created = created.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < cycles {
                match target.cycle(&created).await {
                    Ok(latency) => latencies.push(latency),
                    Err(error) => {
                        // The others stop after their current cycle.
                        next.store(cycles, Ordering::Relaxed);
                        return Err(error);
                    }
                }
            }
            Ok(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(cycles);
    let mut first_error = None;
    for worker in workers {
        match worker.await {
            Ok(Ok(mut done)) => latencies.append(&mut done),
            Ok(Err(error)) => {
                first_error.get_or_insert(error);
            }
            Err(error) => {
                first_error.get_or_insert(format!("a worker panicked: {error}"));
            }
        }
    }
    let wall = started.elapsed();
    if let Some(error) = first_error {
        return Err(error);
    }
    latencies.sort();
    Ok(Sample {
        cycles: latencies.len(),
        wall,
        latencies,
        cpu: Duration::ZERO,
    })
}

/// One run of the burst test.
struct Burst {
    provision_wall: Duration,
    provision_errors: usize,
    /// Deprovisions sent: one per successful provision.
    deprovisions: usize,
    deprovision_wall: Duration,
    deprovision_errors: usize,
    first_error: Option<String>,
}

/// Sends `count` provisions at once, waits for all, then deprovisions the
/// provisioned ones the same way.
async fn burst(http: &HttpPath, count: usize, created: &Created) -> Burst {
    let ids: Vec<String> = (0..count)
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    for id in &ids {
        created.open(id, None);
    }

    let (provision_wall, provision_results) = all_at_once(&ids, |id| {
        let http = http.clone();
        async move { http.provision(&id).await }
    })
    .await;

    let mut first_error = None;
    let mut provisioned = Vec::with_capacity(count);
    for (id, result) in ids.iter().zip(provision_results) {
        match result {
            Ok(()) => provisioned.push(id.clone()),
            // The cleanup deprovisions on the backend whatever a failed
            // provision may have left.
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }

    let provision_errors = count - provisioned.len();

    let (deprovision_wall, deprovision_results) = all_at_once(&provisioned, |id| {
        let http = http.clone();
        async move { http.deprovision(&id).await }
    })
    .await;

    let mut deprovision_errors = 0;
    for (id, result) in provisioned.iter().zip(deprovision_results) {
        match result {
            Ok(()) => created.close(id),
            Err(error) => {
                deprovision_errors += 1;
                first_error.get_or_insert(error);
            }
        }
    }

    Burst {
        provision_wall,
        provision_errors,
        deprovisions: provisioned.len(),
        deprovision_wall,
        deprovision_errors,
        first_error,
    }
}

/// Runs `call` for every id at once, each on its own task. Returns the wall
/// time until the last one ended, and the results in the order of `ids`.
async fn all_at_once<F, Fut>(ids: &[String], call: F) -> (Duration, Vec<Result<(), String>>)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let started = Instant::now();
    let tasks: Vec<_> = ids
        .iter()
        .map(|id| tokio::spawn(call(id.clone())))
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(match task.await {
            Ok(result) => result,
            Err(error) => Err(format!("a request task panicked: {error}")),
        });
    }
    (started.elapsed(), results)
}

struct Results {
    /// (path, concurrency index, run) -> sample.
    samples: BTreeMap<(PathKind, usize, usize), Sample>,
    bursts: Vec<Burst>,
}

impl Results {
    fn burst_errors(&self) -> usize {
        self.bursts
            .iter()
            .map(|burst| burst.provision_errors + burst.deprovision_errors)
            .sum()
    }

    fn runs_of(&self, kind: PathKind, level: usize) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|((k, l, _), _)| *k == kind && *l == level)
            .map(|(_, sample)| sample)
            .collect()
    }

    fn median_of(&self, kind: PathKind, level: usize, value: impl Fn(&Sample) -> f64) -> f64 {
        let mut values: Vec<f64> = self.runs_of(kind, level).into_iter().map(value).collect();
        median(&mut values)
    }

    fn print_summary(&self, settings: &Settings) {
        println!("\n## Medians over {} runs\n", settings.runs);
        println!("| path | concurrency | cycles per run | cycles/s | p50 cycle (ms) | p99 cycle (ms) | wall per run (s) | client-side CPU per cycle (ms) |");
        println!("|---|---|---|---|---|---|---|---|");
        for (level, concurrency) in CONCURRENCY.iter().enumerate() {
            for kind in [PathKind::Direct, PathKind::Http] {
                println!(
                    "| {} | {concurrency} | {} | {:.2} | {:.1} | {:.1} | {:.2} | {:.2} |",
                    kind.label(),
                    settings.cycles[level],
                    self.median_of(kind, level, Sample::rate),
                    self.median_of(kind, level, |s| millis(s.percentile(0.50))),
                    self.median_of(kind, level, |s| millis(s.percentile(0.99))),
                    self.median_of(kind, level, |s| s.wall.as_secs_f64()),
                    self.median_of(kind, level, |s| millis(s.cpu_per_cycle())),
                );
            }
        }

        println!("\n## Broker overhead: (HTTP time - direct time) / direct time\n");
        println!("| concurrency | from median wall times | per run (paired) | from median p50 latencies | broker CPU - direct CPU per cycle (ms) |");
        println!("|---|---|---|---|---|");
        for (level, concurrency) in CONCURRENCY.iter().enumerate() {
            let direct_wall = self.median_of(PathKind::Direct, level, |s| s.wall.as_secs_f64());
            let http_wall = self.median_of(PathKind::Http, level, |s| s.wall.as_secs_f64());
            let direct_p50 =
                self.median_of(PathKind::Direct, level, |s| millis(s.percentile(0.50)));
            let http_p50 = self.median_of(PathKind::Http, level, |s| millis(s.percentile(0.50)));
            let extra_cpu = self.median_of(PathKind::Http, level, |s| millis(s.cpu_per_cycle()))
                - self.median_of(PathKind::Direct, level, |s| millis(s.cpu_per_cycle()));
            let paired: Vec<String> = self
                .runs_of(PathKind::Direct, level)
                .iter()
                .zip(self.runs_of(PathKind::Http, level))
                .map(|(direct, http)| {
                    let direct = direct.wall.as_secs_f64();
                    format!(
                        "{:+.1} %",
                        100.0 * (http.wall.as_secs_f64() - direct) / direct
                    )
                })
                .collect();
            println!(
                "| {concurrency} | {:+.1} % | {} | {:+.1} % | {extra_cpu:+.2} |",
                100.0 * (http_wall - direct_wall) / direct_wall,
                paired.join(", "),
                100.0 * (http_p50 - direct_p50) / direct_p50,
            );
        }

        if !self.bursts.is_empty() {
            let count = settings.burst;
            let mut provision: Vec<f64> = self
                .bursts
                .iter()
                .map(|burst| burst.provision_wall.as_secs_f64())
                .collect();
            let mut deprovision: Vec<f64> = self
                .bursts
                .iter()
                .map(|burst| burst.deprovision_wall.as_secs_f64())
                .collect();
            let per_run = |f: &dyn Fn(&Burst) -> String| -> String {
                self.bursts.iter().map(f).collect::<Vec<_>>().join(", ")
            };
            println!("\n## {count} concurrent requests through HTTP\n");
            println!("| requests | median wall (s) | per run (s) | errors per run |");
            println!("|---|---|---|---|");
            // Deprovisions go only to the instances whose provision succeeded.
            println!(
                "| {count} provisions | {:.2} | {} | {} |",
                median(&mut provision),
                per_run(&|burst| format!("{:.2}", burst.provision_wall.as_secs_f64())),
                per_run(&|burst| burst.provision_errors.to_string()),
            );
            println!(
                "| deprovisions of those | {:.2} | {} | {} |",
                median(&mut deprovision),
                per_run(&|burst| format!("{:.2}", burst.deprovision_wall.as_secs_f64())),
                per_run(&|burst| burst.deprovision_errors.to_string()),
            );
            for burst in &self.bursts {
                if let Some(error) = &burst.first_error {
                    println!("burst error, first of its run: {error}");
                }
            }
        }
    }
}

/// Returns the user and system CPU time of process `pid` from /proc, or zero
/// where /proc is missing.
fn cpu_time(pid: u32, ticks_per_second: u64) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // The command name may contain spaces, so the fields are counted from
    // its closing parenthesis: utime and stime are the 14th and 15th fields.
    let Some((_, fields)) = stat.rsplit_once(')') else {
        return Duration::ZERO;
    };
    let ticks: u64 = fields
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|field| field.parse::<u64>().ok())
        .sum();
    Duration::from_secs_f64(ticks as f64 / ticks_per_second as f64)
}

/// Returns the kernel's clock ticks per second from `getconf CLK_TCK`, or
/// 100, the Linux default, when that fails.
fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .filter(|ticks| *ticks > 0)
        .unwrap_or(100)
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

async fn measure_all(
    settings: &Settings,
    binary: &Path,
    created: &Created,
) -> Result<Results, String> {
    let mut results = Results {
        samples: BTreeMap::new(),
        bursts: Vec::new(),
    };
    let ticks_per_second = clock_ticks_per_second();
    for run in 0..settings.runs {
        // Each run gets a fresh broker, state file and backend.
        let broker = BrokerProcess::start(binary)?;
        let http_path = HttpPath::new(&broker.base)?;
        let http = Target::Http(http_path.clone());
        let direct = Target::Direct(Arc::new(direct_backend().await?));
        println!(
            "\nrun {}/{}: broker at {}",
            run + 1,
            settings.runs,
            broker.base
        );
        for target in [&direct, &http] {
            if settings.warmup > 0 {
                measure(target, 1, settings.warmup, created).await?;
            }
        }
        for (level, concurrency) in CONCURRENCY.iter().enumerate() {
            let mut parts: BTreeMap<PathKind, Vec<Sample>> = BTreeMap::new();
            for (index, size) in block_sizes(settings.cycles[level], settings.blocks)
                .into_iter()
                .enumerate()
            {
                // ABBA order, so that a steady drift in load reaches both paths alike.
                let order = if index % 2 == 0 {
                    [PathKind::Direct, PathKind::Http]
                } else {
                    [PathKind::Http, PathKind::Direct]
                };
                for kind in order {
                    let (target, pid) = match kind {
                        PathKind::Direct => (&direct, std::process::id()),
                        PathKind::Http => (&http, broker.child.id()),
                    };
                    let cpu_before = cpu_time(pid, ticks_per_second);
                    let mut sample =
                        measure(target, *concurrency, size, created)
                            .await
                            .map_err(|error| {
                                format!("{} at concurrency {concurrency}: {error}", kind.label())
                            })?;
                    let cpu_after = cpu_time(pid, ticks_per_second);
                    sample.cpu = cpu_after.saturating_sub(cpu_before);
                    parts.entry(kind).or_default().push(sample);
                }
            }
            for (kind, blocks) in parts {
                let sample = Sample::merge(blocks);
                println!(
                    "  {:<25} concurrency {concurrency}: {} cycles in {:.2} s, {:.2} cycles/s, p50 {:.1} ms, p99 {:.1} ms, CPU {:.2} ms/cycle",
                    kind.label(),
                    sample.cycles,
                    sample.wall.as_secs_f64(),
                    sample.rate(),
                    millis(sample.percentile(0.50)),
                    millis(sample.percentile(0.99)),
                    millis(sample.cpu_per_cycle()),
                );
                results.samples.insert((kind, level, run), sample);
            }
        }
        let outcome = burst(&http_path, settings.burst, created).await;
        println!(
            "  burst: {} provisions in {:.2} s with {} errors, {} deprovisions in {:.2} s with {} errors",
            settings.burst,
            outcome.provision_wall.as_secs_f64(),
            outcome.provision_errors,
            outcome.deprovisions,
            outcome.deprovision_wall.as_secs_f64(),
            outcome.deprovision_errors,
        );
        results.bursts.push(outcome);
        drop(broker);
    }
    Ok(results)
}
