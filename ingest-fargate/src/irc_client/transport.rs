//! The connection twitch-irc runs the protocol over ([`ChatTransport`]), and the process-wide
//! slot it finds its server in. It reads the socket line by line, sends chat straight to the
//! event queue (waiting while it is full: TCP backpressure), counts and skips malformed lines,
//! and passes every other line to twitch-irc. It never logs a line's content.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use bytes::BytesMut;
use either::Either;
use futures::stream::{FusedStream, Stream};
use highlights_core::irc::{IrcChat, parse_line};
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::{Decoder, Encoder, FramedRead, FramedWrite};
use tokio_util::sync::PollSender;
use twitch_irc::message::{AsRawIRC, IRCMessage, IRCParseError};
use twitch_irc::transport::Transport;

use super::login::is_login_refusal;
use super::{ChatEvent, IrcAddress};
use crate::metrics::Counters;

/// Held by the running [`super::ChatClient`]: the server slot has room for one.
pub(super) static ACTIVE_CLIENT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

static SERVER: RwLock<Option<Arc<ChatServer>>> = RwLock::new(None);

pub(super) struct ChatServer {
    address: IrcAddress,
    counters: Arc<Counters>,
    /// Where the transport puts the chat it reads.
    chat: mpsc::Sender<ChatEvent>,
    /// Twitch refused the login (its NOTICE comes before it closes the connection); the next
    /// login refreshes the token first.
    pub(super) login_refused: AtomicBool,
    /// Connections past Twitch's welcome (001): readiness.
    pub(super) welcomed: AtomicUsize,
    /// The client is stopping: connections closing now are not lost ones.
    pub(super) closing: AtomicBool,
}

impl ChatServer {
    pub(super) fn new(
        address: IrcAddress,
        counters: Arc<Counters>,
        chat: mpsc::Sender<ChatEvent>,
    ) -> Arc<Self> {
        Arc::new(Self {
            address,
            counters,
            chat,
            login_refused: AtomicBool::new(false),
            welcomed: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
        })
    }
}

/// Makes `server` the one every new connection goes to.
pub(super) fn install_server(server: &Arc<ChatServer>) {
    *SERVER.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(server.clone());
}

/// No server: a connection attempted from now on fails (the client has stopped).
pub(super) fn uninstall_server() {
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

#[cfg(test)]
mod tests {
    use super::*;

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
