//! DEL key [key ...]: replicated; replies the number of keys that existed.

use raftkv::kv::Command as KvCommand;

use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::all_keys("del", -2, &["write"]);

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    Ok(DataOp::Write(KvCommand::Del {
        keys: args.take_at_least_one()?,
    }))
}
