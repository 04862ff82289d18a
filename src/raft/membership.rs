//! Membership: who the members are (voters and learners), which life of
//! each node id is the member, and how a configuration changes.
//!
//! A configuration names every member: its id, its incarnation (a random
//! number the node drew when its data dir was empty), its role (voter or
//! learner) and two addresses the core only carries (peer and client, for
//! the node to dial and to redirect clients to). A vote, an append ack or a
//! read confirmation counts only when it comes from a voter and carries the
//! incarnation the configuration names: a node that lost its disk is not
//! the voter it replaced.
//!
//! Configurations travel through the log (`EntryKind::Config` entries, each
//! holding the whole configuration; `EntryKind::Registry` entries written
//! before learners existed read as all-voter configurations) and in
//! snapshots. A node uses the newest configuration its log holds as soon as
//! it is appended, committed or not (Raft thesis §4.1); on truncation it
//! falls back to the one before.
//!
//! Changes are joint (thesis §4.3, in the form etcd calls auto-leave): the
//! newest configuration entry C_new, while not known committed, makes every
//! decision (election, commit, read, check-quorum) need a majority of the
//! voters of C_new *and* of the configuration before it, C_old. Once C_new
//! is known committed it alone decides, and the leader appends it a second
//! time, so a log holding both copies shows by itself that the change
//! committed (a node that restarts without its commit index still uses
//! C_new alone). One change is in flight at a time: a leader proposes the
//! next only once the previous one and its second copy committed, and only
//! after an entry of its own term committed.
//!
//! Bootstrap: a fresh cluster has no configuration in its log. A node
//! whose log holds none cannot tell a fresh member from one that lost its
//! disk, so it wins an election only with the votes of *every* member of
//! its `Config::voters` (a node holding committed entries refuses a
//! candidate without them), and as leader first appends the configuration
//! of its voters' incarnations. That first configuration counts as soon as
//! it is appended: every member elected its writer. A node started to join
//! a running cluster (`Config::voters` empty) waits for a leader to send it
//! the log.
//!
//! Re-admission of a node that lost its disk is a replacement of the
//! member's incarnation: the leader replicates to the new incarnation as to
//! a learner (its acks move its progress, never the commit index), and once
//! it holds everything committed, appends a configuration naming the new
//! incarnation in the member's role (the old incarnation leaves C_old, the
//! new one joins C_new, in one joint change).

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::message::{EntryKind, Incarnation, Index, NodeId, NO_INCARNATION, NO_NODE};

/// Whether a member votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberRole {
    /// Votes, and counts for elections, commit, reads and check-quorum.
    Voter,
    /// Receives the log and snapshots; never counted for anything.
    Learner,
}

impl MemberRole {
    /// Lowercase name as RAFT.MEMBERS shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberRole::Voter => "voter",
            MemberRole::Learner => "learner",
        }
    }
}

/// One member of a configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: NodeId,
    /// The life of `id` that is the member. `NO_INCARNATION` only for a
    /// learner added before its incarnation was known: it is set when the
    /// learner is promoted (or replaced once it has answered).
    pub incarnation: Incarnation,
    pub role: MemberRole,
    /// Opaque to the core: where peers reach this member.
    pub peer_addr: String,
    /// Opaque to the core: where clients reach this member.
    pub client_addr: String,
}

impl Member {
    pub fn voter(id: NodeId, incarnation: Incarnation) -> Self {
        Member {
            id,
            incarnation,
            role: MemberRole::Voter,
            peer_addr: String::new(),
            client_addr: String::new(),
        }
    }

    pub fn is_voter(&self) -> bool {
        self.role == MemberRole::Voter
    }
}

/// A configuration: node id -> member. Empty means "none yet" (bootstrap).
pub type Membership = BTreeMap<NodeId, Member>;

/// Bound on the members of one configuration (a sanity limit on decoding).
pub const MEMBERS_MAX: usize = 1024;
/// Bound on one member's address, in bytes.
pub const ADDRESS_BYTES_MAX: usize = 1024;

/// Encodes a configuration as a `Config` entry's data.
pub fn encode(membership: &Membership) -> Bytes {
    let members: Vec<&Member> = membership.values().collect();
    Bytes::from(postcard::to_allocvec(&members).expect("a configuration always encodes"))
}

/// Decodes a `Config` entry's data; None when it is not a well-formed
/// configuration (see `from_members`).
pub fn decode(data: &[u8]) -> Option<Membership> {
    match postcard::take_from_bytes::<Vec<Member>>(data) {
        Ok((members, [])) => from_members(&members),
        _ => None,
    }
}

