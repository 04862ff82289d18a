//! Asynchronous persistence exactly as the node does it
//! (`node/src/driver/persister.rs` and `node/src/storage`): the driver
//! hands each Ready's entries and hard state to a WAL thread as a job and
//! goes on; the thread takes every job queued since its last fsync as one
//! batch (group commit), writes and fsyncs it after a seeded number of WAL
//! steps, and reports it durable. Messages that promise durability wait for
//! the report of their job; the core hears about durable entries in pieces,
//! one `ReadyAck { persisted_last, .. }` per report.
//!
//! A crash loses every job the thread had not taken and tears the batch it
//! was writing the way the node's storage can tear it: everything up to the
//! last fsync inside the batch survives, then any prefix of the records
//! written since (recovery truncates a torn tail at the first damaged
//! record). A snapshot file is durable once renamed, before the records
//! buffered ahead of it are synced, so it can survive while they do not.

use std::collections::VecDeque;

use bytes::Bytes;
use raftkv::message::{Entry, Index, Message, Snapshot, Term};
use raftkv::raft::{HardState, Rng};

use super::net::chance;
use super::node::DurableStore;

/// How one run's disks behave in the asynchronous mode.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AsyncDisk {
    /// During the fault phase a batch's fsync returns after 0..=this many
    /// WAL steps (a node takes one WAL step each time it is visited: every
    /// tick, and after some of the messages it handles). Once the cluster
    /// is healed, after at most `HEALED_FSYNC_STEPS_MAX`: a disk as slow as
    /// an election timeout makes elections split forever without pre-vote.
    pub fsync_steps_max: u64,
    /// Per batch: the fsync stalls for up to `stall_steps_max` steps.
    pub stall_probability: f64,
    pub stall_steps_max: u64,
    /// Jobs the WAL thread takes into one batch at most.
    pub jobs_per_batch_max: usize,
    /// Jobs submitted and not yet reported durable at most; at the bound the
    /// driver takes no new Ready (the node's `PERSIST_JOBS_IN_FLIGHT_MAX`).
    pub jobs_in_flight_max: usize,
    /// A follower whose WAL thread is idle writes inline, as the node does;
    /// off, every write goes through the thread.
    pub inline_follower_writes: bool,
}

/// Slowest fsync once the cluster is healed, in WAL steps.
pub const HEALED_FSYNC_STEPS_MAX: u64 = 1;

/// Share of runs whose nodes persist asynchronously.
pub const ASYNC_PERSISTENCE_PROBABILITY: f64 = 0.5;

impl AsyncDisk {
    /// `None`: the run persists each Ready synchronously, straight through.
    pub fn draw(rng: &mut Rng) -> Option<Self> {
        chance(rng, ASYNC_PERSISTENCE_PROBABILITY).then(|| Self::draw_async(rng))
    }

    pub fn draw_async(rng: &mut Rng) -> Self {
        let pick =
            |rng: &mut Rng, choices: &[u64]| choices[rng.range(0, choices.len() as u64) as usize];
        AsyncDisk {
            fsync_steps_max: pick(rng, &[0, 1, 2, 4, 8]),
            stall_probability: if chance(rng, 0.5) { 0.02 } else { 0.0 },
            stall_steps_max: rng.range(10, 60),
            jobs_per_batch_max: pick(rng, &[1, 4, 1024]) as usize,
            jobs_in_flight_max: pick(rng, &[2, 8, 1024]) as usize,
            inline_follower_writes: chance(rng, 0.7),
        }
    }
}

/// Mistakes a driver could make with asynchronous persistence, planted on
/// purpose to prove the simulator catches them (see tests/sim.rs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriverBug {
    /// Votes and append acks leave when their Ready is handed to the WAL
    /// thread instead of after its fsync.
    AckBeforeFsync,
    /// The core is told a Ready's entries are durable when they are handed
    /// over (a leader counts its own copy towards commit too early).
    PersistedBeforeFsync,
}

