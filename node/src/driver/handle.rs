//! The handle the RESP server (and tests) use to talk to the driver, and
//! what it answers: `NodeStatus` for RAFT.STATUS (defined with its schema
//! in `driver::status`), `WriteError` and `ReadError` for requests that
//! were not served.

use std::sync::Arc;

use parking_lot::RwLock;
use raftkv::kv::{Command, KvStore, Reply};
use raftkv::raft::ConfChange;

pub use super::status::NodeStatus;

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
    /// Refused for good: the request can never succeed as it is (a
    /// membership change naming an unknown node, removing the last voter...).
    #[error("{0}")]
    Invalid(String),
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

    /// Changes the membership through the log; answers once the change is
    /// committed (and applied on this node).
    pub async fn change_membership(&self, change: ConfChange) -> Result<(), WriteError> {
        super::change_membership(&self.inner, change).await
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
