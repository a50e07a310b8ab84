//! Detector state carried in the Kinesis event-source mapping's tumbling window, so that a
//! broadcaster's state is written to the state table once per window instead of once per
//! invocation (issue: "a deployment a single streamer can afford").
//!
//! With a tumbling window configured, Lambda hands every invocation the `state` map the previous
//! invocation of the same window returned, and checkpoints that map together with the batch: a
//! crashed or failed invocation is retried with the same records and the same map, so carrying
//! the detector there loses nothing and applies nothing twice (records a broadcaster already
//! applied are skipped by their sequence number, as in the table). At the window's last
//! invocation (`isFinalInvokeForWindow`) the carried states are written to the table, and the
//! next window starts from them.
//!
//! This module is the map's format and the window's bookkeeping; the handler
//! ([`crate::DetectorHandler::handle_window`]) does the applying and the writing. It does no I/O.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use highlights_adapters::detector_state::StoredState;
use highlights_core::BroadcasterId;
use serde::{Deserialize, Serialize};

/// Lambda ends a window early once its state passes 1 MB per shard; the handler writes the
/// carried states to the table and starts the map afresh before that.
pub const STATE_BUDGET_BYTES: usize = 768 * 1024;

/// One broadcaster's state as the window carries it: what the table would hold had it been
/// written, and the table's version it was read at (the write at the window's end is
/// conditional on it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carried {
    /// The state, `version` being the table item's version when it was read (0: no item).
    pub state: StoredState,
    /// Whether records were applied since the table was read or written: only those are
    /// written at the window's end.
    pub dirty: bool,
}

/// The carried states of one shard's window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowState {
    pub carried: BTreeMap<BroadcasterId, Carried>,
}

/// Why a map entry could not be read. Never fatal: the broadcaster is read from the table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowStateError {
    #[error("window state key {0:?} is not a broadcaster id")]
    Key(String),
    #[error("window state of broadcaster {0} is malformed: {1}")]
    Value(BroadcasterId, String),
}

/// The JSON of one map value (short keys: the map counts against Lambda's 1 MB).
#[derive(Serialize, Deserialize)]
struct Entry {
    /// Table version.
    v: u64,
    /// Detector blob, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    d: Option<String>,
    /// Last applied sequence number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    s: Option<String>,
    /// Last detection's second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    f: Option<i64>,
    /// Dirty.
    #[serde(default)]
    w: bool,
}

const BLOB: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD_NO_PAD;

impl WindowState {
    /// Reads Lambda's map. Entries that cannot be read are dropped and reported: their
    /// broadcasters are read from the table again, which at worst repeats records already applied
    /// (skipped by sequence number, and detections are idempotent puts).
    pub fn decode(map: &HashMap<String, String>) -> (Self, Vec<WindowStateError>) {
        let mut carried = BTreeMap::new();
        let mut errors = Vec::new();
        for (key, value) in map {
            let Ok(id) = key.parse::<BroadcasterId>() else {
                errors.push(WindowStateError::Key(key.clone()));
                continue;
            };
            match decode_entry(id, value) {
                Ok(entry) => {
                    carried.insert(id, entry);
                }
                Err(reason) => errors.push(WindowStateError::Value(id, reason)),
            }
        }
        (Self { carried }, errors)
    }

    /// Lambda's map: one entry per carried broadcaster.
    pub fn encode(&self) -> HashMap<String, String> {
        self.carried.iter().map(|(id, carried)| (id.to_string(), encode_entry(carried))).collect()
    }

    /// The map's size as Lambda counts it, near enough: keys and values.
    pub fn encoded_bytes(map: &HashMap<String, String>) -> usize {
        map.iter().map(|(k, v)| k.len() + v.len() + 6).sum()
    }
}

fn encode_entry(carried: &Carried) -> String {
    let state = &carried.state;
    let entry = Entry {
        v: state.version,
        d: state.detector.as_ref().map(|blob| BLOB.encode(blob)),
        s: state.last_sequence.clone(),
        f: state.last_fire,
        w: carried.dirty,
    };
    serde_json::to_string(&entry).expect("an entry always serialises")
}

fn decode_entry(id: BroadcasterId, value: &str) -> Result<Carried, String> {
    let entry: Entry = serde_json::from_str(value).map_err(|e| e.to_string())?;
    let detector = match entry.d {
        Some(text) => Some(BLOB.decode(text).map_err(|e| format!("detector blob: {e}"))?),
        None => None,
    };
    Ok(Carried {
        state: StoredState {
            broadcaster_id: id,
            version: entry.v,
            detector,
            last_sequence: entry.s,
            last_fire: entry.f,
            broken: None,
        },
        dirty: entry.w,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn carried(id: BroadcasterId, dirty: bool) -> Carried {
        Carried {
            state: StoredState {
                broadcaster_id: id,
                version: 7,
                detector: Some(vec![0, 1, 2, 255, 254]),
                last_sequence: Some("49590338271490256608559692538361571095921575989136588898".into()),
                last_fire: Some(1_700_000_123),
                broken: None,
            },
            dirty,
        }
    }

    #[test]
    fn the_map_round_trips() {
        let mut window = WindowState::default();
        window.carried.insert(1, carried(1, true));
        window.carried.insert(99, carried(99, false));
        let reset = Carried {
            state: StoredState { broadcaster_id: 5, version: 0, ..StoredState::default() },
            dirty: true,
        };
        window.carried.insert(5, reset);
        let map = window.encode();
        let (back, errors) = WindowState::decode(&map);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(back, window);
        assert!(WindowState::encoded_bytes(&map) < 3 * 200, "{map:?}");
    }

    #[test]
    fn unreadable_entries_are_dropped_and_named() {
        let mut map = WindowState { carried: BTreeMap::from([(3, carried(3, true))]) }.encode();
        map.insert("not-an-id".into(), "{}".into());
        map.insert("4".into(), "{\"v\":".into());
        map.insert("6".into(), "{\"v\":1,\"d\":\"!!!\"}".into());
        let (window, errors) = WindowState::decode(&map);
        assert_eq!(window.carried.keys().copied().collect::<Vec<_>>(), vec![3]);
        let mut named: Vec<String> = errors
            .iter()
            .map(|e| match e {
                WindowStateError::Key(key) => format!("key {key}"),
                WindowStateError::Value(id, _) => format!("value {id}"),
            })
            .collect();
        named.sort();
        assert_eq!(named, ["key not-an-id", "value 4", "value 6"]);
    }
}
