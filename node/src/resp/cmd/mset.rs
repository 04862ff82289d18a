//! MSET key value [key value ...]: all pairs in one replicated command
//! (atomic, as in Redis); replies `+OK`.

use super::{Args, CommandError, DataOp, Spec};
use raftkv::kv::Command as KvCommand;
pub(crate) const SPEC: Spec = Spec {
    name: "mset",
    arity: -3,
    flags: &["write", "denyoom"],
    first_key: 1,
    last_key: -1,
    key_step: 2,
};

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    Ok(DataOp::Write(KvCommand::MSet {
        pairs: args.take_pairs()?,
    }))
}
