//! Peer transport: TCP links between raftkv nodes carrying Raft messages.
//!
//! Each node dials every other member and uses that outbound connection only
//! to send; connections other members dial in are accepted and only read.
//! So between two nodes there are two TCP connections, one per direction.
//! This keeps both sides symmetric (no tie-breaking on who dials whom) and a
//! slow reader on one side can never hold up the other direction.
//!
//! Every connection opens with a handshake (see `handshake`): magic,
//! protocol version, cluster id, node id and the node's advertised client
//! address, which is how a follower learns the leader's RESP address for
//! `-MOVED`. After it, each frame (tokio-util `LengthDelimitedCodec`, 4-byte
//! big-endian length, at most `frame_bytes_max`) carries one postcard-encoded
//! `raftkv::message::Message`. A frame that is oversized or does not decode
//! closes that one connection with a logged reason.
//!
//! Sending never blocks the caller: `send` puts the message on the peer's
//! bounded queue (`send_queue_max` messages) and drops it, counting the drop,
//! when the queue is full or the peer is down. Raft tolerates loss. One task
//! per peer drains the queue, writes everything queued as one batch and
//! flushes once, and redials with capped exponential backoff when the link
//! breaks.
//!
//! Readers hand messages to the driver's bounded `inbound` channel and wait
//! when it is full (counted in `inbound_full_waits`); TCP flow control then
//! slows the sending node, whose own bounded queue fills and drops. The
//! driver is never blocked by the transport.
//!
//! Link events: `Inbound::PeerUp` when an outbound link completes its
//! handshake, `Inbound::PeerDown` when an up link breaks, or when the first
//! dial to a peer that was never up fails. A peer that stays down is not
//! reported again on every retry.

mod acceptor;
mod dialer;
mod handshake;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use parking_lot::{Mutex, RwLock};
use raftkv::message::Message;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::log_events;
use crate::options::PeerAddr;
use handshake::{HandshakeError, Hello, HELLO_BYTES_MAX};

/// First redial delay after a failure; doubled up to `reconnect_backoff_max_ms`.
pub const RECONNECT_BACKOFF_INITIAL_MS: u64 = 20;
/// Longest a TCP connect may take before the dial counts as failed.
pub const CONNECT_TIMEOUT_MS: u64 = 1_000;
/// Longest either side waits for the other's Hello.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 2_000;
/// Longest one batch may take to write and flush before the link is declared
/// stalled and redialed (a stopped peer process keeps its socket open).
pub const WRITE_STALL_TIMEOUT_MS: u64 = 5_000;
/// Most messages written between two flushes.
pub const BATCH_MESSAGES_MAX: usize = 1_024;
/// Most accepted connections still in their handshake at once; more are
/// closed at once, so strangers cannot pile up tasks.
pub const HANDSHAKES_PENDING_MAX: usize = 64;
/// Largest `send_queue_max` accepted (messages per peer).
pub const SEND_QUEUE_MAX_LIMIT: usize = 1 << 20;

const _: () = assert!(RECONNECT_BACKOFF_INITIAL_MS > 0);
const _: () = assert!(HELLO_BYTES_MAX < u32::MAX as usize);

/// Everything a transport needs to know.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// This node's id; must appear in `peers`.
    pub id: u64,
    /// Address the peer listener binds.
    pub listen: SocketAddr,
    /// Every member, including this node.
    pub peers: Vec<PeerAddr>,
    /// Checked in the handshake: nodes of different clusters never link.
    pub cluster_id: String,
    /// This node's incarnation, announced in the handshake; every message
    /// a peer sends on a link must carry the one its Hello announced.
    pub incarnation: u64,
    /// This node's RESP address, advertised in the handshake.
    pub client_addr: String,
    /// Largest frame sent or accepted (one encoded message), e.g. 64 MiB.
    pub frame_bytes_max: usize,
    /// Messages queued per peer before `send` starts dropping.
    pub send_queue_max: usize,
    /// Cap of the exponential redial backoff, e.g. 500 ms.
    pub reconnect_backoff_max_ms: u64,
}

