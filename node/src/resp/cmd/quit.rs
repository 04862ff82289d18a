//! QUIT: replies `+OK` and closes the connection once earlier replies are sent.

use super::{Args, CommandError, Execution, Spec};
use crate::resp::Frame;

pub(crate) const SPEC: Spec = Spec::keyless("quit", -1, &["fast", "stale"]);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Quit;

impl Quit {
    /// Redis ignores QUIT's arguments; so do we.
    pub(crate) fn from_args(args: &mut Args) -> Result<Quit, CommandError> {
        args.take_rest();
        Ok(Quit)
    }

    pub(crate) fn execute(self) -> Execution {
        Execution::Quit(Frame::ok())
    }
}
