//! Expiry on real processes: keys with short TTLs written among plain ones,
//! a follower killed and restarted (catching up through the log or, when
//! the leader compacted past it, a snapshot that carries the TTLs), and
//! every node ends with the same keys and digest
//! once a later write's stamp passed the expiries.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use raftkv_node::client::ClusterClient;
use raftkv_node::resp::Frame;

const KEYS: u32 = 300;
/// Every third key gets a TTL of 100-400 ms.
fn ttl_ms(i: u32) -> Option<u32> {
    i.is_multiple_of(3).then_some(100 + (i * 7) % 300)
}

async fn write(client: &mut ClusterClient, i: u32) {
    let key = format!("key:{i:04}");
    let value = format!("value-{i}");
    let reply = match ttl_ms(i) {
        Some(ttl) => {
            client
                .command(&[
                    b"SET",
                    key.as_bytes(),
                    value.as_bytes(),
                    b"PX",
                    ttl.to_string().as_bytes(),
                ])
                .await
        }
        None => {
            client
                .command(&[b"SET", key.as_bytes(), value.as_bytes()])
                .await
        }
    };
    assert_eq!(reply.expect("SET"), Frame::Simple("OK".into()), "key {i}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_expire_identically_on_every_node_through_restarts_and_snapshots() {
    let mut cluster =
        Cluster::start_with(3, vec!["--snapshot-entries-threshold".into(), "100".into()]);
    let (leader, _) = wait_for_leader(&cluster).await;
    let follower = cluster
        .live_ids()
        .into_iter()
        .find(|id| *id != leader)
        .unwrap();
    let mut client = cluster.client();
    for i in 0..KEYS / 2 {
        write(&mut client, i).await;
    }
    cluster.kill(follower);
    for i in KEYS / 2..KEYS {
        write(&mut client, i).await;
    }
    cluster.start_node(follower);
    // Past every expiry on this machine's clock (the leader's), then one more
    // write: its stamp removes the expired keys on every node at its position.
    let last_expiry =
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_millis(400);
    let deadline = Instant::now() + WAIT_DEADLINE;
    while SystemTime::now().duration_since(UNIX_EPOCH).unwrap() <= last_expiry {
        assert!(Instant::now() < deadline, "the clock did not move");
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    client.set("after", "expiry").await.expect("SET after");
    let (_, digest) = wait_converged(&cluster).await;
    for id in 1..=3 {
        let addr = cluster.node(id).client_addr.clone();
        for i in 0..KEYS {
            let value = ClusterClient::local_get(&addr, format!("key:{i:04}"))
                .await
                .expect("GET");
            match ttl_ms(i) {
                Some(_) => assert_eq!(value, None, "node {id}: key {i} outlived its TTL"),
                None => assert_eq!(
                    value.as_deref(),
                    Some(format!("value-{i}").as_bytes()),
                    "node {id}: key {i}"
                ),
            }
        }
    }
    // Only plain keys are left, so the digest is that of plain pairs.
    let mut expected: Vec<(String, String)> = (0..KEYS)
        .filter(|i| ttl_ms(*i).is_none())
        .map(|i| (format!("key:{i:04}"), format!("value-{i}")))
        .collect();
    expected.push(("after".into(), "expiry".into()));
    let recomputed = raftkv::kv::hex(&raftkv::kv::digest_of(
        expected.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())),
    ));
    assert_eq!(digest, recomputed);
}
