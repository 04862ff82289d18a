//! PING [message]: `+PONG`, or the message back as a bulk string.

use bytes::Bytes;

use super::{Args, CommandError, Execution, Spec};
use crate::resp::Frame;

pub(crate) const SPEC: Spec = Spec::keyless("ping", -1, &["fast", "stale"]);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Ping {
    pub message: Option<Bytes>,
}

impl Ping {
    pub(crate) fn from_args(args: &mut Args) -> Result<Ping, CommandError> {
        let message = args.next_optional();
        args.finish()?;
        Ok(Ping { message })
    }

    pub(crate) fn execute(self) -> Execution {
        Execution::Now(match self.message {
            Some(message) => Frame::Bulk(message),
            None => Frame::Simple("PONG".into()),
        })
    }
}
