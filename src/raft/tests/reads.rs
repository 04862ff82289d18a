//! Linearizable reads through ReadIndex (Raft §6.4 / thesis §6.4).

use super::harness::*;
use crate::message::{AppendOutcome, Body, Message};
use crate::raft::{Config, ProposeError, RawNode, Role};

/// A 3-voter leader of term 2 whose no-op is committed (by node 2's ack).
fn settled_leader() -> RawNode {
    let mut node = node_with_log(plain_config(1, &[1, 2, 3]), &[1], 1, 0);
    tick_until_campaign(&mut node);
    node.step(message(2, 1, 2, Body::VoteReply { granted: true }))
        .expect("voter");
    drain(&mut node);
    let accepted = Body::AppendReply {
        outcome: AppendOutcome::Accepted { match_index: 2 },
    };
    node.step(message(2, 1, 2, accepted)).expect("voter");
    drain(&mut node);
    assert_eq!(node.status().commit_index, 2);
    node
}

fn heartbeat_rounds(messages: &[Message]) -> Vec<u64> {
    messages
        .iter()
        .filter_map(|m| match m.body {
            Body::Heartbeat { read_round, .. } if m.to == 2 => Some(read_round),
            _ => None,
        })
        .collect()
}

fn ack_round(node: &mut RawNode, from: u64, read_round: u64) {
    node.step(message(from, 1, 2, Body::HeartbeatReply { read_round }))
        .expect("voter");
}

#[test]
fn read_index_waits_for_a_majority_to_confirm_a_round_sent_after_the_request() {
    let mut leader = settled_leader();
    leader.tick();
    let earlier_round = *heartbeat_rounds(&drain(&mut leader).messages)
        .last()
        .expect("heartbeat");
    leader.read_index(7).expect("leader");
    let ready = drain(&mut leader);
    assert!(
        ready.read_states.is_empty(),
        "not before leadership is confirmed"
    );
    let round = *heartbeat_rounds(&ready.messages)
        .last()
        .expect("a round starts at once");
    assert!(round > earlier_round);
    ack_round(&mut leader, 2, earlier_round);
    assert!(
        drain(&mut leader).read_states.is_empty(),
        "a round sent before the read confirms nothing"
    );
    ack_round(&mut leader, 2, round);
    assert_eq!(drain(&mut leader).read_states, vec![read_state(7, 2)]);
}

#[test]
fn read_index_batches_reads_that_wait_for_the_same_round() {
    let mut leader = settled_leader();
    leader.read_index(1).expect("leader");
    let first_round = *heartbeat_rounds(&drain(&mut leader).messages)
        .last()
        .expect("round");
    leader.read_index(2).expect("leader");
    leader.read_index(3).expect("leader");
    assert!(
        heartbeat_rounds(&drain(&mut leader).messages).is_empty(),
        "they wait for the round in flight"
    );
    ack_round(&mut leader, 3, first_round);
    let ready = drain(&mut leader);
    assert_eq!(ready.read_states, vec![read_state(1, 2)]);
    let second_round = *heartbeat_rounds(&ready.messages)
        .last()
        .expect("the next round goes out at once");
    ack_round(&mut leader, 2, second_round);
    let contexts: Vec<u64> = drain(&mut leader)
        .read_states
        .iter()
        .map(|r| r.context)
        .collect();
    assert_eq!(contexts, vec![2, 3]);
}

#[test]
fn read_index_new_leader_answers_no_read_before_committing_in_its_term() {
    let mut leader = node_with_log(plain_config(1, &[1, 2, 3]), &[1], 1, 1);
    tick_until_campaign(&mut leader);
    leader
        .step(message(2, 1, 2, Body::VoteReply { granted: true }))
        .expect("voter");
    drain(&mut leader);
    leader.read_index(9).expect("leader");
    let ready = drain(&mut leader);
    assert!(ready.read_states.is_empty() && heartbeat_rounds(&ready.messages).is_empty());
    let accepted = Body::AppendReply {
        outcome: AppendOutcome::Accepted { match_index: 2 },
    };
    leader.step(message(3, 1, 2, accepted)).expect("voter");
    let ready = drain(&mut leader);
    let round = *heartbeat_rounds(&ready.messages)
        .last()
        .expect("the read's round starts after the commit");
    ack_round(&mut leader, 3, round);
    assert_eq!(drain(&mut leader).read_states, vec![read_state(9, 2)]);
}

#[test]
fn read_index_single_voter_is_immediate_once_its_term_commits() {
    let mut node = RawNode::new(Config::new(1, vec![1]), Default::default(), 5).expect("valid");
    while node.status().role != Role::Leader {
        node.tick();
    }
    node.read_index(4).expect("leader");
    let ready = node.ready();
    assert!(
        ready.read_states.is_empty(),
        "the no-op is not committed yet"
    );
    node.advance(ready.ack());
    assert_eq!(drain(&mut node).read_states, vec![read_state(4, 1)]);
    node.read_index(5).expect("leader");
    assert_eq!(drain(&mut node).read_states, vec![read_state(5, 1)]);
}

#[test]
fn read_index_is_refused_by_followers_and_dropped_when_leadership_is_lost() {
    let mut cluster = Cluster::with_leader(3, 1);
    assert_eq!(
        cluster.node_mut(2).read_index(1),
        Err(ProposeError::NotLeader { leader: 1 })
    );
    cluster.isolate(1);
    cluster.node_mut(1).read_index(11).expect("still leader");
    cluster.process(1);
    cluster.run(3 * cluster.peer(1).config.election_ticks_min);
    assert_ne!(cluster.node(1).status().role, Role::Leader);
    assert!(
        cluster.peer(1).read_states.is_empty(),
        "a partitioned leader serves no read"
    );
    assert_eq!(cluster.peer(1).dropped_reads, vec![11]);
}

#[test]
fn read_index_in_a_cluster_covers_every_acknowledged_write() {
    let mut cluster = Cluster::with_leader(5, 2);
    let (_, index) = cluster.propose(2, "w");
    cluster.node_mut(2).read_index(99).expect("leader");
    cluster.process(2);
    cluster.deliver_all();
    let read = cluster.peer(2).read_states.clone();
    assert_eq!(read.len(), 1);
    assert!(read[0].index >= index);
}
