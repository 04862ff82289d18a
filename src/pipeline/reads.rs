//! Read batching: linearizable reads that arrive while the driver is busy
//! share one ReadIndex and one confirmation.
//!
//! The first reader opens a batch (and announces it to the driver); later
//! readers join it until the driver takes it, just before `read_index`.
//! Every reader of a batch arrived before its ReadIndex was issued, so the
//! confirmed index covers every write acknowledged before any of them
//! started: the reads stay linearizable. A batch is generic (`B`): the
//! node's is a shared handle its readers wait on, the simulator's a list of
//! client operations.

use std::collections::{BTreeMap, HashMap};

use crate::message::Index;
use crate::raft::ProposeError;

/// Most readers one ReadIndex answers; the next reader starts a new batch.
pub const READ_BATCH_READERS_MAX: usize = 4_096;

/// The batch readers join until the driver takes it.
#[derive(Debug)]
pub struct ReadGate<B> {
    open: Option<B>,
    /// Readers of the open batch.
    readers: usize,
}

impl<B> Default for ReadGate<B> {
    fn default() -> Self {
        ReadGate {
            open: None,
            readers: 0,
        }
    }
}

impl<B: Clone> ReadGate<B> {
    /// Joins the open batch, or opens one made by `open_new` when there is
    /// none or it is full. `true`: this reader opened it and must announce
    /// it to the driver.
    pub fn join(&mut self, open_new: impl FnOnce() -> B) -> (B, bool) {
        if let Some(batch) = &self.open {
            if self.readers < READ_BATCH_READERS_MAX {
                self.readers += 1;
                return (batch.clone(), false);
            }
        }
        let batch = open_new();
        self.open = Some(batch.clone());
        self.readers = 1;
        (batch, true)
    }
}

impl<B> ReadGate<B> {
    /// The driver takes the open batch to issue its ReadIndex: readers that
    /// come after this start a new batch.
    pub fn take_open(&mut self) -> Option<B> {
        self.readers = 0;
        self.open.take()
    }

    /// Closes the open batch if `is_it` says it is the one meant.
    pub fn close_if(&mut self, is_it: impl FnOnce(&B) -> bool) {
        if self.open.as_ref().is_some_and(is_it) {
            self.take_open();
        }
    }

    /// The open batch, if any.
    pub fn open(&self) -> Option<&B> {
        self.open.as_ref()
    }
}

/// Why a batch of reads failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadFailure {
    /// The core refused the ReadIndex (not the leader, or not yet able).
    Refused(ProposeError),
    /// Leadership was lost before the read became safe.
    NoLeader,
}

/// Batches whose ReadIndex was issued: waiting for the confirmation, then
/// for the applied index to reach the confirmed index.
#[derive(Debug)]
pub struct PendingReads<B> {
    next_context: u64,
    /// By the context handed to `read_index`.
    unconfirmed: HashMap<u64, B>,
    /// Confirmed, by the index that must be applied first.
    waiting: BTreeMap<Index, Vec<B>>,
}

impl<B> Default for PendingReads<B> {
    fn default() -> Self {
        PendingReads {
            next_context: 0,
            unconfirmed: HashMap::new(),
            waiting: BTreeMap::new(),
        }
    }
}

impl<B> PendingReads<B> {
    /// Registers a batch; returns the context for its `read_index`.
    pub fn register(&mut self, batch: B) -> u64 {
        self.next_context += 1;
        self.unconfirmed.insert(self.next_context, batch);
        self.next_context
    }

    pub fn unregister(&mut self, context: u64) -> Option<B> {
        self.unconfirmed.remove(&context)
    }

    /// The ReadIndex of `context` was confirmed at `index`: the batch, if
    /// it may read now (`applied` reaches `index`); otherwise it waits.
    pub fn confirmed(&mut self, context: u64, index: Index, applied: Index) -> Option<B> {
        let batch = self.unconfirmed.remove(&context)?;
        if index <= applied {
            return Some(batch);
        }
        self.waiting.entry(index).or_default().push(batch);
        None
    }

    /// The ReadIndex of `context` will never be confirmed.
    pub fn dropped(&mut self, context: u64) -> Option<B> {
        self.unconfirmed.remove(&context)
    }

    /// The batches that may read now that `applied` is applied.
    pub fn applied_through(&mut self, applied: Index) -> Vec<B> {
        let mut ready = Vec::new();
        while let Some(entry) = self.waiting.first_entry() {
            if *entry.key() > applied {
                break;
            }
            ready.extend(entry.remove());
        }
        ready
    }

    /// Every batch still pending (leadership lost, or the driver stops).
    pub fn take_all(&mut self) -> Vec<B> {
        let mut all: Vec<B> = self.unconfirmed.drain().map(|(_, batch)| batch).collect();
        for (_, batches) in std::mem::take(&mut self.waiting) {
            all.extend(batches);
        }
        all
    }

    pub fn is_empty(&self) -> bool {
        self.unconfirmed.is_empty() && self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_batch_starts_a_new_one() {
        let mut gate = ReadGate::default();
        let mut next_batch = 0;
        let mut open = || {
            next_batch += 1;
            next_batch
        };
        let (first, opened) = gate.join(&mut open);
        assert!(opened);
        for _ in 1..READ_BATCH_READERS_MAX {
            assert_eq!(gate.join(&mut open), (first, false));
        }
        let (next, opened) = gate.join(&mut open);
        assert!(
            opened,
            "reader {} opens a new batch",
            READ_BATCH_READERS_MAX + 1
        );
        assert_ne!(next, first);
    }

    #[test]
    fn a_reader_after_the_batch_was_taken_opens_the_next() {
        let mut gate = ReadGate::default();
        assert_eq!(gate.join(|| 1), (1, true));
        assert_eq!(gate.join(|| 2), (1, false));
        assert_eq!(gate.take_open(), Some(1));
        assert_eq!(gate.join(|| 3), (3, true));
        gate.close_if(|b| *b == 1);
        assert_eq!(gate.open(), Some(&3), "only the batch meant is closed");
        gate.close_if(|b| *b == 3);
        assert_eq!(gate.open(), None);
    }

    #[test]
    fn confirmed_batches_wait_for_the_apply_index() {
        let mut pending = PendingReads::default();
        let applied_already = pending.register("a");
        let applied_later = pending.register("b");
        let dropped = pending.register("c");
        let lost = pending.register("d");
        assert_eq!(pending.confirmed(applied_already, 10, 10), Some("a"));
        assert_eq!(pending.confirmed(applied_later, 12, 10), None);
        assert_eq!(pending.dropped(dropped), Some("c"));
        assert_eq!(pending.dropped(dropped), None, "once");
        assert!(
            pending.applied_through(11).is_empty(),
            "12 is not applied at 11"
        );
        assert_eq!(pending.applied_through(12), vec!["b"]);
        assert_eq!(pending.take_all(), vec!["d"]);
        assert!(pending.is_empty());
        let _ = lost;
    }
}
