//! GET key: the value, or null. A linearizable read on the leader; a local
//! read after READONLY.

use raftkv::kv::Query;

use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::one_key("get", 2, &["readonly", "fast"]);

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    Ok(DataOp::Read(Query::Get {
        key: args.next_bytes()?,
    }))
}
