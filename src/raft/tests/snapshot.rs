//! Log compaction and InstallSnapshot (Raft §7).

use bytes::Bytes;

use super::harness::*;
use crate::message::{Body, SnapshotMeta};
use crate::raft::{CompactError, Event};

#[test]
fn paper_7_lagging_follower_is_caught_up_by_a_chunked_snapshot() {
    let mut cluster = Cluster::new(3, |c| c.snapshot_chunk_bytes_max = 8);
    cluster.elect(1);
    cluster.isolate(3);
    cluster.propose_numbered(1, "value-", 10);
    let snapshot_index = cluster.compact(1);
    assert_eq!(cluster.node(1).status().first_index, snapshot_index + 1);
    cluster.propose(1, "after-compaction");
    cluster.heal();
    assert!(cluster.run_until(200, |c| c.state_of(3) == c.state_of(1)));
    let sent: Vec<&Event> = cluster
        .events_of(1)
        .iter()
        .filter(|e| matches!(e, Event::SnapshotSent { to: 3, .. }))
        .collect();
    assert_eq!(sent.len(), 1);
    assert!(
        matches!(sent[0], Event::SnapshotSent { index, bytes, .. } if *index == snapshot_index && *bytes > 8)
    );
    assert!(cluster
        .events_of(3)
        .iter()
        .any(|e| matches!(e, Event::SnapshotInstalled { index, .. } if *index == snapshot_index)));
    assert_eq!(cluster.node(3).status().snapshot_index, snapshot_index);
    // The follower restarts from what it persisted: the snapshot and the log after it.
    cluster.crash(3);
    cluster.restart(3);
    assert_eq!(cluster.state_of(3), cluster.state_of(1));
}

#[test]
fn paper_7_transfer_survives_lost_chunks_and_a_newer_compaction() {
    let mut cluster = Cluster::new(3, |c| c.snapshot_chunk_bytes_max = 4);
    cluster.elect(1);
    cluster.isolate(3);
    cluster.propose_numbered(1, "v", 6);
    cluster.compact(1);
    cluster.heal();
    // Drop the first chunk, then compact again while the transfer is on.
    let mut dropped_chunk = false;
    for _ in 0..100 {
        if dropped_chunk {
            break;
        }
        cluster.tick_all_without_delivery();
        for message in cluster.take_network() {
            if !dropped_chunk && matches!(message.body, Body::Snapshot { .. }) {
                dropped_chunk = true;
            } else {
                cluster.deliver(message);
            }
        }
    }
    assert!(dropped_chunk, "the snapshot transfer never started");
    cluster.deliver_all();
    cluster.propose(1, "more");
    cluster.compact(1);
    assert!(cluster.run_until(300, |c| c.state_of(3) == c.state_of(1)));
}

#[test]
fn paper_7_snapshot_not_beyond_the_commit_index_is_acknowledged_without_rollback() {
    let mut node = node_with_log(plain_config(2, &[1, 2, 3]), &[1, 1, 1], 1, 3);
    let meta = SnapshotMeta {
        index: 2,
        term: 1,
        members: Vec::new(),
    };
    let chunk = Body::Snapshot {
        meta,
        offset: 0,
        chunk: Bytes::from_static(b"old"),
        done: true,
    };
    node.step(message(1, 2, 1, chunk)).expect("voter");
    let ready = drain(&mut node);
    assert!(ready.snapshot.is_none());
    assert_eq!(node.status().last_index, 3);
    let reply = ready.persisted_messages.first().expect("reply");
    assert_eq!(reply.body, snapshot_reply(2, 3, true));
}

