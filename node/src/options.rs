//! `raftkv node` flags: a public interface (scripts and other hosts use them).

use std::net::SocketAddr;
use std::path::PathBuf;

/// One member of the cluster as given by `--cluster id=host:port,...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAddr {
    pub id: u64,
    pub peer_addr: SocketAddr,
}

/// The whole membership, as given by `--cluster`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSpec(pub Vec<PeerAddr>);

/// Parses `1=127.0.0.1:7101,2=127.0.0.1:7102`.
pub fn parse_cluster(text: &str) -> Result<ClusterSpec, String> {
    let mut peers = Vec::new();
    for item in text.split(',').filter(|s| !s.trim().is_empty()) {
        let (id, addr) = item
            .split_once('=')
            .ok_or_else(|| format!("cluster member '{item}' is not of the form id=host:port"))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| format!("cluster member '{item}': id '{id}' is not a positive integer"))?;
        if id == 0 {
            return Err(format!("cluster member '{item}': id 0 is reserved"));
        }
        let peer_addr: SocketAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("cluster member '{item}': '{addr}' is not an ip:port address"))?;
        if peers.iter().any(|p: &PeerAddr| p.id == id) {
            return Err(format!("cluster member id {id} appears twice"));
        }
        peers.push(PeerAddr { id, peer_addr });
    }
    if peers.is_empty() {
        return Err("--cluster lists no members".into());
    }
    Ok(ClusterSpec(peers))
}

#[derive(Clone, Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("start").args(["cluster", "join"]).required(true))]
pub struct NodeOptions {
    /// This node's id (1..).
    #[arg(long)]
    pub id: u64,
    /// Address the Redis-protocol server listens on.
    #[arg(long)]
    pub client: SocketAddr,
    /// Address the peer (Raft) listener binds.
    #[arg(long)]
    pub peer: SocketAddr,
    /// The members a new cluster starts with: id=peer_host:port,...
    /// (including this node). Not with --join.
    #[arg(long, value_parser = parse_cluster)]
    pub cluster: Option<ClusterSpec>,
    /// Joins a running cluster through any member's client address (its
    /// RESP host:port) instead of starting one: with an empty data dir the
    /// node asks to be added as a learner, catches up and asks to be
    /// promoted to voter. A restarted node that joined earlier only learns
    /// the members' addresses there.
    #[arg(long, value_name = "CLIENT_ADDR")]
    pub join: Option<String>,
    /// Dials these peers at these addresses instead of the ones the
    /// configuration names: id=host:port,... (a fault proxy in between).
    #[arg(long, value_parser = parse_cluster, value_name = "ROUTES")]
    pub peer_routes: Option<ClusterSpec>,
    /// This node's data directory (WAL, hard state, snapshots).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Where node-<id>.log is written.
    #[arg(long, default_value = "logs")]
    pub log_dir: PathBuf,
    /// Cluster identity checked in the peer handshake.
    #[arg(long, default_value = "raftkv")]
    pub cluster_id: String,
    /// Driver tick interval in milliseconds.
    #[arg(long, default_value_t = 10)]
    pub tick_interval_ms: u64,
    /// Leader heartbeat every this many ticks.
    #[arg(long, default_value_t = 3)]
    pub heartbeat_ticks: u64,
    /// Election timeout lower bound in ticks (randomized up to the max).
    #[arg(long, default_value_t = 15)]
    pub election_ticks_min: u64,
    /// Election timeout upper bound in ticks (exclusive).
    #[arg(long, default_value_t = 30)]
    pub election_ticks_max: u64,
    /// Compact the log once this many entries are applied past the last
    /// snapshot (and at least a quarter as many as there are keys).
    #[arg(long, default_value_t = 50_000)]
    pub snapshot_entries_threshold: u64,
    /// Largest bulk string a client may send, in bytes.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    pub bulk_bytes_max: usize,
    /// Largest number of arguments in one client request.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub arguments_max: usize,
    /// Largest number of simultaneous client connections.
    #[arg(long, default_value_t = 10_000)]
    pub connections_max: usize,
    /// Clients must AUTH with this password before any other command
    /// (as Redis's requirepass). Without it AUTH is refused.
    #[arg(long)]
    pub requirepass: Option<String>,
}

impl NodeOptions {
    /// The members a new cluster starts with (`--cluster`); none for a
    /// node that joins a running one.
    pub fn bootstrap_members(&self) -> &[PeerAddr] {
        self.cluster.as_ref().map_or(&[], |spec| &spec.0)
    }

    /// The `--peer-routes` entries.
    pub fn routes(&self) -> &[PeerAddr] {
        self.peer_routes.as_ref().map_or(&[], |spec| &spec.0)
    }
}
