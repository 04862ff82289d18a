//! Leadership transfer (thesis §3.10).

use super::harness::*;
use crate::message::Body;
use crate::raft::{Event, ProposeError, Role, StepDownReason};

#[test]
fn transfer_hands_leadership_to_a_caught_up_target() {
    let mut cluster = Cluster::with_leader(3, 1);
    cluster.propose(1, "a");
    let term = cluster.node(1).status().term;
    cluster.node_mut(1).transfer_leadership(2).expect("leader");
    cluster.process(1);
    cluster.deliver_all();
    assert_eq!(cluster.leader(), Some(2));
    assert_eq!(cluster.node(2).status().term, term + 1);
    assert!(cluster
        .events_of(1)
        .contains(&Event::TransferStarted { to: 2, term }));
    assert!(cluster.events_of(1).contains(&Event::SteppedDown {
        term,
        reason: StepDownReason::Transferred
    }));
    cluster.propose(2, "b");
    assert_eq!(cluster.state_of(1), vec!["a", "b"]);
}

#[test]
fn transfer_catches_the_target_up_first_and_refuses_proposals_meanwhile() {
    let mut cluster = Cluster::with_leader(3, 1);
    cluster.isolate(3);
    cluster.propose(1, "a");
    cluster.propose(1, "b");
    cluster.node_mut(1).transfer_leadership(3).expect("leader");
    cluster.process(1);
    let refused = cluster.node_mut(1).propose(bytes::Bytes::from_static(b"c"));
    assert_eq!(refused, Err(ProposeError::TransferInProgress));
    let timeout_now_sent = cluster
        .take_network()
        .iter()
        .any(|m| m.body == Body::TimeoutNow);
    assert!(!timeout_now_sent, "the target is behind");
    cluster.heal();
    assert!(cluster.run_until(50, |c| c.leader() == Some(3)));
    assert_eq!(cluster.state_of(3), vec!["a", "b"]);
}

#[test]
fn transfer_aborts_after_an_election_timeout_and_leadership_resumes() {
    let mut cluster = Cluster::with_leader(3, 1);
    cluster.isolate(3);
    let term = cluster.node(1).status().term;
    cluster.node_mut(1).transfer_leadership(3).expect("leader");
    cluster.process(1);
    let min = cluster.peer(1).config.election_ticks_min;
    cluster.run(min);
    assert!(cluster
        .events_of(1)
        .contains(&Event::TransferAborted { to: 3, term }));
    assert_eq!(cluster.node(1).status().role, Role::Leader);
    assert_eq!(cluster.node(1).status().transfer_target, None);
    cluster.propose(1, "resumed");
    assert_eq!(cluster.state_of(2), vec!["resumed"]);
}

#[test]
fn transfer_refuses_invalid_targets_and_non_leaders() {
    let mut cluster = Cluster::with_leader(3, 1);
    assert_eq!(
        cluster.node_mut(1).transfer_leadership(1),
        Err(ProposeError::InvalidTarget)
    );
    assert_eq!(
        cluster.node_mut(1).transfer_leadership(7),
        Err(ProposeError::InvalidTarget)
    );
    assert_eq!(
        cluster.node_mut(2).transfer_leadership(3),
        Err(ProposeError::NotLeader { leader: 1 })
    );
}

#[test]
fn transfer_is_reported_aborted_when_the_leader_loses_its_quorum() {
    let mut cluster = Cluster::with_leader(3, 1);
    let term = cluster.node(1).status().term;
    cluster.isolate(1);
    cluster.node_mut(1).transfer_leadership(2).expect("leader");
    cluster.process(1);
    cluster.run(2 * cluster.peer(1).config.election_ticks_min);
    assert!(cluster
        .events_of(1)
        .contains(&Event::TransferAborted { to: 2, term }));
    assert!(cluster.events_of(1).contains(&Event::SteppedDown {
        term,
        reason: StepDownReason::LostQuorum
    }));
}
