//! Smoke tests of `raftkv bench`: the real binary starts a fresh 3-node
//! cluster on free ports in a temp dir, runs a few hundred operations (or a
//! 1-second run, or a fill of a few thousand keys), prints its report and
//! stops the cluster.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{free_base_port, NODES};

/// A bench run of a few hundred ops finishes well within this, even in CI.
const RUN_TIMEOUT_MS: u64 = 120_000;
/// Runs the binary with `args`, killing it if it outlives the deadline.
fn run_bench(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .arg("bench")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start raftkv bench");
    let deadline = Instant::now() + Duration::from_millis(RUN_TIMEOUT_MS);
    while child.try_wait().expect("poll raftkv bench").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("collect output");
            panic!(
                "raftkv bench did not finish within {RUN_TIMEOUT_MS} ms\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("collect output")
}

fn describe(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn bench_runs_a_fresh_cluster_and_reports_throughput_and_latency() {
    let run = run_bench_fresh(&["--ops", "300", "--clients", "4"]);
    let (output, shown) = (&run.output, &run.shown);
    assert!(output.status.success(), "{shown}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let ops_line = stdout
        .lines()
        .find(|line| line.trim_start().starts_with("ops/s"))
        .unwrap_or_else(|| panic!("no ops/s line\n{shown}"));
    let rate: f64 = ops_line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(rate > 0.0, "{shown}");
    assert!(stdout.contains("300 ok"), "{shown}");
    let header = stdout
        .lines()
        .find(|line| line.contains("latency ms"))
        .unwrap_or_else(|| panic!("no latency table\n{shown}"));
    assert!(header.contains("p50") && header.contains("p99"), "{shown}");
    let all_row: Vec<f64> = stdout
        .lines()
        .find(|line| line.trim_start().starts_with("all "))
        .unwrap_or_else(|| panic!("no latency row\n{shown}"))
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();
    let (p50, p99) = (all_row[0], all_row[1]);
    assert!(p50 > 0.0 && p99 >= p50, "{shown}");
    // A healthy cluster elects nobody during the run, and the report says so.
    assert!(
        stdout.contains("\n  elections  0 (highest term "),
        "{shown}"
    );
    assert!(!stdout.contains("ELECTIONS DURING THE RUN"), "{shown}");
    // The nodes were stopped and their logs written where asked.
    assert!(run.logs.join("node-1.log").exists(), "{shown}");
    for id in 1..=NODES {
        let port = run.base_port + id;
        assert!(
            TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} still taken\n{shown}"
        );
    }
}

#[test]
fn bench_json_report_counts_every_operation() {
    let (report, shown) = run_bench_json(&[
        "--ops",
        "200",
        "--clients",
        "2",
        "--pipeline",
        "4",
        "--read-ratio",
        "0.5",
    ]);
    let throughput = &report["throughput"];
    let ok = throughput["ops_ok"].as_u64().unwrap();
    let failed = throughput["ops_failed"].as_u64().unwrap();
    assert_eq!(ok + failed, 200, "{shown}");
    assert!(throughput["reads_ok"].as_u64().unwrap() > 0, "{shown}");
    assert!(throughput["ops_per_sec"].as_f64().unwrap() > 0.0, "{shown}");
    assert!(
        throughput["latency"]["all"]["p99_us"].as_u64().unwrap()
            >= throughput["latency"]["all"]["p50_us"].as_u64().unwrap()
    );
    assert_eq!(report["workload"]["pipeline"], 4);
}

#[test]
fn failover_refuses_an_attached_cluster_and_says_why() {
    let output = run_bench(&["--attach", "127.0.0.1:1", "--failover", "1"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("drop --attach"), "{}", describe(&output));
}

/// A `raftkv bench` run on a fresh cluster on free ports, its data and logs
/// in a temp dir (removed when this is dropped).
struct FreshRun {
    _dir: tempfile::TempDir,
    logs: PathBuf,
    base_port: u16,
    output: Output,
    /// The output, for assertion messages.
    shown: String,
}

fn run_bench_fresh(args: &[&str]) -> FreshRun {
    let dir = tempfile::tempdir().unwrap();
    let base_port = free_base_port();
    let data = dir.path().join("data");
    let logs = dir.path().join("logs");
    let port_arg = base_port.to_string();
    let mut all = args.to_vec();
    all.extend([
        "--base-port",
        &port_arg,
        "--data-dir",
        data.to_str().unwrap(),
        "--log-dir",
        logs.to_str().unwrap(),
    ]);
    let output = run_bench(&all);
    let shown = describe(&output);
    FreshRun {
        _dir: dir,
        logs,
        base_port,
        output,
        shown,
    }
}

/// Runs `raftkv bench --json` with `args` on a fresh cluster; returns the
/// parsed report and the output for messages.
fn run_bench_json(args: &[&str]) -> (serde_json::Value, String) {
    let mut all = args.to_vec();
    all.push("--json");
    let run = run_bench_fresh(&all);
    let shown = run.shown;
    assert!(run.output.status.success(), "{shown}");
    let report =
        serde_json::from_slice(&run.output.stdout).unwrap_or_else(|e| panic!("{e}\n{shown}"));
    (report, shown)
}

#[test]
fn a_timed_run_stops_on_time_and_counts_no_elections() {
    let (report, shown) = run_bench_json(&["--duration", "1", "--clients", "2"]);
    let throughput = &report["throughput"];
    let elapsed_ms = throughput["elapsed_ms"].as_f64().unwrap();
    assert!((950.0..5_000.0).contains(&elapsed_ms), "{shown}");
    assert!(throughput["ops_ok"].as_u64().unwrap() > 0, "{shown}");
    assert_eq!(throughput["duration_s_limit"], 1, "{shown}");
    assert!(throughput["ops_limit"].is_null(), "{shown}");
    let elections = &throughput["elections"];
    assert_eq!(elections["elections"], 0, "{shown}");
    assert_eq!(elections["term_changes"], 0, "{shown}");
    assert_eq!(elections["leader_changes"], 0, "{shown}");
    assert_eq!(elections["became_leader_lines"], 0, "{shown}");
    assert!(elections["term_before"].as_u64().unwrap() >= 1, "{shown}");
    assert_eq!(
        elections["leader_before"], elections["leader_after"],
        "{shown}"
    );
    assert!(elections["polls"].as_u64().unwrap() >= 1, "{shown}");
}

/// More keys than the nodes' default --snapshot-entries-threshold (50,000):
/// the leader compacts its log, so the follower, wiped after it
/// acknowledged everything and with nothing written after, must be probed
/// again on reconnect and catch up from a snapshot.
const WIPED_KEYS: u64 = 60_000;

#[test]
fn a_wiped_follower_converges_and_every_node_reports_its_memory() {
    let keys = WIPED_KEYS.to_string();
    let (report, shown) = run_bench_json(&["--memory", &keys, "--catchup-wiped", &keys]);
    assert!(report["throughput"].is_null(), "{shown}");
    let wiped = &report["catchup_wiped"];
    let fill = &wiped["fill"];
    assert_eq!(fill["writes_ok"], WIPED_KEYS, "{shown}");
    // The fill's keys plus the bench's own readiness key.
    let keys_held = fill["keys_held"].as_u64().unwrap();
    assert!(
        (WIPED_KEYS..=WIPED_KEYS + 1).contains(&keys_held),
        "{shown}"
    );
    assert_eq!(wiped["digest_matches"], true, "{shown}");
    assert_eq!(wiped["via_snapshot"], true, "{shown}");
    assert_eq!(wiped["follower_keys"], keys_held, "{shown}");
    assert!(
        wiped["applied_index"].as_u64().unwrap() >= fill["applied_index"].as_u64().unwrap(),
        "{shown}"
    );
    let converged_ms = wiped["converged_ms"].as_f64().unwrap();
    let first_answer_ms = wiped["first_answer_ms"].as_f64().unwrap();
    assert!(
        converged_ms > 0.0 && converged_ms >= first_answer_ms,
        "{shown}"
    );
    assert_ne!(wiped["follower"], wiped["leader"], "{shown}");

    let memory = &report["memory"];
    let nodes = memory["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{shown}");
    assert_eq!(
        memory["raw_data_bytes"].as_u64().unwrap(),
        keys_held * (16 + 100),
        "{shown}"
    );
    for node in nodes {
        let rss = node["rss_bytes"].as_u64().unwrap();
        assert!(rss > 0, "{shown}");
        assert!(node["rss_anon_bytes"].as_u64().unwrap() > 0, "{shown}");
        assert!(node["peak_rss_bytes"].as_u64().unwrap() >= rss, "{shown}");
        assert_eq!(node["keys"], keys_held, "{shown}");
        assert!(node["rss_to_raw"].as_f64().unwrap() > 0.0, "{shown}");
    }
    assert_eq!(
        nodes.iter().filter(|node| node["leader"] == true).count(),
        1,
        "{shown}"
    );
}
