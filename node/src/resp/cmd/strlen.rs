//! STRLEN key: the value's length in bytes, 0 for a missing key.

use raftkv::kv::Query;

use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::one_key("strlen", 2, &["readonly", "fast"]);

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    Ok(DataOp::Read(Query::StrLen {
        key: args.next_bytes()?,
    }))
}
