//! Elections: randomized timers, pre-vote, votes, check-quorum and every
//! role change (Raft §5.2, thesis §9.6 pre-vote, §6.2 check-quorum).

use super::RawNode;
use crate::message::{Body, Incarnation, Index, Message, NodeId, Term, NO_NODE};
use crate::raft::progress::Progress;
use crate::raft::quorum::VoteResult;
use crate::raft::{Event, Role, StepDownReason};

/// What a (pre-)vote request asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ballot {
    /// Could an election at the candidate's term + 1 be won? Changes nothing.
    PreVote,
    Vote,
}

/// How a campaign starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Campaign {
    /// After a won pre-vote (or straight away without pre-vote).
    Election,
    /// On a leadership transfer's TimeoutNow.
    Transfer,
}

/// A (pre-)vote request as the voter judges it.
#[derive(Clone, Copy, Debug)]
pub(super) struct VoteRequest {
    pub candidate: NodeId,
    pub incarnation: Incarnation,
    pub term: Term,
    pub last_index: Index,
    pub last_term: Term,
}

impl RawNode {
    /// Draws a fresh timeout in `election_ticks_min..election_ticks_max`.
    /// While the cluster has no configuration (see `raft::membership`),
    /// an election needs every member's vote, so two candidates in one
    /// term both lose: members then take turns, in id order, one minimum
    /// election timeout apart.
    pub(super) fn reset_election_timer(&mut self) {
        self.election_elapsed_ticks = 0;
        self.election_timeout_ticks = self.rng.range(
            self.config.election_ticks_min,
            self.config.election_ticks_max,
        );
        if self.bootstrapping() {
            let rank = self
                .config
                .voters
                .iter()
                .filter(|&&id| id < self.config.id)
                .count() as u64;
            self.election_timeout_ticks += rank * self.config.election_ticks_min;
        }
    }

    pub(super) fn tick_election(&mut self) {
        self.ticks_since_leader_contact = self.ticks_since_leader_contact.saturating_add(1);
        self.election_elapsed_ticks += 1;
        if self.election_elapsed_ticks < self.election_timeout_ticks {
            return;
        }
        if !self.may_campaign() {
            // Lost its disk and not re-admitted yet: waits for the leader.
            self.reset_election_timer();
            return;
        }
        self.events.push(Event::ElectionTimeout {
            term: self.term,
            ticks_since_leader_contact: self
                .had_leader_contact
                .then_some(self.ticks_since_leader_contact),
        });
        if self.config.pre_vote {
            self.start_pre_election();
        } else {
            self.start_election(Campaign::Election);
        }
    }

    /// True if a leader was heard from within the minimum election timeout
    /// (always true on the leader itself).
    pub(super) fn leader_contact_recent(&self) -> bool {
        self.leader_id != NO_NODE
            && self.ticks_since_leader_contact < self.config.election_ticks_min
    }

    /// With check-quorum, a node that heard from a leader recently ignores
    /// higher-term (pre-)vote requests entirely, so a rejoining node cannot
    /// depose a healthy leader; a TimeoutNow-driven campaign is exempt.
    pub(super) fn ignores_disruptive_vote(&mut self, message: &Message) -> bool {
        let (is_vote_request, forced) = match &message.body {
            Body::PreVote { .. } => (true, false),
            Body::Vote {
                leadership_transfer,
                ..
            } => (true, *leadership_transfer),
            _ => (false, false),
        };
        if !is_vote_request || forced || !self.config.check_quorum || !self.leader_contact_recent()
        {
            return false;
        }
        self.events.push(Event::VoteRefused {
            candidate: message.from,
            term: message.term,
            pre_vote: matches!(message.body, Body::PreVote { .. }),
            reason: "heard from the leader recently (ignored)",
        });
        true
    }

