//! osbkit: an Open Service Broker API v2.17 server that a backend cannot get wrong.
//!
//! A service implements [`Backend`]: one async method per operation that
//! changes state. [`Broker`] wraps it in an HTTP server. The server checks
//! versions, credentials and requests, and validates parameters against the
//! plan's JSON Schemas. It keeps every instance, binding and operation in a
//! durable [`store::Store`], runs asynchronous operations in the background
//! and resumes them after a restart. It chooses every status code and error
//! body that the specification prescribes.

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
