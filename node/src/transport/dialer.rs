//! The outbound side of one peer link: dial, handshake, write batches,
//! redial with capped exponential backoff.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use raftkv::message::Message;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::handshake::{HandshakeError, Hello, HelloReply};
use super::{
    bump, encode_frame, run_handshake, FrameError, Inbound, Link, LinkError, PeerLink, Shared,
    BATCH_MESSAGES_MAX, CONNECT_TIMEOUT_MS, RECONNECT_BACKOFF_INITIAL_MS, WRITE_STALL_TIMEOUT_MS,
};
use crate::log_events;

/// Capped exponential backoff: `initial_ms`, doubled per failure, at most `max_ms`.
#[derive(Debug)]
pub(super) struct Backoff {
    initial_ms: u64,
    max_ms: u64,
    next_ms: u64,
}

impl Backoff {
    pub(super) fn new(initial_ms: u64, max_ms: u64) -> Self {
        assert!(initial_ms > 0 && initial_ms <= max_ms);
        Backoff {
            initial_ms,
            max_ms,
            next_ms: initial_ms,
        }
    }

    /// The delay before the next attempt; each call doubles the one after.
    pub(super) fn next_delay_ms(&mut self) -> u64 {
        let delay_ms = self.next_ms;
        self.next_ms = self.next_ms.saturating_mul(2).min(self.max_ms);
        debug_assert!(delay_ms <= self.max_ms);
        delay_ms
    }

    /// After a success: the next failure retries fast again.
    pub(super) fn reset(&mut self) {
        self.next_ms = self.initial_ms;
    }
}

/// Runs the outbound link to `peer_id` until the transport shuts down or
/// the link is removed (`PeerLink::stop`).
pub(super) async fn run_peer_link(
    shared: Arc<Shared>,
    peer_id: u64,
    link: Arc<PeerLink>,
    mut queue: mpsc::Receiver<Message>,
    inbound: mpsc::Sender<Inbound>,
) {
    let shutdown = link.stop.clone();
    let link = &*link;
    let mut backoff = Backoff::new(
        RECONNECT_BACKOFF_INITIAL_MS,
        shared.reconnect_backoff_max_ms,
    );
    // The driver hears PeerDown for a dial failure only until it has heard
    // anything about this peer; after that, only when an up link breaks.
    let mut reported_any = false;
    let mut last_failure = String::new();
    loop {
        let dialed = tokio::select! {
            _ = shutdown.cancelled() => return,
            dialed = dial(&shared, peer_id, link) => dialed,
        };
        match dialed {
            Ok((mut framed, hello)) => {
                backoff.reset();
                last_failure.clear();
                mark_up(link, peer_id, &hello);
                reported_any = true;
                send_event(
                    &inbound,
                    Inbound::PeerUp {
                        id: peer_id,
                        incarnation: hello.incarnation,
                        client_addr: hello.client_addr,
                    },
                    &shutdown,
                )
                .await;
                let closed =
                    write_until_closed(&shared, link, &mut framed, &mut queue, &shutdown).await;
                link.connected.store(false, Ordering::Release);
                let dropped = drain(&mut queue);
                bump(&shared.counters.dropped_link_failed, dropped);
                bump(&link.messages_dropped, dropped);
                let Some(error) = closed else { return };
                let reason = error.to_string();
                tracing::warn!(event = log_events::PEER_DISCONNECTED, peer = peer_id, reason = %reason, dropped);
                send_event(
                    &inbound,
                    Inbound::PeerDown {
                        id: peer_id,
                        reason,
                    },
                    &shutdown,
                )
                .await;
            }
            Err(error) => {
                let reason = error.to_string();
                log_dial_failure(peer_id, link, &error, &reason, &last_failure);
                if !reported_any {
                    reported_any = true;
                    send_event(
                        &inbound,
                        Inbound::PeerDown {
                            id: peer_id,
                            reason: reason.clone(),
                        },
                        &shutdown,
                    )
                    .await;
                }
                last_failure = reason;
            }
        }
        let delay_ms = backoff.next_delay_ms();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(delay_ms)) => {}
            // The peer just dialed us: it is up again, redial at once.
            _ = link.redial_now.notified() => backoff.reset(),
        }
    }
}

fn mark_up(link: &PeerLink, peer_id: u64, hello: &Hello) {
    *link.client_addr.lock() = Some(hello.client_addr.clone());
    bump(&link.connects, 1);
    link.connected.store(true, Ordering::Release);
    tracing::info!(
        event = log_events::PEER_CONNECTED,
        peer = peer_id,
        addr = %link.peer_addr,
        client_addr = %hello.client_addr
    );
}

/// A refused handshake is a configuration problem an operator must see;
/// plain connection failures repeat every retry, so they are warned about
/// only when the reason changes.
fn log_dial_failure(peer_id: u64, link: &PeerLink, error: &LinkError, reason: &str, last: &str) {
    let refused = matches!(
        error,
        LinkError::RejectedByPeer(_) | LinkError::Handshake(_)
    );
    if reason == last {
        tracing::debug!(event = log_events::PEER_DIAL_FAILED, peer = peer_id, addr = %link.peer_addr, reason);
    } else if refused {
        tracing::warn!(event = log_events::PEER_REJECTED, peer = peer_id, addr = %link.peer_addr, reason);
    } else {
        tracing::warn!(event = log_events::PEER_DIAL_FAILED, peer = peer_id, addr = %link.peer_addr, reason);
    }
}

