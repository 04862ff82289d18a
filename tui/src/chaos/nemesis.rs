//! The chaos run's nemesis: a seeded schedule of faults, each held 1-3 s
//! and then healed, with a pause of 0.5-1.5 s between two; a third of them
//! get a second fault half-way through their hold, and both are healed
//! together. Faults act through the supervisor (kill -9 and restart,
//! SIGSTOP and SIGCONT) and the fault proxy (isolation, halves, one-way,
//! slow links), as in the dashboard, and through membership changes
//! (a node replaced by an empty disk, the cluster grown by one node and
//! shrunk back).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use raftkv_node::client::ClusterClient;
use raftkv_node::fault_proxy::{FaultProxy, LinkMode};
use serde_json::{json, Value};

use crate::app::SLOW_LINK;
use crate::supervisor::Supervisor;

/// How long a fault is held, and the quiet gap after its heal.
const HOLD_MS: (u64, u64) = (1_000, 3_000);
const GAP_MS: (u64, u64) = (500, 1_500);
/// One fault in this many gets a second one while it is held.
const OVERLAP_ONE_IN: u64 = 3;
/// A killed node's restart waits at most this for the old process to exit.
const EXIT_WAIT_MS: u64 = 5_000;
/// How long a membership change is retried (through elections and other
/// faults) before the nemesis gives up on it.
const MEMBER_CHANGE_DEADLINE_MS: u64 = 5_000;

/// The faults the nemesis can draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// kill -9 a node (the leader half of the time); restarted at the heal.
    Kill,
    /// SIGSTOP the leader; SIGCONT at the heal.
    Pause,
    /// Isolate the leader or a follower (3 nodes), or cut the cluster into
    /// a minority and a majority (5 nodes).
    Partition,
    /// A node hears nothing (it still sends), or sends nothing (it still
    /// hears).
    OneWay,
    /// Every link of a node slowed by 40 ms + up to 20 ms.
    Slow,
    /// A node (the leader half of the time) is removed from the cluster
    /// and its disk wiped; at the heal the same id joins again with an
    /// empty disk (a new incarnation: learner, then voter).
    Replace,
    /// One more node joins (learner, then voter); at the heal it is
    /// removed again.
    Grow,
}

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
            FaultKind::OneWay => "oneway",
            FaultKind::Slow => "slow",
            FaultKind::Replace => "replace",
            FaultKind::Grow => "grow",
        }
    }

    /// A change of membership rather than of processes or links.
    pub fn is_membership(self) -> bool {
        matches!(self, FaultKind::Replace | FaultKind::Grow)
    }
}

/// Every fault `--nemesis` may name, as the error messages list them.
const FAULT_NAMES: &str = "kill, pause, partition, oneway, slow, replace, grow";

/// `--nemesis kill,pause,...`: the kinds, or what is wrong.
pub fn parse_kinds(text: &str) -> Result<Vec<FaultKind>, String> {
    let all = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Partition,
        FaultKind::OneWay,
        FaultKind::Slow,
        FaultKind::Replace,
        FaultKind::Grow,
    ];
    let mut kinds = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let kind = all
            .iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| format!("--nemesis {name}: unknown fault ({FAULT_NAMES})"))?;
        if !kinds.contains(kind) {
            kinds.push(*kind);
        }
    }
    if kinds.is_empty() {
        return Err(format!(
            "--nemesis: name at least one fault ({FAULT_NAMES})"
        ));
    }
    Ok(kinds)
}

/// xorshift64*: the schedule needs spread and repeatability, not quality.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn between(&mut self, (low, high): (u64, u64)) -> u64 {
        low + self.below(high - low + 1)
    }
}

/// One fault as it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NemesisEvent {
    pub kind: FaultKind,
    /// In words: "isolate node 2 (leader)".
    pub what: String,
    pub nodes: Vec<u64>,
    /// Microseconds since the run started, as in the history.
    pub start_us: u64,
    pub end_us: Option<u64>,
}

impl NemesisEvent {
    pub fn to_json(&self) -> Value {
        json!({
            "fault": self.kind.name(),
            "what": self.what,
            "nodes": self.nodes,
            "start_us": self.start_us,
            "end_us": self.end_us,
        })
    }
}

/// What must be undone at the heal.
enum Undo {
    Restart(u64),
    Resume(u64),
    OpenLinks,
    /// Start the removed node again, empty, joining the cluster.
    Rejoin(u64),
    /// Remove the node the cluster grew by, and stop it.
    Shrink(u64),
    /// The fault did not take (a membership change refused).
    Nothing,
}

