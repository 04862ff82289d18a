//! Joining a running cluster (`raftkv node --join <client addr>`).
//!
//! Before the node starts, it asks the member it was pointed at for
//! RAFT.MEMBERS: the members' peer addresses are how it reaches them (the
//! cluster's first configuration carries none). A node with an empty data
//! dir then, once running, asks the leader to add it as a learner
//! (RAFT.ADDLEARNER), and asks for its promotion (RAFT.PROMOTE) until the
//! leader, which promotes only a learner holding everything committed,
//! agrees. Each step is retried until it succeeds or the node stops; each
//! is logged.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::client::{ClientError, ClusterClient};
use crate::log_events;

/// How long a node with an empty data dir tries to reach its `--join`
/// address before it gives up (a typo should not wait forever).
pub const JOIN_CONTACT_MS_MAX: u64 = 30_000;
/// How long a restarting node that joined earlier waits for its `--join`
/// address: it can run on the addresses its configuration holds.
pub const REJOIN_CONTACT_MS_MAX: u64 = 3_000;
/// Between two attempts to reach the `--join` address or to take a step.
pub const JOIN_RETRY_MS: u64 = 200;
/// How long one ADDLEARNER or PROMOTE request is retried by the client
/// (through elections, `-TRYAGAIN`) before the step starts over.
pub const JOIN_STEP_DEADLINE_MS: u64 = 10_000;

/// A member as the `--join` address listed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinedMember {
    pub id: u64,
    pub peer_addr: SocketAddr,
    pub client_addr: String,
}

/// The other members, as `join` lists them (RAFT.MEMBERS). With `required`
/// (an empty data dir) the node cannot start without them: an error after
/// `JOIN_CONTACT_MS_MAX`. Otherwise an empty list after
/// `REJOIN_CONTACT_MS_MAX`, with a warning.
pub async fn fetch_members(
    own_id: u64,
    join: &str,
    required: bool,
) -> Result<Vec<JoinedMember>, String> {
    let limit_ms = if required {
        JOIN_CONTACT_MS_MAX
    } else {
        REJOIN_CONTACT_MS_MAX
    };
    let started = Instant::now();
    let last_error = loop {
        let error = match ClusterClient::members(join).await {
            Ok(members) => {
                let listed = members
                    .into_iter()
                    .filter(|m| m.id != own_id)
                    .filter_map(|m| {
                        Some(JoinedMember {
                            id: m.id,
                            peer_addr: m.peer_addr.parse().ok()?,
                            client_addr: m.client_addr,
                        })
                    })
                    .collect::<Vec<_>>();
                if !listed.is_empty() || !required {
                    return Ok(listed);
                }
                format!("{join} lists no other member with a peer address")
            }
            Err(e) => e.to_string(),
        };
        if started.elapsed() >= Duration::from_millis(limit_ms) {
            break error;
        }
        tokio::time::sleep(Duration::from_millis(JOIN_RETRY_MS)).await;
    };
    if required {
        return Err(format!(
            "node {own_id}: cannot join through {join} within {limit_ms} ms: {last_error}"
        ));
    }
    warn!(
        event = log_events::CONFIG_WARNING,
        join,
        reason = last_error.as_str(),
        message = "--join address did not answer; using the addresses the configuration holds"
    );
    Ok(Vec::new())
}

/// What joining needs: this node and where the members take requests.
#[derive(Clone, Debug)]
pub struct Join {
    pub id: u64,
    pub peer_addr: String,
    pub client_addr: String,
    /// Client addresses of the members (the `--join` one first).
    pub members: Vec<String>,
}

/// Asks to be added as a learner, then to be promoted, until both are
/// done or `shutdown`.
pub async fn join_cluster(join: Join, shutdown: CancellationToken) {
    let mut client = ClusterClient::new(
        join.members.clone(),
        Duration::from_millis(JOIN_STEP_DEADLINE_MS),
    );
    let id = join.id.to_string();
    info!(event = log_events::JOIN_REQUESTED, id = join.id, peer = %join.peer_addr, client = %join.client_addr);
    let add: [&[u8]; 4] = [
        b"RAFT.ADDLEARNER",
        id.as_bytes(),
        join.peer_addr.as_bytes(),
        join.client_addr.as_bytes(),
    ];
    // A retried ADDLEARNER whose first attempt was applied after all finds
    // this node a member already.
    if !step(&mut client, &add, "is already a member", &shutdown).await {
        return;
    }
    info!(event = log_events::JOINED_AS_LEARNER, id = join.id);
    let promote: [&[u8]; 2] = [b"RAFT.PROMOTE", id.as_bytes()];
    if step(&mut client, &promote, "is a voter already", &shutdown).await {
        info!(event = log_events::PROMOTED, id = join.id);
    }
}

/// Sends `request` until it succeeds or is refused with `done_already`;
/// false when `shutdown` came first.
async fn step(
    client: &mut ClusterClient,
    request: &[&[u8]],
    done_already: &str,
    shutdown: &CancellationToken,
) -> bool {
    let name = String::from_utf8_lossy(request[0]).into_owned();
    loop {
        let answer = tokio::select! {
            _ = shutdown.cancelled() => return false,
            answer = client.command(request) => answer,
        };
        match answer {
            Ok(_) => return true,
            Err(ClientError::Server { message, .. }) if message.contains(done_already) => {
                return true
            }
            Err(e) => {
                warn!(event = log_events::JOIN_RETRY, step = name.as_str(), reason = %e);
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(Duration::from_millis(JOIN_RETRY_MS)) => {}
        }
    }
}
