//! SETNX key value: sets the key only if it does not exist; 1 if set, 0 if not.

use super::{Args, CommandError, DataOp, Spec};
use raftkv::kv::Command as KvCommand;
pub(crate) const SPEC: Spec = Spec {
    name: "setnx",
    arity: 3,
    flags: &["write", "denyoom", "fast"],
    first_key: 1,
    last_key: 1,
    key_step: 1,
};

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    let key = args.next_bytes()?;
    let value = args.next_bytes()?;
    Ok(DataOp::Write(KvCommand::MSetNx {
        pairs: vec![(key, value)],
    }))
}
