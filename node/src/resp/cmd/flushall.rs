//! FLUSHALL [ASYNC|SYNC]: FLUSHDB (raftkv has one database).

use raftkv::kv::Command as KvCommand;

use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::keyless("flushall", -1, &["write"]);

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    super::flush_mode(args)?;
    Ok(DataOp::Write(KvCommand::FlushAll))
}
