//! `osb profile save|list|use|remove`: named broker targets in `$OSB_HOME/config.yaml`.

use serde_json::json;

use crate::cli::{Cli, ProfileCommand};
use crate::error::{CliError, CliResult};
use crate::output::{or_dash, print, print_json, OutputFormat, Table};
use crate::target::{OsbHome, Profile};

pub fn run(cli: &Cli, home: &OsbHome, action: &ProfileCommand) -> CliResult<()> {
    let mut config = home.load_config()?;
    match action {
        ProfileCommand::Save { name } => {
            if name.is_empty() {
                return Err(CliError::usage("the profile name must not be empty"));
            }
            let profile = Profile::default().overlaid_with(&cli.target, &cli.platform);
            if profile.url.is_none() {
                return Err(CliError::usage(format!(
                    "could not save profile {name:?}: no broker URL given"
                ))
                .with_hint("pass --url (and --user, --password) with `osb profile save`"));
            }
            config.profiles.insert(name.clone(), profile);
            if config.current.is_none() {
                config.current = Some(name.clone());
            }
            home.save_config(&config)?;
            print(&format!(
                "saved profile {name:?} in {}\n",
                home.config_path().display()
            ))
        }
        ProfileCommand::List => {
            let rows: Vec<_> = config
                .profiles
                .iter()
                .map(|(name, profile)| {
                    let current = config.current.as_deref() == Some(name.as_str());
                    (name, profile, current)
                })
                .collect();
            if cli.output == OutputFormat::Json {
                let list: Vec<_> = rows
                    .iter()
                    .map(|(name, profile, current)| {
                        json!({
                            "name": name,
                            "current": current,
                            "url": profile.url,
                            "user": profile.user,
                            "password_set": profile.password.is_some(),
                            "platform": profile.platform.map(|platform| platform.as_str()),
                        })
                    })
                    .collect();
                return print_json(&list);
            }
            let mut table = Table::new(&["current", "name", "url", "user", "password", "platform"]);
            for (name, profile, current) in rows {
                table.push(vec![
                    if current { "*" } else { "" }.to_owned(),
                    name.clone(),
                    or_dash(profile.url.as_deref()),
                    or_dash(profile.user.as_deref()),
                    if profile.password.is_some() {
                        "***"
                    } else {
                        "-"
                    }
                    .to_owned(),
                    or_dash(profile.platform.map(|platform| platform.as_str())),
                ]);
            }
            print(&table.render())
        }
        ProfileCommand::Use { name } => {
            if !config.profiles.contains_key(name) {
                return Err(CliError::usage(format!("profile {name:?} not found"))
                    .with_hint("list the saved profiles with `osb profile list`"));
            }
            config.current = Some(name.clone());
            home.save_config(&config)?;
            print(&format!("using profile {name:?}\n"))
        }
        ProfileCommand::Remove { name } => {
            if config.profiles.remove(name).is_none() {
                return Err(CliError::usage(format!("profile {name:?} not found")));
            }
            if config.current.as_deref() == Some(name.as_str()) {
                config.current = None;
            }
            home.save_config(&config)?;
            print(&format!("removed profile {name:?}\n"))
        }
    }
}
