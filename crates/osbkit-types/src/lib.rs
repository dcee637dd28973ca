//! Wire types of the Open Service Broker API v2.17.
//!
//! Every request and response body of the ten endpoints, with the field names
//! exactly as the specification spells them (`plan_updateable` included).
//! Request types accept and ignore unknown fields, so a platform that sends a
//! newer minor version's fields still gets through. Optional fields are left
//! out of the JSON when unset, because the specification gives absent and
//! `null` different meanings in a few places (`dashboard_url` on update).
//!
//! This crate depends only on serde, so a client such as the `osb` command
//! line can share the types without pulling in the server.

mod binding;
mod catalog;
mod error;
mod headers;
mod instance;
mod operation;

pub use binding::*;
pub use catalog::*;
pub use error::*;
pub use headers::*;
pub use instance::*;
pub use operation::*;

/// A JSON object, as the specification uses for `parameters`, `context` and `metadata`.
pub type JsonObject = serde_json::Map<String, serde_json::Value>;
