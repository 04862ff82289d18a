//! Deterministic simulation of raftkv clusters: real consensus cores under
//! one seeded RNG for every fault, checked for Raft's safety invariants,
//! liveness after healing, and linearizability of the clients' history.
//! Half of the seeds persist each Ready straight through; the other half
//! run the node's own Ready pipeline (`raftkv::pipeline`: what to send,
//! hold, hand to the WAL, apply and answer, and the read batching) over a
//! simulated WAL thread (`sim/pipeline.rs`, `sim/wal.rs`), and the summary
//! says what that mode exercised.
//!
//! A cluster starts with 3 or 5 voters; in most runs its membership then
//! changes under the faults (`sim/membership.rs`: learners added and
//! promoted, members removed, the leader too, between 3 and 5 voters).
//!
//! `cargo test --release -p raftkv --test sim` runs the default seed count
//! per cluster size. Environment:
//! - `RAFTKV_SIM_SEEDS=N` runs N seeds per cluster size;
//! - `RAFTKV_SIM_FIRST_SEED=F` starts them at seed F instead of 0, so a
//!   soak by hand covers seeds CI never runs;
//! - `RAFTKV_SIM_SEED=S` replays seed S with a per-tick trace (add
//!   `-- --nocapture` to see it, and a test name to pick the cluster size;
//!   planted-bug tests take `RAFTKV_SIM_CLUSTER_SIZE` to override theirs).
//!
//! Each planted bug of the core (feature `planted-bugs`) and the shared
//! pipeline's `AckBeforeFsync` have a test asserting the simulator catches
//! them within `PLANTED_BUG_SEEDS_MAX` seeds. The driver's
//! `PersistedBeforeFsync` needs a leader to crash while its own fsync is
//! slower than a follower's ack: it is caught too, but only after a few
//! hundred seeds (first at seed 256 of 3 nodes and 594 of 5 in the last
//! count), so it is left to the `planted_bug_catch_rates` tuning aid.

#[path = "sim/checks.rs"]
mod checks;
#[path = "sim/cluster.rs"]
mod cluster;
#[path = "sim/faults.rs"]
mod faults;
#[path = "sim/history.rs"]
mod history;
#[path = "sim/net.rs"]
mod net;
#[path = "sim/node.rs"]
mod node;
#[path = "sim/wal.rs"]
mod wal;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use cluster::{Failure, FailureKind, Planted, SimOptions, SimReport};
use history::HistoryStats;
use raftkv::pipeline::DriverBug;
use raftkv::raft::PlantedBug;
use wal::DiskStats;

/// Prints a summary line straight to stderr, past the test harness's
/// output capture, so every run shows how much it checked.
macro_rules! report {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let line = format!($($arg)*);
        let _ = writeln!(std::io::stderr(), "{line}");
    }};
}

/// Seeds per cluster size when `RAFTKV_SIM_SEEDS` is not set.
const DEFAULT_SEEDS: u64 = 2_000;
/// A run must acknowledge at least this many operations on average, so a
/// simulator where nothing succeeds fails loudly.
const OK_OPERATIONS_PER_SEED_MIN: u64 = 20;
/// From this many seeds on, the asynchronous persistence mode must have
/// batched jobs, taken Readies with writes pending and torn batches.
const COVERAGE_SEEDS_MIN: u64 = 200;
/// Seeds a planted bug must be caught within.
const PLANTED_BUG_SEEDS_MAX: u64 = 400;

/// What many seeds did together.
#[derive(Default)]
struct Totals {
    seeds: u64,
    history: HistoryStats,
    ops_checked: u64,
    crashes: u64,
    wipes: u64,
    readmissions: u64,
    membership_changes: u64,
    leader_removals: u64,
    /// Runs whose cluster grew to five voters (from three) or shrank to
    /// three (from five).
    runs_resized: u64,
    leaders: u64,
    snapshots_installed: u64,
    compactions: u64,
    messages_delivered: u64,
    ticks: u64,
    ticks_to_leader_after_heal_max: u64,
    misdelivered: u64,
    garbage_delivered: u64,
    disk: DiskStats,
}

impl Totals {
    fn add(&mut self, report: &SimReport) {
        self.seeds += 1;
        self.history.add(&report.history);
        self.ops_checked += report.ops_checked;
        self.crashes += report.crashes;
        self.wipes += report.wipes;
        self.readmissions += report.readmissions;
        self.membership_changes += report.membership_changes;
        self.leader_removals += report.leader_removals;
        if report.voters_max == 5 && report.voters_min_proposed <= 3 {
            self.runs_resized += 1;
        }
        self.leaders += report.leaders;
        self.snapshots_installed += report.snapshots_installed;
        self.compactions += report.compactions;
        self.messages_delivered += report.network.delivered;
        self.ticks += report.ticks;
        self.misdelivered += report.misdelivered;
        self.garbage_delivered += report.garbage_delivered;
        self.disk.add(&report.disk);
        self.ticks_to_leader_after_heal_max = self
            .ticks_to_leader_after_heal_max
            .max(report.ticks_to_leader_after_heal);
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    match value.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={value:?} is not a non-negative integer"),
    }
}

