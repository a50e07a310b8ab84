//! Detector settings, defined once: read from the environment by the Lambda functions and the
//! local runner (no clap in a Lambda), and with the `cli` feature also command-line flags of the
//! `highlights` CLI that fall back to the same variables; where Twitch is and where confirmed
//! clips are announced (`highlights dev`, `highlights local run`; `cli` only).

use std::fmt::Display;
use std::str::FromStr;

use highlights_core::config::{ConfigError, RawConfig};
use highlights_core::{DetectorConfig, DetectorMode};

/// The environment variable of each detector setting (the CLI's flags read the same ones).
pub mod env {
    pub const MODE: &str = "DETECTOR_MODE";
    pub const K: &str = "DETECTOR_K";
    pub const WINDOW: &str = "DETECTOR_WINDOW_SECONDS";
    pub const BASELINE: &str = "DETECTOR_BASELINE_SECONDS";
    pub const COOLDOWN: &str = "DETECTOR_COOLDOWN_SECONDS";
    pub const HOLD_CAP: &str = "DETECTOR_HOLD_CAP_SECONDS";
    pub const WARMUP_FRACTION: &str = "DETECTOR_WARMUP_FRACTION";
    pub const LATENESS_MS: &str = "DETECTOR_LATENESS_MS";
    pub const MIN_CHATTERS: &str = "DETECTOR_MIN_CHATTERS";
    pub const MIN_RATIO: &str = "DETECTOR_MIN_RATIO";
    pub const CLIPS_PER_HOUR: &str = "DETECTOR_CLIPS_PER_HOUR";
    /// All of them, for tests and error messages.
    pub const ALL: [&str; 11] = [
        MODE,
        K,
        WINDOW,
        BASELINE,
        COOLDOWN,
        HOLD_CAP,
        WARMUP_FRACTION,
        LATENESS_MS,
        MIN_CHATTERS,
        MIN_RATIO,
        CLIPS_PER_HOUR,
    ];
}

/// Every detector setting; each flag also reads its `DETECTOR_*` environment variable, and the
/// defaults ([`Default`]) are the product defaults.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct DetectorSettings {
    /// Which detector: `v2` (distinct chatters per second, reactions weigh more; see
    /// docs/detection.md) or `seed` (messages per second, the seed project's rule).
    #[cfg_attr(feature = "cli", arg(long = "detector", env = env::MODE, default_value_t = DetectorMode::PRODUCT_DEFAULT))]
    pub mode: DetectorMode,
    /// Elevated when the window's score is at least this (default: 4 for `seed`, a z-score;
    /// 3.5 for `v2`, a Poisson deviate).
    #[cfg_attr(feature = "cli", arg(long, env = env::K))]
    pub k: Option<f64>,
    /// Window length, seconds.
    #[cfg_attr(feature = "cli", arg(long, env = env::WINDOW, default_value_t = RawConfig::default().window_seconds))]
    pub window: u32,
    /// Baseline length, seconds (just before the window).
    #[cfg_attr(feature = "cli", arg(long, env = env::BASELINE, default_value_t = RawConfig::default().baseline_seconds))]
    pub baseline: u32,
    /// No new hold opens within this many seconds after a detection.
    #[cfg_attr(feature = "cli", arg(long, env = env::COOLDOWN, default_value_t = RawConfig::default().cooldown_seconds))]
    pub cooldown: u32,
    /// A hold reports at the latest this many seconds after it opened.
    #[cfg_attr(feature = "cli", arg(long, env = env::HOLD_CAP, default_value_t = RawConfig::default().hold_cap_seconds))]
    pub hold_cap: u32,
    /// Fraction of the baseline that must have been observed before scoring (0 < f < 1).
    #[cfg_attr(feature = "cli", arg(long, env = env::WARMUP_FRACTION, default_value_t = RawConfig::default().min_baseline_fraction))]
    pub warmup_fraction: f64,
    /// How late (ms) a message may arrive after its second ends and still count.
    #[cfg_attr(feature = "cli", arg(long, env = env::LATENESS_MS, default_value_t = RawConfig::default().allowed_lateness_ms))]
    pub lateness_ms: u32,
    /// v2: distinct chatters a window needs to be elevated.
    #[cfg_attr(feature = "cli", arg(long, env = env::MIN_CHATTERS, default_value_t = RawConfig::default().min_chatters))]
    pub min_chatters: u32,
    /// v2: a window is elevated only at this multiple of the baseline's rate or more.
    #[cfg_attr(feature = "cli", arg(long, env = env::MIN_RATIO, default_value_t = RawConfig::default().min_ratio))]
    pub min_ratio: f64,
    /// At most this many detections per channel in any hour (1–60; a channel's own setting
    /// wins); past half of it, only moments at least as strong as the hour's median. Unset: no limit.
    #[cfg_attr(feature = "cli", arg(long, env = env::CLIPS_PER_HOUR))]
    pub clips_per_hour: Option<u32>,
}