/// Connects and runs the dialer's half of the handshake.
async fn dial(shared: &Shared, peer_id: u64, link: &PeerLink) -> Result<(Link, Hello), LinkError> {
    let connect = TcpStream::connect(link.peer_addr);
    let stream = tokio::time::timeout(Duration::from_millis(CONNECT_TIMEOUT_MS), connect)
        .await
        .map_err(|_| LinkError::Timeout {
            ms: CONNECT_TIMEOUT_MS,
            stage: "connect",
        })??;
    stream.set_nodelay(true)?;
    run_handshake(shared, stream, async |framed| {
        exchange_hello(shared, peer_id, framed).await
    })
    .await
}

async fn exchange_hello(
    shared: &Shared,
    peer_id: u64,
    framed: &mut Link,
) -> Result<Hello, LinkError> {
    framed.send(Bytes::from(shared.hello().encode())).await?;
    let frame = framed.next().await.ok_or(LinkError::Eof)??;
    let hello = match HelloReply::decode(&frame)? {
        HelloReply::Accepted(hello) => hello,
        HelloReply::Rejected { reason } => return Err(LinkError::RejectedByPeer(reason)),
    };
    hello.check(&shared.rules())?;
    if hello.node_id != peer_id {
        return Err(HandshakeError::WrongNode {
            expected: peer_id,
            got: hello.node_id,
        }
        .into());
    }
    Ok(hello)
}

/// Writes queued messages until the link fails (`Some(error)`) or the
/// transport stops (`None`). The peer never writes on this connection after
/// the handshake, so reading it only ever tells us it closed.
async fn write_until_closed(
    shared: &Shared,
    link: &PeerLink,
    framed: &mut Link,
    queue: &mut mpsc::Receiver<Message>,
    shutdown: &CancellationToken,
) -> Option<LinkError> {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            frame = framed.next() => {
                return Some(match frame {
                    None => LinkError::Eof,
                    Some(Err(error)) => error.into(),
                    Some(Ok(_)) => LinkError::Protocol("peer wrote on a send-only link".into()),
                });
            }
            message = queue.recv() => {
                let first = message?;
                let written = tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    written = tokio::time::timeout(
                        Duration::from_millis(WRITE_STALL_TIMEOUT_MS),
                        write_batch(shared, link, framed, first, queue),
                    ) => written,
                };
                match written {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => return Some(error.into()),
                    Err(_) => return Some(LinkError::Timeout { ms: WRITE_STALL_TIMEOUT_MS, stage: "write stalled" }),
                }
            }
        }
    }
}

/// Encoded frames beyond this many bytes are written out before more are
/// encoded (one batch may hold large snapshot chunks).
const WRITE_BUFFER_FLUSH_BYTES: usize = 1024 * 1024;

/// Encodes `first` and whatever else is queued (up to `BATCH_MESSAGES_MAX`)
/// into the link's write buffer, then flushes once (or every
/// `WRITE_BUFFER_FLUSH_BYTES`).
async fn write_batch(
    shared: &Shared,
    link: &PeerLink,
    framed: &mut Link,
    first: Message,
    queue: &mut mpsc::Receiver<Message>,
) -> std::io::Result<()> {
    let mut next = Some(first);
    let mut batch_messages = 0u64;
    let mut taken = 0usize;
    while let Some(message) = next.take() {
        taken += 1;
        match encode_frame(&message, framed.write_buffer_mut(), shared.frame_bytes_max) {
            Ok(_) => batch_messages += 1,
            Err(FrameError::Oversized(frame_bytes)) => {
                bump(&shared.counters.dropped_oversized, 1);
                bump(&link.messages_dropped, 1);
                tracing::warn!(
                    event = log_events::MESSAGE_DROPPED,
                    to = message.to,
                    reason = "oversized",
                    frame_bytes,
                    frame_bytes_max = shared.frame_bytes_max
                );
            }
            Err(FrameError::Encode(error)) => {
                bump(&shared.counters.dropped_oversized, 1);
                bump(&link.messages_dropped, 1);
                tracing::warn!(event = log_events::MESSAGE_DROPPED, to = message.to, reason = %error);
            }
        }
        if framed.write_buffer().len() >= WRITE_BUFFER_FLUSH_BYTES {
            SinkExt::<Bytes>::flush(framed).await?;
        }
        if taken < BATCH_MESSAGES_MAX {
            next = queue.try_recv().ok();
        }
    }
    SinkExt::<Bytes>::flush(framed).await?;
    bump(&shared.counters.messages_sent, batch_messages);
    bump(&link.messages_sent, batch_messages);
    Ok(())
}

/// Empties the queue of messages meant for a link that broke; returns how many.
fn drain(queue: &mut mpsc::Receiver<Message>) -> u64 {
    let mut dropped = 0;
    while queue.try_recv().is_ok() {
        dropped += 1;
    }
    dropped
}

/// Hands a link event to the driver, waiting for room (events are rare and
/// must not be lost) unless the transport is stopping.
async fn send_event(inbound: &mpsc::Sender<Inbound>, event: Inbound, shutdown: &CancellationToken) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        // A closed channel means the driver is gone; the link keeps running
        // until shutdown so sending still works meanwhile.
        _ = inbound.send(event) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::Backoff;

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut backoff = Backoff::new(20, 500);
        let delays: Vec<u64> = (0..7).map(|_| backoff.next_delay_ms()).collect();
        assert_eq!(delays, vec![20, 40, 80, 160, 320, 500, 500]);
        backoff.reset();
        assert_eq!(backoff.next_delay_ms(), 20);
    }

    #[test]
    fn backoff_with_equal_bounds_is_constant() {
        let mut backoff = Backoff::new(20, 20);
        assert_eq!([backoff.next_delay_ms(), backoff.next_delay_ms()], [20, 20]);
    }
}
