//! RENAMENX key newkey: RENAME only if newkey does not exist; 1 or 0.

use super::{Args, CommandError, DataOp, Spec};

pub(crate) const SPEC: Spec = Spec::keys("renamenx", 3, &["write", "fast"], (2, 1));

pub(crate) fn parse(args: &mut Args) -> Result<DataOp, CommandError> {
    super::rename::parse_rename(args, true)
}
