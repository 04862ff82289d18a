//! DEL key [key ...]: replicated; replies the number of keys that existed.

use bytes::Bytes;
use raftkv::kv::Command as KvCommand;

use super::{write_store, Args, CommandError, Context, Execution, Spec};
use crate::resp::backend::Backend;

pub(crate) const SPEC: Spec = Spec {
    name: "del",
    arity: -2,
    flags: &["write"],
    first_key: 1,
    last_key: -1,
    key_step: 1,
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Del {
    pub keys: Vec<Bytes>,
}

impl Del {
    pub(crate) fn from_args(args: &mut Args) -> Result<Del, CommandError> {
        let keys = args.take_rest();
        if keys.is_empty() {
            return Err(args.wrong_arity());
        }
        Ok(Del { keys })
    }

    pub(crate) fn execute<B: Backend>(self, context: &mut Context<'_, B>) -> Execution {
        write_store(context, KvCommand::Del { keys: self.keys })
    }
}
