//! TTL key: seconds left before the key expires (rounded); -1 without an
//! expiry, -2 for a missing key.

use raftkv::kv::{Query, TimeUnit};

use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::one_key("ttl", 2, &["readonly", "fast"]);

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    Ok(DataOp::Read(Query::Ttl {
        key: args.next_bytes()?,
        unit: TimeUnit::Seconds,
    }))
}
