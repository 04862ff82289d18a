//! UNLINK key [key ...]: DEL (a removal is O(1) per key here, so there is
//! nothing to do in the background).

use raftkv::kv::Command as KvCommand;

use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::all_keys("unlink", -2, &["write", "fast"]);

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    Ok(DataOp::Write(KvCommand::Del {
        keys: args.take_at_least_one()?,
    }))
}
