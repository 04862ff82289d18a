//! Dashboard state, the actions that change it, and the work it asks the
//! runtime to do (`Effect`). No terminal I/O and no clock: time comes in with
//! every `update`, so the whole dashboard is unit-testable.

use std::collections::{BTreeSet, VecDeque};
use std::ops::Range;
use std::path::PathBuf;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::clock::format_duration_ms;
use crate::evidence::{GateRecord, StepKind, Verdict};
use crate::integrity::{Alarm, IntegrityWatch};
use crate::plan::ITEM_COUNT;
use crate::poll::{LogLine, LogSource, StatusReport};
use crate::scenario::{GateOutcome, GateProgress};
use crate::status::{short_incarnation, NodeStatus};
use crate::supervisor::{ExitKind, ProcessEvent, ProcessReport};

/// The event timeline keeps this many entries (older ones scroll away).
pub const TIMELINE_EVENTS_MAX: usize = 500;
/// Log lines kept per node for the log pane.
pub const LOG_TAIL_LINES_MAX: usize = 200;
/// Seconds of write throughput history kept for the sparkline.
pub const WRITE_RATE_SECONDS_MAX: usize = 300;
/// Bulk writes that may wait behind the running one.
pub const BULK_WRITES_QUEUED_MAX: usize = 8;
/// The sizes `+`/`-` step through.
pub const BULK_WRITE_COUNTS: [u64; 7] = [10, 50, 100, 500, 1_000, 5_000, 10_000];
pub const BULK_WRITE_COUNT_DEFAULT: u64 = 50;
/// A status older than this is not trusted (the node counts as not answering).
pub const STATUS_STALE_MS: u64 = 1_000;
/// How long the message line shows the last message.
pub const FLASH_VISIBLE_MS: u64 = 10_000;
/// Quitting waits this long for nodes to stop before leaving anyway
/// (the children then die with the dashboard).
pub const QUIT_DEADLINE_MS: u64 = 15_000;
/// Lines of a node's stdout/stderr copied into the timeline per start; the rest
/// stay in the log pane.
pub const OUTPUT_LINES_IN_TIMELINE_MAX: u32 = 5;
/// Verify reports name at most this many bad keys per node.
pub const VERIFY_EXAMPLES_MAX: usize = 3;
/// The gate panel stays on screen this long after the gate has finished.
pub const GATE_PANEL_AFTER_MS: u64 = 60_000;
/// Membership events (per event, peer and incarnation) said once each; past
/// this many, later ones are no longer said at all (a wipe loop gone wild).
pub const MEMBERSHIP_EVENTS_REMEMBERED_MAX: usize = 1_024;

const _: () = assert!(BULK_WRITE_COUNTS[1] == BULK_WRITE_COUNT_DEFAULT);

/// Whether the dashboard owns the node processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Started the nodes itself: every key works.
    Supervised,
    /// `--attach`: shows a cluster someone else runs; kill/restart are refused.
    Attached,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    /// Row id: the node id for a supervised cluster, the position for `--attach`.
    pub id: u64,
    pub client_addr: String,
}

/// What the dashboard knows about a node's process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcessState {
    NotStarted,
    /// Spawn requested, pid not known yet.
    Starting,
    Running {
        pid: u32,
    },
    /// A signal was sent; the exit has not been seen yet.
    Stopping {
        pid: u32,
        graceful: bool,
    },
    Dead {
        exit: ExitKind,
    },
    SpawnFailed {
        error: String,
    },
    /// Not ours (`--attach`): alive as far as it answers.
    External,
}

impl ProcessState {
    pub fn is_alive(&self) -> bool {
        matches!(
            self,
            ProcessState::Running { .. } | ProcessState::Stopping { .. } | ProcessState::External
        )
    }

    pub fn pid(&self) -> Option<u32> {
        match self {
            ProcessState::Running { pid } | ProcessState::Stopping { pid, .. } => Some(*pid),
            _ => None,
        }
    }
}

/// One node's row.
#[derive(Clone, Debug)]
pub struct NodeView {
    pub config: NodeConfig,
    pub process: ProcessState,
    /// Last status that answered (kept, greyed, when the node stops answering).
    pub status: Option<NodeStatus>,
    pub status_at_ms: u64,
    /// Why the last poll failed; `None` when it answered.
    pub poll_error: Option<String>,
    /// Restart once the process has exited; `true` wipes its data dir first.
    pub restart_pending: Option<bool>,
    /// Set on restart; cleared (with a timeline entry) when the node has caught up.
    pub restarted_at_ms: Option<u64>,
    pub output_lines_shown: u32,
    pub log_tail: VecDeque<LogLine>,
    /// When this dashboard last wiped the node's data dir; cleared by the first
    /// status after it in which the node says it is a registered voter. While
    /// set, the node does not hold the committed log, whatever `status` says.
    pub wiped_at_ms: Option<u64>,
    /// The incarnation the node last reported while a registered voter: a
    /// different one registered later is a re-admission (its disk was
    /// replaced, by this dashboard or by hand).
    pub registered_incarnation: Option<String>,
}

impl NodeView {
    fn new(config: NodeConfig, process: ProcessState) -> NodeView {
        NodeView {
            config,
            process,
            status: None,
            status_at_ms: 0,
            poll_error: None,
            restart_pending: None,
            restarted_at_ms: None,
            output_lines_shown: 0,
            log_tail: VecDeque::new(),
            wiped_at_ms: None,
            registered_incarnation: None,
        }
    }

    pub fn id(&self) -> u64 {
        self.config.id
    }

    /// The status when it is current: process alive, last poll answered, recent.
    pub fn live_status(&self, now_ms: u64) -> Option<&NodeStatus> {
        let fresh = now_ms.saturating_sub(self.status_at_ms) <= STATUS_STALE_MS;
        if self.process.is_alive() && self.poll_error.is_none() && fresh {
            self.status.as_ref()
        } else {
            None
        }
    }

    pub fn is_down(&self) -> bool {
        matches!(
            self.process,
            ProcessState::Dead { .. } | ProcessState::SpawnFailed { .. } | ProcessState::NotStarted
        )
    }

    /// Between a restart request and the new process running.
    pub fn is_restarting(&self) -> bool {
        self.restart_pending.is_some() || self.process == ProcessState::Starting
    }

    /// True when the node's disk still holds the log up to `committed`, as far
    /// as the dashboard knows: not wiped (nor about to be) since it was last
    /// seen as a registered voter, and its last seen log reaches `committed`.
    /// Running, stopped and killed nodes all count: a disk outlives its process.
    pub fn holds_committed_log(&self, committed: u64) -> bool {
        self.wiped_at_ms.is_none()
            && self.restart_pending != Some(true)
            && self
                .status
                .as_ref()
                .is_some_and(|s| s.is_registered() && s.last_index >= committed)
    }

    /// The node says it is not (yet) a voter: it came back with an empty disk.
    pub fn is_non_voter(&self) -> bool {
        self.status.as_ref().is_some_and(|s| !s.is_registered())
    }
}

/// How a timeline entry is coloured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    Info,
    Good,
    Warn,
    Bad,
    /// Something the user asked for.
    Action,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineEvent {
    pub at_ms: u64,
    pub tone: Tone,
    pub text: String,
}

/// The cluster's agreement, as the header shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Convergence {
    /// An integrity alarm stands (the first one raised): committed data was
    /// lost or two nodes diverged. It never clears during the session.
    Alarm(Alarm),
    NoLeader,
    /// These running nodes do not answer, so nobody can say they agree.
    Unknown {
        silent: Vec<u64>,
    },
    /// Nodes are still applying; `lag` entries between the furthest and the last.
    Syncing {
        lag: u64,
    },
    /// Every running node answers, with the same applied index and digest.
    Converged {
        index: u64,
        digest: String,
        nodes_up: usize,
        nodes_total: usize,
    },
}

/// Sequence numbers of the keys this dashboard wrote and got acknowledged,
/// as sorted, disjoint ranges (concurrent writers fragment it a little).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AckedKeys {
    ranges: Vec<Range<u64>>,
}

