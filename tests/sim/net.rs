//! The simulated network between nodes: per-message delay (and so
//! reordering), drops, duplicates, rare long delay spikes, and partitions as
//! a matrix of blocked one-way links.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use raftkv::message::{Message, NodeId};
use raftkv::raft::Rng;

/// Bound on messages in flight; beyond it a send is dropped, as a full
/// socket buffer would.
pub const IN_FLIGHT_MESSAGES_MAX: usize = 50_000;

/// The network's fault mix. Probabilities are per message.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NetworkFaults {
    pub drop_probability: f64,
    pub duplicate_probability: f64,
    /// Ordinary delay is uniform in `delay_ticks_min..=delay_ticks_max`.
    pub delay_ticks_min: u64,
    pub delay_ticks_max: u64,
    /// A few messages are held much longer, so stale messages from old
    /// terms arrive long after they were sent.
    pub spike_probability: f64,
    pub spike_delay_ticks_max: u64,
}

impl NetworkFaults {
    /// A healed network: no loss, short delays.
    pub fn healed() -> Self {
        NetworkFaults {
            drop_probability: 0.0,
            duplicate_probability: 0.0,
            delay_ticks_min: 1,
            delay_ticks_max: 2,
            spike_probability: 0.0,
            spike_delay_ticks_max: 0,
        }
    }
}

/// Counters for the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetworkStats {
    pub sent: u64,
    pub delivered: u64,
    pub dropped_random: u64,
    pub dropped_partition: u64,
    pub dropped_overflow: u64,
    pub duplicated: u64,
}

struct InFlight {
    deliver_at_tick: u64,
    /// Random tie-break: messages due at the same tick arrive in any order.
    order: u64,
    message: Message,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap and we pop the earliest.
        (other.deliver_at_tick, other.order).cmp(&(self.deliver_at_tick, self.order))
    }
}

/// Messages in flight and the partition matrix. Node ids are 1..=size.
pub struct Network {
    size: usize,
    in_flight: BinaryHeap<InFlight>,
    /// `blocked[from - 1][to - 1]`: messages on this one-way link are lost.
    blocked: Vec<Vec<bool>>,
    pub faults: NetworkFaults,
    pub stats: NetworkStats,
}

impl Network {
    pub fn new(size: usize, faults: NetworkFaults) -> Self {
        Network {
            size,
            in_flight: BinaryHeap::new(),
            blocked: vec![vec![false; size]; size],
            faults,
            stats: NetworkStats::default(),
        }
    }

    /// Puts a message on the wire at `now_tick`, with this network's faults.
    pub fn send(&mut self, rng: &mut Rng, now_tick: u64, message: Message) {
        self.stats.sent += 1;
        if chance(rng, self.faults.drop_probability) {
            self.stats.dropped_random += 1;
            return;
        }
        if chance(rng, self.faults.duplicate_probability) {
            self.stats.duplicated += 1;
            self.enqueue(rng, now_tick, message.clone());
        }
        self.enqueue(rng, now_tick, message);
    }

    fn enqueue(&mut self, rng: &mut Rng, now_tick: u64, message: Message) {
        if self.in_flight.len() >= IN_FLIGHT_MESSAGES_MAX {
            self.stats.dropped_overflow += 1;
            return;
        }
        let faults = self.faults;
        let delay_ticks = if faults.spike_delay_ticks_max > faults.delay_ticks_max
            && chance(rng, faults.spike_probability)
        {
            rng.range(faults.delay_ticks_max, faults.spike_delay_ticks_max + 1)
        } else {
            rng.range(faults.delay_ticks_min, faults.delay_ticks_max + 1)
        };
        self.in_flight.push(InFlight {
            deliver_at_tick: now_tick + delay_ticks.max(1),
            order: rng.next_u64(),
            message,
        });
    }

    /// Re-queues a message that arrived at a stalled node: it waits in the
    /// node's receive buffer until the node runs again.
    pub fn hold_until(&mut self, rng: &mut Rng, tick: u64, message: Message) {
        self.in_flight.push(InFlight {
            deliver_at_tick: tick,
            order: rng.next_u64(),
            message,
        });
    }

