//! The cluster-wide safety invariants of Raft (paper Figure 3), checked
//! against every node's log and state machine as they change.
//!
//! - Election Safety: at most one leader per term, over the whole run.
//! - Log Matching: if two logs hold an entry with the same index and term,
//!   the logs are identical up to it. Checked as its inductive form: every
//!   (index, term) ever written anywhere has one payload and one term at
//!   index - 1, so any two logs agreeing at an index agree below it.
//! - Leader Completeness: an entry committed in term T is in the log of every
//!   leader of a term after T.
//! - State Machine Safety: every node applies the same entry, and reaches the
//!   same state digest, at each index.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use raftkv::message::{Entry, EntryKind, Index, NodeId, Snapshot, Term};

/// A broken invariant, in words.
pub type Violation = String;

/// What every node applied at one index.
#[derive(Clone, Debug)]
pub struct AppliedRecord {
    pub term: Term,
    pub kind: EntryKind,
    pub data: Bytes,
    /// Digest of the state machine right after applying this index.
    pub digest: [u8; 32],
    /// An upper bound on the term in which the entry was committed: the
    /// smallest current term of any node when it applied the entry.
    pub committed_by_term: Term,
    /// Logical time (history clock) of the first apply anywhere.
    pub first_applied_at: u64,
}

/// An entry's identity for the Log Matching check.
#[derive(Clone, Debug)]
struct WrittenEntry {
    kind: EntryKind,
    data: Bytes,
    /// Term of the entry at index - 1 in the log that held it (0 at index 1).
    prev_term: Term,
}

/// The cluster-wide record that the invariants are checked against.
#[derive(Default)]
pub struct SafetyChecker {
    leaders_by_term: BTreeMap<Term, NodeId>,
    written: HashMap<(Index, Term), WrittenEntry>,
    /// `applied[i - 1]` is what was applied at index `i`.
    applied: Vec<AppliedRecord>,
}

impl SafetyChecker {
    pub fn applied(&self, index: Index) -> Option<&AppliedRecord> {
        index
            .checked_sub(1)
            .and_then(|i| self.applied.get(i as usize))
    }

    pub fn applied_len(&self) -> Index {
        self.applied.len() as Index
    }

    pub fn leader_count(&self) -> usize {
        self.leaders_by_term.len()
    }

    /// The highest term any node was leader of so far.
    pub fn newest_leader_term(&self) -> Option<Term> {
        self.leaders_by_term.keys().next_back().copied()
    }

    /// Election Safety.
    pub fn observe_leader(&mut self, term: Term, node: NodeId) -> Result<(), Violation> {
        match self.leaders_by_term.insert(term, node) {
            Some(other) if other != node => Err(format!(
                "election safety: node {other} and node {node} were both leader of term {term}"
            )),
            _ => Ok(()),
        }
    }

    /// Log Matching for entries a node now holds; `prev_term` is the term the
    /// node's log has just before `entries[0]`.
    pub fn observe_written(
        &mut self,
        node: NodeId,
        prev_term: Term,
        entries: &[Entry],
    ) -> Result<(), Violation> {
        let mut prev_term = prev_term;
        let mut prev_index = entries.first().map_or(0, |e| e.index.saturating_sub(1));
        for entry in entries {
            if entry.index != prev_index + 1 {
                return Err(format!(
                    "log contiguity: node {node} holds index {} right after index {prev_index}",
                    entry.index
                ));
            }
            if entry.term < prev_term {
                return Err(format!(
                    "log terms: node {node} holds index {} of term {} after an entry of term {prev_term}",
                    entry.index, entry.term
                ));
            }
            let written = WrittenEntry {
                kind: entry.kind,
                data: entry.data.clone(),
                prev_term,
            };
            match self.written.get(&(entry.index, entry.term)) {
                None => {
                    self.written.insert((entry.index, entry.term), written);
                }
                Some(known) => {
                    if known.kind != written.kind || known.data != written.data {
                        return Err(format!(
                            "log matching: node {node} holds index {} term {} with a payload ({} bytes, {:?}) \
                             other than the one written before ({} bytes, {:?})",
                            entry.index,
                            entry.term,
                            written.data.len(),
                            written.kind,
                            known.data.len(),
                            known.kind
                        ));
                    }
                    if known.prev_term != prev_term {
                        return Err(format!(
                            "log matching: node {node} holds index {} term {} after an entry of term {prev_term}, \
                             another log holds it after an entry of term {}",
                            entry.index, entry.term, known.prev_term
                        ));
                    }
                }
            }
            prev_term = entry.term;
            prev_index = entry.index;
        }
        Ok(())
    }