/// What the transport hands the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inbound {
    /// A message from a peer (its `from` is the handshaked peer id).
    Message(Message),
    /// The outbound link to `id` completed its handshake; the peer is the
    /// life `incarnation` of that node id.
    PeerUp {
        id: u64,
        incarnation: u64,
        client_addr: String,
    },
    /// The outbound link to `id` broke or could not be opened.
    /// `reason` is short: "connection refused", "reset by peer", "eof", ...
    PeerDown { id: u64, reason: String },
}

/// Counters since start. Drops are per reason; `dropped_total` sums them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Messages written and flushed to a peer socket.
    pub messages_sent: u64,
    /// Messages read from peers and handed to the driver.
    pub messages_received: u64,
    /// `send` found the peer's queue full.
    pub dropped_queue_full: u64,
    /// `send` found the peer down (or the transport stopped).
    pub dropped_peer_down: u64,
    /// `send` was given a recipient that is not another member.
    pub dropped_unknown_peer: u64,
    /// The message encoded larger than `frame_bytes_max`.
    pub dropped_oversized: u64,
    /// Queued when its link broke, so never written.
    pub dropped_link_failed: u64,
    /// Inbound connections refused in the handshake (garbage included).
    pub handshakes_rejected: u64,
    /// Inbound links closed for an oversized or undecodable frame.
    pub links_closed_bad_frame: u64,
    /// Times a reader found the driver's inbound channel full and waited.
    pub inbound_full_waits: u64,
    /// One entry per other member, by id.
    pub peers: Vec<PeerLinkStats>,
}

impl TransportStats {
    pub fn dropped_total(&self) -> u64 {
        self.dropped_queue_full
            + self.dropped_peer_down
            + self.dropped_unknown_peer
            + self.dropped_oversized
            + self.dropped_link_failed
    }
}

/// The state of the link to one peer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerLinkStats {
    pub id: u64,
    /// The outbound link is handshaked and writable.
    pub connected: bool,
    /// Advertised in the peer's last handshake.
    pub client_addr: Option<String>,
    /// Waiting in the send queue now (at most `send_queue_max`).
    pub queued_messages: usize,
    pub messages_sent: u64,
    /// Messages to this peer dropped for any reason.
    pub messages_dropped: u64,
    /// Successful handshakes on the outbound link.
    pub connects: u64,
}

/// A running transport. Cheap to clone; every clone drives the same links.
#[derive(Clone)]
pub struct Transport {
    shared: Arc<Shared>,
    tasks: TaskTracker,
    local_addr: SocketAddr,
    /// Where the dialers of links added later report.
    inbound: mpsc::Sender<Inbound>,
    shutdown: CancellationToken,
}

/// State shared by the transport handle and its tasks.
struct Shared {
    id: u64,
    cluster_id: String,
    incarnation: u64,
    client_addr: String,
    /// Ids whose handshakes are accepted (this node's included); None:
    /// any id of this cluster (a node joining a cluster does not know the
    /// members yet).
    member_ids: RwLock<Option<Vec<u64>>>,
    frame_bytes_max: usize,
    send_queue_max: usize,
    reconnect_backoff_max_ms: u64,
    /// One outbound link per peer; the set follows the configuration
    /// (`Transport::set_peers`).
    links: RwLock<BTreeMap<u64, Arc<PeerLink>>>,
    counters: Counters,
    /// Per peer id, the token of its newest inbound connection: a newer
    /// handshake from the same id cancels the older connection, so a peer
    /// that redials never leaves stale readers behind.
    inbound_links: Mutex<HashMap<u64, CancellationToken>>,
}

