//! Detector settings. A [`DetectorConfig`] can only exist in a valid state: every constructor
//! checks the ranges and explains what is wrong, so nothing downstream re-validates.

use serde::{Deserialize, Serialize};

/// Longest allowed window plus baseline, in seconds: bounds the per-broadcaster state size.
pub const MAX_HISTORY_SECONDS: u32 = 3_600;
/// Longest allowed lateness: bounds the seconds kept open per broadcaster.
pub const MAX_LATENESS_MS: u32 = 60_000;

/// The settings of the sliding-window anomaly detector.
///
/// The defaults are the measured behaviour of the seed project's detector: a 5-second window
/// scored against the 300 seconds before it, elevated at 4 sample standard deviations above the
/// baseline mean (the 99.71st percentile of per-second intensity on a 12-hour, 72-channel study,
/// about 2.2 clips per broadcaster-hour).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawConfig", into = "RawConfig")]
pub struct DetectorConfig {
    raw: RawConfig,
    warmup_seconds: i64,
}

/// The plain settings, before validation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawConfig {
    /// Seconds in the scored window ending at the evaluated second.
    pub window_seconds: u32,
    /// Seconds in the baseline, which ends where the window starts.
    pub baseline_seconds: u32,
    /// A second is elevated when its intensity (z-score) is at least `k`.
    pub k: f64,
    /// A hold reports its peak at the latest this many seconds after it opened.
    pub hold_cap_seconds: u32,
    /// No hold opens within this many seconds after a report.
    pub cooldown_seconds: u32,
    /// Warm-up: a second is measured only when the broadcaster has been observed for at least
    /// this fraction of `baseline_seconds` before the window starts. Strictly between 0 and 1.
    pub min_baseline_fraction: f64,
    /// How long after a second ends its messages may still arrive (event-time watermark slack).
    pub allowed_lateness_ms: u32,
    /// Which detector runs: `seed` (messages per second, the seed project's rule) or `v2`
    /// (distinct chatters weighted by reaction, see `detector::crowd`).
    pub mode: DetectorMode,
    /// v2 only: a window is elevated only with at least this many distinct chatters in it.
    pub min_chatters: u32,
    /// v2 only: a window is elevated only at this many times the baseline's rate, or more.
    pub min_ratio: f64,
    /// At most this many detections an hour (`detector::budget`); unset: no limit.
    pub clips_per_hour: Option<u32>,
}

/// The detector a deployment runs. Both read the same window, baseline, `k`, hold cap, cooldown,
/// warm-up and lateness settings; `min_chatters` and `min_ratio` apply to `v2` only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DetectorMode {
    /// Messages per second against a z-score: the seed project's detector, bit for bit.
    #[default]
    Seed,
    /// People per second: one vote per chatter per second, reactions weigh more, a Poisson test
    /// that works at low rates, a minimum of distinct chatters, reported once confirmed.
    V2,
}

impl DetectorMode {
    /// What a deployment, `backtest` and `highlights dev` run unless told otherwise: `v2`, better
    /// on every measured figure (docs/detection.md). [`RawConfig::default`] stays the seed
    /// project's settings, the base both modes share.
    pub const PRODUCT_DEFAULT: Self = Self::V2;

    pub fn name(self) -> &'static str {
        match self {
            Self::Seed => "seed",
            Self::V2 => "v2",
        }
    }
}

impl std::fmt::Display for DetectorMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for DetectorMode {
    type Err = ConfigError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "seed" => Ok(Self::Seed),
            "v2" => Ok(Self::V2),
            other => Err(ConfigError::Mode(other.to_owned())),
        }
    }
}

impl RawConfig {
    /// The defaults of a detector: those of `seed`, with `k` at 3.5 for `v2` (its score is a
    /// Poisson deviate, not a z-score; 3.5 is where it meets its goals on the scenario corpus,
    /// see docs/detection.md).
    pub fn for_mode(mode: DetectorMode) -> Self {
        let k = match mode {
            DetectorMode::Seed => 4.0,
            DetectorMode::V2 => 3.5,
        };
        Self { mode, k, ..Self::default() }
    }
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            window_seconds: 5,
            baseline_seconds: 300,
            k: 4.0,
            hold_cap_seconds: 25,
            cooldown_seconds: 30,
            min_baseline_fraction: 0.8,
            allowed_lateness_ms: 2_000,
            mode: DetectorMode::Seed,
            min_chatters: 5,
            min_ratio: 3.0,
            clips_per_hour: None,
        }
    }
}

