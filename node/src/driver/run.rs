//! `run_node`: opens storage, starts transport and the RESP server, and runs
//! the Ready loop until SIGTERM/SIGINT (graceful: leadership is handed over
//! first) or a fatal storage error.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use raftkv::kv::{Command, KvStore, Reply};
use raftkv::message::{Body, Entry, EntryKind, Message, NodeId};
use raftkv::raft::{Config, HardState, ProposeError, RawNode, Ready, ReadyAck, Role};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::compaction::{Compaction, Written};
use super::events::log_event;
use super::handle::{NodeHandle, NodeStatus, ReadError, WriteError};
use super::persister::{Persister, Report};
use super::{
    PendingReads, PendingWrites, PublishedStatus, Request, Shared, INPUTS_PER_READY_MAX,
    REQUEST_QUEUE_MAX,
};
use crate::options::NodeOptions;
use crate::storage::{Identity, Storage};
use crate::transport::{Inbound, Transport, TransportConfig};

/// Bound on peer inputs queued for the driver.
pub const INBOUND_QUEUE_MAX: usize = 65_536;
/// Largest peer frame accepted, in bytes (a snapshot chunk plus headroom).
pub const PEER_FRAME_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Messages queued per peer before new ones are dropped.
pub const PEER_SEND_QUEUE_MAX: usize = 16_384;
/// Longest wait between reconnect attempts to a peer, in milliseconds.
pub const PEER_RECONNECT_BACKOFF_MAX_MS: u64 = 250;
/// Largest encoded write command, in bytes: it must fit one WAL record and
/// one peer frame with room to spare.
pub const COMMAND_BYTES_MAX: usize = 32 * 1024 * 1024;
const _: () = assert!(COMMAND_BYTES_MAX < PEER_FRAME_BYTES_MAX);
/// Bytes of snapshot per InstallSnapshot chunk (one chunk is in flight per
/// follower, so this sets the round trips a transfer takes).
pub const SNAPSHOT_CHUNK_BYTES_MAX: usize = 8 * 1024 * 1024;
const _: () = assert!(SNAPSHOT_CHUNK_BYTES_MAX + 1024 * 1024 < PEER_FRAME_BYTES_MAX);
/// How long a graceful stop waits for leadership to move, in milliseconds.
pub const TRANSFER_WAIT_MS: u64 = 1_000;

/// Runs one node until it is told to stop. Errors are returned as text for
/// the command line to print.
pub async fn run_node(options: NodeOptions) -> Result<(), String> {
    std::fs::create_dir_all(&options.log_dir)
        .map_err(|e| format!("cannot create log dir {}: {e}", options.log_dir.display()))?;
    let _log_guard = init_logging(&options.log_dir, options.id)?;
    let result = run(options).await;
    if let Err(message) = &result {
        error!(event = "fatal", message = message.as_str());
    }
    result
}

fn init_logging(
    log_dir: &Path,
    id: u64,
) -> Result<tracing_appender::non_blocking::WorkerGuard, String> {
    let appender = tracing_appender::rolling::never(log_dir, format!("node-{id}.log"));
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(writer)
        .with_max_level(tracing::Level::INFO)
        .with_current_span(false)
        .finish();
    // A second node in one process (tests) keeps the first subscriber.
    let _ = tracing::subscriber::set_global_default(subscriber);
    Ok(guard)
}

fn raft_config(options: &NodeOptions) -> Config {
    let mut config = Config::new(options.id, options.cluster.0.iter().map(|p| p.id).collect());
    config.heartbeat_ticks = options.heartbeat_ticks;
    config.election_ticks_min = options.election_ticks_min;
    config.election_ticks_max = options.election_ticks_max;
    config.snapshot_chunk_bytes_max = SNAPSHOT_CHUNK_BYTES_MAX;
    config
}

