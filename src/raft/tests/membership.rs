//! Membership changes (Raft thesis ch. 4; RAFT_PITFALLS.md, "Lost disks
//! and membership"): learners, promotion, removal (the leader's included),
//! one change in flight, joint majorities, and the configuration restored
//! from a snapshot.

use bytes::Bytes;

use super::harness::*;
use crate::message::{AppendOutcome, Body, Snapshot, SnapshotMeta, NO_INCARNATION};
use crate::raft::membership::{Member, MemberRole};
use crate::raft::{
    ConfChange, ConfChangeError, Event, HardState, InitialState, RawNode, Role, StepDownReason,
};

fn add_learner(id: u64) -> ConfChange {
    ConfChange::AddLearner {
        id,
        incarnation: NO_INCARNATION,
        peer_addr: format!("127.0.0.1:{}", 7100 + id),
        client_addr: format!("127.0.0.1:{}", 7000 + id),
    }
}

/// A cluster of 3 led by node 1, one entry committed.
fn led_by_1() -> Cluster {
    let mut cluster = Cluster::with_leader(3, 1);
    cluster.propose(1, "before");
    cluster
}

/// A cluster of 3 led by node 1, with node 4 started to join.
fn cluster_with_joiner() -> Cluster {
    let mut cluster = led_by_1();
    cluster.add_joiner(4, |_| {});
    cluster
}

/// Ticks until the configuration change of `leader` is committed and
/// confirmed (no change pending), so the next one is accepted.
fn settle(cluster: &mut Cluster, leader: u64) {
    assert!(cluster.run_until(200, |c| {
        let status = c.node(leader).status();
        !status.joint() && status.commit_index >= status.membership_index
    }));
}

/// Ticks until node `id` applied everything leader 1 committed.
fn caught_up(cluster: &mut Cluster, id: u64) {
    assert!(cluster.run_until(200, |c| c.node(id).status().applied_index
        >= c.node(1).status().commit_index));
}

/// Leader 1 removes crashed member `id`; `id` comes back with an empty disk
/// (a new incarnation) and is added back as a learner, its life unknown.
fn replace_by_an_empty_learner(cluster: &mut Cluster, id: u64) {
    cluster
        .change(1, ConfChange::Remove { id })
        .expect("removed");
    settle(cluster, 1);
    cluster.wipe(id);
    cluster.restart(id);
    cluster.change(1, add_learner(id)).expect("added back");
}

fn grow_to_four(cluster: &mut Cluster) {
    cluster.change(1, add_learner(4)).expect("learner added");
    settle(cluster, 1);
    caught_up(cluster, 4);
    cluster
        .change(1, ConfChange::Promote { id: 4 })
        .expect("caught-up learner promoted");
    settle(cluster, 1);
}

/// "Learners receive the log but never count for commit": with every
/// voter but the leader cut off, an entry the learner stores stays
/// uncommitted.
#[test]
fn a_learner_is_never_counted_for_commit() {
    let mut cluster = cluster_with_joiner();
    cluster.change(1, add_learner(4)).expect("learner added");
    settle(&mut cluster, 1);
    let status = cluster.node(1).status();
    assert_eq!(
        (status.voters(), status.learners()),
        (vec![1, 2, 3], vec![4])
    );
    let members = &status.members;
    let learner = members.iter().find(|m| m.id == 4).expect("listed");
    assert_eq!(learner.role, MemberRole::Learner);
    assert_eq!(learner.client_addr, "127.0.0.1:7004");
    for voter in [2, 3] {
        cluster.cut_links.insert((1, voter));
        cluster.cut_links.insert((voter, 1));
    }
    let commit_before = cluster.node(1).status().commit_index;
    let (_, index) = cluster.propose(1, "only the learner has it");
    cluster.run(3);
    assert!(
        cluster.node(4).status().last_index >= index,
        "the learner stores it"
    );
    assert_eq!(cluster.node(1).status().commit_index, commit_before);
    cluster.heal();
    assert!(cluster.run_until(100, |c| c.node(1).status().commit_index >= index));
}

/// A learner cut off from its leader pre-campaigns (it may have been
/// promoted without knowing it) but disturbs nobody: it never bumps a
/// term, and the voters that hear their leader refuse it.
#[test]
fn a_learner_cut_off_disturbs_nobody() {
    let mut cluster = cluster_with_joiner();
    cluster.change(1, add_learner(4)).expect("learner added");
    settle(&mut cluster, 1);
    let term = cluster.node(1).status().term;
    cluster.cut_links.insert((1, 4));
    cluster.run(200);
    let campaigns = |c: &Cluster| {
        c.events_of(4)
            .iter()
            .filter(|e| matches!(e, Event::BecamePreCandidate { .. }))
            .count()
    };
    assert!(campaigns(&cluster) > 0, "the learner pre-campaigned");
    assert!(!cluster
        .events_of(4)
        .iter()
        .any(|e| matches!(e, Event::BecameCandidate { .. })));
    assert_eq!(cluster.leader(), Some(1));
    assert_eq!(cluster.node(1).status().term, term);
    assert_eq!(cluster.node(4).status().role, Role::Follower);
}