/// Builds a configuration from a member list; None when ids do not ascend,
/// an id is 0, a voter has no incarnation, there is no voter, or a bound
/// is exceeded.
pub fn from_members(members: &[Member]) -> Option<Membership> {
    if members.len() > MEMBERS_MAX || !members.iter().any(Member::is_voter) {
        return None;
    }
    let mut membership = Membership::new();
    let mut previous_id = NO_NODE;
    for member in members {
        let well_formed = member.id > previous_id
            && (member.incarnation != NO_INCARNATION || !member.is_voter())
            && member.peer_addr.len() <= ADDRESS_BYTES_MAX
            && member.client_addr.len() <= ADDRESS_BYTES_MAX;
        if !well_formed {
            return None;
        }
        previous_id = member.id;
        membership.insert(member.id, member.clone());
    }
    Some(membership)
}

/// Bytes per member in a legacy `Registry` entry.
const REGISTRY_MEMBER_BYTES: usize = 16;

/// Decodes a `Registry` entry (written before learners existed: every
/// member a voter, as (id, incarnation) pairs of big-endian u64 in id
/// order); None when malformed.
pub fn decode_registry(data: &[u8]) -> Option<Membership> {
    if data.is_empty() || !data.len().is_multiple_of(REGISTRY_MEMBER_BYTES) {
        return None;
    }
    let members: Vec<Member> = data
        .chunks_exact(REGISTRY_MEMBER_BYTES)
        .map(|pair| {
            let id = u64::from_be_bytes(pair[..8].try_into().expect("8 bytes"));
            let incarnation = u64::from_be_bytes(pair[8..].try_into().expect("8 bytes"));
            Member::voter(id, incarnation)
        })
        .collect();
    from_members(&members)
}

/// The configuration an entry sets, if it is a configuration entry (a
/// legacy `Registry` one included); None for other entries and for
/// malformed ones.
pub fn decode_entry(entry: &crate::message::Entry) -> Option<Membership> {
    match entry.kind {
        EntryKind::Config => decode(&entry.data),
        EntryKind::Registry => decode_registry(&entry.data),
        EntryKind::Noop | EntryKind::Normal => None,
    }
}

/// True for a configuration entry that does not decode (no correct leader
/// sends one).
pub fn is_malformed_entry(entry: &crate::message::Entry) -> bool {
    matches!(entry.kind, EntryKind::Config | EntryKind::Registry) && decode_entry(entry).is_none()
}

/// The voters of a configuration.
pub fn voters(membership: &Membership) -> impl Iterator<Item = &Member> {
    membership.values().filter(|m| m.is_voter())
}

/// The configurations a log holds: the one its snapshot carries and one per
/// configuration entry after it, so the configuration at any index of the
/// log (committed or newest) is found without scanning entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Memberships {
    /// The configuration at the snapshot index.
    base: Membership,
    /// Where `base` is known to be in force: the index of the entry it came
    /// from when this log compacted it, else the snapshot's index; 0 for an
    /// empty base. It never moves back, so a configuration index keeps
    /// ordering configurations after compaction.
    base_index: Index,
    /// (index, configuration) of each configuration entry after the
    /// snapshot, ascending.
    entries: Vec<(Index, Membership)>,
}

impl Memberships {
    /// A log whose snapshot at `snapshot_index` carries `base`.
    pub fn new(base: Membership, snapshot_index: Index) -> Self {
        Memberships {
            base_index: if base.is_empty() { 0 } else { snapshot_index },
            base,
            entries: Vec::new(),
        }
    }

    /// A configuration entry was appended at `index` (after every recorded one).
    pub fn record(&mut self, index: Index, membership: Membership) {
        debug_assert!(self.entries.last().is_none_or(|&(last, _)| last < index));
        self.entries.push((index, membership));
    }

    /// The log was cut from `index` on.
    pub fn truncate_from(&mut self, index: Index) {
        self.entries.retain(|&(at, _)| at < index);
    }

    /// The log through `index` became a snapshot: fold what it covers into
    /// the base.
    pub fn compact_to(&mut self, index: Index) {
        if let Some((at, membership)) = self.entries.iter().rev().find(|&&(at, _)| at <= index) {
            self.base_index = *at;
            self.base = membership.clone();
        }
        self.entries.retain(|&(at, _)| at > index);
    }

    /// The snapshot installed at `index` carries `base`; entries kept after
    /// it keep their configurations.
    pub fn install(&mut self, index: Index, base: Membership) {
        self.base_index = if base.is_empty() { 0 } else { index };
        self.base = base;
        self.entries.retain(|&(at, _)| at > index);
    }

