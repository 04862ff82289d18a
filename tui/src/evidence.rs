//! The evidence bundle: the files written from the record of one quality-gate
//! run into `logs/evidence/<UTC timestamp>/`: CHECKLIST.txt, REPORT.md,
//! timeline.jsonl, digests.csv, DEMO.md, node-<id>.log copies and README.txt.
//! It only reads the record (`gate_record`) and the plan, never the scenario.
//!
//! The scenario fills a [`GateRecord`] as it runs; the dashboard keeps the
//! latest copy it was sent, so `e` exports whatever has happened so far
//! ([`export_evidence`]): an item without a verdict is written as FAIL, "not run".

use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::clock;
use crate::gate_record::{GateRecord, RunMode, Verdict, TIMELINE_ENTRIES_MAX};
use crate::plan::{self, ITEM_COUNT, ITEM_NAMES};

/// At most this much of one node's log is read or copied per run; a longer
/// log is cut (its start is kept, so the line numbers cited stay right).
pub const NODE_LOG_COPY_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Bundles created in the same second get `-2`, `-3`, ... up to this suffix.
pub const BUNDLE_NAME_ATTEMPTS_MAX: u32 = 100;

// ----- time formats -------------------------------------------------------

/// Year, month, day of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `2024-05-01T10:00:00.123Z`
pub fn format_utc_ms(epoch_ms: u64) -> String {
    let (year, month, day) = civil_from_days((epoch_ms / 86_400_000) as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{}Z",
        clock::format_time_of_day(epoch_ms)
    )
}

/// `2024-05-01T10-00-00Z`: a bundle folder name (no colons, sorts by time).
pub fn bundle_dir_name(epoch_ms: u64) -> String {
    let (year, month, day) = civil_from_days((epoch_ms / 86_400_000) as i64);
    let seconds_of_day = epoch_ms / 1000 % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}-{:02}-{:02}Z",
        seconds_of_day / 3600,
        seconds_of_day / 60 % 60,
        seconds_of_day % 60
    )
}

/// `412 ms` below ten seconds (gate figures are compared in ms), else `14.2 s`.
pub fn format_ms(ms: u64) -> String {
    if ms < 10_000 {
        format!("{ms} ms")
    } else {
        clock::format_duration_ms(ms)
    }
}

/// Microseconds as milliseconds with one decimal: `3.1 ms`.
pub fn format_us_as_ms(us: u64) -> String {
    format!("{}.{} ms", us / 1000, us % 1000 / 100)
}

// ----- node logs ------------------------------------------------------------