pub struct Nemesis {
    rng: Rng,
    kinds: Vec<FaultKind>,
    nodes: u64,
    started: Instant,
    events: Vec<NemesisEvent>,
    /// Nodes removed by `Replace` and not back yet.
    removed: BTreeSet<u64>,
    /// The node `Grow` added, while it is a member.
    grown: Option<u64>,
    /// The id and client address `Grow` adds a node under.
    spare: Option<(u64, String)>,
}

impl Nemesis {
    pub fn new(seed: u64, kinds: Vec<FaultKind>, nodes: u64, started: Instant) -> Nemesis {
        Nemesis {
            rng: Rng::new(seed),
            kinds,
            nodes,
            started,
            events: Vec::new(),
            removed: BTreeSet::new(),
            grown: None,
            spare: None,
        }
    }

    /// The id and client address a grown node runs under (`nodes + 1`).
    pub fn with_spare(mut self, id: u64, client_addr: String) -> Nemesis {
        self.spare = Some((id, client_addr));
        self
    }

    /// The client addresses of every node that may be a member: the
    /// starting nodes and the spare (it may even be the leader).
    fn all_addrs(&self, addrs: &[(u64, String)]) -> Vec<(u64, String)> {
        addrs.iter().cloned().chain(self.spare.clone()).collect()
    }

    pub fn events(&self) -> &[NemesisEvent] {
        &self.events
    }

    fn now_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    /// Faults until `deadline`: gap, fault, hold, heal.
    pub async fn run_until(
        &mut self,
        deadline: Instant,
        supervisor: &mut Supervisor,
        proxy: &FaultProxy,
        addrs: &[(u64, String)],
    ) {
        loop {
            let gap = Duration::from_millis(self.rng.between(GAP_MS));
            let hold = Duration::from_millis(self.rng.between(HOLD_MS));
            if Instant::now() + gap + hold > deadline {
                break;
            }
            tokio::time::sleep(gap).await;
            let mut undos = vec![self.inject_next(supervisor, proxy, addrs).await];
            // A third of the faults get company half-way through their hold:
            // both are in place at once, then healed together.
            tokio::time::sleep(hold / 2).await;
            if self.rng.below(OVERLAP_ONE_IN) == 0 {
                undos.push(self.inject_next(supervisor, proxy, addrs).await);
            }
            tokio::time::sleep(hold - hold / 2).await;
            for (undo, event) in undos.into_iter().rev() {
                self.heal(undo, supervisor, proxy, addrs).await;
                self.events[event].end_us = Some(self.now_us());
            }
        }
    }

    /// Draws a fault and puts it in place; returns its undo and its event's
    /// index.
    async fn inject_next(
        &mut self,
        supervisor: &mut Supervisor,
        proxy: &FaultProxy,
        addrs: &[(u64, String)],
    ) -> (Undo, usize) {
        let kind = self.kinds[self.rng.below(self.kinds.len() as u64) as usize];
        let leader = leader_of(addrs).await;
        let (what, nodes, undo) = if kind.is_membership() {
            self.change_membership(kind, leader, supervisor, addrs)
                .await
        } else {
            self.inject(kind, leader, supervisor, proxy)
        };
        println!("  {:>6.1} s  {what}", self.started.elapsed().as_secs_f64());
        self.events.push(NemesisEvent {
            kind,
            what,
            nodes,
            start_us: self.now_us(),
            end_us: None,
        });
        (undo, self.events.len() - 1)
    }

