//! Log replication and commitment: Raft §5.3 and §5.4.2.

use super::harness::*;
use crate::message::{AppendOutcome, Body, Message};
use crate::raft::{Config, RawNode, Role};

fn reply_to(ready: &crate::raft::Ready, to: u64) -> Message {
    all_messages(ready)
        .into_iter()
        .find(|m| m.to == to)
        .expect("a reply")
}

/// A leader of term `term + 1` over a log with `terms`, all persisted.
fn leader_with_log(config: Config, terms: &[u64], term: u64) -> RawNode {
    let mut node = node_with_log(config, terms, term, 0);
    tick_until_campaign(&mut node);
    for peer in [2, 3] {
        node.step(message(
            peer,
            1,
            term + 1,
            Body::VoteReply { granted: true },
        ))
        .expect("voter");
    }
    assert_eq!(node.status().role, Role::Leader);
    drain(&mut node);
    node
}

#[test]
fn paper_5_3_follower_deletes_conflicting_entries_and_appends() {
    let mut node = node_with_log(plain_config(2, &[1, 2, 3]), &[1, 1, 2, 2], 2, 0);
    node.step(message(1, 2, 3, append(2, 1, vec![entry(3, 3)], 0)))
        .expect("voter");
    let ready = drain(&mut node);
    assert_eq!(node.status().last_index, 3);
    assert_eq!(node.status().last_term, 3);
    let first = ready.entries.first().expect("entries to persist");
    assert_eq!(
        (first.index, first.term),
        (3, 3),
        "entries restart at the conflict, below the persisted end"
    );
    assert!(ready.messages.is_empty(), "the ack waits for persistence");
    assert_eq!(
        reply_to(&ready, 1).body,
        Body::AppendReply {
            outcome: AppendOutcome::Accepted { match_index: 3 }
        }
    );
}

#[test]
fn paper_5_3_follower_rejects_append_whose_previous_entry_does_not_match() {
    let mut node = node_with_log(plain_config(2, &[1, 2, 3]), &[1, 1, 2, 2, 2], 3, 0);
    node.step(message(1, 2, 3, append(5, 3, vec![entry(6, 3)], 6)))
        .expect("voter");
    let ready = drain(&mut node);
    let expected = AppendOutcome::Rejected {
        prev_index: 5,
        hint_index: 3,
        hint_term: 2,
    };
    assert_eq!(
        reply_to(&ready, 1).body,
        Body::AppendReply { outcome: expected }
    );
    assert_eq!(node.status().last_index, 5);
    assert_eq!(
        node.status().commit_index,
        0,
        "nothing verified, nothing committed"
    );

    node.step(message(1, 2, 3, append(9, 3, vec![], 6)))
        .expect("voter");
    let ready = drain(&mut node);
    let expected = AppendOutcome::Rejected {
        prev_index: 9,
        hint_index: 5,
        hint_term: 0,
    };
    assert_eq!(
        reply_to(&ready, 1).body,
        Body::AppendReply { outcome: expected },
        "short log: hint is its end"
    );
}

#[test]
fn paper_5_3_already_matching_append_does_not_truncate_newer_entries() {
    let mut node = node_with_log(plain_config(2, &[1, 2, 3]), &[1, 1, 1, 1], 1, 0);
    node.step(message(1, 2, 1, append(1, 1, vec![entry(2, 1)], 0)))
        .expect("voter");
    let ready = drain(&mut node);
    assert_eq!(
        node.status().last_index,
        4,
        "a reordered older append must not cut the log"
    );
    assert!(ready.entries.is_empty());
    assert_eq!(
        reply_to(&ready, 1).body,
        Body::AppendReply {
            outcome: AppendOutcome::Accepted { match_index: 2 }
        }
    );
}

#[test]
fn paper_5_3_follower_commit_is_capped_by_what_the_message_verified() {
    let mut node = node_with_log(plain_config(2, &[1, 2, 3]), &[1, 1, 1], 1, 0);
    node.step(message(1, 2, 2, append(1, 1, vec![], 3)))
        .expect("voter");
    assert_eq!(
        node.status().commit_index,
        1,
        "entries 2 and 3 were not verified by this message"
    );
    node.step(message(1, 2, 2, append(1, 1, vec![entry(2, 2)], 3)))
        .expect("voter");
    assert_eq!(node.status().commit_index, 2);
}

