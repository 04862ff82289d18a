//! Members added, removed and replaced from the keyboard: `a` starts the
//! next free node id empty with `--join` (it asks to be a learner and is
//! promoted by the leader once caught up), `-` removes the selected node
//! through the leader and stops its process once the removal committed,
//! `R` replaces the selected node with an empty disk (stop, remove, wipe,
//! join as a new incarnation). One such change runs at a time, as the core
//! takes one configuration change at a time. The steps and their figures
//! come from the leader's RAFT.STATUS (`voters`, `learners`,
//! `previous_voters`, `match_index_<id>`), the replies to the changes and
//! the joining node's log.

use super::{name_nodes, App, Effect, NodeConfig, NodeView, ProcessState, Tone};
use crate::clock::format_duration_ms;
use crate::membership::MemberChange;
use crate::plan::thousands;
use crate::status::{id_set, short_incarnation, NodeStatus};

/// A change sent to the leader may retry (elections, TRYAGAIN while an
/// earlier change settles) for this long before the dashboard gives up.
pub const MEMBER_CHANGE_DEADLINE_MS: u64 = 20_000;

/// The newest configuration, as the leader (or the freshest node) reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MembershipView {
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    /// Non-empty while a change is pending (joint consensus).
    pub previous_voters: Vec<u64>,
    pub index: u64,
}

impl MembershipView {
    fn from_status(status: &NodeStatus) -> MembershipView {
        MembershipView {
            voters: status.voters.clone(),
            learners: status.learners.clone(),
            previous_voters: status.previous_voters.clone(),
            index: status.membership_index,
        }
    }

    pub fn is_joint(&self) -> bool {
        !self.previous_voters.is_empty()
    }

    pub fn is_member(&self, id: u64) -> bool {
        self.voters.contains(&id) || self.learners.contains(&id)
    }
}

/// A node started with `--join`, on its way to voter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joining {
    pub id: u64,
    pub started_at_ms: u64,
    /// `R`: the same id with an empty disk, after the old one was removed.
    pub replacing: bool,
    /// The newest configuration index seen listing this id before the join
    /// started (its old member, before a removal): only a configuration
    /// newer than it tells about the joining node.
    pub stale_index: u64,
    /// (when, at which configuration index) the leader listed it as a learner.
    pub learner_at: Option<(u64, u64)>,
    pub incarnation: Option<String>,
    /// (when, index): its log reached the leader's commit index.
    pub caught_up: Option<(u64, u64)>,
    /// It installed a snapshot on the way.
    pub by_snapshot: bool,
}

/// The membership change the dashboard is carrying out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberOp {
    Join(Joining),
    /// `-`: RAFT.REMOVE sent; the process stops once it committed.
    Remove {
        id: u64,
        at_ms: u64,
    },
    /// `R`, first steps: stopping the process, then removing the old member.
    Replace {
        id: u64,
        at_ms: u64,
        removing: bool,
    },
}

impl MemberOp {
    pub fn id(&self) -> u64 {
        match self {
            MemberOp::Join(joining) => joining.id,
            MemberOp::Remove { id, .. } | MemberOp::Replace { id, .. } => *id,
        }
    }

    /// `adding node 4`, for refusals.
    fn describe(&self) -> String {
        match self {
            MemberOp::Join(Joining {
                id,
                replacing: false,
                ..
            }) => format!("adding node {id}"),
            MemberOp::Join(Joining { id, .. }) | MemberOp::Replace { id, .. } => {
                format!("replacing node {id}")
            }
            MemberOp::Remove { id, .. } => format!("removing node {id}"),
        }
    }
}