    /// Puts one fault in place; returns its description, nodes and undo.
    fn inject(
        &mut self,
        kind: FaultKind,
        leader: Option<u64>,
        supervisor: &mut Supervisor,
        proxy: &FaultProxy,
    ) -> (String, Vec<u64>, Undo) {
        let random = 1 + self.rng.below(self.nodes);
        let leader_or_random = match leader {
            Some(id) if self.rng.below(2) == 0 => id,
            _ => random,
        };
        let role = |id: u64| {
            if Some(id) == leader {
                " (leader)"
            } else {
                ""
            }
        };
        match kind {
            FaultKind::Kill => {
                // A node killed by an overlapping fault is not killed twice.
                let id = Some(leader_or_random)
                    .filter(|id| supervisor.pid(*id).is_some())
                    .or_else(|| (1..=self.nodes).find(|id| supervisor.pid(*id).is_some()))
                    .unwrap_or(leader_or_random);
                let _ = supervisor.kill(id);
                (
                    format!("kill -9 node {id}{}", role(id)),
                    vec![id],
                    Undo::Restart(id),
                )
            }
            FaultKind::Pause => {
                let id = leader.unwrap_or(random);
                let _ = supervisor.pause(id);
                (
                    format!("pause node {id}{}", role(id)),
                    vec![id],
                    Undo::Resume(id),
                )
            }
            FaultKind::Partition if self.nodes >= 5 => {
                // A minority of two (one of them the leader half of the time).
                let first = leader_or_random;
                let second = (first % self.nodes) + 1;
                let minority = [first, second];
                set_halves(proxy, self.nodes, &minority);
                (
                    format!(
                        "partition: nodes {first} and {second}{} cut off from the majority",
                        if Some(first) == leader {
                            " (with the leader)"
                        } else {
                            ""
                        }
                    ),
                    minority.to_vec(),
                    Undo::OpenLinks,
                )
            }
            FaultKind::Partition => {
                let id = leader_or_random;
                proxy.set_node(id, LinkMode::Sever);
                (
                    format!("isolate node {id}{}", role(id)),
                    vec![id],
                    Undo::OpenLinks,
                )
            }
            FaultKind::OneWay => {
                let id = leader_or_random;
                let inbound = self.rng.below(2) == 0;
                for other in (1..=self.nodes).filter(|o| *o != id) {
                    let link = if inbound { (other, id) } else { (id, other) };
                    proxy.set(link, LinkMode::Stall);
                }
                let what = if inbound {
                    format!("one-way: node {id}{} hears nothing (still sends)", role(id))
                } else {
                    format!("one-way: node {id}{} sends nothing (still hears)", role(id))
                };
                (what, vec![id], Undo::OpenLinks)
            }
            FaultKind::Slow => {
                let id = random;
                for other in (1..=self.nodes).filter(|o| *o != id) {
                    proxy.set((id, other), SLOW_LINK);
                    proxy.set((other, id), SLOW_LINK);
                }
                (
                    format!("slow links to and from node {id}{}", role(id)),
                    vec![id],
                    Undo::OpenLinks,
                )
            }
            FaultKind::Replace | FaultKind::Grow => {
                unreachable!("membership faults go through change_membership")
            }
        }
    }

    /// Puts one membership fault in place: removes a running member (the
    /// leader half of the time) and wipes it, or adds node `nodes + 1`.
    /// A change the cluster does not take in time changes nothing here
    /// (the end of the run puts the membership right if it took later).
    async fn change_membership(
        &mut self,
        kind: FaultKind,
        leader: Option<u64>,
        supervisor: &mut Supervisor,
        addrs: &[(u64, String)],
    ) -> (String, Vec<u64>, Undo) {
        if kind == FaultKind::Grow {
            let id = self.nodes + 1;
            if self.grown.is_some() || supervisor.pid(id).is_some() {
                return (
                    format!("grow: node {id} is a member already"),
                    vec![],
                    Undo::Nothing,
                );
            }
            let via = join_via(&self.all_addrs(addrs), id).await;
            return match supervisor.join(id, via) {
                Ok(_) => {
                    self.grown = Some(id);
                    (
                        format!("grow: node {id} joins (learner, then voter)"),
                        vec![id],
                        Undo::Shrink(id),
                    )
                }
                Err(e) => (
                    format!("grow: node {id} not started: {e}"),
                    vec![],
                    Undo::Nothing,
                ),
            };
        }
        let running: Vec<u64> = (1..=self.nodes)
            .filter(|id| supervisor.pid(*id).is_some() && !self.removed.contains(id))
            .collect();
        if running.is_empty() {
            return ("replace: no running member".into(), vec![], Undo::Nothing);
        }
        let id = match leader {
            Some(id) if running.contains(&id) && self.rng.below(2) == 0 => id,
            _ => running[self.rng.below(running.len() as u64) as usize],
        };
        let role = if Some(id) == leader { " (leader)" } else { "" };
        // One node out at a time: the last replacement must be a voter
        // again (and no change pending) before the next node goes.
        let all = self.all_addrs(addrs);
        let settled = leader_status(&all).await.is_some_and(|leader| {
            (1..=self.nodes).all(|n| leader.voters.contains(&n))
                && leader.learners.is_empty()
                && leader.previous_voters.is_empty()
        });
        if !settled {
            return (
                format!("replace node {id}{role}: skipped, the membership is still changing"),
                vec![],
                Undo::Nothing,
            );
        }
        match member_change(&all, "RAFT.REMOVE", id).await {
            Ok(()) => {
                let _ = supervisor.kill(id);
                supervisor.forget(id);
                self.removed.insert(id);
                (
                    format!("replace node {id}{role}: removed, its disk to be wiped"),
                    vec![id],
                    Undo::Rejoin(id),
                )
            }
            Err(e) => (
                format!("replace node {id}{role}: removal not taken ({e})"),
                vec![],
                Undo::Nothing,
            ),
        }
    }

