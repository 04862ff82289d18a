//! TYPE key: `string`, or `none` for a missing key (raftkv holds strings only).

use raftkv::kv::Query;

use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::one_key("type", 2, &["readonly", "fast"]);

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    Ok(DataOp::Read(Query::Type {
        key: args.next_bytes()?,
    }))
}