/// The sending side of one peer's link.
struct PeerLink {
    peer_addr: SocketAddr,
    /// Cancelled when the link is removed (the peer left the
    /// configuration or moved to another address): its dialer ends.
    stop: CancellationToken,
    queue: mpsc::Sender<Message>,
    connected: AtomicBool,
    client_addr: Mutex<Option<String>>,
    messages_sent: AtomicU64,
    messages_dropped: AtomicU64,
    connects: AtomicU64,
    /// Woken when this peer dials us: it is back, so our outbound link to
    /// it skips the rest of its backoff (a restarted node catches up sooner).
    redial_now: tokio::sync::Notify,
}

#[derive(Default)]
struct Counters {
    messages_sent: AtomicU64,
    messages_received: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_peer_down: AtomicU64,
    dropped_unknown_peer: AtomicU64,
    dropped_oversized: AtomicU64,
    dropped_link_failed: AtomicU64,
    handshakes_rejected: AtomicU64,
    links_closed_bad_frame: AtomicU64,
    inbound_full_waits: AtomicU64,
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// A peer connection carrying length-delimited frames.
type Link = Framed<TcpStream, LengthDelimitedCodec>;

/// Runs one side of the handshake (`side`) on a fresh connection within
/// `HANDSHAKE_TIMEOUT_MS`. Until it succeeds frames are bounded by
/// `HELLO_BYTES_MAX`, so an unauthenticated peer cannot make us buffer more;
/// the link it returns takes frames up to `frame_bytes_max`.
async fn run_handshake(
    shared: &Shared,
    stream: TcpStream,
    side: impl AsyncFnOnce(&mut Link) -> Result<Hello, LinkError>,
) -> Result<(Link, Hello), LinkError> {
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(HELLO_BYTES_MAX)
        .new_codec();
    let mut framed = Framed::new(stream, codec);
    let hello = tokio::time::timeout(
        std::time::Duration::from_millis(HANDSHAKE_TIMEOUT_MS),
        side(&mut framed),
    )
    .await
    .map_err(|_| LinkError::Timeout {
        ms: HANDSHAKE_TIMEOUT_MS,
        stage: "handshake",
    })??;
    framed
        .codec_mut()
        .set_max_frame_length(shared.frame_bytes_max);
    Ok((framed, hello))
}

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl Transport {
    /// Binds the listener and starts dialing every other peer. Inbound
    /// messages and link events go to `inbound`. Everything stops when
    /// `shutdown` is cancelled (see `stopped`).
    pub async fn start(
        config: TransportConfig,
        inbound: mpsc::Sender<Inbound>,
        shutdown: CancellationToken,
    ) -> io::Result<Transport> {
        validate(&config)?;
        let listener = TcpListener::bind(config.listen).await.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "node {}: cannot bind peer listener {}: {e}",
                    config.id, config.listen
                ),
            )
        })?;
        Self::start_with_listener(config, listener, inbound, shutdown).await
    }

    /// Like `start`, with a listener the caller already bound (tests bind
    /// every node's `127.0.0.1:0` first to learn the ports). `config.listen`
    /// is ignored.
    pub async fn start_with_listener(
        config: TransportConfig,
        listener: TcpListener,
        inbound: mpsc::Sender<Inbound>,
        shutdown: CancellationToken,
    ) -> io::Result<Transport> {
        validate(&config)?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            id: config.id,
            cluster_id: config.cluster_id.clone(),
            incarnation: config.incarnation,
            client_addr: config.client_addr.clone(),
            member_ids: RwLock::new(Some(config.peers.iter().map(|p| p.id).collect())),
            frame_bytes_max: config.frame_bytes_max,
            send_queue_max: config.send_queue_max,
            reconnect_backoff_max_ms: config.reconnect_backoff_max_ms,
            links: RwLock::new(BTreeMap::new()),
            counters: Counters::default(),
            inbound_links: Mutex::new(HashMap::new()),
        });
        tracing::info!(event = log_events::TRANSPORT_LISTENING, id = config.id, addr = %local_addr);
        let tasks = TaskTracker::new();
        tasks.spawn(acceptor::run_listener(
            shared.clone(),
            listener,
            inbound.clone(),
            shutdown.clone(),
            tasks.clone(),
        ));
        // Closed so that `stopped` resolves once every task has ended;
        // links added later are still tracked.
        tasks.close();
        let transport = Transport {
            shared,
            tasks,
            local_addr,
            inbound,
            shutdown,
        };
        for peer in config.peers.iter().filter(|p| p.id != config.id) {
            transport.add_link(&mut transport.shared.links.write(), peer.id, peer.peer_addr);
        }
        Ok(transport)
    }

    /// Makes the outbound links those of `peers`: a link is opened to every
    /// listed peer with an address not linked yet (or linked at another
    /// address), kept for a listed peer without an address (a member that
    /// left the newest configuration but still counts until the change
    /// commits), and closed for every peer not listed. Handshakes are then
    /// accepted from the listed ids, or from any id of this cluster when
    /// `accept_any_member` (a node joining a cluster before it knows the
    /// members).
    pub fn set_peers(&self, peers: &[(u64, Option<SocketAddr>)], accept_any_member: bool) {
        let own = self.shared.id;
        let mut links = self.shared.links.write();
        let listed = |id: u64| peers.iter().any(|&(peer, _)| peer == id);
        let gone: Vec<u64> = links.keys().copied().filter(|&id| !listed(id)).collect();
        for id in gone {
            if let Some(link) = links.remove(&id) {
                link.stop.cancel();
                tracing::info!(event = log_events::PEER_LINK_REMOVED, peer = id, addr = %link.peer_addr);
            }
        }
        for &(id, addr) in peers {
            let Some(addr) = addr else { continue };
            if id == own || links.get(&id).is_some_and(|link| link.peer_addr == addr) {
                continue;
            }
            if let Some(old) = links.remove(&id) {
                old.stop.cancel();
            }
            self.add_link(&mut links, id, addr);
            tracing::info!(event = log_events::PEER_LINK_ADDED, peer = id, addr = %addr);
        }
        let mut ids: Vec<u64> = peers.iter().map(|&(id, _)| id).collect();
        ids.push(own);
        *self.shared.member_ids.write() = (!accept_any_member).then_some(ids);
    }

    /// Opens the outbound link to `id` at `addr` (not linked yet).
    fn add_link(&self, links: &mut BTreeMap<u64, Arc<PeerLink>>, id: u64, addr: SocketAddr) {
        let (sender, receiver) = mpsc::channel(self.shared.send_queue_max);
        let link = Arc::new(PeerLink::new(addr, sender, self.shutdown.child_token()));
        links.insert(id, link.clone());
        self.tasks.spawn(dialer::run_peer_link(
            self.shared.clone(),
            id,
            link,
            receiver,
            self.inbound.clone(),
        ));
    }

    /// The peers with an outbound link, in id order.
    pub fn linked_peers(&self) -> Vec<u64> {
        self.shared.links.read().keys().copied().collect()
    }

    /// Never blocks: enqueues to the peer's bounded queue; drops (and counts)
    /// when it is full, the peer is down, or `to` is not another member.
    pub fn send(&self, message: Message) {
        let counters = &self.shared.counters;
        let links = self.shared.links.read();
        let Some(link) = links.get(&message.to) else {
            bump(&counters.dropped_unknown_peer, 1);
            tracing::debug!(
                event = log_events::MESSAGE_DROPPED,
                to = message.to,
                reason = "unknown peer"
            );
            return;
        };
        if !link.connected.load(Ordering::Acquire) {
            bump(&counters.dropped_peer_down, 1);
            bump(&link.messages_dropped, 1);
            return;
        }
        match link.queue.try_send(message) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                bump(&counters.dropped_queue_full, 1);
                bump(&link.messages_dropped, 1);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                bump(&counters.dropped_peer_down, 1);
                bump(&link.messages_dropped, 1);
            }
        }
    }

    /// Client address a peer advertised in its handshake, if it connected
    /// once; this node's own address for its own id.
    pub fn peer_client_addr(&self, id: u64) -> Option<String> {
        if id == self.shared.id {
            return Some(self.shared.client_addr.clone());
        }
        self.shared
            .links
            .read()
            .get(&id)?
            .client_addr
            .lock()
            .clone()
    }

    /// Whether the outbound link to `id` is up right now.
    pub fn is_connected(&self, id: u64) -> bool {
        self.shared
            .links
            .read()
            .get(&id)
            .is_some_and(|link| link.connected.load(Ordering::Acquire))
    }

    /// The address the peer listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn stats(&self) -> TransportStats {
        let c = &self.shared.counters;
        TransportStats {
            messages_sent: read(&c.messages_sent),
            messages_received: read(&c.messages_received),
            dropped_queue_full: read(&c.dropped_queue_full),
            dropped_peer_down: read(&c.dropped_peer_down),
            dropped_unknown_peer: read(&c.dropped_unknown_peer),
            dropped_oversized: read(&c.dropped_oversized),
            dropped_link_failed: read(&c.dropped_link_failed),
            handshakes_rejected: read(&c.handshakes_rejected),
            links_closed_bad_frame: read(&c.links_closed_bad_frame),
            inbound_full_waits: read(&c.inbound_full_waits),
            peers: self
                .shared
                .links
                .read()
                .iter()
                .map(|(id, link)| link.stats(*id))
                .collect(),
        }
    }

    /// Resolves once every transport task has ended (after `shutdown` was
    /// cancelled): the listener is closed and its port free again.
    pub async fn stopped(&self) {
        self.tasks.wait().await;
    }
}

