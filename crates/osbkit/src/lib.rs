//! osbkit: an Open Service Broker API v2.17 server that a backend cannot get wrong.
//!
//! A service implements [`Backend`]: one async method per operation that
//! changes state. [`Broker`] wraps it in an HTTP server that checks
//! versions, credentials and requests, validates parameters against the
//! plan's JSON Schemas, keeps every instance, binding and operation in a
//! durable [`store::Store`], runs asynchronous operations in the background,
//! resumes them after a restart, and chooses every status code and error
//! body the specification prescribes.

pub mod auth;
pub mod backend;
mod broker;
pub mod catalog;
pub mod crypto;
mod engine;
pub mod error;
pub mod identity;
mod server;
pub mod store;

pub use backend::{
    Backend, BackendError, BindJob, BindingOutcome, DeprovisionJob, Execution, InstanceOutcome,
    JobContext, OperationKind, ProvisionJob, UnbindJob, UpdateJob,
};
pub use broker::{Broker, BrokerBuilder, BuildError};
pub use identity::OriginatingIdentity;
pub use osbkit_types as types;
