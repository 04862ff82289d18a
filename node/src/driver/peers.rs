//! Where this node reaches its peers, and which peer links the transport
//! keeps open as the configuration changes.
//!
//! A peer's address comes from, in this order: `--peer-routes` (a fault
//! proxy in between), `--cluster` (the node's own view of the members it
//! started with: with a fault proxy each node reaches a peer at another
//! address), the configuration entry that names the member (a member added
//! at runtime carries its real `--peer` address; the cluster's first
//! configuration carries the addresses its bootstrap leader was started
//! with), and last the member list the `--join` address answered. So a
//! member a node started with keeps its address for that node; a machine
//! replaced at another address joins under a new id.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use raftkv::message::NodeId;
use raftkv::raft::membership::Member;
use tracing::warn;

use crate::log_events;

/// The links the transport should have: (peer, address), where None keeps
/// an existing link without opening one (a member the pending change
/// removes still counts until it commits).
pub(crate) type WantedLinks = Vec<(NodeId, Option<SocketAddr>)>;

pub(crate) struct PeerAddresses {
    own_id: NodeId,
    /// `--peer-routes`.
    routes: BTreeMap<NodeId, SocketAddr>,
    /// `--cluster`.
    started: BTreeMap<NodeId, SocketAddr>,
    /// The members the `--join` address listed.
    seeded: BTreeMap<NodeId, SocketAddr>,
    /// Started with `--join`: until the configuration arrives, handshakes
    /// from any member of the cluster are accepted (the leader that adds
    /// this node dials it before this node knows it is a member).
    joining: bool,
    /// The configuration (and leader) the links were last set for.
    linked_for: Option<(Vec<Member>, Vec<NodeId>, NodeId)>,
}

impl PeerAddresses {
    /// `started`: `--cluster`; `seeded`: what the `--join` address
    /// listed (a node has one or the other).
    pub(crate) fn new(
        own_id: NodeId,
        routes: impl IntoIterator<Item = (NodeId, SocketAddr)>,
        started: impl IntoIterator<Item = (NodeId, SocketAddr)>,
        seeded: impl IntoIterator<Item = (NodeId, SocketAddr)>,
    ) -> Self {
        let seeded: BTreeMap<NodeId, SocketAddr> = seeded.into_iter().collect();
        let started: BTreeMap<NodeId, SocketAddr> = started.into_iter().collect();
        PeerAddresses {
            own_id,
            routes: routes.into_iter().collect(),
            joining: started.is_empty(),
            started,
            seeded,
            linked_for: None,
        }
    }

    /// The address to dial `id` at, given the configuration's entry for it.
    fn dial_address(&self, id: NodeId, configured: Option<&str>) -> Option<SocketAddr> {
        if let Some(&addr) = self.routes.get(&id).or_else(|| self.started.get(&id)) {
            return Some(addr);
        }
        let configured = configured.filter(|addr| !addr.is_empty());
        if let Some(text) = configured {
            match text.parse() {
                Ok(addr) => return Some(addr),
                Err(_) => warn!(
                    event = log_events::CONFIG_WARNING,
                    peer = id,
                    peer_addr = text,
                    message = "the configuration names a peer address that is not ip:port"
                ),
            }
        }
        self.seeded.get(&id).copied()
    }

    /// The peer address to show for `member`: its configured one, else the
    /// one this node started with (empty when neither is known).
    pub(crate) fn shown_peer_addr(&self, member: &Member) -> String {
        if !member.peer_addr.is_empty() {
            return member.peer_addr.clone();
        }
        self.started
            .get(&member.id)
            .or_else(|| self.seeded.get(&member.id))
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    /// The ids this node started with (`--cluster` or the join answer).
    pub(crate) fn known_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.started.keys().chain(self.seeded.keys()).copied()
    }