async fn run(options: NodeOptions) -> Result<(), String> {
    let id = options.id;
    let config = raft_config(&options);
    config.validate().map_err(|e| format!("node {id}: {e}"))?;
    let me = options
        .cluster
        .0
        .iter()
        .find(|p| p.id == id)
        .ok_or_else(|| format!("node {id}: --cluster does not list this node's id"))?;
    if me.peer_addr.port() != options.peer.port() {
        warn!(
            event = "config_warning",
            message = "--peer port differs from this node's --cluster entry"
        );
    }

    let (storage, initial, summary) =
        Storage::open(&options.data_dir).map_err(|e| format!("node {id}: {e}"))?;
    let identity = Identity::load_or_create(&options.data_dir, id, &options.cluster_id)
        .map_err(|e| format!("node {id}: {e}"))?;
    info!(event = "recovery", summary = %summary, snapshot_index = summary.snapshot_index,
        last_index = summary.last_index, term = summary.hard_state.term, torn_tail_bytes = summary.torn_tail_bytes,
        incarnation = identity.incarnation_hex(), new_incarnation = identity.created);
    if identity.created && summary.last_index == 0 && summary.hard_state.term == 0 {
        // Either a brand-new cluster or a node that lost its disk: the
        // cluster tells which (see raftkv::raft::registry).
        info!(
            event = "identity_created",
            incarnation = identity.incarnation_hex(),
            message = "empty data dir: this node is a new incarnation; a cluster that knew an \
                       earlier one counts it as a voter only after re-admitting it"
        );
    }
    let mut config = config;
    config.incarnation = identity.incarnation;
    let mut store = KvStore::new();
    let mut applied_term = 0;
    let mut initial = initial;
    let mut snapshot_pages = None;
    if let Some(snapshot) = &mut initial.snapshot {
        // Streamed from the file (already checked by `Storage::open`): the
        // image is never held in memory next to the map built from it. The
        // core keeps the file's mapping to send to followers.
        let (index, term) = (snapshot.meta.index, snapshot.meta.term);
        let (data, pages) = crate::storage::map_snapshot(&options.data_dir, index, term)
            .map_err(|e| format!("node {id}: {e}"))?;
        snapshot.data = data;
        snapshot_pages = Some(pages);
        let reader = crate::storage::snapshot_data_reader(&options.data_dir, index, term)
            .map_err(|e| format!("node {id}: {e}"))?;
        let started = Instant::now();
        store = KvStore::restore_from(reader).map_err(|e| {
            format!(
                "node {id}: snapshot in {} does not load: {e}",
                options.data_dir.display()
            )
        })?;
        info!(
            event = "snapshot_restored",
            index,
            keys = store.len(),
            elapsed_ms = started.elapsed().as_millis() as u64
        );
        applied_term = term;
    }
    let seed = seed_from_clock(id);
    let raw = RawNode::new(config, initial, seed).map_err(|e| format!("node {id}: {e}"))?;

    let shutdown = CancellationToken::new();
    let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE_MAX);
    let transport = Transport::start(
        TransportConfig {
            id,
            listen: options.peer,
            peers: options.cluster.0.clone(),
            cluster_id: options.cluster_id.clone(),
            incarnation: identity.incarnation,
            client_addr: options.client.to_string(),
            frame_bytes_max: PEER_FRAME_BYTES_MAX,
            send_queue_max: PEER_SEND_QUEUE_MAX,
            reconnect_backoff_max_ms: PEER_RECONNECT_BACKOFF_MAX_MS,
        },
        inbound_tx,
        shutdown.clone(),
    )
    .await
    .map_err(|e| {
        format!(
            "node {id}: cannot listen for peers on {}: {e}",
            options.peer
        )
    })?;

    let (requests_tx, requests_rx) = mpsc::channel(REQUEST_QUEUE_MAX);
    let shared = Arc::new(Shared {
        store: Arc::new(RwLock::new(store)),
        requests: requests_tx,
        status: Mutex::new(PublishedStatus {
            started: Some(Instant::now()),
            // Empty until the first publish (the store may already hold a
            // snapshot's state while the status still shows index 0).
            digest_applied: Some(0),
            ..Default::default()
        }),
        read_gate: super::ReadGate::default(),
    });
    let handle = NodeHandle {
        inner: shared.clone(),
    };

    let listener = tokio::net::TcpListener::bind(options.client)
        .await
        .map_err(|e| {
            format!(
                "node {id}: cannot listen for clients on {}: {e}",
                options.client
            )
        })?;
    let limits = crate::resp::Limits {
        bulk_bytes_max: options.bulk_bytes_max,
        arguments_max: options.arguments_max,
        connections_max: options.connections_max,
        ..Default::default()
    };
    let server_shutdown = shutdown.clone();
    let server = tokio::spawn(crate::resp::serve(
        listener,
        handle.clone(),
        limits,
        async move { server_shutdown.cancelled().await },
    ));
    info!(event = "started", id, client = %options.client, peer = %options.peer, pid = std::process::id());

    let stop = shutdown.clone();
    tokio::spawn(async move {
        wait_for_stop_signal().await;
        stop.cancel();
    });

    let recorded_hard_state = storage.hard_state();
    let snapshot_index = storage.snapshot_index();
    let (persister, reports) = Persister::start(storage, id)?;
    let (compaction, written) = Compaction::new(
        options.snapshot_entries_threshold,
        options.cluster.0.iter().map(|p| p.id).collect(),
        options.data_dir.clone(),
        snapshot_pages,
        snapshot_index,
    );
    let mut driver = Driver {
        id,
        client_addr: options.client.to_string(),
        tick_ms: options.tick_interval_ms,
        raw,
        persister,
        recorded_hard_state,
        compaction,
        published: None,
        published_contact: None,
        transport,
        shared: shared.clone(),
        writes: PendingWrites::default(),
        reads: PendingReads::default(),
        applied_term,
        last_role: Role::Follower,
        last_leader: 0,
        leader_contact: None,
    };
    let inputs = Inputs {
        inbound: inbound_rx,
        requests: requests_rx,
        reports,
        written,
    };
    let result = driver.run(inputs, shutdown.clone()).await;
    shutdown.cancel();
    let _ = server.await;
    result
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

