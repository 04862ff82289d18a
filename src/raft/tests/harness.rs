//! A tiny in-memory cluster: each node's durable state is what its Ready
//! batches persisted, the network is a FIFO queue that links can be cut
//! from, and every applied entry is checked against one global history.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;

use crate::message::{
    Body, Entry, EntryKind, Index, Message, NodeId, Snapshot, SnapshotMeta, Term,
};
use crate::raft::membership::Member;
use crate::raft::{
    ConfChange, ConfChangeError, Config, Event, HardState, InitialState, RawNode, ReadState, Ready,
    Role,
};

/// Bound on Ready batches handled for one node in a row (a livelock guard).
const READY_ROUNDS_MAX: usize = 10_000;
/// Bound on messages delivered by one `deliver_all`.
const DELIVERIES_MAX: usize = 1_000_000;

/// A config with the paper's plain behaviour (no pre-vote, no check-quorum).
pub fn plain_config(id: NodeId, voters: &[NodeId]) -> Config {
    let mut config = Config::new(id, voters.to_vec());
    config.pre_vote = false;
    config.check_quorum = false;
    config
}

pub fn message(from: NodeId, to: NodeId, term: Term, body: Body) -> Message {
    Message {
        from,
        to,
        term,
        // Config::new gives every node the incarnation equal to its id.
        incarnation: from,
        body,
    }
}

/// A vote request body from a candidate whose log ends at (last_index, last_term).
pub fn vote_body(last_index: Index, last_term: Term) -> Body {
    Body::Vote {
        last_index,
        last_term,
        leadership_transfer: false,
        commit: 0,
        commit_term: 0,
    }
}

/// An append from a leader: `entries` after (prev_index, prev_term), and
/// the leader's commit index.
pub fn append(prev_index: Index, prev_term: Term, entries: Vec<Entry>, commit: Index) -> Body {
    Body::Append {
        prev_index,
        prev_term,
        entries,
        commit,
    }
}

/// A ReadIndex answer: the read with `context` may be served once `index`
/// is applied.
pub fn read_state(context: u64, index: Index) -> ReadState {
    ReadState { context, index }
}

/// A follower's answer to a snapshot chunk: the offset it wants next, and
/// whether it has the whole snapshot.
pub fn snapshot_reply(index: Index, next_offset: u64, done: bool) -> Body {
    Body::SnapshotReply {
        index,
        next_offset,
        done,
    }
}

pub fn entry(index: Index, term: Term) -> Entry {
    Entry::normal(index, term, format!("{index}@{term}"))
}

/// Entries 1..=n with the given terms.
pub fn entries_with_terms(terms: &[Term]) -> Vec<Entry> {
    terms
        .iter()
        .enumerate()
        .map(|(i, &term)| entry(i as Index + 1, term))
        .collect()
}

/// The empty snapshot of a cluster whose member registry is bootstrapped
/// (every node registered with the incarnation `Config::new` gives it, its
/// id), so that tests of majority rules start past the unanimous first
/// election; tests of the bootstrap itself start from nothing.
pub fn registered_start(voters: &[NodeId]) -> Option<Snapshot> {
    Some(Snapshot {
        meta: SnapshotMeta {
            index: 0,
            term: 0,
            members: voters.iter().map(|&id| Member::voter(id, id)).collect(),
        },
        data: Bytes::new(),
    })
}

/// A hard state of incarnation-less votes (`vote` 0: none).
pub fn hard_state(term: Term, vote: NodeId, commit: Index) -> HardState {
    HardState {
        term,
        vote,
        vote_incarnation: 0,
        commit,
    }
}

/// A node restored from a durable log with `terms`, at `term`, in a
/// cluster with a registry (`registered_start`).
pub fn node_with_log(config: Config, terms: &[Term], term: Term, commit: Index) -> RawNode {
    let initial = InitialState {
        hard_state: hard_state(term, 0, commit),
        snapshot: registered_start(&config.voters),
        entries: entries_with_terms(terms),
    };
    RawNode::new(config, initial, 42).expect("valid initial state")
}

/// Takes a Ready and acknowledges it as if everything was persisted and applied.
pub fn drain(node: &mut RawNode) -> Ready {
    let ready = node.ready();
    node.advance(ready.ack());
    ready
}

/// All messages of a Ready, persisted ones last.
pub fn all_messages(ready: &Ready) -> Vec<Message> {
    ready
        .messages
        .iter()
        .chain(ready.persisted_messages.iter())
        .cloned()
        .collect()
}

/// The first message in `ready` addressed to `to`.
pub fn message_to(ready: &Ready, to: NodeId) -> Message {
    all_messages(ready)
        .into_iter()
        .find(|m| m.to == to)
        .unwrap_or_else(|| panic!("no message to {to}"))
}

