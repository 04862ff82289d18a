//! GETEX key [EX s | PX ms | EXAT unix-s | PXAT unix-ms | PERSIST]: the value,
//! changing the key's expiry.

use super::expiry_args::get_ex;
use super::{Args, CommandError, DataOp, Spec};
pub(crate) const SPEC: Spec = Spec {
    name: "getex",
    arity: -2,
    flags: &["write", "fast"],
    first_key: 1,
    last_key: 1,
    key_step: 1,
};

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    get_ex(args)
}
