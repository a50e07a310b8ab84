//! Logging and metrics output shared by every process: JSON logs through `tracing` on stderr,
//! and CloudWatch Embedded Metric Format (EMF) lines on stdout, which Lambda and ECS ship to
//! CloudWatch Logs where they become metrics without any API call.
//!
//! With `METRICS=essential` (what deployments set) only the metrics of `config/metrics.json`
//! (those alarms and the dashboard read) are declared as CloudWatch metrics, at $0.30 a month
//! each; the other values stay in the same line, in the logs.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use tracing_subscriber::filter::{LevelFilter, Targets};

/// The CloudWatch namespace of every metric of the system.
pub const NAMESPACE: &str = "TwitchHighlights";

const METRICS_JSON: &str = include_str!("../../config/metrics.json");

/// Which values of a record become CloudWatch metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Declared {
    /// Every value (the default: local runs and tests).
    All,
    /// Only these names; the rest are written to the line undeclared.
    Only(Vec<String>),
}

impl Declared {
    /// `METRICS=essential` declares `config/metrics.json`'s list; anything else, every metric.
    pub fn from_env() -> Self {
        match std::env::var("METRICS").as_deref() {
            Ok("essential") => Self::essential(),
            _ => Self::All,
        }
    }

    pub fn essential() -> Self {
        #[derive(serde::Deserialize)]
        struct File {
            essential: Vec<String>,
        }
        let file: File =
            serde_json::from_str(METRICS_JSON).expect("config/metrics.json is checked by a test");
        Self::Only(file.essential)
    }

    fn declares(&self, name: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(names) => names.iter().any(|n| n == name),
        }
    }
}

fn declared_by_env() -> &'static Declared {
    static DECLARED: std::sync::OnceLock<Declared> = std::sync::OnceLock::new();
    DECLARED.get_or_init(Declared::from_env)
}

/// twitch-irc traces every line it sends, `PASS oauth:<token>` included: it never logs below
/// debug, whatever `RUST_LOG` asks for.
const TWITCH_IRC_TARGET: &str = "twitch_irc";

/// JSON logs on stderr; levels from `RUST_LOG` (default `info`, or `default_level`).
pub fn init_json_logs(default_level: &str) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = log_filter(std::env::var("RUST_LOG").ok().as_deref(), default_level);
    let logs = tracing_subscriber::fmt::layer().json().with_current_span(false).with_writer(std::io::stderr);
    // A second initialisation (tests, a runner hosting several handlers) keeps the first.
    let _ =
        tracing_subscriber::registry().with(tracing_subscriber::Layer::with_filter(logs, filter)).try_init();
}

/// The log filter: `RUST_LOG`'s comma-separated `level` and `target=level` directives
/// (`Targets`: no span or field filters, so no regex engine in every binary), else
/// `default_level`, else `info`; targets not named log at the default level. twitch-irc is held at
/// or below both what was asked for and debug.
fn log_filter(rust_log: Option<&str>, default_level: &str) -> Targets {
    let asked = rust_log
        .and_then(|value| value.parse::<Targets>().ok())
        .or_else(|| default_level.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO));
    // A directive sets twitch-irc's level outright: it must not exceed what was asked for
    // (a `warn` default would otherwise log its debug lines) nor debug.
    let wanted =
        asked.iter().map(|(_, level)| level).chain(asked.default_level()).max().unwrap_or(LevelFilter::INFO);
    let ceiling = wanted.min(LevelFilter::DEBUG);
    // Targets not named keep the default level (RUST_LOG=highlights_adapters=debug still shows
    // everything else at info).
    let default = asked.default_level().or_else(|| default_level.parse().ok()).unwrap_or(LevelFilter::INFO);
    asked
        .iter()
        .filter(|(target, _)| !target.starts_with(TWITCH_IRC_TARGET))
        .fold(Targets::new().with_default(default), |filter, (target, level)| {
            filter.with_target(target.to_owned(), level)
        })
        .with_target(TWITCH_IRC_TARGET, ceiling)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    Bytes,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Bytes => "Bytes",
        }
    }
}

/// One EMF record: a set of metrics sharing one timestamp and one set of dimensions.
#[derive(Debug, Clone)]
pub struct MetricRecord {
    dimensions: BTreeMap<String, String>,
    metrics: Vec<(String, Unit, f64)>,
}

impl MetricRecord {
    /// A record with the dimension `Function` (or `Service`) = `component`.
    pub fn new(dimension: &str, component: &str) -> Self {
        let mut dimensions = BTreeMap::new();
        dimensions.insert(dimension.to_owned(), component.to_owned());
        Self { dimensions, metrics: Vec::new() }
    }

    pub fn dimension(mut self, name: &str, value: &str) -> Self {
        self.dimensions.insert(name.to_owned(), value.to_owned());
        self
    }

    pub fn metric(mut self, name: &str, unit: Unit, value: f64) -> Self {
        self.metrics.push((name.to_owned(), unit, value));
        self
    }

    pub fn count(self, name: &str, value: u64) -> Self {
        self.metric(name, Unit::Count, value as f64)
    }