    /// The next message due by `now_tick` whose link is open; messages on
    /// blocked links are lost on the way.
    pub fn pop_due(&mut self, now_tick: u64) -> Option<Message> {
        while self
            .in_flight
            .peek()
            .is_some_and(|m| m.deliver_at_tick <= now_tick)
        {
            let in_flight = self.in_flight.pop().expect("peeked");
            let message = in_flight.message;
            if self.is_blocked(message.from, message.to) {
                self.stats.dropped_partition += 1;
                continue;
            }
            self.stats.delivered += 1;
            return Some(message);
        }
        None
    }

    pub fn in_flight_len(&self) -> usize {
        self.in_flight.len()
    }

    pub fn is_blocked(&self, from: NodeId, to: NodeId) -> bool {
        self.blocked[(from - 1) as usize][(to - 1) as usize]
    }

    pub fn block(&mut self, from: NodeId, to: NodeId) {
        if from != to {
            self.blocked[(from - 1) as usize][(to - 1) as usize] = true;
        }
    }

    /// Cuts every link between the two sides, both ways.
    pub fn split(&mut self, side: &[NodeId]) {
        for from in 1..=self.size as NodeId {
            for to in 1..=self.size as NodeId {
                if side.contains(&from) != side.contains(&to) {
                    self.block(from, to);
                }
            }
        }
    }

    pub fn heal(&mut self) {
        for row in &mut self.blocked {
            row.fill(false);
        }
    }

    pub fn is_healed(&self) -> bool {
        self.blocked.iter().all(|row| row.iter().all(|b| !b))
    }

    /// The blocked one-way links, for the trace.
    pub fn describe_partition(&self) -> String {
        if self.is_healed() {
            return "healed".to_string();
        }
        let mut links = Vec::new();
        for from in 1..=self.size as NodeId {
            for to in 1..=self.size as NodeId {
                if self.is_blocked(from, to) {
                    links.push(format!("{from}->{to}"));
                }
            }
        }
        format!("blocked {}", links.join(" "))
    }
}

/// True with probability `p`.
pub fn chance(rng: &mut Rng, p: f64) -> bool {
    if p <= 0.0 {
        return false;
    }
    // 53 random bits give a uniform float in [0, 1).
    ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftkv::message::Body;

    fn message(from: NodeId, to: NodeId, term: u64) -> Message {
        Message {
            from,
            to,
            term,
            incarnation: from,
            body: Body::TimeoutNow,
        }
    }

    #[test]
    fn messages_arrive_after_their_delay_and_partitions_drop_them() {
        let mut rng = Rng::new(7);
        let faults = NetworkFaults {
            delay_ticks_min: 3,
            delay_ticks_max: 3,
            ..NetworkFaults::healed()
        };
        let mut net = Network::new(3, faults);
        net.send(&mut rng, 10, message(1, 2, 1));
        net.send(&mut rng, 10, message(2, 1, 1));
        assert_eq!(net.pop_due(12), None);
        net.block(2, 1);
        assert_eq!(net.pop_due(13), Some(message(1, 2, 1)));
        assert_eq!(net.pop_due(13), None);
        assert_eq!(net.stats.dropped_partition, 1);
        assert_eq!(net.in_flight_len(), 0);
    }

    #[test]
    fn split_blocks_both_ways_and_heal_opens_everything() {
        let mut net = Network::new(5, NetworkFaults::healed());
        net.split(&[1, 2]);
        assert!(net.is_blocked(1, 3) && net.is_blocked(3, 1));
        assert!(!net.is_blocked(1, 2) && !net.is_blocked(3, 4));
        net.heal();
        assert!(net.is_healed());
    }

    #[test]
    fn chance_is_roughly_its_probability() {
        let mut rng = Rng::new(1);
        let hits = (0..10_000).filter(|_| chance(&mut rng, 0.25)).count();
        assert!((2_200..2_800).contains(&hits), "hits: {hits}");
        assert!(!(0..1000).any(|_| chance(&mut rng, 0.0)));
    }
}
