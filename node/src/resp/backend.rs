//! What the RESP server needs from a node, as a trait so the commands can be
//! tested against an in-memory store, and how node errors become RESP errors.
//!
//! Error replies a client can meet (DESIGN.md "Client protocol"):
//! - `-MOVED <slot> <host:port>`: this node is not the leader; the leader's
//!   client address is given, with the slot of the request's first key. The command was definitely not applied; retry there
//!   (`redis-cli -c` follows it).
//! - `-CLUSTERDOWN no leader`: no leader is known (an election is running).
//!   The command was definitely not applied; retry after a short wait.
//! - `-UNCERTAIN outcome unknown: <why>`: a write was appended to the log but
//!   leadership was lost before it committed. It may or may not be applied;
//!   read the key back before retrying a non-idempotent command (INCR).
//! - `-TRYAGAIN <why>`: refused before being appended (overloaded, leadership
//!   transfer, shutting down, another membership change in flight). Not
//!   applied; retry.
//! - `-ERR <why>` for a membership change that can never be taken as asked
//!   (unknown id, already a member, the last voter). Not applied.

use std::future::Future;

use raftkv::kv::{Command, KvStore, Reply};
use raftkv::raft::ConfChange;

use super::Frame;
use crate::driver::handle::{NodeHandle, NodeStatus, ReadError, WriteError};

/// The node operations the RESP commands use. `NodeHandle` is the real one.
pub trait Backend: Clone + Send + Sync + 'static {
    /// Replicates a write and returns its reply once applied.
    fn write(&self, command: Command) -> impl Future<Output = Result<Reply, WriteError>> + Send;

    /// Runs `read` on the state machine at a linearizable point.
    fn linearizable_read<R, F>(&self, read: F) -> impl Future<Output = Result<R, ReadError>> + Send
    where
        R: Send,
        F: FnOnce(&KvStore) -> R + Send;

    /// Runs `read` on this node's own, possibly stale, state.
    fn local_read<R>(&self, read: impl FnOnce(&KvStore) -> R) -> R;

    /// The latest published status.
    fn status(&self) -> NodeStatus;

    /// Changes the membership; done once the change is committed.
    fn change_membership(
        &self,
        change: ConfChange,
    ) -> impl Future<Output = Result<(), WriteError>> + Send;
}

impl Backend for NodeHandle {
    fn write(&self, command: Command) -> impl Future<Output = Result<Reply, WriteError>> + Send {
        NodeHandle::write(self, command)
    }

    fn linearizable_read<R, F>(&self, read: F) -> impl Future<Output = Result<R, ReadError>> + Send
    where
        R: Send,
        F: FnOnce(&KvStore) -> R + Send,
    {
        NodeHandle::linearizable_read(self, read)
    }

    fn local_read<R>(&self, read: impl FnOnce(&KvStore) -> R) -> R {
        NodeHandle::local_read(self, read)
    }

    fn status(&self) -> NodeStatus {
        NodeHandle::status(self)
    }

    fn change_membership(
        &self,
        change: ConfChange,
    ) -> impl Future<Output = Result<(), WriteError>> + Send {
        NodeHandle::change_membership(self, change)
    }
}

/// `-MOVED <slot> <addr>` or `-CLUSTERDOWN no leader` for a request this
/// node cannot serve because it is not the leader (`slot`: the slot of the
/// request's first key, 0 without keys).
pub fn not_leader_frame(leader_client_addr: Option<&str>, slot: u16) -> Frame {
    match leader_client_addr {
        Some(addr) if !addr.is_empty() => Frame::error(format!("MOVED {slot} {addr}")),
        _ => Frame::error("CLUSTERDOWN no leader"),
    }
}

/// The reply to a write the node did not (or may not have) applied.
pub fn write_error_frame(error: WriteError, slot: u16) -> Frame {
    match error {
        WriteError::NotLeader { leader_client_addr } => {
            not_leader_frame(leader_client_addr.as_deref(), slot)
        }
        WriteError::NoLeader => not_leader_frame(None, slot),
        WriteError::OutcomeUnknown(reason) => {
            Frame::error(format!("UNCERTAIN outcome unknown: {reason}"))
        }
        WriteError::Refused(reason) => Frame::error(format!("TRYAGAIN {reason}")),
        WriteError::Invalid(reason) => Frame::error(format!("ERR {reason}")),
    }
}

/// The reply to a linearizable read the node could not serve.
pub fn read_error_frame(error: ReadError, slot: u16) -> Frame {
    match error {
        ReadError::NotLeader { leader_client_addr } => {
            not_leader_frame(leader_client_addr.as_deref(), slot)
        }
        ReadError::NoLeader => not_leader_frame(None, slot),
        ReadError::Refused(reason) => Frame::error(format!("TRYAGAIN {reason}")),
    }
}

/// The reply of an applied write.
pub fn reply_frame(reply: Reply) -> Frame {
    match reply {
        Reply::Ok => Frame::ok(),
        Reply::Integer(value) => Frame::Integer(value),
        // The state machine's messages already carry their code (`ERR ...`).
        Reply::Error(message) => Frame::Error(message),
        Reply::Nil => Frame::Null,
        Reply::Bulk(bytes) => Frame::Bulk(bytes),
        Reply::Status(text) => Frame::Simple(text),
        Reply::Array(replies) => Frame::Array(replies.into_iter().map(reply_frame).collect()),
    }
}
