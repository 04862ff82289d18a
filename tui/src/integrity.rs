//! Integrity alarms: what the cluster has been seen to commit and apply, and
//! the alarms raised when a later status contradicts it (committed data lost,
//! or two nodes holding different states at one index). Pure: statuses and
//! their arrival times in, alarms out. The dashboard and the quality gate
//! each feed one with every status they poll.
//!
//! An alarm must never lie, so each check compares only facts that Raft
//! guarantees whatever order the polls arrive in:
//! - Leader Completeness: an entry committed in term t is in the log of every
//!   leader of a term above t. So a leader of term T whose log ends below an
//!   index committed in an earlier term has lost it. Its commit index is
//!   compared only once it has advanced during its leadership, because a new
//!   leader starts with the (possibly older) commit index it had as follower
//!   and catches up by committing an entry of its own term, which lies above
//!   every earlier entry.
//! - A node's applied entries are committed, so they too are in the log of
//!   every later leader, and in the current leader's log once the leader has
//!   answered after the node did.
//! - State Machine Safety: every node that has applied index i holds the same
//!   state there, so two digests seen at one applied index (at any time, on
//!   any nodes) must be equal. Nodes at different indexes are never compared:
//!   a restarted node legitimately sits lower for a while.

use std::collections::{BTreeMap, VecDeque};

use crate::status::NodeStatus;

/// Applied indexes whose digest is remembered (the lowest are forgotten first).
pub const DIGEST_HISTORY_INDEXES_MAX: usize = 4_096;
/// Terms whose highest commit index is kept one by one; older ones are folded
/// into a single high-water mark.
pub const TERMS_REMEMBERED_MAX: usize = 256;
/// Recent (time, term, applied index) samples kept per node.
pub const APPLIED_SAMPLES_PER_NODE_MAX: usize = 32;
/// Alarms kept for the session (the first ones matter most).
pub const ALARMS_MAX: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlarmKind {
    /// An index the cluster had committed is gone.
    DataLoss,
    /// Two nodes hold different states at the same applied index.
    Diverged,
}

impl AlarmKind {
    pub fn badge(self) -> &'static str {
        match self {
            AlarmKind::DataLoss => "DATA LOSS",
            AlarmKind::Diverged => "DIVERGED",
        }
    }
}

/// A contradiction between what was committed and what a node now shows.
/// Alarms are sticky: nothing clears them for the rest of the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alarm {
    pub kind: AlarmKind,
    /// The node whose status raised it.
    pub node: u64,
    /// The index it is about.
    pub index: u64,
    pub at_ms: u64,
    /// One line for the header: `DATA LOSS: leader 2 commit 3 < committed 53`.
    pub summary: String,
    /// What was seen, for the timeline and the gate's evidence.
    pub detail: String,
}

/// A fact and who reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    value: u64,
    node: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct AppliedSample {
    at_ms: u64,
    term: u64,
    applied_index: u64,
}

/// The latest status of the leader of the highest term seen.
#[derive(Clone, Debug, PartialEq, Eq)]
struct LeaderSample {
    id: u64,
    term: u64,
    last_index: u64,
    at_ms: u64,
}

/// Everything the cluster has been seen to commit and apply, and the alarms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntegrityWatch {
    /// A status that arrived at `at_ms` was produced after `at_ms -
    /// status_deadline_ms` (the poll's deadline covers the whole request).
    status_deadline_ms: u64,
    /// Highest commit index reported by a node while in each term. A node in
    /// term t reports only indexes committed in term t or before.
    committed_by_term: BTreeMap<u64, Seen>,
    /// The highest of the terms folded away by `TERMS_REMEMBERED_MAX`.
    committed_in_forgotten_terms: Option<Seen>,
    /// (leader id, term) -> its commit index when first seen leading.
    leader_first_commit: BTreeMap<(u64, u64), u64>,
    /// Applied index -> (digest, first node seen there).
    digests: BTreeMap<u64, (String, u64)>,
    applied_samples: BTreeMap<u64, VecDeque<AppliedSample>>,
    leader: Option<LeaderSample>,
    alarms: Vec<Alarm>,
}

impl IntegrityWatch {
    pub fn new(status_deadline_ms: u64) -> IntegrityWatch {
        IntegrityWatch {
            status_deadline_ms,
            committed_by_term: BTreeMap::new(),
            committed_in_forgotten_terms: None,
            leader_first_commit: BTreeMap::new(),
            digests: BTreeMap::new(),
            applied_samples: BTreeMap::new(),
            leader: None,
            alarms: Vec::new(),
        }
    }

