//! A binding's credentials in the shapes applications receive them:
//! Cloud Foundry's `VCAP_SERVICES`, a Kubernetes Secret, a servicebinding.io
//! directory, or shell `export` lines.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use clap::ValueEnum;
use osbkit_types::JsonObject;
use serde_json::{json, Value};

use crate::cli::SecretEncoding;

/// The `--format` of `osb credentials`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CredentialsFormat {
    /// The credentials object as JSON.
    Json,
    /// Shell `export NAME='value'` lines, one per key.
    Env,
    /// The VCAP_SERVICES JSON that Cloud Foundry gives applications.
    Vcap,
    /// A Kubernetes Secret manifest (YAML).
    K8sSecret,
    /// A servicebinding.io directory: one file per key, plus `type` and `provider`.
    Servicebinding,
}

/// Everything the formats need about one binding.
#[derive(Debug, Clone)]
pub struct BindingCredentials {
    pub binding_name: String,
    pub binding_id: String,
    pub instance_name: String,
    pub instance_id: String,
    /// The offering name, Cloud Foundry's `label`.
    pub service_name: String,
    pub plan_name: String,
    pub tags: Vec<String>,
    pub provider: String,
    /// The Kubernetes namespace of the instance, when it has one.
    pub namespace: Option<String>,
    /// The broker's binding response: `credentials`, `syslog_drain_url`, `volume_mounts` and so on.
    pub response: JsonObject,
}

impl BindingCredentials {
    /// Returns the `credentials` object, empty when the broker returned none.
    pub fn credentials(&self) -> JsonObject {
        self.response
            .get("credentials")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }

    /// Returns the servicebinding.io `type`: the credentials' own `type` key, else the offering name.
    fn binding_type(&self) -> String {
        self.credentials()
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(&self.service_name)
            .to_owned()
    }

    /// Returns the servicebinding.io `provider`: the credentials' own `provider` key, else the recorded provider.
    fn binding_provider(&self) -> String {
        self.credentials()
            .get("provider")
            .and_then(Value::as_str)
            .unwrap_or(&self.provider)
            .to_owned()
    }

    /// Renders `VCAP_SERVICES` with this one binding, as Cloud Foundry's V3 API does.
    pub fn to_vcap_services(&self) -> Value {
        let entry = json!({
            "binding_guid": self.binding_id,
            "binding_name": self.binding_name,
            "credentials": self.credentials(),
            "instance_guid": self.instance_id,
            "instance_name": self.instance_name,
            "label": self.service_name,
            "name": self.binding_name,
            "plan": self.plan_name,
            "provider": null,
            "syslog_drain_url": self.response.get("syslog_drain_url").cloned().unwrap_or(Value::Null),
            "tags": self.tags,
            "volume_mounts": self.response.get("volume_mounts").cloned().unwrap_or_else(|| json!([])),
        });
        json!({ self.service_name.clone(): [entry] })
    }

    /// Renders one `export NAME='value'` line per credentials key. Names are
    /// upper case with every character outside `A-Z0-9_` turned into `_`.
    pub fn to_env_lines(&self) -> Result<String, String> {
        let mut variables: BTreeMap<String, (String, String)> = BTreeMap::new();
        for (key, value) in self.credentials() {
            let name = env_name(&key);
            if let Some((other, _)) = variables.get(&name) {
                return Err(format!(
                    "credentials keys {other:?} and {key:?} both map to the variable {name}"
                ));
            }
            variables.insert(name, (key, value_text(&value)));
        }
        Ok(variables
            .iter()
            .map(|(name, (_, value))| format!("export {name}={}\n", shell_quote(value)))
            .collect())
    }

