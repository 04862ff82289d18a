//! Member identity: which incarnation of a peer is counted, bootstrapping
//! the registry and re-admitting a node that lost its disk (the rules are
//! in `raft::registry`).

use super::RawNode;
use crate::message::{EntryKind, Incarnation, Index, NodeId, NO_INCARNATION};
use crate::raft::registry::{self, Registry};
use crate::raft::{Event, Role};

impl RawNode {
    /// True when `incarnation` speaks for the voter `peer`. Without any
    /// registry in the log, every incarnation does (and elections are
    /// unanimous). Otherwise the newest registry must name it; while that
    /// registry re-admits a member and is not known committed, the one
    /// before it must name it too, so the member that changes counts in
    /// neither. The first registry of a log, written by a leader that every
    /// member elected, counts as soon as it is appended.
    pub(super) fn counts(&self, peer: NodeId, incarnation: Incarnation) -> bool {
        if planted!(self, CountAnyIncarnation) {
            return true;
        }
        if incarnation == NO_INCARNATION {
            return false;
        }
        let newest = self.log.newest_registry();
        if newest.is_empty() {
            return true;
        }
        let previous = self.log.registry_before_newest();
        let previous_agrees = !self.log.registry_change_pending()
            || previous.is_empty()
            || previous.get(&peer) == Some(&incarnation);
        newest.get(&peer) == Some(&incarnation) && previous_agrees
    }

    /// True when this node may grant `incarnation` of `candidate` a vote
    /// whose log ends at (`last_index`, `last_term`): the newest registry
    /// names it (or the log holds none), or the candidate's log holds more
    /// than ours. The second case is a member whose re-admission this node
    /// has not received: it campaigns only once it knows itself re-admitted
    /// and committed (`may_campaign`) and counts votes by its own log, so
    /// the vote is safe, and without it a re-admitted member holding the
    /// newest entries could never be elected by a node that lagged behind.
    /// A node back with an empty disk holds less than any voter and gets
    /// no vote.
    pub(super) fn may_vote_for(
        &self,
        candidate: NodeId,
        incarnation: Incarnation,
        last_index: Index,
        last_term: crate::message::Term,
    ) -> bool {
        if planted!(self, CountAnyIncarnation) {
            return true;
        }
        let newest = self.log.newest_registry();
        let named = newest.is_empty() || newest.get(&candidate) == Some(&incarnation);
        incarnation != NO_INCARNATION && (named || self.log.is_behind(last_index, last_term))
    }

    /// The registry whose incarnations are settled: the newest one, or the
    /// one before it while the newest re-admits a member and is not known
    /// committed.
    fn settled_registry(&self) -> &Registry {
        let previous = self.log.registry_before_newest();
        if self.log.registry_change_pending() && !previous.is_empty() {
            previous
        } else {
            self.log.newest_registry()
        }
    }

    /// (commit index, term of its entry) as vote requests carry it.
    pub(super) fn commit_point(&self) -> (Index, crate::message::Term) {
        let commit = self.log.committed();
        (commit, self.log.term_at(commit).unwrap_or(0))
    }

    /// Another node knows (`commit`, `commit_term`) committed: if this log
    /// holds that entry, everything through it is the committed log (Log
    /// Matching), so the commit index may move there. A node that lost its
    /// commit index in a restart may otherwise wait for a leader that only
    /// its settled registry would let it elect.
    pub(super) fn learn_commit(&mut self, commit: Index, commit_term: crate::message::Term) {
        if commit > self.log.committed() && self.log.term_at(commit) == Some(commit_term) {
            self.log.commit_to(commit);
        }
    }

    /// No registry in the log at all: elections need every member's vote.
    pub(super) fn bootstrapping(&self) -> bool {
        self.log.newest_registry().is_empty()
    }

    /// True when this node's own incarnation is the registered one (or no
    /// registry names this id yet). A node that came back with an empty
    /// disk does not campaign until it is re-admitted: nobody would count
    /// its votes, and its terms would only disturb the cluster.
    pub(super) fn may_campaign(&self) -> bool {
        let own = self.config.incarnation;
        [self.settled_registry(), self.log.newest_registry()]
            .iter()
            .all(|r| r.get(&self.config.id).is_none_or(|&i| i == own))
    }

    /// True when the log itself settles this node's incarnation as a
    /// voter: the newest registry names it, and so does the one before it
    /// (or there is none before it). A re-admission is settled once the
    /// leader's second registry entry follows it (see `maybe_readmit`).
    pub(super) fn registered(&self) -> bool {
        let (id, own) = (self.config.id, self.config.incarnation);
        let previous = self.log.registry_before_newest();
        self.log.newest_registry().get(&id) == Some(&own)
            && (previous.is_empty() || previous.get(&id) == Some(&own))
    }