    /// A (pre-)vote request from an incarnation this node may not vote for
    /// (`may_vote_for`: a node back with an empty disk, not re-admitted) is
    /// refused without believing its term, so such a node, campaigning
    /// again and again, cannot disturb the cluster's elections.
    pub(super) fn ignores_unregistered_candidate(&mut self, message: &Message) -> bool {
        let (last_index, last_term, pre_vote) = match &message.body {
            Body::PreVote {
                last_index,
                last_term,
                ..
            } => (*last_index, *last_term, true),
            Body::Vote {
                last_index,
                last_term,
                ..
            } => (*last_index, *last_term, false),
            _ => return false,
        };
        if self.may_vote_for(message.from, message.incarnation, last_index, last_term) {
            return false;
        }
        self.events.push(Event::VoteRefused {
            candidate: message.from,
            term: message.term,
            pre_vote,
            reason: "candidate is not the registered incarnation of its node id",
        });
        let body = if pre_vote {
            Body::PreVoteReply { granted: false }
        } else {
            Body::VoteReply { granted: false }
        };
        self.send(message.from, body);
        true
    }

    pub(super) fn step_down_reason(&self, from: NodeId) -> StepDownReason {
        match self.transfer {
            Some(transfer) if transfer.to == from => StepDownReason::Transferred,
            _ => StepDownReason::HigherTerm,
        }
    }

    /// A message from an older term changes nothing; a stale leader or
    /// pre-candidate is told our term so it steps down.
    pub(super) fn reply_to_lower_term(&mut self, message: &Message) {
        match message.body {
            Body::Append { .. } | Body::Heartbeat { .. } | Body::Snapshot { .. } => {
                self.send(message.from, Body::HeartbeatReply { read_round: 0 });
            }
            Body::PreVote { .. } => {
                self.send(message.from, Body::PreVoteReply { granted: false });
            }
            // The candidate learns the newer term and campaigns past it
            // (Raft §5.1: a reply carries the current term).
            Body::Vote { .. } => {
                self.send(message.from, Body::VoteReply { granted: false });
            }
            _ => {}
        }
    }

    /// Raft §5.2/§5.4.1: grant a vote only if not already voted for someone
    /// else in this term and the candidate's log is at least as up to date.
    /// A pre-vote is judged against the term the candidate would have and
    /// changes nothing here. (A candidate that lost its disk never gets
    /// here: see `ignores_unregistered_candidate`.)
    pub(super) fn handle_vote_request(&mut self, request: VoteRequest, ballot: Ballot) {
        let VoteRequest {
            candidate,
            incarnation,
            term: candidate_term,
            last_index,
            last_term,
        } = request;
        let pre_vote = ballot == Ballot::PreVote;
        let ignores_recorded_vote = planted!(self, VoteTwice) && !pre_vote;
        let free_to_vote =
            (self.vote == NO_NODE || ignores_recorded_vote) && self.leader_id == NO_NODE;
        // A vote is for one life of a node id: a candidate that lost its
        // disk since this node voted for it in this term gets no second one.
        let voted_for_candidate = self.vote == candidate
            && (self.vote_incarnation == incarnation || planted!(self, CountAnyIncarnation));
        let can_vote =
            voted_for_candidate || free_to_vote || (pre_vote && candidate_term > self.term);
        let refusal = if !can_vote {
            Some(if self.leader_id != NO_NODE && self.vote == NO_NODE {
                "a leader is known in this term"
            } else {
                "already voted for another candidate in this term"
            })
        } else if !self.log.is_up_to_date(last_index, last_term) {
            Some("candidate log is not up to date")
        } else if pre_vote && self.leader_contact_recent() {
            Some("heard from the leader recently")
        } else {
            None
        };
        if let Some(reason) = refusal {
            self.events.push(Event::VoteRefused {
                candidate,
                term: candidate_term,
                pre_vote,
                reason,
            });
            let body = if pre_vote {
                Body::PreVoteReply { granted: false }
            } else {
                Body::VoteReply { granted: false }
            };
            self.send(candidate, body);
            return;
        }
        self.events.push(Event::VoteGranted {
            candidate,
            term: candidate_term,
            pre_vote,
        });
        if pre_vote {
            // Answer in the term the candidate would have, so it is not
            // mistaken for a step-down signal.
            self.messages.push(Message {
                from: self.config.id,
                to: candidate,
                term: candidate_term,
                incarnation: self.config.incarnation,
                body: Body::PreVoteReply { granted: true },
            });
        } else {
            self.vote = candidate;
            self.vote_incarnation = incarnation;
            self.reset_election_timer();
            self.send_after_persist(candidate, Body::VoteReply { granted: true });
        }
    }

