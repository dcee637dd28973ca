//! Builds a running broker from a configuration.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use osbkit::crypto::Sealer;
use osbkit::store::{SqliteStore, Store};
use osbkit::{Backend, Broker, BrokerBuilder};

use crate::backends::postgresql::PostgresBackend;
use crate::backends::simulated::SimulatedBackend;
use crate::backends::static_credentials::StaticBackend;
use crate::backends::PlanRouter;
use crate::config::{Config, PlanBackend};

/// The settings key of the key generated in development mode.
const DEV_KEY_SETTING: &str = "dev_mode_encryption_key";

/// Opens the state store named in the configuration.
pub fn open_store(config: &Config) -> Result<Arc<dyn Store>, String> {
    let store = SqliteStore::open(&config.state.sqlite).map_err(|error| {
        format!(
            "state.sqlite: cannot open {}: {error}",
            config.state.sqlite.display()
        )
    })?;
    Ok(Arc::new(store))
}

/// The settings key of a value sealed with the first key the broker used.
const KEY_CHECK_SETTING: &str = "encryption_key_check";

/// Returns the key that encrypts stored credentials, after checking that it
/// opens what earlier runs stored.
pub async fn sealer(config: &Config, store: &dyn Store) -> Result<Sealer, String> {
    let sealer = configured_sealer(config, store).await?;
    let check = sealer.seal(KEY_CHECK_SETTING, b"osbkit");
    let stored = store
        .setting_or_insert(KEY_CHECK_SETTING, &hex(&check))
        .await
        .map_err(|error| error.to_string())?;
    let opens =
        unhex(&stored).is_some_and(|sealed| sealer.open(KEY_CHECK_SETTING, &sealed).is_ok());
    if !opens {
        return Err(format!(
            "state.encryption_key: this key cannot decrypt the credentials already stored in {}; start with the key they were stored with",
            config.state.sqlite.display()
        ));
    }
    Ok(sealer)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(text.get(index..index + 2)?, 16).ok())
        .collect()
}

/// Returns the configured key. Outside development mode it must be
/// configured; in development mode one is generated once and kept in the
/// state database.
async fn configured_sealer(config: &Config, store: &dyn Store) -> Result<Sealer, String> {
    if let Some(key) = &config.state.encryption_key {
        return Sealer::from_base64(key).map_err(|error| format!("state.encryption_key: {error}"));
    }
    if !config.dev_mode {
        return Err(format!(
            "state.encryption_key: missing; stored credentials must be encrypted. Generate a key with `openssl rand -base64 32` and set it in the file or in {}STATE__ENCRYPTION_KEY, or set dev_mode = true for a local trial",
            crate::config::ENV_PREFIX
        ));
    }
    tracing::warn!("dev_mode: using an encryption key kept in the state database; set state.encryption_key in production");
    let key = store
        .setting_or_insert(DEV_KEY_SETTING, &Sealer::generate_key())
        .await
        .map_err(|error| error.to_string())?;
    Sealer::from_base64(&key).map_err(|error| error.to_string())
}

/// Builds the backends of every plan. The PostgreSQL backend, when any plan
/// uses it, is returned on its own too, for reconciliation.
pub async fn backends(
    config: &Config,
) -> Result<(PlanRouter, Option<Arc<PostgresBackend>>), String> {
    let mut static_backend = StaticBackend::default();
    let mut simulated_backend = SimulatedBackend::default();
    let mut postgres_plans = Vec::new();
    for (plan_id, backend) in &config.plan_backends {
        match backend {
            PlanBackend::Static(plan) => static_backend.add_plan(plan_id, plan.clone()),
            PlanBackend::Simulated(plan) => simulated_backend
                .add_plan(plan_id, plan.clone())
                .map_err(|error| format!("plan {plan_id:?}: backend.{error}"))?,
            PlanBackend::Postgresql(plan) => postgres_plans.push((plan_id.clone(), plan.clone())),
        }
    }

    let static_backend: Arc<dyn Backend> = Arc::new(static_backend);
    let simulated_backend: Arc<dyn Backend> = Arc::new(simulated_backend);
    let postgres = if postgres_plans.is_empty() {
        None
    } else {
        Some(Arc::new(
            PostgresBackend::new(&config.postgresql_servers, postgres_plans).await?,
        ))
    };

    let mut routes: HashMap<String, Arc<dyn Backend>> = HashMap::new();
    for (plan_id, backend) in &config.plan_backends {
        let chosen = match backend {
            PlanBackend::Static(_) => static_backend.clone(),
            PlanBackend::Simulated(_) => simulated_backend.clone(),
            PlanBackend::Postgresql(_) => {
                postgres.clone().expect("built above when a plan uses it") as Arc<dyn Backend>
            }
        };
        routes.insert(plan_id.clone(), chosen);
    }
    Ok((PlanRouter::new(routes), postgres))
}

/// Builds the broker: store, key, backends and catalog.
pub async fn build(config: &Config) -> Result<Broker, String> {
    let store = open_store(config)?;
    let sealer = sealer(config, store.as_ref()).await?;
    let (router, _) = backends(config).await?;
    BrokerBuilder::new(config.catalog.clone(), Arc::new(router), store, sealer)
        .credentials(config.credentials.clone())
        .body_limit(config.limits.max_body_bytes)
        .retry_after(Duration::from_secs(config.limits.retry_after_seconds))
        .build()
        .map_err(|error| error.to_string())
}