    /// The EMF JSON document for `timestamp_ms`, declaring what the process's `METRICS` asks.
    pub fn to_json(&self, timestamp_ms: i64) -> Value {
        self.to_json_declaring(timestamp_ms, declared_by_env())
    }

    /// The EMF JSON document declaring the metrics `declared` names; a record that declares
    /// none is a plain JSON log line (EMF wants at least one metric).
    pub fn to_json_declaring(&self, timestamp_ms: i64, declared: &Declared) -> Value {
        let mut root = Map::new();
        let metrics: Vec<Value> = self
            .metrics
            .iter()
            .filter(|(name, _, _)| declared.declares(name))
            .map(|(name, unit, _)| json!({"Name": name, "Unit": unit.as_str()}))
            .collect();
        if !metrics.is_empty() {
            root.insert(
                "_aws".into(),
                json!({
                    "Timestamp": timestamp_ms,
                    "CloudWatchMetrics": [{
                        "Namespace": NAMESPACE,
                        "Dimensions": [self.dimensions.keys().collect::<Vec<_>>()],
                        "Metrics": metrics,
                    }],
                }),
            );
        }
        for (name, value) in &self.dimensions {
            root.insert(name.clone(), Value::String(value.clone()));
        }
        for (name, _, value) in &self.metrics {
            root.insert(name.clone(), json!(value));
        }
        Value::Object(root)
    }

    /// Prints the record as one line on stdout, where the platform picks it up.
    pub fn emit(&self) {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        println!("{}", self.to_json(now_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level_of(filter: &Targets, target: &str) -> Option<LevelFilter> {
        [LevelFilter::TRACE, LevelFilter::DEBUG, LevelFilter::INFO, LevelFilter::WARN, LevelFilter::ERROR]
            .into_iter()
            .find(|level| level.into_level().is_some_and(|level| filter.would_enable(target, &level)))
    }

    #[test]
    fn rust_log_sets_levels_and_twitch_irc_never_logs_below_debug() {
        let filter = log_filter(Some("warn,highlights_adapters=trace,twitch_irc=trace"), "info");
        assert_eq!(level_of(&filter, "ingest_fargate"), Some(LevelFilter::WARN));
        assert_eq!(level_of(&filter, "highlights_adapters::twitch"), Some(LevelFilter::TRACE));
        // twitch-irc's trace lines carry `PASS oauth:<token>`.
        assert_eq!(level_of(&filter, "twitch_irc::transport"), Some(LevelFilter::DEBUG));

        let quiet = log_filter(Some("warn"), "info");
        assert_eq!(level_of(&quiet, "twitch_irc"), Some(LevelFilter::WARN), "no louder than asked");
        assert_eq!(level_of(&log_filter(None, "debug"), "anything"), Some(LevelFilter::DEBUG));
        let unreadable = log_filter(Some("this is not=a level"), "error");
        assert_eq!(level_of(&unreadable, "anything"), Some(LevelFilter::ERROR), "falls back to the default");
        let one_target = log_filter(Some("highlights_adapters=debug"), "warn");
        assert_eq!(level_of(&one_target, "highlights_adapters"), Some(LevelFilter::DEBUG));
        assert_eq!(
            level_of(&one_target, "ingest_fargate"),
            Some(LevelFilter::WARN),
            "the rest at the default"
        );
    }

    #[test]
    fn emf_records_declare_every_metric_and_dimension() {
        let record = MetricRecord::new("Function", "detector").count("MessagesProcessed", 120).metric(
            "HandlerDuration",
            Unit::Milliseconds,
            4.5,
        );
        let json = record.to_json_declaring(1_700_000_000_000, &Declared::All);
        let declared = &json["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(declared["Namespace"], NAMESPACE);
        assert_eq!(declared["Dimensions"], json!([["Function"]]));
        assert_eq!(declared["Metrics"][1], json!({"Name": "HandlerDuration", "Unit": "Milliseconds"}));
        assert_eq!(json["Function"], "detector");
        assert_eq!(json["MessagesProcessed"], 120.0);
        assert_eq!(json["_aws"]["Timestamp"], 1_700_000_000_000i64);
    }

    #[test]
    fn essential_declares_only_the_listed_metrics_and_keeps_every_value_in_the_line() {
        let essential = Declared::essential();
        let Declared::Only(names) = &essential else { panic!("a list") };
        assert!(names.iter().any(|n| n == "clips_created"), "{names:?}");
        let record = MetricRecord::new("Function", "clipper")
            .count("clips_created", 2)
            .count("token_refreshes", 1)
            .dimension("Reason", "server_error");
        let json = record.to_json_declaring(1, &essential);
        let declared = &json["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(declared["Metrics"], json!([{"Name": "clips_created", "Unit": "Count"}]));
        assert_eq!(declared["Dimensions"], json!([["Function", "Reason"]]));
        assert_eq!(json["token_refreshes"], 1.0, "an undeclared value stays in the log line");

        let none = MetricRecord::new("Function", "detector").count("StateWrites", 3);
        let json = none.to_json_declaring(1, &essential);
        assert!(json.get("_aws").is_none(), "no metric: a plain log line, {json}");
        assert_eq!(json["StateWrites"], 3.0);
    }
}
