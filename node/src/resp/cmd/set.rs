//! SET key value: replicated, replies `+OK`. Expiry and conditional options
//! (EX, PX, NX, XX, KEEPTTL, GET, ...) are not supported and get
//! `-ERR syntax error`, so a client never believes one took effect.

use bytes::Bytes;
use raftkv::kv::Command as KvCommand;

use super::{write_store, Args, CommandError, Context, Execution, Spec};
use crate::resp::backend::Backend;

pub(crate) const SPEC: Spec = Spec {
    name: "set",
    arity: -3,
    flags: &["write", "denyoom"],
    first_key: 1,
    last_key: 1,
    key_step: 1,
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Set {
    pub key: Bytes,
    pub value: Bytes,
}

impl Set {
    pub(crate) fn from_args(args: &mut Args) -> Result<Set, CommandError> {
        let key = args.next_bytes()?;
        let value = args.next_bytes()?;
        if args.remaining() > 0 {
            return Err(CommandError::Syntax);
        }
        Ok(Set { key, value })
    }

    pub(crate) fn execute<B: Backend>(self, context: &mut Context<'_, B>) -> Execution {
        write_store(
            context,
            KvCommand::Set {
                key: self.key,
                value: self.value,
            },
        )
    }
}
