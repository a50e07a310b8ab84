//! A fake Twitch IRC server on 127.0.0.1:0 (plain TCP): CAP negotiation, the welcome numerics,
//! JOIN and PART with ROOMSTATE (carrying `room-id`), PING/PONG in both directions, and
//! test-driven lines: chat, malformed lines, RECONNECT, dropped connections, JOINs left
//! unanswered.
//!
//! Channels are known to the server as `login -> room id`; a JOIN of an unknown channel is
//! answered without ROOMSTATE, as Twitch does for a channel that does not exist.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};

#[derive(Default)]
struct Inner {
    rooms: HashMap<String, u64>,
    /// One entry per open connection: its writer and joined channels.
    connections: Vec<Connection>,
    /// Every JOIN and PART received, in order (`JOIN #a`, `PART #a`), over all connections.
    commands: Vec<String>,
    accepted: usize,
    /// Lines the clients sent, for assertions about the handshake.
    received: Vec<String>,
    /// When set, only `PASS oauth:<this>` logs in; anything else gets Twitch's refusal.
    required_token: Option<String>,
    /// Channels whose next JOINs go unanswered (as Twitch does with JOINs past its rate limit).
    unanswered_joins: HashMap<String, usize>,
}

struct Connection {
    id: usize,
    writer: mpsc::UnboundedSender<Option<String>>,
    joined: BTreeSet<String>,
}

#[derive(Clone)]
pub struct FakeIrc {
    address: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    changed: Arc<Notify>,
}

