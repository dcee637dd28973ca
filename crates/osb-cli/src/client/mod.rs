//! The HTTP client of the platform side: every request carries the OSB
//! headers and HTTP Basic authentication, and every response can be read raw
//! (status, headers, body) or decoded into the wire types.
//!
//! The platform duties built on top are in submodules: polling
//! (`poll`), retries after ConcurrencyError and AsyncRequired (`retry`) and
//! orphan mitigation (`mitigation`).

pub mod mitigation;
pub mod poll;
pub mod progress;
pub mod retry;

use std::fmt;
use std::time::{Duration, Instant};

use osbkit_types::{
    Catalog, ErrorBody, ORIGINATING_IDENTITY_HEADER, REQUEST_IDENTITY_HEADER, VERSION_HEADER,
};
use reqwest::header::{HeaderMap, ACCEPT, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use crate::error::{CliError, CliResult};
use crate::platform::{PlatformKind, PlatformSettings};
use crate::target::Target;

/// Time allowed to open a TCP connection, within the request timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An instance or a binding at the broker, for building paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Instance {
        instance_id: String,
    },
    Binding {
        instance_id: String,
        binding_id: String,
    },
}

impl Resource {
    pub fn instance(instance_id: &str) -> Self {
        Resource::Instance {
            instance_id: instance_id.to_owned(),
        }
    }

    pub fn binding(instance_id: &str, binding_id: &str) -> Self {
        Resource::Binding {
            instance_id: instance_id.to_owned(),
            binding_id: binding_id.to_owned(),
        }
    }

    /// Returns the path segments after the base URL: `v2/service_instances/:id[/service_bindings/:id]`.
    pub fn path(&self) -> Vec<String> {
        match self {
            Resource::Instance { instance_id } => {
                vec!["v2".into(), "service_instances".into(), instance_id.clone()]
            }
            Resource::Binding {
                instance_id,
                binding_id,
            } => vec![
                "v2".into(),
                "service_instances".into(),
                instance_id.clone(),
                "service_bindings".into(),
                binding_id.clone(),
            ],
        }
    }

    /// Returns the path of this resource's `last_operation` endpoint.
    pub fn last_operation_path(&self) -> Vec<String> {
        let mut path = self.path();
        path.push("last_operation".into());
        path
    }

    /// "instance ID" or "binding ID", for messages.
    pub fn describe(&self) -> String {
        match self {
            Resource::Instance { instance_id } => format!("instance {instance_id}"),
            Resource::Binding { binding_id, .. } => format!("binding {binding_id}"),
        }
    }
}

/// One request to the broker, before the OSB headers are added.
#[derive(Debug, Clone)]
pub struct BrokerRequest {
    pub method: Method,
    /// Path segments after the base URL; each is percent-encoded when sent.
    pub path: Vec<String>,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
    /// The platform of the originating identity; it must match the context's `platform`.
    pub identity_platform: Option<PlatformKind>,
}

impl BrokerRequest {
    pub fn new(method: Method, path: Vec<String>) -> Self {
        Self {
            method,
            path,
            query: Vec::new(),
            body: None,
            identity_platform: None,
        }
    }

    pub fn query(mut self, name: &str, value: impl Into<String>) -> Self {
        self.query.push((name.to_owned(), value.into()));
        self
    }

    pub fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    pub fn identity_platform(mut self, platform: PlatformKind) -> Self {
        self.identity_platform = Some(platform);
        self
    }
}

/// A broker's response as received.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The X-Broker-API-Request-Identity this request was sent with.
    pub request_identity: String,
}

impl RawResponse {
    /// Decodes the body; `None` when it is not valid JSON of that shape.
    pub fn json<T: DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_slice(&self.body).ok()
    }

    /// Decodes the error body, or returns an empty one when the body is not an OSB error object.
    pub fn error_body(&self) -> ErrorBody {
        self.json().unwrap_or_default()
    }

    /// Returns the `error` code if the body names one.
    pub fn error_code(&self) -> Option<String> {
        self.error_body().error
    }

    /// Turns an unexpected response into an error that names status, code and description.
    pub fn into_broker_error(self) -> BrokerError {
        BrokerError {
            status: self.status,
            body: self.error_body(),
            request_identity: self.request_identity,
        }
    }
}

/// A request that did not get an HTTP answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// No connection was made, so the broker never saw the request.
    #[error("could not connect to {url}: {cause}")]
    Connect { url: String, cause: String },
    #[error("the broker did not answer within {}", crate::clock::format_duration(*.0))]
    Timeout(Duration),
    /// The request may have reached the broker, but the answer was lost.
    #[error("the request to {url} failed: {cause}")]
    Other { url: String, cause: String },
}

impl TransportError {
    /// Returns whether the broker may have acted on the request.
    pub fn may_have_reached_broker(&self) -> bool {
        !matches!(self, TransportError::Connect { .. })
    }
}

