//! Transport tests over real loopback sockets on free ports.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use raftkv::message::{Body, Entry, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

use super::handshake::{Hello, HelloReply};
use super::*;
use crate::options::PeerAddr;

const DEADLINE: Duration = Duration::from_secs(10);
const INBOUND_MAX: usize = 1_024;

struct TestNode {
    transport: Transport,
    inbound: mpsc::Receiver<Inbound>,
    shutdown: CancellationToken,
}

impl TestNode {
    async fn stop(&self) {
        self.shutdown.cancel();
        tokio::time::timeout(DEADLINE, self.transport.stopped())
            .await
            .expect("transport tasks end after shutdown");
    }

    /// Waits for the first inbound item that `wanted` picks (answers Some
    /// for), skipping others; returns what it picked.
    async fn expect<T>(&mut self, what: &str, wanted: impl Fn(Inbound) -> Option<T>) -> T {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.inbound.recv()).await {
                Ok(Some(item)) => {
                    if let Some(picked) = wanted(item) {
                        return picked;
                    }
                }
                Ok(None) => panic!("inbound channel closed while waiting for {what}"),
                Err(_) => panic!("no {what} within {DEADLINE:?}"),
            }
        }
    }

    async fn expect_message(&mut self, from: u64, term: u64) -> Message {
        self.expect(
            &format!("message from {from} term {term}"),
            |item| match item {
                Inbound::Message(m) if m.from == from && m.term == term => Some(m),
                _ => None,
            },
        )
        .await
    }

    /// Waits for the next message, whoever sent it.
    async fn expect_any_message(&mut self) -> Message {
        self.expect("a message", |item| match item {
            Inbound::Message(message) => Some(message),
            _ => None,
        })
        .await
    }

    /// Waits for PeerUp from `id`; returns the client address it announced.
    async fn expect_up(&mut self, id: u64) -> String {
        self.expect(&format!("PeerUp {id}"), |item| match item {
            Inbound::PeerUp {
                id: up,
                client_addr,
                ..
            } if up == id => Some(client_addr),
            _ => None,
        })
        .await
    }

    /// Waits for PeerUp from every id in `ids`, in any order.
    async fn expect_ups(&mut self, ids: &[u64]) -> std::collections::BTreeMap<u64, String> {
        let mut seen = std::collections::BTreeMap::new();
        while seen.len() < ids.len() {
            let (id, client_addr) = self
                .expect(&format!("PeerUp from all of {ids:?}"), |item| match item {
                    Inbound::PeerUp {
                        id, client_addr, ..
                    } if ids.contains(&id) => Some((id, client_addr)),
                    _ => None,
                })
                .await;
            seen.insert(id, client_addr);
        }
        seen
    }

    /// Waits for PeerDown of `id`; returns its reason.
    async fn expect_down(&mut self, id: u64) -> String {
        self.expect(&format!("PeerDown {id}"), |item| match item {
            Inbound::PeerDown { id: down, reason } if down == id => Some(reason),
            _ => None,
        })
        .await
    }
}

async fn bind_free() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0")
}

fn members(listeners: &[(u64, SocketAddr)]) -> Vec<PeerAddr> {
    listeners
        .iter()
        .map(|&(id, peer_addr)| PeerAddr { id, peer_addr })
        .collect()
}

fn config(id: u64, listen: SocketAddr, peers: Vec<PeerAddr>, cluster_id: &str) -> TransportConfig {
    TransportConfig {
        id,
        listen,
        peers,
        cluster_id: cluster_id.to_string(),
        incarnation: incarnation_of(id),
        client_addr: format!("127.0.0.1:{}", 7000 + id),
        frame_bytes_max: 64 * 1024 * 1024,
        send_queue_max: 64,
        reconnect_backoff_max_ms: 100,
    }
}

async fn start(config: TransportConfig, listener: TcpListener) -> TestNode {
    let (sender, inbound) = mpsc::channel(INBOUND_MAX);
    let shutdown = CancellationToken::new();
    let transport = Transport::start_with_listener(config, listener, sender, shutdown.clone())
        .await
        .expect("transport starts");
    TestNode {
        transport,
        inbound,
        shutdown,
    }
}

