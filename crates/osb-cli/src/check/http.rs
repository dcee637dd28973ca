//! Raw HTTP for the conformance checks.
//!
//! The command line's `BrokerClient` always sends a correct version header
//! and the configured credentials. The checks also need requests without
//! them, with a wrong password or with a body that is not JSON, and they
//! keep every exchange so that a failure can show what was sent and what
//! came back, with secrets masked.

use std::time::Duration;

use osbkit_types::{ORIGINATING_IDENTITY_HEADER, REQUEST_IDENTITY_HEADER, VERSION_HEADER};
use reqwest::header::{HeaderMap, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::error::{CliError, CliResult};
use crate::platform::PlatformSettings;
use crate::target::{Secret, Target};

/// Maximum number of body characters kept in a report.
const MAX_BODY_CHARS: usize = 2000;

/// Time allowed to open a TCP connection, within the request timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The Authorization header a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// The configured user and password, if any.
    Configured,
    /// No Authorization header.
    Missing,
    /// The configured user with a password that is certainly wrong.
    WrongPassword,
}

/// The X-Broker-API-Version header a request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    /// The version of the target: 2.17, or the --api-version value.
    Configured,
    /// No version header.
    Missing,
    /// This value instead of the configured one.
    Value(String),
}

/// A request body.
#[derive(Debug, Clone)]
pub enum Payload {
    Empty,
    Json(Value),
    /// Text sent as is with `Content-Type: application/json`, for malformed bodies.
    Text(String),
}

/// One request as a check builds it.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    pub path: Vec<String>,
    pub query: Vec<(String, String)>,
    pub payload: Payload,
    pub auth: Auth,
    pub version: Version,
}

impl Call {
    pub fn new(method: Method, path: Vec<String>) -> Self {
        Self {
            method,
            path,
            query: Vec::new(),
            payload: Payload::Empty,
            auth: Auth::Configured,
            version: Version::Configured,
        }
    }

    pub fn get(path: Vec<String>) -> Self {
        Self::new(Method::GET, path)
    }

    pub fn put(path: Vec<String>, body: Value) -> Self {
        Self::new(Method::PUT, path).json(body)
    }

    pub fn patch(path: Vec<String>, body: Value) -> Self {
        Self::new(Method::PATCH, path).json(body)
    }

    pub fn delete(path: Vec<String>) -> Self {
        Self::new(Method::DELETE, path)
    }

    pub fn query(mut self, name: &str, value: &str) -> Self {
        self.query.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds `accepts_incomplete=true` when `asynchronous` is set.
    pub fn accepts_incomplete(self, asynchronous: bool) -> Self {
        if asynchronous {
            self.query("accepts_incomplete", "true")
        } else {
            self
        }
    }

    pub fn json(mut self, body: Value) -> Self {
        self.payload = Payload::Json(body);
        self
    }

    pub fn text(mut self, body: &str) -> Self {
        self.payload = Payload::Text(body.to_owned());
        self
    }

    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    pub fn version(mut self, version: Version) -> Self {
        self.version = version;
        self
    }
}

/// A request and its response as text, ready to print, with secrets masked.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Exchange {
    /// Request line, headers and body.
    pub request: String,
    /// Status line and body, or the transport error.
    pub response: String,
}

/// A broker's response, or the transport error that replaced it.
#[derive(Debug, Clone)]
pub struct Reply {
    /// `None` when no HTTP response arrived.
    pub status: Option<StatusCode>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The body as JSON, when it is JSON.
    pub json: Option<Value>,
    /// The reason no response arrived.
    pub transport_error: Option<String>,
    /// The X-Broker-API-Request-Identity the request carried.
    pub request_identity: String,
    pub exchange: Exchange,
}

impl Reply {
    /// Returns the status code, or 0 when no response arrived.
    pub fn code(&self) -> u16 {
        self.status.map_or(0, |status| status.as_u16())
    }

    /// Returns the `error` field of a JSON error body.
    pub fn error_code(&self) -> Option<&str> {
        self.json.as_ref()?.get("error")?.as_str()
    }

