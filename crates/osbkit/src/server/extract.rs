//! Extractors that turn every malformed request into an OSB 400.

use std::collections::HashMap;

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use bytes::Bytes;
use osbkit_types::ORIGINATING_IDENTITY_HEADER;
use serde::de::DeserializeOwned;

use super::RequestIdentity;
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::identity::OriginatingIdentity;

/// The maximum length of an instance or binding id, in characters.
const MAX_ID_LENGTH: usize = 255;

/// A JSON body, checked for Content-Type, size and shape.
pub(crate) struct OsbJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Broker> for OsbJson<T> {
    type Rejection = BrokerError;

    async fn from_request(request: Request, broker: &Broker) -> Result<Self, BrokerError> {
        if let Some(content_type) = request.headers().get(header::CONTENT_TYPE) {
            let essence = content_type
                .to_str()
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if essence != "application/json" {
                return Err(BrokerError::BadRequest(
                    "unsupported Content-Type: send the body as application/json".to_owned(),
                ));
            }
        }

        let limit = broker.inner.body_limit;
        let body = Bytes::from_request(request, &())
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    BrokerError::PayloadTooLarge(limit)
                } else {
                    BrokerError::BadRequest(
                        "the request body could not be read: it ended early or arrived too slowly"
                            .to_owned(),
                    )
                }
            })?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(BrokerError::BadRequest(
                "the request body is missing: send a JSON object".to_owned(),
            ));
        }
        let value: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|error| BrokerError::BadRequest(describe_json_error(&error)))?;
        if !value.is_object() {
            return Err(BrokerError::BadRequest(
                "the request body must be a JSON object".to_owned(),
            ));
        }
        serde_json::from_value(value)
            .map(OsbJson)
            .map_err(|error| BrokerError::BadRequest(describe_json_error(&error)))
    }
}

/// Describes a JSON error without echoing values, which may be secrets.
fn describe_json_error(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    // Errors found after parsing, in the JSON value, have no position.
    let position = if error.line() == 0 {
        "the body".to_owned()
    } else {
        format!("line {} column {}", error.line(), error.column())
    };
    match error.classify() {
        Category::Syntax | Category::Eof => {
            format!("the request body is not valid JSON (at {position})")
        }
        Category::Io => "the request body could not be read".to_owned(),
        Category::Data => {
            let message = error.to_string();
            let summary = if message.starts_with("missing field") {
                message
                    .split(" at line")
                    .next()
                    .unwrap_or(&message)
                    .replace('`', "\"")
            } else if let Some(expected) = message.split(", expected ").nth(1) {
                let expected = expected.split(" at line").next().unwrap_or(expected);
                format!("a field has the wrong type: expected {expected}")
            } else {
                "a field has an invalid value".to_owned()
            };
            format!("invalid request body: {summary} (at {position})")
        }
    }
}

/// The instance id of the path.
pub(crate) struct InstancePath(pub String);

impl FromRequestParts<Broker> for InstancePath {
    type Rejection = BrokerError;

    async fn from_request_parts(parts: &mut Parts, broker: &Broker) -> Result<Self, BrokerError> {
        let params = path_params(parts, broker).await?;
        let instance_id = checked_id(&params, "instance_id")?;
        super::record_ids(&instance_id, None);
        Ok(InstancePath(instance_id))
    }
}

/// The instance and binding ids of the path.
pub(crate) struct BindingPath(pub String, pub String);

impl FromRequestParts<Broker> for BindingPath {
    type Rejection = BrokerError;

    async fn from_request_parts(parts: &mut Parts, broker: &Broker) -> Result<Self, BrokerError> {
        let params = path_params(parts, broker).await?;
        let instance_id = checked_id(&params, "instance_id")?;
        let binding_id = checked_id(&params, "binding_id")?;
        super::record_ids(&instance_id, Some(&binding_id));
        Ok(BindingPath(instance_id, binding_id))
    }
}

