//! Leader election: Raft §5.1, §5.2, §5.4.1, pre-vote (thesis §9.6) and
//! check-quorum (thesis §6.2).

use super::harness::*;
use crate::message::{Body, EntryKind, NO_NODE};
use crate::raft::{Config, Event, InitialState, RawNode, Role, StepDownReason, StepError};

fn vote_request(
    from: u64,
    to: u64,
    term: u64,
    last_index: u64,
    last_term: u64,
) -> crate::message::Message {
    message(from, to, term, vote_body(last_index, last_term))
}

#[test]
fn paper_5_2_follower_times_out_and_becomes_candidate() {
    let mut node = node_with_log(plain_config(1, &[1, 2, 3]), &[], 1, 0);
    let ready = tick_until_campaign(&mut node);
    let status = node.status();
    assert_eq!(status.role, Role::Candidate);
    assert_eq!(status.term, 2, "a candidate increments its term");
    assert_eq!(status.vote, 1, "a candidate votes for itself");
    assert_eq!(
        ready.hard_state.map(|hs| (hs.term, hs.vote)),
        Some((2, 1)),
        "term and vote are persisted"
    );
    assert!(
        ready
            .messages
            .iter()
            .all(|m| !matches!(m.body, Body::Vote { .. })),
        "no vote request before persist"
    );
    let mut asked: Vec<u64> = ready.persisted_messages.iter().map(|m| m.to).collect();
    asked.sort_unstable();
    assert_eq!(asked, vec![2, 3]);
}

#[test]
fn paper_5_2_election_timeout_is_randomized_within_bounds() {
    let mut timeouts = std::collections::BTreeSet::new();
    for seed in 0..40 {
        let config = plain_config(1, &[1, 2, 3]);
        let (min, max) = (config.election_ticks_min, config.election_ticks_max);
        let mut node = RawNode::new(config, InitialState::default(), seed).expect("valid");
        let mut ticks = 0;
        while node.status().role == Role::Follower {
            node.tick();
            ticks += 1;
        }
        assert!(
            (min..max).contains(&ticks),
            "timeout {ticks} outside {min}..{max}"
        );
        timeouts.insert(ticks);
    }
    assert!(
        timeouts.len() > 3,
        "timeouts should vary across seeds: {timeouts:?}"
    );
}

#[test]
fn paper_5_2_candidate_that_wins_majority_becomes_leader() {
    let mut node = node_with_log(plain_config(1, &[1, 2, 3]), &[1], 1, 0);
    tick_until_campaign(&mut node);
    node.step(message(2, 1, 2, Body::VoteReply { granted: true }))
        .expect("voter");
    let ready = drain(&mut node);
    assert_eq!(node.status().role, Role::Leader);
    assert!(ready.events.contains(&Event::BecameLeader { term: 2 }));
    let noop = ready.entries.last().expect("the leader appends an entry");
    assert_eq!(
        (noop.index, noop.term, noop.kind),
        (2, 2, EntryKind::Noop),
        "§8: a no-op of the new term"
    );
    assert!(ready
        .messages
        .iter()
        .any(|m| m.to == 2 && matches!(m.body, Body::Append { .. })));
}

#[test]
fn paper_5_2_candidate_loses_when_a_majority_refuses() {
    let mut node = node_with_log(plain_config(1, &[1, 2, 3]), &[], 1, 0);
    tick_until_campaign(&mut node);
    node.step(message(2, 1, 2, Body::VoteReply { granted: false }))
        .expect("voter");
    assert_eq!(node.status().role, Role::Candidate);
    node.step(message(3, 1, 2, Body::VoteReply { granted: false }))
        .expect("voter");
    assert_eq!(node.status().role, Role::Follower);
    assert_eq!(node.status().term, 2);
}

#[test]
fn paper_5_2_candidate_returns_to_follower_when_a_leader_of_its_term_appears() {
    let mut node = node_with_log(plain_config(1, &[1, 2, 3]), &[], 1, 0);
    tick_until_campaign(&mut node);
    node.step(message(
        2,
        1,
        2,
        Body::Heartbeat {
            commit: 0,
            read_round: 1,
        },
    ))
    .expect("voter");
    let status = node.status();
    assert_eq!(
        (status.role, status.leader_id, status.term),
        (Role::Follower, 2, 2)
    );
}

