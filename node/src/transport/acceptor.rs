//! The inbound side: accept connections, run the acceptor's half of the
//! handshake, then read messages and hand them to the driver.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use raftkv::message::Message;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::handshake::{HandshakeError, Hello, HelloReply};
use super::{bump, run_handshake, Inbound, Link, LinkError, Shared, HANDSHAKES_PENDING_MAX};
use crate::log_events;

/// Pause after a failed accept (e.g. out of file descriptors) so the loop
/// does not spin.
const ACCEPT_ERROR_PAUSE_MS: u64 = 50;

/// Accepts peer connections until `shutdown`.
pub(super) async fn run_listener(
    shared: Arc<Shared>,
    listener: TcpListener,
    inbound: mpsc::Sender<Inbound>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let handshakes = Arc::new(Semaphore::new(HANDSHAKES_PENDING_MAX));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(event = log_events::PEER_ACCEPT_FAILED, reason = %error);
                tokio::time::sleep(Duration::from_millis(ACCEPT_ERROR_PAUSE_MS)).await;
                continue;
            }
        };
        let Ok(permit) = handshakes.clone().try_acquire_owned() else {
            bump(&shared.counters.handshakes_rejected, 1);
            tracing::warn!(
                event = log_events::PEER_REJECTED,
                remote = %remote,
                reason = "too many connections in handshake",
                handshakes_pending_max = HANDSHAKES_PENDING_MAX
            );
            continue;
        };
        let shared = shared.clone();
        let inbound = inbound.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = accept_handshake(&shared, stream, remote) => accepted,
            };
            drop(permit);
            let Some((framed, hello)) = accepted else {
                return;
            };
            read_link(&shared, framed, hello, remote, &inbound, &shutdown).await;
        });
    }
}

/// Runs the acceptor's half of the handshake; `None` when the connection was
/// refused (already logged and counted).
async fn accept_handshake(
    shared: &Shared,
    stream: TcpStream,
    remote: SocketAddr,
) -> Option<(Link, Hello)> {
    // Only reading happens here, but the reply and small writes go out
    // without delay either way.
    let _ = stream.set_nodelay(true);
    let result = run_handshake(shared, stream, async |framed| {
        check_and_reply(shared, framed).await
    })
    .await;
    match result {
        Ok(link) => Some(link),
        Err(error) => {
            bump(&shared.counters.handshakes_rejected, 1);
            tracing::warn!(event = log_events::PEER_REJECTED, remote = %remote, reason = %error);
            None
        }
    }
}

async fn check_and_reply(shared: &Shared, framed: &mut Link) -> Result<Hello, LinkError> {
    let frame = framed.next().await.ok_or(LinkError::Eof)??;
    let checked =
        Hello::decode(&frame).and_then(|hello| hello.check(&shared.rules()).map(|()| hello));
    match checked {
        Ok(hello) => {
            framed
                .send(Bytes::from(HelloReply::Accepted(shared.hello()).encode()))
                .await?;
            Ok(hello)
        }
        // Not a raftkv peer at all: say nothing, just close.
        Err(HandshakeError::BadMagic) => Err(HandshakeError::BadMagic.into()),
        Err(error) => {
            // Tell the dialer why, so its operator sees the reason too. Best
            // effort: the connection closes either way.
            let reply = HelloReply::Rejected {
                reason: error.to_string(),
            };
            let _ = framed.send(Bytes::from(reply.encode())).await;
            Err(error.into())
        }
    }
}

/// Reads messages from a handshaked peer until it closes, sends a bad frame,
/// is superseded by a newer connection from the same peer, or shutdown.
async fn read_link(
    shared: &Shared,
    mut framed: Link,
    hello: Hello,
    remote: SocketAddr,
    inbound: &mpsc::Sender<Inbound>,
    shutdown: &CancellationToken,
) {
    let peer_id = hello.node_id;
    let link_token = shutdown.child_token();
    if let Some(older) = shared
        .inbound_links
        .lock()
        .insert(peer_id, link_token.clone())
    {
        older.cancel();
    }
    tracing::info!(event = log_events::PEER_ACCEPTED, peer = peer_id, remote = %remote);
    if let Some(link) = shared.links.read().get(&peer_id) {
        if !link.connected.load(std::sync::atomic::Ordering::Acquire) {
            link.redial_now.notify_one();
        }
    }
    let closed = loop {
        let frame = tokio::select! {
            _ = link_token.cancelled() => return,
            frame = framed.next() => frame,
        };
        let message = match frame {
            None => break LinkError::Eof,
            Some(Err(error)) => break error.into(),
            Some(Ok(frame)) => match postcard::from_bytes::<Message>(&frame) {
                Ok(message) => message,
                Err(error) => break LinkError::Undecodable(error),
            },
        };
        if message.from != peer_id || message.to != shared.id {
            break LinkError::Protocol(format!(
                "message from {} to {} on the link from node {peer_id} to node {}",
                message.from, message.to, shared.id
            ));
        }
        if message.incarnation != hello.incarnation {
            break LinkError::Protocol(format!(
                "message from incarnation {:016x} on the link of node {peer_id}'s incarnation {:016x}",
                message.incarnation, hello.incarnation
            ));
        }
        if !deliver(shared, inbound, Inbound::Message(message), &link_token).await {
            return;
        }
        bump(&shared.counters.messages_received, 1);
    };
    report_closed(shared, peer_id, remote, &closed);
}

fn report_closed(shared: &Shared, peer_id: u64, remote: SocketAddr, closed: &LinkError) {
    let bad_frame = match closed {
        LinkError::Undecodable(_) | LinkError::Protocol(_) => true,
        LinkError::Io(error) => error.kind() == std::io::ErrorKind::InvalidData,
        _ => false,
    };
    if bad_frame {
        bump(&shared.counters.links_closed_bad_frame, 1);
        tracing::warn!(event = log_events::PEER_LINK_CLOSED, peer = peer_id, remote = %remote, reason = %closed);
    } else {
        tracing::info!(event = log_events::PEER_LINK_CLOSED, peer = peer_id, remote = %remote, reason = %closed);
    }
}

/// Hands `item` to the driver, waiting when its channel is full. Returns
/// false when the driver is gone or the link is stopping.
async fn deliver(
    shared: &Shared,
    inbound: &mpsc::Sender<Inbound>,
    item: Inbound,
    stop: &CancellationToken,
) -> bool {
    match inbound.try_send(item) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Closed(_)) => false,
        Err(mpsc::error::TrySendError::Full(item)) => {
            bump(&shared.counters.inbound_full_waits, 1);
            tokio::select! {
                _ = stop.cancelled() => false,
                sent = inbound.send(item) => sent.is_ok(),
            }
        }
    }
}