/// Ticks `node` until it starts a campaign (bounded by the max timeout).
pub fn tick_until_campaign(node: &mut RawNode) -> Ready {
    for _ in 0..1000 {
        node.tick();
        let ready = drain(node);
        if ready
            .events
            .iter()
            .any(|e| matches!(e, Event::ElectionTimeout { .. }))
        {
            return ready;
        }
    }
    panic!("node {} never timed out", node.id());
}

/// What a node made durable, built only from its Ready batches.
#[derive(Clone, Debug, Default)]
pub struct Durable {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
}

impl Durable {
    fn persist(&mut self, ready: &Ready) {
        if let Some(snapshot) = &ready.snapshot {
            self.snapshot = Some(snapshot.clone());
            self.entries.clear();
        }
        if let Some(first) = ready.entries.first() {
            self.entries.retain(|e| e.index < first.index);
            self.entries.extend(ready.entries.iter().cloned());
        }
        if let Some(hard_state) = ready.hard_state {
            self.hard_state = hard_state;
        }
    }

    fn initial_state(&self) -> InitialState {
        InitialState {
            hard_state: self.hard_state,
            snapshot: self.snapshot.clone(),
            entries: self.entries.clone(),
        }
    }
}

/// The replicated state machine of the tests: the list of applied payloads.
fn encode_state(state: &[Bytes]) -> Bytes {
    let mut out = Vec::new();
    for item in state {
        out.extend_from_slice(&(item.len() as u32).to_be_bytes());
        out.extend_from_slice(item);
    }
    Bytes::from(out)
}

fn decode_state(mut data: &[u8]) -> Vec<Bytes> {
    let mut state = Vec::new();
    while data.len() >= 4 {
        let length = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
        state.push(Bytes::copy_from_slice(&data[4..4 + length]));
        data = &data[4 + length..];
    }
    state
}

pub struct Peer {
    pub node: RawNode,
    pub config: Config,
    pub durable: Durable,
    pub state: Vec<Bytes>,
    pub applied_index: Index,
    pub events: Vec<Event>,
    pub read_states: Vec<ReadState>,
    pub dropped_reads: Vec<u64>,
    seed: u64,
}

pub struct Cluster {
    pub peers: BTreeMap<NodeId, Peer>,
    network: VecDeque<Message>,
    /// Directed links (from, to) that drop every message.
    pub cut_links: BTreeSet<(NodeId, NodeId)>,
    /// Crashed nodes: they neither tick nor receive.
    pub down: BTreeSet<NodeId>,
    /// Every entry applied anywhere, by index: all nodes must agree.
    applied_history: BTreeMap<Index, (Term, Bytes)>,
    /// Messages dropped because a link was cut or a node was down.
    pub dropped_messages: usize,
}

impl Peer {
    /// A node started from `durable`, nothing applied yet.
    fn start(config: Config, durable: Durable, seed: u64) -> Self {
        let node =
            RawNode::new(config.clone(), durable.initial_state(), seed).expect("valid config");
        Peer {
            node,
            config,
            durable,
            state: Vec::new(),
            applied_index: 0,
            events: Vec::new(),
            read_states: Vec::new(),
            dropped_reads: Vec::new(),
            seed,
        }
    }
}

impl Cluster {
    /// A cluster of nodes 1..=size with the default config (pre-vote and
    /// check-quorum on), changed by `configure`.
    pub fn new(size: u64, configure: impl Fn(&mut Config)) -> Self {
        let voters: Vec<NodeId> = (1..=size).collect();
        let mut peers = BTreeMap::new();
        for &id in &voters {
            let mut config = Config::new(id, voters.clone());
            configure(&mut config);
            let seed = 1000 + id * 7919;
            let durable = Durable {
                snapshot: registered_start(&voters),
                ..Durable::default()
            };
            peers.insert(id, Peer::start(config, durable, seed));
        }
        Cluster {
            peers,
            network: VecDeque::new(),
            cut_links: BTreeSet::new(),
            down: BTreeSet::new(),
            applied_history: BTreeMap::new(),
            dropped_messages: 0,
        }
    }

    /// A default cluster of nodes 1..=size in which `leader` was elected.
    pub fn with_leader(size: u64, leader: NodeId) -> Self {
        let mut cluster = Cluster::new(size, |_| {});
        cluster.elect(leader);
        cluster
    }

    /// A brand-new cluster: nothing durable anywhere, no member registry.
    pub fn unregistered(size: u64, configure: impl Fn(&mut Config)) -> Self {
        let mut cluster = Cluster::new(size, configure);
        for peer in cluster.peers.values_mut() {
            peer.durable = Durable::default();
            peer.node = RawNode::new(peer.config.clone(), peer.durable.initial_state(), peer.seed)
                .expect("valid config");
        }
        cluster
    }

