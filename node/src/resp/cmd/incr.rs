//! INCR key: replicated; replies the new value, or the state machine's
//! error when the value is not an integer.

use bytes::Bytes;
use raftkv::kv::Command as KvCommand;

use super::{write_store, Args, CommandError, Context, Execution, Spec};
use crate::resp::backend::Backend;

pub(crate) const SPEC: Spec = Spec {
    name: "incr",
    arity: 2,
    flags: &["write", "denyoom", "fast"],
    first_key: 1,
    last_key: 1,
    key_step: 1,
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Incr {
    pub key: Bytes,
}

impl Incr {
    pub(crate) fn from_args(args: &mut Args) -> Result<Incr, CommandError> {
        Ok(Incr {
            key: args.next_bytes()?,
        })
    }

    pub(crate) fn execute<B: Backend>(self, context: &mut Context<'_, B>) -> Execution {
        write_store(context, KvCommand::Incr { key: self.key })
    }
}