    /// Reports, once per (peer, incarnation), a message from a life of
    /// `peer` other than the registered one.
    pub(super) fn note_sender(&mut self, peer: NodeId, incarnation: Incarnation) {
        let Some(&registered) = self.settled_registry().get(&peer) else {
            return;
        };
        if registered == incarnation || self.strangers_reported.get(&peer) == Some(&incarnation) {
            return;
        }
        self.strangers_reported.insert(peer, incarnation);
        self.events.push(Event::PeerIncarnationChanged {
            peer,
            incarnation,
            registered,
        });
    }

    /// Leader, at the start of a term without a committed registry: the
    /// registry of the voters that elected it (every member, since such an
    /// election is unanimous), to append as the term's first entry.
    pub(super) fn bootstrap_registry(&self) -> Option<Registry> {
        if !self.bootstrapping() {
            return None;
        }
        let mut registry = self.vote_incarnations.clone();
        registry.insert(self.config.id, self.config.incarnation);
        let complete = self
            .config
            .voters
            .iter()
            .all(|id| registry.contains_key(id));
        complete.then_some(registry)
    }

    /// Peers whose replies come from an incarnation that is not counted (a
    /// peer that has not replied in this term is not one of them).
    pub(super) fn strangers(&self) -> Vec<NodeId> {
        self.progress
            .iter()
            .filter(|(&id, p)| p.incarnation != NO_INCARNATION && !self.counts(id, p.incarnation))
            .map(|(&id, _)| id)
            .collect()
    }

    /// Leader: re-admits one peer that came back with an empty disk, once it
    /// holds everything committed, by appending a registry naming its new
    /// incarnation. Only one registry change is in flight at a time, and
    /// only after an entry of this term committed.
    ///
    /// Once a change has committed, the leader appends the same registry
    /// again, as joint consensus appends C_new after C_old,new: a log that
    /// holds both entries shows by itself that the change committed, so a
    /// node that lost its commit index in a restart still counts the new
    /// incarnation. Without it, losing the commit index on every node that
    /// knew it, and then one more member, would leave the change pending
    /// for good.
    pub(super) fn maybe_readmit(&mut self) {
        if self.role != Role::Leader
            || self.transfer.is_some()
            || self.bootstrapping()
            || self.log.registry_change_pending()
            || !self.committed_in_current_term()
        {
            return;
        }
        let newest = self.log.newest_registry();
        let previous = self.log.registry_before_newest();
        if !previous.is_empty() && previous != newest {
            let settled = registry::encode(newest);
            self.log.append_new(self.term, EntryKind::Registry, settled);
            self.proposals_unsent = true;
            return;
        }
        let committed = self.log.committed();
        let ready = self.progress.iter().find(|(&id, p)| {
            p.incarnation != NO_INCARNATION
                && p.match_index >= committed
                && !self.counts(id, p.incarnation)
        });
        let Some((&peer, progress)) = ready else {
            return;
        };
        let (incarnation, match_index) = (progress.incarnation, progress.match_index);
        let mut registry = self.log.newest_registry().clone();
        registry.insert(peer, incarnation);
        let index =
            self.log
                .append_new(self.term, EntryKind::Registry, registry::encode(&registry));
        self.proposals_unsent = true;
        self.events.push(Event::ReadmissionProposed {
            peer,
            incarnation,
            index,
            match_index,
        });
    }

    /// Reports every member whose registered incarnation changed in the
    /// committed registry since the last report, and, once, that this node
    /// is not the incarnation its log registers for its id.
    pub(super) fn report_registry_changes(&mut self) {
        let own = self.config.incarnation;
        if let Some(&registered) = self.settled_registry().get(&self.config.id) {
            if registered != own && !self.awaiting_readmission_reported {
                self.awaiting_readmission_reported = true;
                self.events.push(Event::AwaitingReadmission {
                    incarnation: own,
                    registered,
                });
            }
        }
        let committed = self.log.committed_registry();
        if *committed == self.registry_reported {
            return;
        }
        let index: Index = self.log.committed();
        for (&peer, &incarnation) in committed {
            let previous = self.registry_reported.get(&peer).copied();
            if previous.is_some() && previous != Some(incarnation) {
                self.events.push(Event::MemberReadmitted {
                    peer,
                    incarnation,
                    index,
                });
            }
        }
        self.registry_reported = committed.clone();
        self.strangers_reported.clear();
    }
}
