use serde::{Deserialize, Serialize};

use crate::JsonObject;

/// The body of `PUT /v2/service_instances/:instance_id/service_bindings/:binding_id`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BindRequest {
    pub service_id: String,
    pub plan_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<JsonObject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<JsonObject>,
    /// Deprecated in favour of `bind_resource.app_guid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_guid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_resource: Option<JsonObject>,
    /// Set when this bind rotates the credentials of an earlier binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predecessor_binding_id: Option<String>,
}

impl BindRequest {
    /// Returns the app this binding is for, from `bind_resource` or the deprecated field.
    pub fn app_guid(&self) -> Option<&str> {
        self.bind_resource
            .as_ref()
            .and_then(|resource| resource.get("app_guid"))
            .and_then(|value| value.as_str())
            .or(self.app_guid.as_deref())
            .filter(|guid| !guid.is_empty())
    }
}

/// The body of a 200 or 201 response to a bind, and of `GET` on a binding.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BindingResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BindingMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<JsonObject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syslog_drain_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_service_url: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<Endpoint>,
    /// Only in responses to `GET` on a binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<JsonObject>,
}

/// When a binding's credentials expire, as ISO 8601 `yyyy-mm-ddThh:mm:ss.sZ` strings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BindingMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// No later than `expires_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_before: Option<String>,
}

/// A volume the platform mounts into the application's container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VolumeMount {
    pub driver: String,
    pub container_dir: String,
    /// `r` or `rw`.
    pub mode: String,
    /// Only `shared`.
    pub device_type: String,
    pub device: VolumeDevice,
}

/// The device of a volume mount.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VolumeDevice {
    pub volume_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_config: Option<JsonObject>,
}

/// A network endpoint that the application reaches through the binding.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    pub host: String,
    /// Single ports such as `"443"` or ranges such as `"9000-9010"`; never empty.
    pub ports: Vec<String>,
    /// `tcp` (the default), `udp` or `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// The query of `DELETE .../service_bindings/:binding_id`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UnbindQuery {
    #[serde(default)]
    pub service_id: Option<String>,
    #[serde(default)]
    pub plan_id: Option<String>,
}
