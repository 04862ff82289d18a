//! Wire types exchanged between Raft peers and between the core and its driver.
//!
//! Everything here is plain data with serde derives: the node crate frames it
//! with postcard on TCP, the simulator passes it by value.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use crate::raft::membership::{Member, MemberRole};

/// A node's identity in the cluster. `0` means "no node" (no vote, no leader).
pub type NodeId = u64;
/// A Raft term.
pub type Term = u64;
/// A log index. Index 0 is the empty prefix; the first real entry is index 1.
pub type Index = u64;

/// The "no node" id used for an absent vote or an unknown leader.
pub const NO_NODE: NodeId = 0;

/// Which life of a node id sends a message: a random number a node draws
/// on its first start with an empty data dir and keeps with its storage. A
/// node that lost its disk comes back under the same id with a new
/// incarnation, and is not counted as the voter it replaced until the
/// cluster re-admits it through the log (see `raft::membership`).
pub type Incarnation = u64;

/// "No incarnation known" (never drawn by a real node).
pub const NO_INCARNATION: Incarnation = 0;

/// The highest term a message may carry. No real cluster gets near it (an
/// election every millisecond takes 292 million years to reach 2^63), so a
/// message beyond it is garbage and dropped; the headroom above it keeps
/// every `term + 1` of a campaign from overflowing.
pub const TERM_MAX: Term = Term::MAX / 2;

/// The highest log index a message may reach, for the same reasons: a
/// snapshot or append beyond it is garbage and dropped, and the headroom
/// keeps every `last_index + 1` from overflowing.
pub const INDEX_MAX: Index = Index::MAX / 2;

/// What an entry carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// The empty entry a new leader appends at the start of its term so that
    /// earlier-term entries commit promptly (Raft §5.4.2, §8).
    Noop,
    /// An opaque client command (for raftkv: an encoded `kv::Command`).
    Normal,
    /// Written before learners existed: the configuration from here on as
    /// (id, incarnation) pairs, every member a voter
    /// (`raft::membership::decode_registry`). Read, never written.
    Registry,
    /// The configuration from here on: every member with its incarnation,
    /// role and addresses (`raft::membership::encode`). Appended by a
    /// leader that bootstraps the cluster, changes its membership or
    /// re-admits a node that lost its disk.
    Config,
}

/// One log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub index: Index,
    pub term: Term,
    pub kind: EntryKind,
    pub data: Bytes,
}

impl Entry {
    /// A client command's entry (`EntryKind::Normal`) carrying `data`.
    pub fn normal(index: Index, term: Term, data: impl Into<Bytes>) -> Entry {
        Entry {
            index,
            term,
            kind: EntryKind::Normal,
            data: data.into(),
        }
    }
}

/// What a snapshot covers: everything up to and including `index`, whose
/// entry had `term`. `members` is the configuration in force there (always
/// a committed one), in id order; empty before the cluster's first
/// configuration entry. A node restored from the snapshot takes its
/// membership from it, not from its flags.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    pub index: Index,
    pub term: Term,
    pub members: Vec<Member>,
}

/// A state-machine snapshot: metadata plus the opaque state bytes
/// (for raftkv: `kv::KvStore::snapshot()` output).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub meta: SnapshotMeta,
    pub data: Bytes,
}

/// The outcome of an AppendEntries request on the follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppendOutcome {
    /// The follower's log now matches the leader's through `match_index`, the
    /// last index *this request* verified (prev_index + entries carried).
    Accepted { match_index: Index },
    /// The follower has no entry matching (`prev_index`, prev_term).
    /// The hint lets the leader skip a whole conflicting term at once:
    /// `hint_term` is the follower's term at `hint_index` (0 when the
    /// follower's log is shorter than `prev_index`; `hint_index` is then the
    /// follower's last index), and `hint_index` is the first index the
    /// follower has of `hint_term`.
    Rejected {
        prev_index: Index,
        hint_index: Index,
        hint_term: Term,
    },
}

/// The body of a peer message. The envelope (`Message`) carries from, to and term.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// Pre-vote request (Raft thesis §9.6). `Message::term` is the term the
    /// candidate *would* campaign in; nobody changes term or vote on it.
    PreVote {
        last_index: Index,
        last_term: Term,
        /// The candidate's commit index and the term of its entry there: a
        /// voter whose log holds that entry learns it is committed (it may
        /// settle a configuration change it holds; see `raft::membership`).
        commit: Index,
        commit_term: Term,
    },
    PreVoteReply {
        granted: bool,
    },
    /// Vote request. `leadership_transfer` is set when the campaign follows a
    /// TimeoutNow, so voters skip the leader-lease check (thesis §3.10).
    Vote {
        last_index: Index,
        last_term: Term,
        leadership_transfer: bool,
        /// As in `PreVote`.
        commit: Index,
        commit_term: Term,
    },
    VoteReply {
        granted: bool,
    },
    /// AppendEntries carrying entries (or probing with none).
    Append {
        prev_index: Index,
        prev_term: Term,
        entries: Vec<Entry>,
        commit: Index,
    },
    AppendReply {
        outcome: AppendOutcome,
    },
    /// Leader heartbeat. `commit` is already capped at the follower's known
    /// match index. `read_round` confirms leadership for ReadIndex batches.
    Heartbeat {
        commit: Index,
        read_round: u64,
    },
    HeartbeatReply {
        read_round: u64,
    },
    /// One chunk of an InstallSnapshot transfer.
    Snapshot {
        meta: SnapshotMeta,
        offset: u64,
        chunk: Bytes,
        done: bool,
    },
    /// `next_offset` is the byte the follower expects next; `done` once the
    /// snapshot was received whole (or the follower already had its index).
    SnapshotReply {
        index: Index,
        next_offset: u64,
        done: bool,
    },
    /// Leadership transfer: start an election now, skipping pre-vote.
    TimeoutNow,
}

/// A message between peers. `incarnation` is the sender's: a reply from
/// another life of `from` than the registered one is not counted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub from: NodeId,
    pub to: NodeId,
    pub term: Term,
    pub incarnation: Incarnation,
    pub body: Body,
}