impl AckedKeys {
    pub fn insert(&mut self, range: Range<u64>) {
        if range.is_empty() {
            return;
        }
        let mut merged = range;
        let mut kept = Vec::with_capacity(self.ranges.len() + 1);
        for r in self.ranges.drain(..) {
            if r.end < merged.start || merged.end < r.start {
                kept.push(r);
            } else {
                merged = merged.start.min(r.start)..merged.end.max(r.end);
            }
        }
        kept.push(merged);
        kept.sort_by_key(|r| r.start);
        self.ranges = kept;
    }

    pub fn count(&self) -> u64 {
        self.ranges.iter().map(|r| r.end - r.start).sum()
    }

    pub fn ranges(&self) -> &[Range<u64>] {
        &self.ranges
    }
}

/// Acknowledged writes per second, newest last.
#[derive(Clone, Debug, Default)]
pub struct WriteRate {
    /// The second (since the epoch) of the last bucket.
    last_second: u64,
    buckets: VecDeque<u64>,
}

impl WriteRate {
    fn advance_to(&mut self, now_ms: u64) {
        let second = now_ms / 1000;
        if self.buckets.is_empty() {
            self.last_second = second;
            self.buckets.push_back(0);
            return;
        }
        let missing = second.saturating_sub(self.last_second);
        for _ in 0..missing.min(WRITE_RATE_SECONDS_MAX as u64) {
            self.buckets.push_back(0);
        }
        self.last_second = self.last_second.max(second);
        while self.buckets.len() > WRITE_RATE_SECONDS_MAX {
            self.buckets.pop_front();
        }
    }

    fn add(&mut self, at_ms: u64, count: u64) {
        self.advance_to(at_ms);
        let age_seconds = self.last_second.saturating_sub(at_ms / 1000) as usize;
        let len = self.buckets.len();
        if age_seconds < len {
            self.buckets[len - 1 - age_seconds] += count;
        }
    }

    /// Per-second counts, oldest first (the last one is the current second).
    pub fn buckets(&self) -> &VecDeque<u64> {
        &self.buckets
    }

    /// Writes acknowledged in the last complete second.
    pub fn last_complete_second(&self) -> u64 {
        let len = self.buckets.len();
        if len >= 2 {
            self.buckets[len - 2]
        } else {
            0
        }
    }

    pub fn peak(&self) -> u64 {
        self.buckets.iter().copied().max().unwrap_or(0)
    }
}

/// The result of a bulk write job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BulkWriteResult {
    pub requested: u64,
    pub acked: u64,
    /// Not applied (refused, no leader, ...).
    pub failed: u64,
    /// Maybe applied: the leader was lost while the write was in flight.
    pub outcome_unknown: u64,
    /// Client address of the node that acknowledged the writes.
    pub via: Option<String>,
    /// That node's RAFT.STATUS read right after the last acknowledgement:
    /// the commit index the writes reached is known before "wrote N keys"
    /// is shown, even if that node is killed before the next poll (the `R`
    /// refusal counts holders of the log up to it).
    pub via_status: Option<Box<NodeStatus>>,
    pub elapsed_ms: u64,
    pub first_error: Option<String>,
}

/// What a write job reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteReport {
    /// These key sequence numbers were acknowledged.
    Acked {
        seqs: Vec<Range<u64>>,
        at_ms: u64,
    },
    BulkFinished(BulkWriteResult),
    /// The continuous load ended (switched off, or it could not go on).
    LoadStopped {
        outcome_unknown: u64,
        error: Option<String>,
    },
}

/// One node's part of a verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeVerification {
    pub id: u64,
    /// `Err` when the node could not be checked (down, unreachable, behind).
    pub result: Result<KeyCheck, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyCheck {
    pub missing: u64,
    pub wrong: u64,
    /// A few of the bad keys, for the report.
    pub examples: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyResult {
    pub keys: u64,
    pub nodes: Vec<NodeVerification>,
    pub elapsed_ms: u64,
}

/// Everything that can happen to the dashboard.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Quit,
    ToggleHelp,
    CloseHelp,
    SelectNext,
    SelectPrevious,
    /// Select the node with this row id (keys 1-9).
    Select(u64),
    KillLeader,
    KillSelected,
    StopSelected,
    RestartSelected,
    WipeAndRestartSelected,
    BulkWrite,
    BulkWriteCountUp,
    BulkWriteCountDown,
    ToggleWriteLoad,
    Verify,
    /// The quality-gate scenario (`d`).
    RunGate,
    /// The evidence bundle (`e`).
    ExportEvidence,
    /// A key with no meaning, so the user hears that it did nothing.
    UnknownKey(String),
    /// Time passes (sparkline buckets, quit deadline, message expiry).
    Tick,
    Status(StatusReport),
    Process(ProcessReport),
    NodeLog(LogLine),
    Write(WriteReport),
    VerifyFinished(VerifyResult),
    /// The running gate's record after its latest step.
    GateProgress(Box<GateProgress>),
    /// The gate has ended and written its bundle.
    GateFinished(Box<GateOutcome>),
    /// `e` has written a bundle (its folder), or why not.
    EvidenceExported(Result<PathBuf, String>),
}

/// Work the runtime does for the dashboard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// kill -9.
    Kill {
        id: u64,
    },
    /// SIGTERM, SIGKILL after the grace period.
    Stop {
        id: u64,
    },
    Start {
        id: u64,
        wipe_data: bool,
    },
    BulkWrite {
        count: u64,
    },
    SetWriteLoad {
        on: bool,
    },
    Verify {
        nodes: Vec<(u64, String)>,
        ranges: Vec<Range<u64>>,
    },
    /// Graceful stop of every running node (quitting).
    StopAll,
    /// Run the quality gate (`scenario::run_gate`) against this cluster; it
    /// starts from what the dashboard has seen committed, alarms included.
    RunGate {
        integrity: Box<IntegrityWatch>,
    },
    /// Cancel the running gate; the cluster stays as it is.
    AbortGate,
    /// Write an evidence bundle from the gate's record so far (`None`: no
    /// gate has run; every item is then "not run").
    ExportEvidence {
        gate: Option<Box<GateRecord>>,
    },
}

/// The quality gate as the dashboard shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GateView {
    /// The latest record the gate sent (`None` until its first step).
    pub record: Option<GateRecord>,
    pub bundle_dir: Option<PathBuf>,
    pub running: bool,
    /// Set when the gate has ended: its bundle folder, or why it is incomplete.
    pub bundle: Option<Result<PathBuf, String>>,
    pub finished_at_ms: Option<u64>,
    /// Gate timeline entries already copied into the dashboard's timeline.
    pub entries_shown: usize,
}

impl GateView {
    /// Item `n`'s verdict so far (`None`: not reached yet).
    pub fn verdict(&self, n: usize) -> Option<Verdict> {
        let record = self.record.as_ref()?;
        record
            .items
            .get(n.checked_sub(1)?)?
            .as_ref()
            .map(|i| i.verdict)
    }
}

/// Maps a key press to an action (`None` for releases and repeats of nothing).
pub fn action_for_key(key: KeyEvent) -> Option<Action> {
    if key.kind != KeyEventKind::Press {
        return None;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Some(Action::Quit);
    }
    let action = match key.code {
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Char('?') => Action::ToggleHelp,
        KeyCode::Esc => Action::CloseHelp,
        KeyCode::Left => Action::SelectPrevious,
        KeyCode::Right | KeyCode::Tab => Action::SelectNext,
        KeyCode::Char(digit @ '1'..='9') => Action::Select(u64::from(digit as u8 - b'0')),
        KeyCode::Char('k') => Action::KillLeader,
        KeyCode::Char('x') => Action::KillSelected,
        KeyCode::Char('s') => Action::StopSelected,
        KeyCode::Char('r') => Action::RestartSelected,
        KeyCode::Char('R') => Action::WipeAndRestartSelected,
        KeyCode::Char('w') => Action::BulkWrite,
        KeyCode::Char('W') => Action::ToggleWriteLoad,
        KeyCode::Char('+') | KeyCode::Char('=') => Action::BulkWriteCountUp,
        KeyCode::Char('-') => Action::BulkWriteCountDown,
        KeyCode::Char('v') => Action::Verify,
        KeyCode::Char('d') => Action::RunGate,
        KeyCode::Char('e') => Action::ExportEvidence,
        KeyCode::Char(other) => Action::UnknownKey(other.to_string()),
        other => Action::UnknownKey(format!("{other}")),
    };
    Some(action)
}

