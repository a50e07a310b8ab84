//! Announcements of confirmed clips to the deployment's webhook: Discord's format, or a generic
//! JSON body signed with HMAC-SHA256.
//!
//! Delivery is at least once: a receiver may see an announcement again (a retry after an answer
//! that was lost, a sender that died before recording the delivery), always with the same
//! `idempotency_key` (`clip-<clip id>`), which a receiver uses to drop repeats. Discord cannot:
//! there a repeat shows as a second message, rare but possible.
//!
//! Retries: a connection that fails, a timeout, a 408, a 429 (after its `Retry-After`, up to
//! 30 s) or a 5xx is tried again after growing pauses ([`DeliveryPolicy`]); any other 4xx is
//! final (the receiver refuses this body; trying again changes nothing). What is still not
//! delivered is the caller's to dead-letter.
//!
//! Signed body (format `json`): headers `X-Highlights-Timestamp` (Unix seconds) and
//! `X-Highlights-Signature: sha256=<hex of HMAC-SHA256(key, "<timestamp>.<body>")>`; a receiver
//! recomputes it and refuses a stale timestamp (replays).
//!
//! The webhook URL is a credential (Discord's holds a token): it never appears in logs or errors.
//! Chat text reaches the body (titles, phrases): Discord is told to resolve no mentions, so a
//! title cannot ping `@everyone`.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::twitch::Secret;

/// Which body the webhook takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum AnnounceFormat {
    /// Discord's execute-webhook body (`content`, an embed, no mentions).
    Discord,
    /// `{"type": "clip.confirmed", "idempotency_key", "clip": {...}}`, signed.
    Json,
}

impl AnnounceFormat {
    /// Discord for a Discord webhook URL, JSON otherwise.
    pub fn for_url(url: &str) -> Self {
        let host = url.split("://").nth(1).unwrap_or("").split(['/', ':']).next().unwrap_or("");
        if host == "discord.com" || host.ends_with(".discord.com") || host == "discordapp.com" {
            Self::Discord
        } else {
            Self::Json
        }
    }
}

/// A confirmed clip, as announced.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipAnnouncement {
    pub clip_id: String,
    pub url: String,
    pub title: String,
    pub broadcaster_id: String,
    /// The channel's login or display name, when known.
    pub streamer: Option<String>,
    /// The moment's key second (Unix seconds).
    pub detected_at: i64,
    pub intensity: f64,
}

impl ClipAnnouncement {
    /// The key a receiver drops repeats by.
    pub fn idempotency_key(&self) -> String {
        format!("clip-{}", self.clip_id)
    }
}

/// When to try again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeliveryPolicy {
    /// Pauses before the second, third, ... attempt.
    pub pauses: [Duration; 4],
    /// How long one attempt may take.
    pub attempt_timeout: Duration,
    /// The longest `Retry-After` honoured; a longer one ends the delivery.
    pub max_retry_after: Duration,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            pauses: [1, 2, 4, 8].map(Duration::from_secs),
            attempt_timeout: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

/// Why an announcement was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnounceError {
    #[error("the webhook refused the announcement with HTTP {0}")]
    Refused(u16),
    #[error("the webhook could not be reached after {attempts} attempts (last: {last})")]
    GaveUp { attempts: u32, last: String },
}

impl AnnounceError {
    /// How many requests were made.
    pub fn attempts(&self) -> u32 {
        match self {
            Self::Refused(_) => 1,
            Self::GaveUp { attempts, .. } => *attempts,
        }
    }
}

/// The deployment's webhook.
#[derive(Clone)]
pub struct Webhook {
    client: reqwest::Client,
    url: Secret,
    format: AnnounceFormat,
    signing_key: Option<Secret>,
    policy: DeliveryPolicy,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("format", &self.format)
            .field("signed", &self.signing_key.is_some())
            .finish()
    }
}

/// A successful delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub attempts: u32,
}

impl Webhook {
    pub fn new(
        client: reqwest::Client,
        url: Secret,
        format: AnnounceFormat,
        signing_key: Option<Secret>,
    ) -> Self {
        Self { client, url, format, signing_key, policy: DeliveryPolicy::default() }
    }

    pub fn with_policy(mut self, policy: DeliveryPolicy) -> Self {
        self.policy = policy;
        self
    }

    pub fn format(&self) -> AnnounceFormat {
        self.format
    }

    /// Whether bodies are signed (format `json` with a key).
    pub fn is_signed(&self) -> bool {
        self.format == AnnounceFormat::Json && self.signing_key.is_some()
    }

