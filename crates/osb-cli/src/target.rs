//! The broker to talk to: flags, environment variables and named profiles in
//! `$OSB_HOME/config.yaml`.
//!
//! Each setting comes from its flag, else its environment variable (clap
//! merges these two), else the selected profile, else a default. The profile
//! is the one named by `--profile` or `OSB_PROFILE`, else the one chosen with
//! `osb profile use`.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use reqwest::Url;
use serde::{Deserialize, Serialize};

use crate::cli::{PlatformArgs, TargetArgs};
use crate::error::{CliError, CliResult};
use crate::platform::PlatformKind;

/// A password that prints as `***` in Debug and Display output.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Returns the clear text, for the Authorization header and the profile file only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self(text.to_owned()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Saved broker and platform settings. Every field is optional, so a profile
/// can hold only what differs from the defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub space: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub originating_user: Option<String>,
}

impl Profile {
    /// Returns this profile with every value given on the command line replacing its own.
    pub fn overlaid_with(&self, target: &TargetArgs, platform: &PlatformArgs) -> Profile {
        fn pick<T: Clone>(given: &Option<T>, saved: &Option<T>) -> Option<T> {
            given.clone().or_else(|| saved.clone())
        }
        // An empty flag or environment variable (`OSB_URL=`) counts as unset.
        fn pick_text(given: &Option<String>, saved: &Option<String>) -> Option<String> {
            pick(&given.clone().filter(|text| !text.is_empty()), saved)
        }
        Profile {
            url: pick_text(&target.url, &self.url),
            user: pick_text(&target.user, &self.user),
            password: pick(&target.password, &self.password),
            api_version: pick_text(&target.api_version, &self.api_version),
            platform: pick(&platform.platform, &self.platform),
            org: pick(&platform.org, &self.org),
            space: pick(&platform.space, &self.space),
            namespace: pick(&platform.namespace, &self.namespace),
            cluster_id: pick(&platform.cluster_id, &self.cluster_id),
            originating_user: pick(&platform.originating_user, &self.originating_user),
        }
    }
}

/// The content of `$OSB_HOME/config.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The profile used when none is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// The directory of the configuration file and the local record.
#[derive(Debug, Clone)]
pub struct OsbHome {
    dir: PathBuf,
}

impl OsbHome {
    /// Returns `$OSB_HOME`, else `$HOME/.osb`.
    pub fn from_env() -> CliResult<Self> {
        if let Some(dir) = std::env::var_os("OSB_HOME").filter(|dir| !dir.is_empty()) {
            return Ok(Self { dir: dir.into() });
        }
        match std::env::var_os("HOME").filter(|dir| !dir.is_empty()) {
            Some(home) => Ok(Self {
                dir: Path::new(&home).join(".osb"),
            }),
            None => Err(CliError::usage("neither OSB_HOME nor HOME is set")
                .with_hint("set OSB_HOME to the directory for the profiles and the local record")),
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.yaml")
    }

    pub fn record_path(&self) -> PathBuf {
        self.dir.join("record.db")
    }

    /// Creates the directory, readable by its owner only, if it does not exist.
    pub fn ensure_dir(&self) -> CliResult<()> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&self.dir).map_err(|error| {
            CliError::usage(format!("could not create {}: {error}", self.dir.display()))
        })
    }

    /// Reads the configuration file; a missing file is an empty configuration.
    pub fn load_config(&self) -> CliResult<ConfigFile> {
        let path = self.config_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ConfigFile::default())
            }
            Err(error) => {
                return Err(CliError::usage(format!(
                    "could not read {}: {error}",
                    path.display()
                )))
            }
        };
        if text.trim().is_empty() {
            return Ok(ConfigFile::default());
        }
        // serde_yaml errors name the position and the field, never the value.
        serde_yaml::from_str(&text).map_err(|error| {
            CliError::usage(format!(
                "invalid configuration file {}: {error}",
                path.display()
            ))
        })
    }

    /// Writes the configuration file with owner-only permissions, because it contains passwords.
    pub fn save_config(&self, config: &ConfigFile) -> CliResult<()> {
        self.ensure_dir()?;
        let path = self.config_path();
        let text = serde_yaml::to_string(config).map_err(|error| {
            CliError::usage(format!("could not encode the configuration: {error}"))
        })?;
        let write = || -> std::io::Result<()> {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&path)?;
            file.write_all(text.as_bytes())
        };
        write().map_err(|error| {
            CliError::usage(format!("could not write {}: {error}", path.display()))
        })
    }
}