    /// A cluster whose node `i + 1` restarts from `logs[i]`: (entry terms,
    /// current term). Used to set up the paper's figure scenarios.
    pub fn from_logs(logs: &[(&[Term], Term)], configure: impl Fn(&mut Config)) -> Self {
        let mut cluster = Cluster::new(logs.len() as u64, configure);
        for (offset, (terms, term)) in logs.iter().enumerate() {
            let id = offset as NodeId + 1;
            let peer = cluster.peers.get_mut(&id).expect("known node");
            peer.durable = Durable {
                hard_state: hard_state(*term, 0, 0),
                snapshot: registered_start(&peer.config.voters),
                entries: entries_with_terms(terms),
            };
            peer.node = RawNode::new(peer.config.clone(), peer.durable.initial_state(), peer.seed)
                .expect("valid log");
        }
        cluster
    }

    pub fn node(&self, id: NodeId) -> &RawNode {
        &self.peers[&id].node
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut RawNode {
        &mut self.peers.get_mut(&id).expect("known node").node
    }

    pub fn peer(&self, id: NodeId) -> &Peer {
        &self.peers[&id]
    }

    /// Runs the Ready contract for `id` until it has nothing left to do.
    pub fn process(&mut self, id: NodeId) {
        for _ in 0..READY_ROUNDS_MAX {
            let peer = self.peers.get_mut(&id).expect("known node");
            if !peer.node.has_ready() {
                return;
            }
            let ready = peer.node.ready();
            let ack = ready.ack();
            for message in &ready.messages {
                assert_ne!(message.to, id, "node {id} sent a message to itself");
                self.network.push_back(message.clone());
            }
            peer.durable.persist(&ready);
            for message in &ready.persisted_messages {
                assert_ne!(message.to, id, "node {id} sent a message to itself");
                self.network.push_back(message.clone());
            }
            if let Some(snapshot) = &ready.snapshot {
                peer.state = decode_state(&snapshot.data);
                peer.applied_index = snapshot.meta.index;
            }
            for entry in &ready.committed_entries {
                assert_eq!(
                    entry.index,
                    peer.applied_index + 1,
                    "node {id} applies out of order"
                );
                peer.applied_index = entry.index;
                if entry.kind == EntryKind::Normal {
                    peer.state.push(entry.data.clone());
                }
                let recorded = self
                    .applied_history
                    .entry(entry.index)
                    .or_insert((entry.term, entry.data.clone()));
                assert_eq!(
                    recorded,
                    &(entry.term, entry.data.clone()),
                    "node {id} applied a different entry at index {}",
                    entry.index
                );
            }
            peer.read_states.extend(ready.read_states.iter().copied());
            peer.dropped_reads
                .extend(ready.dropped_reads.iter().copied());
            peer.events.extend(ready.events.iter().cloned());
            peer.node.advance(ack);
        }
        panic!("node {id} kept producing Ready batches");
    }

    fn link_open(&self, from: NodeId, to: NodeId) -> bool {
        !self.down.contains(&from)
            && !self.down.contains(&to)
            && !self.cut_links.contains(&(from, to))
    }

    /// Delivers queued messages (and those they cause) until none are left.
    pub fn deliver_all(&mut self) {
        for _ in 0..DELIVERIES_MAX {
            let Some(message) = self.network.pop_front() else {
                return;
            };
            self.deliver(message);
        }
        panic!("the network never went quiet");
    }

    /// Delivers one message unless its link is cut or its addressee was
    /// never started.
    pub fn deliver(&mut self, message: Message) {
        if !self.link_open(message.from, message.to) || !self.peers.contains_key(&message.to) {
            self.dropped_messages += 1;
            return;
        }
        let to = message.to;
        self.node_mut(to)
            .step(message)
            .expect("messages between voters are accepted");
        self.process(to);
    }

    /// Takes every queued message out of the network (to reorder or drop).
    pub fn take_network(&mut self) -> Vec<Message> {
        self.network.drain(..).collect()
    }

    pub fn tick(&mut self, id: NodeId) {
        self.node_mut(id).tick();
        self.process(id);
    }

    /// One tick for every running node, then the network settles.
    pub fn tick_all(&mut self) {
        self.tick_all_without_delivery();
        self.deliver_all();
    }

    /// One tick for every running node; what they send stays queued.
    pub fn tick_all_without_delivery(&mut self) {
        let running: Vec<NodeId> = self
            .peers
            .keys()
            .copied()
            .filter(|id| !self.down.contains(id))
            .collect();
        for id in running {
            self.tick(id);
        }
    }

    pub fn run(&mut self, ticks: u64) {
        for _ in 0..ticks {
            self.tick_all();
        }
    }

    /// Ticks until `condition` holds; false if it did not within `ticks_max`.
    pub fn run_until(&mut self, ticks_max: u64, condition: impl Fn(&Cluster) -> bool) -> bool {
        for _ in 0..ticks_max {
            if condition(self) {
                return true;
            }
            self.tick_all();
        }
        condition(self)
    }

    /// The running leader of the highest term, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.peers
            .iter()
            .filter(|(id, peer)| !self.down.contains(id) && peer.node.status().role == Role::Leader)
            .max_by_key(|(_, peer)| peer.node.status().term)
            .map(|(&id, _)| id)
    }