/// `1.2 MB`, `820 KB`, `96 B`.
fn format_bytes(bytes: u64) -> String {
    match bytes {
        0..=999 => format!("{bytes} B"),
        1_000..=999_999 => format!("{} KB", bytes / 1_000),
        _ => format!("{}.{} MB", bytes / 1_000_000, bytes / 100_000 % 10),
    }
}

/// Timeline text for snapshot and recovery events, from whichever fields the
/// node logged.
fn describe_storage_event(id: u64, event: &str, line: &LogLine) -> (Tone, String) {
    let index = line.field("index").map(|i| format!("index {i}"));
    match event {
        "snapshot_sent" => {
            let to = line
                .field("to")
                .map(|to| format!(" to node {to}"))
                .unwrap_or_default();
            let details: Vec<String> = index
                .into_iter()
                .chain(line.field_u64("bytes").map(format_bytes))
                .collect();
            (
                Tone::Info,
                format!("node {id} sent a snapshot{to} ({})", details.join(", ")),
            )
        }
        "snapshot_installed" => {
            let at = index.map(|i| format!(" at {i}")).unwrap_or_default();
            (Tone::Good, format!("node {id} installed a snapshot{at}"))
        }
        _ => {
            let mut parts = Vec::new();
            if let Some(last) = line.field("last_index") {
                parts.push(format!("log up to index {last}"));
            }
            if let Some(snapshot) = line.field("snapshot_index") {
                parts.push(format!("snapshot at {snapshot}"));
            }
            if let Some(term) = line.field("term") {
                parts.push(format!("term {term}"));
            }
            if let Some(torn) = line.field_u64("torn_tail_bytes").filter(|b| *b > 0) {
                parts.push(format!("cut a torn tail of {torn} bytes"));
            }
            let details = if parts.is_empty() {
                String::new()
            } else {
                format!(": {}", parts.join(", "))
            };
            (Tone::Info, format!("node {id} recovered{details}"))
        }
    }
}

/// Timeline text for the events of a node that lost its disk and is
/// re-admitted; `None` when the line does not name the peer.
fn describe_membership_event(event: &str, line: &LogLine) -> Option<(Tone, String)> {
    let peer = line.field_u64("peer")?;
    let incarnation = |name: &str| {
        line.field(name)
            .map_or_else(|| "?".to_string(), short_incarnation)
    };
    let index = |name: &str| line.field(name).unwrap_or("?").to_string();
    let said = match event {
        "peer_incarnation_changed" => (
            Tone::Warn,
            format!(
                "node {peer} came back with an empty disk (incarnation {} was {}): not counted \
                 as a voter until re-admitted",
                incarnation("incarnation"),
                incarnation("registered_incarnation")
            ),
        ),
        "readmission_proposed" => (
            Tone::Info,
            format!(
                "node {peer} caught up to index {}; re-admission proposed at index {}",
                index("match_index"),
                index("index")
            ),
        ),
        _ => (
            Tone::Good,
            format!(
                "node {peer} re-admitted as voter (incarnation {}) at index {}",
                incarnation("incarnation"),
                index("index")
            ),
        ),
    };
    Some(said)
}

/// Joins node ids for a sentence: `node 3`, `nodes 2 and 3`, `nodes 1, 2 and 3`.
pub fn name_nodes(ids: &[u64]) -> String {
    let listed: Vec<String> = ids.iter().map(u64::to_string).collect();
    match listed.as_slice() {
        [] => "no node".to_string(),
        [one] => format!("node {one}"),
        [init @ .., last] => format!("nodes {} and {last}", init.join(", ")),
    }
}

/// Why keys that would disturb the gate do nothing while it runs.
pub const GATE_RUNNING_REFUSAL: &str =
    "the quality gate is running: kill, stop, restart, wipe and writes wait until it ends (Esc aborts it)";

/// Why a process-control key does nothing in `--attach` mode.
pub const ATTACHED_REFUSAL: &str =
    "attached to a cluster this dashboard did not start: it cannot kill or restart those processes";

/// The message line: the result of the last key, or why it was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flash {
    pub at_ms: u64,
    pub tone: Tone,
    pub text: String,
}

/// A leader kill whose consequences (detection, new leader) are being timed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderKill {
    pub node: u64,
    pub at_ms: u64,
    /// Nodes whose first detection event has been timed already.
    pub detected_by: Vec<u64>,
}

/// The dashboard.
#[derive(Clone, Debug)]
pub struct App {
    pub mode: Mode,
    pub started_at_ms: u64,
    pub now_ms: u64,
    pub nodes: Vec<NodeView>,
    /// Index into `nodes`.
    pub selected: usize,
    pub help_open: bool,
    pub timeline: VecDeque<TimelineEvent>,
    pub flash: Option<Flash>,
    pub bulk_write_count: u64,
    /// Size of the bulk write running now.
    pub bulk_in_flight: Option<u64>,
    pub bulk_queue: VecDeque<u64>,
    pub load_on: bool,
    pub acked: AckedKeys,
    pub outcome_unknown_writes: u64,
    pub verify_running: bool,
    pub write_rate: WriteRate,
    /// Highest term whose leader has been announced in the timeline.
    pub announced_term: u64,
    pub elections_seen: u64,
    pub leader_kill: Option<LeaderKill>,
    /// The quality gate, from `d` until well after it ends.
    pub gate: Option<GateView>,
    /// What the cluster has been seen to commit and apply, and the alarms.
    pub integrity: IntegrityWatch,
    /// (event, peer, incarnation) of membership events already in the
    /// timeline: every node logs them, the timeline says them once.
    membership_events_shown: BTreeSet<(String, u64, String)>,
    last_convergence: Option<Convergence>,
    /// (index, nodes up) of the last CONVERGED entry in the timeline.
    announced_converged: Option<(u64, usize)>,
    /// Since when quitting waits for the nodes to stop.
    pub quitting_since_ms: Option<u64>,
    pub should_exit: bool,
}

impl App {
    /// `notes` go to the timeline first (data reused or wiped, ...).
    pub fn new(mode: Mode, nodes: Vec<NodeConfig>, now_ms: u64, notes: Vec<String>) -> App {
        let initial = match mode {
            Mode::Supervised => ProcessState::NotStarted,
            Mode::Attached => ProcessState::External,
        };
        let mut app = App {
            mode,
            started_at_ms: now_ms,
            now_ms,
            nodes: nodes
                .into_iter()
                .map(|config| NodeView::new(config, initial.clone()))
                .collect(),
            selected: 0,
            help_open: false,
            timeline: VecDeque::new(),
            flash: None,
            bulk_write_count: BULK_WRITE_COUNT_DEFAULT,
            bulk_in_flight: None,
            bulk_queue: VecDeque::new(),
            load_on: false,
            acked: AckedKeys::default(),
            outcome_unknown_writes: 0,
            verify_running: false,
            write_rate: WriteRate::default(),
            announced_term: 0,
            elections_seen: 0,
            leader_kill: None,
            gate: None,
            integrity: IntegrityWatch::new(crate::poll::STATUS_DEADLINE_MS),
            membership_events_shown: BTreeSet::new(),
            last_convergence: None,
            announced_converged: None,
            quitting_since_ms: None,
            should_exit: false,
        };
        app.write_rate.advance_to(now_ms);
        for note in notes {
            app.record(Tone::Info, note);
        }
        app
    }

    /// The effects that start every node of a supervised cluster.
    pub fn start_all(&mut self) -> Vec<Effect> {
        if self.mode == Mode::Attached {
            return Vec::new();
        }
        self.nodes
            .iter_mut()
            .filter(|node| node.process == ProcessState::NotStarted)
            .map(|node| {
                node.process = ProcessState::Starting;
                Effect::Start {
                    id: node.config.id,
                    wipe_data: false,
                }
            })
            .collect()
    }

