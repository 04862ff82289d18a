//! The consensus core: a pure, deterministic Raft driven by `RawNode`.
//!
//! Modelled on etcd-io/raft's RawNode/Ready design. Time enters as `tick()`,
//! input as `step(message)`, `propose(data)` and `read_index(context)`;
//! everything to persist, send and apply comes out of `ready()` and is
//! acknowledged with `advance()`. No I/O, no clock, no threads, no global RNG.
//!
//! The contract with the caller (the node's driver or the simulator):
//! 1. `let ready = node.ready();` (at most one un-acknowledged Ready at a time)
//! 2. send `ready.messages` (safe before persisting);
//! 3. durably persist `ready.snapshot`, `ready.hard_state`, `ready.entries`
//!    (entries[0].index may be <= the last persisted index: truncate the
//!    durable log from there first; a `ready.snapshot` replaces the whole
//!    durable log: drop every entry, then append `ready.entries`);
//! 4. only then send `ready.persisted_messages` (votes, append acks);
//! 5. restore the state machine from `ready.snapshot`, apply
//!    `ready.committed_entries` in order, answer `ready.read_states` once
//!    applied >= their index;
//! 6. `node.advance(ready.ack())` (take `ack()` before moving fields out).
//!
//! Persisting asynchronously (as the node's WAL thread does) is allowed:
//! hand a Ready's snapshot, entries and hard state to a writer that makes
//! them durable in the order the Readies came, apply its committed entries
//! at once (they are durable on a majority), and acknowledge it with
//! `persisted_last: None`; then go on stepping and taking Readies. When the
//! writer reports Readies durable, send their `persisted_messages` (and
//! those of every Ready before them), then call `advance` with the last
//! entry now durable as `persisted_last`, in as many pieces as it reports.
//! A change of term or vote must be durable before that Ready's
//! `persisted_messages` leave; a hard state that only moves `commit` may
//! wait for the next write. `tests/sim` runs the core both ways.

mod config;
mod log;
pub mod membership;
mod progress;
mod quorum;
mod raw_node;
mod read_only;
#[cfg(test)]
mod tests;

#[cfg(feature = "planted-bugs")]
pub use config::PlantedBug;
pub use config::{Config, ConfigError, ELECTION_TICKS_PER_HEARTBEAT_MIN};
pub use raw_node::RawNode;

use crate::message::{Entry, Incarnation, Index, Message, NodeId, Snapshot, Term};
use membership::Member;

/// State that must be durable before any message depending on it is sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HardState {
    pub term: Term,
    /// Who this node voted for in `term` (`NO_NODE` = nobody).
    pub vote: NodeId,
    /// Which incarnation of `vote` it voted for (`NO_INCARNATION`: unknown,
    /// as in hard states written before incarnations): a new life of the
    /// same node id asking in the same term gets no second vote.
    pub vote_incarnation: Incarnation,
    /// Highest index known committed (persisting it is an optimisation:
    /// after restart it only bounds how far the node may re-apply at once).
    pub commit: Index,
}

/// What a node starts from: exactly what was reported persisted before.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InitialState {
    pub hard_state: HardState,
    /// The newest durable snapshot, if any; the state machine has been
    /// restored from it by the caller, so applied = snapshot index.
    pub snapshot: Option<Snapshot>,
    /// Durable log entries after the snapshot (contiguous, ascending).
    pub entries: Vec<Entry>,
}

/// The role a node plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

impl Role {
    /// Lowercase name as shown by RAFT.STATUS.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Follower => "follower",
            Role::PreCandidate => "precandidate",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
        }
    }
}

/// A linearizable read that became safe: serve it once applied >= `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    pub context: u64,
    pub index: Index,
}

/// Why a leader stopped leading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepDownReason {
    /// A message carried a higher term.
    HigherTerm,
    /// Check-quorum: no majority heard from within an election timeout.
    LostQuorum,
    /// Leadership was handed to another node.
    Transferred,
    /// This node is not a voter of the committed configuration (it was
    /// removed, or was elected as a learner): it hands leadership over.
    Removed,
}

