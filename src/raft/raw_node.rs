//! RawNode: the public face of the core. It owns one node's Raft state and
//! turns ticks, messages, proposals and reads into `Ready` batches.
//!
//! The role logic is split by meaning: `election` (timers, pre-vote, votes,
//! role changes), `replication` (appends, heartbeats, commit, ReadIndex,
//! leadership transfer) and `snapshot` (InstallSnapshot on both sides).

use std::collections::BTreeMap;

use bytes::Bytes;

use super::log::RaftLog;
use super::membership::{self as config_membership, Member, Membership};
use super::progress::Progress;
use super::read_only::{ReadOnly, PENDING_READS_MAX};
use super::{
    CompactError, ConfChange, ConfChangeError, Config, ConfigError, Event, HardState, InitialState,
    ProposeError, ReadState, Ready, ReadyAck, Rng, Role, Status, StepError,
};
use crate::message::{
    Body, EntryKind, Incarnation, Index, Message, NodeId, SnapshotMeta, Term, INDEX_MAX,
    NO_INCARNATION, NO_NODE, TERM_MAX,
};

/// True when the test-only planted bug `$bug` is configured; always false
/// unless the `planted-bugs` feature is compiled in.
#[cfg(feature = "planted-bugs")]
macro_rules! planted {
    ($node:expr, $bug:ident) => {
        $node.config.planted_bug == Some(crate::raft::PlantedBug::$bug)
    };
}
#[cfg(not(feature = "planted-bugs"))]
macro_rules! planted {
    ($node:expr, $bug:ident) => {{
        let _ = &$node;
        false
    }};
}

mod election;
mod membership;
mod replication;
mod snapshot;

/// A leadership transfer in progress (leader only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Transfer {
    to: NodeId,
    elapsed_ticks: u64,
}

/// A snapshot being received chunk by chunk (follower only).
#[derive(Clone, Debug)]
struct IncomingSnapshot {
    from: NodeId,
    term: Term,
    meta: SnapshotMeta,
    data: Vec<u8>,
}

pub struct RawNode {
    config: Config,
    rng: Rng,
    /// Durable: current term and the vote cast in it.
    term: Term,
    vote: NodeId,
    /// Durable: the incarnation of `vote` (see `HardState::vote_incarnation`).
    vote_incarnation: Incarnation,
    role: Role,
    /// The leader of `term` if known (`NO_NODE` otherwise); self on the leader.
    leader_id: NodeId,
    log: RaftLog,
    /// Non-leaders: ticks since the election timer was last reset, and the
    /// randomized timeout drawn at that reset.
    election_elapsed_ticks: u64,
    election_timeout_ticks: u64,
    /// Leader: ticks since the last heartbeat round and the last check-quorum.
    heartbeat_elapsed_ticks: u64,
    quorum_check_elapsed_ticks: u64,
    /// Ticks since this node last heard from a leader (0 while leading);
    /// meaningful only once `had_leader_contact`.
    ticks_since_leader_contact: u64,
    had_leader_contact: bool,
    /// Leader only: every other voter's replication state.
    progress: BTreeMap<NodeId, Progress>,
    /// (Pre-)candidate only: answers received, self included, each with
    /// the incarnation that sent it.
    votes: BTreeMap<NodeId, (Incarnation, bool)>,
    /// Candidate only: the incarnation of each voter that granted its vote
    /// (the configuration a bootstrapping leader appends).
    vote_incarnations: BTreeMap<NodeId, Incarnation>,
    /// Peers reported as another incarnation than the registered one.
    strangers_reported: BTreeMap<NodeId, Incarnation>,
    /// The committed configuration as last reported in events.
    membership_reported: Membership,
    /// `Event::AwaitingReadmission` was reported.
    awaiting_readmission_reported: bool,
    read_only: ReadOnly,
    transfer: Option<Transfer>,
    incoming_snapshot: Option<IncomingSnapshot>,
    /// Leader: proposals appended since the last Ready, not yet sent.
    proposals_unsent: bool,
    // Output waiting for the next Ready.
    messages: Vec<Message>,
    persisted_messages: Vec<Message>,
    read_states: Vec<ReadState>,
    dropped_reads: Vec<u64>,
    events: Vec<Event>,
    /// The hard state last handed out (or restored): a Ready carries one
    /// only when it changed.
    hard_state_handed_out: HardState,
    /// The commit index as of the last Ready (or the restored log).
    commit_handed_out: Index,
}