impl PeerLink {
    fn new(peer_addr: SocketAddr, queue: mpsc::Sender<Message>, stop: CancellationToken) -> Self {
        PeerLink {
            peer_addr,
            stop,
            queue,
            connected: AtomicBool::new(false),
            client_addr: Mutex::new(None),
            messages_sent: AtomicU64::new(0),
            messages_dropped: AtomicU64::new(0),
            connects: AtomicU64::new(0),
            redial_now: tokio::sync::Notify::new(),
        }
    }

    fn stats(&self, id: u64) -> PeerLinkStats {
        PeerLinkStats {
            id,
            connected: self.connected.load(Ordering::Acquire),
            client_addr: self.client_addr.lock().clone(),
            queued_messages: self.queue.max_capacity() - self.queue.capacity(),
            messages_sent: read(&self.messages_sent),
            messages_dropped: read(&self.messages_dropped),
            connects: read(&self.connects),
        }
    }
}

impl Shared {
    fn hello(&self) -> Hello {
        Hello::new(
            &self.cluster_id,
            self.id,
            self.incarnation,
            &self.client_addr,
        )
    }

    fn rules(&self) -> handshake::HandshakeRules<'_> {
        handshake::HandshakeRules {
            cluster_id: &self.cluster_id,
            self_id: self.id,
            member_ids: self.member_ids.read().clone(),
        }
    }
}