    /// Widens the assumed age of a status when it arrives (a poller with a
    /// longer deadline feeds this watch); never narrows it.
    pub fn allow_status_age_ms(&mut self, status_age_ms_max: u64) {
        self.status_deadline_ms = self.status_deadline_ms.max(status_age_ms_max);
    }

    /// Every alarm raised so far, oldest first.
    pub fn alarms(&self) -> &[Alarm] {
        &self.alarms
    }

    pub fn first_alarm(&self) -> Option<&Alarm> {
        self.alarms.first()
    }

    /// The highest commit index any node has reported.
    pub fn committed_max(&self) -> u64 {
        self.committed_by_term
            .values()
            .chain(&self.committed_in_forgotten_terms)
            .map(|seen| seen.value)
            .max()
            .unwrap_or(0)
    }

    /// The highest term any status has reported so far (0 before the first).
    pub fn newest_term(&self) -> u64 {
        self.committed_by_term
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
    }

    /// The highest commit index reported in a term below `term`: every leader
    /// of `term` must hold it.
    fn committed_before(&self, term: u64) -> Option<&Seen> {
        self.committed_by_term
            .range(..term)
            .map(|(_, seen)| seen)
            .chain(&self.committed_in_forgotten_terms)
            .max_by_key(|seen| seen.value)
    }

    /// Takes in one status that arrived at `at_ms`; returns the alarms it raised.
    pub fn observe(&mut self, status: &NodeStatus, at_ms: u64) -> Vec<Alarm> {
        let mut raised = Vec::new();
        if status.is_leader() {
            raised.extend(self.check_leader_holds_committed(status, at_ms));
            raised.extend(self.check_applied_within_leader(status, at_ms));
        } else {
            raised.extend(self.check_applied_against_leader(status, at_ms));
        }
        raised.extend(self.check_digest(status, at_ms));
        self.remember(status, at_ms);
        let mut kept = Vec::new();
        for alarm in raised {
            let known = self
                .alarms
                .iter()
                .any(|a| a.kind == alarm.kind && a.node == alarm.node && a.index == alarm.index);
            if !known && self.alarms.len() < ALARMS_MAX {
                self.alarms.push(alarm.clone());
                kept.push(alarm);
            }
        }
        kept
    }

    /// (a) A leader whose log or commit index is below an index committed in
    /// an earlier term.
    fn check_leader_holds_committed(&mut self, leader: &NodeStatus, at_ms: u64) -> Option<Alarm> {
        let first_commit = *self
            .leader_first_commit
            .entry((leader.id, leader.term))
            .or_insert(leader.commit_index);
        let committed = self.committed_before(leader.term)?.clone();
        let log_short = leader.last_index < committed.value;
        let advanced = leader.commit_index > first_commit;
        let commit_short = advanced && leader.commit_index < committed.value;
        if !log_short && !commit_short {
            return None;
        }
        let why = if log_short {
            format!("its log ends at {}", leader.last_index)
        } else {
            format!(
                "it has committed in its own term (commit index {} -> {}) without it",
                first_commit, leader.commit_index
            )
        };
        Some(Alarm {
            kind: AlarmKind::DataLoss,
            node: leader.id,
            index: committed.value,
            at_ms,
            summary: format!(
                "DATA LOSS: leader {} commit {} < committed {}",
                leader.id, leader.commit_index, committed.value
            ),
            detail: format!(
                "node {} leads term {} with commit index {}, but index {} was committed \
                 earlier (seen on node {}) and {why}: acknowledged writes are lost",
                leader.id, leader.term, leader.commit_index, committed.value, committed.node
            ),
        })
    }

    /// (c), from the leader's side: nodes that had applied beyond the log this
    /// leader holds, in a status produced before the leader's.
    fn check_applied_within_leader(&self, leader: &NodeStatus, at_ms: u64) -> Vec<Alarm> {
        let sample = LeaderSample {
            id: leader.id,
            term: leader.term,
            last_index: leader.last_index,
            at_ms,
        };
        self.applied_samples
            .iter()
            .filter(|(node, _)| **node != leader.id)
            .filter_map(|(node, samples)| {
                let beyond = samples
                    .iter()
                    .filter(|s| self.produced_before(s, &sample))
                    .max_by_key(|s| s.applied_index)?;
                (beyond.applied_index > sample.last_index)
                    .then(|| applied_beyond_alarm(*node, beyond, &sample, at_ms))
            })
            .collect()
    }

