//! The record of one quality-gate run: every item's verdict, the timeline,
//! the digests at each checkpoint and the measurements. The scenario fills a
//! [`GateRecord`] as it runs and sends copies to the dashboard; the evidence
//! bundle is written from it. It depends on neither of them.

use std::path::{Path, PathBuf};

use crate::clock;
use crate::cluster::ClusterLayout;
use crate::plan::ITEM_COUNT;

/// A run records at most this many timeline entries (a normal run has ~60).
pub const TIMELINE_ENTRIES_MAX: usize = 2_000;

/// PASS or FAIL, nothing in between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
}

impl Verdict {
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
        }
    }
}

/// One item's verdict and what it rests on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemResult {
    pub verdict: Verdict,
    /// The measured figure on PASS; on FAIL, why.
    pub figure: String,
    /// Where in the bundle the figure is shown (file, line or step).
    pub evidence: String,
}

impl ItemResult {
    pub fn pass(figure: impl Into<String>, evidence: impl Into<String>) -> ItemResult {
        ItemResult {
            verdict: Verdict::Pass,
            figure: figure.into(),
            evidence: evidence.into(),
        }
    }

    pub fn fail(reason: impl Into<String>, evidence: impl Into<String>) -> ItemResult {
        ItemResult {
            verdict: Verdict::Fail,
            figure: reason.into(),
            evidence: evidence.into(),
        }
    }

    /// What an item that never got a verdict is written as.
    pub fn not_run() -> ItemResult {
        ItemResult::fail("not run", "timeline.jsonl")
    }
}

/// What kind of timeline entry this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepKind {
    /// A step begins (it is "in progress" until the next entry).
    Step,
    /// Something measured or observed within a step.
    Info,
    /// Something went wrong within a step.
    Warn,
    /// An item's verdict.
    Pass,
    Fail,
}

impl StepKind {
    pub fn name(self) -> &'static str {
        match self {
            StepKind::Step => "step",
            StepKind::Info => "info",
            StepKind::Warn => "warn",
            StepKind::Pass => "pass",
            StepKind::Fail => "fail",
        }
    }
}

/// One line of the timeline (and of `raftkv demo`'s live output).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineEntry {
    pub at_ms: u64,
    /// `2.3`: item 2, third step; an item's verdict uses the item number alone.
    pub step: String,
    pub kind: StepKind,
    pub text: String,
}

impl TimelineEntry {
    /// `[2.3] 10:00:01.234 SET key:0001..key:0050 ...`
    pub fn progress_line(&self) -> String {
        let time = clock::format_time_of_day(self.at_ms);
        match self.kind {
            StepKind::Pass | StepKind::Fail => {
                format!(
                    "[{}] {time} {} {}",
                    self.step,
                    self.kind.name().to_uppercase(),
                    self.text
                )
            }
            StepKind::Warn => format!("[{}] {time} warning: {}", self.step, self.text),
            StepKind::Step | StepKind::Info => format!("[{}] {time} {}", self.step, self.text),
        }
    }
}

/// One node's state at one checkpoint (a row of digests.csv).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestRow {
    pub node: u64,
    /// `after-2`, `after-5` or `after-6`.
    pub checkpoint: String,
    pub applied_index: u64,
    pub digest: String,
    pub keys: u64,
}

/// One follower's detection of the leader's death, from its own log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detection {
    pub node: u64,
    /// From the kill to the timestamp of the detection line.
    pub after_kill_ms: u64,
    /// `leader_lost` or `election_timeout`.
    pub event: String,
    /// The line's `silence_ms` (time since the follower last heard the leader).
    pub silence_ms: Option<u64>,
    /// The line's `reason`: "election timeout" or the connection error.
    pub reason: String,
    /// 1-based line number in the bundle's node-<id>.log.
    pub log_line: usize,
}

/// The election that followed the kill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Election {
    pub node: u64,
    pub term: u64,
    pub old_leader: u64,
    pub old_term: u64,
    /// From the kill to the new leader's `became_leader` line (or, without
    /// that line, to the RAFT.STATUS poll that first saw it).
    pub after_kill_ms: u64,
    /// From the kill to the poll that saw exactly one leader everyone follows.
    pub confirmed_after_kill_ms: u64,
    pub log_line: Option<usize>,
}

/// The restarted node catching up with the leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatchUp {
    pub node: u64,
    /// From the restart to the poll that saw its applied index at the target.
    pub ms: u64,
    pub applied_index: u64,
}

/// The built-in write benchmark.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BenchResult {
    pub via_node: u64,
    pub sets: u64,
    pub clients: u64,
    pub failed: u64,
    pub elapsed_ms: u64,
    /// Acknowledged SETs per second, rounded.
    pub ops_per_sec: u64,
    pub latency_us_p50: u64,
    pub latency_us_p99: u64,
    pub latency_us_max: u64,
}

/// The numbers REPORT.md shows; `None` until measured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Measurements {
    pub first_writes_ms: Option<u64>,
    pub detections: Vec<Detection>,
    pub election: Option<Election>,
    pub second_writes_ms: Option<u64>,
    pub catch_up: Option<CatchUp>,
    pub bench: Option<BenchResult>,
    pub gate_wall_ms: Option<u64>,
}

