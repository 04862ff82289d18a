//! GETEX key [EX s | PX ms | EXAT unix-s | PXAT unix-ms | PERSIST]: the value,
//! changing the key's expiry.

use super::expiry_args::get_ex;
use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::one_key("getex", -2, &["write", "fast"]);

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    get_ex(args)
}
