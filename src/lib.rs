//! raftkv's pure core: the Raft consensus state machine (`raft`), the
//! replicated key-value state machine (`kv`) and the peer wire types
//! (`message`), and the Ready pipeline a node runs around the core
//! (`pipeline`). Nothing here does I/O, reads a clock or spawns a thread.

pub mod kv;
pub mod message;
pub mod pipeline;
pub mod raft;
