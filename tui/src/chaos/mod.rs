//! `raftkv chaos`: a Jepsen-style run on a fresh local cluster. Clients
//! read and write a few contended keys with unique values while a seeded
//! nemesis kills, pauses, partitions and slows nodes through the fault
//! proxy; afterwards everything is healed, the cluster must elect one
//! leader and converge, every key is read once more, and the history is
//! checked for linearizability per key. Exit 0 only when all of that holds.
//! `--check FILE` re-checks a saved `history.jsonl`.

mod checker_bench;
mod history;
mod nemesis;
mod plot;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use raftkv::linearizability::Outcome;
use raftkv_node::client::ClusterClient;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cluster::{ClusterArgs, ClusterLayout};
use crate::status::{NodeStatus, StatusFetcher};
use crate::supervisor::{NodeProgram, Supervisor, STOP_GRACE_MS_DEFAULT};
pub use history::{
    check, load, lost_writes, tally, to_jsonl, Record, RecordKind, Recorder, Verdict,
};
pub use nemesis::NemesisEvent;

/// Exit status when the run cannot start or a file cannot be read.
pub const EXIT_CANNOT_START: i32 = 2;
/// Keys the workload contends on.
pub const KEYS: u64 = 5;
/// A client operation gives up after this (its outcome may then be unknown).
pub const OP_DEADLINE_MS: u64 = 1_000;
/// After the heal: one leader and convergence must come within this.
pub const SETTLE_DEADLINE_MS: u64 = 30_000;
const STATUS_DEADLINE_MS: u64 = 300;
const POLL_INTERVAL_MS: u64 = 100;

/// `raftkv chaos` flags.
#[derive(Clone, Debug, clap::Args)]
pub struct ChaosArgs {
    /// Nodes of the cluster (3 or 5).
    #[arg(long, default_value_t = 3)]
    pub nodes: u64,
    /// Seconds of workload under faults.
    #[arg(long, default_value_t = 60)]
    pub duration: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    pub clients: u64,
    /// Fault kinds the nemesis draws from (comma-separated).
    #[arg(long, default_value = "kill,pause,partition,oneway,slow,replace,grow")]
    pub nemesis: String,
    /// Seed of the nemesis schedule and the workload's choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Node i listens for clients on base+i and for peers on base+100+i.
    #[arg(long, default_value_t = 7300)]
    pub base_port: u16,
    /// Data of the run's nodes (wiped first); default: a new temporary directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The bundle goes to <out>/<UTC timestamp>/.
    #[arg(long, default_value = "logs/chaos")]
    pub out: PathBuf,
    /// Check a saved history.jsonl instead of running (exit 0: linearizable).
    #[arg(long, value_name = "FILE")]
    pub check: Option<PathBuf>,
    /// Instead of running: time one check (full and incremental) of
    /// generated histories of these sizes, e.g. 10000,100000,1000000.
    #[arg(
        long,
        value_name = "OPS,...",
        value_delimiter = ',',
        conflicts_with = "check"
    )]
    pub bench_checker: Option<Vec<u64>>,
}

/// Runs `raftkv chaos`; returns the exit status.
pub fn run(args: ChaosArgs) -> i32 {
    if let Some(path) = &args.check {
        return check_file(path);
    }
    if let Some(sizes) = &args.bench_checker {
        return checker_bench::run(sizes);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("raftkv chaos: cannot start the async runtime: {e}");
            return EXIT_CANNOT_START;
        }
    };
    // On the main thread: the children's parent-death signal is tied to it.
    match runtime.block_on(run_chaos(args)) {
        Ok(passed) => i32::from(!passed),
        Err(error) => {
            eprintln!("raftkv chaos: {error}");
            EXIT_CANNOT_START
        }
    }
}

/// `--check FILE`: prints the verdict; 0 linearizable, 1 not, 2 unreadable.
fn check_file(path: &Path) -> i32 {
    let records = match load(path) {
        Ok(records) => records,
        Err(error) => {
            eprintln!("raftkv chaos --check: {error}");
            return EXIT_CANNOT_START;
        }
    };
    let verdict = check(&records);
    println!("{}", verdict_lines(&records, &verdict).join("\n"));
    i32::from(!verdict.passed())
}

