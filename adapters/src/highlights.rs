//! The `highlights` DynamoDB table: the outbox of detections. The detector writes one item per
//! detection with a conditional put keyed by broadcaster and peak second, so a replayed batch can
//! never create a second item; the table's stream (NEW_IMAGE) triggers the clipper.
//!
//! The port is [`HighlightOutbox`]; [`DynamoHighlights`] is the real adapter and
//! [`MemoryHighlights`] the in-memory one for unit tests.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use highlights_core::{BroadcasterId, Detection};
use serde_dynamo::{AttributeValue as Attr, Item};

use crate::clips::HighlightKey;
use crate::detector_state::StoreError;
use crate::resources::keys;

#[cfg(feature = "dynamodb")]
pub use crate::dynamo::highlights::DynamoHighlights;

/// The port the detector handler uses.
pub trait HighlightOutbox: Send + Sync {
    /// Records `detection` unless it is already there; returns whether it was new.
    fn record(&self, detection: &Detection) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

impl<T: HighlightOutbox> HighlightOutbox for std::sync::Arc<T> {
    fn record(&self, detection: &Detection) -> impl Future<Output = Result<bool, StoreError>> + Send {
        T::record(self, detection)
    }
}

/// Where the clipper is with a highlight, recorded on the item itself so that a redelivered
/// or retried highlight never creates a second clip.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Progress {
    /// `pending` (written by the detector), `creating` (a Create Clip call is about to go out or
    /// went out without a clear answer: see `intent_at_ms`), `created` (Twitch returned a clip
    /// id), `stored` (the clip row is in Postgres) or `failed` (no clip; see `reason`).
    pub status: String,
    pub clip_id: Option<String>,
    pub attempts: u32,
    pub reason: Option<String>,
    /// When the latest Create Clip call was about to go out (Unix ms): the clip may exist from
    /// then on, though nobody heard of it.
    pub intent_at_ms: Option<i64>,
}

impl Progress {
    /// Nothing is left to do for this highlight.
    pub fn is_final(&self) -> bool {
        matches!(self.status.as_str(), "stored" | "failed")
    }
}

