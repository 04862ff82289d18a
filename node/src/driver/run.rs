//! `run_node`: opens storage, starts transport and the RESP server, and runs
//! the Ready loop until SIGTERM/SIGINT (graceful: leadership is handed over
//! first) or a fatal storage error.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use raftkv::kv::{Command, KvStore, Reply};
use raftkv::message::{EntryKind, Message, NodeId, SnapshotMeta};
use raftkv::raft::{Config, ProposeError, RawNode, Ready, Role};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::events::log_event;
use super::{
    PendingReads, PendingWrites, PublishedStatus, Request, Shared, INPUTS_PER_READY_MAX,
    REQUEST_QUEUE_MAX,
};
use crate::handle::{NodeHandle, NodeStatus, ReadError, WriteError};
use crate::options::NodeOptions;
use crate::storage::{Storage, StorageError};
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
    info!(event = "recovery", summary = %summary, snapshot_index = summary.snapshot_index,
        last_index = summary.last_index, term = summary.hard_state.term, torn_tail_bytes = summary.torn_tail_bytes);
    let mut store = KvStore::new();
    let mut applied_term = 0;
    if let Some(snapshot) = &initial.snapshot {
        store = KvStore::restore(&snapshot.data).map_err(|e| {
            format!(
                "node {id}: snapshot in {} does not load: {e}",
                options.data_dir.display()
            )
        })?;
        applied_term = snapshot.meta.term;
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
            ..Default::default()
        }),
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

    let mut driver = Driver {
        id,
        voters: options.cluster.0.iter().map(|p| p.id).collect(),
        client_addr: options.client.to_string(),
        tick_ms: options.tick_interval_ms,
        snapshot_entries_threshold: options.snapshot_entries_threshold,
        raw,
        storage,
        transport,
        shared: shared.clone(),
        writes: PendingWrites::default(),
        reads: PendingReads::default(),
        applied_term,
        last_role: Role::Follower,
        last_leader: 0,
        leader_contact: None,
    };
    let result = driver.run(inbound_rx, requests_rx, shutdown.clone()).await;
    shutdown.cancel();
    let _ = server.await;
    result
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
    voters: Vec<NodeId>,
    /// This node's advertised RESP address (shown as leader_client_addr when leading).
    client_addr: String,
    tick_ms: u64,
    snapshot_entries_threshold: u64,
    raw: RawNode,
    storage: Storage,
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
    async fn run(
        &mut self,
        mut inbound: mpsc::Receiver<Inbound>,
        mut requests: mpsc::Receiver<Request>,
        shutdown: CancellationToken,
    ) -> Result<(), String> {
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
                _ = ticker.tick() => {
                    self.raw.tick();
                    if let Some(deadline) = transfer_deadline {
                        if self.raw.status().role != Role::Leader || tokio::time::Instant::now() >= deadline {
                            break;
                        }
                    }
                }
                Some(input) = inbound.recv() => {
                    self.handle_inbound(input);
                    for _ in 0..INPUTS_PER_READY_MAX {
                        match inbound.try_recv() {
                            Ok(input) => self.handle_inbound(input),
                            Err(_) => break,
                        }
                    }
                }
                Some(request) = requests.recv() => {
                    self.handle_request(request);
                    for _ in 0..INPUTS_PER_READY_MAX {
                        match requests.try_recv() {
                            Ok(request) => self.handle_request(request),
                            Err(_) => break,
                        }
                    }
                }
            }
            while self.raw.has_ready() {
                let ready = self.raw.ready();
                self.handle_ready(ready)?;
            }
            self.publish_status();
        }
        let _ = self.storage.sync();
        info!(event = "stopped", id = self.id);
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
            Inbound::PeerUp { id, client_addr } => {
                info!(
                    event = "peer_up",
                    peer = id,
                    client_addr = client_addr.as_str()
                );
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
                let encoded = command.encode();
                if encoded.len() > COMMAND_BYTES_MAX {
                    let _ = reply.send(Err(WriteError::Refused(format!(
                        "command of {} bytes exceeds the {COMMAND_BYTES_MAX}-byte limit for one write; not applied",
                        encoded.len()
                    ))));
                    return;
                }
                self.propose(encoded, reply)
            }
            Request::Read { reply } => {
                let context = self.reads.register(reply);
                if let Err(e) = self.raw.read_index(context) {
                    if let Some(reply) = self.reads.unregister(context) {
                        let _ = reply.send(Err(self.read_refusal(e)));
                    }
                }
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

    /// Persist, send, apply, acknowledge: the order of the core's contract.
    fn handle_ready(&mut self, mut ready: Ready) -> Result<(), String> {
        let ack = ready.ack();
        let had_leader = self.last_leader != 0;
        for event in &ready.events {
            log_event(event, self.tick_ms, had_leader);
        }
        for message in ready.messages.drain(..) {
            self.send(message);
        }
        self.persist(&ready)
            .map_err(|e| format!("node {}: {e}", self.id))?;
        for message in ready.persisted_messages.drain(..) {
            self.send(message);
        }
        if let Some(snapshot) = &ready.snapshot {
            let restored = KvStore::restore(&snapshot.data).map_err(|e| {
                format!(
                    "node {}: snapshot from the leader does not load: {e}",
                    self.id
                )
            })?;
            *self.shared.store.write() = restored;
            self.applied_term = snapshot.meta.term;
        }
        self.apply(&ready);
        for read in &ready.read_states {
            let applied = self
                .raw
                .status()
                .applied_index
                .max(ack.applied.unwrap_or(0));
            self.reads.confirmed(read.context, read.index, applied);
        }
        for context in &ready.dropped_reads {
            self.reads.dropped(*context);
        }
        self.raw.advance(ack);
        let status = self.raw.status();
        self.reads.applied_through(status.applied_index);
        self.track_role(status.role, status.leader_id);
        self.maybe_compact(status.applied_index, status.snapshot_index)
    }

    fn persist(&mut self, ready: &Ready) -> Result<(), StorageError> {
        let mut dirty = false;
        if let Some(snapshot) = &ready.snapshot {
            // A snapshot from the leader replaces the durable log unless the
            // log holds its last entry (index and term): then the core keeps
            // the entries after it, and so must the disk.
            let matches = self.storage.entry_term(snapshot.meta.index) == Some(snapshot.meta.term);
            self.storage.save_snapshot(snapshot, !matches)?;
        }
        // Entries before the hard state: a crash that tears this batch must
        // never leave a commit index durable without the entries it covers.
        if !ready.entries.is_empty() {
            self.storage.append(&ready.entries)?;
            dirty = true;
        }
        if let Some(hard_state) = &ready.hard_state {
            self.storage.set_hard_state(hard_state)?;
            dirty = true;
        }
        if dirty {
            tokio::task::block_in_place(|| self.storage.sync())?;
        }
        Ok(())
    }

    fn apply(&mut self, ready: &Ready) {
        if ready.committed_entries.is_empty() {
            return;
        }
        let mut store = self.shared.store.write();
        for entry in &ready.committed_entries {
            self.applied_term = entry.term;
            let reply = match entry.kind {
                EntryKind::Noop => None,
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

    fn maybe_compact(&mut self, applied: u64, snapshot_index: u64) -> Result<(), String> {
        if applied < snapshot_index + self.snapshot_entries_threshold {
            return Ok(());
        }
        let started = Instant::now();
        let data = self.shared.store.read().snapshot();
        let snapshot = raftkv::message::Snapshot {
            meta: SnapshotMeta {
                index: applied,
                term: self.applied_term,
                voters: self.voters.clone(),
            },
            data: data.clone(),
        };
        tokio::task::block_in_place(|| self.storage.save_snapshot(&snapshot, false))
            .map_err(|e| format!("node {}: {e}", self.id))?;
        if let Err(e) = self.raw.compact(applied, data) {
            warn!(event = "compact_refused", reason = %e);
        } else {
            info!(
                event = "log_compacted",
                index = applied,
                bytes = snapshot.data.len(),
                elapsed_ms = started.elapsed().as_millis() as u64
            );
        }
        Ok(())
    }

    fn send(&self, message: Message) {
        self.transport.send(message);
    }

    fn publish_status(&mut self) {
        let status = self.raw.status();
        let store = self.shared.store.read();
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
            keys: store.len(),
            digest: store.digest_hex(),
            leader_contact_ms: 0,
            match_index: status.match_index.clone(),
            pid: std::process::id(),
            uptime_ms: 0,
        };
        drop(store);
        let mut published = self.shared.status.lock();
        published.status = next;
        published.leader_contact = if status.role == Role::Leader {
            None
        } else {
            self.leader_contact
        };
    }
}
