//! What a bad or confused peer can send: garbage terms and indexes,
//! oversized snapshots, replies to requests long answered. None of it may
//! panic, grow memory without bound, or change what the node believes.

use bytes::Bytes;

use super::harness::*;
use crate::message::{Body, Message, NodeId, SnapshotMeta, INDEX_MAX, TERM_MAX};
use crate::raft::{Config, InitialState, RawNode, Role};

fn heartbeat() -> Body {
    Body::Heartbeat {
        commit: 0,
        read_round: 0,
    }
}

fn snapshot_chunk(index: u64, term: u64, offset: u64, data: &'static [u8], done: bool) -> Body {
    Body::Snapshot {
        meta: SnapshotMeta {
            index,
            term,
            members: Vec::new(),
        },
        offset,
        chunk: Bytes::from_static(data),
        done,
    }
}

fn snapshot_bodies_to(messages: &[Message], to: NodeId) -> Vec<Body> {
    messages
        .iter()
        .filter(|m| m.to == to && matches!(m.body, Body::Snapshot { .. }))
        .map(|m| m.body.clone())
        .collect()
}

#[test]
fn every_message_carries_a_term_and_a_term_beyond_term_max_is_garbage() {
    // Adopting a term near u64::MAX would make the node's own campaigns
    // overflow `term + 1` two elections later.
    let mut node = node_with_log(plain_config(1, &[1, 2, 3]), &[1], 1, 0);
    for term in [TERM_MAX + 1, u64::MAX - 1] {
        node.step(message(2, 1, term, heartbeat())).expect("voter");
        assert_eq!(node.status().term, 1, "term {term} must be dropped");
        assert!(!node.has_ready(), "a garbage term changes nothing");
    }
    node.step(message(2, 1, TERM_MAX, heartbeat()))
        .expect("voter");
    assert_eq!(
        node.status().term,
        TERM_MAX,
        "the highest valid term is adopted"
    );
    drain(&mut node);
    tick_until_campaign(&mut node);
    tick_until_campaign(&mut node);
    assert_eq!(node.status().term, TERM_MAX + 2, "campaigns keep counting");
}

#[test]
fn paper_7_snapshot_whose_index_is_beyond_index_max_is_dropped() {
    // Installed, it would leave no room for `last_index + 1` once this node
    // leads and appends its no-op.
    let mut node = node_with_log(plain_config(2, &[1, 2, 3]), &[], 1, 0);
    node.step(message(
        1,
        2,
        1,
        snapshot_chunk(u64::MAX - 1, 1, 0, b"s", true),
    ))
    .expect("voter");
    node.step(message(
        1,
        2,
        1,
        snapshot_chunk(INDEX_MAX + 1, 1, 0, b"s", true),
    ))
    .expect("voter");
    let ready = drain(&mut node);
    assert!(ready.snapshot.is_none(), "{:?}", ready.snapshot);
    assert!(all_messages(&ready).is_empty());
    assert_eq!(node.status().last_index, 0);
}

#[test]
fn paper_5_3_append_reaching_beyond_index_max_is_dropped() {
    let snapshot = crate::message::Snapshot {
        meta: SnapshotMeta {
            index: INDEX_MAX - 1,
            term: 1,
            members: Vec::new(),
        },
        data: Bytes::new(),
    };
    let initial = InitialState {
        hard_state: hard_state(1, 0, INDEX_MAX - 1),
        snapshot: Some(snapshot),
        entries: Vec::new(),
    };
    let mut node = RawNode::new(plain_config(2, &[1, 2, 3]), initial, 5).expect("restores");
    let too_far = append(
        INDEX_MAX - 1,
        1,
        vec![entry(INDEX_MAX, 1), entry(INDEX_MAX + 1, 1)],
        0,
    );
    node.step(message(1, 2, 1, too_far)).expect("voter");
    let ready = drain(&mut node);
    assert!(ready.entries.is_empty() && all_messages(&ready).is_empty());
    let last = append(INDEX_MAX - 1, 1, vec![entry(INDEX_MAX, 1)], 0);
    node.step(message(1, 2, 1, last)).expect("voter");
    assert_eq!(node.status().last_index, INDEX_MAX);
}

#[test]
fn malformed_messages_change_nothing_not_even_the_term() {
    // A malformed append or snapshot chunk is dropped before its term is
    // looked at: it is not evidence of a newer term or a live leader.
    let mut node = node_with_log(plain_config(2, &[1, 2, 3]), &[1], 1, 0);
    let before = node.status();
    let gap = append(1, 1, vec![entry(3, 5)], 0);
    let entry_term_above_message = append(1, 1, vec![entry(2, 9)], 0);
    let snapshot_term_above_message = snapshot_chunk(4, 9, 0, b"s", true);
    let offset_overflow = snapshot_chunk(4, 1, u64::MAX, b"s", false);
    for body in [
        gap,
        entry_term_above_message,
        snapshot_term_above_message,
        offset_overflow,
    ] {
        node.step(message(1, 2, 5, body.clone())).expect("voter");
        assert_eq!(node.status(), before, "{body:?} must change nothing");
    }
    assert!(!node.has_ready());
}

