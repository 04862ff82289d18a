//! Crash recovery: rebuild the durable state from the snapshot files and
//! the WAL, checking everything before changing anything on disk.

use std::path::{Path, PathBuf};

use raftkv::message::{Entry, Index, Snapshot, Term};
use raftkv::raft::HardState;

use super::record::Record;
use super::snapshot::{self, SnapshotFile};
use super::wal::{self, SegmentInfo, SegmentScan};
use super::StorageError;

/// The log as the WAL describes it, built record by record.
#[derive(Debug, Default)]
pub(super) struct Replay {
    /// Contiguous, ascending.
    pub entries: Vec<Entry>,
    pub hard_state: HardState,
    /// The newest snapshot marker: the log was compacted through this
    /// (index, term), so a snapshot at least this new must exist.
    pub compacted: Option<(Index, Term)>,
    /// Where the current first entry was read, to name it in errors.
    pub first_entry_at: Option<(PathBuf, u64)>,
}

impl Replay {
    fn last_index(&self) -> Option<Index> {
        self.entries.last().map(|entry| entry.index)
    }

    fn term_at(&self, index: Index) -> Option<Term> {
        let first = self.entries.first()?.index;
        let position = index.checked_sub(first)?;
        self.entries.get(position as usize).map(|entry| entry.term)
    }

    /// Applies one record read at `offset` of `file`.
    pub(super) fn apply(
        &mut self,
        record: Record,
        file: &Path,
        offset: u64,
    ) -> Result<(), StorageError> {
        match record {
            Record::BatchStart => Ok(()),
            Record::HardState(hard_state) => {
                self.hard_state = hard_state;
                Ok(())
            }
            Record::HardStateWithoutIncarnation(hard_state) => {
                self.hard_state = hard_state.into();
                Ok(())
            }
            Record::Entry(entry) => self.apply_entry(entry, file, offset),
            Record::Snapshot {
                index,
                term,
                discard_log,
            } => {
                self.apply_snapshot_marker(index, term, discard_log);
                Ok(())
            }
        }
    }

    fn apply_entry(&mut self, entry: Entry, file: &Path, offset: u64) -> Result<(), StorageError> {
        if let Some((compacted_index, _)) = self.compacted {
            // Appends after a snapshot were checked to lie beyond it.
            if entry.index <= compacted_index {
                return Err(StorageError::Corrupt {
                    file: file.to_path_buf(),
                    offset,
                    what: format!(
                        "entry {} lies inside the snapshot through index {compacted_index} recorded before it",
                        entry.index
                    ),
                });
            }
        }
        let first = self.entries.first().map(|e| e.index);
        let last = self.last_index();
        match (first, last) {
            (Some(first), Some(last)) if first <= entry.index && entry.index <= last + 1 => {
                // Extends the log, or replaces it from this index on (Raft
                // conflict truncation).
                if entry.index == first {
                    self.first_entry_at = Some((file.to_path_buf(), offset));
                }
                self.entries.truncate((entry.index - first) as usize);
                self.entries.push(entry);
            }
            _ => {
                // The log restarts here: either it was empty, or this entry
                // replaces entries that lived in segments already deleted
                // (covered by a snapshot whose record comes later). What is
                // dropped must be covered by the snapshot recovery ends with;
                // `align_with_snapshot` checks that the log follows it.
                self.entries.clear();
                self.first_entry_at = Some((file.to_path_buf(), offset));
                self.entries.push(entry);
            }
        }
        Ok(())
    }

    fn apply_snapshot_marker(&mut self, index: Index, term: Term, discard_log: bool) {
        self.compacted = Some((index, term));
        let Some(first) = self.entries.first().map(|e| e.index) else {
            return;
        };
        if discard_log || index >= first {
            // The first entry changes; its origin is no longer known.
            self.first_entry_at = None;
        }
        if discard_log {
            self.entries.clear();
        } else {
            // A log that begins after index + 1 is kept: it begins in a
            // segment written before this snapshot whose older neighbours
            // were deleted; a later snapshot record covers the difference,
            // or alignment reports it.
            self.drop_entries_covered_by(index, term);
        }
    }

