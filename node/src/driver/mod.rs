//! The driver: the one task that owns RawNode and runs its Ready loop (being written).
use std::sync::Arc;

use parking_lot::RwLock;
use raftkv::kv::{Command, KvStore, Reply};

use crate::handle::{NodeStatus, ReadError, WriteError};
use crate::options::NodeOptions;

pub struct Shared {
    pub(crate) store: Arc<RwLock<KvStore>>,
}

pub(crate) async fn write(_shared: &Shared, _command: Command) -> Result<Reply, WriteError> {
    Err(WriteError::Refused("driver not built yet".into()))
}

pub(crate) async fn read_barrier(_shared: &Shared) -> Result<(), ReadError> {
    Err(ReadError::Refused("driver not built yet".into()))
}

pub(crate) fn status(_shared: &Shared) -> NodeStatus {
    NodeStatus::default()
}

/// Runs one node until shutdown. (being written)
pub async fn run_node(options: NodeOptions) -> Result<(), String> {
    let _ = options;
    Err("node not built yet".into())
}
