//! Log replication (Raft §5.3), commitment (§5.4.2), ReadIndex (§6.4) and
//! leadership transfer (thesis §3.10): the leader's sending side and the
//! follower's receiving side.

use super::RawNode;
use crate::message::{AppendOutcome, Body, Entry, Index, NodeId, Term, INDEX_MAX};
use crate::raft::progress::ReplicationState;
use crate::raft::{ReadState, Role};

/// Heartbeat intervals an append may go unanswered, on a link a heartbeat
/// reply shows working, before it is sent again (at least half the minimum
/// election timeout).
const STALL_HEARTBEATS: u64 = 2;

/// Whether an append with no entries goes out when a peer needs none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum EmptyAppend {
    /// Only entries are worth a message.
    Skip,
    /// Send one anyway: it carries a new commit index, or probes the peer.
    Send,
}

impl RawNode {
    /// Sends every peer what it is missing; with `EmptyAppend::Send`, peers
    /// that are up to date get an empty append carrying the commit index.
    pub(super) fn broadcast_appends(&mut self, empty: EmptyAppend) {
        for peer in self.peers() {
            if !self.send_appends(peer) && empty == EmptyAppend::Send {
                self.send_append(peer, EmptyAppend::Send);
            }
        }
    }

    /// The driver's link to `peer` came up again (its process may have
    /// restarted with less than it acknowledged, even with nothing). A
    /// leader forgets what it knew of that peer's log and probes it at once
    /// from its last index; the reply (or rejection) shows where to resume,
    /// by entries or by a snapshot. Other roles ignore it.
    pub fn peer_reconnected(&mut self, peer: NodeId) {
        if self.role != Role::Leader {
            return;
        }
        let last_index = self.log.last_index();
        let Some(progress) = self.progress.get_mut(&peer) else {
            return;
        };
        progress.reset_after_reconnect(last_index);
        // An empty append at our last index: accepted by a peer that has
        // it all, rejected with its last index by one that lost it. A
        // leadership transfer to the peer resumes on the reply.
        self.send_append(peer, EmptyAppend::Send);
    }

    /// Sends `to` as many appends as its state allows (one while probing,
    /// up to `inflight_appends_max` while replicating). Returns whether any
    /// message went out.
    pub(super) fn send_appends(&mut self, to: NodeId) -> bool {
        let mut sent_any = false;
        while self.send_append(to, EmptyAppend::Skip) {
            sent_any = true;
        }
        sent_any
    }