/// Starts `n` transports (ids 1..=n) of one cluster on free ports.
async fn start_cluster(n: u64) -> Vec<TestNode> {
    let mut listeners = Vec::new();
    for id in 1..=n {
        let listener = bind_free().await;
        listeners.push((id, listener.local_addr().unwrap(), listener));
    }
    let addrs: Vec<(u64, SocketAddr)> =
        listeners.iter().map(|(id, addr, _)| (*id, *addr)).collect();
    let mut nodes = Vec::new();
    for (id, addr, listener) in listeners {
        nodes.push(start(config(id, addr, members(&addrs), "c1"), listener).await);
    }
    nodes
}

/// The incarnation test node `id` announces (and stamps on its messages).
fn incarnation_of(id: u64) -> u64 {
    0x1000 + id
}

fn heartbeat(from: u64, to: u64, term: u64) -> Message {
    Message {
        from,
        to,
        term,
        incarnation: incarnation_of(from),
        body: Body::Heartbeat {
            commit: 0,
            read_round: 0,
        },
    }
}

fn append_with(from: u64, to: u64, term: u64, data: Bytes) -> Message {
    Message {
        from,
        to,
        term,
        incarnation: incarnation_of(from),
        body: Body::Append {
            prev_index: 0,
            prev_term: 0,
            entries: vec![Entry::normal(1, term, data)],
            commit: 0,
        },
    }
}

async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "not true within {DEADLINE:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until `node`'s outbound links to every id in `peers` are up.
async fn wait_connected(node: &TestNode, peers: &[u64]) {
    for &peer in peers {
        wait_until(&format!("link to {peer} up"), || {
            node.transport.is_connected(peer)
        })
        .await;
    }
}

/// Reads until the server closes the connection; panics if it stays open.
async fn expect_closed_by_server(stream: &mut TcpStream) {
    let mut buffer = [0u8; 1024];
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => continue,
            Err(_) => panic!("server did not close the connection within {DEADLINE:?}"),
        }
    }
}

/// Dials `addr` as node `id` of cluster "c1" and completes the handshake.
async fn fake_dialer(addr: SocketAddr, id: u64) -> Framed<TcpStream, LengthDelimitedCodec> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let mut framed = Framed::new(stream, LengthDelimitedCodec::new());
    let hello = Hello::new("c1", id, incarnation_of(id), "127.0.0.1:9999");
    framed.send(Bytes::from(hello.encode())).await.unwrap();
    let reply = framed.next().await.expect("a reply").unwrap();
    assert!(matches!(
        HelloReply::decode(&reply),
        Ok(HelloReply::Accepted(_))
    ));
    framed
}

#[tokio::test]
async fn three_nodes_exchange_messages_and_learn_client_addresses() {
    let mut nodes = start_cluster(3).await;
    for (i, node) in nodes.iter_mut().enumerate() {
        assert_eq!(node.transport.stats().peers.len(), 2);
        let id = i as u64 + 1;
        let others: Vec<u64> = (1..=3).filter(|&p| p != id).collect();
        let ups = node.expect_ups(&others).await;
        for (peer, client_addr) in ups {
            assert_eq!(client_addr, format!("127.0.0.1:{}", 7000 + peer));
        }
        wait_connected(node, &others).await;
    }
    for from in 1..=3u64 {
        for to in (1..=3u64).filter(|&t| t != from) {
            nodes[from as usize - 1]
                .transport
                .send(heartbeat(from, to, 10 * from + to));
        }
    }
    for to in 1..=3u64 {
        for from in (1..=3u64).filter(|&f| f != to) {
            let message = nodes[to as usize - 1]
                .expect_message(from, 10 * from + to)
                .await;
            assert_eq!(message, heartbeat(from, to, 10 * from + to));
        }
    }
    let stats = nodes[0].transport.stats();
    assert_eq!(stats.messages_sent, 2);
    assert_eq!(stats.messages_received, 2);
    assert_eq!(stats.dropped_total(), 0);
    assert_eq!(
        nodes[0].transport.peer_client_addr(2).as_deref(),
        Some("127.0.0.1:7002")
    );
    assert_eq!(
        nodes[0].transport.peer_client_addr(1).as_deref(),
        Some("127.0.0.1:7001")
    );
    assert_eq!(nodes[0].transport.peer_client_addr(9), None);
    for node in &nodes {
        node.stop().await;
    }
}

