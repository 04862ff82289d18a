//! Per-peer replication state kept by the leader (etcd's Progress): how far
//! the peer's log is known to match, what to send next and how much is in
//! flight.

use std::collections::VecDeque;

use crate::message::{Incarnation, Index, Snapshot, NO_INCARNATION};

/// An InstallSnapshot transfer in progress. It keeps the snapshot it started
/// with (cheap `Bytes` clone), so a later compaction cannot pull the data
/// out from under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SnapshotTransfer {
    pub snapshot: Snapshot,
    /// The first byte of the chunk in flight (or to send next).
    pub next_offset: u64,
}

/// How the leader replicates to one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ReplicationState {
    /// Where the peer's log diverges is unknown: one append at a time, the
    /// next one after a reply (or a heartbeat reply, in case it was lost).
    Probe { probe_sent: bool },
    /// The peer's log matches through `match_index`: appends are pipelined,
    /// remembering the last index of each one in flight.
    Replicate {
        inflight_last_indexes: VecDeque<Index>,
    },
    /// The entries the peer needs are compacted: a snapshot is on its way.
    Snapshot(SnapshotTransfer),
}

/// The leader's view of one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Highest index known to be durable on the peer and to match ours.
    /// Never moves backwards, except by `reset_after_reconnect`.
    pub match_index: Index,
    /// Next index to send. Invariant: `next_index > match_index`.
    pub next_index: Index,
    pub state: ReplicationState,
    /// Set by any reply in the current check-quorum interval.
    pub recent_active: bool,
    /// Ticks spent awaiting a reply to what is in flight (stall detection).
    pub ticks_since_reply: u64,
    /// Newest ReadIndex round the peer acknowledged.
    pub read_round_acked: u64,
    /// The incarnation the peer's replies carry (`NO_INCARNATION` before
    /// the first). Everything above describes that incarnation only.
    pub incarnation: Incarnation,
}

impl Progress {
    /// A peer about which nothing is known yet: probe from `next_index`.
    pub fn new(next_index: Index) -> Self {
        Progress {
            match_index: 0,
            next_index,
            state: ReplicationState::Probe { probe_sent: false },
            recent_active: false,
            ticks_since_reply: 0,
            read_round_acked: 0,
            incarnation: NO_INCARNATION,
        }
    }

    /// A reply came from `incarnation`. Returns true when it is another
    /// life of the peer than the one this progress describes: nothing known
    /// about the old one holds for it, so it is probed afresh from
    /// `last_index + 1`.
    pub fn note_incarnation(&mut self, incarnation: Incarnation, last_index: Index) -> bool {
        if self.incarnation == incarnation {
            return false;
        }
        let known_before = self.incarnation != NO_INCARNATION;
        if known_before {
            *self = Progress::new(last_index + 1);
        }
        self.incarnation = incarnation;
        known_before
    }

    /// True when nothing more may be sent until a reply arrives.
    pub fn is_paused(&self, inflight_appends_max: usize) -> bool {
        match &self.state {
            ReplicationState::Probe { probe_sent } => *probe_sent,
            ReplicationState::Replicate {
                inflight_last_indexes,
            } => inflight_last_indexes.len() >= inflight_appends_max,
            ReplicationState::Snapshot(_) => true,
        }
    }

    /// True while appends or a snapshot chunk are in flight unanswered (a
    /// lost probe is simply retried on the next heartbeat reply).
    pub fn awaits_reply(&self) -> bool {
        match &self.state {
            ReplicationState::Probe { .. } => false,
            ReplicationState::Replicate {
                inflight_last_indexes,
            } => !inflight_last_indexes.is_empty(),
            ReplicationState::Snapshot(_) => true,
        }
    }

    pub fn become_probe(&mut self) {
        self.state = ReplicationState::Probe { probe_sent: false };
        self.next_index = self.match_index + 1;
    }

    pub fn become_replicate(&mut self) {
        self.state = ReplicationState::Replicate {
            inflight_last_indexes: VecDeque::new(),
        };
        self.next_index = self.match_index + 1;
    }

    pub fn become_snapshot(&mut self, snapshot: Snapshot) {
        self.state = ReplicationState::Snapshot(SnapshotTransfer {
            snapshot,
            next_offset: 0,
        });
    }

    /// Raises `match_index` to `index` if that is an advance; returns
    /// whether it was. A late reply never moves it backwards.
    pub fn update_match(&mut self, index: Index) -> bool {
        if index <= self.match_index {
            return false;
        }
        self.match_index = index;
        self.next_index = self.next_index.max(index + 1);
        true
    }

    /// Records an append carrying entries through `last_index` (`entry_count`
    /// of them; an empty append only carries the commit index).
    pub fn sent_append(&mut self, last_index: Index, entry_count: usize) {
        match &mut self.state {
            ReplicationState::Probe { probe_sent } => *probe_sent = true,
            ReplicationState::Replicate {
                inflight_last_indexes,
            } => {
                if entry_count > 0 {
                    inflight_last_indexes.push_back(last_index);
                    self.next_index = last_index + 1;
                }
            }
            ReplicationState::Snapshot(_) => {
                debug_assert!(
                    false,
                    "append sent while a snapshot transfer is in progress"
                );
            }
        }
    }

    /// Forgets in-flight appends acknowledged by a reply through `index`.
    pub fn free_inflights_through(&mut self, index: Index) {
        if let ReplicationState::Replicate {
            inflight_last_indexes,
        } = &mut self.state
        {
            while inflight_last_indexes
                .front()
                .is_some_and(|&last| last <= index)
            {
                inflight_last_indexes.pop_front();
            }
        }
    }

