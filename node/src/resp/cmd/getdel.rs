//! GETDEL key: the value (or null), and the key is deleted.

use raftkv::kv::Command as KvCommand;

use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::one_key("getdel", 2, &["write", "fast"]);

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    Ok(DataOp::Write(KvCommand::GetDel {
        key: args.next_bytes()?,
    }))
}
