//! SETRANGE key offset value: overwrites from offset, padding with zero
//! bytes; the new length.

use raftkv::kv::Command as KvCommand;

use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::one_key("setrange", 4, &["write", "denyoom"]);

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    let key = args.next_bytes()?;
    let offset = args.next_i64()?;
    let value = args.next_bytes()?;
    let offset = u64::try_from(offset)
        .map_err(|_| CommandError::Other("ERR offset is out of range".into()))?;
    Ok(DataOp::Write(KvCommand::SetRange { key, offset, value }))
}
