//! GET key: the value, or null. A linearizable read on the leader; a local
//! read after READONLY.

use super::{Args, CommandError, DataOp, Spec};
use raftkv::kv::Query;
pub(crate) const SPEC: Spec = Spec {
    name: "get",
    arity: 2,
    flags: &["readonly", "fast"],
    first_key: 1,
    last_key: 1,
    key_step: 1,
};

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    Ok(DataOp::Read(Query::Get {
        key: args.next_bytes()?,
    }))
}
