//! Per-broadcaster batching of chat into wire-format v1 records, the bounded backlog of records
//! waiting for Kinesis, and watermark records for silent channels. Pure: no I/O, no clock (the
//! caller passes `now_ms`), so every rule here is unit-tested.
//!
//! Ordering: records of one broadcaster leave in the order they were made, and a PutRecords call
//! carries at most one record per broadcaster, so a partially failed call can never reorder a
//! channel's chat (Kinesis orders only what succeeded, per shard).
//!
//! Memory: buffered messages and encoded records, watermark records included, count against
//! `max_bytes`; past it the oldest chat is dropped (and counted) rather than growing without
//! bound. A channel keeps at most one watermark-only record waiting at the end of its queue (a
//! newer one replaces it), so a long Kinesis outage costs one small record per joined channel,
//! not one per channel per second.
//!
//! Cost: records wait in one queue per broadcaster; a PutRecords call looks only at the heads of
//! the queues, oldest first, so draining a backlog is linear in its records.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use highlights_adapters::kinesis_out::{MAX_CALL_BYTES, MAX_ENTRIES, OutRecord};
use highlights_core::irc::IrcChat;
use highlights_core::model::{BroadcasterId, ChatBatch, ChatMessage};
use highlights_core::wire;

/// Records stay well below Kinesis's 1 MiB so a batch never needs a second look.
const RECORD_TARGET_BYTES: usize = 900 * 1024;
/// A joined channel gets a record at least this often, chat or not, so its windows close.
pub const WATERMARK_EVERY_MS: i64 = 1000;

/// A record waiting for Kinesis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub broadcaster_id: BroadcasterId,
    pub record: OutRecord,
    /// Chat messages inside (0 for a watermark record).
    pub messages: usize,
    /// Its place in the backlog: the order records were made in, across broadcasters.
    order: u64,
}

#[derive(Debug, Default)]
struct Open {
    messages: Vec<ChatMessage>,
    bytes: usize,
}

#[derive(Debug)]
pub struct Batcher {
    open: HashMap<BroadcasterId, Open>,
    /// Joined channels and the event time of their last record.
    joined: HashMap<BroadcasterId, i64>,
    /// Records waiting for Kinesis, per broadcaster, in the order they were made.
    queues: HashMap<BroadcasterId, VecDeque<Pending>>,
    /// The head of every non-empty queue, by its order: the candidates for the next call.
    heads: BTreeSet<(u64, BroadcasterId)>,
    /// Every waiting record that carries chat, by its order: what the cap drops first.
    chat_records: BTreeMap<u64, BroadcasterId>,
    next_order: u64,
    pending_records: usize,
    /// Queue entries looked at by `next_call` (the cost of draining; see the tests).
    examined: u64,
    open_bytes: usize,
    pending_bytes: usize,
    max_bytes: usize,
    dropped: u64,
}

