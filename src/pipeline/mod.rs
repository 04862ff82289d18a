//! The Ready pipeline: what a node does with each Ready the core hands
//! back, decided without doing any I/O. The node's tokio driver and the
//! simulator both run it; each supplies the I/O through [`ReadyIo`] (send a
//! message, apply entries, write to the WAL, answer reads) and feeds the
//! WAL's reports back through [`Pipeline::on_report`].
//!
//! The order it keeps, and why:
//! 1. Messages leave first, before this node's own write is even handed
//!    over, except those that promise durability (votes, append acks: held
//!    until the WAL reports their write durable) and appends that carry only
//!    the commit index (they leave after the clients they answer were).
//! 2. Committed entries are durable on a majority (the leader counts its
//!    own copy only once the WAL reported it), so they are applied and their
//!    clients answered before this Ready's writes are handed over.
//! 3. The write goes to the WAL: inline for a follower whose WAL is idle
//!    (its ack is the next thing the leader waits for), queued otherwise;
//!    the node keeps stepping and taking Readies while earlier writes are
//!    pending, up to a bound of jobs in flight.
//! 4. `advance` hears what is durable so far; later reports tell it the
//!    rest, one `ReadyAck { persisted_last, .. }` per report.
//!
//! A snapshot from the leader waits for every earlier job, is written with
//! the entries after it, and replaces the state machine only once durable.

mod reads;
mod wal;

#[cfg(test)]
mod tests;

pub use reads::{PendingReads, ReadFailure, ReadGate, READ_BATCH_READERS_MAX};
pub use wal::{HandOff, Handed, Released, WalJob, WalQueue, WalReport, WalWrite};

use crate::message::{Body, Entry, EntryKind, Index, Message, Snapshot};
use crate::raft::{RawNode, Ready, ReadyAck, Role, Status};

/// Mistakes a driver could make with asynchronous persistence, planted on
/// purpose (test-only feature `planted-bugs`) to prove the simulator
/// catches them.
#[cfg(feature = "planted-bugs")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriverBug {
    /// Votes and append acks leave when their write is handed to the WAL
    /// instead of after its fsync.
    AckBeforeFsync,
    /// The core is told a write's entries are durable when they are handed
    /// over (a leader counts its own copy towards commit too early).
    PersistedBeforeFsync,
}

/// Points in the handling of one Ready, in order. The node goes straight
/// through them; the simulator may crash a node at any of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The Ready was taken: nothing sent, nothing handed over.
    Taken,
    /// Its messages left, the write was not handed over.
    Sent,
    /// Its committed entries were applied (clients answered), the write not
    /// yet handed over.
    Applied,
    /// The write was handed over (or done inline); the messages it releases
    /// at once have not left.
    HandedOver,
    /// Everything done but `advance`.
    BeforeAdvance,
}

/// The I/O one Ready needs, supplied by the node's driver or the simulator.
pub trait ReadyIo {
    type Error;
    /// A batch of linearizable reads (see [`ReadGate`]).
    type Reads;

