//! The simulated cluster: N real `RawNode`s, the network, clients and every
//! fault, all driven in ticks by one seeded RNG, with the safety invariants
//! checked after each handled Ready and liveness checked after healing.
//!
//! A run has three phases. Fault phase: clients write and read while the
//! network drops, delays, duplicates, misdelivers, corrupts and partitions,
//! nodes crash (also in the middle of handling a Ready), stall, drift and
//! compact, and the membership changes (`membership.rs`). A misdelivered copy must be refused and a corrupted one (a
//! garbage term or index, a malformed append or snapshot chunk, a snapshot
//! past `snapshot_bytes_max`) must change nothing the node believes.
//! Healing: all faults stop and every node restarts; a leader must appear
//! within `LIVENESS_TICKS_MAX`. Draining: clients stop and every node must
//! reach the same applied index and digest within `CONVERGENCE_TICKS_MAX`
//! plus the time the furthest-behind node needs to catch up
//! (`catch_up_ticks_max`). Then the client history is checked for
//! linearizability.
//!
//! Persistence is synchronous (each Ready persisted straight through, the
//! order of the contract in `raftkv::raft`) or, in half of the runs,
//! asynchronous through the node's own Ready pipeline (`raftkv::pipeline`)
//! over a simulated WAL thread (`pipeline.rs`, `wal.rs`).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use raftkv::kv::{Command, KvStore};
use raftkv::message::{
    Body, Entry, EntryKind, Index, Message, NodeId, Snapshot, SnapshotMeta, Term, NO_INCARNATION,
    NO_NODE,
};
use raftkv::raft::{
    Config, Event, PlantedBug, ProposeError, RawNode, ReadState, Ready, ReadyAck, Rng, Role, Status,
};

use super::checks::{hex, SafetyChecker};
use super::faults::{corrupt, FaultProfile, Garbage, Regime};
use super::history::{History, HistoryStats, OpId, Proposal};
use super::net::{chance, Network, NetworkFaults, NetworkStats};
use super::node::DurableStore;
use super::wal::{AsyncDisk, DiskStats};
use pipeline::AsyncDriver;
use raftkv::linearizability::{check_history, OpKind, Value, NIL};
use raftkv::pipeline::{DriverBug, ReadFailure};

/// After healing, a stable leader (every node in its term, following it)
/// must exist within this many ticks: ten worst-case election timeouts.
pub const LIVENESS_TICKS_MAX: u64 = 10 * ELECTION_TICKS_MAX;
/// After clients stop, every node must reach the leader's last index with
/// the same digest within this many ticks (catching up may need a
/// snapshot transfer in small chunks).
pub const CONVERGENCE_TICKS_MAX: u64 = 600;
/// A healed network delivers in 1..=2 ticks each way and a node answers in
/// the tick a message arrives: a round trip takes at most this many ticks,
/// with margin. A lagging follower gains at least one entry per in-flight
/// append per round trip (`bytes_per_append_max` may cut an append to one
/// entry), so a lag of L entries needs up to
/// `L * HEALED_ROUND_TRIP_TICKS_MAX / inflight_appends_max` ticks on top.
pub const HEALED_ROUND_TRIP_TICKS_MAX: u64 = 6;
/// Clients keep working this long with the healed cluster before draining.
pub const HEALED_CLIENT_TICKS: u64 = 60;
/// A client gives up on an operation after this many ticks.
pub const CLIENT_TIMEOUT_TICKS: u64 = 50;
/// Bound on Ready rounds handled for one node in one visit.
pub const READY_ROUNDS_PER_VISIT_MAX: usize = 16;

pub const ELECTION_TICKS_MIN: u64 = 10;
pub const ELECTION_TICKS_MAX: u64 = 20;
const _: () = assert!(CLIENT_TIMEOUT_TICKS > 2 * ELECTION_TICKS_MAX);

/// A known bug planted to prove the simulator catches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Planted {
    /// In the core (feature `planted-bugs`).
    Core(PlantedBug),
    /// In the simulated driver; the run persists asynchronously.
    Driver(DriverBug),
}

/// What to run.
#[derive(Clone, Copy, Debug)]
pub struct SimOptions {
    pub cluster_size: usize,
    pub seed: u64,
    pub planted_bug: Option<Planted>,
    /// Print every event, message and role change, per tick.
    pub trace: bool,
}

/// Which kind of check failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// A Raft safety invariant (election, log matching, completeness,
    /// state machine safety, durability of acknowledged writes).
    Safety,
    /// The core broke the Ready contract or refused a valid call.
    Contract,
    /// The client history is not linearizable.
    Linearizability,
    /// No leader, or no convergence, within the bound after healing.
    Liveness,
    /// The core panicked.
    Panic,
    /// A message addressed to another node was accepted, or a malformed
    /// or oversized one changed what a node believes.
    Garbage,
}

#[derive(Clone, Debug)]
pub struct Failure {
    pub kind: FailureKind,
    pub tick: u64,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} failure at tick {}: {}",
            self.kind, self.tick, self.message
        )
    }
}

/// What a passing run did, so a run that checked nothing is visible.
#[derive(Clone, Debug, Default)]
pub struct SimReport {
    pub ticks: u64,
    pub history: HistoryStats,
    /// Operations that entered the linearizability search.
    pub ops_checked: u64,
    pub network: NetworkStats,
    pub crashes: u64,
    /// Crashes that also lost the disk (the node came back as a new incarnation).
    pub wipes: u64,
    /// Wiped nodes seen registered as voters again.
    pub readmissions: u64,
    /// Membership changes the leader accepted (see `membership.rs`).
    pub membership_changes: u64,
    /// Of those, removals of the leader itself.
    pub leader_removals: u64,
    /// The most and the fewest voters a configuration of the run had.
    pub voters_max: u64,
    pub voters_min_proposed: u64,
    pub leaders: u64,
    pub snapshots_installed: u64,
    pub compactions: u64,
    pub final_applied_index: Index,
    pub ticks_to_leader_after_heal: u64,
    /// Copies refused by a node they were not addressed to.
    pub misdelivered: u64,
    /// Corrupted copies that changed nothing.
    pub garbage_delivered: u64,
    /// Asynchronous mode: what the WAL model exercised.
    pub disk: DiskStats,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Faults,
    Healing,
    Draining,
}

/// A node process that is up: the core and its state machine.
struct Running {
    raw: RawNode,
    kv: KvStore,
    applied: Index,
    /// Writes proposed here, awaiting apply: index -> (term, op, data).
    proposed: BTreeMap<Index, (Term, OpId, Bytes)>,
    /// Reads handed to `read_index`, awaiting their ReadState: context -> op.
    reads_requested: BTreeMap<u64, OpId>,
    /// Reads that became safe, awaiting applied >= their index.
    reads_ready: Vec<ReadState>,
    role: Role,
    term: Term,
    /// The commit index last seen: it never falls within one incarnation.
    commit_index: Index,
    /// Asynchronous mode: the shared Ready pipeline, the WAL thread and
    /// the read batching.
    driver: Option<AsyncDriver>,
}

struct SimNode {
    id: NodeId,
    config: Config,
    durable: DurableStore,
    /// Boxed: it is taken out and put back around every Ready.
    running: Option<Box<Running>>,
    restart_at_tick: Option<u64>,
    /// Stalled (no ticks, no input handled) until this tick.
    paused_until_tick: u64,
    /// Chance this node's clock advances on a simulated tick.
    tick_probability: f64,
    /// No process and none to come: a slot never added to the cluster, or
    /// a member removed and stopped (see `membership.rs`).
    absent: bool,
}

struct Client {
    /// The operation in progress and the tick the client gives up on it.
    op: Option<(OpId, u64)>,
    leader_hint: NodeId,
    /// After a refusal with no leader to try, the client waits until here.
    idle_until_tick: u64,
}

/// A client told there is no leader waits up to this long before retrying.
const CLIENT_BACKOFF_TICKS_MAX: u64 = 8;
/// Chance per fault-phase tick that one node's links are redialed.
const RECONNECT_PROBABILITY: f64 = 0.01;

/// Where a crash hits while a Ready is being handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CrashPoint {
    /// Right after `ready()`: nothing sent, nothing persisted.
    BeforeSend,
    /// Messages sent, nothing persisted.
    BeforePersist,
    /// The write was torn: maybe the snapshot and a prefix of the entries
    /// made it to disk, the hard state (written last) did not.
    TornPersist,
    /// Persisted, but the messages that depend on it were not sent.
    BeforePersistedSend,
    /// Asynchronous mode: committed entries applied (clients answered),
    /// the Ready's own writes not yet handed to the WAL thread.
    AfterApply,
    /// Applied, but `advance` never called.
    BeforeAdvance,
}

enum ReadyOutcome {
    Alive,
    Crashed(CrashPoint),
}

