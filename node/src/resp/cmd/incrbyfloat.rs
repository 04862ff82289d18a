//! INCRBYFLOAT key increment: the new value as text (shortest form that reads
//! back as the same double).

use super::{Args, CommandError, DataOp, Spec};
use raftkv::kv::Command as KvCommand;
pub(crate) const SPEC: Spec = Spec {
    name: "incrbyfloat",
    arity: 3,
    flags: &["write", "denyoom", "fast"],
    first_key: 1,
    last_key: 1,
    key_step: 1,
};

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    let key = args.next_bytes()?;
    let by = args.next_bytes()?;
    if raftkv::kv::parse_float(&by).is_none() {
        return Err(CommandError::Other("ERR value is not a valid float".into()));
    }
    Ok(DataOp::Write(KvCommand::IncrByFloat { key, by }))
}