impl From<TransportError> for CliError {
    fn from(error: TransportError) -> Self {
        let hint = match &error {
            TransportError::Connect { .. } => "check --url and that the broker is running",
            TransportError::Timeout(_) => "a larger --request-timeout or --timeout may help",
            TransportError::Other { .. } => "check --url and the broker's log",
        };
        CliError::connection(error.to_string()).with_hint(hint)
    }
}

/// An answer with an unexpected status.
#[derive(Debug, Clone)]
pub struct BrokerError {
    pub status: StatusCode,
    pub body: ErrorBody,
    pub request_identity: String,
}

impl BrokerError {
    pub fn code(&self) -> Option<&str> {
        self.body.error.as_deref()
    }

    /// Returns a hint for the error codes and statuses whose fix is known.
    pub fn hint(&self) -> Option<&'static str> {
        use osbkit_types::error_codes::*;
        match (self.status.as_u16(), self.code()) {
            (_, Some(ASYNC_REQUIRED)) => {
                Some("the broker only works asynchronously: leave out --prefer-sync")
            }
            (_, Some(CONCURRENCY_ERROR)) => {
                Some("another operation is in progress on this resource: wait for it and try again")
            }
            (_, Some(REQUIRES_APP)) => Some("this plan binds to an application: pass --app GUID"),
            (_, Some(MAINTENANCE_INFO_CONFLICT)) => Some(
                "the plan's maintenance_info changed: run `osb catalog` and `osb upgrade NAME`",
            ),
            (401, _) => Some("check --user and --password (or OSB_USER and OSB_PASSWORD)"),
            (412, _) => Some("the broker does not support this API version: check --api-version"),
            _ => None,
        }
    }
}

impl fmt::Display for BrokerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "broker answered {}", self.status.as_u16())?;
        match &self.body.error {
            Some(code) => write!(f, " {code}")?,
            None => {
                if let Some(reason) = self.status.canonical_reason() {
                    write!(f, " {reason}")?;
                }
            }
        }
        if let Some(description) = &self.body.description {
            write!(f, ": {description}")?;
            if description.contains(&self.request_identity) {
                return Ok(());
            }
        }
        write!(f, " (request identity {})", self.request_identity)
    }
}

impl From<BrokerError> for CliError {
    fn from(error: BrokerError) -> Self {
        let mut cli_error = CliError::failed(error.to_string());
        if let Some(hint) = error.hint() {
            cli_error = cli_error.with_hint(hint);
        }
        cli_error
    }
}

/// A point in time after which a command stops waiting.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Instant);

impl Deadline {
    pub fn after(duration: Duration) -> Self {
        Self(Instant::now() + duration)
    }

    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    pub fn passed(&self) -> bool {
        self.remaining().is_zero()
    }

    /// Returns the earlier of two deadlines.
    pub fn min(self, other: Deadline) -> Deadline {
        Deadline(self.0.min(other.0))
    }
}

/// The HTTP client for one broker.
#[derive(Debug, Clone)]
pub struct BrokerClient {
    http: reqwest::Client,
    target: Target,
    platform: PlatformSettings,
    request_timeout: Duration,
}

