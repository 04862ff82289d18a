//! Items 3-6 of the gate: kill -9 the leader and find each survivor's
//! detection line, wait for exactly one new leader in a higher term, write
//! through it, then restart the killed node and wait for its catch-up.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use raftkv_node::log_events;

use super::checks::{detection_of, find_became_leader, find_detection};
use super::probes::read_event_lines;
use super::sabotage::corrupt_wal;
use super::*;

impl Gate {
    // ----- item 3 ---------------------------------------------------------------

    pub(super) async fn item3_kill_and_detect(
        &mut self,
        leader: Option<&Leader>,
    ) -> Option<Killed> {
        if !self.ctx.processes.can_control() {
            self.verdict(3, ItemResult::fail(ATTACHED, "timeline.jsonl"));
            return None;
        }
        if leader.is_none() || self.aborted() {
            let why = if self.aborted() {
                ABORTED
            } else {
                "not run: there was no leader to kill (item 2)"
            };
            self.verdict(3, ItemResult::fail(why, "timeline.jsonl"));
            return None;
        }
        // The leader may have changed since item 2: kill the current one.
        let leader = match self.wait_for_cluster_leader().await {
            Ok(leader) => leader,
            Err(e) => {
                self.verdict(
                    3,
                    ItemResult::fail(format!("no leader to kill: {e}"), "timeline.jsonl step 3.1"),
                );
                return None;
            }
        };
        self.emit(
            "3.1",
            StepKind::Step,
            format!("kill -9 leader node {} (term {})", leader.id, leader.term),
        );
        let at_ms = clock::now_ms();
        let pid = match self.ctx.processes.request(leader.id, ProcessOp::Kill).await {
            Ok(pid) => pid.unwrap_or(0),
            Err(e) => {
                self.verdict(
                    3,
                    ItemResult::fail(format!("kill -9 failed: {e}"), "timeline.jsonl step 3.1"),
                );
                return None;
            }
        };
        let killed = Killed {
            id: leader.id,
            term: leader.term,
            at_ms,
        };
        match self.wait_until_exited(leader.id).await {
            Ok(()) => self.emit(
                "3.1",
                StepKind::Info,
                format!("node {} (pid {pid}) is dead", leader.id),
            ),
            Err(e) => self.emit("3.1", StepKind::Warn, e),
        }
        let result = self.wait_for_detection(killed).await;
        self.verdict(3, result);
        Some(killed)
    }

    /// Node `id` has no process (its supervisor knows no pid for it).
    async fn has_exited(&mut self, id: u64) -> Result<bool, String> {
        Ok(self
            .ctx
            .processes
            .request(id, ProcessOp::Pid)
            .await?
            .is_none())
    }

