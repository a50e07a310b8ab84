//! The chat every scenario sends: the same plan on every run, sent live through the fake Twitch
//! IRC server (stamped with the wall clock and paced in real time, as Twitch does: the ingester's
//! watermarks follow the wall clock), and the send log that is the run's truth.
//!
//! Each channel has calm chat (0–3 messages a second from a few regulars) and, every
//! [`BURST_EVERY`] seconds, a burst: [`BURST_RATE`] messages a second from as many different
//! viewers for [`BURST_SECONDS`] seconds. Channels are staggered so their moments do not all
//! fall in the same second. The last seconds are calm, so the last burst's windows close.

use highlights_test_support::irc::FakeIrc;

const FIRST_BURST: u32 = 12;
pub const BURST_EVERY: u32 = 18;
pub const BURST_SECONDS: u32 = 3;
pub const BURST_RATE: u64 = 40;
/// Calm seconds at the end of the plan (more than the detector's hold and window need).
const CALM_TAIL: u32 = 10;

const REACTIONS: [&str; 5] = ["PogChamp", "KEKW LUL", "OMEGALUL", "no way!!", "CLIP IT"];
const CALM: [&str; 4] = ["hello chat", "what game is this", "gg", "!uptime"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub login: String,
    pub room_id: u64,
}

#[derive(Debug, Clone)]
pub struct ChatPlan {
    pub channels: Vec<Channel>,
    pub seconds: u32,
}

impl ChatPlan {
    pub fn new(channels: usize, seconds: u32) -> Self {
        let channels = (0..channels)
            .map(|i| Channel { login: format!("chaoschannel{i}"), room_id: 700_000 + i as u64 })
            .collect();
        Self { channels, seconds }
    }

    /// Whether second `second` of channel `channel` is part of a burst.
    pub fn in_burst(&self, channel: usize, second: u32) -> bool {
        let first = FIRST_BURST + 2 * channel as u32;
        if second < first {
            return false;
        }
        let start = second - (second - first) % BURST_EVERY;
        second - start < BURST_SECONDS && start + BURST_SECONDS + CALM_TAIL <= self.seconds
    }

    /// Bursts in the whole plan, over all channels.
    pub fn bursts(&self) -> usize {
        (0..self.channels.len())
            .map(|c| (1..self.seconds).filter(|&s| self.in_burst(c, s) && !self.in_burst(c, s - 1)).count())
            .sum()
    }

    /// The messages of one second of one channel: (user id, text).
    pub fn second(&self, channel: usize, second: u32) -> Vec<(u64, &'static str)> {
        if self.in_burst(channel, second) {
            (0..BURST_RATE)
                .map(|i| {
                    (
                        10_000 + (u64::from(second) * BURST_RATE + i) % 600,
                        REACTIONS[i as usize % REACTIONS.len()],
                    )
                })
                .collect()
        } else {
            let count = [1u32, 2, 0, 3][(second as usize + channel) % 4];
            (0..count)
                .map(|i| (100 + u64::from(second * 3 + i) % 25, CALM[(second + i) as usize % CALM.len()]))
                .collect()
        }
    }
}

/// What the fake IRC server was asked to send, and what it could deliver.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SendLog {
    /// Chat lines delivered to a connection that had joined the channel.
    pub delivered: u64,
    /// Chat lines nobody was connected to receive (the ingester was down or reconnecting): lost
    /// on Twitch too, and counted apart from what the pipeline dropped.
    pub undelivered: u64,
    /// Chat lines delivered, per second of the plan.
    pub per_second: Vec<u64>,
}

/// Sends second `second` of the plan, every channel, stamped now; `run` keeps message ids unique
/// across runs.
pub fn send_second(irc: &FakeIrc, plan: &ChatPlan, second: u32, run: u32, log: &mut SendLog) {
    log.per_second.resize(second as usize + 1, 0);
    for (index, channel) in plan.channels.iter().enumerate() {
        for (n, (user_id, text)) in plan.second(index, second).into_iter().enumerate() {
            let id = format!("{run:08x}-{second:04x}-4000-8000-{:06x}{n:06x}", channel.room_id);
            let login = format!("viewer{user_id}");
            let line =
                FakeIrc::chat_line(&channel.login, channel.room_id, (&login, user_id), now_ms(), &id, text);
            if irc.send_raw(Some(&channel.login), &line) > 0 {
                log.delivered += 1;
                log.per_second[second as usize] += 1;
            } else {
                log.undelivered += 1;
            }
        }
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_channel_bursts_and_the_plan_ends_calm() {
        let plan = ChatPlan::new(3, 60);
        // Bursts start at 12, 30 (48 would end inside the calm tail) for channel 0.
        assert_eq!(plan.bursts(), 6);
        for c in 0..3 {
            assert!((50..60).all(|s| !plan.in_burst(c, s)));
            let burst = plan.second(c, 12 + 2 * c as u32);
            let people: std::collections::BTreeSet<u64> = burst.iter().map(|m| m.0).collect();
            assert_eq!(people.len() as u64, BURST_RATE, "a burst is many different people");
        }
        assert!(plan.second(0, 5).len() <= 3);
    }
}
