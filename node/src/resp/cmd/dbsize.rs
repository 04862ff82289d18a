//! DBSIZE: the number of keys.

use super::{Args, CommandError, DataOp, Spec};
use raftkv::kv::Query;
pub(crate) const SPEC: Spec = Spec {
    name: "dbsize",
    arity: 1,
    flags: &["readonly", "fast"],
    first_key: 0,
    last_key: 0,
    key_step: 0,
};

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    args.finish()?;
    Ok(DataOp::Read(Query::DbSize))
}