/// The length of a file, or 0 when it does not exist yet: where this run's
/// part of a log begins.
pub fn log_end_offset(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// This run's part of a node log: from `start_offset_bytes` (moved past a
/// partial line if it falls inside one) to the end, at most
/// [`NODE_LOG_COPY_BYTES_MAX`]. The scenario cites line numbers in exactly
/// these bytes, and the bundle copies exactly these bytes.
pub fn read_log_portion(path: &Path, start_offset_bytes: u64) -> Result<Vec<u8>, String> {
    let mut file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut start = start_offset_bytes;
    let mut skip_partial_line = false;
    if start > 0 {
        // Starting inside a line would cite a fragment: check the byte before.
        let mut previous = [0u8; 1];
        let seek = file.seek(SeekFrom::Start(start - 1));
        if seek.is_ok() && file.read_exact(&mut previous).is_ok() && previous[0] != b'\n' {
            skip_partial_line = true;
        }
        if file.metadata().map_or(0, |m| m.len()) < start {
            // Truncated or replaced since the run began: it is all new.
            start = 0;
            skip_partial_line = false;
        }
    }
    file.seek(SeekFrom::Start(start))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(NODE_LOG_COPY_BYTES_MAX)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if skip_partial_line {
        let cut = bytes
            .iter()
            .position(|b| *b == b'\n')
            .map_or(bytes.len(), |i| i + 1);
        bytes.drain(..cut);
    }
    Ok(bytes)
}

// ----- rendering ------------------------------------------------------------

/// CHECKLIST.txt: the eight paste lines, then the evidence for each item.
pub fn checklist_text(record: &GateRecord) -> String {
    let mut text = String::new();
    for (i, name) in ITEM_NAMES.iter().enumerate() {
        let _ = writeln!(
            text,
            "{}. {name}: {}",
            i + 1,
            record.item(i + 1).verdict.word()
        );
    }
    let _ = writeln!(
        text,
        "\nEvidence ({}, started {}, {} nodes; files named are in this folder):",
        record.mode.describe(),
        format_utc_ms(record.started_at_ms),
        record.nodes.len()
    );
    for number in 1..=ITEM_COUNT {
        let item = record.item(number);
        let _ = writeln!(text, "{number}. {} [{}]", item.figure, item.evidence);
    }
    text
}

/// The item table shared by REPORT.md.
fn items_table(record: &GateRecord) -> String {
    let mut text = String::from("| # | Item | Result | Figure or reason |\n|---|---|---|---|\n");
    for (i, name) in ITEM_NAMES.iter().enumerate() {
        let item = record.item(i + 1);
        let _ = writeln!(
            text,
            "| {} | {name} | {} | {} |",
            i + 1,
            item.verdict.word(),
            item.figure.replace('|', "/")
        );
    }
    text
}

/// The processes, ports, Ready loop and storage of this run's cluster.
fn architecture_diagram(record: &GateRecord) -> String {
    let mut clients = String::new();
    let mut peers = String::new();
    for node in &record.nodes {
        let _ = write!(clients, "  node {} {:<18}", node.id, node.client_addr);
        let peer = node.peer_addr.as_deref().unwrap_or("(remote)");
        let _ = write!(peers, "  peer {peer:<21}");
    }
    let controller = match record.mode {
        RunMode::Demo => "raftkv demo: supervisor (spawn, kill -9, restart), RAFT.STATUS polls",
        RunMode::Dashboard | RunMode::ExportOnly => {
            "raftkv dashboard: supervisor (spawn, kill -9, restart), RAFT.STATUS polls"
        }
        RunMode::Attached => "raftkv demo --attach: RAFT.STATUS polls only (no process control)",
    };
    format!(
        "```text
{controller}
   | one child process per node: `raftkv node --id i ...`
   | RESP (Redis protocol) over TCP: SET/GET, READONLY, RAFT.STATUS, RAFT.DIGEST
   v
{clients}
{peers}
   ^ peer links: TCP, length-delimited frames, handshake (cluster id, node id)
   |
inside each node:
  RESP server --request--> driver task (owns RawNode; tick / step / propose)
                               |
                             Ready --1 persist entries + hard state (WAL, one fsync per batch)
                                   --2 send messages to peers
                                   --3 apply committed entries to the kv store (+ digest)
                                   --4 advance
  storage: <data-dir>/node-<i>/wal/*.wal, snapshot-<index>-<term>.snap
  events:  <log-dir>/node-<i>.log (JSON lines: leader_lost, became_leader, ...)
```
",
        clients = clients.trim_end(),
        peers = peers.trim_end(),
    )
}

/// The "this run's numbers" table.
fn numbers_table(record: &GateRecord) -> String {
    let m = &record.measurements;
    let not_measured = "not measured (see the checklist)".to_string();
    let mut rows: Vec<(String, String, String)> = Vec::new();
    rows.push(match &m.bench {
        Some(b) => (
            "Write throughput".into(),
            format!(
                "{} SET/s ({} SETs, {} concurrent clients, through leader node {}, {} failed)",
                b.ops_per_sec,
                plan::thousands(b.sets),
                b.clients,
                b.via_node,
                b.failed
            ),
            "timeline.jsonl step 8.1".into(),
        ),
        None => (
            "Write throughput".into(),
            not_measured.clone(),
            String::new(),
        ),
    });
    if let Some(b) = &m.bench {
        rows.push((
            "Write latency".into(),
            format!(
                "p50 {}, p99 {}, max {}",
                format_us_as_ms(b.latency_us_p50),
                format_us_as_ms(b.latency_us_p99),
                format_us_as_ms(b.latency_us_max)
            ),
            "timeline.jsonl step 8.1".into(),
        ));
    }
    if m.detections.is_empty() {
        rows.push((
            "Leader failure detection".into(),
            not_measured.clone(),
            String::new(),
        ));
    }
    for d in &m.detections {
        rows.push((
            format!("Detection, node {}", d.node),
            format!(
                "{} after the kill: {}{}{}",
                format_ms(d.after_kill_ms),
                d.event,
                if d.reason.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", d.reason)
                },
                d.silence_ms
                    .map_or(String::new(), |s| format!(", silence_ms={s}"))
            ),
            format!("node-{}.log line {}", d.node, d.log_line),
        ));
    }
    rows.push(match &m.election {
        Some(e) => (
            "Election".into(),
            format!(
                "node {} leader in term {} (was node {}, term {}) {} after the kill; all survivors followed it by {}",
                e.node,
                e.term,
                e.old_leader,
                e.old_term,
                format_ms(e.after_kill_ms),
                format_ms(e.confirmed_after_kill_ms)
            ),
            e.log_line.map_or("timeline.jsonl step 4.1".into(), |line| {
                format!("node-{}.log line {line}", e.node)
            }),
        ),
        None => ("Election".into(), not_measured.clone(), String::new()),
    });
    rows.push(match &m.catch_up {
        Some(c) => (
            "Catch-up after restart".into(),
            format!(
                "node {} reached applied index {} in {}",
                c.node,
                c.applied_index,
                format_ms(c.ms)
            ),
            "timeline.jsonl step 6.2".into(),
        ),
        None => (
            "Catch-up after restart".into(),
            not_measured.clone(),
            String::new(),
        ),
    });
    let phase = plan::KEYS_PER_PHASE;
    for (label, value, step) in [
        (
            format!("First {phase} writes (one at a time)"),
            m.first_writes_ms,
            "2.3",
        ),
        (
            format!("Next {phase} writes (one at a time)"),
            m.second_writes_ms,
            "5.1",
        ),
    ] {
        if let Some(ms) = value {
            rows.push((label, format_ms(ms), format!("timeline.jsonl step {step}")));
        }
    }
    rows.push((
        "Gate wall time".into(),
        m.gate_wall_ms.map_or(not_measured, format_ms),
        "timeline.jsonl".into(),
    ));
    let mut text = String::from("| Measure | Value | Evidence |\n|---|---|---|\n");
    for (label, value, evidence) in rows {
        let _ = writeln!(
            text,
            "| {label} | {} | {evidence} |",
            value.replace('|', "/")
        );
    }
    text
}

fn next_steps(record: &GateRecord) -> String {
    let mut text = String::new();
    for number in 1..=ITEM_COUNT {
        let item = record.item(number);
        if item.verdict == Verdict::Fail {
            let _ = writeln!(
                text,
                "- Fix item {number} ({}): {}.",
                ITEM_NAMES[number - 1],
                item.figure
            );
        }
    }
    text.push_str(
        "- Run the gate across hosts: nodes bind any address, but the gate and the dashboard \
         start them on 127.0.0.1; TLS on peer and client ports, and a peer handshake that \
         authenticates (today it checks the cluster id).\n\
         - Bring the fault checks into this report: `raftkv chaos` checks linearizability \
         under kills, partitions, one-way links, pauses, slow links and membership changes; a \
         gate item that runs it would put its verdict here.\n\
         - Tune group commit and append pipelining against the p99 latency measured above.\n",
    );
    text
}

/// REPORT.md: one page with the architecture, this run's numbers and next steps.
pub fn report_markdown(record: &GateRecord) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "# raftkv Month 3 report: full cluster failover gate\n"
    );
    let _ = writeln!(
        text,
        "Run {} by {}; {} nodes; result **{}/{} PASS**.\n",
        format_utc_ms(record.started_at_ms),
        record.mode.describe(),
        record.nodes.len(),
        record.passed_count(),
        ITEM_COUNT
    );
    text.push_str(&items_table(record));
    text.push_str("\n## Architecture\n\n");
    text.push_str(&architecture_diagram(record));
    text.push_str("\n## This run's numbers\n\n");
    text.push_str(&numbers_table(record));
    if !record.notes.is_empty() {
        text.push_str("\nNotes:\n");
        for note in &record.notes {
            let _ = writeln!(text, "- {note}");
        }
    }
    text.push_str("\n## Next steps\n\n");
    text.push_str(&next_steps(record));
    text
}

/// timeline.jsonl: one JSON object a line.
pub fn timeline_jsonl(record: &GateRecord) -> String {
    let mut text = String::new();
    for entry in &record.timeline {
        let line = serde_json::json!({
            "at": format_utc_ms(entry.at_ms),
            "at_ms": entry.at_ms,
            "since_start_ms": entry.at_ms.saturating_sub(record.started_at_ms),
            "step": entry.step,
            "kind": entry.kind.name(),
            "text": entry.text,
        });
        let _ = writeln!(text, "{line}");
    }
    if record.timeline_dropped > 0 {
        let line = serde_json::json!({
            "kind": "warn",
            "text": format!("{} later entries were not kept (timeline limit {TIMELINE_ENTRIES_MAX})", record.timeline_dropped),
        });
        let _ = writeln!(text, "{line}");
    }
    text
}

/// digests.csv: `node,checkpoint,applied_index,digest,keys`.
pub fn digests_csv(record: &GateRecord) -> String {
    let mut text = String::from("node,checkpoint,applied_index,digest,keys\n");
    for row in &record.digests {
        let _ = writeln!(
            text,
            "{},{},{},{},{}",
            row.node, row.checkpoint, row.applied_index, row.digest, row.keys
        );
    }
    text
}

/// README.txt: what each file proves.
pub fn readme_text(record: &GateRecord, log_notes: &[String]) -> String {
    let mut text = format!(
        "raftkv quality-gate evidence: {}, started {}.\n\n",
        record.mode.describe(),
        format_utc_ms(record.started_at_ms)
    );
    text.push_str(
        "CHECKLIST.txt   The eight gate items, one `N. <item>: PASS|FAIL` line each (paste\n\
        \x20               these), then per item the measured figure (or why it failed) and\n\
        \x20               the file and line in this folder that shows it.\n\
        REPORT.md       One page: architecture, this run's numbers, next steps. Proves\n\
        \x20               item 8.\n\
        timeline.jsonl  Every step with its UTC timestamp, in order: what was written,\n\
        \x20               killed, restarted and read back, and every verdict. Proves the\n\
        \x20               sequence of items 2-6 and the durations in the report.\n\
        digests.csv     Each node's applied index, state digest and key count at the\n\
        \x20               checkpoints after items 2, 5 and 6. Equal digests at an equal\n\
        \x20               applied index prove item 7.\n\
        DEMO.md         The plan the run followed (same text as docs/DEMO.md). Proves item 1.\n\
        node-<id>.log   Each node's JSON event log for this run. The leader_lost /\n\
        \x20               election_timeout lines prove item 3, the became_leader line\n\
        \x20               item 4; the recovery line shows the restarted node's state.\n",
    );
    if !log_notes.is_empty() {
        text.push_str("\nNode logs:\n");
        for note in log_notes {
            let _ = writeln!(text, "- {note}");
        }
    }
    text
}

// ----- writing --------------------------------------------------------------

/// One bundle folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    pub dir: PathBuf,
}

impl Bundle {
    /// Creates `<out_dir>/<UTC timestamp>/` (with `-2`, `-3`, ... when taken).
    pub fn create(out_dir: &Path, started_at_ms: u64) -> Result<Bundle, String> {
        std::fs::create_dir_all(out_dir)
            .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
        let name = bundle_dir_name(started_at_ms);
        for attempt in 1..=BUNDLE_NAME_ATTEMPTS_MAX {
            let dir = if attempt == 1 {
                out_dir.join(&name)
            } else {
                out_dir.join(format!("{name}-{attempt}"))
            };
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(Bundle { dir }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
            }
        }
        Err(format!(
            "cannot create a bundle folder in {}: {BUNDLE_NAME_ATTEMPTS_MAX} folders named {name}* exist",
            out_dir.display()
        ))
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn write(&self, file: &str, contents: &[u8]) -> Result<(), String> {
        let path = self.path(file);
        std::fs::write(&path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// DEMO.md.
    pub fn write_plan(&self) -> Result<(), String> {
        self.write("DEMO.md", plan::plan_text().as_bytes())
    }

    /// REPORT.md.
    pub fn write_report(&self, record: &GateRecord) -> Result<(), String> {
        self.write("REPORT.md", report_markdown(record).as_bytes())
    }

    /// Copies this run's part of each node's log; returns a note per node.
    fn copy_node_logs(&self, record: &GateRecord) -> Vec<String> {
        let mut notes = Vec::new();
        for node in &record.nodes {
            let name = format!("node-{}.log", node.id);
            let Some(source) = &node.event_log else {
                notes.push(format!(
                    "{name}: not copied (node {} is not local)",
                    node.id
                ));
                continue;
            };
            let copied = read_log_portion(source, node.log_start_offset_bytes)
                .and_then(|bytes| self.write(&name, &bytes).map(|()| bytes.len()));
            notes.push(match copied {
                Ok(bytes) => format!(
                    "{name}: {bytes} bytes of {} from byte {}",
                    source.display(),
                    node.log_start_offset_bytes
                ),
                Err(e) => format!("{name}: not copied: {e}"),
            });
        }
        notes
    }

    /// Everything except DEMO.md and REPORT.md: CHECKLIST.txt, timeline.jsonl,
    /// digests.csv, node logs, README.txt. Tries every file; returns the first error.
    pub fn write_rest(&self, record: &GateRecord) -> Result<(), String> {
        let log_notes = self.copy_node_logs(record);
        let results = [
            self.write("CHECKLIST.txt", checklist_text(record).as_bytes()),
            self.write("timeline.jsonl", timeline_jsonl(record).as_bytes()),
            self.write("digests.csv", digests_csv(record).as_bytes()),
            self.write("README.txt", readme_text(record, &log_notes).as_bytes()),
        ];
        results.into_iter().collect()
    }
}

/// The `e` key: writes a complete bundle for whatever `record` holds so far
/// (items without a verdict are FAIL, "not run") and returns its folder.
pub fn export_evidence(record: &GateRecord, out_dir: &Path) -> Result<PathBuf, String> {
    let bundle = Bundle::create(out_dir, clock::now_ms())?;
    let results = [
        bundle.write_plan(),
        bundle.write_report(record),
        bundle.write_rest(record),
    ];
    results.into_iter().collect::<Result<(), String>>()?;
    Ok(bundle.dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate_record::{
        BenchResult, CatchUp, Detection, DigestRow, Election, GateNode, ItemResult, Measurements,
        StepKind, TimelineEntry,
    };
    use raftkv_node::log_events;

    fn node(id: u64) -> GateNode {
        GateNode {
            id,
            client_addr: format!("127.0.0.1:{}", 7000 + id),
            peer_addr: Some(format!("127.0.0.1:{}", 7100 + id)),
            event_log: None,
            output_log: None,
            log_start_offset_bytes: 0,
        }
    }

    fn passed_record() -> GateRecord {
        let mut record = GateRecord::new(
            RunMode::Demo,
            vec![node(1), node(2), node(3)],
            1_714_557_600_000,
        );
        for n in 1..=ITEM_COUNT {
            record.set_item(
                n,
                ItemResult::pass(format!("figure {n}"), format!("where {n}")),
            );
        }
        record.measurements = Measurements {
            first_writes_ms: Some(210),
            detections: vec![Detection {
                node: 2,
                after_kill_ms: 4,
                event: log_events::LEADER_LOST.into(),
                silence_ms: Some(38),
                reason: "connection reset".into(),
                log_line: 14,
            }],
            election: Some(Election {
                node: 3,
                term: 3,
                old_leader: 1,
                old_term: 2,
                after_kill_ms: 287,
                confirmed_after_kill_ms: 300,
                log_line: Some(20),
            }),
            second_writes_ms: Some(190),
            catch_up: Some(CatchUp {
                node: 1,
                ms: 412,
                applied_index: 108,
            }),
            bench: Some(BenchResult {
                via_node: 3,
                sets: 2000,
                clients: 16,
                failed: 0,
                elapsed_ms: 586,
                ops_per_sec: 3413,
                latency_us_p50: 3_120,
                latency_us_p99: 12_050,
                latency_us_max: 20_100,
            }),
            gate_wall_ms: Some(14_200),
        };
        record
    }

    #[test]
    fn checklist_lines_have_the_exact_paste_form() {
        let text = checklist_text(&passed_record());
        let lines: Vec<&str> = text.lines().take(ITEM_COUNT).collect();
        assert_eq!(
            lines,
            vec![
                "1. Demo plan written: PASS",
                "2. Writes to leader work: PASS",
                "3. Leader kill triggers detection: PASS",
                "4. New leader elected: PASS",
                "5. Writes to new leader work: PASS",
                "6. All data verified on all nodes: PASS",
                "7. State hashes match at every step: PASS",
                "8. Month 3 report written: PASS",
            ]
        );
        assert!(text.contains("\n6. figure 6 [where 6]\n"), "{text}");
    }

    #[test]
    fn items_without_a_verdict_are_fail_not_run() {
        let mut record = GateRecord::new(RunMode::ExportOnly, vec![node(1)], 0);
        record.set_item(1, ItemResult::pass("plan printed", "DEMO.md"));
        let text = checklist_text(&record);
        assert!(text.starts_with("1. Demo plan written: PASS\n2. Writes to leader work: FAIL\n"));
        assert!(text.contains("\n8. not run [timeline.jsonl]\n"), "{text}");
        assert!(!record.all_passed());
        assert_eq!(record.passed_count(), 1);
        // Out-of-range item numbers are FAIL, never a panic.
        assert_eq!(record.item(0).verdict, Verdict::Fail);
        assert_eq!(record.item(9).verdict, Verdict::Fail);
        record.set_item(9, ItemResult::pass("x", "y"));
    }

    #[test]
    fn report_shows_this_runs_numbers_and_the_architecture() {
        let report = report_markdown(&passed_record());
        for expected in [
            "**8/8 PASS**",
            "3413 SET/s (2,000 SETs, 16 concurrent clients, through leader node 3, 0 failed)",
            "p50 3.1 ms, p99 12.0 ms, max 20.1 ms",
            "| Detection, node 2 | 4 ms after the kill: leader_lost (connection reset), silence_ms=38 | node-2.log line 14 |",
            "node 3 leader in term 3 (was node 1, term 2) 287 ms after the kill",
            "node 1 reached applied index 108 in 412 ms",
            "| Gate wall time | 14.2 s |",
            "node 1 127.0.0.1:7001",
            "peer 127.0.0.1:7103",
            "Ready --1 persist",
            "## Next steps",
            "`raftkv chaos` checks linearizability",
        ] {
            assert!(report.contains(expected), "REPORT.md lacks '{expected}':\n{report}");
        }
        assert!(!report.contains("Fix item"), "{report}");
        // One page: it fits on a screen or two of text.
        assert!(report.lines().count() < 80, "{report}");
    }

    #[test]
    fn report_of_a_failed_run_says_what_to_fix() {
        let mut record = passed_record();
        record.set_item(
            6,
            ItemResult::fail("node 1 did not start: corrupt WAL", "node-1.log"),
        );
        record.measurements = Measurements::default();
        let report = report_markdown(&record);
        assert!(report.contains("**7/8 PASS**"), "{report}");
        assert!(report.contains(
            "| 6 | All data verified on all nodes | FAIL | node 1 did not start: corrupt WAL |"
        ));
        assert!(report.contains(
            "- Fix item 6 (All data verified on all nodes): node 1 did not start: corrupt WAL."
        ));
        assert!(
            report.contains("| Write throughput | not measured"),
            "{report}"
        );
    }

    #[test]
    fn digests_csv_and_timeline_jsonl_are_machine_readable() {
        let mut record = passed_record();
        record.digests.push(DigestRow {
            node: 1,
            checkpoint: "after-2".into(),
            applied_index: 53,
            digest: "ab".repeat(32),
            keys: 50,
        });
        assert_eq!(
            digests_csv(&record),
            format!(
                "node,checkpoint,applied_index,digest,keys\n1,after-2,53,{},50\n",
                "ab".repeat(32)
            )
        );
        record.push(TimelineEntry {
            at_ms: record.started_at_ms + 1_234,
            step: "2.3".into(),
            kind: StepKind::Step,
            text: "SET \"key:0001\"".into(),
        });
        let line = timeline_jsonl(&record);
        let value: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(value["at"], "2024-05-01T10:00:01.234Z");
        assert_eq!(value["since_start_ms"], 1_234);
        assert_eq!(value["step"], "2.3");
        assert_eq!(value["kind"], "step");
        assert_eq!(value["text"], "SET \"key:0001\"");
        assert_eq!(
            record.timeline[0].progress_line(),
            "[2.3] 10:00:01.234 SET \"key:0001\""
        );
    }

    #[test]
    fn the_timeline_is_bounded() {
        let mut record = GateRecord::new(RunMode::Demo, Vec::new(), 0);
        let entry = TimelineEntry {
            at_ms: 0,
            step: "2".into(),
            kind: StepKind::Info,
            text: String::new(),
        };
        for _ in 0..TIMELINE_ENTRIES_MAX {
            assert!(record.push(entry.clone()));
        }
        assert!(!record.push(entry));
        assert_eq!(record.timeline_dropped, 1);
        assert!(timeline_jsonl(&record).contains("1 later entries were not kept"));
    }

    #[test]
    fn utc_formats_round_trip_through_the_parser() {
        for ms in [
            0,
            951_782_400_000,
            1_709_164_800_000,
            1_714_557_600_123,
            4_102_444_799_999,
        ] {
            assert_eq!(
                clock::parse_rfc3339_ms(&format_utc_ms(ms)),
                Some(ms),
                "{ms}"
            );
        }
        assert_eq!(format_utc_ms(1_714_557_600_123), "2024-05-01T10:00:00.123Z");
        assert_eq!(bundle_dir_name(1_714_557_600_123), "2024-05-01T10-00-00Z");
        assert_eq!(format_ms(412), "412 ms");
        assert_eq!(format_ms(14_200), "14.2 s");
        assert_eq!(format_us_as_ms(3_120), "3.1 ms");
    }

    #[test]
    fn log_portions_start_at_a_line_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node-1.log");
        std::fs::write(&path, "old line\nnew line\n").unwrap();
        assert_eq!(read_log_portion(&path, 9).unwrap(), b"new line\n");
        // An offset inside a line skips to the next whole line.
        assert_eq!(read_log_portion(&path, 4).unwrap(), b"new line\n");
        assert_eq!(read_log_portion(&path, 0).unwrap(), b"old line\nnew line\n");
        // A log shorter than the offset was replaced: all of it is new.
        assert_eq!(
            read_log_portion(&path, 500).unwrap(),
            b"old line\nnew line\n"
        );
        assert!(read_log_portion(&dir.path().join("absent.log"), 0)
            .unwrap_err()
            .contains("cannot open"));
        assert_eq!(log_end_offset(&path), 18);
        assert_eq!(log_end_offset(&dir.path().join("absent.log")), 0);
    }

    #[test]
    fn export_writes_every_file_even_with_nothing_run() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("node-1.log");
        std::fs::write(&log, "{\"fields\":{\"event\":\"started\"}}\n").unwrap();
        let mut first = node(1);
        first.event_log = Some(log);
        let record = GateRecord::new(RunMode::ExportOnly, vec![first, node(2)], clock::now_ms());
        let out = dir.path().join("evidence");
        let bundle = export_evidence(&record, &out).unwrap();
        let second = export_evidence(&record, &out).unwrap();
        assert_ne!(bundle, second, "two exports in one second get two folders");
        for file in [
            "CHECKLIST.txt",
            "REPORT.md",
            "timeline.jsonl",
            "digests.csv",
            "DEMO.md",
            "README.txt",
            "node-1.log",
        ] {
            assert!(bundle.join(file).exists(), "{file} missing");
        }
        let checklist = std::fs::read_to_string(bundle.join("CHECKLIST.txt")).unwrap();
        assert_eq!(
            checklist.matches(": FAIL\n").count(),
            ITEM_COUNT,
            "{checklist}"
        );
        assert_eq!(
            std::fs::read_to_string(bundle.join("DEMO.md")).unwrap(),
            plan::plan_text()
        );
        let readme = std::fs::read_to_string(bundle.join("README.txt")).unwrap();
        assert!(
            readme.contains("node-2.log: not copied (node 2 is not local)"),
            "{readme}"
        );
    }
}
