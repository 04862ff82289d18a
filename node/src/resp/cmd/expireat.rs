//! EXPIREAT key unix-seconds [NX | XX | GT | LT]: EXPIRE at an absolute time.

use super::expiry_args::{expire, Unit};
use super::{Args, CommandError, DataOp, Spec};
pub(crate) const SPEC: Spec = Spec {
    name: "expireat",
    arity: -3,
    flags: &["write", "fast"],
    first_key: 1,
    last_key: 1,
    key_step: 1,
};

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    expire(args, "expireat", Unit::Seconds, true)
}
