//! The faults a person injects from the keyboard: `p` isolates a node, `o`
//! cuts only what it receives, `z` pauses its process (SIGSTOP), `l` slows
//! its links, `h` heals everything. Each node's faults live in its row; the
//! link modes the fault proxy gets are computed from all of them at once
//! (`link_modes`), so healing one node never opens a link another fault
//! still cuts. A fault that hits the leader is timed until a new leader is
//! elected and the old one steps down.

use raftkv_node::fault_proxy::{Link, LinkMode};

use super::{keymap, name_nodes, App, Effect, Input, ProcessState, Tone};
use crate::clock::format_duration_ms;

/// What `l` does to every link of the selected node, each way.
pub const SLOW_LINK: LinkMode = LinkMode::Delay {
    fixed_ms: 40,
    jitter_ms: 20,
};

/// One node's faults, as this dashboard set them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeFaults {
    /// Every peer link to and from the node is cut (`p`).
    pub isolated: bool,
    /// The node still sends to its peers but receives nothing from them
    /// (`o`): what they send it stalls in the network.
    pub inbound_cut: bool,
    /// Its links are slow, both ways (`l`).
    pub slow: bool,
    /// Its process is stopped with SIGSTOP (`z`).
    pub paused: bool,
}

impl NodeFaults {
    pub fn any(&self) -> bool {
        *self != NodeFaults::default()
    }

    /// The node cannot take part in a quorum while this holds.
    pub fn out_of_quorum(&self) -> bool {
        self.isolated || self.inbound_cut || self.paused
    }

    /// The LINKS column: `cut`, `out-only` (sends, hears nothing), `slow`,
    /// combined as `cut+slow` or `out+slow`, or `ok`.
    pub fn links_label(&self) -> String {
        let label = match (self.isolated, self.inbound_cut, self.slow) {
            (true, _, false) => "cut",
            (true, _, true) => "cut+slow",
            (false, true, false) => "out-only",
            (false, true, true) => "out+slow",
            (false, false, true) => "slow",
            (false, false, false) => "ok",
        };
        label.to_string()
    }
}

/// The mode of every ordered link between `nodes` (id, faults): a link is
/// severed when either end is isolated, stalled when its receiver hears
/// nothing (`o`: a one-way partition; bytes already sent arrive after the
/// heal, as a real network delivers them late), slow when either end is
/// slow, open otherwise.
pub fn link_modes(nodes: &[(u64, NodeFaults)]) -> Vec<(Link, LinkMode)> {
    let mut modes = Vec::new();
    for &(from, sender) in nodes {
        for &(to, receiver) in nodes.iter().filter(|(to, _)| *to != from) {
            let mode = if sender.isolated || receiver.isolated {
                LinkMode::Sever
            } else if receiver.inbound_cut {
                LinkMode::Stall
            } else if sender.slow || receiver.slow {
                SLOW_LINK
            } else {
                LinkMode::Open
            };
            modes.push(((from, to), mode));
        }
    }
    modes
}

/// How a fault took the leader away from its followers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaderFaultKind {
    Isolated,
    InboundCut,
    Paused,
}

impl LeaderFaultKind {
    /// `node 1 was cut off`: the end of the new leader's timeline line.
    fn happened(self) -> &'static str {
        match self {
            LeaderFaultKind::Isolated => "was cut off",
            LeaderFaultKind::InboundCut => "stopped hearing its peers",
            LeaderFaultKind::Paused => "was paused",
        }
    }
}

/// A fault on the leader whose consequences are being timed: the new
/// leader (cleared when announced) and the old one's step-down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderFault {
    pub node: u64,
    pub term: u64,
    pub kind: LeaderFaultKind,
    pub at_ms: u64,
    /// When a paused leader was resumed: its step-down is timed from then.
    pub resumed_at_ms: Option<u64>,
    pub new_leader_announced: bool,
    pub stepped_down: bool,
    /// Nodes whose first detection of the lost leader has been timed.
    pub detected_by: Vec<u64>,
}

impl LeaderFault {
    /// Both consequences have been told: nothing left to time.
    fn told(&self) -> bool {
        self.new_leader_announced && self.stepped_down
    }
}

impl App {
    /// The row's faults, in `link_modes`' form, for every node.
    fn node_faults(&self) -> Vec<(u64, NodeFaults)> {
        self.nodes.iter().map(|n| (n.config.id, n.faults)).collect()
    }

    /// The effect that gives the proxy the links every node's faults ask for.
    pub(super) fn links_effect(&self) -> Effect {
        Effect::SetLinks {
            links: link_modes(&self.node_faults()),
        }
    }

    /// True while some node has a fault this dashboard set.
    pub fn any_fault(&self) -> bool {
        self.nodes.iter().any(|n| n.faults.any())
    }

