//! What the dashboard learns by watching the cluster: status polls, the
//! node's log events and output, integrity alarms, and the timeline entries
//! they make (a new leader and how long the failover took, convergence, a
//! restarted node's catch-up, snapshots, recoveries and re-admissions).

use raftkv_node::log_events;

use super::{App, Effect, Flash, Tone};
use crate::clock::format_duration_ms;
use crate::integrity::Alarm;
use crate::live_history::HistoryVerdict;
use crate::poll::{LogLine, LogSource, StatusReport};
use crate::status::{short_incarnation, NodeStatus};

/// Log lines kept per node for the log pane.
pub const LOG_TAIL_LINES_MAX: usize = 200;

/// Lines of a node's stdout/stderr copied into the timeline per start; the rest
/// stay in the log pane.
pub const OUTPUT_LINES_IN_TIMELINE_MAX: u32 = 5;

/// Election timeouts of one node without a leader in between that the
/// timeline says; the next one is summed up, the rest only logged.
pub const ELECTION_TIMEOUTS_SAID_IN_A_ROW: u32 = 2;

/// Membership events (per event, peer and incarnation) said once each; past
/// this many, later ones are no longer said at all (a wipe loop gone wild).
pub const MEMBERSHIP_EVENTS_REMEMBERED_MAX: usize = 1_024;

