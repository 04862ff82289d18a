//! The bench's final report: the machine it ran on, and each measurement as
//! text (stdout, for people) or one JSON object (`--json`, for scripts).

use clap::ValueEnum;
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use super::catchup::{CatchupReport, CatchupRound, WipedCatchupReport};
use super::elections::ElectionReport;
use super::failover::{min_median_max, FailoverReport, FailoverTrial};
use super::fill::FillReport;
use super::load::{ErrorKind, LoadResult};
use super::memory::MemoryReport;
use super::BenchArgs;

/// The machine a run measured, as BENCHMARKS.md records it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Machine {
    pub(crate) cpus: usize,
    pub(crate) cpu_model: String,
    pub(crate) memory_total_gib: f64,
}

impl Machine {
    /// From the scheduler and /proc (unknown fields stay empty or 0).
    pub(crate) fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model: cpu_model(&cpuinfo),
            memory_total_gib: memory_total_gib(&meminfo),
        }
    }

    fn text(&self) -> String {
        format!(
            "{} cpus ({}), {:.1} GiB memory",
            self.cpus,
            if self.cpu_model.is_empty() {
                "model unknown"
            } else {
                &self.cpu_model
            },
            self.memory_total_gib
        )
    }
}

fn cpu_model(cpuinfo: &str) -> String {
    cpuinfo
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == "model name").then(|| value.trim().to_string())
        })
        .unwrap_or_default()
}

fn memory_total_gib(meminfo: &str) -> f64 {
    meminfo
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix("MemTotal:")?;
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kib| kib / (1024.0 * 1024.0))
}

/// Everything one run measured.
pub(crate) struct BenchReport {
    pub(crate) machine: Machine,
    pub(crate) throughput: Option<LoadResult>,
    /// Elections seen during the throughput run (raftkv targets).
    pub(crate) elections: Option<ElectionReport>,
    pub(crate) failover: Option<FailoverReport>,
    pub(crate) catchup: Option<CatchupReport>,
    pub(crate) memory: Option<MemoryReport>,
    /// The wiped catch-up, or why it failed.
    pub(crate) catchup_wiped: Option<Result<WipedCatchupReport, String>>,
}

impl BenchReport {
    pub(crate) fn new(machine: Machine) -> BenchReport {
        BenchReport {
            machine,
            throughput: None,
            elections: None,
            failover: None,
            catchup: None,
            memory: None,
            catchup_wiped: None,
        }
    }

    /// The error of a measurement that failed but is part of the report.
    pub(crate) fn failure(&self) -> Result<(), String> {
        match &self.catchup_wiped {
            Some(Err(error)) => Err(format!("--catchup-wiped: {error}")),
            _ => Ok(()),
        }
    }

    /// Prints the report on stdout.
    pub(crate) fn print(&self, args: &BenchArgs, cluster: &str) -> Result<(), String> {
        if args.json {
            println!("{}", self.json(args, cluster)?);
        } else {
            print!("{}", self.text(args, cluster)?);
        }
        Ok(())
    }

    pub(crate) fn text(&self, args: &BenchArgs, cluster: &str) -> Result<String, String> {
        let mut lines = vec![
            format!("raftkv bench: {cluster}"),
            format!("machine: {}", self.machine.text()),
        ];
        if let Some(result) = &self.throughput {
            lines.extend(throughput_text(args, result)?);
            lines.push(match &self.elections {
                Some(elections) => format!("  {}", elections_line(elections)),
                None => "  elections  not measured (the target has no RAFT.STATUS)".into(),
            });
        }
        if let Some(failover) = &self.failover {
            lines.extend(failover_text(failover));
        }
        if let Some(catchup) = &self.catchup {
            lines.extend(catchup_text(catchup));
        }
        if let Some(memory) = &self.memory {
            lines.extend(memory_text(memory));
        }
        match &self.catchup_wiped {
            Some(Ok(wiped)) => lines.extend(wiped_text(wiped)),
            Some(Err(error)) => {
                lines.push(format!("catch-up from an empty data dir: FAILED: {error}"))
            }
            None => {}
        }
        Ok(lines.iter().map(|line| format!("{line}\n")).collect())
    }

