//! Logging and metrics output shared by every process: JSON logs through `tracing` on stderr,
//! and CloudWatch Embedded Metric Format (EMF) lines on stdout, which Lambda and ECS ship to
//! CloudWatch Logs where they become metrics without any API call.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// The CloudWatch namespace of every metric of the system.
pub const NAMESPACE: &str = "TwitchHighlights";

/// twitch-irc traces every line it sends, `PASS oauth:<token>` included: it never logs below
/// debug, whatever `RUST_LOG` asks for.
const TWITCH_IRC_TARGET: &str = "twitch_irc";

/// JSON logs on stderr; level from `RUST_LOG` (default `info`, or `default_level`).
pub fn init_json_logs(default_level: &str) {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    // A directive sets twitch-irc's level outright: it must not exceed what was asked for
    // (a `warn` default would otherwise log its debug lines) nor debug.
    let wanted = filter.max_level_hint().unwrap_or(tracing_subscriber::filter::LevelFilter::INFO);
    let ceiling = wanted.min(tracing_subscriber::filter::LevelFilter::DEBUG);
    if let Ok(directive) = format!("{TWITCH_IRC_TARGET}={ceiling}").parse() {
        filter = filter.add_directive(directive);
    }
    // A second initialisation (tests, a runner hosting several handlers) keeps the first.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_current_span(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
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

    /// The EMF JSON document for `timestamp_ms`.
    pub fn to_json(&self, timestamp_ms: i64) -> Value {
        let mut root = Map::new();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [self.dimensions.keys().collect::<Vec<_>>()],
                    "Metrics": self.metrics.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit.as_str()})).collect::<Vec<_>>(),
                }],
            }),
        );
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

    #[test]
    fn emf_records_declare_every_metric_and_dimension() {
        let record = MetricRecord::new("Function", "detector").count("MessagesProcessed", 120).metric(
            "HandlerDuration",
            Unit::Milliseconds,
            4.5,
        );
        let json = record.to_json(1_700_000_000_000);
        let declared = &json["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(declared["Namespace"], NAMESPACE);
        assert_eq!(declared["Dimensions"], json!([["Function"]]));
        assert_eq!(declared["Metrics"][1], json!({"Name": "HandlerDuration", "Unit": "Milliseconds"}));
        assert_eq!(json["Function"], "detector");
        assert_eq!(json["MessagesProcessed"], 120.0);
        assert_eq!(json["_aws"]["Timestamp"], 1_700_000_000_000i64);
    }
}
