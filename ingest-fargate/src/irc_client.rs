//! A read-only Twitch IRC client: one connection, TLS by default (plain TCP for test servers),
//! IRCv3 tags, anonymous or token login, JOIN pacing, PING/PONG, RECONNECT and reconnection with
//! backoff, rejoining every wanted channel. It hands out [`ChatEvent`]s on a bounded channel: when
//! the consumer is slow, reading from the socket waits (TCP backpressure) instead of buffering
//! without bound.
//!
//! Why not the `twitch-irc` crate: its transports connect to a hard-coded
//! `irc.chat.twitch.tv` (`Transport::new()` takes no address), so a test server per test would need
//! a process-wide override, and it delivers messages on an unbounded channel. Parsing is
//! `highlights_core::irc::parse_line`, which the benchmarks measure.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use highlights_adapters::tokens::TokenSource;
use highlights_adapters::twitch::Secret;
use highlights_core::irc::{IrcChat, parse_line};
use highlights_core::model::BroadcasterId;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

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

/// What the client reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatEvent {
    Chat(IrcChat),
    /// Twitch confirmed a JOIN and named the room (ROOMSTATE).
    Joined {
        channel: String,
        broadcaster_id: BroadcasterId,
    },
    Parted {
        channel: String,
    },
    /// The connection is up and logged in (or went down).
    Connected(bool),
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

pub struct ChatClient {
    pub address: IrcAddress,
    pub login: IrcLogin,
    pub join_limit: JoinLimit,
    pub counters: Arc<Counters>,
}

