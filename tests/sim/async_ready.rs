//! The asynchronous mode of the simulated node: the Ready loop of
//! `node/src/driver/run.rs`, step for step, over the WAL model of
//! `persister.rs`.
//!
//! Each visit takes one WAL step, then, per round, handles the WAL's
//! reports (held messages leave, the core hears `persisted_last`, a saved
//! own snapshot compacts the log) and the next Ready: messages out first,
//! committed entries applied and clients answered before the Ready's own
//! writes are handed over, the hand-off itself (inline for an idle
//! follower), then `advance` with what is durable so far. The node keeps
//! stepping, ticking and taking Readies while earlier writes are pending;
//! only a snapshot from the leader waits for every earlier job first.

use bytes::Bytes;
use raftkv::message::{Body, Message, Snapshot, SnapshotMeta};
use raftkv::raft::{Ready, ReadyAck, Role, Status};

use super::{
    CrashPoint, Failure, FailureKind, Phase, ReadyOutcome, Running, Sim, READY_ROUNDS_PER_VISIT_MAX,
};

impl Sim {
    /// The driver's loop for node `i` in the asynchronous mode.
    pub(super) fn process_ready_async(&mut self, i: usize) -> Result<(), Failure> {
        if self.nodes[i].paused_until_tick > self.now_tick {
            return Ok(());
        }
        let quiet = self.nodes[i].running.as_ref().is_none_or(|running| {
            !running.raw.has_ready() && running.persister.as_ref().is_some_and(|p| p.is_quiet())
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
        for _ in 0..READY_ROUNDS_PER_VISIT_MAX {
            if let Err(failure) = self.handle_reports(i, &mut running) {
                self.nodes[i].running = Some(running);
                return Err(failure);
            }
            let persister = running.persister.as_ref().expect("asynchronous mode");
            if !running.raw.has_ready() || !persister.has_room() {
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

    /// One step of node `i`'s WAL thread.
    fn wal_step(&mut self, i: usize, running: &mut Running) -> Result<(), Failure> {
        let faults = self.phase == Phase::Faults;
        let persister = running.persister.as_mut().expect("asynchronous mode");
        let trace = self.options.trace;
        let stepped = persister.step(
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

    /// The driver's `on_report` for every report not handled yet: the
    /// messages the jobs held leave, the core counts the entries now
    /// durable, and a saved own snapshot compacts the core's log.
    fn handle_reports(&mut self, i: usize, running: &mut Running) -> Result<(), Failure> {
        let id = self.nodes[i].id;
        loop {
            let persister = running.persister.as_mut().expect("asynchronous mode");
            let Some(report) = persister.next_report() else {
                return Ok(());
            };
            let durable = persister.retire(report);
            for message in durable.messages {
                self.send(id, message)?;
            }
            if let Some((index, term)) = durable.persisted_last {
                trace!(self, "n{id} durable through {index}/{term}");
                running.raw.advance(ReadyAck {
                    persisted_last: durable.persisted_last,
                    snapshot_index: None,
                    applied: None,
                });
            }
            if let Some((index, data)) = durable.snapshot_saved {
                self.finish_compaction(i, running, index, data)?;
            }
        }
    }

    /// The driver's `handle_ready`.
    fn handle_ready_async(
        &mut self,
        i: usize,
        running: &mut Running,
    ) -> Result<ReadyOutcome, Failure> {
        let id = self.nodes[i].id;
        let persister = running.persister.as_mut().expect("asynchronous mode");
        if !persister.is_idle() {
            persister.stats.readies_with_writes_pending += 1;
        }
        let (mut ready, ack, status) = self.take_ready(i, running)?;
        let crash_point = self.draw_crash_point();
        if crash_point == Some(CrashPoint::BeforeSend) {
            return Ok(ReadyOutcome::Crashed(CrashPoint::BeforeSend));
        }
        // Appends that carry only the commit index leave after the clients
        // they answer were replied to; everything else leaves first, before
        // this node's own write is even handed over.
        let (commit_only, messages): (Vec<Message>, Vec<Message>) = ready
            .messages
            .drain(..)
            .partition(|m| matches!(&m.body, Body::Append { entries, .. } if entries.is_empty()));
        for message in messages {
            self.send(id, message)?;
        }
        if crash_point == Some(CrashPoint::BeforePersist) {
            return Ok(ReadyOutcome::Crashed(CrashPoint::BeforePersist));
        }
        if ready.snapshot.is_some() {
            for message in commit_only {
                self.send(id, message)?;
            }
            return self.handle_snapshot_ready_async(i, running, ready, ack, status, crash_point);
        }
        // Committed entries are durable on a majority: they are applied
        // (and their clients answered) before this Ready's writes are.
        self.apply(id, running, &ready, status.term)?;
        for message in commit_only {
            self.send(id, message)?;
        }
        if crash_point == Some(CrashPoint::AfterApply) {
            return Ok(ReadyOutcome::Crashed(CrashPoint::AfterApply));
        }
        let torn = crash_point == Some(CrashPoint::TornPersist);
        let persister = running.persister.as_mut().expect("asynchronous mode");
        let sync = !ready.entries.is_empty() || persister.needs_sync(ready.hard_state);
        let inline = persister.disk.inline_follower_writes && running.last_role != Role::Leader;
        let written = persister.write(
            std::mem::take(&mut ready.entries),
            ready.hard_state,
            sync,
            std::mem::take(&mut ready.persisted_messages),
            inline,
            torn,
            &mut self.nodes[i].durable,
        );
        let durable_now = written.map_err(|e| self.contract_failure(i, e))?;
        if torn {
            // The inline write, or else the batch the WAL thread takes now.
            persister.start_writing_all();
            return Ok(ReadyOutcome::Crashed(CrashPoint::TornPersist));
        }
        if crash_point == Some(CrashPoint::BeforePersistedSend) {
            return Ok(ReadyOutcome::Crashed(CrashPoint::BeforePersistedSend));
        }
        let mut persisted_last = None;
        if let Some(durable) = durable_now {
            for message in durable.messages {
                self.send(id, message)?;
            }
            persisted_last = durable.persisted_last;
        }
        if crash_point == Some(CrashPoint::BeforeAdvance) {
            return Ok(ReadyOutcome::Crashed(CrashPoint::BeforeAdvance));
        }
        running.raw.advance(ReadyAck {
            persisted_last,
            snapshot_index: None,
            applied: ack.applied,
        });
        self.after_advance_async(i, running)?;
        self.maybe_strike_after_commit(id, &status, &ready);
        Ok(ReadyOutcome::Alive)
    }

    /// The driver's `handle_snapshot_ready`: every job queued before the
    /// snapshot becomes durable first, then the snapshot with the entries
    /// and hard state after it, and only then is the state machine replaced.
    fn handle_snapshot_ready_async(
        &mut self,
        i: usize,
        running: &mut Running,
        mut ready: Ready,
        ack: ReadyAck,
        status: Status,
        crash_point: Option<CrashPoint>,
    ) -> Result<ReadyOutcome, Failure> {
        let id = self.nodes[i].id;
        self.flush(i, running)?;
        let snapshot = ready.snapshot.clone().expect("checked by the caller");
        let persister = running.persister.as_mut().expect("asynchronous mode");
        let installed = persister.install_snapshot(
            snapshot,
            std::mem::take(&mut ready.entries),
            ready.hard_state,
            std::mem::take(&mut ready.persisted_messages),
        );
        installed.map_err(|e| self.contract_failure(i, e))?;
        if crash_point == Some(CrashPoint::TornPersist) {
            let persister = running.persister.as_mut().expect("asynchronous mode");
            persister.start_writing_all();
            return Ok(ReadyOutcome::Crashed(CrashPoint::TornPersist));
        }
        let persister = running.persister.as_mut().expect("asynchronous mode");
        let flushed = persister.flush(&mut self.nodes[i].durable);
        flushed.map_err(|e| self.contract_failure(i, e))?;
        if crash_point == Some(CrashPoint::BeforePersistedSend) {
            return Ok(ReadyOutcome::Crashed(CrashPoint::BeforePersistedSend));
        }
        self.handle_reports(i, running)?;
        self.apply(id, running, &ready, status.term)?;
        if matches!(
            crash_point,
            Some(CrashPoint::AfterApply) | Some(CrashPoint::BeforeAdvance)
        ) {
            return Ok(ReadyOutcome::Crashed(crash_point.expect("some")));
        }
        running.raw.advance(ReadyAck {
            persisted_last: None,
            snapshot_index: ack.snapshot_index,
            applied: ack.applied,
        });
        self.after_advance_async(i, running)?;
        Ok(ReadyOutcome::Alive)
    }

    /// Waits (in no simulated time) until every job handed over is durable,
    /// and handles the reports.
    fn flush(&mut self, i: usize, running: &mut Running) -> Result<(), Failure> {
        let persister = running.persister.as_mut().expect("asynchronous mode");
        let flushed = persister.flush(&mut self.nodes[i].durable);
        flushed.map_err(|e| self.contract_failure(i, e))?;
        self.handle_reports(i, running)
    }

    /// The driver's `after_advance`: note the role, maybe compact.
    fn after_advance_async(&mut self, i: usize, running: &mut Running) -> Result<(), Failure> {
        running.last_role = running.raw.status().role;
        let persister = running.persister.as_mut().expect("asynchronous mode");
        if persister.compaction_pending
            || running.applied <= persister.snapshot_index_handed_over
            || !super::chance(&mut self.rng, self.profile.compact_probability)
        {
            return Ok(());
        }
        // The node clones the state machine at the applied index, a task
        // writes the file, and the WAL thread puts it in place behind every
        // write handed over before that; the core drops the log only once
        // the snapshot is durable.
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
        persister.prepare_own_snapshot(snapshot, &mut self.disk_rng);
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
        let persister = running.persister.as_mut().expect("asynchronous mode");
        let Some(snapshot) = persister.take_prepared_snapshot() else {
            return Ok(());
        };
        let index = snapshot.meta.index;
        let saved = persister.save_own_snapshot(snapshot);
        let handed_over = saved.map_err(|e| self.contract_failure(i, e))?;
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