    /// Undoes one fault.
    async fn heal(
        &mut self,
        undo: Undo,
        supervisor: &mut Supervisor,
        proxy: &FaultProxy,
        addrs: &[(u64, String)],
    ) {
        match undo {
            Undo::Rejoin(id) => {
                wait_exited(supervisor, id).await;
                let via = join_via(&self.all_addrs(addrs), id).await;
                match supervisor.join(id, via) {
                    Ok(_) => {
                        self.removed.remove(&id);
                    }
                    Err(e) => eprintln!("raftkv chaos: node {id} cannot join again: {e}"),
                }
            }
            Undo::Shrink(id) => {
                if member_change(&self.all_addrs(addrs), "RAFT.REMOVE", id)
                    .await
                    .is_ok()
                {
                    let _ = supervisor.kill(id);
                    supervisor.forget(id);
                    self.grown = None;
                }
            }
            Undo::Nothing => {}
            other => heal(other, supervisor, proxy).await,
        }
    }

    /// After the run: every link open, every paused node resumed, every
    /// node running, and the membership back to nodes 1 to `nodes`: a
    /// node the leader does not list (a removal that took after the
    /// nemesis gave up on it, or a rejoin that failed) joins again with an
    /// empty disk, and a member beyond them (a grown node whose removal
    /// did not take) is removed.
    pub async fn heal_everything(
        &mut self,
        supervisor: &mut Supervisor,
        proxy: &FaultProxy,
        addrs: &[(u64, String)],
    ) {
        proxy.heal();
        for id in 1..=self.nodes {
            let _ = supervisor.resume(id);
            if supervisor.pid(id).is_none() && !self.removed.contains(&id) {
                heal(Undo::Restart(id), supervisor, proxy).await;
            }
        }
        let all = self.all_addrs(addrs);
        for _ in 0..MEMBERSHIP_REPAIR_ROUNDS {
            let Some(members) = leader_members(&all).await else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let missing: Vec<u64> = (1..=self.nodes)
                .filter(|id| !members.contains(id))
                .collect();
            let extra: Vec<u64> = members
                .iter()
                .copied()
                .filter(|id| *id > self.nodes)
                .collect();
            if missing.is_empty() && extra.is_empty() {
                if let Some(id) = self.grown.take() {
                    let _ = supervisor.kill(id);
                    supervisor.forget(id);
                }
                return;
            }
            for id in extra {
                if member_change(&all, "RAFT.REMOVE", id).await.is_ok() {
                    let _ = supervisor.kill(id);
                    supervisor.forget(id);
                    self.grown = None;
                }
            }
            for id in missing {
                let _ = supervisor.kill(id);
                wait_exited(supervisor, id).await;
                let via = join_via(&all, id).await;
                match supervisor.join(id, via) {
                    Ok(_) => {
                        self.removed.remove(&id);
                    }
                    Err(e) => eprintln!("raftkv chaos: node {id} cannot join again: {e}"),
                }
            }
            tokio::time::sleep(Duration::from_millis(MEMBER_CHANGE_DEADLINE_MS / 5)).await;
        }
        eprintln!(
            "raftkv chaos: the membership is not back to nodes 1 to {}",
            self.nodes
        );
    }

    /// `faults: 12 (kill 3, pause 2, ...)`.
    pub fn summary_lines(&self) -> Vec<String> {
        let mut by_kind: BTreeMap<FaultKind, usize> = BTreeMap::new();
        for event in &self.events {
            *by_kind.entry(event.kind).or_default() += 1;
        }
        let kinds: Vec<String> = by_kind
            .iter()
            .map(|(kind, count)| format!("{} {count}", kind.name()))
            .collect();
        vec![format!(
            "faults: {} ({})",
            self.events.len(),
            if kinds.is_empty() {
                "none".to_string()
            } else {
                kinds.join(", ")
            }
        )]
    }
}