    /// Describes the response in a few words for messages: `201`, `422 AsyncRequired`
    /// or the transport error.
    pub fn summary(&self) -> String {
        match (&self.status, &self.transport_error) {
            (Some(status), _) => match self.error_code() {
                Some(code) => format!("{} {code}", status.as_u16()),
                None => status.as_u16().to_string(),
            },
            (None, Some(error)) => format!("no response ({error})"),
            (None, None) => "no response".to_owned(),
        }
    }

    /// Returns whether the body is a JSON object.
    pub fn is_json_object(&self) -> bool {
        matches!(self.json, Some(Value::Object(_)))
    }
}

/// The HTTP client of the checks for one broker.
pub struct Probe {
    http: reqwest::Client,
    base: Url,
    user: Option<String>,
    password: Option<Secret>,
    api_version: String,
    platform: PlatformSettings,
    timeout: Duration,
}

impl Probe {
    pub fn new(target: &Target, platform: PlatformSettings, timeout: Duration) -> CliResult<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("osb/", env!("CARGO_PKG_VERSION"), " (check)"))
            .connect_timeout(CONNECT_TIMEOUT)
            // A redirect could carry the Authorization header to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| {
                CliError::usage(format!("could not set up the HTTP client: {error}"))
            })?;
        Ok(Self {
            http,
            base: target.url.clone(),
            user: target.user.clone(),
            password: target.password.clone(),
            api_version: target.api_version.clone(),
            platform,
            timeout,
        })
    }

    /// Returns whether requests carry HTTP Basic credentials, so that the
    /// broker can be expected to reject requests without them.
    pub fn uses_auth(&self) -> bool {
        self.user.is_some()
    }

    pub fn platform(&self) -> &PlatformSettings {
        &self.platform
    }

    /// Returns the base URL, for messages.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    fn url_for(&self, call: &Call) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(&call.path);
        }
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&call.query);
        }
        url
    }

    /// Sends one request. Nothing is retried, and a transport error is
    /// returned as a reply without a status.
    pub async fn send(&self, call: &Call) -> Reply {
        let url = self.url_for(call);
        let request_identity = Uuid::new_v4().to_string();
        let mut shown_headers = Vec::new();

        let mut builder = self
            .http
            .request(call.method.clone(), url.clone())
            .timeout(self.timeout)
            .header(REQUEST_IDENTITY_HEADER, &request_identity)
            .header(
                ORIGINATING_IDENTITY_HEADER,
                self.platform.originating_identity(self.platform.kind),
            );
        match &call.version {
            Version::Configured => {
                builder = builder.header(VERSION_HEADER, &self.api_version);
                shown_headers.push(format!("{VERSION_HEADER}: {}", self.api_version));
            }
            Version::Missing => {}
            Version::Value(value) => {
                builder = builder.header(VERSION_HEADER, value);
                shown_headers.push(format!("{VERSION_HEADER}: {value}"));
            }
        }
        match (call.auth, &self.user) {
            (Auth::Configured, Some(user)) => {
                let password = self.password.as_ref().map(Secret::expose);
                builder = builder.basic_auth(user, password);
                shown_headers.push("Authorization: Basic ***".to_owned());
            }
            (Auth::WrongPassword, user) => {
                let user = user.as_deref().unwrap_or("osb-check");
                let wrong = format!("osb-check-wrong-{}", Uuid::new_v4());
                builder = builder.basic_auth(user, Some(wrong));
                shown_headers.push("Authorization: Basic *** (wrong password)".to_owned());
            }
            (Auth::Configured, None) | (Auth::Missing, _) => {}
        }
        let body_text = match &call.payload {
            Payload::Empty => None,
            Payload::Json(value) => Some(value.to_string()),
            Payload::Text(text) => Some(text.clone()),
        };
        if let Some(text) = &body_text {
            builder = builder
                .header(CONTENT_TYPE, "application/json")
                .body(text.clone());
            shown_headers.push("Content-Type: application/json".to_owned());
        }

        let mut request = format!("{} {}", call.method, url);
        for header in &shown_headers {
            request.push('\n');
            request.push_str(header);
        }
        if let Some(text) = &body_text {
            request.push('\n');
            request.push_str(&masked_text(text.as_bytes()));
        }

        let result = async {
            let response = builder.send().await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, body.to_vec()))
        }
        .await;

        match result {
            Ok((status, headers, body)) => {
                let json = serde_json::from_slice(&body).ok();
                let mut response = match status.canonical_reason() {
                    Some(reason) => format!("{} {reason}", status.as_u16()),
                    None => status.as_u16().to_string(),
                };
                if !body.is_empty() {
                    response.push('\n');
                    response.push_str(&masked_text(&body));
                }
                Reply {
                    status: Some(status),
                    headers,
                    body,
                    json,
                    transport_error: None,
                    request_identity,
                    exchange: Exchange { request, response },
                }
            }
            Err(error) => {
                let message = describe_transport_error(&error, self.timeout);
                Reply {
                    status: None,
                    headers: HeaderMap::new(),
                    body: Vec::new(),
                    json: None,
                    transport_error: Some(message.clone()),
                    request_identity,
                    exchange: Exchange {
                        request,
                        response: format!("no response: {message}"),
                    },
                }
            }
        }
    }
}

