//! Tests of the RESP server that need no running node: frames, glob,
//! command decoding, and raw RESP against a server backed by a fake node.

mod auth;
mod cluster;
mod commands;
mod expiry;
mod fake;
mod frame;
mod glob;
mod membership;
mod server;
mod strings;
mod transactions;
