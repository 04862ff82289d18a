//! DBSIZE: the number of keys.

use raftkv::kv::Query;

use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::keyless("dbsize", 1, &["readonly", "fast"]);

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    args.finish()?;
    Ok(DataOp::Read(Query::DbSize))
}
