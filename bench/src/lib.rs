//! raftkv-bench, `raftkv bench`: closed-loop load against a cluster (one it starts, or one
//! it attaches to) with the elections it caused, leader-failover trials,
//! follower catch-up (also from an empty data dir) and node memory, with
//! hdrhistogram latencies and a human or JSON report.
//!
//! The load generator (`load`) is written against a small `Target`/`Session`
//! pair of traits; raftkv's pipelined RESP session is one implementation, and
//! another store (etcd, behind a cargo feature) can be a second one driven by
//! exactly the same clients, key space and values.

mod catchup;
mod elections;
#[cfg(feature = "etcd")]
mod etcd_target;
mod failover;
mod fill;
mod load;
mod local;
mod memory;
mod report;
mod resp_target;
mod rng;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use raftkv_cluster::cluster::parse_addr_list;
// The cluster modules under their own names, as the benchmarks were
// written when they lived in the dashboard crate beside them.
use raftkv_cluster::{clock, cluster, poll, status, supervisor};

use self::load::{LoadSpec, ProgressStyle, Workload, KEYSPACE_MAX};
use self::local::LocalCluster;
use self::report::{BenchReport, Machine};
use self::resp_target::RaftkvTarget;

/// Most concurrent client connections one run opens.
pub const CLIENTS_MAX: usize = 1024;
/// Most requests one connection keeps in flight.
pub const PIPELINE_MAX: usize = 1024;
/// Largest value written (a node refuses bulk strings above 16 MiB by default).
pub const VALUE_SIZE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Most failover trials one run does.
pub const FAILOVER_TRIALS_MAX: u32 = 1000;
/// Most entries written behind a stopped follower in `--catchup`.
pub const CATCHUP_ENTRIES_MAX: u64 = 100_000_000;
/// Ops of a throughput run when no mode is chosen and neither `--ops` nor
/// `--duration` is given.
pub const OPS_DEFAULT: u64 = 100_000;
/// Longest `--duration` of a throughput run (one day).
pub const DURATION_S_MAX: u64 = 86_400;

/// Which store the load runs against: raftkv, or (built with the cargo
/// feature `etcd`) an etcd cluster, driven by exactly the same generator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetKind {
    Raftkv,
    /// etcd v3 over gRPC (`--attach` its members' client addresses).
    #[cfg(feature = "etcd")]
    Etcd,
}

