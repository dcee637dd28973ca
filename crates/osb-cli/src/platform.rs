//! The platform this command line plays: the context object and the
//! originating identity of the Cloud Foundry and Kubernetes profiles of the
//! OSB API (`profile.md` of the v2.17 specification).

use base64::Engine as _;
use clap::ValueEnum;
use osbkit_types::JsonObject;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::target::Profile;

/// The `platform` value of the context object and the originating identity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlatformKind {
    /// Cloud Foundry: organizations and spaces.
    #[default]
    Cloudfoundry,
    /// Kubernetes: namespaces in a cluster.
    Kubernetes,
}

impl PlatformKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PlatformKind::Cloudfoundry => "cloudfoundry",
            PlatformKind::Kubernetes => "kubernetes",
        }
    }

    /// Reads the `platform` property of a context object.
    pub fn of_context(context: &JsonObject) -> Option<PlatformKind> {
        match context.get("platform")?.as_str()? {
            "cloudfoundry" => Some(PlatformKind::Cloudfoundry),
            "kubernetes" => Some(PlatformKind::Kubernetes),
            _ => None,
        }
    }
}

/// Fixed namespace for deriving organization and space GUIDs from their
/// names, so the same name gives the same GUID on every run.
const GUID_NAMESPACE: Uuid = Uuid::from_u128(0x6f73_626b_6974_4f53_8b00_706c_6174_666f);

/// Platform values for the requests of one command.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformSettings {
    pub kind: PlatformKind,
    pub org: String,
    pub space: String,
    pub namespace: String,
    pub cluster_id: String,
    pub user: String,
}

impl PlatformSettings {
    /// Fills the values missing from the merged settings with defaults.
    pub fn from_settings(settings: &Profile) -> Self {
        let default_user = std::env::var("USER")
            .ok()
            .filter(|user| !user.is_empty())
            .unwrap_or_else(|| "osb".to_owned());
        Self {
            kind: settings.platform.unwrap_or_default(),
            org: settings.org.clone().unwrap_or_else(|| "osb".to_owned()),
            space: settings.space.clone().unwrap_or_else(|| "dev".to_owned()),
            namespace: settings
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_owned()),
            cluster_id: settings
                .cluster_id
                .clone()
                .unwrap_or_else(|| "osb-local".to_owned()),
            user: settings.originating_user.clone().unwrap_or(default_user),
        }
    }

    pub fn org_guid(&self) -> String {
        Uuid::new_v5(
            &GUID_NAMESPACE,
            format!("organization/{}", self.org).as_bytes(),
        )
        .to_string()
    }

    pub fn space_guid(&self) -> String {
        let key = format!("space/{}/{}", self.org, self.space);
        Uuid::new_v5(&GUID_NAMESPACE, key.as_bytes()).to_string()
    }

    /// Returns the deprecated but required `organization_guid` and `space_guid` of a
    /// provision request. Kubernetes has neither, so the cluster id and the
    /// namespace stand in for them.
    pub fn provision_guids(&self) -> (String, String) {
        match self.kind {
            PlatformKind::Cloudfoundry => (self.org_guid(), self.space_guid()),
            PlatformKind::Kubernetes => (self.cluster_id.clone(), self.namespace.clone()),
        }
    }

    /// Builds the context of a provision or update, with every property the profile requires for them.
    pub fn instance_context(&self, instance_name: &str) -> JsonObject {
        let value = match self.kind {
            PlatformKind::Cloudfoundry => json!({
                "platform": "cloudfoundry",
                "organization_guid": self.org_guid(),
                "organization_name": self.org,
                "space_guid": self.space_guid(),
                "space_name": self.space,
                "instance_name": instance_name,
            }),
            PlatformKind::Kubernetes => json!({
                "platform": "kubernetes",
                "namespace": self.namespace,
                "clusterid": self.cluster_id,
                "instance_name": instance_name,
            }),
        };
        into_object(value)
    }

    /// Builds the value of `X-Broker-API-Originating-Identity` for a request whose
    /// context names `platform`: the platform, a space, and the Base64 of the
    /// user's JSON object.
    pub fn originating_identity(&self, platform: PlatformKind) -> String {
        let user = match platform {
            PlatformKind::Cloudfoundry => json!({ "user_id": self.user }),
            PlatformKind::Kubernetes => json!({
                "username": self.user,
                "uid": self.user,
                "groups": [],
                "extra": {},
            }),
        };
        let encoded = base64::engine::general_purpose::STANDARD.encode(user.to_string());
        format!("{} {encoded}", platform.as_str())
    }
}

