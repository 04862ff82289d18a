//! RENAME key newkey: moves the value (overwriting newkey); `ERR no such key`
//! when key does not exist.

use super::{Args, CommandError, DataOp, Spec};
use raftkv::kv::Command as KvCommand;
pub(crate) const SPEC: Spec = Spec {
    name: "rename",
    arity: 3,
    flags: &["write"],
    first_key: 1,
    last_key: 2,
    key_step: 1,
};

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    let from = args.next_bytes()?;
    let to = args.next_bytes()?;
    Ok(DataOp::Write(KvCommand::Rename {
        from,
        to,
        only_if_absent: false,
    }))
}
