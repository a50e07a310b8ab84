//! A TCP fault proxy in the manner of Toxiproxy, for chaos tests: it sits between a component and
//! what it talks to (the AWS emulator, PostgreSQL, a fake Twitch) on 127.0.0.1:0 and forwards
//! bytes both ways until told to break the path:
//!
//! - [`Fault::Latency`]: every chunk waits before it is forwarded (a slow network);
//! - [`Fault::Blackhole`]: bytes are swallowed and nothing answers, connections stay open (a
//!   partition: the client sees timeouts, not errors);
//! - [`Fault::Reset`]: open connections are reset (RST) and new ones are reset on arrival (a
//!   crashed peer or a firewall rejecting).
//!
//! A fault applies at once to open connections as well as new ones; [`Fault::Pass`] heals the
//! path for new connections (a reset connection stays closed, as in life).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Pass,
    Latency(Duration),
    Blackhole,
    Reset,
}

/// What went through, for a test's accounting.
#[derive(Debug, Default)]
pub struct ProxyCounters {
    pub connections: AtomicU64,
    pub bytes_forwarded: AtomicU64,
    pub bytes_swallowed: AtomicU64,
    pub resets: AtomicU64,
}

pub struct FaultProxy {
    address: SocketAddr,
    fault: watch::Sender<Fault>,
    counters: Arc<ProxyCounters>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Open connections end with the proxy.
        self.fault.send_replace(Fault::Reset);
    }
}

impl FaultProxy {
    /// A proxy on 127.0.0.1:0 in front of `upstream`, passing everything.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (fault, faults) = watch::channel(Fault::Pass);
        let counters = Arc::new(ProxyCounters::default());
        let accept = {
            let counters = counters.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    counters.connections.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(connection(client, upstream, faults.clone(), counters.clone()));
                }
            })
        };
        Ok(Self { address, fault, counters, accept })
    }

    /// Where components connect instead of the upstream.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }

    pub fn counters(&self) -> &ProxyCounters {
        &self.counters
    }
}

fn reset(stream: &TcpStream, counters: &ProxyCounters) {
    // Closing with a zero linger sends RST instead of FIN.
    let _ = stream.set_zero_linger();
    counters.resets.fetch_add(1, Ordering::Relaxed);
}

async fn connection(
    client: TcpStream,
    upstream: SocketAddr,
    mut faults: watch::Receiver<Fault>,
    counters: Arc<ProxyCounters>,
) {
    let _ = client.set_nodelay(true);
    let fault = *faults.borrow_and_update();
    if fault == Fault::Reset {
        reset(&client, &counters);
        return;
    }
    // In a blackhole the upstream is never reached: swallow what the client sends.
    let server = if fault == Fault::Blackhole {
        None
    } else {
        match TcpStream::connect(upstream).await {
            Ok(server) => Some(server),
            Err(_) => {
                reset(&client, &counters); // as a refused connection looks through a proxy
                return;
            }
        }
    };
    let Some(server) = server else {
        swallow(client, faults, &counters).await;
        return;
    };
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = pump(client_read, server_write, faults.clone(), counters.clone());
    let down = pump(server_read, client_write, faults, counters.clone());
    let _ = tokio::join!(up, down);
}

/// A connection that arrived in a blackhole: read and drop until reset or closed.
async fn swallow(mut client: TcpStream, mut faults: watch::Receiver<Fault>, counters: &ProxyCounters) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            read = client.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => { counters.bytes_swallowed.fetch_add(n as u64, Ordering::Relaxed); }
            },
            changed = faults.changed() => {
                if changed.is_err() || *faults.borrow() == Fault::Reset {
                    reset(&client, counters);
                    return;
                }
            }
        }
    }
}

/// One direction of a connection, obeying the current fault.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut faults: watch::Receiver<Fault>,
    counters: Arc<ProxyCounters>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            changed = faults.changed() => {
                if changed.is_err() || *faults.borrow() == Fault::Reset {
                    reset(to.as_ref(), &counters);
                    reset(from.as_ref(), &counters);
                    return;
                }
                continue;
            }
        };
        let n = match read {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        let fault = *faults.borrow();
        match fault {
            Fault::Pass => {}
            Fault::Latency(delay) => tokio::time::sleep(delay).await,
            Fault::Blackhole => {
                counters.bytes_swallowed.fetch_add(n as u64, Ordering::Relaxed);
                continue;
            }
            Fault::Reset => {
                reset(to.as_ref(), &counters);
                reset(from.as_ref(), &counters);
                return;
            }
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
        counters.bytes_forwarded.fetch_add(n as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on 127.0.0.1:0.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buffer = [0u8; 1024];
                    while let Ok(n) = socket.read(&mut buffer).await {
                        if n == 0 || socket.write_all(&buffer[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        address
    }

    async fn round_trip(stream: &mut TcpStream, text: &[u8]) -> std::io::Result<Vec<u8>> {
        stream.write_all(text).await?;
        let mut answer = vec![0u8; text.len()];
        stream.read_exact(&mut answer).await?;
        Ok(answer)
    }

    #[tokio::test]
    async fn passes_delays_swallows_and_resets_then_heals() {
        let proxy = FaultProxy::start(echo().await).await.unwrap();
        let mut open = TcpStream::connect(proxy.address()).await.unwrap();
        assert_eq!(round_trip(&mut open, b"ping").await.unwrap(), b"ping");

        proxy.set(Fault::Latency(Duration::from_millis(20)));
        assert_eq!(round_trip(&mut open, b"slow").await.unwrap(), b"slow", "late, but whole");

        proxy.set(Fault::Blackhole);
        open.write_all(b"lost").await.unwrap();
        let mut byte = [0u8; 1];
        // Nothing can come back through a blackhole, however long one waits.
        let answer = tokio::time::timeout(Duration::from_millis(300), open.read(&mut byte)).await;
        assert!(answer.is_err(), "no answer through a blackhole: {answer:?}");
        let mut arriving = TcpStream::connect(proxy.address()).await.unwrap();
        arriving.write_all(b"also lost").await.unwrap();

        proxy.set(Fault::Reset);
        let reset_seen = open.read(&mut byte).await;
        assert!(matches!(reset_seen, Ok(0) | Err(_)), "the open connection ends: {reset_seen:?}");
        let refused = TcpStream::connect(proxy.address()).await.unwrap();
        let mut refused = refused;
        assert!(round_trip(&mut refused, b"x").await.is_err(), "a new connection is reset");

        proxy.set(Fault::Pass);
        let mut healed = TcpStream::connect(proxy.address()).await.unwrap();
        assert_eq!(round_trip(&mut healed, b"back").await.unwrap(), b"back");
        let counters = proxy.counters();
        assert!(counters.bytes_swallowed.load(Ordering::Relaxed) >= 4);
        assert!(counters.resets.load(Ordering::Relaxed) >= 2);
        assert_eq!(counters.connections.load(Ordering::Relaxed), 4);
    }

    #[tokio::test]
    async fn an_unreachable_upstream_resets_the_client() {
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let proxy = FaultProxy::start(closed).await.unwrap();
        let mut client = TcpStream::connect(proxy.address()).await.unwrap();
        assert!(round_trip(&mut client, b"x").await.is_err());
    }
}
