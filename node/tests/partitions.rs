//! Real processes behind the fault proxy: a partitioned leader steps down,
//! the rest of the cluster goes on, and nothing acknowledged is lost when
//! the partition heals; one-way partitions either way; a paused leader that
//! resumes never serves a stale read.

mod common;

use std::time::Duration;

use common::*;
use raftkv_node::client::ClusterClient;
use raftkv_node::fault_proxy::{FaultProxy, LinkMode};
use raftkv_node::log_events::STEPPED_DOWN;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A cluster of `n` whose peer links all pass through a fault proxy.
async fn proxied_cluster(n: u64) -> (Cluster, FaultProxy) {
    let mut cluster = Cluster::new(n, Vec::new());
    let peers = cluster.peer_addrs();
    let proxy = FaultProxy::start(&peers).await.expect("fault proxy");
    for &(id, _) in &peers {
        cluster.set_cluster_flag(id, proxy.cluster_arg(id, &peers));
    }
    cluster.start_all();
    (cluster, proxy)
}

/// A leader other than `old` (in a higher term than `term`), as the nodes
/// other than `old` report it; the statuses of `old` are not asked.
async fn other_leader(cluster: &Cluster, old: u64, term: u64) -> (u64, u64) {
    wait_for("a new leader among the other nodes", || async {
        for id in cluster.live_ids().into_iter().filter(|id| *id != old) {
            if let Ok(status) = ClusterClient::status(&cluster.node(id).client_addr).await {
                if status["role"] == "leader" && field(&status, "term") > term {
                    return Some((id, field(&status, "term")));
                }
            }
        }
        None
    })
    .await
}

/// Waits until node `id` no longer says it leads.
async fn stepped_down(cluster: &Cluster, id: u64) {
    wait_for(&format!("node {id} to step down"), || async {
        let status = ClusterClient::status(&cluster.node(id).client_addr)
            .await
            .ok()?;
        (status["role"] != "leader").then_some(())
    })
    .await
}

/// Every key:NNNN = value-N of `range` on node `id`, read locally.
async fn node_holds(cluster: &Cluster, id: u64, range: std::ops::RangeInclusive<u32>) {
    let dump = ClusterClient::dump(&cluster.node(id).client_addr)
        .await
        .unwrap();
    for i in range {
        let key = format!("key:{i:04}");
        assert!(
            dump.iter().any(|(k, v)| k.as_ref() == key.as_bytes()
                && v.as_ref() == format!("value-{i}").as_bytes()),
            "node {id} misses {key}"
        );
    }
}

