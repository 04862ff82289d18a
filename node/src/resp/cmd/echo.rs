//! ECHO message: the message back as a bulk string.

use bytes::Bytes;

use super::{Args, CommandError, Execution, Spec};
use crate::resp::Frame;

pub(crate) const SPEC: Spec = Spec::keyless("echo", 2, &["fast", "stale"]);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Echo {
    pub message: Bytes,
}

impl Echo {
    pub(crate) fn from_args(args: &mut Args) -> Result<Echo, CommandError> {
        Ok(Echo {
            message: args.next_bytes()?,
        })
    }

    pub(crate) fn execute(self) -> Execution {
        Execution::Now(Frame::Bulk(self.message))
    }
}
