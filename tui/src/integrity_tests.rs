//! Each alarm on the status sequence that raises it, and the legitimate
//! sequences that must not: a lagging follower, a restarted node, a new
//! leader with an old commit index, a wiped node catching up from 0.

use super::*;
use crate::status::Role;

const DEADLINE_MS: u64 = 400;
const DIGEST_A: &str = "9c416561b5d29b481f4aaa44c5b47c98ce71d1bd47875d1c50203a677daa568c";
const DIGEST_B: &str = "f9de357db9c61f71fae95744165a192bd493832bd09207da42c26293f1c136b4";

fn status(id: u64, role: Role, term: u64, commit: u64, last: u64, digest: &str) -> NodeStatus {
    NodeStatus {
        term,
        commit_index: commit,
        applied_index: commit,
        last_index: last,
        digest: digest.into(),
        ..crate::status::example_status(id, role)
    }
}

fn leader(id: u64, term: u64, commit: u64, last: u64) -> NodeStatus {
    status(id, Role::Leader, term, commit, last, DIGEST_A)
}

fn follower(id: u64, term: u64, applied: u64) -> NodeStatus {
    status(id, Role::Follower, term, applied, applied, DIGEST_A)
}

/// Nodes 3 (leader) and 1 committed 53 in term 2.
fn committed_53() -> IntegrityWatch {
    let mut watch = IntegrityWatch::new(DEADLINE_MS);
    assert!(watch.observe(&leader(3, 2, 53, 53), 1_000).is_empty());
    assert!(watch.observe(&follower(1, 2, 53), 1_001).is_empty());
    assert_eq!(watch.committed_max(), 53);
    watch
}

#[test]
fn a_leader_whose_log_lacks_an_index_committed_in_an_earlier_term_is_data_loss() {
    let mut watch = committed_53();
    let raised = watch.observe(&leader(2, 4, 3, 4), 5_000);
    // Plus one each for nodes 1 and 3, which had applied 53 (the test below).
    assert_eq!(raised.len(), 3, "{raised:#?}");
    let alarm = &raised[0];
    assert_eq!(alarm.kind, AlarmKind::DataLoss);
    assert_eq!(
        (alarm.node, alarm.index, alarm.summary.as_str()),
        (2, 53, "DATA LOSS: leader 2 commit 3 < committed 53")
    );
    assert!(alarm.detail.contains("seen on node 3"), "{}", alarm.detail);
    assert!(
        alarm.detail.contains("its log ends at 4"),
        "{}",
        alarm.detail
    );
    // Sticky, and said once: the same leader polled again raises nothing new.
    assert!(watch.observe(&leader(2, 4, 4, 4), 5_150).is_empty());
    assert_eq!(watch.alarms().len(), 3);
    // Even when the leader's log grows past 53 with other entries.
    assert!(watch.observe(&leader(2, 4, 90, 90), 9_000).is_empty());
    assert_eq!(watch.first_alarm(), Some(alarm));
}

#[test]
fn a_leader_that_commits_in_its_term_but_stays_below_the_committed_index_is_data_loss() {
    let mut watch = committed_53();
    // Its log is long enough (other entries), its commit index is old: not yet.
    assert!(watch.observe(&leader(2, 4, 40, 60), 5_000).is_empty());
    // It committed its own entries and is still below 53.
    let raised = watch.observe(&leader(2, 4, 45, 60), 5_150);
    assert_eq!(raised.len(), 1);
    assert_eq!(
        raised[0].summary,
        "DATA LOSS: leader 2 commit 45 < committed 53"
    );
}

#[test]
fn a_new_leader_with_an_old_commit_index_is_not_an_alarm() {
    // Raft paper 5.4.2: a new leader learns the commit index by committing an
    // entry of its own term; until then it shows the one it had as follower.
    let mut watch = committed_53();
    assert!(watch.observe(&leader(1, 3, 50, 53), 5_000).is_empty());
    assert!(watch.observe(&leader(1, 3, 50, 54), 5_150).is_empty());
    assert!(watch.observe(&leader(1, 3, 54, 54), 5_300).is_empty());
    assert!(watch.alarms().is_empty());
}