    /// The links for `members` (the newest configuration; empty before the
    /// cluster's first one), `previous_voters` (while a change is pending)
    /// and the leader this node follows (`NO_NODE`: none; a leader that
    /// removed itself leads until the change is confirmed, and needs its
    /// followers' acks for that), and whether handshakes from any member
    /// are accepted; None when the links were already set for this.
    pub(crate) fn links_for(
        &mut self,
        members: &[Member],
        previous_voters: &[NodeId],
        leader: NodeId,
    ) -> Option<(WantedLinks, bool)> {
        // Compared before anything is copied: this runs on every status change.
        let unchanged = self.linked_for.as_ref().is_some_and(|(m, p, l)| {
            m.as_slice() == members && p.as_slice() == previous_voters && *l == leader
        });
        if unchanged {
            return None;
        }
        self.linked_for = Some((members.to_vec(), previous_voters.to_vec(), leader));
        let own = self.own_id;
        let mut wanted: WantedLinks = if members.is_empty() {
            self.known_ids()
                .filter(|&id| id != own)
                .map(|id| (id, self.dial_address(id, None)))
                .collect()
        } else {
            members
                .iter()
                .filter(|m| m.id != own)
                .map(|m| (m.id, self.dial_address(m.id, Some(&m.peer_addr))))
                .collect()
        };
        let leader = Some(leader).filter(|&id| id != raftkv::message::NO_NODE);
        for id in previous_voters.iter().copied().chain(leader) {
            if id != own && !wanted.iter().any(|&(peer, _)| peer == id) {
                wanted.push((id, self.dial_address(id, None)));
            }
        }
        let accept_any = self.joining && members.is_empty();
        Some((wanted, accept_any))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftkv::raft::membership::MemberRole;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn member(id: NodeId, peer_addr: &str, role: MemberRole) -> Member {
        Member {
            id,
            incarnation: 7,
            role,
            peer_addr: peer_addr.into(),
            client_addr: String::new(),
        }
    }

    #[test]
    fn routes_then_the_start_addresses_then_the_configuration() {
        let mut peers = PeerAddresses::new(
            1,
            [(3, addr(9003))],
            [(1, addr(7101)), (2, addr(7102)), (3, addr(7103))],
            [],
        );
        let members = [
            member(1, "", MemberRole::Voter),
            member(2, "127.0.0.1:9999", MemberRole::Voter),
            member(3, "127.0.0.1:7203", MemberRole::Voter),
            member(4, "127.0.0.1:7104", MemberRole::Learner),
        ];
        let (wanted, accept_any) = peers.links_for(&members, &[], 0).unwrap();
        assert!(!accept_any);
        assert_eq!(
            wanted,
            vec![
                (2, Some(addr(7102))),
                (3, Some(addr(9003))),
                (4, Some(addr(7104)))
            ]
        );
        assert_eq!(peers.links_for(&members, &[], 0), None, "unchanged");
    }

    #[test]
    fn a_removed_member_keeps_its_link_while_it_counts_or_leads() {
        let mut peers = PeerAddresses::new(1, [], [(2, addr(7102)), (3, addr(7103))], []);
        let members = [
            member(1, "", MemberRole::Voter),
            member(2, "", MemberRole::Voter),
        ];
        let (wanted, _) = peers.links_for(&members, &[1, 2, 3], 1).unwrap();
        assert_eq!(wanted, vec![(2, Some(addr(7102))), (3, Some(addr(7103)))]);
        let (wanted, _) = peers.links_for(&members, &[], 1).unwrap();
        assert_eq!(wanted, vec![(2, Some(addr(7102)))]);
        // Seen from node 2, whose leader 3 removed itself: 3 stays linked
        // until it steps down.
        let mut peers = PeerAddresses::new(2, [], [(1, addr(7101)), (3, addr(7103))], []);
        let (wanted, _) = peers.links_for(&members, &[], 3).unwrap();
        assert_eq!(wanted, vec![(1, Some(addr(7101))), (3, Some(addr(7103)))]);
        let (wanted, _) = peers.links_for(&members, &[], 1).unwrap();
        assert_eq!(wanted, vec![(1, Some(addr(7101)))]);
        // A removed member without a known address keeps an existing link.
        let mut peers = PeerAddresses::new(1, [], [(2, addr(7102))], []);
        let (wanted, _) = peers.links_for(&members, &[1, 2, 5], 1).unwrap();
        assert_eq!(wanted, vec![(2, Some(addr(7102))), (5, None)]);
    }

    #[test]
    fn a_joining_node_dials_what_it_was_told_and_accepts_any_member_until_configured() {
        let mut peers = PeerAddresses::new(4, [], [], [(1, addr(7101)), (2, addr(7102))]);
        let (wanted, accept_any) = peers.links_for(&[], &[], 0).unwrap();
        assert!(accept_any);
        assert_eq!(wanted, vec![(1, Some(addr(7101))), (2, Some(addr(7102)))]);
        let members = [
            member(1, "", MemberRole::Voter),
            member(4, "127.0.0.1:7104", MemberRole::Learner),
        ];
        let (wanted, accept_any) = peers.links_for(&members, &[], 0).unwrap();
        assert!(!accept_any);
        assert_eq!(wanted, vec![(1, Some(addr(7101)))]);
    }

    #[test]
    fn a_malformed_configured_address_falls_back_to_the_start_address() {
        let peers = PeerAddresses::new(1, [], [(2, addr(7102))], []);
        assert_eq!(
            peers.dial_address(2, Some("not an address")),
            Some(addr(7102))
        );
        assert_eq!(peers.dial_address(5, Some("nope")), None);
    }
}
