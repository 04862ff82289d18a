//! EXPIRE key seconds [NX | XX | GT | LT]: the key expires after `seconds`
//! on the leader's clock (a time already past removes it); 1 if set, else 0.

use super::expiry_args::{expire, Unit};
use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::one_key("expire", -3, &["write", "fast"]);

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    expire(args, "expire", Unit::Seconds, false)
}