    /// Drops the entries a snapshot through (`index`, `term`) covers; a log
    /// that begins after `index` is left as it is. A log that disagrees with
    /// the snapshot at `index` is from another history and cannot follow
    /// it: it is dropped whole, and the answer is true.
    fn drop_entries_covered_by(&mut self, index: Index, term: Term) -> bool {
        let (Some(first), Some(last)) = (self.entries.first().map(|e| e.index), self.last_index())
        else {
            return false;
        };
        if index >= last {
            self.entries.clear();
        } else if index >= first {
            if self.term_at(index) != Some(term) {
                self.entries.clear();
                return true;
            }
            self.entries.drain(..=(index - first) as usize);
        }
        false
    }
}

/// The snapshot chosen at recovery and what aligning the log to it did.
pub(super) struct Aligned {
    pub snapshot: Option<Snapshot>,
    /// Snapshot files that failed validation (newer than the chosen one).
    pub skipped_snapshots: Vec<(PathBuf, snapshot::InvalidSnapshot)>,
    /// Set when the chosen snapshot is newer than the WAL's last snapshot
    /// marker (a crash between saving the file and logging it): the marker
    /// to write, with its `discard_log` flag.
    pub marker_to_complete: Option<(Index, Term, bool)>,
}

/// Picks the newest valid snapshot and trims `replay.entries` to follow it.
pub(super) fn align_with_snapshot(
    dir: &Path,
    candidates: &[SnapshotFile],
    replay: &mut Replay,
) -> Result<Aligned, StorageError> {
    let mut skipped_snapshots = Vec::new();
    let mut chosen = None;
    for candidate in candidates {
        match snapshot::read(candidate)? {
            Ok(snapshot) => {
                chosen = Some(snapshot);
                break;
            }
            Err(invalid) => skipped_snapshots.push((candidate.path.clone(), invalid)),
        }
    }
    let (snapshot_index, snapshot_term) = chosen
        .as_ref()
        .map(|s| (s.meta.index, s.meta.term))
        .unwrap_or((0, 0));

    if let Some((compacted_index, compacted_term)) = replay.compacted {
        if snapshot_index < compacted_index {
            return Err(missing_snapshot_error(
                dir,
                &skipped_snapshots,
                compacted_index,
            ));
        }
        if snapshot_index == compacted_index && snapshot_term != compacted_term {
            return Err(StorageError::Corrupt {
                file: dir.join(snapshot::file_name(snapshot_index, snapshot_term)),
                offset: 0,
                what: format!("the WAL says the snapshot at index {compacted_index} has term {compacted_term}"),
            });
        }
    }

    if let Some(first) = replay.entries.first().map(|e| e.index) {
        if first > snapshot_index + 1 {
            let (file, offset) = replay
                .first_entry_at
                .clone()
                .unwrap_or((dir.to_path_buf(), 0));
            return Err(StorageError::Corrupt {
                file,
                offset,
                what: format!(
                    "the log starts at entry {first} but the newest valid snapshot ends at index {snapshot_index}"
                ),
            });
        }
    }
    let discarded = replay.drop_entries_covered_by(snapshot_index, snapshot_term);
    let compacted_index = replay.compacted.map(|(index, _)| index).unwrap_or(0);
    let marker_to_complete =
        (snapshot_index > compacted_index).then_some((snapshot_index, snapshot_term, discarded));
    Ok(Aligned {
        snapshot: chosen,
        skipped_snapshots,
        marker_to_complete,
    })
}

fn missing_snapshot_error(
    dir: &Path,
    skipped: &[(PathBuf, snapshot::InvalidSnapshot)],
    compacted_index: Index,
) -> StorageError {
    let consequence = format!(
        "the WAL was compacted through index {compacted_index}, so no older snapshot can replace it"
    );
    match skipped.first() {
        Some((path, invalid)) => StorageError::Corrupt {
            file: path.clone(),
            offset: invalid.offset,
            what: format!("{}; {consequence}", invalid.what),
        },
        None => StorageError::Corrupt {
            file: dir.to_path_buf(),
            offset: 0,
            what: format!("no snapshot file covers index {compacted_index}; {consequence}"),
        },
    }
}

/// The result of reading the whole WAL.
pub(super) struct WalReplay {
    pub replay: Replay,
    pub segments: Vec<SegmentInfo>,
    /// The last segment's end after its last intact record, if any bytes
    /// follow it: a torn tail, or preallocated zeros (`TailToCut::zeros`).
    pub torn_tail: Option<TailToCut>,
}

/// Bytes after the last intact record of the last segment.
pub(super) struct TailToCut {
    pub path: PathBuf,
    pub valid_bytes: u64,
    pub file_bytes: u64,
    /// All zero: preallocated space, not a torn write.
    pub zeros: bool,
}