/// Observable events for the node's log (and the simulator's trace).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The election timer fired; `ticks_since_leader_contact` is how long
    /// this node had not heard from a leader (None if it never had one).
    ElectionTimeout {
        term: Term,
        ticks_since_leader_contact: Option<u64>,
    },
    BecamePreCandidate {
        term: Term,
    },
    BecameCandidate {
        term: Term,
    },
    BecameLeader {
        term: Term,
    },
    BecameFollower {
        term: Term,
        leader: NodeId,
    },
    SteppedDown {
        term: Term,
        reason: StepDownReason,
    },
    /// This node granted or refused a (pre-)vote to `candidate`.
    VoteGranted {
        candidate: NodeId,
        term: Term,
        pre_vote: bool,
    },
    VoteRefused {
        candidate: NodeId,
        term: Term,
        pre_vote: bool,
        reason: &'static str,
    },
    /// This node started or finished sending a snapshot to `to`.
    SnapshotSent {
        to: NodeId,
        index: Index,
        term: Term,
        bytes: u64,
    },
    SnapshotInstalled {
        index: Index,
        term: Term,
    },
    TransferStarted {
        to: NodeId,
        term: Term,
    },
    TransferAborted {
        to: NodeId,
        term: Term,
    },
    /// A message came from another incarnation of `peer` than the
    /// registered one: it lost its disk, and is not counted as a voter
    /// until it is re-admitted. Reported once per (peer, incarnation).
    PeerIncarnationChanged {
        peer: NodeId,
        incarnation: Incarnation,
        registered: Incarnation,
    },
    /// Leader: `peer` (incarnation `incarnation`) holds everything
    /// committed (through `match_index`); the configuration naming it was
    /// appended at `index`.
    ReadmissionProposed {
        peer: NodeId,
        incarnation: Incarnation,
        index: Index,
        match_index: Index,
    },
    /// This node's log registers another incarnation (`registered`) for its
    /// id: it lost its disk, and waits to be re-admitted. Reported once.
    AwaitingReadmission {
        incarnation: Incarnation,
        registered: Incarnation,
    },
    /// The committed configuration now names `incarnation` for voter `peer`
    /// where it named another life before (the commit index reached
    /// `index`): it counts as a voter again.
    MemberReadmitted {
        peer: NodeId,
        incarnation: Incarnation,
        index: Index,
    },
    /// The committed configuration changed (the commit index reached
    /// `index`): these are now its voters and learners.
    MembershipCommitted {
        index: Index,
        voters: Vec<NodeId>,
        learners: Vec<NodeId>,
    },
}

/// Everything the caller must do, in the order of the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    pub hard_state: Option<HardState>,
    pub entries: Vec<Entry>,
    pub snapshot: Option<Snapshot>,
    pub messages: Vec<Message>,
    pub persisted_messages: Vec<Message>,
    pub committed_entries: Vec<Entry>,
    pub read_states: Vec<ReadState>,
    /// Read contexts that will never become safe (leadership lost): tell
    /// those clients to retry elsewhere.
    pub dropped_reads: Vec<u64>,
    pub events: Vec<Event>,
}

/// What `advance` needs to know about a handled Ready.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadyAck {
    /// (index, term) of the last entry made durable, if any.
    pub persisted_last: Option<(Index, Term)>,
    /// Index of the snapshot made durable and restored, if any.
    pub snapshot_index: Option<Index>,
    /// Index of the last committed entry applied, if any.
    pub applied: Option<Index>,
}

impl Ready {
    /// Take this before moving fields out of the Ready.
    pub fn ack(&self) -> ReadyAck {
        ReadyAck {
            persisted_last: self.entries.last().map(|e| (e.index, e.term)),
            snapshot_index: self.snapshot.as_ref().map(|s| s.meta.index),
            applied: self.committed_entries.last().map(|e| e.index),
        }
    }

    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self == &Ready::default()
    }
}

/// A snapshot of a node's observable state (cheap; for status and tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub id: NodeId,
    pub role: Role,
    pub term: Term,
    pub vote: NodeId,
    /// `NO_NODE` when unknown.
    pub leader_id: NodeId,
    pub commit_index: Index,
    pub applied_index: Index,
    /// First index still in the log (snapshot index + 1).
    pub first_index: Index,
    pub last_index: Index,
    pub last_term: Term,
    pub snapshot_index: Index,
    /// Ticks since this node last heard from a leader of its term (0 on the leader).
    pub ticks_since_leader_contact: u64,
    /// Leader only: (peer, match_index) for every other voter.
    pub match_index: Vec<(NodeId, Index)>,
    /// Set while a leadership transfer is in progress.
    pub transfer_target: Option<NodeId>,
    pub incarnation: Incarnation,
    /// This incarnation is the one the configuration names (and not only
    /// a change still pending).
    pub registered: bool,
    /// Leader only: peers whose replies come from an incarnation that is
    /// not counted (they lost their disk and await re-admission).
    pub strangers: Vec<NodeId>,
    /// The newest configuration this node's log holds, committed or not,
    /// in id order (empty before the cluster's first one).
    pub members: Vec<Member>,
    /// While that configuration is not known committed (a joint
    /// configuration): the voters of the one before it, whose majority
    /// every decision needs as well. Empty otherwise.
    pub previous_voters: Vec<NodeId>,
    /// Log index of the newest configuration entry; once compacted, where
    /// the snapshot's configuration is known in force. Never moves back
    /// for the same configuration; 0 before the cluster's first one.
    pub membership_index: Index,
}

impl Status {
    /// Voters of the newest configuration.
    pub fn voters(&self) -> Vec<NodeId> {
        self.members
            .iter()
            .filter(|m| m.is_voter())
            .map(|m| m.id)
            .collect()
    }

    /// Learners of the newest configuration.
    pub fn learners(&self) -> Vec<NodeId> {
        self.members
            .iter()
            .filter(|m| !m.is_voter())
            .map(|m| m.id)
            .collect()
    }

    /// True while a configuration change is appended but not known
    /// committed: decisions need a majority of `previous_voters` too.
    pub fn joint(&self) -> bool {
        !self.previous_voters.is_empty()
    }
}

