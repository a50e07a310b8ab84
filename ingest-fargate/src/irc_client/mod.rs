//! The Twitch chat side. The `twitch-irc` crate runs the protocol: its connection pool, the
//! `CAP REQ` / `PASS` / `NICK` handshake, PING/PONG with a timeout, RECONNECT, and rejoining a lost
//! connection's channels. This module adds what the crate leaves to its user: JOIN pacing, the chat
//! login (anonymous, or a user token that is refreshed when Twitch refuses it), readiness and
//! counters, and the chat itself.
//!
//! The transport is ours ([`ChatTransport`], in `transport.rs`): twitch-irc's own transports
//! connect to a hard-coded `irc.chat.twitch.tv` and end the connection on a line they cannot
//! parse. Ours connects to the configured [`IrcAddress`] (TLS through the project's rustls stack;
//! plain TCP for test servers), counts and skips malformed lines, and takes the chat out of the
//! stream itself: a PRIVMSG is parsed by `highlights_core::irc::parse_line` (borrowing; six times
//! faster than twitch-irc's owned messages, which cannot reach 500,000 messages/s here; see
//! docs/benchmarks.md) and goes straight to the bounded event queue. When that queue is full the
//! transport stops reading the socket (TCP backpressure) instead of filling twitch-irc's
//! unbounded channels. Every other line goes on to twitch-irc. The login is in `login.rs`.
//!
//! `Transport::new()` takes no arguments, so the address and the event queue live in a
//! process-wide slot that [`ChatClient::run`] fills: one chat client per process (a second one
//! waits until the first stops).

mod login;
mod transport;

pub use login::{ChatLoginError, ChatTokens, IrcLogin};
pub use transport::{
    ChatLine, ChatLineDecoder, ChatSocket, ChatTransport, IncomingMessages, IrcLineEncoder, Routed,
    route_line,
};

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use highlights_core::irc::IrcChat;
use highlights_core::model::BroadcasterId;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use twitch_irc::message::ServerMessage;
use twitch_irc::{ClientConfig, TwitchIRCClient};

use crate::metrics::Counters;
use login::{ChatLogin, is_login_refusal};
use transport::{ACTIVE_CLIENT, ChatServer, install_server, uninstall_server};

/// Where to connect: `tls://host:port` (the default form: `host:port`) or `tcp://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IrcAddress {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

pub const TWITCH_IRC: &str = "tls://irc.chat.twitch.tv:6697";

#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not an IRC address (expected tls://host:port or tcp://host:port)")]
pub struct BadAddress(String);

impl FromStr for IrcAddress {
    type Err = BadAddress;
    fn from_str(text: &str) -> Result<Self, BadAddress> {
        let (tls, rest) = match text.split_once("://") {
            Some(("tls", rest)) => (true, rest),
            Some(("tcp", rest)) => (false, rest),
            Some(_) => return Err(BadAddress(text.to_owned())),
            None => (true, text),
        };
        let (host, port) = rest.rsplit_once(':').ok_or_else(|| BadAddress(text.to_owned()))?;
        let port = port.parse().map_err(|_| BadAddress(text.to_owned()))?;
        if host.is_empty() {
            return Err(BadAddress(text.to_owned()));
        }
        Ok(Self { tls, host: host.trim_matches(['[', ']']).to_owned(), port })
    }
}

/// What the client reports to the producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatEvent {
    Chat(IrcChat),
    /// Twitch confirmed a JOIN and named the room (ROOMSTATE): watermarks start.
    Joined {
        channel: String,
        broadcaster_id: BroadcasterId,
    },
    /// The channel was parted: its watermarks stop.
    Parted {
        channel: String,
        broadcaster_id: BroadcasterId,
    },
}

/// JOIN pacing: at most `joins` per `per` (Twitch: 20 per 10 s, 2000 for verified bots).
#[derive(Debug, Clone, Copy)]
pub struct JoinLimit {
    pub joins: usize,
    pub per: Duration,
}

