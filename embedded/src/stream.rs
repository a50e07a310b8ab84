//! The in-process stream: what Kinesis is in the cloud. Sources append records (wire-format
//! chat batches) with their partition key; consumers read them in sequence order from their
//! position. Sequence numbers only grow, so order per broadcaster is kept, and they are handed
//! to the detector as Kinesis sequence numbers (decimal text).

use highlights_core::BroadcasterId;

use crate::{Embedded, EmbeddedError, set_position_in};

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    pub sequence: i64,
    pub partition_key: BroadcasterId,
    pub data: Vec<u8>,
}

impl Embedded {
    /// Appends `records` and sets source `source`'s position to `source_position`, in one
    /// transaction: after a crash either both happened or neither.
    pub fn append<D: AsRef<[u8]>>(
        &self,
        source: &str,
        source_position: i64,
        records: &[(BroadcasterId, D)],
    ) -> Result<(), EmbeddedError> {
        let mut connection = self.writer();
        let transaction = connection.transaction()?;
        {
            let mut insert =
                transaction.prepare_cached("INSERT INTO stream (partition_key, data) VALUES (?1, ?2)")?;
            for (key, data) in records {
                insert.execute(rusqlite::params![*key as i64, data.as_ref()])?;
            }
        }
        set_position_in(&transaction, source, source_position)?;
        transaction.commit()?;
        Ok(())
    }

    /// Up to `limit` records after sequence `after`, oldest first. Read on a reader connection
    /// (WAL: it sees every committed append), so the consumer does not wait for the source's
    /// appends or the detector's own writes.
    pub fn read_stream(&self, after: i64, limit: usize) -> Result<Vec<StreamRecord>, EmbeddedError> {
        let connection = self.reader();
        let mut select = connection.prepare_cached(
            "SELECT seq, partition_key, data FROM stream WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = select.query_map(rusqlite::params![after, limit as i64], |row| {
            Ok(StreamRecord {
                sequence: row.get(0)?,
                partition_key: row.get::<_, i64>(1)? as u64,
                data: row.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest sequence number (0: empty).
    pub fn stream_end(&self) -> Result<i64, EmbeddedError> {
        Ok(self.writer().query_row("SELECT coalesce(max(seq), 0) FROM stream", [], |row| row.get(0))?)
    }

    /// Moves consumer `name` to `position`.
    pub fn set_position(&self, name: &str, position: i64) -> Result<(), EmbeddedError> {
        Ok(set_position_in(&self.writer(), name, position)?)
    }
}

#[cfg(test)]
mod tests {
    use crate::temporary;

    #[test]
    fn records_come_back_in_order_with_growing_sequences_and_the_source_position_commits_with_them() {
        let (store, dir) = temporary();
        store.append("replay", 2, &[(7, b"a".to_vec()), (8, b"b".to_vec())]).unwrap();
        store.append("replay", 3, &[(7, b"c".to_vec())]).unwrap();
        assert_eq!(store.position("replay").unwrap(), 3);
        let all = store.read_stream(0, 10).unwrap();
        let seen: Vec<(i64, u64, &[u8])> =
            all.iter().map(|r| (r.sequence, r.partition_key, r.data.as_slice())).collect();
        assert_eq!(seen, vec![(1, 7, &b"a"[..]), (2, 8, &b"b"[..]), (3, 7, &b"c"[..])]);
        assert_eq!(store.read_stream(1, 1).unwrap()[0].sequence, 2);
        assert_eq!(store.stream_end().unwrap(), 3);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
