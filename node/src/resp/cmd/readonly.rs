//! READONLY: from now on this connection's reads are served from this
//! node's own state (possibly stale), on followers too, as in Redis Cluster.

use super::{Args, CommandError, Context, Execution, Spec};
use crate::resp::backend::Backend;
use crate::resp::Frame;

pub(crate) const SPEC: Spec = Spec::keyless("readonly", 1, &["fast", "stale"]);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ReadOnly;

impl ReadOnly {
    pub(crate) fn from_args(args: &mut Args) -> Result<ReadOnly, CommandError> {
        args.finish()?;
        Ok(ReadOnly)
    }

    pub(crate) fn execute<B: Backend>(self, context: &mut Context<'_, B>) -> Execution {
        context.session.readonly = true;
        Execution::Now(Frame::ok())
    }
}
