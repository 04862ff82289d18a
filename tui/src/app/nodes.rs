//! The node processes as the dashboard sees and controls them: each node's
//! view (process state, last status, log tail), the selection, the keys
//! that kill, stop and restart a node, and the refusal (for `R`, in
//! `membership`) to wipe a node when too few intact copies of the committed
//! log would remain.

use std::collections::VecDeque;

use super::faults::NodeFaults;
use super::{keymap, name_nodes, App, Effect, Input, LeaderKill, Mode, Tone, GATE_RUNNING_REFUSAL};
use crate::poll::LogLine;
use crate::status::NodeStatus;
use crate::supervisor::{ExitKind, ProcessEvent, ProcessReport};

/// A status older than this is not trusted (the node counts as not answering).
pub const STATUS_STALE_MS: u64 = 1_000;

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
    /// The faults this dashboard set on the node (`p`, `o`, `l`, `z`).
    pub faults: NodeFaults,
    /// When `z` paused the process.
    pub paused_at_ms: Option<u64>,
    /// Set when the node is healed or resumed; cleared (with a timeline
    /// entry) when it follows the leader and has caught up.
    pub rejoining_since_ms: Option<u64>,
    /// Election timeouts logged since the node last had a leader.
    pub election_timeouts_in_a_row: u32,
    /// Started with `--join` (added at runtime, or a replacement): later
    /// starts join too.
    pub joined: bool,
    /// Its removal committed: no longer a member, its process is stopping.
    pub removed: bool,
}

impl NodeView {
    pub(super) fn new(config: NodeConfig, process: ProcessState) -> NodeView {
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
            faults: NodeFaults::default(),
            paused_at_ms: None,
            rejoining_since_ms: None,
            election_timeouts_in_a_row: 0,
            joined: false,
            removed: false,
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
        self.is_intact()
            && self
                .status
                .as_ref()
                .is_some_and(|s| s.last_index >= committed)
    }

    /// Not wiped (nor about to be) since it was last seen as a registered
    /// voter: its disk still holds whatever log it had.
    pub fn is_intact(&self) -> bool {
        self.wiped_at_ms.is_none()
            && self.restart_pending != Some(true)
            && self.status.as_ref().is_some_and(|s| s.is_registered())
    }

    /// The node says it is not (yet) a voter: it came back with an empty disk.
    pub fn is_non_voter(&self) -> bool {
        self.status.as_ref().is_some_and(|s| !s.is_registered())
    }
}

/// Why a process-control key does nothing in `--attach` mode.
pub const ATTACHED_REFUSAL: &str =
    "attached to a cluster this dashboard did not start: it cannot kill or restart those processes";

impl App {
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

    // ----- selection ---------------------------------------------------------

    /// `→`/Tab (`forward`) and `←`: the next or previous row, wrapping around.
    pub(super) fn step_selection(&mut self, forward: bool) {
        let len = self.nodes.len().max(1);
        self.selected = if forward {
            (self.selected + 1) % len
        } else {
            (self.selected + len - 1) % len
        };
    }

    /// `1`-`9`: the node with that id, or why there is none.
    pub(super) fn select_node(&mut self, id: u64) {
        match self.row_of(id) {
            Some(row) => self.selected = row,
            None => self.refuse(format!(
                "there is no node {id}: this cluster has {} nodes",
                self.nodes.len()
            )),
        }
    }

    // ----- process control ---------------------------------------------------