#[test]
fn lagging_followers_and_restarted_nodes_are_not_alarms() {
    let mut watch = committed_53();
    // Node 2 was stopped early: behind, in an old term, and its commit index lags.
    assert!(watch.observe(&follower(2, 1, 3), 2_000).is_empty());
    // Node 3 restarts from its snapshot at 40 and replays up to 53.
    let mut restarted = follower(3, 2, 40);
    restarted.snapshot_index = 40;
    assert!(watch.observe(&restarted, 3_000).is_empty());
    assert!(watch.observe(&follower(3, 2, 53), 3_150).is_empty());
    // Node 1, wiped and re-admitted, starts from 0 and catches up.
    let mut wiped = follower(1, 3, 0);
    wiped.digest = DIGEST_B.into(); // the empty state: index 0 has not been seen
    wiped.registered = Some(false);
    assert!(watch.observe(&wiped, 4_000).is_empty());
    assert!(watch.observe(&leader(3, 3, 54, 54), 4_100).is_empty());
    assert!(watch.observe(&follower(1, 3, 54), 4_200).is_empty());
    assert!(watch.alarms().is_empty(), "{:#?}", watch.alarms());
}

#[test]
fn different_digests_at_one_applied_index_diverge_even_seen_at_different_times() {
    let mut watch = committed_53();
    // The same index with the same digest, later, on another node: fine.
    assert!(watch.observe(&follower(2, 2, 53), 2_000).is_empty());
    // Different indexes with different digests are never compared.
    let other = status(2, Role::Follower, 2, 54, 54, DIGEST_B);
    assert!(watch.observe(&other, 2_100).is_empty());
    let forked = status(1, Role::Follower, 2, 54, 54, DIGEST_A);
    let raised = watch.observe(&forked, 2_200);
    assert_eq!(raised.len(), 1);
    assert_eq!(raised[0].kind, AlarmKind::Diverged);
    assert_eq!(raised[0].summary, "DIVERGED: node 1 ≠ node 2 at index 54");
    assert!(raised[0].detail.contains("f9de35"), "{}", raised[0].detail);
}

#[test]
fn a_node_that_applied_beyond_a_later_leaders_log_is_data_loss() {
    let mut watch = committed_53();
    // Leader 2 of term 4 only has 4 entries; node 3 had applied 53 in term 2.
    let raised = watch.observe(&leader(2, 4, 4, 4), 5_000);
    let summaries: Vec<&str> = raised.iter().map(|a| a.summary.as_str()).collect();
    assert!(
        summaries.contains(&"DATA LOSS: node 3 applied 53 > leader 2 log 4"),
        "{summaries:?}"
    );
    // Seen from the node's side: node 3 restarts in term 2 after leader 2 answered.
    let mut later = IntegrityWatch::new(DEADLINE_MS);
    assert!(later.observe(&leader(2, 4, 4, 4), 5_000).is_empty());
    let raised = later.observe(&follower(3, 2, 53), 5_100);
    assert_eq!(raised.len(), 1);
    assert_eq!(
        raised[0].summary,
        "DATA LOSS: node 3 applied 53 > leader 2 log 4"
    );
}

#[test]
fn the_same_term_compares_applied_only_with_a_leader_status_produced_later() {
    // The follower's answer may be newer than the leader's: it applied what the
    // leader appended after answering. Not an alarm.
    let mut watch = IntegrityWatch::new(DEADLINE_MS);
    assert!(watch.observe(&leader(1, 2, 100, 100), 1_000).is_empty());
    assert!(watch.observe(&follower(2, 2, 105), 1_100).is_empty());
    assert!(watch.observe(&leader(1, 2, 100, 100), 1_200).is_empty());
    // A leader answer that arrives more than a poll deadline after the
    // follower's was produced after it: the leader must hold index 105.
    let raised = watch.observe(&leader(1, 2, 100, 100), 1_100 + DEADLINE_MS + 1);
    assert_eq!(raised.len(), 1);
    assert_eq!(raised[0].node, 2);
}

#[test]
fn old_terms_fold_into_one_high_water_mark() {
    let mut watch = IntegrityWatch::new(DEADLINE_MS);
    for term in 1..=(TERMS_REMEMBERED_MAX as u64 + 10) {
        watch.observe(&leader(1, term, term * 10, term * 10), term);
    }
    assert_eq!(watch.committed_by_term.len(), TERMS_REMEMBERED_MAX);
    assert_eq!(
        watch.committed_max(),
        (TERMS_REMEMBERED_MAX as u64 + 10) * 10
    );
    assert!(watch.leader_first_commit.len() <= TERMS_REMEMBERED_MAX);
    assert!(watch.alarms().is_empty());
}
