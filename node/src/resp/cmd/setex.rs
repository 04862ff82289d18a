//! SETEX key seconds value: SET key value EX seconds.

use super::expiry_args::{set_with_ttl, Unit};
use super::{Args, CommandError, DataOp, Spec};
pub(crate) const SPEC: Spec = Spec {
    name: "setex",
    arity: 4,
    flags: &["write", "denyoom"],
    first_key: 1,
    last_key: 1,
    key_step: 1,
};

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    set_with_ttl(args, "setex", Unit::Seconds)
}