/// A learner elected (its log the freshest, its promotion perhaps not
/// received) hands leadership to a voter as soon as an entry of its term
/// commits: learners do not lead.
#[test]
fn an_elected_learner_hands_leadership_to_a_voter() {
    let mut members: Vec<Member> = [1, 2, 3].map(|id| Member::voter(id, id)).to_vec();
    members.push(Member {
        role: MemberRole::Learner,
        ..Member::voter(4, 4)
    });
    let initial = InitialState {
        hard_state: HardState {
            term: 1,
            ..HardState::default()
        },
        snapshot: Some(Snapshot {
            meta: SnapshotMeta {
                index: 0,
                term: 0,
                members,
            },
            data: Bytes::new(),
        }),
        entries: entries_with_terms(&[1, 1]),
    };
    let mut node = RawNode::new(plain_config(4, &[]), initial, 7).expect("valid");
    tick_until_campaign(&mut node);
    let term = node.status().term;
    for voter in [2, 3] {
        node.step(message(voter, 4, term, Body::VoteReply { granted: true }))
            .expect("a voter");
    }
    drain(&mut node);
    assert_eq!(node.status().role, Role::Leader, "elected by the voters");
    let last_index = node.status().last_index;
    let accepted = AppendOutcome::Accepted {
        match_index: last_index,
    };
    // The learner's own copy never counts: two of three voters must hold it.
    node.step(message(3, 4, term, Body::AppendReply { outcome: accepted }))
        .expect("a voter");
    drain(&mut node);
    assert_eq!(
        node.status().role,
        Role::Leader,
        "one voter is not a majority"
    );
    let behind = AppendOutcome::Accepted {
        match_index: last_index - 1,
    };
    node.step(message(2, 4, term, Body::AppendReply { outcome: behind }))
        .expect("a voter");
    node.step(message(2, 4, term, Body::AppendReply { outcome: accepted }))
        .expect("a voter");
    let ready = drain(&mut node);
    assert_eq!(node.status().commit_index, last_index);
    assert_eq!(node.status().role, Role::Follower, "handed over");
    assert!(ready.events.contains(&Event::SteppedDown {
        term,
        reason: StepDownReason::Removed,
    }));
    let timeout_now = all_messages(&ready)
        .into_iter()
        .find(|m| m.body == Body::TimeoutNow)
        .expect("the most caught-up voter is told to campaign");
    assert_eq!(timeout_now.to, 3);
}

/// "Promote only when caught up, or a new voter stalls commits."
#[test]
fn a_learner_is_promoted_only_once_caught_up() {
    let mut cluster = cluster_with_joiner();
    cluster.isolate(4);
    cluster.change(1, add_learner(4)).expect("learner added");
    settle(&mut cluster, 1);
    let refused = cluster.change(1, ConfChange::Promote { id: 4 });
    assert!(
        matches!(refused, Err(ConfChangeError::NotCaughtUp { id: 4, .. })),
        "{refused:?}"
    );
    cluster.heal();
    caught_up(&mut cluster, 4);
    cluster
        .change(1, ConfChange::Promote { id: 4 })
        .expect("promoted once caught up");
    settle(&mut cluster, 1);
    assert_eq!(cluster.node(1).status().voters(), vec![1, 2, 3, 4]);
    assert_eq!(cluster.node(4).status().voters(), vec![1, 2, 3, 4]);
    // Four voters need three: with two cut off nothing commits.
    cluster.isolate(3);
    cluster.isolate(4);
    let commit_before = cluster.node(1).status().commit_index;
    cluster.node_mut(1).propose("x".into()).expect("leader");
    cluster.run(5);
    assert_eq!(cluster.node(1).status().commit_index, commit_before);
}

