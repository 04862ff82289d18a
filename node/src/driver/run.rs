//! The driver's loop: one task that takes inputs (ticks, peer messages,
//! client requests, WAL reports, written snapshots), steps the core with
//! them, and handles each Ready it hands back (send, apply, persist,
//! acknowledge). The node's parts are opened and started by the
//! composition root (`crate::node`) and handed over in `DriverParts`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use raftkv::kv::{Command, KvStore, Reply};
use raftkv::message::{Body, Entry, EntryKind, Message, NodeId};
use raftkv::raft::{HardState, ProposeError, RawNode, Ready, ReadyAck, Role, Status};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::compaction::{Compaction, Written};
use super::events::log_event;
use super::handle::{NodeStatus, ReadError, WriteError};
use super::persister::{Persister, Report};
use super::status::incarnation_text;
use super::{PendingReads, PendingWrites, Request, Shared, INPUTS_PER_READY_MAX};
use crate::log_events;
use crate::options::NodeOptions;
use crate::storage::{SnapshotPages, Storage};
use crate::transport::{Inbound, Transport};

/// Largest encoded write command, in bytes: it must fit one WAL record and
/// one peer frame with room to spare (checked where the frame limit is set,
/// in `crate::node`).
pub const COMMAND_BYTES_MAX: usize = 32 * 1024 * 1024;
/// How long a graceful stop waits for leadership to move, in milliseconds.
pub const TRANSFER_WAIT_MS: u64 = 1_000;

/// What the driver takes over from the composition root.
pub(crate) struct DriverParts {
    /// The core, already restored from storage.
    pub raw: RawNode,
    /// The opened storage; the driver moves it to the WAL thread.
    pub storage: Storage,
    pub transport: Transport,
    /// Messages and link events from the peers.
    pub inbound: mpsc::Receiver<Inbound>,
    /// What the driver shares with the `NodeHandle`s.
    pub shared: Arc<Shared>,
    /// Client requests sent through `shared`.
    pub requests: mpsc::Receiver<Request>,
    /// Term of the last applied entry (the restored snapshot's).
    pub applied_term: u64,
    /// The mapping of the restored snapshot file, if any.
    pub snapshot_pages: Option<SnapshotPages>,
}

/// Runs the driver until `shutdown` is cancelled (a leader first hands
/// leadership over) or storage fails.
pub(crate) async fn run_driver(
    options: &NodeOptions,
    parts: DriverParts,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let id = options.id;
    let recorded_hard_state = parts.storage.hard_state();
    let snapshot_index = parts.storage.snapshot_index();
    let (persister, reports) = Persister::start(parts.storage, id)?;
    let (compaction, written) = Compaction::new(
        options.snapshot_entries_threshold,
        options.data_dir.clone(),
        parts.snapshot_pages,
        snapshot_index,
    );
    let mut driver = Driver {
        id,
        client_addr: options.client.to_string(),
        tick_ms: options.tick_interval_ms,
        raw: parts.raw,
        persister,
        recorded_hard_state,
        compaction,
        published: None,
        published_contact: None,
        transport: parts.transport,
        shared: parts.shared,
        writes: PendingWrites::default(),
        reads: PendingReads::default(),
        applied_term: parts.applied_term,
        last_role: Role::Follower,
        last_leader: 0,
        leader_contact: None,
    };
    let inputs = Inputs {
        inbound: parts.inbound,
        requests: parts.requests,
        reports,
        written,
    };
    driver.run(inputs, shutdown).await
}

/// Hands memory freed in bulk back to the OS now. mimalloc purges freed
/// segments lazily, on later allocations, so the ~state-sized buffer a
/// snapshot from the leader arrived in would otherwise stay resident on a
/// node that then idles.
fn return_freed_memory() {
    #[cfg(feature = "mimalloc")]
    {
        extern "C" {
            /// mimalloc's public API (mimalloc.h), linked in with the allocator.
            fn mi_collect(force: bool);
        }
        // SAFETY: a plain call into the allocator, allowed on any thread at
        // any time; it only frees what is unused.
        unsafe { mi_collect(true) }
    }
}

