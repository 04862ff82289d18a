//! One simulated node's durable store: exactly what the Ready contract says
//! was made durable, and nothing else. A crash keeps this and loses the rest.

use raftkv::message::{Entry, Index, Snapshot, Term};
use raftkv::raft::{HardState, InitialState};

use super::checks::LogView;

/// The node's disk: hard state, newest snapshot, log after the snapshot.
#[derive(Clone, Debug, Default)]
pub struct DurableStore {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    /// Contiguous, ascending, all after the snapshot's index.
    pub entries: Vec<Entry>,
}

impl DurableStore {
    pub fn snapshot_point(&self) -> Option<(Index, Term)> {
        self.snapshot.as_ref().map(|s| (s.meta.index, s.meta.term))
    }

    pub fn snapshot_index(&self) -> Index {
        self.snapshot.as_ref().map_or(0, |s| s.meta.index)
    }

    pub fn last_index(&self) -> Index {
        self.entries
            .last()
            .map_or(self.snapshot_index(), |e| e.index)
    }

    /// Term at `index` if it is the snapshot's or a durable entry's.
    pub fn term_at(&self, index: Index) -> Option<Term> {
        match self.snapshot_point() {
            Some((i, t)) if i == index => return Some(t),
            None if index == 0 => return Some(0),
            _ => {}
        }
        let first = self.entries.first()?.index;
        index
            .checked_sub(first)
            .and_then(|offset| self.entries.get(offset as usize))
            .map(|e| e.term)
    }

    /// The log as the node holds it in memory with `ready` laid over it.
    pub fn view<'a>(
        &'a self,
        ready_snapshot: Option<&Snapshot>,
        ready_entries: &'a [Entry],
    ) -> LogView<'a> {
        LogView {
            durable_snapshot: self.snapshot_point(),
            durable_entries: &self.entries,
            ready_snapshot: ready_snapshot.map(|s| (s.meta.index, s.meta.term)),
            ready_entries,
        }
    }

    /// Makes a received snapshot durable: it replaces the old one; the
    /// entries after it survive only if the log holds its last entry.
    pub fn persist_snapshot(&mut self, snapshot: Snapshot) -> Result<(), String> {
        let (index, term) = (snapshot.meta.index, snapshot.meta.term);
        if index <= self.snapshot_index() {
            return Err(format!(
                "ready contract: snapshot at index {index} is not newer than the durable snapshot at {}",
                self.snapshot_index()
            ));
        }
        if self.term_at(index) == Some(term) {
            self.entries.retain(|e| e.index > index);
        } else {
            self.entries.clear();
        }
        self.snapshot = Some(snapshot);
        Ok(())
    }

    /// Makes entries durable: the log is truncated from `entries[0].index`
    /// first. With `keep` below `entries.len()`, only that prefix makes it to
    /// disk (a crash in the middle of the write).
    pub fn persist_entries(&mut self, entries: &[Entry], keep: usize) -> Result<(), String> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        if first.index <= self.snapshot_index() {
            return Err(format!(
                "ready contract: entries start at index {}, inside the durable snapshot at {}",
                first.index,
                self.snapshot_index()
            ));
        }
        if first.index > self.last_index() + 1 {
            return Err(format!(
                "ready contract: entries start at index {}, leaving a gap after the durable last index {}",
                first.index,
                self.last_index()
            ));
        }
        // Entries run contiguously from the snapshot's next index.
        self.entries
            .truncate((first.index - self.snapshot_index() - 1) as usize);
        self.entries.extend(entries.iter().take(keep).cloned());
        Ok(())
    }

    /// After the node compacted its log into a snapshot of its own state.
    pub fn persist_compaction(&mut self, snapshot: Snapshot) {
        let index = snapshot.meta.index;
        self.entries.retain(|e| e.index > index);
        self.snapshot = Some(snapshot);
    }

    pub fn initial_state(&self) -> InitialState {
        InitialState {
            hard_state: self.hard_state,
            snapshot: self.snapshot.clone(),
            entries: self.entries.clone(),
        }
    }
}

/// Test helpers, shared with the other modules' tests.
#[cfg(test)]
pub mod tests {
    use super::*;
    use bytes::Bytes;
    use raftkv::message::{EntryKind, SnapshotMeta};

    /// A no-op entry.
    pub fn entry(index: Index, term: Term) -> Entry {
        Entry {
            index,
            term,
            kind: EntryKind::Noop,
            data: Bytes::new(),
        }
    }

    /// An empty snapshot of a three-voter cluster.
    pub fn snapshot(index: Index, term: Term) -> Snapshot {
        Snapshot {
            meta: SnapshotMeta {
                index,
                term,
                members: Vec::new(),
            },
            data: Bytes::new(),
        }
    }

    #[test]
    fn entries_truncate_from_their_first_index() {
        let mut store = DurableStore::default();
        store
            .persist_entries(&[entry(1, 1), entry(2, 1), entry(3, 1)], 3)
            .unwrap();
        store.persist_entries(&[entry(2, 2)], 1).unwrap();
        assert_eq!(store.last_index(), 2);
        assert_eq!(store.term_at(2), Some(2));
        assert!(store.persist_entries(&[entry(4, 2)], 1).is_err());
        // A torn write keeps a prefix after truncating.
        store
            .persist_entries(&[entry(2, 3), entry(3, 3)], 1)
            .unwrap();
        assert_eq!(store.last_index(), 2);
        assert_eq!(store.term_at(2), Some(3));
    }

    #[test]
    fn snapshot_keeps_the_log_after_it_only_when_it_matches() {
        let mut store = DurableStore::default();
        store
            .persist_entries(&[entry(1, 1), entry(2, 1), entry(3, 2)], 3)
            .unwrap();
        store.persist_snapshot(snapshot(2, 1)).unwrap();
        assert_eq!(store.entries.len(), 1);
        assert_eq!(store.last_index(), 3);
        store.persist_snapshot(snapshot(3, 5)).unwrap();
        assert!(store.entries.is_empty());
        assert_eq!(store.last_index(), 3);
        assert_eq!(store.term_at(3), Some(5));
        assert!(store.persist_snapshot(snapshot(3, 5)).is_err());
        assert!(store.persist_entries(&[entry(3, 6)], 1).is_err());
    }
}
