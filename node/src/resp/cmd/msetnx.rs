//! MSETNX key value [key value ...]: sets every pair only if none of the keys
//! exists; 1 if set, 0 if not (all or nothing).

use super::{Args, CommandError, DataOp, Spec};
use raftkv::kv::Command as KvCommand;
pub(crate) const SPEC: Spec = Spec {
    name: "msetnx",
    arity: -3,
    flags: &["write", "denyoom"],
    first_key: 1,
    last_key: -1,
    key_step: 2,
};

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    Ok(DataOp::Write(KvCommand::MSetNx {
        pairs: args.take_pairs()?,
    }))
}