impl Default for DetectorSettings {
    fn default() -> Self {
        let raw = RawConfig::default();
        Self {
            mode: DetectorMode::PRODUCT_DEFAULT,
            k: None,
            window: raw.window_seconds,
            baseline: raw.baseline_seconds,
            cooldown: raw.cooldown_seconds,
            hold_cap: raw.hold_cap_seconds,
            warmup_fraction: raw.min_baseline_fraction,
            lateness_ms: raw.allowed_lateness_ms,
            min_chatters: raw.min_chatters,
            min_ratio: raw.min_ratio,
            clips_per_hour: raw.clips_per_hour,
        }
    }
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

    /// Reads the `DETECTOR_*` environment variables (defaults where unset or empty).
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) over any lookup (tests pass a map, not the process's
    /// environment).
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        fn read<T: FromStr>(
            var: &impl Fn(&str) -> Option<String>,
            name: &str,
        ) -> Result<Option<T>, SettingsError>
        where
            T::Err: Display,
        {
            match var(name).filter(|text| !text.is_empty()) {
                None => Ok(None),
                Some(text) => text
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|error| SettingsError::Malformed(format!("{name}={text:?}: {error}"))),
            }
        }
        let defaults = Self::default();
        Ok(Self {
            mode: read(&var, env::MODE)?.unwrap_or(defaults.mode),
            k: read(&var, env::K)?.or(defaults.k),
            window: read(&var, env::WINDOW)?.unwrap_or(defaults.window),
            baseline: read(&var, env::BASELINE)?.unwrap_or(defaults.baseline),
            cooldown: read(&var, env::COOLDOWN)?.unwrap_or(defaults.cooldown),
            hold_cap: read(&var, env::HOLD_CAP)?.unwrap_or(defaults.hold_cap),
            warmup_fraction: read(&var, env::WARMUP_FRACTION)?.unwrap_or(defaults.warmup_fraction),
            lateness_ms: read(&var, env::LATENESS_MS)?.unwrap_or(defaults.lateness_ms),
            min_chatters: read(&var, env::MIN_CHATTERS)?.unwrap_or(defaults.min_chatters),
            min_ratio: read(&var, env::MIN_RATIO)?.unwrap_or(defaults.min_ratio),
            clips_per_hour: read(&var, env::CLIPS_PER_HOUR)?.or(defaults.clips_per_hour),
        })
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
    use std::collections::HashMap;

    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<DetectorSettings, SettingsError> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        DetectorSettings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_are_the_product_defaults() {
        let settings = from(&[]).unwrap();
        assert_eq!(settings, DetectorSettings::default());
        let want = DetectorConfig::new(RawConfig::for_mode(DetectorMode::PRODUCT_DEFAULT)).unwrap();
        assert_eq!(settings.config().unwrap(), want);
        assert_eq!(want.mode(), DetectorMode::V2);
        let seed = from(&[(env::MODE, "seed")]).unwrap();
        assert_eq!(seed.config().unwrap(), DetectorConfig::default(), "the seed project's settings");
    }

    #[test]
    fn each_mode_has_its_own_default_threshold_and_an_explicit_one_wins() {
        let config = from(&[(env::MODE, "v2")]).unwrap().config().unwrap();
        assert_eq!((config.mode(), config.k()), (DetectorMode::V2, 3.5));
        assert_eq!(from(&[(env::MODE, "v2"), (env::K, "5")]).unwrap().config().unwrap().k(), 5.0);
        let error = from(&[(env::MODE, "v3")]).unwrap_err();
        assert!(error.to_string().contains("`seed` or `v2`"), "{error}");
    }

    #[test]
    fn every_variable_is_read_and_a_malformed_one_is_named() {
        let settings = from(&[
            (env::K, "4.5"),
            (env::WINDOW, "8"),
            (env::BASELINE, "240"),
            (env::COOLDOWN, "45"),
            (env::HOLD_CAP, "20"),
            (env::WARMUP_FRACTION, "0.25"),
            (env::LATENESS_MS, "1500"),
            (env::MIN_CHATTERS, "7"),
            (env::MIN_RATIO, "2.5"),
            (env::CLIPS_PER_HOUR, "6"),
            (env::MODE, " seed "),
        ])
        .unwrap();
        let want = DetectorSettings {
            mode: DetectorMode::Seed,
            k: Some(4.5),
            window: 8,
            baseline: 240,
            cooldown: 45,
            hold_cap: 20,
            warmup_fraction: 0.25,
            lateness_ms: 1500,
            min_chatters: 7,
            min_ratio: 2.5,
            clips_per_hour: Some(6),
        };
        assert_eq!(settings, want);
        assert_eq!(from(&[(env::WINDOW, "")]).unwrap(), DetectorSettings::default(), "empty is unset");
        let error = from(&[(env::COOLDOWN, "-3")]).unwrap_err().to_string();
        assert!(error.contains("DETECTOR_COOLDOWN_SECONDS=\"-3\""), "{error}");
    }

    /// The flags read exactly the variables the Lambdas read, with the same defaults.
    #[cfg(feature = "cli")]
    #[test]
    fn the_cli_flags_fall_back_to_the_same_variables_and_defaults() {
        use clap::{CommandFactory, Parser};
        #[derive(Parser)]
        struct Flags {
            #[command(flatten)]
            settings: DetectorSettings,
        }
        let flags: std::collections::BTreeSet<String> = Flags::command()
            .get_arguments()
            .filter_map(|arg| arg.get_env().map(|name| name.to_string_lossy().into_owned()))
            .collect();
        let read: std::collections::BTreeSet<String> = env::ALL.iter().map(|name| name.to_string()).collect();
        assert_eq!(flags, read);
        let parsed = Flags::try_parse_from(["highlights", "--window", "9"]).unwrap().settings;
        assert_eq!(parsed, DetectorSettings { window: 9, ..DetectorSettings::default() });
    }
}

/// The webhook confirmed clips are announced to (the cloud reads it from the `AnnounceWebhook`
/// secret instead).
#[cfg(feature = "cli")]
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
#[cfg(feature = "cli")]
#[derive(Debug, thiserror::Error)]
pub enum AnnounceSettingsError {
    #[error("--announce-url (ANNOUNCE_URL) is not a URL")]
    NotAUrl,
    #[error("--announce-url (ANNOUNCE_URL) must be an http or https URL")]
    NotHttp,
}

#[cfg(feature = "cli")]
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
#[cfg(feature = "cli")]
#[derive(clap::Args, Debug)]
pub struct TwitchUrls {
    /// Twitch Helix base URL.
    #[arg(long = "twitch-helix-url", env = "TWITCH_HELIX_URL", default_value = crate::twitch::DEFAULT_HELIX_URL)]
    pub helix_url: String,
    /// Twitch OAuth base URL.
    #[arg(long = "twitch-oauth2-url", env = "TWITCH_OAUTH2_URL", default_value = crate::twitch::DEFAULT_OAUTH2_URL)]
    pub oauth2_url: String,
}
