//! GETRANGE key start end: the bytes from start to end inclusive (negative
//! positions count from the end), empty for a missing key.

use super::{Args, CommandError, DataOp, Spec};
use raftkv::kv::Query;
pub(crate) const SPEC: Spec = Spec {
    name: "getrange",
    arity: 4,
    flags: &["readonly"],
    first_key: 1,
    last_key: 1,
    key_step: 1,
};

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    let key = args.next_bytes()?;
    let start = args.next_i64()?;
    let end = args.next_i64()?;
    Ok(DataOp::Read(Query::GetRange { key, start, end }))
}
