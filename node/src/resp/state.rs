//! `ServerState`: what the accept loop, every connection and every command
//! of one RESP server share (the backend, the limits, the SCAN cursors, the
//! connection count).
//!
//! It has a module of its own so that `server` (which creates it),
//! `connection` (which reads its limits) and `cmd` (which hands it to the
//! commands) all depend on it and none of them on another.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use super::scan_cursors::ScanCursors;
use super::Limits;

/// What every connection of one server shares.
pub(crate) struct ServerState<B> {
    pub backend: B,
    pub limits: Limits,
    pub scan_cursors: Arc<Mutex<ScanCursors>>,
    /// The port clients connect to (INFO `tcp_port`).
    pub local_port: u16,
    next_client_id: AtomicU64,
    /// One permit per open connection, `limits.connections_max` in all.
    connections: Arc<Semaphore>,
}

impl<B> ServerState<B> {
    pub(crate) fn new(backend: B, limits: Limits, local_port: u16) -> ServerState<B> {
        let connections = Arc::new(Semaphore::new(limits.connections_max));
        ServerState {
            backend,
            limits,
            scan_cursors: Arc::new(Mutex::new(ScanCursors::default())),
            local_port,
            next_client_id: AtomicU64::new(1),
            connections,
        }
    }

    pub(crate) fn next_client_id(&self) -> u64 {
        self.next_client_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A permit for one more connection, held until it closes; an error
    /// when `limits.connections_max` connections are open already.
    pub(crate) fn admit_connection(&self) -> Result<OwnedSemaphorePermit, TryAcquireError> {
        self.connections.clone().try_acquire_owned()
    }

    pub(crate) fn connected_clients(&self) -> usize {
        self.limits.connections_max - self.connections.available_permits()
    }
}
