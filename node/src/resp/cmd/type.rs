//! TYPE key: `string`, or `none` for a missing key (raftkv holds strings only).

use super::{Args, CommandError, DataOp, Spec};
use raftkv::kv::Query;
pub(crate) const SPEC: Spec = Spec {
    name: "type",
    arity: 2,
    flags: &["readonly", "fast"],
    first_key: 1,
    last_key: 1,
    key_step: 1,
};

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    Ok(DataOp::Read(Query::Type {
        key: args.next_bytes()?,
    }))
}