/// `raftkv bench` flags.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    /// Run against a running cluster at these client addresses (host:port,...)
    /// instead of starting one. Failover and catch-up trials need a cluster
    /// the bench started itself.
    #[arg(long, value_name = "ADDRS", conflicts_with_all = ["nodes", "base_port", "data_dir", "fresh"])]
    pub attach: Option<String>,
    /// The store to load.
    #[arg(long, value_enum, default_value_t = TargetKind::Raftkv)]
    pub target: TargetKind,
    /// Nodes of the cluster the bench starts (1-9).
    #[arg(long, default_value_t = 3)]
    pub nodes: u64,
    /// Node i of the started cluster listens for clients on base+i and for peers on base+100+i.
    #[arg(long, default_value_t = 7000)]
    pub base_port: u16,
    /// Data dir of the started cluster (default: a new temporary directory,
    /// deleted at the end). It must not hold node data unless --fresh is given.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// With --data-dir: delete the node data dirs found there first.
    #[arg(long)]
    pub fresh: bool,
    /// Where the started nodes write node-<id>.log and node-<id>.out.
    #[arg(long, default_value = "logs")]
    pub log_dir: PathBuf,
    /// Concurrent client connections.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Requests each connection keeps in flight (1 = one at a time).
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// Operations of the throughput run (default 100000 unless --duration
    /// is given; runs when no --failover/--catchup/--catchup-wiped/--memory
    /// is given, or when --ops or --duration is given with them).
    #[arg(long)]
    pub ops: Option<u64>,
    /// Seconds the throughput run lasts (counted once every client is
    /// connected). With --ops too, whichever is reached first ends the run.
    /// Every throughput report also counts the elections during the run
    /// (term changes, leader changes, became_leader lines).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,
    /// Bytes of every written value.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Fraction of operations that are linearizable GETs (0.0-1.0); the rest are SETs.
    #[arg(long, default_value_t = 0.0)]
    pub read_ratio: f64,
    /// Keys are bench:0000000000 .. bench:<keyspace-1>, picked uniformly.
    #[arg(long, default_value_t = 100_000)]
    pub keyspace: u64,
    /// Seed of the key and read/write choices (same seed, same sequence per client).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// One request may wait this long for its reply before it counts as a timeout.
    #[arg(long, default_value_t = 5_000)]
    pub request_timeout_ms: u64,
    /// Give up when no operation has succeeded for this long.
    #[arg(long, default_value_t = 30_000)]
    pub stall_timeout_ms: u64,
    /// Leader failover trials: kill -9 the leader under write load, time the
    /// first acknowledged write, restart it, wait for convergence.
    #[arg(long, value_name = "TRIALS")]
    pub failover: Option<u32>,
    /// Write clients running during each failover trial.
    #[arg(long, default_value_t = 4)]
    pub failover_clients: usize,
    /// Follower catch-up: stop a follower, write this many entries, restart
    /// it, time until it has converged with the leader.
    #[arg(long, value_name = "ENTRIES")]
    pub catchup: Option<u64>,
    /// Catch-up from nothing: fill the cluster with KEYS distinct keys
    /// (bench:0000000000.., --value-size bytes each, 32 clients x 16
    /// pipelined), kill -9 a follower, delete its data dir, restart it, and
    /// time until its applied index and digest equal the leader's.
    #[arg(long, value_name = "KEYS")]
    pub catchup_wiped: Option<u64>,
    /// With --catchup-wiped: kill -9 the follower and delete its data dir
    /// before the fill instead of after it (the leader then compacts past
    /// all it ever acknowledged, and must send it a snapshot).
    #[arg(long, requires = "catchup_wiped")]
    pub wiped_before_fill: bool,
    /// Node memory: fill the cluster with KEYS distinct keys (as
    /// --catchup-wiped does; with both, give both the same KEYS and the
    /// cluster is filled once), wait until the nodes converge, and report
    /// each node's VmRSS, RssAnon, RssFile and peak (VmHWM) from
    /// /proc/<pid>/status next to the raw data, KEYS x (16 + value bytes).
    #[arg(long, value_name = "KEYS")]
    pub memory: Option<u64>,
    /// Print the final report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// What this run does, decided from the flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Plan {
    throughput: Option<Throughput>,
    failover_trials: Option<u32>,
    catchup_entries: Option<u64>,
    /// Keys to fill the cluster with (`--memory`, `--catchup-wiped`).
    fill_keys: Option<u64>,
    memory: bool,
    catchup_wiped: bool,
}

/// The throughput run: it ends at `ops` operations or after `duration_s`,
/// whichever comes first (at least one is set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Throughput {
    ops: Option<u64>,
    duration_s: Option<u64>,
}

