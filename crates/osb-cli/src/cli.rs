//! The command line: global options, commands and their arguments.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::clock::parse_duration;
use crate::credentials_format::CredentialsFormat;
use crate::output::OutputFormat;
use crate::platform::PlatformKind;
use crate::target::Secret;

/// Play the platform's side of the Open Service Broker API v2.17 against a broker.
///
/// The broker comes from --url/--user/--password, the OSB_URL, OSB_USER and
/// OSB_PASSWORD environment variables, or a profile saved with `osb profile
/// save`. Instances and bindings are kept in a local record under OSB_HOME
/// (default ~/.osb), as a platform keeps them in its database.
#[derive(Debug, Parser)]
#[command(name = "osb", version, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub target: TargetArgs,

    #[command(flatten)]
    pub platform: PlatformArgs,

    /// Format of listings, of `show`, `fetch` and `catalog`, and of the `check` report.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// The broker's URL and credentials. Each value comes from the flag, else
/// the environment variable, else the selected profile.
#[derive(Debug, Clone, Default, Args)]
pub struct TargetArgs {
    /// Broker base URL, such as http://127.0.0.1:8080.
    #[arg(long, global = true, env = "OSB_URL", value_name = "URL")]
    pub url: Option<String>,

    /// User name for HTTP Basic authentication.
    #[arg(long, global = true, env = "OSB_USER", value_name = "USER")]
    pub user: Option<String>,

    /// Password for HTTP Basic authentication.
    #[arg(
        long,
        global = true,
        env = "OSB_PASSWORD",
        hide_env_values = true,
        value_name = "PASSWORD"
    )]
    pub password: Option<Secret>,

    /// API version sent in X-Broker-API-Version [default: 2.17].
    #[arg(long, global = true, env = "OSB_API_VERSION", value_name = "VERSION")]
    pub api_version: Option<String>,

    /// Named profile from $OSB_HOME/config.yaml [default: the profile chosen with `osb profile use`].
    #[arg(long, global = true, env = "OSB_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,

    /// Maximum time for one HTTP request, such as 30s or 2m.
    #[arg(long, global = true, value_parser = parse_duration, default_value = "60s", value_name = "DURATION")]
    pub request_timeout: Duration,
}

/// The platform this command line plays, which shapes the context object and
/// the originating identity sent with each request.
#[derive(Debug, Clone, Default, Args)]
pub struct PlatformArgs {
    /// Platform profile for context and originating identity [default: cloudfoundry].
    #[arg(
        long,
        global = true,
        env = "OSB_PLATFORM",
        value_enum,
        value_name = "PLATFORM"
    )]
    pub platform: Option<PlatformKind>,

    /// Cloud Foundry organization name of new instances [default: osb].
    #[arg(long, global = true, value_name = "NAME")]
    pub org: Option<String>,

    /// Cloud Foundry space name of new instances [default: dev].
    #[arg(long, global = true, value_name = "NAME")]
    pub space: Option<String>,

    /// Kubernetes namespace of new instances [default: default].
    #[arg(long, global = true, value_name = "NAME")]
    pub namespace: Option<String>,

    /// Kubernetes cluster id [default: osb-local].
    #[arg(long, global = true, value_name = "ID")]
    pub cluster_id: Option<String>,

    /// User named in the originating identity header [default: $USER].
    #[arg(long = "as", global = true, value_name = "USER")]
    pub originating_user: Option<String>,
}

/// Options of every command that changes an instance or a binding.
#[derive(Debug, Clone, Args)]
pub struct OperationArgs {
    /// Maximum time for the whole operation, polling included, such as 90s, 10m or 1h.
    /// The plan's maximum_polling_duration also ends polling.
    #[arg(long, value_parser = parse_duration, default_value = "30m", value_name = "DURATION")]
    pub timeout: Duration,

    /// Send accepts_incomplete=false first. The request is sent again with
    /// accepts_incomplete=true if the broker responds 422 AsyncRequired.
    #[arg(long)]
    pub prefer_sync: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the broker's service offerings and plans.
    Catalog,

    /// Create a service instance of an offering's plan.
    #[command(visible_alias = "create-service")]
    Provision {
        /// Offering name (or id) from the catalog.
        service: String,
        /// Plan name (or id) of that offering.
        plan: String,
        /// Name of the new instance in the local record.
        name: String,
        /// Parameters as a JSON object, or the path of a file that contains one.
        #[arg(short = 'c', long = "parameters", value_name = "JSON|FILE")]
        parameters: Option<String>,
        #[command(flatten)]
        operation: OperationArgs,
    },

