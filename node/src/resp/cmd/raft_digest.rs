//! RAFT.DIGEST: `[digest hex, applied index]` from one published status, so
//! the two always belong together. Ordered after the connection's earlier
//! writes, so `SET ...; RAFT.DIGEST` covers the SET.

use futures::FutureExt;

use super::{Args, CommandError, Context, Execution, Spec};
use crate::resp::backend::Backend;
use crate::resp::Frame;

pub(crate) const SPEC: Spec = Spec::keyless("raft.digest", 1, &["fast", "stale", "loading"]);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RaftDigest;

impl RaftDigest {
    pub(crate) fn from_args(args: &mut Args) -> Result<RaftDigest, CommandError> {
        args.finish()?;
        Ok(RaftDigest)
    }

    pub(crate) fn execute<B: Backend>(self, context: &mut Context<'_, B>) -> Execution {
        let backend = context.server.backend.clone();
        Execution::Read(
            async move {
                let status = backend.status();
                Frame::Array(vec![
                    Frame::bulk(status.digest),
                    Frame::Integer(status.applied_index as i64),
                ])
            }
            .boxed(),
        )
    }
}