#[test]
fn paper_5_3_heartbeat_commit_is_capped_at_the_followers_match() {
    let mut cluster = Cluster::with_leader(3, 1);
    cluster.isolate(3);
    cluster.propose(1, "a");
    cluster.propose(1, "b");
    cluster.heal();
    cluster.tick(1);
    let heartbeats: Vec<Message> = cluster.take_network();
    let match_3 = cluster
        .node(1)
        .status()
        .match_index
        .iter()
        .find(|(id, _)| *id == 3)
        .map(|(_, m)| *m);
    for heartbeat in heartbeats.iter().filter(|m| m.to == 3) {
        if let Body::Heartbeat { commit, .. } = heartbeat.body {
            assert!(
                Some(commit) <= match_3,
                "heartbeat commit {commit} beyond match {match_3:?}"
            );
        }
    }
    assert!(cluster.node(1).status().commit_index > match_3.unwrap_or(0));
}

#[test]
fn paper_5_3_leader_backs_off_to_the_conflict_quickly() {
    // Figure 7 (f)-like: the follower holds a long run of terms the leader never had.
    let mut cluster = Cluster::from_logs(
        &[
            (&[1, 1, 1, 4, 4, 5, 5, 6, 6, 6], 6),
            (&[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], 3),
            (&[1, 1, 1, 4], 4),
        ],
        |c| {
            c.pre_vote = false;
            c.check_quorum = false;
        },
    );
    cluster.elect(1);
    cluster.propose(1, "x");
    let leader = cluster.node(1).status();
    assert_eq!(cluster.node(2).status().last_index, leader.last_index);
    assert_eq!(cluster.node(2).status().last_term, leader.last_term);
    assert_eq!(cluster.node(2).status().commit_index, leader.commit_index);
}

#[test]
fn paper_5_3_conflict_hint_skips_a_whole_term_per_round_trip() {
    let mut leader = leader_with_log(plain_config(1, &[1, 2, 3]), &[1, 1, 1, 4, 4, 4], 4);
    let mut follower = node_with_log(
        plain_config(2, &[1, 2, 3]),
        &[1, 1, 1, 2, 2, 2, 2, 2, 3, 3],
        3,
        0,
    );
    let mut appends_sent = 0;
    let mut network: std::collections::VecDeque<Message> = Default::default();
    for _ in 0..10 {
        leader.tick();
        network.extend(all_messages(&drain(&mut leader)));
        while let Some(message) = network.pop_front() {
            if message.to == 2 && matches!(message.body, Body::Append { .. }) {
                appends_sent += 1;
            }
            match message.to {
                1 => {
                    leader.step(message).expect("voter");
                    network.extend(all_messages(&drain(&mut leader)));
                }
                2 => {
                    follower.step(message).expect("voter");
                    network.extend(all_messages(&drain(&mut follower)));
                }
                _ => {}
            }
        }
        if follower.status().last_term == 5 {
            break;
        }
    }
    assert_eq!(follower.status().last_term, 5);
    assert_eq!(follower.status().last_index, 7);
    assert!(
        appends_sent <= 3,
        "{appends_sent} appends: back-off should skip whole terms"
    );
}

#[test]
fn paper_5_4_2_leader_does_not_commit_previous_term_entry_by_counting() {
    let mut leader = leader_with_log(plain_config(1, &[1, 2, 3]), &[1, 2], 2);
    assert_eq!(leader.status().term, 3);
    assert_eq!(leader.status().last_index, 3, "the no-op of term 3");
    let accepted = |match_index| Body::AppendReply {
        outcome: AppendOutcome::Accepted { match_index },
    };
    leader.step(message(2, 1, 3, accepted(2))).expect("voter");
    drain(&mut leader);
    assert_eq!(
        leader.status().commit_index,
        0,
        "index 2 (term 2) is on a majority but not of this term"
    );
    leader.step(message(2, 1, 3, accepted(3))).expect("voter");
    drain(&mut leader);
    assert_eq!(
        leader.status().commit_index,
        3,
        "committing the no-op commits index 2 indirectly"
    );
}

#[test]
fn paper_5_4_2_figure_8_old_term_entry_commits_only_with_an_entry_of_the_new_term() {
    // S1 led term 2 and put (2, 2) on S2; S5 led term 3 and wrote (2, 3).
    let mut cluster = Cluster::from_logs(
        &[
            (&[1, 2], 4),
            (&[1, 2], 2),
            (&[1], 2),
            (&[1], 2),
            (&[1, 3], 3),
        ],
        |c| {
            c.pre_vote = false;
            c.check_quorum = false;
        },
    );
    cluster.crash(4);
    cluster.crash(5);
    cluster.elect(1);
    let status = cluster.node(1).status();
    assert_eq!(
        (status.term, status.last_index, status.commit_index),
        (5, 3, 3)
    );
    // S5 returns: its (2, 3) is older than the committed no-op of term 5, so
    // it can never win and overwrite the committed (2, 2).
    cluster.crash(1);
    cluster.restart(4);
    cluster.restart(5);
    assert!(cluster.run_until(500, |c| c.leader().is_some()));
    let leader = cluster.leader().expect("leader");
    assert_ne!(leader, 5);
    cluster.propose(leader, "later");
    assert!(cluster.run_until(100, |c| c.state_of(5) == c.state_of(leader)));
    assert_eq!(
        cluster.state_of(5)[..2],
        ["1@1".to_string(), "2@2".to_string()]
    );
}

