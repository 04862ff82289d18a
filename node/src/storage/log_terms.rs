//! The term of every entry in the log, kept as runs so that answering
//! "which term is entry i" never touches the disk. Terms change rarely, so
//! a log of millions of entries is a handful of runs.

use raftkv::message::{Index, Term};

/// Terms of the entries `snapshot_index + 1 ..= last_index`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct LogTerms {
    snapshot_index: Index,
    snapshot_term: Term,
    last_index: Index,
    /// (first index, term) of each run, ascending; runs end where the next
    /// begins, the last one at `last_index`. Empty when the log is.
    runs: Vec<(Index, Term)>,
}

impl LogTerms {
    pub(super) fn new(snapshot_index: Index, snapshot_term: Term) -> LogTerms {
        LogTerms {
            snapshot_index,
            snapshot_term,
            last_index: snapshot_index,
            runs: Vec::new(),
        }
    }

    pub(super) fn last_index(&self) -> Index {
        self.last_index
    }

    /// (index, term) of the snapshot the log follows; (0, 0) for none.
    pub(super) fn snapshot(&self) -> (Index, Term) {
        (self.snapshot_index, self.snapshot_term)
    }

    /// The term of entry `index`: the snapshot's term at its own index,
    /// `None` when compacted away or beyond the log.
    pub(super) fn term(&self, index: Index) -> Option<Term> {
        if index == self.snapshot_index {
            return Some(self.snapshot_term);
        }
        if index < self.snapshot_index || index > self.last_index {
            return None;
        }
        let run = self.runs.partition_point(|&(first, _)| first <= index);
        Some(self.runs[run - 1].1)
    }

    /// Records entry (`index`, `term`), truncating the log from `index`
    /// first when it is not past the end. The caller guarantees
    /// `snapshot_index < index <= last_index + 1`.
    pub(super) fn push(&mut self, index: Index, term: Term) {
        debug_assert!(index > self.snapshot_index && index <= self.last_index + 1);
        if index <= self.last_index {
            let keep = self.runs.partition_point(|&(first, _)| first < index);
            self.runs.truncate(keep);
        }
        if self.runs.last().map(|&(_, last_term)| last_term) != Some(term) {
            self.runs.push((index, term));
        }
        self.last_index = index;
    }

    /// A snapshot through (`index`, `term`) replaced the log's prefix, or
    /// the whole log when `discard_log`.
    pub(super) fn compact(&mut self, index: Index, term: Term, discard_log: bool) {
        if discard_log || index >= self.last_index {
            self.runs.clear();
            self.last_index = index;
        } else {
            let first_kept = self.runs.partition_point(|&(first, _)| first <= index);
            // The run holding `index` continues past it: it now starts after it.
            let straddling = first_kept.checked_sub(1).map(|run| self.runs[run].1);
            self.runs.drain(..first_kept);
            if let Some(straddling_term) = straddling {
                let next_start = self.runs.first().map(|&(first, _)| first);
                if next_start != Some(index + 1) {
                    self.runs.insert(0, (index + 1, straddling_term));
                }
            }
        }
        self.snapshot_index = index;
        self.snapshot_term = term;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(log: &LogTerms, indexes: std::ops::RangeInclusive<Index>) -> Vec<Option<Term>> {
        indexes.map(|index| log.term(index)).collect()
    }

    #[test]
    fn terms_follow_appends_and_conflict_truncation() {
        let mut log = LogTerms::new(0, 0);
        for (index, term) in [(1, 1), (2, 1), (3, 2), (4, 2), (5, 2)] {
            log.push(index, term);
        }
        assert_eq!(
            terms(&log, 0..=6),
            vec![Some(0), Some(1), Some(1), Some(2), Some(2), Some(2), None]
        );
        log.push(4, 3);
        assert_eq!(log.last_index(), 4);
        assert_eq!(
            terms(&log, 1..=5),
            vec![Some(1), Some(1), Some(2), Some(3), None]
        );
        log.push(2, 3);
        assert_eq!(terms(&log, 1..=3), vec![Some(1), Some(3), None]);
        assert_eq!(log.runs, vec![(1, 1), (2, 3)]);
    }

    #[test]
    fn compaction_keeps_terms_after_the_snapshot() {
        let mut log = LogTerms::new(0, 0);
        for index in 1..=10 {
            log.push(index, if index <= 6 { 1 } else { 2 });
        }
        log.compact(4, 1, false);
        assert_eq!(
            terms(&log, 3..=8),
            vec![None, Some(1), Some(1), Some(1), Some(2), Some(2)]
        );
        log.compact(6, 1, false);
        assert_eq!(log.runs, vec![(7, 2)]);
        assert_eq!(terms(&log, 6..=7), vec![Some(1), Some(2)]);
        log.compact(12, 5, false);
        assert_eq!(
            (log.last_index(), log.term(12), log.term(11)),
            (12, Some(5), None)
        );
        log.push(13, 5);
        log.compact(13, 5, true);
        assert_eq!((log.last_index(), log.runs.len()), (13, 0));
        log.compact(20, 6, true);
        assert_eq!((log.last_index(), log.term(20)), (20, Some(6)));
    }
}