    /// The configuration in force at `index`: the newest at or before it.
    pub fn at(&self, index: Index) -> &Membership {
        self.entries
            .iter()
            .rev()
            .find(|&&(at, _)| at <= index)
            .map_or(&self.base, |(_, membership)| membership)
    }

    /// The newest configuration the log holds, committed or not.
    pub fn newest(&self) -> &Membership {
        self.entries.last().map_or(&self.base, |(_, m)| m)
    }

    /// Index of the newest configuration entry; when only the base exists,
    /// where the base is known in force (0 for none: bootstrap).
    pub fn newest_index(&self) -> Index {
        self.entries.last().map_or(self.base_index, |&(at, _)| at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};

    fn voters_of(pairs: &[(NodeId, Incarnation)]) -> Membership {
        pairs
            .iter()
            .map(|&(id, inc)| (id, Member::voter(id, inc)))
            .collect()
    }

    #[test]
    fn encoding_round_trips_and_rejects_garbage() {
        let mut m = voters_of(&[(1, 0xa41f), (2, 7), (3, u64::MAX)]);
        m.insert(
            4,
            Member {
                id: 4,
                incarnation: NO_INCARNATION,
                role: MemberRole::Learner,
                peer_addr: "127.0.0.1:7104".into(),
                client_addr: "127.0.0.1:7004".into(),
            },
        );
        assert_eq!(decode(&encode(&m)), Some(m.clone()));
        assert_eq!(decode(&encode(&Membership::new())), None, "no voter");
        let mut trailing = encode(&m).to_vec();
        trailing.push(0);
        assert_eq!(decode(&trailing), None, "trailing bytes");
        let voter_without_incarnation = vec![Member::voter(1, NO_INCARNATION)];
        assert_eq!(from_members(&voter_without_incarnation), None);
        let descending = vec![Member::voter(2, 1), Member::voter(1, 1)];
        assert_eq!(from_members(&descending), None, "ids must ascend");
    }

    #[test]
    fn a_legacy_registry_reads_as_an_all_voter_configuration() {
        let mut data = BytesMut::new();
        for (id, inc) in [(1u64, 11u64), (2, 12)] {
            data.put_u64(id);
            data.put_u64(inc);
        }
        assert_eq!(decode_registry(&data), Some(voters_of(&[(1, 11), (2, 12)])));
        assert_eq!(decode_registry(&[0; 15]), None, "not pairs of u64");
        let mut zero = BytesMut::new();
        zero.put_u64(1);
        zero.put_u64(NO_INCARNATION);
        assert_eq!(decode_registry(&zero), None, "incarnation 0 is never drawn");
    }

    #[test]
    fn the_configuration_at_an_index_is_the_newest_at_or_before_it() {
        let mut all = Memberships::new(voters_of(&[(1, 10)]), 2);
        assert_eq!(all.newest_index(), 2, "the snapshot's configuration");
        all.record(5, voters_of(&[(1, 11)]));
        all.record(9, voters_of(&[(1, 12)]));
        assert_eq!(all.at(4), &voters_of(&[(1, 10)]));
        assert_eq!(all.at(5), &voters_of(&[(1, 11)]));
        assert_eq!(all.at(8), &voters_of(&[(1, 11)]));
        assert_eq!(all.newest(), &voters_of(&[(1, 12)]));
        all.truncate_from(9);
        assert_eq!(all.newest(), &voters_of(&[(1, 11)]));
        all.compact_to(6);
        assert_eq!(all.at(6), &voters_of(&[(1, 11)]));
        assert_eq!(all.newest_index(), 5, "the compacted entry's index stays");
        all.compact_to(7);
        assert_eq!(all.newest_index(), 5, "no configuration entry in 7");
    }

    #[test]
    fn installing_a_snapshot_keeps_later_entries_only() {
        let mut all = Memberships::new(Membership::new(), 0);
        assert_eq!(all.newest_index(), 0, "bootstrap: no configuration");
        all.record(3, voters_of(&[(1, 1)]));
        all.record(8, voters_of(&[(1, 2)]));
        all.install(5, voters_of(&[(1, 1)]));
        assert_eq!(all.at(5), &voters_of(&[(1, 1)]));
        assert_eq!(all.newest(), &voters_of(&[(1, 2)]));
        assert_eq!(all.newest_index(), 8);
        all.install(9, voters_of(&[(1, 2)]));
        assert_eq!(
            all.newest_index(),
            9,
            "the installed snapshot's configuration is in force at its index"
        );
    }
}
