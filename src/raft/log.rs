//! The in-memory Raft log behind the snapshot boundary, with the
//! bookkeeping of what has been handed out for persisting and applying and
//! what the caller reported durable and applied.
//!
//! Invariants (checked by `debug_check`):
//! `snapshot_index <= applied <= committed <= last_index` (applied catches
//! up with an installed snapshot when the caller reports it restored),
//! `persisted <= last_index`, `unstable_from <= last_index + 1`, entries
//! contiguous from `snapshot_index + 1` with non-decreasing terms.

use bytes::Bytes;

use super::membership::{self, Membership, Memberships};
use crate::message::{Entry, EntryKind, Index, Snapshot, SnapshotMeta, Term};

/// Bound on committed entries handed out in one Ready (the rest follow in the next).
pub(crate) const COMMITTED_ENTRIES_PER_READY_MAX: usize = 4096;

#[derive(Clone, Debug)]
pub(crate) struct RaftLog {
    /// The newest snapshot (compacted here or installed from a leader), kept
    /// to send to followers that need compacted entries.
    snapshot: Option<Snapshot>,
    snapshot_index: Index,
    snapshot_term: Term,
    /// Entries `snapshot_index + 1 ..= last_index`.
    entries: Vec<Entry>,
    /// Highest index known committed.
    committed: Index,
    /// Highest index the caller reported applied (or restored by snapshot).
    applied: Index,
    /// Highest index such that the durable log holds our entries `..= persisted`.
    persisted: Index,
    /// First index not yet handed out in `Ready.entries`.
    unstable_from: Index,
    /// The snapshot must go out in the next `Ready.snapshot`.
    snapshot_unannounced: bool,
    /// An installed snapshot was not yet reported restored, so `applied`
    /// may still be below `snapshot_index`.
    snapshot_unrestored: bool,
    /// Last index handed out in `Ready.committed_entries`.
    committed_handed_out: Index,
    /// The configuration at every index of the log.
    memberships: Memberships,
}

/// Why an initial state cannot be restored.
pub(crate) type RestoreError = String;

impl RaftLog {
    /// Rebuilds the log from what was durable: everything given is persisted,
    /// and applied restarts at the snapshot so committed entries are re-applied.
    pub fn restore(
        snapshot: Option<Snapshot>,
        entries: Vec<Entry>,
        commit: Index,
    ) -> Result<Self, RestoreError> {
        let (snapshot_index, snapshot_term) = snapshot
            .as_ref()
            .map_or((0, 0), |s| (s.meta.index, s.meta.term));
        let mut previous_term = snapshot_term;
        for (expected_index, entry) in (snapshot_index + 1..).zip(entries.iter()) {
            if entry.index != expected_index {
                return Err(format!(
                    "log entry index {} found where {} was expected (entries must follow the snapshot at {} without gaps)",
                    entry.index, expected_index, snapshot_index
                ));
            }
            if entry.term < previous_term {
                return Err(format!(
                    "log entry {} has term {} below the previous term {}",
                    entry.index, entry.term, previous_term
                ));
            }
            previous_term = entry.term;
        }
        let last_index = snapshot_index + entries.len() as Index;
        let base = match &snapshot {
            None => Membership::new(),
            Some(s) if s.meta.members.is_empty() => Membership::new(),
            Some(s) => membership::from_members(&s.meta.members).ok_or_else(|| {
                format!(
                    "the snapshot at index {} carries a malformed configuration",
                    s.meta.index
                )
            })?,
        };
        let mut memberships = Memberships::new(base, snapshot_index);
        for entry in &entries {
            record_membership(&mut memberships, entry);
        }
        let log = RaftLog {
            snapshot,
            snapshot_index,
            snapshot_term,
            entries,
            committed: commit.max(snapshot_index).min(last_index),
            applied: snapshot_index,
            persisted: last_index,
            unstable_from: last_index + 1,
            snapshot_unannounced: false,
            snapshot_unrestored: false,
            committed_handed_out: snapshot_index,
            memberships,
        };
        log.debug_check();
        Ok(log)
    }

