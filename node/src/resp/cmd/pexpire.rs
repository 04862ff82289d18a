//! PEXPIRE key milliseconds [NX | XX | GT | LT]: EXPIRE in milliseconds.

use super::expiry_args::{expire, Unit};
use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::one_key("pexpire", -3, &["write", "fast"]);

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    expire(args, "pexpire", Unit::Milliseconds, false)
}