/// The verdict's lines: counts, then LINEARIZABLE or what breaks it.
pub fn verdict_lines(records: &[Record], verdict: &Verdict) -> Vec<String> {
    let t = tally(records);
    let mut lines = vec![format!(
        "history: {} ops; writes {} ok, {} failed, {} unknown; reads {} ok, {} failed, {} unknown",
        records.len(),
        t.writes_ok,
        t.writes_failed,
        t.writes_unknown,
        t.reads_ok,
        t.reads_failed,
        t.reads_unknown
    )];
    match verdict {
        Verdict::Linearizable(stats) => lines.push(format!(
            "linearizable: YES ({} keys, {} operations checked, {} search steps{})",
            stats.keys,
            stats.operations,
            stats.search_steps,
            if stats.searches_undecided > 0 {
                format!(
                    "; {} keys decided by the exact zone check after the search budget",
                    stats.searches_undecided
                )
            } else {
                String::new()
            }
        )),
        Verdict::Violation { key, report } => {
            lines.push(format!("linearizable: NO, key {key}"));
            lines.push(report.trim_end().to_string());
        }
        Verdict::Invalid(why) => lines.push(format!("linearizable: CANNOT CHECK: {why}")),
    }
    let lost = lost_writes(records);
    if lost.is_empty() {
        lines.push("acknowledged writes lost: none (per key, the final read sees the last acknowledged write or a later one)".into());
    } else {
        for (key, seen, expected) in lost {
            let seen = seen.map_or("nil".to_string(), |v| v.to_string());
            lines.push(format!(
                "acknowledged write LOST: key {key} read {seen} after write {expected} was acknowledged"
            ));
        }
    }
    lines
}

/// The workload: a task per client id, each reading or writing one of
/// `KEYS` keys (`<prefix>:0` ..) at a time until `stop`. Client ids must be
/// new to the recorder: written values are `client * 10^9 + n`.
pub fn spawn_workload(
    addrs: &[String],
    clients: std::ops::RangeInclusive<u64>,
    key_prefix: &'static str,
    seed: u64,
    recorder: &Recorder,
    stop: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    clients
        .map(|client| {
            let addrs = addrs.to_vec();
            let recorder = recorder.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut rng = nemesis::Rng::new(seed ^ (client << 32));
                // A resent SET could land twice around another client's
                // write: every ambiguous write is recorded as unknown.
                let mut cluster = ClusterClient::new(addrs, Duration::from_millis(OP_DEADLINE_MS))
                    .without_resending_ambiguous_writes();
                let mut written = 0u64;
                while !stop.is_cancelled() {
                    let key = format!("{key_prefix}:{}", rng.below(KEYS));
                    if rng.below(2) == 0 {
                        written += 1;
                        // Unique per client and write, never 0.
                        let value = client * 1_000_000_000 + written;
                        write(&mut cluster, &recorder, client, &key, value).await;
                    } else {
                        read(&mut cluster, &recorder, client, &key).await;
                    }
                }
            })
        })
        .collect()
}

async fn write(
    cluster: &mut ClusterClient,
    recorder: &Recorder,
    client: u64,
    key: &str,
    value: u64,
) {
    let op = recorder.invoke(client, key, RecordKind::Write(value));
    let outcome = match cluster.set(key.to_string(), value.to_string()).await {
        Ok(()) => Outcome::Ok,
        Err(e) if e.is_outcome_unknown() => Outcome::Unknown,
        Err(_) => Outcome::Failed,
    };
    recorder.complete(op, outcome, None);
}

async fn read(cluster: &mut ClusterClient, recorder: &Recorder, client: u64, key: &str) {
    let op = recorder.invoke(client, key, RecordKind::Read(None));
    match cluster.get(key).await {
        Ok(value) => {
            let seen = value.and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u64>().ok());
            recorder.complete(op, Outcome::Ok, Some(seen));
        }
        Err(e) if e.is_outcome_unknown() => recorder.complete(op, Outcome::Unknown, None),
        Err(_) => recorder.complete(op, Outcome::Failed, None),
    }
}

/// The statuses of every node that answers.
async fn statuses(addrs: &[(u64, String)]) -> Vec<NodeStatus> {
    let mut out = Vec::new();
    for (_, addr) in addrs {
        let mut fetcher = StatusFetcher::new(addr.clone());
        if let Ok(status) = fetcher
            .fetch(Duration::from_millis(STATUS_DEADLINE_MS))
            .await
        {
            out.push(status);
        }
    }
    out
}

