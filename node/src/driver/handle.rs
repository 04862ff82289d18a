//! The handle the RESP server (and tests) use to talk to the driver, and
//! what it answers: `NodeStatus` for RAFT.STATUS, `WriteError` and
//! `ReadError` for requests that were not served.

use std::sync::Arc;

use parking_lot::RwLock;
use raftkv::kv::{Command, KvStore, Reply};

/// Why a write was not done. `NotLeader` and `NoLeader` mean the command was
/// definitely not applied; `OutcomeUnknown` means it may or may not be.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// This node is a follower; `leader_client_addr` is the leader's RESP
    /// address when known. Definitely not applied.
    #[error("not the leader")]
    NotLeader { leader_client_addr: Option<String> },
    /// No leader is known right now (election in progress). Not applied.
    #[error("no leader")]
    NoLeader,
    /// Leadership was lost after the command was appended: it may still commit.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// Refused before appending (overloaded, transfer in progress, shutting down). Not applied.
    #[error("{0}")]
    Refused(String),
}

/// Why a linearizable read could not be served.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("not the leader")]
    NotLeader { leader_client_addr: Option<String> },
    #[error("no leader")]
    NoLeader,
    #[error("{0}")]
    Refused(String),
}

/// Everything RAFT.STATUS shows. Cheap to copy out (the driver publishes it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStatus {
    pub id: u64,
    pub role: &'static str,
    pub term: u64,
    pub leader_id: u64,
    /// Empty when no leader is known.
    pub leader_client_addr: String,
    pub commit_index: u64,
    pub applied_index: u64,
    pub first_index: u64,
    pub last_index: u64,
    pub snapshot_index: u64,
    pub keys: u64,
    pub digest: String,
    /// Milliseconds since this node last heard from the leader (0 on the leader).
    pub leader_contact_ms: u64,
    /// Leader only: (peer id, match index).
    pub match_index: Vec<(u64, u64)>,
    /// This node's incarnation (16 hex digits): drawn when its data dir was empty.
    pub incarnation: String,
    /// This incarnation is the voter the committed member registry names
    /// (false after an empty disk, until the cluster re-admits it).
    pub registered: bool,
    /// Leader only: peers whose replies come from another incarnation than
    /// the registered one, so they count for neither votes nor commit.
    pub strangers: Vec<u64>,
    pub pid: u32,
    pub uptime_ms: u64,
}

impl NodeStatus {
    /// Field/value pairs in RAFT.STATUS order (also used by `INFO raft`).
    pub fn fields(&self) -> Vec<(String, String)> {
        let mut out = vec![
            ("id".to_string(), self.id.to_string()),
            ("role".to_string(), self.role.to_string()),
            ("term".to_string(), self.term.to_string()),
            ("leader_id".to_string(), self.leader_id.to_string()),
            (
                "leader_client_addr".to_string(),
                self.leader_client_addr.clone(),
            ),
            ("commit_index".to_string(), self.commit_index.to_string()),
            ("applied_index".to_string(), self.applied_index.to_string()),
            ("first_index".to_string(), self.first_index.to_string()),
            ("last_index".to_string(), self.last_index.to_string()),
            (
                "snapshot_index".to_string(),
                self.snapshot_index.to_string(),
            ),
            ("keys".to_string(), self.keys.to_string()),
            ("digest".to_string(), self.digest.clone()),
            (
                "leader_contact_ms".to_string(),
                self.leader_contact_ms.to_string(),
            ),
        ];
        for (peer, index) in &self.match_index {
            out.push((format!("match_index_{peer}"), index.to_string()));
        }
        out.push(("incarnation".to_string(), self.incarnation.clone()));
        out.push((
            "registered".to_string(),
            u8::from(self.registered).to_string(),
        ));
        let strangers: Vec<String> = self.strangers.iter().map(u64::to_string).collect();
        out.push(("strangers".to_string(), strangers.join(",")));
        out.push(("pid".to_string(), self.pid.to_string()));
        out.push(("uptime_ms".to_string(), self.uptime_ms.to_string()));
        out
    }
}

/// A cloneable handle to a running node: requests go to the driver task
/// through the queues in `Shared`, reads of the store take its lock.
#[derive(Clone)]
pub struct NodeHandle {
    pub(crate) inner: Arc<super::Shared>,
}

impl NodeHandle {
    /// Replicates `command` through Raft and returns its reply once applied
    /// on this node (after the fsync of a majority).
    pub async fn write(&self, command: Command) -> Result<Reply, WriteError> {
        super::write(&self.inner, command).await
    }

    /// Runs `read` against the state machine at a linearizable point (ReadIndex).
    pub async fn linearizable_read<R>(
        &self,
        read: impl FnOnce(&KvStore) -> R,
    ) -> Result<R, ReadError> {
        super::read_barrier(&self.inner).await?;
        Ok(read(&self.inner.store.read()))
    }

    /// Runs `read` against this node's own state, possibly stale (READONLY).
    pub fn local_read<R>(&self, read: impl FnOnce(&KvStore) -> R) -> R {
        read(&self.inner.store.read())
    }

    /// The latest published status (refreshed by the driver on every change).
    pub fn status(&self) -> NodeStatus {
        super::status(&self.inner)
    }

    /// The shared state machine (read-locked by readers, written by the driver).
    pub fn store(&self) -> Arc<RwLock<KvStore>> {
        self.inner.store.clone()
    }
}
