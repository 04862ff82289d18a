//! Membership on the node: which configurations decide (joint while a
//! change is pending), which incarnation of a peer is counted, bootstrap,
//! proposed configuration changes, re-admission of a node that lost its
//! disk and the removed leader's hand-off (the rules are in
//! `raft::membership`).

use super::RawNode;
use crate::message::{Body, EntryKind, Incarnation, Index, NodeId, Term, NO_INCARNATION};
use crate::raft::membership::{self, Member, MemberRole, Membership, ADDRESS_BYTES_MAX};
use crate::raft::progress::Progress;
use crate::raft::quorum::{self, VoteResult};
use crate::raft::{ConfChange, ConfChangeError, Event, Role, StepDownReason};

/// The voters one configuration counts: (id, incarnation), where
/// `NO_INCARNATION` accepts any incarnation (the bootstrap configuration,
/// before the cluster's first configuration entry).
pub(super) type VoterSet = Vec<(NodeId, Incarnation)>;

impl RawNode {
    /// No configuration in the log at all: elections need every member of
    /// `Config::voters`.
    pub(super) fn bootstrapping(&self) -> bool {
        self.log.newest_membership().is_empty()
    }

    /// The voter sets a decision needs a majority of: the newest
    /// configuration, and while it is not known committed the one before
    /// it as well (joint consensus). Bootstrap: `Config::voters`.
    pub(super) fn voter_sets(&self) -> Vec<VoterSet> {
        if self.bootstrapping() {
            return vec![self
                .config
                .voters
                .iter()
                .map(|&id| (id, NO_INCARNATION))
                .collect()];
        }
        let set = |m: &Membership| -> VoterSet {
            membership::voters(m)
                .map(|member| (member.id, member.incarnation))
                .collect()
        };
        let newest = self.log.newest_membership();
        let previous = self.log.membership_before_newest();
        let joint = !planted!(self, TwoChangesInFlight);
        if joint
            && self.log.membership_change_pending()
            && !previous.is_empty()
            && previous != newest
        {
            vec![set(previous), set(newest)]
        } else {
            vec![set(newest)]
        }
    }

    /// The largest value a majority of every voter set reaches: `own` for
    /// this node, `peer(progress)` for a peer whose messages carry the
    /// incarnation the set names, 0 for any other voter (one that lost its
    /// disk stores nothing and confirms nothing).
    pub(super) fn joint_majority_value(&self, own: u64, peer: impl Fn(&Progress) -> u64) -> u64 {
        let value = |id: NodeId| -> (Incarnation, u64) {
            if id == self.config.id {
                return (self.config.incarnation, own);
            }
            self.progress
                .get(&id)
                .map_or((NO_INCARNATION, 0), |p| (p.incarnation, peer(p)))
        };
        self.voter_sets()
            .iter()
            .map(|set| {
                let values: Vec<u64> = set
                    .iter()
                    .map(|&(id, required)| {
                        let (incarnation, reached) = value(id);
                        let counted = planted!(self, CountAnyIncarnation)
                            || (incarnation != NO_INCARNATION
                                && (required == NO_INCARNATION || required == incarnation));
                        if counted {
                            reached
                        } else {
                            0
                        }
                    })
                    .collect();
                quorum::majority_value(&values)
            })
            .min()
            .unwrap_or(0)
    }

    /// The election's outcome from the answers in `self.votes`: won once
    /// every voter set granted by a majority (bootstrap: unanimously).
    pub(super) fn tally_votes(&self) -> VoteResult {
        let bootstrapping = self.bootstrapping();
        let mut results = self.voter_sets().into_iter().map(|set| {
            let (mut granted, mut refused) = (0, 0);
            for &(id, required) in &set {
                let Some(&(incarnation, answer)) = self.votes.get(&id) else {
                    continue;
                };
                let counted = planted!(self, CountAnyIncarnation)
                    || required == NO_INCARNATION
                    || required == incarnation;
                match (counted, answer) {
                    (true, true) => granted += 1,
                    (true, false) => refused += 1,
                    (false, _) => {}
                }
            }
            if bootstrapping {
                quorum::unanimous_vote_result(set.len(), granted, refused)
            } else {
                quorum::vote_result(set.len(), granted, refused)
            }
        });
        let results: Vec<VoteResult> = results.by_ref().collect();
        if results.contains(&VoteResult::Lost) {
            VoteResult::Lost
        } else if results.iter().all(|&r| r == VoteResult::Won) {
            VoteResult::Won
        } else {
            VoteResult::Pending
        }
    }

