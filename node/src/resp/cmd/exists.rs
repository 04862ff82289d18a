//! EXISTS key [key ...]: how many of the keys exist (a key named twice
//! counts twice, as in Redis).

use raftkv::kv::Query;

use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::all_keys("exists", -2, &["readonly", "fast"]);

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    Ok(DataOp::Read(Query::Exists {
        keys: args.take_at_least_one()?,
    }))
}
