//! PSETEX key milliseconds value: SET key value PX milliseconds.

use super::expiry_args::{set_with_ttl, Unit};
use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::one_key("psetex", 4, &["write", "denyoom"]);

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    set_with_ttl(args, "psetex", Unit::Milliseconds)
}