/// Why a configuration change would leave no quorum, if it would: the
/// voters of the configuration before and after it must each keep a
/// majority of nodes that are up and connected (`up`), since both decide
/// while the change is pending.
pub fn quorum_refusal(voters: &[u64], removed: u64, up: &[u64]) -> Option<String> {
    let after: Vec<u64> = voters.iter().copied().filter(|v| *v != removed).collect();
    if voters.contains(&removed) && after.is_empty() {
        return Some(format!("node {removed} is the last voter"));
    }
    for (which, config) in [("the voters", voters), ("the remaining voters", &after[..])] {
        let reachable: Vec<u64> = config
            .iter()
            .copied()
            .filter(|v| *v != removed && up.contains(v))
            .collect();
        let majority = config.len() / 2 + 1;
        if reachable.len() < majority {
            return Some(format!(
                "{which} {} would have {} up and connected ({}); a quorum of them is {majority}",
                id_set(config),
                reachable.len(),
                if reachable.is_empty() {
                    "none".to_string()
                } else {
                    name_nodes(&reachable)
                },
            ));
        }
    }
    None
}

impl App {
    /// The newest configuration: the leader's, else the one with the
    /// highest index among answering nodes; `None` from nodes that do not
    /// report membership.
    pub fn membership(&self) -> Option<MembershipView> {
        if let Some((_, leader)) = self.leader() {
            if !leader.voters.is_empty() {
                return Some(MembershipView::from_status(leader));
            }
        }
        self.nodes
            .iter()
            .filter_map(|n| n.live_status(self.now_ms))
            .filter(|s| !s.voters.is_empty())
            .max_by_key(|s| s.membership_index)
            .map(MembershipView::from_status)
    }

    /// The voters: the configuration's, or every row that is not being
    /// removed when the nodes do not say.
    pub fn voter_ids(&self) -> Vec<u64> {
        match self.membership() {
            Some(view) => view.voters,
            None => self
                .nodes
                .iter()
                .filter(|n| !n.removed && !n.joined)
                .map(|n| n.config.id)
                .collect(),
        }
    }

    /// True when `id` is a learner of the newest configuration.
    pub fn is_learner(&self, id: u64) -> bool {
        self.membership()
            .is_some_and(|view| view.learners.contains(&id))
    }

    /// The node `id` while it joins (started with `--join`, not yet a voter).
    pub fn joining(&self) -> Option<&Joining> {
        match &self.member_op {
            Some(MemberOp::Join(joining)) => Some(joining),
            _ => None,
        }
    }

    /// Why no membership change can start now, if none can.
    fn member_change_refusal(&self) -> Option<String> {
        if let Some(op) = &self.member_op {
            return Some(format!("{} is still in progress", op.describe()));
        }
        if let Some(view) = self.membership().filter(MembershipView::is_joint) {
            return Some(format!(
                "a configuration change is pending (voters {} -> {}); wait until it commits",
                id_set(&view.previous_voters),
                id_set(&view.voters)
            ));
        }
        None
    }

    /// The newest configuration index any status seen so far lists `id` in.
    fn stale_membership_index(&self, id: u64) -> u64 {
        self.nodes
            .iter()
            .filter_map(|n| n.status.as_ref())
            .filter(|s| s.voters.contains(&id) || s.learners.contains(&id))
            .map(|s| s.membership_index)
            .max()
            .unwrap_or(0)
    }

