//! The WAL writer: a dedicated thread that owns [`Storage`] and makes the
//! driver's Readies durable while the driver keeps running.
//!
//! The driver hands each Ready's entries and hard state over as a job and
//! goes on: it sends appends, handles acks, applies committed entries and
//! answers clients while the disk works. The thread takes every job queued
//! since its last fsync, writes them and fsyncs once (group commit sized by
//! load: the slower the disk, the larger the next batch), then reports the
//! newest job that is durable. Only then does the driver send the messages
//! that promise durability (votes, append acks) and tell the core, which
//! counts the leader's own copy towards commit only from then on.
//!
//! Jobs complete strictly in submission order, so "durable through job N"
//! covers every earlier job too.
//!
//! A follower whose WAL thread is idle writes inline instead: it has no
//! clients to keep answering, and its ack is the next thing the leader
//! waits for, so handing the batch to another thread and back would only
//! add two thread wake-ups to every write's latency. Appends that arrive
//! during that fsync queue up and share the next one.

use std::collections::VecDeque;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use parking_lot::Mutex;
use raftkv::message::{Entry, Index, Message, Snapshot, Term};
use raftkv::raft::HardState;
use tokio::sync::mpsc;

use crate::log_events;
use crate::storage::{PreparedSnapshot, Storage};

/// Most jobs submitted and not yet reported durable. The driver stops
/// taking Readies at this bound until the disk catches up.
pub const PERSIST_JOBS_IN_FLIGHT_MAX: usize = 1024;

/// What the WAL thread is asked to do.
enum Job {
    /// Append `entries` (after a conflict truncation where their first index
    /// asks for it) and record `hard_state`. `sync`: fsync before reporting
    /// (entries, or a new term or vote); a commit index alone rides along
    /// with the next fsync.
    Write {
        seq: u64,
        entries: Vec<Entry>,
        hard_state: Option<HardState>,
        sync: bool,
    },
    /// A snapshot from the leader replaces the log (or its prefix, when the
    /// log holds the snapshot's last entry), then `entries` and `hard_state`
    /// follow it. Always durable before it is reported.
    InstallSnapshot {
        seq: u64,
        snapshot: Snapshot,
        entries: Vec<Entry>,
        hard_state: Option<HardState>,
    },
    /// This node's own snapshot, already streamed to its temporary file
    /// (`storage::prepare_snapshot`): put in place durably, then the log it
    /// covers is dropped.
    SavePreparedSnapshot {
        seq: u64,
        prepared: PreparedSnapshot,
    },
}

/// What the WAL thread reports.
pub(crate) enum Report {
    /// Every job up to and including `through_seq` is durable.
    Durable { through_seq: u64 },
    /// The own snapshot of job `seq` is durable (and so is every job before it).
    SnapshotSaved { seq: u64, index: Index, data: Bytes },
    /// The storage failed; it refuses all further work.
    Failed(String),
}

/// A submitted job the driver still waits on.
struct InFlight {
    seq: u64,
    /// The job's last entry, for `ReadyAck::persisted_last`.
    persisted_last: Option<(Index, Term)>,
    /// Messages that may leave only once the job is durable.
    held_messages: Vec<Message>,
}

/// What one report means for the driver, once its bookkeeping is done.
pub(crate) struct Durable {
    /// The newest entry now durable (for the core), if the jobs had any.
    pub persisted_last: Option<(Index, Term)>,
    /// Messages to send now, in the order they were produced.
    pub messages: Vec<Message>,
    /// An own snapshot that is now durable: compact the core's log.
    pub snapshot_saved: Option<(Index, Bytes)>,
}

impl Durable {
    fn messages(messages: Vec<Message>) -> Durable {
        Durable {
            persisted_last: None,
            messages,
            snapshot_saved: None,
        }
    }
}

/// The driver's handle on the WAL thread.
pub(crate) struct Persister {
    /// Locked by the WAL thread for each batch, and by the driver for an
    /// inline write (only while no job is in flight, so never contended
    /// for long).
    storage: Arc<Mutex<Storage>>,
    jobs: Option<std_mpsc::SyncSender<Job>>,
    in_flight: VecDeque<InFlight>,
    next_seq: u64,
    /// A hard state that changed only its commit index, not yet handed
    /// over: it rides along with the next job (or the final one at stop)
    /// instead of costing the WAL thread a round trip of its own.
    unwritten_commit: Option<HardState>,
    thread: Option<JoinHandle<()>>,
}

