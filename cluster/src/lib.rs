//! raftkv-cluster: a local cluster as the dashboard and the benchmarks see
//! it. `cluster` lays it out (ports, data and log dirs, the shared flags),
//! `supervisor` starts, stops and restarts its node processes, `status`
//! reads a node's RAFT.STATUS, `poll` polls the statuses and tails the node
//! logs in background tasks, and `clock` is the wall clock they stamp with.

pub mod clock;
pub mod cluster;
pub mod poll;
pub mod status;
pub mod supervisor;
