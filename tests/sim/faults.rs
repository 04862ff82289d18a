//! The fault mix of one simulated run, drawn from the seed (swarm testing:
//! each run enables a random subset of faults at random intensities, so
//! some runs are calm enough to make progress and others are hostile).

use bytes::Bytes;
use raftkv::message::{Body, Message, INDEX_MAX, TERM_MAX};
use raftkv::raft::Rng;

use super::net::{chance, NetworkFaults};

/// The broad shape of a run's faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Regime {
    /// A random subset of every fault at random intensities.
    Swarm,
    /// Leaders crash, stall and get cut off again and again, shortly after
    /// they were elected, with small append batches: the histories of
    /// Raft's Figure 8, where entries of earlier terms sit on some nodes
    /// while several leaders come and go.
    LeaderChurn,
}

/// Everything that varies between runs, apart from the cluster size.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultProfile {
    pub regime: Regime,
    /// Ticks of the fault phase; afterwards the cluster is healed.
    pub fault_phase_ticks: u64,
    pub network: NetworkFaults,
    /// Per tick: the partition changes (new one, or healed).
    pub partition_change_probability: f64,
    /// Per tick: a running node crashes.
    pub crash_probability: f64,
    /// Per handled Ready: the node crashes part-way through it.
    pub crash_in_ready_probability: f64,
    /// A crashed node restarts after 1..=this many ticks.
    pub restart_ticks_max: u64,
    /// Per crash: the node's disk is lost too, and it restarts empty as a
    /// new incarnation (only while enough intact members remain; see
    /// `Sim::may_wipe`).
    pub wipe_probability: f64,
    /// Per tick: a running node stalls (no ticks, no input) for a while.
    pub pause_probability: f64,
    pub pause_ticks_max: u64,
    /// Nodes' clocks drift: some tick only on a fraction of simulated ticks.
    pub clock_skew: bool,
    /// Per handled Ready: the node compacts its log into a snapshot.
    pub compact_probability: f64,
    /// Per tick: the leader is asked to hand leadership to another node.
    pub transfer_probability: f64,
    /// Chance a crash, stall or partition picks the leader rather than any node.
    pub target_leader_probability: f64,
    /// Chance a newly elected leader is struck (cut off, crashed or
    /// stalled) within `new_leader_fault_ticks_max` ticks of its election.
    pub new_leader_fault_probability: f64,
    pub new_leader_fault_ticks_max: u64,
    /// Chance a leader is cut off right after it applies newly committed
    /// entries, so its next appends are lost in flight.
    pub leader_commit_strike_probability: f64,
    /// Per delivered message: a copy also reaches a node it is not
    /// addressed to, which must refuse it.
    pub misdelivery_probability: f64,
    /// Per delivered message: a corrupted copy (see `corrupt`) follows it,
    /// which must change nothing the receiver believes.
    pub garbage_probability: f64,
    /// Per tick and idle client: the client starts an operation.
    pub client_op_probability: f64,
    pub read_probability: f64,
    pub clients: usize,
    /// Keys are k0..k<keys>; few keys make many operations collide.
    pub keys: u64,
    /// Per tick: the leader is asked to change the membership (add a
    /// learner, promote one, remove a member; see `Sim::change_membership`).
    pub membership_change_probability: f64,
}

/// Share of runs whose membership changes during the fault phase.
pub const MEMBERSHIP_CHANGES_PROBABILITY: f64 = 0.75;

/// Fault phase length: long enough for several leader changes, short
/// enough that 1,000 runs per cluster size take a few minutes.
pub const FAULT_PHASE_TICKS_MIN: u64 = 1_000;
pub const FAULT_PHASE_TICKS_MAX: u64 = 2_400;
/// Share of runs in the leader-churn regime.
pub const LEADER_CHURN_PROBABILITY: f64 = 0.3;

