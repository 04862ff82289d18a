//! GET key: the value, or null. A linearizable read on the leader; a local
//! read after READONLY.

use bytes::Bytes;

use super::{read_store, Args, CommandError, Context, Execution, Spec};
use crate::resp::backend::Backend;
use crate::resp::Frame;

pub(crate) const SPEC: Spec = Spec {
    name: "get",
    arity: 2,
    flags: &["readonly", "fast"],
    first_key: 1,
    last_key: 1,
    key_step: 1,
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Get {
    pub key: Bytes,
}

impl Get {
    pub(crate) fn from_args(args: &mut Args) -> Result<Get, CommandError> {
        Ok(Get {
            key: args.next_bytes()?,
        })
    }

    pub(crate) fn execute<B: Backend>(self, context: &mut Context<'_, B>) -> Execution {
        read_store(context, move |store| {
            store
                .get_bytes(&self.key)
                .map(Frame::Bulk)
                .unwrap_or(Frame::Null)
        })
    }
}