macro_rules! trace {
    ($sim:expr, $($arg:tt)*) => {
        if $sim.options.trace {
            println!("[t={:>5}] {}", $sim.now_tick, format!($($arg)*));
        }
    };
}

// After `trace!`, which they use.
#[path = "membership.rs"]
mod membership;
#[path = "pipeline.rs"]
mod pipeline;

/// Seeds the disk RNG from the run's seed.
const DISK_RNG_SALT: u64 = 0x5EED_D15C_A5F0_0D11;

pub struct Sim {
    options: SimOptions,
    rng: Rng,
    now_tick: u64,
    phase: Phase,
    profile: FaultProfile,
    nodes: Vec<SimNode>,
    net: Network,
    clients: Vec<Client>,
    history: History,
    checker: SafetyChecker,
    report: SimReport,
    /// Faults scheduled for new leaders: (tick, node index, term).
    new_leader_faults: Vec<(u64, usize, Term)>,
    /// `Some`: nodes persist asynchronously on disks like this.
    disk: Option<AsyncDisk>,
    /// Draws the persistence mode, fsync delays and torn writes, apart from
    /// `rng` so the synchronous runs stay what they were.
    disk_rng: Rng,
    /// Nodes whose disk was wiped and that no one counts as a voter yet.
    unreadmitted: BTreeSet<NodeId>,
    /// The voter sets of every configuration that may still decide: the
    /// settled leader's, and each one proposed since.
    voter_sets_in_play: Vec<BTreeSet<NodeId>>,
}

/// Runs one seed to the end; `Err` names the broken check.
pub fn run(options: SimOptions) -> Result<SimReport, Failure> {
    let mut sim = Sim::new(options)?;
    sim.run_to_end()?;
    Ok(sim.report)
}

fn key_bytes(key: u64) -> Bytes {
    Bytes::from(format!("k{key}"))
}

impl Sim {
    fn new(options: SimOptions) -> Result<Self, Failure> {
        let mut rng = Rng::new(options.seed);
        let mut disk_rng = Rng::new(options.seed ^ DISK_RNG_SALT);
        let disk = match options.planted_bug {
            Some(Planted::Driver(_)) => Some(AsyncDisk::draw_async(&mut disk_rng)),
            _ => AsyncDisk::draw(&mut disk_rng),
        };
        let profile = FaultProfile::draw(&mut rng);
        let voters: Vec<NodeId> = (1..=options.cluster_size as NodeId).collect();
        let base = draw_config(&mut rng, &options, &profile, voters.clone());
        let slots = options.cluster_size.max(membership::MEMBER_SLOTS) as NodeId;
        let mut nodes = Vec::new();
        for id in 1..=slots {
            let absent = !voters.contains(&id);
            let mut config = Config { id, ..base.clone() };
            if absent {
                config.voters = Vec::new();
            }
            nodes.push(SimNode {
                absent,
                id,
                config,
                durable: DurableStore::default(),
                running: None,
                restart_at_tick: None,
                paused_until_tick: 0,
                tick_probability: 1.0,
            });
        }
        let clients = (0..profile.clients)
            .map(|_| Client {
                op: None,
                leader_hint: NO_NODE,
                idle_until_tick: 0,
            })
            .collect();
        let mut sim = Sim {
            options,
            rng,
            now_tick: 0,
            phase: Phase::Faults,
            net: Network::new(slots as usize, profile.network),
            profile,
            nodes,
            clients,
            history: History::default(),
            checker: SafetyChecker::default(),
            report: SimReport::default(),
            new_leader_faults: Vec::new(),
            disk,
            disk_rng,
            unreadmitted: BTreeSet::new(),
            voter_sets_in_play: vec![voters.iter().copied().collect()],
        };
        sim.report.voters_max = voters.len() as u64;
        sim.report.voters_min_proposed = voters.len() as u64;
        trace!(
            sim,
            "seed {} cluster of {} profile {:?}",
            options.seed,
            options.cluster_size,
            sim.profile
        );
        trace!(sim, "persistence {:?}", sim.disk);
        trace!(sim, "config {:?}", base);
        for i in 0..sim.nodes.len() {
            if !sim.nodes[i].absent {
                sim.start(i)?;
            }
        }
        Ok(sim)
    }

    fn driver_bug(&self) -> Option<DriverBug> {
        match self.options.planted_bug {
            Some(Planted::Driver(bug)) => Some(bug),
            _ => None,
        }
    }

    fn failure(&self, kind: FailureKind, message: impl Into<String>) -> Failure {
        let mut message = message.into();
        message.push_str(&format!(
            "\nprofile: {:?}\nconfig: {:?}\npersistence: {:?}\ncluster:\n{}",
            self.profile,
            self.nodes[0].config,
            self.disk,
            self.describe_cluster()
        ));
        Failure {
            kind,
            tick: self.now_tick,
            message,
        }
    }

    fn run_to_end(&mut self) -> Result<(), Failure> {
        while self.now_tick < self.profile.fault_phase_ticks {
            self.step_tick(true)?;
        }
        self.heal()?;
        let healed_at = self.now_tick;
        while self.stable_leader().is_none() {
            if self.now_tick - healed_at > LIVENESS_TICKS_MAX {
                return Err(self.failure(
                    FailureKind::Liveness,
                    format!("no stable leader within {LIVENESS_TICKS_MAX} ticks after healing"),
                ));
            }
            self.step_tick(true)?;
        }
        self.report.ticks_to_leader_after_heal = self.now_tick - healed_at;
        for _ in 0..HEALED_CLIENT_TICKS {
            self.step_tick(true)?;
        }
        self.phase = Phase::Draining;
        let draining_at = self.now_tick;
        let convergence_ticks_max = CONVERGENCE_TICKS_MAX + self.catch_up_ticks_max();
        while !self.converged() {
            if self.now_tick - draining_at > convergence_ticks_max {
                return Err(self.failure(
                    FailureKind::Liveness,
                    format!(
                        "nodes did not converge on one applied index and digest within {convergence_ticks_max} ticks \
                         after clients stopped"
                    ),
                ));
            }
            self.step_tick(false)?;
        }
        self.final_checks()
    }