impl BenchArgs {
    /// Checks every bound and combination; the error says which flag and why.
    fn plan(&self) -> Result<Plan, String> {
        check_count("--clients", self.clients, CLIENTS_MAX, "")?;
        check_count("--pipeline", self.pipeline, PIPELINE_MAX, "")?;
        if self.value_size > VALUE_SIZE_BYTES_MAX {
            return Err(format!(
                "--value-size {}: at most {VALUE_SIZE_BYTES_MAX} bytes (a node's bulk string limit)",
                self.value_size
            ));
        }
        if !(0.0..=1.0).contains(&self.read_ratio) {
            return Err(format!(
                "--read-ratio {}: use a fraction from 0.0 to 1.0",
                self.read_ratio
            ));
        }
        check_count("--keyspace", self.keyspace, KEYSPACE_MAX, " keys")?;
        if self.ops == Some(0) {
            return Err("--ops 0: give at least one operation".into());
        }
        if self.request_timeout_ms == 0 || self.stall_timeout_ms == 0 {
            return Err("--request-timeout-ms and --stall-timeout-ms must be above 0".into());
        }
        if let Some(trials) = self.failover {
            check_count("--failover", trials, FAILOVER_TRIALS_MAX, " trials")?;
            check_count("--failover-clients", self.failover_clients, CLIENTS_MAX, "")?;
        }
        if let Some(entries) = self.catchup {
            check_count("--catchup", entries, CATCHUP_ENTRIES_MAX, " entries")?;
        }
        if let Some(seconds) = self.duration {
            check_count("--duration", seconds, DURATION_S_MAX, " seconds")?;
        }
        for (flag, keys) in [
            ("--catchup-wiped", self.catchup_wiped),
            ("--memory", self.memory),
        ] {
            if let Some(keys) = keys {
                check_count(flag, keys, fill::FILL_KEYS_MAX, " keys")?;
            }
        }
        let fill_keys = match (self.memory, self.catchup_wiped) {
            (Some(memory), Some(wiped)) if memory != wiped => {
                return Err(format!(
                    "--memory {memory} and --catchup-wiped {wiped}: the cluster is filled once for \
                     both, so give them the same number of keys (or run them separately)"
                ))
            }
            (memory, wiped) => memory.or(wiped),
        };
        if self.memory.is_some() && self.target != TargetKind::Raftkv {
            return Err(
                "--memory reads raftkv nodes' /proc/<pid>/status; it does not measure etcd".into(),
            );
        }
        let kills =
            self.failover.is_some() || self.catchup.is_some() || self.catchup_wiped.is_some();
        if self.target != TargetKind::Raftkv {
            if self.attach.is_none() {
                return Err(
                    "--target etcd: the bench starts raftkv clusters only; start etcd yourself and \
                     give its members' client addresses with --attach (bench/compare.sh does both)"
                        .into(),
                );
            }
            if kills {
                return Err(
                    "--target etcd: --failover, --catchup and --catchup-wiped restart raftkv \
                     nodes; bench/compare.sh times them on etcd"
                        .into(),
                );
            }
        }
        if kills && self.attach.is_some() {
            return Err(
                "--failover, --catchup and --catchup-wiped kill -9 a node and restart it, which \
                        the bench can only do to nodes it started itself; drop --attach (the bench \
                        then starts a fresh cluster, see --nodes and --base-port)"
                    .into(),
            );
        }
        if kills && self.nodes < 3 {
            return Err(format!(
                "--nodes {}: failover and catch-up need at least 3 nodes, so a majority survives one kill",
                self.nodes
            ));
        }
        let other_modes = kills || self.memory.is_some();
        let throughput = match (self.ops, self.duration, other_modes) {
            (None, None, true) => None,
            (None, None, false) => Some(Throughput {
                ops: Some(OPS_DEFAULT),
                duration_s: None,
            }),
            (ops, duration_s, _) => Some(Throughput { ops, duration_s }),
        };
        Ok(Plan {
            throughput,
            failover_trials: self.failover,
            catchup_entries: self.catchup,
            fill_keys,
            memory: self.memory.is_some(),
            catchup_wiped: self.catchup_wiped.is_some(),
        })
    }

    fn workload(&self, read_ratio: f64) -> Workload {
        Workload::new(self.keyspace, read_ratio, self.value_size, self.seed)
    }

    /// A live progress line labelled `label`, or none with `--json` (stdout
    /// then carries only the report).
    fn progress(&self, label: &str) -> ProgressStyle {
        if self.json {
            ProgressStyle::Quiet
        } else {
            ProgressStyle::live(label)
        }
    }

    fn load_spec(&self, ops: Option<u64>, progress: ProgressStyle) -> LoadSpec {
        LoadSpec {
            clients: self.clients,
            pipeline: self.pipeline,
            ops,
            duration: None,
            stall_timeout: Duration::from_millis(self.stall_timeout_ms),
            progress,
        }
    }
}

/// `flag value` must count 1 to `max`; the error names the flag and the
/// range (`unit`, e.g. " keys", follows the range).
fn check_count<T>(flag: &str, value: T, max: T, unit: &str) -> Result<(), String>
where
    T: Copy + PartialOrd + From<u8> + std::fmt::Display,
{
    if value < T::from(1) || value > max {
        return Err(format!("{flag} {value}: use 1 to {max}{unit}"));
    }
    Ok(())
}

/// Runs the benchmark the flags describe and prints its report. Must run on
/// the thread that lives as long as the process (the main thread, e.g. inside
/// `Runtime::block_on`): the nodes it starts are tied to that thread.
pub async fn run(args: BenchArgs) -> Result<(), String> {
    let plan = args.plan()?;
    let machine = Machine::detect();
    match &args.attach {
        Some(list) => {
            let addrs = parse_addr_list(list)?;
            let report = run_plan(&args, plan, &machine, addrs.clone(), None).await?;
            report.print(&args, &format!("attached to {}", addrs.join(",")))?;
            report.failure()
        }
        None => {
            let mut cluster = LocalCluster::prepare(&args)?;
            let description = cluster.description();
            let outcome = tokio::select! {
                outcome = async {
                    cluster.start_and_wait_ready().await?;
                    let addrs = cluster.client_addrs();
                    run_plan(&args, plan, &machine, addrs, Some(&mut cluster)).await
                } => outcome,
                interrupted = tokio::signal::ctrl_c() => Err(match interrupted {
                    Ok(()) => "interrupted (Ctrl-C); stopping the nodes".to_string(),
                    Err(e) => format!("cannot listen for Ctrl-C: {e}"),
                }),
            };
            let shutdown = cluster.shutdown().await;
            let report = outcome?;
            shutdown?;
            report.print(&args, &description)?;
            report.failure()
        }
    }
}

