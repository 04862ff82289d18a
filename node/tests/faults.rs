//! Bad input against real processes: torn and corrupt WALs, malformed RESP,
//! oversized requests, garbage on the peer port, a peer from another
//! cluster, and redis-cli following MOVED.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use raftkv_node::client::ClusterClient;
use raftkv_node::log_events::{PEER_REJECTED, RECOVERY};

fn wal_segments(data_dir: &Path) -> Vec<PathBuf> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(data_dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    segments.sort();
    segments
}

async fn write_n(cluster: &Cluster, prefix: &str, n: u32) {
    let mut client = cluster.client();
    for i in 0..n {
        client
            .set(format!("{prefix}{i}"), format!("v{i}"))
            .await
            .unwrap();
    }
}

/// A cluster of 3 that took `n` writes of `prefix`N = vN, with one follower
/// killed once it had them all; returns the cluster, the follower's id and
/// its newest WAL segment.
async fn cluster_with_a_stopped_follower(prefix: &str, n: u32) -> (Cluster, u64, PathBuf) {
    let mut cluster = Cluster::start(3);
    let (leader, _) = wait_for_leader(&cluster).await;
    write_n(&cluster, prefix, n).await;
    wait_converged(&cluster).await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    cluster.kill(follower);
    let segment = wal_segments(&cluster.node(follower).data_dir)
        .pop()
        .unwrap();
    (cluster, follower, segment)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_wal_tail_is_truncated_and_the_node_recovers() {
    let (mut cluster, victim, segment) = cluster_with_a_stopped_follower("t", 50).await;
    // A half-written record: a length and checksum promising more bytes than follow.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap();
    file.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, 9, 9, 9])
        .unwrap();
    drop(file);
    cluster.start_node(victim);
    wait_converged(&cluster).await;
    let recovery = log_events(&cluster.log_path(victim), RECOVERY);
    let last = recovery.last().expect("recovery event");
    assert!(
        last["fields"]["torn_tail_bytes"].as_u64().unwrap() > 0,
        "recovery: {last}"
    );
    assert_eq!(
        ClusterClient::local_get(&cluster.node(victim).client_addr, "t49")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"v49"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_record_mid_log_refuses_to_start_and_touches_nothing() {
    let (cluster, victim, segment) = cluster_with_a_stopped_follower("c", 200).await;
    let mut bytes = std::fs::read(&segment).unwrap();
    // The segment is preallocated: its records end where the zeros begin.
    let records_end = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    let middle = records_end / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&segment, &bytes).unwrap();

    let stderr = cluster.refused_start_stderr(victim, &segment, "a corrupt WAL");
    assert!(stderr.contains("corrupt"), "error says corrupt: {stderr}");
    assert!(
        stderr.contains("byte") || stderr.contains("offset"),
        "error gives the offset: {stderr}"
    );
    assert_eq!(
        std::fs::read(&segment).unwrap(),
        bytes,
        "the corrupt file must be left untouched"
    );
    // The rest of the cluster keeps serving.
    write_n(&cluster, "after", 5).await;
}

fn raw_exchange(addr: &str, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                reply.extend_from_slice(&buf[..n]);
                if reply.ends_with(b"\r\n") {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_requests_get_errors_and_the_node_keeps_serving() {
    let cluster = Cluster::start(3);
    let (leader, _) = wait_for_leader(&cluster).await;
    let addr = cluster.node(leader).client_addr.clone();
    let cases: [&[u8]; 5] = [
        b"*1\r\n$4\r\nPI",                // truncated, then closed below
        b"$999999999999\r\n",             // bulk beyond the limit
        b"*2000000\r\n",                  // too many arguments
        b"*1\r\n:x\r\n",                  // wrong type where a bulk belongs
        b"\x00\xff\xfe garbage \x01\r\n", // binary garbage
    ];
    for case in cases {
        let addr = addr.clone();
        let reply = tokio::task::spawn_blocking(move || {
            let mut stream = TcpStream::connect(&addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            stream.write_all(case).unwrap();
            let _ = stream.shutdown(std::net::Shutdown::Write);
            let mut reply = Vec::new();
            let _ = stream.read_to_end(&mut reply);
            reply
        })
        .await
        .unwrap();
        let text = String::from_utf8_lossy(&reply);
        assert!(
            reply.is_empty() || text.starts_with('-'),
            "case {case:?}: unexpected reply {text:?}"
        );
    }
    let addr2 = addr.clone();
    let unknown =
        tokio::task::spawn_blocking(move || raw_exchange(&addr2, b"*1\r\n$5\r\nNOSUCH\r\n"))
            .await
            .unwrap();
    assert!(
        String::from_utf8_lossy(&unknown).starts_with("-ERR"),
        "{unknown:?}"
    );
    let mut client = cluster.client();
    client.set("still", "serving").await.unwrap();
    assert_eq!(
        client.get("still").await.unwrap().as_deref(),
        Some(&b"serving"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_foreign_peers_are_refused_and_replication_continues() {
    let cluster = Cluster::start(3);
    wait_for_leader(&cluster).await;
    let peer_addr = cluster.node(2).peer_addr.clone();
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(&peer_addr).unwrap();
        let _ = stream.write_all(&[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 40, 1, 2, 3]);
        let _ = stream.write_all(&vec![0x5a; 100_000]);
    })
    .await
    .unwrap();
    // A well-formed node of another cluster: same ids and addresses, other cluster id.
    let mut foreign = cluster.command(1);
    let foreign_dir = cluster.dir.path().join("foreign");
    let foreign_client = format!("127.0.0.1:{}", free_port());
    let foreign_peer = format!("127.0.0.1:{}", free_port());
    foreign
        .args(["--cluster-id", "some-other-cluster", "--data-dir"])
        .arg(&foreign_dir)
        .args([
            "--client",
            &foreign_client,
            "--peer",
            &foreign_peer,
            "--log-dir",
        ])
        .arg(cluster.dir.path().join("foreign-logs"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut foreign_child = foreign.spawn().unwrap();
    write_n(&cluster, "p", 20).await;
    wait_converged(&cluster).await;
    let _ = foreign_child.kill();
    let _ = foreign_child.wait();
    let rejected: usize = (1..=3)
        .map(|id| log_events(&cluster.log_path(id), PEER_REJECTED).len())
        .sum();
    assert!(rejected > 0, "no node logged the foreign peer's rejection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_follows_moved_from_a_follower() {
    if std::process::Command::new("redis-cli")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("redis-cli is required for this test (Debian: redis-tools; .ci/run installs it)");
    }
    let cluster = Cluster::start(3);
    let (leader, _) = wait_for_leader(&cluster).await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let (host, port) = cluster
        .node(follower)
        .client_addr
        .split_once(':')
        .map(|(h, p)| (h.to_string(), p.to_string()))
        .unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .args(["-h", &host, "-p", &port, "-c"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(run(&["SET", "greeting", "hello"]), "OK");
    assert_eq!(run(&["GET", "greeting"]), "hello");
    let leader_addr = cluster.node(leader).client_addr.clone();
    assert_eq!(
        ClusterClient::local_get(&leader_addr, "greeting")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"hello"[..])
    );
}