/// Returns the selected profile merged with the command line.
pub fn resolve_settings(
    config: &ConfigFile,
    target: &TargetArgs,
    platform: &PlatformArgs,
) -> CliResult<Profile> {
    let named = target.profile.as_ref().filter(|name| !name.is_empty());
    let saved = match (named, &config.current) {
        (Some(name), _) => config.profiles.get(name).ok_or_else(|| {
            CliError::usage(format!("profile {name:?} not found"))
                .with_hint("list the saved profiles with `osb profile list`")
        })?,
        (None, Some(name)) => config.profiles.get(name).ok_or_else(|| {
            CliError::usage(format!("the default profile {name:?} was not found"))
                .with_hint("choose another one with `osb profile use NAME`")
        })?,
        (None, None) => &Profile::default(),
    };
    Ok(saved.overlaid_with(target, platform))
}

/// A broker endpoint with its credentials.
#[derive(Debug, Clone)]
pub struct Target {
    /// Base URL without a trailing slash; also the key of the local record.
    pub url: Url,
    pub user: Option<String>,
    pub password: Option<Secret>,
    pub api_version: String,
}

impl Target {
    /// Builds the target from merged settings.
    pub fn from_settings(settings: &Profile) -> CliResult<Self> {
        let text = settings
            .url
            .as_deref()
            .filter(|url| !url.is_empty())
            .ok_or_else(|| {
                CliError::usage("no broker URL given")
                    .with_hint("pass --url, set OSB_URL, or save a profile with `osb profile save`")
            })?;
        let url = parse_broker_url(text)?;
        let api_version = settings
            .api_version
            .clone()
            .unwrap_or_else(|| osbkit_types::API_VERSION.to_owned());
        if !is_major_minor(&api_version) {
            return Err(CliError::usage(format!(
                "invalid API version {api_version:?}: expected MAJOR.MINOR such as 2.17"
            )));
        }
        Ok(Self {
            url,
            user: settings.user.clone(),
            password: settings.password.clone(),
            api_version,
        })
    }

    /// Returns the URL as the local record stores it.
    pub fn record_key(&self) -> String {
        self.url.as_str().trim_end_matches('/').to_owned()
    }
}

fn parse_broker_url(text: &str) -> CliResult<Url> {
    let url = Url::parse(text).map_err(|error| {
        CliError::usage(format!("invalid broker URL {text:?}: {error}"))
            .with_hint("give the base URL, such as http://127.0.0.1:8080")
    })?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(CliError::usage(format!(
            "invalid broker URL {text:?}: the scheme must be http or https"
        )));
    }
    // The clear text would end up in messages, so credentials have their own flags.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            CliError::usage("the broker URL must not contain a user or password")
                .with_hint("pass them with --user and --password"),
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(CliError::usage(format!(
            "invalid broker URL {text:?}: it must not have a query or fragment"
        )));
    }
    Ok(url)
}

