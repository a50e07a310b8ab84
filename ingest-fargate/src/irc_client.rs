//! The Twitch chat side. The `twitch-irc` crate runs the protocol: its connection pool, the
//! `CAP REQ` / `PASS` / `NICK` handshake, PING/PONG with a timeout, RECONNECT, and rejoining a lost
//! connection's channels. This module adds what the crate leaves to its user: JOIN pacing, the chat
//! login (anonymous, or a user token that is refreshed when Twitch refuses it), readiness and
//! counters, and the chat itself.
//!
//! The transport is ours ([`ChatTransport`]): twitch-irc's own transports connect to a hard-coded
//! `irc.chat.twitch.tv` and end the connection on a line they cannot parse. Ours connects to the
//! configured [`IrcAddress`] (TLS through the project's rustls stack; plain TCP for test servers),
//! counts and skips malformed lines, and takes the chat out of the stream itself: a PRIVMSG is
//! parsed by `highlights_core::irc::parse_line` (borrowing; six times faster than twitch-irc's
//! owned messages, which cannot reach 500,000 messages/s here; see docs/benchmarks.md) and goes straight to the bounded event queue. When that queue is full the
//! transport stops reading the socket (TCP backpressure) instead of filling twitch-irc's unbounded
//! channels. Every other line goes on to twitch-irc.
//!
//! `Transport::new()` takes no arguments, so the address and the event queue live in a
//! process-wide slot that [`ChatClient::run`] fills: one chat client per process (a second one
//! waits until the first stops).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use either::Either;
use futures::stream::{FusedStream, Stream};
use highlights_adapters::tokens::TokenSource;
use highlights_adapters::twitch::Secret;
use highlights_core::irc::{IrcChat, parse_line};
use highlights_core::model::BroadcasterId;
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::codec::{Decoder, Encoder, FramedRead, FramedWrite};
use tokio_util::sync::PollSender;
use twitch_irc::login::{CredentialsPair, LoginCredentials};
use twitch_irc::message::{AsRawIRC, IRCMessage, IRCParseError, ServerMessage};
use twitch_irc::transport::Transport;
use twitch_irc::{ClientConfig, TwitchIRCClient};

use crate::metrics::Counters;

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

/// Who logs in: anonymous (`justinfan…`, read-only) or a user whose token (scope `chat:read`)
/// comes from a [`ChatTokens`] source, refreshed when Twitch refuses it.
#[derive(Clone)]
pub enum IrcLogin {
    Anonymous,
    User { login: String, tokens: Arc<dyn ChatTokens> },
}

type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<Secret, String>> + Send + 'a>>;

/// The chat login's token port (object-safe, so the client needs no type parameter).
pub trait ChatTokens: Send + Sync {
    fn current(&self) -> TokenFuture<'_>;
    /// Twitch refused `token`: a refreshed one (written back to where tokens are kept).
    fn rejected<'a>(&'a self, token: &'a Secret) -> TokenFuture<'a>;
}

impl<T: TokenSource + 'static> ChatTokens for T {
    fn current(&self) -> TokenFuture<'_> {
        Box::pin(async move { self.access_token().await.map_err(|e| e.to_string()) })
    }
    fn rejected<'a>(&'a self, token: &'a Secret) -> TokenFuture<'a> {
        Box::pin(async move { self.refresh_after_rejection(token).await.map_err(|e| e.to_string()) })
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
        let server = install_server(self.address.clone(), self.counters.clone(), events.clone());
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
                    channels.check_confirmations(&client, self.confirm_joins_within).await;
                }
                _ = shutdown.changed() => break,
            }
        }
        server.closing.store(true, Ordering::Relaxed);
        uninstall_server();
        drop(client);
        drop(incoming);
        self.counters.channels_joined.store(0, Ordering::Relaxed);
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

