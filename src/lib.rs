//! raftkv's pure core: the Raft consensus state machine (`raft`), the
//! replicated key-value state machine (`kv`), the peer wire types
//! (`message`) and the linearizability checker of client histories
//! (`linearizability`, used by the simulator, `raftkv chaos` and the
//! dashboard). Nothing here does I/O, reads a clock or spawns a thread.

pub mod kv;
pub mod linearizability;
pub mod message;
pub mod raft;
