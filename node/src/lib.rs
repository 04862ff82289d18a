//! raftkv-node: one raftkv replica on tokio.
//!
//! The driver task owns the consensus core and runs its Ready loop; storage
//! makes the log durable; transport links the peers; the RESP server speaks
//! the Redis protocol to clients; client is the async client the tools use.

pub mod client;
pub mod driver;
pub mod handle;
pub mod options;
pub mod resp;
pub mod storage;
pub mod transport;