    /// One simulated tick: faults, restarts, deliveries, clocks, clients,
    /// then every node's Ready.
    fn step_tick(&mut self, clients_active: bool) -> Result<(), Failure> {
        self.now_tick += 1;
        self.report.ticks = self.now_tick;
        if self.phase == Phase::Faults {
            self.inject_faults()?;
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i]
                .restart_at_tick
                .is_some_and(|t| t <= self.now_tick)
            {
                self.start(i)?;
            }
        }
        self.deliver_messages()?;
        for i in 0..self.nodes.len() {
            let node = &mut self.nodes[i];
            if node.paused_until_tick > self.now_tick {
                continue;
            }
            let tick_probability = node.tick_probability;
            if node.running.is_some() && chance(&mut self.rng, tick_probability) {
                self.nodes[i].running.as_mut().expect("running").raw.tick();
            }
        }
        if clients_active {
            self.run_clients()?;
        }
        self.expire_client_ops();
        for i in self.shuffled_nodes() {
            self.process_ready(i)?;
        }
        if !self.unreadmitted.is_empty() {
            self.note_readmissions();
        }
        self.membership_upkeep()
    }

    fn shuffled_nodes(&mut self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.nodes.len()).collect();
        for i in (1..order.len()).rev() {
            let j = self.rng.range(0, i as u64 + 1) as usize;
            order.swap(i, j);
        }
        order
    }

    // ---- nodes: start, crash, Ready ----

    fn start(&mut self, i: usize) -> Result<(), Failure> {
        let seed = self.rng.next_u64();
        let node = &self.nodes[i];
        let initial = node.durable.initial_state();
        let (kv, applied) = match &node.durable.snapshot {
            None => (KvStore::new(), 0),
            Some(snapshot) => {
                let kv = KvStore::restore(&snapshot.data).map_err(|e| {
                    self.failure(
                        FailureKind::Safety,
                        format!(
                            "node {} cannot restore its own durable snapshot: {e:?}",
                            node.id
                        ),
                    )
                })?;
                self.checker
                    .observe_snapshot_restored(node.id, snapshot, kv.digest())
                    .map_err(|v| self.failure(FailureKind::Safety, v))?;
                (kv, snapshot.meta.index)
            }
        };
        let raw = RawNode::new(node.config.clone(), initial, seed).map_err(|e| {
            self.failure(
                FailureKind::Contract,
                format!(
                    "node {} refused to start from its durable state: {e}",
                    node.id
                ),
            )
        })?;
        let status = raw.status();
        trace!(
            self,
            "n{} START term={} vote={} commit={} snapshot={} durable_last={}",
            node.id,
            status.term,
            status.vote,
            status.commit_index,
            node.durable.snapshot_index(),
            node.durable.last_index()
        );
        let driver_bug = self.driver_bug();
        let node = &mut self.nodes[i];
        node.running = Some(Box::new(Running {
            raw,
            kv,
            applied,
            proposed: BTreeMap::new(),
            reads_requested: BTreeMap::new(),
            reads_ready: Vec::new(),
            role: status.role,
            term: status.term,
            commit_index: status.commit_index,
            driver: self
                .disk
                .map(|disk| AsyncDriver::new(disk, &node.durable, driver_bug)),
        }));
        node.restart_at_tick = None;
        // The restarted process's links come up: every driver reports it
        // to its core (`Inbound::PeerUp`), as the node's driver does.
        let id = node.id;
        self.reconnect_everyone_to(id);
        Ok(())
    }

    /// Raft tolerates lost disks only while the members whose disks are
    /// intact still form a majority: a wipe is drawn only for a node that
    /// is registered, and only while the intact voters stay a majority of
    /// every configuration that may decide (more would leave the cluster
    /// unavailable for good, which is safe but cannot heal).
    fn may_wipe(&self, i: usize, registered: bool) -> bool {
        let id = self.nodes[i].id;
        registered && !self.unreadmitted.contains(&id) && self.may_lose_voter(id)
    }

    /// The crashed node's disk is gone: it restarts empty, as a new
    /// incarnation, as a node whose data dir was wiped does.
    fn wipe(&mut self, i: usize) {
        let incarnation = self.rng.next_u64() | 1;
        let node = &mut self.nodes[i];
        node.durable = DurableStore::default();
        node.config.incarnation = incarnation;
        self.unreadmitted.insert(node.id);
        self.report.wipes += 1;
        trace!(
            self,
            "n{} WIPED: new incarnation {incarnation:016x}",
            self.nodes[i].id
        );
    }

    /// Wiped nodes that now see themselves registered count as intact again.
    fn note_readmissions(&mut self) {
        let readmitted: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|n| self.unreadmitted.contains(&n.id))
            .filter(|n| {
                n.running
                    .as_ref()
                    .is_some_and(|r| r.raw.status().registered)
            })
            .map(|n| n.id)
            .collect();
        for id in readmitted {
            trace!(self, "n{id} READMITTED");
            self.unreadmitted.remove(&id);
            self.report.readmissions += 1;
        }
    }

    /// Every other running node's transport reconnects to `id`.
    fn reconnect_everyone_to(&mut self, id: NodeId) {
        for other in self.nodes.iter_mut().filter(|n| n.id != id) {
            if let Some(running) = other.running.as_mut() {
                running.raw.peer_reconnected(id);
            }
        }
    }

    /// The process dies: everything not durable is gone (asynchronous
    /// mode: queued jobs are lost and the batch being written is torn).
    fn crash(
        &mut self,
        i: usize,
        mut running: Box<Running>,
        point: Option<CrashPoint>,
    ) -> Result<(), Failure> {
        self.report.crashes += 1;
        let mut held_reads = Vec::new();
        if let Some(driver) = running.driver.take() {
            held_reads.extend(driver.held_reads());
            let torn = driver
                .wal
                .crash(
                    &mut self.disk_rng,
                    &mut self.nodes[i].durable,
                    &mut self.report.disk,
                )
                .map_err(|e| {
                    self.failure(
                        FailureKind::Contract,
                        format!("node {}: torn write: {e}", self.nodes[i].id),
                    )
                })?;
            trace!(self, "n{} WAL at crash: {torn}", self.nodes[i].id);
        }
        let registered = running.raw.status().registered;
        if self.phase == Phase::Faults
            && chance(&mut self.rng, self.profile.wipe_probability)
            && self.may_wipe(i, registered)
        {
            self.wipe(i);
        }
        let node = &mut self.nodes[i];
        node.paused_until_tick = 0;
        if self.phase == Phase::Faults {
            node.restart_at_tick =
                Some(self.now_tick + self.rng.range(1, self.profile.restart_ticks_max + 1));
        } else {
            node.restart_at_tick = Some(self.now_tick + 1);
        }
        trace!(
            self,
            "n{} CRASH {} (durable: term={} vote={} last={} snapshot={})",
            self.nodes[i].id,
            point.map_or("between steps".to_string(), |p| format!("{p:?}")),
            self.nodes[i].durable.hard_state.term,
            self.nodes[i].durable.hard_state.vote,
            self.nodes[i].durable.last_index(),
            self.nodes[i].durable.snapshot_index()
        );
        self.release_clients_of(&running, held_reads);
        Ok(())
    }

    /// The process of `running` is gone: its clients hear a connection
    /// error, those of the reads its pipeline held (`held_reads`) too.
    /// Reads never change state: a lost read simply failed.
    fn release_clients_of(&mut self, running: &Running, held_reads: Vec<OpId>) {
        let reads = running
            .reads_requested
            .values()
            .copied()
            .chain(running.reads_ready.iter().map(|r| r.context))
            .chain(held_reads);
        for op in reads.collect::<Vec<_>>() {
            if self.history.get(op).open {
                self.history.fail(op);
            }
            self.release_client(op);
        }
        // A write whose proposer died has an unknown outcome: the client
        // hears a connection error; the history keeps it open.
        for (_, op, _) in running.proposed.values() {
            self.release_client(*op);
        }
    }

    fn process_ready(&mut self, i: usize) -> Result<(), Failure> {
        if self.disk.is_some() {
            return self.process_ready_async(i);
        }
        for _ in 0..READY_ROUNDS_PER_VISIT_MAX {
            let node = &self.nodes[i];
            if node.paused_until_tick > self.now_tick {
                return Ok(());
            }
            match &node.running {
                Some(running) if running.raw.has_ready() => {}
                _ => return Ok(()),
            }
            let mut running = self.nodes[i].running.take().expect("running");
            match self.handle_ready(i, &mut running)? {
                ReadyOutcome::Alive => self.nodes[i].running = Some(running),
                ReadyOutcome::Crashed(point) => {
                    return self.crash(i, running, Some(point));
                }
            }
        }
        Ok(())
    }

    fn draw_crash_point(&mut self) -> Option<CrashPoint> {
        if self.phase != Phase::Faults
            || !chance(&mut self.rng, self.profile.crash_in_ready_probability)
        {
            return None;
        }
        let points = if self.disk.is_some() { 6 } else { 5 };
        Some(match self.rng.range(0, points) {
            0 => CrashPoint::BeforeSend,
            1 => CrashPoint::BeforePersist,
            2 => CrashPoint::TornPersist,
            3 => CrashPoint::BeforePersistedSend,
            4 => CrashPoint::BeforeAdvance,
            _ => CrashPoint::AfterApply,
        })
    }

    /// Takes the next Ready: checks that term and commit index never went
    /// back, traces it, and checks the invariants on what the node holds.
    fn take_ready(
        &mut self,
        i: usize,
        running: &mut Running,
    ) -> Result<(Ready, ReadyAck, Status), Failure> {
        let id = self.nodes[i].id;
        let ready = running.raw.ready();
        let ack = ready.ack();
        let status = running.raw.status();
        if status.term < running.term || status.commit_index < running.commit_index {
            return Err(self.failure(
                FailureKind::Contract,
                format!(
                    "node {id}: term or commit index went back (term {} -> {}, commit {} -> {})",
                    running.term, status.term, running.commit_index, status.commit_index
                ),
            ));
        }
        running.commit_index = status.commit_index;
        self.trace_ready(id, &ready, &status, running);
        self.check_ready(i, &ready, &status, running)?;
        Ok((ready, ack, status))
    }

    /// A leader that just applied newly committed entries may be cut off at
    /// once, so the appends in flight to the others are lost.
    fn maybe_strike_after_commit(&mut self, id: NodeId, status: &Status, committed: bool) {
        if self.phase == Phase::Faults
            && status.role == Role::Leader
            && committed
            && chance(&mut self.rng, self.profile.leader_commit_strike_probability)
        {
            self.net.heal();
            self.net.split(&[id]);
            trace!(
                self,
                "n{id} STRUCK after committing: PARTITION {}",
                self.net.describe_partition()
            );
        }
    }

    /// Handles one Ready exactly as the contract in `raftkv::raft` says,
    /// checking the invariants on what the node now holds.
    fn handle_ready(&mut self, i: usize, running: &mut Running) -> Result<ReadyOutcome, Failure> {
        let id = self.nodes[i].id;
        let (mut ready, ack, status) = self.take_ready(i, running)?;
        let crash_point = self.draw_crash_point();
        if crash_point == Some(CrashPoint::BeforeSend) {
            return Ok(ReadyOutcome::Crashed(CrashPoint::BeforeSend));
        }
        for message in std::mem::take(&mut ready.messages) {
            self.send(id, message)?;
        }
        if crash_point == Some(CrashPoint::BeforePersist) {
            return Ok(ReadyOutcome::Crashed(CrashPoint::BeforePersist));
        }
        self.persist(i, &ready, crash_point)
            .map_err(|e| self.failure(FailureKind::Contract, format!("node {id}: {e}")))?;
        if matches!(
            crash_point,
            Some(CrashPoint::TornPersist) | Some(CrashPoint::BeforePersistedSend)
        ) {
            return Ok(ReadyOutcome::Crashed(crash_point.expect("some")));
        }
        for message in std::mem::take(&mut ready.persisted_messages) {
            self.send(id, message)?;
        }
        self.apply(id, running, &ready, status.term)?;
        if crash_point == Some(CrashPoint::BeforeAdvance) {
            return Ok(ReadyOutcome::Crashed(CrashPoint::BeforeAdvance));
        }
        running.raw.advance(ack);
        self.maybe_compact(i, running)?;
        self.maybe_strike_after_commit(id, &status, !ready.committed_entries.is_empty());
        Ok(ReadyOutcome::Alive)
    }

    /// The invariants that depend on what the node holds in memory now: its
    /// log as handed to storage (durable, plus the writes still queued in
    /// the asynchronous mode) with this Ready laid over it.
    fn check_ready(
        &mut self,
        i: usize,
        ready: &Ready,
        status: &Status,
        running: &Running,
    ) -> Result<(), Failure> {
        let node = &self.nodes[i];
        let id = node.id;
        let log = running
            .driver
            .as_ref()
            .map_or(&node.durable, |d| &d.wal.submitted);
        if let Some(hard_state) = ready.hard_state {
            let durable = log.hard_state;
            if hard_state.term < durable.term {
                return Err(self.failure(
                    FailureKind::Contract,
                    format!(
                        "node {id}: hard state term went back from {} to {}",
                        durable.term, hard_state.term
                    ),
                ));
            }
            // A vote is for one incarnation of a node id: voting for the
            // same id again after it lost its disk is voting twice.
            let other_life = durable.vote_incarnation != NO_INCARNATION
                && hard_state.vote_incarnation != durable.vote_incarnation;
            if hard_state.term == durable.term
                && durable.vote != NO_NODE
                && (hard_state.vote != durable.vote || other_life)
            {
                return Err(self.failure(
                    FailureKind::Safety,
                    format!(
                        "election safety: node {id} voted for {} ({:016x}) and then for {} ({:016x}) in term {}",
                        durable.vote,
                        durable.vote_incarnation,
                        hard_state.vote,
                        hard_state.vote_incarnation,
                        durable.term
                    ),
                ));
            }
        }
        if let Some(snapshot) = &ready.snapshot {
            if snapshot.meta.index <= running.applied {
                return Err(self.failure(
                    FailureKind::Contract,
                    format!(
                        "node {id}: Ready carries a snapshot at index {}, not newer than applied {}",
                        snapshot.meta.index, running.applied
                    ),
                ));
            }
        }
        let view = log.view(ready.snapshot.as_ref(), &ready.entries);
        if let Some(first) = ready.entries.first() {
            let below = log.view(ready.snapshot.as_ref(), &[]);
            let Some(prev_term) = below.term_at(first.index - 1) else {
                return Err(self.failure(
                    FailureKind::Safety,
                    format!(
                        "log contiguity: node {id} holds index {} without index {} (last {}, snapshot {})",
                        first.index,
                        first.index - 1,
                        below.last_index(),
                        below.snapshot_index()
                    ),
                ));
            };
            self.checker
                .observe_written(id, prev_term, &ready.entries)
                .map_err(|v| self.failure(FailureKind::Safety, v))?;
        }
        let mut leader_terms: Vec<Term> = ready
            .events
            .iter()
            .filter_map(|e| match e {
                Event::BecameLeader { term } => Some(*term),
                _ => None,
            })
            .collect();
        for &term in &leader_terms {
            self.checker
                .check_leader_completeness(id, term, &view)
                .map_err(|v| self.failure(FailureKind::Safety, v))?;
            if self.phase == Phase::Faults
                && chance(&mut self.rng, self.profile.new_leader_fault_probability)
            {
                let delay_ticks = self
                    .rng
                    .range(0, self.profile.new_leader_fault_ticks_max + 1);
                self.new_leader_faults
                    .push((self.now_tick + delay_ticks, i, term));
            }
        }
        if status.role == Role::Leader {
            leader_terms.push(status.term);
        }
        for term in leader_terms {
            self.checker
                .observe_leader(term, id)
                .map_err(|v| self.failure(FailureKind::Safety, v))?;
        }
        self.report.leaders = self.checker.leader_count() as u64;
        Ok(())
    }

    fn send(&mut self, from: NodeId, message: Message) -> Result<(), Failure> {
        let size = self.nodes.len() as NodeId;
        if message.from != from || message.to == from || !(1..=size).contains(&message.to) {
            return Err(self.failure(
                FailureKind::Contract,
                format!(
                    "node {from} emitted a misaddressed message: {}",
                    describe_message(&message)
                ),
            ));
        }
        self.net.send(&mut self.rng, self.now_tick, message);
        Ok(())
    }

    /// Step 3 of the contract, in the only order a crash can tear safely:
    /// snapshot, then entries (appended to the log), then the hard state
    /// (whose commit index must never reach entries not yet on disk). A
    /// torn write stops part-way: maybe the snapshot, a prefix of the
    /// entries, never the hard state.
    fn persist(
        &mut self,
        i: usize,
        ready: &Ready,
        crash_point: Option<CrashPoint>,
    ) -> Result<(), String> {
        let torn = crash_point == Some(CrashPoint::TornPersist);
        let snapshot_survives = !torn || chance(&mut self.rng, 0.5);
        let keep = if torn {
            self.rng.range(0, ready.entries.len() as u64 + 1) as usize
        } else {
            ready.entries.len()
        };
        let durable = &mut self.nodes[i].durable;
        if let Some(snapshot) = &ready.snapshot {
            if !snapshot_survives {
                return Ok(());
            }
            durable.persist_snapshot(snapshot.clone())?;
        }
        durable.persist_entries(&ready.entries, keep)?;
        if !torn {
            if let Some(hard_state) = ready.hard_state {
                durable.hard_state = hard_state;
            }
        }
        Ok(())
    }

    /// Step 5: restore the snapshot, apply committed entries in order,
    /// answer reads that became safe, fail dropped reads.
    fn apply(
        &mut self,
        id: NodeId,
        running: &mut Running,
        ready: &Ready,
        node_term: Term,
    ) -> Result<(), Failure> {
        if let Some(snapshot) = &ready.snapshot {
            self.restore_snapshot(id, running, snapshot)?;
        }
        self.apply_committed(id, running, &ready.committed_entries, node_term)?;
        for read in &ready.read_states {
            match running.reads_requested.remove(&read.context) {
                Some(_) => running.reads_ready.push(*read),
                None => {
                    return Err(self.failure(
                        FailureKind::Contract,
                        format!(
                            "node {id}: ReadState for context {} that was never requested here",
                            read.context
                        ),
                    ))
                }
            }
        }
        let (serve, wait): (Vec<ReadState>, Vec<ReadState>) = running
            .reads_ready
            .drain(..)
            .partition(|r| r.index <= running.applied);
        running.reads_ready = wait;
        for read in serve {
            self.serve_read(id, running, read.context, read.index)?;
        }
        for &context in &ready.dropped_reads {
            if running.reads_requested.remove(&context).is_none() {
                return Err(self.failure(
                    FailureKind::Contract,
                    format!("node {id}: dropped read {context} that was never requested here"),
                ));
            }
            if self.history.get(context).open {
                self.history.fail(context);
            }
            self.release_client(context);
        }
        Ok(())
    }

    /// Replaces the state machine with a snapshot's, checking it is the
    /// state the cluster applied at its index.
    fn restore_snapshot(
        &mut self,
        id: NodeId,
        running: &mut Running,
        snapshot: &Snapshot,
    ) -> Result<(), Failure> {
        let kv = KvStore::restore(&snapshot.data).map_err(|e| {
            self.failure(
                FailureKind::Safety,
                format!(
                    "node {id}: snapshot at index {} does not restore: {e:?}",
                    snapshot.meta.index
                ),
            )
        })?;
        self.checker
            .observe_snapshot_restored(id, snapshot, kv.digest())
            .map_err(|v| self.failure(FailureKind::Safety, v))?;
        running.kv = kv;
        running.applied = snapshot.meta.index;
        self.report.snapshots_installed += 1;
        // Writes proposed here and covered by the snapshot: the applied
        // record says whether each one made it.
        let covered: Vec<Index> = running
            .proposed
            .range(..=snapshot.meta.index)
            .map(|(i, _)| *i)
            .collect();
        for index in covered {
            let (term, op, data) = running.proposed.remove(&index).expect("listed");
            let record = self
                .checker
                .applied(index)
                .expect("covered by a restored snapshot");
            let (record_term, record_data) = (record.term, record.data.clone());
            self.resolve_write(id, op, index, term, &data, record_term, &record_data)?;
        }
        Ok(())
    }

    /// Applies committed entries in order, checking each, and resolves the
    /// writes proposed here.
    fn apply_committed(
        &mut self,
        id: NodeId,
        running: &mut Running,
        entries: &[Entry],
        node_term: Term,
    ) -> Result<(), Failure> {
        for entry in entries {
            if entry.index != running.applied + 1 {
                return Err(self.failure(
                    FailureKind::Safety,
                    format!(
                        "node {id}: committed entry {} handed out after applied index {} (skipped or applied twice)",
                        entry.index, running.applied
                    ),
                ));
            }
            self.apply_entry(id, running, entry)?;
            let now = self.history.now();
            self.checker
                .observe_applied(id, entry, running.kv.digest(), node_term, now)
                .map_err(|v| self.failure(FailureKind::Safety, v))?;
            running.applied = entry.index;
            if let Some((term, op, data)) = running.proposed.remove(&entry.index) {
                self.resolve_write(id, op, entry.index, term, &data, entry.term, &entry.data)?;
            }
        }
        Ok(())
    }

    /// A read whose ReadIndex is applied here reads the state machine now.
    fn serve_read(
        &mut self,
        id: NodeId,
        running: &Running,
        op: OpId,
        read_index: Index,
    ) -> Result<(), Failure> {
        if !self.history.get(op).open {
            return Ok(());
        }
        let key = self.history.get(op).op.key;
        let value = match running.kv.get(&key_bytes(key)) {
            None => NIL,
            Some(bytes) => parse_value(bytes).ok_or_else(|| {
                self.failure(
                    FailureKind::Safety,
                    format!("node {id}: key k{key} holds a value no client wrote"),
                )
            })?,
        };
        trace!(
            self,
            "n{id} READ op={op} k{key} -> {value} (read index {read_index} applied {})",
            running.applied
        );
        self.history.complete_read(op, value);
        self.release_client(op);
        Ok(())
    }

    /// A read that will never be served: the client hears the refusal (and
    /// follows a leader hint).
    fn fail_read(&mut self, op: OpId, why: ReadFailure) {
        if self.history.get(op).open {
            self.history.fail(op);
        }
        trace!(self, "READ op={op} failed: {why:?}");
        let client = self.history.get(op).op.client as usize;
        if self.clients[client].op.is_some_and(|(o, _)| o == op) {
            if let ReadFailure::Refused(error) = why {
                self.redirect_client(client, error);
            }
        }
        self.release_client(op);
    }

    fn apply_entry(
        &mut self,
        id: NodeId,
        running: &mut Running,
        entry: &Entry,
    ) -> Result<(), Failure> {
        match entry.kind {
            EntryKind::Noop | EntryKind::Registry | EntryKind::Config => Ok(()),
            EntryKind::Normal => {
                let command = Command::decode(&entry.data).map_err(|e| {
                    self.failure(
                        FailureKind::Safety,
                        format!(
                            "node {id}: entry {} term {} is not a command: {e:?}",
                            entry.index, entry.term
                        ),
                    )
                })?;
                running.kv.apply(&command);
                Ok(())
            }
        }
    }

    /// A write proposed at (index, term) meets what was applied at index.
    #[allow(clippy::too_many_arguments)]
    fn resolve_write(
        &mut self,
        id: NodeId,
        op: OpId,
        index: Index,
        term: Term,
        data: &Bytes,
        applied_term: Term,
        applied_data: &Bytes,
    ) -> Result<(), Failure> {
        if !self.history.get(op).open {
            return Ok(());
        }
        if applied_term == term {
            if applied_data != data {
                return Err(self.failure(
                    FailureKind::Safety,
                    format!("node {id}: index {index} term {term} was proposed with one payload and applied with another"),
                ));
            }
            trace!(self, "n{id} WRITE op={op} ok at {index}/{term}");
            self.history.complete_write(op);
        } else {
            trace!(
                self,
                "n{id} WRITE op={op} failed: {index}/{term} applied with term {applied_term}"
            );
            self.history.fail(op);
        }
        self.release_client(op);
        Ok(())
    }

    /// After applying, the node may compact its log into a snapshot of its
    /// state; the snapshot becomes its durable snapshot.
    fn maybe_compact(&mut self, i: usize, running: &mut Running) -> Result<(), Failure> {
        let node = &self.nodes[i];
        if running.applied <= node.durable.snapshot_index()
            || !chance(&mut self.rng, self.profile.compact_probability)
        {
            return Ok(());
        }
        let index = running.applied;
        let term = self.checker.applied(index).expect("applied here").term;
        let data = running.kv.snapshot();
        let members = running.raw.members_at(index);
        running.raw.compact(index, data.clone()).map_err(|e| {
            self.failure(
                FailureKind::Contract,
                format!(
                    "node {} refused to compact at its applied index: {e}",
                    self.nodes[i].id
                ),
            )
        })?;
        trace!(self, "n{} COMPACT through {index}/{term}", self.nodes[i].id);
        let node = &mut self.nodes[i];
        node.durable.persist_compaction(Snapshot {
            meta: SnapshotMeta {
                index,
                term,
                members,
            },
            data,
        });
        self.report.compactions += 1;
        Ok(())
    }

    // ---- network ----

    fn deliver_messages(&mut self) -> Result<(), Failure> {
        while let Some(message) = self.net.pop_due(self.now_tick) {
            let i = (message.to - 1) as usize;
            let node = &self.nodes[i];
            if node.running.is_none() {
                continue;
            }
            if node.paused_until_tick > self.now_tick {
                let until = node.paused_until_tick;
                self.net.hold_until(&mut self.rng, until, message);
                continue;
            }
            trace!(self, "deliver {}", describe_message(&message));
            let description = self.options.trace.then(|| describe_message(&message));
            let misdeliver = self.phase == Phase::Faults
                && chance(&mut self.rng, self.profile.misdelivery_probability);
            let garbage = self.phase == Phase::Faults
                && chance(&mut self.rng, self.profile.garbage_probability);
            let copy = (misdeliver || garbage).then(|| message.clone());
            // Reads gathered since the node's last turn ride the next
            // heartbeat round (asynchronous mode, as the node's driver).
            self.issue_open_reads(i);
            let running = self.nodes[i].running.as_mut().expect("running");
            if let Err(e) = running.raw.step(message) {
                return Err(self.failure(
                    FailureKind::Contract,
                    format!(
                        "node {} rejected a cluster message: {e} ({description:?})",
                        i + 1
                    ),
                ));
            }
            if let Some(copy) = copy {
                if misdeliver {
                    self.misdeliver(&copy)?;
                }
                if garbage {
                    self.deliver_garbage(i, &copy)?;
                }
            }
            if chance(&mut self.rng, 0.3) {
                self.process_ready(i)?;
            }
        }
        Ok(())
    }

    /// A copy of `message` reaches a running node it is not addressed to
    /// (its sender included): the node must refuse it and change nothing.
    fn misdeliver(&mut self, message: &Message) -> Result<(), Failure> {
        let others: Vec<usize> = (0..self.nodes.len())
            .filter(|&j| {
                self.nodes[j].id != message.to
                    && self.nodes[j].running.is_some()
                    && self.nodes[j].paused_until_tick <= self.now_tick
            })
            .collect();
        if others.is_empty() {
            return Ok(());
        }
        let j = others[self.rng.range(0, others.len() as u64) as usize];
        let id = self.nodes[j].id;
        trace!(self, "MISDELIVER to n{id}: {}", describe_message(message));
        let running = self.nodes[j].running.as_mut().expect("running");
        let (status, had_ready) = (running.raw.status(), running.raw.has_ready());
        let result = running.raw.step(message.clone());
        let changed = running.raw.status() != status || running.raw.has_ready() != had_ready;
        if result.is_ok() || changed {
            return Err(self.failure(
                FailureKind::Garbage,
                format!(
                    "node {id} accepted a message addressed to node {} ({result:?}, state changed: {changed}): {}",
                    message.to,
                    describe_message(message)
                ),
            ));
        }
        self.report.misdelivered += 1;
        Ok(())
    }

    /// A corrupted copy of a message just delivered to node `i` follows it.
    /// A malformed one must change nothing at all; an oversized snapshot
    /// chunk must leave the node's term, vote and log as they were.
    fn deliver_garbage(&mut self, i: usize, message: &Message) -> Result<(), Failure> {
        let id = self.nodes[i].id;
        let bound = self.nodes[i].config.snapshot_bytes_max;
        let (garbage, kind) = corrupt(&mut self.rng, message, bound);
        let description = describe_message(&garbage);
        trace!(self, "GARBAGE ({kind:?}) to n{id}: {description}");
        let running = self.nodes[i].running.as_mut().expect("running");
        let (status, had_ready) = (running.raw.status(), running.raw.has_ready());
        let result = running.raw.step(garbage);
        let after = running.raw.status();
        let changed = match kind {
            Garbage::Malformed => after != status || running.raw.has_ready() != had_ready,
            Garbage::Oversized => log_fingerprint(&after) != log_fingerprint(&status),
        };
        if result.is_err() || changed {
            return Err(self.failure(
                FailureKind::Garbage,
                format!(
                    "node {id} was changed by a {kind:?} message ({result:?}): {description}\nbefore: {status:?}\nafter: {after:?}"
                ),
            ));
        }
        self.report.garbage_delivered += 1;
        Ok(())
    }

    // ---- faults ----

    fn inject_faults(&mut self) -> Result<(), Failure> {
        self.strike_new_leaders()?;
        self.change_membership()?;
        if chance(&mut self.rng, self.profile.partition_change_probability) {
            self.change_partition();
        }
        if chance(&mut self.rng, self.profile.crash_probability) {
            if let Some(i) = self.pick_fault_target() {
                let running = self.nodes[i].running.take().expect("target is running");
                self.crash(i, running, None)?;
            }
        }
        if chance(&mut self.rng, self.profile.pause_probability) {
            if let Some(i) = self.pick_fault_target() {
                let ticks = self.rng.range(1, self.profile.pause_ticks_max + 1);
                self.nodes[i].paused_until_tick = self.now_tick + ticks;
                trace!(self, "n{} PAUSE for {ticks} ticks", i + 1);
            }
        }
        if self.profile.clock_skew && chance(&mut self.rng, 0.01) {
            let i = self.rng.range(0, self.nodes.len() as u64) as usize;
            let p = if chance(&mut self.rng, 0.3) {
                1.0
            } else {
                0.4 + 0.6 * (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
            };
            self.nodes[i].tick_probability = p;
            trace!(self, "n{} CLOCK runs at {:.2}", i + 1, p);
        }
        if chance(&mut self.rng, RECONNECT_PROBABILITY) {
            // A link broke and was redialed without a restart (or a stale
            // PeerUp): the leader forgets a live, intact peer's progress.
            let id = self.rng.range(1, self.nodes.len() as u64 + 1);
            trace!(self, "n{id} RECONNECTED to everyone");
            self.reconnect_everyone_to(id);
        }
        if chance(&mut self.rng, self.profile.transfer_probability) {
            if let Some(leader) = self.current_leader() {
                let to = self.rng.range(1, self.nodes.len() as u64 + 1);
                let running = self.nodes[leader].running.as_mut().expect("leader runs");
                let result = running.raw.transfer_leadership(to);
                trace!(self, "n{} TRANSFER to n{to}: {result:?}", leader + 1);
            }
        }
        Ok(())
    }

    /// Strikes leaders scheduled when they were elected, if they still lead
    /// in that term: cut off alone (ending any other partition, so an
    /// earlier leader may rejoin), crashed, or stalled.
    fn strike_new_leaders(&mut self) -> Result<(), Failure> {
        let now = self.now_tick;
        let (due, later): (Vec<_>, Vec<_>) = self
            .new_leader_faults
            .drain(..)
            .partition(|&(at, _, _)| at <= now);
        self.new_leader_faults = later;
        for (_, i, term) in due {
            let still_leading = self.nodes[i]
                .running
                .as_ref()
                .map(|r| r.raw.status())
                .is_some_and(|s| s.role == Role::Leader && s.term == term);
            if !still_leading {
                continue;
            }
            match self.rng.range(0, 10) {
                0..=5 => {
                    self.net.heal();
                    self.net.split(&[i as NodeId + 1]);
                    trace!(
                        self,
                        "n{} STRUCK as new leader of term {term}: PARTITION {}",
                        i + 1,
                        self.net.describe_partition()
                    );
                }
                6..=8 => {
                    trace!(
                        self,
                        "n{} STRUCK as new leader of term {term}: crash",
                        i + 1
                    );
                    let running = self.nodes[i].running.take().expect("leading");
                    self.crash(i, running, None)?;
                }
                _ => {
                    let ticks = self.rng.range(1, self.profile.pause_ticks_max + 1);
                    self.nodes[i].paused_until_tick = now + ticks;
                    trace!(
                        self,
                        "n{} STRUCK as new leader of term {term}: PAUSE for {ticks} ticks",
                        i + 1
                    );
                }
            }
        }
        Ok(())
    }

    /// A running node: the leader with the profile's probability.
    fn pick_fault_target(&mut self) -> Option<usize> {
        if chance(&mut self.rng, self.profile.target_leader_probability) {
            if let Some(leader) = self.current_leader() {
                return Some(leader);
            }
        }
        let up: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].running.is_some())
            .collect();
        if up.is_empty() {
            return None;
        }
        Some(up[self.rng.range(0, up.len() as u64) as usize])
    }

    /// The running leader of the highest term, if any.
    fn current_leader(&self) -> Option<usize> {
        (0..self.nodes.len())
            .filter_map(|i| {
                let status = self.nodes[i].running.as_ref()?.raw.status();
                (status.role == Role::Leader).then_some((status.term, i))
            })
            .max()
            .map(|(_, i)| i)
    }

    fn change_partition(&mut self) {
        let size = self.nodes.len() as NodeId;
        let all: Vec<NodeId> = (1..=size).collect();
        self.net.heal();
        match self.rng.range(0, 8) {
            0 | 1 => {}
            2 => {
                // Symmetric split into two random sides.
                let mut shuffled = all.clone();
                for i in (1..shuffled.len()).rev() {
                    let j = self.rng.range(0, i as u64 + 1) as usize;
                    shuffled.swap(i, j);
                }
                let side_len = self.rng.range(1, size) as usize;
                self.net.split(&shuffled[..side_len]);
            }
            3 => {
                // The leader alone, both ways.
                if let Some(leader) = self.current_leader() {
                    self.net.split(&[leader as NodeId + 1]);
                }
            }
            4 => {
                // The leader hears nobody but is still heard.
                if let Some(leader) = self.current_leader() {
                    let leader = leader as NodeId + 1;
                    for &other in &all {
                        self.net.block(other, leader);
                    }
                }
            }
            5 => {
                // Nobody hears the leader but it hears everyone.
                if let Some(leader) = self.current_leader() {
                    let leader = leader as NodeId + 1;
                    for &other in &all {
                        self.net.block(leader, other);
                    }
                }
            }
            6 => {
                // Random one-way links.
                for &from in &all {
                    for &to in &all {
                        if chance(&mut self.rng, 0.3) {
                            self.net.block(from, to);
                        }
                    }
                }
            }
            _ => {
                // A bridge: two sides that only one node connects.
                let bridge = self.rng.range(1, size + 1);
                let others: Vec<NodeId> = all.iter().copied().filter(|&n| n != bridge).collect();
                let (left, right) = others.split_at(others.len() / 2);
                for &a in left {
                    for &b in right {
                        self.net.block(a, b);
                        self.net.block(b, a);
                    }
                }
            }
        }
        trace!(self, "PARTITION {}", self.net.describe_partition());
    }

    fn heal(&mut self) -> Result<(), Failure> {
        self.phase = Phase::Healing;
        self.net.heal();
        self.net.faults = NetworkFaults::healed();
        for node in &mut self.nodes {
            node.paused_until_tick = 0;
            node.tick_probability = 1.0;
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].running.is_none() && !self.nodes[i].absent {
                self.start(i)?;
            }
        }
        trace!(self, "HEAL: network healed, every node up, clocks in step");
        Ok(())
    }

    // ---- clients ----

    fn run_clients(&mut self) -> Result<(), Failure> {
        for c in 0..self.clients.len() {
            if self.clients[c].op.is_some()
                || self.clients[c].idle_until_tick > self.now_tick
                || !chance(&mut self.rng, self.profile.client_op_probability)
            {
                continue;
            }
            let hint = self.clients[c].leader_hint;
            let target = if hint != NO_NODE && chance(&mut self.rng, 0.85) {
                hint
            } else {
                self.rng.range(1, self.nodes.len() as u64 + 1)
            };
            let i = (target - 1) as usize;
            if self.nodes[i].running.is_none() || self.nodes[i].paused_until_tick > self.now_tick {
                // Connection refused or no answer: never invoked.
                self.clients[c].leader_hint = NO_NODE;
                continue;
            }
            let key = self.rng.range(0, self.profile.keys);
            if chance(&mut self.rng, self.profile.read_probability) {
                self.client_read(c, i, key);
            } else {
                self.client_write(c, i, key);
            }
        }
        Ok(())
    }

    fn client_read(&mut self, c: usize, i: usize, key: u64) {
        if self.disk.is_some() {
            return self.client_read_batched(c, i, key);
        }
        let op = self.history.invoke_read(c as u64, key);
        let running = self.nodes[i].running.as_mut().expect("running");
        let result = running.raw.read_index(op);
        trace!(
            self,
            "client {c} READ op={op} k{key} at n{}: {result:?}",
            i + 1
        );
        let running = self.nodes[i].running.as_mut().expect("running");
        match result {
            Ok(()) => {
                running.reads_requested.insert(op, op);
                self.clients[c].op = Some((op, self.now_tick + CLIENT_TIMEOUT_TICKS));
            }
            Err(error) => {
                self.history.fail(op);
                self.redirect_client(c, error);
            }
        }
    }

    fn client_write(&mut self, c: usize, i: usize, key: u64) {
        let (op, value) = self.history.invoke_write(c as u64, key);
        let data = Command::Set {
            key: key_bytes(key),
            value: Bytes::from(value.to_string()),
        }
        .encode();
        let running = self.nodes[i].running.as_mut().expect("running");
        let result = running.raw.propose(data.clone());
        trace!(
            self,
            "client {c} WRITE op={op} k{key}={value} at n{}: {result:?}",
            i + 1
        );
        let running = self.nodes[i].running.as_mut().expect("running");
        match result {
            Ok((term, index)) => {
                // A proposal at an index this node proposed before replaces
                // it; the older one stays open until the log decides it.
                running.proposed.insert(index, (term, op, data));
                self.history.set_proposal(
                    op,
                    Proposal {
                        node: i as NodeId + 1,
                        term,
                        index,
                    },
                );
                self.clients[c].op = Some((op, self.now_tick + CLIENT_TIMEOUT_TICKS));
            }
            Err(error) => {
                self.history.fail(op);
                self.redirect_client(c, error);
            }
        }
    }

    fn redirect_client(&mut self, c: usize, error: ProposeError) {
        self.clients[c].leader_hint = match error {
            ProposeError::NotLeader { leader } => leader,
            _ => NO_NODE,
        };
        if self.clients[c].leader_hint == NO_NODE {
            self.clients[c].idle_until_tick =
                self.now_tick + self.rng.range(1, CLIENT_BACKOFF_TICKS_MAX + 1);
        }
    }

    /// The client is free again once its operation ended (or was abandoned).
    fn release_client(&mut self, op: OpId) {
        let client = self.history.get(op).op.client as usize;
        if self.clients[client].op.is_some_and(|(o, _)| o == op) {
            self.clients[client].op = None;
        }
    }

    /// Clients give up: an abandoned read failed; an abandoned write stays
    /// open (unknown) until the log decides it.
    fn expire_client_ops(&mut self) {
        for c in 0..self.clients.len() {
            let Some((op, deadline)) = self.clients[c].op else {
                continue;
            };
            if deadline > self.now_tick {
                continue;
            }
            self.clients[c].op = None;
            self.clients[c].leader_hint = NO_NODE;
            if matches!(self.history.get(op).op.kind, OpKind::Read(_)) && self.history.get(op).open
            {
                self.history.fail(op);
            }
            trace!(self, "client {c} TIMEOUT op={op}");
        }
    }

    // ---- end of run ----

    /// A leader that every node follows, in its term.
    /// A leader that every member of its newest configuration (and of the
    /// one before it, while a change is pending) follows in its term. A
    /// node outside them (a joiner whose
    /// addition was truncated away, not yet stopped because the leader has
    /// not settled) need not follow it: nobody replicates to it.
    fn stable_leader(&self) -> Option<(usize, Status)> {
        let statuses: Vec<Status> = self
            .nodes
            .iter()
            .filter(|n| !n.absent)
            .map(|n| n.running.as_ref().map(|r| r.raw.status()))
            .collect::<Option<Vec<_>>>()?;
        let leader = statuses.iter().position(|s| s.role == Role::Leader)?;
        let (term, id) = (statuses[leader].term, statuses[leader].id);
        let (members, previous) = (&statuses[leader].members, &statuses[leader].previous_voters);
        let member = |s: &Status| {
            members.is_empty() || members.iter().any(|m| m.id == s.id) || previous.contains(&s.id)
        };
        statuses
            .iter()
            .filter(|s| member(s))
            .all(|s| s.term == term && s.leader_id == id)
            .then(|| ((id - 1) as usize, statuses[leader].clone()))
    }

    /// How long the node furthest behind the leader may take to catch up
    /// at the slowest pace the configuration allows (see
    /// `HEALED_ROUND_TRIP_TICKS_MAX`).
    fn catch_up_ticks_max(&self) -> u64 {
        let Some((_, leader)) = self.stable_leader() else {
            return 0;
        };
        let lag = self
            .nodes
            .iter()
            .filter_map(|n| n.running.as_ref())
            .map(|r| leader.last_index.saturating_sub(r.applied))
            .max()
            .unwrap_or(0);
        let inflight = self.nodes[0].config.inflight_appends_max as u64;
        lag * HEALED_ROUND_TRIP_TICKS_MAX / inflight
    }

    fn converged(&self) -> bool {
        let Some((_, leader)) = self.stable_leader() else {
            return false;
        };
        if self.clients.iter().any(|c| c.op.is_some()) {
            return false;
        }
        let last = leader.last_index;
        let mut digest = None;
        for node in self.nodes.iter().filter(|n| !n.absent) {
            let running = node.running.as_ref().expect("stable leader means all up");
            let status = running.raw.status();
            if running.applied != last || status.commit_index != last || status.last_index != last {
                return false;
            }
            let incarnation_unknown = leader
                .members
                .iter()
                .any(|m| m.id == node.id && m.incarnation == NO_INCARNATION);
            if !status.registered && !incarnation_unknown {
                // A wiped node must also be re-admitted as a member (a
                // learner added without its incarnation gets it when
                // promoted).
                return false;
            }
            let node_digest = running.kv.digest();
            if *digest.get_or_insert(node_digest) != node_digest {
                return false;
            }
        }
        true
    }

    /// After convergence: decide open writes from the log, check every
    /// acknowledged write is durable, then check linearizability.
    fn final_checks(&mut self) -> Result<(), Failure> {
        let final_index = self
            .first_present()
            .running
            .as_ref()
            .expect("converged")
            .applied;
        self.report.final_applied_index = final_index;
        if self.checker.applied_len() != final_index {
            return Err(self.failure(
                FailureKind::Safety,
                format!(
                    "state machine safety: nodes converged at index {final_index} but index {} was applied before",
                    self.checker.applied_len()
                ),
            ));
        }
        // Every log must now be the same log (as handed to storage: some
        // of it may still wait for its fsync in the asynchronous mode).
        for a in 0..self.nodes.len() {
            for b in a + 1..self.nodes.len() {
                let (x, y) = (self.log_of(a), self.log_of(b));
                for entry in &x.entries {
                    if let Some(term) = y.term_at(entry.index) {
                        if term != entry.term {
                            return Err(self.failure(
                                FailureKind::Safety,
                                format!(
                                    "log matching: after convergence node {} has term {} at index {}, node {} term {term}",
                                    a + 1,
                                    entry.term,
                                    entry.index,
                                    b + 1
                                ),
                            ));
                        }
                    }
                }
            }
        }
        // Open writes: the converged log decides them. An index beyond it
        // holds nothing and never will (every log ends there).
        for (op, proposal) in self.history.open_writes() {
            let Some(proposal) = proposal else {
                continue;
            };
            match self.checker.applied(proposal.index) {
                Some(record) if record.term == proposal.term => {
                    let value = self.history.get(op).op.kind;
                    if entry_value(&record.data).map(OpKind::Write) != Some(value) {
                        return Err(self.failure(
                            FailureKind::Safety,
                            format!(
                                "index {} term {} was proposed for op {op} but holds another payload",
                                proposal.index, proposal.term
                            ),
                        ));
                    }
                    let at = record.first_applied_at;
                    self.history.complete_write_at(op, at);
                }
                _ => self.history.fail(op),
            }
        }
        // No acknowledged write lost.
        for (op, record) in self.history.ok_writes() {
            let proposal = record.proposal.expect("an ok write was proposed");
            let applied = self.checker.applied(proposal.index);
            let held = applied.is_some_and(|a| {
                a.term == proposal.term
                    && entry_value(&a.data).map(OpKind::Write) == Some(record.op.kind)
            });
            if !held || proposal.index > final_index {
                return Err(self.failure(
                    FailureKind::Safety,
                    format!(
                        "acknowledged write op {op} at index {} term {} is not in the final state",
                        proposal.index, proposal.term
                    ),
                ));
            }
        }
        self.report.history = self.history.stats();
        if self.disk.is_some() {
            self.report.disk.runs = 1;
            for node in &self.nodes {
                if let Some(driver) = node.running.as_ref().and_then(|r| r.driver.as_ref()) {
                    self.report.disk.add(&driver.wal.stats);
                }
            }
        }
        let operations = self.history.operations();
        match check_history(&operations) {
            Ok(stats) => {
                self.report.ops_checked = stats.operations;
                self.report.network = self.net.stats;
                trace!(
                    self,
                    "END applied={final_index} digest={} history={:?} checked={} leaders={}",
                    hex(&self
                        .first_present()
                        .running
                        .as_ref()
                        .expect("up")
                        .kv
                        .digest()),
                    self.report.history,
                    stats.operations,
                    self.report.leaders
                );
                Ok(())
            }
            Err(error) => Err(self.failure(FailureKind::Linearizability, error.to_string())),
        }
    }

    /// The first node that is a member (after convergence: running).
    fn first_present(&self) -> &SimNode {
        self.nodes
            .iter()
            .find(|n| !n.absent)
            .expect("a cluster keeps voters")
    }

    /// Node `i`'s log as handed to storage.
    fn log_of(&self, i: usize) -> &DurableStore {
        let node = &self.nodes[i];
        node.running
            .as_ref()
            .and_then(|r| r.driver.as_ref())
            .map_or(&node.durable, |d| &d.wal.submitted)
    }

    // ---- trace ----

    fn trace_ready(&self, id: NodeId, ready: &Ready, status: &Status, running: &mut Running) {
        if (status.role, status.term) != (running.role, running.term) {
            trace!(
                self,
                "n{id} ROLE {}@{} -> {}@{} (leader n{})",
                running.role.as_str(),
                running.term,
                status.role.as_str(),
                status.term,
                status.leader_id
            );
            running.role = status.role;
            running.term = status.term;
        }
        if !self.options.trace {
            return;
        }
        for event in &ready.events {
            trace!(self, "n{id} EVENT {event:?}");
        }
        if let Some(hard_state) = ready.hard_state {
            trace!(self, "n{id} hard state {hard_state:?}");
        }
        if let Some(snapshot) = &ready.snapshot {
            trace!(
                self,
                "n{id} snapshot {}/{} ({} bytes)",
                snapshot.meta.index,
                snapshot.meta.term,
                snapshot.data.len()
            );
        }
        if let (Some(first), Some(last)) = (ready.entries.first(), ready.entries.last()) {
            trace!(
                self,
                "n{id} persist entries {}/{}..{}/{}",
                first.index,
                first.term,
                last.index,
                last.term
            );
        }
        if let (Some(first), Some(last)) = (
            ready.committed_entries.first(),
            ready.committed_entries.last(),
        ) {
            trace!(self, "n{id} apply {}..{}", first.index, last.index);
        }
        for message in &ready.messages {
            trace!(self, "n{id} send {}", describe_message(message));
        }
        for message in &ready.persisted_messages {
            trace!(
                self,
                "n{id} send once persisted {}",
                describe_message(message)
            );
        }
    }

    fn describe_cluster(&self) -> String {
        let mut lines = Vec::new();
        for node in &self.nodes {
            let durable = &node.durable;
            let state =
                match &node.running {
                    None => "down".to_string(),
                    Some(running) => {
                        let s = running.raw.status();
                        format!(
                        "{} term={} vote={} leader={} commit={} applied={} first={} last={}/{}{} \
                         voters={:?} learners={:?} joint_with={:?} config_at={} registered={}",
                        s.role.as_str(),
                        s.term,
                        s.vote,
                        s.leader_id,
                        s.commit_index,
                        running.applied,
                        s.first_index,
                        s.last_index,
                        s.last_term,
                        if node.paused_until_tick > self.now_tick { " paused" } else { "" },
                        s.voters(),
                        s.learners(),
                        s.previous_voters,
                        s.membership_index,
                        s.registered
                    )
                    }
                };
            let pending = node
                .running
                .as_ref()
                .and_then(|r| r.driver.as_ref())
                .map_or(String::new(), |d| {
                    format!(
                        "; handed over last={}, {} jobs not yet reported durable",
                        d.wal.submitted.last_index(),
                        d.pipeline.jobs_in_flight()
                    )
                });
            lines.push(format!(
                "  n{}: {state}; durable term={} vote={} snapshot={} last={}{pending}",
                node.id,
                durable.hard_state.term,
                durable.hard_state.vote,
                durable.snapshot_index(),
                durable.last_index()
            ));
        }
        lines.push(format!("  network: {}", self.net.describe_partition()));
        lines.join("\n")
    }
}

