//! READWRITE: undoes READONLY; reads are linearizable (leader only) again.

use super::{Args, CommandError, Context, Execution, Spec};
use crate::resp::backend::Backend;
use crate::resp::Frame;

pub(crate) const SPEC: Spec = Spec::keyless("readwrite", 1, &["fast", "stale"]);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ReadWrite;

impl ReadWrite {
    pub(crate) fn from_args(args: &mut Args) -> Result<ReadWrite, CommandError> {
        args.finish()?;
        Ok(ReadWrite)
    }

    pub(crate) fn execute<B: Backend>(self, context: &mut Context<'_, B>) -> Execution {
        context.session.readonly = false;
        Execution::Now(Frame::ok())
    }
}
