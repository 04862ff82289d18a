//! Linearizable reads through ReadIndex, batched by heartbeat round.
//!
//! A read records the leader's commit index when it arrives and needs the
//! next heartbeat round (one sent after it arrived) to be answered by a
//! majority. All reads waiting for the same round share it: a round is sent
//! at once when no earlier read is waiting, otherwise when the round in
//! flight is confirmed (or at the next heartbeat).

use std::collections::VecDeque;

use super::ReadState;
use crate::message::Index;

/// Bound on reads waiting for confirmation; more are refused as overloaded.
pub(crate) const PENDING_READS_MAX: usize = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PendingRead {
    context: u64,
    index: Index,
    /// The heartbeat round whose majority acknowledgement makes it safe.
    round: u64,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct ReadOnly {
    /// Newest heartbeat round sent; rounds only grow, across terms too, so
    /// an acknowledgement can never be mistaken for a newer round's.
    last_round_sent: u64,
    /// Reads in arrival order (so rounds are non-decreasing).
    pending: VecDeque<PendingRead>,
    /// Reads that arrived before the leader committed an entry of its term.
    awaiting_term_commit: VecDeque<u64>,
}

impl ReadOnly {
    pub fn len(&self) -> usize {
        self.pending.len() + self.awaiting_term_commit.len()
    }

    pub fn last_round_sent(&self) -> u64 {
        self.last_round_sent
    }

    /// Starts a new heartbeat round; returns its number.
    pub fn next_round(&mut self) -> u64 {
        self.last_round_sent += 1;
        self.last_round_sent
    }

    /// Queues a read at commit `index`; returns true if a round must be
    /// sent now because no earlier read is waiting for one.
    pub fn add(&mut self, context: u64, index: Index) -> bool {
        let start_round_now = self.pending.is_empty();
        self.pending.push_back(PendingRead {
            context,
            index,
            round: self.last_round_sent + 1,
        });
        start_round_now
    }

    pub fn await_term_commit(&mut self, context: u64) {
        self.awaiting_term_commit.push_back(context);
    }

    /// Reads that were waiting for the leader's first commit of its term.
    pub fn take_awaiting_term_commit(&mut self) -> Vec<u64> {
        self.awaiting_term_commit.drain(..).collect()
    }

    /// Releases every read whose round a majority confirmed.
    pub fn release(&mut self, confirmed_round: u64) -> Vec<ReadState> {
        let mut safe = Vec::new();
        while let Some(read) = self.pending.front().copied() {
            if read.round > confirmed_round {
                break;
            }
            self.pending.pop_front();
            safe.push(ReadState {
                context: read.context,
                index: read.index,
            });
        }
        safe
    }

    /// True when a read waits for a round that has not been sent yet.
    pub fn needs_round(&self) -> bool {
        self.pending
            .front()
            .is_some_and(|read| read.round > self.last_round_sent)
    }

    /// Leadership lost: every waiting read's context, to tell its client.
    pub fn drop_all(&mut self) -> Vec<u64> {
        let mut dropped: Vec<u64> = self.awaiting_term_commit.drain(..).collect();
        dropped.extend(self.pending.drain(..).map(|read| read.context));
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_need_a_round_sent_after_they_arrived() {
        let mut reads = ReadOnly::default();
        let stale_round = reads.next_round();
        assert!(reads.add(1, 10), "first read starts a round");
        assert!(
            reads.release(stale_round).is_empty(),
            "a round sent before the read does not confirm it"
        );
        let round = reads.next_round();
        assert_eq!(
            reads.release(round),
            vec![ReadState {
                context: 1,
                index: 10
            }]
        );
    }

    #[test]
    fn reads_arriving_during_a_round_share_the_next_one() {
        let mut reads = ReadOnly::default();
        assert!(reads.add(1, 5));
        let first = reads.next_round();
        assert!(!reads.add(2, 6), "a round is already in flight");
        assert!(!reads.add(3, 6));
        assert_eq!(reads.release(first).len(), 1);
        assert!(
            reads.needs_round(),
            "the batch waits for a round not yet sent"
        );
        let second = reads.next_round();
        assert!(!reads.needs_round());
        let released = reads.release(second);
        assert_eq!(
            released.iter().map(|r| r.context).collect::<Vec<_>>(),
            vec![2, 3]
        );
    }

    #[test]
    fn losing_leadership_drops_every_waiting_read() {
        let mut reads = ReadOnly::default();
        reads.await_term_commit(7);
        reads.add(8, 1);
        assert_eq!(reads.len(), 2);
        let mut dropped = reads.drop_all();
        dropped.sort_unstable();
        assert_eq!(dropped, vec![7, 8]);
        assert_eq!(reads.len(), 0);
    }
}