enum SessionEnd {
    /// Twitch asked us to reconnect: do it at once.
    Reconnect,
    /// The connection failed or closed: reconnect after a backoff.
    Failed(String),
    /// Twitch refused this token: refresh it, then reconnect.
    TokenRefused(Secret),
    Shutdown,
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// No line for this long: send a PING; none for twice as long: the connection is dead.
const IDLE: Duration = Duration::from_secs(300);

impl ChatClient {
    /// Runs until `shutdown` becomes true: joins the channels in `wanted` (logins) and parts
    /// the ones that leave it.
    pub async fn run(
        &self,
        mut wanted: watch::Receiver<BTreeSet<String>>,
        events: mpsc::Sender<ChatEvent>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut backoff = Duration::ZERO;
        loop {
            if *shutdown.borrow() {
                return;
            }
            if !backoff.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
            }
            let end = match self.connect().await {
                Ok(stream) => self.session(stream, &mut wanted, &events, &mut shutdown, &mut backoff).await,
                Err(error) => SessionEnd::Failed(error.to_string()),
            };
            let _ = events.send(ChatEvent::Connected(false)).await;
            match end {
                SessionEnd::Shutdown => return,
                SessionEnd::Reconnect => {
                    tracing::info!("Twitch asked to reconnect");
                    backoff = Duration::ZERO;
                }
                SessionEnd::TokenRefused(token) => {
                    if let IrcLogin::User { tokens, .. } = &self.login {
                        match tokens.rejected(&token).await {
                            Ok(_) => {
                                tracing::info!("chat token refreshed after Twitch refused it");
                                backoff = Duration::ZERO;
                            }
                            Err(reason) => {
                                backoff =
                                    (backoff * 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
                                tracing::error!(%reason, "Twitch refused the chat token and it cannot be refreshed");
                            }
                        }
                    }
                }
                SessionEnd::Failed(reason) => {
                    backoff = (backoff * 2).clamp(Duration::from_millis(500), Duration::from_secs(30));
                    tracing::warn!(%reason, retry_in_ms = backoff.as_millis() as u64, "IRC connection lost");
                }
            }
            self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn connect(&self) -> std::io::Result<Box<dyn Stream>> {
        let tcp = tokio::time::timeout(
            Duration::from_secs(10),
            TcpStream::connect((self.address.host.as_str(), self.address.port)),
        )
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
        tcp.set_nodelay(true)?;
        if !self.address.tls {
            return Ok(Box::new(tcp));
        }
        // Built once: the root store is the same for every reconnect.
        static TLS: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
        let config = TLS.get_or_init(|| {
            Arc::new(highlights_adapters::tls::client_config(highlights_adapters::tls::mozilla_roots()))
        });
        let name = rustls::pki_types::ServerName::try_from(self.address.host.clone())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let tls = tokio_rustls::TlsConnector::from(config.clone()).connect(name, tcp).await?;
        Ok(Box::new(tls))
    }

    async fn session(
        &self,
        stream: Box<dyn Stream>,
        wanted: &mut watch::Receiver<BTreeSet<String>>,
        events: &mpsc::Sender<ChatEvent>,
        shutdown: &mut watch::Receiver<bool>,
        backoff: &mut Duration,
    ) -> SessionEnd {
        let (read, mut write) = tokio::io::split(stream);
        let mut lines = BufReader::new(read).lines();
        let (nick, pass) = match &self.login {
            IrcLogin::Anonymous => (format!("justinfan{}", 10_000 + std::process::id() % 80_000), None),
            IrcLogin::User { login, tokens } => match tokens.current().await {
                Ok(token) => (login.to_lowercase(), Some(token)),
                Err(reason) => return SessionEnd::Failed(format!("no chat token: {reason}")),
            },
        };
        let mut hello = String::from("CAP REQ :twitch.tv/tags twitch.tv/commands\r\n");
        if let Some(token) = &pass {
            hello.push_str(&format!("PASS oauth:{}\r\n", token.expose()));
        }
        hello.push_str(&format!("NICK {nick}\r\n"));
        if let Err(error) = write.write_all(hello.as_bytes()).await {
            return SessionEnd::Failed(error.to_string());
        }
        drop(hello);

        let mut logged_in = false;
        let mut joined: BTreeSet<String> = BTreeSet::new();
        let mut recent_joins: VecDeque<Instant> = VecDeque::new();
        let mut rooms: HashMap<String, BroadcasterId> = HashMap::new();
        let mut last_line = Instant::now();
        let mut pinged = false;
        loop {
            // Channels to join or part now, and when the next JOIN slot opens.
            let mut next_slot = None;
            if logged_in {
                let want = wanted.borrow_and_update().clone();
                let mut out = String::new();
                for channel in joined.difference(&want).cloned().collect::<Vec<_>>() {
                    out.push_str(&format!("PART #{channel}\r\n"));
                    joined.remove(&channel);
                    if rooms.remove(&channel).is_some() {
                        let _ = events.send(ChatEvent::Parted { channel: channel.clone() }).await;
                    }
                    self.counters.channels_joined.fetch_sub(1, Ordering::Relaxed);
                }
                let now = Instant::now();
                while recent_joins.front().is_some_and(|t| now.duration_since(*t) >= self.join_limit.per) {
                    recent_joins.pop_front();
                }
                for channel in want.difference(&joined).cloned().collect::<Vec<_>>() {
                    if recent_joins.len() >= self.join_limit.joins {
                        next_slot = recent_joins.front().map(|t| *t + self.join_limit.per);
                        break;
                    }
                    out.push_str(&format!("JOIN #{channel}\r\n"));
                    recent_joins.push_back(now);
                    joined.insert(channel);
                    self.counters.channels_joined.fetch_add(1, Ordering::Relaxed);
                }
                if !out.is_empty()
                    && let Err(error) = write.write_all(out.as_bytes()).await
                {
                    return SessionEnd::Failed(error.to_string());
                }
            }
            let idle_deadline = last_line + if pinged { IDLE * 2 } else { IDLE };
            tokio::select! {
                line = lines.next_line() => {
                    let line = match line {
                        Ok(Some(line)) => line,
                        Ok(None) => return self.lost(&joined, "the server closed the connection"),
                        Err(error) => return self.lost(&joined, &error.to_string()),
                    };
                    last_line = Instant::now();
                    pinged = false;
                    match self.handle(&line, &joined, &mut rooms, events).await {
                        Handled::Continue => {}
                        Handled::LoggedIn => {
                            logged_in = true;
                            *backoff = Duration::ZERO;
                            let _ = events.send(ChatEvent::Connected(true)).await;
                        }
                        Handled::Reply(reply) => {
                            if let Err(error) = write.write_all(reply.as_bytes()).await {
                                return self.lost(&joined, &error.to_string());
                            }
                        }
                        Handled::Reconnect => {
                            self.forget(&joined);
                            return SessionEnd::Reconnect;
                        }
                        Handled::TokenRefused => {
                            self.forget(&joined);
                            return match pass {
                                Some(token) => SessionEnd::TokenRefused(token),
                                None => SessionEnd::Failed("Twitch refused the anonymous login".into()),
                            };
                        }
                    }
                }
                _ = wanted.changed() => {}
                _ = sleep_until_option(next_slot) => {}
                _ = tokio::time::sleep_until(idle_deadline) => {
                    if pinged {
                        return self.lost(&joined, "no answer to PING");
                    }
                    pinged = true;
                    if let Err(error) = write.write_all(b"PING :tmi.twitch.tv\r\n").await {
                        return self.lost(&joined, &error.to_string());
                    }
                }
                _ = shutdown.changed() => {
                    let _ = write.shutdown().await;
                    self.forget(&joined);
                    return SessionEnd::Shutdown;
                }
            }
        }
    }

    fn forget(&self, joined: &BTreeSet<String>) {
        self.counters.channels_joined.fetch_sub(joined.len() as i64, Ordering::Relaxed);
    }

    fn lost(&self, joined: &BTreeSet<String>, reason: &str) -> SessionEnd {
        self.forget(joined);
        SessionEnd::Failed(reason.to_owned())
    }

    async fn handle(
        &self,
        line: &str,
        joined: &BTreeSet<String>,
        rooms: &mut HashMap<String, BroadcasterId>,
        events: &mpsc::Sender<ChatEvent>,
    ) -> Handled {
        let command = command_of(line);
        match command {
            Some(("PRIVMSG", _)) | None => match parse_line(line) {
                Ok(Some(chat)) => {
                    self.counters.messages_received.fetch_add(1, Ordering::Relaxed);
                    // Waits when the consumer is behind: backpressure onto the socket.
                    let _ = events.send(ChatEvent::Chat(chat)).await;
                    Handled::Continue
                }
                Ok(None) => Handled::Continue,
                Err(error) => {
                    self.counters.malformed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%error, length = line.len(), "skipped a malformed IRC line");
                    Handled::Continue
                }
            },
            Some(("PING", argument)) => Handled::Reply(format!("PONG {argument}\r\n")),
            Some(("001", _)) => Handled::LoggedIn,
            Some(("RECONNECT", _)) => Handled::Reconnect,
            Some(("NOTICE", argument))
                if argument.contains("Login authentication failed")
                    || argument.contains("Improperly formatted auth") =>
            {
                Handled::TokenRefused
            }
            Some(("ROOMSTATE", argument)) => {
                let channel = argument.trim().trim_start_matches('#');
                let room = tag_of(line, "room-id").and_then(|id| id.parse::<BroadcasterId>().ok());
                if let Some(room) = room
                    && joined.contains(channel)
                    && rooms.insert(channel.to_owned(), room).is_none()
                {
                    let _ = events
                        .send(ChatEvent::Joined { channel: channel.to_owned(), broadcaster_id: room })
                        .await;
                }
                Handled::Continue
            }
            Some(_) => Handled::Continue,
        }
    }
}

enum Handled {
    Continue,
    LoggedIn,
    Reply(String),
    Reconnect,
    TokenRefused,
}

async fn sleep_until_option(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The command and the rest after it, skipping tags and prefix; `None` for a line without one.
fn command_of(line: &str) -> Option<(&str, &str)> {
    let mut rest = line.trim_end_matches(['\r', '\n']);
    if rest.starts_with('@') {
        rest = rest.split_once(' ')?.1.trim_start();
    }
    if rest.starts_with(':') {
        rest = rest.split_once(' ')?.1.trim_start();
    }
    let (command, argument) = rest.split_once(' ').unwrap_or((rest, ""));
    (!command.is_empty()).then_some((command, argument))
}

fn tag_of<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let tags = line.strip_prefix('@')?.split_once(' ')?.0;
    tags.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then_some(value)
    })
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
    fn commands_and_tags_are_found_behind_tags_and_prefixes() {
        assert_eq!(command_of("PING :tmi.twitch.tv"), Some(("PING", ":tmi.twitch.tv")));
        assert_eq!(command_of(":tmi.twitch.tv RECONNECT"), Some(("RECONNECT", "")));
        let roomstate = "@room-id=42;slow=0 :tmi.twitch.tv ROOMSTATE #chan";
        assert_eq!(command_of(roomstate), Some(("ROOMSTATE", "#chan")));
        assert_eq!(tag_of(roomstate, "room-id"), Some("42"));
        assert_eq!(command_of("@only-tags"), None);
    }
}