    fn raw(&mut self) -> &mut RawNode;
    fn send(&mut self, message: Message) -> Result<(), Self::Error>;
    /// Messages a WAL report released (they waited for an fsync).
    fn send_released(&mut self, messages: Vec<Message>) -> Result<(), Self::Error> {
        for message in messages {
            self.send(message)?;
        }
        Ok(())
    }
    /// Applies committed entries in order and answers their writers.
    fn apply(&mut self, entries: &[Entry]) -> Result<(), Self::Error>;
    /// The reads of `reads` may be served now: their ReadIndex was
    /// confirmed and is applied.
    fn read_safe(&mut self, reads: Self::Reads) -> Result<(), Self::Error>;
    fn read_failed(&mut self, reads: Self::Reads, why: ReadFailure);
    /// Writes and fsyncs `write` now, on this thread.
    fn write_inline(&mut self, write: WalWrite) -> Result<(), Self::Error>;
    /// Queues `job` for the WAL; its report comes back through
    /// [`Pipeline::on_report`].
    fn submit(&mut self, job: WalJob) -> Result<(), Self::Error>;
    /// This node's own snapshot at `index` is durable: compact the log.
    fn own_snapshot_saved(&mut self, index: Index, data: bytes::Bytes) -> Result<(), Self::Error>;
    /// After each `advance` of a Ready, with the core's status.
    fn advanced(&mut self, _status: &Status) -> Result<(), Self::Error> {
        Ok(())
    }
    /// This node stopped leading: its pending reads were failed already.
    fn leadership_lost(&mut self) {}
    /// The handling of a Ready reached `stage`; an error stops it there.
    fn reached(&mut self, _stage: Stage) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// How the pipeline treats the WAL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PipelineConfig {
    /// Bound on jobs handed to the WAL and not yet reported durable: at it
    /// the driver takes no new Ready.
    pub jobs_in_flight_max: usize,
    /// A follower whose WAL is idle writes inline; off, every write is
    /// queued.
    pub inline_follower_writes: bool,
}

/// One node's pipeline state between Readies. `B`: a batch of reads.
#[derive(Debug)]
pub struct Pipeline<B> {
    config: PipelineConfig,
    wal: WalQueue,
    reads: PendingReads<B>,
    /// The role after the last Ready was acknowledged (a follower writes
    /// inline, a leader never does).
    last_role: Role,
}

/// A Ready whose leading messages left; [`Pipeline::finish`] does the rest.
#[must_use]
pub struct Turn {
    ready: Ready,
    ack: ReadyAck,
    /// Appends that carry only the commit index.
    commit_only: Vec<Message>,
    sent_appends: bool,
}

impl Turn {
    /// Appends left and there is something to write or apply: a driver
    /// whose peer links run on its own thread lets them put the appends on
    /// the wire first, so followers start their fsync before this node's.
    pub fn wants_yield(&self) -> bool {
        self.sent_appends
            && (!self.ready.entries.is_empty() || !self.ready.committed_entries.is_empty())
    }

    pub fn ready(&self) -> &Ready {
        &self.ready
    }
}

/// A Ready carrying a snapshot from the leader: the caller waits until the
/// WAL is idle, calls [`Pipeline::install_snapshot`], waits again, replaces
/// its state machine with the snapshot's, then calls
/// [`Pipeline::finish_snapshot`].
#[must_use]
pub struct SnapshotTurn {
    ready: Ready,
    ack: ReadyAck,
}

impl SnapshotTurn {
    pub fn snapshot(&self) -> &Snapshot {
        self.ready.snapshot.as_ref().expect("a snapshot turn")
    }

    pub fn ready(&self) -> &Ready {
        &self.ready
    }
}

impl<B> Pipeline<B> {
    /// `recorded_hard_state`: the hard state the storage holds at start.
    pub fn new(config: PipelineConfig, recorded_hard_state: crate::raft::HardState) -> Self {
        Pipeline {
            config,
            wal: WalQueue::new(recorded_hard_state, config.jobs_in_flight_max),
            reads: PendingReads::default(),
            last_role: Role::Follower,
        }
    }

    /// Plants a driver bug (tests only).
    #[cfg(feature = "planted-bugs")]
    pub fn plant(&mut self, bug: Option<DriverBug>) {
        self.wal.planted_bug = bug;
    }

    /// Whether the next Ready may be taken (the WAL has room for its job).
    pub fn has_room(&self) -> bool {
        self.wal.has_room()
    }

    /// No job is waiting for the WAL's report.
    pub fn is_idle(&self) -> bool {
        self.wal.is_idle()
    }

    /// Jobs handed to the WAL and not yet reported durable.
    pub fn jobs_in_flight(&self) -> usize {
        self.wal.in_flight()
    }

    pub fn last_role(&self) -> Role {
        self.last_role
    }