impl BrokerClient {
    pub fn new(
        target: Target,
        platform: PlatformSettings,
        request_timeout: Duration,
    ) -> CliResult<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("osb/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            // A redirect could carry the Authorization header to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| {
                CliError::usage(format!("could not set up the HTTP client: {error}"))
            })?;
        Ok(Self {
            http,
            target,
            platform,
            request_timeout,
        })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    pub fn platform(&self) -> &PlatformSettings {
        &self.platform
    }

    /// Returns the request timeout, shortened so the request ends by the deadline.
    pub fn timeout_within(&self, deadline: Deadline) -> Duration {
        self.request_timeout
            .min(deadline.remaining())
            .max(Duration::from_millis(1))
    }

    /// Builds the full URL of a path, percent-encoding each segment.
    pub fn url_for(&self, path: &[String]) -> Url {
        let mut url = self.target.url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(path);
        }
        url
    }

    /// Sends one request with the OSB headers and returns the answer as received.
    ///
    /// Every request carries `X-Broker-API-Version`, a fresh
    /// `X-Broker-API-Request-Identity`, the originating identity and HTTP Basic
    /// authentication when a user is set. Nothing is retried here.
    pub async fn send_raw(
        &self,
        request: &BrokerRequest,
        timeout: Duration,
    ) -> Result<RawResponse, TransportError> {
        let url = self.url_for(&request.path);
        let request_identity = Uuid::new_v4().to_string();
        let identity_platform = request.identity_platform.unwrap_or(self.platform.kind);

        let mut builder = self
            .http
            .request(request.method.clone(), url.clone())
            .timeout(timeout)
            .header(VERSION_HEADER, &self.target.api_version)
            .header(REQUEST_IDENTITY_HEADER, &request_identity)
            .header(
                ORIGINATING_IDENTITY_HEADER,
                self.platform.originating_identity(identity_platform),
            )
            .header(ACCEPT, "application/json");
        if !request.query.is_empty() {
            builder = builder.query(&request.query);
        }
        if let Some(user) = &self.target.user {
            let password = self.target.password.as_ref().map(|secret| secret.expose());
            builder = builder.basic_auth(user, password);
        }
        if let Some(body) = &request.body {
            builder = builder
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }

        let response = builder
            .send()
            .await
            .map_err(|error| transport_error(&url, timeout, &error))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|error| transport_error(&url, timeout, &error))?;
        Ok(RawResponse {
            status,
            headers,
            body: body.to_vec(),
            request_identity,
        })
    }

    /// Sends a request within the client's request timeout.
    pub async fn send(&self, request: &BrokerRequest) -> Result<RawResponse, TransportError> {
        self.send_raw(request, self.request_timeout).await
    }

    /// Fetches `GET /v2/catalog`.
    pub async fn catalog(&self) -> CliResult<Catalog> {
        let request = BrokerRequest::new(Method::GET, vec!["v2".into(), "catalog".into()]);
        let response = self.send(&request).await?;
        if response.status != StatusCode::OK {
            return Err(
                CliError::from(response.into_broker_error()).context("could not fetch the catalog")
            );
        }
        serde_json::from_slice(&response.body).map_err(|error| {
            CliError::failed(format!("could not read the catalog: invalid JSON: {error}"))
        })
    }

    /// Fetches `GET` on an instance or a binding, with the `service_id` and
    /// `plan_id` hints, and returns the body as JSON.
    pub async fn fetch(
        &self,
        resource: &Resource,
        service_id: &str,
        plan_id: &str,
        platform: PlatformKind,
    ) -> Result<Value, FetchError> {
        let request = BrokerRequest::new(Method::GET, resource.path())
            .query("service_id", service_id)
            .query("plan_id", plan_id)
            .identity_platform(platform);
        let response = self.send(&request).await.map_err(FetchError::Transport)?;
        if response.status != StatusCode::OK {
            return Err(FetchError::Broker(response.into_broker_error()));
        }
        match response.json::<Value>() {
            Some(value @ Value::Object(_)) => Ok(value),
            _ => Err(FetchError::Malformed),
        }
    }
}

/// The failure of a `GET` on an instance or binding.
#[derive(Debug)]
pub enum FetchError {
    Transport(TransportError),
    Broker(BrokerError),
    /// A 200 whose body is not a JSON object.
    Malformed,
}

impl From<FetchError> for CliError {
    fn from(error: FetchError) -> Self {
        match error {
            FetchError::Transport(error) => error.into(),
            FetchError::Broker(error) => error.into(),
            FetchError::Malformed => {
                CliError::failed("broker answered 200 with a body that is not a JSON object")
            }
        }
    }
}

/// Classifies a reqwest error, naming its innermost cause. The URL never
/// contains credentials, because `Target` rejects them.
fn transport_error(url: &Url, timeout: Duration, error: &reqwest::Error) -> TransportError {
    let url = url.as_str().to_owned();
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    let cause = cause.to_string();
    if error.is_timeout() {
        TransportError::Timeout(timeout)
    } else if error.is_connect() {
        TransportError::Connect { url, cause }
    } else {
        TransportError::Other { url, cause }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::Profile;

    fn client(url: &str) -> BrokerClient {
        let settings = Profile {
            url: Some(url.to_owned()),
            ..Profile::default()
        };
        BrokerClient::new(
            Target::from_settings(&settings).unwrap(),
            PlatformSettings::from_settings(&settings),
            Duration::from_secs(1),
        )
        .unwrap()
    }

    #[test]
    fn url_segments_percent_encoded() {
        let client = client("http://127.0.0.1:1/broker/");
        let url = client.url_for(&Resource::binding("a b", "c/d").last_operation_path());
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:1/broker/v2/service_instances/a%20b/service_bindings/c%2Fd/last_operation"
        );
    }

    #[test]
    fn broker_error_names_status_code_and_description() {
        let error = BrokerError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: ErrorBody {
                error: Some("AsyncRequired".into()),
                description: Some("needs async".into()),
                ..ErrorBody::default()
            },
            request_identity: "r1".into(),
        };
        assert_eq!(
            error.to_string(),
            "broker answered 422 AsyncRequired: needs async (request identity r1)"
        );
        assert!(error.hint().is_some());
    }

    #[test]
    fn broker_error_without_body_uses_reason() {
        let error = BrokerError {
            status: StatusCode::BAD_GATEWAY,
            body: ErrorBody::default(),
            request_identity: "r2".into(),
        };
        assert_eq!(
            error.to_string(),
            "broker answered 502 Bad Gateway (request identity r2)"
        );
    }
}
