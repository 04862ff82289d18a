//! DECRBY key decrement: the new value.

use raftkv::kv::Command as KvCommand;

use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::one_key("decrby", 3, &["write", "denyoom", "fast"]);

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    let key = args.next_bytes()?;
    let by = args
        .next_i64()?
        .checked_neg()
        .ok_or_else(|| CommandError::Other("ERR decrement would overflow".into()))?;
    Ok(DataOp::Write(KvCommand::IncrBy { key, by }))
}