    /// Numbers a job saving this node's own snapshot (see
    /// [`WalQueue::own_snapshot_job`]).
    pub fn own_snapshot_job(&mut self) -> u64 {
        self.wal.own_snapshot_job()
    }

    /// The commit index no job carried yet, for a final write at stop.
    pub fn take_unwritten_commit(&mut self) -> Option<crate::raft::HardState> {
        self.wal.take_unwritten_commit()
    }

    /// Every read batch still pending (the driver stops).
    pub fn take_pending_reads(&mut self) -> Vec<B> {
        self.reads.take_all()
    }

    /// Issues one ReadIndex for `reads`; a refusal fails them at once.
    pub fn issue_read<Io: ReadyIo<Reads = B>>(&mut self, reads: B, io: &mut Io) {
        let context = self.reads.register(reads);
        if let Err(e) = io.raw().read_index(context) {
            if let Some(reads) = self.reads.unregister(context) {
                io.read_failed(reads, ReadFailure::Refused(e));
            }
        }
    }

    /// Step 1: sends the Ready's messages but the commit-only appends.
    pub fn start<Io: ReadyIo<Reads = B>>(
        &mut self,
        mut ready: Ready,
        io: &mut Io,
    ) -> Result<Turn, Io::Error> {
        let ack = ready.ack();
        io.reached(Stage::Taken)?;
        let (commit_only, messages): (Vec<Message>, Vec<Message>) =
            ready.messages.drain(..).partition(
                |message| matches!(&message.body, Body::Append { entries, .. } if entries.is_empty()),
            );
        let sent_appends = !messages.is_empty();
        for message in messages {
            io.send(message)?;
        }
        io.reached(Stage::Sent)?;
        Ok(Turn {
            ready,
            ack,
            commit_only,
            sent_appends,
        })
    }

    /// Steps 2 to 4: apply and answer, hand the write over, advance. A Ready
    /// with a snapshot comes back as a [`SnapshotTurn`] instead, after its
    /// commit-only appends left.
    pub fn finish<Io: ReadyIo<Reads = B>>(
        &mut self,
        turn: Turn,
        io: &mut Io,
    ) -> Result<Option<SnapshotTurn>, Io::Error> {
        let Turn {
            mut ready,
            ack,
            commit_only,
            ..
        } = turn;
        if ready.snapshot.is_some() {
            for message in commit_only {
                io.send(message)?;
            }
            return Ok(Some(SnapshotTurn { ready, ack }));
        }
        self.apply_and_answer(&ready, io)?;
        for message in commit_only {
            io.send(message)?;
        }
        io.reached(Stage::Applied)?;
        // A leader keeps serving while its disk works; a follower with an
        // idle WAL writes inline.
        let inline = self.config.inline_follower_writes && self.last_role != Role::Leader;
        // A commit index alone is not fsynced, but one that covers a
        // membership (registry) entry is: a node that lost it in a crash
        // could no longer tell the change committed, and once the leader
        // that appended it is gone (before appending it again), no member
        // could, and the re-admitted member would be counted by no one.
        let sync_commit = ready
            .committed_entries
            .iter()
            .any(|entry| matches!(entry.kind, EntryKind::Registry | EntryKind::Config));
        let handed = self.wal.write(
            std::mem::take(&mut ready.entries),
            ready.hard_state,
            std::mem::take(&mut ready.persisted_messages),
            inline,
            sync_commit,
        );
        match handed.hand_off {
            HandOff::Nothing => {}
            HandOff::Inline(write) => io.write_inline(write)?,
            HandOff::Queued(job) => io.submit(job)?,
        }
        io.reached(Stage::HandedOver)?;
        for message in handed.release {
            io.send(message)?;
        }
        io.reached(Stage::BeforeAdvance)?;
        io.raw().advance(ReadyAck {
            persisted_last: handed.persisted_last,
            snapshot_index: None,
            applied: ack.applied,
        });
        self.after_advance(io)?;
        Ok(None)
    }

