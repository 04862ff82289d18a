//! `raftkv up`: starts a local cluster headless, prints its addresses, and
//! keeps it running until Ctrl-C (or SIGTERM), which stops it gracefully.

use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::cluster::{ClusterArgs, ClusterLayout};
use crate::status::{NodeStatus, StatusFetcher};
use crate::supervisor::{NodeProgram, ProcessEvent, Supervisor, STOP_GRACE_MS_DEFAULT};

/// How long `up` waits for the first leader before telling the user to look at the logs.
pub const FIRST_LEADER_WAIT_MS: u64 = 15_000;
/// Exit reports queued at most.
const PROCESS_REPORTS_MAX: usize = 64;
/// A status request while waiting for the first leader.
const STATUS_DEADLINE_MS: u64 = 300;
const LEADER_POLL_INTERVAL_MS: u64 = 100;

/// `raftkv up`'s flags.
#[derive(Clone, Debug, clap::Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Route every peer link through an in-process fault proxy, as the
    /// dashboard and `raftkv chaos` do (to measure what the extra hop costs).
    #[arg(long)]
    pub faults: bool,
}

pub fn run(args: UpArgs) -> Result<(), String> {
    let faults = args.faults;
    let args = args.cluster;
    let layout = ClusterLayout::new(&args)?;
    layout.create_dirs()?;
    layout.check_ports_free()?;
    if args.fresh {
        let wiped = layout.wipe_all_data()?;
        println!(
            "--fresh: deleted {} node data dirs under {}; the cluster starts empty",
            wiped.len(),
            layout.data_dir.display()
        );
    } else if layout.has_existing_data() {
        println!(
            "reusing the data in {} (--fresh starts an empty cluster)",
            layout.data_dir.display()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    // `block_on` runs on the main thread, which the children's parent-death
    // signal is tied to (see supervisor.rs).
    runtime.block_on(supervise(layout, faults))
}

async fn supervise(mut layout: ClusterLayout, faults: bool) -> Result<(), String> {
    // Kept alive until the nodes stop: their peer links pass through it.
    let _proxy = if faults {
        let proxy = layout.route_through_fault_proxy().await?;
        println!("--faults: every peer link passes through this process's fault proxy");
        Some(proxy)
    } else {
        None
    };
    let (reports_tx, mut reports) = mpsc::channel(PROCESS_REPORTS_MAX);
    let mut supervisor = Supervisor::new(
        layout.clone(),
        NodeProgram::current_exe()?,
        reports_tx,
        STOP_GRACE_MS_DEFAULT,
    );
    println!(
        "raftkv: starting {} nodes (data in {}, logs in {})",
        layout.nodes,
        layout.data_dir.display(),
        layout.log_dir.display()
    );
    for id in layout.ids() {
        let pid = supervisor.start(id, false)?;
        println!(
            "  node {id}  client {}  peer {}  pid {pid}",
            layout.client_addr(id),
            layout.peer_addr(id)
        );
    }
    let addrs = layout.client_addrs();
    println!(
        "try:  redis-cli -c -p {}   or   raftkv kv --cluster {} status",
        layout.client_addr(1).port(),
        addrs.join(",")
    );
    println!("Ctrl-C stops the nodes gracefully.");

    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot watch SIGINT: {e}"))?;
    let mut hangup =
        signal(SignalKind::hangup()).map_err(|e| format!("cannot watch SIGHUP: {e}"))?;
    let first_leader = wait_for_leader(&addrs);
    tokio::pin!(first_leader);
    let mut leader_reported = false;
    let mut exited = 0u64;
    loop {
        tokio::select! {
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            _ = hangup.recv() => break,
            leader = &mut first_leader, if !leader_reported => {
                leader_reported = true;
                match leader {
                    Some(status) => println!("cluster ready: leader node {}, term {}", status.id, status.term),
                    None => eprintln!(
                        "no leader after {} s; see {}/node-*.log and node-*.out",
                        FIRST_LEADER_WAIT_MS / 1000,
                        layout.log_dir.display()
                    ),
                }
            }
            Some(report) = reports.recv() => {
                if let ProcessEvent::Exited { exit } = report.event {
                    exited += 1;
                    eprintln!(
                        "node {} {exit}; its output is in {}",
                        report.id,
                        layout.node_output_path(report.id).display()
                    );
                }
                if exited == layout.nodes {
                    return Err("every node has exited; nothing left to supervise".into());
                }
            }
        }
    }
    let asked = supervisor.stop_all();
    println!("stopping {asked} nodes…");
    let grace = Duration::from_millis(STOP_GRACE_MS_DEFAULT + 2_000);
    if supervisor.wait_all_exited(grace).await {
        println!("all nodes stopped");
    } else {
        supervisor.wait_all_exited(Duration::from_secs(2)).await;
        println!("nodes that did not stop in time were killed");
    }
    Ok(())
}

/// The first leader any node reports, or `None` after `FIRST_LEADER_WAIT_MS`.
async fn wait_for_leader(addrs: &[String]) -> Option<NodeStatus> {
    let started = Instant::now();
    let mut fetchers: Vec<StatusFetcher> = addrs.iter().cloned().map(StatusFetcher::new).collect();
    while started.elapsed() < Duration::from_millis(FIRST_LEADER_WAIT_MS) {
        for fetcher in &mut fetchers {
            if let Ok(status) = fetcher
                .fetch(Duration::from_millis(STATUS_DEADLINE_MS))
                .await
            {
                if status.is_leader() {
                    return Some(status);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(LEADER_POLL_INTERVAL_MS)).await;
    }
    None
}
