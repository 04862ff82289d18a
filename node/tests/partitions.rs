//! Real processes behind the fault proxy: a partitioned leader steps down,
//! the rest of the cluster goes on, and nothing acknowledged is lost when
//! the partition heals.

mod common;

use common::*;
use raftkv_node::fault_proxy::{FaultProxy, LinkMode};
use raftkv_node::log_events::STEPPED_DOWN;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leader_steps_down_the_others_go_on_and_it_rejoins_after_the_heal() {
    let mut cluster = Cluster::new(3, Vec::new());
    let peers = cluster.peer_addrs();
    let proxy = FaultProxy::start(&peers).await.expect("fault proxy");
    for &(id, _) in &peers {
        cluster.set_cluster_flag(id, proxy.cluster_arg(id, &peers));
    }
    cluster.start_all();
    let (leader, term) = wait_for_leader(&cluster).await;
    write_keys(&cluster, 1..=20).await;

    proxy.set_node(leader, LinkMode::Sever);
    let (new_leader, new_term) = wait_for("a new leader among the others", || async {
        let all = statuses(&cluster).await;
        all.iter()
            .find(|(id, s)| **id != leader && s["role"] == "leader")
            .map(|(id, s)| (*id, field(s, "term")))
    })
    .await;
    assert!(
        new_term > term,
        "new leader {new_leader} in term {new_term}"
    );
    wait_for(
        "the isolated leader to step down (check-quorum)",
        || async {
            let all = statuses(&cluster).await;
            all.get(&leader)
                .is_some_and(|s| s["role"] != "leader")
                .then_some(())
        },
    )
    .await;
    write_keys(&cluster, 21..=40).await;

    proxy.heal();
    wait_for_leader(&cluster).await;
    let (_, digest) = wait_converged(&cluster).await;
    let dump = raftkv_node::client::ClusterClient::dump(&cluster.node(leader).client_addr)
        .await
        .unwrap();
    for i in 1..=40u32 {
        let key = format!("key:{i:04}");
        assert!(
            dump.iter().any(|(k, v)| k.as_ref() == key.as_bytes()
                && v.as_ref() == format!("value-{i}").as_bytes()),
            "the old leader misses {key} after the heal"
        );
    }
    assert_eq!(digest.len(), 64);
    let stepped_down = log_events(&cluster.log_path(leader), STEPPED_DOWN);
    assert!(
        stepped_down
            .iter()
            .any(|e| e["fields"]["reason"] == "lost contact with a majority"),
        "node {leader} did not log stepping down for lost quorum"
    );
}
