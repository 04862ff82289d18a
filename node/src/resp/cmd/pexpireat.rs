//! PEXPIREAT key unix-milliseconds [NX | XX | GT | LT]: EXPIREAT in milliseconds.

use super::expiry_args::{expire, Unit};
use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::one_key("pexpireat", -3, &["write", "fast"]);

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    expire(args, "pexpireat", Unit::Milliseconds, true)
}