#[test]
fn paper_7_snapshot_transfer_beyond_snapshot_bytes_max_is_abandoned() {
    let mut config = plain_config(2, &[1, 2, 3]);
    config.snapshot_bytes_max = 8;
    let mut node = node_with_log(config, &[], 1, 0);
    node.step(message(1, 2, 1, snapshot_chunk(5, 1, 0, b"123456", false)))
        .expect("voter");
    let ready = drain(&mut node);
    assert_eq!(ready.messages[0].body, snapshot_reply(5, 6, false));
    // The next chunk would grow the buffer past the bound.
    node.step(message(1, 2, 1, snapshot_chunk(5, 1, 6, b"789", true)))
        .expect("voter");
    let ready = drain(&mut node);
    assert!(ready.snapshot.is_none());
    assert!(
        all_messages(&ready).is_empty(),
        "a refused chunk is not acknowledged"
    );
    // Nothing of it is kept: the chunk sent again finds no transfer.
    node.step(message(1, 2, 1, snapshot_chunk(5, 1, 6, b"789", true)))
        .expect("voter");
    let ready = drain(&mut node);
    assert_eq!(ready.messages[0].body, snapshot_reply(5, 0, false));
    // One chunk alone past the bound is refused too.
    node.step(message(
        1,
        2,
        1,
        snapshot_chunk(5, 1, 0, b"123456789", true),
    ))
    .expect("voter");
    let ready = drain(&mut node);
    assert!(ready.snapshot.is_none() && all_messages(&ready).is_empty());
    assert_eq!(node.status().snapshot_index, 0);
    // A snapshot within the bound installs.
    node.step(message(1, 2, 1, snapshot_chunk(5, 1, 0, b"12345678", true)))
        .expect("voter");
    let ready = drain(&mut node);
    assert_eq!(ready.snapshot.map(|s| s.data.len()), Some(8));
}

#[test]
fn config_snapshot_bytes_max_must_be_at_least_one() {
    let mut config = Config::new(1, vec![1, 2, 3]);
    config.snapshot_bytes_max = 0;
    assert!(config.validate().is_err());
}

/// A leader of a cluster of 3 that has compacted past what node 3 has,
/// with the first chunk of a snapshot transfer to node 3 in hand.
fn leader_sending_a_snapshot_to_3(configure: impl Fn(&mut Config)) -> (Cluster, Message) {
    let mut cluster = Cluster::new(3, configure);
    cluster.elect(1);
    cluster.isolate(3);
    cluster.propose_numbered(1, "value-", 6);
    cluster.compact(1);
    cluster.heal();
    for _ in 0..100 {
        cluster.tick_all_without_delivery();
        let mut first_chunk = None;
        for message in cluster.take_network() {
            if first_chunk.is_none()
                && message.to == 3
                && matches!(message.body, Body::Snapshot { offset: 0, .. })
            {
                first_chunk = Some(message);
            } else if first_chunk.is_none() {
                cluster.deliver(message);
            }
        }
        if let Some(chunk) = first_chunk {
            cluster.take_network();
            return (cluster, chunk);
        }
    }
    panic!("the snapshot transfer never started");
}

#[test]
fn replies_for_a_snapshot_chunk_no_longer_in_flight_are_dropped() {
    let (mut cluster, first_chunk) =
        leader_sending_a_snapshot_to_3(|c| c.snapshot_chunk_bytes_max = 4);
    cluster.node_mut(3).step(first_chunk).expect("voter");
    cluster.process(3);
    let reply = cluster
        .take_network()
        .into_iter()
        .find(|m| m.to == 1 && matches!(m.body, Body::SnapshotReply { .. }))
        .expect("the follower acknowledges the chunk");
    // The same reply twice (a duplicate, or a retry's answer): the second
    // asks for the chunk already in flight and must not send it again.
    cluster.node_mut(1).step(reply.clone()).expect("voter");
    cluster.node_mut(1).step(reply).expect("voter");
    cluster.process(1);
    let chunks = snapshot_bodies_to(&cluster.take_network(), 3);
    assert_eq!(chunks.len(), 1, "{chunks:?}");
    // The transfer still completes.
    assert!(cluster.run_until(300, |c| c.state_of(3) == c.state_of(1)));
}

#[test]
fn snapshot_reply_with_a_garbage_offset_does_not_overflow_the_chunk_bounds() {
    let (mut cluster, first_chunk) =
        leader_sending_a_snapshot_to_3(|c| c.snapshot_chunk_bytes_max = usize::MAX);
    let Body::Snapshot { meta, .. } = first_chunk.body else {
        unreachable!("matched above")
    };
    let term = cluster.node(1).status().term;
    let garbage = snapshot_reply(meta.index, u64::MAX, false);
    cluster
        .node_mut(1)
        .step(message(3, 1, term, garbage))
        .expect("voter");
    cluster.process(1);
    assert_eq!(cluster.node(1).status().role, Role::Leader);
    cluster.take_network();
    assert!(cluster.run_until(300, |c| c.state_of(3) == c.state_of(1)));
}