    /// Hands the leader's snapshot and what follows it to the WAL. The
    /// caller waited until the WAL was idle: the snapshot goes behind
    /// nothing.
    pub fn install_snapshot<Io: ReadyIo<Reads = B>>(
        &mut self,
        turn: &mut SnapshotTurn,
        io: &mut Io,
    ) -> Result<(), Io::Error> {
        debug_assert!(
            self.wal.is_idle(),
            "a leader's snapshot waits for earlier jobs"
        );
        let job = self.wal.install_snapshot(
            turn.snapshot().clone(),
            std::mem::take(&mut turn.ready.entries),
            turn.ready.hard_state,
            std::mem::take(&mut turn.ready.persisted_messages),
        );
        io.submit(job)?;
        io.reached(Stage::HandedOver)
    }

    /// The snapshot is durable and the caller's state machine replaced:
    /// apply what follows it, answer reads, advance.
    pub fn finish_snapshot<Io: ReadyIo<Reads = B>>(
        &mut self,
        turn: SnapshotTurn,
        io: &mut Io,
    ) -> Result<(), Io::Error> {
        debug_assert!(
            self.wal.is_idle(),
            "the snapshot is durable before it is applied"
        );
        self.apply_and_answer(&turn.ready, io)?;
        io.reached(Stage::Applied)?;
        io.reached(Stage::BeforeAdvance)?;
        io.raw().advance(ReadyAck {
            persisted_last: None,
            snapshot_index: turn.ack.snapshot_index,
            applied: turn.ack.applied,
        });
        self.after_advance(io)
    }

    /// The WAL reported jobs durable: the messages they held leave, the
    /// core counts the entries, and a saved own snapshot compacts the log.
    pub fn on_report<Io: ReadyIo<Reads = B>>(
        &mut self,
        report: WalReport,
        io: &mut Io,
    ) -> Result<(), Io::Error> {
        let released = self.wal.complete(report);
        if !released.messages.is_empty() {
            io.send_released(released.messages)?;
        }
        if released.persisted_last.is_some() {
            io.raw().advance(ReadyAck {
                persisted_last: released.persisted_last,
                snapshot_index: None,
                applied: None,
            });
        }
        if let Some((index, data)) = released.snapshot_saved {
            io.own_snapshot_saved(index, data)?;
        }
        Ok(())
    }

    /// Applies the Ready's committed entries (answering their writers) and
    /// answers the reads it confirmed or dropped.
    fn apply_and_answer<Io: ReadyIo<Reads = B>>(
        &mut self,
        ready: &Ready,
        io: &mut Io,
    ) -> Result<(), Io::Error> {
        if !ready.committed_entries.is_empty() {
            io.apply(&ready.committed_entries)?;
        }
        if ready.read_states.is_empty() && ready.dropped_reads.is_empty() {
            return Ok(());
        }
        let applied = ready.committed_entries.last().map_or(0, |e| e.index);
        let applied_index = io.raw().status().applied_index.max(applied);
        for read in &ready.read_states {
            if let Some(reads) = self
                .reads
                .confirmed(read.context, read.index, applied_index)
            {
                io.read_safe(reads)?;
            }
        }
        for context in &ready.dropped_reads {
            if let Some(reads) = self.reads.dropped(*context) {
                io.read_failed(reads, ReadFailure::NoLeader);
            }
        }
        Ok(())
    }

    /// Reads waiting for the applied index, a change of role, the caller's
    /// own follow-up (compaction).
    fn after_advance<Io: ReadyIo<Reads = B>>(&mut self, io: &mut Io) -> Result<(), Io::Error> {
        let status = io.raw().status();
        for reads in self.reads.applied_through(status.applied_index) {
            io.read_safe(reads)?;
        }
        if self.last_role == Role::Leader && status.role != Role::Leader {
            for reads in self.reads.take_all() {
                io.read_failed(reads, ReadFailure::NoLeader);
            }
            io.leadership_lost();
        }
        self.last_role = status.role;
        io.advanced(&status)
    }
}
