//! The composition root of a node: the one place that wires the parts
//! together.
//!
//! `run_node` sets up logging, opens the storage and this node's identity,
//! restores the state machine from the newest snapshot, builds the
//! consensus core, starts the peer transport and the RESP server, hands
//! everything to the driver and, when the driver returns (SIGTERM/SIGINT,
//! graceful: leadership is handed over first, or a fatal storage error),
//! stops the server. The parts themselves know nothing of each other: the
//! driver gets a transport and a storage, the RESP server a `NodeHandle`.

use std::path::Path;
use std::time::Instant;

use raftkv::kv::KvStore;
use raftkv::raft::{Config, InitialState, RawNode};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::driver::handle::NodeHandle;
use crate::driver::{DriverParts, PeerAddresses, Shared, COMMAND_BYTES_MAX};
use crate::log_events;
use crate::options::NodeOptions;
use crate::storage::{Identity, SnapshotPages, Storage};
use crate::transport::{Inbound, Transport, TransportConfig};

/// Bound on peer inputs queued for the driver.
pub const INBOUND_QUEUE_MAX: usize = 65_536;
/// Largest peer frame accepted, in bytes (a snapshot chunk plus headroom).
pub const PEER_FRAME_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Messages queued per peer before new ones are dropped.
pub const PEER_SEND_QUEUE_MAX: usize = 16_384;
/// Longest wait between reconnect attempts to a peer, in milliseconds.
pub const PEER_RECONNECT_BACKOFF_MAX_MS: u64 = 250;
/// Bytes of snapshot per InstallSnapshot chunk (one chunk is in flight per
/// follower, so this sets the round trips a transfer takes).
pub const SNAPSHOT_CHUNK_BYTES_MAX: usize = 8 * 1024 * 1024;
// A write command and a snapshot chunk must each fit one peer frame.
const _: () = assert!(COMMAND_BYTES_MAX < PEER_FRAME_BYTES_MAX);
const _: () = assert!(SNAPSHOT_CHUNK_BYTES_MAX + 1024 * 1024 < PEER_FRAME_BYTES_MAX);

/// Runs one node on the calling thread until it is told to stop: the
/// runtime raftkv nodes are meant to run on.
///
/// One thread runs the Ready loop, the peer links and every client
/// connection, and the WAL thread fsyncs beside it. Handing a request, a
/// peer message or a reply between tasks then never wakes another thread;
/// on a small machine running several nodes those wake-ups, not the work,
/// were most of a write's cost. The driver never blocks, so nothing waits
/// behind a slow disk but the writes themselves.
pub fn run_node_blocking(options: NodeOptions) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(run_node(options))
}

/// Runs one node until it is told to stop. Errors are returned as text for
/// the command line to print.
pub async fn run_node(options: NodeOptions) -> Result<(), String> {
    std::fs::create_dir_all(&options.log_dir)
        .map_err(|e| format!("cannot create log dir {}: {e}", options.log_dir.display()))?;
    let _log_guard = init_logging(&options.log_dir, options.id)?;
    let result = run(options).await;
    if let Err(message) = &result {
        error!(event = log_events::FATAL, message = message.as_str());
    }
    result
}

fn init_logging(
    log_dir: &Path,
    id: u64,
) -> Result<tracing_appender::non_blocking::WorkerGuard, String> {
    let appender = tracing_appender::rolling::never(log_dir, format!("node-{id}.log"));
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(writer)
        .with_max_level(tracing::Level::INFO)
        .with_current_span(false)
        .finish();
    // A second node in one process (tests) keeps the first subscriber.
    let _ = tracing::subscriber::set_global_default(subscriber);
    Ok(guard)
}

