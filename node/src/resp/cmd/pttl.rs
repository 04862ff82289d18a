//! PTTL key: milliseconds left before the key expires; -1, -2 as TTL.

use super::{Args, CommandError, DataOp, Spec};
use raftkv::kv::{Query, TimeUnit};
pub(crate) const SPEC: Spec = Spec {
    name: "pttl",
    arity: 2,
    flags: &["readonly", "fast"],
    first_key: 1,
    last_key: 1,
    key_step: 1,
};

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    Ok(DataOp::Read(Query::Ttl {
        key: args.next_bytes()?,
        unit: TimeUnit::Milliseconds,
    }))
}
