//! The per-connection state commands read and change.

use std::time::Instant;

use bytes::Bytes;

/// One client connection's settings.
#[derive(Clone, Debug)]
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
        }
    }
}