impl RawNode {
    /// Builds a node from what was durably persisted. `seed` feeds the
    /// election-timeout RNG. Applied restarts at the snapshot index: the
    /// committed entries after it come out again in `Ready.committed_entries`.
    pub fn new(config: Config, initial: InitialState, seed: u64) -> Result<Self, ConfigError> {
        config.validate()?;
        let InitialState {
            hard_state,
            snapshot,
            entries,
        } = initial;
        let log = RaftLog::restore(snapshot, entries, hard_state.commit).map_err(|problem| {
            ConfigError(format!(
                "persisted state of node {} is unusable: {problem}",
                config.id
            ))
        })?;
        // A crash between writing a Ready's entries and its hard state
        // leaves entries of a term the hard state never reached. Nothing
        // depending on that Ready was sent, and no vote was cast in that
        // term durably, so the node resumes in that term without a vote.
        let (term, vote, vote_incarnation) = if log.last_term() > hard_state.term {
            (log.last_term(), NO_NODE, NO_INCARNATION)
        } else {
            (
                hard_state.term,
                hard_state.vote,
                hard_state.vote_incarnation,
            )
        };
        let membership_reported = log.committed_membership().clone();
        let commit_handed_out = log.committed();
        let mut node = RawNode {
            rng: Rng::new(seed),
            term,
            vote,
            vote_incarnation,
            role: Role::Follower,
            leader_id: NO_NODE,
            log,
            election_elapsed_ticks: 0,
            election_timeout_ticks: config.election_ticks_min,
            heartbeat_elapsed_ticks: 0,
            quorum_check_elapsed_ticks: 0,
            ticks_since_leader_contact: 0,
            had_leader_contact: false,
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
            vote_incarnations: BTreeMap::new(),
            strangers_reported: BTreeMap::new(),
            membership_reported,
            awaiting_readmission_reported: false,
            read_only: ReadOnly::default(),
            transfer: None,
            incoming_snapshot: None,
            proposals_unsent: false,
            messages: Vec::new(),
            persisted_messages: Vec::new(),
            read_states: Vec::new(),
            dropped_reads: Vec::new(),
            events: Vec::new(),
            hard_state_handed_out: hard_state,
            commit_handed_out,
            config,
        };
        node.reset_election_timer();
        node.debug_check();
        Ok(node)
    }

    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// One unit of logical time.
    pub fn tick(&mut self) {
        if self.role == Role::Leader {
            self.tick_leader();
        } else {
            self.tick_election();
        }
        self.debug_check();
    }

    /// Handles one message from a peer. Messages not addressed to this node
    /// or from no node or itself are refused; malformed ones are dropped.
    /// A sender outside this node's configuration is heard (thesis §4.2.3:
    /// it may be a leader or candidate of a configuration this node has
    /// not received yet) but counted only where a configuration names it.
    pub fn step(&mut self, message: Message) -> Result<(), StepError> {
        let from = message.from;
        if message.to != self.config.id || from == self.config.id || from == NO_NODE {
            return Err(StepError::UnknownPeer {
                from,
                to: message.to,
            });
        }
        if malformed(&message) {
            // No correct peer sends it: dropped before its term is believed,
            // so it is evidence of neither a newer term nor a live leader.
            return Ok(());
        }
        self.note_sender(from, message.incarnation);
        if self.ignores_unregistered_candidate(&message) {
            return Ok(());
        }
        if message.term > self.term {
            if self.ignores_disruptive_vote(&message) {
                return Ok(());
            }
            match &message.body {
                Body::PreVote { .. } | Body::PreVoteReply { granted: true } => {}
                Body::Append { .. } | Body::Heartbeat { .. } | Body::Snapshot { .. } => {
                    self.become_follower(message.term, from, self.step_down_reason(from));
                }
                _ => self.become_follower(message.term, NO_NODE, self.step_down_reason(from)),
            }
        } else if message.term < self.term {
            self.reply_to_lower_term(&message);
            return Ok(());
        }
        self.dispatch(message);
        self.debug_check();
        Ok(())
    }