#[test]
fn paper_5_2_each_server_votes_for_at_most_one_candidate_per_term() {
    let mut node = node_with_log(plain_config(1, &[1, 2, 3]), &[], 1, 0);
    node.step(vote_request(2, 1, 2, 0, 0)).expect("voter");
    let ready = drain(&mut node);
    assert_eq!(ready.hard_state.map(|hs| hs.vote), Some(2));
    assert!(ready
        .persisted_messages
        .iter()
        .any(|m| m.body == Body::VoteReply { granted: true }));
    node.step(vote_request(3, 1, 2, 0, 0)).expect("voter");
    let ready = drain(&mut node);
    assert!(ready
        .messages
        .iter()
        .any(|m| m.to == 3 && m.body == Body::VoteReply { granted: false }));
    assert_eq!(node.status().vote, 2);
    node.step(vote_request(2, 1, 2, 0, 0)).expect("voter");
    let ready = drain(&mut node);
    assert!(
        ready
            .persisted_messages
            .iter()
            .any(|m| m.to == 2 && m.body == Body::VoteReply { granted: true }),
        "a repeated request from the same candidate is granted again"
    );
}

#[test]
fn paper_5_4_1_vote_refused_to_less_up_to_date_log() {
    // Our log ends at (index 3, term 2).
    let cases = [
        (2, 2, false),
        (5, 1, false),
        (3, 2, true),
        (1, 3, true),
        (4, 2, true),
    ];
    for (last_index, last_term, granted) in cases {
        let mut node = node_with_log(plain_config(1, &[1, 2, 3]), &[1, 2, 2], 2, 0);
        node.step(vote_request(2, 1, 3, last_index, last_term))
            .expect("voter");
        let ready = drain(&mut node);
        let reply = message_to(&ready, 2);
        assert_eq!(
            reply.body,
            Body::VoteReply { granted },
            "candidate log ({last_index}, {last_term})"
        );
        assert_eq!(
            node.status().term,
            3,
            "the higher term is adopted either way"
        );
        assert_eq!(node.status().vote, if granted { 2 } else { NO_NODE });
    }
}

#[test]
fn paper_5_1_higher_term_makes_a_leader_step_down_and_clears_the_vote() {
    let mut cluster = Cluster::new(3, |c| {
        c.pre_vote = false;
        c.check_quorum = false;
    });
    cluster.elect(1);
    let term = cluster.node(1).status().term;
    cluster
        .node_mut(1)
        .step(message(
            3,
            1,
            term + 5,
            Body::HeartbeatReply { read_round: 0 },
        ))
        .expect("voter");
    cluster.process(1);
    let status = cluster.node(1).status();
    assert_eq!(
        (status.role, status.term, status.vote),
        (Role::Follower, term + 5, NO_NODE)
    );
    assert!(cluster.events_of(1).contains(&Event::SteppedDown {
        term,
        reason: StepDownReason::HigherTerm
    }));
}

#[test]
fn paper_5_1_lower_term_request_is_answered_with_the_current_term_and_changes_nothing() {
    let mut node = node_with_log(plain_config(1, &[1, 2, 3]), &[1, 2], 3, 0);
    let stale = append(2, 2, vec![entry(3, 2)], 3);
    node.step(message(2, 1, 2, stale)).expect("voter");
    let ready = drain(&mut node);
    assert!(ready.entries.is_empty() && ready.hard_state.is_none());
    let reply = ready
        .messages
        .first()
        .expect("the stale leader is told our term");
    assert_eq!((reply.to, reply.term), (2, 3));
    assert_eq!(node.status().last_index, 2);
    assert_eq!(node.status().commit_index, 0);
}

#[test]
fn misaddressed_messages_are_refused() {
    let mut node = node_with_log(plain_config(1, &[1, 2, 3]), &[], 1, 0);
    let heartbeat = Body::Heartbeat {
        commit: 0,
        read_round: 0,
    };
    assert_eq!(
        node.step(message(0, 1, 1, heartbeat.clone())),
        Err(StepError::UnknownPeer { from: 0, to: 1 })
    );
    assert_eq!(
        node.step(message(2, 3, 1, heartbeat.clone())),
        Err(StepError::UnknownPeer { from: 2, to: 3 })
    );
    assert_eq!(
        node.step(message(1, 1, 1, heartbeat)),
        Err(StepError::UnknownPeer { from: 1, to: 1 })
    );
    assert!(!node.has_ready());
}

#[test]
fn config_and_initial_state_are_validated() {
    let mut config = plain_config(1, &[1, 2, 3]);
    config.election_ticks_max = config.election_ticks_min;
    assert!(RawNode::new(config, InitialState::default(), 1).is_err());
    let gap = InitialState {
        entries: vec![entry(2, 1)],
        ..InitialState::default()
    };
    assert!(RawNode::new(plain_config(1, &[1, 2, 3]), gap, 1).is_err());
    let not_a_voter = plain_config(4, &[1, 2, 3]);
    assert!(RawNode::new(not_a_voter, InitialState::default(), 1).is_err());
    // A node started to join a running cluster names no voters.
    assert!(RawNode::new(plain_config(4, &[]), InitialState::default(), 1).is_ok());
}

