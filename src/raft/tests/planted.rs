//! The test-only planted bugs each produce exactly the deviation they name
//! (the simulator must catch them); without them the same steps are safe.

use super::harness::*;
use crate::message::{AppendOutcome, Body};
use crate::raft::{Config, PlantedBug, RawNode};

fn with_bug(mut config: Config, bug: Option<PlantedBug>) -> Config {
    config.planted_bug = bug;
    config
}

fn leader_of_term_3_over(terms: &[u64], bug: Option<PlantedBug>) -> RawNode {
    let mut node = node_with_log(with_bug(plain_config(1, &[1, 2, 3]), bug), terms, 2, 0);
    tick_until_campaign(&mut node);
    node.step(message(2, 1, 3, Body::VoteReply { granted: true }))
        .expect("voter");
    drain(&mut node);
    node
}

#[test]
fn planted_vote_twice_grants_a_second_vote_in_one_term() {
    for (bug, second_granted) in [(None, false), (Some(PlantedBug::VoteTwice), true)] {
        let mut node = node_with_log(with_bug(plain_config(1, &[1, 2, 3]), bug), &[], 1, 0);
        let request = vote_body(0, 0);
        node.step(message(2, 1, 2, request.clone())).expect("voter");
        drain(&mut node);
        node.step(message(3, 1, 2, request)).expect("voter");
        let ready = drain(&mut node);
        let reply = message_to(&ready, 3);
        assert_eq!(
            reply.body,
            Body::VoteReply {
                granted: second_granted
            },
            "{bug:?}"
        );
    }
}

#[test]
fn planted_commit_previous_term_commits_by_counting_replicas() {
    for (bug, commit) in [(None, 0), (Some(PlantedBug::CommitPreviousTerm), 2)] {
        let mut leader = leader_of_term_3_over(&[1, 2], bug);
        let accepted = Body::AppendReply {
            outcome: AppendOutcome::Accepted { match_index: 2 },
        };
        leader.step(message(2, 1, 3, accepted)).expect("voter");
        drain(&mut leader);
        assert_eq!(leader.status().commit_index, commit, "{bug:?}");
    }
}

#[test]
fn planted_skip_log_matching_appends_after_a_mismatched_entry() {
    for (bug, accepted) in [(None, false), (Some(PlantedBug::SkipLogMatching), true)] {
        let mut node = node_with_log(
            with_bug(plain_config(2, &[1, 2, 3]), bug),
            &[1, 1, 2, 2],
            3,
            0,
        );
        let append = append(3, 3, vec![entry(4, 3)], 0);
        node.step(message(1, 2, 3, append)).expect("voter");
        let ready = drain(&mut node);
        let reply = message_to(&ready, 1);
        let was_accepted = matches!(
            reply.body,
            Body::AppendReply {
                outcome: AppendOutcome::Accepted { .. }
            }
        );
        assert_eq!(was_accepted, accepted, "{bug:?}");
    }
}

#[test]
fn planted_read_without_quorum_answers_before_any_heartbeat_round() {
    for (bug, immediate) in [(None, false), (Some(PlantedBug::ReadWithoutQuorum), true)] {
        let mut leader = leader_of_term_3_over(&[1], bug);
        leader.read_index(5).expect("leader");
        let ready = drain(&mut leader);
        assert_eq!(
            ready.read_states == vec![read_state(5, 0)],
            immediate,
            "{bug:?}"
        );
    }
}

#[test]
fn planted_count_any_incarnation_counts_a_wiped_voter() {
    for (bug, leader) in [(None, false), (Some(PlantedBug::CountAnyIncarnation), true)] {
        let mut node = node_with_log(with_bug(plain_config(1, &[1, 2, 3]), bug), &[1], 1, 1);
        tick_until_campaign(&mut node);
        let reply = crate::message::Message {
            incarnation: 2002,
            ..message(2, 1, 2, Body::VoteReply { granted: true })
        };
        node.step(reply).expect("voter id");
        drain(&mut node);
        assert_eq!(
            node.status().role == crate::raft::Role::Leader,
            leader,
            "{bug:?}"
        );
    }
}
