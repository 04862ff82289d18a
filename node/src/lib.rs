//! raftkv-node: one raftkv replica on tokio.
//!
//! The driver task owns the consensus core and runs its Ready loop; storage
//! makes the log durable; transport links the peers; the RESP server speaks
//! the Redis protocol to clients; client is the async client the tools use.
//! `node` is the composition root: it opens those parts, wires them
//! together and runs them (`node::run_node_blocking`). `log_events` names
//! every event a node logs, for the node and for whatever reads its logs.
//! `fault_proxy` is not part of a replica: a supervisor routes the peer
//! links of the nodes it runs through it; it lives here so the node's
//! process tests can run real nodes behind it.

pub mod client;
pub mod driver;
pub mod fault_proxy;
pub mod join;
pub mod log_events;
pub mod node;
pub mod options;
pub mod resp;
pub mod storage;
pub mod transport;

/// Every binary linking the node (raftkv-node, raftkv) allocates through
/// mimalloc: the hot path allocates per request and per batch, and glibc's
/// malloc spent about a fifth of a loaded leader's time consolidating its
/// free lists. Build with `--no-default-features` to keep the system one.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL_ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
