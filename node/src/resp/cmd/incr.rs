//! INCR key: replicated; the new value, or Redis's error when the value is
//! not an integer or the result would overflow.

use raftkv::kv::Command as KvCommand;

use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::one_key("incr", 2, &["write", "denyoom", "fast"]);

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    Ok(DataOp::Write(KvCommand::IncrBy {
        key: args.next_bytes()?,
        by: 1,
    }))
}
