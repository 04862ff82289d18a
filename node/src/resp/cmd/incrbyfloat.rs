//! INCRBYFLOAT key increment: the new value as text (shortest form that reads
//! back as the same double).

use raftkv::kv::Command as KvCommand;

use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::one_key("incrbyfloat", 3, &["write", "denyoom", "fast"]);

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    let key = args.next_bytes()?;
    let by = args.next_bytes()?;
    if raftkv::kv::parse_float(&by).is_none() {
        return Err(CommandError::Other("ERR value is not a valid float".into()));
    }
    Ok(DataOp::Write(KvCommand::IncrByFloat { key, by }))
}