/// Severs every link between `minority` and the other nodes.
fn set_halves(proxy: &FaultProxy, nodes: u64, minority: &[u64]) {
    for from in 1..=nodes {
        for to in (1..=nodes).filter(|to| *to != from) {
            if minority.contains(&from) != minority.contains(&to) {
                proxy.set((from, to), LinkMode::Sever);
            }
        }
    }
}

/// How many times the end of a run tries to put the membership right.
const MEMBERSHIP_REPAIR_ROUNDS: usize = 10;

async fn heal(undo: Undo, supervisor: &mut Supervisor, proxy: &FaultProxy) {
    match undo {
        Undo::OpenLinks => proxy.heal(),
        Undo::Resume(id) => {
            let _ = supervisor.resume(id);
        }
        Undo::Restart(id) => {
            wait_exited(supervisor, id).await;
            if let Err(error) = supervisor.start(id, false) {
                eprintln!("raftkv chaos: cannot restart node {id}: {error}");
            }
        }
        Undo::Rejoin(_) | Undo::Shrink(_) | Undo::Nothing => {}
    }
}

/// Waits (a bounded time) for node `id`'s process to be gone.
async fn wait_exited(supervisor: &Supervisor, id: u64) {
    let started = Instant::now();
    while supervisor.pid(id).is_some() && started.elapsed() < Duration::from_millis(EXIT_WAIT_MS) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The client address a node joins through: the leader's, else the first
/// other node's.
async fn join_via(addrs: &[(u64, String)], joining: u64) -> String {
    if let Some(leader) = leader_status(addrs).await.filter(|l| l.id != joining) {
        if let Some((_, addr)) = addrs.iter().find(|(id, _)| *id == leader.id) {
            return addr.clone();
        }
    }
    addrs
        .iter()
        .find(|(id, _)| *id != joining)
        .map(|(_, addr)| addr.clone())
        .unwrap_or_default()
}

/// The status of the node that leads in the highest term, if one answers.
async fn leader_status(addrs: &[(u64, String)]) -> Option<crate::status::NodeStatus> {
    super::statuses(addrs)
        .await
        .into_iter()
        .filter(|s| s.is_leader())
        .max_by_key(|s| s.term)
}

/// Sends `RAFT.REMOVE id` (or another change) to the leader, retried
/// through redirects and `-TRYAGAIN` for `MEMBER_CHANGE_DEADLINE_MS`.
async fn member_change(addrs: &[(u64, String)], command: &str, id: u64) -> Result<(), String> {
    let mut client = ClusterClient::new(
        addrs.iter().map(|(_, addr)| addr.clone()).collect(),
        Duration::from_millis(MEMBER_CHANGE_DEADLINE_MS),
    );
    let id = id.to_string();
    client
        .command(&[command.as_bytes(), id.as_bytes()])
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The members (voters and learners) the leader lists, if a leader answers.
async fn leader_members(addrs: &[(u64, String)]) -> Option<Vec<u64>> {
    let leader = leader_status(addrs).await?;
    let mut members = leader.voters.clone();
    members.extend(&leader.learners);
    (!leader.voters.is_empty()).then_some(members)
}

/// The leader the nodes report now, if one does.
async fn leader_of(addrs: &[(u64, String)]) -> Option<u64> {
    super::statuses(addrs)
        .await
        .into_iter()
        .filter(|s| s.is_leader())
        .max_by_key(|s| s.term)
        .map(|s| s.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_and_unknown_ones_are_named() {
        assert_eq!(
            parse_kinds("kill, slow,kill").unwrap(),
            vec![FaultKind::Kill, FaultKind::Slow]
        );
        assert_eq!(
            parse_kinds("kill,flood").unwrap_err(),
            "--nemesis flood: unknown fault (kill, pause, partition, oneway, slow, replace, grow)"
        );
        assert_eq!(
            parse_kinds("replace,grow").unwrap(),
            vec![FaultKind::Replace, FaultKind::Grow]
        );
        assert!(parse_kinds("").is_err());
    }

    #[test]
    fn the_rng_repeats_per_seed() {
        let draw = |seed| {
            let mut rng = Rng::new(seed);
            (0..8).map(|_| rng.below(100)).collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
    }
}