/// Every key:NNNN = value-N of `range` on every node, read locally.
async fn every_node_holds(cluster: &Cluster, range: std::ops::RangeInclusive<u32>) {
    for id in cluster.live_ids() {
        node_holds(cluster, id, range.clone()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leader_steps_down_the_others_go_on_and_it_rejoins_after_the_heal() {
    let (cluster, proxy) = proxied_cluster(3).await;
    let (leader, term) = wait_for_leader(&cluster).await;
    write_keys(&cluster, 1..=20).await;
    let leading = ClusterClient::status(&cluster.node(leader).client_addr)
        .await
        .expect("the leader answers");
    assert_eq!(leading["role"], "leader");

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
    let deposed = wait_for(
        "the isolated leader to step down (check-quorum)",
        || async {
            let all = statuses(&cluster).await;
            all.get(&leader).filter(|s| s["role"] != "leader").cloned()
        },
    )
    .await;
    // Its silence counts from when it last led, which was after the
    // status read above, not from its start.
    let contact_ms = field(&deposed, "leader_contact_ms");
    assert!(
        contact_ms + field(&leading, "uptime_ms") <= field(&deposed, "uptime_ms"),
        "leader_contact_ms {contact_ms} of the deposed leader reaches back before it last led"
    );
    write_keys(&cluster, 21..=40).await;

    proxy.heal();
    wait_for_leader(&cluster).await;
    let (_, digest) = wait_converged(&cluster).await;
    // The old leader holds what the others took while it was cut off.
    node_holds(&cluster, leader, 1..=40).await;
    assert_eq!(digest.len(), 64);
    let stepped_down = log_events(&cluster.log_path(leader), STEPPED_DOWN);
    assert!(
        stepped_down
            .iter()
            .any(|e| e["fields"]["reason"] == "lost contact with a majority"),
        "node {leader} did not log stepping down for lost quorum"
    );
}

/// One-way partitions both ways. First the leader hears nothing (it still
/// sends): it steps down for want of acks and the others elect. Then the
/// new leader sends nothing (it still hears): its followers elect another,
/// whose higher term reaches it. Each time the old leader's stalled bytes
/// arrive after the heal and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_way_partitions_either_way_move_leadership_and_lose_nothing() {
    let (cluster, proxy) = proxied_cluster(3).await;
    let (first, term) = wait_for_leader(&cluster).await;
    write_keys(&cluster, 1..=10).await;

    for id in cluster.live_ids().into_iter().filter(|id| *id != first) {
        proxy.set((id, first), LinkMode::Stall);
    }
    let (second, term) = leadership_moves_and_heals(&cluster, &proxy, first, term, 11..=20).await;

    for id in cluster.live_ids().into_iter().filter(|id| *id != second) {
        proxy.set((second, id), LinkMode::Stall);
    }
    leadership_moves_and_heals(&cluster, &proxy, second, term, 21..=30).await;
}

/// With a one-way partition around leader `old` (in `term`) set on `proxy`:
/// another node takes over in a higher term and `old` steps down; the keys
/// of `range` are written; after the heal every node converges holding
/// every key up to the end of `range`. Returns the new leader and its term.
async fn leadership_moves_and_heals(
    cluster: &Cluster,
    proxy: &FaultProxy,
    old: u64,
    term: u64,
    range: std::ops::RangeInclusive<u32>,
) -> (u64, u64) {
    let (new, new_term) = other_leader(cluster, old, term).await;
    stepped_down(cluster, old).await;
    write_keys(cluster, range.clone()).await;
    proxy.heal();
    wait_for_leader(cluster).await;
    wait_converged(cluster).await;
    every_node_holds(cluster, 1..=*range.end()).await;
    (new, new_term)
}

/// SIGSTOP the leader; the others elect and take a new value of a key;
/// a GET already waiting in the old leader's socket when it resumes (so it
/// is read before any message of the new term can reach it) must not
/// return the old value: a paused leader that resumes never serves a stale
/// read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_that_resumes_serves_no_stale_read() {
    let (cluster, _proxy) = proxied_cluster(3).await;
    let (old, term) = wait_for_leader(&cluster).await;
    let mut client = cluster.client();
    client.set("contended", "old").await.expect("SET old");

    // A connection the old leader has accepted and served before the pause.
    let mut socket = TcpStream::connect(&cluster.node(old).client_addr)
        .await
        .unwrap();
    socket.write_all(b"*1\r\n$4\r\nPING\r\n").await.unwrap();
    assert_eq!(read_reply(&mut socket).await, "+PONG");

    let pid = cluster.node(old).child.as_ref().unwrap().id() as libc::pid_t;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let (new, _) = other_leader(&cluster, old, term).await;
    let mut others = ClusterClient::new(
        vec![cluster.node(new).client_addr.clone()],
        Duration::from_secs(10),
    );
    others.set("contended", "new").await.expect("SET new");

    socket
        .write_all(b"*2\r\n$3\r\nGET\r\n$9\r\ncontended\r\n")
        .await
        .unwrap();
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    let reply = read_reply(&mut socket).await;
    eprintln!("the resumed old leader answered the waiting GET with {reply:?}");
    assert!(
        reply == "new" || reply.starts_with('-'),
        "the resumed old leader answered {reply:?}: a stale read"
    );
    stepped_down(&cluster, old).await;
    wait_converged(&cluster).await;
    let mut client = cluster.client();
    assert_eq!(
        client.get("contended").await.unwrap().as_deref(),
        Some(&b"new"[..])
    );
}

/// One RESP reply: a simple string or error line as it stands (`+PONG`,
/// `-MOVED ...`), a bulk string as its text, a null bulk as `(nil)`.
async fn read_reply(socket: &mut TcpStream) -> String {
    let mut bytes = Vec::new();
    let read = async {
        loop {
            let mut buf = [0u8; 512];
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "the node closed the connection");
            bytes.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&bytes).to_string();
            let mut lines = text.split("\r\n");
            let first = lines.next().unwrap_or_default();
            if !text.contains("\r\n") {
                continue;
            }
            match first.chars().next() {
                Some('$') if first == "$-1" => return "(nil)".to_string(),
                Some('$') => {
                    if let Some(body) = lines.next().filter(|_| text.matches("\r\n").count() >= 2) {
                        return body.to_string();
                    }
                }
                _ => return first.to_string(),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("a reply within 20 s")
}
