//! The async raftkv client: one RESP connection (`Connection`) and a
//! cluster-aware client (`ClusterClient`) that finds the leader, follows
//! `-MOVED`, and retries what is safe to retry until a per-request deadline.
//!
//! Retry rules (`ClusterClient::command`):
//! - `-MOVED 0 host:port`: the command was not applied; the client remembers
//!   `host:port` as the leader and resends there at once.
//! - `-CLUSTERDOWN`, `-TRYAGAIN`, and failing to connect: not applied; the
//!   client waits (capped exponential backoff) and tries again, moving on to
//!   the next address when the node it tried knows no leader or is down.
//! - `-UNCERTAIN` (the write may or may not have been applied), and a
//!   connection that breaks or times out after the request was sent: the
//!   outcome is unknown. Idempotent commands (GET, SET without options, DEL,
//!   MSET and the read-only commands) are retried: applying them twice
//!   leaves the same state (a retried DEL may report 0 keys removed when
//!   the first attempt removed them). Everything else, INCR above all, is
//!   returned as `ClientError::OutcomeUnknown` so the caller can read the key
//!   back before deciding; retrying blindly could increment twice.
//! - Any other error reply (`-ERR ...`) is returned as `ClientError::Server`.

mod cluster;
mod connection;
#[cfg(test)]
mod tests;

pub use cluster::{
    parse_members, ClusterClient, ATTEMPT_TIMEOUT_MS_DEFAULT, DUMP_SCAN_COUNT,
    DUMP_SCAN_ROUNDS_MAX, NODE_QUERY_TIMEOUT_MS, REDIRECTS_WITHOUT_BACKOFF_MAX,
    RETRY_BACKOFF_INITIAL_MS, RETRY_BACKOFF_MAX_MS, STATUS_TIMEOUT_MS,
};
pub use connection::{encode_request, use_password, Connection};

use crate::resp::FrameError;

/// Why a client call failed. Every variant names the node address involved.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot connect to {addr}: no answer within {timeout_ms} ms")]
    ConnectTimeout { addr: String, timeout_ms: u64 },
    #[error("connection to {addr} failed: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error("{addr} did not answer within {timeout_ms} ms")]
    Timeout { addr: String, timeout_ms: u64 },
    #[error("{addr} closed the connection")]
    Closed { addr: String },
    #[error("{addr} sent a malformed reply: {source}")]
    Protocol { addr: String, source: FrameError },
    /// An error reply the client does not handle itself (`-ERR ...`).
    #[error("{addr} replied: {message}")]
    Server { addr: String, message: String },
    #[error("{addr} answered {command} with {reply}, which is not what {command} returns")]
    UnexpectedReply {
        addr: String,
        command: String,
        reply: String,
    },
    /// The command may or may not have been applied (`-UNCERTAIN`, or the
    /// connection broke after it was sent). Read the key back before retrying.
    #[error("{command} at {addr}: outcome unknown ({reason}); read back before retrying")]
    OutcomeUnknown {
        addr: String,
        command: String,
        reason: String,
    },
    /// Retries ran out of time. `maybe_applied` is true when some attempt
    /// may have been applied (an idempotent write that met `-UNCERTAIN` or a
    /// broken connection after sending).
    #[error(
        "{command}: no success within {deadline_ms} ms ({attempts} attempts); last error: {last}"
    )]
    DeadlineExceeded {
        command: String,
        deadline_ms: u64,
        attempts: u32,
        maybe_applied: bool,
        last: Box<ClientError>,
    },
    /// An earlier request on this connection failed or was cancelled before
    /// its reply was read; its reply could be mistaken for the next one's.
    #[error("the connection to {addr} has an unfinished earlier request; open a new connection")]
    Interrupted { addr: String },
    #[error("an empty command has no name")]
    EmptyCommand,
    #[error("the client has no node addresses")]
    NoAddresses,
}

impl ClientError {
    /// True when the command may have been applied even though it failed.
    pub fn is_outcome_unknown(&self) -> bool {
        match self {
            ClientError::OutcomeUnknown { .. } => true,
            ClientError::DeadlineExceeded { maybe_applied, .. } => *maybe_applied,
            _ => false,
        }
    }
}