    /// The peer's link came up again, e.g. its process restarted: what it
    /// acknowledged may be gone with it (a wiped or replaced data
    /// directory), and a rejection from it at or below `match_index` would
    /// be dropped as stale, leaving it stuck. Forget what is known and probe
    /// from `last_index + 1`, as for a new peer. The only way `match_index`
    /// moves backwards; safe, since the commit index never decreases and a
    /// lower match can only delay the next commit.
    pub fn reset_after_reconnect(&mut self, last_index: Index) {
        *self = Progress {
            recent_active: self.recent_active,
            read_round_acked: self.read_round_acked,
            incarnation: self.incarnation,
            ..Progress::new(last_index + 1)
        };
    }

    /// Handles a rejection of the append whose `prev_index` did not match;
    /// `next_guess` is where the conflict hint says to retry. Returns false
    /// for a stale rejection (one that no longer describes what is in flight),
    /// which changes nothing. Never moves `next_index` to or below `match_index`.
    pub fn on_rejected(&mut self, prev_index: Index, next_guess: Index) -> bool {
        if prev_index <= self.match_index || prev_index >= self.next_index {
            // At or below match: stale. At or beyond next: never sent.
            return false;
        }
        match &self.state {
            ReplicationState::Replicate { .. } => {}
            ReplicationState::Probe { .. } => {
                if prev_index + 1 != self.next_index {
                    return false;
                }
            }
            ReplicationState::Snapshot(_) => return false,
        }
        self.state = ReplicationState::Probe { probe_sent: false };
        self.next_index = next_guess.min(prev_index).max(self.match_index + 1);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_forgets_match_and_probes_from_the_last_index() {
        let mut progress = Progress::new(11);
        assert!(progress.update_match(10));
        progress.become_replicate();
        progress.sent_append(14, 4);
        progress.read_round_acked = 3;
        progress.recent_active = true;
        progress.reset_after_reconnect(14);
        assert_eq!(progress.match_index, 0);
        assert_eq!(progress.next_index, 15);
        assert_eq!(
            progress.state,
            ReplicationState::Probe { probe_sent: false }
        );
        assert_eq!(progress.read_round_acked, 3, "read rounds stay confirmed");
        assert!(progress.recent_active);
        // A wiped peer rejects the probe at 14 with its empty log: no longer
        // stale, so the next guess goes all the way down.
        assert!(progress.on_rejected(14, 1));
        assert_eq!(progress.next_index, 1);
    }

    #[test]
    fn match_index_never_moves_backwards() {
        let mut progress = Progress::new(11);
        assert!(progress.update_match(7));
        assert_eq!(progress.next_index, 11);
        assert!(
            !progress.update_match(5),
            "a late reply must not lower match"
        );
        assert_eq!(progress.match_index, 7);
        assert!(progress.update_match(12));
        assert_eq!(progress.next_index, 13);
    }

    #[test]
    fn probe_sends_one_append_at_a_time() {
        let mut progress = Progress::new(5);
        assert!(!progress.is_paused(4));
        progress.sent_append(8, 4);
        assert!(progress.is_paused(4));
        assert_eq!(
            progress.next_index, 5,
            "probing does not advance next optimistically"
        );
    }

    #[test]
    fn replicate_pipelines_up_to_the_inflight_bound() {
        let mut progress = Progress::new(1);
        progress.become_replicate();
        progress.sent_append(3, 3);
        progress.sent_append(6, 3);
        assert!(progress.is_paused(2));
        assert_eq!(progress.next_index, 7);
        progress.update_match(3);
        progress.free_inflights_through(3);
        assert!(!progress.is_paused(2));
        progress.sent_append(6, 0);
        assert!(
            !progress.is_paused(2),
            "an empty append is not counted in flight"
        );
    }

    #[test]
    fn stale_rejection_never_pushes_next_below_match_plus_one() {
        let mut progress = Progress::new(1);
        progress.update_match(10);
        progress.become_replicate();
        progress.sent_append(20, 10);
        assert!(
            !progress.on_rejected(8, 3),
            "a rejection below match is stale"
        );
        assert_eq!(progress.next_index, 21);
        assert!(progress.on_rejected(15, 3));
        assert_eq!(progress.next_index, 11, "next is clamped to match + 1");
        assert!(matches!(progress.state, ReplicationState::Probe { .. }));
        assert!(
            !progress.on_rejected(18, 12),
            "in probe only the probed prev_index counts"
        );
        assert!(
            !progress.on_rejected(10, 5),
            "a rejection at match is stale"
        );
        assert_eq!(progress.next_index, 11);
    }

    #[test]
    fn rejection_uses_the_hint_within_bounds() {
        let mut progress = Progress::new(50);
        assert!(progress.on_rejected(49, 30));
        assert_eq!(progress.next_index, 30);
        assert!(
            progress.on_rejected(29, 40),
            "a guess beyond prev_index is capped"
        );
        assert_eq!(progress.next_index, 29);
    }

    #[test]
    fn snapshot_state_pauses_and_ignores_rejections() {
        let mut progress = Progress::new(2);
        progress.become_snapshot(Snapshot {
            meta: crate::message::SnapshotMeta {
                index: 10,
                term: 2,
                members: Vec::new(),
            },
            data: bytes::Bytes::from_static(b"state"),
        });
        assert!(progress.is_paused(64));
        assert!(!progress.on_rejected(1, 1));
    }
}
