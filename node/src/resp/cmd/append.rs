//! APPEND key value: appends (creating the key); the new length.

use raftkv::kv::Command as KvCommand;

use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::one_key("append", 3, &["write", "denyoom", "fast"]);

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    let key = args.next_bytes()?;
    let value = args.next_bytes()?;
    Ok(DataOp::Write(KvCommand::Append { key, value }))
}