    pub(super) fn handle_pre_vote_reply(
        &mut self,
        from: NodeId,
        incarnation: Incarnation,
        reply_term: Term,
        granted: bool,
    ) {
        // A grant carries the term we would campaign in; anything else is a
        // reply to an earlier pre-campaign and is dropped.
        let current = if granted {
            reply_term == self.term + 1
        } else {
            reply_term == self.term
        };
        if self.role == Role::PreCandidate && current {
            self.poll(from, incarnation, granted);
        }
    }

    pub(super) fn handle_vote_reply(
        &mut self,
        from: NodeId,
        incarnation: Incarnation,
        granted: bool,
    ) {
        if self.role == Role::Candidate {
            if granted {
                self.vote_incarnations.entry(from).or_insert(incarnation);
            }
            self.poll(from, incarnation, granted);
        }
    }

    /// Counts an answer: won with a majority of every deciding voter set
    /// (see `tally_votes`; without any configuration every member must
    /// grant).
    fn poll(&mut self, from: NodeId, incarnation: Incarnation, granted: bool) {
        self.votes.entry(from).or_insert((incarnation, granted));
        match self.tally_votes() {
            VoteResult::Pending => {}
            VoteResult::Won if self.role == Role::PreCandidate => {
                self.start_election(Campaign::Election)
            }
            VoteResult::Won => self.become_leader(),
            VoteResult::Lost => {
                self.become_follower(self.term, NO_NODE, StepDownReason::HigherTerm)
            }
        }
    }

    /// Pre-vote (thesis §9.6): ask whether an election at term + 1 could be
    /// won before disturbing anyone's term.
    pub(super) fn start_pre_election(&mut self) {
        self.role = Role::PreCandidate;
        self.leader_id = NO_NODE;
        self.votes.clear();
        self.incoming_snapshot = None;
        self.reset_election_timer();
        self.events
            .push(Event::BecamePreCandidate { term: self.term });
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        let (commit, commit_term) = self.commit_point();
        for peer in self.peers() {
            self.messages.push(Message {
                from: self.config.id,
                to: peer,
                term: self.term + 1,
                incarnation: self.config.incarnation,
                body: Body::PreVote {
                    last_index,
                    last_term,
                    commit,
                    commit_term,
                },
            });
        }
        self.poll(self.config.id, self.config.incarnation, true);
    }

    /// Raft §5.2: increment the term, vote for self, request votes. The
    /// requests leave only after the new term and vote are durable.
    pub(super) fn start_election(&mut self, campaign: Campaign) {
        let leadership_transfer = campaign == Campaign::Transfer;
        self.term += 1;
        self.vote = self.config.id;
        self.vote_incarnation = self.config.incarnation;
        self.role = Role::Candidate;
        self.leader_id = NO_NODE;
        self.votes.clear();
        self.vote_incarnations.clear();
        self.incoming_snapshot = None;
        self.reset_election_timer();
        self.events.push(Event::BecameCandidate { term: self.term });
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        let (commit, commit_term) = self.commit_point();
        for peer in self.peers() {
            self.send_after_persist(
                peer,
                Body::Vote {
                    last_index,
                    last_term,
                    leadership_transfer,
                    commit,
                    commit_term,
                },
            );
        }
        self.poll(self.config.id, self.config.incarnation, true);
    }

