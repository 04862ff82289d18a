//! SETNX key value: sets the key only if it does not exist; 1 if set, 0 if not.

use raftkv::kv::Command as KvCommand;

use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::one_key("setnx", 3, &["write", "denyoom", "fast"]);

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    let key = args.next_bytes()?;
    let value = args.next_bytes()?;
    Ok(DataOp::Write(KvCommand::MSetNx {
        pairs: vec![(key, value)],
    }))
}