#[test]
fn single_voter_elects_itself_and_commits_once_persisted() {
    let mut node =
        RawNode::new(Config::new(1, vec![1]), InitialState::default(), 3).expect("valid");
    for _ in 0..100 {
        node.tick();
        if node.status().role == Role::Leader {
            break;
        }
    }
    assert_eq!(node.status().role, Role::Leader);
    let ready = node.ready();
    assert_eq!(ready.entries.len(), 1);
    assert!(ready.messages.is_empty() && ready.persisted_messages.is_empty());
    assert_eq!(
        node.status().commit_index,
        0,
        "not committed before it is durable"
    );
    node.advance(ready.ack());
    assert_eq!(node.status().commit_index, 1);
    let ready = drain(&mut node);
    assert_eq!(ready.committed_entries.len(), 1);
}

#[test]
fn five_node_cluster_commits_with_three_and_not_with_two() {
    let mut cluster = Cluster::with_leader(5, 1);
    cluster.propose(1, "a");
    assert_eq!(cluster.node(5).status().commit_index, 2);
    cluster.crash(4);
    cluster.crash(5);
    let (_, index) = cluster.propose(1, "b");
    assert_eq!(
        cluster.node(1).status().commit_index,
        index,
        "three of five is a majority"
    );
    cluster.crash(3);
    let (_, index) = cluster.propose(1, "c");
    cluster.run(3);
    assert!(
        cluster.node(1).status().commit_index < index,
        "two of five is not"
    );
}

#[test]
fn cluster_elects_exactly_one_leader_and_replicates() {
    for size in [3, 5] {
        let mut cluster = Cluster::new(size, |_| {});
        assert!(cluster.run_until(200, |c| c.leader().is_some()));
        let leader = cluster.leader().expect("leader");
        let term = cluster.node(leader).status().term;
        let leaders = cluster
            .peers
            .values()
            .filter(|p| p.node.status().role == Role::Leader)
            .count();
        assert_eq!(leaders, 1);
        cluster.propose(leader, "x");
        cluster.run(2);
        for id in 1..=size {
            assert_eq!(cluster.state_of(id), vec!["x"], "node {id}");
            assert_eq!(cluster.node(id).status().term, term);
        }
    }
}

#[test]
fn prevote_changes_no_term_or_vote() {
    let mut node = node_with_log(Config::new(1, vec![1, 2, 3]), &[1], 1, 0);
    let ready = tick_until_campaign(&mut node);
    assert_eq!(node.status().role, Role::PreCandidate);
    assert_eq!(node.status().term, 1, "a pre-candidate keeps its term");
    assert!(ready.hard_state.is_none());
    let pre_votes: Vec<_> = ready
        .messages
        .iter()
        .filter(|m| matches!(m.body, Body::PreVote { .. }))
        .collect();
    assert_eq!(pre_votes.len(), 2);
    assert!(
        pre_votes.iter().all(|m| m.term == 2),
        "sent with the term it would campaign in"
    );

    let mut voter = node_with_log(Config::new(2, vec![1, 2, 3]), &[1], 1, 0);
    voter.step(pre_votes[0].clone()).expect("voter");
    let ready = drain(&mut voter);
    assert_eq!(
        (voter.status().term, voter.status().vote),
        (1, NO_NODE),
        "the voter changes nothing"
    );
    assert!(ready.hard_state.is_none());
    let reply = ready.messages.first().expect("reply").clone();
    assert_eq!(
        (reply.term, &reply.body),
        (2, &Body::PreVoteReply { granted: true })
    );

    node.step(reply).expect("voter");
    let ready = drain(&mut node);
    assert_eq!(node.status().role, Role::Candidate);
    assert_eq!(node.status().term, 2);
    assert!(ready
        .persisted_messages
        .iter()
        .all(|m| matches!(m.body, Body::Vote { .. })));
}

#[test]
fn prevote_refused_to_a_stale_log_changes_nothing() {
    let mut voter = node_with_log(Config::new(2, vec![1, 2, 3]), &[1, 1], 1, 0);
    voter
        .step(message(
            1,
            2,
            2,
            Body::PreVote {
                last_index: 1,
                last_term: 1,
                commit: 0,
                commit_term: 0,
            },
        ))
        .expect("voter");
    let ready = drain(&mut voter);
    assert!(ready.hard_state.is_none());
    let reply = ready.messages.first().expect("reply");
    assert_eq!(
        (reply.term, &reply.body),
        (1, &Body::PreVoteReply { granted: false })
    );
    assert_eq!((voter.status().term, voter.status().vote), (1, NO_NODE));
}

#[test]
fn prevote_rejoining_node_cannot_depose_a_healthy_leader() {
    let mut cluster = Cluster::with_leader(3, 1);
    let term = cluster.node(1).status().term;
    cluster.isolate(3);
    cluster.run(200);
    assert_eq!(
        cluster.node(3).status().term,
        term,
        "pre-vote keeps the isolated node's term"
    );
    cluster.heal();
    cluster.run(50);
    assert_eq!(cluster.leader(), Some(1));
    assert_eq!(cluster.node(1).status().term, term);
}

