//! MSET key value [key value ...]: all pairs in one replicated command
//! (atomic, as in Redis); replies `+OK`.

use bytes::Bytes;
use raftkv::kv::Command as KvCommand;

use super::{write_store, Args, CommandError, Context, Execution, Spec};
use crate::resp::backend::Backend;

pub(crate) const SPEC: Spec = Spec {
    name: "mset",
    arity: -3,
    flags: &["write", "denyoom"],
    first_key: 1,
    last_key: -1,
    key_step: 2,
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MSet {
    pub pairs: Vec<(Bytes, Bytes)>,
}

impl MSet {
    pub(crate) fn from_args(args: &mut Args) -> Result<MSet, CommandError> {
        if args.remaining() == 0 || !args.remaining().is_multiple_of(2) {
            return Err(args.wrong_arity());
        }
        let mut pairs = Vec::with_capacity(args.remaining() / 2);
        while args.remaining() > 0 {
            let key = args.next_bytes()?;
            let value = args.next_bytes()?;
            pairs.push((key, value));
        }
        Ok(MSet { pairs })
    }

    pub(crate) fn execute<B: Backend>(self, context: &mut Context<'_, B>) -> Execution {
        write_store(context, KvCommand::MSet { pairs: self.pairs })
    }
}
