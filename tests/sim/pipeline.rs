//! The asynchronous mode of the simulated node: the shared Ready pipeline
//! (`raftkv::pipeline`, the code the node's driver runs) over the simulated
//! WAL of `wal.rs`, network and clock. This file is only the I/O the
//! pipeline asks for ([`SimIo`]) and the driver's loop around it: each visit
//! takes one WAL step, issues the reads gathered since the last turn as one
//! ReadIndex (the shared `ReadGate`), then, per round, hands the WAL's
//! reports to the pipeline and takes the next Ready while the WAL has room.
//! A crash can strike at every stage the pipeline reaches.

use bytes::Bytes;
use raftkv::message::{Entry, Index, Message, Snapshot, SnapshotMeta, Term};
use raftkv::pipeline::{
    Pipeline, PipelineConfig, ReadFailure, ReadGate, ReadyIo, SnapshotTurn, Stage, WalJob, WalWrite,
};
use raftkv::raft::{RawNode, Status};

use super::{
    CrashPoint, Failure, FailureKind, Phase, ReadyOutcome, Running, Sim, CLIENT_TIMEOUT_TICKS,
    READY_ROUNDS_PER_VISIT_MAX,
};
use crate::history::OpId;
use crate::node::DurableStore;
use crate::wal::{AsyncDisk, SimWal};

/// A batch of reads in the simulator: its number (its reads are listed in
/// `SimReads::batches`).
pub(super) type ReadBatchId = u64;

/// The pipeline's state on one simulated node in the asynchronous mode.
pub(super) struct AsyncDriver {
    pub pipeline: Pipeline<ReadBatchId>,
    pub wal: SimWal,
    /// Reads waiting for the driver's next turn.
    pub gate: ReadGate<ReadBatchId>,
    /// The client operations of each batch not yet answered.
    pub batches: std::collections::BTreeMap<ReadBatchId, Vec<OpId>>,
    next_batch: ReadBatchId,
}

impl AsyncDriver {
    pub fn new(
        disk: AsyncDisk,
        durable: &DurableStore,
        bug: Option<raftkv::pipeline::DriverBug>,
    ) -> Self {
        let mut pipeline = Pipeline::new(
            PipelineConfig {
                jobs_in_flight_max: disk.jobs_in_flight_max,
                inline_follower_writes: disk.inline_follower_writes,
            },
            durable.hard_state,
        );
        pipeline.plant(bug);
        AsyncDriver {
            pipeline,
            wal: SimWal::new(disk, durable),
            gate: ReadGate::default(),
            batches: Default::default(),
            next_batch: 0,
        }
    }

    /// Every client read this node still holds (open batch or issued).
    pub fn held_reads(&self) -> impl Iterator<Item = OpId> + '_ {
        self.batches.values().flatten().copied()
    }
}

/// Why the pipeline stopped part-way through a Ready.
enum Stop {
    Crash(CrashPoint),
    Fail(Failure),
}

impl From<Failure> for Stop {
    fn from(failure: Failure) -> Self {
        Stop::Fail(failure)
    }
}

/// The I/O the pipeline asks of a simulated node.
struct SimIo<'a> {
    sim: &'a mut Sim,
    i: usize,
    running: &'a mut Running,
    /// Where this Ready's crash strikes, if it does.
    crash_point: Option<CrashPoint>,
    /// The node's term when the Ready was taken (for the apply checks).
    node_term: Term,
    /// A leader's snapshot is being installed: its held messages are
    /// checked for a crash once it is durable, not at the hand-off.
    installing: bool,
}

impl SimIo<'_> {
    fn driver(&mut self) -> &mut AsyncDriver {
        self.running.driver.as_mut().expect("asynchronous mode")
    }

    fn id(&self) -> u64 {
        self.sim.nodes[self.i].id
    }

    fn contract(&self, problem: String) -> Stop {
        Stop::Fail(self.sim.contract_failure(self.i, problem))
    }
}

