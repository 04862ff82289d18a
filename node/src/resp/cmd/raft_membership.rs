//! RAFT.ADDLEARNER id peer-addr client-addr, RAFT.PROMOTE id, RAFT.REMOVE
//! id: membership changes through the log (joint consensus, one at a
//! time; see `raftkv::raft::membership`). Leader only: a follower answers
//! `-MOVED` like for a write. `+OK` once the change is committed. A change
//! that cannot be taken now (another in flight, a new leader that has not
//! committed yet, a learner not caught up) gets `-TRYAGAIN <why>`; one
//! that can never be taken as asked (unknown id, already a member, the
//! last voter) `-ERR <why>`.

use std::net::SocketAddr;

use futures::FutureExt;
use raftkv::message::NO_INCARNATION;
use raftkv::raft::ConfChange;

use super::{Args, CommandError, Context, Execution, Spec};
use crate::resp::backend::{write_error_frame, Backend};
use crate::resp::Frame;

pub(crate) const ADDLEARNER_SPEC: Spec = Spec::keyless("raft.addlearner", 4, &["admin", "write"]);
pub(crate) const PROMOTE_SPEC: Spec = Spec::keyless("raft.promote", 2, &["admin", "write"]);
pub(crate) const REMOVE_SPEC: Spec = Spec::keyless("raft.remove", 2, &["admin", "write"]);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RaftMembershipChange {
    pub change: ConfChange,
}

impl RaftMembershipChange {
    /// RAFT.ADDLEARNER id peer-addr client-addr (both ip:port).
    pub(crate) fn add_learner(args: &mut Args) -> Result<Self, CommandError> {
        let id = node_id(args)?;
        let peer_addr = address(args, "peer")?;
        let client_addr = address(args, "client")?;
        args.finish()?;
        Ok(RaftMembershipChange {
            change: ConfChange::AddLearner {
                id,
                incarnation: NO_INCARNATION,
                peer_addr,
                client_addr,
            },
        })
    }

    pub(crate) fn promote(args: &mut Args) -> Result<Self, CommandError> {
        let id = node_id(args)?;
        args.finish()?;
        Ok(RaftMembershipChange {
            change: ConfChange::Promote { id },
        })
    }

    pub(crate) fn remove(args: &mut Args) -> Result<Self, CommandError> {
        let id = node_id(args)?;
        args.finish()?;
        Ok(RaftMembershipChange {
            change: ConfChange::Remove { id },
        })
    }

    /// A write: it runs after the connection's earlier writes.
    pub(crate) fn execute<B: Backend>(self, context: &mut Context<'_, B>) -> Execution {
        let backend = context.server.backend.clone();
        Execution::Write(
            async move {
                match backend.change_membership(self.change).await {
                    Ok(()) => Frame::ok(),
                    Err(error) => write_error_frame(error, 0),
                }
            }
            .boxed(),
        )
    }
}

/// A node id: a positive integer.
fn node_id(args: &mut Args) -> Result<u64, CommandError> {
    let id = args.next_i64()?;
    if id <= 0 {
        return Err(CommandError::Other(format!(
            "ERR node id {id} is not a positive integer"
        )));
    }
    Ok(id as u64)
}

/// An ip:port address, kept as the text the client sent.
fn address(args: &mut Args, what: &str) -> Result<String, CommandError> {
    let bytes = args.next_bytes()?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    if text.parse::<SocketAddr>().is_err() {
        return Err(CommandError::Other(format!(
            "ERR {what} address '{text}' is not of the form ip:port"
        )));
    }
    Ok(text)
}
