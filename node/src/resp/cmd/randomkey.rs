//! RANDOMKEY: some key, or null when there is none. The key after random
//! bytes drawn by this server, in key order.

use raftkv::kv::Query;

use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::keyless("randomkey", 1, &["readonly"]);

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    args.finish()?;
    Ok(DataOp::Read(Query::RandomKey {
        probe: super::random_probe(),
    }))
}