fn uniform(rng: &mut Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

impl FaultProfile {
    pub fn draw(rng: &mut Rng) -> Self {
        let mut profile = if chance(rng, LEADER_CHURN_PROBABILITY) {
            Self::draw_leader_churn(rng)
        } else {
            Self::draw_swarm(rng)
        };
        if chance(rng, MEMBERSHIP_CHANGES_PROBABILITY) {
            profile.membership_change_probability = uniform(rng, 0.005, 0.04);
        }
        profile
    }

    fn draw_swarm(rng: &mut Rng) -> Self {
        // Each fault is on in most runs and off in some.
        let mut on = |p: f64| chance(rng, p);
        let drops = on(0.6);
        let duplicates = on(0.4);
        let spikes = on(0.5);
        let partitions = on(0.75);
        let crashes = on(0.6);
        let wipes = on(0.4);
        let crashes_in_ready = on(0.5);
        let pauses = on(0.4);
        let clock_skew = on(0.4);
        let compaction = on(0.7);
        let transfers = on(0.3);
        let new_leader_faults = on(0.3);
        let mut when =
            |enabled: bool, lo: f64, hi: f64| if enabled { uniform(rng, lo, hi) } else { 0.0 };
        let drop_probability = when(drops, 0.01, 0.2);
        let duplicate_probability = when(duplicates, 0.01, 0.1);
        let spike_probability = when(spikes, 0.002, 0.03);
        let partition_change_probability = when(partitions, 0.005, 0.04);
        let crash_probability = when(crashes, 0.002, 0.015);
        let crash_in_ready_probability = when(crashes_in_ready, 0.0005, 0.005);
        let wipe_probability = when(wipes, 0.05, 0.5);
        let pause_probability = when(pauses, 0.002, 0.01);
        let compact_probability = when(compaction, 0.005, 0.1);
        let transfer_probability = when(transfers, 0.002, 0.01);
        let target_leader_probability = when(true, 0.2, 0.8);
        let new_leader_fault_probability = when(new_leader_faults, 0.05, 0.3);
        let leader_commit_strike_probability = when(new_leader_faults, 0.01, 0.1);
        let client_op_probability = when(true, 0.1, 0.6);
        let read_probability = when(true, 0.2, 0.6);
        let delay_ticks_max = rng.range(1, 6);
        let misdelivery_probability = if chance(rng, 0.3) {
            uniform(rng, 0.001, 0.02)
        } else {
            0.0
        };
        let garbage_probability = if chance(rng, 0.3) {
            uniform(rng, 0.001, 0.02)
        } else {
            0.0
        };
        FaultProfile {
            regime: Regime::Swarm,
            fault_phase_ticks: rng.range(FAULT_PHASE_TICKS_MIN, FAULT_PHASE_TICKS_MAX + 1),
            network: NetworkFaults {
                drop_probability,
                duplicate_probability,
                delay_ticks_min: 1,
                delay_ticks_max,
                spike_probability,
                spike_delay_ticks_max: if spikes { rng.range(20, 120) } else { 0 },
            },
            partition_change_probability,
            crash_probability,
            crash_in_ready_probability,
            restart_ticks_max: rng.range(5, 80),
            wipe_probability,
            pause_probability,
            pause_ticks_max: rng.range(10, 60),
            clock_skew,
            compact_probability,
            transfer_probability,
            target_leader_probability,
            new_leader_fault_probability,
            new_leader_fault_ticks_max: rng.range(1, 10),
            leader_commit_strike_probability,
            misdelivery_probability,
            garbage_probability,
            client_op_probability,
            read_probability,
            clients: rng.range(2, 7) as usize,
            keys: rng.range(1, 6),
            membership_change_probability: 0.0,
        }
    }

    fn draw_leader_churn(rng: &mut Rng) -> Self {
        FaultProfile {
            regime: Regime::LeaderChurn,
            fault_phase_ticks: rng.range(FAULT_PHASE_TICKS_MIN, FAULT_PHASE_TICKS_MAX + 1),
            network: NetworkFaults {
                drop_probability: uniform(rng, 0.05, 0.25),
                duplicate_probability: uniform(rng, 0.0, 0.05),
                delay_ticks_min: 1,
                delay_ticks_max: rng.range(1, 4),
                spike_probability: uniform(rng, 0.0, 0.01),
                spike_delay_ticks_max: rng.range(20, 60),
            },
            partition_change_probability: uniform(rng, 0.02, 0.06),
            crash_probability: uniform(rng, 0.02, 0.05),
            crash_in_ready_probability: uniform(rng, 0.001, 0.01),
            restart_ticks_max: rng.range(5, 30),
            wipe_probability: uniform(rng, 0.0, 0.3),
            pause_probability: uniform(rng, 0.0, 0.01),
            pause_ticks_max: rng.range(10, 40),
            clock_skew: chance(rng, 0.3),
            compact_probability: uniform(rng, 0.0, 0.05),
            transfer_probability: uniform(rng, 0.0, 0.005),
            target_leader_probability: uniform(rng, 0.8, 1.0),
            new_leader_fault_probability: uniform(rng, 0.3, 0.8),
            new_leader_fault_ticks_max: rng.range(1, 25),
            leader_commit_strike_probability: uniform(rng, 0.05, 0.3),
            misdelivery_probability: uniform(rng, 0.0, 0.005),
            garbage_probability: uniform(rng, 0.0, 0.005),
            client_op_probability: uniform(rng, 0.4, 0.8),
            read_probability: uniform(rng, 0.1, 0.4),
            clients: rng.range(3, 7) as usize,
            keys: rng.range(1, 4),
            membership_change_probability: 0.0,
        }
    }
}

/// What a corrupted copy of a message must do to its receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Garbage {
    /// No correct peer sends it: it changes nothing at all, and nothing is
    /// sent in reply.
    Malformed,
    /// A snapshot chunk past the receiver's `snapshot_bytes_max`: refused
    /// without touching the log (it may still count as leader contact).
    Oversized,
}

