//! The HTTP client `twitch_api` sends its requests through: reqwest, with Twitch's base URLs
//! replaced by this client's own (`TWITCH_HELIX_URL`, `TWITCH_OAUTH2_URL`), so that every test
//! can point one client at its own fake Twitch on 127.0.0.1:0. (`twitch_api`'s own override is a
//! process-wide static read once from the environment.)
//!
//! It also keeps the rate-limit headers of the last answer for the calling task (`twitch_api`
//! hands out no headers, and Helix errors none at all): see [`with_rate_limit_capture`].

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

/// Where Twitch's own URLs begin; the rest of the path is kept.
const HELIX: &str = "https://api.twitch.tv/helix/";
const OAUTH2: &str = "https://id.twitch.tv/oauth2/";

#[derive(Debug, Clone)]
pub struct RewritingClient {
    http: reqwest::Client,
    helix_url: String,
    oauth2_url: String,
    timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    /// The connection could not be made: the request never reached Twitch.
    #[error("Twitch could not be reached: {0}")]
    NotSent(String),
    /// The request may have reached Twitch, but no whole answer came back.
    #[error("Twitch did not answer: {0}")]
    Unreachable(String),
    #[error("not a Twitch URL: {0}")]
    ForeignUrl(String),
}

/// The rate-limit headers of an answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// `Ratelimit-Reset` (or Create Clip's own bucket's): Unix seconds when the bucket refills.
    pub reset_s: Option<u64>,
    /// `Ratelimit-Remaining`: points left in the bucket.
    pub remaining: Option<u64>,
}

tokio::task_local! {
    /// The rate-limit headers of the last answer in this task.
    static RATE_LIMIT: Cell<RateLimit>;
}

/// Runs `work` (Helix calls) and returns its result with the rate-limit headers of the last
/// answer it got.
pub async fn with_rate_limit_capture<T>(work: impl Future<Output = T>) -> (T, RateLimit) {
    RATE_LIMIT
        .scope(Cell::new(RateLimit::default()), async move {
            let result = work.await;
            (result, RATE_LIMIT.with(Cell::get))
        })
        .await
}

impl RewritingClient {
    pub fn new(http: reqwest::Client, helix_url: &str, oauth2_url: &str, timeout: Duration) -> Self {
        Self {
            http,
            helix_url: format!("{}/", helix_url.trim_end_matches('/')),
            oauth2_url: format!("{}/", oauth2_url.trim_end_matches('/')),
            timeout,
        }
    }

    fn rewrite(&self, uri: &str) -> Result<String, RewriteError> {
        if let Some(rest) = uri.strip_prefix(HELIX) {
            Ok(format!("{}{rest}", self.helix_url))
        } else if let Some(rest) = uri.strip_prefix(OAUTH2) {
            Ok(format!("{}{rest}", self.oauth2_url))
        } else {
            Err(RewriteError::ForeignUrl(uri.split('?').next().unwrap_or_default().to_owned()))
        }
    }
}

impl twitch_api::HttpClient for RewritingClient {
    type Error = RewriteError;

    fn req(
        &self,
        request: http::Request<Bytes>,
    ) -> impl Future<Output = Result<http::Response<Bytes>, RewriteError>> + Send + use<> {
        let url = self.rewrite(&request.uri().to_string());
        let create_clip = request.method() == http::Method::POST && request.uri().path() == "/helix/clips";
        let http = self.http.clone();
        let timeout = self.timeout;
        async move {
            let (parts, body) = request.into_parts();
            let response = http
                .request(parts.method, url?)
                .headers(parts.headers)
                .body(body)
                .timeout(timeout)
                .send()
                .await
                .map_err(|e| {
                    let reason = crate::twitch::helix::without_url(&e);
                    if e.is_connect() {
                        RewriteError::NotSent(reason)
                    } else {
                        RewriteError::Unreachable(reason)
                    }
                })?;
            let number = |name: &str| response.headers().get(name)?.to_str().ok()?.parse::<u64>().ok();
            let limit = RateLimit {
                reset_s: number("ratelimit-helixclipscreation-reset").or_else(|| number("ratelimit-reset")),
                remaining: number("ratelimit-helixclipscreation-remaining")
                    .or_else(|| number("ratelimit-remaining")),
            };
            let _ = RATE_LIMIT.try_with(|cell| cell.set(limit));
            // Twitch documents 202 Accepted for Create Clip; twitch_api 0.8 parses single-item
            // answers only when they are 200 OK.
            let status = match response.status() {
                reqwest::StatusCode::ACCEPTED if create_clip => reqwest::StatusCode::OK,
                status => status,
            };
            let mut answer = http::Response::builder().status(status);
            for (name, value) in response.headers() {
                answer = answer.header(name, value);
            }
            let body = response
                .bytes()
                .await
                .map_err(|e| RewriteError::Unreachable(crate::twitch::helix::without_url(&e)))?;
            answer.body(body).map_err(|e| RewriteError::Unreachable(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twitch_urls_are_rewritten_and_others_refused() {
        let client = RewritingClient::new(
            crate::tls::http_client(),
            "http://127.0.0.1:9/helix/",
            "http://127.0.0.1:9/oauth2",
            Duration::from_secs(1),
        );
        assert_eq!(
            client.rewrite("https://api.twitch.tv/helix/clips?broadcaster_id=1").unwrap(),
            "http://127.0.0.1:9/helix/clips?broadcaster_id=1"
        );
        assert_eq!(
            client.rewrite("https://id.twitch.tv/oauth2/token").unwrap(),
            "http://127.0.0.1:9/oauth2/token"
        );
        assert!(client.rewrite("https://example.com/helix/clips").is_err());
    }
}
