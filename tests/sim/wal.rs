//! The simulated WAL thread and disk under the shared Ready pipeline
//! (`raftkv::pipeline`, which the node's driver runs too): the pipeline
//! hands each Ready's write over as a job and goes on; this thread takes
//! every job queued since its last fsync as one batch (group commit),
//! writes and fsyncs it after a seeded number of WAL steps, and reports it
//! durable, as `node/src/driver/persister.rs` does with real files.
//!
//! A crash loses every job the thread had not taken and tears the batch it
//! was writing the way the node's storage can tear it: everything up to the
//! last fsync inside the batch survives, then any prefix of the records
//! written since (recovery truncates a torn tail at the first damaged
//! record). A snapshot file is durable once renamed, before the records
//! buffered ahead of it are synced, so it can survive while they do not.

use std::collections::VecDeque;

use bytes::Bytes;
use raftkv::message::{Entry, Index, Snapshot};
use raftkv::pipeline::{WalJob, WalReport, WalWrite};
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
    /// ReadIndex requests issued for batches of reads (the shared
    /// `ReadGate`), and reads that joined a batch another read opened.
    pub read_batches: u64,
    pub reads_sharing_a_batch: u64,
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
        self.read_batches += other.read_batches;
        self.reads_sharing_a_batch += other.reads_sharing_a_batch;
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

/// A job as the WAL thread performs it.
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

/// One node's WAL thread and disk, for one incarnation.
pub struct SimWal {
    pub disk: AsyncDisk,
    /// The log as handed over: durable plus every job submitted since. The
    /// core's log is this with the current Ready laid over it.
    pub submitted: DurableStore,
    queued: VecDeque<Job>,
    writing: Option<Batch>,
    reports: VecDeque<WalReport>,
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
}

/// The records a write makes: entries before the hard state, so a torn
/// batch never leaves a commit index durable without the entries it covers.
fn write_ops(write: WalWrite) -> Vec<DiskOp> {
    let mut ops: Vec<DiskOp> = write.entries.into_iter().map(DiskOp::Entry).collect();
    ops.extend(write.hard_state.map(DiskOp::HardState));
    ops
}

impl SimWal {
    pub fn new(disk: AsyncDisk, durable: &DurableStore) -> Self {
        SimWal {
            disk,
            submitted: durable.clone(),
            queued: VecDeque::new(),
            writing: None,
            reports: VecDeque::new(),
            snapshot_index_handed_over: durable.snapshot_index(),
            compaction_pending: false,
            preparing: None,
            stats: DiskStats::default(),
        }
    }

    /// Nothing for the WAL thread to do: no job, no report, no snapshot
    /// file being written.
    pub fn is_quiet(&self) -> bool {
        self.queued.is_empty()
            && self.writing.is_none()
            && self.reports.is_empty()
            && self.preparing.is_none()
    }

    /// The pipeline's inline write: durable at once, unless `torn`: then it
    /// becomes the batch in progress, and the node crashes before the fsync
    /// returns.
    pub fn write_inline(
        &mut self,
        write: WalWrite,
        torn: bool,
        durable: &mut DurableStore,
    ) -> Result<(), String> {
        let ops = write_ops(write);
        apply_ops(&mut self.submitted, &ops)?;
        let job = Job {
            seq: 0,
            ops,
            own_snapshot: None,
        };
        if torn {
            self.writing = Some(Batch {
                jobs: vec![job],
                steps_left: 0,
            });
            return Ok(());
        }
        apply_ops(durable, &job.ops)?;
        self.stats.inline_writes += 1;
        Ok(())
    }

    /// A job the pipeline handed over.
    pub fn submit(&mut self, job: WalJob) -> Result<(), String> {
        let (seq, ops) = match job {
            WalJob::Write { seq, write } => (seq, write_ops(write)),
            WalJob::InstallSnapshot {
                seq,
                snapshot,
                write,
            } => {
                self.snapshot_index_handed_over =
                    self.snapshot_index_handed_over.max(snapshot.meta.index);
                let mut ops = vec![DiskOp::Snapshot(snapshot), DiskOp::Sync];
                ops.extend(write_ops(write));
                (seq, ops)
            }
        };
        self.queue(seq, ops, None)
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

    /// The driver's `Compaction::written`: a prepared snapshot is handed
    /// over only if no snapshot at least as new was handed over meanwhile
    /// (a leader's).
    pub fn wants_own_snapshot(&mut self, snapshot: &Snapshot) -> bool {
        if snapshot.meta.index <= self.snapshot_index_handed_over {
            self.compaction_pending = false;
            return false;
        }
        true
    }

    /// Queues an own snapshot as the pipeline's job `seq`.
    pub fn save_own_snapshot(&mut self, seq: u64, snapshot: Snapshot) -> Result<(), String> {
        let own = Some((snapshot.meta.index, snapshot.data.clone()));
        self.snapshot_index_handed_over = snapshot.meta.index;
        self.queue(seq, vec![DiskOp::Snapshot(snapshot), DiskOp::Sync], own)
    }

    fn queue(
        &mut self,
        seq: u64,
        ops: Vec<DiskOp>,
        own_snapshot: Option<(Index, Bytes)>,
    ) -> Result<(), String> {
        apply_ops(&mut self.submitted, &ops)?;
        self.queued.push_back(Job {
            seq,
            ops,
            own_snapshot,
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
                    self.reports.push_back(WalReport::SnapshotSaved {
                        seq: job.seq,
                        index,
                        data,
                    });
                }
                None => through_seq = Some(job.seq),
            }
        }
        if let Some(through_seq) = through_seq {
            self.reports.push_back(WalReport::Durable { through_seq });
        }
        Ok(())
    }