    /// Makes `id` campaign by ticking only it, and settles the network.
    pub fn elect(&mut self, id: NodeId) {
        for _ in 0..1000 {
            if self.node(id).status().role == Role::Leader {
                return;
            }
            self.tick(id);
            self.deliver_all();
        }
        panic!("node {id} could not be elected");
    }

    /// Proposes on `id` and settles the network.
    pub fn propose(&mut self, id: NodeId, data: &str) -> (Term, Index) {
        let placed = self
            .node_mut(id)
            .propose(Bytes::from(data.to_string()))
            .expect("proposal accepted");
        self.process(id);
        self.deliver_all();
        placed
    }

    /// Proposes `{prefix}0` .. `{prefix}{count - 1}` on `id`, one at a time;
    /// returns the index of the last.
    pub fn propose_numbered(&mut self, id: NodeId, prefix: &str, count: usize) -> Index {
        (0..count)
            .map(|i| self.propose(id, &format!("{prefix}{i}")).1)
            .last()
            .expect("at least one proposal")
    }

    /// Starts node `id` with an empty disk and no voters, as a node
    /// started to join a running cluster; it waits to be sent the log.
    pub fn add_joiner(&mut self, id: NodeId, configure: impl Fn(&mut Config)) {
        let mut config = Config::new(id, Vec::new());
        configure(&mut config);
        let seed = 1000 + id * 7919;
        let peer = Peer::start(config, Durable::default(), seed);
        self.peers.insert(id, peer);
    }

    /// Proposes a configuration change on `id` and settles the network.
    pub fn change(
        &mut self,
        id: NodeId,
        change: ConfChange,
    ) -> Result<(Term, Index), ConfChangeError> {
        let placed = self.node_mut(id).propose_conf_change(change)?;
        self.process(id);
        self.deliver_all();
        Ok(placed)
    }

    pub fn isolate(&mut self, id: NodeId) {
        for &other in self.peers.keys() {
            if other != id {
                self.cut_links.insert((id, other));
                self.cut_links.insert((other, id));
            }
        }
    }

    pub fn heal(&mut self) {
        self.cut_links.clear();
    }

    pub fn crash(&mut self, id: NodeId) {
        self.down.insert(id);
    }

    /// Loses everything `id` made durable (a wiped data directory); it
    /// comes back empty on `restart`, as a new incarnation.
    pub fn wipe(&mut self, id: NodeId) {
        let peer = self.peers.get_mut(&id).expect("known node");
        peer.durable = Durable::default();
        peer.config.incarnation += 1000;
    }

    /// Restarts `id` from exactly what it had made durable.
    pub fn restart(&mut self, id: NodeId) {
        self.down.remove(&id);
        let peer = self.peers.get_mut(&id).expect("known node");
        peer.seed += 1;
        peer.node = RawNode::new(peer.config.clone(), peer.durable.initial_state(), peer.seed)
            .expect("durable state restores");
        peer.state = peer
            .durable
            .snapshot
            .as_ref()
            .map(|s| decode_state(&s.data))
            .unwrap_or_default();
        peer.applied_index = peer.durable.snapshot.as_ref().map_or(0, |s| s.meta.index);
        self.process(id);
    }

    /// Compacts `id`'s log through its applied index, as a node's driver would.
    pub fn compact(&mut self, id: NodeId) -> Index {
        let peer = self.peers.get_mut(&id).expect("known node");
        let index = peer.applied_index;
        let data = encode_state(&peer.state);
        let term = peer
            .durable
            .entries
            .iter()
            .find(|e| e.index == index)
            .map(|e| e.term)
            .expect("applied entry is durable");
        let members = peer.node.members_at(index);
        peer.node
            .compact(index, data.clone())
            .expect("compacting the applied prefix");
        peer.durable.snapshot = Some(Snapshot {
            meta: SnapshotMeta {
                index,
                term,
                members,
            },
            data,
        });
        peer.durable.entries.retain(|e| e.index > index);
        index
    }

    /// Applied payloads of `id`, as strings.
    pub fn state_of(&self, id: NodeId) -> Vec<String> {
        self.peers[&id]
            .state
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    pub fn events_of(&self, id: NodeId) -> &[Event] {
        &self.peers[&id].events
    }
}
