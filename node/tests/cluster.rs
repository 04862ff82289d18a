//! Real processes: the failover gate path, repeated kill -9 under writes,
//! catch-up of a wiped node through InstallSnapshot, and a wiped voter that
//! must not be counted as its old self.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use raftkv_node::client::{ClusterClient, Connection};
use raftkv_node::log_events::{
    AWAITING_READMISSION, LEADER_LOST, MEMBER_READMITTED, PEER_INCARNATION_CHANGED,
    SNAPSHOT_INSTALLED, SNAPSHOT_SENT,
};
use raftkv_node::resp::Frame;

/// Every key in `range` reads back with its value from `id`'s own state.
async fn assert_keys_on(cluster: &Cluster, id: u64, range: std::ops::RangeInclusive<u32>) {
    let addr = cluster.node(id).client_addr.clone();
    wait_for(&format!("keys {range:?} on node {id}"), || {
        let addr = addr.clone();
        let range = range.clone();
        async move {
            for i in range {
                let value = ClusterClient::local_get(&addr, format!("key:{i:04}"))
                    .await
                    .ok()??;
                if value != format!("value-{i}").as_bytes() {
                    panic!("node {id}: key:{i:04} = {value:?}, expected value-{i}");
                }
            }
            Some(())
        }
    })
    .await
}

