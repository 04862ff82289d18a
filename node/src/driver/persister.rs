//! The WAL writer: a dedicated thread that owns [`Storage`] and makes the
//! driver's Readies durable while the driver keeps running.
//!
//! What is handed over, when, and what a report releases is decided by the
//! shared Ready pipeline (`raftkv::pipeline`); this is its I/O: the thread
//! takes every job queued since its last fsync, writes them and fsyncs once
//! (group commit sized by load: the slower the disk, the larger the next
//! batch), then reports the newest job that is durable.
//!
//! A follower whose WAL thread is idle writes inline instead (the
//! pipeline decides): it has no clients to keep answering, and its ack is
//! the next thing the leader waits for, so handing the batch to another
//! thread and back would only add two thread wake-ups to every write's
//! latency. Appends that arrive during that fsync queue up and share the
//! next one.

use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;
use raftkv::message::Entry;
use raftkv::pipeline::{WalJob, WalReport, WalWrite};
use raftkv::raft::HardState;
use tokio::sync::mpsc;

use crate::log_events;
use crate::storage::{PreparedSnapshot, Storage};

/// Most jobs submitted and not yet reported durable. The driver stops
/// taking Readies at this bound until the disk catches up.
pub const PERSIST_JOBS_IN_FLIGHT_MAX: usize = 1024;

/// What the WAL thread is asked to do.
enum Job {
    /// A write or a leader's snapshot, as the pipeline handed it over.
    Wal(WalJob),
    /// This node's own snapshot, already streamed to its temporary file
    /// (`storage::prepare_snapshot`): put in place durably, then the log it
    /// covers is dropped.
    SavePreparedSnapshot {
        seq: u64,
        prepared: PreparedSnapshot,
    },
}

/// What the WAL thread reports: a WAL report for the pipeline, or the
/// storage failed (it refuses all further work).
pub(crate) type Report = Result<WalReport, String>;

