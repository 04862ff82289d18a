//! EXISTS key [key ...]: how many of the keys exist (a key named twice
//! counts twice, as in Redis).

use bytes::Bytes;

use super::{read_store, Args, CommandError, Context, Execution, Spec};
use crate::resp::backend::Backend;
use crate::resp::Frame;

pub(crate) const SPEC: Spec = Spec {
    name: "exists",
    arity: -2,
    flags: &["readonly", "fast"],
    first_key: 1,
    last_key: -1,
    key_step: 1,
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Exists {
    pub keys: Vec<Bytes>,
}

impl Exists {
    pub(crate) fn from_args(args: &mut Args) -> Result<Exists, CommandError> {
        let keys = args.take_rest();
        if keys.is_empty() {
            return Err(args.wrong_arity());
        }
        Ok(Exists { keys })
    }

    pub(crate) fn execute<B: Backend>(self, context: &mut Context<'_, B>) -> Execution {
        read_store(context, move |store| {
            Frame::Integer(
                self.keys
                    .iter()
                    .filter(|key| store.get(key).is_some())
                    .count() as i64,
            )
        })
    }
}