    /// Sends one append to `to` from its next index, or starts a snapshot
    /// if those entries are compacted. Returns whether an append went out.
    pub(super) fn send_append(&mut self, to: NodeId, empty: EmptyAppend) -> bool {
        let inflight_appends_max = self.config.inflight_appends_max;
        let Some(progress) = self.progress.get(&to) else {
            return false;
        };
        if progress.is_paused(inflight_appends_max) {
            return false;
        }
        let next_index = progress.next_index;
        let prev_index = next_index - 1;
        let prev_term = self.log.term_at(prev_index);
        let entries = self.log.entries_from(
            next_index,
            self.config.entries_per_append_max,
            self.config.bytes_per_append_max,
        );
        let (Some(prev_term), Some(entries)) = (prev_term, entries) else {
            self.start_snapshot(to);
            return false;
        };
        if entries.is_empty() && empty == EmptyAppend::Skip {
            return false;
        }
        let last_index = prev_index + entries.len() as Index;
        if let Some(progress) = self.progress.get_mut(&to) {
            progress.sent_append(last_index, entries.len());
        }
        let commit = self.log.committed();
        self.send(
            to,
            Body::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            },
        );
        true
    }

    /// One heartbeat round to every peer. Each heartbeat's commit is capped
    /// at what that peer is known to store; the round number confirms
    /// leadership for the ReadIndex batch waiting on it.
    pub(super) fn broadcast_heartbeat(&mut self) {
        self.heartbeat_elapsed_ticks = 0;
        let read_round = self.read_only.next_round();
        let committed = self.log.committed();
        let targets: Vec<(NodeId, Index)> = self
            .progress
            .iter()
            .map(|(&id, p)| (id, p.match_index))
            .collect();
        for (peer, match_index) in targets {
            self.send(
                peer,
                Body::Heartbeat {
                    commit: committed.min(match_index),
                    read_round,
                },
            );
        }
    }

    /// Counts, per peer, the ticks spent waiting for a reply to appends or
    /// a snapshot chunk in flight (see `retry_if_stalled`).
    pub(super) fn count_ticks_awaiting_replies(&mut self) {
        for progress in self.progress.values_mut() {
            if progress.awaits_reply() {
                progress.ticks_since_reply += 1;
            } else {
                progress.ticks_since_reply = 0;
            }
        }
    }

    /// Appends or a snapshot chunk lost in flight would stall a peer
    /// forever. A heartbeat reply proves the link works; if what is in
    /// flight has gone unanswered for a while, send again: the chunk, or an
    /// empty append (it does not count against the in-flight bound) that
    /// the peer either accepts or rejects with a hint.
    fn retry_if_stalled(&mut self, peer: NodeId) -> bool {
        let stall_ticks = (STALL_HEARTBEATS * self.config.heartbeat_ticks)
            .max(self.config.election_ticks_min / 2);
        let Some(progress) = self.progress.get_mut(&peer) else {
            return false;
        };
        if !progress.awaits_reply() || progress.ticks_since_reply < stall_ticks {
            return false;
        }
        progress.ticks_since_reply = 0;
        if matches!(progress.state, ReplicationState::Snapshot(_)) {
            self.send_snapshot_chunk(peer);
            return true;
        }
        let prev_index = progress.next_index - 1;
        let Some(prev_term) = self.log.term_at(prev_index) else {
            self.start_snapshot(peer);
            return true;
        };
        let commit = self.log.committed();
        self.send(
            peer,
            Body::Append {
                prev_index,
                prev_term,
                entries: Vec::new(),
                commit,
            },
        );
        true
    }

    pub(super) fn handle_append_reply(&mut self, from: NodeId, outcome: AppendOutcome) {
        let last_index = self.log.last_index();
        let Some(progress) = self.progress.get_mut(&from) else {
            return;
        };
        progress.recent_active = true;
        match outcome {
            AppendOutcome::Accepted { match_index } => {
                if match_index > last_index {
                    return;
                }
                let advanced = progress.update_match(match_index);
                if advanced {
                    // Only progress counts: a stream of stale duplicates
                    // must not hide appends lost in flight.
                    progress.ticks_since_reply = 0;
                }
                match &progress.state {
                    ReplicationState::Probe { .. } if match_index >= progress.match_index => {
                        progress.become_replicate()
                    }
                    ReplicationState::Replicate { .. } => {
                        progress.free_inflights_through(match_index)
                    }
                    ReplicationState::Snapshot(transfer)
                        if progress.match_index >= transfer.snapshot.meta.index =>
                    {
                        progress.become_probe();
                    }
                    _ => {}
                }
                if advanced && self.maybe_commit() {
                    // The others learn the new commit index right away.
                    self.broadcast_appends(EmptyAppend::Send);
                } else if advanced {
                    self.maybe_readmit();
                }
                if self.transfer.is_some_and(|t| t.to == from) {
                    self.advance_transfer(from);
                } else {
                    self.send_appends(from);
                }
            }
            AppendOutcome::Rejected {
                prev_index,
                hint_index,
                hint_term,
            } => {
                let next_guess = if hint_term == 0 {
                    hint_index.saturating_add(1)
                } else {
                    match self.log.last_index_of_term(hint_term, prev_index) {
                        Some(index) => index + 1,
                        None => hint_index,
                    }
                };
                let Some(progress) = self.progress.get_mut(&from) else {
                    return;
                };
                if progress.on_rejected(prev_index, next_guess) {
                    progress.ticks_since_reply = 0;
                    self.send_appends(from);
                }
            }
        }
    }

    pub(super) fn handle_heartbeat_reply(&mut self, from: NodeId, read_round: u64) {
        let last_round_sent = self.read_only.last_round_sent();
        let last_index = self.log.last_index();
        let Some(progress) = self.progress.get_mut(&from) else {
            return;
        };
        progress.recent_active = true;
        progress.read_round_acked = progress
            .read_round_acked
            .max(read_round.min(last_round_sent));
        // A lost probe is retried once the peer is known to be reachable,
        // even an empty one (a probe at our last index after a reconnect).
        let probing = match &mut progress.state {
            ReplicationState::Probe { probe_sent } => {
                *probe_sent = false;
                true
            }
            _ => false,
        };
        let behind = progress.match_index < last_index;
        self.release_reads();
        if self.retry_if_stalled(from) {
            return;
        }
        if self.transfer.is_some_and(|t| t.to == from) {
            self.advance_transfer(from);
        } else if behind {
            let empty = if probing {
                EmptyAppend::Send
            } else {
                EmptyAppend::Skip
            };
            self.send_append(from, empty);
            self.send_appends(from);
        }
    }

    /// Raft §5.3 on the follower: accept entries only after (prev_index,
    /// prev_term) matches, truncate only at a real conflict, and commit no
    /// further than this message verified.
    pub(super) fn handle_append(
        &mut self,
        from: NodeId,
        prev_index: Index,
        prev_term: Term,
        entries: Vec<Entry>,
        leader_commit: Index,
    ) {
        debug_assert!(
            well_formed_append(prev_index, prev_term, &entries, self.term),
            "step drops malformed appends"
        );
        let verified_through = prev_index + entries.len() as Index;
        let committed = self.log.committed();
        if verified_through <= committed {
            // Everything carried is already committed here, hence matches.
            self.send_after_persist(
                from,
                Body::AppendReply {
                    outcome: AppendOutcome::Accepted {
                        match_index: committed,
                    },
                },
            );
            return;
        }
        // Entries at or below our commit index are known to match (Leader
        // Completeness): check the rest from the commit index on.
        let (check_index, check_term, new_entries) = if prev_index < committed {
            let skip = (committed - prev_index) as usize;
            (committed, self.log.term_at(committed), &entries[skip..])
        } else {
            (prev_index, Some(prev_term), &entries[..])
        };
        let Some(check_term) = check_term else { return };
        let matches = self.log.term_at(check_index) == Some(check_term);
        let trusts_blindly =
            planted!(self, SkipLogMatching) && check_index <= self.log.last_index();
        if !matches && !trusts_blindly {
            let (hint_index, hint_term) = self.log.conflict_hint(check_index);
            let outcome = AppendOutcome::Rejected {
                prev_index,
                hint_index,
                hint_term,
            };
            self.send(from, Body::AppendReply { outcome });
            return;
        }
        self.log.append_after_match(new_entries);
        self.log.commit_to(leader_commit.min(verified_through));
        let outcome = AppendOutcome::Accepted {
            match_index: verified_through,
        };
        self.send_after_persist(from, Body::AppendReply { outcome });
    }

    pub(super) fn handle_heartbeat(&mut self, from: NodeId, commit: Index, read_round: u64) {
        // The leader capped `commit` at what it knows we store.
        self.log.commit_to(commit);
        self.send(from, Body::HeartbeatReply { read_round });
    }

    /// Raft §5.3/§5.4.2: commit the highest index stored on a majority (our
    /// own copy counted only once durable), but only if its entry is of the
    /// current term; earlier entries then commit with it. Returns whether
    /// the commit index advanced.
    pub(super) fn maybe_commit(&mut self) -> bool {
        // A voter whose replies come from another incarnation than the
        // configured one counts as storing nothing (see `raft::membership`).
        let majority_index = self.joint_majority_value(self.log.persisted(), |p| p.match_index);
        if majority_index <= self.log.committed() {
            return false;
        }
        let current_term = self.log.term_at(majority_index) == Some(self.term);
        if !current_term && !planted!(self, CommitPreviousTerm) {
            return false;
        }
        self.log.commit_to(majority_index);
        if self.committed_in_current_term() {
            for context in self.read_only.take_awaiting_term_commit() {
                self.start_read(context);
            }
        }
        // A committed change ends the joint configuration: members that
        // left it are no longer replicated to, and a removed leader goes.
        self.sync_progress();
        self.maybe_step_down_removed();
        self.maybe_readmit();
        true
    }

    pub(super) fn committed_in_current_term(&self) -> bool {
        self.log.term_at(self.log.committed()) == Some(self.term)
    }

    /// Queues a read at the current commit index behind a heartbeat round
    /// sent after now (immediately answered when this leader alone is a
    /// majority of every deciding voter set).
    pub(super) fn start_read(&mut self, context: u64) {
        let index = self.log.committed();
        if self.joint_majority_value(1, |_| 0) == 1 {
            self.read_states.push(ReadState { context, index });
            return;
        }
        if self.read_only.add(context, index) {
            self.broadcast_heartbeat();
        }
    }

    /// Releases reads whose round a majority acknowledged and, if others
    /// wait for a round not sent yet, sends it now.
    fn release_reads(&mut self) {
        let last_round_sent = self.read_only.last_round_sent();
        let confirmed_round = self.joint_majority_value(last_round_sent, |p| p.read_round_acked);
        let released = self.read_only.release(confirmed_round);
        self.read_states.extend(released);
        if self.read_only.needs_round() {
            self.broadcast_heartbeat();
        }
    }

    /// Leadership transfer: once the target stores our whole log, tell it
    /// to campaign now; until then, catch it up.
    pub(super) fn advance_transfer(&mut self, to: NodeId) {
        let Some(progress) = self.progress.get(&to) else {
            return;
        };
        if progress.match_index == self.log.last_index() {
            self.send(to, Body::TimeoutNow);
        } else {
            self.send_appends(to);
        }
    }
}

/// Rejects appends no correct leader sends: entries must follow
/// `prev_index` contiguously, end at or below `INDEX_MAX`, with terms never
/// falling and never above the message's term.
pub(super) fn well_formed_append(
    prev_index: Index,
    prev_term: Term,
    entries: &[Entry],
    message_term: Term,
) -> bool {
    if prev_index > INDEX_MAX || entries.len() as Index > INDEX_MAX - prev_index {
        return false;
    }
    let mut previous_term = prev_term;
    for (offset, entry) in entries.iter().enumerate() {
        if entry.index != prev_index + 1 + offset as Index
            || entry.term < previous_term
            || entry.term > message_term
        {
            return false;
        }
        previous_term = entry.term;
    }
    prev_term <= message_term
}