    pub(crate) fn json(&self, args: &BenchArgs, cluster: &str) -> Result<Value, String> {
        let throughput = match &self.throughput {
            Some(result) => {
                let mut value = throughput_json(result)?;
                value["elections"] = self.elections.as_ref().map_or(Value::Null, elections_json);
                value["ops_limit"] = json!(args.ops);
                value["duration_s_limit"] = json!(args.duration);
                value
            }
            None => Value::Null,
        };
        let target = args
            .target
            .to_possible_value()
            .map_or_else(String::new, |value| value.get_name().to_string());
        Ok(json!({
            "target": target,
            "cluster": cluster,
            "machine": {
                "cpus": self.machine.cpus,
                "cpu_model": self.machine.cpu_model,
                "memory_total_gib": round(self.machine.memory_total_gib, 1),
            },
            "workload": {
                "clients": args.clients,
                "pipeline": args.pipeline,
                "value_size_bytes": args.value_size,
                "read_ratio": args.read_ratio,
                "keyspace": args.keyspace,
                "seed": args.seed,
            },
            "throughput": throughput,
            "failover": self.failover.as_ref().map_or(Value::Null, failover_json),
            "catchup": self.catchup.as_ref().map_or(Value::Null, catchup_json),
            "memory": self.memory.as_ref().map_or(Value::Null, memory_json),
            "catchup_wiped": match &self.catchup_wiped {
                Some(Ok(wiped)) => wiped_json(wiped),
                Some(Err(error)) => json!({ "error": error }),
                None => Value::Null,
            },
        }))
    }
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// p50/p99/p999/max/mean of one histogram, in µs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct LatencySummary {
    pub(crate) count: u64,
    pub(crate) p50_us: u64,
    pub(crate) p99_us: u64,
    pub(crate) p999_us: u64,
    pub(crate) max_us: u64,
    pub(crate) mean_us: f64,
}

impl LatencySummary {
    pub(crate) fn of(histogram: &Histogram<u64>) -> LatencySummary {
        LatencySummary {
            count: histogram.len(),
            p50_us: histogram.value_at_quantile(0.50),
            p99_us: histogram.value_at_quantile(0.99),
            p999_us: histogram.value_at_quantile(0.999),
            max_us: histogram.max(),
            mean_us: histogram.mean(),
        }
    }

    fn json(&self) -> Value {
        json!({
            "count": self.count,
            "p50_us": self.p50_us,
            "p99_us": self.p99_us,
            "p999_us": self.p999_us,
            "max_us": self.max_us,
            "mean_us": round(self.mean_us, 1),
        })
    }

    fn row(&self, label: &str) -> String {
        let ms = |us: u64| us as f64 / 1000.0;
        format!(
            "  {label:<10} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
            ms(self.p50_us),
            ms(self.p99_us),
            ms(self.p999_us),
            ms(self.max_us),
            self.mean_us / 1000.0
        )
    }
}

