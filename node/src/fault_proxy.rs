//! The fault proxy: every ordered peer link i->j of a supervised cluster
//! passes through a listener of its own, so a link can be stalled, severed
//! or slowed without root, iptables or any change to the nodes.
//!
//! Node i's `--cluster` entry for j names the (i,j) listener; its own entry
//! stays its real `--peer` address. Node i dials j through it, so the link
//! carries i's messages to j (and j's handshake reply back). Modes, per
//! ordered link:
//! - `Open`: bytes pass as they come.
//! - `Stall`: nothing is read from either side any more, so TCP
//!   back-pressure builds as on a dead network path; bytes already read are
//!   delivered, in order, once the link opens again. Nothing is dropped
//!   from the middle of a stream.
//! - `Sever`: the link's connections are reset (SO_LINGER 0) and new ones
//!   are reset as soon as they are accepted, until the mode changes.
//! - `Delay`: every chunk is delivered `fixed_ms` plus up to `jitter_ms`
//!   after it was read, in order.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Largest chunk read from a socket at once.
const CHUNK_BYTES_MAX: usize = 64 * 1024;
/// Chunks read but not yet delivered, per direction of a connection: what a
/// stalled or slow link holds before it stops reading.
const CHUNKS_IN_FLIGHT_MAX: usize = 64;
/// A proxied connection to the real peer address must open within this.
const CONNECT_TIMEOUT_MS: u64 = 1_000;

/// What a link does with the bytes it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkMode {
    Open,
    Stall,
    Sever,
    Delay { fixed_ms: u64, jitter_ms: u64 },
}

/// An ordered link: (from, to) node ids.
pub type Link = (u64, u64);

/// The proxy of one cluster: a listener per ordered link, each with its mode.
pub struct FaultProxy {
    links: BTreeMap<Link, ProxiedLink>,
    cancel: CancellationToken,
}

struct ProxiedLink {
    listen_addr: SocketAddr,
    mode: watch::Sender<LinkMode>,
}

impl FaultProxy {
    /// Binds a loopback listener for every ordered pair of `peers` (node id,
    /// real peer address) and starts forwarding, every link open.
    pub async fn start(peers: &[(u64, SocketAddr)]) -> std::io::Result<FaultProxy> {
        let cancel = CancellationToken::new();
        let mut links = BTreeMap::new();
        for &(from, _) in peers {
            for &(to, target) in peers.iter().filter(|(to, _)| *to != from) {
                let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
                let listen_addr = listener.local_addr()?;
                let (mode, modes) = watch::channel(LinkMode::Open);
                tokio::spawn(accept_loop(listener, target, modes, cancel.child_token()));
                links.insert((from, to), ProxiedLink { listen_addr, mode });
            }
        }
        Ok(FaultProxy { links, cancel })
    }

    /// The address node `from` must dial to reach node `to`.
    pub fn listen_addr(&self, (from, to): Link) -> Option<SocketAddr> {
        self.links.get(&(from, to)).map(|link| link.listen_addr)
    }

