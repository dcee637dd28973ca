//! `osb check`: the broker rules of the Open Service Broker API v2.17, run
//! against a live broker, each reported as pass, fail, warn or skip.
//!
//! A MUST that the broker breaks is a failure. A SHOULD or MAY it does not
//! follow is a warning, and where the specification allows several responses,
//! each of them passes. Every instance and binding the checks may have
//! created is deleted at the end, after Ctrl-C too.
//!
//! Files by concept: `catalog` (catalog rules), `negative` (requests that
//! must be rejected), `lifecycle` and `binding` (one plan from provision
//! to deprovision), `poll` (last_operation), `expect` and `schema` (rules of
//! one response), `cleanup`, `http` (raw requests) and `report` (output).

mod binding;
mod catalog;
mod cleanup;
mod expect;
mod http;
mod lifecycle;
mod negative;
mod poll;
mod report;
mod schema;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;
use serde_json::Value;

use self::catalog::PlanInfo;
use self::cleanup::Cleanup;
use self::http::Probe;
use self::report::{render_junit, JsonReport, Report, Verdict};
use crate::cli::Cli;
use crate::clock::parse_duration;
use crate::error::{CliError, CliResult};
use crate::output::{self, OutputFormat};
use crate::platform::PlatformSettings;
use crate::target::{resolve_settings, ConfigFile, OsbHome, Target};

/// Time allowed for deleting each resource after Ctrl-C or at the end.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(120);

/// Arguments of `osb check`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// Broker base URL, such as http://127.0.0.1:8080; the same as --url.
    #[arg(value_name = "URL")]
    pub url: Option<String>,

    /// Plan to exercise, as SERVICE:PLAN with names or ids. Repeat it for
    /// more plans [default: every plan of the catalog, up to --max-plans].
    #[arg(long = "plan", value_name = "SERVICE:PLAN")]
    pub plans: Vec<String>,

    /// YAML or JSON file that lists the plans to exercise, with the
    /// parameters to provision and bind them with, such as
    /// `plans: [{plan: "db:small", parameters: {size_gb: 1}, bind_parameters: {}}]`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Create no instance or binding: check only the catalog, the headers,
    /// authentication and requests for unknown ids.
    #[arg(long)]
    pub no_provision: bool,

    /// Maximum number of catalog plans exercised when no plan is given.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub max_plans: usize,

    /// Maximum time for one asynchronous operation, such as 90s or 10m.
    /// A plan's shorter maximum_polling_duration wins.
    #[arg(long, value_parser = parse_duration, default_value = "5m", value_name = "DURATION")]
    pub timeout: Duration,

    /// Also write the results as a JUnit XML report to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

/// The `--config` file: the plans to exercise and their parameters.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    #[serde(default)]
    pub plans: Vec<PlanEntry>,
}

/// One plan of the `--config` file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanEntry {
    /// `SERVICE:PLAN` with names or ids.
    pub plan: String,
    /// `parameters` of the provision request.
    #[serde(default)]
    pub parameters: Option<Value>,
    /// `parameters` of the bind request.
    #[serde(default)]
    pub bind_parameters: Option<Value>,
}

/// Request values for one plan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanSettings {
    pub parameters: Option<Value>,
    pub bind_parameters: Option<Value>,
}

/// The client, cleanup list and timeout that every check uses.
pub struct Context {
    pub probe: Probe,
    pub cleanup: Cleanup,
    /// Maximum time for one asynchronous operation.
    pub timeout: Duration,
}

/// Runs `osb check`: every check, then the cleanup, then the summary.
/// Returns a failed error (exit code 1) when any check failed.
pub async fn run(cli: &Cli, args: &CheckArgs) -> CliResult<()> {
    let (target, platform) = resolve_target(cli, args)?;
    let config = match &args.config {
        Some(path) => read_config(path)?,
        None => CheckConfig::default(),
    };
    let context = Context {
        probe: Probe::new(&target, platform, cli.target.request_timeout)?,
        cleanup: Cleanup::default(),
        timeout: args.timeout,
    };
    let json_output = cli.output == OutputFormat::Json;
    let mut report = Report::new(!json_output);

    // `None` when Ctrl-C stopped the checks.
    let outcome = tokio::select! {
        outcome = run_checks(&context, args, &config, &mut report) => Some(outcome),
        _ = tokio::signal::ctrl_c() => None,
    };
    let interrupted = outcome.is_none();
    report.set_plan(None);
    clean_up(&context, interrupted, &mut report).await?;

    if json_output {
        output::print_json(&JsonReport {
            broker: context.probe.base_url().as_str(),
            checks: report.results(),
            summary: report.summary(),
        })?;
    } else if !report.results().is_empty() {
        output::print(&format!("{}\n", report.summary().line()))?;
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, render_junit(&report)).map_err(|error| {
            CliError::usage(format!(
                "could not write the JUnit report {}: {error}",
                path.display()
            ))
        })?;
    }

    if interrupted {
        return Err(CliError::failed("interrupted; the checks did not finish"));
    }
    if let Some(Err(error)) = outcome {
        return Err(error);
    }
    match report.summary().failed {
        0 => Ok(()),
        1 => Err(CliError::failed("1 check failed")),
        failed => Err(CliError::failed(format!("{failed} checks failed"))),
    }
}