/// Runs one seed; a panic in the core becomes a failure with its message.
fn run_seed(options: SimOptions) -> Result<SimReport, Failure> {
    match catch_unwind(AssertUnwindSafe(|| cluster::run(options))) {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "non-string panic".to_string());
            Err(Failure {
                kind: FailureKind::Panic,
                tick: 0,
                message,
            })
        }
    }
}

fn replay_command(seed: u64, test: &str) -> String {
    format!(
        "RAFTKV_SIM_SEED={seed} cargo test --release -p raftkv --test sim -- --nocapture {test}"
    )
}

/// Runs `seeds` over every available core and stops at the first
/// failure; returns the passing runs' totals and the lowest failing seed.
fn run_parallel(
    cluster_size: usize,
    planted_bug: Option<Planted>,
    seeds: std::ops::Range<u64>,
) -> (Totals, Option<(u64, Failure)>) {
    let (totals, failures) = run_parallel_all(cluster_size, planted_bug, seeds, true);
    (totals, failures.into_iter().next())
}

/// Runs `seeds` over every available core; returns the passing runs'
/// totals and the failures by seed. With `stop_on_failure`, no new seed
/// starts after a failure (seeds below it have all started, so the lowest
/// failing seed is found deterministically).
fn run_parallel_all(
    cluster_size: usize,
    planted_bug: Option<Planted>,
    seeds: std::ops::Range<u64>,
    stop_on_failure: bool,
) -> (Totals, Vec<(u64, Failure)>) {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = AtomicU64::new(seeds.start);
    let stop = AtomicBool::new(false);
    let totals = Mutex::new(Totals::default());
    let failures: Mutex<Vec<(u64, Failure)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= seeds.end {
                    return;
                }
                let options = SimOptions {
                    cluster_size,
                    seed,
                    planted_bug,
                    trace: false,
                };
                match run_seed(options) {
                    Ok(report) => totals.lock().expect("totals").add(&report),
                    Err(failure) => {
                        stop.store(stop_on_failure, Ordering::Relaxed);
                        failures.lock().expect("failures").push((seed, failure));
                    }
                }
            });
        }
    });
    let mut failures = failures.into_inner().expect("failures");
    failures.sort_by_key(|(seed, _)| *seed);
    (totals.into_inner().expect("totals"), failures)
}

/// Replays one seed with the trace on; returns its result.
fn replay(
    test: &str,
    cluster_size: usize,
    planted_bug: Option<Planted>,
    seed: u64,
) -> Result<SimReport, Failure> {
    println!(
        "{test}: replaying seed {seed} (cluster of {cluster_size}, planted bug {planted_bug:?})"
    );
    let result = run_seed(SimOptions {
        cluster_size,
        seed,
        planted_bug,
        trace: true,
    });
    match &result {
        Ok(report) => println!("{test}: seed {seed} passed: {report:?}"),
        Err(failure) => println!("{test}: seed {seed} failed: {failure}"),
    }
    result
}

