//! Shard checkpoints in a JSON file, rewritten atomically (temporary file + rename) after every
//! successful batch, so a killed runner resumes from the last completed batch.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read checkpoints {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("checkpoints file {path} is corrupt: {source}")]
    Corrupt { path: PathBuf, source: serde_json::Error },
    #[error("cannot write checkpoints {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

#[derive(Debug)]
pub struct Checkpoints {
    path: PathBuf,
    positions: Mutex<BTreeMap<String, String>>,
}

impl Checkpoints {
    /// Loads `path` (an absent file means no checkpoints yet).
    pub fn open(path: &Path) -> Result<Self, CheckpointError> {
        let positions = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| CheckpointError::Corrupt { path: path.to_owned(), source })?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(CheckpointError::Read { path: path.to_owned(), source }),
        };
        Ok(Self { path: path.to_owned(), positions: Mutex::new(positions) })
    }

    pub fn get(&self, key: &str) -> Option<String> {
        self.positions.lock().expect("not poisoned").get(key).cloned()
    }

    pub fn set(&self, key: &str, sequence: &str) -> Result<(), CheckpointError> {
        self.set_many(&[(key.to_owned(), Some(sequence.to_owned()))])
    }

    /// Moves the entry `from` to `to` when `to` has none, in one atomic write: a position kept
    /// under an older key is taken over once, by one reader only. Whether it moved.
    pub fn take_over(&self, from: &str, to: &str) -> Result<bool, CheckpointError> {
        let mut positions = self.positions.lock().expect("not poisoned");
        if positions.contains_key(to) {
            return Ok(false);
        }
        let Some(value) = positions.remove(from) else { return Ok(false) };
        positions.insert(to.to_owned(), value);
        self.write(&positions).map(|()| true)
    }

    /// Sets (or, with `None`, removes) several entries in one atomic write: a shard position
    /// and the tumbling window's state that goes with it.
    pub fn set_many(&self, entries: &[(String, Option<String>)]) -> Result<(), CheckpointError> {
        let mut positions = self.positions.lock().expect("not poisoned");
        for (key, value) in entries {
            match value {
                Some(value) => positions.insert(key.clone(), value.clone()),
                None => positions.remove(key),
            };
        }
        self.write(&positions)
    }

    fn write(&self, positions: &BTreeMap<String, String>) -> Result<(), CheckpointError> {
        let write_error = |source| CheckpointError::Write { path: self.path.clone(), source };
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent).map_err(write_error)?;
        }
        let temporary = self.path.with_extension("tmp");
        let text = serde_json::to_vec_pretty(positions).expect("strings serialise");
        std::fs::write(&temporary, text).map_err(write_error)?;
        std::fs::rename(&temporary, &self.path).map_err(write_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_under_an_older_key_is_taken_over_once() {
        let dir = std::env::temp_dir().join(format!("highlights-take-over-{}", std::process::id()));
        let path = dir.join("checkpoints.json");
        let checkpoints = Checkpoints::open(&path).unwrap();
        checkpoints.set("old", "42").unwrap();
        assert!(checkpoints.take_over("old", "new#a").unwrap());
        assert!(!checkpoints.take_over("old", "new#b").unwrap(), "only once");
        checkpoints.set("other", "7").unwrap();
        checkpoints.set("mine", "9").unwrap();
        assert!(!checkpoints.take_over("other", "mine").unwrap(), "a reader's own position wins");
        let reopened = Checkpoints::open(&path).unwrap();
        assert_eq!(
            (reopened.get("new#a").as_deref(), reopened.get("old"), reopened.get("mine").as_deref()),
            (Some("42"), None, Some("9"))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn checkpoints_survive_a_restart_and_corruption_is_an_error() {
        let dir = std::env::temp_dir().join(format!("highlights-checkpoints-{}", std::process::id()));
        let path = dir.join("checkpoints.json");
        let first = Checkpoints::open(&path).unwrap();
        assert_eq!(first.get("kinesis/a/0"), None);
        first.set("kinesis/a/0", "42").unwrap();
        first.set("kinesis/a/0", "43").unwrap();
        assert_eq!(Checkpoints::open(&path).unwrap().get("kinesis/a/0").as_deref(), Some("43"));
        first
            .set_many(&[
                ("kinesis/a/0".into(), Some("44".into())),
                ("kinesis/a/0#window".into(), Some("{}".into())),
            ])
            .unwrap();
        first.set_many(&[("kinesis/a/0#window".into(), None)]).unwrap();
        let reopened = Checkpoints::open(&path).unwrap();
        assert_eq!(
            (reopened.get("kinesis/a/0").as_deref(), reopened.get("kinesis/a/0#window")),
            (Some("44"), None)
        );
        std::fs::write(&path, "{oops").unwrap();
        assert!(matches!(Checkpoints::open(&path), Err(CheckpointError::Corrupt { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
