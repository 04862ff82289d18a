//! MSET key value [key value ...]: all pairs in one replicated command
//! (atomic, as in Redis); replies `+OK`.

use raftkv::kv::Command as KvCommand;

use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::keys("mset", -3, &["write", "denyoom"], (-1, 2));

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    Ok(DataOp::Write(KvCommand::MSet {
        pairs: args.take_pairs()?,
    }))
}