#[test]
fn check_quorum_partitioned_leader_steps_down() {
    let mut cluster = Cluster::with_leader(3, 1);
    let term = cluster.node(1).status().term;
    cluster.isolate(1);
    let min = cluster.peer(1).config.election_ticks_min;
    cluster.run(2 * min);
    assert_ne!(cluster.node(1).status().role, Role::Leader);
    assert!(cluster.events_of(1).contains(&Event::SteppedDown {
        term,
        reason: StepDownReason::LostQuorum
    }));
    assert!(cluster.run_until(200, |c| c.leader().is_some_and(|l| l != 1)));
}

#[test]
fn check_quorum_follower_ignores_vote_requests_while_it_hears_from_the_leader() {
    let mut node = node_with_log(Config::new(1, vec![1, 2, 3]), &[1], 1, 0);
    node.step(message(
        2,
        1,
        1,
        Body::Heartbeat {
            commit: 0,
            read_round: 1,
        },
    ))
    .expect("voter");
    drain(&mut node);
    node.step(vote_request(3, 1, 5, 9, 9)).expect("voter");
    let ready = drain(&mut node);
    assert!(all_messages(&ready).is_empty(), "ignored entirely");
    assert_eq!(node.status().term, 1);
    let transfer = Body::Vote {
        last_index: 9,
        last_term: 9,
        leadership_transfer: true,
        commit: 0,
        commit_term: 0,
    };
    node.step(message(3, 1, 5, transfer)).expect("voter");
    let ready = drain(&mut node);
    assert_eq!(
        node.status().term,
        5,
        "a leadership-transfer campaign is not ignored"
    );
    assert!(ready
        .persisted_messages
        .iter()
        .any(|m| m.body == Body::VoteReply { granted: true }));
}

#[test]
fn election_timer_is_not_reset_by_refused_votes() {
    let config = plain_config(1, &[1, 2, 3]);
    let max = config.election_ticks_max;
    let mut node = node_with_log(config, &[1, 1], 1, 0);
    let mut campaigned = false;
    for tick in 0..max {
        // A candidate with a stale log keeps asking; refusing must not
        // hold back our own timeout.
        node.step(vote_request(2, 1, 2 + tick, 1, 1))
            .expect("voter");
        node.tick();
        drain(&mut node);
        if node.status().role == Role::Candidate {
            campaigned = true;
            break;
        }
    }
    assert!(
        campaigned,
        "refused vote requests must not reset the election timer"
    );
}

#[test]
fn stale_pre_vote_grant_from_an_earlier_round_is_not_counted() {
    let mut node = node_with_log(Config::new(1, vec![1, 2, 3]), &[1], 3, 0);
    tick_until_campaign(&mut node);
    // A grant for term 3 (from when our term was 2) is not for this campaign.
    node.step(message(2, 1, 3, Body::PreVoteReply { granted: true }))
        .expect("voter");
    assert_eq!(node.status().role, Role::PreCandidate);
    node.step(message(2, 1, 4, Body::PreVoteReply { granted: true }))
        .expect("voter");
    assert_eq!(node.status().role, Role::Candidate);
}

#[test]
fn restart_after_entries_outlived_a_torn_hard_state_resumes_in_their_term_without_a_vote() {
    // The hard state (term 3, vote 2) was written, then a Ready with
    // entries of term 4 was torn before its hard state reached the disk.
    let initial = InitialState {
        hard_state: hard_state(3, 2, 1),
        snapshot: None,
        entries: entries_with_terms(&[1, 4]),
    };
    let mut node = RawNode::new(plain_config(1, &[1, 2, 3]), initial, 1).expect("restores");
    let status = node.status();
    assert_eq!(
        (status.term, status.vote, status.last_term),
        (4, NO_NODE, 4)
    );
    let ready = drain(&mut node);
    assert_eq!(
        ready.hard_state.map(|hs| (hs.term, hs.vote)),
        Some((4, NO_NODE))
    );
}

#[test]
fn liveness_heartbeat_interval_is_at_most_a_fifth_of_the_minimum_election_timeout() {
    let mut config = Config::new(1, vec![1, 2, 3]);
    config.heartbeat_ticks = 4;
    config.election_ticks_min = 19;
    config.election_ticks_max = 40;
    assert!(config.validate().is_err(), "19 ticks is under 5 heartbeats");
    config.election_ticks_min = 20;
    assert!(config.validate().is_ok());
    config.heartbeat_ticks = u64::MAX;
    assert!(
        config.validate().is_err(),
        "an absurd interval is refused, not overflowed"
    );
}