/// Runs the chosen measurements in order: throughput, failover, catch-up,
/// then the fill with memory and the wiped catch-up.
async fn run_plan(
    args: &BenchArgs,
    plan: Plan,
    machine: &Machine,
    addrs: Vec<String>,
    mut cluster: Option<&mut LocalCluster>,
) -> Result<BenchReport, String> {
    let mut report = BenchReport::new(machine.clone());
    if let Some(throughput) = plan.throughput {
        let timeout = Duration::from_millis(args.request_timeout_ms);
        let spec = LoadSpec {
            duration: throughput.duration_s.map(Duration::from_secs),
            ..args.load_spec(throughput.ops, args.progress("load"))
        };
        let workload = Arc::new(args.workload(args.read_ratio));
        let result = match args.target {
            TargetKind::Raftkv => {
                let logs = cluster.as_deref().map_or_else(Vec::new, |cluster| {
                    cluster
                        .ids()
                        .into_iter()
                        .map(|id| (id, cluster.node_log_path(id)))
                        .collect()
                });
                let watch = elections::ElectionWatch::start(addrs.clone(), logs).await;
                let target = Arc::new(RaftkvTarget::new(addrs.clone(), timeout));
                let result = load::run_load(target, spec, workload).await;
                // The after-picture is taken even when the run failed: an
                // election is the likeliest reason for a stall.
                let seen = watch.finish().await;
                if !args.json && seen.elections() > 0 {
                    eprintln!("{}", report::elections_line(&seen));
                }
                report.elections = Some(seen);
                result?
            }
            #[cfg(feature = "etcd")]
            TargetKind::Etcd => {
                let target = Arc::new(etcd_target::EtcdTarget::new(addrs.clone(), timeout));
                load::run_load(target, spec, workload).await?
            }
        };
        report.throughput = Some(result);
    }
    if let Some(trials) = plan.failover_trials {
        let cluster = cluster
            .as_deref_mut()
            .ok_or("--failover needs a cluster the bench started")?;
        report.failover = Some(failover::run_trials(cluster, args, trials).await?);
    }
    if let Some(entries) = plan.catchup_entries {
        let cluster = cluster
            .as_deref_mut()
            .ok_or("--catchup needs a cluster the bench started")?;
        report.catchup = Some(catchup::run(cluster, args, entries).await?);
    }
    if let Some(keys) = plan.fill_keys {
        let stopped = match (plan.catchup_wiped && args.wiped_before_fill, &mut cluster) {
            (true, Some(cluster)) => Some(catchup::stop_and_wipe_follower(cluster).await?),
            (true, None) => return Err("--catchup-wiped needs a cluster the bench started".into()),
            (false, _) => None,
        };
        let running: Vec<String> = match (stopped, cluster.as_deref()) {
            (Some(stopped), Some(cluster)) => cluster
                .ids()
                .into_iter()
                .filter(|id| *id != stopped.follower)
                .map(|id| cluster.client_addr(id))
                .collect(),
            _ => addrs.clone(),
        };
        let (filled, converged) = fill::fill(&running, args, keys).await?;
        // Memory is read with every node holding the data: right after the
        // fill, or (when a follower was down during it) after its catch-up.
        if plan.memory && stopped.is_none() {
            report.memory = Some(memory::measure(&addrs, filled.clone()).await?);
        }
        if plan.catchup_wiped {
            let cluster = cluster.ok_or("--catchup-wiped needs a cluster the bench started")?;
            // A wiped node that never converges is a result, not a reason to
            // drop the rest of the report: it is printed, then the run fails.
            report.catchup_wiped =
                Some(catchup::run_wiped(cluster, filled.clone(), converged.leader, stopped).await);
        }
        if plan.memory && stopped.is_some() {
            report.memory = Some(memory::measure(&addrs, filled).await?);
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn parse(line: &str) -> Result<BenchArgs, String> {
        Cli::try_parse_from(std::iter::once("bench").chain(line.split_whitespace()))
            .map(|cli| cli.bench)
            .map_err(|e| e.to_string())
    }

    /// The plan of a command line that parses and is valid.
    fn plan_of(line: &str) -> Plan {
        parse(line).unwrap().plan().unwrap()
    }

    /// Why a command line that parses is refused.
    fn plan_error(line: &str) -> String {
        parse(line).unwrap().plan().unwrap_err()
    }

    /// Asserts that a command line parses but is refused for a reason that
    /// mentions `why`.
    #[track_caller]
    fn assert_refused(line: &str, why: &str) {
        let error = plan_error(line);
        assert!(error.contains(why), "{line}: {error}");
    }

    #[test]
    fn defaults_run_a_throughput_test_only() {
        let plan = plan_of("");
        assert_eq!(
            plan,
            Plan {
                throughput: Some(Throughput {
                    ops: Some(OPS_DEFAULT),
                    duration_s: None
                }),
                failover_trials: None,
                catchup_entries: None,
                fill_keys: None,
                memory: false,
                catchup_wiped: false,
            }
        );
        let plan = plan_of("--failover 3 --catchup 100");
        assert_eq!(plan.throughput, None);
        assert_eq!(plan.failover_trials, Some(3));
        let plan = plan_of("--failover 3 --ops 50");
        assert_eq!(plan.throughput.unwrap().ops, Some(50));
    }

    #[test]
    fn a_duration_replaces_the_default_ops_or_bounds_the_given_ones() {
        let plan = plan_of("--duration 60");
        assert_eq!(
            plan.throughput,
            Some(Throughput {
                ops: None,
                duration_s: Some(60)
            })
        );
        let plan = plan_of("--duration 5 --ops 10");
        assert_eq!(
            plan.throughput,
            Some(Throughput {
                ops: Some(10),
                duration_s: Some(5)
            })
        );
        let plan = plan_of("--memory 10 --duration 2");
        assert!(plan.throughput.is_some() && plan.memory);
    }

    #[test]
    fn memory_and_wiped_catch_up_share_one_fill() {
        let plan = plan_of("--memory 1000 --catchup-wiped 1000");
        assert_eq!(plan.fill_keys, Some(1000));
        assert!(plan.memory && plan.catchup_wiped);
        assert_eq!(plan.throughput, None);
        assert_refused("--memory 1000 --catchup-wiped 2000", "same number of keys");
        // Memory only reads the nodes: an attached cluster is fine.
        let plan = plan_of("--attach 127.0.0.1:7001 --memory 10");
        assert_eq!(plan.fill_keys, Some(10));
        assert_refused(
            "--attach 127.0.0.1:7001 --catchup-wiped 10",
            "drop --attach",
        );
    }

    #[test]
    fn killing_modes_refuse_attach_and_say_why() {
        assert_refused(
            "--attach 127.0.0.1:7001 --failover 2",
            "nodes it started itself",
        );
        assert_refused("--attach 127.0.0.1:7001 --catchup 10", "drop --attach");
        assert_refused("--nodes 1 --failover 1", "at least 3");
        // Cluster-shape flags make no sense with --attach.
        assert!(parse("--attach 127.0.0.1:7001 --nodes 5").is_err());
    }

    #[cfg(feature = "etcd")]
    #[test]
    fn the_etcd_target_needs_attach_and_runs_loads_only() {
        assert_refused("--target etcd", "--attach");
        assert_refused(
            "--target etcd --attach 127.0.0.1:2379 --failover 3",
            "compare.sh",
        );
        let plan = plan_of("--target etcd --attach 127.0.0.1:2379 --clients 64 --ops 10");
        assert_eq!(plan.throughput.unwrap().ops, Some(10));
    }

    #[test]
    fn bounds_are_checked_with_the_flag_named() {
        for (line, flag) in [
            ("--clients 0", "--clients"),
            ("--clients 5000", "--clients"),
            ("--pipeline 0", "--pipeline"),
            ("--read-ratio 1.5", "--read-ratio"),
            ("--keyspace 0", "--keyspace"),
            ("--ops 0", "--ops"),
            ("--value-size 999999999", "--value-size"),
            ("--failover 0", "--failover"),
            ("--catchup 0", "--catchup"),
            ("--duration 0", "--duration"),
            ("--duration 999999999", "--duration"),
            ("--catchup-wiped 0", "--catchup-wiped"),
            ("--memory 0", "--memory"),
        ] {
            let error = plan_error(line);
            assert!(error.starts_with(flag), "{line}: {error}");
        }
    }
}