impl Default for JoinLimit {
    fn default() -> Self {
        Self { joins: 20, per: Duration::from_secs(10) }
    }
}

/// The JOIN rate as the command line sets it (the ingester, `highlights dev`).
#[derive(clap::Args, Debug, Clone)]
pub struct JoinSettings {
    /// JOINs allowed per window (Twitch: 20 per 10 s; 2000 for verified bots).
    #[arg(long, env = "INGEST_JOIN_LIMIT", default_value_t = 20)]
    pub join_limit: usize,
    #[arg(long, env = "INGEST_JOIN_WINDOW_SECONDS", default_value_t = 10)]
    pub join_window_seconds: u64,
}

impl JoinSettings {
    pub fn limit(&self) -> JoinLimit {
        JoinLimit { joins: self.join_limit.max(1), per: Duration::from_secs(self.join_window_seconds.max(1)) }
    }
}

impl JoinLimit {
    /// Channels per pooled connection. twitch-irc rejoins a lost connection's channels at once,
    /// so a connection holds no more than one window's worth of JOINs.
    fn channels_per_connection(&self) -> usize {
        self.joins.clamp(1, 90)
    }

    /// How often a connection may be opened: a new connection's rejoins never outrun the limit.
    fn new_connection_every(&self) -> Duration {
        self.per.mul_f64(self.channels_per_connection() as f64 / self.joins.max(1) as f64)
    }
}

pub struct ChatClient {
    pub address: IrcAddress,
    pub login: IrcLogin,
    pub join_limit: JoinLimit,
    /// A channel Twitch has not confirmed this long after its JOIN is joined again (then after
    /// twice as long, and so on up to [`MAX_REJOIN_BACKOFF`]). Twitch drops JOINs past its limit
    /// without an answer, and twitch-irc never retries one on its own.
    pub confirm_joins_within: Duration,
    pub counters: Arc<Counters>,
}

/// The default for [`ChatClient::confirm_joins_within`].
pub const CONFIRM_JOINS_WITHIN: Duration = Duration::from_secs(60);

/// The longest wait between JOINs of a channel Twitch does not confirm (one that no longer
/// exists keeps being tried at this pace).
pub const MAX_REJOIN_BACKOFF: Duration = Duration::from_secs(30 * 60);

type Client = TwitchIRCClient<ChatTransport, ChatLogin>;

/// Without a logged-in connection, one is asked for this often (twitch-irc connects on demand,
/// and readiness needs a connection even while no channel is live).
const KEEP_CONNECTED_EVERY: Duration = Duration::from_secs(5);

impl ChatClient {
    /// Runs until `shutdown` becomes true: joins the channels in `wanted` (logins), paced, and
    /// parts the ones that leave it; chat and room changes go to `events`.
    pub async fn run(
        &self,
        mut wanted: watch::Receiver<BTreeSet<String>>,
        events: mpsc::Sender<ChatEvent>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let _one_per_process = ACTIVE_CLIENT.lock().await;
        let server = ChatServer::new(self.address.clone(), self.counters.clone(), events.clone());
        install_server(&server);
        let mut config = ClientConfig::new_simple(ChatLogin::new(self.login.clone(), server.clone()));
        config.max_channels_per_connection = self.join_limit.channels_per_connection();
        config.new_connection_every = self.join_limit.new_connection_every();
        config.connect_timeout = Duration::from_secs(10);
        let (mut incoming, client) = Client::new(config);
        client.connect().await;

        let mut channels = Channels::new(self.join_limit);
        let mut keep_connected = tokio::time::interval(KEEP_CONNECTED_EVERY);
        let mut check_confirmations =
            tokio::time::interval((self.confirm_joins_within / 2).max(Duration::from_millis(50)));
        let mut wanted_open = true;
        loop {
            let want = wanted.borrow_and_update().clone();
            let next_slot = channels.sync(&client, &want, &events, &self.counters).await;
            tokio::select! {
                message = incoming.recv() => match message {
                    Some(message) => self.handle(message, &mut channels, &events).await,
                    None => break,
                },
                changed = wanted.changed(), if wanted_open => wanted_open = changed.is_ok(),
                _ = sleep_until_option(next_slot) => {}
                _ = keep_connected.tick() => {
                    if server.welcomed.load(Ordering::Relaxed) == 0 {
                        client.connect().await;
                    }
                }
                _ = check_confirmations.tick() => {
                    channels.check_confirmations(&client, self.confirm_joins_within, &self.counters).await;
                }
                _ = shutdown.changed() => break,
            }
        }
        server.closing.store(true, Ordering::Relaxed);
        uninstall_server();
        drop(client);
        drop(incoming);
        self.counters.channels_joined.store(0, Ordering::Relaxed);
        self.counters.channels_unconfirmed.store(0, Ordering::Relaxed);
    }

