//! The dashboard's state, the actions that change it, and the work it asks
//! the runtime to do (`Effect`). No terminal I/O and no clock: time comes in
//! with every `update`, so the whole dashboard is unit-testable.
//!
//! `update` sends a person's `Input` and a background `Report` to the module
//! that owns the concern:
//! - `keymap`: every key, its input, footer label, help text and hint;
//! - `nodes`: the node processes (kill, stop, restart, and the refusal to
//!   wipe a holder of the committed log);
//! - `membership`: members added, removed and replaced (`a - R`);
//! - `faults`: partitions, one-way links, slow links and pauses (`p o l z h`);
//! - `workload`: bulk writes, the continuous load, verification;
//! - `observer`: status polls, node log events, integrity alarms, the timeline's
//!   leader, convergence and catch-up entries;
//! - `gate`: the quality gate and the evidence bundle.

mod faults;
mod gate;
pub mod keymap;
mod membership;
mod nodes;
mod observer;
mod workload;

use std::collections::{BTreeSet, VecDeque};
use std::ops::Range;
use std::path::PathBuf;

use raftkv_node::fault_proxy::{Link, LinkMode};

use crate::gate_record::GateRecord;
use crate::integrity::IntegrityWatch;
use crate::live_history::HistoryVerdict;
use crate::membership::MemberChange;
use crate::poll::{LogLine, StatusReport};
use crate::scenario::{GateOutcome, GateProgress};
use crate::supervisor::ProcessReport;

pub use faults::{LeaderFault, SLOW_LINK};
pub use gate::{GateView, GATE_RUNNING_REFUSAL};
pub use keymap::action_for_key;
pub use membership::{MemberOp, MEMBER_CHANGE_DEADLINE_MS};
pub use nodes::{NodeConfig, NodeView, ProcessState, ATTACHED_REFUSAL};
pub use observer::{Convergence, LeaderKill};
pub use workload::{
    AckedKeys, BulkWriteResult, NodeVerification, VerifyResult, WriteRate, WriteReport,
    BULK_WRITE_COUNT_DEFAULT,
};

/// The event timeline keeps this many entries (older ones scroll away).
pub const TIMELINE_EVENTS_MAX: usize = 500;

/// How long the message line shows the last message.
pub const FLASH_VISIBLE_MS: u64 = 10_000;
/// Quitting waits this long for nodes to stop before leaving anyway
/// (the children then die with the dashboard).
pub const QUIT_DEADLINE_MS: u64 = 15_000;

/// Whether the dashboard owns the node processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Started the nodes itself: every key works.
    Supervised,
    /// `--attach`: shows a cluster someone else runs; kill/restart are refused.
    Attached,
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

/// What a person at the keyboard asks for (one row of `KEYMAP` each, except
/// `UnknownKey`). Quitting also comes from signals and a closed terminal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    Quit,
    ToggleHelp,
    /// Esc: closes the help, or aborts a running quality gate.
    CloseHelp,
    SelectNext,
    SelectPrevious,
    /// Select the node with this row id (keys 1-9).
    Select(u64),
    KillLeader,
    KillSelected,
    StopSelected,
    RestartSelected,
    /// Replace the selected node with an empty disk (`R`): stop, remove,
    /// wipe, join again as a new incarnation.
    ReplaceSelected,
    /// Start the next free node id empty, joining as a learner (`a`).
    AddNode,
    /// Remove the selected node from the configuration, then stop it (`-`).
    RemoveSelected,
    /// Cut every peer link to and from the selected node, or heal them (`p`).
    ToggleIsolateSelected,
    /// The selected node keeps sending but receives nothing, or hears again (`o`).
    ToggleInboundCutSelected,
    /// SIGSTOP / SIGCONT the selected node (`z`).
    TogglePauseSelected,
    /// Slow links to and from the selected node, or fast again (`l`).
    ToggleSlowSelected,
    /// Every link open, every paused node resumed (`h`).
    HealAll,
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
}

/// What the clock and the background work (pollers, supervisor, jobs, the
/// gate) report.
// A status (with the membership lists) is the largest; reports live only
// from their channel to `update`, so boxing would buy nothing (as `Action`).
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Report {
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
    /// The load's history has been checked again.
    HistoryChecked(HistoryVerdict),
    /// The leader took a membership change (`Ok(its address)`, once
    /// committed), or why not.
    MemberChanged {
        change: MemberChange,
        result: Result<String, String>,
    },
}

/// Everything that can happen to the dashboard: a person's input or a report.
// As large as the largest report, as the one flat enum was before: an action
// lives only from its channel to `update`, so boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Input(Input),
    Report(Report),
}