/// A setting outside its allowed range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("window_seconds must be at least 1 (got {0})")]
    Window(u32),
    #[error("baseline_seconds must be at least 2, to have a sample standard deviation (got {0})")]
    Baseline(u32),
    #[error("window_seconds + baseline_seconds must be at most {MAX_HISTORY_SECONDS} (got {0})")]
    History(u64),
    #[error("k must be a finite number greater than 0 (got {0})")]
    K(f64),
    #[error("min_baseline_fraction must be strictly between 0 and 1 (got {0})")]
    WarmupFraction(f64),
    #[error("allowed_lateness_ms must be at most {MAX_LATENESS_MS} (got {0})")]
    Lateness(u32),
    #[error("the detector is `seed` or `v2` (got {0:?})")]
    Mode(String),
    #[error("the v2 detector's window_seconds must be at most {MAX_V2_WINDOW_SECONDS} (got {0})")]
    V2Window(u32),
    #[error("min_ratio must be a finite number of at least 1 (got {0})")]
    MinRatio(f64),
    #[error("cooldown_seconds must be at most {MAX_COOLDOWN_SECONDS} (got {0})")]
    Cooldown(u32),
    #[error("clips_per_hour must be between 1 and {MAX_CLIPS_PER_HOUR} (got {0})")]
    ClipsPerHour(u32),
}

/// Longest cooldown: a day. Longer would silence a channel for good, which is what taking it off
/// the monitored list is for.
pub const MAX_COOLDOWN_SECONDS: u32 = 86_400;
/// Most clips an hour a channel may ask for: one a minute (Twitch's clip rate limits are far
/// below anything higher for one token anyway).
pub const MAX_CLIPS_PER_HOUR: u32 = 60;

/// Longest window of the v2 detector: it keeps a distinct-chatter sketch per window second.
pub const MAX_V2_WINDOW_SECONDS: u32 = 60;

impl Default for DetectorConfig {
    fn default() -> Self {
        Self::new(RawConfig::default()).expect("the default settings are valid")
    }
}

impl DetectorConfig {
    /// Validates `raw`.
    pub fn new(raw: RawConfig) -> Result<Self, ConfigError> {
        if raw.window_seconds < 1 {
            return Err(ConfigError::Window(raw.window_seconds));
        }
        if raw.baseline_seconds < 2 {
            return Err(ConfigError::Baseline(raw.baseline_seconds));
        }
        let history = u64::from(raw.window_seconds) + u64::from(raw.baseline_seconds);
        if history > u64::from(MAX_HISTORY_SECONDS) {
            return Err(ConfigError::History(history));
        }
        if !(raw.k.is_finite() && raw.k > 0.0) {
            return Err(ConfigError::K(raw.k));
        }
        let fraction = raw.min_baseline_fraction;
        if !(fraction > 0.0 && fraction < 1.0) {
            return Err(ConfigError::WarmupFraction(fraction));
        }
        if raw.allowed_lateness_ms > MAX_LATENESS_MS {
            return Err(ConfigError::Lateness(raw.allowed_lateness_ms));
        }
        if raw.mode == DetectorMode::V2 && raw.window_seconds > MAX_V2_WINDOW_SECONDS {
            return Err(ConfigError::V2Window(raw.window_seconds));
        }
        if !(raw.min_ratio.is_finite() && raw.min_ratio >= 1.0) {
            return Err(ConfigError::MinRatio(raw.min_ratio));
        }
        if raw.cooldown_seconds > MAX_COOLDOWN_SECONDS {
            return Err(ConfigError::Cooldown(raw.cooldown_seconds));
        }
        if let Some(clips) = raw.clips_per_hour.filter(|n| !(1..=MAX_CLIPS_PER_HOUR).contains(n)) {
            return Err(ConfigError::ClipsPerHour(clips));
        }
        let warmup_seconds = (fraction * f64::from(raw.baseline_seconds)).ceil() as i64;
        Ok(Self { raw, warmup_seconds })
    }