/// What the asynchronous mode exercised, so a run that never overlapped
/// persistence with anything is visible in the totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskStats {
    /// Runs in the asynchronous mode.
    pub runs: u64,
    /// Batches the WAL thread wrote and fsynced, and the jobs in them.
    pub batches: u64,
    pub jobs: u64,
    /// Batches of more than one job (group commit).
    pub batches_of_several_jobs: u64,
    /// Writes an idle follower made inline.
    pub inline_writes: u64,
    /// Readies taken while earlier jobs were not yet reported durable.
    pub readies_with_writes_pending: u64,
    /// Messages that waited for a report of their job's fsync.
    pub messages_held: u64,
    /// Crashes that tore the batch being written, and jobs lost unwritten.
    pub torn_batches: u64,
    pub jobs_lost: u64,
}

impl DiskStats {
    pub fn add(&mut self, other: &DiskStats) {
        self.runs += other.runs;
        self.batches += other.batches;
        self.jobs += other.jobs;
        self.batches_of_several_jobs += other.batches_of_several_jobs;
        self.inline_writes += other.inline_writes;
        self.readies_with_writes_pending += other.readies_with_writes_pending;
        self.messages_held += other.messages_held;
        self.torn_batches += other.torn_batches;
        self.jobs_lost += other.jobs_lost;
    }
}

/// One step of a job as the storage performs it.
#[derive(Clone, Debug)]
pub enum DiskOp {
    /// An entry record (an index at or below the log's last truncates there).
    Entry(Entry),
    HardState(HardState),
    /// A snapshot file, durable on its own once written; the log is aligned
    /// to it (kept after it only if it holds its last entry).
    Snapshot(Snapshot),
    /// fsync: every record before it is durable.
    Sync,
}

/// What the driver asked the WAL thread to do.
#[derive(Clone, Debug)]
struct Job {
    seq: u64,
    /// Records and snapshot saves, in order; the fsync that makes them
    /// durable comes at the end of the batch the job is written in.
    ops: Vec<DiskOp>,
    /// This node's own snapshot (index, data): reported `SnapshotSaved`.
    own_snapshot: Option<(Index, Bytes)>,
}

/// The batch the WAL thread is writing, and when its fsync returns.
#[derive(Debug)]
struct Batch {
    jobs: Vec<Job>,
    steps_left: u64,
}

/// What the WAL thread reports (the node's `persister::Report`).
#[derive(Clone, Debug)]
pub enum Report {
    Durable { through_seq: u64 },
    SnapshotSaved { seq: u64, index: Index, data: Bytes },
}

/// A submitted job the driver still waits on.
#[derive(Debug)]
struct InFlight {
    seq: u64,
    persisted_last: Option<(Index, Term)>,
    held_messages: Vec<Message>,
}

/// What a report, or an inline write, means for the driver.
#[derive(Debug, Default)]
pub struct Durable {
    pub persisted_last: Option<(Index, Term)>,
    /// Messages to send now, in the order they were produced.
    pub messages: Vec<Message>,
    pub snapshot_saved: Option<(Index, Bytes)>,
}

/// One node's persister (driver side) and WAL thread, for one incarnation.
pub struct Persister {
    pub disk: AsyncDisk,
    /// The log as handed over: durable plus every job submitted since. The
    /// core's log is this with the current Ready laid over it.
    pub submitted: DurableStore,
    queued: VecDeque<Job>,
    writing: Option<Batch>,
    reports: VecDeque<Report>,
    in_flight: VecDeque<InFlight>,
    next_seq: u64,
    /// A commit-only hard state not handed over yet: it rides along with
    /// the next job.
    unwritten_commit: Option<HardState>,
    /// The hard state last handed over (its term and vote are durable or
    /// queued with a sync).
    pub recorded_hard_state: HardState,
    /// Index of the newest snapshot saved or queued.
    pub snapshot_index_handed_over: Index,
    /// An own snapshot is being prepared or is queued, and not yet
    /// reported saved (the driver's `Compaction::started`).
    pub compaction_pending: bool,
    /// An own snapshot a blocking task is writing to its temporary file:
    /// it is handed to the WAL thread once written, `steps_left` WAL steps
    /// from now, behind whatever was handed over meanwhile.
    preparing: Option<(Snapshot, u64)>,
    pub stats: DiskStats,
    bug: Option<DriverBug>,
}

