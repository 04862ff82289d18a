//! MSETNX key value [key value ...]: sets every pair only if none of the keys
//! exists; 1 if set, 0 if not (all or nothing).

use raftkv::kv::Command as KvCommand;

use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::keys("msetnx", -3, &["write", "denyoom"], (-1, 2));

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    Ok(DataOp::Write(KvCommand::MSetNx {
        pairs: args.take_pairs()?,
    }))
}