    async fn handle(
        &self,
        message: ServerMessage,
        channels: &mut Channels,
        events: &mpsc::Sender<ChatEvent>,
    ) {
        match message {
            ServerMessage::RoomState(room) => {
                if let Ok(broadcaster_id) = room.channel_id.parse()
                    && channels.confirmed(&room.channel_login, broadcaster_id)
                {
                    let channel = room.channel_login;
                    let _ = events.send(ChatEvent::Joined { channel, broadcaster_id }).await;
                }
            }
            ServerMessage::Notice(notice) if is_login_refusal(&notice.message_text) => {
                tracing::error!(notice = %notice.message_text, "Twitch refused the chat login");
            }
            ServerMessage::Reconnect(_) => tracing::info!("Twitch asked to reconnect"),
            _ => {}
        }
    }
}

/// The channels handed to twitch-irc, their rooms once confirmed, and the JOIN pacing.
struct Channels {
    limit: JoinLimit,
    joined: BTreeSet<String>,
    /// Logins twitch-irc refused as malformed: not tried again.
    invalid: HashSet<String>,
    rooms: HashMap<String, BroadcasterId>,
    recent_joins: VecDeque<Instant>,
    /// Joined channels Twitch has not confirmed (by echoing the JOIN), and when to try again.
    unconfirmed: HashMap<String, Unconfirmed>,
    /// Unconfirmed channels whose time came: joined again, paced like new ones.
    rejoin: VecDeque<String>,
}

struct Unconfirmed {
    next_try: Instant,
    /// JOINs sent so far (the first one included).
    joins: u32,
}

impl Channels {
    fn new(limit: JoinLimit) -> Self {
        Self {
            limit,
            joined: BTreeSet::new(),
            invalid: HashSet::new(),
            rooms: HashMap::new(),
            recent_joins: VecDeque::new(),
            unconfirmed: HashMap::new(),
            rejoin: VecDeque::new(),
        }
    }

    /// Asks twitch-irc which joined channels Twitch has confirmed; queues a JOIN again for those
    /// unconfirmed for `within` (and, after each retry, twice as long as before).
    async fn check_confirmations(&mut self, client: &Client, within: Duration, counters: &Counters) {
        let now = Instant::now();
        let schedule = highlights_core::Backoff::new(within, MAX_REJOIN_BACKOFF);
        for channel in &self.joined {
            let (_, confirmed) = client.get_channel_status(channel.clone()).await;
            if confirmed {
                self.unconfirmed.remove(channel);
                continue;
            }
            let entry = self
                .unconfirmed
                .entry(channel.clone())
                .or_insert(Unconfirmed { next_try: now + within, joins: 1 });
            if now >= entry.next_try && !self.rejoin.contains(channel) {
                tracing::info!(
                    channel,
                    waited_s = schedule.after(entry.joins).as_secs(),
                    "Twitch has not confirmed the JOIN; joining again"
                );
                self.rejoin.push_back(channel.clone());
                entry.joins = entry.joins.saturating_add(1);
                entry.next_try = now + schedule.after(entry.joins);
            }
        }
        // Past their first window: joined again at least once.
        let retrying = self.unconfirmed.values().filter(|u| u.joins > 1).count();
        counters.channels_unconfirmed.store(retrying as i64, Ordering::Relaxed);
    }