    /// Node `from`'s `--cluster` value: its own real peer address, and the
    /// proxy listener of (from, j) for every other node j.
    pub fn cluster_arg(&self, from: u64, peers: &[(u64, SocketAddr)]) -> String {
        peers
            .iter()
            .map(|&(id, real)| {
                let addr = if id == from {
                    real
                } else {
                    self.listen_addr((from, id)).unwrap_or(real)
                };
                format!("{id}={addr}")
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn mode(&self, link: Link) -> Option<LinkMode> {
        self.links.get(&link).map(|l| *l.mode.borrow())
    }

    /// Sets one ordered link's mode; false if there is no such link.
    pub fn set(&self, link: Link, mode: LinkMode) -> bool {
        match self.links.get(&link) {
            Some(proxied) => {
                proxied.mode.send_replace(mode);
                true
            }
            None => false,
        }
    }

    /// Every link to and from `node` in `mode` (Sever isolates it).
    pub fn set_node(&self, node: u64, mode: LinkMode) {
        for (&(from, to), proxied) in &self.links {
            if from == node || to == node {
                proxied.mode.send_replace(mode);
            }
        }
    }

    /// Cuts every link to or from a node in `isolated` and opens the others.
    pub fn isolate(&self, isolated: &std::collections::BTreeSet<u64>) {
        for (&(from, to), proxied) in &self.links {
            let mode = if isolated.contains(&from) || isolated.contains(&to) {
                LinkMode::Sever
            } else {
                LinkMode::Open
            };
            proxied.mode.send_replace(mode);
        }
    }

    /// Every link open again.
    pub fn heal(&self) {
        for proxied in self.links.values() {
            proxied.mode.send_replace(LinkMode::Open);
        }
    }

    /// Links not open, with their modes.
    pub fn faults(&self) -> Vec<(Link, LinkMode)> {
        self.links
            .iter()
            .map(|(&link, proxied)| (link, *proxied.mode.borrow()))
            .filter(|(_, mode)| *mode != LinkMode::Open)
            .collect()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    modes: watch::Receiver<LinkMode>,
    cancel: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((inbound, _)) = accepted else { continue };
        if *modes.borrow() == LinkMode::Sever {
            reset(&inbound);
            continue;
        }
        tokio::spawn(forward_connection(
            inbound,
            target,
            modes.clone(),
            cancel.child_token(),
        ));
    }
}

/// Makes closing `stream` a reset instead of an orderly FIN. tokio
/// deprecates SO_LINGER because a positive linger blocks the thread on
/// close; a zero one never waits: the kernel drops the socket at once.
#[allow(deprecated)]
fn reset(stream: &TcpStream) {
    let _ = stream.set_linger(Some(Duration::ZERO));
}

async fn forward_connection(
    inbound: TcpStream,
    target: SocketAddr,
    modes: watch::Receiver<LinkMode>,
    cancel: CancellationToken,
) {
    let connect = tokio::time::timeout(
        Duration::from_millis(CONNECT_TIMEOUT_MS),
        TcpStream::connect(target),
    );
    let Ok(Ok(outbound)) = connect.await else {
        reset(&inbound);
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    // Either direction ending (EOF, error, sever) ends the connection.
    let connection = cancel.child_token();
    let forward = pump(in_read, out_write, modes.clone(), connection.clone());
    let backward = pump(out_read, in_write, modes, connection);
    tokio::join!(forward, backward);
}

/// One direction of a connection: a reader that stops reading while the
/// link is stalled, and a writer that delivers each chunk when its delay is
/// up and the link is not stalled.
async fn pump(
    source: OwnedReadHalf,
    sink: OwnedWriteHalf,
    modes: watch::Receiver<LinkMode>,
    connection: CancellationToken,
) {
    let (chunks, queued) = mpsc::channel(CHUNKS_IN_FLIGHT_MAX);
    tokio::join!(
        read_chunks(source, chunks, modes.clone(), connection.clone()),
        write_chunks(sink, queued, modes, connection),
    );
}

async fn read_chunks(
    mut source: OwnedReadHalf,
    chunks: mpsc::Sender<(Instant, Vec<u8>)>,
    mut modes: watch::Receiver<LinkMode>,
    connection: CancellationToken,
) {
    let mut jitter = Jitter::new(source.as_ref().local_addr().map_or(0, |a| a.port()));
    let mut buffer = vec![0u8; CHUNK_BYTES_MAX];
    loop {
        let Some(mode) = wait_until_flowing(&mut modes, &connection).await else {
            break;
        };
        let read = tokio::select! {
            () = connection.cancelled() => break,
            changed = modes.changed() => {
                if changed.is_err() {
                    break;
                }
                continue;
            }
            read = source.read(&mut buffer) => read,
        };
        let count = match read {
            Ok(0) | Err(_) => break,
            Ok(count) => count,
        };
        let due = Instant::now() + jitter.delay(mode);
        if chunks.send((due, buffer[..count].to_vec())).await.is_err() {
            break;
        }
    }
    if *modes.borrow() == LinkMode::Sever {
        reset(source.as_ref());
        connection.cancel();
    }
    // Dropping `chunks` lets the writer deliver what is queued, then end.
}

async fn write_chunks(
    mut sink: OwnedWriteHalf,
    mut queued: mpsc::Receiver<(Instant, Vec<u8>)>,
    mut modes: watch::Receiver<LinkMode>,
    connection: CancellationToken,
) {
    while let Some((due, chunk)) = queued.recv().await {
        // tokio's timer rounds up to the next millisecond: an open link
        // must not wait for it.
        if due > Instant::now() {
            tokio::select! {
                () = connection.cancelled() => break,
                () = tokio::time::sleep_until(due) => {}
            }
        }
        if wait_until_flowing(&mut modes, &connection).await.is_none() {
            break;
        }
        if sink.write_all(&chunk).await.is_err() {
            break;
        }
    }
    if *modes.borrow() == LinkMode::Sever {
        reset(sink.as_ref());
        connection.cancel();
        return;
    }
    let _ = sink.shutdown().await;
}

/// Waits while the link is stalled; None once it is severed or the
/// connection ends, else the mode bytes now flow under.
async fn wait_until_flowing(
    modes: &mut watch::Receiver<LinkMode>,
    connection: &CancellationToken,
) -> Option<LinkMode> {
    loop {
        let mode = *modes.borrow_and_update();
        match mode {
            LinkMode::Sever => return None,
            LinkMode::Stall => {}
            flowing => return Some(flowing),
        }
        tokio::select! {
            () = connection.cancelled() => return None,
            changed = modes.changed() => changed.ok()?,
        }
    }
}

/// Delay draws for one direction (xorshift: a slow link needs no good
/// randomness, only spread).
struct Jitter(u64);

impl Jitter {
    fn new(seed: u16) -> Jitter {
        Jitter(u64::from(seed) << 17 | 0x9E37_79B9)
    }

    fn delay(&mut self, mode: LinkMode) -> Duration {
        let LinkMode::Delay {
            fixed_ms,
            jitter_ms,
        } = mode
        else {
            return Duration::ZERO;
        };
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let extra_ms = if jitter_ms == 0 {
            0
        } else {
            self.0 % (jitter_ms + 1)
        };
        Duration::from_millis(fixed_ms + extra_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How long a test waits for bytes that must arrive.
    const ARRIVAL_DEADLINE_MS: u64 = 10_000;
    /// How long a test watches for bytes that must not arrive (a stalled or
    /// severed link): absence can only be watched for a while.
    const ABSENCE_WATCH_MS: u64 = 300;

    /// A peer that echoes every byte back.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut read, mut write) = stream.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        addr
    }

    async fn proxied_pair() -> (FaultProxy, TcpStream) {
        let echo = echo_server().await;
        let unused = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peers = [(1, unused.local_addr().unwrap()), (2, echo)];
        let proxy = FaultProxy::start(&peers).await.unwrap();
        let stream = TcpStream::connect(proxy.listen_addr((1, 2)).unwrap())
            .await
            .unwrap();
        (proxy, stream)
    }

    async fn read_exactly(stream: &mut TcpStream, count: usize) -> Vec<u8> {
        let mut buffer = vec![0u8; count];
        tokio::time::timeout(
            Duration::from_millis(ARRIVAL_DEADLINE_MS),
            stream.read_exact(&mut buffer),
        )
        .await
        .expect("bytes arrive before the deadline")
        .expect("read");
        buffer
    }

    async fn nothing_arrives(stream: &mut TcpStream) -> bool {
        let mut byte = [0u8; 1];
        tokio::time::timeout(
            Duration::from_millis(ABSENCE_WATCH_MS),
            stream.read(&mut byte),
        )
        .await
        .is_err()
    }

    /// Asserts that `stream` (named `what`) is closed or reset before the
    /// arrival deadline.
    async fn assert_ends(stream: &mut TcpStream, what: &str) {
        let mut byte = [0u8; 1];
        let ended = tokio::time::timeout(
            Duration::from_millis(ARRIVAL_DEADLINE_MS),
            stream.read(&mut byte),
        )
        .await
        .unwrap_or_else(|_| panic!("{what} ends before the deadline"));
        assert!(matches!(ended, Ok(0) | Err(_)), "{what}: {ended:?}");
    }

    #[tokio::test]
    async fn an_open_link_carries_bytes_both_ways() {
        let (_proxy, mut stream) = proxied_pair().await;
        stream.write_all(b"hello").await.unwrap();
        assert_eq!(read_exactly(&mut stream, 5).await, b"hello");
    }

    #[tokio::test]
    async fn a_stalled_link_holds_bytes_and_delivers_them_in_order_once_healed() {
        let (proxy, mut stream) = proxied_pair().await;
        stream.write_all(b"a").await.unwrap();
        assert_eq!(read_exactly(&mut stream, 1).await, b"a");
        assert!(proxy.set((1, 2), LinkMode::Stall));
        stream.write_all(b"bcd").await.unwrap();
        assert!(
            nothing_arrives(&mut stream).await,
            "a stalled link passed bytes"
        );
        stream.write_all(b"ef").await.unwrap();
        proxy.heal();
        assert_eq!(read_exactly(&mut stream, 5).await, b"bcdef");
        assert!(proxy.faults().is_empty());
    }

    #[tokio::test]
    async fn a_severed_link_resets_its_connections_and_refuses_new_ones_until_healed() {
        let (proxy, mut stream) = proxied_pair().await;
        proxy.set_node(2, LinkMode::Sever);
        assert_ends(&mut stream, "the connection").await;
        let addr = proxy.listen_addr((1, 2)).unwrap();
        let mut again = TcpStream::connect(addr).await.unwrap();
        let _ = again.write_all(b"x").await;
        assert_ends(&mut again, "a new connection").await;
        proxy.heal();
        let mut healed = TcpStream::connect(addr).await.unwrap();
        healed.write_all(b"ok").await.unwrap();
        assert_eq!(read_exactly(&mut healed, 2).await, b"ok");
    }

    #[tokio::test]
    async fn a_slow_link_delivers_in_order_no_sooner_than_its_delay() {
        let (proxy, mut stream) = proxied_pair().await;
        proxy.set(
            (1, 2),
            LinkMode::Delay {
                fixed_ms: 40,
                jitter_ms: 20,
            },
        );
        let started = std::time::Instant::now();
        for byte in b"0123456789" {
            stream.write_all(&[*byte]).await.unwrap();
        }
        assert_eq!(read_exactly(&mut stream, 10).await, b"0123456789");
        assert!(
            started.elapsed() >= Duration::from_millis(40),
            "delivered after {:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn each_node_dials_its_peers_through_its_own_listeners() {
        let peers: Vec<(u64, SocketAddr)> = (1..=3)
            .map(|id| (id, format!("127.0.0.1:{}", 7100 + id).parse().unwrap()))
            .collect();
        let proxy = FaultProxy::start(&peers).await.unwrap();
        let arg = proxy.cluster_arg(1, &peers);
        let entries: Vec<&str> = arg.split(',').collect();
        assert_eq!(
            entries[0], "1=127.0.0.1:7101",
            "own entry is the real address"
        );
        for (entry, to) in entries[1..].iter().zip([2, 3]) {
            let addr = proxy.listen_addr((1, to)).unwrap();
            assert_eq!(*entry, format!("{to}={addr}"));
        }
        assert_ne!(proxy.listen_addr((1, 2)), proxy.listen_addr((3, 2)));
    }
}