/// The same configuration for every node of a run, varied between runs so
/// batching, pipelining and chunking limits are all exercised.
fn draw_config(
    rng: &mut Rng,
    options: &SimOptions,
    profile: &FaultProfile,
    voters: Vec<NodeId>,
) -> Config {
    let mut config = Config::new(voters[0], voters);
    let mut pick = |choices: &[usize]| choices[rng.range(0, choices.len() as u64) as usize];
    config.heartbeat_ticks = pick(&[1, 2]) as u64;
    config.election_ticks_min = ELECTION_TICKS_MIN;
    config.election_ticks_max = ELECTION_TICKS_MAX;
    config.inflight_appends_max = pick(&[1, 4, 64]);
    config.entries_per_append_max = pick(&[1, 3, 64]);
    config.bytes_per_append_max = pick(&[64, 1 << 20]);
    config.snapshot_chunk_bytes_max = pick(&[16, 256, 1 << 20]);
    config.uncommitted_entries_max = pick(&[16, 10_000]);
    // Far above the few hundred bytes a simulated state machine holds; the
    // garbage fault sends chunks just past it.
    config.snapshot_bytes_max = pick(&[1 << 12, 1 << 16]);
    if profile.regime == Regime::LeaderChurn {
        // One entry per append: followers acknowledge earlier-term entries
        // separately from the new leader's no-op.
        config.entries_per_append_max = 1;
    }
    config.pre_vote = rng.range(0, 5) != 0;
    config.check_quorum = rng.range(0, 5) != 0;
    config.planted_bug = match options.planted_bug {
        Some(Planted::Core(bug)) => Some(bug),
        _ => None,
    };
    config
}

