//! `osb-broker`: serves the Open Service Broker API for the services in its
//! configuration file.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use osb_broker::backends::postgresql::reconcile::{self, KnownInstance};
use osb_broker::config::Config;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "osb-broker",
    version,
    about = "An Open Service Broker (API v2.17) for databases and other services on shared servers"
)]
struct Cli {
    /// Log format on standard error.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "OSB_BROKER_LOG_FORMAT"
    )]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the broker API until SIGTERM or Ctrl-C.
    Serve {
        /// The configuration file (.toml, .yaml or .yml).
        #[arg(long, short)]
        config: PathBuf,
        /// The address to listen on, overriding the file's `listen`; port 0 picks a free port.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Compare the PostgreSQL servers with the state store: list databases and
    /// roles named by the broker that have no record, and records whose
    /// database is gone.
    Reconcile {
        /// The configuration file (.toml, .yaml or .yml).
        #[arg(long, short)]
        config: PathBuf,
        /// Drop the orphaned databases and roles after confirmation.
        #[arg(long)]
        delete_orphans: bool,
        /// Do not ask for confirmation before deleting.
        #[arg(long, requires = "delete_orphans")]
        yes: bool,
    },
    /// Read a password from standard input and print its bcrypt hash, for
    /// `credentials.password`.
    HashPassword,
    /// Check the configuration file and exit.
    Check {
        /// The configuration file (.toml, .yaml or .yml).
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("osb-broker: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve { config, listen } => serve(&config, listen).await,
            Command::Reconcile {
                config,
                delete_orphans,
                yes,
            } => run_reconcile(&config, delete_orphans, yes).await,
            Command::Check { config } => check(&config).await,
            Command::HashPassword => hash_password(),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("osb-broker: {message}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // The PostgreSQL client logs every statement at debug, and bind statements
    // carry password hashes, so it never logs below info.
    let filter = match "tokio_postgres=info".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn load(path: &Path) -> Result<Config, String> {
    Config::load(path).map_err(|error| error.to_string())
}

async fn serve(path: &Path, listen: Option<SocketAddr>) -> Result<(), String> {
    let config = load(path)?;
    let broker = osb_broker::app::build(&config)
        .await
        .map_err(|error| format!("invalid configuration in {}: {error}", path.display()))?;

    let address = listen.unwrap_or(config.listen);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|error| {
            format!("cannot listen on {address}: {error}; choose another address with --listen")
        })?;
    let local = listener.local_addr().map_err(|error| error.to_string())?;

    // Tests and scripts read this line to find a port chosen by the system.
    println!("listening on http://{local}");
    let _ = std::io::stdout().flush();
    tracing::info!(address = %local, services = config.catalog.services.len(), "broker started");

    let resumed = broker
        .resume_operations()
        .await
        .map_err(|error| format!("cannot read the state store: {error}"))?;
    if resumed > 0 {
        tracing::info!(
            operations = resumed,
            "found operations interrupted by the last stop"
        );
    }

    axum::serve(listener, broker.router())
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|error| format!("the server failed: {error}"))?;
    tracing::info!("broker stopped; operations still running resume at the next start");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
    tracing::info!("stopping: no new connections, waiting for requests in flight");
}

async fn check(path: &Path) -> Result<(), String> {
    let config = load(path)?;
    let broker = osb_broker::app::build(&config)
        .await
        .map_err(|error| format!("invalid configuration in {}: {error}", path.display()))?;
    let plans: usize = broker
        .catalog()
        .services
        .iter()
        .map(|s| s.plans.len())
        .sum();
    println!(
        "{}: valid, {} services, {plans} plans",
        path.display(),
        broker.catalog().services.len()
    );
    Ok(())
}

async fn run_reconcile(path: &Path, delete: bool, yes: bool) -> Result<(), String> {
    let config = load(path)?;
    let store = osb_broker::app::open_store(&config)?;
    let (_, postgres) = osb_broker::app::backends(&config).await?;
    let Some(postgres) = postgres else {
        println!("no plan uses the postgresql backend: nothing to reconcile");
        return Ok(());
    };

    let mut known = Vec::new();
    for instance_id in store.all_instance_ids().await.map_err(|e| e.to_string())? {
        if let Some(instance) = store
            .instance(&instance_id)
            .await
            .map_err(|e| e.to_string())?
        {
            known.push(KnownInstance {
                instance_id,
                plan_id: instance.plan_id,
            });
        }
    }
    let bindings = store.all_binding_ids().await.map_err(|e| e.to_string())?;
    let report = reconcile::find_orphans(&postgres, &known, &bindings)
        .await
        .map_err(|error| {
            format!(
                "cannot read the PostgreSQL servers: {}",
                error.public_description()
            )
        })?;

    for database in &report.orphan_databases {
        println!(
            "orphan database {} on server {}",
            database.name, database.server
        );
    }
    for role in &report.orphan_roles {
        println!("orphan role {} on server {}", role.name, role.server);
    }
    for missing in &report.missing_databases {
        println!(
            "instance {} has no database {} on server {}",
            missing.instance_id, missing.database, missing.server
        );
    }
    let orphans = report.orphan_databases.len() + report.orphan_roles.len();
    println!(
        "{orphans} orphans, {} records without a database",
        report.missing_databases.len()
    );
    if !delete || orphans == 0 {
        return Ok(());
    }

    if !yes && !confirm(&format!("drop these {orphans} databases and roles? [y/N] "))? {
        println!("nothing deleted");
        return Ok(());
    }
    let deleted = reconcile::delete_orphans(&postgres, &report)
        .await
        .map_err(|error| format!("deleting orphans failed: {}", error.public_description()))?;
    println!("deleted {} databases and roles", deleted.len());
    Ok(())
}

fn hash_password() -> Result<(), String> {
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .map_err(|error| format!("cannot read the password from standard input: {error}"))?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err("the password is empty: pipe it in, as in `printf %s PASSWORD | osb-broker hash-password`".to_owned());
    }
    let hash = bcrypt::hash(password, bcrypt::DEFAULT_COST)
        .map_err(|error| format!("hashing failed: {error}"))?;
    println!("{hash}");
    Ok(())
}

fn confirm(question: &str) -> Result<bool, String> {
    print!("{question}");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|error| format!("cannot read the confirmation: {error}"))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
