//! The driver's loop: one task that takes inputs (ticks, peer messages,
//! client requests, WAL reports, written snapshots), steps the core with
//! them, and handles each Ready it hands back (send, apply, persist,
//! acknowledge) through the shared Ready pipeline (`raftkv::pipeline`),
//! supplying its I/O (`NodeIo`). The node's parts are opened and started by the
//! composition root (`crate::node`) and handed over in `DriverParts`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use raftkv::kv::{Command, KvStore, Reply};
use raftkv::message::{Entry, EntryKind, Index, Message, NodeId, NO_INCARNATION};
use raftkv::pipeline::{
    Pipeline, PipelineConfig, ReadFailure, ReadyIo, SnapshotTurn, WalJob, WalWrite,
};
use raftkv::raft::membership::Member;
use raftkv::raft::{ConfChange, ConfChangeError, ProposeError, RawNode, Ready, Role, Status};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::compaction::{Compaction, Written};
use super::events::log_event;
use super::handle::{NodeStatus, ReadError, WriteError};
use super::persister::{Persister, Report, PERSIST_JOBS_IN_FLIGHT_MAX};
use super::status::incarnation_text;
use super::status::{MemberView, ROLE_LEARNER, ROLE_VOTER};
use super::{
    refuse_stopped_reads, PeerAddresses, PendingWrites, ReadBatch, Request, Shared,
    INPUTS_PER_READY_MAX,
};
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
    /// Where the peers are reached.
    pub peers: PeerAddresses,
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
    let pipeline = Pipeline::new(
        PipelineConfig {
            jobs_in_flight_max: PERSIST_JOBS_IN_FLIGHT_MAX,
            inline_follower_writes: true,
        },
        recorded_hard_state,
    );
    let mut driver = Driver {
        client_addr: options.client.to_string(),
        tick_ms: options.tick_interval_ms,
        pipeline,
        io: NodeIo {
            id,
            raw: parts.raw,
            persister,
            compaction,
            transport: parts.transport,
            shared: parts.shared,
            writes: PendingWrites::default(),
            applied_term: parts.applied_term,
            last_leader: 0,
            leader_contact: None,
            peers: parts.peers,
            membership_logged: None,
            link_changes: 0,
        },
        published: None,
        published_contact: None,
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

/// The one owner of the core: the Ready pipeline's state and the I/O it
/// runs on.
struct Driver {
    /// This node's advertised RESP address (shown as leader_client_addr when leading).
    client_addr: String,
    tick_ms: u64,
    /// What to do with each Ready and each WAL report (shared with the
    /// simulator).
    pipeline: Pipeline<Arc<ReadBatch>>,
    io: NodeIo,
    /// What `publish_status` last published, to skip unchanged turns.
    published: Option<StatusKey>,
    /// The last leader contact handed to the status readers.
    published_contact: Option<Instant>,
}

/// The pipeline's I/O on this node: the core, the WAL thread, the peer
/// links, the state machine and the clients waiting for answers.
struct NodeIo {
    id: NodeId,
    raw: RawNode,
    /// Owns the storage on the WAL thread.
    persister: Persister,
    /// Own snapshots: when to take one, and the snapshot file mappings.
    compaction: Compaction,
    transport: Transport,
    shared: Arc<Shared>,
    writes: PendingWrites,
    /// Term of the last applied entry (for snapshot metadata).
    applied_term: u64,
    last_leader: NodeId,
    leader_contact: Option<Instant>,
    /// Where the peers are reached; the links follow the configuration.
    peers: PeerAddresses,
    /// The newest configuration last logged (index, members).
    membership_logged: Option<(Index, Vec<Member>)>,
    /// Bumped on every peer link up or down: the status is republished, since
    /// the addresses and the leader's reachability it shows may have changed.
    link_changes: u64,
}

/// A driver that stops (or fails) tells the reads it still held, and its
/// WAL thread writes what was handed over (with a commit index no job
/// carried yet) before it ends.
impl Drop for Driver {
    fn drop(&mut self) {
        refuse_stopped_reads(self.pipeline.take_pending_reads());
        self.io
            .persister
            .stop(self.pipeline.take_unwritten_commit());
    }
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
                    if self.io.raw.status().role == Role::Leader && self.begin_transfer() {
                        transfer_deadline = Some(tokio::time::Instant::now() + Duration::from_millis(TRANSFER_WAIT_MS));
                    } else {
                        break;
                    }
                }
                report = inputs.reports.recv() => {
                    let report = report.ok_or_else(|| format!("node {}: the WAL thread stopped", self.io.id))?;
                    self.on_report(report)?;
                }
                _ = ticker.tick() => {
                    self.io.raw.tick();
                    if let Some(deadline) = transfer_deadline {
                        if self.io.raw.status().role != Role::Leader || tokio::time::Instant::now() >= deadline {
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
            while self.io.raw.has_ready() && self.pipeline.has_room() {
                let ready = self.io.raw.ready();
                self.handle_ready(ready, &mut inputs).await?;
            }
            self.publish_status();
        }
        // Writes and fsyncs everything handed over, then ends the thread.
        self.io
            .persister
            .stop(self.pipeline.take_unwritten_commit());
        info!(event = log_events::STOPPED, id = self.io.id);
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
        let status = self.io.raw.status();
        let Some((target, _)) = status.match_index.iter().max_by_key(|(_, m)| *m).copied() else {
            return false;
        };
        match self.io.raw.transfer_leadership(target) {
            Ok(()) => {
                info!(event = log_events::GRACEFUL_STOP, transfer_to = target);
                true
            }
            Err(_) => false,
        }
    }

    fn handle_inbound(&mut self, input: Inbound) {
        let io = &mut self.io;
        match input {
            Inbound::Message(message) => {
                if message.from == io.last_leader {
                    io.leader_contact = Some(Instant::now());
                }
                if let Err(e) = io.raw.step(message) {
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
                io.raw.peer_reconnected(id);
                io.link_changes += 1;
            }
            Inbound::PeerDown { id, reason } => {
                io.link_changes += 1;
                let silence_ms = io.leader_contact.map(|at| at.elapsed().as_millis() as u64);
                if id == io.last_leader && self.pipeline.last_role() != Role::Leader {
                    info!(
                        event = log_events::LEADER_LOST,
                        leader = id,
                        silence_ms,
                        reason = reason.as_str(),
                        term = io.raw.status().term
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
                self.io.shared.read_gate.close(&batch.0);
                self.issue_read(batch.0.clone());
            }
            Request::ConfChange { change, reply } => self.propose_conf_change(change, reply),
        }
    }

    /// Proposes a membership change; its client is answered when the
    /// configuration entry is applied, like a write.
    fn propose_conf_change(
        &mut self,
        change: ConfChange,
        reply: tokio::sync::oneshot::Sender<Result<Reply, WriteError>>,
    ) {
        let described = format!("{change:?}");
        match self.io.raw.propose_conf_change(change) {
            Ok((term, index)) => {
                info!(
                    event = log_events::CONF_CHANGE_PROPOSED,
                    change = described.as_str(),
                    index,
                    term
                );
                self.io.writes.insert(term, index, reply);
            }
            Err(e) => {
                info!(
                    event = log_events::CONF_CHANGE_REFUSED,
                    change = described.as_str(),
                    reason = %e
                );
                let _ = reply.send(Err(self.io.conf_change_refusal(e)));
            }
        }
    }

    /// Issues one ReadIndex for the reads that joined the open batch, so
    /// they ride the next heartbeat round (called before peer acks are
    /// stepped: an ack that confirms a round starts the next one at once).
    fn issue_open_reads(&mut self) {
        if let Some(batch) = self.io.shared.read_gate.take_open() {
            self.issue_read(batch);
        }
    }

    fn issue_read(&mut self, batch: Arc<ReadBatch>) {
        if batch.mark_issued() {
            self.pipeline.issue_read(batch, &mut self.io);
        }
    }

    fn propose(
        &mut self,
        encoded: Bytes,
        reply: tokio::sync::oneshot::Sender<Result<Reply, WriteError>>,
    ) {
        match self.io.raw.propose(encoded) {
            Ok((term, index)) => self.io.writes.insert(term, index, reply),
            Err(e) => {
                let _ = reply.send(Err(self.io.write_refusal(e)));
            }
        }
    }

    /// One Ready through the pipeline: send, apply, hand over for
    /// persisting, acknowledge. Messages that promise durability leave only
    /// once the WAL thread reports their job durable (`on_report`);
    /// everything else goes on meanwhile.
    async fn handle_ready(&mut self, ready: Ready, inputs: &mut Inputs) -> Result<(), String> {
        let had_leader = self.io.last_leader != 0;
        for event in &ready.events {
            log_event(event, self.tick_ms, had_leader);
        }
        let turn = self.pipeline.start(ready, &mut self.io)?;
        if turn.wants_yield() {
            // The peer links run on this thread: let them put the appends on
            // the wire before this turn wakes the WAL thread or applies, so
            // followers start their fsync first (each is on a write's
            // critical path; this node's own fsync usually is not). With
            // nothing to write or apply (a follower answering a heartbeat)
            // the messages leave as soon as this turn ends anyway.
            tokio::task::yield_now().await;
        }
        if turn.ready().snapshot.is_some() {
            // The store is about to be replaced outside `apply`: the
            // published status keeps the digest of the state it shows.
            let shared = &self.io.shared;
            shared.status.lock().refresh_digest(&shared.store);
        }
        match self.pipeline.finish(turn, &mut self.io)? {
            None => Ok(()),
            Some(turn) => self.handle_snapshot_ready(turn, inputs).await,
        }
    }

    /// A snapshot from the leader (rare): everything queued before it is
    /// made durable first, then the snapshot with what follows it, and only
    /// then is the state machine replaced.
    async fn handle_snapshot_ready(
        &mut self,
        mut turn: SnapshotTurn,
        inputs: &mut Inputs,
    ) -> Result<(), String> {
        let reports = &mut inputs.reports;
        self.wait_until_durable(reports).await?;
        let snapshot = turn.snapshot();
        let (index, snapshot_term) = (snapshot.meta.index, snapshot.meta.term);
        // The WAL thread writes the snapshot while a blocking thread builds
        // the new state machine from it; the state is replaced once both are
        // done. (A snapshot that does not load stops the node either way:
        // it is the cluster's committed state, there is no other to take.)
        let data = snapshot.data.clone();
        self.io.compaction.leader_snapshot_queued(index);
        self.pipeline.install_snapshot(&mut turn, &mut self.io)?;
        let id = self.io.id;
        let started = Instant::now();
        let restored = tokio::task::spawn_blocking(move || KvStore::restore(&data))
            .await
            .map_err(|e| format!("node {id}: restoring the snapshot failed: {e}"))?
            .map_err(|e| format!("node {id}: snapshot from the leader does not load: {e}"))?;
        let restore_ms = started.elapsed().as_millis() as u64;
        self.wait_until_durable(reports).await?;
        let io = &mut self.io;
        io.compaction
            .map_leader_snapshot(&mut io.raw, index, snapshot_term);
        // The received copy (as large as the state) is free now.
        return_freed_memory();
        info!(
            event = log_events::SNAPSHOT_RESTORED,
            index,
            keys = restored.len(),
            restore_ms,
            elapsed_ms = started.elapsed().as_millis() as u64
        );
        let replaced = std::mem::replace(&mut *io.shared.store.write(), restored);
        // Freeing a large map takes a while: not on the Ready loop.
        tokio::task::spawn_blocking(move || drop(replaced));
        io.applied_term = snapshot_term;
        self.pipeline.finish_snapshot(turn, &mut self.io)
    }

    /// Waits until every job handed to the WAL thread is durable.
    async fn wait_until_durable(
        &mut self,
        reports: &mut mpsc::Receiver<Report>,
    ) -> Result<(), String> {
        while !self.pipeline.is_idle() {
            let report = reports
                .recv()
                .await
                .ok_or_else(|| format!("node {}: the WAL thread stopped", self.io.id))?;
            self.on_report(report)?;
        }
        Ok(())
    }

    /// Jobs became durable (or the storage failed, which stops the node).
    fn on_report(&mut self, report: Report) -> Result<(), String> {
        let report = report.map_err(|e| format!("node {}: {e}", self.io.id))?;
        self.pipeline.on_report(report, &mut self.io)
    }

    /// The snapshot task wrote its file: the WAL thread puts it in place
    /// behind the writes handed over before it (see `Compaction::written`).
    fn save_own_snapshot(&mut self, written: Written) {
        if let Some(prepared) = self.io.compaction.written(written) {
            let seq = self.pipeline.own_snapshot_job();
            self.io.persister.save_prepared_snapshot(seq, prepared);
        }
    }

    /// Publishes the status for RAFT.STATUS when something it shows
    /// changed. The digest and key count are computed only when a reader
    /// asks (`PublishedStatus::refresh_digest`).
    fn publish_status(&mut self) {
        let status = self.io.raw.status();
        let key = self.status_key(&status);
        let contact = if status.role == Role::Leader {
            // A leader is in contact with itself: once deposed (cut off,
            // say), its silence counts from when it last led, not from
            // its start.
            self.io.leader_contact = Some(Instant::now());
            None
        } else {
            self.io.leader_contact
        };
        if self.published.as_ref() == Some(&key) {
            // Heartbeats move the leader contact without changing anything
            // else: RAFT.STATUS's leader_contact_ms must still restart.
            if contact != self.published_contact {
                self.io.shared.status.lock().leader_contact = contact;
                self.published_contact = contact;
            }
            return;
        }
        self.io.link_peers(&status);
        let first_publish = self.published.is_none();
        let mut published = self.io.shared.status.lock();
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
            leader_known: self.io.leader_client_addr(status.leader_id).is_some(),
            registered: status.registered,
            strangers: status.strangers.clone(),
            link_changes: self.io.link_changes,
            membership_index: status.membership_index,
            members: status.members.len(),
            previous_voters: status.previous_voters.clone(),
        }
    }

    /// The RAFT.STATUS record for the core's `status`. The key count and
    /// the digest are carried over from `previous`, and the leader contact
    /// and uptime left at 0: all four are computed when a reader asks.
    fn shown_status(&self, status: Status, previous: &mut NodeStatus) -> NodeStatus {
        let (voters, learners) = (status.voters(), status.learners());
        NodeStatus {
            id: self.io.id,
            role: status.role.as_str(),
            term: status.term,
            leader_id: status.leader_id,
            leader_client_addr: if status.leader_id == self.io.id {
                self.client_addr.clone()
            } else {
                self.io
                    .leader_client_addr(status.leader_id)
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
            strangers: status.strangers.clone(),
            voters,
            learners,
            previous_voters: status.previous_voters.clone(),
            membership_index: status.membership_index,
            members: self.io.member_views(&status.members),
            // Members this node cannot reach are left out: a cluster client
            // must not be sent to a replica that is down.
            member_client_addrs: self
                .io
                .member_ids(&status.members)
                .into_iter()
                .filter(|&id| id == self.io.id || self.io.transport.is_connected(id))
                .filter_map(|id| Some((id, self.io.client_addr_of(id)?)))
                .collect(),
            pid: std::process::id(),
            uptime_ms: 0,
        }
    }
}

impl NodeIo {
    /// Opens and closes peer links as the configuration changes, and logs
    /// each new newest configuration.
    fn link_peers(&mut self, status: &Status) {
        let logged = self
            .membership_logged
            .as_ref()
            .is_some_and(|(index, members)| {
                *index == status.membership_index && *members == status.members
            });
        if !logged && !status.members.is_empty() {
            info!(
                event = log_events::MEMBERSHIP_CHANGED,
                index = status.membership_index,
                voters = ?status.voters(),
                learners = ?status.learners(),
                previous_voters = ?status.previous_voters
            );
            self.membership_logged = Some((status.membership_index, status.members.clone()));
        }
        if let Some((wanted, accept_any)) =
            self.peers
                .links_for(&status.members, &status.previous_voters, status.leader_id)
        {
            self.transport.set_peers(&wanted, accept_any);
        }
    }

    /// The members' ids: the configuration's, or before the cluster's
    /// first one the ids this node started with.
    fn member_ids(&self, members: &[Member]) -> Vec<NodeId> {
        if members.is_empty() {
            let mut ids: Vec<NodeId> = self.peers.known_ids().collect();
            if !ids.contains(&self.id) {
                ids.push(self.id);
            }
            ids
        } else {
            members.iter().map(|m| m.id).collect()
        }
    }

    /// A member's client address: the configured one, or the one its
    /// handshake announced (this node's own for itself).
    fn client_addr_of(&self, id: NodeId) -> Option<String> {
        self.transport.peer_client_addr(id)
    }

    /// The configuration as RAFT.MEMBERS shows it (before the cluster's
    /// first configuration: the members this node started with, voters of
    /// unknown incarnation).
    fn member_views(&self, members: &[Member]) -> Vec<MemberView> {
        if members.is_empty() {
            return self
                .member_ids(members)
                .into_iter()
                .map(|id| MemberView {
                    id,
                    role: ROLE_VOTER.into(),
                    peer_addr: self
                        .peers
                        .shown_peer_addr(&Member::voter(id, NO_INCARNATION)),
                    client_addr: self.client_addr_of(id).unwrap_or_default(),
                    ..Default::default()
                })
                .collect();
        }
        members
            .iter()
            .map(|m| MemberView {
                id: m.id,
                incarnation: if m.incarnation == NO_INCARNATION {
                    String::new()
                } else {
                    incarnation_text(m.incarnation)
                },
                role: if m.is_voter() {
                    ROLE_VOTER
                } else {
                    ROLE_LEARNER
                }
                .into(),
                peer_addr: self.peers.shown_peer_addr(m),
                client_addr: if m.client_addr.is_empty() {
                    self.client_addr_of(m.id).unwrap_or_default()
                } else {
                    m.client_addr.clone()
                },
                match_index: None,
            })
            .collect()
    }

    /// Where clients should go: the leader's client address, or None when
    /// no leader is known or this node's link to it is down. A follower
    /// that sees the leader's link break stops redirecting clients to it at
    /// once (they get CLUSTERDOWN), not only when its election timer fires.
    fn leader_client_addr(&self, leader: NodeId) -> Option<String> {
        if leader == 0 || (leader != self.id && !self.transport.is_connected(leader)) {
            None
        } else {
            self.transport.peer_client_addr(leader)
        }
    }

    /// Why the core refused a request, with the leader's client address
    /// when it knows the leader.
    fn refusal(&self, error: ProposeError) -> Refusal {
        match error {
            ProposeError::NotLeader { leader } if leader != 0 => {
                Refusal::NotLeader(self.leader_client_addr(leader))
            }
            ProposeError::NotLeader { .. } => Refusal::NoLeader,
            other => Refusal::Other(other.to_string()),
        }
    }

    /// A refused membership change as the client's error: retryable
    /// refusals (`Refused`: TRYAGAIN) apart from the ones that can never
    /// succeed as asked (`Invalid`).
    fn conf_change_refusal(&self, error: ConfChangeError) -> WriteError {
        match error {
            ConfChangeError::NotLeader { leader } => {
                self.write_refusal(ProposeError::NotLeader { leader })
            }
            ConfChangeError::TransferInProgress
            | ConfChangeError::TermNotCommitted
            | ConfChangeError::ChangeInFlight
            | ConfChangeError::NotCaughtUp { .. } => WriteError::Refused(error.to_string()),
            ConfChangeError::UnknownMember { .. }
            | ConfChangeError::AlreadyMember { .. }
            | ConfChangeError::InvalidMember { .. }
            | ConfChangeError::NotALearner { .. }
            | ConfChangeError::LastVoter { .. } => WriteError::Invalid(error.to_string()),
        }
    }

    fn write_refusal(&self, error: ProposeError) -> WriteError {
        match self.refusal(error) {
            Refusal::NotLeader(leader_client_addr) => WriteError::NotLeader { leader_client_addr },
            Refusal::NoLeader => WriteError::NoLeader,
            Refusal::Other(why) => WriteError::Refused(why),
        }
    }

    fn read_refusal(&self, error: ProposeError) -> ReadError {
        match self.refusal(error) {
            Refusal::NotLeader(leader_client_addr) => ReadError::NotLeader { leader_client_addr },
            Refusal::NoLeader => ReadError::NoLeader,
            Refusal::Other(why) => ReadError::Refused(why),
        }
    }
}

/// A refused write or read, before it becomes the client's error.
enum Refusal {
    NotLeader(Option<String>),
    NoLeader,
    Other(String),
}

impl ReadyIo for NodeIo {
    type Error = String;
    type Reads = Arc<ReadBatch>;

    fn raw(&mut self) -> &mut RawNode {
        &mut self.raw
    }

    fn send(&mut self, message: Message) -> Result<(), String> {
        self.transport.send(message);
        Ok(())
    }

    /// Applies committed entries in order. The published applied index
    /// moves in the same critical section, so a status reader computing
    /// the digest sees the state it names (see `PublishedStatus`).
    fn apply(&mut self, entries: &[Entry]) -> Result<(), String> {
        let Some(last) = entries.last().map(|e| e.index) else {
            return Ok(());
        };
        let mut published = self.shared.status.lock();
        let mut store = self.shared.store.write();
        for entry in entries {
            self.applied_term = entry.term;
            let reply = match entry.kind {
                EntryKind::Noop | EntryKind::Registry => None,
                // Answers the membership change that proposed it, if any.
                EntryKind::Config => Some(Reply::Ok),
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
        Ok(())
    }

    fn read_safe(&mut self, reads: Arc<ReadBatch>) -> Result<(), String> {
        reads.complete(Ok(()));
        Ok(())
    }

    fn read_failed(&mut self, reads: Arc<ReadBatch>, why: ReadFailure) {
        reads.complete(Err(match why {
            ReadFailure::Refused(e) => self.read_refusal(e),
            ReadFailure::NoLeader => ReadError::NoLeader,
        }));
    }

    fn write_inline(&mut self, write: WalWrite) -> Result<(), String> {
        self.persister
            .write_inline(&write)
            .map_err(|e| format!("node {}: {e}", self.id))
    }

    fn submit(&mut self, job: WalJob) -> Result<(), String> {
        self.persister.submit(job);
        Ok(())
    }

    fn own_snapshot_saved(&mut self, index: Index, data: Bytes) -> Result<(), String> {
        self.compaction.finish(&mut self.raw, index, data);
        Ok(())
    }

    fn leadership_lost(&mut self) {
        self.writes.leadership_lost();
    }

    /// Notes the leader, maybe starts a compaction.
    fn advanced(&mut self, status: &Status) -> Result<(), String> {
        let leader = status.leader_id;
        if leader != self.last_leader && leader != 0 && leader != self.id {
            self.leader_contact = Some(Instant::now());
        }
        self.last_leader = leader;
        self.compaction.maybe_start(
            &self.raw,
            &self.shared.store,
            status.applied_index,
            self.applied_term,
            status.snapshot_index,
        );
        Ok(())
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
    link_changes: u64,
    registered: bool,
    strangers: Vec<NodeId>,
    membership_index: u64,
    members: usize,
    previous_voters: Vec<NodeId>,
}