#[tokio::test]
async fn many_messages_arrive_in_order() {
    let mut nodes = start_cluster(2).await;
    wait_connected(&nodes[0], &[2]).await;
    let count = 60u64; // below send_queue_max, so none may be dropped
    for term in 1..=count {
        nodes[0].transport.send(heartbeat(1, 2, term));
    }
    for term in 1..=count {
        assert_eq!(nodes[1].expect_any_message().await, heartbeat(1, 2, term));
    }
    assert_eq!(nodes[0].transport.stats().dropped_total(), 0);
    for node in &nodes {
        node.stop().await;
    }
}

/// A writer that appends log lines to a shared buffer, to check log events.
#[derive(Clone, Default)]
struct CapturedLog(Arc<parking_lot::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLog {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock()).into_owned()
    }
}

#[tokio::test]
async fn a_peer_with_the_wrong_cluster_id_is_rejected_and_good_links_keep_working() {
    // current_thread runtime: every transport task logs on this thread.
    let log = CapturedLog::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let listeners = [bind_free().await, bind_free().await, bind_free().await];
    let addrs: Vec<(u64, SocketAddr)> = listeners
        .iter()
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l.local_addr().unwrap()))
        .collect();
    let [l1, l2, l3] = listeners;
    let mut a = start(config(1, addrs[0].1, members(&addrs), "c1"), l1).await;
    let mut b = start(config(2, addrs[1].1, members(&addrs), "c1"), l2).await;
    let mut stranger = start(config(3, addrs[2].1, members(&addrs), "other-cluster"), l3).await;

    let reason = stranger.expect_down(1).await;
    assert!(reason.contains("cluster id"), "{reason}");
    let reason = a.expect_down(3).await;
    assert!(reason.contains("cluster id"), "{reason}");
    wait_until("node 1 counted the rejection", || {
        a.transport.stats().handshakes_rejected >= 1
    })
    .await;
    assert!(!a.transport.is_connected(3));
    assert!(!stranger.transport.is_connected(1));
    assert_eq!(stranger.transport.peer_client_addr(1), None);

    wait_connected(&a, &[2]).await;
    wait_connected(&b, &[1]).await;
    a.transport.send(heartbeat(1, 2, 5));
    b.transport.send(heartbeat(2, 1, 6));
    b.expect_message(1, 5).await;
    a.expect_message(2, 6).await;

    let text = log.text();
    assert!(
        text.contains(log_events::PEER_REJECTED),
        "log has no {} event:\n{text}",
        log_events::PEER_REJECTED
    );
    assert!(
        text.contains("other-cluster"),
        "log does not name the wrong cluster id:\n{text}"
    );
    for node in [&a, &b, &stranger] {
        node.stop().await;
    }
}

#[tokio::test]
async fn garbage_on_the_peer_port_closes_that_connection_only() {
    let mut nodes = start_cluster(2).await;
    let addr = nodes[0].transport.local_addr();

    // An HTTP request: its first four bytes read as a 1.2 GB frame length.
    let mut http = TcpStream::connect(addr).await.unwrap();
    http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    expect_closed_by_server(&mut http).await;

    // A well-formed small frame without the magic.
    let mut wrong_magic = TcpStream::connect(addr).await.unwrap();
    wrong_magic
        .write_all(&[0, 0, 0, 4, b'a', b'b', b'c', b'd'])
        .await
        .unwrap();
    expect_closed_by_server(&mut wrong_magic).await;

    wait_until("both garbage connections counted", || {
        nodes[0].transport.stats().handshakes_rejected >= 2
    })
    .await;
    wait_connected(&nodes[1], &[1]).await;
    nodes[1].transport.send(heartbeat(2, 1, 3));
    nodes[0].expect_message(2, 3).await;
    for node in &nodes {
        node.stop().await;
    }
}

