//! EVALSHA: refused. raftkv runs no scripts; MULTI/EXEC applies several
//! commands atomically, and WATCH makes them conditional (check-and-set).

use super::Spec;

pub(crate) const SPEC: Spec = Spec::keyless("evalsha", -3, &["noscript", "stale"]);