    pub fn first_index(&self) -> Index {
        self.snapshot_index + 1
    }

    pub fn last_index(&self) -> Index {
        self.snapshot_index + self.entries.len() as Index
    }

    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(self.snapshot_term, |e| e.term)
    }

    pub fn snapshot_index(&self) -> Index {
        self.snapshot_index
    }

    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    pub fn committed(&self) -> Index {
        self.committed
    }

    pub fn applied(&self) -> Index {
        self.applied
    }

    pub fn persisted(&self) -> Index {
        self.persisted
    }

    /// The term of the entry at `index`; None if compacted or beyond the log.
    pub fn term_at(&self, index: Index) -> Option<Term> {
        if index == self.snapshot_index {
            return Some(self.snapshot_term);
        }
        if index < self.snapshot_index || index > self.last_index() {
            return None;
        }
        Some(self.entries[self.offset_of(index)].term)
    }

    fn offset_of(&self, index: Index) -> usize {
        debug_assert!(index > self.snapshot_index && index <= self.last_index());
        (index - self.snapshot_index - 1) as usize
    }

    /// Raft §5.4.1: is a log ending at (`last_index`, `last_term`) at least
    /// as up to date as ours? Last term first, then length.
    /// True when a log ending at (`last_index`, `last_term`) holds more
    /// than this one: a later last term, or the same one and a longer log.
    pub fn is_behind(&self, last_index: Index, last_term: Term) -> bool {
        (last_term, last_index) > (self.last_term(), self.last_index())
    }

    pub fn is_up_to_date(&self, last_index: Index, last_term: Term) -> bool {
        last_term > self.last_term()
            || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// Up to `count_max` entries from `from` totalling at most `bytes_max`
    /// payload bytes (at least one entry when any exists). None if `from`
    /// is compacted.
    pub fn entries_from(
        &self,
        from: Index,
        count_max: usize,
        bytes_max: usize,
    ) -> Option<Vec<Entry>> {
        if from <= self.snapshot_index {
            return None;
        }
        if from > self.last_index() {
            return Some(Vec::new());
        }
        let mut batch = Vec::new();
        let mut bytes_total = 0usize;
        for entry in &self.entries[self.offset_of(from)..] {
            if batch.len() >= count_max
                || (!batch.is_empty() && bytes_total + entry.data.len() > bytes_max)
            {
                break;
            }
            bytes_total += entry.data.len();
            batch.push(entry.clone());
        }
        Some(batch)
    }

    /// Leader: appends a new entry of `term`; returns its index.
    pub fn append_new(&mut self, term: Term, kind: EntryKind, data: Bytes) -> Index {
        debug_assert!(term >= self.last_term());
        let index = self.last_index() + 1;
        let entry = Entry {
            index,
            term,
            kind,
            data,
        };
        record_membership(&mut self.memberships, &entry);
        self.entries.push(entry);
        index
    }

    /// Follower: stores `entries`, which follow a verified (prev_index,
    /// prev_term). Entries that already match are kept as they are, so a
    /// reordered older append cannot cut off newer entries; the log is
    /// truncated only at the first real conflict (same index, other term).
    pub fn append_after_match(&mut self, entries: &[Entry]) {
        let conflict = entries
            .iter()
            .position(|e| self.term_at(e.index) != Some(e.term));
        let Some(conflict) = conflict else { return };
        let first_new = entries[conflict].index;
        debug_assert!(
            first_new > self.committed,
            "a committed entry must never be overwritten"
        );
        debug_assert!(
            first_new <= self.last_index() + 1,
            "appended entries must be contiguous"
        );
        if first_new <= self.last_index() {
            self.truncate_from(first_new);
        }
        for entry in &entries[conflict..] {
            record_membership(&mut self.memberships, entry);
        }
        self.entries.extend_from_slice(&entries[conflict..]);
    }

    fn truncate_from(&mut self, index: Index) {
        debug_assert!(index > self.snapshot_index);
        let offset = self.offset_of(index);
        self.entries.truncate(offset);
        self.memberships.truncate_from(index);
        self.unstable_from = self.unstable_from.min(index);
        self.persisted = self.persisted.min(index - 1);
    }

    /// The hint for a rejected append (see `AppendOutcome::Rejected`).
    pub fn conflict_hint(&self, prev_index: Index) -> (Index, Term) {
        let Some(term) = self.term_at(prev_index) else {
            return (self.last_index(), 0);
        };
        if prev_index <= self.snapshot_index {
            return (prev_index, term);
        }
        let end = self.offset_of(prev_index);
        let first_offset = self.entries[..end].partition_point(|e| e.term < term);
        (self.snapshot_index + 1 + first_offset as Index, term)
    }

    /// The last index at or before `at_or_before` whose entry has `term`;
    /// None if the log has no entry of that term there.
    pub fn last_index_of_term(&self, term: Term, at_or_before: Index) -> Option<Index> {
        let cap = at_or_before.min(self.last_index());
        if cap < self.snapshot_index {
            return None;
        }
        let searched = &self.entries[..(cap - self.snapshot_index) as usize];
        let count_at_most_term = searched.partition_point(|e| e.term <= term);
        if count_at_most_term == 0 {
            return (self.snapshot_term == term).then_some(self.snapshot_index);
        }
        let candidate = &searched[count_at_most_term - 1];
        (candidate.term == term).then_some(candidate.index)
    }

    /// Raises the commit index to `index` (never lowers it, never past the log).
    pub fn commit_to(&mut self, index: Index) -> bool {
        let index = index.min(self.last_index());
        if index <= self.committed {
            return false;
        }
        self.committed = index;
        true
    }

    /// Follower: installs a leader's snapshot newer than our commit index.
    /// Entries after it are kept if the log has its (index, term), otherwise
    /// the log is dropped. Kept entries are handed out again so the caller,
    /// which replaces its whole durable log with the snapshot, writes them back.
    pub fn install_snapshot(&mut self, snapshot: Snapshot) {
        let SnapshotMeta { index, term, .. } = snapshot.meta;
        debug_assert!(
            index > self.committed,
            "installing a snapshot must never roll back"
        );
        if self.term_at(index) == Some(term) {
            let keep_from = self.offset_of(index) + 1;
            self.entries.drain(..keep_from);
            self.persisted = self.persisted.min(index);
        } else {
            self.entries.clear();
            self.memberships.truncate_from(0);
            self.persisted = self.persisted.min(self.committed);
        }
        let base = membership::from_members(&snapshot.meta.members).unwrap_or_default();
        self.memberships.install(index, base);
        self.snapshot_index = index;
        self.snapshot_term = term;
        self.snapshot = Some(snapshot);
        self.snapshot_unannounced = true;
        self.snapshot_unrestored = true;
        self.committed = index;
        self.committed_handed_out = index;
        self.unstable_from = index + 1;
        self.debug_check();
    }

    /// Replaces the log prefix through `index` (which must be applied) by a
    /// snapshot holding `data`.
    pub fn compact(&mut self, index: Index, data: Bytes) -> Result<(), ()> {
        if index <= self.snapshot_index || index > self.applied {
            return Err(());
        }
        let term = self.term_at(index).ok_or(())?;
        let drop_through = self.offset_of(index) + 1;
        self.entries.drain(..drop_through);
        self.memberships.compact_to(index);
        self.snapshot_index = index;
        self.snapshot_term = term;
        self.snapshot = Some(Snapshot {
            meta: SnapshotMeta {
                index,
                term,
                members: self.memberships.at(index).values().cloned().collect(),
            },
            data,
        });
        self.debug_check();
        Ok(())
    }

    /// See `RawNode::replace_snapshot_data`.
    pub fn replace_snapshot_data(&mut self, index: Index, data: Bytes) -> bool {
        match &mut self.snapshot {
            Some(snapshot) if snapshot.meta.index == index && snapshot.data.len() == data.len() => {
                snapshot.data = data;
                true
            }
            _ => false,
        }
    }

    pub fn has_unannounced_snapshot(&self) -> bool {
        self.snapshot_unannounced
    }

    pub fn take_unannounced_snapshot(&mut self) -> Option<Snapshot> {
        if !self.snapshot_unannounced {
            return None;
        }
        self.snapshot_unannounced = false;
        self.snapshot.clone()
    }

    pub fn has_unstable(&self) -> bool {
        self.unstable_from <= self.last_index()
    }

    /// Entries not yet handed out for persisting; the first may be at or
    /// below the last persisted index after a truncation.
    pub fn take_unstable(&mut self) -> Vec<Entry> {
        if !self.has_unstable() {
            return Vec::new();
        }
        let from = self.offset_of(self.unstable_from.max(self.first_index()));
        let unstable = self.entries[from..].to_vec();
        self.unstable_from = self.last_index() + 1;
        unstable
    }

    pub fn has_committed_to_hand_out(&self) -> bool {
        self.committed > self.committed_handed_out
    }

    /// Committed entries not yet handed out for applying, in order, at most
    /// `COMMITTED_ENTRIES_PER_READY_MAX` of them.
    pub fn take_committed(&mut self) -> Vec<Entry> {
        if !self.has_committed_to_hand_out() {
            return Vec::new();
        }
        let from = self.committed_handed_out + 1;
        debug_assert!(from > self.snapshot_index);
        let through = self
            .committed
            .min(from + COMMITTED_ENTRIES_PER_READY_MAX as Index - 1);
        let batch = self.entries[self.offset_of(from)..=self.offset_of(through)].to_vec();
        self.committed_handed_out = through;
        batch
    }

    /// The caller made entries through (`index`, `term`) durable. Ignored if
    /// that entry has since been replaced (its successor will be reported).
    pub fn persisted_to(&mut self, index: Index, term: Term) {
        if self.term_at(index) == Some(term) && index < self.unstable_from {
            self.persisted = self.persisted.max(index);
        }
    }

    /// The caller made the snapshot at `index` durable and restored it.
    pub fn snapshot_persisted(&mut self, index: Index) {
        if index == self.snapshot_index {
            self.persisted = self.persisted.max(index).min(self.last_index());
            self.applied = self.applied.max(index);
            self.snapshot_unrestored = false;
        }
    }

    /// The caller applied committed entries through `index`.
    pub fn applied_to(&mut self, index: Index) {
        // Cheap and fatal if broken: asserted in release builds too.
        assert!(
            index <= self.committed,
            "applied {index} beyond commit {}",
            self.committed
        );
        self.applied = self.applied.max(index.min(self.committed_handed_out));
    }

    /// The configuration of the committed log.
    pub fn committed_membership(&self) -> &Membership {
        self.memberships.at(self.committed)
    }

    /// The configuration in force at `index` (>= the snapshot index).
    pub fn membership_at(&self, index: Index) -> &Membership {
        debug_assert!(index >= self.snapshot_index);
        self.memberships.at(index)
    }

    /// The newest configuration the log holds, committed or not.
    pub fn newest_membership(&self) -> &Membership {
        self.memberships.newest()
    }

    /// Index of the newest configuration entry, or where the snapshot's
    /// configuration is known in force (0: none, bootstrap).
    pub fn newest_membership_index(&self) -> Index {
        self.memberships.newest_index()
    }

    /// True while a configuration entry is appended but not known committed.
    pub fn membership_change_pending(&self) -> bool {
        self.memberships.newest_index() > self.committed
    }

    /// The configuration in force before the newest configuration entry.
    pub fn membership_before_newest(&self) -> &Membership {
        match self.memberships.newest_index() {
            0 => self.memberships.newest(),
            index => self.memberships.at(index - 1),
        }
    }

    pub fn debug_check(&self) {
        debug_assert!(
            self.snapshot_unrestored || self.snapshot_index <= self.applied,
            "snapshot beyond applied"
        );
        debug_assert!(
            self.snapshot_index <= self.committed,
            "snapshot beyond commit"
        );
        debug_assert!(self.applied <= self.committed, "applied beyond commit");
        debug_assert!(self.committed <= self.last_index(), "commit beyond the log");
        debug_assert!(
            self.persisted <= self.last_index(),
            "persisted beyond the log"
        );
        debug_assert!(self.unstable_from <= self.last_index() + 1);
        debug_assert!(self.committed_handed_out <= self.committed);
        debug_assert!(self
            .entries
            .first()
            .is_none_or(|e| e.index == self.snapshot_index + 1));
    }
}

