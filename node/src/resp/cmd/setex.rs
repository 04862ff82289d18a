//! SETEX key seconds value: SET key value EX seconds.

use super::expiry_args::{set_with_ttl, Unit};
use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::one_key("setex", 4, &["write", "denyoom"]);

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    set_with_ttl(args, "setex", Unit::Seconds)
}
