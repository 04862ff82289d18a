//! Membership in the fault schedule: the leader is asked to add a learner
//! (a node started with an empty disk, as `--join` does), to promote a
//! learner or to remove a member (the leader included), between 3 and
//! `MEMBER_SLOTS` voters, while every other fault goes on. A member whose
//! removal is committed (or a joiner the cluster never added) is stopped
//! and its disk discarded, so adding its id again is a replacement by a
//! new incarnation. Wipes, removals and promotions are drawn only while
//! the members whose disks are intact keep a majority of every
//! configuration that may still decide (`voter_sets_in_play`).

use std::collections::BTreeSet;

use raftkv::message::{NodeId, NO_INCARNATION};
use raftkv::raft::{ConfChange, Role, Status};

use super::{chance, DurableStore, Failure, Phase, Sim};

/// Node ids 1..=MEMBER_SLOTS can be members; a cluster starts with the
/// first `cluster_size` of them as voters.
pub const MEMBER_SLOTS: usize = 5;
/// Removals keep at least this many voters.
pub const VOTERS_MIN: usize = 3;
/// Chance an accepted change is followed at once by a second one (which
/// must be refused: one change is in flight at a time).
pub const BURST_PROBABILITY: f64 = 0.3;
/// Chance an accepted change is followed by a partition that leaves the
/// leader with the smallest majority of its newest configuration.
pub const STRIKE_AFTER_CHANGE_PROBABILITY: f64 = 0.2;

impl Sim {
    /// The configuration of the running leader of the highest term, once it
    /// is settled: no change pending, an entry of its term committed and
    /// applied (so no entry its log lacks can ever commit), and no leader
    /// of a later term was ever elected (a deposed leader, even one still
    /// running, knows nothing of what a later leader committed: that one's
    /// configuration may still decide).
    pub(super) fn settled_leader_status(&self) -> Option<Status> {
        let leader = self.current_leader()?;
        let status = self.nodes[leader].running.as_ref()?.raw.status();
        let applied_in_term = self
            .checker
            .applied(status.applied_index)
            .is_some_and(|record| record.term == status.term);
        let of_newest_term = self.checker.newest_leader_term() == Some(status.term);
        let settled = status.role == Role::Leader
            && of_newest_term
            && applied_in_term
            && !status.joint()
            && status.membership_index <= status.applied_index
            && !status.members.is_empty();
        settled.then_some(status)
    }

    /// Once the leader's configuration is settled it alone may decide:
    /// members outside it are stopped (a removal that committed, or a
    /// joiner whose addition was lost or refused).
    pub(super) fn membership_upkeep(&mut self) -> Result<(), Failure> {
        let Some(status) = self.settled_leader_status() else {
            return Ok(());
        };
        self.voter_sets_in_play = vec![status.voters().into_iter().collect()];
        let members: BTreeSet<NodeId> = status.members.iter().map(|m| m.id).collect();
        for i in 0..self.nodes.len() {
            let id = self.nodes[i].id;
            if !self.nodes[i].absent && !members.contains(&id) {
                self.stop_for_good(i)?;
            }
        }
        Ok(())
    }

    /// Stops node `i` (removed from the cluster) and discards its disk.
    fn stop_for_good(&mut self, i: usize) -> Result<(), Failure> {
        let id = self.nodes[i].id;
        if let Some(running) = self.nodes[i].running.take() {
            let held_reads = running
                .driver
                .as_ref()
                .map(|driver| driver.held_reads().collect())
                .unwrap_or_default();
            self.release_clients_of(&running, held_reads);
        }
        let node = &mut self.nodes[i];
        node.absent = true;
        node.restart_at_tick = None;
        node.paused_until_tick = 0;
        node.durable = DurableStore::default();
        self.unreadmitted.remove(&id);
        trace!(self, "n{id} STOPPED: not a member");
        Ok(())
    }

    /// The status of running node `i`.
    fn status_of(&self, i: usize) -> Status {
        self.nodes[i].running.as_ref().expect("runs").raw.status()
    }

    /// True while losing voter `id` (a wipe, or its removal) leaves the
    /// intact voters a majority of every configuration that may decide.
    pub(super) fn may_lose_voter(&self, id: NodeId) -> bool {
        self.voter_sets_in_play.iter().all(|set| {
            let intact = set
                .iter()
                .filter(|&&v| v != id && !self.unreadmitted.contains(&v))
                .count();
            !set.contains(&id) || intact > set.len() / 2
        })
    }

    /// True while promoting learner `id` leaves the intact voters a
    /// majority of the new voter set: a learner that lost its disk since
    /// the leader last heard from it is named by its old life, which no
    /// longer answers, and two such voters of four would leave the change
    /// unable ever to commit.
    fn may_promote(&self, voters: &[NodeId], id: NodeId) -> bool {
        let new_voters: Vec<NodeId> = voters.iter().copied().chain([id]).collect();
        let intact = new_voters
            .iter()
            .filter(|v| !self.unreadmitted.contains(v))
            .count();
        intact > new_voters.len() / 2
    }

