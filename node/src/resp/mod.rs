//! resp (being written).
