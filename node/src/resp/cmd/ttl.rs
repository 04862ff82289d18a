//! TTL key: seconds left before the key expires (rounded); -1 without an
//! expiry, -2 for a missing key.

use super::{Args, CommandError, DataOp, Spec};
use raftkv::kv::{Query, TimeUnit};
pub(crate) const SPEC: Spec = Spec {
    name: "ttl",
    arity: 2,
    flags: &["readonly", "fast"],
    first_key: 1,
    last_key: 1,
    key_step: 1,
};

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    Ok(DataOp::Read(Query::Ttl {
        key: args.next_bytes()?,
        unit: TimeUnit::Seconds,
    }))
}
