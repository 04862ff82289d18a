//! raftkv's pure core: the Raft consensus state machine (`raft`), the
//! replicated key-value state machine (`kv`), the peer wire types
//! (`message`), the Ready pipeline a node runs around the core
//! (`pipeline`) and the linearizability checker of client histories
//! (`linearizability`, used by the simulator, `raftkv chaos` and the
//! dashboard). Nothing here does I/O, reads a clock or spawns a thread.

pub mod kv;
pub mod linearizability;
pub mod message;
pub mod pipeline;
pub mod raft;
