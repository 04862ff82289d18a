//! The bench's final report: the machine it ran on, and each measurement as
//! text (stdout, for people) or one JSON object (`--json`, for scripts).

use clap::ValueEnum;
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use super::catchup::{CatchupReport, CatchupRound};
use super::failover::{min_median_max, FailoverReport, FailoverTrial};
use super::load::{ErrorKind, LoadResult};
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
    pub(crate) failover: Option<FailoverReport>,
    pub(crate) catchup: Option<CatchupReport>,
}

impl BenchReport {
    pub(crate) fn new(machine: Machine) -> BenchReport {
        BenchReport {
            machine,
            throughput: None,
            failover: None,
            catchup: None,
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
        }
        if let Some(failover) = &self.failover {
            lines.extend(failover_text(failover));
        }
        if let Some(catchup) = &self.catchup {
            lines.extend(catchup_text(catchup));
        }
        Ok(lines.iter().map(|line| format!("{line}\n")).collect())
    }

    pub(crate) fn json(&self, args: &BenchArgs, cluster: &str) -> Result<Value, String> {
        let throughput = match &self.throughput {
            Some(result) => throughput_json(result)?,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::load::{OpKind, Tally};
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