fn simulate_cluster(test: &str, cluster_size: usize) {
    if let Some(seed) = env_u64("RAFTKV_SIM_SEED") {
        if let Err(failure) = replay(test, cluster_size, None, seed) {
            panic!("{test}: seed {seed} failed: {failure}");
        }
        return;
    }
    let seeds = env_u64("RAFTKV_SIM_SEEDS").unwrap_or(DEFAULT_SEEDS);
    let first = env_u64("RAFTKV_SIM_FIRST_SEED").unwrap_or(0);
    let started = Instant::now();
    let (totals, failure) = run_parallel(cluster_size, None, first..first.saturating_add(seeds));
    if let Some((seed, failure)) = failure {
        panic!(
            "{test}: seed {seed} failed: {failure}\nreplay: {}",
            replay_command(seed, test)
        );
    }
    let h = &totals.history;
    report!(
        "{test}: {} seeds from {first} passed in {:.1}s ({} ticks, {} messages delivered, {} misdelivered and refused, \
         {} garbage copies ignored, {} leaders, {} crashes ({} wiping the disk, {} wiped nodes re-admitted), \
         {} membership changes ({} removing the leader; {} runs between 3 and 5 voters), {} compactions, {} snapshots installed, slowest leader after healing {} ticks); \
         operations: {} writes ok, {} failed, {} unknown; {} reads ok, {} failed; {} checked for linearizability",
        totals.seeds,
        started.elapsed().as_secs_f64(),
        totals.ticks,
        totals.messages_delivered,
        totals.misdelivered,
        totals.garbage_delivered,
        totals.leaders,
        totals.crashes,
        totals.wipes,
        totals.readmissions,
        totals.membership_changes,
        totals.leader_removals,
        totals.runs_resized,
        totals.compactions,
        totals.snapshots_installed,
        totals.ticks_to_leader_after_heal_max,
        h.writes_ok,
        h.writes_failed,
        h.writes_unknown,
        h.reads_ok,
        h.reads_failed,
        totals.ops_checked
    );
    let d = &totals.disk;
    report!(
        "{test}: asynchronous persistence in {} of {} seeds: {} WAL batches of {} jobs ({} of several jobs), \
         {} inline follower writes, {} Readies taken with writes pending, {} messages held for an fsync, \
         {} batches torn and {} queued jobs lost by crashes; {} read batches issued, {} reads shared a batch",
        d.runs,
        totals.seeds,
        d.batches,
        d.jobs,
        d.batches_of_several_jobs,
        d.inline_writes,
        d.readies_with_writes_pending,
        d.messages_held,
        d.torn_batches,
        d.jobs_lost,
        d.read_batches,
        d.reads_sharing_a_batch
    );
    assert_eq!(totals.seeds, seeds, "{test}: every seed must have run");
    if seeds >= COVERAGE_SEEDS_MIN {
        assert!(
            d.runs > 0
                && d.batches_of_several_jobs > 0
                && d.readies_with_writes_pending > 0
                && d.messages_held > 0
                && d.torn_batches > 0
                && d.read_batches > 0
                && d.reads_sharing_a_batch > 0,
            "{test}: the asynchronous mode never overlapped persistence with the rest: {d:?}"
        );
    }
    if seeds >= COVERAGE_SEEDS_MIN {
        assert!(
            totals.wipes > 0 && totals.readmissions > 0,
            "{test}: no node lost its disk and was re-admitted ({} wipes, {} re-admissions)",
            totals.wipes,
            totals.readmissions
        );
        assert!(
            totals.membership_changes > 0 && totals.leader_removals > 0 && totals.runs_resized > 0,
            "{test}: the membership never changed, or never removed the leader, or never went between 3 and 5 voters"
        );
    }
    assert!(
        h.ok() >= seeds * OK_OPERATIONS_PER_SEED_MIN,
        "{test}: only {} operations succeeded over {seeds} seeds; the simulator is not exercising the cluster",
        h.ok()
    );
    assert!(
        totals.ops_checked >= h.ok(),
        "{test}: every ok operation must be checked"
    );
}

/// Planted-bug seeds run in blocks that alternate between cluster sizes, so
/// both are exercised and a seed alone says which size it ran.
const PLANTED_BUG_BLOCK_SEEDS: u64 = 50;
const _: () = assert!(PLANTED_BUG_SEEDS_MAX.is_multiple_of(PLANTED_BUG_BLOCK_SEEDS));

fn planted_bug_cluster_size(seed: u64) -> usize {
    if (seed / PLANTED_BUG_BLOCK_SEEDS).is_multiple_of(2) {
        5
    } else {
        3
    }
}

/// Asserts the simulator catches `bug` with a safety or linearizability
/// failure within the seed budget.
fn catch_planted_bug(test: &str, bug: Planted) {
    if let Some(seed) = env_u64("RAFTKV_SIM_SEED") {
        let cluster_size = env_u64("RAFTKV_SIM_CLUSTER_SIZE")
            .map_or(planted_bug_cluster_size(seed), |n| n as usize);
        let _ = replay(test, cluster_size, Some(bug), seed);
        return;
    }
    let started = Instant::now();
    // Other failures (a liveness failure the bug caused, a core panic) do
    // not count as catching it; they are listed if the bug survives.
    let mut other_failures = Vec::new();
    for block in 0..PLANTED_BUG_SEEDS_MAX / PLANTED_BUG_BLOCK_SEEDS {
        let seeds = block * PLANTED_BUG_BLOCK_SEEDS..(block + 1) * PLANTED_BUG_BLOCK_SEEDS;
        let cluster_size = planted_bug_cluster_size(seeds.start);
        let (_, failures) = run_parallel_all(cluster_size, Some(bug), seeds, false);
        for (seed, failure) in failures {
            if !matches!(
                failure.kind,
                FailureKind::Safety | FailureKind::Linearizability
            ) {
                other_failures.push(format!("seed {seed}: {failure}"));
                continue;
            }
            report!(
                "{test}: {bug:?} caught by seed {seed} (cluster of {cluster_size}) in {:.1}s: {:?}: {}",
                started.elapsed().as_secs_f64(),
                failure.kind,
                failure.message.lines().next().unwrap_or("")
            );
            return;
        }
    }
    panic!(
        "{test}: planted bug {bug:?} survived {PLANTED_BUG_SEEDS_MAX} seeds; other failures:\n{}",
        other_failures.join("\n")
    );
}
#[test]
fn cluster_of_3() {
    simulate_cluster("cluster_of_3", 3);
}