    pub fn raw(&self) -> &RawConfig {
        &self.raw
    }
    pub fn window_seconds(&self) -> u32 {
        self.raw.window_seconds
    }
    pub fn baseline_seconds(&self) -> u32 {
        self.raw.baseline_seconds
    }
    pub fn k(&self) -> f64 {
        self.raw.k
    }
    pub fn hold_cap_seconds(&self) -> u32 {
        self.raw.hold_cap_seconds
    }
    pub fn cooldown_seconds(&self) -> u32 {
        self.raw.cooldown_seconds
    }
    pub fn min_baseline_fraction(&self) -> f64 {
        self.raw.min_baseline_fraction
    }
    pub fn allowed_lateness_ms(&self) -> u32 {
        self.raw.allowed_lateness_ms
    }
    pub fn mode(&self) -> DetectorMode {
        self.raw.mode
    }
    pub fn min_chatters(&self) -> u32 {
        self.raw.min_chatters
    }
    pub fn min_ratio(&self) -> f64 {
        self.raw.min_ratio
    }
    pub fn clips_per_hour(&self) -> Option<u32> {
        self.raw.clips_per_hour
    }
    /// Whole seconds of observation needed before a window's start: `ceil(fraction × baseline)`.
    pub fn warmup_seconds(&self) -> i64 {
        self.warmup_seconds
    }
}

impl TryFrom<RawConfig> for DetectorConfig {
    type Error = ConfigError;
    fn try_from(raw: RawConfig) -> Result<Self, Self::Error> {
        Self::new(raw)
    }
}

impl From<DetectorConfig> for RawConfig {
    fn from(config: DetectorConfig) -> Self {
        config.raw
    }
}

/// One channel's own settings (`highlights channel set`), over the deployment's
/// [`DetectorConfig`]: each one left unset keeps the deployment's value. Only settings that do
/// not change the shape of the saved state (window, baseline, lateness) are per channel, so a
/// change applies at the next batch without losing the channel's baseline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelSettings {
    /// Sensitivity: the score a window must reach (lower fires more often).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k: Option<f64>,
    /// No new detection within this many seconds after one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cooldown_seconds: Option<u32>,
    /// `v2`: distinct chatters a window needs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_chatters: Option<u32>,
    /// Detections (clips or moments) an hour at most, enforced online by the detector
    /// (`detector::budget`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clips_per_hour: Option<u32>,
}

impl ChannelSettings {
    /// Nothing set: the channel runs on the deployment's settings.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// These settings with every one set in `newer` replaced by it.
    pub fn updated_with(self, newer: ChannelSettings) -> Self {
        Self {
            k: newer.k.or(self.k),
            cooldown_seconds: newer.cooldown_seconds.or(self.cooldown_seconds),
            min_chatters: newer.min_chatters.or(self.min_chatters),
            clips_per_hour: newer.clips_per_hour.or(self.clips_per_hour),
        }
    }