/// How the gate reached the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunMode {
    /// `raftkv demo`: a fresh cluster it started and stops.
    Demo,
    /// The dashboard's `d`: the dashboard's cluster, left running.
    Dashboard,
    /// `raftkv demo --attach`: a cluster it may not kill.
    Attached,
    /// The dashboard's `e` without a gate run.
    ExportOnly,
}

impl RunMode {
    pub fn describe(self) -> &'static str {
        match self {
            RunMode::Demo => "raftkv demo on a fresh local cluster",
            RunMode::Dashboard => "the dashboard's gate (d) on its running cluster",
            RunMode::Attached => "raftkv demo --attach (a cluster it may not kill)",
            RunMode::ExportOnly => "the dashboard's evidence export (e), no gate run",
        }
    }
}

/// One node as the gate and the bundle know it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GateNode {
    pub id: u64,
    pub client_addr: String,
    pub peer_addr: Option<String>,
    /// `node-<id>.log` (JSON events), when the node is local.
    pub event_log: Option<PathBuf>,
    /// `node-<id>.out` (captured stdout and stderr), when the node is local.
    pub output_log: Option<PathBuf>,
    /// Where this run's part of `event_log` begins.
    pub log_start_offset_bytes: u64,
}

/// The nodes of a local cluster, their logs read from the start.
pub fn nodes_from_layout(layout: &ClusterLayout) -> Vec<GateNode> {
    layout
        .ids()
        .map(|id| GateNode {
            id,
            client_addr: layout.client_addr(id).to_string(),
            peer_addr: Some(layout.peer_addr(id).to_string()),
            event_log: Some(crate::cluster::node_log_path(&layout.log_dir, id)),
            output_log: Some(crate::cluster::node_output_path(&layout.log_dir, id)),
            log_start_offset_bytes: 0,
        })
        .collect()
}

/// Nodes known only by address (`--attach`); their logs are read from
/// `log_dir` when they are there (a cluster on this machine).
pub fn nodes_from_addrs(nodes: Vec<(u64, String)>, log_dir: Option<&Path>) -> Vec<GateNode> {
    let local = |path: PathBuf| path.exists().then_some(path);
    nodes
        .into_iter()
        .map(|(id, client_addr)| GateNode {
            id,
            client_addr,
            peer_addr: None,
            event_log: log_dir.and_then(|dir| local(crate::cluster::node_log_path(dir, id))),
            output_log: log_dir.and_then(|dir| local(crate::cluster::node_output_path(dir, id))),
            log_start_offset_bytes: 0,
        })
        .collect()
}

/// Everything one gate run established, in the order it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GateRecord {
    pub mode: RunMode,
    pub started_at_ms: u64,
    pub finished_at_ms: Option<u64>,
    pub nodes: Vec<GateNode>,
    pub items: [Option<ItemResult>; ITEM_COUNT],
    pub timeline: Vec<TimelineEntry>,
    /// Entries not kept because the timeline was full.
    pub timeline_dropped: u64,
    pub digests: Vec<DigestRow>,
    pub measurements: Measurements,
    /// Facts about the run worth a line in the report (sabotage, attach, ...).
    pub notes: Vec<String>,
}

impl GateRecord {
    pub fn new(mode: RunMode, nodes: Vec<GateNode>, started_at_ms: u64) -> GateRecord {
        GateRecord {
            mode,
            started_at_ms,
            finished_at_ms: None,
            nodes,
            items: Default::default(),
            timeline: Vec::new(),
            timeline_dropped: 0,
            digests: Vec::new(),
            measurements: Measurements::default(),
            notes: Vec::new(),
        }
    }

    /// Item `number` (1-8); an item without a verdict is FAIL, "not run".
    pub fn item(&self, number: usize) -> ItemResult {
        self.items
            .get(number.wrapping_sub(1))
            .cloned()
            .flatten()
            .unwrap_or_else(ItemResult::not_run)
    }

    pub fn set_item(&mut self, number: usize, result: ItemResult) {
        if let Some(slot) = self.items.get_mut(number.wrapping_sub(1)) {
            *slot = Some(result);
        }
    }

    pub fn all_passed(&self) -> bool {
        (1..=ITEM_COUNT).all(|n| self.item(n).verdict == Verdict::Pass)
    }

    pub fn passed_count(&self) -> usize {
        (1..=ITEM_COUNT)
            .filter(|n| self.item(*n).verdict == Verdict::Pass)
            .count()
    }

    /// Appends an entry unless the timeline is full.
    pub fn push(&mut self, entry: TimelineEntry) -> bool {
        if self.timeline.len() >= TIMELINE_ENTRIES_MAX {
            self.timeline_dropped += 1;
            return false;
        }
        self.timeline.push(entry);
        true
    }

    /// The step in progress: the latest entry.
    pub fn current_step(&self) -> Option<&TimelineEntry> {
        self.timeline.last()
    }
}