/// Resolves the broker as every command does, with the positional URL in
/// place of --url.
fn resolve_target(cli: &Cli, args: &CheckArgs) -> CliResult<(Target, PlatformSettings)> {
    let mut target_args = cli.target.clone();
    if let Some(url) = &args.url {
        if cli.target.url.as_ref().is_some_and(|flag| flag != url)
            && std::env::var_os("OSB_URL").is_none()
        {
            return Err(
                CliError::usage("the broker URL is given twice, as URL and as --url")
                    .with_hint("give it once"),
            );
        }
        target_args.url = Some(url.clone());
    }
    let config = match OsbHome::from_env() {
        Ok(home) => home.load_config()?,
        // Without a home directory there are no profiles, which only
        // matters when one is asked for.
        Err(error) if target_args.profile.is_some() => return Err(error),
        Err(_) => ConfigFile::default(),
    };
    let settings = resolve_settings(&config, &target_args, &cli.platform)?;
    let target = Target::from_settings(&settings)?;
    Ok((target, PlatformSettings::from_settings(&settings)))
}

fn read_config(path: &Path) -> CliResult<CheckConfig> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| CliError::usage(format!("could not read {}: {error}", path.display())))?;
    // serde_yaml reads JSON too, and its errors name the position, not the value.
    serde_yaml::from_str(&text).map_err(|error| {
        CliError::usage(format!("invalid check configuration {}: {error}", path.display()))
            .with_hint("expected `plans:` with a list of `plan: SERVICE:PLAN` entries, each with optional `parameters` and `bind_parameters`")
    })
}

async fn run_checks(
    context: &Context,
    args: &CheckArgs,
    config: &CheckConfig,
    report: &mut Report,
) -> CliResult<()> {
    let probe = &context.probe;
    let reply = catalog::fetch(probe).await?;
    let plans = catalog::check(probe, &reply, report).await?;
    let selected = match &plans {
        Some(plans) => select_plans(plans, args, config)?,
        None => Vec::new(),
    };

    negative::version_header(probe, report).await?;
    negative::authentication(probe, selected.first().map(|(plan, _)| plan), report).await?;
    negative::unknown_resources(probe, selected.first().map(|(plan, _)| plan), report).await?;

    if args.no_provision {
        let reason = Verdict::Skip("--no-provision".into());
        return report.record(
            "provision.lifecycle",
            "provision, update, bind and deprovision",
            reason,
            &[],
        );
    }
    let Some((first, first_settings)) = selected.first() else {
        let reason = match plans {
            Some(_) => "the catalog has no plan to exercise",
            None => "the catalog could not be read",
        };
        let reason = Verdict::Skip(reason.into());
        return report.record(
            "provision.lifecycle",
            "provision, update, bind and deprovision",
            reason,
            &[],
        );
    };
    negative::malformed_provisions(context, first, first_settings, report).await?;
    negative::concurrent_provisions(context, first, first_settings, report).await?;
    for (plan, settings) in &selected {
        report.set_plan(Some(plan.label()));
        lifecycle::run(context, plan, settings, report).await?;
    }
    report.set_plan(None);
    Ok(())
}

/// Picks the plans to exercise: those of --plan and --config, else the
/// catalog's first `--max-plans` plans.
fn select_plans(
    plans: &[PlanInfo],
    args: &CheckArgs,
    config: &CheckConfig,
) -> CliResult<Vec<(PlanInfo, PlanSettings)>> {
    let mut selected: Vec<(PlanInfo, PlanSettings)> = Vec::new();
    let requested = config
        .plans
        .iter()
        .map(|entry| {
            let settings = PlanSettings {
                parameters: entry.parameters.clone(),
                bind_parameters: entry.bind_parameters.clone(),
            };
            (entry.plan.as_str(), settings)
        })
        .chain(
            args.plans
                .iter()
                .map(|plan| (plan.as_str(), PlanSettings::default())),
        );
    for (text, settings) in requested {
        let plan = find_plan(plans, text)?;
        if !selected
            .iter()
            .any(|(chosen, _)| chosen.plan_id == plan.plan_id)
        {
            selected.push((plan.clone(), settings));
        }
    }
    if selected.is_empty() {
        selected = plans
            .iter()
            .take(args.max_plans)
            .map(|plan| (plan.clone(), PlanSettings::default()))
            .collect();
    }
    Ok(selected)
}

