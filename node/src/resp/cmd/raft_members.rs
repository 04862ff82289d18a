//! RAFT.MEMBERS: the newest configuration this node knows, one member per
//! entry, each a flat field/value array (`driver::status::member_field`):
//! id, incarnation, role (voter|learner), peer_addr, client_addr and, on
//! the leader, match_index (-1 elsewhere). Served from the published
//! status, so any node answers it without a redirect.

use super::{Args, CommandError, Context, Execution, Spec};
use crate::driver::status::member_field;
use crate::resp::backend::Backend;
use crate::resp::Frame;

pub(crate) const SPEC: Spec = Spec::keyless("raft.members", 1, &["fast", "stale", "loading"]);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RaftMembers;

impl RaftMembers {
    pub(crate) fn from_args(args: &mut Args) -> Result<RaftMembers, CommandError> {
        args.finish()?;
        Ok(RaftMembers)
    }

    pub(crate) fn execute<B: Backend>(self, context: &mut Context<'_, B>) -> Execution {
        let status = context.server.backend.status();
        let leading = status.role == "leader";
        let match_index = |id: u64| -> i64 {
            if !leading {
                return -1;
            }
            if id == status.id {
                return status.last_index as i64;
            }
            status
                .match_index
                .iter()
                .find(|(peer, _)| *peer == id)
                .map_or(-1, |(_, index)| *index as i64)
        };
        let members = status
            .members
            .iter()
            .map(|m| {
                Frame::Array(vec![
                    Frame::bulk(member_field::ID),
                    Frame::Integer(m.id as i64),
                    Frame::bulk(member_field::INCARNATION),
                    Frame::bulk(m.incarnation.clone()),
                    Frame::bulk(member_field::ROLE),
                    Frame::bulk(m.role.clone()),
                    Frame::bulk(member_field::PEER_ADDR),
                    Frame::bulk(m.peer_addr.clone()),
                    Frame::bulk(member_field::CLIENT_ADDR),
                    Frame::bulk(m.client_addr.clone()),
                    Frame::bulk(member_field::MATCH_INDEX),
                    Frame::Integer(match_index(m.id)),
                ])
            })
            .collect();
        Execution::Now(Frame::Array(members))
    }
}
