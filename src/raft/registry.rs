//! The member registry: which incarnation of each node id is the voter.
//!
//! Raft assumes stable storage. A voter that lost its disk forgot its vote
//! and its log; counted as its old self it could elect a leader without
//! committed entries, or vote twice in one term. So every node id is bound
//! to one incarnation (a random number the node drew when its data dir was
//! empty), and a vote, an append ack or a read confirmation counts only when
//! the message carries the registered incarnation.
//!
//! The registry travels through the log (`EntryKind::Registry` entries, each
//! holding the whole registry) and in snapshots, and a node uses the newest
//! one its log holds, committed or not, as Raft does with configurations.
//! While the newest one re-admits a member and is not known committed, a
//! sender must match the registry before it as well: the member whose
//! incarnation changes counts in neither, so the change commits by a
//! majority of the other members alone (a majority of the old
//! configuration, the old incarnation being gone, as a joint configuration
//! would require). A leader proposes one change at a time, only once the
//! previous registry committed.
//!
//! Bootstrap: a fresh cluster has no registry. A node whose log holds none
//! cannot tell a fresh member from one that lost its disk, so it wins an
//! election only with the votes of *every* member (a node holding
//! committed entries refuses a candidate without them), and as leader first
//! appends the registry made of its voters' incarnations. That first
//! registry counts as soon as it is appended: every member elected its
//! writer, so its leader held every committed entry.
//!
//! Re-admission: a leader whose registry names another incarnation for a
//! peer replicates to that peer as to a non-voter (its acks move its
//! progress, never the commit index), and once the peer holds everything
//! committed, appends a registry entry naming its new incarnation. The
//! peer is a voter again once that entry commits.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};

use crate::message::{Incarnation, Index, NodeId, NO_INCARNATION};

/// Node id -> registered incarnation.
pub type Registry = BTreeMap<NodeId, Incarnation>;

/// Bytes per registered member in an encoded registry entry.
const MEMBER_BYTES: usize = 16;

/// Encodes a registry as a `Registry` entry's data: (id, incarnation) pairs,
/// each as two big-endian u64, in id order.
pub fn encode(registry: &Registry) -> Bytes {
    let mut data = BytesMut::with_capacity(registry.len() * MEMBER_BYTES);
    for (&id, &incarnation) in registry {
        data.put_u64(id);
        data.put_u64(incarnation);
    }
    data.freeze()
}

/// Decodes a `Registry` entry's data; None when it is not a well-formed
/// registry (a length that is not a multiple of 16, ids out of order, a
/// zero id or incarnation).
pub fn decode(data: &[u8]) -> Option<Registry> {
    if !data.len().is_multiple_of(MEMBER_BYTES) {
        return None;
    }
    let mut registry = Registry::new();
    let mut previous_id = 0;
    for member in data.chunks_exact(MEMBER_BYTES) {
        let id = u64::from_be_bytes(member[..8].try_into().ok()?);
        let incarnation = u64::from_be_bytes(member[8..].try_into().ok()?);
        if id <= previous_id || incarnation == NO_INCARNATION {
            return None;
        }
        previous_id = id;
        registry.insert(id, incarnation);
    }
    Some(registry)
}

/// The registries a log holds: the one its snapshot carries and one per
/// `Registry` entry after it, so the registry at any index of the log
/// (committed or newest) is found without scanning entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Registries {
    /// The registry at the snapshot index.
    base: Registry,
    /// (index, registry) of each registry entry after the snapshot, ascending.
    entries: Vec<(Index, Registry)>,
}

impl Registries {
    pub fn new(base: Registry) -> Self {
        Registries {
            base,
            entries: Vec::new(),
        }
    }

    /// A registry entry was appended at `index` (after every recorded one).
    pub fn record(&mut self, index: Index, registry: Registry) {
        debug_assert!(self.entries.last().is_none_or(|&(last, _)| last < index));
        self.entries.push((index, registry));
    }