    /// Why the node in `row` must be left to the change in progress (being
    /// removed, or replaced and not started yet), if it must.
    pub(super) fn member_op_holds(&self, row: usize) -> Option<&'static str> {
        let node = &self.nodes[row];
        match &self.member_op {
            Some(MemberOp::Remove { id, .. }) if *id == node.id() => Some("being removed"),
            Some(MemberOp::Replace { id, .. }) if *id == node.id() => {
                Some("being replaced: it starts empty once the old member is removed")
            }
            _ if node.removed => Some("removed from the cluster"),
            _ => None,
        }
    }

    /// The client address a node joins through: the leader's, else any
    /// other running node's.
    fn join_via(&self, id: u64) -> Option<String> {
        if let Some((row, _)) = self.leader().filter(|(row, _)| self.nodes[*row].id() != id) {
            return Some(self.nodes[row].config.client_addr.clone());
        }
        self.nodes
            .iter()
            .find(|n| n.id() != id && n.process.is_alive() && !n.removed)
            .map(|n| n.config.client_addr.clone())
    }

    /// The addresses a change is sent to: the leader first, then every
    /// other running node (MOVED leads to the leader from any of them).
    fn change_addrs(&self) -> Vec<String> {
        let mut addrs: Vec<String> = self
            .leader()
            .map(|(row, _)| self.nodes[row].config.client_addr.clone())
            .into_iter()
            .collect();
        for node in self.nodes.iter().filter(|n| n.process.is_alive()) {
            if !addrs.contains(&node.config.client_addr) {
                addrs.push(node.config.client_addr.clone());
            }
        }
        addrs
    }

    /// RAFT.REMOVE of node `id`, sent to `change_addrs`.
    fn remove_member_effect(&self, id: u64) -> Effect {
        Effect::ChangeMembership {
            change: MemberChange::Remove { id },
            addrs: self.change_addrs(),
        }
    }

    // ----- a ------------------------------------------------------------------

    /// `a`: the next free id starts empty and joins through the leader.
    pub(super) fn add_node(&mut self) -> Vec<Effect> {
        if self.refuse_process_control() {
            return Vec::new();
        }
        if let Some(why) = self.member_change_refusal() {
            self.refuse(format!("a refused: {why}"));
            return Vec::new();
        }
        let Some(config) = self
            .addable
            .iter()
            .find(|c| self.row_of(c.id).is_none())
            .cloned()
        else {
            self.refuse(format!(
                "a refused: the dashboard runs at most {} nodes (remove one with -)",
                self.addable.len().max(self.nodes.len())
            ));
            return Vec::new();
        };
        let Some((leader_row, _)) = self.leader() else {
            self.refuse(
                "a refused: no leader to join through (election running or no quorum)".into(),
            );
            return Vec::new();
        };
        let via = self.nodes[leader_row].config.client_addr.clone();
        let leader_id = self.nodes[leader_row].id();
        let id = config.id;
        let mut node = NodeView::new(config, ProcessState::Starting);
        node.joined = true;
        node.restarted_at_ms = None;
        self.nodes.push(node);
        self.nodes.sort_by_key(NodeView::id);
        self.selected = self.row_of(id).unwrap_or(self.selected);
        self.member_op = Some(MemberOp::Join(Joining {
            id,
            started_at_ms: self.now_ms,
            replacing: false,
            stale_index: self.stale_membership_index(id),
            learner_at: None,
            incarnation: None,
            caught_up: None,
            by_snapshot: false,
        }));
        self.tell(
            Tone::Action,
            format!(
                "add node {id}: started with an empty disk, --join {via} (leader node {leader_id}); \
                 it becomes a learner, then a voter once caught up"
            ),
        );
        vec![
            Effect::Join {
                id,
                via,
                wipe_data: true,
            },
            self.links_effect(),
        ]
    }

    // ----- - ------------------------------------------------------------------

    /// `-`: RAFT.REMOVE of the selected node through the leader; its
    /// process stops once the removal committed.
    pub(super) fn remove_selected(&mut self) -> Vec<Effect> {
        let Some((row, id)) = self.selected_for_process_control() else {
            return Vec::new();
        };
        if let Some(why) = self.member_change_refusal() {
            self.refuse(format!("- refused: {why}"));
            return Vec::new();
        }
        let known_member = self.membership().is_none_or(|view| view.is_member(id));
        if !known_member && !self.nodes[row].process.is_alive() {
            // Never made it into the configuration (a join that failed).
            self.tell(
                Tone::Action,
                format!("node {id} is not a member and is not running: row removed"),
            );
            return self.drop_row(row);
        }
        if let Some(why) = quorum_refusal(&self.voter_ids(), id, &self.quorum_candidates()) {
            self.tell(Tone::Warn, format!("- refused: removing node {id}: {why}"));
            return Vec::new();
        }
        self.member_op = Some(MemberOp::Remove {
            id,
            at_ms: self.now_ms,
        });
        self.tell(
            Tone::Action,
            format!("remove node {id}: RAFT.REMOVE {id} through the leader; its process stops once the removal committed"),
        );
        vec![self.remove_member_effect(id)]
    }

    // ----- R ------------------------------------------------------------------

    /// `R`: replace the selected node with an empty disk: stop it, remove
    /// the old member, wipe its data dir and start the same id with
    /// `--join` (a new incarnation: learner, then voter).
    pub(super) fn replace_selected(&mut self) -> Vec<Effect> {
        let Some((row, id)) = self.selected_for_process_control() else {
            return Vec::new();
        };
        if self.nodes[row].is_restarting() {
            self.refuse(format!("node {id} is already restarting"));
            return Vec::new();
        }
        if let Some(why) = self.member_change_refusal() {
            self.refuse(format!("R refused: {why}"));
            return Vec::new();
        }
        if let Some(why) = self.wipe_refusal(row) {
            // In the timeline too: a refused wipe is part of the story.
            self.tell(Tone::Warn, why);
            return Vec::new();
        }
        if let Some(why) = quorum_refusal(&self.voter_ids(), id, &self.quorum_candidates()) {
            self.tell(
                Tone::Warn,
                format!("R refused: replacing node {id} removes it first, and {why}"),
            );
            return Vec::new();
        }
        self.member_op = Some(MemberOp::Replace {
            id,
            at_ms: self.now_ms,
            removing: false,
        });
        self.nodes[row].wiped_at_ms = Some(self.now_ms);
        match self.nodes[row].process {
            ProcessState::Running { pid } => {
                self.nodes[row].process = ProcessState::Stopping {
                    pid,
                    graceful: true,
                };
                self.tell(
                    Tone::Action,
                    format!(
                        "replace node {id} with an empty disk: 1/4 stop it (SIGTERM), then remove \
                         it, wipe it and start it empty with --join"
                    ),
                );
                vec![Effect::Stop { id }]
            }
            ProcessState::Stopping { .. } => {
                self.tell(
                    Tone::Action,
                    format!("replace node {id} with an empty disk once it has stopped"),
                );
                Vec::new()
            }
            _ => {
                self.tell(
                    Tone::Action,
                    format!("replace node {id} with an empty disk (it is down)"),
                );
                self.replace_remove_step(row)
            }
        }
    }

    /// `R`, step 2: the old member leaves the configuration.
    fn replace_remove_step(&mut self, row: usize) -> Vec<Effect> {
        let id = self.nodes[row].id();
        if let Some(MemberOp::Replace { removing, .. }) = &mut self.member_op {
            *removing = true;
        }
        self.record(
            Tone::Action,
            format!("replace node {id}: 2/4 RAFT.REMOVE {id} through the leader"),
        );
        vec![self.remove_member_effect(id)]
    }

    /// `R`, step 3: the same id starts with an empty disk and joins.
    fn replace_join_step(&mut self, row: usize, via: String) -> Vec<Effect> {
        let id = self.nodes[row].id();
        let node = &mut self.nodes[row];
        node.process = ProcessState::Starting;
        node.joined = true;
        node.restarted_at_ms = None;
        node.wiped_at_ms = Some(self.now_ms);
        node.registered_incarnation = None;
        node.output_lines_shown = 0;
        self.member_op = Some(MemberOp::Join(Joining {
            id,
            started_at_ms: self.now_ms,
            replacing: true,
            stale_index: self.stale_membership_index(id),
            learner_at: None,
            incarnation: None,
            caught_up: None,
            by_snapshot: false,
        }));
        self.record(
            Tone::Action,
            format!(
                "replace node {id}: 3/4 data dir wiped; started empty with --join {via} (a new \
                 incarnation)"
            ),
        );
        vec![Effect::Join {
            id,
            via,
            wipe_data: true,
        }]
    }

    /// A process exited: the membership change waiting for it moves on.
    /// `Some(effects)` when the exit belonged to one.
    pub(super) fn member_op_on_exit(&mut self, row: usize) -> Option<Vec<Effect>> {
        let id = self.nodes[row].id();
        match self.member_op.clone()? {
            MemberOp::Replace {
                id: replaced,
                removing: false,
                ..
            } if replaced == id => Some(self.replace_remove_step(row)),
            MemberOp::Remove { id: removed, .. } if removed == id && self.nodes[row].removed => {
                self.member_op = None;
                self.tell(
                    Tone::Good,
                    format!("node {id} removed and stopped; its row leaves the table"),
                );
                Some(self.drop_row(row))
            }
            MemberOp::Join(joining) if joining.id == id => {
                self.member_op = None;
                let minus = super::keymap::key_label(&super::Input::RemoveSelected);
                self.tell(
                    Tone::Bad,
                    format!(
                        "node {id} exited before it became a voter: the join stopped; press r to \
                         start it again or {minus} to remove it"
                    ),
                );
                None
            }
            _ => None,
        }
    }

    /// The leader answered a change (`+OK` once committed) or it failed.
    pub(super) fn on_member_changed(
        &mut self,
        change: MemberChange,
        result: Result<String, String>,
    ) -> Vec<Effect> {
        let id = change.id();
        let Some(op) = self.member_op.clone().filter(|op| op.id() == id) else {
            return Vec::new();
        };
        let Some(row) = self.row_of(id) else {
            self.member_op = None;
            return Vec::new();
        };
        let leader = match result {
            Ok(leader) => leader,
            Err(error) => {
                self.member_op = None;
                self.nodes[row].wiped_at_ms = None;
                let what = match op {
                    MemberOp::Replace { .. } => format!(
                        "replace node {id} stopped at step 2 ({error}); node {id} keeps its data: \
                         press r to start it again"
                    ),
                    _ => format!("{} failed: {error}", change.name()),
                };
                self.tell(Tone::Bad, what);
                return Vec::new();
            }
        };
        let voters: Vec<u64> = self.voter_ids().into_iter().filter(|v| *v != id).collect();
        match op {
            MemberOp::Remove { at_ms, .. } => {
                self.nodes[row].removed = true;
                self.tell(
                    Tone::Good,
                    format!(
                        "node {id} removed (committed by the leader at {leader}, {} after -); \
                         voters {}; stopping its process",
                        format_duration_ms(self.now_ms.saturating_sub(at_ms)),
                        id_set(&voters)
                    ),
                );
                match self.nodes[row].process {
                    ProcessState::Running { pid } => {
                        self.nodes[row].process = ProcessState::Stopping {
                            pid,
                            graceful: true,
                        };
                        vec![Effect::Stop { id }]
                    }
                    ProcessState::Stopping { .. } => Vec::new(),
                    _ => {
                        self.member_op = None;
                        self.drop_row(row)
                    }
                }
            }
            MemberOp::Replace { .. } => {
                self.record(
                    Tone::Good,
                    format!(
                        "replace node {id}: old member removed (committed by the leader at \
                         {leader}); voters {}",
                        id_set(&voters)
                    ),
                );
                self.replace_join_step(row, leader)
            }
            MemberOp::Join(_) => Vec::new(),
        }
    }

    /// Takes a row out of the table (its node left the cluster) and tells
    /// the runtime to forget it.
    fn drop_row(&mut self, row: usize) -> Vec<Effect> {
        let id = self.nodes[row].id();
        self.nodes.remove(row);
        if self.selected >= self.nodes.len() {
            self.selected = self.nodes.len().saturating_sub(1);
        } else if self.selected > row {
            self.selected -= 1;
        }
        vec![Effect::Forget { id }, self.links_effect()]
    }

    /// The address a restarted node joins through, when it joined once.
    pub(super) fn restart_effect(&self, row: usize, wipe_data: bool) -> Effect {
        let node = &self.nodes[row];
        let id = node.id();
        match self.join_via(id).filter(|_| node.joined) {
            Some(via) => Effect::Join { id, via, wipe_data },
            None => Effect::Start { id, wipe_data },
        }
    }

    /// A line of the joining node's own log: a snapshot on the way counts
    /// for the figures.
    pub(super) fn member_op_on_log(&mut self, id: u64, event: &str) {
        if let Some(MemberOp::Join(joining)) = &mut self.member_op {
            if joining.id == id && event == raftkv_node::log_events::SNAPSHOT_INSTALLED {
                joining.by_snapshot = true;
            }
        }
    }

    /// What the polls say about the node that joins: listed as a learner,
    /// caught up, promoted. Each step goes to the timeline once, with its
    /// figures; the promotion ends the change.
    pub(super) fn observe_membership(&mut self) {
        let Some(MemberOp::Join(mut joining)) = self.member_op.clone() else {
            return;
        };
        let Some((_, leader)) = self.leader() else {
            return;
        };
        let view = MembershipView::from_status(leader);
        let leader_commit = leader.commit_index;
        let leader_match = leader.match_index_of(joining.id);
        let id = joining.id;
        let now = self.now_ms;
        let own = self
            .row_of(id)
            .and_then(|row| self.nodes[row].live_status(now))
            .cloned();
        if joining.incarnation.is_none() {
            joining.incarnation = own.as_ref().and_then(|s| s.incarnation.clone());
        }
        let mut said = Vec::new();
        let newer = view.index > joining.stale_index;
        let is_learner = newer && view.learners.contains(&id);
        let is_voter = newer && view.voters.contains(&id) && !view.is_joint();
        // Promoted before a poll saw it as a learner: the summary says it all.
        if joining.learner_at.is_none() && is_learner {
            joining.learner_at = Some((now, view.index));
            let incarnation = joining
                .incarnation
                .as_deref()
                .map(|i| format!(" (incarnation {})", short_incarnation(i)))
                .unwrap_or_default();
            said.push((
                Tone::Info,
                format!(
                    "node {id} added as learner{incarnation} at index {}, {} after its start",
                    thousands(view.index),
                    format_duration_ms(now.saturating_sub(joining.started_at_ms))
                ),
            ));
        }
        let applied = own.as_ref().map(|s| s.applied_index);
        let reached = leader_match.or(applied).unwrap_or(0);
        if joining.learner_at.is_some()
            && !is_voter
            && joining.caught_up.is_none()
            && reached >= leader_commit
        {
            joining.caught_up = Some((now, leader_commit));
            said.push((
                Tone::Info,
                format!(
                    "node {id} caught up to index {} in {}{}",
                    thousands(leader_commit),
                    format_duration_ms(now.saturating_sub(joining.started_at_ms)),
                    if joining.by_snapshot {
                        " by snapshot"
                    } else {
                        ""
                    }
                ),
            ));
        }
        if is_voter {
            let (caught_at, index) = joining.caught_up.unwrap_or((now, leader_commit));
            let step = if joining.replacing { "4/4 " } else { "" };
            let how = if joining.by_snapshot {
                " by snapshot"
            } else {
                ""
            };
            said.push((
                Tone::Good,
                format!(
                    "{step}node {id} added as learner; caught up to index {} in {}{how}; \
                     promoted; voters {}",
                    thousands(index),
                    format_duration_ms(caught_at.saturating_sub(joining.started_at_ms)),
                    id_set(&view.voters)
                ),
            ));
            self.member_op = None;
            if let Some(row) = self.row_of(id) {
                self.nodes[row].wiped_at_ms = None;
                self.nodes[row].registered_incarnation = joining.incarnation.clone();
            }
        } else {
            self.member_op = Some(MemberOp::Join(joining));
        }
        for (tone, text) in said {
            self.record(tone, text);
        }
    }

    /// The configuration of every id a node may be added with (the
    /// dashboard sets it from its layout; empty when attached).
    pub fn set_addable(&mut self, configs: Vec<NodeConfig>) {
        self.addable = configs;
    }
}