#[test]
fn cluster_of_5() {
    simulate_cluster("cluster_of_5", 5);
}

#[test]
fn planted_vote_twice_is_caught() {
    catch_planted_bug(
        "planted_vote_twice_is_caught",
        Planted::Core(PlantedBug::VoteTwice),
    );
}

#[test]
fn planted_commit_previous_term_is_caught() {
    catch_planted_bug(
        "planted_commit_previous_term_is_caught",
        Planted::Core(PlantedBug::CommitPreviousTerm),
    );
}

#[test]
fn planted_skip_log_matching_is_caught() {
    catch_planted_bug(
        "planted_skip_log_matching_is_caught",
        Planted::Core(PlantedBug::SkipLogMatching),
    );
}

#[test]
fn planted_read_without_quorum_is_caught() {
    catch_planted_bug(
        "planted_read_without_quorum_is_caught",
        Planted::Core(PlantedBug::ReadWithoutQuorum),
    );
}

#[test]
fn planted_count_any_incarnation_is_caught() {
    catch_planted_bug(
        "planted_count_any_incarnation_is_caught",
        Planted::Core(PlantedBug::CountAnyIncarnation),
    );
}

#[test]
fn planted_two_changes_in_flight_is_caught() {
    catch_planted_bug(
        "planted_two_changes_in_flight_is_caught",
        Planted::Core(PlantedBug::TwoChangesInFlight),
    );
}

#[test]
fn planted_ack_before_fsync_is_caught() {
    catch_planted_bug(
        "planted_ack_before_fsync_is_caught",
        Planted::Driver(DriverBug::AckBeforeFsync),
    );
}

/// Tuning aid, not part of the default run: how often each planted bug is
/// caught, and by which check, over `RAFTKV_SIM_SEEDS` seeds (default 200)
/// per cluster size. `RAFTKV_SIM_BUG=<name>` picks one bug;
/// `RAFTKV_SIM_SHOW=1` prints every failure's first line.
#[test]
#[ignore = "tuning aid: cargo test --release -p raftkv --test sim -- --ignored --nocapture catch_rates"]
fn planted_bug_catch_rates() {
    let seeds = env_u64("RAFTKV_SIM_SEEDS").unwrap_or(200);
    for bug in [
        Planted::Core(PlantedBug::VoteTwice),
        Planted::Core(PlantedBug::CommitPreviousTerm),
        Planted::Core(PlantedBug::SkipLogMatching),
        Planted::Core(PlantedBug::ReadWithoutQuorum),
        Planted::Core(PlantedBug::CountAnyIncarnation),
        Planted::Core(PlantedBug::TwoChangesInFlight),
        Planted::Driver(DriverBug::AckBeforeFsync),
        Planted::Driver(DriverBug::PersistedBeforeFsync),
    ] {
        let only = std::env::var("RAFTKV_SIM_BUG").unwrap_or_default();
        if !format!("{bug:?}").contains(&only) {
            continue;
        }
        for cluster_size in [3, 5] {
            let (_, failures) = run_parallel_all(cluster_size, Some(bug), 0..seeds, false);
            let mut by_kind: std::collections::BTreeMap<String, u64> = Default::default();
            for (_, failure) in &failures {
                let check = failure.message.split(':').next().unwrap_or("").to_string();
                *by_kind
                    .entry(format!("{:?}/{check}", failure.kind))
                    .or_default() += 1;
            }
            for (seed, failure) in &failures {
                if !matches!(
                    failure.kind,
                    FailureKind::Safety | FailureKind::Linearizability
                ) || std::env::var("RAFTKV_SIM_SHOW").is_ok()
                {
                    println!(
                        "  seed {seed}: {}",
                        failure.message.lines().next().unwrap_or("")
                    );
                }
            }
            println!(
                "{bug:?} cluster of {cluster_size}: caught by {} of {seeds} seeds (first {:?}): {by_kind:?}",
                failures.len(),
                failures.first().map(|(seed, _)| *seed)
            );
            assert!(
                !failures.is_empty(),
                "{bug:?} was never caught in a cluster of {cluster_size}"
            );
        }
    }
}
