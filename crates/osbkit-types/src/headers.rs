/// The API version this crate implements, as sent in `X-Broker-API-Version`.
pub const API_VERSION: &str = "2.17";

/// The header that carries the API version of every request.
pub const VERSION_HEADER: &str = "X-Broker-API-Version";

/// The header that names the platform user behind a request.
pub const ORIGINATING_IDENTITY_HEADER: &str = "X-Broker-API-Originating-Identity";

/// The header that correlates a request across platform and broker logs.
pub const REQUEST_IDENTITY_HEADER: &str = "X-Broker-API-Request-Identity";