/// The port the clipper uses to read and record its progress.
pub trait HighlightProgress: Send + Sync {
    fn progress(
        &self,
        highlight: HighlightKey,
    ) -> impl Future<Output = Result<Option<Progress>, StoreError>> + Send;
    /// Before a Create Clip call: attempt number `attempt` goes out at `at_ms`. `Ok(false)`:
    /// the item already holds a clip id or a final status (another delivery got there first),
    /// and nothing was written.
    fn record_intent(
        &self,
        highlight: HighlightKey,
        attempt: u32,
        at_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    fn record_clip(
        &self,
        highlight: HighlightKey,
        clip_id: &str,
        attempts: u32,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn record_failure(
        &self,
        highlight: HighlightKey,
        reason: &str,
        attempts: u32,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn record_stored(
        &self,
        highlight: HighlightKey,
        confirmed: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl<T: HighlightProgress> HighlightProgress for std::sync::Arc<T> {
    fn progress(
        &self,
        highlight: HighlightKey,
    ) -> impl Future<Output = Result<Option<Progress>, StoreError>> + Send {
        T::progress(self, highlight)
    }
    fn record_intent(
        &self,
        highlight: HighlightKey,
        attempt: u32,
        at_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        T::record_intent(self, highlight, attempt, at_ms)
    }
    fn record_clip(
        &self,
        highlight: HighlightKey,
        clip_id: &str,
        attempts: u32,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        T::record_clip(self, highlight, clip_id, attempts)
    }
    fn record_failure(
        &self,
        highlight: HighlightKey,
        reason: &str,
        attempts: u32,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        T::record_failure(self, highlight, reason, attempts)
    }
    fn record_stored(
        &self,
        highlight: HighlightKey,
        confirmed: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        T::record_stored(self, highlight, confirmed)
    }
}

/// How long highlight items stay in DynamoDB (the clips themselves live in Postgres).
pub const RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

pub(crate) const FIRED_AT: &str = "fired_at";
pub(crate) const INTENSITY: &str = "intensity";
pub(crate) const MESSAGE_COUNT: &str = "message_count";
pub(crate) const BASELINE_MEAN: &str = "baseline_mean";
pub(crate) const BASELINE_STD: &str = "baseline_std";
pub(crate) const CURVE: &str = "curve";
pub(crate) const PHRASES: &str = "phrases";
pub(crate) const STATUS: &str = "status";
pub(crate) const CREATED_AT: &str = "created_at";

/// The item of a detection, as written by the detector.
pub fn detection_item(detection: &Detection, now_ms: i64) -> Item {
    let number = |value: String| Attr::N(value);
    Item::from(HashMap::from([
        (keys::BROADCASTER_ID.to_owned(), Attr::S(detection.broadcaster_id.to_string())),
        (keys::PEAK_AT.to_owned(), number(detection.peak_second.to_string())),
        (FIRED_AT.to_owned(), number(detection.fired_second.to_string())),
        // `{}` of an f64 is the shortest text that parses back to the same number.
        (INTENSITY.to_owned(), number(format!("{}", detection.intensity))),
        (MESSAGE_COUNT.to_owned(), number(detection.message_count.to_string())),
        (BASELINE_MEAN.to_owned(), number(format!("{}", detection.baseline_mean))),
        (BASELINE_STD.to_owned(), number(format!("{}", detection.baseline_std))),
        (CURVE.to_owned(), Attr::L(detection.curve.counts().iter().map(|c| number(c.to_string())).collect())),
        (PHRASES.to_owned(), phrases_value(&detection.phrases)),
        (STATUS.to_owned(), Attr::S("pending".into())),
        (CREATED_AT.to_owned(), number(now_ms.to_string())),
        (keys::EXPIRES_AT.to_owned(), number((now_ms / 1000 + RETENTION.as_secs() as i64).to_string())),
    ]))
}

/// The text of a string or number attribute.
fn text(value: Option<&Attr>) -> Option<&str> {
    match value? {
        Attr::S(s) | Attr::N(s) => Some(s.as_str()),
        _ => None,
    }
}

/// Reads the detection back from an item (or a stream image, which has the same shape).
pub fn parse_detection(item: &Item) -> Option<Detection> {
    let field = |key: &str| text(item.get(key));
    Some(Detection {
        broadcaster_id: field(keys::BROADCASTER_ID)?.parse().ok()?,
        peak_second: field(keys::PEAK_AT)?.parse().ok()?,
        fired_second: field(FIRED_AT)?.parse().ok()?,
        intensity: field(INTENSITY)?.parse().ok()?,
        message_count: field(MESSAGE_COUNT)?.parse().ok()?,
        baseline_mean: field(BASELINE_MEAN)?.parse().ok()?,
        baseline_std: field(BASELINE_STD)?.parse().ok()?,
        curve: parse_curve(item.get(CURVE)),
        phrases: parse_phrases(item.get(PHRASES)),
    })
}

/// Top phrases as an item holds them: a list of `{phrase: S, count: N}` (the JSON shape, so the
/// clipper reads the stream image with serde).
fn phrases_value(phrases: &highlights_core::TopPhrases) -> Attr {
    Attr::L(
        phrases
            .entries()
            .map(|entry| {
                Attr::M(HashMap::from([
                    ("phrase".to_owned(), Attr::S(entry.phrase.as_str().to_owned())),
                    ("count".to_owned(), Attr::N(entry.count.to_string())),
                ]))
            })
            .collect(),
    )
}

/// A highlight's top phrases; absent (items written before them) or unreadable entries: none.
fn parse_phrases(value: Option<&Attr>) -> highlights_core::TopPhrases {
    let Some(Attr::L(list)) = value else { return Default::default() };
    highlights_core::TopPhrases::from_entries(list.iter().filter_map(|entry| {
        let Attr::M(entry) = entry else { return None };
        let Attr::S(phrase) = entry.get("phrase")? else { return None };
        Some(highlights_core::PhraseCount {
            phrase: highlights_core::detector::Phrase::parse(phrase)?,
            count: text(entry.get("count"))?.parse().ok()?,
        })
    }))
}

/// A highlight's chat curve (a list of numbers); absent or unreadable (items written before it
/// existed): an empty curve.
fn parse_curve(value: Option<&Attr>) -> highlights_core::ChatCurve {
    let counts: Vec<u32> = match value {
        Some(Attr::L(list)) => list.iter().filter_map(|v| text(Some(v))?.parse().ok()).collect(),
        _ => Vec::new(),
    };
    highlights_core::ChatCurve::from_counts(&counts)
}

/// In-memory [`HighlightOutbox`] and [`HighlightProgress`] for unit tests.
#[derive(Debug, Default)]
pub struct MemoryHighlights {
    items: Mutex<BTreeMap<(BroadcasterId, i64), Detection>>,
    progress: Mutex<BTreeMap<(BroadcasterId, i64), Progress>>,
}

impl MemoryHighlights {
    pub fn all(&self) -> Vec<Detection> {
        self.items.lock().expect("not poisoned").values().copied().collect()
    }

    fn set(&self, highlight: HighlightKey, change: impl FnOnce(&mut Progress)) {
        let mut progress = self.progress.lock().expect("not poisoned");
        let entry = progress
            .entry((highlight.broadcaster_id, highlight.peak_second))
            .or_insert_with(|| Progress { status: "pending".into(), ..Progress::default() });
        change(entry);
    }
}

impl HighlightProgress for MemoryHighlights {
    async fn record_intent(
        &self,
        highlight: HighlightKey,
        attempt: u32,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut written = false;
        self.set(highlight, |p| {
            if p.clip_id.is_none() && !p.is_final() {
                p.status = "creating".into();
                p.intent_at_ms = Some(at_ms);
                p.attempts = attempt;
                written = true;
            }
        });
        Ok(written)
    }

    async fn progress(&self, highlight: HighlightKey) -> Result<Option<Progress>, StoreError> {
        let key = (highlight.broadcaster_id, highlight.peak_second);
        Ok(self.progress.lock().expect("not poisoned").get(&key).cloned().or_else(|| {
            self.items
                .lock()
                .expect("not poisoned")
                .contains_key(&key)
                .then(|| Progress { status: "pending".into(), ..Progress::default() })
        }))
    }

    async fn record_clip(
        &self,
        highlight: HighlightKey,
        clip_id: &str,
        attempts: u32,
    ) -> Result<(), StoreError> {
        self.set(highlight, |p| {
            p.status = "created".into();
            p.clip_id = Some(clip_id.to_owned());
            p.attempts = attempts;
        });
        Ok(())
    }

    async fn record_failure(
        &self,
        highlight: HighlightKey,
        reason: &str,
        attempts: u32,
    ) -> Result<(), StoreError> {
        self.set(highlight, |p| {
            p.status = "failed".into();
            p.reason = Some(reason.to_owned());
            p.attempts = attempts;
        });
        Ok(())
    }

    async fn record_stored(&self, highlight: HighlightKey, _confirmed: bool) -> Result<(), StoreError> {
        self.set(highlight, |p| p.status = "stored".into());
        Ok(())
    }
}

impl HighlightOutbox for MemoryHighlights {
    async fn record(&self, detection: &Detection) -> Result<bool, StoreError> {
        let mut items = self.items.lock().expect("not poisoned");
        let key = (detection.broadcaster_id, detection.peak_second);
        if items.contains_key(&key) {
            return Ok(false);
        }
        items.insert(key, *detection);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip_exactly() {
        let detection = Detection {
            broadcaster_id: 194_814_599,
            peak_second: 1_733_098_531,
            fired_second: 1_733_098_532,
            intensity: 7.892939449323359,
            message_count: 10,
            baseline_mean: 0.05,
            baseline_std: 0.2470562472346305,
            curve: highlights_core::ChatCurve::from_counts(&[0, 1, 0, 0, 9]),
            phrases: serde_json::from_str(r#"[{"phrase":"KEKW","count":7},{"phrase":"W","count":3}]"#)
                .unwrap(),
        };
        assert_eq!(detection.phrases.entries().count(), 2);
        let item = detection_item(&detection, 1_733_098_533_000);
        assert_eq!(parse_detection(&item), Some(detection));
        assert_eq!(item[keys::EXPIRES_AT], Attr::N((1_733_098_533 + 30 * 24 * 3600).to_string()));
    }
}