    /// Moves to follower of `term` (clearing the vote if the term is new).
    /// `reason` is reported only if this node was leading.
    pub(super) fn become_follower(&mut self, term: Term, leader: NodeId, reason: StepDownReason) {
        if self.role == Role::Leader {
            self.events.push(Event::SteppedDown {
                term: self.term,
                reason,
            });
            self.dropped_reads.extend(self.read_only.drop_all());
            self.progress.clear();
            if reason != StepDownReason::Transferred {
                self.abort_transfer();
            }
            self.transfer = None;
            self.proposals_unsent = false;
            // The leader's election timer was not running: start it afresh.
            self.reset_election_timer();
        }
        if term > self.term {
            self.term = term;
            self.vote = NO_NODE;
            self.vote_incarnation = crate::message::NO_INCARNATION;
        }
        if self.leader_id != leader || self.role != Role::Follower {
            self.incoming_snapshot = None;
        }
        self.role = Role::Follower;
        self.leader_id = leader;
        self.votes.clear();
        self.events.push(Event::BecameFollower {
            term: self.term,
            leader,
        });
    }

    /// Raft §5.2/§8: the winner appends a no-op of its term so that earlier
    /// entries commit promptly, and probes every peer.
    pub(super) fn become_leader(&mut self) {
        self.role = Role::Leader;
        self.leader_id = self.config.id;
        self.votes.clear();
        self.transfer = None;
        self.incoming_snapshot = None;
        self.heartbeat_elapsed_ticks = 0;
        self.quorum_check_elapsed_ticks = 0;
        self.ticks_since_leader_contact = 0;
        self.had_leader_contact = true;
        let next_index = self.log.last_index() + 1;
        self.progress = self
            .peers()
            .into_iter()
            .map(|peer| (peer, Progress::new(next_index)))
            .collect();
        // The term's first entry: the configuration when the cluster has
        // none yet (see `raft::membership`), otherwise a no-op.
        match self.bootstrap_membership() {
            Some(membership) => self.log.append_new(
                self.term,
                crate::message::EntryKind::Config,
                crate::raft::membership::encode(&membership),
            ),
            None => self.log.append_new(
                self.term,
                crate::message::EntryKind::Noop,
                bytes::Bytes::new(),
            ),
        };
        self.vote_incarnations.clear();
        self.events.push(Event::BecameLeader { term: self.term });
        self.broadcast_appends(super::replication::EmptyAppend::Skip);
    }

    /// A message from the leader of our term: follow it and restart the
    /// election timer. Returns false if this node leads the term itself
    /// (only possible under a planted bug), in which case it is ignored.
    pub(super) fn accept_leader_contact(&mut self, leader: NodeId) -> bool {
        if self.role == Role::Leader {
            return false;
        }
        if self.role != Role::Follower || self.leader_id != leader {
            self.become_follower(self.term, leader, StepDownReason::HigherTerm);
        }
        self.reset_election_timer();
        self.ticks_since_leader_contact = 0;
        self.had_leader_contact = true;
        true
    }

    /// Leader: heartbeats, check-quorum, transfer timeout, stalled peers.
    pub(super) fn tick_leader(&mut self) {
        self.heartbeat_elapsed_ticks += 1;
        self.quorum_check_elapsed_ticks += 1;
        if self.config.check_quorum
            && self.quorum_check_elapsed_ticks >= self.config.election_ticks_min
        {
            self.quorum_check_elapsed_ticks = 0;
            if !self.quorum_recently_active() {
                self.become_follower(self.term, NO_NODE, StepDownReason::LostQuorum);
                return;
            }
            for progress in self.progress.values_mut() {
                progress.recent_active = false;
            }
        }
        if let Some(transfer) = &mut self.transfer {
            transfer.elapsed_ticks += 1;
            if transfer.elapsed_ticks >= self.config.election_ticks_min {
                self.abort_transfer();
            }
        }
        if self.heartbeat_elapsed_ticks >= self.config.heartbeat_ticks {
            self.broadcast_heartbeat();
            self.maybe_readmit();
        }
        self.count_ticks_awaiting_replies();
    }

    /// Check-quorum: did a majority of every deciding voter set (self
    /// included) reply in this interval?
    fn quorum_recently_active(&self) -> bool {
        self.joint_majority_value(1, |p| u64::from(p.recent_active)) == 1
    }

    pub(super) fn abort_transfer(&mut self) {
        if let Some(transfer) = self.transfer.take() {
            self.events.push(Event::TransferAborted {
                to: transfer.to,
                term: self.term,
            });
        }
    }
}
