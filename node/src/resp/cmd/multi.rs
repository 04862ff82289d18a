//! MULTI: starts queueing this connection's data commands for EXEC.

use super::{Args, CommandError, Context, Execution, Spec};
use crate::resp::backend::Backend;
use crate::resp::session::Transaction;
use crate::resp::Frame;

pub(crate) const SPEC: Spec = Spec::keyless("multi", 1, &["noscript", "loading", "stale", "fast"]);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Multi;

impl Multi {
    pub(crate) fn from_args(args: &mut Args) -> Result<Multi, CommandError> {
        args.finish()?;
        Ok(Multi)
    }

    pub(crate) fn execute<B: Backend>(self, context: &mut Context<'_, B>) -> Execution {
        if context.session.transaction.is_some() {
            // As in Redis, this does not abort the transaction being queued.
            return Execution::Now(Frame::error("ERR MULTI calls can not be nested"));
        }
        context.session.transaction = Some(Transaction::default());
        Execution::Now(Frame::ok())
    }
}