fn is_login_refusal(text: &str) -> bool {
    text.contains("Login authentication failed") || text.contains("Improperly formatted auth")
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
    wait: Duration,
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
    async fn check_confirmations(&mut self, client: &Client, within: Duration) {
        let now = Instant::now();
        for channel in &self.joined {
            let (_, confirmed) = client.get_channel_status(channel.clone()).await;
            if confirmed {
                self.unconfirmed.remove(channel);
                continue;
            }
            let entry = self
                .unconfirmed
                .entry(channel.clone())
                .or_insert(Unconfirmed { next_try: now + within, wait: within });
            if now >= entry.next_try && !self.rejoin.contains(channel) {
                tracing::info!(
                    channel,
                    waited_s = entry.wait.as_secs(),
                    "Twitch has not confirmed the JOIN; joining again"
                );
                self.rejoin.push_back(channel.clone());
                entry.wait = (entry.wait * 2).min(MAX_REJOIN_BACKOFF);
                entry.next_try = now + entry.wait;
            }
        }
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

// ---------------------------------------------------------------------------------------------
// The process's chat server, shared by every connection the client opens.

/// Held by the running [`ChatClient`]: the server slot has room for one.
static ACTIVE_CLIENT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

static SERVER: RwLock<Option<Arc<ChatServer>>> = RwLock::new(None);

struct ChatServer {
    address: IrcAddress,
    counters: Arc<Counters>,
    /// Where the transport puts the chat it reads.
    chat: mpsc::Sender<ChatEvent>,
    /// Twitch refused the login (its NOTICE comes before it closes the connection); the next
    /// login refreshes the token first.
    login_refused: AtomicBool,
    /// Connections past Twitch's welcome (001): readiness.
    welcomed: AtomicUsize,
    /// The client is stopping: connections closing now are not lost ones.
    closing: AtomicBool,
}

fn install_server(
    address: IrcAddress,
    counters: Arc<Counters>,
    chat: mpsc::Sender<ChatEvent>,
) -> Arc<ChatServer> {
    let server = Arc::new(ChatServer {
        address,
        counters,
        chat,
        login_refused: AtomicBool::new(false),
        welcomed: AtomicUsize::new(0),
        closing: AtomicBool::new(false),
    });
    *SERVER.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(server.clone());
    server
}

fn uninstall_server() {
    *SERVER.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
}

fn installed_server() -> io::Result<Arc<ChatServer>> {
    SERVER
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "no chat server configured"))
}

// ---------------------------------------------------------------------------------------------
// The transport.

/// A TLS or plain TCP connection to the chat server.
pub trait ChatSocket: AsyncRead + AsyncWrite + Send + Sync + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin> ChatSocket for T {}

/// One connection to the chat server, as twitch-irc's [`Transport`].
pub struct ChatTransport {
    incoming: IncomingMessages,
    outgoing: OutgoingMessages,
}

type OutgoingMessages = FramedWrite<WriteHalf<Box<dyn ChatSocket>>, IrcLineEncoder>;

impl std::fmt::Debug for ChatTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTransport").finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl Transport for ChatTransport {
    type ConnectError = io::Error;
    type IncomingError = io::Error;
    type OutgoingError = io::Error;
    type Incoming = IncomingMessages;
    type Outgoing = OutgoingMessages;

    async fn new() -> io::Result<Self> {
        let server = installed_server()?;
        let socket = connect(&server.address).await?;
        let (read, write) = tokio::io::split(socket);
        Ok(Self {
            incoming: IncomingMessages {
                lines: FramedRead::new(read, ChatLineDecoder::default()),
                chat: PollSender::new(server.chat.clone()),
                waiting: None,
                server,
                welcomed: false,
                ended: false,
            },
            outgoing: FramedWrite::new(write, IrcLineEncoder),
        })
    }

    fn split(self) -> (IncomingMessages, OutgoingMessages) {
        (self.incoming, self.outgoing)
    }
}

async fn connect(address: &IrcAddress) -> io::Result<Box<dyn ChatSocket>> {
    let tcp = TcpStream::connect((address.host.as_str(), address.port)).await?;
    tcp.set_nodelay(true)?;
    if !address.tls {
        return Ok(Box::new(tcp));
    }
    // Built once: the root store is the same for every connection.
    static TLS: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    let config = TLS.get_or_init(|| {
        Arc::new(highlights_adapters::tls::client_config(highlights_adapters::tls::mozilla_roots()))
    });
    let name = rustls::pki_types::ServerName::try_from(address.host.clone())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    Ok(Box::new(tokio_rustls::TlsConnector::from(config.clone()).connect(name, tcp).await?))
}

