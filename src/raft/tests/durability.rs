//! Persistence before promises, restarts, and a small seeded chaos run
//! (RAFT_PITFALLS.md "Persistence and restart").

use bytes::Bytes;

use super::harness::*;
use crate::message::Body;
use crate::raft::{Config, InitialState, RawNode, Rng, Role};

#[test]
fn durability_vote_reply_leaves_only_after_the_vote_is_persisted() {
    let mut node = node_with_log(plain_config(1, &[1, 2, 3]), &[], 1, 0);
    let request = vote_body(0, 0);
    node.step(message(2, 1, 2, request.clone())).expect("voter");
    let ready = node.ready();
    assert_eq!(ready.hard_state.map(|hs| (hs.term, hs.vote)), Some((2, 2)));
    assert!(ready
        .messages
        .iter()
        .all(|m| !matches!(m.body, Body::VoteReply { .. })));
    assert_eq!(ready.persisted_messages.len(), 1);
    // Crash before persisting: the reply never left, so voting again is safe.
    let mut restarted = node_with_log(plain_config(1, &[1, 2, 3]), &[], 1, 0);
    restarted.step(message(3, 1, 2, request)).expect("voter");
    assert_eq!(restarted.status().vote, 3);
}

#[test]
fn durability_restart_keeps_term_vote_and_log() {
    let mut cluster = Cluster::with_leader(3, 2);
    cluster.propose(2, "a");
    let before = cluster.node(3).status();
    cluster.crash(3);
    cluster.restart(3);
    let after = cluster.node(3).status();
    assert_eq!(
        (after.term, after.vote, after.last_index),
        (before.term, before.vote, before.last_index)
    );
    assert_eq!(after.role, Role::Follower);
}

#[test]
fn restored_node_redelivers_committed_entries_after_its_snapshot() {
    let entries = entries_with_terms(&[1, 1, 1]);
    let initial = InitialState {
        hard_state: hard_state(1, 0, 2),
        snapshot: None,
        entries,
    };
    let mut node = RawNode::new(plain_config(1, &[1, 2, 3]), initial, 9).expect("valid");
    assert_eq!(node.status().applied_index, 0);
    let ready = drain(&mut node);
    assert!(
        ready.entries.is_empty(),
        "restored entries are already durable"
    );
    assert_eq!(
        ready
            .committed_entries
            .iter()
            .map(|e| e.index)
            .collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(node.status().applied_index, 2);
}

/// Seeded faults: reordering, drops, duplicates, partitions, crashes and
/// compaction. The harness checks that every node applies the same entry
/// at each index; at the end the healed cluster must converge.
fn chaos(seed: u64, size: u64, configure: impl Fn(&mut Config)) {
    let mut rng = Rng::new(seed);
    let mut cluster = Cluster::new(size, |c| {
        c.snapshot_chunk_bytes_max = 16;
        c.entries_per_append_max = 4;
        c.inflight_appends_max = 3;
        configure(c);
    });
    let minority = (size - 1) / 2;
    for step in 0..1500u64 {
        match rng.range(0, 200) {
            0..=2 if (cluster.down.len() as u64) < minority => {
                let id = rng.range(1, size + 1);
                cluster.crash(id);
            }
            3..=8 => {
                if let Some(&id) = cluster.down.iter().next() {
                    cluster.restart(id);
                }
            }
            9..=10 => {
                let id = rng.range(1, size + 1);
                cluster.isolate(id);
            }
            11..=16 => cluster.heal(),
            17..=18 => {
                let id = rng.range(1, size + 1);
                if !cluster.down.contains(&id)
                    && cluster.node(id).status().applied_index
                        > cluster.node(id).status().first_index + 3
                {
                    cluster.compact(id);
                }
            }
            _ => {}
        }
        let running: Vec<u64> = (1..=size).filter(|id| !cluster.down.contains(id)).collect();
        for &id in &running {
            cluster.tick(id);
        }
        if let Some(leader) = cluster.leader() {
            if rng.range(0, 3) == 0 {
                let _ = cluster
                    .node_mut(leader)
                    .propose(Bytes::from(format!("s{seed}-{step}")));
                cluster.process(leader);
            }
            if rng.range(0, 10) == 0 {
                let _ = cluster.node_mut(leader).read_index(step);
                cluster.process(leader);
            }
        }
        let mut in_flight = cluster.take_network();
        // Reorder: a seeded Fisher-Yates shuffle.
        for i in (1..in_flight.len()).rev() {
            let j = rng.range(0, i as u64 + 1) as usize;
            in_flight.swap(i, j);
        }
        for message in in_flight {
            match rng.range(0, 100) {
                0..=4 => {}
                5..=7 => {
                    cluster.deliver(message.clone());
                    cluster.deliver(message);
                }
                _ => cluster.deliver(message),
            }
        }
    }
    cluster.heal();
    let down: Vec<u64> = cluster.down.iter().copied().collect();
    for id in down {
        cluster.restart(id);
    }
    let converged = cluster.run_until(1000, |c| {
        let Some(leader) = c.leader() else {
            return false;
        };
        let commit = c.node(leader).status().commit_index;
        (1..=size).all(|id| {
            c.node(id).status().applied_index == commit && c.state_of(id) == c.state_of(leader)
        })
    });
    assert!(
        converged,
        "seed {seed}: the healed cluster did not converge"
    );
    let leader = cluster.leader().expect("leader");
    let before = cluster.node(leader).status().commit_index;
    let _ = cluster
        .node_mut(leader)
        .propose(Bytes::from_static(b"final"));
    cluster.process(leader);
    assert!(
        cluster.run_until(100, |c| c.leader().is_some_and(|l| c
            .node(l)
            .status()
            .commit_index
            > before)),
        "seed {seed}: no progress after healing"
    );
    // Reads were answered only with indexes that were committed.
    for id in 1..=size {
        for read in &cluster.peer(id).read_states {
            assert!(read.index <= cluster.node(id).status().commit_index);
        }
    }
}

#[test]
fn chaos_three_nodes_stay_safe_and_converge() {
    for seed in 0..12 {
        chaos(seed, 3, |_| {});
    }
}

#[test]
fn chaos_five_nodes_stay_safe_and_converge() {
    for seed in 100..106 {
        chaos(seed, 5, |_| {});
    }
}

#[test]
fn chaos_without_pre_vote_or_check_quorum() {
    for seed in 200..206 {
        chaos(seed, 3, |c| {
            c.pre_vote = false;
            c.check_quorum = false;
        });
    }
}