    /// Every node the leader replicates to: the members of the deciding
    /// configurations (learners included) or, at bootstrap, the
    /// `Config::voters`; never self.
    pub(super) fn peers(&self) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = if self.bootstrapping() {
            self.config.voters.clone()
        } else {
            let mut ids: Vec<NodeId> = self.log.newest_membership().keys().copied().collect();
            if self.log.membership_change_pending() {
                ids.extend(self.log.membership_before_newest().keys().copied());
            }
            ids
        };
        ids.sort_unstable();
        ids.dedup();
        ids.retain(|&id| id != self.config.id);
        ids
    }

    /// Leader: keeps one progress per peer after the configuration changed
    /// (a new member is probed from the end of the log; a member gone from
    /// every deciding configuration is no longer replicated to).
    pub(super) fn sync_progress(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let peers = self.peers();
        self.progress.retain(|id, _| peers.contains(id));
        let next_index = self.log.last_index() + 1;
        for peer in peers {
            if let std::collections::btree_map::Entry::Vacant(vacant) = self.progress.entry(peer) {
                vacant.insert(Progress::new(next_index));
                self.send_append(peer, super::replication::EmptyAppend::Send);
            }
        }
    }

    /// True when `incarnation` is the life of `peer` the newest
    /// configuration names (in any role; at bootstrap, any life), and the
    /// one before it agrees while a change is pending and names the peer.
    pub(super) fn counts(&self, peer: NodeId, incarnation: Incarnation) -> bool {
        if planted!(self, CountAnyIncarnation) {
            return true;
        }
        if incarnation == NO_INCARNATION {
            return false;
        }
        if self.bootstrapping() {
            return true;
        }
        let named = |m: &Membership| m.get(&peer).map(|member| member.incarnation);
        let previous_agrees = !self.log.membership_change_pending()
            || named(self.log.membership_before_newest()).is_none_or(|i| i == incarnation);
        named(self.log.newest_membership()) == Some(incarnation) && previous_agrees
    }

    /// True when this node may grant `incarnation` of `candidate` a vote
    /// whose log ends at (`last_index`, `last_term`): the newest
    /// configuration names it (or the log holds none), or the candidate's
    /// log holds more than ours (a member added or re-admitted in entries
    /// this node has not received; thesis §4.2.3: a server grants votes to
    /// candidates outside its configuration). A node back with an empty
    /// disk holds less than any voter and gets no vote. Granting is always
    /// safe; a candidate counts only the voters of its own configurations.
    pub(super) fn may_vote_for(
        &self,
        candidate: NodeId,
        incarnation: Incarnation,
        last_index: Index,
        last_term: Term,
    ) -> bool {
        if planted!(self, CountAnyIncarnation) {
            return true;
        }
        let newest = self.log.newest_membership();
        let named = newest.is_empty()
            || newest
                .get(&candidate)
                .is_some_and(|m| m.incarnation == incarnation);
        incarnation != NO_INCARNATION && (named || self.log.is_behind(last_index, last_term))
    }

    /// The configuration whose incarnations are settled: the newest one, or
    /// the one before it while the newest is not known committed.
    fn settled_membership(&self) -> &Membership {
        let previous = self.log.membership_before_newest();
        if self.log.membership_change_pending() && !previous.is_empty() {
            previous
        } else {
            self.log.newest_membership()
        }
    }

    /// (commit index, term of its entry) as vote requests carry it.
    pub(super) fn commit_point(&self) -> (Index, Term) {
        let commit = self.log.committed();
        (commit, self.log.term_at(commit).unwrap_or(0))
    }

    /// Another node knows (`commit`, `commit_term`) committed: if this log
    /// holds that entry, everything through it is the committed log (Log
    /// Matching), so the commit index may move there. A node that lost its
    /// commit index in a restart may otherwise wait for a leader that only
    /// the joint configuration would let it elect.
    pub(super) fn learn_commit(&mut self, commit: Index, commit_term: Term) {
        if commit > self.log.committed() && self.log.term_at(commit) == Some(commit_term) {
            self.log.commit_to(commit);
        }
    }

    /// True when this node may campaign: it is a member, as its own
    /// incarnation, of a deciding configuration (at bootstrap: one of
    /// `Config::voters`). A voter that the pending change removes still
    /// campaigns: its log may be the only one holding that change, and the
    /// joint majority it needs includes the new configuration's. A learner
    /// campaigns too, though its own vote never counts: it may have been
    /// promoted in entries it has not received yet, while holding the
    /// freshest log, which every voter's vote would need; elected, it
    /// hands leadership to the most caught-up voter as soon as an entry of
    /// its term commits (`maybe_step_down_removed`). Pre-vote and the
    /// leader lease keep a learner that merely lost its leader from
    /// disturbing anyone. A removed member, a node started to join and a
    /// node back with an empty disk wait for a leader.
    pub(super) fn may_campaign(&self) -> bool {
        let (id, own) = (self.config.id, self.config.incarnation);
        if self.bootstrapping() {
            return self.config.voters.contains(&id);
        }
        let member = |m: &Membership| {
            m.get(&id)
                .is_some_and(|member| [own, NO_INCARNATION].contains(&member.incarnation))
        };
        let pending_voter = self.voter_sets().iter().any(|set| set.contains(&(id, own)));
        member(self.log.newest_membership()) || pending_voter
    }

    /// True when this node is a voter of the newest configuration as its
    /// own incarnation (a leader that is not steps down once that
    /// configuration is committed).
    fn in_newest_voters(&self) -> bool {
        self.log
            .newest_membership()
            .get(&self.config.id)
            .is_some_and(|m| m.is_voter() && m.incarnation == self.config.incarnation)
    }

    /// True when this node's incarnation is a member for good: the newest
    /// configuration names it and that entry is known committed, so every
    /// future leader's log holds it (Leader Completeness) and none names
    /// another incarnation for it. The second copy a leader appends is not
    /// waited for: a leader whose log compacted the first copy away sees
    /// nothing left to confirm and may never append it.
    pub(super) fn registered(&self) -> bool {
        let (id, own) = (self.config.id, self.config.incarnation);
        self.log
            .newest_membership()
            .get(&id)
            .is_some_and(|member| member.incarnation == own)
            && !self.log.membership_change_pending()
    }

    /// Reports, once per (peer, incarnation), a message from a life of
    /// `peer` other than the configured one.
    pub(super) fn note_sender(&mut self, peer: NodeId, incarnation: Incarnation) {
        let Some(registered) = self.settled_membership().get(&peer).map(|m| m.incarnation) else {
            return;
        };
        if registered == NO_INCARNATION
            || registered == incarnation
            || self.strangers_reported.get(&peer) == Some(&incarnation)
        {
            return;
        }
        self.strangers_reported.insert(peer, incarnation);
        self.events.push(Event::PeerIncarnationChanged {
            peer,
            incarnation,
            registered,
        });
    }

    /// Leader, at the start of a term without any configuration: the
    /// configuration of the voters that elected it (every member, since
    /// such an election is unanimous), to append as the term's first entry.
    pub(super) fn bootstrap_membership(&self) -> Option<Membership> {
        if !self.bootstrapping() {
            return None;
        }
        let mut incarnations = self.vote_incarnations.clone();
        incarnations.insert(self.config.id, self.config.incarnation);
        let members: Option<Vec<Member>> = self
            .config
            .voters
            .iter()
            .map(|id| {
                let inc = *incarnations.get(id)?;
                let peer_addr = self.config.voter_peer_addrs.get(id).cloned();
                Some(Member {
                    peer_addr: peer_addr.unwrap_or_default(),
                    ..Member::voter(*id, inc)
                })
            })
            .collect();
        membership::from_members(&members?)
    }

    /// Peers whose replies come from an incarnation that is not counted (a
    /// peer that has not replied in this term is not one of them, nor a
    /// learner added before its incarnation was known).
    pub(super) fn strangers(&self) -> Vec<NodeId> {
        let newest = self.log.newest_membership();
        self.progress
            .iter()
            .filter(|(&id, p)| p.incarnation != NO_INCARNATION && !self.counts(id, p.incarnation))
            .filter(|(id, _)| {
                newest
                    .get(id)
                    .is_none_or(|m| m.incarnation != NO_INCARNATION)
            })
            .map(|(&id, _)| id)
            .collect()
    }

    /// Why the leader cannot change the configuration now, if it cannot:
    /// not leading, a transfer under way, no entry of its term committed
    /// yet (a new leader's log may hold an uncommitted change it does not
    /// know about), or a change (or its second copy) not committed yet.
    fn conf_change_refusal(&self) -> Option<ConfChangeError> {
        if self.role != Role::Leader {
            return Some(ConfChangeError::NotLeader {
                leader: self.leader_id,
            });
        }
        if self.transfer.is_some() {
            return Some(ConfChangeError::TransferInProgress);
        }
        if !self.committed_in_current_term() {
            return Some(ConfChangeError::TermNotCommitted);
        }
        if self.log.membership_change_pending() || !self.change_confirmed() || self.bootstrapping()
        {
            return Some(ConfChangeError::ChangeInFlight);
        }
        None
    }

    /// True when the log shows by itself that its newest configuration
    /// change committed: the entry before it holds the same configuration
    /// (the second copy), or there is no configuration before it (the
    /// cluster's first one, which counts from the moment it is appended:
    /// every member elected its writer).
    fn change_confirmed(&self) -> bool {
        let previous = self.log.membership_before_newest();
        previous.is_empty() || previous == self.log.newest_membership()
    }

    /// See `RawNode::propose_conf_change`.
    pub(super) fn propose_conf_change_now(
        &mut self,
        change: ConfChange,
    ) -> Result<(Term, Index), ConfChangeError> {
        if let Some(refusal) = self.conf_change_refusal() {
            if !(planted!(self, TwoChangesInFlight)
                && refusal == ConfChangeError::ChangeInFlight
                && !self.bootstrapping())
            {
                return Err(refusal);
            }
        }
        let next = self.changed_membership(change)?;
        Ok((self.term, self.append_membership(next)))
    }

    /// The configuration `change` leads to from the newest one, or why it
    /// is refused.
    fn changed_membership(&self, change: ConfChange) -> Result<Membership, ConfChangeError> {
        let mut next = self.log.newest_membership().clone();
        match change {
            ConfChange::AddLearner {
                id,
                incarnation,
                peer_addr,
                client_addr,
            } => {
                if id == crate::message::NO_NODE
                    || peer_addr.len() > ADDRESS_BYTES_MAX
                    || client_addr.len() > ADDRESS_BYTES_MAX
                {
                    return Err(ConfChangeError::InvalidMember { id });
                }
                if next.contains_key(&id) {
                    return Err(ConfChangeError::AlreadyMember { id });
                }
                let member = Member {
                    id,
                    incarnation,
                    role: MemberRole::Learner,
                    peer_addr,
                    client_addr,
                };
                next.insert(id, member);
            }
            ConfChange::Promote { id } => {
                let committed = self.log.committed();
                let member = next
                    .get_mut(&id)
                    .ok_or(ConfChangeError::UnknownMember { id })?;
                if member.is_voter() {
                    return Err(ConfChangeError::NotALearner { id });
                }
                let (incarnation, match_index) = self
                    .progress
                    .get(&id)
                    .map_or((NO_INCARNATION, 0), |p| (p.incarnation, p.match_index));
                if incarnation == NO_INCARNATION || match_index < committed {
                    return Err(ConfChangeError::NotCaughtUp {
                        id,
                        match_index,
                        commit_index: committed,
                    });
                }
                member.role = MemberRole::Voter;
                member.incarnation = incarnation;
            }
            ConfChange::Remove { id } => {
                let removed = next
                    .remove(&id)
                    .ok_or(ConfChangeError::UnknownMember { id })?;
                if removed.is_voter() && membership::voters(&next).next().is_none() {
                    return Err(ConfChangeError::LastVoter { id });
                }
            }
        }
        Ok(next)
    }

    /// Leader: appends `next` as a configuration entry; it is in force at
    /// once (joint with the one before until committed).
    fn append_membership(&mut self, next: Membership) -> Index {
        let index = self
            .log
            .append_new(self.term, EntryKind::Config, membership::encode(&next));
        self.proposals_unsent = true;
        self.sync_progress();
        index
    }

    /// Leader: after a configuration change committed, appends it a second
    /// time (once), so a log holding both copies shows by itself that it
    /// committed; otherwise re-admits one member that lost its disk once it
    /// holds everything committed, with a configuration naming its new
    /// incarnation in its role. Only one change is in flight at a time, and
    /// only after an entry of this term committed.
    pub(super) fn maybe_readmit(&mut self) {
        if self.role != Role::Leader
            || self.transfer.is_some()
            || self.bootstrapping()
            || self.log.membership_change_pending()
            || !self.committed_in_current_term()
        {
            return;
        }
        let newest = self.log.newest_membership();
        let previous = self.log.membership_before_newest();
        if !previous.is_empty() && previous != newest {
            let settled = newest.clone();
            self.append_membership(settled);
            return;
        }
        if !self.in_newest_voters() {
            // Removed: it only hands over (see `maybe_step_down_removed`).
            return;
        }
        let committed = self.log.committed();
        let ready = self.progress.iter().find(|(&id, p)| {
            p.incarnation != NO_INCARNATION
                && p.match_index >= committed
                && newest.get(&id).is_some_and(|m| {
                    m.incarnation != p.incarnation
                        && (m.incarnation != NO_INCARNATION || m.is_voter())
                })
        });
        let Some((&peer, progress)) = ready else {
            return;
        };
        let (incarnation, match_index) = (progress.incarnation, progress.match_index);
        let mut next = newest.clone();
        if let Some(member) = next.get_mut(&peer) {
            member.incarnation = incarnation;
        }
        let index = self.append_membership(next);
        self.events.push(Event::ReadmissionProposed {
            peer,
            incarnation,
            index,
            match_index,
        });
    }

    /// Leader, after its commit index moved: once the configuration that
    /// removed it is committed, and so is its second copy, it stops leading
    /// (thesis §4.2.2) and tells the most caught-up remaining voter to
    /// campaign at once, so the others need not wait out an election
    /// timeout. Waiting for the second copy matters: a majority of the new
    /// configuration then holds a log that shows the change committed, so
    /// they elect among themselves without the removed members' votes
    /// (which a removed member holding a longer log would refuse).
    pub(super) fn maybe_step_down_removed(&mut self) {
        let settled = self.change_confirmed();
        if self.role != Role::Leader
            || self.bootstrapping()
            || self.log.membership_change_pending()
            || !settled
            || self.in_newest_voters()
        {
            return;
        }
        let successor = membership::voters(self.log.newest_membership())
            .filter_map(|m| {
                let progress = self.progress.get(&m.id)?;
                (progress.incarnation == m.incarnation).then_some((progress.match_index, m.id))
            })
            .max();
        if let Some((_, successor)) = successor {
            self.send_appends(successor);
            self.send(successor, Body::TimeoutNow);
        }
        let term = self.term;
        self.become_follower(term, crate::message::NO_NODE, StepDownReason::Removed);
    }

    /// Reports every member whose incarnation changed in the committed
    /// configuration since the last report, and, once, that this node is
    /// not the incarnation its log names for its id.
    pub(super) fn report_membership_changes(&mut self) {
        let own = self.config.incarnation;
        if let Some(registered) = self.settled_membership().get(&self.config.id) {
            let registered = registered.incarnation;
            if registered != own
                && registered != NO_INCARNATION
                && !self.awaiting_readmission_reported
            {
                self.awaiting_readmission_reported = true;
                self.events.push(Event::AwaitingReadmission {
                    incarnation: own,
                    registered,
                });
            }
        }
        let committed = self.log.committed_membership();
        if *committed == self.membership_reported {
            return;
        }
        let index: Index = self.log.committed();
        for (&peer, member) in committed {
            let previous = self.membership_reported.get(&peer);
            // A learner whose life is not known yet (a replacement added
            // back) is not a re-admission: it counts once promoted.
            let readmitted = member.is_voter()
                && member.incarnation != NO_INCARNATION
                && previous.is_some_and(|p| {
                    p.incarnation != NO_INCARNATION && p.incarnation != member.incarnation
                });
            if readmitted {
                self.events.push(Event::MemberReadmitted {
                    peer,
                    incarnation: member.incarnation,
                    index,
                });
            }
        }
        if !self.membership_reported.is_empty() || !committed.is_empty() {
            self.events.push(Event::MembershipCommitted {
                index,
                voters: membership::voters(committed).map(|m| m.id).collect(),
                learners: committed
                    .values()
                    .filter(|m| !m.is_voter())
                    .map(|m| m.id)
                    .collect(),
            });
        }
        self.membership_reported = committed.clone();
        self.strangers_reported.clear();
    }
}