/// Refuses a configuration the transport cannot run with, saying which field.
fn validate(config: &TransportConfig) -> io::Result<()> {
    let invalid = |what: String| {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("node {}: transport config: {what}", config.id),
        ))
    };
    if !config.peers.iter().any(|p| p.id == config.id) {
        return invalid(format!("own id {} is not in the peer list", config.id));
    }
    let mut ids: Vec<u64> = config.peers.iter().map(|p| p.id).collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) || ids.contains(&0) {
        return invalid("peer ids must be distinct and non-zero".into());
    }
    if config.frame_bytes_max == 0 || config.frame_bytes_max > u32::MAX as usize {
        return invalid(format!(
            "frame_bytes_max {} must be between 1 and {}",
            config.frame_bytes_max,
            u32::MAX
        ));
    }
    if config.send_queue_max == 0 || config.send_queue_max > SEND_QUEUE_MAX_LIMIT {
        return invalid(format!(
            "send_queue_max {} must be between 1 and {SEND_QUEUE_MAX_LIMIT}",
            config.send_queue_max
        ));
    }
    if config.reconnect_backoff_max_ms < RECONNECT_BACKOFF_INITIAL_MS {
        return invalid(format!(
            "reconnect_backoff_max_ms {} is below the first retry delay {RECONNECT_BACKOFF_INITIAL_MS}",
            config.reconnect_backoff_max_ms
        ));
    }
    let hello_bytes = Hello::new(
        &config.cluster_id,
        config.id,
        config.incarnation,
        &config.client_addr,
    )
    .encode()
    .len();
    // The reply wraps the Hello in an enum tag; leave room for it.
    if hello_bytes + 16 > HELLO_BYTES_MAX {
        return invalid(format!(
            "cluster id and client address are too long for the handshake ({hello_bytes} bytes, at most {})",
            HELLO_BYTES_MAX - 16
        ));
    }
    Ok(())
}

