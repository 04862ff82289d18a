//! The driver's side of the write-ahead log: which writes are handed to
//! the WAL and how (inline or queued), which messages wait for which job's
//! fsync, and what a report of the WAL releases.
//!
//! Jobs complete strictly in submission order, so "durable through job N"
//! covers every earlier job too.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::message::{Entry, Index, Message, Snapshot, Term};
use crate::raft::HardState;

#[cfg(feature = "planted-bugs")]
use super::DriverBug;

/// True when the test-only planted driver bug `$bug` is configured; always
/// false unless the `planted-bugs` feature is compiled in.
#[cfg(feature = "planted-bugs")]
macro_rules! planted {
    ($queue:expr, $bug:ident) => {
        $queue.planted_bug == Some(DriverBug::$bug)
    };
}
#[cfg(not(feature = "planted-bugs"))]
macro_rules! planted {
    ($queue:expr, $bug:ident) => {
        false
    };
}

/// Entries and a hard state to write, in that order: a crash that tears
/// the write must never leave a commit index durable without the entries
/// it covers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalWrite {
    /// Appended after a conflict truncation where their first index asks
    /// for it.
    pub entries: Vec<Entry>,
    pub hard_state: Option<HardState>,
    /// fsync before reporting: entries, or a new term or vote. A commit
    /// index alone rides along with the next fsync.
    pub sync: bool,
}

/// A job for the WAL thread, numbered in submission order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalJob {
    Write {
        seq: u64,
        write: WalWrite,
    },
    /// A snapshot from the leader replaces the log (or its prefix, when the
    /// log holds the snapshot's last entry), then `write` follows it.
    /// Always durable before it is reported.
    InstallSnapshot {
        seq: u64,
        snapshot: Snapshot,
        write: WalWrite,
    },
}

/// What the WAL reports back to the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalReport {
    /// Every job up to and including `through_seq` is durable.
    Durable { through_seq: u64 },
    /// The own snapshot of job `seq` is durable (and so is every job
    /// before it); `data` is the state it holds.
    SnapshotSaved { seq: u64, index: Index, data: Bytes },
}

/// What a report releases.
#[derive(Debug, Default)]
pub struct Released {
    /// The newest entry now durable (for the core), if the jobs had any.
    pub persisted_last: Option<(Index, Term)>,
    /// Messages to send now, in the order they were produced.
    pub messages: Vec<Message>,
    /// An own snapshot that is now durable: compact the core's log.
    pub snapshot_saved: Option<(Index, Bytes)>,
}

/// How a Ready's write reaches the disk.
#[derive(Debug, PartialEq, Eq)]
pub enum HandOff {
    /// Nothing to write now (a commit index alone waits for the next job).
    Nothing,
    /// Write and fsync now, on the driver's thread.
    Inline(WalWrite),
    /// Queue for the WAL thread.
    Queued(WalJob),
}

/// The hand-off of one Ready's write, and what it releases at once.
#[derive(Debug)]
pub struct Handed {
    pub hand_off: HandOff,
    /// Messages that may leave once `hand_off` is done.
    pub release: Vec<Message>,
    /// The entry `hand_off` makes durable at once, for `advance`.
    pub persisted_last: Option<(Index, Term)>,
}

/// A submitted job the driver still waits on.
#[derive(Debug)]
struct InFlight {
    seq: u64,
    /// The job's last entry, for `ReadyAck::persisted_last`.
    persisted_last: Option<(Index, Term)>,
    /// Messages that may leave only once the job is durable.
    held_messages: Vec<Message>,
}

/// The jobs handed to the WAL and not yet reported durable.
#[derive(Debug)]
pub struct WalQueue {
    in_flight: VecDeque<InFlight>,
    /// Bound on `in_flight`: at it the driver takes no new Ready.
    jobs_in_flight_max: usize,
    next_seq: u64,
    /// A hard state that changed only its commit index, not yet handed
    /// over: it rides along with the next job (or the final one at stop)
    /// instead of costing the WAL a round trip of its own.
    unwritten_commit: Option<HardState>,
    /// The hard state last handed over (its term and vote are durable or
    /// queued with an fsync).
    recorded_hard_state: HardState,
    #[cfg(feature = "planted-bugs")]
    pub(super) planted_bug: Option<DriverBug>,
}