    /// The next report the driver has not handled yet.
    pub fn next_report(&mut self) -> Option<WalReport> {
        self.reports.pop_front()
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
    use crate::node::tests::{entry, snapshot};
    use raftkv::message::Term;

    fn entries(indexes: std::ops::RangeInclusive<Index>, term: Term) -> Vec<Entry> {
        indexes.map(|index| entry(index, term)).collect()
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

    fn write(seq: u64, indexes: std::ops::RangeInclusive<Index>, term: Term) -> WalJob {
        WalJob::Write {
            seq,
            write: WalWrite {
                entries: entries(indexes, term),
                hard_state: None,
                sync: true,
            },
        }
    }

    fn durable_with_entries(last: Index) -> DurableStore {
        let mut durable = DurableStore::default();
        durable
            .persist_entries(&entries(1..=last, 1), last as usize)
            .unwrap();
        durable
    }

    /// Steps the WAL thread until it has nothing left to write.
    fn run_wal(wal: &mut SimWal, rng: &mut Rng, durable: &mut DurableStore) {
        for _ in 0..10 {
            wal.step(rng, false, false, durable).unwrap();
        }
    }

    #[test]
    fn an_inline_write_is_durable_at_once_and_a_torn_one_is_not() {
        let mut durable = DurableStore::default();
        let mut wal = SimWal::new(disk(1024), &durable);
        let inline = |first| WalWrite {
            entries: entries(first..=first, 1),
            hard_state: None,
            sync: true,
        };
        wal.write_inline(inline(1), false, &mut durable).unwrap();
        assert_eq!(durable.last_index(), 1);
        wal.write_inline(inline(2), true, &mut durable).unwrap();
        assert_eq!((durable.last_index(), wal.submitted.last_index()), (1, 2));
        assert!(!wal.is_quiet(), "the torn write is the batch in progress");
    }

    #[test]
    fn group_commit_reports_the_newest_job_and_own_snapshots_in_order() {
        let mut durable = DurableStore::default();
        let mut wal = SimWal::new(disk(1024), &durable);
        let mut rng = Rng::new(2);
        wal.submit(write(1, 1..=2, 1)).unwrap();
        assert!(wal.wants_own_snapshot(&snapshot(2, 1)));
        wal.save_own_snapshot(2, snapshot(2, 1)).unwrap();
        wal.submit(write(3, 3..=4, 1)).unwrap();
        assert!(!wal.wants_own_snapshot(&snapshot(2, 1)), "not newer");
        run_wal(&mut wal, &mut rng, &mut durable);
        assert!(matches!(
            wal.next_report(),
            Some(WalReport::SnapshotSaved {
                seq: 2,
                index: 2,
                ..
            })
        ));
        assert_eq!(
            wal.next_report(),
            Some(WalReport::Durable { through_seq: 3 })
        );
        assert!(wal.next_report().is_none());
        assert_eq!((durable.snapshot_index(), durable.last_index()), (2, 4));
        assert_eq!(wal.stats.batches_of_several_jobs, 1);
    }

    #[test]
    fn a_crash_loses_queued_jobs_and_keeps_a_prefix_of_the_torn_batch() {
        let mut outcomes = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let mut durable = durable_with_entries(2);
            let mut wal = SimWal::new(disk(1), &durable);
            let mut rng = Rng::new(seed);
            wal.submit(WalJob::Write {
                seq: 1,
                write: WalWrite {
                    entries: entries(3..=5, 2),
                    hard_state: Some(HardState {
                        term: 2,
                        vote: 0,
                        vote_incarnation: 0,
                        commit: 2,
                    }),
                    sync: true,
                },
            })
            .unwrap();
            wal.step(&mut rng, false, false, &mut durable).unwrap();
            wal.submit(write(2, 6..=6, 2)).unwrap();
            let mut stats = DiskStats::default();
            wal.crash(&mut rng, &mut durable, &mut stats).unwrap();
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
            let mut wal = SimWal::new(disk(1024), &durable);
            let mut rng = Rng::new(seed);
            wal.submit(write(1, 3..=5, 1)).unwrap();
            wal.save_own_snapshot(2, snapshot(4, 1)).unwrap();
            wal.step(&mut rng, false, false, &mut durable).unwrap();
            let mut stats = DiskStats::default();
            wal.crash(&mut rng, &mut durable, &mut stats).unwrap();
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