/// "Only one change may be in flight", and a change is refused with a
/// clear reason for unknown ids, the last voter, voters and followers.
#[test]
fn changes_are_refused_with_their_reason() {
    let mut cluster = cluster_with_joiner();
    cluster.isolate(2);
    cluster.isolate(3);
    cluster.change(1, add_learner(4)).expect("first change");
    assert_eq!(
        cluster.change(1, ConfChange::Remove { id: 3 }),
        Err(ConfChangeError::ChangeInFlight)
    );
    cluster.heal();
    settle(&mut cluster, 1);
    assert_eq!(
        cluster.change(1, ConfChange::Remove { id: 9 }),
        Err(ConfChangeError::UnknownMember { id: 9 })
    );
    assert_eq!(
        cluster.change(1, add_learner(2)),
        Err(ConfChangeError::AlreadyMember { id: 2 })
    );
    assert_eq!(
        cluster.change(1, ConfChange::Promote { id: 2 }),
        Err(ConfChangeError::NotALearner { id: 2 })
    );
    assert_eq!(
        cluster.change(2, ConfChange::Remove { id: 3 }),
        Err(ConfChangeError::NotLeader { leader: 1 })
    );
    let mut single = Cluster::with_leader(1, 1);
    assert_eq!(
        single.change(1, ConfChange::Remove { id: 1 }),
        Err(ConfChangeError::LastVoter { id: 1 })
    );
}

/// Ongaro, raft-dev 2015: a new leader commits an entry of its own term
/// before it proposes a change (its log may end in an uncommitted change
/// it cannot know about).
#[test]
fn a_new_leader_proposes_no_change_before_committing_in_its_term() {
    let mut node = node_with_log(plain_config(1, &[1, 2, 3]), &[1, 1], 1, 2);
    let campaign = tick_until_campaign(&mut node);
    let term = node.status().term;
    assert!(campaign.persisted_messages.iter().any(|m| m.to == 2));
    node.step(message(2, 1, term, Body::VoteReply { granted: true }))
        .expect("voter");
    drain(&mut node);
    assert_eq!(node.status().role, Role::Leader);
    assert_eq!(
        node.propose_conf_change(ConfChange::Remove { id: 3 }),
        Err(ConfChangeError::TermNotCommitted)
    );
    let last_index = node.status().last_index;
    let accepted = crate::message::AppendOutcome::Accepted {
        match_index: last_index,
    };
    node.step(message(2, 1, term, Body::AppendReply { outcome: accepted }))
        .expect("voter");
    drain(&mut node);
    assert_eq!(node.status().commit_index, last_index);
    assert!(node
        .propose_conf_change(ConfChange::Remove { id: 3 })
        .is_ok());
}

/// Thesis §4.3: while a change is not committed, decisions need a majority
/// of the old and of the new configuration. Removing 3 from {1,2,3}: 1 and
/// 3 are a majority of the old one, not of the new one {1,2}.
#[test]
fn a_change_commits_only_with_majorities_of_both_configurations() {
    let mut cluster = led_by_1();
    cluster.isolate(2);
    let (_, index) = cluster
        .change(1, ConfChange::Remove { id: 3 })
        .expect("proposed");
    cluster.run(5);
    let status = cluster.node(1).status();
    assert!(status.commit_index < index, "committed without node 2");
    assert_eq!(status.previous_voters, vec![1, 2, 3], "joint while pending");
    assert_eq!(status.voters(), vec![1, 2]);
    cluster.heal();
    assert!(cluster.run_until(100, |c| c.node(1).status().commit_index >= index));
    settle(&mut cluster, 1);
    assert!(!cluster.node(1).status().joint());
}

/// Thesis §4.2.2: a removed leader keeps leading until the change commits,
/// then steps down; it hands over with TimeoutNow so a new leader comes
/// before any election timeout, and it never campaigns again.
#[test]
fn a_removed_leader_steps_down_once_committed_and_hands_over() {
    let mut cluster = led_by_1();
    let term = cluster.node(1).status().term;
    cluster.isolate(2);
    cluster.isolate(3);
    let (_, index) = cluster
        .change(1, ConfChange::Remove { id: 1 })
        .expect("proposed");
    assert_eq!(
        cluster.node(1).status().role,
        Role::Leader,
        "leads until committed"
    );
    cluster.heal();
    assert!(
        cluster.run_until(50, |c| c.events_of(1).contains(&Event::SteppedDown {
            term,
            reason: StepDownReason::Removed,
        }))
    );
    // The hand-over needs no election timeout: the successor campaigns
    // on TimeoutNow as soon as it arrives.
    cluster.deliver_all();
    let new_leader = cluster.leader().expect("elected on TimeoutNow");
    assert_ne!(new_leader, 1);
    assert!(cluster.node(new_leader).status().commit_index >= index);
    let events_before = cluster.events_of(1).len();
    cluster.run(300);
    let campaigned = cluster.events_of(1)[events_before..].iter().any(|e| {
        matches!(
            e,
            Event::BecamePreCandidate { .. } | Event::BecameCandidate { .. }
        )
    });
    assert!(!campaigned, "a removed node stops campaigning");
    assert_eq!(cluster.leader(), Some(new_leader), "nothing disrupted it");
    cluster.propose(new_leader, "after");
}

