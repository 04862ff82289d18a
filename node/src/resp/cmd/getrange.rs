//! GETRANGE key start end: the bytes from start to end inclusive (negative
//! positions count from the end), empty for a missing key.

use raftkv::kv::Query;

use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::one_key("getrange", 4, &["readonly"]);

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    let key = args.next_bytes()?;
    let start = args.next_i64()?;
    let end = args.next_i64()?;
    Ok(DataOp::Read(Query::GetRange { key, start, end }))
}
