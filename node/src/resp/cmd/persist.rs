//! PERSIST key: removes the key's expiry; 1 if it had one, else 0.

use raftkv::kv::Command as KvCommand;

use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::one_key("persist", 2, &["write", "fast"]);

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    Ok(DataOp::Write(KvCommand::Persist {
        key: args.next_bytes()?,
    }))
}