    /// The body sent for `clip`.
    pub fn body(&self, clip: &ClipAnnouncement) -> Vec<u8> {
        let detected_at = time::OffsetDateTime::from_unix_timestamp(clip.detected_at)
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_default();
        let on = clip.streamer.as_ref().map(|streamer| format!(" on {streamer}")).unwrap_or_default();
        let body = match self.format {
            AnnounceFormat::Discord => json!({
                "content": format!("**{}**{on}\n{}", clip.title, clip.url),
                "allowed_mentions": {"parse": []},
                "embeds": [{
                    "title": clip.title,
                    "url": clip.url,
                    "timestamp": detected_at,
                    "footer": {"text": format!("{:.1}σ · {}", clip.intensity, clip.idempotency_key())},
                }],
            }),
            AnnounceFormat::Json => json!({
                "type": "clip.confirmed",
                "idempotency_key": clip.idempotency_key(),
                "clip": {
                    "clip_id": clip.clip_id,
                    "url": clip.url,
                    "title": clip.title,
                    "broadcaster_id": clip.broadcaster_id,
                    "streamer": clip.streamer,
                    "detected_at": detected_at,
                    "intensity": clip.intensity,
                },
            }),
        };
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// Delivers `clip`, retrying as the policy says.
    pub async fn send(&self, clip: &ClipAnnouncement) -> Result<Delivered, AnnounceError> {
        let body = self.body(clip);
        let mut attempts = 0;
        let mut pauses = self.policy.pauses.iter();
        loop {
            attempts += 1;
            let wait = match self.attempt(&body).await {
                Attempt::Delivered => return Ok(Delivered { attempts }),
                Attempt::Refused(status) => return Err(AnnounceError::Refused(status)),
                Attempt::Retry { after, reason } => match pauses.next() {
                    Some(&pause) if after.is_none_or(|after| after <= self.policy.max_retry_after) => {
                        tracing::warn!(clip_id = %clip.clip_id, attempts, %reason, "announcement not delivered yet");
                        after.map_or(pause, |after| after.max(pause))
                    }
                    _ => return Err(AnnounceError::GaveUp { attempts, last: reason }),
                },
            };
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(&self, body: &[u8]) -> Attempt {
        let mut request = self
            .client
            .post(self.url.expose())
            .timeout(self.policy.attempt_timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec());
        if let (AnnounceFormat::Json, Some(key)) = (self.format, &self.signing_key) {
            let timestamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            request = request
                .header("x-highlights-timestamp", timestamp.to_string())
                .header("x-highlights-signature", signature(key, timestamp, body));
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                match status {
                    200..=299 => Attempt::Delivered,
                    408 | 429 | 500..=599 => {
                        let after = response
                            .headers()
                            .get(reqwest::header::RETRY_AFTER)
                            .and_then(|v| v.to_str().ok()?.trim().parse::<f64>().ok())
                            .filter(|s| s.is_finite() && *s >= 0.0)
                            .map(|s| Duration::from_secs_f64(s.min(86_400.0)));
                        Attempt::Retry { after, reason: format!("HTTP {status}") }
                    }
                    _ => Attempt::Refused(status),
                }
            }
            // Without the URL: it is a credential.
            Err(error) => Attempt::Retry { after: None, reason: error.without_url().to_string() },
        }
    }
}

enum Attempt {
    Delivered,
    Refused(u16),
    Retry { after: Option<Duration>, reason: String },
}

/// `sha256=<hex of HMAC-SHA256(key, "<timestamp>.<body>")>`.
pub fn signature(key: &Secret, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.expose().as_bytes())
        .expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Checked against an independent computation
        // (python3 -c 'import hmac,hashlib;print(hmac.new(b"Jefe",b"1700000000.{}",hashlib.sha256).hexdigest())').
        assert_eq!(
            signature(&Secret::new("Jefe"), 1_700_000_000, b"{}"),
            "sha256=d3793e2b4103edfbd98cc19591832f5fad701d413db9fcae0ae7dab8184ed207"
        );
    }

    #[test]
    fn discord_urls_get_discord_s_format() {
        assert_eq!(
            AnnounceFormat::for_url("https://discord.com/api/webhooks/1/abc"),
            AnnounceFormat::Discord
        );
        assert_eq!(
            AnnounceFormat::for_url("https://ptb.discord.com/api/webhooks/1/abc"),
            AnnounceFormat::Discord
        );
        assert_eq!(AnnounceFormat::for_url("https://example.com/discord.com"), AnnounceFormat::Json);
        assert_eq!(AnnounceFormat::for_url("http://127.0.0.1:9000/hook"), AnnounceFormat::Json);
    }
}
