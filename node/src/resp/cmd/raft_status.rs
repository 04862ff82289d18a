//! RAFT.STATUS: every `NodeStatus` field as a map (RESP3) or a flat
//! field/value array (RESP2), values as bulk strings. Served from the
//! driver's published status, so it answers without touching the driver.

use super::{Args, CommandError, Context, Execution, Spec};
use crate::resp::backend::Backend;
use crate::resp::Frame;

pub(crate) const SPEC: Spec = Spec::keyless("raft.status", 1, &["fast", "stale", "loading"]);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RaftStatus;

impl RaftStatus {
    pub(crate) fn from_args(args: &mut Args) -> Result<RaftStatus, CommandError> {
        args.finish()?;
        Ok(RaftStatus)
    }

    pub(crate) fn execute<B: Backend>(self, context: &mut Context<'_, B>) -> Execution {
        let fields = context.server.backend.status().fields();
        Execution::Now(Frame::Map(
            fields
                .into_iter()
                .map(|(field, value)| (Frame::bulk(field), Frame::bulk(value)))
                .collect(),
        ))
    }
}
