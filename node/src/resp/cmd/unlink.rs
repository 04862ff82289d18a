//! UNLINK key [key ...]: DEL (a removal is O(1) per key here, so there is
//! nothing to do in the background).

use super::{Args, CommandError, DataOp, Spec};
use raftkv::kv::Command as KvCommand;
pub(crate) const SPEC: Spec = Spec {
    name: "unlink",
    arity: -2,
    flags: &["write", "fast"],
    first_key: 1,
    last_key: -1,
    key_step: 1,
};

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    Ok(DataOp::Write(KvCommand::Del {
        keys: args.take_at_least_one()?,
    }))
}
