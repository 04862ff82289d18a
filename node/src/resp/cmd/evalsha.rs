//! EVALSHA: refused. raftkv runs no scripts; MULTI/EXEC applies several
//! commands atomically, and WATCH makes them conditional (check-and-set).

use super::Spec;

pub(crate) const SPEC: Spec = Spec {
    name: "evalsha",
    arity: -3,
    flags: &["noscript", "stale"],
    first_key: 0,
    last_key: 0,
    key_step: 0,
};
