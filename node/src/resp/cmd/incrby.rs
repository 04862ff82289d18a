//! INCRBY key increment: the new value.

use raftkv::kv::Command as KvCommand;

use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::one_key("incrby", 3, &["write", "denyoom", "fast"]);

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    let key = args.next_bytes()?;
    let by = args.next_i64()?;
    Ok(DataOp::Write(KvCommand::IncrBy { key, by }))
}
