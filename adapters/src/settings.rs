//! Detector settings from command-line flags or environment variables, defined once for the
//! `highlights` CLI (flags) and the Lambda functions and local runner (environment); where Twitch
//! is; where confirmed clips are announced (`highlights dev`, `highlights local run`).

use clap::Parser;
use highlights_core::config::{ConfigError, RawConfig};
use highlights_core::{DetectorConfig, DetectorMode};

/// Every detector setting; each flag also reads its `DETECTOR_*` environment variable, and the
/// defaults are the product defaults.
#[derive(clap::Args, Debug, Clone)]
pub struct DetectorSettings {
    /// Which detector: `v2` (distinct chatters per second, reactions weigh more; see
    /// docs/detection.md) or `seed` (messages per second, the seed project's rule).
    #[arg(long = "detector", env = "DETECTOR_MODE", default_value_t = DetectorMode::PRODUCT_DEFAULT)]
    pub mode: DetectorMode,
    /// Elevated when the window's score is at least this (default: 4 for `seed`, a z-score;
    /// 3.5 for `v2`, a Poisson deviate).
    #[arg(long, env = "DETECTOR_K")]
    pub k: Option<f64>,
    /// Window length, seconds.
    #[arg(long, env = "DETECTOR_WINDOW_SECONDS", default_value_t = RawConfig::default().window_seconds)]
    pub window: u32,
    /// Baseline length, seconds (just before the window).
    #[arg(long, env = "DETECTOR_BASELINE_SECONDS", default_value_t = RawConfig::default().baseline_seconds)]
    pub baseline: u32,
    /// No new hold opens within this many seconds after a detection.
    #[arg(long, env = "DETECTOR_COOLDOWN_SECONDS", default_value_t = RawConfig::default().cooldown_seconds)]
    pub cooldown: u32,
    /// A hold reports at the latest this many seconds after it opened.
    #[arg(long, env = "DETECTOR_HOLD_CAP_SECONDS", default_value_t = RawConfig::default().hold_cap_seconds)]
    pub hold_cap: u32,
    /// Fraction of the baseline that must have been observed before scoring (0 < f < 1).
    #[arg(long, env = "DETECTOR_WARMUP_FRACTION", default_value_t = RawConfig::default().min_baseline_fraction)]
    pub warmup_fraction: f64,
    /// How late (ms) a message may arrive after its second ends and still count.
    #[arg(long, env = "DETECTOR_LATENESS_MS", default_value_t = RawConfig::default().allowed_lateness_ms)]
    pub lateness_ms: u32,
    /// v2: distinct chatters a window needs to be elevated.
    #[arg(long, env = "DETECTOR_MIN_CHATTERS", default_value_t = RawConfig::default().min_chatters)]
    pub min_chatters: u32,
    /// v2: a window is elevated only at this multiple of the baseline's rate or more.
    #[arg(long, env = "DETECTOR_MIN_RATIO", default_value_t = RawConfig::default().min_ratio)]
    pub min_ratio: f64,
    /// At most this many detections per channel in any hour (1–60; a channel's own setting
    /// wins); past half of it, only moments at least as strong as the hour's median. Unset: no limit.
    #[arg(long, env = "DETECTOR_CLIPS_PER_HOUR")]
    pub clips_per_hour: Option<u32>,
}

#[derive(Parser)]
struct FromEnvironment {
    #[command(flatten)]
    settings: DetectorSettings,
}

/// Why the settings could not be read from the environment.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("a DETECTOR_* environment variable is malformed: {0}")]
    Malformed(String),
    #[error("invalid detector settings: {0}")]
    Invalid(#[from] ConfigError),
}

impl DetectorSettings {
    /// The default allowed lateness, for tools that only need that setting.
    pub fn default_lateness_ms() -> u32 {
        RawConfig::default().allowed_lateness_ms
    }

    /// Reads the `DETECTOR_*` environment variables (defaults where unset).
    pub fn from_env() -> Result<Self, SettingsError> {
        FromEnvironment::try_parse_from(["detector"])
            .map(|parsed| parsed.settings)
            .map_err(|e| SettingsError::Malformed(e.to_string()))
    }

