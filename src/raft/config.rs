//! Configuration of one Raft node, with `validate()`.

use crate::message::{Incarnation, NodeId, NO_INCARNATION};

/// Planted consensus bugs, compiled only with the test-only `planted-bugs`
/// feature so the simulator can prove it catches each of them.
#[cfg(feature = "planted-bugs")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlantedBug {
    /// Grant a vote even after voting for someone else in this term.
    VoteTwice,
    /// Commit a previous-term entry by counting replicas.
    CommitPreviousTerm,
    /// Append entries without checking (prev_index, prev_term).
    SkipLogMatching,
    /// Answer ReadIndex immediately without confirming leadership.
    ReadWithoutQuorum,
    /// Count a vote whatever incarnation of the voter sent it, so a node
    /// that lost its disk is counted as the voter it replaced.
    CountAnyIncarnation,
    /// Single-server changes without their safeguard: decide by the
    /// newest configuration alone (no joint majority) and accept a change
    /// while another is not committed yet, so two changes are in flight
    /// and the configurations that decide may have majorities that do not
    /// overlap (e.g. {1,2,3,4,5} and {1,2,3}).
    TwoChangesInFlight,
}

/// The minimum election timeout spans at least this many heartbeat
/// intervals, so a busy machine or a few lost heartbeats do not depose a
/// healthy leader.
pub const ELECTION_TICKS_PER_HEARTBEAT_MIN: u64 = 5;

/// Defaults of `Config::new` (the node sets its own timing from flags).
pub const HEARTBEAT_TICKS_DEFAULT: u64 = 1;
pub const ELECTION_TICKS_MIN_DEFAULT: u64 = 10;
pub const ELECTION_TICKS_MAX_DEFAULT: u64 = 20;
pub const INFLIGHT_APPENDS_MAX_DEFAULT: usize = 64;
pub const ENTRIES_PER_APPEND_MAX_DEFAULT: usize = 1024;
pub const BYTES_PER_APPEND_MAX_DEFAULT: usize = 1 << 20;
pub const SNAPSHOT_CHUNK_BYTES_MAX_DEFAULT: usize = 1 << 20;
pub const SNAPSHOT_BYTES_MAX_DEFAULT: usize = 1 << 30;
pub const UNCOMMITTED_ENTRIES_MAX_DEFAULT: usize = 100_000;

const _: () = assert!(
    ELECTION_TICKS_MIN_DEFAULT >= HEARTBEAT_TICKS_DEFAULT * ELECTION_TICKS_PER_HEARTBEAT_MIN
);
const _: () = assert!(ELECTION_TICKS_MAX_DEFAULT > ELECTION_TICKS_MIN_DEFAULT);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub id: NodeId,
    /// This node's incarnation: drawn at random when its data dir was
    /// empty and kept with its storage (see `raft::membership`). Never 0.
    pub incarnation: Incarnation,
    /// The voters of a new cluster, including `id` (3 by default, 5 works;
    /// any size >= 1). Used only until the log or a snapshot holds a
    /// configuration, which then decides. Empty for a node started to join
    /// a running cluster: it waits to be sent the log.
    pub voters: Vec<NodeId>,
    /// Where `voters` are reached, as this node was told (opaque to the
    /// core, at most `membership::ADDRESS_BYTES_MAX` bytes each): written
    /// into the cluster's first configuration by the node that wins the
    /// bootstrap election, so that nodes that join later can dial them.
    pub voter_peer_addrs: std::collections::BTreeMap<NodeId, String>,
    /// Leader sends a heartbeat every this many ticks; at most
    /// `election_ticks_min / ELECTION_TICKS_PER_HEARTBEAT_MIN`.
    pub heartbeat_ticks: u64,
    /// Election timeout is drawn anew, uniformly in
    /// `election_ticks_min..election_ticks_max`, each time the timer resets.
    pub election_ticks_min: u64,
    pub election_ticks_max: u64,
    pub pre_vote: bool,
    pub check_quorum: bool,
    /// Bound on AppendEntries in flight per follower (pipelining).
    pub inflight_appends_max: usize,
    /// Bound on entries in one AppendEntries.
    pub entries_per_append_max: usize,
    /// Bound on entry payload bytes in one AppendEntries (at least one entry is always sent).
    pub bytes_per_append_max: usize,
    /// Bound on one InstallSnapshot chunk.
    pub snapshot_chunk_bytes_max: usize,
    /// Bound on a snapshot received from a leader, buffered in memory until
    /// its last chunk arrives. A transfer that would grow past it is
    /// abandoned (the leader's stall retry starts it over), so it must
    /// exceed the largest state-machine snapshot on every node.
    pub snapshot_bytes_max: usize,
    /// Bound on proposals appended but not yet committed (back-pressure).
    pub uncommitted_entries_max: usize,
    #[cfg(feature = "planted-bugs")]
    pub planted_bug: Option<PlantedBug>,
}