    /// Parts what is no longer wanted and joins what is, as fast as the limit allows; returns
    /// when the next JOIN slot opens if some channel is still waiting for one.
    async fn sync(
        &mut self,
        client: &Client,
        want: &BTreeSet<String>,
        events: &mpsc::Sender<ChatEvent>,
        counters: &Counters,
    ) -> Option<Instant> {
        for channel in self.joined.difference(want).cloned().collect::<Vec<_>>() {
            client.part(channel.clone());
            self.joined.remove(&channel);
            self.unconfirmed.remove(&channel);
            if let Some(broadcaster_id) = self.rooms.remove(&channel) {
                let _ = events.send(ChatEvent::Parted { channel, broadcaster_id }).await;
            }
        }
        let now = Instant::now();
        while self.recent_joins.front().is_some_and(|t| now.duration_since(*t) >= self.limit.per) {
            self.recent_joins.pop_front();
        }
        // Channels to join again go first (they were wanted earliest), then new ones.
        self.rejoin.retain(|channel| self.joined.contains(channel));
        let mut fresh = want
            .difference(&self.joined)
            .filter(|c| !self.invalid.contains(*c))
            .cloned()
            .collect::<Vec<_>>()
            .into_iter();
        let mut next_slot = None;
        while !self.rejoin.is_empty() || fresh.len() > 0 {
            if self.recent_joins.len() >= self.limit.joins {
                next_slot = self.recent_joins.front().map(|t| *t + self.limit.per);
                break;
            }
            if let Some(channel) = self.rejoin.pop_front() {
                // twitch-irc sends the JOIN again for a channel it has not seen confirmed.
                let _ = client.join(channel);
                self.recent_joins.push_back(now);
                continue;
            }
            let Some(channel) = fresh.next() else { break };
            match client.join(channel.clone()) {
                Ok(()) => {
                    self.recent_joins.push_back(now);
                    self.joined.insert(channel);
                }
                Err(error) => {
                    tracing::warn!(%error, channel, "not a Twitch login: not joined");
                    self.invalid.insert(channel);
                }
            }
        }
        counters.channels_joined.store(self.joined.len() as i64, Ordering::Relaxed);
        next_slot
    }

    /// Twitch named `channel`'s room; true the first time for a channel we are in.
    fn confirmed(&mut self, channel: &str, broadcaster_id: BroadcasterId) -> bool {
        self.joined.contains(channel) && self.rooms.insert(channel.to_owned(), broadcaster_id).is_none()
    }
}

async fn sleep_until_option(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_with_tls_by_default() {
        let tls: IrcAddress = TWITCH_IRC.parse().unwrap();
        assert_eq!((tls.tls, tls.host.as_str(), tls.port), (true, "irc.chat.twitch.tv", 6697));
        let plain: IrcAddress = "tcp://127.0.0.1:6667".parse().unwrap();
        assert_eq!((plain.tls, plain.host.as_str(), plain.port), (false, "127.0.0.1", 6667));
        assert!("irc.chat.twitch.tv:6697".parse::<IrcAddress>().unwrap().tls);
        for bad in ["", "http://x:1", "tcp://x", "tcp://:1", "tcp://x:port"] {
            assert!(bad.parse::<IrcAddress>().is_err(), "{bad}");
        }
    }

    #[test]
    fn join_limits_set_the_connection_pool() {
        let default = JoinLimit::default();
        assert_eq!(default.channels_per_connection(), 20);
        assert_eq!(default.new_connection_every(), Duration::from_secs(10));
        let verified = JoinLimit { joins: 2000, per: Duration::from_secs(10) };
        assert_eq!(verified.channels_per_connection(), 90);
        assert_eq!(verified.new_connection_every(), Duration::from_millis(450));
    }
}
