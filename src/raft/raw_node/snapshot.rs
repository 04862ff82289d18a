//! InstallSnapshot (Raft §7), chunked: the leader streams the snapshot a
//! follower needs one chunk at a time; the follower assembles it and
//! installs it unless it already has everything it covers.

use bytes::Bytes;

use super::{IncomingSnapshot, RawNode};
use crate::message::{Body, Index, NodeId, Snapshot, SnapshotMeta};
use crate::raft::progress::ReplicationState;
use crate::raft::Event;

impl RawNode {
    /// Starts sending our snapshot to `to`, whose next entries are compacted.
    pub(super) fn start_snapshot(&mut self, to: NodeId) {
        let Some(snapshot) = self.log.snapshot().cloned() else {
            debug_assert!(false, "entries are compacted but no snapshot is kept");
            return;
        };
        let Some(progress) = self.progress.get_mut(&to) else {
            return;
        };
        progress.become_snapshot(snapshot);
        progress.ticks_since_reply = 0;
        self.send_snapshot_chunk(to);
    }

    /// Sends the chunk at the transfer's current offset (one chunk in flight).
    pub(super) fn send_snapshot_chunk(&mut self, to: NodeId) {
        let chunk_bytes_max = self.config.snapshot_chunk_bytes_max as u64;
        let Some(progress) = self.progress.get(&to) else {
            return;
        };
        let ReplicationState::Snapshot(transfer) = &progress.state else {
            return;
        };
        let data = &transfer.snapshot.data;
        let length = data.len() as u64;
        let start = transfer.next_offset.min(length);
        let end = start.saturating_add(chunk_bytes_max).min(length);
        let body = Body::Snapshot {
            meta: transfer.snapshot.meta.clone(),
            offset: start,
            chunk: data.slice(start as usize..end as usize),
            done: end == length,
        };
        self.send(to, body);
    }

    pub(super) fn handle_snapshot_reply(
        &mut self,
        from: NodeId,
        index: Index,
        next_offset: u64,
        done: bool,
    ) {
        let Some(progress) = self.progress.get_mut(&from) else {
            return;
        };
        progress.recent_active = true;
        let ReplicationState::Snapshot(transfer) = &mut progress.state else {
            return;
        };
        if transfer.snapshot.meta.index != index {
            // A reply to an earlier transfer.
            return;
        }
        if !done {
            let next_offset = next_offset.min(transfer.snapshot.data.len() as u64);
            if next_offset == transfer.next_offset {
                // It asks for the chunk already in flight: a duplicate, or
                // the answer to a chunk sent again. Sending once more would
                // put a second chunk stream in flight for good; and, as
                // with appends, it must not hide a chunk lost in flight.
                return;
            }
            progress.ticks_since_reply = 0;
            transfer.next_offset = next_offset;
            self.send_snapshot_chunk(from);
            return;
        }
        progress.ticks_since_reply = 0;
        let event = Event::SnapshotSent {
            to: from,
            index,
            term: transfer.snapshot.meta.term,
            bytes: transfer.snapshot.data.len() as u64,
        };
        progress.update_match(index);
        progress.become_probe();
        self.events.push(event);
        if self.maybe_commit() {
            self.broadcast_appends(super::replication::EmptyAppend::Send);
        }
        self.send_appends(from);
    }

    /// Follower: one chunk of a leader's snapshot. Chunks must arrive in
    /// order; otherwise the reply names the offset expected. A snapshot
    /// that does not go beyond our commit index is acknowledged and ignored,
    /// never rolled back to. One that would outgrow `snapshot_bytes_max`
    /// is abandoned.
    pub(super) fn handle_snapshot_chunk(
        &mut self,
        from: NodeId,
        meta: SnapshotMeta,
        offset: u64,
        chunk: Bytes,
        done: bool,
    ) {
        let index = meta.index;
        debug_assert!(meta.term <= self.term, "step drops malformed chunks");
        if index <= self.log.committed() {
            self.incoming_snapshot = None;
            let next_offset = offset + chunk.len() as u64;
            self.ack_snapshot(from, index, next_offset);
            return;
        }
        let same_transfer = self.incoming_snapshot.as_ref().is_some_and(|incoming| {
            incoming.from == from && incoming.term == self.term && incoming.meta == meta
        });
        if !same_transfer {
            if offset != 0 {
                self.send(
                    from,
                    Body::SnapshotReply {
                        index,
                        next_offset: 0,
                        done: false,
                    },
                );
                return;
            }
            self.incoming_snapshot = Some(IncomingSnapshot {
                from,
                term: self.term,
                meta,
                data: Vec::new(),
            });
        }
        let Some(incoming) = self.incoming_snapshot.as_mut() else {
            return;
        };
        let received = incoming.data.len() as u64;
        if offset != received {
            self.send(
                from,
                Body::SnapshotReply {
                    index,
                    next_offset: received,
                    done: false,
                },
            );
            return;
        }
        if incoming.data.len().saturating_add(chunk.len()) > self.config.snapshot_bytes_max {
            // The buffer is bounded: abandon the transfer rather than grow
            // it. Left unanswered, the leader's stall retry starts it over.
            self.incoming_snapshot = None;
            return;
        }
        incoming.data.extend_from_slice(&chunk);
        let next_offset = incoming.data.len() as u64;
        if !done {
            self.send(
                from,
                Body::SnapshotReply {
                    index,
                    next_offset,
                    done: false,
                },
            );
            return;
        }
        let Some(complete) = self.incoming_snapshot.take() else {
            return;
        };
        let snapshot = Snapshot {
            meta: complete.meta,
            data: Bytes::from(complete.data),
        };
        let term = snapshot.meta.term;
        self.log.install_snapshot(snapshot);
        self.events.push(Event::SnapshotInstalled { index, term });
        self.ack_snapshot(from, index, next_offset);
    }

    /// The snapshot at `index` is durable here (or not needed): the leader
    /// may go on from it once this Ready is persisted.
    fn ack_snapshot(&mut self, leader: NodeId, index: Index, next_offset: u64) {
        let reply = Body::SnapshotReply {
            index,
            next_offset,
            done: true,
        };
        self.send_after_persist(leader, reply);
    }
}