/// Wires the parts in dependency order (storage, state machine, core,
/// transport, RESP server, driver) and runs the driver to its end.
async fn run(options: NodeOptions) -> Result<(), String> {
    let id = options.id;
    let mut config = raft_config(&options);
    config.validate().map_err(|e| format!("node {id}: {e}"))?;
    check_own_cluster_entry(&options)?;
    let (storage, mut initial, identity) = open_storage(&options)?;
    config.incarnation = identity.incarnation;
    // A node that joins with an empty disk asks to be added; one that
    // restarts after joining only learns the members' addresses.
    let must_join =
        options.join.is_some() && storage.last_index() == 0 && initial.snapshot.is_none();
    let joined_members = match &options.join {
        Some(join) => crate::join::fetch_members(id, join, must_join).await?,
        None => Vec::new(),
    };
    let restored = restore_state_machine(&options, &mut initial)?;
    let raw = RawNode::new(config, initial, seed_from_clock(id))
        .map_err(|e| format!("node {id}: {e}"))?;

    let shutdown = CancellationToken::new();
    let (transport, inbound) = start_transport(&options, &identity, &shutdown).await?;
    let peers = PeerAddresses::new(
        id,
        options.routes().iter().map(|p| (p.id, p.peer_addr)),
        options
            .bootstrap_members()
            .iter()
            .map(|p| (p.id, p.peer_addr))
            .chain(joined_members.iter().map(|m| (m.id, m.peer_addr))),
        options.join.is_some(),
    );
    let (shared, requests) = Shared::new(restored.store);
    let handle = NodeHandle {
        inner: shared.clone(),
    };
    let server = start_client_server(&options, handle, &shutdown).await?;
    info!(event = log_events::STARTED, id, client = %options.client, peer = %options.peer, pid = std::process::id());
    stop_on_signal(shutdown.clone());
    if must_join {
        let join = crate::join::Join {
            id,
            peer_addr: options.peer.to_string(),
            client_addr: options.client.to_string(),
            members: options
                .join
                .iter()
                .cloned()
                .chain(joined_members.iter().map(|m| m.client_addr.clone()))
                .collect(),
        };
        tokio::spawn(crate::join::join_cluster(join, shutdown.clone()));
    }

    let parts = DriverParts {
        raw,
        storage,
        transport,
        inbound,
        shared,
        requests,
        applied_term: restored.applied_term,
        snapshot_pages: restored.snapshot_pages,
        peers,
    };
    let result = crate::driver::run_driver(&options, parts, shutdown.clone()).await;
    shutdown.cancel();
    let _ = server.await;
    result
}

fn raft_config(options: &NodeOptions) -> Config {
    let voters = options.bootstrap_members().iter().map(|p| p.id).collect();
    let mut config = Config::new(options.id, voters);
    config.heartbeat_ticks = options.heartbeat_ticks;
    config.election_ticks_min = options.election_ticks_min;
    config.election_ticks_max = options.election_ticks_max;
    config.snapshot_chunk_bytes_max = SNAPSHOT_CHUNK_BYTES_MAX;
    config
}

/// `--cluster` must list this node; a `--peer` port that differs from its
/// entry there is allowed (a proxy in between) but worth a warning.
fn check_own_cluster_entry(options: &NodeOptions) -> Result<(), String> {
    let id = options.id;
    let Some(cluster) = &options.cluster else {
        return Ok(());
    };
    let me = cluster
        .0
        .iter()
        .find(|p| p.id == id)
        .ok_or_else(|| format!("node {id}: --cluster does not list this node's id"))?;
    if me.peer_addr.port() != options.peer.port() {
        warn!(
            event = log_events::CONFIG_WARNING,
            message = "--peer port differs from this node's --cluster entry"
        );
    }
    Ok(())
}

/// Opens the data dir (recovering the WAL and the newest snapshot) and this
/// node's identity, and logs what recovery found.
fn open_storage(options: &NodeOptions) -> Result<(Storage, InitialState, Identity), String> {
    let id = options.id;
    let (storage, initial, summary) =
        Storage::open(&options.data_dir).map_err(|e| format!("node {id}: {e}"))?;
    let identity = Identity::load_or_create(&options.data_dir, id, &options.cluster_id)
        .map_err(|e| format!("node {id}: {e}"))?;
    info!(event = log_events::RECOVERY, summary = %summary, snapshot_index = summary.snapshot_index,
        last_index = summary.last_index, term = summary.hard_state.term, torn_tail_bytes = summary.torn_tail_bytes,
        incarnation = identity.incarnation_hex(), new_incarnation = identity.created);
    if identity.created && summary.last_index == 0 && summary.hard_state.term == 0 {
        // Either a brand-new cluster or a node that lost its disk: the
        // cluster tells which (see raftkv::raft::membership).
        info!(
            event = log_events::IDENTITY_CREATED,
            incarnation = identity.incarnation_hex(),
            message = "empty data dir: this node is a new incarnation; a cluster that knew an \
                       earlier one counts it as a voter only after re-admitting it"
        );
    }
    Ok((storage, initial, identity))
}

