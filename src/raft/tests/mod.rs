//! Unit tests of the consensus core, named after the sentence of the Raft
//! paper (or the thesis, or RAFT_PITFALLS.md) they check. `harness` shuttles
//! messages between RawNodes applying the Ready contract.

mod harness;

mod durability;
mod election;
mod identity;
mod membership;
#[cfg(feature = "planted-bugs")]
mod planted;
mod reads;
mod replication;
mod robustness;
mod snapshot;
mod transfer;