#[tokio::test]
async fn bad_frames_after_the_handshake_close_that_link_only() {
    let fake_listener = bind_free().await; // node 3's address; never accepted
    let listener = bind_free().await;
    let addr = listener.local_addr().unwrap();
    let addrs = [(1, addr), (3, fake_listener.local_addr().unwrap())];
    let mut cfg = config(1, addr, members(&addrs), "c1");
    cfg.frame_bytes_max = 1024;
    let mut node = start(cfg, listener).await;

    // A good message from the handshaked peer arrives.
    let mut good = fake_dialer(addr, 3).await;
    let frame = postcard::to_allocvec(&heartbeat(3, 1, 7)).unwrap();
    good.send(Bytes::from(frame)).await.unwrap();
    node.expect_message(3, 7).await;

    // A frame that is not a postcard Message.
    let mut undecodable = fake_dialer(addr, 3).await;
    undecodable
        .send(Bytes::from_static(&[0xff; 16]))
        .await
        .unwrap();
    expect_closed_by_server(undecodable.get_mut()).await;

    // A length prefix above frame_bytes_max.
    let mut oversized = fake_dialer(addr, 3).await;
    oversized
        .get_mut()
        .write_all(&(1025u32).to_be_bytes())
        .await
        .unwrap();
    expect_closed_by_server(oversized.get_mut()).await;

    // A message that claims to come from another node than the handshake said.
    let mut forged = fake_dialer(addr, 3).await;
    let frame = postcard::to_allocvec(&heartbeat(2, 1, 8)).unwrap();
    forged.send(Bytes::from(frame)).await.unwrap();
    expect_closed_by_server(forged.get_mut()).await;

    // A message from another incarnation than the handshake announced.
    let mut other_life = fake_dialer(addr, 3).await;
    let message = Message {
        incarnation: incarnation_of(3) + 1,
        ..heartbeat(3, 1, 8)
    };
    let frame = postcard::to_allocvec(&message).unwrap();
    other_life.send(Bytes::from(frame)).await.unwrap();
    expect_closed_by_server(other_life.get_mut()).await;

    wait_until("four links closed for bad frames", || {
        node.transport.stats().links_closed_bad_frame == 4
    })
    .await;
    // The transport still accepts and delivers.
    let mut again = fake_dialer(addr, 3).await;
    let frame = postcard::to_allocvec(&heartbeat(3, 1, 9)).unwrap();
    again.send(Bytes::from(frame)).await.unwrap();
    node.expect_message(3, 9).await;
    node.stop().await;
}

#[tokio::test]
async fn a_newer_connection_from_a_peer_supersedes_the_older_one() {
    let fake_listener = bind_free().await;
    let listener = bind_free().await;
    let addr = listener.local_addr().unwrap();
    let addrs = [(1, addr), (3, fake_listener.local_addr().unwrap())];
    let node = start(config(1, addr, members(&addrs), "c1"), listener).await;
    let mut older = fake_dialer(addr, 3).await;
    let _newer = fake_dialer(addr, 3).await;
    expect_closed_by_server(older.get_mut()).await;
    node.stop().await;
}