/// What one line from the server is.
#[derive(Debug)]
pub enum Routed {
    /// A chat message: it goes to the event queue.
    Chat(IrcChat),
    /// Anything else: it goes to twitch-irc.
    Protocol(IRCMessage),
    /// A blank line.
    Nothing,
    /// Not IRC, or a PRIVMSG without what Twitch always sends: counted and skipped.
    Malformed(String),
}

/// Sorts one line (without its line ending).
pub fn route_line(line: &[u8]) -> Routed {
    let Ok(text) = std::str::from_utf8(line) else {
        return Routed::Malformed("not UTF-8".to_owned());
    };
    if text.trim().is_empty() {
        return Routed::Nothing;
    }
    match parse_line(text) {
        Ok(Some(chat)) => Routed::Chat(chat),
        Err(error) => Routed::Malformed(error.to_string()),
        Ok(None) => match IRCMessage::parse(text) {
            Ok(message) => Routed::Protocol(message),
            Err(error) => Routed::Malformed(error.to_string()),
        },
    }
}

/// The server's lines: chat into the event queue, everything else to twitch-irc as IRC
/// messages. The welcome and login refusals are noted for readiness and the next login.
pub struct IncomingMessages {
    lines: FramedRead<ReadHalf<Box<dyn ChatSocket>>, ChatLineDecoder>,
    chat: PollSender<ChatEvent>,
    /// Read, waiting for room in the event queue.
    waiting: Option<IrcChat>,
    server: Arc<ChatServer>,
    welcomed: bool,
    ended: bool,
}