impl Persister {
    /// Moves `storage` onto its own thread. The driver waits on the returned
    /// receiver and hands each report to [`Persister::complete`].
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
            in_flight: VecDeque::new(),
            next_seq: 0,
            unwritten_commit: None,
            thread: Some(thread),
        };
        Ok((persister, reports_rx))
    }

    /// Whether another job may be submitted now.
    pub fn has_room(&self) -> bool {
        self.in_flight.len() < PERSIST_JOBS_IN_FLIGHT_MAX
    }

    pub fn is_idle(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// Makes a Ready's entries and hard state durable. `held_messages` may
    /// leave once they are. `sync`: an fsync is needed (entries, a new term
    /// or vote); without it and without entries, the hard state only
    /// carries a commit index and waits for the next write. With `inline`
    /// and no job in flight, the write happens here and now.
    ///
    /// Returns what is durable already (messages to send now, and the last
    /// entry for the core), or `None` when it was queued: a later report
    /// says so. With nothing to write, the messages still wait for the jobs
    /// before them (they may promise what those jobs write).
    pub fn write(
        &mut self,
        entries: Vec<Entry>,
        hard_state: Option<HardState>,
        sync: bool,
        held_messages: Vec<Message>,
        inline: bool,
    ) -> Result<Option<Durable>, String> {
        if entries.is_empty() && !sync {
            if hard_state.is_some() {
                self.unwritten_commit = hard_state;
            }
            let messages = self.hold_behind_last(held_messages);
            return Ok(self.is_idle().then(|| Durable::messages(messages)));
        }
        let hard_state = hard_state.or(self.unwritten_commit.take());
        let persisted_last = entries.last().map(|e| (e.index, e.term));
        if inline && self.is_idle() {
            let mut storage = self.storage.lock();
            write_entries(&mut storage, &entries, hard_state.as_ref())?;
            storage.sync().map_err(|e| e.to_string())?;
            return Ok(Some(Durable {
                persisted_last,
                messages: held_messages,
                snapshot_saved: None,
            }));
        }
        let seq = self.submit(|seq| Job::Write {
            seq,
            entries,
            hard_state,
            sync,
        });
        self.in_flight.push_back(InFlight {
            seq,
            persisted_last,
            held_messages,
        });
        Ok(None)
    }

    /// Queues a snapshot from the leader with the entries and hard state
    /// that follow it.
    pub fn install_snapshot(
        &mut self,
        snapshot: Snapshot,
        entries: Vec<Entry>,
        hard_state: Option<HardState>,
        held_messages: Vec<Message>,
    ) {
        let persisted_last = entries.last().map(|e| (e.index, e.term));
        let hard_state = hard_state.or(self.unwritten_commit.take());
        let seq = self.submit(|seq| Job::InstallSnapshot {
            seq,
            snapshot,
            entries,
            hard_state,
        });
        self.in_flight.push_back(InFlight {
            seq,
            persisted_last,
            held_messages,
        });
    }

    /// Queues this node's own snapshot, already written to its temporary
    /// file; it is reported with `Report::SnapshotSaved` (its data mapped
    /// from the file).
    pub fn save_prepared_snapshot(&mut self, prepared: PreparedSnapshot) {
        let seq = self.submit(|seq| Job::SavePreparedSnapshot { seq, prepared });
        self.in_flight.push_back(InFlight {
            seq,
            persisted_last: None,
            held_messages: Vec::new(),
        });
    }

    fn submit(&mut self, job: impl FnOnce(u64) -> Job) -> u64 {
        debug_assert!(
            self.in_flight.len() <= PERSIST_JOBS_IN_FLIGHT_MAX,
            "the driver checks has_room first"
        );
        self.next_seq += 1;
        let seq = self.next_seq;
        if let Some(jobs) = &self.jobs {
            // Never blocks: the channel holds PERSIST_JOBS_IN_FLIGHT_MAX jobs
            // and the driver never has more in flight. A send error means
            // the thread stopped after a failure, which it has reported.
            let _ = jobs.send(job(seq));
        }
        seq
    }

    fn hold_behind_last(&mut self, messages: Vec<Message>) -> Vec<Message> {
        match self.in_flight.back_mut() {
            Some(last) => {
                last.held_messages.extend(messages);
                Vec::new()
            }
            None => messages,
        }
    }

    /// Retires the jobs a report covers.
    pub fn complete(&mut self, report: Report) -> Result<Durable, String> {
        let (through_seq, snapshot_saved) = match report {
            Report::Durable { through_seq } => (through_seq, None),
            Report::SnapshotSaved { seq, index, data } => (seq, Some((index, data))),
            Report::Failed(message) => return Err(message),
        };
        let mut durable = Durable {
            persisted_last: None,
            messages: Vec::new(),
            snapshot_saved,
        };
        while let Some(job) = self.in_flight.front() {
            if job.seq > through_seq {
                break;
            }
            let job = self.in_flight.pop_front().expect("non-empty");
            if job.persisted_last.is_some() {
                durable.persisted_last = job.persisted_last;
            }
            durable.messages.extend(job.held_messages);
        }
        Ok(durable)
    }

    /// Stops the thread after everything submitted is written and fsynced.
    pub fn stop(&mut self) {
        if let Some(hard_state) = self.unwritten_commit.take() {
            self.submit(|seq| Job::Write {
                seq,
                entries: Vec::new(),
                hard_state: Some(hard_state),
                sync: true,
            });
        }
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Persister {
    fn drop(&mut self) {
        self.stop();
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
            let _ = reports.blocking_send(Report::Failed(message));
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
            Job::Write {
                seq,
                entries,
                hard_state,
                sync,
            } => {
                write_entries(storage, &entries, hard_state.as_ref())?;
                must_sync |= sync;
                through_seq = Some(seq);
            }
            Job::InstallSnapshot {
                seq,
                snapshot,
                entries,
                hard_state,
            } => {
                // The log keeps its suffix only if it holds the snapshot's
                // last entry (index and term); otherwise it is replaced.
                let matches = storage.entry_term(snapshot.meta.index) == Some(snapshot.meta.term);
                storage
                    .save_snapshot(&snapshot, !matches)
                    .map_err(|e| e.to_string())?;
                write_entries(storage, &entries, hard_state.as_ref())?;
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
                done.push(Report::SnapshotSaved {
                    seq,
                    index: snapshot.meta.index,
                    data: snapshot.data,
                });
            }
        }
    }
    if must_sync {
        storage.sync().map_err(|e| e.to_string())?;
    }
    if let Some(through_seq) = through_seq {
        done.push(Report::Durable { through_seq });
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