#[tokio::test]
async fn a_peer_that_goes_away_and_comes_back_is_reconnected() {
    let mut nodes = start_cluster(2).await;
    nodes[0].expect_up(2).await;
    wait_connected(&nodes[0], &[2]).await;
    let b = nodes.pop().unwrap();
    let b_addr = b.transport.local_addr();
    b.stop().await;

    let reason = nodes[0].expect_down(2).await;
    assert!(
        ["eof", "reset by peer", "broken pipe"].contains(&reason.as_str()),
        "unexpected reason {reason}"
    );
    assert!(!nodes[0].transport.is_connected(2));
    nodes[0].transport.send(heartbeat(1, 2, 1));
    assert_eq!(nodes[0].transport.stats().dropped_peer_down, 1);

    // Same id, same address: a restarted process.
    let a_addr = nodes[0].transport.local_addr();
    let cfg = config(2, b_addr, members(&[(1, a_addr), (2, b_addr)]), "c1");
    let (sender, inbound) = mpsc::channel(INBOUND_MAX);
    let shutdown = CancellationToken::new();
    let transport = Transport::start(cfg, sender, shutdown.clone())
        .await
        .expect("the freed port can be bound again");
    let mut b = TestNode {
        transport,
        inbound,
        shutdown,
    };
    nodes[0].expect_up(2).await;
    wait_connected(&nodes[0], &[2]).await;
    nodes[0].transport.send(heartbeat(1, 2, 2));
    b.expect_message(1, 2).await;
    assert_eq!(nodes[0].transport.stats().peers[0].connects, 2);
    b.stop().await;
    nodes[0].stop().await;
}

#[tokio::test]
async fn sending_to_a_dead_peer_never_blocks_and_counts_drops() {
    let dead_addr = bind_free().await.local_addr().unwrap(); // dropped: refuses
    let listener = bind_free().await;
    let addr = listener.local_addr().unwrap();
    let mut node = start(
        config(1, addr, members(&[(1, addr), (2, dead_addr)]), "c1"),
        listener,
    )
    .await;
    let reason = node.expect_down(2).await;
    assert_eq!(reason, "connection refused");

    let count = 100_000u64;
    let started = Instant::now();
    for term in 0..count {
        node.transport.send(heartbeat(1, 2, term));
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(2),
        "{count} sends took {elapsed:?}"
    );
    let stats = node.transport.stats();
    assert_eq!(stats.dropped_peer_down, count);
    assert_eq!(stats.peers[0].queued_messages, 0);
    assert_eq!(stats.peers[0].messages_dropped, count);

    node.transport.send(heartbeat(1, 9, 0));
    node.transport.send(heartbeat(1, 1, 0));
    assert_eq!(node.transport.stats().dropped_unknown_peer, 2);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_fills_its_queue_and_then_drops() {
    let slow_listener = bind_free().await;
    let slow_addr = slow_listener.local_addr().unwrap();
    let listener = bind_free().await;
    let addr = listener.local_addr().unwrap();
    let mut cfg = config(1, addr, members(&[(1, addr), (2, slow_addr)]), "c1");
    cfg.send_queue_max = 16;
    let send_queue_max = cfg.send_queue_max;
    let mut node = start(cfg, listener).await;

    // Node 2 answers the handshake, then never reads again.
    let (stream, _) = slow_listener.accept().await.unwrap();
    let mut slow = Framed::new(stream, LengthDelimitedCodec::new());
    let hello = slow.next().await.unwrap().unwrap();
    assert_eq!(Hello::decode(&hello).unwrap().node_id, 1);
    let reply = HelloReply::Accepted(Hello::new("c1", 2, incarnation_of(2), "127.0.0.1:7002"));
    slow.send(Bytes::from(reply.encode())).await.unwrap();
    node.expect_up(2).await;
    wait_connected(&node, &[2]).await;

    let payload = Bytes::from(vec![7u8; 64 * 1024]);
    let started = Instant::now();
    let mut sent = 0u64;
    while node.transport.stats().dropped_queue_full < 100 {
        assert!(
            started.elapsed() < DEADLINE,
            "queue never filled: {:?}",
            node.transport.stats()
        );
        for _ in 0..32 {
            node.transport
                .send(append_with(1, 2, sent, payload.clone()));
            sent += 1;
        }
        tokio::task::yield_now().await;
    }
    let stats = node.transport.stats();
    assert!(
        stats.peers[0].queued_messages <= send_queue_max,
        "{stats:?}"
    );
    assert!(stats.messages_sent < sent, "{stats:?}");
    assert!(
        stats.peers[0].connected,
        "a stall shorter than the write timeout keeps the link"
    );
    node.stop().await;
    drop(slow);
}

#[tokio::test]
async fn an_oversized_message_is_dropped_and_the_link_stays_up() {
    let listeners = [bind_free().await, bind_free().await];
    let addrs: Vec<(u64, SocketAddr)> = listeners
        .iter()
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l.local_addr().unwrap()))
        .collect();
    let mut nodes = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let mut cfg = config(addrs[i].0, addrs[i].1, members(&addrs), "c1");
        cfg.frame_bytes_max = 1024;
        nodes.push(start(cfg, listener).await);
    }
    wait_connected(&nodes[0], &[2]).await;
    nodes[0]
        .transport
        .send(append_with(1, 2, 1, Bytes::from(vec![0u8; 4096])));
    nodes[0].transport.send(heartbeat(1, 2, 2));
    assert_eq!(nodes[1].expect_any_message().await, heartbeat(1, 2, 2));
    let stats = nodes[0].transport.stats();
    assert_eq!(stats.dropped_oversized, 1);
    assert_eq!(stats.peers[0].connects, 1);
    assert!(stats.peers[0].connected);
    for node in &nodes {
        node.stop().await;
    }
}

