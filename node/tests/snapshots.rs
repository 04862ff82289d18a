//! Real processes: a node restarts from the snapshot file it streamed
//! itself, and refuses to start when that file is corrupt and no older
//! state can replace it.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use raftkv_node::client::ClusterClient;
use raftkv_node::log_events::{LOG_COMPACTED, SNAPSHOT_RESTORED};

/// Keys written; with a threshold of 100 entries several own snapshots are
/// taken along the way.
const KEYS: u32 = 600;

fn snapshot_files(data_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("snapshot-") && name.ends_with(".snap"))
        })
        .collect()
}

/// A cluster whose follower holds an own snapshot file covering most of
/// `KEYS`; returns it with the follower's id, killed.
async fn cluster_with_a_stopped_snapshotted_follower() -> (Cluster, u64) {
    let mut cluster =
        Cluster::start_with(3, vec!["--snapshot-entries-threshold".into(), "100".into()]);
    let (leader, _) = wait_for_leader(&cluster).await;
    write_keys(&cluster, 1..=KEYS).await;
    wait_converged(&cluster).await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let log = cluster.log_path(follower);
    wait_for(&format!("node {follower} compacts its log"), || {
        let compacted = !log_events(&log, LOG_COMPACTED).is_empty();
        async move { compacted.then_some(()) }
    })
    .await;
    // A compaction still under way keeps the previous file until the new
    // one is complete: wait for it to finish (no write comes after, so no
    // compaction starts later).
    let data_dir = cluster.node(follower).data_dir.clone();
    wait_for("one snapshot file kept", || {
        let one = snapshot_files(&data_dir).len() == 1;
        async move { one.then_some(()) }
    })
    .await;
    cluster.kill(follower);
    (cluster, follower)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarts_from_its_own_streamed_snapshot() {
    let (mut cluster, follower) = cluster_with_a_stopped_snapshotted_follower().await;
    cluster.start_node(follower);
    let addr = cluster.node(follower).client_addr.clone();
    wait_for(&format!("node {follower} serves every key again"), || {
        let addr = addr.clone();
        async move {
            for i in [1, KEYS / 2, KEYS] {
                let value = ClusterClient::local_get(&addr, format!("key:{i:04}"))
                    .await
                    .ok()??;
                assert_eq!(value, format!("value-{i}").as_bytes(), "key:{i:04}");
            }
            Some(())
        }
    })
    .await;
    wait_converged(&cluster).await;
    let restored = log_events(&cluster.log_path(follower), SNAPSHOT_RESTORED);
    assert!(
        !restored.is_empty(),
        "node {follower} did not restore from its snapshot file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_snapshot_file_is_refused_with_its_name() {
    let (cluster, follower) = cluster_with_a_stopped_snapshotted_follower().await;
    let file = snapshot_files(&cluster.node(follower).data_dir)
        .pop()
        .unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&file, &bytes).unwrap();

    let stderr = cluster.refused_start_stderr(
        follower,
        &file,
        "its only snapshot is corrupt (its log is compacted)",
    );
    assert!(
        !stderr.contains("panicked"),
        "a clear error, not a panic: {stderr}"
    );
}
