//! Writing records to a Kinesis stream with PutRecords: at most 500 entries and 5 MB per call,
//! and only the entries that failed (throttling, internal errors) are retried, with backoff.

#[cfg(feature = "kinesis")]
pub use put::{put_all, put_once};

/// PutRecords limits.
pub const MAX_ENTRIES: usize = 500;
pub const MAX_CALL_BYTES: usize = 5 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PutError {
    #[error("PutRecords to {stream} failed: {message}")]
    Call { stream: String, message: String },
    #[error("{failed} records to {stream} still failed after {attempts} attempts (last error: {last_error})")]
    Exhausted { stream: String, failed: usize, attempts: u32, last_error: String },
}

/// One record to put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRecord {
    pub partition_key: String,
    pub data: Vec<u8>,
}

/// The PutRecords calls (feature `aws`); the record shape and limits above are what the
/// ingester's batcher needs without a cloud.
#[cfg(feature = "kinesis")]
mod put {
    use std::time::Duration;

    use aws_sdk_kinesis::Client;
    use aws_sdk_kinesis::error::DisplayErrorContext;
    use aws_sdk_kinesis::primitives::Blob;
    use aws_sdk_kinesis::types::PutRecordsRequestEntry;

    use super::{MAX_CALL_BYTES, MAX_ENTRIES, OutRecord, PutError};

    /// Puts `records` in order (in chunks within the PutRecords limits), retrying failed entries up
    /// to `attempts` times per chunk. Returns how many throttled or failed entries were retried.
    pub async fn put_all(
        client: &Client,
        stream: &str,
        records: &[OutRecord],
        attempts: u32,
    ) -> Result<u64, PutError> {
        let mut retried = 0;
        let mut start = 0;
        while start < records.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < records.len() && end - start < MAX_ENTRIES {
                let size = records[end].data.len() + records[end].partition_key.len();
                if end > start && bytes + size > MAX_CALL_BYTES {
                    break;
                }
                bytes += size;
                end += 1;
            }
            retried += put_chunk(client, stream, &records[start..end], attempts).await?;
            start = end;
        }
        Ok(retried)
    }

    /// One PutRecords call: per entry, `None` when it was stored or the error code (for example
    /// `ProvisionedThroughputExceededException`) when it must be sent again. An error of the call
    /// itself means no entry is known to be stored.
    pub async fn put_once(
        client: &Client,
        stream: &str,
        records: &[&OutRecord],
    ) -> Result<Vec<Option<String>>, PutError> {
        let entries = records
            .iter()
            .map(|r| {
                PutRecordsRequestEntry::builder()
                    .partition_key(&r.partition_key)
                    .data(Blob::new(r.data.clone()))
                    .build()
                    .expect("key and data are set")
            })
            .collect();
        let response =
            client.put_records().stream_name(stream).set_records(Some(entries)).send().await.map_err(
                |error| PutError::Call {
                    stream: stream.into(),
                    message: DisplayErrorContext(&error).to_string(),
                },
            )?;
        Ok(response.records().iter().map(|result| result.error_code().map(str::to_owned)).collect())
    }

    async fn put_chunk(
        client: &Client,
        stream: &str,
        chunk: &[OutRecord],
        attempts: u32,
    ) -> Result<u64, PutError> {
        let mut pending: Vec<&OutRecord> = chunk.iter().collect();
        let mut retried = 0u64;
        let mut last_error = String::new();
        for attempt in 0..attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 << attempt.min(6))).await;
            }
            let results = match put_once(client, stream, &pending).await {
                Ok(results) => results,
                Err(error) => {
                    last_error = error.to_string();
                    continue;
                }
            };
            let failed: Vec<&OutRecord> = pending
                .iter()
                .zip(&results)
                .filter_map(|(record, result)| {
                    let code = result.as_ref()?;
                    last_error.clone_from(code);
                    Some(*record)
                })
                .collect();
            if failed.is_empty() {
                return Ok(retried);
            }
            retried += failed.len() as u64;
            pending = failed;
        }
        if last_error.is_empty() {
            return Err(PutError::Call { stream: stream.into(), message: "no attempt made".into() });
        }
        Err(PutError::Exhausted { stream: stream.into(), failed: pending.len(), attempts, last_error })
    }
}