/// The state machine as of the newest snapshot, and what the driver needs
/// to go on from there.
struct Restored {
    store: KvStore,
    /// Term of the snapshot's last entry (0: no snapshot).
    applied_term: u64,
    /// The mapping of the snapshot file the core sends to followers.
    snapshot_pages: Option<SnapshotPages>,
}

/// Rebuilds the state machine from the snapshot `initial` starts from, if
/// any, and gives the core the snapshot file's mapping as its state bytes.
///
/// Streamed from the file (already checked by `Storage::open`): the image
/// is never held in memory next to the map built from it.
fn restore_state_machine(
    options: &NodeOptions,
    initial: &mut InitialState,
) -> Result<Restored, String> {
    let id = options.id;
    let Some(snapshot) = &mut initial.snapshot else {
        return Ok(Restored {
            store: KvStore::new(),
            applied_term: 0,
            snapshot_pages: None,
        });
    };
    let (index, term) = (snapshot.meta.index, snapshot.meta.term);
    let (data, pages) = crate::storage::map_snapshot(&options.data_dir, index, term)
        .map_err(|e| format!("node {id}: {e}"))?;
    snapshot.data = data;
    let reader = crate::storage::snapshot_data_reader(&options.data_dir, index, term)
        .map_err(|e| format!("node {id}: {e}"))?;
    let started = Instant::now();
    let store = KvStore::restore_from(reader).map_err(|e| {
        format!(
            "node {id}: snapshot in {} does not load: {e}",
            options.data_dir.display()
        )
    })?;
    info!(
        event = log_events::SNAPSHOT_RESTORED,
        index,
        keys = store.len(),
        elapsed_ms = started.elapsed().as_millis() as u64
    );
    Ok(Restored {
        store,
        applied_term: term,
        snapshot_pages: Some(pages),
    })
}

fn seed_from_clock(id: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ id.rotate_left(32) ^ u64::from(std::process::id())
}

/// Listens for peers and starts the outbound links; peer messages arrive
/// on the returned queue.
async fn start_transport(
    options: &NodeOptions,
    identity: &Identity,
    shutdown: &CancellationToken,
) -> Result<(Transport, mpsc::Receiver<Inbound>), String> {
    let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE_MAX);
    let config = TransportConfig {
        id: options.id,
        listen: options.peer,
        // A joining node links to the members once it knows them (the
        // driver sets the links from the configuration).
        peers: match &options.cluster {
            Some(cluster) => cluster.0.clone(),
            None => vec![crate::options::PeerAddr {
                id: options.id,
                peer_addr: options.peer,
            }],
        },
        cluster_id: options.cluster_id.clone(),
        incarnation: identity.incarnation,
        client_addr: options.client.to_string(),
        frame_bytes_max: PEER_FRAME_BYTES_MAX,
        send_queue_max: PEER_SEND_QUEUE_MAX,
        reconnect_backoff_max_ms: PEER_RECONNECT_BACKOFF_MAX_MS,
    };
    let transport = Transport::start(config, inbound_tx, shutdown.clone())
        .await
        .map_err(|e| {
            format!(
                "node {}: cannot listen for peers on {}: {e}",
                options.id, options.peer
            )
        })?;
    Ok((transport, inbound_rx))
}

/// Binds the client port and serves the Redis protocol on it until
/// `shutdown` is cancelled.
async fn start_client_server(
    options: &NodeOptions,
    handle: NodeHandle,
    shutdown: &CancellationToken,
) -> Result<JoinHandle<std::io::Result<()>>, String> {
    let listener = tokio::net::TcpListener::bind(options.client)
        .await
        .map_err(|e| {
            format!(
                "node {}: cannot listen for clients on {}: {e}",
                options.id, options.client
            )
        })?;
    let limits = crate::resp::Limits {
        bulk_bytes_max: options.bulk_bytes_max,
        arguments_max: options.arguments_max,
        connections_max: options.connections_max,
        requirepass: options.requirepass.clone(),
        ..Default::default()
    };
    let server_shutdown = shutdown.clone();
    Ok(tokio::spawn(crate::resp::serve(
        listener,
        handle,
        limits,
        async move { server_shutdown.cancelled().await },
    )))
}

/// SIGTERM or SIGINT cancels `shutdown`: the driver then stops gracefully.
fn stop_on_signal(shutdown: CancellationToken) {
    tokio::spawn(async move {
        wait_for_stop_signal().await;
        shutdown.cancel();
    });
}

async fn wait_for_stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