impl ReadyIo for SimIo<'_> {
    type Error = Stop;
    type Reads = ReadBatchId;

    fn raw(&mut self) -> &mut RawNode {
        &mut self.running.raw
    }

    fn send(&mut self, message: Message) -> Result<(), Stop> {
        let id = self.id();
        Ok(self.sim.send(id, message)?)
    }

    fn send_released(&mut self, messages: Vec<Message>) -> Result<(), Stop> {
        self.driver().wal.stats.messages_held += messages.len() as u64;
        for message in messages {
            self.send(message)?;
        }
        Ok(())
    }

    fn apply(&mut self, entries: &[Entry]) -> Result<(), Stop> {
        let id = self.id();
        Ok(self
            .sim
            .apply_committed(id, self.running, entries, self.node_term)?)
    }

    fn read_safe(&mut self, reads: ReadBatchId) -> Result<(), Stop> {
        let id = self.id();
        let ops = self.driver().batches.remove(&reads).unwrap_or_default();
        let index = self.running.applied;
        for op in ops {
            self.sim.serve_read(id, self.running, op, index)?;
        }
        Ok(())
    }

    fn read_failed(&mut self, reads: ReadBatchId, why: ReadFailure) {
        let ops = self.driver().batches.remove(&reads).unwrap_or_default();
        for op in ops {
            self.sim.fail_read(op, why);
        }
    }

    fn write_inline(&mut self, write: WalWrite) -> Result<(), Stop> {
        let torn = self.crash_point == Some(CrashPoint::TornPersist);
        let i = self.i;
        let driver = self.running.driver.as_mut().expect("asynchronous mode");
        let written = driver
            .wal
            .write_inline(write, torn, &mut self.sim.nodes[i].durable);
        written.map_err(|e| self.contract(e))
    }

    fn submit(&mut self, job: WalJob) -> Result<(), Stop> {
        let submitted = self.driver().wal.submit(job);
        submitted.map_err(|e| self.contract(e))
    }

    fn own_snapshot_saved(&mut self, index: Index, data: Bytes) -> Result<(), Stop> {
        self.driver().wal.compaction_pending = false;
        Ok(self
            .sim
            .finish_compaction(self.i, self.running, index, data)?)
    }

    fn advanced(&mut self, _status: &Status) -> Result<(), Stop> {
        Ok(self.sim.maybe_compact_async(self.i, self.running)?)
    }

    fn reached(&mut self, stage: Stage) -> Result<(), Stop> {
        let Some(point) = self.crash_point else {
            return Ok(());
        };
        let strikes = match stage {
            Stage::Taken => point == CrashPoint::BeforeSend,
            Stage::Sent => point == CrashPoint::BeforePersist,
            Stage::Applied => point == CrashPoint::AfterApply,
            Stage::HandedOver => {
                point == CrashPoint::TornPersist
                    || (point == CrashPoint::BeforePersistedSend && !self.installing)
            }
            Stage::BeforeAdvance => point == CrashPoint::BeforeAdvance,
        };
        if !strikes {
            return Ok(());
        }
        if point == CrashPoint::TornPersist {
            // The inline write, or else the batch the WAL thread takes now.
            self.driver().wal.start_writing_all();
        }
        Err(Stop::Crash(point))
    }
}

impl Sim {
    /// The driver's loop for node `i` in the asynchronous mode.
    pub(super) fn process_ready_async(&mut self, i: usize) -> Result<(), Failure> {
        if self.nodes[i].paused_until_tick > self.now_tick {
            return Ok(());
        }
        let quiet = self.nodes[i].running.as_ref().is_none_or(|running| {
            let driver = running.driver.as_ref().expect("asynchronous mode");
            !running.raw.has_ready()
                && driver.pipeline.is_idle()
                && driver.wal.is_quiet()
                && driver.gate.open().is_none()
        });
        if quiet {
            return Ok(());
        }
        let Some(mut running) = self.nodes[i].running.take() else {
            return Ok(());
        };
        let stepped = self
            .wal_step(i, &mut running)
            .and_then(|()| self.hand_over_prepared_snapshot(i, &mut running));
        if let Err(failure) = stepped {
            self.nodes[i].running = Some(running);
            return Err(failure);
        }
        self.issue_open_reads_of(i, &mut running);
        for _ in 0..READY_ROUNDS_PER_VISIT_MAX {
            if let Err(failure) = self.handle_reports(i, &mut running) {
                self.nodes[i].running = Some(running);
                return Err(failure);
            }
            let driver = running.driver.as_ref().expect("asynchronous mode");
            if !running.raw.has_ready() || !driver.pipeline.has_room() {
                break;
            }
            match self.handle_ready_async(i, &mut running) {
                Ok(ReadyOutcome::Alive) => {}
                Ok(ReadyOutcome::Crashed(point)) => return self.crash(i, running, Some(point)),
                Err(failure) => {
                    self.nodes[i].running = Some(running);
                    return Err(failure);
                }
            }
        }
        self.nodes[i].running = Some(running);
        Ok(())
    }

