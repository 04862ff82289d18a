//! RENAME key newkey: moves the value (overwriting newkey); `ERR no such key`
//! when key does not exist.

use raftkv::kv::Command as KvCommand;

use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::keys("rename", 3, &["write"], (2, 1));

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    parse_rename(args, false)
}

/// RENAME's and RENAMENX's arguments.
pub(crate) fn parse_rename(args: &mut Args, only_if_absent: bool) -> Result<DataOp, CommandError> {
    let from = args.next_bytes()?;
    let to = args.next_bytes()?;
    Ok(DataOp::Write(KvCommand::Rename {
        from,
        to,
        only_if_absent,
    }))
}
