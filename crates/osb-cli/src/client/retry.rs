//! Sending a mutating request (PUT, PATCH, DELETE) with the retries the
//! specification requires of a platform: after 422 AsyncRequired, again with
//! `accepts_incomplete=true`; after 422 ConcurrencyError, again once the
//! other operation had time to finish. Both are bounded in count and time.

use std::time::Duration;

use osbkit_types::error_codes::{ASYNC_REQUIRED, CONCURRENCY_ERROR};
use reqwest::StatusCode;

use super::progress::Progress;
use super::{BrokerClient, BrokerRequest, Deadline, RawResponse, TransportError};

/// Most attempts of one mutating request, AsyncRequired retries included.
const MAX_ATTEMPTS: u32 = 8;
/// First wait after a ConcurrencyError; it doubles up to `MAX_CONCURRENCY_WAIT`.
const FIRST_CONCURRENCY_WAIT: Duration = Duration::from_secs(1);
const MAX_CONCURRENCY_WAIT: Duration = Duration::from_secs(15);

impl BrokerClient {
    /// Sends the request built by `build(accepts_incomplete)` and returns the
    /// last response. A ConcurrencyError response is returned once the
    /// attempts or the time run out.
    pub async fn send_mutation<F>(
        &self,
        build: F,
        prefer_sync: bool,
        deadline: Deadline,
        progress: &Progress,
        label: &str,
    ) -> Result<RawResponse, TransportError>
    where
        F: Fn(bool) -> BrokerRequest,
    {
        let mut accepts_incomplete = !prefer_sync;
        let mut concurrency_wait = FIRST_CONCURRENCY_WAIT;
        let mut attempt = 1;
        loop {
            let request = build(accepts_incomplete);
            let response = self
                .send_raw(&request, self.timeout_within(deadline))
                .await?;
            if attempt >= MAX_ATTEMPTS || response.status != StatusCode::UNPROCESSABLE_ENTITY {
                return Ok(response);
            }
            match response.error_code().as_deref() {
                Some(ASYNC_REQUIRED) if !accepts_incomplete => {
                    accepts_incomplete = true;
                }
                Some(CONCURRENCY_ERROR) if deadline.remaining() > concurrency_wait => {
                    progress.set(format!(
                        "{label}: waiting for another operation on it to finish"
                    ));
                    tokio::time::sleep(concurrency_wait).await;
                    concurrency_wait = (concurrency_wait * 2).min(MAX_CONCURRENCY_WAIT);
                }
                _ => return Ok(response),
            }
            attempt += 1;
        }
    }
}