fn errors_text(errors: &std::collections::BTreeMap<ErrorKind, u64>) -> String {
    if errors.is_empty() {
        return "none".into();
    }
    errors
        .iter()
        .map(|(kind, count)| format!("{} {count} ({})", kind.name(), kind.meaning()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn throughput_text(args: &BenchArgs, result: &LoadResult) -> Result<Vec<String>, String> {
    let tally = &result.tally;
    let mut lines = vec![
        format!(
            "throughput: {} clients x pipeline {}, {}-byte values, {:.0}% reads, {} keys",
            result.clients,
            result.pipeline,
            args.value_size,
            args.read_ratio * 100.0,
            args.keyspace
        ),
        format!(
            "  ops        {} ok ({} writes, {} reads), {} failed, in {:.3} s",
            tally.ok_ops(),
            tally.writes.len(),
            tally.reads.len(),
            tally.failed_ops(),
            result.elapsed.as_secs_f64()
        ),
        format!("  ops/s      {:.0}", result.ops_per_sec()),
        format!(
            "  {:<10} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "latency ms", "p50", "p99", "p999", "max", "mean"
        ),
        LatencySummary::of(&tally.all()?).row("all"),
    ];
    if !tally.writes.is_empty() && !tally.reads.is_empty() {
        lines.push(LatencySummary::of(&tally.writes).row("writes"));
        lines.push(LatencySummary::of(&tally.reads).row("reads"));
    }
    lines.push(format!("  errors     {}", errors_text(&tally.errors)));
    if !tally.connect_failures.is_empty() {
        lines.push(format!(
            "  reconnects failed: {}",
            errors_text(&tally.connect_failures)
        ));
    }
    Ok(lines)
}

fn counts_json(counts: &std::collections::BTreeMap<ErrorKind, u64>) -> Value {
    Value::Object(
        counts
            .iter()
            .map(|(kind, count)| (kind.name(), json!(count)))
            .collect(),
    )
}

fn throughput_json(result: &LoadResult) -> Result<Value, String> {
    let tally = &result.tally;
    Ok(json!({
        "clients": result.clients,
        "pipeline": result.pipeline,
        "ops_ok": tally.ok_ops(),
        "writes_ok": tally.writes.len(),
        "reads_ok": tally.reads.len(),
        "ops_failed": tally.failed_ops(),
        "elapsed_ms": round(result.elapsed.as_secs_f64() * 1000.0, 3),
        "ops_per_sec": round(result.ops_per_sec(), 1),
        "latency": {
            "all": LatencySummary::of(&tally.all()?).json(),
            "writes": LatencySummary::of(&tally.writes).json(),
            "reads": LatencySummary::of(&tally.reads).json(),
        },
        "errors": counts_json(&tally.errors),
        "connect_failures": counts_json(&tally.connect_failures),
    }))
}

fn optional_ms(value: Option<u64>) -> String {
    value.map_or_else(|| "?".into(), |ms| format!("{ms} ms"))
}

/// `trial 3: kill -9 node 1 (term 4) -> node 2 leads (term 5); detection 1 ms ...`.
pub(crate) fn failover_trial_line(trial: &FailoverTrial) -> String {
    let new_leader = match (trial.new_leader, trial.new_term) {
        (Some(id), Some(term)) => format!("node {id} leads (term {term})"),
        (Some(id), None) => format!("node {id} leads"),
        _ => "new leader not seen".into(),
    };
    format!(
        "failover trial {}: kill -9 node {} (term {}) -> {new_leader}; detection {}{}, election {}, \
         first write {:.1} ms after the kill; {} writes failed",
        trial.trial,
        trial.killed,
        trial.old_term,
        optional_ms(trial.detection_ms),
        trial
            .detection_event
            .as_ref()
            .map_or(String::new(), |event| format!(" ({event})")),
        optional_ms(trial.election_ms()),
        trial.first_write_ms,
        trial.failed_writes
    )
}

fn spread_text(label: &str, values: &[f64]) -> String {
    match min_median_max(values) {
        Some((min, median, max)) => {
            format!("  {label:<22} min {min:.1}  median {median:.1}  max {max:.1} ms")
        }
        None => format!("  {label:<22} not observed"),
    }
}

fn failover_spreads(report: &FailoverReport) -> [(&'static str, &'static str, Vec<f64>); 4] {
    let trials = &report.trials;
    [
        (
            "kill -> first write",
            "first_write_ms",
            trials.iter().map(|t| t.first_write_ms).collect(),
        ),
        (
            "detection",
            "detection_ms",
            trials
                .iter()
                .filter_map(|t| t.detection_ms)
                .map(|v| v as f64)
                .collect(),
        ),
        (
            "election",
            "election_ms",
            trials
                .iter()
                .filter_map(FailoverTrial::election_ms)
                .map(|v| v as f64)
                .collect(),
        ),
        (
            "new leader -> write",
            "after_election_ms",
            trials
                .iter()
                .filter_map(FailoverTrial::after_election_ms)
                .collect(),
        ),
    ]
}

fn failover_text(report: &FailoverReport) -> Vec<String> {
    let trials = report.trials.len();
    let mut lines = vec![format!(
        "failover: {trials} trial{} of kill -9 leader under {} write clients",
        if trials == 1 { "" } else { "s" },
        report.clients
    )];
    lines.extend(
        report
            .trials
            .iter()
            .map(|trial| format!("  {}", failover_trial_line(trial))),
    );
    lines.extend(
        failover_spreads(report)
            .iter()
            .map(|(label, _, values)| spread_text(label, values)),
    );
    lines
}

fn failover_json(report: &FailoverReport) -> Value {
    let trials: Vec<Value> = report
        .trials
        .iter()
        .map(|t| {
            json!({
                "trial": t.trial,
                "killed": t.killed,
                "old_term": t.old_term,
                "new_leader": t.new_leader,
                "new_term": t.new_term,
                "detection_ms": t.detection_ms,
                "detection_event": t.detection_event,
                "leader_ms": t.leader_ms,
                "election_ms": t.election_ms(),
                "first_write_ms": round(t.first_write_ms, 3),
                "failed_writes": t.failed_writes,
            })
        })
        .collect();
    let mut summary = serde_json::Map::new();
    for (_, key, values) in failover_spreads(report) {
        let spread = min_median_max(&values).map_or(Value::Null, |(min, median, max)| {
            json!({"min": round(min, 3), "median": round(median, 3), "max": round(max, 3)})
        });
        summary.insert(key.to_string(), spread);
    }
    json!({ "clients": report.clients, "trials": trials, "summary": summary })
}

fn catchup_round_text(round: &CatchupRound) -> String {
    format!(
        "first answer {:.1} ms, converged {:.1} ms after its process start ({} entries behind{})",
        round.first_answer_ms,
        round.converged_ms,
        round.behind_entries,
        if round.via_snapshot {
            ", through a snapshot"
        } else {
            ""
        }
    )
}

fn catchup_text(report: &CatchupReport) -> Vec<String> {
    let round = &report.round;
    vec![
        format!(
            "catch-up: follower node {} restarted after {} writes to leader node {} ({:.0} writes/s)",
            round.follower, round.entries, round.leader, round.write_ops_per_sec
        ),
        format!("  restart only   {}", catchup_round_text(&report.baseline)),
        format!("  {:<14} {}", format!("{} behind", round.entries), catchup_round_text(round)),
    ]
}

fn catchup_round_json(measured: &CatchupRound) -> Value {
    json!({
        "follower": measured.follower,
        "leader": measured.leader,
        "entries_written": measured.entries,
        "behind_entries": measured.behind_entries,
        "first_answer_ms": round(measured.first_answer_ms, 3),
        "converged_ms": round(measured.converged_ms, 3),
        "via_snapshot": measured.via_snapshot,
        "write_ops_per_sec": round(measured.write_ops_per_sec, 1),
    })
}

fn catchup_json(report: &CatchupReport) -> Value {
    json!({
        "baseline": catchup_round_json(&report.baseline),
        "round": catchup_round_json(&report.round),
    })
}

/// `elections  0 (term 2 -> 2, leader node 1 -> node 1, ...)`; a run with
/// elections says so in capitals, so it is not missed.
pub(crate) fn elections_line(report: &ElectionReport) -> String {
    let leader = |id: Option<u64>| id.map_or_else(|| "none".to_string(), |id| format!("node {id}"));
    let lines = report.became_leader_lines.map_or(String::new(), |count| {
        format!(", {count} became_leader lines in the node logs")
    });
    let flag = if report.elections() > 0 {
        "  ELECTIONS DURING THE RUN"
    } else {
        ""
    };
    format!(
        "elections  {} (highest term {} -> {}, leader {} -> {}, {} leader changes in {} polls{lines}){flag}",
        report.elections(),
        report.before.max_term,
        report.after.max_term,
        leader(report.before.leader),
        leader(report.after.leader),
        report.leader_changes,
        report.polls,
    )
}

fn elections_json(report: &ElectionReport) -> Value {
    json!({
        "elections": report.elections(),
        "term_changes": report.term_changes(),
        "term_before": report.before.max_term,
        "term_after": report.after.max_term,
        "leader_before": report.before.leader,
        "leader_after": report.after.leader,
        "leader_changes": report.leader_changes,
        "polls": report.polls,
        "became_leader_lines": report.became_leader_lines,
    })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn fill_text(fill: &FillReport) -> String {
    format!(
        "  fill       {} of {} keys written ({} failed) in {:.1} s ({:.0} writes/s), converged {:.0} ms later; \
         leader holds {} keys",
        fill.writes_ok,
        fill.keys_requested,
        fill.writes_failed,
        fill.elapsed_ms / 1000.0,
        fill.writes_per_sec,
        fill.converge_ms,
        fill.keys_held
    )
}

fn fill_json(fill: &FillReport) -> Value {
    json!({
        "keys_requested": fill.keys_requested,
        "writes_ok": fill.writes_ok,
        "writes_failed": fill.writes_failed,
        "value_size_bytes": fill.value_size_bytes,
        "elapsed_ms": round(fill.elapsed_ms, 1),
        "writes_per_sec": round(fill.writes_per_sec, 1),
        "converge_ms": round(fill.converge_ms, 1),
        "applied_index": fill.applied_index,
        "keys_held": fill.keys_held,
        "raw_data_bytes": fill.raw_data_bytes(),
    })
}

fn memory_text(report: &MemoryReport) -> Vec<String> {
    let fill = &report.fill;
    let mut lines = vec![
        format!(
            "memory: {} keys of {} + {} bytes = {:.1} MiB raw data per node",
            fill.keys_held,
            super::load::KEY_BYTES,
            fill.value_size_bytes,
            mib(report.raw_data_bytes)
        ),
        fill_text(fill),
        format!(
            "  {:<14} {:>9} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "node", "keys", "RSS MiB", "anon MiB", "file MiB", "peak MiB", "RSS/raw"
        ),
    ];
    for node in &report.nodes {
        let memory = &node.memory;
        lines.push(format!(
            "  {:<14} {:>9} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>9.2}x",
            format!("node {}{}", node.id, if node.leader { " (L)" } else { "" }),
            node.keys,
            mib(memory.rss_bytes),
            mib(memory.rss_anon_bytes),
            mib(memory.rss_file_bytes),
            mib(memory.peak_rss_bytes),
            report.ratio(node)
        ));
    }
    lines
}

fn memory_json(report: &MemoryReport) -> Value {
    let nodes: Vec<Value> = report
        .nodes
        .iter()
        .map(|node| {
            json!({
                "id": node.id,
                "pid": node.pid,
                "leader": node.leader,
                "keys": node.keys,
                "rss_bytes": node.memory.rss_bytes,
                "rss_anon_bytes": node.memory.rss_anon_bytes,
                "rss_file_bytes": node.memory.rss_file_bytes,
                "peak_rss_bytes": node.memory.peak_rss_bytes,
                "rss_to_raw": round(report.ratio(node), 3),
            })
        })
        .collect();
    let max_ratio = report
        .nodes
        .iter()
        .map(|node| report.ratio(node))
        .fold(0.0, f64::max);
    json!({
        "fill": fill_json(&report.fill),
        "raw_data_bytes": report.raw_data_bytes,
        "nodes": nodes,
        "max_rss_to_raw": round(max_ratio, 3),
    })
}

fn wiped_text(report: &WipedCatchupReport) -> Vec<String> {
    let snapshot = if report.via_snapshot {
        format!(
            "through a snapshot ({} sent, {:.1} MiB on the wire; {} on disk)",
            report.snapshots_sent,
            mib(report.snapshot_sent_bytes),
            report
                .snapshot_file_bytes
                .map_or_else(|| "no file".to_string(), |b| format!("{:.1} MiB", mib(b)))
        )
    } else {
        "without a snapshot (log entries only)".to_string()
    };
    vec![
        format!(
            "catch-up from an empty data dir: follower node {} (leader node {})",
            report.follower, report.leader
        ),
        fill_text(&report.fill),
        format!(
            "  wiped      data dir deleted in {:.1} ms; process start -> first answer {:.1} ms, \
             -> converged {:.1} ms",
            report.wipe_ms, report.first_answer_ms, report.converged_ms
        ),
        format!(
            "  converged  applied index {}, digest {} the leader's, {} keys; {snapshot}",
            report.applied_index,
            if report.digest_matches {
                "equal to"
            } else {
                "DIFFERENT from"
            },
            report.follower_keys
        ),
    ]
}

fn wiped_json(report: &WipedCatchupReport) -> Value {
    json!({
        "fill": fill_json(&report.fill),
        "follower": report.follower,
        "leader": report.leader,
        "applied_index": report.applied_index,
        "digest_matches": report.digest_matches,
        "follower_keys": report.follower_keys,
        "wipe_ms": round(report.wipe_ms, 3),
        "first_answer_ms": round(report.first_answer_ms, 3),
        "converged_ms": round(report.converged_ms, 3),
        "via_snapshot": report.via_snapshot,
        "snapshots_sent": report.snapshots_sent,
        "snapshot_sent_bytes": report.snapshot_sent_bytes,
        "snapshot_file_bytes": report.snapshot_file_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{OpKind, Tally};
    use std::time::Duration;

    #[test]
    fn machine_facts_are_read_from_proc_text() {
        let cpuinfo = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t: fpu\n";
        assert_eq!(cpu_model(cpuinfo), "AMD EPYC 7B13");
        assert_eq!(cpu_model("nothing"), "");
        let meminfo = "MemTotal:       24576000 kB\nMemFree: 1 kB\n";
        assert!((memory_total_gib(meminfo) - 23.4375).abs() < 1e-9);
        assert_eq!(memory_total_gib(""), 0.0);
    }

    #[test]
    fn latency_summaries_use_microseconds() {
        let mut tally = Tally::new();
        for micros in 1..=1000u64 {
            tally.record(OpKind::Write, Duration::from_micros(micros));
        }
        let summary = LatencySummary::of(&tally.writes);
        assert_eq!(summary.count, 1000);
        assert_eq!(summary.p50_us, 500);
        assert_eq!(summary.p99_us, 990);
        assert_eq!(summary.p999_us, 999);
        assert_eq!(summary.max_us, 1000);
        assert!(
            summary
                .row("all")
                .starts_with("  all            0.500     0.990     0.999     1.000"),
            "{}",
            summary.row("all")
        );
    }

    #[test]
    fn error_lists_name_each_kind_and_its_meaning() {
        let mut errors = std::collections::BTreeMap::new();
        assert_eq!(errors_text(&errors), "none");
        errors.insert(ErrorKind::Moved, 3);
        errors.insert(ErrorKind::ConnectionLost, 1);
        assert_eq!(
            errors_text(&errors),
            "moved 3 (sent to a follower, not applied), connection_lost 1 (outcome unknown)"
        );
        assert_eq!(
            counts_json(&errors),
            json!({"moved": 3, "connection_lost": 1})
        );
    }
}
