//! The embedded store of `highlights dev`: one SQLite file standing in for the cloud's Kinesis
//! stream, DynamoDB tables and PostgreSQL, so that the production handlers run unchanged in one
//! process with nothing to install.
//!
//! - `stream`: an append-only log of chat records (the ingester's wire format), each with its
//!   partition key (the broadcaster) and a sequence number that only grows: Kinesis's order per
//!   broadcaster, read from a consumer's position ([`stream`]).
//! - `positions`: where each source and consumer stands. A source's position commits in the same
//!   transaction as the records it appended, a consumer's with what it wrote, so a `kill -9`
//!   anywhere loses and doubles nothing.
//! - `detector_state`, `highlights`: the detector's ports ([`state`]) with DynamoDB's
//!   conditional-write semantics.
//! - `clips`, `streamers`: what the API lists ([`clips`]); a moment stored without a Twitch clip
//!   is a clip of kind `moment`. With Twitch credentials the clipper's ports ([`clipper`]) keep
//!   its progress on the `highlights` rows and its clips in `clips`.
//! - `channel_settings`: each channel's own detector settings ([`channel_settings`]), the
//!   cloud's `channel-settings` table.
//!
//! It must not talk to the network, nor know where chat comes from (files, IRC) or how the
//! detector decides.

pub mod announcements;
pub mod channel_settings;
pub mod clipper;
pub mod clips;
pub mod state;
pub mod stream;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use rusqlite::Connection;

/// The file inside the data directory.
pub const FILE_NAME: &str = "highlights.sqlite3";
/// Connections that serve the API's reads (WAL lets them read while the pipeline writes).
const READERS: usize = 4;
const SCHEMA_VERSION: i64 = 5;

const SCHEMA: &str = "
CREATE TABLE stream (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    partition_key  INTEGER NOT NULL,
    data           BLOB NOT NULL
);
CREATE TABLE positions (
    name      TEXT PRIMARY KEY,
    position  INTEGER NOT NULL
);
CREATE TABLE detector_state (
    broadcaster_id  INTEGER PRIMARY KEY,
    version         INTEGER NOT NULL,
    detector        BLOB,
    last_sequence   TEXT,
    last_fire       INTEGER
);
CREATE TABLE highlights (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    broadcaster_id INTEGER NOT NULL,
    peak_second    INTEGER NOT NULL,
    fired_second   INTEGER NOT NULL,
    intensity      REAL NOT NULL,
    message_count  INTEGER NOT NULL,
    baseline_mean  REAL NOT NULL,
    baseline_std   REAL NOT NULL,
    UNIQUE (broadcaster_id, peak_second)
);
CREATE TABLE clips (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    kind           TEXT NOT NULL,
    clip_id        TEXT NOT NULL UNIQUE,
    broadcaster_id TEXT NOT NULL,
    url            TEXT,
    embed_url      TEXT,
    thumbnail_url  TEXT,
    title          TEXT,
    duration       REAL,
    vod_offset     INTEGER,
    detected_at    INTEGER NOT NULL,
    fired_at       INTEGER NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    intensity      REAL NOT NULL,
    message_count  INTEGER NOT NULL,
    baseline_mean  REAL NOT NULL,
    baseline_std   REAL NOT NULL,
    view_count     INTEGER,
    confirmed      INTEGER NOT NULL DEFAULT 0,
    UNIQUE (broadcaster_id, detected_at)
);
CREATE INDEX clips_newest ON clips (detected_at DESC, id DESC);
CREATE INDEX clips_by_broadcaster ON clips (broadcaster_id, detected_at DESC, id DESC);
CREATE TABLE streamers (
    broadcaster_id  TEXT PRIMARY KEY,
    login           TEXT NOT NULL,
    display_name    TEXT,
    is_live         INTEGER NOT NULL DEFAULT 0,
    allows_clipping INTEGER
);
";

/// What each schema version adds to the one before (index 0: version 1 to 2).
const MIGRATIONS: [&str; 4] = [
    "
CREATE TABLE channel_settings (
    broadcaster_id   INTEGER PRIMARY KEY,
    login            TEXT NOT NULL,
    k                REAL,
    cooldown_seconds INTEGER,
    min_chatters     INTEGER,
    clips_per_hour   INTEGER,
    updated_at       INTEGER NOT NULL
);
",
    "
ALTER TABLE highlights ADD COLUMN status TEXT NOT NULL DEFAULT 'pending';
ALTER TABLE highlights ADD COLUMN clip_id TEXT;
ALTER TABLE highlights ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE highlights ADD COLUMN reason TEXT;
ALTER TABLE highlights ADD COLUMN intent_at_ms INTEGER;
ALTER TABLE highlights ADD COLUMN recorded_at_ms INTEGER;
ALTER TABLE highlights ADD COLUMN curve TEXT;
ALTER TABLE clips ADD COLUMN curve TEXT;
ALTER TABLE clips ADD COLUMN video_id TEXT;
CREATE TABLE vods (
    video_id       TEXT PRIMARY KEY,
    broadcaster_id TEXT NOT NULL,
    started_at     INTEGER NOT NULL,
    length_s       INTEGER NOT NULL
);
ALTER TABLE clips ADD COLUMN confirm_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE clips ADD COLUMN next_confirm_at_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE clips ADD COLUMN unpublished INTEGER NOT NULL DEFAULT 0;
",
    "
ALTER TABLE highlights ADD COLUMN phrases TEXT;
ALTER TABLE clips ADD COLUMN phrases TEXT;
",
    "
CREATE TABLE announcements (
    clip_id  TEXT PRIMARY KEY,
    status   TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    at_ms    INTEGER NOT NULL,
    reason   TEXT
);
",
];

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("cannot open {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("{path} was written by a newer version of highlights (schema {found}, this one knows {known})")]
    NewerSchema { path: PathBuf, found: i64, known: i64 },
    #[error("the embedded database failed: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// The open store: one writer connection (SQLite has one writer at a time anyway) and a few
/// readers for the API.
pub struct Embedded {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Embedded({})", self.path.display())
    }
}

