//! PERSIST key: removes the key's expiry; 1 if it had one, else 0.

use super::{Args, CommandError, DataOp, Spec};
use raftkv::kv::Command as KvCommand;
pub(crate) const SPEC: Spec = Spec {
    name: "persist",
    arity: 2,
    flags: &["write", "fast"],
    first_key: 1,
    last_key: 1,
    key_step: 1,
};

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    Ok(DataOp::Write(KvCommand::Persist {
        key: args.next_bytes()?,
    }))
}