    /// A client read at node `i` in the asynchronous mode joins the batch
    /// the node's next turn issues (the shared `ReadGate`).
    pub(super) fn client_read_batched(&mut self, c: usize, i: usize, key: u64) {
        let op = self.history.invoke_read(c as u64, key);
        let running = self.nodes[i].running.as_mut().expect("running");
        let driver = running.driver.as_mut().expect("asynchronous mode");
        let next = &mut driver.next_batch;
        let (batch, opened) = driver.gate.join(|| {
            *next += 1;
            *next
        });
        driver.batches.entry(batch).or_default().push(op);
        if !opened {
            driver.wal.stats.reads_sharing_a_batch += 1;
        }
        trace!(
            self,
            "client {c} READ op={op} k{key} at n{}: joins batch {batch}",
            i + 1
        );
        self.clients[c].op = Some((op, self.now_tick + CLIENT_TIMEOUT_TICKS));
    }

    /// Node `i`'s driver issues one ReadIndex for the reads gathered since
    /// its last turn (before it steps the next peer message, as the node's
    /// driver does).
    pub(super) fn issue_open_reads(&mut self, i: usize) {
        if let Some(mut running) = self.nodes[i].running.take() {
            self.issue_open_reads_of(i, &mut running);
            self.nodes[i].running = Some(running);
        }
    }

    fn issue_open_reads_of(&mut self, i: usize, running: &mut Running) {
        let Some(driver) = running.driver.as_mut() else {
            return;
        };
        let Some(batch) = driver.gate.take_open() else {
            return;
        };
        driver.wal.stats.read_batches += 1;
        let mut pipeline = std::mem::replace(&mut driver.pipeline, placeholder());
        trace!(self, "n{} READINDEX for batch {batch}", self.nodes[i].id);
        let mut io = SimIo {
            sim: self,
            i,
            running,
            crash_point: None,
            node_term: 0,
            installing: false,
        };
        pipeline.issue_read(batch, &mut io);
        running.driver.as_mut().expect("asynchronous mode").pipeline = pipeline;
    }

