//! Membership changes on real processes: a cluster grows from 3 to 5 nodes
//! and back while clients write, the leader removes itself, and a node
//! whose disk was wiped is replaced by a new incarnation of the same id.
//! Every acknowledged write must be on every member afterwards, with equal
//! digests.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{log_events, wait_converged, wait_for, wait_for_leader, Cluster};
use raftkv_node::client::ClusterClient;
use raftkv_node::driver::status::MemberView;

/// Writes `prefix:N` keys until `stop`, through the cluster client; returns
/// the keys whose writes were acknowledged.
fn start_writer(
    cluster: &Cluster,
    prefix: &'static str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<String>> {
    let mut client = ClusterClient::new(cluster.client_addrs(), Duration::from_secs(20));
    tokio::spawn(async move {
        let mut acked = Vec::new();
        let mut n = 0u32;
        while !stop.load(Ordering::Relaxed) {
            let key = format!("{prefix}:{n:05}");
            if client.set(&key, format!("v{n}")).await.is_ok() {
                acked.push(key);
            }
            n += 1;
        }
        acked
    })
}

async fn members_of(cluster: &Cluster, id: u64) -> Option<Vec<MemberView>> {
    ClusterClient::members(&cluster.node(id).client_addr)
        .await
        .ok()
}

/// Waits until the leader lists exactly `voters` as voters and no learner.
async fn wait_for_voters(cluster: &Cluster, voters: &[u64]) -> Vec<MemberView> {
    wait_for(&format!("voters {voters:?} on the leader"), || async {
        let (leader, _) = leader_now(cluster).await?;
        let members = members_of(cluster, leader).await?;
        let listed: Vec<u64> = members.iter().map(|m| m.id).collect();
        let all_voters = members.iter().all(MemberView::is_voter);
        (listed == voters && all_voters).then_some(members)
    })
    .await
}

/// The node that says it leads, if exactly one running node does.
async fn leader_now(cluster: &Cluster) -> Option<(u64, String)> {
    let mut leaders = Vec::new();
    for id in cluster.live_ids() {
        if let Ok(status) = ClusterClient::status(&cluster.node(id).client_addr).await {
            if status.get("role").map(String::as_str) == Some("leader") {
                leaders.push((id, cluster.node(id).client_addr.clone()));
            }
        }
    }
    (leaders.len() == 1).then(|| leaders.remove(0))
}

/// Sends a membership change through the cluster client (it follows
/// MOVED and retries TRYAGAIN until its deadline).
async fn change(cluster: &Cluster, words: &[&str]) {
    let mut client = ClusterClient::new(cluster.client_addrs(), Duration::from_secs(20));
    let args: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
    client
        .command(&args)
        .await
        .unwrap_or_else(|e| panic!("{words:?}: {e}"));
}

