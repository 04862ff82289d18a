//! The chaos run's nemesis: a seeded schedule of faults, each held 1-3 s
//! and then healed, with a pause of 0.5-1.5 s between two; a third of them
//! get a second fault half-way through their hold, and both are healed
//! together. Faults act through the supervisor (kill -9 and restart,
//! SIGSTOP and SIGCONT) and the fault proxy (isolation, halves, one-way,
//! slow links), as in the dashboard.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

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
}

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
            FaultKind::OneWay => "oneway",
            FaultKind::Slow => "slow",
        }
    }
}

/// `--nemesis kill,pause,...`: the kinds, or what is wrong.
pub fn parse_kinds(text: &str) -> Result<Vec<FaultKind>, String> {
    let all = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Partition,
        FaultKind::OneWay,
        FaultKind::Slow,
    ];
    let mut kinds = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let kind = all.iter().find(|k| k.name() == name).ok_or_else(|| {
            format!("--nemesis {name}: unknown fault (kill, pause, partition, oneway, slow)")
        })?;
        if !kinds.contains(kind) {
            kinds.push(*kind);
        }
    }
    if kinds.is_empty() {
        return Err(
            "--nemesis: name at least one fault (kill, pause, partition, oneway, slow)".into(),
        );
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
}

pub struct Nemesis {
    rng: Rng,
    kinds: Vec<FaultKind>,
    nodes: u64,
    started: Instant,
    events: Vec<NemesisEvent>,
}

impl Nemesis {
    pub fn new(seed: u64, kinds: Vec<FaultKind>, nodes: u64, started: Instant) -> Nemesis {
        Nemesis {
            rng: Rng::new(seed),
            kinds,
            nodes,
            started,
            events: Vec::new(),
        }
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
                heal(undo, supervisor, proxy).await;
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
        let (what, nodes, undo) = self.inject(kind, leader, supervisor, proxy);
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
        }
    }

    /// After the run: every link open, every paused node resumed, every
    /// node running.
    pub async fn heal_everything(&mut self, supervisor: &mut Supervisor, proxy: &FaultProxy) {
        proxy.heal();
        for id in 1..=self.nodes {
            let _ = supervisor.resume(id);
            if supervisor.pid(id).is_none() {
                heal(Undo::Restart(id), supervisor, proxy).await;
            }
        }
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

async fn heal(undo: Undo, supervisor: &mut Supervisor, proxy: &FaultProxy) {
    match undo {
        Undo::OpenLinks => proxy.heal(),
        Undo::Resume(id) => {
            let _ = supervisor.resume(id);
        }
        Undo::Restart(id) => {
            let started = Instant::now();
            while supervisor.pid(id).is_some()
                && started.elapsed() < Duration::from_millis(EXIT_WAIT_MS)
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if let Err(error) = supervisor.start(id, false) {
                eprintln!("raftkv chaos: cannot restart node {id}: {error}");
            }
        }
    }
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
            "--nemesis flood: unknown fault (kill, pause, partition, oneway, slow)"
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
