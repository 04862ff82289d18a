//! FLUSHDB [ASYNC|SYNC]: removes every key, through the log.

use raftkv::kv::Command as KvCommand;

use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::keyless("flushdb", -1, &["write"]);

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    super::flush_mode(args)?;
    Ok(DataOp::Write(KvCommand::FlushAll))
}