/// Waits until every node answers, exactly one leads, all follow it, and
/// all have the same applied index and digest; returns that status.
async fn settle(addrs: &[(u64, String)]) -> Result<NodeStatus, String> {
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < Duration::from_millis(SETTLE_DEADLINE_MS) {
        let all = statuses(addrs).await;
        let leaders: Vec<&NodeStatus> = all.iter().filter(|s| s.is_leader()).collect();
        if all.len() == addrs.len() && leaders.len() == 1 {
            let leader = leaders[0];
            let agreed = all.iter().all(|s| {
                s.leader_id == leader.id
                    && s.applied_index == leader.applied_index
                    && s.digest == leader.digest
            });
            // Every node a voter again, and nobody else (a node older
            // than the membership fields reports none).
            let ids: Vec<u64> = addrs.iter().map(|(id, _)| *id).collect();
            let members_back = leader.voters.is_empty()
                || (leader.voters == ids
                    && leader.learners.is_empty()
                    && leader.previous_voters.is_empty());
            if agreed && members_back {
                return Ok(leader.clone());
            }
        }
        let voters = leaders
            .first()
            .map(|l| l.voters.clone())
            .unwrap_or_default();
        last = format!(
            "{} of {} nodes answer, {} leaders, voters {voters:?}",
            all.len(),
            addrs.len(),
            leaders.len()
        );
        tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)).await;
    }
    Err(format!(
        "no single leader with every node converged within {} s ({last})",
        SETTLE_DEADLINE_MS / 1000
    ))
}

async fn run_chaos(args: ChaosArgs) -> Result<bool, String> {
    if args.nodes != 3 && args.nodes != 5 {
        return Err(format!(
            "--nodes {}: a chaos run has 3 or 5 nodes",
            args.nodes
        ));
    }
    if args.clients == 0 {
        return Err("--clients 0: the workload needs at least one client".into());
    }
    let kinds = nemesis::parse_kinds(&args.nemesis)?;
    let temp = tempfile_dir()?;
    let data_dir = args.data_dir.clone().unwrap_or_else(|| temp.join("data"));
    let bundle = crate::evidence::Bundle::create(&args.out, crate::clock::now_ms())?.dir;
    let log_dir = bundle.join("logs");
    let mut layout = ClusterLayout::new(&ClusterArgs {
        nodes: args.nodes,
        base_port: args.base_port,
        data_dir,
        log_dir: log_dir.clone(),
        fresh: true,
        requirepass: None,
    })?;
    if kinds.contains(&nemesis::FaultKind::Grow) {
        // Node nodes+1 may join: its ports and proxy links are reserved.
        layout.allow_members_up_to(args.nodes + 1)?;
    }
    layout.create_dirs()?;
    layout.check_ports_free()?;
    layout.wipe_all_data()?;
    let proxy = layout.route_through_fault_proxy().await?;
    let (reports_tx, mut reports) = mpsc::channel(64);
    let mut supervisor = Supervisor::new(
        layout.clone(),
        NodeProgram::current_exe()?,
        reports_tx,
        STOP_GRACE_MS_DEFAULT,
    );
    // Exit reports are only drained: the nemesis asks the supervisor.
    tokio::spawn(async move { while reports.recv().await.is_some() {} });
    println!(
        "raftkv chaos: {} nodes, {} clients, {} s, nemesis {}, seed {}; bundle {}",
        args.nodes,
        args.clients,
        args.duration,
        args.nemesis,
        args.seed,
        bundle.display()
    );
    for id in layout.ids() {
        supervisor.start(id, false)?;
    }
    let addrs: Vec<(u64, String)> = layout
        .ids()
        .map(|id| (id, layout.client_addr(id).to_string()))
        .collect();
    settle(&addrs).await?;
    println!("cluster ready; workload and nemesis start");

    let started = Instant::now();
    let recorder = Recorder::new(started);
    let stop = CancellationToken::new();
    let workload = spawn_workload(
        &layout.client_addrs(),
        1..=args.clients,
        "chaos",
        args.seed,
        &recorder,
        &stop,
    );
    let spare = args.nodes + 1;
    let mut nemesis = nemesis::Nemesis::new(args.seed, kinds, args.nodes, started)
        .with_spare(spare, layout.client_addr(spare).to_string());
    let deadline = started + Duration::from_secs(args.duration);
    nemesis
        .run_until(deadline, &mut supervisor, &proxy, &addrs)
        .await;
    stop.cancel();
    for task in workload {
        let _ = task.await;
    }
    let workload_ran = started.elapsed();
    nemesis
        .heal_everything(&mut supervisor, &proxy, &addrs)
        .await;
    let settled = settle(&addrs).await;
    if settled.is_ok() {
        // The last word on every key, read through the leader.
        let mut client = ClusterClient::new(layout.client_addrs(), Duration::from_secs(5));
        for key in 0..KEYS {
            read(&mut client, &recorder, 0, &format!("chaos:{key}")).await;
        }
    }
    let records = recorder.records();
    let verdict = check(&records);
    let lost = lost_writes(&records);
    let mut lines = verdict_lines(&records, &verdict);
    lines.insert(
        0,
        format!(
            "raftkv chaos: {} nodes, {} clients, {} s, nemesis {}, seed {}",
            args.nodes, args.clients, args.duration, args.nemesis, args.seed
        ),
    );
    lines.push(match &settled {
        Ok(leader) => format!(
            "converged: YES, one leader (node {}, term {}), every node at index {} with digest {}",
            leader.id, leader.term, leader.applied_index, leader.digest
        ),
        Err(why) => format!("converged: NO, {why}"),
    });
    lines.extend(nemesis.summary_lines());
    lines.push(format!(
        "elections: {} (became_leader lines in the node logs)",
        count_elections(&layout)
    ));
    lines.push(format!(
        "longest unavailability: {} ms without an acknowledged operation",
        longest_gap_ms(&records, workload_ran)
    ));
    let passed = verdict.passed() && lost.is_empty() && settled.is_ok();
    lines.push(format!("VERDICT: {}", if passed { "PASS" } else { "FAIL" }));

    let stop_asked = supervisor.stop_all();
    supervisor
        .wait_all_exited(Duration::from_millis(STOP_GRACE_MS_DEFAULT + 2_000))
        .await;
    drop(proxy);
    write_bundle(&bundle, &lines, &records, nemesis.events())?;
    println!("{}", lines.join("\n"));
    println!(
        "stopped {stop_asked} nodes; bundle: {} (verdict.txt, history.jsonl, nemesis.jsonl, latency.svg, logs/)",
        bundle.display()
    );
    let _ = std::fs::remove_dir_all(&temp);
    Ok(passed)
}