impl Persister {
    pub fn new(disk: AsyncDisk, durable: &DurableStore, bug: Option<DriverBug>) -> Self {
        Persister {
            disk,
            submitted: durable.clone(),
            queued: VecDeque::new(),
            writing: None,
            reports: VecDeque::new(),
            in_flight: VecDeque::new(),
            next_seq: 0,
            unwritten_commit: None,
            recorded_hard_state: durable.hard_state,
            snapshot_index_handed_over: durable.snapshot_index(),
            compaction_pending: false,
            preparing: None,
            stats: DiskStats::default(),
            bug,
        }
    }

    pub fn has_room(&self) -> bool {
        self.in_flight.len() < self.disk.jobs_in_flight_max
    }

    pub fn is_idle(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// Nothing for the WAL thread or the driver to do: no job, no report,
    /// no snapshot file being written.
    pub fn is_quiet(&self) -> bool {
        self.in_flight.is_empty()
            && self.writing.is_none()
            && self.reports.is_empty()
            && self.preparing.is_none()
    }

    /// Jobs submitted and not yet reported, for the trace.
    pub fn in_flight_len(&self) -> usize {
        self.in_flight.len()
    }

    /// Term and vote must be durable before what depends on them leaves; a
    /// commit index alone need not be (the driver's `hard_state_needs_sync`).
    pub fn needs_sync(&self, hard_state: Option<HardState>) -> bool {
        hard_state.is_some_and(|h| {
            h.term != self.recorded_hard_state.term || h.vote != self.recorded_hard_state.vote
        })
    }

    /// The driver's `Persister::write`. Returns what is durable already
    /// (inline write, or nothing to write with no job in flight), or `None`
    /// when a later report will say so. With `inline` and no job in flight
    /// the write happens now, into `durable`, unless `torn_inline`: then it
    /// becomes the batch in progress and the caller crashes the node.
    #[allow(clippy::too_many_arguments)]
    pub fn write(
        &mut self,
        entries: Vec<Entry>,
        hard_state: Option<HardState>,
        sync: bool,
        held_messages: Vec<Message>,
        inline: bool,
        torn_inline: bool,
        durable: &mut DurableStore,
    ) -> Result<Option<Durable>, String> {
        if let Some(h) = hard_state {
            self.recorded_hard_state = h;
        }
        if entries.is_empty() && !sync {
            if hard_state.is_some() {
                self.unwritten_commit = hard_state;
            }
            let in_flight = match self.bug {
                Some(DriverBug::AckBeforeFsync) => None,
                _ => self.in_flight.back_mut(),
            };
            return Ok(match in_flight {
                Some(last) => {
                    last.held_messages.extend(held_messages);
                    None
                }
                None => Some(Durable {
                    messages: held_messages,
                    ..Durable::default()
                }),
            });
        }
        let hard_state = hard_state.or(self.unwritten_commit.take());
        let persisted_last = entries.last().map(|e| (e.index, e.term));
        let mut ops: Vec<DiskOp> = entries.into_iter().map(DiskOp::Entry).collect();
        // Entries before the hard state: a torn batch never leaves a commit
        // index durable without the entries it covers.
        ops.extend(hard_state.map(DiskOp::HardState));
        if inline && self.is_idle() {
            apply_ops(&mut self.submitted, &ops)?;
            self.next_seq += 1;
            let job = Job {
                seq: self.next_seq,
                ops,
                own_snapshot: None,
            };
            if torn_inline {
                self.writing = Some(Batch {
                    jobs: vec![job],
                    steps_left: 0,
                });
                return Ok(None);
            }
            apply_ops(durable, &job.ops)?;
            self.stats.inline_writes += 1;
            return Ok(Some(Durable {
                persisted_last,
                messages: held_messages,
                snapshot_saved: None,
            }));
        }
        match self.bug {
            Some(DriverBug::AckBeforeFsync) => {
                self.submit(ops, None, persisted_last, Vec::new())?;
                Ok(Some(Durable {
                    messages: held_messages,
                    ..Durable::default()
                }))
            }
            Some(DriverBug::PersistedBeforeFsync) => {
                self.submit(ops, None, None, held_messages)?;
                Ok(Some(Durable {
                    persisted_last,
                    ..Durable::default()
                }))
            }
            None => {
                self.submit(ops, None, persisted_last, held_messages)?;
                Ok(None)
            }
        }
    }

    /// A snapshot from the leader with the entries and hard state after it.
    pub fn install_snapshot(
        &mut self,
        snapshot: Snapshot,
        entries: Vec<Entry>,
        hard_state: Option<HardState>,
        held_messages: Vec<Message>,
    ) -> Result<(), String> {
        if let Some(h) = hard_state {
            self.recorded_hard_state = h;
        }
        self.snapshot_index_handed_over = self.snapshot_index_handed_over.max(snapshot.meta.index);
        let persisted_last = entries.last().map(|e| (e.index, e.term));
        let hard_state = hard_state.or(self.unwritten_commit.take());
        let mut ops = vec![DiskOp::Snapshot(snapshot), DiskOp::Sync];
        ops.extend(entries.into_iter().map(DiskOp::Entry));
        ops.extend(hard_state.map(DiskOp::HardState));
        self.submit(ops, None, persisted_last, held_messages)
    }

    /// The driver's `Compaction::maybe_start`: a clone of the state machine at
    /// `snapshot.meta.index` goes to a task that writes its file.
    pub fn prepare_own_snapshot(&mut self, snapshot: Snapshot, rng: &mut Rng) {
        let steps_left = rng.range(0, self.disk.fsync_steps_max + 1);
        self.compaction_pending = true;
        self.preparing = Some((snapshot, steps_left));
    }

    /// An own snapshot whose file is written, for the driver to hand over.
    pub fn take_prepared_snapshot(&mut self) -> Option<Snapshot> {
        match &mut self.preparing {
            Some((_, steps_left)) if *steps_left > 0 => {
                *steps_left -= 1;
                None
            }
            Some(_) => self.preparing.take().map(|(snapshot, _)| snapshot),
            None => None,
        }
    }

    /// The driver's `save_own_snapshot`: a prepared snapshot goes to the WAL
    /// thread, unless a snapshot at least as new was handed over meanwhile
    /// (a leader's). Returns whether it was handed over.
    pub fn save_own_snapshot(&mut self, snapshot: Snapshot) -> Result<bool, String> {
        if snapshot.meta.index <= self.snapshot_index_handed_over {
            self.compaction_pending = false;
            return Ok(false);
        }
        let own = Some((snapshot.meta.index, snapshot.data.clone()));
        self.snapshot_index_handed_over = snapshot.meta.index;
        self.submit(
            vec![DiskOp::Snapshot(snapshot), DiskOp::Sync],
            own,
            None,
            Vec::new(),
        )?;
        Ok(true)
    }

    fn submit(
        &mut self,
        ops: Vec<DiskOp>,
        own_snapshot: Option<(Index, Bytes)>,
        persisted_last: Option<(Index, Term)>,
        held_messages: Vec<Message>,
    ) -> Result<(), String> {
        apply_ops(&mut self.submitted, &ops)?;
        self.next_seq += 1;
        let seq = self.next_seq;
        self.queued.push_back(Job {
            seq,
            ops,
            own_snapshot,
        });
        self.in_flight.push_back(InFlight {
            seq,
            persisted_last,
            held_messages,
        });
        Ok(())
    }

    /// One step of the WAL thread: a batch whose fsync is due completes
    /// (into `durable`, reports queued for the driver), and an idle thread
    /// takes the jobs queued meanwhile as its next batch. `faults`: the
    /// fault phase (slow fsyncs and stalls). With `trace`, returns a line
    /// for the trace when something happened.
    pub fn step(
        &mut self,
        rng: &mut Rng,
        faults: bool,
        trace: bool,
        durable: &mut DurableStore,
    ) -> Result<Option<String>, String> {
        let mut line = None;
        if let Some(batch) = &mut self.writing {
            if batch.steps_left > 0 {
                batch.steps_left -= 1;
                return Ok(None);
            }
            let batch = self.writing.take().expect("writing");
            if trace {
                line = Some(format!(
                    "WAL fsync returned for {}",
                    describe_jobs(&batch.jobs)
                ));
            }
            self.complete(batch, durable)?;
        }
        if self.queued.is_empty() {
            return Ok(line);
        }
        let take = self.queued.len().min(self.disk.jobs_per_batch_max);
        let jobs: Vec<Job> = self.queued.drain(..take).collect();
        let fsync_steps_max = if faults {
            self.disk.fsync_steps_max
        } else {
            self.disk.fsync_steps_max.min(HEALED_FSYNC_STEPS_MAX)
        };
        let mut steps_left = rng.range(0, fsync_steps_max + 1);
        if faults && chance(rng, self.disk.stall_probability) {
            steps_left += rng.range(1, self.disk.stall_steps_max + 1);
        }
        if trace {
            let started = format!(
                "WAL writes {}, fsync in {steps_left} steps",
                describe_jobs(&jobs)
            );
            line = Some(match line {
                Some(done) => format!("{done}; {started}"),
                None => started,
            });
        }
        self.writing = Some(Batch { jobs, steps_left });
        Ok(line)
    }

    /// Everything handed over becomes durable now (the driver waits for it
    /// before installing a leader's snapshot).
    pub fn flush(&mut self, durable: &mut DurableStore) -> Result<(), String> {
        if let Some(batch) = self.writing.take() {
            self.complete(batch, durable)?;
        }
        while !self.queued.is_empty() {
            let take = self.queued.len().min(self.disk.jobs_per_batch_max);
            let jobs = self.queued.drain(..take).collect();
            self.complete(
                Batch {
                    jobs,
                    steps_left: 0,
                },
                durable,
            )?;
        }
        Ok(())
    }

    /// Starts writing everything queued as one batch whose fsync has not
    /// returned (a crash follows).
    pub fn start_writing_all(&mut self) {
        if self.writing.is_none() && !self.queued.is_empty() {
            let jobs = self.queued.drain(..).collect();
            self.writing = Some(Batch {
                jobs,
                steps_left: 0,
            });
        }
    }

    /// The node's `write_batch`: every op lands, then the reports.
    fn complete(&mut self, batch: Batch, durable: &mut DurableStore) -> Result<(), String> {
        self.stats.batches += 1;
        self.stats.jobs += batch.jobs.len() as u64;
        if batch.jobs.len() > 1 {
            self.stats.batches_of_several_jobs += 1;
        }
        let mut through_seq = None;
        for job in batch.jobs {
            apply_ops(durable, &job.ops)?;
            match job.own_snapshot {
                Some((index, data)) => {
                    through_seq = None;
                    self.reports.push_back(Report::SnapshotSaved {
                        seq: job.seq,
                        index,
                        data,
                    });
                }
                None => through_seq = Some(job.seq),
            }
        }
        if let Some(through_seq) = through_seq {
            self.reports.push_back(Report::Durable { through_seq });
        }
        Ok(())
    }

    /// The next report the driver has not handled yet.
    pub fn next_report(&mut self) -> Option<Report> {
        self.reports.pop_front()
    }

    /// The driver's `Persister::complete`: retires the jobs a report covers.
    pub fn retire(&mut self, report: Report) -> Durable {
        let (through_seq, snapshot_saved) = match report {
            Report::Durable { through_seq } => (through_seq, None),
            Report::SnapshotSaved { seq, index, data } => {
                self.compaction_pending = false;
                (seq, Some((index, data)))
            }
        };
        let mut durable = Durable {
            snapshot_saved,
            ..Durable::default()
        };
        while self
            .in_flight
            .front()
            .is_some_and(|job| job.seq <= through_seq)
        {
            let job = self.in_flight.pop_front().expect("non-empty");
            if job.persisted_last.is_some() {
                durable.persisted_last = job.persisted_last;
            }
            self.stats.messages_held += job.held_messages.len() as u64;
            durable.messages.extend(job.held_messages);
        }
        durable
    }

    /// The process dies: jobs the thread had not taken are lost, and the
    /// batch it was writing is torn (see the module docs). Returns a line
    /// for the trace.
    pub fn crash(
        mut self,
        rng: &mut Rng,
        durable: &mut DurableStore,
        stats: &mut DiskStats,
    ) -> Result<String, String> {
        let lost = self.queued.len();
        self.stats.jobs_lost += lost as u64;
        let writing = self.writing.take();
        if writing.is_some() {
            self.stats.torn_batches += 1;
        }
        stats.add(&self.stats);
        let Some(batch) = writing else {
            return Ok(format!("{lost} queued jobs lost, no batch in progress"));
        };
        // The batch ends with one fsync (saving a snapshot syncs as well).
        let final_sync = DiskOp::Sync;
        let ops: Vec<&DiskOp> = batch
            .jobs
            .iter()
            .flat_map(|job| &job.ops)
            .chain(std::iter::once(&final_sync))
            .collect();
        let issued = rng.range(0, ops.len() as u64 + 1) as usize;
        let mut unsynced: Vec<&DiskOp> = Vec::new();
        for op in &ops[..issued] {
            match op {
                DiskOp::Sync => {
                    apply_ops(
                        durable,
                        unsynced.drain(..).cloned().collect::<Vec<_>>().as_slice(),
                    )?;
                }
                other => unsynced.push(other),
            }
        }
        // A snapshot file written last is durable; the records buffered
        // before it survive only as a prefix, like any unsynced record.
        let snapshot_file = match unsynced.last() {
            Some(DiskOp::Snapshot(_)) => unsynced.pop(),
            _ => None,
        };
        let kept = rng.range(0, unsynced.len() as u64 + 1) as usize;
        let survivors: Vec<DiskOp> = unsynced[..kept]
            .iter()
            .chain(snapshot_file.iter())
            .map(|op| (*op).clone())
            .collect();
        apply_ops(durable, &survivors)?;
        Ok(format!(
            "{lost} queued jobs lost; batch {} torn after {issued} of {} ops ({} unsynced kept)",
            describe_jobs(&batch.jobs),
            ops.len(),
            survivors.len()
        ))
    }
}

fn describe_jobs(jobs: &[Job]) -> String {
    match (jobs.first(), jobs.last()) {
        (Some(first), Some(last)) if first.seq != last.seq => {
            format!("jobs {}..={}", first.seq, last.seq)
        }
        (Some(first), _) => format!("job {}", first.seq),
        _ => "no jobs".to_string(),
    }
}

/// Applies ops to a store in order, as recovery would replay them.
pub fn apply_ops(store: &mut DurableStore, ops: &[DiskOp]) -> Result<(), String> {
    for op in ops {
        match op {
            DiskOp::Entry(entry) => store.persist_entries(std::slice::from_ref(entry), 1)?,
            DiskOp::HardState(hard_state) => store.hard_state = *hard_state,
            DiskOp::Snapshot(snapshot) => store.persist_snapshot(snapshot.clone())?,
            DiskOp::Sync => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftkv::message::{Body, EntryKind, SnapshotMeta};

    fn entry(index: Index, term: Term) -> Entry {
        Entry {
            index,
            term,
            kind: EntryKind::Noop,
            data: Bytes::new(),
        }
    }

    fn entries(indexes: std::ops::RangeInclusive<Index>, term: Term) -> Vec<Entry> {
        indexes.map(|index| entry(index, term)).collect()
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

    fn hard_state(term: Term, commit: Index) -> HardState {
        HardState {
            term,
            vote: 0,
            vote_incarnation: 0,
            commit,
        }
    }

    fn disk(jobs_per_batch_max: usize) -> AsyncDisk {
        AsyncDisk {
            fsync_steps_max: 0,
            stall_probability: 0.0,
            stall_steps_max: 1,
            jobs_per_batch_max,
            jobs_in_flight_max: 16,
            inline_follower_writes: true,
        }
    }

    /// Hands over a synced job that only appends `indexes`: no hard
    /// state, no held messages, not written inline.
    fn write_entries(
        persister: &mut Persister,
        indexes: std::ops::RangeInclusive<Index>,
        term: Term,
        durable: &mut DurableStore,
    ) {
        persister
            .write(
                entries(indexes, term),
                None,
                true,
                Vec::new(),
                false,
                false,
                durable,
            )
            .unwrap();
    }

    fn durable_with_entries(last: Index) -> DurableStore {
        let mut durable = DurableStore::default();
        durable
            .persist_entries(&entries(1..=last, 1), last as usize)
            .unwrap();
        durable
    }

    /// Steps the WAL thread until it has nothing left to write.
    fn run_wal(persister: &mut Persister, rng: &mut Rng, durable: &mut DurableStore) {
        for _ in 0..10 {
            persister.step(rng, false, false, durable).unwrap();
        }
    }

    #[test]
    fn held_messages_leave_with_the_report_of_the_job_before_them() {
        let mut durable = DurableStore::default();
        let mut persister = Persister::new(disk(1024), &durable, None);
        let mut rng = Rng::new(1);
        let queued = persister
            .write(
                entries(1..=2, 1),
                Some(hard_state(1, 0)),
                true,
                vec![vote_reply(2)],
                false,
                false,
                &mut durable,
            )
            .unwrap();
        assert!(queued.is_none(), "a queued write is not durable yet");
        // A commit-only Ready writes nothing, but its ack may promise the
        // entries queued before it: it waits behind that job.
        let commit_only = persister
            .write(
                Vec::new(),
                Some(hard_state(1, 2)),
                false,
                vec![vote_reply(3)],
                false,
                false,
                &mut durable,
            )
            .unwrap();
        assert!(commit_only.is_none());
        assert_eq!(
            durable.last_index(),
            0,
            "nothing is durable before the fsync"
        );
        assert_eq!(persister.submitted.last_index(), 2);
        run_wal(&mut persister, &mut rng, &mut durable);
        let report = persister.next_report().expect("the batch was reported");
        let released = persister.retire(report);
        assert_eq!(released.persisted_last, Some((2, 1)));
        let to: Vec<u64> = released.messages.iter().map(|m| m.to).collect();
        assert_eq!(to, vec![2, 3], "held messages leave in the order produced");
        assert_eq!(durable.last_index(), 2);
        assert_eq!(
            durable.hard_state.commit, 0,
            "a commit-only hard state waits for the next write"
        );
        assert!(persister.is_idle());
    }

    #[test]
    fn an_idle_follower_writes_inline_and_a_busy_one_queues() {
        let mut durable = DurableStore::default();
        let mut persister = Persister::new(disk(1024), &durable, None);
        let inline = persister
            .write(
                entries(1..=1, 1),
                None,
                true,
                vec![vote_reply(2)],
                true,
                false,
                &mut durable,
            )
            .unwrap()
            .expect("written inline");
        assert_eq!(
            (inline.persisted_last, inline.messages.len()),
            (Some((1, 1)), 1)
        );
        assert_eq!(durable.last_index(), 1);
        write_entries(&mut persister, 2..=2, 1, &mut durable);
        let busy = persister
            .write(
                entries(3..=3, 1),
                None,
                true,
                Vec::new(),
                true,
                false,
                &mut durable,
            )
            .unwrap();
        assert!(
            busy.is_none(),
            "a job in flight keeps later writes in order behind it"
        );
        assert_eq!(durable.last_index(), 1);
    }

    #[test]
    fn group_commit_reports_the_newest_job_and_own_snapshots_in_order() {
        let mut durable = DurableStore::default();
        let mut persister = Persister::new(disk(1024), &durable, None);
        let mut rng = Rng::new(2);
        write_entries(&mut persister, 1..=2, 1, &mut durable);
        persister
            .save_own_snapshot(Snapshot {
                meta: SnapshotMeta {
                    index: 2,
                    term: 1,
                    members: Vec::new(),
                },
                data: Bytes::new(),
            })
            .unwrap();
        write_entries(&mut persister, 3..=4, 1, &mut durable);
        run_wal(&mut persister, &mut rng, &mut durable);
        let report = persister.next_report().unwrap();
        let saved = persister.retire(report);
        assert_eq!(saved.persisted_last, Some((2, 1)));
        assert_eq!(saved.snapshot_saved.map(|(index, _)| index), Some(2));
        let report = persister.next_report().unwrap();
        let rest = persister.retire(report);
        assert_eq!(rest.persisted_last, Some((4, 1)));
        assert!(persister.next_report().is_none());
        assert_eq!((durable.snapshot_index(), durable.last_index()), (2, 4));
        assert_eq!(persister.stats.batches_of_several_jobs, 1);
    }

    #[test]
    fn a_crash_loses_queued_jobs_and_keeps_a_prefix_of_the_torn_batch() {
        let mut outcomes = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let mut durable = durable_with_entries(2);
            let mut persister = Persister::new(disk(1), &durable, None);
            let mut rng = Rng::new(seed);
            persister
                .write(
                    entries(3..=5, 2),
                    Some(hard_state(2, 2)),
                    true,
                    Vec::new(),
                    false,
                    false,
                    &mut durable,
                )
                .unwrap();
            persister
                .step(&mut rng, false, false, &mut durable)
                .unwrap();
            write_entries(&mut persister, 6..=6, 2, &mut durable);
            let mut stats = DiskStats::default();
            persister.crash(&mut rng, &mut durable, &mut stats).unwrap();
            assert_eq!((stats.torn_batches, stats.jobs_lost), (1, 1));
            let last = durable.last_index();
            assert!(
                (2..=5).contains(&last),
                "a prefix of the batch, never the queued job"
            );
            if durable.hard_state.term == 2 {
                assert_eq!(last, 5, "the hard state is written after the entries");
            }
            outcomes.insert((last, durable.hard_state.term));
        }
        assert_eq!(outcomes.len(), 5, "every prefix is possible: {outcomes:?}");
    }

    #[test]
    fn a_snapshot_file_can_outlive_the_records_buffered_before_it() {
        let mut snapshot_without_earlier_records = false;
        for seed in 0..200 {
            let mut durable = durable_with_entries(2);
            let mut persister = Persister::new(disk(1024), &durable, None);
            let mut rng = Rng::new(seed);
            write_entries(&mut persister, 3..=5, 1, &mut durable);
            persister
                .save_own_snapshot(Snapshot {
                    meta: SnapshotMeta {
                        index: 4,
                        term: 1,
                        members: Vec::new(),
                    },
                    data: Bytes::new(),
                })
                .unwrap();
            persister
                .step(&mut rng, false, false, &mut durable)
                .unwrap();
            let mut stats = DiskStats::default();
            persister.crash(&mut rng, &mut durable, &mut stats).unwrap();
            if durable.snapshot_index() == 4 {
                // The log follows the snapshot, whatever survived before it.
                assert!(durable.entries.iter().all(|e| e.index == 5));
                snapshot_without_earlier_records |= durable.entries.is_empty();
            } else {
                assert!((2..=5).contains(&durable.last_index()));
            }
        }
        assert!(snapshot_without_earlier_records);
    }
}