    /// State Machine Safety for one applied entry.
    pub fn observe_applied(
        &mut self,
        node: NodeId,
        entry: &Entry,
        digest: [u8; 32],
        node_term: Term,
        now: u64,
    ) -> Result<(), Violation> {
        let index = entry.index;
        let next = self.applied_len() + 1;
        if index > next {
            return Err(format!(
                "state machine safety: node {node} applied index {index} before any node applied index {}",
                next
            ));
        }
        if index == next {
            self.applied.push(AppliedRecord {
                term: entry.term,
                kind: entry.kind,
                data: entry.data.clone(),
                digest,
                committed_by_term: node_term,
                first_applied_at: now,
            });
            return Ok(());
        }
        let record = &mut self.applied[(index - 1) as usize];
        if record.term != entry.term || record.kind != entry.kind || record.data != entry.data {
            return Err(format!(
                "state machine safety: node {node} applied index {index} term {} ({} bytes), \
                 another node applied term {} ({} bytes) there",
                entry.term,
                entry.data.len(),
                record.term,
                record.data.len()
            ));
        }
        if record.digest != digest {
            return Err(format!(
                "state machine safety: node {node} reached digest {} at index {index}, another node {}",
                hex(&digest),
                hex(&record.digest)
            ));
        }
        record.committed_by_term = record.committed_by_term.min(node_term);
        Ok(())
    }

    /// State Machine Safety for a restored snapshot: it must be the state
    /// some node had after applying the same index.
    pub fn observe_snapshot_restored(
        &self,
        node: NodeId,
        snapshot: &Snapshot,
        digest: [u8; 32],
    ) -> Result<(), Violation> {
        let index = snapshot.meta.index;
        let Some(record) = self.applied(index) else {
            return Err(format!(
                "snapshot: node {node} restored a snapshot at index {index}, which no node has applied"
            ));
        };
        if record.term != snapshot.meta.term {
            return Err(format!(
                "snapshot: node {node} restored a snapshot at index {index} term {}, the entry applied there has term {}",
                snapshot.meta.term, record.term
            ));
        }
        if record.digest != digest {
            return Err(format!(
                "snapshot: node {node} restored a snapshot at index {index} with digest {}, applying reached {}",
                hex(&digest),
                hex(&record.digest)
            ));
        }
        Ok(())
    }

