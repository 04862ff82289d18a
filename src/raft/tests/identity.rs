//! Member identity (RAFT_PITFALLS.md, "Lost disks and membership"): a
//! voter that lost its disk comes back as a new incarnation and is not
//! counted as the voter it replaced until the log re-admits it.

use super::harness::*;
use crate::message::{Body, EntryKind, Message, NodeId};
use crate::raft::membership::{self, Member, Membership};
use crate::raft::{Event, Role};

/// A message as another incarnation of `from` would send it.
fn from_incarnation(from: NodeId, incarnation: u64, to: NodeId, term: u64, body: Body) -> Message {
    Message {
        incarnation,
        ..message(from, to, term, body)
    }
}

/// A member re-admitted while this node was away holds entries this node
/// lacks (its re-admission among them): it may be voted for, and counts
/// votes by its own log.
#[test]
fn a_readmitted_candidate_with_a_longer_log_gets_the_vote_of_a_lagging_node() {
    let mut node = node_with_log(plain_config(1, &[1, 2, 3]), &[1], 1, 1);
    let request = vote_body(4, 2);
    node.step(from_incarnation(2, 2002, 1, 3, request))
        .expect("voter id");
    let ready = drain(&mut node);
    assert!(ready
        .persisted_messages
        .iter()
        .any(|m| m.to == 2 && m.body == Body::VoteReply { granted: true }));
    assert_eq!((node.status().vote, node.status().term), (2, 3));
}

#[test]
fn a_vote_is_for_one_incarnation_of_a_node_id() {
    let mut node = node_with_log(plain_config(1, &[1, 2, 3]), &[1], 1, 1);
    let request = vote_body(1, 1);
    node.step(message(2, 1, 2, request.clone())).expect("voter");
    drain(&mut node);
    // Node 2 loses its disk and asks again in the same term: the vote was
    // for its earlier life, not for this one.
    let again = vote_body(5, 1);
    node.step(from_incarnation(2, 2002, 1, 2, again))
        .expect("voter id");
    let ready = drain(&mut node);
    assert!(all_messages(&ready)
        .iter()
        .any(|m| m.to == 2 && m.body == Body::VoteReply { granted: false }));
    node.step(message(2, 1, 2, request)).expect("voter");
    let ready = drain(&mut node);
    assert!(
        all_messages(&ready)
            .iter()
            .any(|m| m.to == 2 && m.body == Body::VoteReply { granted: true }),
        "the same life asking again gets its vote again"
    );
}

#[test]
fn a_vote_from_another_incarnation_of_a_voter_is_not_counted() {
    let mut node = node_with_log(plain_config(1, &[1, 2, 3]), &[1], 1, 1);
    tick_until_campaign(&mut node);
    let wiped = from_incarnation(2, 2002, 1, 2, Body::VoteReply { granted: true });
    node.step(wiped).expect("voter id");
    drain(&mut node);
    assert_eq!(node.status().role, Role::Candidate, "the wiped node's vote");
    node.step(message(3, 1, 2, Body::VoteReply { granted: true }))
        .expect("voter");
    assert_eq!(node.status().role, Role::Leader);
    assert!(
        node.status().strangers.is_empty(),
        "peers that have not replied in this term are not strangers"
    );
}

#[test]
fn a_candidate_that_lost_its_disk_gets_no_vote() {
    let mut node = node_with_log(plain_config(1, &[1, 2, 3]), &[1], 1, 1);
    let request = vote_body(1, 1);
    node.step(from_incarnation(2, 2002, 1, 2, request))
        .expect("voter id");
    let ready = drain(&mut node);
    assert!(ready.events.iter().any(|e| matches!(
        e,
        Event::VoteRefused { candidate: 2, reason, .. } if reason.contains("registered incarnation")
    )));
    assert!(all_messages(&ready)
        .iter()
        .any(|m| m.to == 2 && m.body == Body::VoteReply { granted: false }));
    assert_eq!(node.status().vote, 0);
}

/// RAFT_PITFALLS.md: "letting it vote as its old self can elect a leader
/// without committed entries". Node 2 is stopped, 50 writes commit on
/// nodes 3 and 1, leader 3 dies, node 1 loses its disk: nodes 1 and 2
/// must not form a quorum, and once node 3 is back nothing is lost.
#[test]
fn the_wiped_disk_sequence_loses_no_committed_entry() {
    let mut cluster = Cluster::with_leader(3, 3);
    cluster.crash(2);
    let last = cluster.propose_numbered(3, "key-", 50);
    assert_eq!(cluster.node(3).status().commit_index, last);
    cluster.crash(3);
    cluster.crash(1);
    cluster.wipe(1);
    cluster.restart(1);
    cluster.restart(2);
    cluster.run(300);
    assert_eq!(cluster.leader(), None, "nodes 1 and 2 formed a quorum");
    for id in [1, 2] {
        assert!(cluster.node(id).status().commit_index < last);
    }
    cluster.restart(3);
    assert!(cluster.run_until(500, |c| {
        [1, 2, 3].iter().all(|&id| {
            let status = c.node(id).status();
            status.registered && status.applied_index > last
        }) && c.state_of(1) == c.state_of(3)
            && c.state_of(2) == c.state_of(3)
    }));
    assert_eq!(cluster.state_of(1).len(), 50, "every committed write kept");
}

