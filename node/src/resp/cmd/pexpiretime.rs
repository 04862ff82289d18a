//! PEXPIRETIME key: when the key expires, in Unix milliseconds; -1, -2 as TTL.

use raftkv::kv::{Query, TimeUnit};

use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::one_key("pexpiretime", 2, &["readonly", "fast"]);

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    Ok(DataOp::Read(Query::ExpireTime {
        key: args.next_bytes()?,
        unit: TimeUnit::Milliseconds,
    }))
}