#[tokio::test]
async fn invalid_configs_are_refused_with_the_field_named() {
    let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let base = config(1, addr, members(&[(1, addr), (2, addr)]), "c1");
    let cases: Vec<(TransportConfig, &str)> = vec![
        (
            TransportConfig {
                id: 5,
                ..base.clone()
            },
            "own id 5",
        ),
        (
            TransportConfig {
                frame_bytes_max: 0,
                ..base.clone()
            },
            "frame_bytes_max",
        ),
        (
            TransportConfig {
                send_queue_max: 0,
                ..base.clone()
            },
            "send_queue_max",
        ),
        (
            TransportConfig {
                send_queue_max: usize::MAX,
                ..base.clone()
            },
            "send_queue_max",
        ),
        (
            TransportConfig {
                reconnect_backoff_max_ms: 1,
                ..base.clone()
            },
            "reconnect_backoff_max_ms",
        ),
        (
            TransportConfig {
                cluster_id: "x".repeat(10_000),
                ..base.clone()
            },
            "too long",
        ),
        (
            TransportConfig {
                peers: members(&[(1, addr), (1, addr)]),
                ..base.clone()
            },
            "distinct",
        ),
    ];
    for (cfg, expected) in cases {
        let (sender, _inbound) = mpsc::channel(1);
        let error = Transport::start(cfg, sender, CancellationToken::new())
            .await
            .err()
            .expect("refused");
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
        assert!(
            error.to_string().contains(expected),
            "{error} lacks {expected}"
        );
    }
}

#[test]
fn frames_encoded_into_the_write_buffer_decode_as_the_messages() {
    use tokio_util::codec::Decoder;
    let first = append_with(1, 2, 3, Bytes::from(vec![7u8; 300]));
    let second = append_with(1, 2, 4, Bytes::from_static(b"x"));
    let mut buffer = bytes::BytesMut::from(&b"left"[..]);
    let payload_bytes = encode_frame(&first, &mut buffer, 1 << 20).unwrap();
    assert_eq!(payload_bytes, postcard::to_allocvec(&first).unwrap().len());
    encode_frame(&second, &mut buffer, 1 << 20).unwrap();
    let mut frames = buffer.split_off(4);
    assert_eq!(&buffer[..], b"left", "what was buffered before stays");
    let mut codec = LengthDelimitedCodec::new();
    for expected in [first, second] {
        let frame = codec.decode(&mut frames).unwrap().expect("a whole frame");
        assert_eq!(postcard::from_bytes::<Message>(&frame).unwrap(), expected);
    }
    assert!(frames.is_empty());
}

#[test]
fn an_oversized_frame_leaves_the_write_buffer_as_it_was() {
    let message = append_with(1, 2, 3, Bytes::from(vec![1u8; 1000]));
    let mut buffer = bytes::BytesMut::from(&b"queued"[..]);
    match encode_frame(&message, &mut buffer, 999) {
        Err(FrameError::Oversized(bytes)) => assert!(bytes > 1000, "{bytes}"),
        other => panic!("expected Oversized, got {other:?}"),
    }
    assert_eq!(&buffer[..], b"queued");
}