impl IncomingMessages {
    fn note(&mut self, message: &IRCMessage) {
        match message.command.as_str() {
            "001" if !self.welcomed => {
                self.welcomed = true;
                self.server.welcomed.fetch_add(1, Ordering::Relaxed);
                self.server.counters.irc_connected.store(true, Ordering::Relaxed);
            }
            "NOTICE" if message.params.last().is_some_and(|text| is_login_refusal(text)) => {
                self.server.login_refused.store(true, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    fn malformed(&self, why: &str, length: usize) {
        self.server.counters.malformed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(why, length, "skipped a malformed IRC line");
    }

    /// Hands the waiting chat to the event queue; pending while the queue is full.
    fn poll_deliver(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.waiting.is_none() {
            return Poll::Ready(());
        }
        match std::task::ready!(self.chat.poll_reserve(cx)) {
            Ok(()) => {
                if let Some(chat) = self.waiting.take() {
                    self.server.counters.messages_received.fetch_add(1, Ordering::Relaxed);
                    let _ = self.chat.send_item(ChatEvent::Chat(chat));
                }
            }
            // The ingester is stopping and no longer takes chat.
            Err(_) => self.waiting = None,
        }
        Poll::Ready(())
    }
}

impl Stream for IncomingMessages {
    type Item = Result<IRCMessage, Either<io::Error, IRCParseError>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            std::task::ready!(this.poll_deliver(cx));
            if this.ended {
                return Poll::Ready(None);
            }
            let line = match std::task::ready!(Pin::new(&mut this.lines).poll_next(cx)) {
                None => {
                    this.ended = true;
                    return Poll::Ready(None);
                }
                Some(Err(error)) => {
                    this.ended = true;
                    return Poll::Ready(Some(Err(Either::Left(error))));
                }
                Some(Ok(ChatLine::TooLong(length))) => {
                    this.malformed("longer than the line limit", length);
                    continue;
                }
                Some(Ok(ChatLine::Line(line))) => line,
            };
            match route_line(&line) {
                Routed::Chat(chat) => this.waiting = Some(chat),
                Routed::Protocol(message) => {
                    this.note(&message);
                    return Poll::Ready(Some(Ok(message)));
                }
                Routed::Nothing => {}
                Routed::Malformed(why) => this.malformed(&why, line.len()),
            }
        }
    }
}

impl FusedStream for IncomingMessages {
    fn is_terminated(&self) -> bool {
        self.ended && self.waiting.is_none()
    }
}

/// twitch-irc drops the incoming half when the connection ends, whatever ended it (EOF, an
/// error, a PING without PONG, RECONNECT); it reconnects unless the client is stopping.
impl Drop for IncomingMessages {
    fn drop(&mut self) {
        if self.welcomed && self.server.welcomed.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.server.counters.irc_connected.store(false, Ordering::Relaxed);
        }
        if !self.server.closing.load(Ordering::Relaxed) {
            self.server.counters.reconnects.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Twitch lines are at most a few KB (512 bytes of IRC plus tags); anything longer is not chat.
const MAX_LINE_BYTES: usize = 64 * 1024;

/// What the transport's line splitter yields.
pub enum ChatLine {
    /// A line without its line ending.
    Line(BytesMut),
    /// A line past the limit, skipped: its length.
    TooLong(usize),
}

/// Splits the byte stream into lines without ever failing on content (only I/O errors end the
/// stream): a line that is too long becomes a value to count, not an error.
#[derive(Default)]
pub struct ChatLineDecoder {
    /// Bytes already searched for a newline.
    searched: usize,
    /// Inside a line past the limit: its length so far.
    discarding: Option<usize>,
}

impl Decoder for ChatLineDecoder {
    type Item = ChatLine;
    type Error = io::Error;

    fn decode(&mut self, buffer: &mut BytesMut) -> io::Result<Option<ChatLine>> {
        let newline = memchr::memchr(b'\n', &buffer[self.searched..]).map(|i| i + self.searched);
        let Some(end) = newline else {
            if buffer.len() > MAX_LINE_BYTES {
                *self.discarding.get_or_insert(0) += buffer.len();
                buffer.clear();
                self.searched = 0;
            } else {
                self.searched = buffer.len();
            }
            return Ok(None);
        };
        let mut line = buffer.split_to(end + 1);
        self.searched = 0;
        if let Some(discarded) = self.discarding.take() {
            return Ok(Some(ChatLine::TooLong(discarded + line.len())));
        }
        line.truncate(end);
        if line.ends_with(b"\r") {
            line.truncate(end - 1);
        }
        Ok(Some(ChatLine::Line(line)))
    }

    fn decode_eof(&mut self, buffer: &mut BytesMut) -> io::Result<Option<ChatLine>> {
        // A last line without its newline is incomplete: dropped with the connection.
        let line = self.decode(buffer)?;
        buffer.clear();
        Ok(line)
    }
}

/// Writes IRC messages as CRLF-terminated lines.
pub struct IrcLineEncoder;

impl Encoder<IRCMessage> for IrcLineEncoder {
    type Error = io::Error;

    fn encode(&mut self, message: IRCMessage, buffer: &mut BytesMut) -> io::Result<()> {
        buffer.extend_from_slice(message.as_raw_irc().as_bytes());
        buffer.extend_from_slice(b"\r\n");
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The login.

/// twitch-irc asks for credentials before every connection.
struct ChatLogin {
    login: IrcLogin,
    server: Arc<ChatServer>,
    /// The token handed out last (the one Twitch refused, when it does).
    last: tokio::sync::Mutex<Option<Secret>>,
    /// Consecutive failures to get a token: the next attempt waits (twitch-irc retries at once).
    failures: AtomicUsize,
}

#[derive(Debug, thiserror::Error)]
#[error("no chat token: {0}")]
pub struct ChatLoginError(String);

impl std::fmt::Debug for ChatLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let login = match &self.login {
            IrcLogin::Anonymous => "anonymous",
            IrcLogin::User { login, .. } => login,
        };
        f.debug_struct("ChatLogin").field("login", &login).finish_non_exhaustive()
    }
}

impl ChatLogin {
    fn new(login: IrcLogin, server: Arc<ChatServer>) -> Self {
        Self { login, server, last: tokio::sync::Mutex::new(None), failures: AtomicUsize::new(0) }
    }
}

#[async_trait::async_trait]
impl LoginCredentials for ChatLogin {
    type Error = ChatLoginError;

    async fn get_credentials(&self) -> Result<CredentialsPair, ChatLoginError> {
        let (login, tokens) = match &self.login {
            IrcLogin::Anonymous => {
                let nick = format!("justinfan{}", 10_000 + std::process::id() % 80_000);
                return Ok(CredentialsPair { login: nick, token: None });
            }
            IrcLogin::User { login, tokens } => (login, tokens),
        };
        let failures = self.failures.load(Ordering::Relaxed);
        if failures > 0 {
            tokio::time::sleep(Duration::from_millis(500 << failures.min(6))).await;
        }
        let mut last = self.last.lock().await;
        let refused = self.server.login_refused.swap(false, Ordering::Relaxed);
        let token = match (refused, last.as_ref()) {
            (true, Some(rejected)) => tokens.rejected(rejected).await.inspect(|_| {
                tracing::info!("chat token refreshed after Twitch refused it");
            }),
            _ => tokens.current().await,
        };
        match token {
            Ok(token) => {
                self.failures.store(0, Ordering::Relaxed);
                let pair =
                    CredentialsPair { login: login.to_lowercase(), token: Some(token.expose().to_owned()) };
                *last = Some(token);
                Ok(pair)
            }
            Err(reason) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                // Refused once, refused again: the refresh must be retried on the next login.
                self.server.login_refused.fetch_or(refused, Ordering::Relaxed);
                tracing::error!(%reason, "cannot get a chat token");
                Err(ChatLoginError(reason))
            }
        }
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

    fn decode_all(input: &[u8]) -> Vec<String> {
        let mut decoder = ChatLineDecoder::default();
        let mut buffer = BytesMut::new();
        let mut out = Vec::new();
        // Fed in small pieces, as a socket would.
        for piece in input.chunks(7) {
            buffer.extend_from_slice(piece);
            while let Some(line) = decoder.decode(&mut buffer).unwrap() {
                out.push(match line {
                    ChatLine::Line(line) => String::from_utf8_lossy(&line).into_owned(),
                    ChatLine::TooLong(n) => format!("<too long: {n}>"),
                });
            }
        }
        out
    }

    #[test]
    fn lines_split_on_newlines_and_bad_ones_become_values() {
        assert_eq!(decode_all(b"PING :a\r\nPONG :b\n\r\n"), ["PING :a", "PONG :b", ""]);
        let mut long = vec![b'x'; MAX_LINE_BYTES * 2 + 5];
        long.extend_from_slice(b"\r\nafter\r\n");
        assert_eq!(decode_all(&long), [format!("<too long: {}>", MAX_LINE_BYTES * 2 + 7), "after".into()]);
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

    #[test]
    fn chat_goes_to_the_queue_the_rest_to_twitch_irc_and_garbage_nowhere() {
        let chat = b"@badge-info=;badges=;color=;display-name=Viewer;emotes=25:0-4,6-10;id=m1;\
                     room-id=42;tmi-sent-ts=1733000000123;user-id=7 :viewer!viewer@viewer.tmi.twitch.tv \
                     PRIVMSG #chan :Kappa Kappa";
        match route_line(chat) {
            Routed::Chat(chat) => {
                assert_eq!((chat.broadcaster_id, chat.channel.as_str()), (42, "chan"));
                assert_eq!((chat.message.text.as_str(), chat.message.emote_count), ("Kappa Kappa", 2));
            }
            other => panic!("{other:?}"),
        }
        match route_line(b":tmi.twitch.tv 001 justinfan1 :Welcome, GLHF!") {
            Routed::Protocol(message) => assert_eq!(message.command, "001"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(route_line(b"  "), Routed::Nothing));
        for garbage in
            [&b"@only-tags"[..], b"\xff\xfe PRIVMSG", b"@room-id=abc;tmi-sent-ts=1 :a PRIVMSG #a :hi"]
        {
            assert!(matches!(route_line(garbage), Routed::Malformed(_)), "{garbage:?}");
        }
    }
}