/// What a node believes about its term, vote and log.
fn log_fingerprint(status: &Status) -> (Term, NodeId, Index, Index, Index, Term, Index) {
    (
        status.term,
        status.vote,
        status.commit_index,
        status.first_index,
        status.last_index,
        status.last_term,
        status.snapshot_index,
    )
}

/// The written value a Set entry carries.
fn entry_value(data: &Bytes) -> Option<Value> {
    match Command::decode(data).ok()? {
        Command::Set { value, .. } => parse_value(&value),
        _ => None,
    }
}

fn parse_value(bytes: &[u8]) -> Option<Value> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

pub fn describe_message(message: &Message) -> String {
    let body = match &message.body {
        Body::PreVote {
            last_index,
            last_term,
            commit,
            ..
        } => format!("PreVote(last={last_index}/{last_term}, commit={commit})"),
        Body::PreVoteReply { granted } => format!("PreVoteReply(granted={granted})"),
        Body::Vote {
            last_index,
            last_term,
            leadership_transfer,
            commit,
            ..
        } => format!(
            "Vote(last={last_index}/{last_term}, transfer={leadership_transfer}, commit={commit})"
        ),
        Body::VoteReply { granted } => format!("VoteReply(granted={granted})"),
        Body::Append {
            prev_index,
            prev_term,
            entries,
            commit,
        } => match (entries.first(), entries.last()) {
            (Some(first), Some(last)) => format!(
                "Append(prev={prev_index}/{prev_term}, entries={}/{}..{}/{}, commit={commit})",
                first.index, first.term, last.index, last.term
            ),
            _ => format!("Append(prev={prev_index}/{prev_term}, no entries, commit={commit})"),
        },
        Body::AppendReply { outcome } => format!("AppendReply({outcome:?})"),
        Body::Heartbeat { commit, read_round } => {
            format!("Heartbeat(commit={commit}, round={read_round})")
        }
        Body::HeartbeatReply { read_round } => format!("HeartbeatReply(round={read_round})"),
        Body::Snapshot {
            meta,
            offset,
            chunk,
            done,
        } => format!(
            "Snapshot({}/{}, offset={offset}, {} bytes, done={done})",
            meta.index,
            meta.term,
            chunk.len()
        ),
        Body::SnapshotReply {
            index,
            next_offset,
            done,
        } => format!("SnapshotReply({index}, next_offset={next_offset}, done={done})"),
        Body::TimeoutNow => "TimeoutNow".to_string(),
    };
    format!(
        "n{}->n{} t{} {body}",
        message.from, message.to, message.term
    )
}
