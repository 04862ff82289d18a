//! FLUSHDB [ASYNC|SYNC]: removes every key, through the log.

use super::{Args, CommandError, DataOp, Spec};
use raftkv::kv::Command as KvCommand;
pub(crate) const SPEC: Spec = Spec {
    name: "flushdb",
    arity: -1,
    flags: &["write"],
    first_key: 0,
    last_key: 0,
    key_step: 0,
};

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    super::flush_mode(args)?;
    Ok(DataOp::Write(KvCommand::FlushAll))
}