impl From<Input> for Action {
    fn from(input: Input) -> Action {
        Action::Input(input)
    }
}

impl From<Report> for Action {
    fn from(report: Report) -> Action {
        Action::Report(report)
    }
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
    /// Start node `id` with `--join via` (no `--cluster`): a node added at
    /// runtime, a replacement, or a later restart of either.
    Join {
        id: u64,
        via: String,
        wipe_data: bool,
    },
    /// Send a membership change to the leader among `addrs` (retried until
    /// `MEMBER_CHANGE_DEADLINE_MS`); the answer comes back as `MemberChanged`.
    ChangeMembership {
        change: MemberChange,
        addrs: Vec<String>,
    },
    /// Node `id` left the cluster: the runtime stops counting it a member.
    Forget {
        id: u64,
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
    /// Give every ordered peer link (from, to) this mode in the fault proxy
    /// the links pass through.
    SetLinks {
        links: Vec<(Link, LinkMode)>,
    },
    /// SIGSTOP.
    Pause {
        id: u64,
    },
    /// SIGCONT.
    Resume {
        id: u64,
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

/// Joins node ids for a sentence: `node 3`, `nodes 2 and 3`, `nodes 1, 2 and 3`.
pub fn name_nodes(ids: &[u64]) -> String {
    let listed: Vec<String> = ids.iter().map(u64::to_string).collect();
    match listed.as_slice() {
        [] => "no node".to_string(),
        [one] => format!("node {one}"),
        [init @ .., last] => format!("nodes {} and {last}", init.join(", ")),
    }
}

/// The message line: the result of the last key, or why it was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flash {
    pub at_ms: u64,
    pub tone: Tone,
    pub text: String,
}

/// The dashboard. Fields are grouped by the module that changes them.
#[derive(Clone, Debug)]
pub struct App {
    // ----- the screen (this module) -----
    pub mode: Mode,
    pub started_at_ms: u64,
    pub now_ms: u64,
    pub help_open: bool,
    pub timeline: VecDeque<TimelineEvent>,
    pub flash: Option<Flash>,
    /// Since when quitting waits for the nodes to stop.
    pub quitting_since_ms: Option<u64>,
    pub should_exit: bool,

    // ----- nodes -----
    pub nodes: Vec<NodeView>,
    /// Index into `nodes`.
    pub selected: usize,

    // ----- workload -----
    pub bulk_write_count: u64,
    /// Size of the bulk write running now.
    pub bulk_in_flight: Option<u64>,
    pub bulk_queue: VecDeque<u64>,
    pub load_on: bool,
    pub acked: AckedKeys,
    pub outcome_unknown_writes: u64,
    pub verify_running: bool,
    pub write_rate: WriteRate,

    // ----- observer -----
    /// Highest term whose leader has been announced in the timeline.
    pub announced_term: u64,
    pub elections_seen: u64,
    /// Set by a leader kill (`nodes`), timed by the observer.
    pub leader_kill: Option<LeaderKill>,
    /// Set by a fault on the leader (`faults`), timed by the observer.
    pub leader_fault: Option<LeaderFault>,
    /// (row, term) of the leader the screen showed when last drawn.
    pub drawn_leader: Option<(usize, u64)>,
    /// What the cluster has been seen to commit and apply, and the alarms.
    pub integrity: IntegrityWatch,
    /// (event, peer, incarnation) of membership events already in the
    /// timeline: every node logs them, the timeline says them once.
    membership_events_shown: BTreeSet<(String, u64, String)>,
    last_convergence: Option<Convergence>,
    /// (index, nodes up) of the last CONVERGED entry in the timeline.
    announced_converged: Option<(u64, usize)>,

    /// The last verdict on the load's history; a problem, once seen, stays.
    pub history_verdict: Option<HistoryVerdict>,

    // ----- membership -----
    /// The change `a`, `-` or `R` is carrying out (one at a time).
    pub member_op: Option<MemberOp>,
    /// Every id `a` may start, with its address (the supervised layout's
    /// ids up to its cap; empty when attached).
    pub addable: Vec<NodeConfig>,

    // ----- gate -----
    /// The quality gate, from `d` until well after it ends.
    pub gate: Option<GateView>,
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
            leader_fault: None,
            drawn_leader: None,
            history_verdict: None,
            member_op: None,
            addable: Vec::new(),
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

    /// Applies one action at time `now_ms`; returns the work to do.
    pub fn update(&mut self, action: impl Into<Action>, now_ms: u64) -> Vec<Effect> {
        self.now_ms = self.now_ms.max(now_ms);
        self.write_rate.advance_to(self.now_ms);
        match action.into() {
            Action::Input(input) => self.on_input(input),
            Action::Report(report) => self.on_report(report),
        }
    }

    fn on_input(&mut self, input: Input) -> Vec<Effect> {
        // Any key but `?` and `q` closes the help and then acts, except Esc,
        // which only closes it.
        if self.help_open && !matches!(input, Input::ToggleHelp | Input::Quit) {
            self.help_open = false;
            if input == Input::CloseHelp {
                return Vec::new();
            }
        }
        match input {
            Input::Quit => self.quit(),
            Input::ToggleHelp => {
                self.help_open = !self.help_open;
                Vec::new()
            }
            Input::CloseHelp if self.gate_running() => self.abort_gate(),
            Input::CloseHelp => Vec::new(),
            Input::SelectNext => {
                self.step_selection(true);
                Vec::new()
            }
            Input::SelectPrevious => {
                self.step_selection(false);
                Vec::new()
            }
            Input::Select(id) => {
                self.select_node(id);
                Vec::new()
            }
            Input::KillLeader => self.kill_leader(),
            Input::KillSelected => self.kill_selected(),
            Input::StopSelected => self.stop_selected(),
            Input::RestartSelected => self.restart_selected(),
            Input::ReplaceSelected => self.replace_selected(),
            Input::AddNode => self.add_node(),
            Input::RemoveSelected => self.remove_selected(),
            Input::ToggleIsolateSelected => self.toggle_isolate_selected(),
            Input::ToggleInboundCutSelected => self.toggle_inbound_cut_selected(),
            Input::TogglePauseSelected => self.toggle_pause_selected(),
            Input::ToggleSlowSelected => self.toggle_slow_selected(),
            Input::HealAll => self.heal_all(),
            Input::BulkWrite => self.bulk_write(),
            Input::BulkWriteCountUp => {
                self.step_bulk_count(true);
                Vec::new()
            }
            Input::BulkWriteCountDown => {
                self.step_bulk_count(false);
                Vec::new()
            }
            Input::ToggleWriteLoad => self.toggle_write_load(),
            Input::Verify => self.verify(),
            Input::RunGate => self.run_gate(),
            Input::ExportEvidence => self.export_evidence(),
            Input::UnknownKey(key) => {
                let help = keymap::key_label(&Input::ToggleHelp);
                self.refuse(format!(
                    "key '{key}' does nothing; press {help} for the list of keys"
                ));
                Vec::new()
            }
        }
    }

    fn on_report(&mut self, report: Report) -> Vec<Effect> {
        match report {
            Report::Tick => self.tick(),
            Report::Status(report) => self.on_status(report),
            Report::Process(report) => self.on_process(report),
            Report::NodeLog(line) => {
                self.on_log_line(line);
                Vec::new()
            }
            Report::Write(report) => self.on_write(report),
            Report::VerifyFinished(result) => {
                self.on_verify(result);
                Vec::new()
            }
            Report::GateProgress(progress) => {
                self.on_gate_progress(*progress);
                Vec::new()
            }
            Report::GateFinished(outcome) => {
                self.on_gate_finished(*outcome);
                Vec::new()
            }
            Report::EvidenceExported(result) => {
                self.on_evidence_exported(result);
                Vec::new()
            }
            Report::HistoryChecked(verdict) => {
                self.on_history_checked(verdict);
                Vec::new()
            }
            Report::MemberChanged { change, result } => {
                let effects = self.on_member_changed(change, result);
                self.observe_cluster();
                effects
            }
        }
    }

    // ----- derived state ---------------------------------------------------

    pub fn row_of(&self, id: u64) -> Option<usize> {
        self.nodes.iter().position(|n| n.config.id == id)
    }

    pub fn selected_node(&self) -> Option<&NodeView> {
        self.nodes.get(self.selected)
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

    /// Adds an event in time order: node logs are read some milliseconds
    /// apart, so an event can arrive after a later one from another node.
    fn record_at(&mut self, at_ms: u64, tone: Tone, text: String) {
        tracing::info!(event = "timeline", text = %text);
        let after = self
            .timeline
            .iter()
            .rposition(|e| e.at_ms <= at_ms)
            .map_or(0, |i| i + 1);
        self.timeline
            .insert(after, TimelineEvent { at_ms, tone, text });
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

    // ----- quitting and the clock --------------------------------------------

    /// `q`: stop the nodes gracefully and leave once they are down; `q`
    /// again leaves at once.
    fn quit(&mut self) -> Vec<Effect> {
        if self.quitting_since_ms.is_some() {
            self.should_exit = true;
            return Vec::new();
        }
        let mut effects = Vec::new();
        effects.extend(self.stop_write_load());
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

    /// Time passes: the quit deadline, and what polling has revealed.
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
}

#[cfg(test)]
pub(crate) mod tests;