impl Batcher {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            open: HashMap::new(),
            joined: HashMap::new(),
            queues: HashMap::new(),
            heads: BTreeSet::new(),
            chat_records: BTreeMap::new(),
            next_order: 0,
            pending_records: 0,
            examined: 0,
            open_bytes: 0,
            pending_bytes: 0,
            max_bytes,
            dropped: 0,
        }
    }

    /// Adds a chat message to its broadcaster's open batch.
    pub fn push(&mut self, chat: IrcChat) {
        let bytes = wire::message_len_upper_bound(&chat.message);
        let open = self.open.entry(chat.broadcaster_id).or_default();
        open.messages.push(chat.message);
        open.bytes += bytes;
        self.open_bytes += bytes;
        self.enforce_cap();
    }

    pub fn joined(&mut self, broadcaster_id: BroadcasterId, now_ms: i64) {
        self.joined.entry(broadcaster_id).or_insert(now_ms - WATERMARK_EVERY_MS);
    }

    pub fn parted(&mut self, broadcaster_id: BroadcasterId) {
        self.joined.remove(&broadcaster_id);
    }

    /// Closes every open batch into records with watermark `now_ms`, and adds a watermark-only
    /// record for each joined channel that has had no record for [`WATERMARK_EVERY_MS`].
    pub fn seal(&mut self, now_ms: i64) {
        let mut ids: Vec<BroadcasterId> = self.open.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let Some(open) = self.open.remove(&id) else { continue };
            self.open_bytes -= open.bytes;
            let mut chunk = Vec::new();
            let mut chunk_bytes = 0;
            for message in open.messages {
                let bytes = wire::message_len_upper_bound(&message);
                if !chunk.is_empty() && chunk_bytes + bytes > RECORD_TARGET_BYTES {
                    self.enqueue(id, now_ms, std::mem::take(&mut chunk));
                    chunk_bytes = 0;
                }
                chunk_bytes += bytes;
                chunk.push(message);
            }
            self.enqueue(id, now_ms, chunk);
        }
        let silent: Vec<BroadcasterId> = self
            .joined
            .iter()
            .filter(|(_, last)| now_ms - **last >= WATERMARK_EVERY_MS)
            .map(|(id, _)| *id)
            .collect();
        for id in silent {
            self.enqueue(id, now_ms, Vec::new());
        }
        self.enforce_cap();
    }

    fn enqueue(&mut self, broadcaster_id: BroadcasterId, now_ms: i64, messages: Vec<ChatMessage>) {
        let count = messages.len();
        let batch = ChatBatch { broadcaster_id, watermark_ms: now_ms, messages };
        let record = OutRecord { partition_key: broadcaster_id.to_string(), data: wire::encode(&batch) };
        if let Some(last) = self.joined.get_mut(&broadcaster_id) {
            *last = now_ms;
        }
        let queue = self.queues.entry(broadcaster_id).or_default();
        // A newer watermark makes a waiting watermark-only record redundant: replace it.
        if count == 0
            && let Some(waiting) = queue.back_mut().filter(|p| p.messages == 0)
        {
            self.pending_bytes = self.pending_bytes - waiting.record.data.len() + record.data.len();
            waiting.record = record;
            return;
        }
        let order = self.next_order;
        self.next_order += 1;
        self.pending_bytes += record.data.len();
        self.pending_records += 1;
        if count > 0 {
            self.chat_records.insert(order, broadcaster_id);
        }
        if queue.is_empty() {
            self.heads.insert((order, broadcaster_id));
        }
        queue.push_back(Pending { broadcaster_id, record, messages: count, order });
    }

    /// The records for the next PutRecords call, oldest first: at most one per broadcaster, and
    /// within the call's entry and byte limits. They leave the backlog; give failed ones back
    /// with [`Batcher::requeue`].
    pub fn next_call(&mut self) -> Vec<Pending> {
        let mut taken = Vec::new();
        let mut bytes = 0;
        for &(_, id) in &self.heads {
            if taken.len() == MAX_ENTRIES {
                break;
            }
            self.examined += 1;
            let head = self.queues.get(&id).and_then(VecDeque::front).expect("a head has a queue");
            let size = head.record.data.len() + head.record.partition_key.len();
            if bytes + size <= MAX_CALL_BYTES {
                bytes += size;
                taken.push(id);
            }
        }
        let taken: Vec<Pending> = taken.into_iter().map(|id| self.pop_head(id)).collect();
        taken
    }

    /// Takes `id`'s oldest record out of the backlog.
    fn pop_head(&mut self, id: BroadcasterId) -> Pending {
        let queue = self.queues.get_mut(&id).expect("a head has a queue");
        let pending = queue.pop_front().expect("a head is a record");
        self.heads.remove(&(pending.order, id));
        match queue.front() {
            Some(next) => {
                self.heads.insert((next.order, id));
            }
            None => {
                self.queues.remove(&id);
            }
        }
        self.chat_records.remove(&pending.order);
        self.pending_bytes -= pending.record.data.len();
        self.pending_records -= 1;
        pending
    }

    /// Puts records that failed back at the front of their broadcasters' queues, in their
    /// original order.
    pub fn requeue(&mut self, failed: Vec<Pending>) {
        for pending in failed.into_iter().rev() {
            let id = pending.broadcaster_id;
            let queue = self.queues.entry(id).or_default();
            if let Some(head) = queue.front() {
                self.heads.remove(&(head.order, id));
            }
            self.heads.insert((pending.order, id));
            if pending.messages > 0 {
                self.chat_records.insert(pending.order, id);
            }
            self.pending_bytes += pending.record.data.len();
            self.pending_records += 1;
            queue.push_front(pending);
        }
        self.enforce_cap();
    }

    fn enforce_cap(&mut self) {
        while self.open_bytes + self.pending_bytes > self.max_bytes {
            if let Some((&order, &id)) = self.chat_records.iter().next() {
                self.drop_record(id, order);
                continue;
            }
            // Nothing encoded to drop: the oldest open message, from the fullest batch.
            let Some(open) = self.open.values_mut().max_by_key(|open| open.bytes) else { break };
            if open.messages.is_empty() {
                break;
            }
            let message = open.messages.remove(0);
            let bytes = wire::message_len_upper_bound(&message);
            open.bytes -= bytes;
            self.open_bytes -= bytes;
            self.dropped += 1;
        }
    }

    /// Drops the waiting chat record `order` of `id` (the buffer is full).
    fn drop_record(&mut self, id: BroadcasterId, order: u64) {
        self.chat_records.remove(&order);
        let queue = self.queues.get_mut(&id).expect("a chat record has a queue");
        // Orders grow along a queue.
        let at = queue.partition_point(|p| p.order < order);
        let pending = queue.remove(at).expect("the record is in its queue");
        if at == 0 {
            self.heads.remove(&(order, id));
            match queue.front() {
                Some(next) => {
                    self.heads.insert((next.order, id));
                }
                None => {
                    self.queues.remove(&id);
                }
            }
        }
        self.pending_bytes -= pending.record.data.len();
        self.pending_records -= 1;
        self.dropped += pending.messages as u64;
    }

    /// Chat messages dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Bytes buffered (open messages and records waiting for Kinesis).
    pub fn buffered_bytes(&self) -> usize {
        self.open_bytes + self.pending_bytes
    }

    /// Records waiting for Kinesis.
    pub fn pending_records(&self) -> usize {
        self.pending_records
    }

    /// Nothing is buffered: every message received has been handed out.
    pub fn is_empty(&self) -> bool {
        self.pending_records == 0 && self.open.values().all(|open| open.messages.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(broadcaster_id: BroadcasterId, n: i64) -> IrcChat {
        IrcChat {
            broadcaster_id,
            channel: format!("c{broadcaster_id}"),
            message: ChatMessage::new(1_700_000_000_000 + n, format!("message {n}")),
        }
    }

    fn texts(pending: &[Pending]) -> Vec<(BroadcasterId, Vec<String>)> {
        pending
            .iter()
            .map(|p| {
                let batch = wire::decode(&p.record.data).unwrap();
                (batch.broadcaster_id, batch.messages.into_iter().map(|m| m.text).collect())
            })
            .collect()
    }

    #[test]
    fn one_record_per_broadcaster_per_seal_in_arrival_order() {
        let mut batcher = Batcher::new(1 << 20);
        for n in 0..4 {
            batcher.push(chat(7, n));
            batcher.push(chat(9, n));
        }
        batcher.seal(1_700_000_001_000);
        let call = batcher.next_call();
        assert_eq!(
            texts(&call),
            vec![
                (7, vec!["message 0".into(), "message 1".into(), "message 2".into(), "message 3".into()]),
                (9, vec!["message 0".into(), "message 1".into(), "message 2".into(), "message 3".into()]),
            ]
        );
        assert_eq!(call[0].record.partition_key, "7");
        assert_eq!(wire::decode(&call[0].record.data).unwrap().watermark_ms, 1_700_000_001_000);
        assert!(batcher.is_empty());
    }

    #[test]
    fn a_call_never_carries_two_records_of_one_broadcaster_and_failures_keep_their_place() {
        let mut batcher = Batcher::new(1 << 20);
        batcher.push(chat(7, 0));
        batcher.seal(1000);
        batcher.push(chat(7, 1));
        batcher.push(chat(8, 1));
        batcher.seal(2000);
        let first = batcher.next_call();
        assert_eq!(texts(&first), vec![(7, vec!["message 0".into()]), (8, vec!["message 1".into()])]);
        // The call failed for broadcaster 7: it goes back before 7's second record.
        batcher.requeue(vec![first[0].clone()]);
        assert_eq!(texts(&batcher.next_call()), vec![(7, vec!["message 0".into()])]);
        assert_eq!(texts(&batcher.next_call()), vec![(7, vec!["message 1".into()])]);
        assert!(batcher.next_call().is_empty());
    }

    #[test]
    fn silent_joined_channels_get_a_watermark_each_second() {
        let mut batcher = Batcher::new(1 << 20);
        batcher.joined(5, 10_000);
        batcher.seal(10_000);
        let call = batcher.next_call();
        assert_eq!(call.len(), 1);
        let batch = wire::decode(&call[0].record.data).unwrap();
        assert_eq!((batch.broadcaster_id, batch.watermark_ms, batch.messages.len()), (5, 10_000, 0));
        batcher.seal(10_500);
        assert!(batcher.next_call().is_empty(), "less than a second later");
        batcher.seal(11_000);
        assert_eq!(batcher.next_call().len(), 1);
        batcher.parted(5);
        batcher.seal(20_000);
        assert!(batcher.next_call().is_empty(), "parted channels get none");
    }

    #[test]
    fn a_full_buffer_drops_the_oldest_chat_and_counts_it() {
        let one = wire::message_len_upper_bound(&chat(1, 0).message);
        let mut batcher = Batcher::new(one * 10);
        for n in 0..15 {
            let mut c = chat(1, n);
            c.message.text = format!("message {n:x}"); // one size for all
            batcher.push(c);
        }
        assert_eq!(batcher.dropped(), 5);
        assert!(batcher.buffered_bytes() <= one * 10);
        batcher.seal(1);
        let kept = texts(&batcher.next_call());
        assert_eq!(kept[0].1.first().map(String::as_str), Some("message 5"));
        assert_eq!(kept[0].1.len(), 10);
    }

    #[test]
    fn big_bursts_split_into_records_under_the_kinesis_limit() {
        let mut batcher = Batcher::new(64 << 20);
        let text = "x".repeat(400);
        for n in 0..6000 {
            let mut c = chat(3, n);
            c.message.text.clone_from(&text);
            batcher.push(c);
        }
        batcher.seal(1);
        let mut total = 0;
        while !batcher.is_empty() {
            for pending in batcher.next_call() {
                assert!(pending.record.data.len() <= wire::MAX_RECORD_BYTES);
                total += wire::decode(&pending.record.data).unwrap().messages.len();
            }
        }
        assert_eq!(total, 6000);
    }

    #[test]
    fn a_silent_channel_keeps_one_watermark_waiting_however_long_kinesis_is_away() {
        let mut batcher = Batcher::new(1 << 20);
        for id in 0..1000 {
            batcher.joined(id, 0);
        }
        // Ten minutes of seals every 250 ms, and no PutRecords call succeeds.
        for tick in 0..2400 {
            batcher.seal(tick * 250);
        }
        assert_eq!(batcher.pending_records(), 1000);
        assert!(batcher.buffered_bytes() < 1000 * 32, "{} bytes", batcher.buffered_bytes());
        // Each waiting watermark is the newest one.
        let call = batcher.next_call();
        assert_eq!(call.len(), MAX_ENTRIES);
        assert!(call.iter().all(|p| wire::decode(&p.record.data).unwrap().watermark_ms >= 2399 * 250 - 1000));
    }

    #[test]
    fn a_ten_minute_outage_at_a_thousand_channels_stays_under_the_cap_and_drains_linearly() {
        for (cap, expect_drops) in [(64 << 20, false), (256 << 10, true)] {
            let mut batcher = Batcher::new(cap);
            for id in 0..1000 {
                batcher.joined(id, 0);
            }
            let mut received = 0u64;
            for tick in 0..2400i64 {
                for n in 0..10 {
                    batcher.push(chat(((tick * 10 + n) % 1000) as u64, tick * 250 + n));
                    received += 1;
                }
                batcher.seal(tick * 250);
                assert!(batcher.buffered_bytes() <= cap, "over the cap at tick {tick}");
            }
            assert_eq!(batcher.dropped() > 0, expect_drops, "cap {cap}: dropped {}", batcher.dropped());
            let waiting = batcher.pending_records() as u64;
            // Kinesis is back: drain. Every call looks at no more entries than it takes.
            let examined_before = batcher.examined;
            let (mut drained, mut messages) = (0u64, 0u64);
            while !batcher.is_empty() {
                let call = batcher.next_call();
                assert!(!call.is_empty());
                drained += call.len() as u64;
                messages += call.iter().map(|p| p.messages as u64).sum::<u64>();
            }
            assert_eq!(drained, waiting);
            assert_eq!(messages + batcher.dropped(), received, "every message sent or counted as dropped");
            assert_eq!(batcher.examined - examined_before, drained, "cap {cap}: draining is linear");
        }
    }
}
