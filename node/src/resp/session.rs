//! The per-connection state commands read and change.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use raftkv::kv::Watched;

use super::cmd::DataOp;

/// Most commands one MULTI may queue; more make its EXEC fail (EXECABORT).
pub(crate) const TRANSACTION_OPS_MAX: usize = 10_000;

/// A MULTI being queued.
#[derive(Clone, Debug, Default)]
pub(crate) struct Transaction {
    pub ops: Vec<DataOp>,
    /// A command was refused while queueing: EXEC answers EXECABORT.
    pub failed: bool,
}

/// What WATCH recorded. Filled by WATCH's read when it completes; EXEC,
/// which starts only after the connection's earlier reads finished, takes it.
#[derive(Clone, Debug, Default)]
pub(crate) struct WatchState {
    pub keys: Vec<Watched>,
    /// A WATCH could not read its keys: the next EXEC must not run.
    pub failed: bool,
}

/// One client connection's settings.
#[derive(Debug)]
pub(crate) struct Session {
    /// Unique per server process (CLIENT ID, HELLO).
    pub id: u64,
    pub peer_addr: String,
    pub local_addr: String,
    pub connected_at: Instant,
    /// CLIENT SETNAME / HELLO SETNAME.
    pub name: Option<Bytes>,
    /// CLIENT SETINFO LIB-NAME / LIB-VER.
    pub library_name: Option<Bytes>,
    pub library_version: Option<Bytes>,
    /// HELLO 3 switches replies to RESP3.
    pub resp3: bool,
    /// READONLY: serve reads from this node's own state.
    pub readonly: bool,
    /// Between MULTI and EXEC/DISCARD: the commands queued so far.
    pub transaction: Option<Transaction>,
    /// AUTH succeeded, or no password is configured.
    pub authenticated: bool,
    pub watched: Arc<Mutex<WatchState>>,
}

impl Session {
    pub(crate) fn new(id: u64, peer_addr: String, local_addr: String) -> Session {
        Session {
            id,
            peer_addr,
            local_addr,
            connected_at: Instant::now(),
            name: None,
            library_name: None,
            library_version: None,
            resp3: false,
            readonly: false,
            transaction: None,
            authenticated: true,
            watched: Arc::default(),
        }
    }
}