impl Config {
    /// Defaults for a node `id` in a cluster of `voters`. The incarnation
    /// defaults to `id` (tests); a node sets the one its storage keeps.
    pub fn new(id: NodeId, voters: Vec<NodeId>) -> Self {
        Config {
            id,
            incarnation: id,
            voters,
            voter_peer_addrs: std::collections::BTreeMap::new(),
            heartbeat_ticks: HEARTBEAT_TICKS_DEFAULT,
            election_ticks_min: ELECTION_TICKS_MIN_DEFAULT,
            election_ticks_max: ELECTION_TICKS_MAX_DEFAULT,
            pre_vote: true,
            check_quorum: true,
            inflight_appends_max: INFLIGHT_APPENDS_MAX_DEFAULT,
            entries_per_append_max: ENTRIES_PER_APPEND_MAX_DEFAULT,
            bytes_per_append_max: BYTES_PER_APPEND_MAX_DEFAULT,
            snapshot_chunk_bytes_max: SNAPSHOT_CHUNK_BYTES_MAX_DEFAULT,
            snapshot_bytes_max: SNAPSHOT_BYTES_MAX_DEFAULT,
            uncommitted_entries_max: UNCOMMITTED_ENTRIES_MAX_DEFAULT,
            #[cfg(feature = "planted-bugs")]
            planted_bug: None,
        }
    }

    /// Checks the configuration is usable; says what is wrong otherwise.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == crate::message::NO_NODE {
            return Err(ConfigError("node id 0 is reserved for \"no node\"".into()));
        }
        if self.incarnation == NO_INCARNATION {
            return Err(ConfigError(
                "incarnation 0 is reserved for \"no incarnation\"".into(),
            ));
        }
        if !self.voters.is_empty() && !self.voters.contains(&self.id) {
            return Err(ConfigError(format!(
                "node id {} is not among the voters {:?}",
                self.id, self.voters
            )));
        }
        let mut sorted = self.voters.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != self.voters.len() {
            return Err(ConfigError(format!(
                "voters {:?} contain a duplicate",
                self.voters
            )));
        }
        if sorted.contains(&crate::message::NO_NODE) {
            return Err(ConfigError("voter id 0 is reserved for \"no node\"".into()));
        }
        let address_max = crate::raft::membership::ADDRESS_BYTES_MAX;
        if let Some((id, addr)) = self
            .voter_peer_addrs
            .iter()
            .find(|(id, addr)| !self.voters.contains(id) || addr.len() > address_max)
        {
            return Err(ConfigError(format!(
                "peer address of {id} ('{addr}'): not a voter, or longer than {address_max} bytes"
            )));
        }
        if self.heartbeat_ticks == 0 {
            return Err(ConfigError("heartbeat_ticks must be at least 1".into()));
        }
        if self.election_ticks_min
            < self
                .heartbeat_ticks
                .saturating_mul(ELECTION_TICKS_PER_HEARTBEAT_MIN)
        {
            return Err(ConfigError(format!(
                "election_ticks_min ({}) must be at least {ELECTION_TICKS_PER_HEARTBEAT_MIN} times heartbeat_ticks ({}), \
                 so a few lost or late heartbeats never start an election",
                self.election_ticks_min, self.heartbeat_ticks
            )));
        }
        if self.election_ticks_max <= self.election_ticks_min {
            return Err(ConfigError(format!(
                "election_ticks_max ({}) must exceed election_ticks_min ({})",
                self.election_ticks_max, self.election_ticks_min
            )));
        }
        if self.inflight_appends_max == 0 || self.entries_per_append_max == 0 {
            return Err(ConfigError(
                "inflight_appends_max and entries_per_append_max must be at least 1".into(),
            ));
        }
        if self.bytes_per_append_max == 0 || self.snapshot_chunk_bytes_max == 0 {
            return Err(ConfigError(
                "bytes_per_append_max and snapshot_chunk_bytes_max must be at least 1".into(),
            ));
        }
        if self.snapshot_bytes_max == 0 {
            return Err(ConfigError("snapshot_bytes_max must be at least 1".into()));
        }
        if self.uncommitted_entries_max == 0 {
            return Err(ConfigError(
                "uncommitted_entries_max must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// A configuration problem, in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid raft config: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}