    /// (c), from a node's side: applied beyond the log of the last leader
    /// seen, when that leader's term is above the node's.
    fn check_applied_against_leader(&self, status: &NodeStatus, at_ms: u64) -> Option<Alarm> {
        let leader = self.leader.as_ref()?;
        let sample = AppliedSample {
            at_ms,
            term: status.term,
            applied_index: status.applied_index,
        };
        let beyond = leader.id != status.id
            && status.term < leader.term
            && status.applied_index > leader.last_index;
        beyond.then(|| applied_beyond_alarm(status.id, &sample, leader, at_ms))
    }

    /// True when the leader must already hold what `sample` had applied:
    /// the node's term was below the leader's (Leader Completeness), or the
    /// same term and the leader answered after the node's answer was produced.
    fn produced_before(&self, sample: &AppliedSample, leader: &LeaderSample) -> bool {
        sample.term < leader.term
            || (sample.term == leader.term && sample.at_ms + self.status_deadline_ms < leader.at_ms)
    }

    /// (b) A digest that differs from the one seen at the same applied index.
    fn check_digest(&self, status: &NodeStatus, at_ms: u64) -> Option<Alarm> {
        let (digest, first_node) = self.digests.get(&status.applied_index)?;
        if *digest == status.digest {
            return None;
        }
        let index = status.applied_index;
        let short = |d: &str| d.chars().take(6).collect::<String>();
        let other = if *first_node == status.id {
            format!("node {} itself had", first_node)
        } else {
            format!("node {first_node} had")
        };
        Some(Alarm {
            kind: AlarmKind::Diverged,
            node: status.id,
            index,
            at_ms,
            summary: format!(
                "DIVERGED: node {} ≠ node {first_node} at index {index}",
                status.id
            ),
            detail: format!(
                "node {} has digest {}.. at applied index {index}; {other} {}.. at the same \
                 index: the state machines differ",
                status.id,
                short(&status.digest),
                short(digest)
            ),
        })
    }

    fn remember(&mut self, status: &NodeStatus, at_ms: u64) {
        let seen = self.committed_by_term.entry(status.term).or_insert(Seen {
            value: 0,
            node: status.id,
        });
        if status.commit_index > seen.value {
            *seen = Seen {
                value: status.commit_index,
                node: status.id,
            };
        }
        while self.committed_by_term.len() > TERMS_REMEMBERED_MAX {
            if let Some((_, oldest)) = self.committed_by_term.pop_first() {
                let folded = self
                    .committed_in_forgotten_terms
                    .get_or_insert(oldest.clone());
                if oldest.value > folded.value {
                    *folded = oldest;
                }
            }
        }
        while self.leader_first_commit.len() > TERMS_REMEMBERED_MAX {
            // Keyed by (id, term): drop the lowest term of all leaders.
            let oldest = self
                .leader_first_commit
                .keys()
                .min_by_key(|(_, term)| *term)
                .copied();
            if let Some(key) = oldest {
                self.leader_first_commit.remove(&key);
            }
        }
        self.digests
            .entry(status.applied_index)
            .or_insert_with(|| (status.digest.clone(), status.id));
        while self.digests.len() > DIGEST_HISTORY_INDEXES_MAX {
            self.digests.pop_first();
        }
        let samples = self.applied_samples.entry(status.id).or_default();
        samples.push_back(AppliedSample {
            at_ms,
            term: status.term,
            applied_index: status.applied_index,
        });
        while samples.len() > APPLIED_SAMPLES_PER_NODE_MAX {
            samples.pop_front();
        }
        if status.is_leader() && self.leader.as_ref().is_none_or(|l| status.term >= l.term) {
            self.leader = Some(LeaderSample {
                id: status.id,
                term: status.term,
                last_index: status.last_index,
                at_ms,
            });
        }
    }
}

fn applied_beyond_alarm(
    node: u64,
    sample: &AppliedSample,
    leader: &LeaderSample,
    at_ms: u64,
) -> Alarm {
    Alarm {
        kind: AlarmKind::DataLoss,
        node,
        index: sample.applied_index,
        at_ms,
        summary: format!(
            "DATA LOSS: node {node} applied {} > leader {} log {}",
            sample.applied_index, leader.id, leader.last_index
        ),
        detail: format!(
            "node {node} had applied index {} (term {}), but leader {} of term {} holds a log \
             ending at {}: entries {}-{} were committed and are not in the leader's log",
            sample.applied_index,
            sample.term,
            leader.id,
            leader.term,
            leader.last_index,
            leader.last_index + 1,
            sample.applied_index
        ),
    }
}

#[cfg(test)]
#[path = "integrity_tests.rs"]
mod tests;