fn configure(connection: &Connection) -> rusqlite::Result<()> {
    // WAL: readers never wait for the writer. synchronous=NORMAL in WAL mode survives a killed
    // process (only a power loss can drop the last transactions), which is what dev needs.
    connection
        .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
    connection.busy_timeout(std::time::Duration::from_secs(10))
}

impl Embedded {
    /// Opens (creating when missing) the store in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, EmbeddedError> {
        let path = data_dir.join(FILE_NAME);
        let open_error = |reason: String| EmbeddedError::Open { path: path.clone(), reason };
        std::fs::create_dir_all(data_dir)
            .map_err(|e| open_error(format!("cannot create {}: {e}", data_dir.display())))?;
        let writer = Connection::open(&path).map_err(|e| open_error(e.to_string()))?;
        configure(&writer).map_err(|e| open_error(e.to_string()))?;
        let found: i64 = writer.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        if found > SCHEMA_VERSION {
            return Err(EmbeddedError::NewerSchema { path, found, known: SCHEMA_VERSION });
        }
        if found == 0 {
            writer.execute_batch(&format!("BEGIN; {SCHEMA} PRAGMA user_version = 1; COMMIT;"))?;
        }
        for version in found.max(1)..SCHEMA_VERSION {
            let migration = MIGRATIONS[(version - 1) as usize];
            writer.execute_batch(&format!(
                "BEGIN; {migration} PRAGMA user_version = {}; COMMIT;",
                version + 1
            ))?;
        }
        let readers = (0..READERS)
            .map(|_| {
                let reader = Connection::open(&path).map_err(|e| open_error(e.to_string()))?;
                configure(&reader).map_err(|e| open_error(e.to_string()))?;
                Ok(Mutex::new(reader))
            })
            .collect::<Result<Vec<_>, EmbeddedError>>()?;
        Ok(Self { path, writer: Mutex::new(writer), readers, next_reader: AtomicUsize::new(0) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (its transaction rolls back).
        self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        let index = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        self.readers[index].lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Where source or consumer `name` stands (0: at the start).
    pub fn position(&self, name: &str) -> Result<i64, EmbeddedError> {
        position_in(&self.writer(), name)
    }
}

fn position_in(connection: &Connection, name: &str) -> Result<i64, EmbeddedError> {
    let found =
        connection.query_row("SELECT position FROM positions WHERE name = ?1", [name], |row| row.get(0));
    match found {
        Ok(position) => Ok(position),
        Err(rusqlite::Error::QueryReturnedNoRows) => Ok(0),
        Err(error) => Err(error.into()),
    }
}

fn set_position_in(connection: &Connection, name: &str, position: i64) -> rusqlite::Result<()> {
    connection
        .execute(
            "INSERT INTO positions (name, position) VALUES (?1, ?2) \
             ON CONFLICT (name) DO UPDATE SET position = excluded.position",
            rusqlite::params![name, position],
        )
        .map(drop)
}

#[cfg(test)]
pub(crate) fn temporary() -> (Embedded, PathBuf) {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "highlights-embedded-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    (Embedded::open(&dir).unwrap(), dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_of_schema_1_gains_the_tables_of_later_versions_and_keeps_its_data() {
        let (store, dir) = temporary();
        drop(store);
        std::fs::remove_file(dir.join(FILE_NAME)).unwrap();
        {
            let version_1 = Connection::open(dir.join(FILE_NAME)).unwrap();
            version_1.execute_batch(&format!("{SCHEMA} PRAGMA user_version = 1;")).unwrap();
            version_1.execute_batch("INSERT INTO positions VALUES ('x', 3)").unwrap();
            version_1
                .execute_batch("INSERT INTO highlights VALUES (1, 5, 100, 103, 6.0, 40, 2.0, 1.0)")
                .unwrap();
        }
        let again = Embedded::open(&dir).unwrap();
        assert_eq!(again.position("x").unwrap(), 3);
        let version: i64 = again.writer().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        again.writer().execute_batch("SELECT count(*) FROM channel_settings").unwrap();
        let status: String =
            again.writer().query_row("SELECT status FROM highlights", [], |r| r.get(0)).unwrap();
        assert_eq!(status, "pending", "highlights recorded before the clipper's columns are pending");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn reopening_keeps_the_data_and_a_newer_schema_is_refused() {
        let (store, dir) = temporary();
        store.writer().execute_batch("INSERT INTO positions VALUES ('x', 7)").unwrap();
        drop(store);
        let again = Embedded::open(&dir).unwrap();
        assert_eq!(again.position("x").unwrap(), 7);
        assert_eq!(again.position("never").unwrap(), 0);
        again.writer().execute_batch("PRAGMA user_version = 99").unwrap();
        drop(again);
        let error = Embedded::open(&dir).unwrap_err().to_string();
        assert!(error.contains("newer version") && error.contains("schema 99"), "{error}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