/// A fresh temporary directory for the run's data.
fn tempfile_dir() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!(
        "raftkv-chaos-{}-{}",
        std::process::id(),
        crate::clock::now_ms()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

fn count_elections(layout: &ClusterLayout) -> usize {
    layout
        .ids()
        .map(|id| {
            let path = crate::cluster::node_log_path(&layout.log_dir, id);
            std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .filter(|line| {
                    line.contains(&format!(
                        "\"event\":\"{}\"",
                        raftkv_node::log_events::BECAME_LEADER
                    ))
                })
                .count()
        })
        .sum()
}

/// The longest stretch (ms) of the workload (`run` long) without an
/// acknowledged operation; the final reads after the heal are not counted.
fn longest_gap_ms(records: &[Record], run: Duration) -> u64 {
    let mut completions: Vec<u64> = records
        .iter()
        .filter(|r| r.outcome == Outcome::Ok)
        .filter_map(|r| r.complete_us)
        .collect();
    completions.sort_unstable();
    let end = run.as_micros() as u64;
    completions.retain(|at| *at <= end);
    let mut previous = 0;
    let mut longest = 0;
    for at in completions.into_iter().chain([end]) {
        longest = longest.max(at.saturating_sub(previous));
        previous = at;
    }
    longest / 1_000
}

fn write_bundle(
    bundle: &Path,
    lines: &[String],
    records: &[Record],
    events: &[NemesisEvent],
) -> Result<(), String> {
    let write = |name: &str, text: String| {
        std::fs::write(bundle.join(name), text)
            .map_err(|e| format!("cannot write {}: {e}", bundle.join(name).display()))
    };
    write("verdict.txt", lines.join("\n") + "\n")?;
    write("history.jsonl", to_jsonl(records))?;
    write(
        "nemesis.jsonl",
        events
            .iter()
            .map(|e| e.to_json().to_string() + "\n")
            .collect(),
    )?;
    plot::latency_svg(&bundle.join("latency.svg"), records, events)
}
