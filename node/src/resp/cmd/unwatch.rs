//! UNWATCH: forgets every WATCHed key.

use super::{Args, CommandError, Context, Execution, Spec};
use crate::resp::backend::Backend;
use crate::resp::Frame;

pub(crate) const SPEC: Spec =
    Spec::keyless("unwatch", 1, &["noscript", "loading", "stale", "fast"]);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Unwatch;

impl Unwatch {
    pub(crate) fn from_args(args: &mut Args) -> Result<Unwatch, CommandError> {
        args.finish()?;
        Ok(Unwatch)
    }

    pub(crate) fn execute<B: Backend>(self, context: &mut Context<'_, B>) -> Execution {
        // A WATCH still reading fills the list it holds, not the new one.
        context.session.watched = Default::default();
        Execution::Now(Frame::ok())
    }
}
