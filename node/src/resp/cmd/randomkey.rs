//! RANDOMKEY: some key, or null when there is none. The key after random
//! bytes drawn by this server, in key order.

use super::{Args, CommandError, DataOp, Spec};
use raftkv::kv::Query;
pub(crate) const SPEC: Spec = Spec {
    name: "randomkey",
    arity: 1,
    flags: &["readonly"],
    first_key: 0,
    last_key: 0,
    key_step: 0,
};

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    args.finish()?;
    Ok(DataOp::Read(Query::RandomKey {
        probe: super::random_probe(),
    }))
}