    /// Refuses in `--attach` mode, while the gate runs and while quitting;
    /// true when refused.
    pub(super) fn refuse_process_control(&mut self) -> bool {
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

    /// The selected row and its node's id, for a key that controls the
    /// node's process; `None` when `refuse_process_control` refused.
    pub(super) fn selected_for_process_control(&mut self) -> Option<(usize, u64)> {
        if self.refuse_process_control() {
            return None;
        }
        let row = self.selected;
        Some((row, self.nodes[row].id()))
    }

    pub(super) fn kill_leader(&mut self) -> Vec<Effect> {
        if self.refuse_process_control() {
            return Vec::new();
        }
        let Some((row, term)) = self.table_leader() else {
            self.refuse(
                "no leader to kill: none is elected right now (election running or no quorum)"
                    .into(),
            );
            return Vec::new();
        };
        self.selected = row;
        self.kill_row(row, Some(term))
    }

    pub(super) fn kill_selected(&mut self) -> Vec<Effect> {
        if self.refuse_process_control() {
            return Vec::new();
        }
        let row = self.selected;
        let term = self
            .table_leader()
            .filter(|(leader_row, _)| *leader_row == row)
            .map(|(_, term)| term);
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
        let restart = keymap::key_label(&Input::RestartSelected);
        format!("node {id} is not running ({state}); press {restart} to restart it")
    }

    pub(super) fn stop_selected(&mut self) -> Vec<Effect> {
        let Some((row, id)) = self.selected_for_process_control() else {
            return Vec::new();
        };
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

    pub(super) fn restart_selected(&mut self) -> Vec<Effect> {
        let Some((row, id)) = self.selected_for_process_control() else {
            return Vec::new();
        };
        if let Some(why) = self.member_op_holds(row) {
            self.refuse(format!("r refused: node {id} is {why}"));
            return Vec::new();
        }
        if self.nodes[row].is_down() {
            return self.start_row(row, false);
        }
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
            .filter(|r| self.nodes[*r].is_down() && self.member_op_holds(*r).is_none())
            .collect();
        if !down.is_empty() {
            return down
                .into_iter()
                .flat_map(|r| self.start_row(r, false))
                .collect();
        }
        self.restart_running_row(row, false)
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
        vec![self.restart_effect(row, wipe_data)]
    }

    /// Why wiping the node in `row` (`R`) is refused, if it is: the other
    /// voters that hold the committed log, or are being brought up to date
    /// with it, must be at least a quorum. A wiped node counts for nothing
    /// until re-admitted, so with fewer the cluster would lose writes or
    /// stay unavailable until a stopped node returns.
    ///
    /// Holders: a voter whose last seen log reaches the highest commit
    /// index seen (a stopped one too: its disk outlives its process); the
    /// leader of the newest term, which holds every committed entry
    /// (Leader Completeness); and a live follower of that leader, which it
    /// streams every entry to. Under write load a poll is always a few
    /// entries behind the commit index another node reported since, so
    /// without the last two a running cluster would look like it held the
    /// log nowhere. Counting them holds even when the node to wipe is that
    /// leader: with every other voter intact, any quorum that committed an
    /// entry meets any quorum that can elect among the rest.
    pub fn wipe_refusal(&self, row: usize) -> Option<String> {
        let committed = self.integrity.committed_max();
        let id = self.nodes[row].config.id;
        // Only voters' copies count: a learner's vote never elects anyone.
        let voters = self.voter_ids();
        let newest_term = self.integrity.newest_term();
        let leader = self
            .nodes
            .iter()
            .filter(|n| n.is_intact())
            .filter_map(|n| n.live_status(self.now_ms))
            .find(|s| s.is_leader() && s.term >= newest_term)
            .map(|s| (s.id, s.term));
        let kept_up_to_date = |n: &NodeView| {
            let Some((leader_id, term)) = leader else {
                return false;
            };
            n.is_intact()
                && n.live_status(self.now_ms).is_some_and(|s| {
                    s.term == term && (s.id == leader_id || s.leader_id == leader_id)
                })
        };
        let holders: Vec<u64> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(r, n)| *r != row && voters.contains(&n.id()))
            .filter(|(_, n)| n.holds_committed_log(committed) || kept_up_to_date(n))
            .map(|(_, n)| n.config.id)
            .collect();
        let quorum = voters.len() / 2 + 1;
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

    pub(super) fn on_process(&mut self, report: ProcessReport) -> Vec<Effect> {
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
        self.forget_process_faults(row);
        let tone = if expected { Tone::Warn } else { Tone::Bad };
        let surprise = if expected { "" } else { " unexpectedly" };
        self.record_at(at_ms, tone, format!("node {id}{surprise} {exit}{pid}"));
        if self.quitting_since_ms.is_some() {
            if self.nodes.iter().all(|n| !n.process.is_alive()) {
                self.should_exit = true;
            }
            return Vec::new();
        }
        if let Some(effects) = self.member_op_on_exit(row) {
            self.observe_cluster();
            return effects;
        }
        if let Some(wipe_data) = self.nodes[row].restart_pending {
            return self.start_row(row, wipe_data);
        }
        self.observe_cluster();
        Vec::new()
    }
}