/// Keeps the configurations in step with a configuration entry entering
/// the log. A malformed one never gets here: `step` drops appends carrying
/// it (and `decode_entry` refuses it).
fn record_membership(memberships: &mut Memberships, entry: &Entry) {
    if let Some(membership) = membership::decode_entry(entry) {
        memberships.record(entry.index, membership);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: Index, term: Term) -> Entry {
        Entry::normal(index, term, Bytes::new())
    }

    fn log_with_terms(terms: &[Term]) -> RaftLog {
        let entries = terms
            .iter()
            .enumerate()
            .map(|(i, &t)| entry(i as Index + 1, t))
            .collect();
        RaftLog::restore(None, entries, 0).expect("valid log")
    }

    #[test]
    fn restore_rejects_gaps_and_falling_terms() {
        assert!(RaftLog::restore(None, vec![entry(2, 1)], 0).is_err());
        assert!(RaftLog::restore(None, vec![entry(1, 2), entry(2, 1)], 0).is_err());
        let log = RaftLog::restore(None, vec![entry(1, 1), entry(2, 1)], 9).expect("valid");
        assert_eq!(log.committed(), 2, "commit is capped at the last index");
        assert_eq!(log.applied(), 0, "applied restarts from the snapshot");
    }

    #[test]
    fn append_keeps_matching_entries_and_truncates_at_first_conflict() {
        let mut log = log_with_terms(&[1, 1, 2, 2]);
        log.append_after_match(&[entry(2, 1), entry(3, 2)]);
        assert_eq!(
            log.last_index(),
            4,
            "an already-matching append must not cut the log"
        );
        log.append_after_match(&[entry(3, 3)]);
        assert_eq!(log.last_index(), 3);
        assert_eq!(log.term_at(3), Some(3));
        assert_eq!(
            log.persisted(),
            2,
            "truncation lowers what counts as durable"
        );
    }

    #[test]
    fn conflict_hint_names_first_index_of_the_conflicting_term() {
        let log = log_with_terms(&[1, 1, 2, 2, 2, 4]);
        assert_eq!(log.conflict_hint(5), (3, 2));
        assert_eq!(log.conflict_hint(6), (6, 4));
        assert_eq!(
            log.conflict_hint(9),
            (6, 0),
            "short log: hint is our last index"
        );
    }

    #[test]
    fn last_index_of_term_finds_the_leaders_run() {
        let log = log_with_terms(&[1, 1, 3, 3, 5]);
        assert_eq!(log.last_index_of_term(3, 5), Some(4));
        assert_eq!(log.last_index_of_term(3, 3), Some(3));
        assert_eq!(log.last_index_of_term(2, 5), None);
        assert_eq!(log.last_index_of_term(1, 5), Some(2));
        assert_eq!(log.last_index_of_term(0, 5), Some(0));
    }

    #[test]
    fn batches_respect_count_and_byte_bounds() {
        let entries = (1..=5)
            .map(|i| Entry::normal(i, 1, vec![0u8; 10]))
            .collect();
        let log = RaftLog::restore(None, entries, 0).expect("valid");
        assert_eq!(log.entries_from(1, 3, 1000).map(|b| b.len()), Some(3));
        assert_eq!(log.entries_from(1, 10, 25).map(|b| b.len()), Some(2));
        assert_eq!(
            log.entries_from(1, 10, 1).map(|b| b.len()),
            Some(1),
            "at least one entry"
        );
        assert_eq!(log.entries_from(6, 10, 100).map(|b| b.len()), Some(0));
    }

    #[test]
    fn compaction_keeps_the_boundary_term() {
        let mut log = log_with_terms(&[1, 2, 2, 3]);
        log.commit_to(3);
        log.take_committed();
        log.applied_to(3);
        assert!(log.compact(4, Bytes::new()).is_err(), "not applied yet");
        log.compact(2, Bytes::from_static(b"s"))
            .expect("applied prefix compacts");
        assert_eq!(log.first_index(), 3);
        assert_eq!(log.term_at(2), Some(2));
        assert_eq!(log.term_at(1), None);
        assert_eq!(log.entries_from(2, 10, 100), None);
        assert!(log.compact(2, Bytes::new()).is_err(), "already compacted");
    }

    #[test]
    fn snapshot_data_is_replaced_only_for_the_kept_snapshot_and_same_length() {
        let mut log = log_with_terms(&[1, 1, 2]);
        log.commit_to(3);
        log.take_committed();
        log.applied_to(3);
        assert!(
            !log.replace_snapshot_data(2, Bytes::from_static(b"ab")),
            "no snapshot yet"
        );
        log.compact(2, Bytes::from_static(b"ab")).unwrap();
        assert!(
            !log.replace_snapshot_data(1, Bytes::from_static(b"ab")),
            "other index"
        );
        assert!(
            !log.replace_snapshot_data(2, Bytes::from_static(b"abc")),
            "other length"
        );
        assert_eq!(&log.snapshot().unwrap().data[..], b"ab");
        let stored = Bytes::from(b"ab".to_vec());
        assert!(log.replace_snapshot_data(2, stored.clone()));
        let kept = log.snapshot().unwrap();
        assert_eq!(
            kept.data.as_ptr(),
            stored.as_ptr(),
            "the caller's bytes are kept"
        );
        assert_eq!((kept.meta.index, kept.meta.term), (2, 1));
        assert_eq!(log.first_index(), 3);
    }

    #[test]
    fn snapshot_keeps_matching_suffix_and_drops_a_conflicting_log() {
        let meta = |index, term| SnapshotMeta {
            index,
            term,
            members: Vec::new(),
        };
        let mut log = log_with_terms(&[1, 1, 2, 2]);
        log.install_snapshot(Snapshot {
            meta: meta(3, 2),
            data: Bytes::new(),
        });
        assert_eq!(
            (log.first_index(), log.last_index(), log.committed()),
            (4, 4, 3)
        );
        assert_eq!(
            log.take_unstable().len(),
            1,
            "kept entries are handed out again"
        );
        assert_eq!(
            log.take_unannounced_snapshot().map(|s| s.meta.index),
            Some(3)
        );

        let mut log = log_with_terms(&[1, 1, 2, 2]);
        log.install_snapshot(Snapshot {
            meta: meta(3, 5),
            data: Bytes::new(),
        });
        assert_eq!((log.first_index(), log.last_index()), (4, 3));
        assert!(log.take_committed().is_empty());
        log.snapshot_persisted(3);
        assert_eq!(log.applied(), 3);
    }

    #[test]
    fn committed_entries_are_handed_out_once() {
        let mut log = log_with_terms(&[1, 1, 1]);
        log.take_unstable();
        log.commit_to(2);
        assert_eq!(log.take_committed().len(), 2);
        assert!(log.take_committed().is_empty());
        log.commit_to(3);
        assert_eq!(
            log.take_committed()
                .iter()
                .map(|e| e.index)
                .collect::<Vec<_>>(),
            vec![3]
        );
    }
}