/// A corrupted copy of `message`, as a buggy or hostile peer would send it:
/// a term or index beyond what any real cluster reaches, append entries out
/// of order or of a later term than the message, a snapshot chunk of a
/// later term or whose bytes would end past `u64::MAX`, or a last snapshot
/// chunk that continues the transfer right where `message` left it but
/// takes it past `snapshot_bytes_max`.
pub fn corrupt(rng: &mut Rng, message: &Message, snapshot_bytes_max: usize) -> (Message, Garbage) {
    let mut garbage = message.clone();
    let term = message.term;
    let mut kind = Garbage::Malformed;
    match &mut garbage.body {
        Body::Append {
            prev_index,
            entries,
            ..
        } => match rng.range(0, 4) {
            0 if !entries.is_empty() => {
                let at = rng.range(0, entries.len() as u64) as usize;
                entries[at].index += rng.range(1, 4);
            }
            1 if !entries.is_empty() => {
                let at = rng.range(0, entries.len() as u64) as usize;
                entries[at].term = term + rng.range(1, 10);
            }
            2 => *prev_index = INDEX_MAX + rng.range(1, 1_000),
            _ => garbage.term = garbage_term(rng),
        },
        Body::Snapshot {
            meta,
            offset,
            chunk,
            done,
        } => match rng.range(0, 6) {
            0 => meta.index = INDEX_MAX + rng.range(1, 1_000),
            1 => meta.term = term + rng.range(1, 10),
            2 => {
                *offset = u64::MAX;
                *chunk = Bytes::from_static(b"x");
            }
            _ => {
                *offset += chunk.len() as u64;
                *chunk = Bytes::from(vec![0u8; snapshot_bytes_max + 1]);
                *done = true;
                kind = Garbage::Oversized;
            }
        },
        _ => garbage.term = garbage_term(rng),
    }
    (garbage, kind)
}

/// A term beyond `TERM_MAX`, sometimes the very last one.
fn garbage_term(rng: &mut Rng) -> u64 {
    if chance(rng, 0.2) {
        u64::MAX
    } else {
        rng.range(TERM_MAX + 1, u64::MAX)
    }
}