#[test]
fn durability_append_ack_and_leader_self_count_wait_for_persistence() {
    let mut leader = leader_with_log(plain_config(1, &[1, 2, 3]), &[], 0);
    let accepted = |match_index| Body::AppendReply {
        outcome: AppendOutcome::Accepted { match_index },
    };
    leader.step(message(2, 1, 1, accepted(1))).expect("voter");
    drain(&mut leader);
    assert_eq!(leader.status().commit_index, 1);
    let (_, index) = leader
        .propose(bytes::Bytes::from_static(b"x"))
        .expect("leader");
    let ready = leader.ready();
    assert_eq!(ready.entries.last().map(|e| e.index), Some(index));
    leader
        .step(message(3, 1, 1, accepted(index)))
        .expect("voter");
    assert_eq!(
        leader.status().commit_index,
        1,
        "one follower plus an unpersisted leader copy is not a majority"
    );
    leader.advance(ready.ack());
    assert_eq!(
        leader.status().commit_index,
        index,
        "counted once persisted"
    );
}

#[test]
fn replication_pipelines_at_most_inflight_appends_max_and_batches_within_bounds() {
    let mut config = plain_config(1, &[1, 2, 3]);
    config.inflight_appends_max = 2;
    config.entries_per_append_max = 3;
    let mut leader = leader_with_log(config, &[], 0);
    let accepted = |match_index| Body::AppendReply {
        outcome: AppendOutcome::Accepted { match_index },
    };
    leader.step(message(2, 1, 1, accepted(1))).expect("voter");
    drain(&mut leader);
    for i in 0..20 {
        leader
            .propose(bytes::Bytes::from(format!("p{i}")))
            .expect("leader");
    }
    let ready = drain(&mut leader);
    let appends: Vec<&Message> = ready
        .messages
        .iter()
        .filter(|m| m.to == 2 && matches!(m.body, Body::Append { .. }))
        .collect();
    assert_eq!(appends.len(), 2, "pipelined up to the bound");
    for message in &appends {
        if let Body::Append { entries, .. } = &message.body {
            assert!(!entries.is_empty() && entries.len() <= 3);
        }
    }
    let probes = ready
        .messages
        .iter()
        .filter(|m| m.to == 3 && matches!(m.body, Body::Append { .. }))
        .count();
    assert!(probes <= 1, "a probing peer gets one append at a time");
    // A late ack of the first append must not lower match, and frees a slot.
    leader.step(message(2, 1, 1, accepted(4))).expect("voter");
    leader.step(message(2, 1, 1, accepted(2))).expect("voter");
    let ready = drain(&mut leader);
    assert_eq!(
        leader
            .status()
            .match_index
            .iter()
            .find(|(id, _)| *id == 2)
            .map(|(_, m)| *m),
        Some(4)
    );
    assert_eq!(
        ready
            .messages
            .iter()
            .filter(|m| m.to == 2 && matches!(m.body, Body::Append { .. }))
            .count(),
        1
    );
}

#[test]
fn lost_appends_are_resent_after_a_stall() {
    let mut cluster = Cluster::with_leader(3, 1);
    cluster.cut_links.insert((1, 3));
    cluster.propose(1, "a");
    cluster.propose(1, "b");
    cluster.heal();
    assert!(cluster.run_until(100, |c| c.state_of(3) == vec!["a", "b"]));
}

#[test]
fn proposals_are_refused_on_followers_and_when_overloaded() {
    let mut cluster = Cluster::new(3, |c| c.uncommitted_entries_max = 3);
    cluster.elect(1);
    let refused = cluster.node_mut(2).propose(bytes::Bytes::from_static(b"x"));
    assert_eq!(
        refused,
        Err(crate::raft::ProposeError::NotLeader { leader: 1 })
    );
    cluster.isolate(1);
    let mut outcomes = Vec::new();
    for _ in 0..5 {
        outcomes.push(
            cluster
                .node_mut(1)
                .propose(bytes::Bytes::from_static(b"y"))
                .is_ok(),
        );
    }
    assert_eq!(outcomes, vec![true, true, true, false, false]);
}