/// Finds `SERVICE:PLAN`, each part a name or an id.
fn find_plan<'a>(plans: &'a [PlanInfo], text: &str) -> CliResult<&'a PlanInfo> {
    let Some((service, plan)) = text.split_once(':') else {
        return Err(
            CliError::usage(format!("invalid plan {text:?}: expected SERVICE:PLAN"))
                .with_hint("such as --plan simulated-db:small"),
        );
    };
    plans
        .iter()
        .find(|info| {
            (info.service_name == service || info.service_id == service)
                && (info.plan_name == plan || info.plan_id == plan)
        })
        .ok_or_else(|| {
            let known: Vec<String> = plans.iter().map(PlanInfo::label).collect();
            CliError::usage(format!("plan {text:?} not found in the catalog"))
                .with_hint(format!("the catalog has: {}", known.join(", ")))
        })
}

/// Deletes what the checks created. A second Ctrl-C stops the cleanup and
/// lists what is left.
async fn clean_up(context: &Context, interrupted: bool, report: &mut Report) -> CliResult<()> {
    if context.cleanup.is_empty() {
        return Ok(());
    }
    if interrupted {
        eprintln!("osb: interrupted; deleting the instances and bindings the checks created (Ctrl-C again to stop)");
    }
    let leftovers = tokio::select! {
        leftovers = context.cleanup.run(&context.probe, CLEANUP_TIMEOUT) => leftovers,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("osb: cleanup stopped; these may still exist at the broker:");
            for line in context.cleanup.describe() {
                eprintln!("  {line}");
            }
            return Ok(());
        }
    };
    for leftover in &leftovers {
        let verdict = Verdict::Fail(format!(
            "{} was not deleted: {}",
            leftover.description, leftover.reason
        ));
        report.record(
            "cleanup.delete",
            "the resources the checks created are deleted",
            verdict,
            &[],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(service: &str, name: &str) -> PlanInfo {
        PlanInfo {
            service_id: format!("{service}-id"),
            service_name: service.into(),
            plan_id: format!("{service}-{name}-id"),
            plan_name: name.into(),
            bindable: true,
            instances_retrievable: false,
            bindings_retrievable: false,
            requires: Vec::new(),
            maintenance_version: None,
            maximum_polling_duration: None,
            plan_updateable: false,
            other_plan_id: None,
        }
    }

    fn args(plans: &[&str], max_plans: usize) -> CheckArgs {
        CheckArgs {
            url: None,
            plans: plans.iter().map(|plan| plan.to_string()).collect(),
            config: None,
            no_provision: false,
            max_plans,
            timeout: Duration::from_secs(1),
            junit: None,
        }
    }

    #[test]
    fn plans_found_by_name_or_id() {
        let plans = vec![plan("db", "small"), plan("db", "large")];
        assert_eq!(find_plan(&plans, "db:large").unwrap().plan_name, "large");
        assert_eq!(
            find_plan(&plans, "db-id:db-small-id").unwrap().plan_name,
            "small"
        );
        assert_eq!(find_plan(&plans, "db:huge").unwrap_err().exit_code(), 2);
        assert!(find_plan(&plans, "db").is_err());
    }

    #[test]
    fn default_selection_capped() {
        let plans = vec![plan("a", "1"), plan("a", "2"), plan("b", "1")];
        let selected = select_plans(&plans, &args(&[], 2), &CheckConfig::default()).unwrap();
        assert_eq!(selected.len(), 2);
    }

    #[test]
    fn config_settings_kept_and_duplicates_dropped() {
        let plans = vec![plan("a", "1"), plan("b", "1")];
        let config: CheckConfig =
            serde_yaml::from_str("plans:\n  - plan: b:1\n    parameters: {size: 2}\n").unwrap();
        let selected = select_plans(&plans, &args(&["b:1", "a:1"], 10), &config).unwrap();
        assert_eq!(selected.len(), 2);
        assert_eq!(selected[0].0.plan_name, "1");
        assert_eq!(
            selected[0].1.parameters,
            Some(serde_json::json!({"size": 2}))
        );
        assert_eq!(selected[1].0.service_name, "a");
    }

    #[test]
    fn config_rejects_unknown_fields() {
        assert!(
            serde_yaml::from_str::<CheckConfig>("plans:\n  - plan: a:1\n    params: {}\n").is_err()
        );
    }
}