    /// Returns the entries of the servicebinding.io directory and of the Kubernetes
    /// Secret: each credentials key, plus `type` and `provider`.
    pub fn binding_entries(&self) -> BTreeMap<String, String> {
        let mut entries: BTreeMap<String, String> = self
            .credentials()
            .iter()
            .map(|(key, value)| (key.clone(), value_text(value)))
            .collect();
        entries.insert("type".into(), self.binding_type());
        entries.insert("provider".into(), self.binding_provider());
        entries
    }

    /// Renders a Kubernetes Secret manifest of the binding entries.
    pub fn to_kubernetes_secret(&self, encoding: SecretEncoding) -> Result<String, String> {
        let entries = self.binding_entries();
        let mut metadata = json!({
            "name": kubernetes_name(&self.binding_name),
            "labels": {
                "app.kubernetes.io/managed-by": "osb",
            },
            "annotations": {
                "osbkit.dev/binding-id": self.binding_id,
                "osbkit.dev/instance-id": self.instance_id,
            },
        });
        if let Some(namespace) = &self.namespace {
            metadata["namespace"] = json!(namespace);
        }
        let (data_key, data) = match encoding {
            SecretEncoding::StringData => ("stringData", json!(entries)),
            SecretEncoding::Base64 => {
                let encoded: BTreeMap<&String, String> = entries
                    .iter()
                    .map(|(key, value)| {
                        (key, base64::engine::general_purpose::STANDARD.encode(value))
                    })
                    .collect();
                ("data", json!(encoded))
            }
        };
        let secret = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": metadata,
            "type": format!("servicebinding.io/{}", self.binding_type()),
            data_key: data,
        });
        serde_yaml::to_string(&secret)
            .map_err(|error| format!("could not encode the Secret: {error}"))
    }

    /// Writes the servicebinding.io directory `root/<binding name>/`, one file
    /// per entry, readable by the owner only. Returns the directory.
    pub fn write_servicebinding_dir(&self, root: &Path) -> Result<PathBuf, String> {
        let entries = self.binding_entries();
        for key in entries.keys() {
            if !is_plain_file_name(key) {
                return Err(format!("credentials key {key:?} is not a valid file name"));
            }
        }
        if !is_plain_file_name(&self.binding_name) {
            return Err(format!(
                "binding name {:?} is not a valid directory name",
                self.binding_name
            ));
        }
        let directory = root.join(&self.binding_name);
        if directory.exists() {
            return Err(format!(
                "{} already exists; remove it first",
                directory.display()
            ));
        }
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&directory)
            .map_err(|error| format!("could not create {}: {error}", directory.display()))?;
        for (key, value) in &entries {
            let path = directory.join(key);
            write_private_file(&path, value.as_bytes())
                .map_err(|error| format!("could not write {}: {error}", path.display()))?;
        }
        Ok(directory)
    }
}

/// Renders a credentials value as text: strings as they are, anything else as compact JSON.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn env_name(key: &str) -> String {
    let mut name: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

/// Quotes a value for POSIX shells: single quotes, with `'` written as `'\''`.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// Turns a name into a Kubernetes object name: lower case alphanumerics,
/// `-` and `.`, starting and ending with an alphanumeric, at most 253 characters.
fn kubernetes_name(name: &str) -> String {
    let mapped: String = name
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-' | '.') => c,
            _ => '-',
        })
        .take(253)
        .collect();
    let trimmed = mapped.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if trimmed.is_empty() {
        "binding".to_owned()
    } else {
        trimmed.to_owned()
    }
}

fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