    /// Change an instance's plan or parameters.
    #[command(visible_alias = "update-service")]
    Update {
        /// Instance name.
        name: String,
        /// New plan name (or id); the plan must be plan_updateable.
        #[arg(long, value_name = "PLAN")]
        plan: Option<String>,
        /// Parameters as a JSON object, or the path of a file that contains one.
        #[arg(short = 'c', long = "parameters", value_name = "JSON|FILE")]
        parameters: Option<String>,
        #[command(flatten)]
        operation: OperationArgs,
    },

    /// Move an instance to its plan's current maintenance_info version.
    Upgrade {
        /// Instance name.
        name: String,
        #[command(flatten)]
        operation: OperationArgs,
    },

    /// Delete a service instance. Its bindings must be deleted first.
    #[command(visible_alias = "delete-service")]
    Deprovision {
        /// Instance name.
        name: String,
        /// Only remove the instance and its bindings from the local record,
        /// without asking the broker.
        #[arg(long)]
        purge: bool,
        #[command(flatten)]
        operation: OperationArgs,
    },

    /// Create a binding (credentials) for an instance.
    #[command(visible_alias = "bind-service")]
    Bind {
        /// Instance name.
        instance: String,
        /// Name of the new binding in the local record.
        name: String,
        /// Parameters as a JSON object, or the path of a file that contains one.
        #[arg(short = 'c', long = "parameters", value_name = "JSON|FILE")]
        parameters: Option<String>,
        /// Application GUID sent as bind_resource.app_guid.
        #[arg(long, value_name = "GUID")]
        app: Option<String>,
        #[command(flatten)]
        operation: OperationArgs,
    },

    /// Delete a binding.
    #[command(visible_alias = "unbind-service")]
    Unbind {
        /// Binding name.
        binding: String,
        /// Only remove the binding from the local record, without asking the broker.
        #[arg(long)]
        purge: bool,
        #[command(flatten)]
        operation: OperationArgs,
    },

    /// Rotate a binding: create a successor with predecessor_binding_id.
    ///
    /// The new binding takes over the name. The old one stays valid under
    /// the name NAME-<first 8 characters of its id> until you unbind it.
    Rotate {
        /// Binding name.
        binding: String,
        #[command(flatten)]
        operation: OperationArgs,
    },

    /// Print a binding's credentials as an application would receive them.
    Credentials {
        /// Binding name.
        binding: String,
        /// json: the credentials object; env: shell export lines; vcap:
        /// VCAP_SERVICES; k8s-secret: a Kubernetes Secret manifest;
        /// servicebinding: a servicebinding.io directory under DIR.
        #[arg(long, short = 'f', value_enum, default_value_t = CredentialsFormat::Json)]
        format: CredentialsFormat,
        /// Root directory for --format servicebinding; the binding's files go
        /// to DIR/<binding name>/.
        #[arg(value_name = "DIR")]
        directory: Option<PathBuf>,
        /// Secret data encoding for --format k8s-secret.
        #[arg(long, value_enum, default_value_t = SecretEncoding::StringData)]
        secret_encoding: SecretEncoding,
        /// Fetch the binding from the broker first and update the local record.
        #[arg(long)]
        refresh: bool,
    },

    /// List the service instances in the local record.
    #[command(visible_alias = "services")]
    Instances,

    /// List the bindings in the local record.
    Bindings {
        /// Only the bindings of this instance.
        instance: Option<String>,
    },

    /// Show an instance or a binding from the local record, with its operations.
    Show {
        /// Instance or binding name.
        name: String,
    },

    /// Read an instance or a binding through the broker's GET endpoints.
    Fetch {
        #[command(subcommand)]
        what: FetchCommand,
    },

    /// Save, list and select named broker profiles.
    Profile {
        #[command(subcommand)]
        action: ProfileCommand,
    },

    /// Check a broker against the rules of the specification.
    ///
    /// Reads and validates the catalog, then provisions, updates, binds,
    /// unbinds and deprovisions each chosen plan, with the requests a broker
    /// must reject around each step. Every instance and binding created is
    /// deleted at the end, after Ctrl-C too. Prints one line per check and a
    /// summary; the exit code is 1 when any check fails.
    Check(crate::check::CheckArgs),
}

#[derive(Debug, Subcommand)]
pub enum FetchCommand {
    /// GET /v2/service_instances/:instance_id (needs instances_retrievable).
    Instance {
        /// Instance name.
        name: String,
    },
    /// GET .../service_bindings/:binding_id (needs bindings_retrievable).
    Binding {
        /// Binding name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Save the broker and platform options given on this command line as a profile.
    Save {
        /// Profile name.
        name: String,
    },
    /// List the saved profiles; passwords are never shown.
    List,
    /// Make a profile the default one.
    Use {
        /// Profile name.
        name: String,
    },
    /// Delete a profile.
    Remove {
        /// Profile name.
        name: String,
    },
}

/// The encoding of a Kubernetes Secret's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SecretEncoding {
    /// Plain strings under `stringData`.
    StringData,
    /// Base64 strings under `data`.
    Base64,
}