/// A change of membership, proposed with `RawNode::propose_conf_change`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfChange {
    /// Adds `id` as a learner. `incarnation` may be `NO_INCARNATION` when
    /// not known yet: the one that catches up is the one promoted.
    AddLearner {
        id: NodeId,
        incarnation: Incarnation,
        peer_addr: String,
        client_addr: String,
    },
    /// Makes the learner `id` a voter, once it holds everything committed
    /// (match index >= the leader's commit index): a voter that lags would
    /// stall commits.
    Promote { id: NodeId },
    /// Removes the member `id` (the leader included), never the last voter.
    Remove { id: NodeId },
}

/// Why a configuration change was refused. Nothing was appended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfChangeError {
    /// Not the leader; `leader` is the known leader (`NO_NODE` if none).
    NotLeader { leader: NodeId },
    /// A leadership transfer is in progress; retry shortly.
    TransferInProgress,
    /// This leader has not committed an entry of its term yet, so it cannot
    /// know whether its log holds an uncommitted change; retry shortly.
    TermNotCommitted,
    /// Another change (or its confirming second entry) is not committed
    /// yet; one change is in flight at a time. Retry once it commits.
    ChangeInFlight,
    /// `id` is not a member.
    UnknownMember { id: NodeId },
    /// `id` is already a member (remove it first to replace it).
    AlreadyMember { id: NodeId },
    /// `id` is 0 or an address is longer than `ADDRESS_BYTES_MAX`.
    InvalidMember { id: NodeId },
    /// `id` is a voter already.
    NotALearner { id: NodeId },
    /// The learner `id` has not answered yet or holds less than the commit
    /// index: promoting it would stall commits. Retry once it caught up.
    NotCaughtUp {
        id: NodeId,
        match_index: Index,
        commit_index: Index,
    },
    /// `id` is the last voter: a cluster without voters can never decide.
    LastVoter { id: NodeId },
}

impl std::fmt::Display for ConfChangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfChangeError::NotLeader { leader } => write!(f, "not the leader (leader: {leader})"),
            ConfChangeError::TransferInProgress => write!(f, "leadership transfer in progress"),
            ConfChangeError::TermNotCommitted => {
                write!(f, "the new leader has not committed an entry of its term yet; retry shortly")
            }
            ConfChangeError::ChangeInFlight => {
                write!(f, "another membership change is in flight; retry once it commits")
            }
            ConfChangeError::UnknownMember { id } => write!(f, "node {id} is not a member"),
            ConfChangeError::AlreadyMember { id } => {
                write!(f, "node {id} is already a member; remove it first to replace it")
            }
            ConfChangeError::InvalidMember { id } => {
                write!(f, "node {id}: id 0 is reserved and addresses must be short")
            }
            ConfChangeError::NotALearner { id } => write!(f, "node {id} is a voter already"),
            ConfChangeError::NotCaughtUp {
                id,
                match_index,
                commit_index,
            } => write!(
                f,
                "learner {id} has not caught up (match index {match_index}, commit index {commit_index}); retry once it has"
            ),
            ConfChangeError::LastVoter { id } => {
                write!(f, "node {id} is the last voter and cannot be removed")
            }
        }
    }
}

impl std::error::Error for ConfChangeError {}

/// Why a proposal, read or transfer was refused. Nothing was appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProposeError {
    /// Not the leader; `leader` is the known leader (`NO_NODE` if none).
    NotLeader { leader: NodeId },
    /// A leadership transfer is in progress; retry shortly.
    TransferInProgress,
    /// Too many proposals waiting to be persisted/replicated.
    Overloaded,
    /// Transfer target is not a voter or is this node.
    InvalidTarget,
}

impl std::fmt::Display for ProposeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProposeError::NotLeader { leader } => write!(f, "not the leader (leader: {leader})"),
            ProposeError::TransferInProgress => write!(f, "leadership transfer in progress"),
            ProposeError::Overloaded => write!(f, "too many proposals in flight"),
            ProposeError::InvalidTarget => write!(f, "invalid transfer target"),
        }
    }
}

impl std::error::Error for ProposeError {}

/// Why a message was not accepted by `step`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepError {
    /// The sender is not a voter of this cluster, or the message is not for us.
    UnknownPeer { from: NodeId, to: NodeId },
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepError::UnknownPeer { from, to } => {
                write!(
                    f,
                    "message from {from} to {to} does not belong to this node's cluster"
                )
            }
        }
    }
}

impl std::error::Error for StepError {}

/// Why `compact` was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompactError {
    /// Index not applied yet, or already compacted, or beyond the log.
    OutOfRange {
        index: Index,
        first_index: Index,
        applied: Index,
    },
}

impl std::fmt::Display for CompactError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CompactError::OutOfRange {
                index,
                first_index,
                applied,
            } => write!(
                f,
                "cannot compact to {index}: first index {first_index}, applied {applied}"
            ),
        }
    }
}

impl std::error::Error for CompactError {}

/// Deterministic pseudo-random numbers (SplitMix64) from a seed the caller
/// passes in; the core never touches a global RNG.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` (hi > lo).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        debug_assert!(hi > lo);
        lo + self.next_u64() % (hi - lo)
    }
}
