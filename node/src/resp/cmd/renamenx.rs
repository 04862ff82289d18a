//! RENAMENX key newkey: RENAME only if newkey does not exist; 1 or 0.

use super::{Args, CommandError, DataOp, Spec};
use raftkv::kv::Command as KvCommand;
pub(crate) const SPEC: Spec = Spec {
    name: "renamenx",
    arity: 3,
    flags: &["write", "fast"],
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
        only_if_absent: true,
    }))
}
