//! DISCARD: drops the queued transaction and every WATCH.

use super::{Args, CommandError, Context, Execution, Spec};
use crate::resp::backend::Backend;
use crate::resp::Frame;

pub(crate) const SPEC: Spec =
    Spec::keyless("discard", 1, &["noscript", "loading", "stale", "fast"]);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Discard;

impl Discard {
    pub(crate) fn from_args(args: &mut Args) -> Result<Discard, CommandError> {
        args.finish()?;
        Ok(Discard)
    }

    pub(crate) fn execute<B: Backend>(self, context: &mut Context<'_, B>) -> Execution {
        if context.session.transaction.take().is_none() {
            return Execution::Now(Frame::error("ERR DISCARD without MULTI"));
        }
        context.session.watched = Default::default();
        Execution::Now(Frame::ok())
    }
}