    /// Leader Completeness: `log` is the log of `node`, which just became
    /// leader of `term`. Entries at or below the log's snapshot were applied
    /// by the node and are checked by State Machine Safety.
    pub fn check_leader_completeness(
        &self,
        node: NodeId,
        term: Term,
        log: &LogView<'_>,
    ) -> Result<(), Violation> {
        let from = log.snapshot_index() + 1;
        for index in from..=self.applied_len() {
            let record = &self.applied[(index - 1) as usize];
            if record.committed_by_term >= term {
                continue;
            }
            match log.term_at(index) {
                Some(t) if t == record.term => {}
                found => {
                    return Err(format!(
                        "leader completeness: node {node} became leader of term {term} without index {index} term {} \
                         (committed by term {} at the latest); its log has {}",
                        record.term,
                        record.committed_by_term,
                        match found {
                            Some(t) => format!("term {t} there"),
                            None => format!("no entry there (last index {})", log.last_index()),
                        }
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A node's in-memory log: its durable log with a Ready's snapshot and
/// entries laid over it, before (or without) persisting them.
pub struct LogView<'a> {
    pub durable_snapshot: Option<(Index, Term)>,
    pub durable_entries: &'a [Entry],
    pub ready_snapshot: Option<(Index, Term)>,
    pub ready_entries: &'a [Entry],
}

impl LogView<'_> {
    fn durable_term_at(&self, index: Index) -> Option<Term> {
        if let Some((snapshot_index, snapshot_term)) = self.durable_snapshot {
            if index == snapshot_index {
                return Some(snapshot_term);
            }
        }
        let first = self.durable_entries.first()?.index;
        if index < first {
            return if index == 0 { Some(0) } else { None };
        }
        self.durable_entries
            .get((index - first) as usize)
            .map(|e| e.term)
    }

    /// Whether the durable entries after a Ready snapshot survive it: they do
    /// when the durable log holds the snapshot's last entry.
    fn durable_survives_ready_snapshot(&self) -> bool {
        match self.ready_snapshot {
            None => true,
            Some((index, term)) => self.durable_term_at(index) == Some(term),
        }
    }

    pub fn snapshot_index(&self) -> Index {
        match (self.ready_snapshot, self.durable_snapshot) {
            (Some((index, _)), _) | (None, Some((index, _))) => index,
            (None, None) => 0,
        }
    }

    pub fn term_at(&self, index: Index) -> Option<Term> {
        if let Some(first) = self.ready_entries.first() {
            if index >= first.index {
                return self
                    .ready_entries
                    .get((index - first.index) as usize)
                    .map(|e| e.term);
            }
        }
        if let Some((snapshot_index, snapshot_term)) = self.ready_snapshot {
            if index == snapshot_index {
                return Some(snapshot_term);
            }
            if index < snapshot_index || !self.durable_survives_ready_snapshot() {
                return None;
            }
        }
        if index == 0 {
            return Some(0);
        }
        self.durable_term_at(index)
    }

    pub fn last_index(&self) -> Index {
        if let Some(last) = self.ready_entries.last() {
            return last.index;
        }
        let durable_last = self
            .durable_entries
            .last()
            .map(|e| e.index)
            .or(self.durable_snapshot.map(|(i, _)| i))
            .unwrap_or(0);
        match self.ready_snapshot {
            Some((index, _)) if self.durable_survives_ready_snapshot() => index.max(durable_last),
            Some((index, _)) => index,
            None => durable_last,
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: Index, term: Term, data: &'static [u8]) -> Entry {
        Entry::normal(index, term, Bytes::from_static(data))
    }

    #[test]
    fn two_leaders_in_one_term_is_a_violation() {
        let mut checker = SafetyChecker::default();
        checker.observe_leader(2, 1).unwrap();
        checker.observe_leader(2, 1).unwrap();
        checker.observe_leader(3, 2).unwrap();
        assert!(checker
            .observe_leader(2, 3)
            .unwrap_err()
            .contains("election safety"));
    }

    #[test]
    fn same_index_and_term_with_another_prefix_is_a_violation() {
        let mut checker = SafetyChecker::default();
        checker
            .observe_written(1, 0, &[entry(1, 1, b"a"), entry(2, 1, b"b")])
            .unwrap();
        // Same entries again (a retransmission) are fine.
        checker.observe_written(2, 1, &[entry(2, 1, b"b")]).unwrap();
        // Index 3 term 2 after term 1 on one node, after term 2 on another.
        checker.observe_written(1, 1, &[entry(3, 2, b"c")]).unwrap();
        let error = checker
            .observe_written(3, 2, &[entry(3, 2, b"c")])
            .unwrap_err();
        assert!(error.contains("log matching"), "{error}");
        let error = checker
            .observe_written(2, 1, &[entry(3, 2, b"x")])
            .unwrap_err();
        assert!(error.contains("payload"), "{error}");
        let error = checker
            .observe_written(2, 1, &[entry(4, 2, b"x"), entry(6, 2, b"y")])
            .unwrap_err();
        assert!(error.contains("contiguity"), "{error}");
    }

    #[test]
    fn applying_another_entry_at_an_applied_index_is_a_violation() {
        let mut checker = SafetyChecker::default();
        checker
            .observe_applied(1, &entry(1, 1, b"a"), [1; 32], 1, 0)
            .unwrap();
        checker
            .observe_applied(2, &entry(1, 1, b"a"), [1; 32], 3, 1)
            .unwrap();
        assert_eq!(checker.applied(1).unwrap().committed_by_term, 1);
        assert!(checker
            .observe_applied(3, &entry(1, 2, b"z"), [1; 32], 2, 2)
            .is_err());
        assert!(checker
            .observe_applied(3, &entry(1, 1, b"a"), [2; 32], 2, 2)
            .is_err());
        assert!(checker
            .observe_applied(3, &entry(3, 1, b"a"), [2; 32], 2, 2)
            .is_err());
    }

    #[test]
    fn leader_without_an_entry_committed_in_an_earlier_term_is_a_violation() {
        // Raft Figure 8: index 2 of term 2 committed in term 4 is overwritten
        // by a leader of term 5 whose log has term 3 there.
        let mut checker = SafetyChecker::default();
        checker
            .observe_applied(1, &entry(1, 1, b"a"), [1; 32], 1, 0)
            .unwrap();
        checker
            .observe_applied(1, &entry(2, 2, b"b"), [2; 32], 4, 1)
            .unwrap();
        let log = [entry(1, 1, b"a"), entry(2, 3, b"c")];
        let view = LogView {
            durable_snapshot: None,
            durable_entries: &log,
            ready_snapshot: None,
            ready_entries: &[],
        };
        let error = checker.check_leader_completeness(5, 5, &view).unwrap_err();
        assert!(error.contains("leader completeness"), "{error}");
        // A leader of term 4 elected before the commit is not held to it.
        checker.check_leader_completeness(5, 4, &view).unwrap();
    }

    #[test]
    fn log_view_lays_a_ready_over_the_durable_log() {
        let durable = [entry(5, 1, b""), entry(6, 1, b""), entry(7, 2, b"")];
        let ready = [entry(7, 3, b""), entry(8, 3, b"")];
        let view = LogView {
            durable_snapshot: Some((4, 1)),
            durable_entries: &durable,
            ready_snapshot: None,
            ready_entries: &ready,
        };
        assert_eq!(view.term_at(4), Some(1));
        assert_eq!(view.term_at(3), None);
        assert_eq!(view.term_at(6), Some(1));
        assert_eq!(view.term_at(7), Some(3));
        assert_eq!(view.last_index(), 8);
        // A snapshot that matches index 6 keeps 7; one that does not drops all.
        let keeps = LogView {
            ready_snapshot: Some((6, 1)),
            ready_entries: &[],
            ..view
        };
        assert_eq!(keeps.term_at(7), Some(2));
        assert_eq!(keeps.last_index(), 7);
        let drops = LogView {
            ready_snapshot: Some((6, 9)),
            ready_entries: &[],
            durable_snapshot: Some((4, 1)),
            durable_entries: &durable,
        };
        assert_eq!(drops.term_at(7), None);
        assert_eq!(drops.last_index(), 6);
        assert_eq!(drops.snapshot_index(), 6);
    }
}