    /// The detector settings of this channel: `base` with these applied, checked as a whole.
    pub fn apply(&self, base: &DetectorConfig) -> Result<DetectorConfig, ConfigError> {
        if let Some(clips) = self.clips_per_hour.filter(|n| !(1..=MAX_CLIPS_PER_HOUR).contains(n)) {
            return Err(ConfigError::ClipsPerHour(clips));
        }
        if self.is_empty() {
            return Ok(*base);
        }
        let mut raw = *base.raw();
        raw.k = self.k.unwrap_or(raw.k);
        raw.cooldown_seconds = self.cooldown_seconds.unwrap_or(raw.cooldown_seconds);
        raw.min_chatters = self.min_chatters.unwrap_or(raw.min_chatters);
        raw.clips_per_hour = self.clips_per_hour.or(raw.clips_per_hour);
        DetectorConfig::new(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(change: impl FnOnce(&mut RawConfig)) -> Result<DetectorConfig, ConfigError> {
        let mut raw = RawConfig::default();
        change(&mut raw);
        DetectorConfig::new(raw)
    }

    #[test]
    fn defaults_match_the_seed_detector() {
        let config = DetectorConfig::default();
        assert_eq!(config.window_seconds(), 5);
        assert_eq!(config.baseline_seconds(), 300);
        assert_eq!(config.k(), 4.0);
        assert_eq!(config.hold_cap_seconds(), 25);
        assert_eq!(config.cooldown_seconds(), 30);
        assert_eq!(config.min_baseline_fraction(), 0.8);
        assert_eq!(config.allowed_lateness_ms(), 2_000);
        assert_eq!(config.warmup_seconds(), 240);
    }

    #[test]
    fn invalid_settings_are_rejected_with_a_reason() {
        assert_eq!(with(|c| c.window_seconds = 0), Err(ConfigError::Window(0)));
        assert_eq!(with(|c| c.baseline_seconds = 1), Err(ConfigError::Baseline(1)));
        assert_eq!(with(|c| c.baseline_seconds = 3_600), Err(ConfigError::History(3_605)));
        assert_eq!(with(|c| c.k = 0.0), Err(ConfigError::K(0.0)));
        assert!(matches!(with(|c| c.k = f64::NAN), Err(ConfigError::K(_))));
        assert_eq!(with(|c| c.min_baseline_fraction = 1.0), Err(ConfigError::WarmupFraction(1.0)));
        assert_eq!(with(|c| c.min_baseline_fraction = 0.0), Err(ConfigError::WarmupFraction(0.0)));
        assert_eq!(with(|c| c.allowed_lateness_ms = 60_001), Err(ConfigError::Lateness(60_001)));
        let message = with(|c| c.min_baseline_fraction = 1.5).unwrap_err().to_string();
        assert!(message.contains("strictly between 0 and 1"), "{message}");
        assert_eq!(with(|c| c.cooldown_seconds = 86_401), Err(ConfigError::Cooldown(86_401)));
    }

    #[test]
    fn channel_settings_override_only_what_they_set_and_are_checked_whole() {
        let base = DetectorConfig::new(RawConfig::for_mode(DetectorMode::V2)).unwrap();
        assert_eq!(ChannelSettings::default().apply(&base), Ok(base));
        let set = ChannelSettings { k: Some(5.0), min_chatters: Some(9), ..ChannelSettings::default() };
        let config = set.apply(&base).unwrap();
        assert_eq!((config.k(), config.min_chatters()), (5.0, 9));
        assert_eq!(config.cooldown_seconds(), base.cooldown_seconds());
        assert_eq!(config.window_seconds(), base.window_seconds());

        let later = set.updated_with(ChannelSettings { cooldown_seconds: Some(90), ..Default::default() });
        assert_eq!((later.k, later.cooldown_seconds, later.min_chatters), (Some(5.0), Some(90), Some(9)));
        let bad = |s: ChannelSettings| s.apply(&base).unwrap_err();
        assert_eq!(bad(ChannelSettings { k: Some(-1.0), ..Default::default() }), ConfigError::K(-1.0));
        assert_eq!(
            bad(ChannelSettings { clips_per_hour: Some(0), ..Default::default() }),
            ConfigError::ClipsPerHour(0)
        );
        assert_eq!(
            bad(ChannelSettings { cooldown_seconds: Some(100_000), ..Default::default() }),
            ConfigError::Cooldown(100_000)
        );
    }

    #[test]
    fn channel_settings_read_and_write_only_what_is_set() {
        let set = ChannelSettings { k: Some(4.5), clips_per_hour: Some(4), ..ChannelSettings::default() };
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(json, r#"{"k":4.5,"clips_per_hour":4}"#);
        assert_eq!(serde_json::from_str::<ChannelSettings>(&json).unwrap(), set);
        assert!(serde_json::from_str::<ChannelSettings>(r#"{"sensitivity":1}"#).is_err());
    }
}