fn write_private_file(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BindingCredentials {
        let response = json!({
            "credentials": {
                "uri": "postgres://u:p@db:5432/x",
                "api-key": "it's secret",
                "port": 5432,
                "nested": { "a": 1 },
            },
        });
        BindingCredentials {
            binding_name: "orders-app".into(),
            binding_id: "b-1".into(),
            instance_name: "orders-db".into(),
            instance_id: "i-1".into(),
            service_name: "simulated-db".into(),
            plan_name: "small".into(),
            tags: vec!["sql".into()],
            provider: "example".into(),
            namespace: Some("shop".into()),
            response: response.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn vcap_services_keyed_by_label() {
        let vcap = sample().to_vcap_services();
        let entry = &vcap["simulated-db"][0];
        assert_eq!(entry["name"], "orders-app");
        assert_eq!(entry["instance_name"], "orders-db");
        assert_eq!(entry["plan"], "small");
        assert_eq!(entry["credentials"]["port"], 5432);
        assert_eq!(entry["tags"], json!(["sql"]));
        assert_eq!(entry["volume_mounts"], json!([]));
    }

    #[test]
    fn env_lines_quoted_for_shell() {
        let lines = sample().to_env_lines().unwrap();
        assert!(
            lines.contains("export API_KEY='it'\\''s secret'\n"),
            "{lines}"
        );
        assert!(lines.contains("export PORT='5432'\n"));
        assert!(lines.contains("export NESTED='{\"a\":1}'\n"));
    }

    #[test]
    fn env_name_collisions_rejected() {
        let mut credentials = sample();
        credentials.response = json!({ "credentials": { "a-b": "1", "a_b": "2" } })
            .as_object()
            .unwrap()
            .clone();
        assert!(credentials.to_env_lines().is_err());
    }

    #[test]
    fn env_names_sanitised() {
        assert_eq!(env_name("api-key"), "API_KEY");
        assert_eq!(env_name("1st"), "_1ST");
        assert_eq!(env_name("uri"), "URI");
    }

    #[test]
    fn secret_string_data_parses_back() {
        let yaml = sample()
            .to_kubernetes_secret(SecretEncoding::StringData)
            .unwrap();
        let secret: Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(secret["kind"], "Secret");
        assert_eq!(secret["metadata"]["name"], "orders-app");
        assert_eq!(secret["metadata"]["namespace"], "shop");
        assert_eq!(secret["stringData"]["uri"], "postgres://u:p@db:5432/x");
        assert_eq!(secret["stringData"]["port"], "5432");
        assert_eq!(secret["stringData"]["type"], "simulated-db");
        assert_eq!(secret["type"], "servicebinding.io/simulated-db");
    }

    #[test]
    fn secret_base64_data_decodes() {
        let yaml = sample()
            .to_kubernetes_secret(SecretEncoding::Base64)
            .unwrap();
        let secret: Value = serde_yaml::from_str(&yaml).unwrap();
        let encoded = secret["data"]["api-key"].as_str().unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap();
        assert_eq!(decoded, b"it's secret");
        assert!(secret.get("stringData").is_none());
    }

    #[test]
    fn kubernetes_names_sanitised() {
        assert_eq!(kubernetes_name("Orders_App"), "orders-app");
        assert_eq!(kubernetes_name("__"), "binding");
    }

    #[test]
    fn servicebinding_dir_has_file_per_key() {
        let root = std::env::temp_dir().join(format!("osb-sb-{}", uuid::Uuid::new_v4()));
        let directory = sample().write_servicebinding_dir(&root).unwrap();
        assert_eq!(directory, root.join("orders-app"));
        let read = |name: &str| std::fs::read_to_string(directory.join(name)).unwrap();
        assert_eq!(read("uri"), "postgres://u:p@db:5432/x");
        assert_eq!(read("type"), "simulated-db");
        assert_eq!(read("provider"), "example");
        assert_eq!(read("nested"), "{\"a\":1}");
        assert!(sample().write_servicebinding_dir(&root).is_err());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn servicebinding_rejects_path_keys() {
        let mut credentials = sample();
        credentials.response = json!({ "credentials": { "../x": "1" } })
            .as_object()
            .unwrap()
            .clone();
        let root = std::env::temp_dir().join(format!("osb-sb-{}", uuid::Uuid::new_v4()));
        assert!(credentials.write_servicebinding_dir(&root).is_err());
        assert!(!root.exists());
    }
}