#[test]
fn restart_reapplies_committed_entries_from_the_snapshot() {
    let mut cluster = Cluster::with_leader(3, 1);
    cluster.propose_numbered(1, "v", 5);
    cluster.run(2);
    cluster.crash(2);
    cluster.restart(2);
    assert_eq!(
        cluster.node(2).status().applied_index,
        cluster.node(1).status().commit_index
    );
    assert_eq!(cluster.state_of(2), cluster.state_of(1));
    cluster.crash(1);
    assert!(cluster.run_until(300, |c| c.leader().is_some()));
    let leader = cluster.leader().expect("leader");
    cluster.propose(leader, "after");
    cluster.restart(1);
    assert!(cluster.run_until(100, |c| c.state_of(1) == c.state_of(leader)));
}

#[test]
fn paper_5_3_append_overlapping_the_commit_index_checks_only_what_follows_it() {
    let mut node = node_with_log(plain_config(2, &[1, 2, 3]), &[1, 1, 1], 1, 3);
    // An old append from below our commit index, carrying entries past it.
    node.step(message(
        1,
        2,
        1,
        append(1, 1, vec![entry(2, 1), entry(3, 1), entry(4, 1)], 4),
    ))
    .expect("voter");
    let ready = drain(&mut node);
    assert_eq!(
        ready.entries.iter().map(|e| e.index).collect::<Vec<_>>(),
        vec![4]
    );
    assert_eq!(
        reply_to(&ready, 1).body,
        Body::AppendReply {
            outcome: AppendOutcome::Accepted { match_index: 4 }
        }
    );
    assert_eq!(node.status().commit_index, 4);
    // Entirely below the commit index: acknowledged with the commit index.
    node.step(message(1, 2, 1, append(0, 0, vec![entry(1, 1)], 4)))
        .expect("voter");
    let ready = drain(&mut node);
    assert_eq!(
        reply_to(&ready, 1).body,
        Body::AppendReply {
            outcome: AppendOutcome::Accepted { match_index: 4 }
        }
    );
}

#[test]
fn paper_5_3_stale_rejection_does_not_move_next_below_match() {
    let mut leader = leader_with_log(plain_config(1, &[1, 2, 3]), &[1, 1, 1], 1);
    let accepted = |match_index| Body::AppendReply {
        outcome: AppendOutcome::Accepted { match_index },
    };
    leader.step(message(2, 1, 2, accepted(4))).expect("voter");
    drain(&mut leader);
    // A delayed rejection of an early probe arrives after the match.
    let stale = AppendOutcome::Rejected {
        prev_index: 3,
        hint_index: 1,
        hint_term: 1,
    };
    leader
        .step(message(2, 1, 2, Body::AppendReply { outcome: stale }))
        .expect("voter");
    let ready = drain(&mut leader);
    assert!(
        ready
            .messages
            .iter()
            .all(|m| m.to != 2
                || !matches!(m.body, Body::Append { prev_index, .. } if prev_index < 4))
    );
    let (term, index) = leader
        .propose(bytes::Bytes::from_static(b"x"))
        .expect("leader");
    let ready = drain(&mut leader);
    let append = ready
        .messages
        .iter()
        .find(|m| m.to == 2)
        .expect("append to the replicating peer");
    assert!(
        matches!(&append.body, Body::Append { prev_index: 4, entries, .. } if entries.last().map(|e| (e.term, e.index)) == Some((term, index))),
        "{append:?}"
    );
}

#[test]
fn malformed_appends_are_dropped_without_panicking() {
    let mut node = node_with_log(plain_config(2, &[1, 2, 3]), &[1], 1, 0);
    let gap = append(0, 0, vec![entry(2, 1)], 0);
    node.step(message(1, 2, 1, gap)).expect("voter");
    let future_term = append(1, 1, vec![entry(2, 5)], 0);
    node.step(message(1, 2, 1, future_term)).expect("voter");
    let overflow = append(u64::MAX, 1, vec![entry(0, 1)], u64::MAX);
    node.step(message(1, 2, 1, overflow)).expect("voter");
    let huge_term = Body::Heartbeat {
        commit: u64::MAX,
        read_round: u64::MAX,
    };
    node.step(message(1, 2, u64::MAX, huge_term))
        .expect("voter");
    let ready = drain(&mut node);
    assert!(ready.entries.is_empty());
    assert_eq!(node.status().last_index, 1);
    assert_eq!(node.status().term, 1);
}