/// Builds the context of a bind: the instance's context without `instance_name`,
/// which the profile defines for instance requests only.
pub fn binding_context(instance_context: &JsonObject) -> JsonObject {
    let mut context = instance_context.clone();
    context.remove("instance_name");
    context
}

fn into_object(value: Value) -> JsonObject {
    match value {
        Value::Object(object) => object,
        _ => JsonObject::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(kind: PlatformKind) -> PlatformSettings {
        PlatformSettings::from_settings(&Profile {
            platform: Some(kind),
            originating_user: Some("duke".into()),
            ..Profile::default()
        })
    }

    fn decode_identity(header: &str) -> (String, Value) {
        let (platform, value) = header.split_once(' ').unwrap();
        let json = base64::engine::general_purpose::STANDARD
            .decode(value)
            .unwrap();
        (platform.to_owned(), serde_json::from_slice(&json).unwrap())
    }

    #[test]
    fn cloudfoundry_context_has_required_properties() {
        let context = settings(PlatformKind::Cloudfoundry).instance_context("orders-db");
        for key in [
            "organization_guid",
            "organization_name",
            "space_guid",
            "space_name",
            "instance_name",
        ] {
            let value = context.get(key).and_then(Value::as_str).unwrap_or_default();
            assert!(!value.is_empty(), "{key} is missing or empty");
        }
        assert_eq!(context["platform"], "cloudfoundry");
        assert_eq!(context["instance_name"], "orders-db");
    }

    #[test]
    fn kubernetes_context_has_required_properties() {
        let context = settings(PlatformKind::Kubernetes).instance_context("orders-db");
        assert_eq!(context["platform"], "kubernetes");
        assert_eq!(context["namespace"], "default");
        assert_eq!(context["clusterid"], "osb-local");
        assert_eq!(context["instance_name"], "orders-db");
    }

    #[test]
    fn guids_stable_per_name() {
        let first = settings(PlatformKind::Cloudfoundry);
        let second = settings(PlatformKind::Cloudfoundry);
        assert_eq!(first.org_guid(), second.org_guid());
        assert_eq!(first.space_guid(), second.space_guid());
        assert_ne!(first.org_guid(), first.space_guid());
    }

    #[test]
    fn cloudfoundry_identity_encodes_user_id() {
        let (platform, value) = decode_identity(
            &settings(PlatformKind::Cloudfoundry).originating_identity(PlatformKind::Cloudfoundry),
        );
        assert_eq!(platform, "cloudfoundry");
        assert_eq!(value, json!({ "user_id": "duke" }));
    }

    #[test]
    fn kubernetes_identity_has_user_info_fields() {
        let (platform, value) = decode_identity(
            &settings(PlatformKind::Cloudfoundry).originating_identity(PlatformKind::Kubernetes),
        );
        assert_eq!(platform, "kubernetes");
        assert_eq!(value["username"], "duke");
        assert!(value["uid"].is_string());
        assert!(value["groups"].is_array());
        assert!(value["extra"].is_object());
    }

    #[test]
    fn binding_context_drops_instance_name() {
        let instance = settings(PlatformKind::Cloudfoundry).instance_context("orders-db");
        let binding = binding_context(&instance);
        assert!(!binding.contains_key("instance_name"));
        assert_eq!(binding["space_name"], "dev");
    }
}
