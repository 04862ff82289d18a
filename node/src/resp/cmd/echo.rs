//! ECHO message: the message back as a bulk string.

use bytes::Bytes;

use super::{Args, CommandError, Execution, Spec};
use crate::resp::Frame;

pub(crate) const SPEC: Spec = Spec {
    name: "echo",
    arity: 2,
    flags: &["fast", "stale"],
    first_key: 0,
    last_key: 0,
    key_step: 0,
};

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