fn seed_from_clock(id: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ id.rotate_left(32) ^ u64::from(std::process::id())
}

async fn wait_for_stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

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
        info!(event = "stopped", id = self.id);
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
                info!(event = "graceful_stop", transfer_to = target);
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
                    warn!(event = "peer_message_refused", reason = %e);
                }
            }
            Inbound::PeerUp {
                id,
                incarnation,
                client_addr,
            } => {
                info!(
                    event = "peer_up",
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
                        event = "leader_lost",
                        leader = id,
                        silence_ms,
                        reason = reason.as_str(),
                        term = self.raw.status().term
                    );
                } else {
                    info!(event = "peer_down", peer = id, reason = reason.as_str());
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
        let sync = !ready.entries.is_empty() || self.hard_state_needs_sync(&ready);
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
        let mut persisted_last = None;
        if let Some(durable) = durable {
            for message in durable.messages {
                self.send(message);
            }
            persisted_last = durable.persisted_last;
        }
        self.raw.advance(ReadyAck {
            persisted_last,
            snapshot_index: None,
            applied,
        });
        self.after_advance();
        Ok(())
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
            event = "snapshot_restored",
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
                EntryKind::Noop | EntryKind::Registry => None,
                EntryKind::Normal => Some(match Command::decode(&entry.data) {
                    Ok(command) => store.apply(&command),
                    Err(e) => {
                        warn!(event = "bad_entry", index = entry.index, reason = %e);
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
        let key = StatusKey {
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
        };
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
        let next = NodeStatus {
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
            keys: published.status.keys,
            digest: std::mem::take(&mut published.status.digest),
            leader_contact_ms: 0,
            match_index: status.match_index,
            incarnation: format!("{:016x}", status.incarnation),
            registered: status.registered,
            strangers: status.strangers,
            pid: std::process::id(),
            uptime_ms: 0,
        };
        self.published = Some(key);
        published.status = next;
        if first_publish {
            published.digest_applied = None;
        }
        published.leader_contact = contact;
        self.published_contact = contact;
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