    async fn wait_until_exited(&mut self, id: u64) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_millis(KILL_DEADLINE_MS);
        loop {
            if self.has_exited(id).await? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "node {id} was still running {KILL_DEADLINE_MS} ms after kill -9"
                ));
            }
            self.pause().await?;
        }
    }

    async fn wait_for_detection(&mut self, killed: Killed) -> ItemResult {
        self.emit(
            "3.2",
            StepKind::Step,
            "wait for each survivor's leader_lost / election_timeout line after the kill",
        );
        let survivors: Vec<GateNode> = self
            .ctx
            .nodes
            .iter()
            .filter(|n| n.id != killed.id)
            .cloned()
            .collect();
        let deadline = Instant::now() + Duration::from_millis(DETECTION_DEADLINE_MS);
        let mut found: BTreeMap<u64, gate_record::Detection> = BTreeMap::new();
        let mut problems: BTreeMap<u64, String> = BTreeMap::new();
        loop {
            let pending: Vec<&GateNode> = survivors
                .iter()
                .filter(|n| !found.contains_key(&n.id))
                .collect();
            for node in pending {
                match read_event_lines(node) {
                    Ok(lines) => match find_detection(&lines, killed.at_ms) {
                        Some((line_number, line)) => {
                            found.insert(
                                node.id,
                                detection_of(node.id, line_number, line, killed.at_ms),
                            );
                        }
                        None => {
                            problems.insert(
                                node.id,
                                format!("no leader_lost or election_timeout line in node-{}.log after the kill", node.id),
                            );
                        }
                    },
                    Err(e) => {
                        problems.insert(node.id, e);
                    }
                }
            }
            if found.len() == survivors.len() || Instant::now() >= deadline || self.aborted() {
                break;
            }
            if self.pause().await.is_err() {
                break;
            }
        }
        let detections: Vec<gate_record::Detection> = found.into_values().collect();
        for d in &detections {
            self.emit(
                "3.2",
                StepKind::Info,
                format!(
                    "node {}: {} {} after the kill ({}{}) at node-{}.log line {}",
                    d.node,
                    d.event,
                    evidence::format_ms(d.after_kill_ms),
                    d.reason,
                    d.silence_ms
                        .map_or(String::new(), |s| format!(", silence_ms={s}")),
                    d.node,
                    d.log_line
                ),
            );
        }
        self.record.measurements.detections = detections.clone();
        let evidence = detections
            .iter()
            .map(|d| format!("node-{}.log line {}", d.node, d.log_line))
            .collect::<Vec<_>>()
            .join(", ");
        let figure = detections
            .iter()
            .map(|d| {
                format!(
                    "node {} {} {} after the kill{}",
                    d.node,
                    d.event,
                    evidence::format_ms(d.after_kill_ms),
                    match (&d.silence_ms, d.reason.as_str()) {
                        (Some(s), "") => format!(" (silence_ms={s})"),
                        (Some(s), reason) => format!(" ({reason}, silence_ms={s})"),
                        (None, "") => String::new(),
                        (None, reason) => format!(" ({reason})"),
                    }
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        if detections.len() == survivors.len() && !survivors.is_empty() {
            ItemResult::pass(figure, evidence)
        } else {
            let missing: Vec<String> = survivors
                .iter()
                .filter(|n| !detections.iter().any(|d| d.node == n.id))
                .map(|n| {
                    format!(
                        "node {}: {}",
                        n.id,
                        problems.get(&n.id).map_or("no survivor", String::as_str)
                    )
                })
                .collect();
            let reason = if self.aborted() {
                ABORTED.to_string()
            } else {
                format!("within {DETECTION_DEADLINE_MS} ms: {}", missing.join("; "))
            };
            let figure = if figure.is_empty() {
                reason
            } else {
                format!("{figure}; but {reason}")
            };
            ItemResult::fail(
                figure,
                if evidence.is_empty() {
                    "timeline.jsonl step 3.2".into()
                } else {
                    evidence
                },
            )
        }
    }

    // ----- item 4 ---------------------------------------------------------------

    /// Items 4 to 6 need the node item 3 killed. Without one the item fails,
    /// saying why: the cluster is attached (no process to kill), or no
    /// `what` (leader, node) was killed.
    fn killed_or_fail(
        &mut self,
        item: usize,
        killed: Option<Killed>,
        what: &str,
    ) -> Option<Killed> {
        if killed.is_none() {
            let why = if self.ctx.processes.can_control() {
                format!("not run: no {what} was killed (item 3)")
            } else {
                ATTACHED.to_string()
            };
            self.verdict(item, ItemResult::fail(why, "timeline.jsonl"));
        }
        killed
    }

    pub(super) async fn item4_new_leader(&mut self, killed: Option<Killed>) -> Option<Leader> {
        let killed = self.killed_or_fail(4, killed, "leader")?;
        self.emit(
            "4.1",
            StepKind::Step,
            format!("poll the survivors until exactly one leads in a term above {} and the others follow it", killed.term),
        );
        let survivors: Vec<u64> = self
            .all_ids()
            .into_iter()
            .filter(|id| *id != killed.id)
            .collect();
        let remaining_ms =
            ELECTION_DEADLINE_MS.saturating_sub(clock::now_ms().saturating_sub(killed.at_ms));
        let leader = match self
            .wait_for_leader(&survivors, killed.term, remaining_ms)
            .await
        {
            Ok(leader) => leader,
            Err(e) => {
                self.verdict(4, ItemResult::fail(e, "timeline.jsonl step 4.1"));
                return None;
            }
        };
        let confirmed_after_kill_ms = clock::now_ms().saturating_sub(killed.at_ms);
        let (after_kill_ms, log_line) = self.became_leader_line(&leader, killed).await;
        let election = Election {
            node: leader.id,
            term: leader.term,
            old_leader: killed.id,
            old_term: killed.term,
            after_kill_ms: after_kill_ms.unwrap_or(confirmed_after_kill_ms),
            confirmed_after_kill_ms,
            log_line,
        };
        let followers: Vec<String> = survivors
            .iter()
            .filter(|id| **id != leader.id)
            .map(u64::to_string)
            .collect();
        self.record.measurements.election = Some(election.clone());
        let Some(line) = log_line else {
            let reason = format!(
                "RAFT.STATUS shows node {} leading term {} {} after the kill, followed by node {}, \
                 but node-{}.log has no became_leader line for term {} within {LOG_LINE_DEADLINE_MS} ms",
                leader.id,
                leader.term,
                evidence::format_ms(confirmed_after_kill_ms),
                followers.join(", node "),
                leader.id,
                leader.term
            );
            self.verdict(4, ItemResult::fail(reason, "timeline.jsonl step 4.1"));
            return Some(leader);
        };
        let figure = format!(
            "node {} leader in term {} (killed node {} led term {}), {} after the kill \
             (became_leader line); exactly one leader, followed by node {} ({} after the kill, \
             RAFT.STATUS)",
            leader.id,
            leader.term,
            killed.id,
            killed.term,
            evidence::format_ms(election.after_kill_ms),
            followers.join(", node "),
            evidence::format_ms(confirmed_after_kill_ms)
        );
        let evidence = format!(
            "node-{}.log line {line}; timeline.jsonl step 4.1",
            leader.id
        );
        self.verdict(4, ItemResult::pass(figure, evidence));
        Some(leader)
    }

    /// ms from the kill to the new leader's `became_leader` line, and its line number.
    async fn became_leader_line(
        &self,
        leader: &Leader,
        killed: Killed,
    ) -> (Option<u64>, Option<usize>) {
        let Some(node) = self.ctx.nodes.iter().find(|n| n.id == leader.id) else {
            return (None, None);
        };
        let deadline = Instant::now() + Duration::from_millis(LOG_LINE_DEADLINE_MS);
        loop {
            if let Ok(lines) = read_event_lines(node) {
                if let Some((number, line)) = find_became_leader(&lines, leader.term, killed.at_ms)
                {
                    return (Some(line.at_ms.saturating_sub(killed.at_ms)), Some(number));
                }
            }
            if Instant::now() >= deadline || self.pause().await.is_err() {
                return (None, None);
            }
        }
    }

    // ----- item 5 ---------------------------------------------------------------

    pub(super) async fn item5_writes_to_new_leader(
        &mut self,
        new_leader: Option<&Leader>,
        survivors: &[u64],
        killed: Option<Killed>,
    ) {
        let Some(killed) = self.killed_or_fail(5, killed, "leader") else {
            return;
        };
        let leader = match new_leader {
            Some(leader) => leader.clone(),
            None => match self
                .wait_for_leader(survivors, killed.term, ELECTION_DEADLINE_MS)
                .await
            {
                Ok(leader) => leader,
                Err(e) => {
                    self.verdict(
                        5,
                        ItemResult::fail(
                            format!("no new leader to write to: {e}"),
                            "timeline.jsonl step 5.1",
                        ),
                    );
                    return;
                }
            },
        };
        self.write_and_verify(WriteItem {
            item: 5,
            steps: ("5.1", "5.2"),
            leader: &leader,
            keys: KEYS_PER_PHASE + 1..=2 * KEYS_PER_PHASE,
            nodes: survivors,
            written: "more keys written through new leader",
            measured: |measurements| &mut measurements.second_writes_ms,
        })
        .await;
    }

    // ----- item 6 ---------------------------------------------------------------

    pub(super) async fn item6_restart_and_verify(&mut self, killed: Option<Killed>) {
        let Some(killed) = self.killed_or_fail(6, killed, "node") else {
            return;
        };
        if self.aborted() {
            self.verdict(6, ItemResult::fail(ABORTED, "timeline.jsonl"));
            return;
        }
        if self.ctx.sabotage_catchup {
            self.sabotage(killed.id);
        }
        let result = match self.restart_and_catch_up(killed.id).await {
            Ok(catch_up) => {
                let catch_up_figure = format!(
                    "node {} restarted and caught up to applied index {} in {}",
                    catch_up.node,
                    catch_up.applied_index,
                    evidence::format_ms(catch_up.ms)
                );
                self.record.measurements.catch_up = Some(catch_up);
                let ids = self.all_ids();
                self.verify_keys("6.3", &ids, 1..=2 * KEYS_PER_PHASE)
                    .await
                    .map(|figure| format!("{catch_up_figure}; {figure}"))
            }
            Err(e) => Err(e),
        };
        self.verdict(
            6,
            match result {
                Ok(figure) => ItemResult::pass(
                    figure,
                    format!("timeline.jsonl steps 6.1-6.3; node-{}.log", killed.id),
                ),
                Err(e) => ItemResult::fail(
                    e,
                    format!("timeline.jsonl steps 6.1-6.3; node-{}.log", killed.id),
                ),
            },
        );
    }

    fn sabotage(&mut self, id: u64) {
        let note = match &self.ctx.data_dir {
            Some(data_dir) => corrupt_wal(&data_dir.join(format!("node-{id}"))),
            None => Err("the data dir is unknown".into()),
        };
        let text = match note {
            Ok(done) => format!("test-only sabotage (--sabotage-catchup): node {id}: {done}"),
            Err(e) => format!("test-only sabotage (--sabotage-catchup) of node {id} failed: {e}"),
        };
        self.record.notes.push(text.clone());
        self.emit("6.1", StepKind::Warn, text);
    }

    async fn restart_and_catch_up(&mut self, id: u64) -> Result<CatchUp, String> {
        self.emit(
            "6.1",
            StepKind::Step,
            format!("restart node {id} with its data dir"),
        );
        let restarted = Instant::now();
        let pid = self
            .ctx
            .processes
            .request(id, ProcessOp::Start)
            .await?
            .unwrap_or(0);
        self.emit(
            "6.1",
            StepKind::Info,
            format!("node {id} started (pid {pid})"),
        );
        let others: Vec<u64> = self
            .all_ids()
            .into_iter()
            .filter(|other| *other != id)
            .collect();
        let target = self.catch_up_target(&others).await?;
        self.emit(
            "6.2",
            StepKind::Step,
            format!(
                "wait until node {id}'s applied index reaches the leader's commit index {target}"
            ),
        );
        let deadline = restarted + Duration::from_millis(CATCH_UP_DEADLINE_MS);
        let mut last;
        loop {
            match self.status(id).await {
                Ok(status) if status.applied_index >= target => {
                    let ms = restarted.elapsed().as_millis() as u64;
                    self.emit(
                        "6.2",
                        StepKind::Info,
                        format!(
                            "node {id} at applied index {} after {}",
                            status.applied_index,
                            evidence::format_ms(ms)
                        ),
                    );
                    return Ok(CatchUp {
                        node: id,
                        ms,
                        applied_index: status.applied_index,
                    });
                }
                Ok(status) => last = format!("applied index {} of {target}", status.applied_index),
                Err(e) => last = e,
            }
            if self.has_exited(id).await? {
                return Err(self.why_node_died(id));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "node {id} did not catch up within {CATCH_UP_DEADLINE_MS} ms ({last})"
                ));
            }
            self.pause().await?;
        }
    }

    /// The leader's commit index (or, without a leader, the highest applied index).
    async fn catch_up_target(&mut self, others: &[u64]) -> Result<u64, String> {
        let polled = self.poll(others).await;
        let statuses: Vec<&NodeStatus> =
            polled.iter().filter_map(|(_, r)| r.as_ref().ok()).collect();
        if let Some(leader) = statuses.iter().find(|s| s.role == Role::Leader) {
            return Ok(leader.commit_index);
        }
        statuses
            .iter()
            .map(|s| s.applied_index)
            .max()
            .ok_or_else(|| {
                "no other node answers, so there is nothing to catch up with".to_string()
            })
    }

    /// The node's own last words: its `fatal` log event, else the last line
    /// of its captured output, with how the process ended.
    fn why_node_died(&mut self, id: u64) -> String {
        let exit = self
            .ctx
            .processes
            .last_exit(id)
            .map_or("exited".to_string(), |exit| exit.to_string());
        let node = self.ctx.nodes.iter().find(|n| n.id == id).cloned();
        let fatal = node.as_ref().and_then(|node| {
            let lines = read_event_lines(node).ok()?;
            lines
                .iter()
                .rev()
                .find(|(_, l)| l.event.as_deref() == Some(log_events::FATAL))
                .map(|(number, l)| {
                    let message = l.field("message").map_or(l.text.clone(), str::to_string);
                    format!("{message} (node-{id}.log line {number})")
                })
        });
        let said = fatal.or_else(|| {
            let path = node?.output_log?;
            let text = std::fs::read_to_string(path).ok()?;
            text.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_string)
        });
        match said {
            Some(said) => format!("node {id} {exit} after its restart: {said}"),
            None => format!("node {id} {exit} after its restart"),
        }
    }
}