fn is_major_minor(version: &str) -> bool {
    match version.split_once('.') {
        Some((major, minor)) => {
            !major.is_empty()
                && !minor.is_empty()
                && major.bytes().all(|b| b.is_ascii_digit())
                && minor.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile_with_url(url: &str) -> Profile {
        Profile {
            url: Some(url.to_owned()),
            ..Profile::default()
        }
    }

    #[test]
    fn secret_hidden_in_debug_and_display() {
        let secret = Secret::from_str("hunter2").unwrap();
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(format!("{secret}"), "***");
        let profile = Profile {
            password: Some(secret),
            ..Profile::default()
        };
        assert!(!format!("{profile:?}").contains("hunter2"));
    }

    #[test]
    fn flags_override_profile_values() {
        let saved = Profile {
            url: Some("http://127.0.0.1:1".into()),
            user: Some("saved-user".into()),
            org: Some("saved-org".into()),
            ..Profile::default()
        };
        let target = TargetArgs {
            user: Some("flag-user".into()),
            ..TargetArgs::default()
        };
        let merged = saved.overlaid_with(&target, &PlatformArgs::default());
        assert_eq!(merged.url.as_deref(), Some("http://127.0.0.1:1"));
        assert_eq!(merged.user.as_deref(), Some("flag-user"));
        assert_eq!(merged.org.as_deref(), Some("saved-org"));
    }

    #[test]
    fn empty_flag_values_count_as_unset() {
        let saved = profile_with_url("http://127.0.0.1:1");
        let target = TargetArgs {
            url: Some(String::new()),
            ..TargetArgs::default()
        };
        let merged = saved.overlaid_with(&target, &PlatformArgs::default());
        assert_eq!(merged.url.as_deref(), Some("http://127.0.0.1:1"));
    }

    #[test]
    fn named_profile_selected_over_current() {
        let mut config = ConfigFile {
            current: Some("a".into()),
            ..ConfigFile::default()
        };
        config
            .profiles
            .insert("a".into(), profile_with_url("http://127.0.0.1:1"));
        config
            .profiles
            .insert("b".into(), profile_with_url("http://127.0.0.1:2"));
        let args = TargetArgs {
            profile: Some("b".into()),
            ..TargetArgs::default()
        };
        let merged = resolve_settings(&config, &args, &PlatformArgs::default()).unwrap();
        assert_eq!(merged.url.as_deref(), Some("http://127.0.0.1:2"));

        let merged =
            resolve_settings(&config, &TargetArgs::default(), &PlatformArgs::default()).unwrap();
        assert_eq!(merged.url.as_deref(), Some("http://127.0.0.1:1"));
    }

    #[test]
    fn unknown_profile_is_usage_error() {
        let args = TargetArgs {
            profile: Some("missing".into()),
            ..TargetArgs::default()
        };
        let error =
            resolve_settings(&ConfigFile::default(), &args, &PlatformArgs::default()).unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert!(error.message.contains("missing"));
    }

    #[test]
    fn url_with_password_rejected_without_echo() {
        let error = Target::from_settings(&profile_with_url("http://admin:hunter2@127.0.0.1:1"))
            .unwrap_err();
        assert!(!error.message.contains("hunter2"));
        assert!(Target::from_settings(&profile_with_url("ftp://127.0.0.1")).is_err());
        assert!(Target::from_settings(&Profile::default()).is_err());
    }

    #[test]
    fn api_version_defaults_and_validates() {
        let target = Target::from_settings(&profile_with_url("http://127.0.0.1:1/")).unwrap();
        assert_eq!(target.api_version, "2.17");
        assert_eq!(target.record_key(), "http://127.0.0.1:1");
        let mut settings = profile_with_url("http://127.0.0.1:1");
        settings.api_version = Some("2".into());
        assert!(Target::from_settings(&settings).is_err());
    }

    #[test]
    fn config_round_trips_through_yaml() {
        let mut config = ConfigFile {
            current: Some("local".into()),
            ..ConfigFile::default()
        };
        let mut profile = profile_with_url("http://127.0.0.1:8080");
        profile.password = Some(Secret::from_str("pw").unwrap());
        profile.platform = Some(PlatformKind::Kubernetes);
        config.profiles.insert("local".into(), profile);
        let text = serde_yaml::to_string(&config).unwrap();
        let back: ConfigFile = serde_yaml::from_str(&text).unwrap();
        assert_eq!(back, config);
    }
}