/// Reads every segment in order. Read-only: a torn tail is reported, not cut.
pub(super) fn replay_wal(wal_dir: &Path) -> Result<WalReplay, StorageError> {
    let listed = wal::list_segments(wal_dir)?;
    let mut replay = Replay::default();
    let mut segments = Vec::with_capacity(listed.len());
    let mut torn_tail = None;
    for (position, (number, path)) in listed.iter().enumerate() {
        let bytes = std::fs::read(path).map_err(super::io_error(path))?;
        let is_last_segment = position + 1 == listed.len();
        let mut max_entry_index = 0;
        let scan: SegmentScan =
            wal::scan_segment(path, &bytes, is_last_segment, |offset, record| {
                if let Record::Entry(entry) = &record {
                    max_entry_index = max_entry_index.max(entry.index);
                }
                replay.apply(record, path, offset)
            })?;
        if scan.valid_bytes < scan.file_bytes {
            torn_tail = Some(TailToCut {
                path: path.clone(),
                valid_bytes: scan.valid_bytes,
                file_bytes: scan.file_bytes,
                zeros: scan.zero_tail,
            });
        }
        segments.push(SegmentInfo {
            number: *number,
            max_entry_index,
        });
    }
    Ok(WalReplay {
        replay,
        segments,
        torn_tail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use raftkv::message::EntryKind;

    fn entry(index: Index, term: Term) -> Record {
        Record::Entry(Entry {
            index,
            term,
            kind: EntryKind::Noop,
            data: Bytes::new(),
        })
    }

    fn replay(records: Vec<Record>) -> Result<Replay, StorageError> {
        let mut replay = Replay::default();
        for (offset, record) in records.into_iter().enumerate() {
            replay.apply(record, Path::new("00000001.wal"), offset as u64)?;
        }
        Ok(replay)
    }

    fn indexes_and_terms(replay: &Replay) -> Vec<(Index, Term)> {
        replay.entries.iter().map(|e| (e.index, e.term)).collect()
    }

    #[test]
    fn an_entry_at_or_below_the_last_index_replaces_the_log_from_there() {
        let replay = replay(vec![
            entry(1, 1),
            entry(2, 1),
            entry(3, 1),
            entry(2, 2),
            entry(3, 2),
        ])
        .unwrap();
        assert_eq!(indexes_and_terms(&replay), vec![(1, 1), (2, 2), (3, 2)]);
    }

    #[test]
    fn a_gap_between_entries_is_corruption_unless_a_snapshot_covers_it() {
        let mut gapped = replay(vec![entry(1, 1), entry(3, 1)]).unwrap();
        assert_eq!(indexes_and_terms(&gapped), vec![(3, 1)]);
        let error = align_with_snapshot(Path::new("/data"), &[], &mut gapped)
            .err()
            .unwrap();
        assert!(
            matches!(error, StorageError::Corrupt { offset: 1, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("starts at entry 3"), "{error}");

        let mut covered = replay(vec![
            entry(1, 1),
            entry(3, 1),
            Record::Snapshot {
                index: 3,
                term: 1,
                discard_log: false,
            },
        ])
        .unwrap();
        assert!(covered.entries.is_empty());
        // The snapshot file itself is missing: named as such.
        let error = align_with_snapshot(Path::new("/data"), &[], &mut covered)
            .err()
            .unwrap();
        assert!(
            error
                .to_string()
                .contains("no snapshot file covers index 3"),
            "{error}"
        );
    }

    #[test]
    fn a_snapshot_marker_keeps_only_matching_entries_after_it() {
        let marker = |discard_log| Record::Snapshot {
            index: 2,
            term: 1,
            discard_log,
        };
        let kept = replay(vec![entry(1, 1), entry(2, 1), entry(3, 1), marker(false)]).unwrap();
        assert_eq!(indexes_and_terms(&kept), vec![(3, 1)]);
        let discarded = replay(vec![entry(1, 1), entry(2, 1), entry(3, 1), marker(true)]).unwrap();
        assert!(discarded.entries.is_empty());
        let conflicting =
            replay(vec![entry(1, 1), entry(2, 5), entry(3, 5), marker(false)]).unwrap();
        assert!(conflicting.entries.is_empty());
        // Entries written after a snapshot record lie beyond it.
        let error = replay(vec![entry(1, 1), marker(true), entry(2, 2)]).unwrap_err();
        assert!(error.to_string().contains("inside the snapshot"), "{error}");
    }
}
