//! The broker: catalog, backend, store and settings, shared by every request.

use std::sync::Arc;
use std::time::Duration;

use osbkit_types::Catalog;

use crate::auth::{Authenticator, Credential};
use crate::backend::Backend;
use crate::catalog::CatalogIndex;
use crate::crypto::Sealer;
use crate::store::{Store, StoreError};

/// The body size limit when none is set: far above any real request, far
/// below what could exhaust memory.
const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// A configured broker. Cloning is cheap; every clone shares the same state.
#[derive(Clone)]
pub struct Broker {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub catalog: CatalogIndex,
    pub backend: Arc<dyn Backend>,
    pub store: Arc<dyn Store>,
    pub sealer: Sealer,
    pub authenticator: Authenticator,
    pub body_limit: usize,
    pub retry_after: Duration,
}

/// An error that prevents building a broker.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid catalog:\n  {}", .0.join("\n  "))]
    Catalog(Vec<String>),
    #[error("invalid password hash for broker user {0:?}: use a bcrypt ($2b$...) or Argon2 ($argon2id$...) hash, or a plain password")]
    PasswordHash(String),
}

/// Collects what a [`Broker`] needs.
pub struct BrokerBuilder {
    catalog: Catalog,
    backend: Arc<dyn Backend>,
    store: Arc<dyn Store>,
    sealer: Sealer,
    credentials: Vec<Credential>,
    body_limit: usize,
    retry_after: Duration,
}

impl BrokerBuilder {
    /// Starts a broker for `catalog`, served by `backend`, with state in
    /// `store` and stored credentials encrypted by `sealer`.
    pub fn new(
        catalog: Catalog,
        backend: Arc<dyn Backend>,
        store: Arc<dyn Store>,
        sealer: Sealer,
    ) -> Self {
        BrokerBuilder {
            catalog,
            backend,
            store,
            sealer,
            credentials: Vec::new(),
            body_limit: DEFAULT_BODY_LIMIT,
            retry_after: Duration::from_secs(2),
        }
    }

    /// Sets the broker users that platforms authenticate as. Without any,
    /// the broker accepts every request.
    pub fn credentials(mut self, credentials: Vec<Credential>) -> Self {
        self.credentials = credentials;
        self
    }

    /// Sets the largest request body accepted, in bytes.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Sets the `Retry-After` sent while an operation is in progress.
    pub fn retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = delay;
        self
    }

    /// Checks the catalog and credentials and builds the broker.
    pub fn build(self) -> Result<Broker, BuildError> {
        for credential in &self.credentials {
            if !credential.password.is_valid() {
                return Err(BuildError::PasswordHash(credential.username.clone()));
            }
        }
        let catalog = CatalogIndex::new(self.catalog).map_err(BuildError::Catalog)?;
        Ok(Broker {
            inner: Arc::new(Inner {
                catalog,
                backend: self.backend,
                store: self.store,
                sealer: self.sealer,
                authenticator: Authenticator::new(self.credentials),
                body_limit: self.body_limit,
                retry_after: self.retry_after,
            }),
        })
    }
}

impl Broker {
    /// Returns the HTTP application: every OSB route, plus an unauthenticated
    /// `GET /health`.
    pub fn router(&self) -> axum::Router {
        crate::server::router(self.clone())
    }

    /// Restarts the operations that were in progress when the broker last
    /// stopped. Returns how many were found.
    pub async fn resume_operations(&self) -> Result<usize, StoreError> {
        crate::engine::resume(self).await
    }

    /// Returns the checked catalog.
    pub fn catalog(&self) -> &Catalog {
        self.inner.catalog.catalog()
    }
}