async fn path_params(
    parts: &mut Parts,
    broker: &Broker,
) -> Result<HashMap<String, String>, BrokerError> {
    Path::<HashMap<String, String>>::from_request_parts(parts, broker)
        .await
        .map(|Path(params)| params)
        .map_err(|_| {
            BrokerError::BadRequest(
                "the ids in the path are not valid percent-encoded UTF-8".to_owned(),
            )
        })
}

fn checked_id(params: &HashMap<String, String>, name: &str) -> Result<String, BrokerError> {
    let id = params.get(name).cloned().unwrap_or_default();
    if id.is_empty() {
        return Err(BrokerError::BadRequest(format!("{name} must not be empty")));
    }
    if id.chars().count() > MAX_ID_LENGTH {
        return Err(BrokerError::BadRequest(format!(
            "{name} is longer than {MAX_ID_LENGTH} characters; use a GUID"
        )));
    }
    if id.chars().any(char::is_control) {
        return Err(BrokerError::BadRequest(format!(
            "{name} contains control characters; use a GUID"
        )));
    }
    Ok(id)
}

/// The query parameters, with the checks every endpoint shares.
pub(crate) struct OsbQuery(HashMap<String, String>);

impl OsbQuery {
    /// Returns `accepts_incomplete`, false when absent.
    pub fn accepts_incomplete(&self) -> Result<bool, BrokerError> {
        match self.0.get("accepts_incomplete").map(String::as_str) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err(BrokerError::BadRequest(
                "accepts_incomplete must be true or false".to_owned(),
            )),
        }
    }

    /// Returns a parameter that must be present and non-empty.
    pub fn required(&self, name: &str) -> Result<&str, BrokerError> {
        match self.0.get(name).map(String::as_str) {
            Some(value) if !value.is_empty() => Ok(value),
            _ => Err(BrokerError::BadRequest(format!(
                "the query parameter {name} is missing; send the resource's {name}"
            ))),
        }
    }

    /// Returns an optional parameter, rejecting an empty one.
    pub fn optional(&self, name: &str) -> Result<Option<&str>, BrokerError> {
        match self.0.get(name).map(String::as_str) {
            Some("") => Err(BrokerError::BadRequest(format!(
                "the query parameter {name} is empty; leave it out or give a value"
            ))),
            value => Ok(value),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for OsbQuery {
    type Rejection = BrokerError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, BrokerError> {
        Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|Query(params)| OsbQuery(params))
            .map_err(|_| BrokerError::BadRequest("the query string is malformed".to_owned()))
    }
}

/// The identities of the request's sender, from its headers.
pub(crate) struct Caller {
    pub request_identity: String,
    pub originating_identity: Option<OriginatingIdentity>,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = BrokerError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, BrokerError> {
        let request_identity = parts
            .extensions
            .get::<RequestIdentity>()
            .map(|identity| identity.0.clone())
            .unwrap_or_default();
        let originating_identity = match parts.headers.get(ORIGINATING_IDENTITY_HEADER) {
            None => None,
            Some(value) => {
                let text = value.to_str().map_err(|_| {
                    BrokerError::BadRequest(format!(
                        "invalid {ORIGINATING_IDENTITY_HEADER} header: it is not ASCII"
                    ))
                })?;
                Some(OriginatingIdentity::parse(text).map_err(|error| {
                    BrokerError::BadRequest(format!(
                        "invalid {ORIGINATING_IDENTITY_HEADER} header: {error}"
                    ))
                })?)
            }
        };
        Ok(Caller {
            request_identity,
            originating_identity,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::describe_json_error;

    #[test]
    fn json_errors_do_not_echo_values() {
        let error = serde_json::from_str::<osbkit_types::ProvisionRequest>(
            r#"{"service_id": "s", "plan_id": "p", "parameters": "hunter2"}"#,
        )
        .unwrap_err();
        let text = describe_json_error(&error);
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("expected a map"), "{text}");
    }

    #[test]
    fn missing_fields_are_named() {
        let error = serde_json::from_str::<osbkit_types::ProvisionRequest>(r#"{"plan_id": "p"}"#)
            .unwrap_err();
        assert!(describe_json_error(&error).contains("missing field \"service_id\""));
    }
}