/// "The configuration travels in snapshots; a node restored from a
/// snapshot must take the configuration from it, not from its flags."
#[test]
fn the_configuration_is_restored_from_a_snapshot() {
    let mut cluster = cluster_with_joiner();
    grow_to_four(&mut cluster);
    cluster.propose(1, "after growing");
    let config_index = cluster.node(2).status().membership_index;
    assert!(config_index > 0);
    let snapshot_index = cluster.compact(2);
    // The configuration index survives compaction: a status never says a
    // compacted configuration is older than it is.
    assert_eq!(cluster.node(2).status().membership_index, config_index);
    let meta = &cluster
        .peer(2)
        .durable
        .snapshot
        .as_ref()
        .expect("kept")
        .meta;
    assert_eq!(meta.index, snapshot_index);
    assert_eq!(meta.members.len(), 4);
    // Node 2's flags still say {1, 2, 3}: the snapshot decides.
    assert_eq!(cluster.peer(2).config.voters, vec![1, 2, 3]);
    cluster.crash(2);
    cluster.restart(2);
    assert_eq!(cluster.node(2).status().voters(), vec![1, 2, 3, 4]);
    assert_eq!(
        cluster.node(2).status().membership_index,
        snapshot_index,
        "restored: in force at the snapshot's index"
    );
    // A node that receives the snapshot from a leader takes it too.
    cluster.add_joiner(5, |_| {});
    let snapshot_index = cluster.compact(1);
    cluster.change(1, add_learner(5)).expect("learner added");
    assert!(cluster.run_until(200, |c| c.node(5).status().snapshot_index >= snapshot_index));
    let learner = cluster.node(5).status();
    assert_eq!(
        (learner.voters(), learner.learners()),
        (vec![1, 2, 3, 4], vec![5])
    );
    assert_eq!(
        learner.membership_index,
        cluster.node(1).status().membership_index
    );
}

/// A replacement: the old member is removed, the same id (a new disk) is
/// added as a learner and promoted once caught up, under writes.
#[test]
fn a_member_is_replaced_by_a_new_incarnation() {
    let mut cluster = led_by_1();
    cluster.crash(3);
    replace_by_an_empty_learner(&mut cluster, 3);
    let incarnation = cluster.peer(3).config.incarnation;
    cluster.propose(1, "during");
    settle(&mut cluster, 1);
    caught_up(&mut cluster, 3);
    cluster
        .change(1, ConfChange::Promote { id: 3 })
        .expect("promoted");
    settle(&mut cluster, 1);
    let member = cluster
        .node(1)
        .status()
        .members
        .into_iter()
        .find(|m| m.id == 3)
        .expect("member");
    assert_eq!(
        (member.role, member.incarnation),
        (MemberRole::Voter, incarnation)
    );
    assert_eq!(cluster.state_of(3), cluster.state_of(1));
}

/// A node that learns the removal of a member and its re-addition as a
/// learner (life not yet known) in one commit reports no re-admission:
/// the new life counts only once promoted, and no incarnation 0 is ever
/// announced as re-admitted.
#[test]
fn a_replacement_learned_at_once_is_not_reported_as_a_readmission() {
    let mut cluster = Cluster::with_leader(5, 1);
    cluster.propose(1, "before");
    cluster.crash(5);
    cluster.isolate(2);
    replace_by_an_empty_learner(&mut cluster, 5);
    settle(&mut cluster, 1);
    cluster.heal();
    assert!(cluster.run_until(200, |c| c.node(2).status().commit_index
        >= c.node(1).status().membership_index));
    for id in [1, 2, 3, 4] {
        let readmissions: Vec<&Event> = cluster
            .events_of(id)
            .iter()
            .filter(|e| matches!(e, Event::MemberReadmitted { .. }))
            .collect();
        assert!(readmissions.is_empty(), "node {id}: {readmissions:?}");
    }
    assert!(cluster.node(2).status().learners().contains(&5));
}

