//! DBSIZE: the number of keys.

use super::{read_store, Args, CommandError, Context, Execution, Spec};
use crate::resp::backend::Backend;
use crate::resp::Frame;

pub(crate) const SPEC: Spec = Spec {
    name: "dbsize",
    arity: 1,
    flags: &["readonly", "fast"],
    first_key: 0,
    last_key: 0,
    key_step: 0,
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DbSize;

impl DbSize {
    pub(crate) fn from_args(args: &mut Args) -> Result<DbSize, CommandError> {
        args.finish()?;
        Ok(DbSize)
    }

    pub(crate) fn execute<B: Backend>(self, context: &mut Context<'_, B>) -> Execution {
        read_store(context, |store| Frame::Integer(store.len() as i64))
    }
}