    pub fn config(&self) -> Result<DetectorConfig, ConfigError> {
        DetectorConfig::new(RawConfig {
            k: self.k.unwrap_or(RawConfig::for_mode(self.mode).k),
            window_seconds: self.window,
            baseline_seconds: self.baseline,
            hold_cap_seconds: self.hold_cap,
            cooldown_seconds: self.cooldown,
            min_baseline_fraction: self.warmup_fraction,
            allowed_lateness_ms: self.lateness_ms,
            mode: self.mode,
            min_chatters: self.min_chatters,
            min_ratio: self.min_ratio,
            clips_per_hour: self.clips_per_hour,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_product_defaults() {
        let parsed = FromEnvironment::try_parse_from(["detector"]).unwrap();
        let want = DetectorConfig::new(RawConfig::for_mode(DetectorMode::PRODUCT_DEFAULT)).unwrap();
        assert_eq!(parsed.settings.config().unwrap(), want);
        assert_eq!(want.mode(), DetectorMode::V2);
        let seed = FromEnvironment::try_parse_from(["detector", "--detector", "seed"]).unwrap();
        assert_eq!(seed.settings.config().unwrap(), DetectorConfig::default(), "the seed project's settings");
    }

    #[test]
    fn each_mode_has_its_own_default_threshold_and_an_explicit_one_wins() {
        let v2 = FromEnvironment::try_parse_from(["detector", "--detector", "v2"]).unwrap();
        let config = v2.settings.config().unwrap();
        assert_eq!((config.mode(), config.k()), (DetectorMode::V2, 3.5));
        let v2 = FromEnvironment::try_parse_from(["detector", "--detector", "v2", "--k", "5"]).unwrap();
        assert_eq!(v2.settings.config().unwrap().k(), 5.0);
        let error = FromEnvironment::try_parse_from(["detector", "--detector", "v3"]).err().unwrap();
        assert!(error.to_string().contains("`seed` or `v2`"), "{error}");
    }
}

/// The webhook confirmed clips are announced to (the cloud reads it from the `AnnounceWebhook`
/// secret instead).
#[derive(clap::Args, Debug, Clone)]
pub struct AnnounceSettings {
    /// Announce each confirmed Twitch clip to this webhook: a Discord webhook, or any URL that
    /// takes a signed JSON body (docs/operations.md). Prefer the environment variable: the URL
    /// holds a token.
    #[arg(long, env = "ANNOUNCE_URL", hide_env_values = true, value_name = "URL")]
    pub announce_url: Option<String>,
    /// The webhook's body: `discord`, or `json` (signed with ANNOUNCE_SIGNING_KEY); by default
    /// `discord` for a Discord URL, `json` otherwise.
    #[arg(long, value_enum, requires = "announce_url")]
    pub announce_format: Option<crate::announce::AnnounceFormat>,
    /// The key of the JSON body's HMAC-SHA256 signature (X-Highlights-Signature).
    #[arg(long, env = "ANNOUNCE_SIGNING_KEY", hide_env_values = true, hide = true)]
    pub announce_signing_key: Option<String>,
}

/// Why the announce settings cannot be used. The URL is a credential: never repeated here.
#[derive(Debug, thiserror::Error)]
pub enum AnnounceSettingsError {
    #[error("--announce-url (ANNOUNCE_URL) is not a URL")]
    NotAUrl,
    #[error("--announce-url (ANNOUNCE_URL) must be an http or https URL")]
    NotHttp,
}

impl AnnounceSettings {
    /// The webhook, when one is configured.
    pub fn webhook(&self) -> Result<Option<crate::announce::Webhook>, AnnounceSettingsError> {
        let Some(url) = &self.announce_url else { return Ok(None) };
        let parsed = reqwest::Url::parse(url).map_err(|_| AnnounceSettingsError::NotAUrl)?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(AnnounceSettingsError::NotHttp);
        }
        let format = self.announce_format.unwrap_or_else(|| crate::announce::AnnounceFormat::for_url(url));
        let key = self.announce_signing_key.clone().filter(|k| !k.is_empty()).map(crate::twitch::Secret::new);
        Ok(Some(crate::announce::Webhook::new(
            crate::tls::http_client(),
            crate::twitch::Secret::new(url.clone()),
            format,
            key,
        )))
    }
}

/// Where Twitch is: the real Helix and OAuth by default, a fake server in tests.
#[derive(clap::Args, Debug)]
pub struct TwitchUrls {
    /// Twitch Helix base URL.
    #[arg(long = "twitch-helix-url", env = "TWITCH_HELIX_URL", default_value = crate::twitch::DEFAULT_HELIX_URL)]
    pub helix_url: String,
    /// Twitch OAuth base URL.
    #[arg(long = "twitch-oauth2-url", env = "TWITCH_OAUTH2_URL", default_value = crate::twitch::DEFAULT_OAUTH2_URL)]
    pub oauth2_url: String,
}
