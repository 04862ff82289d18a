//! EXPIREAT key unix-seconds [NX | XX | GT | LT]: EXPIRE at an absolute time.

use super::expiry_args::{expire, Unit};
use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::one_key("expireat", -3, &["write", "fast"]);

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    expire(args, "expireat", Unit::Seconds, true)
}