/// Idle time a follower waits through before its leader contact is checked.
const IDLE_MS: u64 = 1_500;
/// Longest leader contact a follower of a healthy, idle cluster may report:
/// heartbeats come every 30 ms, and 300 ms of silence would start an election.
const IDLE_CONTACT_MS_MAX: u64 = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_of_an_idle_cluster_report_recent_leader_contact() {
    let cluster = Cluster::start(3);
    let (leader, term) = wait_for_leader(&cluster).await;
    // Nothing is written: only heartbeats reach the followers from now on.
    let idle = wait_for(&format!("{IDLE_MS} ms of uptime on every node"), || async {
        let all = statuses(&cluster).await;
        (all.len() == 3 && all.values().all(|s| field(s, "uptime_ms") >= IDLE_MS)).then_some(all)
    })
    .await;
    for (id, status) in idle.iter().filter(|(id, _)| **id != leader) {
        assert_eq!(
            field(status, "term"),
            term,
            "node {id}: an election happened"
        );
        let contact_ms = field(status, "leader_contact_ms");
        assert!(
            contact_ms <= IDLE_CONTACT_MS_MAX,
            "node {id}: leader_contact_ms {contact_ms} on a healthy idle cluster"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_path_survives_leader_failure() {
    let mut cluster = Cluster::start(3);
    let (old_leader, old_term) = wait_for_leader(&cluster).await;

    write_keys(&cluster, 1..=50).await;
    for id in 1..=3 {
        assert_keys_on(&cluster, id, 1..=50).await;
    }
    let (applied_1, digest_1) = wait_converged(&cluster).await;
    assert!(applied_1 >= 50);

    let old_leader_addr = cluster.node(old_leader).client_addr.clone();
    cluster.kill(old_leader);
    let followers: Vec<u64> = cluster.live_ids();
    for id in &followers {
        let path = cluster.log_path(*id);
        wait_for(&format!("node {id} to log leader_lost"), || {
            let path = path.clone();
            async move { (!log_events(&path, LEADER_LOST).is_empty()).then_some(()) }
        })
        .await;
        // Once a follower saw the leader's link break, it never sends a
        // client to the dead leader again (CLUSTERDOWN until a new one).
        let mut connection = Connection::connect(&cluster.node(*id).client_addr, WAIT_DEADLINE)
            .await
            .expect("connect to a follower");
        let reply = connection
            .request(&[b"SET", b"probe", b"1"])
            .await
            .expect("a reply");
        assert!(
            !matches!(&reply, Frame::Error(m) if m.starts_with("MOVED") && m.ends_with(&old_leader_addr)),
            "node {id} redirected to the dead leader after leader_lost: {reply:?}"
        );
    }
    let (new_leader, new_term) = wait_for_leader(&cluster).await;
    assert_ne!(new_leader, old_leader);
    // Cluster clients are sent to the new leader, and never to the dead node.
    let new_leader_addr = cluster.node(new_leader).client_addr.clone();
    for id in &followers {
        let addr = cluster.node(*id).client_addr.clone();
        let (old, new) = (old_leader_addr.clone(), new_leader_addr.clone());
        wait_for(
            &format!("node {id}: CLUSTER SLOTS without the dead node"),
            || {
                let (addr, old, new) = (addr.clone(), old.clone(), new.clone());
                async move {
                    let mut connection = Connection::connect(&addr, WAIT_DEADLINE).await.ok()?;
                    let slots = connection.request(&[b"CLUSTER", b"SLOTS"]).await.ok()?;
                    let text = format!("{slots:?}");
                    let master_port = new.rsplit_once(':')?.1;
                    let dead_port = old.rsplit_once(':')?.1;
                    let master_first = matches!(&slots, Frame::Array(shards)
                    if matches!(shards.first(), Some(Frame::Array(shard))
                        if matches!(shard.get(2), Some(Frame::Array(node))
                            if node.get(1) == Some(&Frame::Integer(master_port.parse().ok()?)))));
                    (master_first && !text.contains(&format!("Integer({dead_port})"))).then_some(())
                }
            },
        )
        .await;
    }
    assert!(
        new_term > old_term,
        "new term {new_term} must exceed {old_term}"
    );

    write_keys(&cluster, 51..=100).await;
    for id in &followers {
        assert_keys_on(&cluster, *id, 1..=100).await;
    }
    let (applied_2, digest_2) = wait_converged(&cluster).await;
    assert!(applied_2 > applied_1);
    assert_ne!(digest_2, digest_1);

    cluster.start_node(old_leader);
    for id in 1..=3 {
        assert_keys_on(&cluster, id, 1..=100).await;
    }
    let (applied_3, digest_3) = wait_converged(&cluster).await;
    assert!(applied_3 >= applied_2);
    assert_eq!(
        digest_3, digest_2,
        "no writes happened between checkpoints 2 and 3"
    );
    // The digest of key:0001..key:0100 = value-1..value-100 from DESIGN.md.
    assert_eq!(
        digest_3,
        "f9de357db9c61f71fae95744165a192bd493832bd09207da42c26293f1c136b4"
    );
}

/// Number of kill/restart rounds under continuous writes.
const KILL_ROUNDS: u32 = 20;
/// Writes each kill round waits to see acknowledged before the next kill, so
/// every round happens under writes however fast nodes restart.
const WRITES_PER_ROUND_MIN: u64 = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_twenty_times_under_writes_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start(3);
    wait_for_leader(&cluster).await;

    let stop = tokio_util::sync::CancellationToken::new();
    let acknowledged_count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let writer = {
        let addrs = cluster.client_addrs();
        let stop = stop.clone();
        let acknowledged_count = acknowledged_count.clone();
        tokio::spawn(async move {
            let mut client = ClusterClient::new(addrs, Duration::from_secs(5));
            let mut acknowledged = BTreeMap::new();
            let mut i = 0u64;
            while !stop.is_cancelled() {
                i += 1;
                let (key, value) = (format!("w{i}"), format!("v{i}"));
                if client.set(&key, &value).await.is_ok() {
                    acknowledged.insert(key, value);
                    acknowledged_count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            acknowledged
        })
    };

    let mut rng_state = 0x5eed_u64;
    for round in 0..KILL_ROUNDS {
        rng_state = rng_state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let victim = 1 + (rng_state >> 33) % 3;
        let before = acknowledged_count.load(std::sync::atomic::Ordering::Relaxed);
        wait_for(
            &format!(
                "round {round}: {WRITES_PER_ROUND_MIN} writes acknowledged since the last kill"
            ),
            || {
                let count = acknowledged_count.load(std::sync::atomic::Ordering::Relaxed);
                async move { (count >= before + WRITES_PER_ROUND_MIN).then_some(()) }
            },
        )
        .await;
        cluster.kill(victim);
        wait_for_leader(&cluster).await;
        cluster.start_node(victim);
        wait_for(
            &format!("round {round}: node {victim} answers again"),
            || {
                let addr = cluster.node(victim).client_addr.clone();
                async move { ClusterClient::status(&addr).await.ok().map(|_| ()) }
            },
        )
        .await;
    }
    stop.cancel();
    let acknowledged = writer.await.unwrap();
    assert!(
        acknowledged.len() as u64 >= u64::from(KILL_ROUNDS) * WRITES_PER_ROUND_MIN,
        "only {} writes were acknowledged",
        acknowledged.len()
    );

    wait_for_leader(&cluster).await;
    let (_, digest) = wait_converged(&cluster).await;
    for id in 1..=3 {
        let dump: BTreeMap<_, _> = ClusterClient::dump(&cluster.node(id).client_addr)
            .await
            .unwrap()
            .into_iter()
            .map(|(k, v)| {
                (
                    String::from_utf8(k.to_vec()).unwrap(),
                    String::from_utf8(v.to_vec()).unwrap(),
                )
            })
            .collect();
        for (key, value) in &acknowledged {
            assert_eq!(
                dump.get(key),
                Some(value),
                "node {id} lost acknowledged write {key}"
            );
        }
        let recomputed = raftkv::kv::hex(&raftkv::kv::digest_of(
            dump.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())),
        ));
        assert_eq!(
            recomputed, digest,
            "node {id}: digest does not match a full recomputation"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wiped_node_catches_up_through_install_snapshot() {
    let mut cluster =
        Cluster::start_with(3, vec!["--snapshot-entries-threshold".into(), "100".into()]);
    let (leader, _) = wait_for_leader(&cluster).await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    cluster.kill(follower);
    std::fs::remove_dir_all(&cluster.node(follower).data_dir).unwrap();
    write_keys(&cluster, 1..=300).await;
    cluster.start_node(follower);
    assert_keys_on(&cluster, follower, 1..=300).await;
    wait_converged(&cluster).await;
    let installed = log_events(&cluster.log_path(follower), SNAPSHOT_INSTALLED);
    assert!(
        !installed.is_empty(),
        "node {follower} caught up without installing a snapshot"
    );
    let sent = log_events(&cluster.log_path(leader), SNAPSHOT_SENT);
    assert!(!sent.is_empty(), "leader {leader} logged no snapshot_sent");

    // Wiped again, now that the leader counts it as holding everything and
    // nothing more is written: the leader must notice on reconnect that it
    // lost what it acknowledged (its rejections alone look stale).
    let (leader, _) = wait_for_leader(&cluster).await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    cluster.kill(follower);
    std::fs::remove_dir_all(&cluster.node(follower).data_dir).unwrap();
    cluster.start_node(follower);
    assert_keys_on(&cluster, follower, 1..=300).await;
    wait_converged(&cluster).await;
}

/// How long nodes F and G are watched, with L down, for a leader they
/// must not elect: many election timeouts (150-300 ms each).
const NO_QUORUM_WATCH_MS: u64 = 3_000;

/// Issue #10's sequence with bare processes: G stopped, 50 writes through
/// L (acknowledged by L and F), L killed, F wiped and restarted under its
/// old id, G restarted. F is a new incarnation: F and G must not form a
/// quorum, and once L is back nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_voter_is_not_counted_and_the_sequence_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start(3);
    let (leader, _) = wait_for_leader(&cluster).await;
    wait_for("every node registered", || async {
        let all = statuses(&cluster).await;
        (all.len() == 3 && all.values().all(|s| field(s, "registered") == 1)).then_some(())
    })
    .await;
    let mut others = (1..=3).filter(|id| *id != leader);
    let (f, g) = (others.next().unwrap(), others.next().unwrap());
    let f_incarnation = statuses(&cluster).await[&f]["incarnation"].clone();

    cluster.kill(g);
    write_keys(&cluster, 1..=50).await;
    cluster.kill(leader);
    cluster.kill(f);
    std::fs::remove_dir_all(&cluster.node(f).data_dir).unwrap();
    cluster.start_node(f);
    cluster.start_node(g);

    let watch_until = std::time::Instant::now() + Duration::from_millis(NO_QUORUM_WATCH_MS);
    let mut seen_f_unregistered = false;
    while std::time::Instant::now() < watch_until {
        for (id, status) in statuses(&cluster).await {
            assert_ne!(
                status["role"], "leader",
                "node {id} became leader while L was down: F (wiped) and G formed a quorum"
            );
            if id == f {
                assert_ne!(
                    status["incarnation"], f_incarnation,
                    "F kept its incarnation"
                );
                seen_f_unregistered |= field(&status, "registered") == 0;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen_f_unregistered, "node {f} never reported registered=0");
    let changed = log_events(&cluster.log_path(g), PEER_INCARNATION_CHANGED);
    assert!(
        changed.iter().any(|e| e["fields"]["peer"] == f),
        "node {g} did not log that node {f} came back with an empty disk"
    );

    cluster.start_node(leader);
    wait_for_leader(&cluster).await;
    wait_for("every node registered again", || async {
        let all = statuses(&cluster).await;
        (all.len() == 3 && all.values().all(|s| field(s, "registered") == 1)).then_some(())
    })
    .await;
    for id in 1..=3 {
        assert_keys_on(&cluster, id, 1..=50).await;
    }
    wait_converged(&cluster).await;
    let readmitted: Vec<_> = (1..=3)
        .flat_map(|id| log_events(&cluster.log_path(id), MEMBER_READMITTED))
        .collect();
    assert!(
        readmitted.iter().any(|e| e["fields"]["peer"] == f),
        "no node logged node {f}'s re-admission"
    );
    assert!(
        !log_events(&cluster.log_path(f), AWAITING_READMISSION).is_empty(),
        "node {f} did not log that it waits to be re-admitted"
    );
}