impl FakeIrc {
    /// Starts the server; `rooms` maps channel logins to their room ids.
    pub async fn start(rooms: &[(&str, u64)]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let address = listener.local_addr().expect("local address");
        let inner = Arc::new(Mutex::new(Inner {
            rooms: rooms.iter().map(|(login, id)| ((*login).to_owned(), *id)).collect(),
            ..Inner::default()
        }));
        let server = Self { address, inner, changed: Arc::new(Notify::new()) };
        let accepting = server.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let connection = accepting.clone();
                tokio::spawn(async move { connection.serve(socket).await });
            }
        });
        server
    }

    /// `tcp://127.0.0.1:port`, the form `TWITCH_IRC_ADDR` takes for a plain-TCP server.
    pub fn url(&self) -> String {
        format!("tcp://{}", self.address)
    }

    async fn serve(self, socket: tokio::net::TcpStream) {
        let (read, mut write) = socket.into_split();
        let (writer, mut outgoing) = mpsc::unbounded_channel::<Option<String>>();
        let id = {
            let mut inner = self.lock();
            inner.accepted += 1;
            let id = inner.accepted;
            inner.connections.push(Connection { id, writer: writer.clone(), joined: BTreeSet::new() });
            id
        };
        self.changed.notify_waiters();
        tokio::spawn(async move {
            // `None` closes the connection (a dropped connection, as seen by the client).
            while let Some(Some(line)) = outgoing.recv().await {
                if write.write_all(line.as_bytes()).await.is_err() || write.write_all(b"\r\n").await.is_err()
                {
                    break;
                }
            }
            let _ = write.shutdown().await;
        });
        let mut lines = BufReader::new(read).lines();
        let mut nick = String::from("justinfan");
        let mut pass: Option<String> = None;
        while let Ok(Some(line)) = lines.next_line().await {
            self.lock().received.push(line.clone());
            let (command, argument) = line.split_once(' ').unwrap_or((line.as_str(), ""));
            let reply = |text: String| {
                let _ = writer.send(Some(text));
            };
            match command {
                "CAP" => reply(format!(":tmi.twitch.tv CAP * ACK :{}", argument.trim_start_matches("REQ :"))),
                "PASS" => pass = Some(argument.to_owned()),
                "NICK" => {
                    nick = argument.to_owned();
                    let required = self.lock().required_token.clone();
                    if let Some(token) = required
                        && pass.as_deref() != Some(format!("oauth:{token}").as_str())
                    {
                        // Twitch closes the connection after this: nothing sent after it counts.
                        reply(":tmi.twitch.tv NOTICE * :Login authentication failed".to_owned());
                        let _ = writer.send(None);
                        break;
                    }
                    for (code, text) in [("001", "Welcome, GLHF!"), ("375", "-"), ("376", ">")] {
                        reply(format!(":tmi.twitch.tv {code} {nick} :{text}"));
                    }
                }
                "PING" => reply(format!(":tmi.twitch.tv PONG tmi.twitch.tv {argument}")),
                "JOIN" | "PART" => {
                    for channel in argument.split(',').map(|c| c.trim_start_matches('#').to_owned()) {
                        let room = {
                            let mut inner = self.lock();
                            inner.commands.push(format!("{command} #{channel}"));
                            if command == "JOIN"
                                && let Some(left) = inner.unanswered_joins.get_mut(&channel)
                                && *left > 0
                            {
                                *left -= 1;
                                drop(inner);
                                self.changed.notify_waiters();
                                continue;
                            }
                            let room = inner.rooms.get(&channel).copied();
                            if let Some(connection) = inner.connections.iter_mut().find(|c| c.id == id) {
                                if command == "JOIN" {
                                    connection.joined.insert(channel.clone());
                                } else {
                                    connection.joined.remove(&channel);
                                }
                            }
                            room
                        };
                        reply(format!(":{nick}!{nick}@{nick}.tmi.twitch.tv {command} #{channel}"));
                        if let (Some(room), "JOIN") = (room, command) {
                            reply(format!(
                                "@emote-only=0;followers-only=-1;r9k=0;room-id={room};slow=0;subs-only=0 \
                                 :tmi.twitch.tv ROOMSTATE #{channel}"
                            ));
                        }
                        self.changed.notify_waiters();
                    }
                }
                _ => {}
            }
        }
        self.lock().connections.retain(|c| c.id != id);
        self.changed.notify_waiters();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// From now on only clients logging in with `PASS oauth:<token>` are let in.
    pub fn require_token(&self, token: &str) {
        self.lock().required_token = Some(token.to_owned());
    }

    /// Leaves the next `count` JOINs of `channel` unanswered and not joined.
    pub fn leave_joins_unanswered(&self, channel: &str, count: usize) {
        self.lock().unanswered_joins.insert(channel.to_owned(), count);
    }

    /// Sends a raw line to every client that joined `#channel` (or to all, for `None`); returns
    /// how many connections it went to (0: nobody was there to receive it, as on Twitch).
    pub fn send_raw(&self, channel: Option<&str>, line: &str) -> usize {
        let mut sent = 0;
        for connection in &self.lock().connections {
            if channel.is_none_or(|c| connection.joined.contains(c))
                && connection.writer.send(Some(line.to_owned())).is_ok()
            {
                sent += 1;
            }
        }
        sent
    }

    /// A chat message as Twitch sends it, with the tags the ingester reads.
    pub fn chat_line(
        channel: &str,
        room_id: u64,
        user: (&str, u64),
        sent_at_ms: i64,
        id: &str,
        text: &str,
    ) -> String {
        let (login, user_id) = user;
        format!(
            "@badge-info=;badges=;color=#1E90FF;display-name={login};emotes=;first-msg=0;flags=;id={id};mod=0;\
             returning-chatter=0;room-id={room_id};subscriber=0;tmi-sent-ts={sent_at_ms};turbo=0;\
             user-id={user_id};user-type= :{login}!{login}@{login}.tmi.twitch.tv PRIVMSG #{channel} :{text}"
        )
    }

    /// Twitch's RECONNECT notice to every client.
    pub fn send_reconnect(&self) {
        self.send_raw(None, ":tmi.twitch.tv RECONNECT");
    }

    /// Closes every open connection from the server's side.
    pub fn drop_connections(&self) {
        for connection in &self.lock().connections {
            let _ = connection.writer.send(None);
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.lock().accepted
    }

    /// Every JOIN and PART received, in order.
    pub fn commands(&self) -> Vec<String> {
        self.lock().commands.clone()
    }

    /// Every line the clients sent.
    pub fn received(&self) -> Vec<String> {
        self.lock().received.clone()
    }

    /// Waits (up to `deadline`) until every one of `channels` is joined by some open connection
    /// (a client with many channels spreads them over several connections).
    pub async fn wait_joined_anywhere(&self, channels: &[&str], deadline: Duration) -> bool {
        let result = tokio::time::timeout(deadline, async {
            loop {
                let notified = self.changed.notified();
                {
                    let world = self.lock();
                    let joined = |c: &&str| world.connections.iter().any(|k| k.joined.contains(*c));
                    if channels.iter().all(joined) {
                        return;
                    }
                }
                notified.await;
            }
        })
        .await;
        result.is_ok()
    }

    /// Waits (up to `deadline`) until some open connection has joined exactly `channels`.
    pub async fn wait_joined(&self, channels: &[&str], deadline: Duration) -> bool {
        let want: BTreeSet<String> = channels.iter().map(|c| (*c).to_owned()).collect();
        let result = tokio::time::timeout(deadline, async {
            loop {
                let notified = self.changed.notified();
                if self.lock().connections.iter().any(|c| c.joined == want) {
                    return;
                }
                notified.await;
            }
        })
        .await;
        result.is_ok()
    }
}