    /// The log was cut from `index` on.
    pub fn truncate_from(&mut self, index: Index) {
        self.entries.retain(|&(at, _)| at < index);
    }

    /// The log through `index` became a snapshot: fold what it covers into
    /// the base.
    pub fn compact_to(&mut self, index: Index) {
        self.base = self.at(index).clone();
        self.entries.retain(|&(at, _)| at > index);
    }

    /// The snapshot installed at `index` carries `base`; entries kept after
    /// it keep their registries.
    pub fn install(&mut self, index: Index, base: Registry) {
        self.base = base;
        self.entries.retain(|&(at, _)| at > index);
    }

    /// The registry in force at `index`: the newest one at or before it.
    pub fn at(&self, index: Index) -> &Registry {
        self.entries
            .iter()
            .rev()
            .find(|&&(at, _)| at <= index)
            .map_or(&self.base, |(_, registry)| registry)
    }

    /// The newest registry the log holds, committed or not.
    pub fn newest(&self) -> &Registry {
        self.entries.last().map_or(&self.base, |(_, r)| r)
    }

    /// Index of the newest registry entry (0 when only the base exists).
    pub fn newest_index(&self) -> Index {
        self.entries.last().map_or(0, |&(at, _)| at)
    }
}

/// Flattens a registry for `SnapshotMeta::registry`.
pub fn to_pairs(registry: &Registry) -> Vec<(NodeId, Incarnation)> {
    registry.iter().map(|(&id, &inc)| (id, inc)).collect()
}

/// Rebuilds a registry from `SnapshotMeta::registry`.
pub fn from_pairs(pairs: &[(NodeId, Incarnation)]) -> Registry {
    pairs.iter().copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(pairs: &[(NodeId, Incarnation)]) -> Registry {
        from_pairs(pairs)
    }

    #[test]
    fn encoding_round_trips_and_rejects_garbage() {
        let r = registry(&[(1, 0xa41f), (2, 7), (3, u64::MAX)]);
        assert_eq!(decode(&encode(&r)), Some(r));
        assert_eq!(decode(&[]), Some(Registry::new()));
        assert_eq!(decode(&[0; 15]), None, "length not a multiple of 16");
        let mut out_of_order = BytesMut::new();
        out_of_order.put_u64(2);
        out_of_order.put_u64(1);
        out_of_order.put_u64(1);
        out_of_order.put_u64(1);
        assert_eq!(decode(&out_of_order), None, "ids must ascend");
        let mut zero = BytesMut::new();
        zero.put_u64(1);
        zero.put_u64(NO_INCARNATION);
        assert_eq!(decode(&zero), None, "incarnation 0 is never drawn");
    }

    #[test]
    fn the_registry_at_an_index_is_the_newest_at_or_before_it() {
        let mut registries = Registries::new(registry(&[(1, 10)]));
        registries.record(5, registry(&[(1, 11)]));
        registries.record(9, registry(&[(1, 12)]));
        assert_eq!(registries.at(4), &registry(&[(1, 10)]));
        assert_eq!(registries.at(5), &registry(&[(1, 11)]));
        assert_eq!(registries.at(8), &registry(&[(1, 11)]));
        assert_eq!(registries.newest(), &registry(&[(1, 12)]));
        registries.truncate_from(9);
        assert_eq!(registries.newest(), &registry(&[(1, 11)]));
        registries.compact_to(6);
        assert_eq!(registries.at(6), &registry(&[(1, 11)]));
        assert_eq!(registries.newest_index(), 0);
    }

    #[test]
    fn installing_a_snapshot_keeps_later_entries_only() {
        let mut registries = Registries::new(Registry::new());
        registries.record(3, registry(&[(1, 1)]));
        registries.record(8, registry(&[(1, 2)]));
        registries.install(5, registry(&[(1, 1)]));
        assert_eq!(registries.at(5), &registry(&[(1, 1)]));
        assert_eq!(registries.newest(), &registry(&[(1, 2)]));
    }
}
