use serde::{Deserialize, Serialize};

use crate::JsonObject;

/// The body of `GET /v2/catalog`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    pub services: Vec<ServiceOffering>,
}

/// A service offering: one kind of service the broker can provision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceOffering {
    pub name: String,
    pub id: String,
    pub description: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Only `syslog_drain`, `route_forwarding` and `volume_mount` are allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<String>,
    pub bindable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances_retrievable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bindings_retrievable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_context_updates: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JsonObject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard_client: Option<DashboardClient>,
    /// The specification's spelling; defaults to false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_updateable: Option<bool>,
    pub plans: Vec<ServicePlan>,
}

/// The OAuth client a Cloud Foundry platform creates for an offering's dashboard.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DashboardClient {
    pub id: String,
    pub secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
}

/// A plan: one tier or configuration of an offering.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServicePlan {
    pub id: String,
    pub name: String,
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JsonObject>,
    /// Defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free: Option<bool>,
    /// Overrides the offering's `bindable` when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bindable: Option<bool>,
    /// Defaults to false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding_rotatable: Option<bool>,
    /// Overrides the offering's `plan_updateable` when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_updateable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schemas: Option<Schemas>,
    /// Seconds the platform should keep polling an asynchronous operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_polling_duration: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_info: Option<MaintenanceInfo>,
}

/// The JSON Schemas for the parameters a plan accepts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Schemas {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_instance: Option<ServiceInstanceSchemas>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_binding: Option<ServiceBindingSchemas>,
}

/// The schemas for provision (`create`) and update parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceInstanceSchemas {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<InputParametersSchema>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<InputParametersSchema>,
}

/// The schema for bind parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceBindingSchemas {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<InputParametersSchema>,
}

/// A JSON Schema wrapped as the specification requires.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InputParametersSchema {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<serde_json::Value>,
}

/// The maintenance version of a plan or an instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceInfo {
    /// A SemVer 2.0 version.
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl ServiceOffering {
    /// Returns the plan with this id, if the offering has one.
    pub fn plan(&self, plan_id: &str) -> Option<&ServicePlan> {
        self.plans.iter().find(|plan| plan.id == plan_id)
    }

    /// Returns whether the plan can be bound, the plan's own flag winning.
    pub fn plan_bindable(&self, plan: &ServicePlan) -> bool {
        plan.bindable.unwrap_or(self.bindable)
    }

    /// Returns whether instances of the plan may change plan, the plan's own flag winning.
    pub fn plan_updateable(&self, plan: &ServicePlan) -> bool {
        plan.plan_updateable
            .or(self.plan_updateable)
            .unwrap_or(false)
    }
}

impl Catalog {
    /// Returns the offering with this id, if the catalog has one.
    pub fn offering(&self, service_id: &str) -> Option<&ServiceOffering> {
        self.services
            .iter()
            .find(|offering| offering.id == service_id)
    }
}