    /// One step of node `i`'s WAL thread.
    fn wal_step(&mut self, i: usize, running: &mut Running) -> Result<(), Failure> {
        let faults = self.phase == Phase::Faults;
        let wal = &mut running.driver.as_mut().expect("asynchronous mode").wal;
        let trace = self.options.trace;
        let stepped = wal.step(
            &mut self.disk_rng,
            faults,
            trace,
            &mut self.nodes[i].durable,
        );
        match stepped {
            Ok(Some(line)) => {
                trace!(self, "n{} {line}", self.nodes[i].id);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(self.contract_failure(i, e)),
        }
    }

    fn contract_failure(&self, i: usize, problem: String) -> Failure {
        self.failure(
            FailureKind::Contract,
            format!("node {}: {problem}", self.nodes[i].id),
        )
    }

    /// Runs `f` with node `i`'s pipeline and the I/O it asks for.
    fn with_pipeline<T>(
        &mut self,
        i: usize,
        running: &mut Running,
        crash_point: Option<CrashPoint>,
        node_term: Term,
        installing: bool,
        f: impl FnOnce(&mut Pipeline<ReadBatchId>, &mut SimIo<'_>) -> Result<T, Stop>,
    ) -> Result<T, Stop> {
        let driver = running.driver.as_mut().expect("asynchronous mode");
        let mut pipeline = std::mem::replace(&mut driver.pipeline, placeholder());
        let mut io = SimIo {
            sim: self,
            i,
            running,
            crash_point,
            node_term,
            installing,
        };
        let result = f(&mut pipeline, &mut io);
        running.driver.as_mut().expect("asynchronous mode").pipeline = pipeline;
        result
    }

    /// Every WAL report not handled yet goes to the pipeline: the messages
    /// the jobs held leave, the core counts the entries now durable, and a
    /// saved own snapshot compacts the core's log.
    fn handle_reports(&mut self, i: usize, running: &mut Running) -> Result<(), Failure> {
        loop {
            let wal = &mut running.driver.as_mut().expect("asynchronous mode").wal;
            let Some(report) = wal.next_report() else {
                return Ok(());
            };
            trace!(self, "n{} WAL report {report:?}", self.nodes[i].id);
            let handled = self.with_pipeline(i, running, None, 0, false, |pipeline, io| {
                pipeline.on_report(report, io)
            });
            match handled {
                Ok(()) => {}
                Err(Stop::Fail(failure)) => return Err(failure),
                Err(Stop::Crash(_)) => unreachable!("no crash is drawn for a report"),
            }
        }
    }

    /// One Ready through the shared pipeline.
    fn handle_ready_async(
        &mut self,
        i: usize,
        running: &mut Running,
    ) -> Result<ReadyOutcome, Failure> {
        let driver = running.driver.as_mut().expect("asynchronous mode");
        if !driver.pipeline.is_idle() {
            driver.wal.stats.readies_with_writes_pending += 1;
        }
        let (ready, _ack, status) = self.take_ready(i, running)?;
        let committed = !ready.committed_entries.is_empty();
        let crash_point = self.draw_crash_point();
        let handled = self.with_pipeline(i, running, crash_point, status.term, false, |p, io| {
            let turn = p.start(ready, io)?;
            p.finish(turn, io)
        });
        let snapshot_turn = match handled {
            Ok(turn) => turn,
            Err(Stop::Crash(point)) => return Ok(ReadyOutcome::Crashed(point)),
            Err(Stop::Fail(failure)) => return Err(failure),
        };
        if let Some(turn) = snapshot_turn {
            return self.handle_snapshot_ready_async(i, running, turn, status, crash_point);
        }
        self.maybe_strike_after_commit(self.nodes[i].id, &status, committed);
        Ok(ReadyOutcome::Alive)
    }

    /// A snapshot from the leader: every job queued before it becomes
    /// durable first, then the snapshot with the entries and hard state
    /// after it, and only then is the state machine replaced.
    fn handle_snapshot_ready_async(
        &mut self,
        i: usize,
        running: &mut Running,
        mut turn: SnapshotTurn,
        status: Status,
        crash_point: Option<CrashPoint>,
    ) -> Result<ReadyOutcome, Failure> {
        let id = self.nodes[i].id;
        self.flush(i, running)?;
        let installed = self.with_pipeline(i, running, crash_point, status.term, true, |p, io| {
            p.install_snapshot(&mut turn, io)
        });
        match installed {
            Ok(()) => {}
            Err(Stop::Crash(point)) => return Ok(ReadyOutcome::Crashed(point)),
            Err(Stop::Fail(failure)) => return Err(failure),
        }
        let wal = &mut running.driver.as_mut().expect("asynchronous mode").wal;
        let flushed = wal.flush(&mut self.nodes[i].durable);
        flushed.map_err(|e| self.contract_failure(i, e))?;
        if crash_point == Some(CrashPoint::BeforePersistedSend) {
            return Ok(ReadyOutcome::Crashed(CrashPoint::BeforePersistedSend));
        }
        self.handle_reports(i, running)?;
        self.restore_snapshot(id, running, turn.snapshot())?;
        let finished = self.with_pipeline(i, running, crash_point, status.term, true, |p, io| {
            p.finish_snapshot(turn, io)
        });
        match finished {
            Ok(()) => Ok(ReadyOutcome::Alive),
            Err(Stop::Crash(point)) => Ok(ReadyOutcome::Crashed(point)),
            Err(Stop::Fail(failure)) => Err(failure),
        }
    }

    /// Waits (in no simulated time) until every job handed over is durable,
    /// and handles the reports.
    fn flush(&mut self, i: usize, running: &mut Running) -> Result<(), Failure> {
        let wal = &mut running.driver.as_mut().expect("asynchronous mode").wal;
        let flushed = wal.flush(&mut self.nodes[i].durable);
        flushed.map_err(|e| self.contract_failure(i, e))?;
        self.handle_reports(i, running)
    }

    /// After `advance`: maybe compact. The node clones the state machine at
    /// the applied index, a task writes the file, and the WAL thread puts it
    /// in place behind every write handed over before that; the core drops
    /// the log only once the snapshot is durable.
    fn maybe_compact_async(&mut self, i: usize, running: &mut Running) -> Result<(), Failure> {
        let wal = &mut running.driver.as_mut().expect("asynchronous mode").wal;
        if wal.compaction_pending
            || running.applied <= wal.snapshot_index_handed_over
            || !super::chance(&mut self.rng, self.profile.compact_probability)
        {
            return Ok(());
        }
        let index = running.applied;
        let term = self.checker.applied(index).expect("applied here").term;
        let snapshot = Snapshot {
            meta: SnapshotMeta {
                index,
                term,
                members: running.raw.members_at(index),
            },
            data: running.kv.snapshot(),
        };
        let wal = &mut running.driver.as_mut().expect("asynchronous mode").wal;
        wal.prepare_own_snapshot(snapshot, &mut self.disk_rng);
        trace!(
            self,
            "n{} COMPACT through {index}/{term}: writing the snapshot file",
            self.nodes[i].id
        );
        Ok(())
    }

    /// The driver's `save_own_snapshot` once the snapshot file is written.
    fn hand_over_prepared_snapshot(
        &mut self,
        i: usize,
        running: &mut Running,
    ) -> Result<(), Failure> {
        let driver = running.driver.as_mut().expect("asynchronous mode");
        let Some(snapshot) = driver.wal.take_prepared_snapshot() else {
            return Ok(());
        };
        let index = snapshot.meta.index;
        let handed_over = driver.wal.wants_own_snapshot(&snapshot);
        if handed_over {
            let seq = driver.pipeline.own_snapshot_job();
            let saved = driver.wal.save_own_snapshot(seq, snapshot);
            saved.map_err(|e| self.contract_failure(i, e))?;
        }
        trace!(
            self,
            "n{} COMPACT through {index}: {}",
            self.nodes[i].id,
            if handed_over {
                "handed to the WAL thread"
            } else {
                "superseded by a newer snapshot"
            }
        );
        Ok(())
    }

    /// The own snapshot at `index` is durable: the core drops the log it
    /// covers, unless a newer snapshot from the leader replaced it.
    fn finish_compaction(
        &mut self,
        i: usize,
        running: &mut Running,
        index: u64,
        data: Bytes,
    ) -> Result<(), Failure> {
        let id = self.nodes[i].id;
        match running.raw.compact(index, data) {
            Ok(()) => {
                self.report.compactions += 1;
                trace!(self, "n{id} COMPACT through {index} durable: log dropped");
                Ok(())
            }
            Err(e) if index <= running.raw.status().snapshot_index => {
                trace!(self, "n{id} COMPACT through {index} superseded: {e}");
                Ok(())
            }
            Err(e) => Err(self.failure(
                FailureKind::Contract,
                format!("node {id} refused to compact at a durable own snapshot: {e}"),
            )),
        }
    }
}

/// Stands in for a node's pipeline while it is lent to a [`SimIo`] call.
fn placeholder() -> Pipeline<ReadBatchId> {
    Pipeline::new(
        PipelineConfig {
            jobs_in_flight_max: 1,
            inline_follower_writes: false,
        },
        Default::default(),
    )
}