    /// Applies one action at time `now_ms`; returns the work to do.
    pub fn update(&mut self, action: Action, now_ms: u64) -> Vec<Effect> {
        self.now_ms = self.now_ms.max(now_ms);
        self.write_rate.advance_to(self.now_ms);
        let is_key = !matches!(
            action,
            Action::Tick
                | Action::Status(_)
                | Action::Process(_)
                | Action::NodeLog(_)
                | Action::Write(_)
                | Action::VerifyFinished(_)
                | Action::GateProgress(_)
                | Action::GateFinished(_)
                | Action::EvidenceExported(_)
        );
        if is_key && self.help_open && !matches!(action, Action::ToggleHelp | Action::Quit) {
            self.help_open = false;
            if action == Action::CloseHelp {
                return Vec::new();
            }
        }
        match action {
            Action::Quit => self.quit(),
            Action::ToggleHelp => {
                self.help_open = !self.help_open;
                Vec::new()
            }
            Action::CloseHelp if self.gate_running() => {
                self.tell(
                    Tone::Action,
                    "quality gate: aborting (the cluster stays as it is now)".into(),
                );
                vec![Effect::AbortGate]
            }
            Action::CloseHelp => Vec::new(),
            Action::SelectNext => {
                self.selected = (self.selected + 1) % self.nodes.len().max(1);
                Vec::new()
            }
            Action::SelectPrevious => {
                let len = self.nodes.len().max(1);
                self.selected = (self.selected + len - 1) % len;
                Vec::new()
            }
            Action::Select(id) => {
                match self.row_of(id) {
                    Some(row) => self.selected = row,
                    None => self.refuse(format!(
                        "there is no node {id}: this cluster has {} nodes",
                        self.nodes.len()
                    )),
                }
                Vec::new()
            }
            Action::KillLeader => self.kill_leader(),
            Action::KillSelected => self.kill_selected(),
            Action::StopSelected => self.stop_selected(),
            Action::RestartSelected => self.restart_selected(),
            Action::WipeAndRestartSelected => self.wipe_and_restart_selected(),
            Action::BulkWrite => self.bulk_write(),
            Action::BulkWriteCountUp | Action::BulkWriteCountDown => {
                self.step_bulk_count(action == Action::BulkWriteCountUp);
                Vec::new()
            }
            Action::ToggleWriteLoad => self.toggle_write_load(),
            Action::Verify => self.verify(),
            Action::RunGate => self.run_gate(),
            Action::ExportEvidence => self.export_evidence(),
            Action::UnknownKey(key) => {
                self.refuse(format!(
                    "key '{key}' does nothing; press ? for the list of keys"
                ));
                Vec::new()
            }
            Action::Tick => self.tick(),
            Action::Status(report) => self.on_status(report),
            Action::Process(report) => self.on_process(report),
            Action::NodeLog(line) => {
                self.on_log_line(line);
                Vec::new()
            }
            Action::Write(report) => self.on_write(report),
            Action::VerifyFinished(result) => {
                self.on_verify(result);
                Vec::new()
            }
            Action::GateProgress(progress) => {
                self.on_gate_progress(*progress);
                Vec::new()
            }
            Action::GateFinished(outcome) => {
                self.on_gate_finished(*outcome);
                Vec::new()
            }
            Action::EvidenceExported(result) => {
                match result {
                    Ok(dir) => self.tell(
                        Tone::Good,
                        format!(
                            "evidence exported to {} (items not shown yet are FAIL, not run)",
                            dir.display()
                        ),
                    ),
                    Err(error) => self.tell(Tone::Bad, format!("evidence export failed: {error}")),
                }
                Vec::new()
            }
        }
    }

    pub fn gate_running(&self) -> bool {
        self.gate.as_ref().is_some_and(|g| g.running)
    }

    /// The gate panel replaces the log pane while the gate runs and for a
    /// while after it ends.
    pub fn gate_panel_visible(&self) -> bool {
        self.gate.as_ref().is_some_and(|g| {
            g.running
                || g.finished_at_ms
                    .is_some_and(|at| self.now_ms.saturating_sub(at) <= GATE_PANEL_AFTER_MS)
        })
    }

    // ----- derived state ---------------------------------------------------

    pub fn row_of(&self, id: u64) -> Option<usize> {
        self.nodes.iter().position(|n| n.config.id == id)
    }

    pub fn selected_node(&self) -> Option<&NodeView> {
        self.nodes.get(self.selected)
    }