/// Names the innermost cause of a reqwest error. URLs never contain
/// credentials, because `Target` rejects them.
fn describe_transport_error(error: &reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        return format!(
            "the broker did not respond within {}",
            crate::clock::format_duration(timeout)
        );
    }
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    if error.is_connect() {
        format!("could not connect: {cause}")
    } else {
        format!("the request failed: {cause}")
    }
}

/// Renders a body for a report: JSON with secrets masked, or text cut to
/// `MAX_BODY_CHARS` characters.
pub fn masked_text(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(mut value) => {
            mask_secrets(&mut value);
            value.to_string()
        }
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    if text.chars().count() > MAX_BODY_CHARS {
        let cut: String = text.chars().take(MAX_BODY_CHARS).collect();
        format!("{cut}... ({} bytes in all)", body.len())
    } else {
        text
    }
}

/// Replaces secret values with `***`: everything under `credentials`, and
/// any value whose key names a password, secret or token.
pub fn mask_secrets(value: &mut Value) {
    match value {
        Value::Object(object) => {
            for (key, child) in object.iter_mut() {
                let key = key.to_ascii_lowercase();
                if key == "credentials" {
                    mask_all(child);
                } else if ["password", "secret", "token", "api_key", "apikey"]
                    .iter()
                    .any(|word| key.contains(word))
                {
                    *child = Value::String("***".to_owned());
                } else {
                    mask_secrets(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_secrets),
        _ => {}
    }
}

/// Replaces every scalar inside a value with `***`, keeping its shape.
fn mask_all(value: &mut Value) {
    match value {
        Value::Object(object) => object.values_mut().for_each(mask_all),
        Value::Array(items) => items.iter_mut().for_each(mask_all),
        Value::Null => {}
        _ => *value = Value::String("***".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn credentials_masked_deeply() {
        let mut value = json!({
            "credentials": {"uri": "postgres://u:p@h/db", "nested": {"port": 5432}},
            "dashboard_client": {"id": "x", "secret": "s3cret"},
            "name": "kept"
        });
        mask_secrets(&mut value);
        assert_eq!(value["credentials"]["uri"], "***");
        assert_eq!(value["credentials"]["nested"]["port"], "***");
        assert_eq!(value["dashboard_client"]["secret"], "***");
        assert_eq!(value["dashboard_client"]["id"], "x");
        assert_eq!(value["name"], "kept");
    }

    #[test]
    fn long_text_body_cut() {
        let body = "x".repeat(MAX_BODY_CHARS + 10);
        let text = masked_text(body.as_bytes());
        assert!(text.ends_with(&format!("({} bytes in all)", MAX_BODY_CHARS + 10)));
    }
}