    /// One membership change asked of the current leader: add a learner in
    /// an empty slot, promote a learner, or remove a member.
    pub(super) fn change_membership(&mut self) -> Result<(), Failure> {
        if self.phase != Phase::Faults
            || !chance(&mut self.rng, self.profile.membership_change_probability)
        {
            return Ok(());
        }
        let Some(leader) = self.current_leader() else {
            return Ok(());
        };
        let status = self.status_of(leader);
        let voters = status.voters();
        let learners = status.learners();
        let members: BTreeSet<NodeId> = status.members.iter().map(|m| m.id).collect();
        let empty_slots: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].absent && !members.contains(&self.nodes[i].id))
            .collect();
        let removable: Vec<NodeId> = status
            .members
            .iter()
            .filter(|m| !m.is_voter() || (voters.len() > VOTERS_MIN && self.may_lose_voter(m.id)))
            .map(|m| m.id)
            .collect();
        // One of the changes that can apply, drawn evenly.
        let applicable: Vec<u64> = [
            !empty_slots.is_empty(),
            !learners.is_empty(),
            !removable.is_empty(),
        ]
        .iter()
        .enumerate()
        .filter(|(_, &can)| can)
        .map(|(kind, _)| kind as u64)
        .collect();
        if applicable.is_empty() {
            return Ok(());
        }
        let choice = applicable[self.rng.range(0, applicable.len() as u64) as usize];
        let change = match choice {
            0 if !empty_slots.is_empty() => {
                let i = empty_slots[self.rng.range(0, empty_slots.len() as u64) as usize];
                return self.add_learner(leader, i);
            }
            1 if !learners.is_empty() => {
                let id = learners[self.rng.range(0, learners.len() as u64) as usize];
                if !self.may_promote(&voters, id) {
                    return Ok(());
                }
                ConfChange::Promote { id }
            }
            2 if !removable.is_empty() => ConfChange::Remove {
                id: removable[self.rng.range(0, removable.len() as u64) as usize],
            },
            _ => return Ok(()),
        };
        if !self.propose_change(leader, change)? {
            return Ok(());
        }
        // Two changes in flight (a correct leader refuses the second) is
        // the moment a partition can split the cluster: strike then always.
        let two_in_flight =
            chance(&mut self.rng, BURST_PROBABILITY) && self.second_removal(leader)?;
        if two_in_flight || chance(&mut self.rng, STRIKE_AFTER_CHANGE_PROBABILITY) {
            self.cut_off_smallest_majority(leader);
        }
        Ok(())
    }

    /// A second removal right after a change: it must be refused while the
    /// first is in flight (two single-member steps at once may leave
    /// configurations without a common member, e.g. {1,2,3,4,5} and
    /// {1,2,3}).
    /// Returns whether the leader accepted it.
    fn second_removal(&mut self, leader: usize) -> Result<bool, Failure> {
        let status = self.status_of(leader);
        let voters = status.voters();
        if voters.len() <= VOTERS_MIN {
            return Ok(false);
        }
        let candidates: Vec<NodeId> = voters
            .into_iter()
            .filter(|&id| self.may_lose_voter(id))
            .collect();
        if candidates.is_empty() {
            return Ok(false);
        }
        let id = candidates[self.rng.range(0, candidates.len() as u64) as usize];
        self.propose_change(leader, ConfChange::Remove { id })
    }

    /// Right after a change, the leader and just enough voters of its
    /// newest configuration to be a majority of it are cut off from the
    /// rest, who may hold only an older configuration.
    fn cut_off_smallest_majority(&mut self, leader: usize) {
        let status = self.status_of(leader);
        let leader_id = status.id;
        let voters = status.voters();
        let mut side = vec![leader_id];
        side.extend(
            voters
                .iter()
                .copied()
                .filter(|&id| id != leader_id)
                .take((voters.len() / 2 + 1).saturating_sub(1)),
        );
        self.net.heal();
        self.net.split(&side);
        trace!(
            self,
            "n{leader_id} STRUCK after a membership change: PARTITION {}",
            self.net.describe_partition()
        );
    }

    /// Starts slot `i` as a new node with an empty disk and no voters (as
    /// `--join` starts one), and asks the leader to add it as a learner;
    /// if refused, the node is stopped again.
    fn add_learner(&mut self, leader: usize, i: usize) -> Result<(), Failure> {
        let incarnation = self.rng.next_u64() | 1;
        let known = chance(&mut self.rng, 0.7);
        let id = self.nodes[i].id;
        let node = &mut self.nodes[i];
        node.config.incarnation = incarnation;
        node.config.voters = Vec::new();
        node.durable = DurableStore::default();
        node.absent = false;
        self.start(i)?;
        let change = ConfChange::AddLearner {
            id,
            incarnation: if known { incarnation } else { NO_INCARNATION },
            peer_addr: format!("sim:{}", 100 + id),
            client_addr: format!("sim:{id}"),
        };
        if !self.propose_change(leader, change)? {
            self.stop_for_good(i)?;
        }
        Ok(())
    }

    /// Proposes `change` on the leader; returns whether it was appended.
    fn propose_change(&mut self, leader: usize, change: ConfChange) -> Result<bool, Failure> {
        let running = self.nodes[leader].running.as_mut().expect("leader runs");
        let result = running.raw.propose_conf_change(change.clone());
        trace!(self, "n{} MEMBERSHIP {change:?}: {result:?}", leader + 1);
        if result.is_err() {
            return Ok(false);
        }
        self.report.membership_changes += 1;
        let status = self.status_of(leader);
        if change == (ConfChange::Remove { id: status.id }) {
            self.report.leader_removals += 1;
        }
        let voters = status.voters().len() as u64;
        self.report.voters_max = self.report.voters_max.max(voters);
        self.report.voters_min_proposed = self.report.voters_min_proposed.min(voters);
        self.voter_sets_in_play
            .push(status.voters().into_iter().collect());
        Ok(true)
    }
}
