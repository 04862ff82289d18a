//! SELECT index: raftkv has one database, 0. SELECT 0 is `+OK` (clients send
//! it on connect); any other index is refused.

use super::args::parse_i64;
use super::{Args, CommandError, Execution, Spec};
use crate::resp::Frame;

pub(crate) const SPEC: Spec = Spec::keyless("select", 2, &["loading", "stale", "fast"]);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Select;

impl Select {
    pub(crate) fn from_args(args: &mut Args) -> Result<Select, CommandError> {
        match parse_i64(&args.next_bytes()?) {
            Some(0) => Ok(Select),
            Some(_) => Err(CommandError::Other(
                "ERR DB index is out of range (raftkv has one database, 0)".into(),
            )),
            None => Err(CommandError::NotAnInteger),
        }
    }

    pub(crate) fn execute(self) -> Execution {
        Execution::Now(Frame::ok())
    }
}