/// Every key in `acked` is on every running node (its own state, READONLY).
async fn assert_on_every_node(cluster: &Cluster, acked: &[String]) {
    for id in cluster.live_ids() {
        let addr = &cluster.node(id).client_addr;
        for key in acked {
            let value = ClusterClient::local_get(addr, key)
                .await
                .unwrap_or_else(|e| panic!("GET {key} on node {id}: {e}"));
            assert!(
                value.is_some(),
                "acknowledged write {key} is missing on node {id}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_grows_from_three_to_five_and_back_under_writes() {
    let mut cluster = Cluster::start(3);
    wait_for_leader(&cluster).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = start_writer(&cluster, "grow", stop.clone());

    let four = cluster.add_joining_node(1);
    wait_for_voters(&cluster, &[1, 2, 3, 4]).await;
    let five = cluster.add_joining_node(2);
    let members = wait_for_voters(&cluster, &[1, 2, 3, 4, 5]).await;
    let added = &members[4];
    assert_eq!(added.peer_addr, cluster.node(five).peer_addr);
    assert_eq!(added.client_addr, cluster.node(five).client_addr);
    assert_eq!(added.incarnation.len(), 16, "{added:?}");
    for id in [four, five] {
        let log = cluster.log_path(id);
        wait_for(&format!("node {id} to log its promotion"), || async {
            (log_events(&log, "promoted").len() == 1).then_some(())
        })
        .await;
        assert_eq!(log_events(&log, "joined_as_learner").len(), 1, "node {id}");
    }

    // A node that joined restarts from its own disk (no second join), even
    // while the member it joined through is down: the addresses of the
    // members it did not meet through its join are in the configuration.
    cluster.kill(1);
    cluster.kill(four);
    cluster.start_node(four);
    let mut client = ClusterClient::new(cluster.client_addrs(), Duration::from_secs(20));
    client.set("after-restart", "yes").await.unwrap();
    // The leader hears node 4's acks (so node 4 can dial it): its match
    // index for node 4 reaches the write.
    wait_for("the leader's match index for node 4", || async {
        let (leader, addr) = leader_now(&cluster).await?;
        let commit: u64 = ClusterClient::status(&addr)
            .await
            .ok()?
            .get("commit_index")?
            .parse()
            .ok()?;
        let members = members_of(&cluster, leader).await?;
        let matched = members.iter().find(|m| m.id == four)?.match_index?;
        (leader == four || matched >= commit).then_some(())
    })
    .await;
    assert_eq!(
        log_events(&cluster.log_path(four), "join_requested").len(),
        1
    );
    cluster.start_node(1);

    // Shrink back to three.
    change(&cluster, &["RAFT.REMOVE", "5"]).await;
    change(&cluster, &["RAFT.REMOVE", "4"]).await;
    wait_for_voters(&cluster, &[1, 2, 3]).await;
    cluster.kill(five);
    cluster.kill(four);

    stop.store(true, Ordering::Relaxed);
    let acked = writer.await.unwrap();
    assert!(
        acked.len() > 20,
        "the writer made progress: {}",
        acked.len()
    );
    wait_for_leader(&cluster).await;
    wait_converged(&cluster).await;
    assert_on_every_node(&cluster, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_removes_itself_and_the_others_elect_a_new_one_at_once() {
    let mut cluster = Cluster::start(3);
    let (old, term) = wait_for_leader(&cluster).await;
    common::write_keys(&cluster, 1..=20).await;
    change(&cluster, &["RAFT.REMOVE", &old.to_string()]).await;
    let rest: Vec<u64> = (1..=3).filter(|&id| id != old).collect();
    let members = wait_for_voters(&cluster, &rest).await;
    assert!(members.iter().all(|m| m.id != old));
    wait_for("the removed leader to log why it stepped down", || async {
        log_events(&cluster.log_path(old), "stepped_down")
            .iter()
            .any(|e| {
                e["fields"]["reason"]
                    .as_str()
                    .unwrap_or("")
                    .contains("removed")
            })
            .then_some(())
    })
    .await;
    cluster.kill(old);
    let (new, new_term) = wait_for_leader(&cluster).await;
    assert_ne!(new, old);
    assert!(new_term > term);
    common::write_keys(&cluster, 21..=40).await;
    wait_converged(&cluster).await;
    let acked: Vec<String> = (1..=40).map(|i| format!("key:{i:04}")).collect();
    assert_on_every_node(&cluster, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_is_replaced_under_writes_and_nothing_acknowledged_is_lost() {
    let mut cluster = Cluster::start(3);
    let (leader, _) = wait_for_leader(&cluster).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = start_writer(&cluster, "replace", stop.clone());
    common::write_keys(&cluster, 1..=30).await;
    let old_members = wait_for_voters(&cluster, &[1, 2, 3]).await;
    let replaced = (1..=3).find(|&id| id != leader).unwrap();
    let old_incarnation = old_members[(replaced - 1) as usize].incarnation.clone();

    cluster.kill(replaced);
    cluster.wipe(replaced);
    change(&cluster, &["RAFT.REMOVE", &replaced.to_string()]).await;
    let via = (1..=3).find(|&id| id != replaced).unwrap();
    cluster.set_join(replaced, via);
    cluster.start_node(replaced);
    let members = wait_for_voters(&cluster, &[1, 2, 3]).await;
    let new_incarnation = &members[(replaced - 1) as usize].incarnation;
    assert_eq!(new_incarnation.len(), 16);
    assert_ne!(
        *new_incarnation, old_incarnation,
        "the replacement is a new incarnation"
    );

    stop.store(true, Ordering::Relaxed);
    let mut acked = writer.await.unwrap();
    acked.extend((1..=30).map(|i| format!("key:{i:04}")));
    wait_converged(&cluster).await;
    assert_on_every_node(&cluster, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_that_cannot_be_taken_are_refused_with_the_reason() {
    let cluster = Cluster::start(3);
    let (leader, _) = wait_for_leader(&cluster).await;
    let mut connection = raftkv_node::client::Connection::connect(
        &cluster.node(leader).client_addr,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let refused = |words: &[&str]| {
        let args: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
        args
    };
    for (words, expected) in [
        (vec!["RAFT.REMOVE", "9"], "ERR node 9 is not a member"),
        (vec!["RAFT.PROMOTE", "2"], "ERR node 2 is a voter already"),
        (
            vec!["RAFT.ADDLEARNER", "2", "127.0.0.1:1", "127.0.0.1:2"],
            "ERR node 2 is already a member",
        ),
    ] {
        let args = refused(&words);
        let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        match connection.request(&args).await {
            Ok(raftkv_node::resp::Frame::Error(message)) => {
                assert!(message.starts_with(expected), "{words:?}: {message}")
            }
            other => panic!("{words:?}: expected an error, got {other:?}"),
        }
    }
    // A learner that never answers is never promoted (once the addition's
    // confirming copy committed, that is the reason given).
    change(
        &cluster,
        &["RAFT.ADDLEARNER", "7", "127.0.0.1:9", "127.0.0.1:9"],
    )
    .await;
    let promote: [&[u8]; 2] = [b"RAFT.PROMOTE", b"7"];
    let deadline = std::time::Instant::now() + common::WAIT_DEADLINE;
    let refusal = loop {
        match connection.request(&promote).await {
            Ok(raftkv_node::resp::Frame::Error(message)) if message.contains("in flight") => {
                assert!(std::time::Instant::now() < deadline, "{message}");
                tokio::time::sleep(common::POLL_INTERVAL).await;
            }
            other => break other,
        }
    };
    match refusal {
        Ok(raftkv_node::resp::Frame::Error(message)) => {
            assert!(message.starts_with("TRYAGAIN "), "{message}");
            assert!(message.contains("has not caught up"), "{message}");
        }
        other => panic!("expected TRYAGAIN, got {other:?}"),
    }
    // A follower sends the client to the leader.
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let mut at_follower = raftkv_node::client::Connection::connect(
        &cluster.node(follower).client_addr,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let remove: [&[u8]; 2] = [b"RAFT.REMOVE", b"7"];
    match at_follower.request(&remove).await {
        Ok(raftkv_node::resp::Frame::Error(message)) => assert_eq!(
            message,
            format!("MOVED 0 {}", cluster.node(leader).client_addr)
        ),
        other => panic!("expected MOVED, got {other:?}"),
    }
}
