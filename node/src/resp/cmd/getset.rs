//! GETSET key value: sets the value; the old one, or null.

use raftkv::kv::{Command as KvCommand, SetCondition};

use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::one_key("getset", 3, &["write", "denyoom", "fast"]);

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    let key = args.next_bytes()?;
    let value = args.next_bytes()?;
    Ok(DataOp::Write(KvCommand::SetWith {
        key,
        value,
        condition: SetCondition::Always,
        get: true,
    }))
}
