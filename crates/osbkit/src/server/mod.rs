//! The HTTP layer: routes, the checks every request passes, and request spans.
//!
//! Layers from the outside in: request identity (read or generated, echoed
//! on every response), the request span, the body size limit,
//! authentication, then the API version check. Every response, including
//! those to unknown routes, wrong methods and rejected bodies, is OSB JSON.

mod bindings;
mod extract;
mod instances;
mod last_operation;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use osbkit_types::{API_VERSION, REQUEST_IDENTITY_HEADER, VERSION_HEADER};
use tower_http::trace::TraceLayer;
use tracing::field::Empty;

use crate::broker::Broker;
use crate::error::BrokerError;

/// The oldest minor version of 2.x that the broker accepts. Minor versions
/// only add optional fields, and 2.11 is the first with `context`.
const OLDEST_MINOR_VERSION: u32 = 11;

/// How long the server waits for each piece of a request body. A client
/// that stops sending gets a 400 instead of holding its connection open.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The maximum length of a request identity that is echoed back. A longer
/// one is replaced by a generated identity.
const MAX_REQUEST_IDENTITY: usize = 256;

/// The request identity of the current request, for error bodies and logs.
#[derive(Clone, Debug)]
pub(crate) struct RequestIdentity(pub String);

pub(crate) fn router(broker: Broker) -> Router {
    let instance = "/v2/service_instances/{instance_id}";
    let binding = "/v2/service_instances/{instance_id}/service_bindings/{binding_id}";
    let api = Router::new()
        .route("/v2/catalog", get(catalog))
        .route(
            instance,
            get(instances::fetch)
                .put(instances::provision)
                .patch(instances::update)
                .delete(instances::deprovision),
        )
        .route(
            &format!("{instance}/last_operation"),
            get(last_operation::instance),
        )
        .route(
            binding,
            get(bindings::fetch)
                .put(bindings::bind)
                .delete(bindings::unbind),
        )
        .route(
            &format!("{binding}/last_operation"),
            get(last_operation::binding),
        )
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(run_to_completion))
        .layer(middleware::from_fn(check_version))
        .layer(middleware::from_fn_with_state(broker.clone(), authenticate))
        .with_state(broker.clone());

    let body_limit = broker.inner.body_limit;
    Router::new()
        .route("/health", get(health))
        .merge(api)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::map_request(limit_body_read_time))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(log_response)
                .on_failure(()),
        )
        .layer(middleware::from_fn(request_identity))
}

async fn catalog(State(broker): State<Broker>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        broker.inner.catalog.json(),
    )
        .into_response()
}

/// Tells a load balancer the process serves requests. It reveals nothing else.
async fn health() -> Response {
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({"status": "ok"})),
    )
        .into_response()
}

async fn unknown_route() -> BrokerError {
    BrokerError::UnknownRoute
}

async fn method_not_allowed() -> BrokerError {
    BrokerError::MethodNotAllowed
}

async fn limit_body_read_time(request: Request) -> Request {
    request.map(|body| {
        Body::new(tower_http::timeout::TimeoutBody::new(
            BODY_READ_TIMEOUT,
            body,
        ))
    })
}

async fn request_identity(mut request: Request, next: Next) -> Response {
    let sent = request
        .headers()
        .get(REQUEST_IDENTITY_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|value| !value.is_empty() && value.len() <= MAX_REQUEST_IDENTITY)
        .map(str::to_owned);
    let identity = sent.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    request
        .extensions_mut()
        .insert(RequestIdentity(identity.clone()));

    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&identity) {
        response
            .headers_mut()
            .insert(REQUEST_IDENTITY_HEADER, value);
    }
    response
}

fn request_span(request: &axum::http::Request<Body>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let identity = request
        .extensions()
        .get::<RequestIdentity>()
        .map(|identity| identity.0.as_str())
        .unwrap_or("");
    tracing::info_span!(
        "request",
        method = %request.method(),
        route = %route,
        request_identity = %identity,
        instance_id = Empty,
        binding_id = Empty,
    )
}

fn log_response(response: &Response, latency: std::time::Duration, _span: &tracing::Span) {
    let status = response.status().as_u16();
    let micros = latency.as_micros() as u64;
    if status >= 500 {
        tracing::error!(status, latency_us = micros, "request failed");
    } else {
        tracing::debug!(status, latency_us = micros, "request finished");
    }
}

/// Runs the request in a task of its own, so that it finishes, and its
/// operation is stored, even when the client disconnects first. A panic
/// becomes a 500 with an OSB body instead of a dropped connection.
async fn run_to_completion(request: Request, next: Next) -> Response {
    let request_identity = request
        .extensions()
        .get::<RequestIdentity>()
        .map(|identity| identity.0.clone())
        .unwrap_or_default();
    let span = tracing::Span::current();
    let task = tokio::spawn(tracing::Instrument::instrument(next.run(request), span));
    match task.await {
        Ok(response) => response,
        Err(error) => {
            tracing::error!(error = %error, "request handler panicked");
            BrokerError::Internal { request_identity }.into_response()
        }
    }
}

async fn authenticate(State(broker): State<Broker>, request: Request, next: Next) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    if !broker.inner.authenticator.verify(header) {
        tracing::info!("request rejected: missing or invalid credentials");
        return BrokerError::Unauthorized.into_response();
    }
    next.run(request).await
}

async fn check_version(request: Request, next: Next) -> Response {
    let sent = request
        .headers()
        .get(VERSION_HEADER)
        .map(|value| value.to_str().unwrap_or("").trim().to_owned());
    match sent.as_deref() {
        Some(version) if is_supported_version(version) => next.run(request).await,
        Some(version) => {
            tracing::debug!(version, "request rejected: unsupported API version");
            BrokerError::VersionMismatch(Some(version.to_owned())).into_response()
        }
        None => {
            tracing::debug!("request rejected: no API version header");
            BrokerError::VersionMismatch(None).into_response()
        }
    }
}

/// Accepts 2.11 up to the version this crate implements.
fn is_supported_version(version: &str) -> bool {
    let newest_minor: u32 = API_VERSION[2..].parse().expect("API_VERSION is 2.N");
    let Some(("2", minor)) = version.split_once('.') else {
        return false;
    };
    minor
        .parse::<u32>()
        .is_ok_and(|minor| (OLDEST_MINOR_VERSION..=newest_minor).contains(&minor))
}

/// Records the resource ids on the request's span.
pub(crate) fn record_ids(instance_id: &str, binding_id: Option<&str>) {
    let span = tracing::Span::current();
    span.record("instance_id", instance_id);
    if let Some(binding_id) = binding_id {
        span.record("binding_id", binding_id);
    }
}

#[cfg(test)]
mod tests {
    use super::is_supported_version;

    #[test]
    fn versions_from_two_eleven_to_two_seventeen_pass() {
        for version in ["2.11", "2.14", "2.17"] {
            assert!(is_supported_version(version), "{version}");
        }
        for version in ["", "2", "2.10", "2.18", "3.0", "1.17", "2.x", "2.17.1"] {
            assert!(!is_supported_version(version), "{version}");
        }
    }
}