impl WalQueue {
    /// `recorded_hard_state`: the hard state the storage holds at start.
    pub fn new(recorded_hard_state: HardState, jobs_in_flight_max: usize) -> Self {
        assert!(jobs_in_flight_max > 0, "the WAL needs room for one job");
        WalQueue {
            in_flight: VecDeque::new(),
            jobs_in_flight_max,
            next_seq: 0,
            unwritten_commit: None,
            recorded_hard_state,
            #[cfg(feature = "planted-bugs")]
            planted_bug: None,
        }
    }

    /// Whether another job may be submitted now.
    pub fn has_room(&self) -> bool {
        self.in_flight.len() < self.jobs_in_flight_max
    }

    /// No job is waiting for its report.
    pub fn is_idle(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// Jobs submitted and not yet reported.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Term and vote must be durable before the messages that depend on
    /// them leave. A commit index alone need not be (as in etcd's
    /// MustSync): it only covers entries already handed over ahead of it,
    /// and a node that loses it in a crash learns it again from the leader.
    fn hard_state_needs_sync(&self, hard_state: Option<HardState>) -> bool {
        hard_state.is_some_and(|h| {
            h.term != self.recorded_hard_state.term || h.vote != self.recorded_hard_state.vote
        })
    }

    /// Hands over a Ready's entries and hard state. `held_messages` may
    /// leave once they are durable. With `inline` and no job in flight the
    /// write happens on the caller's thread; otherwise it is queued. With
    /// nothing to write, the messages still wait for the jobs before them
    /// (they may promise what those jobs write). `sync_commit`: the commit
    /// index is written and fsynced now, not with the next write.
    pub fn write(
        &mut self,
        entries: Vec<Entry>,
        hard_state: Option<HardState>,
        held_messages: Vec<Message>,
        inline: bool,
        sync_commit: bool,
    ) -> Handed {
        let commit_unwritten = hard_state.is_some() || self.unwritten_commit.is_some();
        let sync = !entries.is_empty()
            || self.hard_state_needs_sync(hard_state)
            || (sync_commit && commit_unwritten);
        if let Some(h) = hard_state {
            self.recorded_hard_state = h;
        }
        let ack_at_hand_off = planted!(self, AckBeforeFsync);
        if entries.is_empty() && !sync {
            if hard_state.is_some() {
                self.unwritten_commit = hard_state;
            }
            let release = match self.in_flight.back_mut() {
                Some(last) if !ack_at_hand_off => {
                    last.held_messages.extend(held_messages);
                    Vec::new()
                }
                _ => held_messages,
            };
            return Handed {
                hand_off: HandOff::Nothing,
                release,
                persisted_last: None,
            };
        }
        let write = WalWrite {
            entries,
            hard_state: hard_state.or(self.unwritten_commit.take()),
            sync,
        };
        let persisted_last = write.entries.last().map(|e| (e.index, e.term));
        if inline && self.is_idle() {
            return Handed {
                hand_off: HandOff::Inline(write),
                release: held_messages,
                persisted_last,
            };
        }
        if ack_at_hand_off {
            let job = self.submit(
                |seq| WalJob::Write { seq, write },
                persisted_last,
                Vec::new(),
            );
            return Handed {
                hand_off: HandOff::Queued(job),
                release: held_messages,
                persisted_last: None,
            };
        }
        if planted!(self, PersistedBeforeFsync) {
            let job = self.submit(|seq| WalJob::Write { seq, write }, None, held_messages);
            return Handed {
                hand_off: HandOff::Queued(job),
                release: Vec::new(),
                persisted_last,
            };
        }
        let job = self.submit(
            |seq| WalJob::Write { seq, write },
            persisted_last,
            held_messages,
        );
        Handed {
            hand_off: HandOff::Queued(job),
            release: Vec::new(),
            persisted_last: None,
        }
    }

    /// Queues a snapshot from the leader with the entries and hard state
    /// that follow it.
    pub fn install_snapshot(
        &mut self,
        snapshot: Snapshot,
        entries: Vec<Entry>,
        hard_state: Option<HardState>,
        held_messages: Vec<Message>,
    ) -> WalJob {
        if let Some(h) = hard_state {
            self.recorded_hard_state = h;
        }
        let persisted_last = entries.last().map(|e| (e.index, e.term));
        let write = WalWrite {
            entries,
            hard_state: hard_state.or(self.unwritten_commit.take()),
            sync: true,
        };
        self.submit(
            |seq| WalJob::InstallSnapshot {
                seq,
                snapshot,
                write,
            },
            persisted_last,
            held_messages,
        )
    }

    /// Numbers a job that saves this node's own snapshot (built by the
    /// caller, whose snapshot files are its own business); its report is
    /// `WalReport::SnapshotSaved`.
    pub fn own_snapshot_job(&mut self) -> u64 {
        self.submit(|seq| seq, None, Vec::new())
    }

    /// The commit index no job carried yet, for a final write at stop.
    pub fn take_unwritten_commit(&mut self) -> Option<HardState> {
        self.unwritten_commit.take()
    }

    fn submit<J>(
        &mut self,
        job: impl FnOnce(u64) -> J,
        persisted_last: Option<(Index, Term)>,
        held_messages: Vec<Message>,
    ) -> J {
        debug_assert!(
            self.in_flight.len() <= self.jobs_in_flight_max,
            "the driver checks has_room first"
        );
        self.next_seq += 1;
        let seq = self.next_seq;
        self.in_flight.push_back(InFlight {
            seq,
            persisted_last,
            held_messages,
        });
        job(seq)
    }

    /// Retires the jobs a report covers.
    pub fn complete(&mut self, report: WalReport) -> Released {
        let (through_seq, snapshot_saved) = match report {
            WalReport::Durable { through_seq } => (through_seq, None),
            WalReport::SnapshotSaved { seq, index, data } => (seq, Some((index, data))),
        };
        debug_assert!(
            through_seq <= self.next_seq,
            "a report of a job never submitted"
        );
        let mut released = Released {
            snapshot_saved,
            ..Released::default()
        };
        while self
            .in_flight
            .front()
            .is_some_and(|job| job.seq <= through_seq)
        {
            let job = self.in_flight.pop_front().expect("non-empty");
            if job.persisted_last.is_some() {
                released.persisted_last = job.persisted_last;
            }
            released.messages.extend(job.held_messages);
        }
        released
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Body, EntryKind};

    fn entries(indexes: std::ops::RangeInclusive<Index>, term: Term) -> Vec<Entry> {
        indexes
            .map(|index| Entry {
                index,
                term,
                kind: EntryKind::Noop,
                data: Bytes::new(),
            })
            .collect()
    }

    fn vote_reply(to: u64) -> Message {
        Message {
            from: 1,
            to,
            term: 2,
            incarnation: 1,
            body: Body::VoteReply { granted: true },
        }
    }

    fn hard_state(term: Term, vote: u64, commit: Index) -> HardState {
        HardState {
            term,
            vote,
            vote_incarnation: 0,
            commit,
        }
    }

    fn queued_seq(handed: &Handed) -> u64 {
        match &handed.hand_off {
            HandOff::Queued(WalJob::Write { seq, .. }) => *seq,
            other => panic!("expected a queued write, got {other:?}"),
        }
    }

    #[test]
    fn held_messages_leave_with_the_report_of_the_job_before_them() {
        let mut wal = WalQueue::new(HardState::default(), 16);
        let first = wal.write(
            entries(1..=2, 1),
            Some(hard_state(1, 0, 0)),
            vec![vote_reply(2)],
            false,
            false,
        );
        let seq = queued_seq(&first);
        assert!(first.release.is_empty() && first.persisted_last.is_none());
        // A commit-only Ready writes nothing, but its ack may promise the
        // entries queued before it: it waits behind that job.
        let commit_only = wal.write(
            Vec::new(),
            Some(hard_state(1, 0, 2)),
            vec![vote_reply(3)],
            false,
            false,
        );
        assert_eq!(commit_only.hand_off, HandOff::Nothing);
        assert!(commit_only.release.is_empty());
        let released = wal.complete(WalReport::Durable { through_seq: seq });
        assert_eq!(released.persisted_last, Some((2, 1)));
        let to: Vec<u64> = released.messages.iter().map(|m| m.to).collect();
        assert_eq!(to, vec![2, 3], "held messages leave in the order produced");
        assert!(wal.is_idle());
        // The commit index rides along with the next write.
        let next = wal.write(entries(3..=3, 1), None, Vec::new(), false, false);
        match next.hand_off {
            HandOff::Queued(WalJob::Write { write, .. }) => {
                assert_eq!(write.hard_state, Some(hard_state(1, 0, 2)));
                assert!(write.sync);
            }
            other => panic!("expected a queued write, got {other:?}"),
        }
    }

    #[test]
    fn an_idle_follower_writes_inline_and_a_busy_one_queues() {
        let mut wal = WalQueue::new(HardState::default(), 16);
        let inline = wal.write(entries(1..=1, 1), None, vec![vote_reply(2)], true, false);
        assert!(matches!(inline.hand_off, HandOff::Inline(_)));
        assert_eq!(
            (inline.persisted_last, inline.release.len()),
            (Some((1, 1)), 1)
        );
        let queued = wal.write(entries(2..=2, 1), None, Vec::new(), false, false);
        queued_seq(&queued);
        let busy = wal.write(entries(3..=3, 1), None, Vec::new(), true, false);
        queued_seq(&busy);
    }

    #[test]
    fn a_new_vote_is_synced_and_a_commit_index_alone_is_not() {
        let mut wal = WalQueue::new(hard_state(1, 0, 0), 16);
        let vote = wal.write(
            Vec::new(),
            Some(hard_state(2, 3, 0)),
            vec![vote_reply(3)],
            false,
            false,
        );
        match vote.hand_off {
            HandOff::Queued(WalJob::Write { write, .. }) => assert!(write.sync),
            other => panic!("a vote is written: {other:?}"),
        }
        assert!(vote.release.is_empty(), "the vote waits for its fsync");
        let commit = wal.write(
            Vec::new(),
            Some(hard_state(2, 3, 5)),
            Vec::new(),
            false,
            false,
        );
        assert_eq!(commit.hand_off, HandOff::Nothing);
        // A commit index over a membership change is fsynced, the one
        // that waited included.
        let membership = wal.write(Vec::new(), None, Vec::new(), false, true);
        match membership.hand_off {
            HandOff::Queued(WalJob::Write { write, .. }) => {
                assert_eq!(write.hard_state, Some(hard_state(2, 3, 5)));
                assert!(write.sync);
            }
            other => panic!("the commit index is written: {other:?}"),
        }
        assert_eq!(
            wal.write(Vec::new(), None, Vec::new(), false, true)
                .hand_off,
            HandOff::Nothing,
            "nothing left to write"
        );
    }

    #[test]
    fn own_snapshot_reports_retire_the_jobs_before_them() {
        let mut wal = WalQueue::new(HardState::default(), 2);
        let write = wal.write(entries(1..=2, 1), None, Vec::new(), false, false);
        queued_seq(&write);
        let seq = wal.own_snapshot_job();
        assert!(!wal.has_room());
        let released = wal.complete(WalReport::SnapshotSaved {
            seq,
            index: 2,
            data: Bytes::new(),
        });
        assert_eq!(released.persisted_last, Some((2, 1)));
        assert_eq!(released.snapshot_saved.map(|(index, _)| index), Some(2));
        assert!(wal.is_idle());
    }
}
