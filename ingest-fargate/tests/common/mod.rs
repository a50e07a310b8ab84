//! What the ingester's tests share: an in-memory Kinesis port with scripted failures.

// Each test binary uses part of this module.
#![allow(dead_code)]

use std::sync::Mutex;

use highlights_adapters::kinesis_out::OutRecord;
use highlights_core::model::ChatBatch;
use highlights_core::wire;
use ingest_fargate::producer::{EntryResults, RecordSink, SinkError};

/// One scripted call: `Err` fails the whole call; `Ok(codes)` fails entry i when codes[i] is set.
pub type ScriptedCall = Result<Vec<Option<&'static str>>, ()>;

/// Stores what it accepts; fails the entries its script says to fail.
#[derive(Default)]
pub struct MemorySink {
    pub stored: Mutex<Vec<OutRecord>>,
    pub script: Mutex<Vec<ScriptedCall>>,
    pub calls: Mutex<usize>,
}

impl RecordSink for MemorySink {
    async fn put(&self, records: &[&OutRecord]) -> Result<EntryResults, SinkError> {
        *self.calls.lock().unwrap() += 1;
        let next = {
            let mut script = self.script.lock().unwrap();
            if script.is_empty() { None } else { Some(script.remove(0)) }
        };
        let codes: Vec<Option<&str>> = match next {
            Some(Err(())) => return Err(SinkError("connection reset".into())),
            Some(Ok(codes)) => codes,
            None => vec![],
        };
        let mut results = Vec::new();
        for (i, record) in records.iter().enumerate() {
            match codes.get(i).copied().flatten() {
                Some(code) => results.push(Some(code.to_owned())),
                None => {
                    self.stored.lock().unwrap().push((*record).clone());
                    results.push(None);
                }
            }
        }
        Ok(results)
    }
}

impl MemorySink {
    pub fn batches(&self) -> Vec<ChatBatch> {
        self.stored.lock().unwrap().iter().map(|r| wire::decode(&r.data).unwrap()).collect()
    }
    /// Chat texts per broadcaster, in stored order.
    pub fn texts(&self, broadcaster_id: u64) -> Vec<String> {
        self.batches()
            .into_iter()
            .filter(|b| b.broadcaster_id == broadcaster_id)
            .flat_map(|b| b.messages.into_iter().map(|m| m.text))
            .collect()
    }
}

/// A chat client takes the process's chat-server slot (twitch-irc's transports take no address):
/// tests that run one take turns.
pub async fn one_chat_client_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}
