//! APPEND key value: appends (creating the key); the new length.

use super::{Args, CommandError, DataOp, Spec};
use raftkv::kv::Command as KvCommand;
pub(crate) const SPEC: Spec = Spec {
    name: "append",
    arity: 3,
    flags: &["write", "denyoom", "fast"],
    first_key: 1,
    last_key: 1,
    key_step: 1,
};

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    let key = args.next_bytes()?;
    let value = args.next_bytes()?;
    Ok(DataOp::Write(KvCommand::Append { key, value }))
}