/// The cluster's agreement, as the header shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Convergence {
    /// An integrity alarm stands (the first one raised): committed data was
    /// lost or two nodes diverged. It never clears during the session.
    Alarm(Alarm),
    /// Fewer than a majority of the nodes are running, unpaused and on the
    /// network both ways (as this dashboard's faults and processes say):
    /// nothing can be elected or committed.
    NoQuorum {
        /// The nodes a quorum could be made of.
        candidates: Vec<u64>,
        majority: usize,
    },
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
        log_events::SNAPSHOT_SENT => {
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
        log_events::SNAPSHOT_INSTALLED => {
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
        log_events::PEER_INCARNATION_CHANGED => (
            Tone::Warn,
            format!(
                "node {peer} came back with an empty disk (incarnation {} was {}): not counted \
                 as a voter until re-admitted",
                incarnation("incarnation"),
                incarnation("registered_incarnation")
            ),
        ),
        log_events::READMISSION_PROPOSED => (
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

/// A leader kill whose consequences (detection, new leader) are being timed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderKill {
    pub node: u64,
    pub at_ms: u64,
    /// Nodes whose first detection event has been timed already.
    pub detected_by: Vec<u64>,
}

impl App {
    /// The leader: the answering node that says it leads, highest term first.
    pub fn leader(&self) -> Option<(usize, &NodeStatus)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(row, node)| node.live_status(self.now_ms).map(|s| (row, s)))
            .filter(|(_, status)| status.is_leader())
            .max_by_key(|(_, status)| status.term)
    }

    /// The leader as the table shows it: the current one, or the one drawn
    /// last while its process lives and its status has only gone stale since
    /// (a loaded machine polls late): a key acts on what the screen shows.
    pub fn table_leader(&self) -> Option<(usize, u64)> {
        self.leader()
            .map(|(row, status)| (row, status.term))
            .or_else(|| {
                self.drawn_leader
                    .filter(|(row, _)| self.nodes.get(*row).is_some_and(|n| n.process.is_alive()))
            })
    }

    /// The screen has just been drawn: remember the leader it showed.
    pub fn note_drawn(&mut self) {
        self.drawn_leader = self.leader().map(|(row, status)| (row, status.term));
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
        // The voters decide; a learner's vote and copy count for nothing.
        let voters = self.voter_ids();
        let candidates: Vec<u64> = self
            .quorum_candidates()
            .into_iter()
            .filter(|id| voters.contains(id))
            .collect();
        let majority = voters.len() / 2 + 1;
        if candidates.len() < majority {
            return Convergence::NoQuorum {
                candidates,
                majority,
            };
        }
        if self.leader().is_none() {
            return Convergence::NoLeader;
        }
        // A paused node is known not to answer: the others' agreement is
        // still worth saying, as for a node that is down.
        // Only members count: a removed node's state stops at its removal.
        let members = || self.nodes.iter().filter(|n| !n.removed);
        let silent: Vec<u64> = members()
            .filter(|n| {
                n.process.is_alive() && !n.faults.paused && n.live_status(self.now_ms).is_none()
            })
            .map(|n| n.config.id)
            .collect();
        if !silent.is_empty() {
            return Convergence::Unknown { silent };
        }
        let live: Vec<(u64, &NodeStatus)> = members()
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
                nodes_total: members().count(),
            }
        } else {
            Convergence::Syncing { lag: max - min }
        }
    }
    pub(super) fn on_status(&mut self, report: StatusReport) -> Vec<Effect> {
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
        // A replacement holds the log again once promoted, which the
        // membership observer says (`observe_membership`).
        let replacing = self.member_op.as_ref().is_some_and(|op| op.id() == id);
        if !status.is_registered() || replacing {
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
    /// A node's log or output line: kept for the log pane, and what it
    /// tells goes to the timeline.
    pub(super) fn on_log_line(&mut self, line: LogLine) {
        let Some(row) = self.row_of(line.id) else {
            return;
        };
        let node = &mut self.nodes[row];
        node.log_tail.push_back(line.clone());
        while node.log_tail.len() > LOG_TAIL_LINES_MAX {
            node.log_tail.pop_front();
        }
        if line.source == LogSource::Output {
            self.on_output_line(row, &line);
            return;
        }
        if let Some(event) = line.event.as_deref() {
            self.member_op_on_log(line.id, event);
            self.on_log_event(event, &line);
        }
    }

    /// The first few lines a node prints outside its log (a panic, say)
    /// reach the timeline; the rest stay in the log pane.
    fn on_output_line(&mut self, row: usize, line: &LogLine) {
        let node = &mut self.nodes[row];
        let is_marker = line.text.starts_with("--- ");
        if !is_marker
            && !line.text.trim().is_empty()
            && node.output_lines_shown < OUTPUT_LINES_IN_TIMELINE_MAX
        {
            node.output_lines_shown += 1;
            self.record_at(
                line.at_ms,
                Tone::Warn,
                format!("node {} output: {}", line.id, line.text),
            );
        }
    }

    fn on_log_event(&mut self, event: &str, line: &LogLine) {
        let id = line.id;
        let term = line.field_u64("term");
        let term_text = term.map(|t| format!(", term {t}")).unwrap_or_default();
        match event {
            log_events::LEADER_LOST | log_events::ELECTION_TIMEOUT => {
                self.on_leader_silence(event, line, &term_text)
            }
            log_events::BECAME_FOLLOWER if line.field_u64("leader").is_some_and(|l| l != 0) => {
                self.set_timeouts_in_a_row(id, 0);
            }
            log_events::BECAME_LEADER => {
                self.set_timeouts_in_a_row(id, 0);
                if let Some(term) = term {
                    self.announce_leader(id, term, line.at_ms);
                }
            }
            log_events::STEPPED_DOWN => {
                let text =
                    self.describe_step_down(id, &term_text, line.field("reason"), line.at_ms);
                self.record_at(line.at_ms, Tone::Warn, text);
            }
            log_events::SNAPSHOT_SENT | log_events::SNAPSHOT_INSTALLED | log_events::RECOVERY => {
                let (tone, text) = describe_storage_event(id, event, line);
                self.record_at(line.at_ms, tone, text);
            }
            log_events::PEER_INCARNATION_CHANGED
            | log_events::READMISSION_PROPOSED
            | log_events::MEMBER_READMITTED => {
                self.on_membership_event(event, line);
            }
            _ => {}
        }
    }

    /// A follower lost its leader or timed out: when a leader was killed
    /// here, how long this node took to notice.
    fn on_leader_silence(&mut self, event: &str, line: &LogLine, term_text: &str) {
        let id = line.id;
        if event == log_events::ELECTION_TIMEOUT {
            // A node cut off from a quorum times out every few hundred ms:
            // the timeline says the first two and the log pane has the rest.
            let in_a_row = self.row_of(id).map_or(0, |row| {
                let node = &mut self.nodes[row];
                node.election_timeouts_in_a_row += 1;
                node.election_timeouts_in_a_row
            });
            if in_a_row == ELECTION_TIMEOUTS_SAID_IN_A_ROW + 1 {
                self.record_at(
                    line.at_ms,
                    Tone::Warn,
                    format!(
                        "node {id} keeps timing out without finding a leader (further timeouts \
                         in its log only)"
                    ),
                );
            }
            if in_a_row > ELECTION_TIMEOUTS_SAID_IN_A_ROW {
                return;
            }
        }
        let what = match (event, line.field("leader")) {
            (log_events::LEADER_LOST, Some(leader)) => format!("lost leader {leader}"),
            (log_events::LEADER_LOST, None) => "lost the leader".to_string(),
            _ => "election timeout".to_string(),
        };
        let cause = match (line.field_u64("silence_ms"), line.field("reason")) {
            (Some(ms), Some(reason)) if event == log_events::LEADER_LOST => {
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

    fn set_timeouts_in_a_row(&mut self, id: u64, count: u32) {
        if let Some(row) = self.row_of(id) {
            self.nodes[row].election_timeouts_in_a_row = count;
        }
    }

    /// A new verdict on the load's history. A violation is said once in the
    /// timeline and stays in the header for the rest of the session.
    pub(super) fn on_history_checked(&mut self, verdict: HistoryVerdict) {
        let was_full = self
            .history_verdict
            .as_ref()
            .is_some_and(|v| v.not_recorded > 0);
        if verdict.not_recorded > 0 && !was_full {
            self.record(
                Tone::Warn,
                format!(
                    "the live history is full at {} ops: later ones are not recorded or checked \
                     (a memory bound; `raftkv chaos` checks long runs)",
                    crate::plan::thousands(verdict.ops)
                ),
            );
        }
        let had_problem = self
            .history_verdict
            .as_ref()
            .is_some_and(|v| v.problem.is_some());
        if had_problem {
            if let Some(shown) = &mut self.history_verdict {
                shown.ops = shown.ops.max(verdict.ops);
                shown.not_recorded = shown.not_recorded.max(verdict.not_recorded);
            }
            return;
        }
        if let Some(problem) = &verdict.problem {
            self.tell(
                Tone::Bad,
                format!("history of {} ops NOT LINEARIZABLE: {problem}", verdict.ops),
            );
        }
        self.history_verdict = Some(verdict);
    }

    /// Every node logs a re-admission's steps; the timeline says each once.
    fn on_membership_event(&mut self, event: &str, line: &LogLine) {
        let Some((tone, text)) = describe_membership_event(event, line) else {
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

    /// ` (312 ms after the kill)` for a node's first detection of a killed leader.
    fn time_detection(&mut self, id: u64, at_ms: u64) -> String {
        if self.leader_kill.is_none() {
            return self.time_fault_detection(id, at_ms);
        }
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
        text.push_str(&self.time_new_leader(id, at_ms));
        self.record_at(at_ms, Tone::Good, text);
    }

    /// Timeline entries for what polling reveals: a new leader, divergence,
    /// convergence, a restarted node that caught up.
    pub(super) fn observe_cluster(&mut self) {
        if let Some((row, leader)) = self.leader() {
            let (id, term) = (self.nodes[row].config.id, leader.term);
            self.announce_leader(id, term, self.now_ms);
        }
        // A promotion is told before the convergence it leads to.
        self.observe_membership();
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
        let (leader_id, leader_commit, leader_term) = (leader.id, leader.commit_index, leader.term);
        let now_ms = self.now_ms;
        let mut said = Vec::new();
        for node in &mut self.nodes {
            let Some(status) = node.live_status(now_ms) else {
                continue;
            };
            if status.leader_id != leader_id || status.applied_index < leader_commit {
                continue;
            }
            let (id, index, is_leader) =
                (node.config.id, status.applied_index, status.id == leader_id);
            if let Some(restarted_at_ms) = node.restarted_at_ms.take() {
                said.push(format!(
                    "node {id} caught up to index {index}, {} after restart",
                    format_duration_ms(now_ms - restarted_at_ms)
                ));
            }
            if let Some(since_ms) = node.rejoining_since_ms.take() {
                let role = if is_leader {
                    "as leader"
                } else {
                    "as follower"
                };
                said.push(format!(
                    "node {id} rejoined {role} of term {leader_term}, caught up to index {index} \
                     in {}",
                    format_duration_ms(now_ms.saturating_sub(since_ms))
                ));
            }
        }
        for text in said {
            self.record(Tone::Good, text);
        }
    }
}
