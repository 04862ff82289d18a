//! MGET key [key ...]: the values in order, null for missing keys.

use bytes::Bytes;

use super::{read_store, Args, CommandError, Context, Execution, Spec};
use crate::resp::backend::Backend;
use crate::resp::Frame;

pub(crate) const SPEC: Spec = Spec {
    name: "mget",
    arity: -2,
    flags: &["readonly", "fast"],
    first_key: 1,
    last_key: -1,
    key_step: 1,
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MGet {
    pub keys: Vec<Bytes>,
}

impl MGet {
    pub(crate) fn from_args(args: &mut Args) -> Result<MGet, CommandError> {
        let keys = args.take_rest();
        if keys.is_empty() {
            return Err(args.wrong_arity());
        }
        Ok(MGet { keys })
    }

    pub(crate) fn execute<B: Backend>(self, context: &mut Context<'_, B>) -> Execution {
        read_store(context, move |store| {
            Frame::Array(
                self.keys
                    .iter()
                    .map(|key| store.get_bytes(key).map(Frame::Bulk).unwrap_or(Frame::Null))
                    .collect(),
            )
        })
    }
}