/// The one owner of the core: its state, the WAL thread's handle, the
/// peer links and the clients waiting for answers.
struct Driver {
    id: NodeId,
    /// This node's advertised RESP address (shown as leader_client_addr when leading).
    client_addr: String,
    tick_ms: u64,
    raw: RawNode,
    /// Owns the storage on the WAL thread.
    persister: Persister,
    /// The hard state last handed to the persister (its term and vote are
    /// durable: a change of either is always fsynced).
    recorded_hard_state: HardState,
    /// Own snapshots: when to take one, and the snapshot file mappings.
    compaction: Compaction,
    /// What `publish_status` last published, to skip unchanged turns.
    published: Option<StatusKey>,
    /// The last leader contact handed to the status readers.
    published_contact: Option<Instant>,
    transport: Transport,
    shared: Arc<Shared>,
    writes: PendingWrites,
    reads: PendingReads,
    /// Term of the last applied entry (for snapshot metadata).
    applied_term: u64,
    last_role: Role,
    last_leader: NodeId,
    leader_contact: Option<Instant>,
}

impl Driver {
    async fn run(&mut self, mut inputs: Inputs, shutdown: CancellationToken) -> Result<(), String> {
        let mut ticker = tokio::time::interval(Duration::from_millis(self.tick_ms));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut transfer_deadline: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled(), if transfer_deadline.is_none() => {
                    if self.raw.status().role == Role::Leader && self.begin_transfer() {
                        transfer_deadline = Some(tokio::time::Instant::now() + Duration::from_millis(TRANSFER_WAIT_MS));
                    } else {
                        break;
                    }
                }
                report = inputs.reports.recv() => {
                    let report = report.ok_or_else(|| format!("node {}: the WAL thread stopped", self.id))?;
                    self.on_report(report)?;
                }
                _ = ticker.tick() => {
                    self.raw.tick();
                    if let Some(deadline) = transfer_deadline {
                        if self.raw.status().role != Role::Leader || tokio::time::Instant::now() >= deadline {
                            break;
                        }
                    }
                }
                Some(written) = inputs.written.recv() => self.save_own_snapshot(written),
                Some(input) = inputs.inbound.recv() => {
                    self.issue_open_reads();
                    self.handle_inbound(input);
                }
                Some(request) = inputs.requests.recv() => self.handle_request(request),
            }
            // Whatever else is already queued shares this turn's Ready:
            // acks that advance the commit index and new proposals go out
            // together, and their entries reach the WAL as one job.
            self.drain_queued(&mut inputs)?;
            while self.raw.has_ready() && self.persister.has_room() {
                let ready = self.raw.ready();
                self.handle_ready(ready, &mut inputs).await?;
            }
            self.publish_status();
        }
        // Writes and fsyncs everything handed over, then ends the thread.
        self.persister.stop();
        info!(event = log_events::STOPPED, id = self.id);
        Ok(())
    }

    /// Handles what is already queued, without waiting: WAL reports first
    /// (they release acks and let the leader count its own copy), the
    /// waiting reads (before the acks that may start the next heartbeat
    /// round), then up to `INPUTS_PER_READY_MAX` peer messages (their acks
    /// free the in-flight window new proposals go through), then as many
    /// requests.
    fn drain_queued(&mut self, inputs: &mut Inputs) -> Result<(), String> {
        while let Ok(report) = inputs.reports.try_recv() {
            self.on_report(report)?;
        }
        self.issue_open_reads();
        for _ in 0..INPUTS_PER_READY_MAX {
            match inputs.inbound.try_recv() {
                Ok(input) => self.handle_inbound(input),
                Err(_) => break,
            }
        }
        for _ in 0..INPUTS_PER_READY_MAX {
            match inputs.requests.try_recv() {
                Ok(request) => self.handle_request(request),
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// Graceful stop on the leader: hand leadership to the most caught-up peer.
    fn begin_transfer(&mut self) -> bool {
        let status = self.raw.status();
        let Some((target, _)) = status.match_index.iter().max_by_key(|(_, m)| *m).copied() else {
            return false;
        };
        match self.raw.transfer_leadership(target) {
            Ok(()) => {
                info!(event = log_events::GRACEFUL_STOP, transfer_to = target);
                true
            }
            Err(_) => false,
        }
    }

    fn handle_inbound(&mut self, input: Inbound) {
        match input {
            Inbound::Message(message) => {
                let status_leader = self.last_leader;
                if message.from == status_leader {
                    self.leader_contact = Some(Instant::now());
                }
                if let Err(e) = self.raw.step(message) {
                    warn!(event = log_events::PEER_MESSAGE_REFUSED, reason = %e);
                }
            }
            Inbound::PeerUp {
                id,
                incarnation,
                client_addr,
            } => {
                info!(
                    event = log_events::PEER_UP,
                    peer = id,
                    incarnation = format!("{incarnation:016x}"),
                    client_addr = client_addr.as_str()
                );
                // The peer may have restarted with less than it
                // acknowledged (a wiped data dir): a leader probes it again.
                self.raw.peer_reconnected(id);
            }
            Inbound::PeerDown { id, reason } => {
                let silence_ms = self
                    .leader_contact
                    .map(|at| at.elapsed().as_millis() as u64);
                if id == self.last_leader && self.last_role != Role::Leader {
                    info!(
                        event = log_events::LEADER_LOST,
                        leader = id,
                        silence_ms,
                        reason = reason.as_str(),
                        term = self.raw.status().term
                    );
                } else {
                    info!(
                        event = log_events::PEER_DOWN,
                        peer = id,
                        reason = reason.as_str()
                    );
                }
            }
        }
    }

    fn handle_request(&mut self, request: Request) {
        match request {
            Request::Write { command, reply } => {
                let encoded = super::encode_command(&command);
                if encoded.len() > COMMAND_BYTES_MAX {
                    let _ = reply.send(Err(WriteError::Refused(format!(
                        "command of {} bytes exceeds the {COMMAND_BYTES_MAX}-byte limit for one write; not applied",
                        encoded.len()
                    ))));
                    return;
                }
                self.propose(encoded, reply)
            }
            Request::Read { batch } => {
                self.shared.read_gate.close(&batch.0);
                self.issue_read(batch.0.clone());
            }
        }
    }

    /// Issues one ReadIndex for the reads that joined the open batch, so
    /// they ride the next heartbeat round (called before peer acks are
    /// stepped: an ack that confirms a round starts the next one at once).
    fn issue_open_reads(&mut self) {
        if let Some(batch) = self.shared.read_gate.take_open() {
            self.issue_read(batch);
        }
    }

    fn issue_read(&mut self, batch: Arc<super::ReadBatch>) {
        if !batch.mark_issued() {
            return;
        }
        let context = self.reads.register(batch);
        if let Err(e) = self.raw.read_index(context) {
            if let Some(batch) = self.reads.unregister(context) {
                batch.complete(Err(self.read_refusal(e)));
            }
        }
    }

    fn propose(
        &mut self,
        encoded: bytes::Bytes,
        reply: tokio::sync::oneshot::Sender<Result<Reply, WriteError>>,
    ) {
        match self.raw.propose(encoded) {
            Ok((term, index)) => self.writes.insert(term, index, reply),
            Err(e) => {
                let _ = reply.send(Err(self.write_refusal(e)));
            }
        }
    }

    fn leader_client_addr(&self, leader: NodeId) -> Option<String> {
        if leader == 0 {
            None
        } else {
            self.transport.peer_client_addr(leader)
        }
    }

    fn write_refusal(&self, error: ProposeError) -> WriteError {
        match error {
            ProposeError::NotLeader { leader } if leader != 0 => WriteError::NotLeader {
                leader_client_addr: self.leader_client_addr(leader),
            },
            ProposeError::NotLeader { .. } => WriteError::NoLeader,
            other => WriteError::Refused(other.to_string()),
        }
    }

    fn read_refusal(&self, error: ProposeError) -> ReadError {
        match error {
            ProposeError::NotLeader { leader } if leader != 0 => ReadError::NotLeader {
                leader_client_addr: self.leader_client_addr(leader),
            },
            ProposeError::NotLeader { .. } => ReadError::NoLeader,
            other => ReadError::Refused(other.to_string()),
        }
    }

    /// Send, apply, hand over for persisting, acknowledge. Messages that
    /// promise durability leave only once the WAL thread reports their job
    /// durable (`on_report`); everything else goes on meanwhile.
    async fn handle_ready(&mut self, mut ready: Ready, inputs: &mut Inputs) -> Result<(), String> {
        let ack = ready.ack();
        let had_leader = self.last_leader != 0;
        for event in &ready.events {
            log_event(event, self.tick_ms, had_leader);
        }
        // Appends that only carry the commit index wait until the clients
        // they answer have been: on this thread, tasks run in wake-up order.
        let (commit_only, messages): (Vec<Message>, Vec<Message>) = ready
            .messages
            .drain(..)
            .partition(|message| matches!(&message.body, Body::Append { entries, .. } if entries.is_empty()));
        let sent_entries = !messages.is_empty();
        for message in messages {
            self.send(message);
        }
        if sent_entries && (!ready.entries.is_empty() || !ready.committed_entries.is_empty()) {
            // The peer links run on this thread: let them put the appends on
            // the wire before this turn wakes the WAL thread or applies, so
            // followers start their fsync first (each is on a write's
            // critical path; this node's own fsync usually is not). With
            // nothing to write or apply (a follower answering a heartbeat)
            // the messages leave as soon as this turn ends anyway.
            tokio::task::yield_now().await;
        }
        if ready.snapshot.is_some() {
            for message in commit_only {
                self.send(message);
            }
            // The store is about to be replaced outside `apply`: the
            // published status keeps the digest of the state it shows.
            self.shared.status.lock().refresh_digest(&self.shared.store);
            return self.handle_snapshot_ready(ready, ack, inputs).await;
        }
        // Committed entries are durable on a majority (the leader counts its
        // own copy only once the WAL thread reported it), so applying them
        // and answering their clients need not wait for this Ready's writes.
        let applied = self.apply_and_answer(&ready);
        for message in commit_only {
            self.send(message);
        }
        let persisted_last = self.hand_to_wal(&mut ready)?;
        self.raw.advance(ReadyAck {
            persisted_last,
            snapshot_index: None,
            applied,
        });
        self.after_advance();
        Ok(())
    }

    /// Hands the Ready's entries, hard state and held-back messages to the
    /// WAL thread as one job. Returns the (index, term) of the last entry
    /// made durable now (a follower writing inline), after sending the
    /// messages that waited for it; None when the job is queued.
    fn hand_to_wal(&mut self, ready: &mut Ready) -> Result<Option<(u64, u64)>, String> {
        let sync = !ready.entries.is_empty() || self.hard_state_needs_sync(ready);
        if let Some(hard_state) = ready.hard_state {
            self.recorded_hard_state = hard_state;
        }
        // A leader keeps serving while its disk works; a follower with an
        // idle WAL thread writes inline (see the persister's docs).
        let inline = self.last_role != Role::Leader;
        let durable = self
            .persister
            .write(
                std::mem::take(&mut ready.entries),
                ready.hard_state,
                sync,
                std::mem::take(&mut ready.persisted_messages),
                inline,
            )
            .map_err(|e| format!("node {}: {e}", self.id))?;
        let Some(durable) = durable else {
            return Ok(None);
        };
        for message in durable.messages {
            self.send(message);
        }
        Ok(durable.persisted_last)
    }

    /// Term and vote must be durable before the messages that depend on
    /// them leave. A commit index alone need not be (as in etcd's MustSync):
    /// it only covers entries already handed to the WAL thread ahead of it,
    /// and a node that loses it in a crash learns it again from the leader.
    fn hard_state_needs_sync(&self, ready: &Ready) -> bool {
        ready.hard_state.is_some_and(|hard_state| {
            hard_state.term != self.recorded_hard_state.term
                || hard_state.vote != self.recorded_hard_state.vote
        })
    }

    /// A snapshot from the leader (rare): everything queued before it is
    /// made durable first, then the snapshot with what follows it, and only
    /// then is the state machine replaced.
    async fn handle_snapshot_ready(
        &mut self,
        mut ready: Ready,
        ack: ReadyAck,
        inputs: &mut Inputs,
    ) -> Result<(), String> {
        let snapshot = ready.snapshot.take().expect("checked by the caller");
        let reports = &mut inputs.reports;
        self.wait_until_durable(reports).await?;
        if let Some(hard_state) = ready.hard_state {
            self.recorded_hard_state = hard_state;
        }
        self.compaction.leader_snapshot_queued(snapshot.meta.index);
        let (index, snapshot_term) = (snapshot.meta.index, snapshot.meta.term);
        // The WAL thread writes the snapshot while a blocking thread builds
        // the new state machine from it; the state is replaced once both are
        // done. (A snapshot that does not load stops the node either way:
        // it is the cluster's committed state, there is no other to take.)
        let data = snapshot.data.clone();
        self.persister.install_snapshot(
            snapshot,
            std::mem::take(&mut ready.entries),
            ready.hard_state,
            std::mem::take(&mut ready.persisted_messages),
        );
        let started = Instant::now();
        let restored = tokio::task::spawn_blocking(move || KvStore::restore(&data))
            .await
            .map_err(|e| format!("node {}: restoring the snapshot failed: {e}", self.id))?
            .map_err(|e| {
                format!(
                    "node {}: snapshot from the leader does not load: {e}",
                    self.id
                )
            })?;
        let restore_ms = started.elapsed().as_millis() as u64;
        self.wait_until_durable(reports).await?;
        self.compaction
            .map_leader_snapshot(&mut self.raw, index, snapshot_term);
        // The received copy (as large as the state) is free now.
        return_freed_memory();
        info!(
            event = log_events::SNAPSHOT_RESTORED,
            index,
            keys = restored.len(),
            restore_ms,
            elapsed_ms = started.elapsed().as_millis() as u64
        );
        let replaced = std::mem::replace(&mut *self.shared.store.write(), restored);
        // Freeing a large map takes a while: not on the Ready loop.
        tokio::task::spawn_blocking(move || drop(replaced));
        self.applied_term = snapshot_term;
        let applied = self.apply_and_answer(&ready);
        self.raw.advance(ReadyAck {
            persisted_last: None,
            snapshot_index: ack.snapshot_index,
            applied,
        });
        self.after_advance();
        Ok(())
    }

    /// Waits until every job handed to the WAL thread is durable.
    async fn wait_until_durable(
        &mut self,
        reports: &mut mpsc::Receiver<Report>,
    ) -> Result<(), String> {
        while !self.persister.is_idle() {
            let report = reports
                .recv()
                .await
                .ok_or_else(|| format!("node {}: the WAL thread stopped", self.id))?;
            self.on_report(report)?;
        }
        Ok(())
    }

    /// Jobs became durable: send what they held back, let the core count
    /// the entries, and finish a compaction whose snapshot was saved.
    fn on_report(&mut self, report: Report) -> Result<(), String> {
        let durable = self
            .persister
            .complete(report)
            .map_err(|e| format!("node {}: {e}", self.id))?;
        for message in durable.messages {
            self.send(message);
        }
        if durable.persisted_last.is_some() {
            self.raw.advance(ReadyAck {
                persisted_last: durable.persisted_last,
                snapshot_index: None,
                applied: None,
            });
        }
        if let Some((index, data)) = durable.snapshot_saved {
            self.compaction.finish(&mut self.raw, index, data);
        }
        Ok(())
    }

    fn after_advance(&mut self) {
        let status = self.raw.status();
        self.reads.applied_through(status.applied_index);
        self.track_role(status.role, status.leader_id);
        self.compaction.maybe_start(
            &self.raw,
            &self.shared.store,
            status.applied_index,
            self.applied_term,
            status.snapshot_index,
        );
    }

    /// Applies the Ready's committed entries (answering their writers) and
    /// answers the reads it confirmed or dropped. Returns the last entry
    /// applied.
    fn apply_and_answer(&mut self, ready: &Ready) -> Option<u64> {
        let applied = self.apply(&ready.committed_entries);
        let applied_index = self.raw.status().applied_index.max(applied.unwrap_or(0));
        for read in &ready.read_states {
            self.reads
                .confirmed(read.context, read.index, applied_index);
        }
        for context in &ready.dropped_reads {
            self.reads.dropped(*context);
        }
        applied
    }

    /// Applies committed entries in order; returns the last index applied.
    /// The published applied index moves in the same critical section, so a
    /// status reader computing the digest sees the state it names (see
    /// `PublishedStatus`).
    fn apply(&mut self, entries: &[Entry]) -> Option<u64> {
        let last = entries.last()?.index;
        let mut published = self.shared.status.lock();
        let mut store = self.shared.store.write();
        for entry in entries {
            self.applied_term = entry.term;
            let reply = match entry.kind {
                EntryKind::Noop | EntryKind::Registry | EntryKind::Config => None,
                EntryKind::Normal => Some(match Command::decode(&entry.data) {
                    Ok(command) => store.apply(&command),
                    Err(e) => {
                        warn!(event = log_events::BAD_ENTRY, index = entry.index, reason = %e);
                        Reply::Error(format!("ERR entry {} is not a raftkv command", entry.index))
                    }
                }),
            };
            self.writes.applied(entry.index, entry.term, reply);
        }
        drop(store);
        let shown = &mut published.status;
        shown.applied_index = last;
        shown.commit_index = shown.commit_index.max(last);
        shown.last_index = shown.last_index.max(last);
        Some(last)
    }

    fn track_role(&mut self, role: Role, leader: NodeId) {
        if self.last_role == Role::Leader && role != Role::Leader {
            self.writes.leadership_lost();
            self.reads.leadership_lost();
        }
        if leader != self.last_leader && leader != 0 && leader != self.id {
            self.leader_contact = Some(Instant::now());
        }
        self.last_role = role;
        self.last_leader = leader;
    }

    /// The snapshot task wrote its file: the WAL thread puts it in place
    /// behind the writes handed over before it (see `Compaction::written`).
    fn save_own_snapshot(&mut self, written: Written) {
        if let Some(prepared) = self.compaction.written(written) {
            self.persister.save_prepared_snapshot(prepared);
        }
    }

    fn send(&self, message: Message) {
        self.transport.send(message);
    }

    /// Publishes the status for RAFT.STATUS when something it shows
    /// changed. The digest and key count are computed only when a reader
    /// asks (`PublishedStatus::refresh_digest`).
    fn publish_status(&mut self) {
        let status = self.raw.status();
        let key = self.status_key(&status);
        let contact = if status.role == Role::Leader {
            None
        } else {
            self.leader_contact
        };
        if self.published.as_ref() == Some(&key) {
            // Heartbeats move the leader contact without changing anything
            // else: RAFT.STATUS's leader_contact_ms must still restart.
            if contact != self.published_contact {
                self.shared.status.lock().leader_contact = contact;
                self.published_contact = contact;
            }
            return;
        }
        let first_publish = self.published.is_none();
        let mut published = self.shared.status.lock();
        let next = self.shown_status(status, &mut published.status);
        self.published = Some(key);
        published.status = next;
        if first_publish {
            published.digest_applied = None;
        }
        published.leader_contact = contact;
        self.published_contact = contact;
    }

    /// What of `status` the published status shows (see `StatusKey`).
    fn status_key(&self, status: &Status) -> StatusKey {
        StatusKey {
            role: status.role,
            term: status.term,
            leader_id: status.leader_id,
            commit_index: status.commit_index,
            applied_index: status.applied_index,
            first_index: status.first_index,
            last_index: status.last_index,
            snapshot_index: status.snapshot_index,
            match_index: status.match_index.clone(),
            leader_known: self.leader_client_addr(status.leader_id).is_some(),
            registered: status.registered,
            strangers: status.strangers.clone(),
        }
    }

    /// The RAFT.STATUS record for the core's `status`. The key count and
    /// the digest are carried over from `previous`, and the leader contact
    /// and uptime left at 0: all four are computed when a reader asks.
    fn shown_status(&self, status: Status, previous: &mut NodeStatus) -> NodeStatus {
        NodeStatus {
            id: self.id,
            role: status.role.as_str(),
            term: status.term,
            leader_id: status.leader_id,
            leader_client_addr: if status.leader_id == self.id {
                self.client_addr.clone()
            } else {
                self.leader_client_addr(status.leader_id)
                    .unwrap_or_default()
            },
            commit_index: status.commit_index,
            applied_index: status.applied_index,
            first_index: status.first_index,
            last_index: status.last_index,
            snapshot_index: status.snapshot_index,
            keys: previous.keys,
            digest: std::mem::take(&mut previous.digest),
            leader_contact_ms: 0,
            match_index: status.match_index,
            incarnation: incarnation_text(status.incarnation),
            registered: status.registered,
            strangers: status.strangers,
            pid: std::process::id(),
            uptime_ms: 0,
        }
    }
}

/// The driver's input queues.
struct Inputs {
    inbound: mpsc::Receiver<Inbound>,
    requests: mpsc::Receiver<Request>,
    reports: mpsc::Receiver<Report>,
    /// Own snapshot files the compaction task wrote.
    written: mpsc::Receiver<Written>,
}

/// The parts of the published status that change; equal keys mean an
/// unchanged status (leader contact and uptime are computed when read).
#[derive(Clone, Debug, PartialEq, Eq)]
struct StatusKey {
    role: Role,
    term: u64,
    leader_id: NodeId,
    commit_index: u64,
    applied_index: u64,
    first_index: u64,
    last_index: u64,
    snapshot_index: u64,
    match_index: Vec<(NodeId, u64)>,
    leader_known: bool,
    registered: bool,
    strangers: Vec<NodeId>,
}
