//! The `X-Broker-API-Originating-Identity` header.

use base64::Engine;
use osbkit_types::JsonObject;

/// The platform user behind a request, decoded from its header.
#[derive(Debug, Clone, PartialEq)]
pub struct OriginatingIdentity {
    /// `cloudfoundry`, `kubernetes` or another platform's name.
    pub platform: String,
    /// The decoded JSON object.
    pub value: JsonObject,
}

/// A reason to reject an originating identity header.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum IdentityError {
    #[error("expected \"PLATFORM VALUE\" with one space between the two")]
    Shape,
    #[error("the value is not valid Base64")]
    Base64,
    #[error("the value is not a Base64-encoded JSON object")]
    NotAnObject,
    #[error("the {platform} profile requires the property \"{property}\" as {expected}")]
    MissingProperty {
        platform: &'static str,
        property: &'static str,
        expected: &'static str,
    },
}

impl OriginatingIdentity {
    /// Parses a header value, checking the properties that the Cloud Foundry
    /// and Kubernetes profiles require. Other platforms pass with any object.
    pub fn parse(header: &str) -> Result<Self, IdentityError> {
        let (platform, encoded) = header.split_once(' ').ok_or(IdentityError::Shape)?;
        if platform.is_empty() || encoded.is_empty() || encoded.contains(' ') {
            return Err(IdentityError::Shape);
        }

        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| IdentityError::Base64)?;
        let value: JsonObject =
            serde_json::from_slice(&decoded).map_err(|_| IdentityError::NotAnObject)?;

        match platform {
            "cloudfoundry" => require(&value, "cloudfoundry", "user_id", Expected::String)?,
            "kubernetes" => {
                require(&value, "kubernetes", "username", Expected::String)?;
                require(&value, "kubernetes", "uid", Expected::String)?;
                require(&value, "kubernetes", "groups", Expected::StringArray)?;
                require(&value, "kubernetes", "extra", Expected::Object)?;
            }
            _ => {}
        }

        Ok(OriginatingIdentity {
            platform: platform.to_owned(),
            value,
        })
    }
}

enum Expected {
    String,
    StringArray,
    Object,
}

fn require(
    value: &JsonObject,
    platform: &'static str,
    property: &'static str,
    expected: Expected,
) -> Result<(), IdentityError> {
    let found = value.get(property);
    let valid = match expected {
        Expected::String => found.is_some_and(|v| v.is_string()),
        Expected::StringArray => found
            .and_then(|v| v.as_array())
            .is_some_and(|items| items.iter().all(|item| item.is_string())),
        Expected::Object => found.is_some_and(|v| v.is_object()),
    };
    if valid {
        return Ok(());
    }

    let expected = match expected {
        Expected::String => "a string",
        Expected::StringArray => "an array of strings",
        Expected::Object => "an object",
    };
    Err(IdentityError::MissingProperty {
        platform,
        property,
        expected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(json: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(json)
    }

    #[test]
    fn cloudfoundry_identity_decodes() {
        let header = format!("cloudfoundry {}", encode(r#"{"user_id":"683ea748"}"#));
        let identity = OriginatingIdentity::parse(&header).unwrap();
        assert_eq!(identity.platform, "cloudfoundry");
        assert_eq!(identity.value["user_id"], "683ea748");
    }

    #[test]
    fn kubernetes_identity_needs_all_properties() {
        let partial = format!("kubernetes {}", encode(r#"{"username":"duke","uid":"c2"}"#));
        assert!(matches!(
            OriginatingIdentity::parse(&partial),
            Err(IdentityError::MissingProperty {
                property: "groups",
                ..
            })
        ));

        let whole = format!(
            "kubernetes {}",
            encode(r#"{"username":"duke","uid":"c2","groups":["admin"],"extra":{"a":["b"]}}"#)
        );
        assert!(OriginatingIdentity::parse(&whole).is_ok());
    }

    #[test]
    fn malformed_headers_are_rejected() {
        assert_eq!(
            OriginatingIdentity::parse("cloudfoundry"),
            Err(IdentityError::Shape)
        );
        assert_eq!(
            OriginatingIdentity::parse("cloudfoundry %%%"),
            Err(IdentityError::Base64)
        );
        let array = format!("cloudfoundry {}", encode("[1]"));
        assert_eq!(
            OriginatingIdentity::parse(&array),
            Err(IdentityError::NotAnObject)
        );
    }

    #[test]
    fn unknown_platform_passes_any_object() {
        let header = format!("myportal {}", encode(r#"{"who":"me"}"#));
        assert_eq!(
            OriginatingIdentity::parse(&header).unwrap().platform,
            "myportal"
        );
    }
}