#[test]
fn paper_7_snapshot_keeps_matching_entries_after_it_or_drops_the_log() {
    let meta = |index, term| SnapshotMeta {
        index,
        term,
        members: Vec::new(),
    };
    let install = |index, term| Body::Snapshot {
        meta: meta(index, term),
        offset: 0,
        chunk: Bytes::from_static(b"state"),
        done: true,
    };
    let mut node = node_with_log(plain_config(2, &[1, 2, 3]), &[1, 1, 2, 2, 2], 2, 0);
    node.step(message(1, 2, 2, install(3, 2))).expect("voter");
    let ready = drain(&mut node);
    let snapshot = ready.snapshot.expect("snapshot to persist and restore");
    assert_eq!(
        (snapshot.meta.index, &snapshot.data[..]),
        (3, &b"state"[..])
    );
    assert_eq!(
        ready.entries.iter().map(|e| e.index).collect::<Vec<_>>(),
        vec![4, 5],
        "matching suffix kept"
    );
    assert!(ready
        .events
        .contains(&Event::SnapshotInstalled { index: 3, term: 2 }));
    assert_eq!(
        ready.persisted_messages.first().map(|m| &m.body),
        Some(&snapshot_reply(3, 5, true))
    );
    let status = node.status();
    assert_eq!(
        (status.applied_index, status.commit_index, status.last_index),
        (3, 3, 5)
    );

    let mut node = node_with_log(plain_config(2, &[1, 2, 3]), &[1, 1, 2, 2, 2], 3, 0);
    node.step(message(1, 2, 3, install(4, 3))).expect("voter");
    let ready = drain(&mut node);
    assert!(ready.snapshot.is_some() && ready.entries.is_empty());
    assert_eq!(
        (node.status().last_index, node.status().applied_index),
        (4, 4),
        "conflicting log dropped"
    );
}

#[test]
fn paper_7_out_of_order_chunk_is_answered_with_the_expected_offset() {
    let mut node = node_with_log(plain_config(2, &[1, 2, 3]), &[], 1, 0);
    let meta = SnapshotMeta {
        index: 5,
        term: 1,
        members: Vec::new(),
    };
    let chunk = |offset, data: &'static [u8], done| Body::Snapshot {
        meta: meta.clone(),
        offset,
        chunk: Bytes::from_static(data),
        done,
    };
    node.step(message(1, 2, 1, chunk(4, b"5678", true)))
        .expect("voter");
    let ready = drain(&mut node);
    assert_eq!(ready.messages[0].body, snapshot_reply(5, 0, false));
    node.step(message(1, 2, 1, chunk(0, b"1234", false)))
        .expect("voter");
    node.step(message(1, 2, 1, chunk(0, b"1234", false)))
        .expect("voter");
    let ready = drain(&mut node);
    assert_eq!(ready.messages[1].body, snapshot_reply(5, 4, false));
    node.step(message(1, 2, 1, chunk(4, b"5678", true)))
        .expect("voter");
    let ready = drain(&mut node);
    assert_eq!(
        ready.snapshot.map(|s| s.data),
        Some(Bytes::from_static(b"12345678"))
    );
}

#[test]
fn compaction_is_refused_beyond_applied_or_below_the_first_index() {
    let mut cluster = Cluster::with_leader(1, 1);
    cluster.propose(1, "a");
    let applied = cluster.node(1).status().applied_index;
    let refused = cluster.node_mut(1).compact(applied + 1, Bytes::new());
    assert_eq!(
        refused,
        Err(CompactError::OutOfRange {
            index: applied + 1,
            first_index: 1,
            applied
        })
    );
    cluster.compact(1);
    assert!(
        cluster.node_mut(1).compact(applied, Bytes::new()).is_err(),
        "already compacted"
    );
}

#[test]
fn a_reconnect_to_an_intact_follower_costs_one_probe_and_no_commit() {
    let mut cluster = Cluster::with_leader(3, 1);
    cluster.propose_numbered(1, "value-", 5);
    let committed = cluster.node(1).status().commit_index;
    cluster.node_mut(1).peer_reconnected(2);
    cluster.process(1);
    assert_eq!(
        cluster.node(1).status().commit_index,
        committed,
        "forgetting a match index never lowers the commit index"
    );
    cluster.deliver_all();
    cluster.propose(1, "after-the-reconnect");
    assert!(cluster.run_until(50, |c| c.state_of(2) == c.state_of(1)));
    // Followers and candidates ignore it.
    let before = cluster.node(2).status();
    cluster.node_mut(2).peer_reconnected(1);
    assert_eq!(cluster.node(2).status(), before);
}