/// Bytes of a frame's length prefix (big-endian u32, as `LengthDelimitedCodec`
/// writes and reads it by default).
const FRAME_HEADER_BYTES: usize = 4;

/// Why a message was not framed.
#[derive(Debug)]
enum FrameError {
    /// The payload would be this many bytes, above the limit.
    Oversized(usize),
    Encode(postcard::Error),
}

/// Appends `message` to `buffer` as one frame (length prefix + postcard
/// payload), encoding straight into the buffer the socket is written from:
/// no intermediate vector grown while encoding and no second copy into the
/// codec's buffer. On error `buffer` is left as it was.
fn encode_frame(
    message: &Message,
    buffer: &mut BytesMut,
    payload_bytes_max: usize,
) -> Result<usize, FrameError> {
    let start = buffer.len();
    buffer.extend_from_slice(&[0; FRAME_HEADER_BYTES]);
    let encoded = postcard::serialize_with_flavor(message, BytesMutFlavor(buffer));
    let payload_bytes = buffer.len() - start - FRAME_HEADER_BYTES;
    let checked = match encoded {
        Err(error) => Err(FrameError::Encode(error)),
        Ok(()) => match u32::try_from(payload_bytes) {
            Ok(length) if payload_bytes <= payload_bytes_max => Ok(length),
            _ => Err(FrameError::Oversized(payload_bytes)),
        },
    };
    match checked {
        Ok(length) => {
            buffer[start..start + FRAME_HEADER_BYTES].copy_from_slice(&length.to_be_bytes());
            Ok(payload_bytes)
        }
        Err(error) => {
            buffer.truncate(start);
            Err(error)
        }
    }
}

/// A postcard output that appends to a `BytesMut`.
struct BytesMutFlavor<'a>(&'a mut BytesMut);

impl postcard::ser_flavors::Flavor for BytesMutFlavor<'_> {
    type Output = ();

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.extend_from_slice(&[data]);
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Why a link closed or a dial failed. `Display` is the short reason carried
/// by `Inbound::PeerDown` and logged as `reason=`.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("{}", describe_io(.0))]
    Io(#[from] io::Error),
    #[error("timed out after {ms} ms ({stage})")]
    Timeout { ms: u64, stage: &'static str },
    #[error("eof")]
    Eof,
    #[error("handshake rejected by peer: {0}")]
    RejectedByPeer(String),
    #[error("handshake refused: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("undecodable frame: {0}")]
    Undecodable(postcard::Error),
    #[error("protocol violation: {0}")]
    Protocol(String),
}

/// The short words operators know for the common socket failures.
fn describe_io(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "reset by peer".into(),
        io::ErrorKind::ConnectionAborted => "connection aborted".into(),
        io::ErrorKind::BrokenPipe => "broken pipe".into(),
        io::ErrorKind::UnexpectedEof => "eof".into(),
        io::ErrorKind::TimedOut => "timed out".into(),
        io::ErrorKind::InvalidData => format!("bad frame: {error}"),
        _ => error.to_string(),
    }
}