/// Growing 3 -> 5 and shrinking back to 3, each step committed, with
/// writes in between; every node applies the same entries.
#[test]
fn a_cluster_grows_to_five_and_shrinks_back() {
    let mut cluster = cluster_with_joiner();
    grow_to_four(&mut cluster);
    cluster.add_joiner(5, |_| {});
    cluster.change(1, add_learner(5)).expect("learner 5");
    settle(&mut cluster, 1);
    caught_up(&mut cluster, 5);
    cluster
        .change(1, ConfChange::Promote { id: 5 })
        .expect("voter 5");
    settle(&mut cluster, 1);
    assert_eq!(cluster.node(1).status().voters(), vec![1, 2, 3, 4, 5]);
    cluster.propose(1, "five");
    for id in [2, 3] {
        cluster
            .change(1, ConfChange::Remove { id })
            .expect("removed");
        settle(&mut cluster, 1);
        cluster.crash(id);
    }
    assert_eq!(cluster.node(1).status().voters(), vec![1, 4, 5]);
    let (_, index) = cluster.propose(1, "three again");
    assert!(cluster.run_until(100, |c| [4, 5].iter().all(|&id| c
        .node(id)
        .status()
        .applied_index
        >= index)));
    assert_eq!(cluster.state_of(4), cluster.state_of(1));
    assert_eq!(cluster.state_of(5), cluster.state_of(1));
}

/// "Learners never count for votes": with both other voters down, the
/// leader's learner cannot make it (or anyone) a leader again.
#[test]
fn a_learner_vote_elects_nobody() {
    let mut cluster = cluster_with_joiner();
    cluster.change(1, add_learner(4)).expect("learner added");
    settle(&mut cluster, 1);
    caught_up(&mut cluster, 4);
    cluster.crash(2);
    cluster.crash(3);
    cluster.run(300);
    assert_eq!(cluster.leader(), None, "one voter and a learner elected");
    let granted_by_learner = cluster
        .events_of(4)
        .iter()
        .any(|e| matches!(e, Event::VoteGranted { candidate: 1, .. }));
    assert!(granted_by_learner, "the learner did answer node 1");
}

/// "A removed server that keeps campaigning must not disrupt the
/// cluster": node 3 misses its own removal and campaigns, in vain.
#[test]
fn a_removed_node_that_missed_its_removal_does_not_disrupt() {
    let mut cluster = led_by_1();
    cluster.isolate(3);
    cluster
        .change(1, ConfChange::Remove { id: 3 })
        .expect("removed");
    cluster.propose(1, "without 3");
    settle(&mut cluster, 1);
    let term = cluster.node(1).status().term;
    cluster.heal();
    cluster.run(300);
    let campaigned = cluster
        .events_of(3)
        .iter()
        .any(|e| matches!(e, Event::BecamePreCandidate { .. }));
    assert!(campaigned, "node 3 did campaign");
    assert_eq!(cluster.leader(), Some(1));
    assert_eq!(cluster.node(1).status().term, term, "no term change");
    cluster.propose(1, "still leading");
}

/// A brand-new cluster of 3 (no configuration until its first, unanimous
/// election) with one entry of its leader's term committed everywhere.
fn bootstrapped_with_an_entry() -> (Cluster, u64) {
    let mut cluster = Cluster::unregistered(3, |_| {});
    assert!(cluster.run_until(500, |c| c.leader().is_some()
        && [1, 2, 3].iter().all(|&id| c.node(id).status().registered)));
    let leader = cluster.leader().expect("leader");
    cluster.propose(leader, "first");
    assert!(cluster.run_until(100, |c| {
        let status = c.node(leader).status();
        status.commit_index >= status.last_index
    }));
    (cluster, leader)
}

/// A brand-new cluster's first configuration is written by its unanimous
/// bootstrap election and has no configuration before it: it counts as
/// confirmed, so the first change is accepted as soon as an entry of the
/// leader's term committed (no compaction or second copy needed first).
#[test]
fn the_first_change_after_bootstrap_is_accepted() {
    let (mut cluster, leader) = bootstrapped_with_an_entry();
    cluster.add_joiner(4, |_| {});
    cluster
        .change(leader, add_learner(4))
        .expect("the first change is taken");
    settle(&mut cluster, leader);
    assert_eq!(cluster.node(leader).status().learners(), vec![4]);
}

/// The same from a brand-new cluster: the leader removes itself with the
/// first change after bootstrap, steps down once it committed, and the
/// others elect a leader among themselves.
#[test]
fn a_leader_removed_by_the_first_change_after_bootstrap_steps_down() {
    let (mut cluster, leader) = bootstrapped_with_an_entry();
    cluster
        .change(leader, ConfChange::Remove { id: leader })
        .expect("the leader may remove itself");
    assert!(
        cluster.run_until(300, |c| c.leader().is_some_and(|l| l != leader)),
        "a remaining voter leads"
    );
    assert_ne!(cluster.node(leader).status().role, Role::Leader);
}