    fn dispatch(&mut self, message: Message) {
        let Message {
            from,
            term,
            incarnation,
            body,
            ..
        } = message;
        if self.role == Role::Leader {
            let last_index = self.log.last_index();
            if let Some(progress) = self.progress.get_mut(&from) {
                progress.note_incarnation(incarnation, last_index);
            }
        }
        let ballot = if matches!(body, Body::PreVote { .. }) {
            election::Ballot::PreVote
        } else {
            election::Ballot::Vote
        };
        match body {
            // A TimeoutNow campaign skips the voter's lease check in
            // `ignores_disruptive_vote`; here it is judged as any vote.
            Body::PreVote {
                last_index,
                last_term,
                commit,
                commit_term,
            }
            | Body::Vote {
                last_index,
                last_term,
                commit,
                commit_term,
                ..
            } => {
                self.learn_commit(commit, commit_term);
                let request = election::VoteRequest {
                    candidate: from,
                    incarnation,
                    term,
                    last_index,
                    last_term,
                };
                self.handle_vote_request(request, ballot);
            }
            Body::PreVoteReply { granted } => {
                self.handle_pre_vote_reply(from, incarnation, term, granted)
            }
            Body::VoteReply { granted } => self.handle_vote_reply(from, incarnation, granted),
            Body::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            } => {
                if self.accept_leader_contact(from) {
                    self.handle_append(from, prev_index, prev_term, entries, commit);
                }
            }
            Body::Heartbeat { commit, read_round } => {
                if self.accept_leader_contact(from) {
                    self.handle_heartbeat(from, commit, read_round);
                }
            }
            Body::Snapshot {
                meta,
                offset,
                chunk,
                done,
            } => {
                if self.accept_leader_contact(from) {
                    self.handle_snapshot_chunk(from, meta, offset, chunk, done);
                }
            }
            Body::AppendReply { outcome } => {
                if self.role == Role::Leader {
                    self.handle_append_reply(from, outcome);
                }
            }
            Body::HeartbeatReply { read_round } => {
                if self.role == Role::Leader {
                    self.handle_heartbeat_reply(from, read_round);
                }
            }
            Body::SnapshotReply {
                index,
                next_offset,
                done,
            } => {
                if self.role == Role::Leader {
                    self.handle_snapshot_reply(from, index, next_offset, done);
                }
            }
            Body::TimeoutNow => {
                if self.role != Role::Leader && self.may_campaign() {
                    self.start_election(election::Campaign::Transfer);
                }
            }
        }
    }

    /// Leader only: appends `data` as a new entry; returns its (term, index).
    pub fn propose(&mut self, data: Bytes) -> Result<(Term, Index), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader_id,
            });
        }
        if self.transfer.is_some() {
            return Err(ProposeError::TransferInProgress);
        }
        let uncommitted = self.log.last_index() - self.log.committed();
        if uncommitted >= self.config.uncommitted_entries_max as Index {
            return Err(ProposeError::Overloaded);
        }
        let index = self.log.append_new(self.term, EntryKind::Normal, data);
        self.proposals_unsent = true;
        Ok((self.term, index))
    }

    /// Leader only: proposes a change of membership through the log. The
    /// new configuration is in force as soon as it is appended, jointly
    /// with the one before until it commits (see `raft::membership`).
    /// Refused, with the reason, unless this node leads, an entry of its
    /// term committed, no other change is in flight and no transfer is
    /// under way; a learner is promoted only once it holds everything
    /// committed; the last voter is never removed. Removing the leader
    /// itself is allowed: it leads until the change commits, then steps
    /// down and hands leadership to the most caught-up remaining voter.
    pub fn propose_conf_change(
        &mut self,
        change: ConfChange,
    ) -> Result<(Term, Index), ConfChangeError> {
        let result = self.propose_conf_change_now(change);
        self.debug_check();
        result
    }

    /// Leader only: asks for a linearizable read point identified by
    /// `context`. It comes out as a `ReadState` once leadership is confirmed
    /// by a majority after this call, or in `dropped_reads` if leadership is
    /// lost first.
    pub fn read_index(&mut self, context: u64) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader_id,
            });
        }
        if planted!(self, ReadWithoutQuorum) {
            self.read_states.push(ReadState {
                context,
                index: self.log.committed(),
            });
            return Ok(());
        }
        if self.read_only.len() >= PENDING_READS_MAX {
            return Err(ProposeError::Overloaded);
        }
        if self.committed_in_current_term() {
            self.start_read(context);
        } else {
            self.read_only.await_term_commit(context);
        }
        Ok(())
    }

    /// Leader only: hands leadership to `to`. Proposals are refused until
    /// the transfer ends; it is aborted after `election_ticks_min` ticks.
    pub fn transfer_leadership(&mut self, to: NodeId) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader_id,
            });
        }
        let voter = self
            .log
            .newest_membership()
            .get(&to)
            .is_none_or(|m| m.is_voter());
        if to == self.config.id || !self.progress.contains_key(&to) || !voter {
            return Err(ProposeError::InvalidTarget);
        }
        if let Some(transfer) = self.transfer {
            if transfer.to == to {
                return Ok(());
            }
            self.abort_transfer();
        }
        self.transfer = Some(Transfer {
            to,
            elapsed_ticks: 0,
        });
        self.events.push(Event::TransferStarted {
            to,
            term: self.term,
        });
        self.advance_transfer(to);
        Ok(())
    }

    /// Discards the log through `index` (<= applied), keeping `data` as the
    /// snapshot at that index to send to lagging followers. The caller has
    /// made `data` durable itself; it does not come back in a Ready.
    pub fn compact(&mut self, index: Index, data: Bytes) -> Result<(), CompactError> {
        let refused = CompactError::OutOfRange {
            index,
            first_index: self.log.first_index(),
            applied: self.log.applied(),
        };
        self.log.compact(index, data).map_err(|()| refused)
    }

    /// The configuration in force at `index` (at or after the snapshot
    /// index), as a snapshot taken there must carry it
    /// (`SnapshotMeta::members`).
    pub fn members_at(&self, index: Index) -> Vec<Member> {
        self.log.membership_at(index).values().cloned().collect()
    }

    /// Swaps the bytes kept for the snapshot at `index` (the newest one)
    /// for `data`, which must be the same state: the same bytes read back
    /// from where the caller saved them (e.g. a mapping of its snapshot
    /// file), so that the caller's storage, not the core, holds them.
    /// Transfers to followers already under way keep the bytes they
    /// started with. Returns false (and changes nothing) when the kept
    /// snapshot is not at `index` or `data` differs from it in length.
    #[must_use]
    pub fn replace_snapshot_data(&mut self, index: Index, data: Bytes) -> bool {
        self.log.replace_snapshot_data(index, data)
    }

    pub fn has_ready(&self) -> bool {
        self.hard_state() != self.hard_state_handed_out
            || *self.log.committed_membership() != self.membership_reported
            || self.log.has_unannounced_snapshot()
            || self.log.has_unstable()
            || self.log.has_committed_to_hand_out()
            || self.proposals_unsent
            || !self.messages.is_empty()
            || !self.persisted_messages.is_empty()
            || !self.read_states.is_empty()
            || !self.dropped_reads.is_empty()
            || !self.events.is_empty()
    }

    /// Everything to persist, send and apply, in the order of the module
    /// docs. After a truncation `entries[0].index` may be at or below the
    /// last persisted index: the durable log is cut there first. A
    /// `snapshot` replaces the whole durable log: drop every durable entry,
    /// then append `entries`.
    pub fn ready(&mut self) -> Ready {
        if std::mem::take(&mut self.proposals_unsent) && self.role == Role::Leader {
            self.broadcast_appends(replication::EmptyAppend::Skip);
        }
        self.report_membership_changes();
        let hard_state = self.hard_state();
        // Within one process the commit index never moves back (after a
        // restart it starts from what was durable). Asserted in release too.
        assert!(
            hard_state.commit >= self.commit_handed_out,
            "commit index moved back from {} to {}",
            self.commit_handed_out,
            hard_state.commit
        );
        self.commit_handed_out = hard_state.commit;
        let changed_hard_state = (hard_state != self.hard_state_handed_out).then_some(hard_state);
        self.hard_state_handed_out = hard_state;
        Ready {
            hard_state: changed_hard_state,
            snapshot: self.log.take_unannounced_snapshot(),
            entries: self.log.take_unstable(),
            messages: std::mem::take(&mut self.messages),
            persisted_messages: std::mem::take(&mut self.persisted_messages),
            committed_entries: self.log.take_committed(),
            read_states: std::mem::take(&mut self.read_states),
            dropped_reads: std::mem::take(&mut self.dropped_reads),
            events: std::mem::take(&mut self.events),
        }
    }

    /// Acknowledges a handled Ready: what became durable and what was applied.
    pub fn advance(&mut self, ack: ReadyAck) {
        if let Some(index) = ack.snapshot_index {
            self.log.snapshot_persisted(index);
        }
        if let Some((index, term)) = ack.persisted_last {
            self.log.persisted_to(index, term);
        }
        if let Some(index) = ack.applied {
            self.log.applied_to(index);
        }
        if self.role == Role::Leader {
            // The leader's own copy counts towards commit only once durable.
            if self.maybe_commit() {
                self.broadcast_appends(replication::EmptyAppend::Send);
            }
        }
        self.debug_check();
    }

    pub fn status(&self) -> Status {
        let match_index = if self.role == Role::Leader {
            self.progress
                .iter()
                .map(|(&id, progress)| (id, progress.match_index))
                .collect()
        } else {
            Vec::new()
        };
        Status {
            id: self.config.id,
            role: self.role,
            term: self.term,
            vote: self.vote,
            leader_id: self.leader_id,
            commit_index: self.log.committed(),
            applied_index: self.log.applied(),
            first_index: self.log.first_index(),
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
            snapshot_index: self.log.snapshot_index(),
            ticks_since_leader_contact: self.ticks_since_leader_contact,
            match_index,
            transfer_target: self.transfer.map(|t| t.to),
            incarnation: self.config.incarnation,
            registered: self.registered(),
            strangers: if self.role == Role::Leader {
                self.strangers()
            } else {
                Vec::new()
            },
            members: self.log.newest_membership().values().cloned().collect(),
            previous_voters: if self.log.membership_change_pending() {
                config_membership::voters(self.log.membership_before_newest())
                    .map(|m| m.id)
                    .collect()
            } else {
                Vec::new()
            },
            membership_index: self.log.newest_membership_index(),
        }
    }

    fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            vote_incarnation: self.vote_incarnation,
            commit: self.log.committed(),
        }
    }

    fn send(&mut self, to: NodeId, body: Body) {
        let message = self.message(to, body);
        self.messages.push(message);
    }

    /// Queues a message that promises durable state (a granted vote, an
    /// append ack): it leaves only after the Ready is persisted.
    fn send_after_persist(&mut self, to: NodeId, body: Body) {
        let message = self.message(to, body);
        self.persisted_messages.push(message);
    }

    /// A message from this node in its current term.
    fn message(&self, to: NodeId, body: Body) -> Message {
        debug_assert_ne!(to, self.config.id, "never send to self");
        Message {
            from: self.config.id,
            to,
            term: self.term,
            incarnation: self.config.incarnation,
            body,
        }
    }

    fn debug_check(&self) {
        self.log.debug_check();
        debug_assert!(self.role != Role::Leader || self.leader_id == self.config.id);
        debug_assert!(self.role == Role::Leader || self.progress.is_empty());
        debug_assert!(self
            .progress
            .values()
            .all(|p| p.match_index <= self.log.last_index() && p.next_index > p.match_index));
    }
}

/// True for a message no correct peer sends: a term or index beyond what a
/// real cluster reaches (`TERM_MAX`, `INDEX_MAX`), an append whose entries
/// do not follow `prev_index` contiguously with terms that never fall and
/// never exceed the message's, or a snapshot chunk of a later term than the
/// message or whose bytes would end past `u64::MAX`.
fn malformed(message: &Message) -> bool {
    if message.term > TERM_MAX {
        return true;
    }
    match &message.body {
        Body::Append {
            prev_index,
            prev_term,
            entries,
            ..
        } => {
            !replication::well_formed_append(*prev_index, *prev_term, entries, message.term)
                || entries.iter().any(config_membership::is_malformed_entry)
        }
        Body::Snapshot {
            meta,
            offset,
            chunk,
            ..
        } => {
            meta.index > INDEX_MAX
                || meta.term > message.term
                || (!meta.members.is_empty()
                    && config_membership::from_members(&meta.members).is_none())
                || offset.checked_add(chunk.len() as u64).is_none()
        }
        _ => false,
    }
}