#[test]
fn a_wiped_follower_is_caught_up_as_a_non_voter_then_readmitted() {
    let mut cluster = Cluster::with_leader(3, 1);
    cluster.propose_numbered(1, "value-", 10);
    let snapshot_index = cluster.compact(1);
    cluster.crash(3);
    cluster.wipe(3);
    cluster.restart(3);
    let incarnation = cluster.peer(3).config.incarnation;
    assert!(!cluster.node(3).status().registered);
    assert!(cluster.run_until(200, |c| c.state_of(3) == c.state_of(1)
        && c.node(3).status().registered));
    assert!(cluster
        .events_of(3)
        .iter()
        .any(|e| matches!(e, Event::AwaitingReadmission { incarnation: i, registered: 3 } if *i == incarnation)));
    let leader_events = cluster.events_of(1);
    assert!(leader_events.contains(&Event::PeerIncarnationChanged {
        peer: 3,
        incarnation,
        registered: 3,
    }));
    assert!(leader_events
        .iter()
        .any(|e| matches!(e, Event::ReadmissionProposed { peer: 3, incarnation: i, .. } if *i == incarnation)));
    for id in [1, 2] {
        assert!(
            cluster
                .events_of(id)
                .iter()
                .any(|e| matches!(e, Event::MemberReadmitted { peer: 3, incarnation: i, .. } if *i == incarnation)),
            "node {id} reports the re-admission"
        );
    }
    assert!(cluster
        .events_of(3)
        .iter()
        .any(|e| matches!(e, Event::SnapshotInstalled { index, .. } if *index == snapshot_index)));
    assert!(cluster.node(1).status().strangers.is_empty());
    cluster.propose(1, "after-the-wipe");
    assert!(cluster.run_until(200, |c| c.state_of(3) == c.state_of(1)));
}

#[test]
fn acks_of_a_wiped_node_do_not_count_towards_commit_until_it_is_readmitted() {
    let mut cluster = Cluster::with_leader(3, 1);
    cluster.propose(1, "before");
    cluster.crash(2);
    cluster.crash(3);
    cluster.wipe(3);
    cluster.restart(3);
    let (_, index) = cluster.propose(1, "while-2-is-down");
    cluster.run(5);
    assert!(
        cluster.node(3).status().last_index >= index,
        "the wiped node receives the log"
    );
    assert!(
        cluster.node(1).status().commit_index < index,
        "but its acks do not commit it"
    );
    assert_eq!(
        cluster.node(1).status().strangers,
        vec![3],
        "node 2 is down, not a stranger"
    );
    cluster.restart(2);
    assert!(
        cluster.run_until(200, |c| c.node(1).status().commit_index >= index
            && c.node(3).status().registered)
    );
}

#[test]
fn a_new_cluster_needs_every_member_for_its_first_election_and_registers_them() {
    let mut cluster = Cluster::unregistered(3, |config| {
        config.voter_peer_addrs = (1..=3)
            .map(|id| (id, format!("10.0.0.{id}:7100")))
            .collect();
    });
    cluster.crash(3);
    cluster.run(300);
    assert_eq!(cluster.leader(), None, "two of three cannot bootstrap");
    cluster.restart(3);
    assert!(cluster.run_until(500, |c| c.leader().is_some()
        && [1, 2, 3].iter().all(|&id| c.node(id).status().registered)));
    let leader = cluster.leader().expect("leader");
    let first = cluster
        .peer(leader)
        .durable
        .entries
        .first()
        .expect("an entry")
        .clone();
    assert_eq!(first.kind, EntryKind::Config);
    let expected: Membership = [1, 2, 3]
        .into_iter()
        .map(|id| {
            let peer_addr = format!("10.0.0.{id}:7100");
            let member = Member {
                peer_addr,
                ..Member::voter(id, id)
            };
            (id, member)
        })
        .collect();
    assert_eq!(
        membership::decode(&first.data),
        Some(expected),
        "the first configuration names every member with its address"
    );
    // From now on a majority elects.
    cluster.crash(leader);
    assert!(cluster.run_until(500, |c| c.leader().is_some_and(|l| l != leader)));
}

#[test]
fn a_malformed_configuration_entry_is_dropped_with_its_append() {
    for kind in [EntryKind::Registry, EntryKind::Config] {
        a_malformed_entry_is_dropped(kind);
    }
}

fn a_malformed_entry_is_dropped(kind: EntryKind) {
    let mut node = node_with_log(plain_config(1, &[1, 2, 3]), &[], 1, 0);
    let mut bad = entry(1, 1);
    bad.kind = kind;
    bad.data = bytes::Bytes::from_static(b"not a configuration");
    node.step(message(2, 1, 1, append(0, 0, vec![bad], 0)))
        .expect("voter");
    drain(&mut node);
    assert_eq!(node.status().last_index, 0);
}

/// A re-admission whose first copy is committed makes the node registered,
/// whether or not the second copy follows: a leader whose log compacted
/// the first copy away sees nothing left to confirm and may never append
/// it, and the node would show as a non-voter for good.
#[test]
fn a_committed_readmission_registers_the_node_without_its_second_copy() {
    let voters = [1, 2, 3];
    let readmitted: Membership = voters
        .iter()
        .map(|&id| (id, Member::voter(id, if id == 3 { 1003 } else { id })))
        .collect();
    let restored = |commit| {
        let mut config = plain_config(3, &voters);
        config.incarnation = 1003;
        let initial = crate::raft::InitialState {
            hard_state: hard_state(1, 0, commit),
            snapshot: registered_start(&voters),
            entries: vec![
                entry(1, 1),
                crate::message::Entry {
                    index: 2,
                    term: 1,
                    kind: EntryKind::Config,
                    data: membership::encode(&readmitted),
                },
            ],
        };
        crate::raft::RawNode::new(config, initial, 7).expect("valid initial state")
    };
    assert!(
        !restored(1).status().registered,
        "not before the re-admission is known committed"
    );
    assert!(restored(2).status().registered);
}