    /// The nodes a quorum can be made of: running, answering the network
    /// both ways, not paused. Fewer than a majority means no quorum.
    pub fn quorum_candidates(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| n.process.is_alive() && !n.faults.out_of_quorum())
            .map(|n| n.config.id)
            .collect()
    }

    pub fn majority(&self) -> usize {
        self.nodes.len() / 2 + 1
    }

    /// ` (leader, term 3)` when `row` is the leader the table shows.
    fn leader_role_text(&self, row: usize) -> String {
        self.shown_leader_of(row)
            .map(|term| format!(" (leader, term {term})"))
            .unwrap_or_default()
    }

    /// The term of `row` when the table shows it as the leader.
    fn shown_leader_of(&self, row: usize) -> Option<u64> {
        self.table_leader()
            .filter(|(leader_row, _)| *leader_row == row)
            .map(|(_, term)| term)
    }

    /// Times what a fault on the leader in `row` leads to.
    fn time_leader_fault(&mut self, row: usize, kind: LeaderFaultKind) {
        if let Some(term) = self.shown_leader_of(row) {
            self.leader_fault = Some(LeaderFault {
                node: self.nodes[row].config.id,
                term,
                kind,
                at_ms: self.now_ms,
                resumed_at_ms: None,
                new_leader_announced: false,
                stepped_down: false,
                detected_by: Vec::new(),
            });
        }
    }

    /// `p`: cuts every peer link to and from the selected node (it keeps
    /// running and serving clients, as a partitioned machine does), or heals
    /// them.
    pub(super) fn toggle_isolate_selected(&mut self) -> Vec<Effect> {
        self.toggle_cut_selected(
            LeaderFaultKind::Isolated,
            "isolated: every peer link to and from it cut",
            "healed: its peer links are open again",
        )
    }

    /// `o`: the selected node keeps sending but hears nothing (a one-way
    /// partition), or hears again.
    pub(super) fn toggle_inbound_cut_selected(&mut self) -> Vec<Effect> {
        self.toggle_cut_selected(
            LeaderFaultKind::InboundCut,
            "one-way: it still sends, but receives nothing from its peers",
            "healed: it receives from its peers again",
        )
    }

    /// `p` and `o`: puts the cut in place (timing it when it hits the
    /// leader) or heals it (timing the rejoin), and says which.
    fn toggle_cut_selected(
        &mut self,
        kind: LeaderFaultKind,
        cut_text: &str,
        heal_text: &str,
    ) -> Vec<Effect> {
        let Some((row, id)) = self.selected_for_process_control() else {
            return Vec::new();
        };
        let faults = &self.nodes[row].faults;
        let cut = match kind {
            LeaderFaultKind::InboundCut => !faults.inbound_cut,
            _ => !faults.isolated,
        };
        let text = if cut {
            self.time_leader_fault(row, kind);
            format!("node {id}{} {cut_text}", self.leader_role_text(row))
        } else {
            self.start_rejoin(row);
            format!("node {id} {heal_text}")
        };
        let faults = &mut self.nodes[row].faults;
        match kind {
            LeaderFaultKind::InboundCut => faults.inbound_cut = cut,
            _ => faults.isolated = cut,
        }
        self.tell(Tone::Action, text);
        vec![self.links_effect()]
    }

    /// `l`: slows every link of the selected node, or makes them fast again.
    pub(super) fn toggle_slow_selected(&mut self) -> Vec<Effect> {
        let Some((row, id)) = self.selected_for_process_control() else {
            return Vec::new();
        };
        let slow = !self.nodes[row].faults.slow;
        self.nodes[row].faults.slow = slow;
        let text = match (slow, SLOW_LINK) {
            (true, LinkMode::Delay {
                fixed_ms,
                jitter_ms,
            }) => format!(
                "node {id} slow links: {fixed_ms} ms + up to {jitter_ms} ms each way, to and from it"
            ),
            _ => format!("node {id} links fast again"),
        };
        self.tell(Tone::Action, text);
        vec![self.links_effect()]
    }

    /// `z`: SIGSTOP the selected node (it keeps its sockets and its belief
    /// that it leads), or SIGCONT it.
    pub(super) fn toggle_pause_selected(&mut self) -> Vec<Effect> {
        let Some((row, id)) = self.selected_for_process_control() else {
            return Vec::new();
        };
        if !matches!(self.nodes[row].process, ProcessState::Running { .. }) {
            let why = if self.nodes[row].faults.paused {
                format!("node {id} is not running any more: nothing to resume")
            } else {
                let restart = keymap::key_label(&Input::RestartSelected);
                format!("node {id} is not running: nothing to pause (press {restart} to start it)")
            };
            self.refuse(why);
            return Vec::new();
        }
        if self.nodes[row].faults.paused {
            self.nodes[row].faults.paused = false;
            self.resume_row(row);
            return vec![Effect::Resume { id }];
        }
        self.time_leader_fault(row, LeaderFaultKind::Paused);
        let role = self.leader_role_text(row);
        self.nodes[row].faults.paused = true;
        self.nodes[row].paused_at_ms = Some(self.now_ms);
        self.tell(
            Tone::Action,
            format!(
                "node {id}{role} paused (SIGSTOP): frozen, sockets open, still sure of its role"
            ),
        );
        vec![Effect::Pause { id }]
    }

    /// The timeline line of a resume, and the timing of what follows.
    fn resume_row(&mut self, row: usize) {
        let id = self.nodes[row].config.id;
        let paused_for = self.nodes[row]
            .paused_at_ms
            .take()
            .map(|at| {
                format!(
                    " after {}",
                    format_duration_ms(self.now_ms.saturating_sub(at))
                )
            })
            .unwrap_or_default();
        if let Some(fault) = self.leader_fault.as_mut().filter(|f| f.node == id) {
            fault.resumed_at_ms = Some(self.now_ms);
        }
        self.start_rejoin(row);
        self.tell(
            Tone::Action,
            format!("node {id} resumed (SIGCONT){paused_for}"),
        );
    }

    /// `h`: every link open and every paused node resumed.
    pub(super) fn heal_all(&mut self) -> Vec<Effect> {
        if self.refuse_process_control() {
            return Vec::new();
        }
        if !self.any_fault() {
            self.refuse("nothing to heal: every link is open and no node is paused".into());
            return Vec::new();
        }
        let mut effects = Vec::new();
        let mut healed = Vec::new();
        for row in 0..self.nodes.len() {
            let faults = self.nodes[row].faults;
            if !faults.any() {
                continue;
            }
            healed.push(self.nodes[row].config.id);
            if faults.isolated || faults.inbound_cut {
                self.start_rejoin(row);
            }
            self.nodes[row].faults = NodeFaults::default();
            if faults.paused {
                let id = self.nodes[row].config.id;
                self.resume_row(row);
                effects.push(Effect::Resume { id });
            }
        }
        effects.push(self.links_effect());
        self.tell(
            Tone::Action,
            format!(
                "healed: every link open, nothing paused ({} had faults)",
                name_nodes(&healed)
            ),
        );
        effects
    }

    /// A node back on the network: the timeline says when it has caught up.
    fn start_rejoin(&mut self, row: usize) {
        self.nodes[row].rejoining_since_ms = Some(self.now_ms);
    }

    /// A node's process has exited: it can be neither paused nor timed.
    pub(super) fn forget_process_faults(&mut self, row: usize) {
        self.nodes[row].faults.paused = false;
        self.nodes[row].paused_at_ms = None;
        self.nodes[row].rejoining_since_ms = None;
    }

    /// ", 410 ms after node 1 was cut off" for the first leader elected
    /// after a fault on the old one.
    pub(super) fn time_new_leader(&mut self, id: u64, at_ms: u64) -> String {
        let text = match &mut self.leader_fault {
            Some(fault) if fault.node != id && !fault.new_leader_announced => {
                fault.new_leader_announced = true;
                format!(
                    ", {} after node {} {}",
                    format_duration_ms(at_ms.saturating_sub(fault.at_ms)),
                    fault.node,
                    fault.kind.happened()
                )
            }
            _ => String::new(),
        };
        self.leader_fault.take_if(|f| f.told());
        text
    }

    /// ` (41 ms after node 3 was cut off)` for a node's first detection of a
    /// leader taken away by a fault.
    pub(super) fn time_fault_detection(&mut self, id: u64, at_ms: u64) -> String {
        match &mut self.leader_fault {
            Some(fault)
                if fault.node != id
                    && !fault.detected_by.contains(&id)
                    && !fault.new_leader_announced =>
            {
                fault.detected_by.push(id);
                format!(
                    " ({} after node {} {})",
                    format_duration_ms(at_ms.saturating_sub(fault.at_ms)),
                    fault.node,
                    fault.kind.happened()
                )
            }
            _ => String::new(),
        }
    }

    /// The timeline line of a step-down: with the fault that caused it and
    /// how long it took, when one is being timed.
    pub(super) fn describe_step_down(
        &mut self,
        id: u64,
        term_text: &str,
        reason: Option<&str>,
        at_ms: u64,
    ) -> String {
        let because = reason.map(|r| format!(": {r}")).unwrap_or_default();
        let Some(fault) = self
            .leader_fault
            .as_mut()
            .filter(|f| f.node == id && !f.stepped_down)
        else {
            return format!("node {id} stepped down{term_text}{because}");
        };
        fault.stepped_down = true;
        let (term, fault_at_ms, resumed_at_ms) = (fault.term, fault.at_ms, fault.resumed_at_ms);
        self.leader_fault.take_if(|f| f.told());
        match resumed_at_ms {
            Some(resumed) => format!(
                "node {id} (leader of term {term} until paused) stepped down {} after it resumed{because}",
                format_duration_ms(at_ms.saturating_sub(resumed))
            ),
            None => format!(
                "node {id} (leader, term {term}) stepped down after {} without a quorum{because}",
                format_duration_ms(at_ms.saturating_sub(fault_at_ms))
            ),
        }
    }
}