/// The driver's handle on the WAL thread.
pub(crate) struct Persister {
    /// Locked by the WAL thread for each batch, and by the driver for an
    /// inline write (only while no job is in flight, so never contended
    /// for long).
    storage: Arc<Mutex<Storage>>,
    jobs: Option<std_mpsc::SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Persister {
    /// Moves `storage` onto its own thread. The driver waits on the returned
    /// receiver and hands each report to the pipeline.
    pub fn start(
        storage: Storage,
        node_id: u64,
    ) -> Result<(Persister, mpsc::Receiver<Report>), String> {
        // Readies fill up to PERSIST_JOBS_IN_FLIGHT_MAX jobs and one own
        // snapshot may come on top; every unread report retires at least
        // one job. So neither send below ever waits.
        let (jobs_tx, jobs_rx) = std_mpsc::sync_channel(PERSIST_JOBS_IN_FLIGHT_MAX + 1);
        let (reports_tx, reports_rx) = mpsc::channel(PERSIST_JOBS_IN_FLIGHT_MAX + 2);
        let storage = Arc::new(Mutex::new(storage));
        let thread_storage = storage.clone();
        let thread = std::thread::Builder::new()
            .name(format!("raftkv-wal-{node_id}"))
            .spawn(move || write_jobs(&thread_storage, jobs_rx, reports_tx))
            .map_err(|e| format!("node {node_id}: cannot start the WAL thread: {e}"))?;
        let persister = Persister {
            storage,
            jobs: Some(jobs_tx),
            thread: Some(thread),
        };
        Ok((persister, reports_rx))
    }

    /// Writes and fsyncs `write` on the caller's thread (the pipeline hands
    /// a write over inline only while no job is in flight).
    pub fn write_inline(&self, write: &WalWrite) -> Result<(), String> {
        let mut storage = self.storage.lock();
        write_entries(&mut storage, &write.entries, write.hard_state.as_ref())?;
        storage.sync().map_err(|e| e.to_string())
    }

    /// Queues a job the pipeline handed over.
    pub fn submit(&self, job: WalJob) {
        self.send(Job::Wal(job));
    }

    /// Queues this node's own snapshot (job `seq` of the pipeline), already
    /// written to its temporary file; it is reported with
    /// `WalReport::SnapshotSaved` (its data mapped from the file).
    pub fn save_prepared_snapshot(&self, seq: u64, prepared: PreparedSnapshot) {
        self.send(Job::SavePreparedSnapshot { seq, prepared });
    }

    fn send(&self, job: Job) {
        if let Some(jobs) = &self.jobs {
            // Never blocks: the channel holds PERSIST_JOBS_IN_FLIGHT_MAX jobs
            // and the pipeline never has more in flight. A send error means
            // the thread stopped after a failure, which it has reported.
            let _ = jobs.send(job);
        }
    }

    /// Stops the thread after everything submitted is written and fsynced,
    /// with `unwritten_commit` (a commit index no job carried) last.
    pub fn stop(&mut self, unwritten_commit: Option<HardState>) {
        if let Some(hard_state) = unwritten_commit {
            self.send(Job::Wal(WalJob::Write {
                seq: 0,
                write: WalWrite {
                    entries: Vec::new(),
                    hard_state: Some(hard_state),
                    sync: true,
                },
            }));
        }
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Persister {
    fn drop(&mut self) {
        self.stop(None);
    }
}

/// The WAL thread: group commit over whatever is queued, until the driver
/// hangs up (then a final fsync).
fn write_jobs(
    storage: &Mutex<Storage>,
    jobs: std_mpsc::Receiver<Job>,
    reports: mpsc::Sender<Report>,
) {
    let mut batch = Vec::new();
    let mut done = Vec::new();
    while let Ok(first) = jobs.recv() {
        batch.push(first);
        while batch.len() < PERSIST_JOBS_IN_FLIGHT_MAX {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // The lock is released before reporting: a report can make the
        // driver write inline at once.
        let written = write_batch(&mut storage.lock(), &mut batch, &mut done);
        for report in done.drain(..) {
            // An error means the driver is gone; the files are consistent.
            let _ = reports.blocking_send(report);
        }
        if let Err(message) = written {
            let _ = reports.blocking_send(Err(message));
            return;
        }
    }
    if let Err(error) = storage.lock().sync() {
        tracing::error!(event = log_events::WAL_FINAL_SYNC_FAILED, %error);
    }
}

/// Writes one batch of jobs, fsyncs once if any needs it, and lists the
/// reports to send (the ones for jobs written before a failure included).
fn write_batch(
    storage: &mut Storage,
    batch: &mut Vec<Job>,
    done: &mut Vec<Report>,
) -> Result<(), String> {
    let mut through_seq = None;
    let mut must_sync = false;
    for job in batch.drain(..) {
        match job {
            Job::Wal(WalJob::Write { seq, write }) => {
                write_entries(storage, &write.entries, write.hard_state.as_ref())?;
                must_sync |= write.sync;
                through_seq = Some(seq);
            }
            Job::Wal(WalJob::InstallSnapshot {
                seq,
                snapshot,
                write,
            }) => {
                // The log keeps its suffix only if it holds the snapshot's
                // last entry (index and term); otherwise it is replaced.
                let matches = storage.entry_term(snapshot.meta.index) == Some(snapshot.meta.term);
                storage
                    .save_snapshot(&snapshot, !matches)
                    .map_err(|e| e.to_string())?;
                write_entries(storage, &write.entries, write.hard_state.as_ref())?;
                must_sync = true;
                through_seq = Some(seq);
            }
            Job::SavePreparedSnapshot { seq, prepared } => {
                // Also fsyncs every record buffered before it.
                let snapshot = storage
                    .save_prepared_snapshot(prepared)
                    .map_err(|e| e.to_string())?;
                must_sync = false;
                through_seq = None;
                done.push(Ok(WalReport::SnapshotSaved {
                    seq,
                    index: snapshot.meta.index,
                    data: snapshot.data,
                }));
            }
        }
    }
    if must_sync {
        storage.sync().map_err(|e| e.to_string())?;
    }
    if let Some(through_seq) = through_seq {
        done.push(Ok(WalReport::Durable { through_seq }));
    }
    Ok(())
}

fn write_entries(
    storage: &mut Storage,
    entries: &[Entry],
    hard_state: Option<&HardState>,
) -> Result<(), String> {
    // Entries before the hard state: a crash that tears this batch must
    // never leave a commit index durable without the entries it covers.
    storage.append(entries).map_err(|e| e.to_string())?;
    if let Some(hard_state) = hard_state {
        storage
            .set_hard_state(hard_state)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
