//! MGET key [key ...]: the values in order, null for missing keys.

use raftkv::kv::Query;

use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::all_keys("mget", -2, &["readonly", "fast"]);

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    Ok(DataOp::Read(Query::MGet {
        keys: args.take_at_least_one()?,
    }))
}