    /// The leader: the answering node that says it leads, highest term first.
    pub fn leader(&self) -> Option<(usize, &NodeStatus)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(row, node)| node.live_status(self.now_ms).map(|s| (row, s)))
            .filter(|(_, status)| status.is_leader())
            .max_by_key(|(_, status)| status.term)
    }

    /// How far node `row` is behind the leader's commit index.
    pub fn lag_of(&self, row: usize) -> Option<u64> {
        let (_, leader) = self.leader()?;
        let status = self.nodes.get(row)?.live_status(self.now_ms)?;
        Some(leader.commit_index.saturating_sub(status.applied_index))
    }

    /// The header's verdict. Divergence between answering nodes is an alarm
    /// (raised as the statuses arrive), so it shows here as `Alarm`.
    pub fn convergence(&self) -> Convergence {
        if let Some(alarm) = self.integrity.first_alarm() {
            return Convergence::Alarm(alarm.clone());
        }
        if self.leader().is_none() {
            return Convergence::NoLeader;
        }
        let silent: Vec<u64> = self
            .nodes
            .iter()
            .filter(|n| n.process.is_alive() && n.live_status(self.now_ms).is_none())
            .map(|n| n.config.id)
            .collect();
        if !silent.is_empty() {
            return Convergence::Unknown { silent };
        }
        let live: Vec<(u64, &NodeStatus)> = self
            .nodes
            .iter()
            .filter_map(|n| n.live_status(self.now_ms).map(|s| (n.config.id, s)))
            .collect();
        let max = live.iter().map(|(_, s)| s.applied_index).max().unwrap_or(0);
        let min = live.iter().map(|(_, s)| s.applied_index).min().unwrap_or(0);
        let one_digest = live
            .windows(2)
            .all(|pair| pair[0].1.digest == pair[1].1.digest);
        if max == min && one_digest {
            let digest = live
                .first()
                .map(|(_, s)| s.digest.clone())
                .unwrap_or_default();
            Convergence::Converged {
                index: max,
                digest,
                nodes_up: live.len(),
                nodes_total: self.nodes.len(),
            }
        } else {
            Convergence::Syncing { lag: max - min }
        }
    }

    /// The message line, while it is recent.
    pub fn visible_flash(&self) -> Option<&Flash> {
        self.flash
            .as_ref()
            .filter(|f| self.now_ms.saturating_sub(f.at_ms) <= FLASH_VISIBLE_MS)
    }

    // ----- recording -------------------------------------------------------

    fn record(&mut self, tone: Tone, text: String) {
        self.record_at(self.now_ms, tone, text);
    }

    fn record_at(&mut self, at_ms: u64, tone: Tone, text: String) {
        tracing::info!(event = "timeline", text = %text);
        self.timeline.push_back(TimelineEvent { at_ms, tone, text });
        while self.timeline.len() > TIMELINE_EVENTS_MAX {
            self.timeline.pop_front();
        }
    }

    /// Says what happened on the message line and in the timeline.
    fn tell(&mut self, tone: Tone, text: String) {
        self.flash = Some(Flash {
            at_ms: self.now_ms,
            tone,
            text: text.clone(),
        });
        self.record(tone, text);
    }

    /// An action that cannot be done: say why, on the message line only.
    fn refuse(&mut self, why: String) {
        self.flash = Some(Flash {
            at_ms: self.now_ms,
            tone: Tone::Warn,
            text: why,
        });
    }

    /// Refuses in `--attach` mode, while the gate runs and while quitting;
    /// true when refused.
    fn refuse_process_control(&mut self) -> bool {
        if self.mode == Mode::Attached {
            self.refuse(ATTACHED_REFUSAL.to_string());
            return true;
        }
        if self.gate_running() {
            self.refuse(GATE_RUNNING_REFUSAL.to_string());
            return true;
        }
        if self.quitting_since_ms.is_some() {
            self.refuse("quitting: the nodes are being stopped".into());
            return true;
        }
        false
    }

    // ----- keys ------------------------------------------------------------

    fn quit(&mut self) -> Vec<Effect> {
        if self.quitting_since_ms.is_some() {
            self.should_exit = true;
            return Vec::new();
        }
        let mut effects = Vec::new();
        if self.load_on {
            self.load_on = false;
            effects.push(Effect::SetWriteLoad { on: false });
        }
        if self.gate_running() {
            effects.push(Effect::AbortGate);
        }
        if self.mode == Mode::Attached || self.nodes.iter().all(|n| !n.process.is_alive()) {
            self.should_exit = true;
            return effects;
        }
        self.quitting_since_ms = Some(self.now_ms);
        for node in &mut self.nodes {
            node.restart_pending = None;
            if let ProcessState::Running { pid } = node.process {
                node.process = ProcessState::Stopping {
                    pid,
                    graceful: true,
                };
            }
        }
        self.tell(
            Tone::Action,
            "quitting: stopping the nodes gracefully (press q again to quit at once)".into(),
        );
        effects.push(Effect::StopAll);
        effects
    }

    fn kill_leader(&mut self) -> Vec<Effect> {
        if self.refuse_process_control() {
            return Vec::new();
        }
        let Some((row, leader)) = self.leader() else {
            self.refuse(
                "no leader to kill: none is elected right now (election running or no quorum)"
                    .into(),
            );
            return Vec::new();
        };
        let term = leader.term;
        self.selected = row;
        self.kill_row(row, Some(term))
    }

    fn kill_selected(&mut self) -> Vec<Effect> {
        if self.refuse_process_control() {
            return Vec::new();
        }
        let row = self.selected;
        let term = self
            .leader()
            .filter(|(leader_row, _)| *leader_row == row)
            .map(|(_, s)| s.term);
        self.kill_row(row, term)
    }

    /// kill -9 the node in `row`; `leader_term` when it is the leader (timed).
    fn kill_row(&mut self, row: usize, leader_term: Option<u64>) -> Vec<Effect> {
        let node = &self.nodes[row];
        let id = node.config.id;
        let pid = match node.process {
            ProcessState::Running { pid } | ProcessState::Stopping { pid, .. } => pid,
            _ => {
                let why = self.not_running_reason(row);
                self.refuse(why);
                return Vec::new();
            }
        };
        self.nodes[row].process = ProcessState::Stopping {
            pid,
            graceful: false,
        };
        let text = match leader_term {
            Some(term) => {
                self.leader_kill = Some(LeaderKill {
                    node: id,
                    at_ms: self.now_ms,
                    detected_by: Vec::new(),
                });
                format!("kill -9 node {id}, leader of term {term} (pid {pid})")
            }
            None => format!("kill -9 node {id} (pid {pid})"),
        };
        self.tell(Tone::Action, text);
        vec![Effect::Kill { id }]
    }

    fn not_running_reason(&self, row: usize) -> String {
        let node = &self.nodes[row];
        let id = node.config.id;
        if node.is_restarting() {
            return format!("node {id} is restarting");
        }
        let state = match &node.process {
            ProcessState::Dead { exit } => exit.to_string(),
            ProcessState::SpawnFailed { error } => format!("could not start: {error}"),
            _ => "not started".to_string(),
        };
        format!("node {id} is not running ({state}); press r to restart it")
    }

    fn stop_selected(&mut self) -> Vec<Effect> {
        if self.refuse_process_control() {
            return Vec::new();
        }
        let row = self.selected;
        let id = self.nodes[row].config.id;
        match self.nodes[row].process {
            ProcessState::Running { pid } => {
                let is_leader = self.leader().is_some_and(|(r, _)| r == row);
                self.nodes[row].process = ProcessState::Stopping {
                    pid,
                    graceful: true,
                };
                let text = if is_leader {
                    format!("stop node {id} (SIGTERM): the leader hands leadership over first")
                } else {
                    format!("stop node {id} (SIGTERM)")
                };
                self.tell(Tone::Action, text);
                vec![Effect::Stop { id }]
            }
            ProcessState::Stopping { .. } => {
                self.refuse(format!("node {id} is already stopping"));
                Vec::new()
            }
            _ => {
                let why = self.not_running_reason(row);
                self.refuse(why);
                Vec::new()
            }
        }
    }

    fn restart_selected(&mut self) -> Vec<Effect> {
        if self.refuse_process_control() {
            return Vec::new();
        }
        let row = self.selected;
        if self.nodes[row].is_down() {
            return self.start_row(row, false);
        }
        let id = self.nodes[row].config.id;
        if self.nodes[row].is_restarting() {
            self.refuse(format!("node {id} is already restarting"));
            return Vec::new();
        }
        if let ProcessState::Stopping { .. } = self.nodes[row].process {
            self.nodes[row].restart_pending = Some(false);
            self.tell(
                Tone::Action,
                format!("node {id} restarts once it has stopped"),
            );
            return Vec::new();
        }
        let down: Vec<usize> = (0..self.nodes.len())
            .filter(|r| self.nodes[*r].is_down())
            .collect();
        if !down.is_empty() {
            return down
                .into_iter()
                .flat_map(|r| self.start_row(r, false))
                .collect();
        }
        self.restart_running_row(row, false)
    }

    fn wipe_and_restart_selected(&mut self) -> Vec<Effect> {
        if self.refuse_process_control() {
            return Vec::new();
        }
        let row = self.selected;
        let id = self.nodes[row].config.id;
        if self.nodes[row].is_restarting() {
            self.refuse(format!("node {id} is already restarting"));
            return Vec::new();
        }
        if let Some(why) = self.wipe_refusal(row) {
            // In the timeline too: a refused wipe is part of the story.
            self.tell(Tone::Warn, why);
            return Vec::new();
        }
        match self.nodes[row].process {
            ProcessState::Stopping { .. } => {
                self.nodes[row].restart_pending = Some(true);
                self.tell(
                    Tone::Action,
                    format!("node {id} restarts with an empty data dir once it has stopped"),
                );
                Vec::new()
            }
            _ if self.nodes[row].is_down() => self.start_row(row, true),
            _ => self.restart_running_row(row, true),
        }
    }

    /// Graceful stop now, start again when the exit is seen.
    fn restart_running_row(&mut self, row: usize, wipe_data: bool) -> Vec<Effect> {
        let node = &mut self.nodes[row];
        let id = node.config.id;
        let Some(pid) = node.process.pid() else {
            let why = self.not_running_reason(row);
            self.refuse(why);
            return Vec::new();
        };
        node.process = ProcessState::Stopping {
            pid,
            graceful: true,
        };
        node.restart_pending = Some(wipe_data);
        let text = if wipe_data {
            format!("restart node {id} with an empty data dir: stop (SIGTERM), wipe, then start")
        } else {
            format!("restart node {id}: stop (SIGTERM), then start")
        };
        self.tell(Tone::Action, text);
        vec![Effect::Stop { id }]
    }

    fn start_row(&mut self, row: usize, wipe_data: bool) -> Vec<Effect> {
        let node = &mut self.nodes[row];
        let id = node.config.id;
        node.process = ProcessState::Starting;
        node.restart_pending = None;
        node.restarted_at_ms = Some(self.now_ms);
        node.output_lines_shown = 0;
        if wipe_data {
            node.wiped_at_ms = Some(self.now_ms);
        }
        let text = if wipe_data {
            format!("node {id}: data dir wiped, restarting with an empty disk")
        } else {
            format!("restart node {id}")
        };
        self.tell(Tone::Action, text);
        vec![Effect::Start { id, wipe_data }]
    }

    fn bulk_write(&mut self) -> Vec<Effect> {
        if self.quitting_since_ms.is_some() {
            self.refuse("quitting: no more writes".into());
            return Vec::new();
        }
        if self.gate_running() {
            self.refuse(GATE_RUNNING_REFUSAL.to_string());
            return Vec::new();
        }
        let count = self.bulk_write_count;
        if self.bulk_in_flight.is_some() {
            if self.bulk_queue.len() >= BULK_WRITES_QUEUED_MAX {
                self.refuse(format!(
                    "{} bulk writes are already waiting; wait for them to finish",
                    self.bulk_queue.len()
                ));
                return Vec::new();
            }
            self.bulk_queue.push_back(count);
            self.tell(
                Tone::Action,
                format!(
                    "write {count} keys: queued behind the running write ({} waiting)",
                    self.bulk_queue.len()
                ),
            );
            return Vec::new();
        }
        if self.leader().is_none() {
            self.refuse(format!(
                "no leader to write {count} keys through: wait for the election to finish"
            ));
            return Vec::new();
        }
        self.bulk_in_flight = Some(count);
        self.record(
            Tone::Action,
            format!("write {count} keys through the leader"),
        );
        vec![Effect::BulkWrite { count }]
    }

    fn step_bulk_count(&mut self, up: bool) {
        let position = BULK_WRITE_COUNTS
            .iter()
            .position(|c| *c >= self.bulk_write_count)
            .unwrap_or(BULK_WRITE_COUNTS.len() - 1);
        let position = if up {
            (position + 1).min(BULK_WRITE_COUNTS.len() - 1)
        } else {
            position.saturating_sub(1)
        };
        let before = self.bulk_write_count;
        self.bulk_write_count = BULK_WRITE_COUNTS[position];
        if before == self.bulk_write_count {
            self.refuse(format!(
                "bulk write size stays {before}: it goes from {} to {}",
                BULK_WRITE_COUNTS[0],
                BULK_WRITE_COUNTS[BULK_WRITE_COUNTS.len() - 1]
            ));
        } else {
            self.flash = Some(Flash {
                at_ms: self.now_ms,
                tone: Tone::Info,
                text: format!("w now writes {} keys", self.bulk_write_count),
            });
        }
    }

    fn toggle_write_load(&mut self) -> Vec<Effect> {
        if self.load_on {
            self.load_on = false;
            self.tell(Tone::Action, "continuous write load: stopping".into());
            return vec![Effect::SetWriteLoad { on: false }];
        }
        if self.quitting_since_ms.is_some() {
            self.refuse("quitting: no more writes".into());
            return Vec::new();
        }
        if self.gate_running() {
            self.refuse(GATE_RUNNING_REFUSAL.to_string());
            return Vec::new();
        }
        self.load_on = true;
        self.tell(
            Tone::Action,
            "continuous write load: on (W again to stop)".into(),
        );
        vec![Effect::SetWriteLoad { on: true }]
    }

    fn verify(&mut self) -> Vec<Effect> {
        if self.verify_running {
            self.refuse("a verification is already running".into());
            return Vec::new();
        }
        let keys = self.acked.count();
        if keys == 0 {
            self.refuse(
                "nothing to verify: this dashboard has not written any key yet (press w)".into(),
            );
            return Vec::new();
        }
        self.verify_running = true;
        self.record(
            Tone::Action,
            format!("verify {keys} keys on every node (READONLY local reads)"),
        );
        vec![Effect::Verify {
            nodes: self
                .nodes
                .iter()
                .map(|n| (n.config.id, n.config.client_addr.clone()))
                .collect(),
            ranges: self.acked.ranges().to_vec(),
        }]
    }

    /// `d`: the quality gate runs as a background job against this cluster
    /// (scenario.rs) and reports through `Action::GateProgress`.
    fn run_gate(&mut self) -> Vec<Effect> {
        if self.gate_running() {
            self.refuse("the quality gate is already running (Esc aborts it)".into());
            return Vec::new();
        }
        if self.quitting_since_ms.is_some() {
            self.refuse("quitting: no quality gate now".into());
            return Vec::new();
        }
        if self.bulk_in_flight.is_some() || self.verify_running {
            self.refuse(
                "a write or verification is running: press d again once it has finished".into(),
            );
            return Vec::new();
        }
        let mut effects = Vec::new();
        if self.load_on {
            // The checkpoints need a cluster that stands still.
            self.load_on = false;
            effects.push(Effect::SetWriteLoad { on: false });
        }
        self.gate = Some(GateView {
            record: None,
            bundle_dir: None,
            running: true,
            bundle: None,
            finished_at_ms: None,
            entries_shown: 0,
        });
        let text = match self.mode {
            Mode::Supervised => "quality gate: running the 8 items (kills and restarts the leader; Esc aborts)",
            Mode::Attached => {
                "quality gate: running what an attached dashboard can (items 3-7 need process control and will FAIL)"
            }
        };
        self.tell(Tone::Action, text.into());
        effects.push(Effect::RunGate {
            integrity: Box::new(self.integrity.clone()),
        });
        effects
    }

    /// `e`: a bundle of whatever the gate has shown so far.
    fn export_evidence(&mut self) -> Vec<Effect> {
        let gate = self
            .gate
            .as_ref()
            .and_then(|g| g.record.clone())
            .map(Box::new);
        self.record(Tone::Action, "export the evidence bundle".into());
        vec![Effect::ExportEvidence { gate }]
    }

    fn on_gate_progress(&mut self, progress: GateProgress) {
        let Some(gate) = &mut self.gate else {
            return;
        };
        // Progress and the final outcome come on separate channels: an
        // update older than what is shown (or than the outcome) is stale.
        if !gate.running || progress.record.timeline.len() < gate.entries_shown {
            return;
        }
        let new_entries: Vec<_> = progress
            .record
            .timeline
            .iter()
            .skip(gate.entries_shown)
            .cloned()
            .collect();
        gate.entries_shown = progress.record.timeline.len();
        gate.bundle_dir = progress.bundle_dir;
        gate.record = Some(progress.record);
        for entry in new_entries {
            let tone = match entry.kind {
                StepKind::Step => Tone::Action,
                StepKind::Info => Tone::Info,
                StepKind::Warn => Tone::Warn,
                StepKind::Pass => Tone::Good,
                StepKind::Fail => Tone::Bad,
            };
            let verdict = match entry.kind {
                StepKind::Pass => "PASS ",
                StepKind::Fail => "FAIL ",
                _ => "",
            };
            self.record_at(
                entry.at_ms,
                tone,
                format!("gate [{}] {verdict}{}", entry.step, entry.text),
            );
        }
    }

    fn on_gate_finished(&mut self, outcome: GateOutcome) {
        let passed = outcome.record.passed_count();
        self.on_gate_progress(GateProgress {
            record: outcome.record,
            bundle_dir: outcome.bundle.as_ref().ok().cloned(),
        });
        let Some(gate) = &mut self.gate else {
            return;
        };
        if !gate.running {
            return;
        }
        gate.running = false;
        gate.finished_at_ms = Some(self.now_ms);
        gate.bundle = Some(outcome.bundle.clone());
        let alarm = self
            .integrity
            .first_alarm()
            .map(|a| format!("quality gate FAIL: {} (alarm stands); ", a.summary));
        let tone = if passed == ITEM_COUNT && alarm.is_none() {
            Tone::Good
        } else {
            Tone::Bad
        };
        let text = match outcome.bundle {
            Ok(dir) => format!(
                "quality gate: {passed}/{ITEM_COUNT} PASS; evidence in {}",
                dir.display()
            ),
            Err(error) => format!(
                "quality gate: {passed}/{ITEM_COUNT} PASS; the evidence bundle is incomplete: {error}"
            ),
        };
        let text = match alarm {
            Some(prefix) => format!("{prefix}{}", text.trim_start_matches("quality gate: ")),
            None => text,
        };
        self.tell(tone, text);
    }

    // ----- reports -----------------------------------------------------------

    fn tick(&mut self) -> Vec<Effect> {
        if let Some(since) = self.quitting_since_ms {
            if self.now_ms.saturating_sub(since) > QUIT_DEADLINE_MS {
                tracing::warn!(event = "quit_deadline_passed");
                self.should_exit = true;
            }
        }
        self.observe_cluster();
        Vec::new()
    }

    fn on_status(&mut self, report: StatusReport) -> Vec<Effect> {
        let Some(row) = self.row_of(report.id) else {
            return Vec::new();
        };
        let node = &mut self.nodes[row];
        match report.result {
            Ok(status)
                if node
                    .status
                    .as_ref()
                    .is_some_and(|s| s.is_newer_than(&status)) =>
            {
                // A poll answered before a status read later (the one a bulk
                // write takes) arrived after it: keep the newer one.
                node.poll_error = None;
                return Vec::new();
            }
            Ok(status) => {
                let alarms = self.integrity.observe(&status, report.at_ms);
                self.note_registration(row, &status, report.at_ms);
                let node = &mut self.nodes[row];
                node.status = Some(status);
                node.status_at_ms = report.at_ms;
                node.poll_error = None;
                // The message line keeps the first: the later ones follow from it.
                for (i, alarm) in alarms.into_iter().enumerate() {
                    self.raise(alarm, i == 0);
                }
            }
            Err(error) => node.poll_error = Some(error),
        }
        self.observe_cluster();
        Vec::new()
    }

    /// An integrity alarm: the header turns red for the rest of the session,
    /// the timeline and the message line say what was seen.
    fn raise(&mut self, alarm: Alarm, flash: bool) {
        tracing::error!(
            event = "integrity_alarm",
            kind = alarm.kind.badge(),
            node = alarm.node,
            index = alarm.index,
            detail = alarm.detail.as_str()
        );
        if flash {
            self.flash = Some(Flash {
                at_ms: self.now_ms,
                tone: Tone::Bad,
                text: alarm.summary.clone(),
            });
        }
        self.record_at(
            alarm.at_ms,
            Tone::Bad,
            format!("{}: {}", alarm.summary, alarm.detail),
        );
    }

    /// A wiped node holds the committed log again once it is a registered voter
    /// (re-admitted) in a status polled after the wipe; the timeline says so.
    /// A new cluster's first registration of its members is not a re-admission
    /// and is not announced.
    fn note_registration(&mut self, row: usize, status: &NodeStatus, at_ms: u64) {
        let node = &mut self.nodes[row];
        let id = node.config.id;
        let wiped_before = node.wiped_at_ms.is_some_and(|wiped| wiped < at_ms);
        if !status.is_registered() {
            return;
        }
        node.wiped_at_ms = None;
        if status.registered != Some(true) {
            return;
        }
        let incarnation = status.incarnation.clone();
        let replaced = match (&node.registered_incarnation, &incarnation) {
            (Some(before), Some(now)) => before != now,
            _ => false,
        };
        node.registered_incarnation = incarnation.clone();
        if wiped_before || replaced {
            let incarnation = incarnation
                .as_deref()
                .map(|i| format!(" (incarnation {})", short_incarnation(i)))
                .unwrap_or_default();
            self.record_at(
                at_ms,
                Tone::Good,
                format!("node {id}: voter again{incarnation}"),
            );
        }
    }

    /// Why wiping the node in `row` would risk the committed log, if it would:
    /// the other nodes that still hold it must be at least a quorum.
    pub fn wipe_refusal(&self, row: usize) -> Option<String> {
        let committed = self.integrity.committed_max();
        let id = self.nodes[row].config.id;
        let holders: Vec<u64> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(r, n)| *r != row && n.holds_committed_log(committed))
            .map(|(_, n)| n.config.id)
            .collect();
        let quorum = self.nodes.len() / 2 + 1;
        if holders.len() >= quorum {
            return None;
        }
        let holder_word = if holders.len() == 1 {
            "holder"
        } else {
            "holders"
        };
        let named = if holders.is_empty() {
            "none".to_string()
        } else {
            name_nodes(&holders)
        };
        let lagging_down = self
            .nodes
            .iter()
            .enumerate()
            .any(|(r, n)| r != row && !holders.contains(&n.config.id) && !n.process.is_alive());
        let advice = if lagging_down {
            "Restart the stopped nodes first and let them catch up."
        } else {
            "Wait for the other nodes to catch up (or re-admission) first."
        };
        Some(format!(
            "R refused: wiping node {id} would leave {} intact {holder_word} of the committed \
             log (up to index {committed}: {named}); a quorum is {quorum}. {advice}",
            holders.len()
        ))
    }

    fn on_process(&mut self, report: ProcessReport) -> Vec<Effect> {
        let Some(row) = self.row_of(report.id) else {
            return Vec::new();
        };
        let id = report.id;
        let at_ms = report.at_ms;
        match report.event {
            ProcessEvent::Started { pid } => {
                self.nodes[row].process = ProcessState::Running { pid };
                self.nodes[row].poll_error = Some("starting".into());
                self.record_at(at_ms, Tone::Info, format!("node {id} started (pid {pid})"));
            }
            ProcessEvent::SpawnFailed { error } => {
                self.nodes[row].process = ProcessState::SpawnFailed {
                    error: error.clone(),
                };
                self.nodes[row].restart_pending = None;
                self.tell(Tone::Bad, format!("node {id} could not start: {error}"));
            }
            ProcessEvent::Exited { exit } => return self.on_exit(row, exit, at_ms),
        }
        Vec::new()
    }

    fn on_exit(&mut self, row: usize, exit: ExitKind, at_ms: u64) -> Vec<Effect> {
        let node = &mut self.nodes[row];
        let id = node.config.id;
        let expected = matches!(node.process, ProcessState::Stopping { .. });
        let pid = node
            .process
            .pid()
            .map(|p| format!(" (pid {p})"))
            .unwrap_or_default();
        node.process = ProcessState::Dead { exit };
        node.restarted_at_ms = None;
        let tone = if expected { Tone::Warn } else { Tone::Bad };
        let surprise = if expected { "" } else { " unexpectedly" };
        self.record_at(at_ms, tone, format!("node {id}{surprise} {exit}{pid}"));
        if self.quitting_since_ms.is_some() {
            if self.nodes.iter().all(|n| !n.process.is_alive()) {
                self.should_exit = true;
            }
            return Vec::new();
        }
        if let Some(wipe_data) = self.nodes[row].restart_pending {
            return self.start_row(row, wipe_data);
        }
        self.observe_cluster();
        Vec::new()
    }

    fn on_log_line(&mut self, line: LogLine) {
        let Some(row) = self.row_of(line.id) else {
            return;
        };
        let id = line.id;
        let node = &mut self.nodes[row];
        node.log_tail.push_back(line.clone());
        while node.log_tail.len() > LOG_TAIL_LINES_MAX {
            node.log_tail.pop_front();
        }
        if line.source == LogSource::Output {
            let is_marker = line.text.starts_with("--- ");
            if !is_marker
                && !line.text.trim().is_empty()
                && node.output_lines_shown < OUTPUT_LINES_IN_TIMELINE_MAX
            {
                node.output_lines_shown += 1;
                self.record_at(
                    line.at_ms,
                    Tone::Warn,
                    format!("node {id} output: {}", line.text),
                );
            }
            return;
        }
        let Some(event) = line.event.as_deref() else {
            return;
        };
        let term = line.field_u64("term");
        let term_text = term.map(|t| format!(", term {t}")).unwrap_or_default();
        match event {
            "leader_lost" | "election_timeout" => {
                let what = match (event, line.field("leader")) {
                    ("leader_lost", Some(leader)) => format!("lost leader {leader}"),
                    ("leader_lost", None) => "lost the leader".to_string(),
                    _ => "election timeout".to_string(),
                };
                let cause = match (line.field_u64("silence_ms"), line.field("reason")) {
                    (Some(ms), Some(reason)) if event == "leader_lost" => {
                        format!(" ({reason}) after {ms} ms of silence")
                    }
                    (Some(ms), _) => format!(" after {ms} ms of silence"),
                    (None, Some(reason)) => format!(" ({reason})"),
                    (None, None) => String::new(),
                };
                let since_kill = self.time_detection(id, line.at_ms);
                self.record_at(
                    line.at_ms,
                    Tone::Warn,
                    format!("node {id} {what}{cause}{term_text}{since_kill}"),
                );
            }
            "became_leader" => {
                if let Some(term) = term {
                    self.announce_leader(id, term, line.at_ms);
                }
            }
            "stepped_down" => {
                self.record_at(
                    line.at_ms,
                    Tone::Warn,
                    format!("node {id} stepped down{term_text}"),
                );
            }
            "snapshot_sent" | "snapshot_installed" | "recovery" => {
                let (tone, text) = describe_storage_event(id, event, &line);
                self.record_at(line.at_ms, tone, text);
            }
            "peer_incarnation_changed" | "readmission_proposed" | "member_readmitted" => {
                let Some((tone, text)) = describe_membership_event(event, &line) else {
                    return;
                };
                let key = (
                    event.to_string(),
                    line.field_u64("peer").unwrap_or(0),
                    line.field("incarnation").unwrap_or_default().to_string(),
                );
                if self.membership_events_shown.len() < MEMBERSHIP_EVENTS_REMEMBERED_MAX
                    && self.membership_events_shown.insert(key)
                {
                    self.record_at(line.at_ms, tone, text);
                }
            }
            _ => {}
        }
    }

    /// ` (312 ms after the kill)` for a node's first detection of a killed leader.
    fn time_detection(&mut self, id: u64, at_ms: u64) -> String {
        match &mut self.leader_kill {
            Some(kill) if kill.node != id && !kill.detected_by.contains(&id) => {
                kill.detected_by.push(id);
                format!(
                    " ({} after node {} was killed)",
                    format_duration_ms(at_ms.saturating_sub(kill.at_ms)),
                    kill.node
                )
            }
            _ => String::new(),
        }
    }

    fn announce_leader(&mut self, id: u64, term: u64, at_ms: u64) {
        if term <= self.announced_term {
            return;
        }
        self.announced_term = term;
        self.elections_seen += 1;
        let mut text = format!("node {id} leader of term {term}");
        if let Some(kill) = self.leader_kill.take() {
            if kill.node != id {
                text.push_str(&format!(
                    ", {} after node {} was killed",
                    format_duration_ms(at_ms.saturating_sub(kill.at_ms)),
                    kill.node
                ));
            }
        }
        self.record_at(at_ms, Tone::Good, text);
    }

    /// Timeline entries for what polling reveals: a new leader, divergence,
    /// convergence, a restarted node that caught up.
    fn observe_cluster(&mut self) {
        if let Some((row, leader)) = self.leader() {
            let (id, term) = (self.nodes[row].config.id, leader.term);
            self.announce_leader(id, term, self.now_ms);
        }
        let convergence = self.convergence();
        let announce = match &convergence {
            Convergence::Converged {
                index, nodes_up, ..
            } => {
                let new_state = self.announced_converged != Some((*index, *nodes_up));
                let settled = self.writes_idle() && self.all_alive_answer();
                if new_state && settled {
                    self.announced_converged = Some((*index, *nodes_up));
                }
                new_state && settled
            }
            _ => false,
        };
        if announce {
            let text = match &convergence {
                Convergence::Converged {
                    index,
                    digest,
                    nodes_up,
                    nodes_total,
                } => {
                    let short: String = digest.chars().take(6).collect();
                    let of = if nodes_up < nodes_total {
                        format!(" ({nodes_up} of {nodes_total} nodes up)")
                    } else {
                        String::new()
                    };
                    format!("CONVERGED at index {index}: digest {short}…{of}")
                }
                _ => String::new(),
            };
            self.record(Tone::Good, text);
        }
        self.last_convergence = Some(convergence);
        self.observe_catch_up();
    }

    /// Every node whose process is alive answers (a node just started has not yet).
    fn all_alive_answer(&self) -> bool {
        self.nodes
            .iter()
            .filter(|n| n.process.is_alive())
            .all(|n| n.live_status(self.now_ms).is_some())
    }

    fn writes_idle(&self) -> bool {
        !self.load_on && self.bulk_in_flight.is_none()
    }

    fn observe_catch_up(&mut self) {
        let Some((_, leader)) = self.leader() else {
            return;
        };
        let (leader_id, leader_commit) = (leader.id, leader.commit_index);
        let now_ms = self.now_ms;
        let mut caught_up = Vec::new();
        for node in &mut self.nodes {
            let Some(restarted_at_ms) = node.restarted_at_ms else {
                continue;
            };
            let Some(status) = node.live_status(now_ms) else {
                continue;
            };
            if status.leader_id == leader_id && status.applied_index >= leader_commit {
                caught_up.push((
                    node.config.id,
                    status.applied_index,
                    now_ms - restarted_at_ms,
                ));
                node.restarted_at_ms = None;
            }
        }
        for (id, index, ms) in caught_up {
            self.record(
                Tone::Good,
                format!(
                    "node {id} caught up to index {index}, {} after restart",
                    format_duration_ms(ms)
                ),
            );
        }
    }

    fn on_write(&mut self, report: WriteReport) -> Vec<Effect> {
        match report {
            WriteReport::Acked { seqs, at_ms } => {
                let count: u64 = seqs.iter().map(|r| r.end - r.start).sum();
                for range in seqs {
                    self.acked.insert(range);
                }
                self.write_rate.add(at_ms, count);
                Vec::new()
            }
            WriteReport::BulkFinished(result) => self.on_bulk_finished(result),
            WriteReport::LoadStopped {
                outcome_unknown,
                error,
            } => {
                self.load_on = false;
                self.outcome_unknown_writes += outcome_unknown;
                match error {
                    Some(error) => {
                        self.tell(Tone::Bad, format!("continuous write load stopped: {error}"))
                    }
                    None => self.record(Tone::Info, "continuous write load: off".into()),
                }
                Vec::new()
            }
        }
    }

    fn via_text(&self, via: &Option<String>) -> String {
        let Some(addr) = via else {
            return String::new();
        };
        let by_row = self
            .nodes
            .iter()
            .find(|n| &n.config.client_addr == addr)
            .map(|n| n.config.id);
        match by_row {
            Some(id) => format!(" via node {id}"),
            None => format!(" via {addr}"),
        }
    }

    fn on_bulk_finished(&mut self, result: BulkWriteResult) -> Vec<Effect> {
        self.bulk_in_flight = None;
        if let Some(status) = result.via_status.clone() {
            self.on_status(StatusReport {
                id: status.id,
                at_ms: self.now_ms,
                result: Ok(*status),
            });
        }
        self.outcome_unknown_writes += result.outcome_unknown;
        let via = self.via_text(&result.via);
        let took = format_duration_ms(result.elapsed_ms);
        if result.acked == result.requested {
            self.tell(
                Tone::Good,
                format!("wrote {} keys{via} in {took}", result.acked),
            );
        } else {
            let mut text = format!(
                "wrote {} of {} keys{via} in {took}",
                result.acked, result.requested
            );
            if result.failed > 0 {
                text.push_str(&format!("; {} not applied", result.failed));
            }
            if result.outcome_unknown > 0 {
                text.push_str(&format!("; {} outcome unknown", result.outcome_unknown));
            }
            if let Some(error) = &result.first_error {
                text.push_str(&format!(" ({error})"));
            }
            self.tell(Tone::Bad, text);
        }
        match self.bulk_queue.pop_front() {
            Some(count) => {
                self.bulk_in_flight = Some(count);
                self.record(
                    Tone::Action,
                    format!("write {count} keys through the leader (queued)"),
                );
                vec![Effect::BulkWrite { count }]
            }
            None => {
                self.observe_cluster();
                Vec::new()
            }
        }
    }

    fn on_verify(&mut self, result: VerifyResult) {
        self.verify_running = false;
        let took = format_duration_ms(result.elapsed_ms);
        let mut problems = Vec::new();
        for node in &result.nodes {
            match &node.result {
                Ok(check) if check.missing == 0 && check.wrong == 0 => {}
                Ok(check) => problems.push(format!(
                    "node {}: {} missing, {} wrong ({})",
                    node.id,
                    check.missing,
                    check.wrong,
                    check.examples.join(", ")
                )),
                Err(error) => problems.push(format!("node {}: not checked, {error}", node.id)),
            }
        }
        if let Some(alarm) = self.integrity.first_alarm() {
            // The keys read back may all be there and the cluster still have
            // lost or forked committed entries: an alarm decides.
            let keys = if problems.is_empty() {
                format!(
                    "all {} keys read back on {} nodes",
                    result.keys,
                    result.nodes.len()
                )
            } else {
                problems.join("; ")
            };
            let text = format!("verify FAIL: {} (alarm stands); {keys}", alarm.summary);
            self.tell(Tone::Bad, text);
        } else if problems.is_empty() {
            self.tell(
                Tone::Good,
                format!(
                    "verified {} keys on {} nodes in {took}: every value matches",
                    result.keys,
                    result.nodes.len()
                ),
            );
        } else {
            self.tell(
                Tone::Bad,
                format!("verify {} keys: {}", result.keys, problems.join("; ")),
            );
        }
    }
}

#[cfg(test)]
#[path = "app_tests.rs"]
pub(crate) mod tests;
