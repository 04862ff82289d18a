//! The Redis-protocol (RESP2/RESP3) server of a node: frames, limits, the
//! accept loop, connections and one file per command (`cmd/`).
//!
//! Imports point one way: `server` -> `connection` -> `cmd`, and all three
//! -> `state` (the `ServerState` they share), so no two of them import
//! each other.
//!
//! Error replies that are specific to raftkv, and what they promise about
//! whether a write happened, are listed in `backend`: `-MOVED 0 <addr>`,
//! `-CLUSTERDOWN no leader` (not applied), `-UNCERTAIN outcome unknown: ...`
//! (may or may not be applied) and `-TRYAGAIN ...` (not applied).

mod backend;
mod cmd;
mod connection;
pub mod frame;
mod glob;
mod limits;
mod scan_cursors;
mod server;
mod session;
mod slot;
mod state;

pub use backend::Backend;
pub use frame::{Frame, FrameError};
pub use glob::glob_match;
pub use limits::Limits;
pub use server::serve;

#[cfg(test)]
mod tests;
