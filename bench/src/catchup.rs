//! Follower catch-up: kill -9 a follower, write entries while it is down,
//! restart it, and time from its process start until its applied index and
//! digest equal the leader's. A first round with nothing written while the
//! follower is down gives the pure restart cost to compare with.
//!
//! `--catchup-wiped KEYS`: the cluster is filled with KEYS distinct keys, a
//! follower is killed, its data dir deleted and the node started again; it
//! has nothing, so the leader must send it a snapshot of everything.

use std::sync::Arc;
use std::time::{Duration, Instant};

use raftkv_node::log_events;

use super::fill::FillReport;
use super::load;
use super::local::{Converged, LocalCluster};
use super::resp_target::RaftkvTarget;
use super::BenchArgs;
use crate::poll::{parse_event_line, FileTail};

/// The restarted follower's RAFT.STATUS is polled this often.
const CATCHUP_POLL_MS: u64 = 2;
/// One poll waits at most this long (a node still starting does not answer).
const CATCHUP_STATUS_DEADLINE_MS: u64 = 200;
/// The follower must converge within this after its restart.
const CATCHUP_TIMEOUT_MS: u64 = 60_000;
/// A wiped follower whose applied index has not moved for this long after
/// its first answer is stuck (the leader is not sending it anything).
const WIPED_STALL_MS: u64 = 15_000;

/// One restart of a follower that missed `entries` writes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct CatchupRound {
    pub(crate) follower: u64,
    pub(crate) leader: u64,
    /// Writes acknowledged while the follower was down.
    pub(crate) entries: u64,
    /// How many log entries the follower was behind when it restarted.
    pub(crate) behind_entries: u64,
    /// Process start to its first RAFT.STATUS answer.
    pub(crate) first_answer_ms: f64,
    /// Process start to applied index and digest equal to the leader's.
    pub(crate) converged_ms: f64,
    /// The follower logged snapshot_installed while catching up.
    pub(crate) via_snapshot: bool,
    /// Write rate while the follower was down (0 when nothing was written).
    pub(crate) write_ops_per_sec: f64,
}

/// A follower restarted with an empty data dir.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct WipedCatchupReport {
    pub(crate) fill: FillReport,
    pub(crate) follower: u64,
    pub(crate) leader: u64,
    /// The leader's applied index the follower had to reach.
    pub(crate) applied_index: u64,
    /// Its digest matched the leader's at that index (the round fails otherwise).
    pub(crate) digest_matches: bool,
    /// Keys the follower holds once converged (RAFT.STATUS `keys`).
    pub(crate) follower_keys: u64,
    /// Deleting its data dir (before the clock starts).
    pub(crate) wipe_ms: f64,
    /// Process start to its first RAFT.STATUS answer.
    pub(crate) first_answer_ms: f64,
    /// Process start to applied index and digest equal to the leader's.
    pub(crate) converged_ms: f64,
    /// The follower logged snapshot_installed.
    pub(crate) via_snapshot: bool,
    /// snapshot_sent lines to this follower in the leader's log, and their bytes.
    pub(crate) snapshots_sent: u64,
    pub(crate) snapshot_sent_bytes: u64,
    /// Size of the snapshot file in the follower's data dir once converged.
    pub(crate) snapshot_file_bytes: Option<u64>,
}

pub(crate) struct CatchupReport {
    /// Restart with nothing missed: the cost of starting a node.
    pub(crate) baseline: CatchupRound,
    pub(crate) round: CatchupRound,
}

pub(crate) async fn run(
    cluster: &mut LocalCluster,
    args: &BenchArgs,
    entries: u64,
) -> Result<CatchupReport, String> {
    let baseline = run_round(cluster, args, 0).await?;
    let round = run_round(cluster, args, entries).await?;
    Ok(CatchupReport { baseline, round })
}

/// A follower stopped and wiped before the fill (`--wiped-before-fill`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StoppedFollower {
    pub(crate) follower: u64,
}

/// kill -9 a follower of the converged cluster and wait for its exit;
/// returns the follower and the state the cluster had converged to.
async fn kill_a_follower(cluster: &mut LocalCluster) -> Result<(u64, Converged), String> {
    let before = cluster.wait_converged().await?;
    let follower = cluster
        .ids()
        .into_iter()
        .find(|id| *id != before.leader)
        .ok_or("catch-up needs a follower, and the cluster has one node")?;
    cluster.kill(follower)?;
    cluster.wait_exited(follower).await?;
    Ok((follower, before))
}

/// Whether the lines `follower` logged since `tail` was last read say it
/// installed a snapshot.
fn installed_snapshot(tail: &mut FileTail, follower: u64) -> bool {
    tail.read_new_lines().iter().any(|line| {
        parse_event_line(follower, line, 0).event.as_deref() == Some(log_events::SNAPSHOT_INSTALLED)
    })
}

/// `--wiped-before-fill`: kill -9 a follower and delete its data dir before
/// the cluster is filled.
pub(crate) async fn stop_and_wipe_follower(
    cluster: &mut LocalCluster,
) -> Result<StoppedFollower, String> {
    let (follower, _) = kill_a_follower(cluster).await?;
    cluster.wipe(follower)?;
    Ok(StoppedFollower { follower })
}

/// `--catchup-wiped`: the cluster already holds the `fill` (`leader` led
/// it). Unless `stopped` says a follower was stopped before the fill, kill -9
/// a follower now; delete its data dir, start it and time its convergence.
pub(crate) async fn run_wiped(
    cluster: &mut LocalCluster,
    fill: FillReport,
    leader: u64,
    stopped: Option<StoppedFollower>,
) -> Result<WipedCatchupReport, String> {
    let (follower, leader) = match stopped {
        Some(stopped) => (stopped.follower, leader),
        None => {
            let (follower, before) = kill_a_follower(cluster).await?;
            (follower, before.leader)
        }
    };
    let leader_now = leader_settled(cluster, leader).await?;
    let wipe_started = Instant::now();
    cluster.wipe(follower)?;
    let wipe_ms = wipe_started.elapsed().as_secs_f64() * 1000.0;

    let mut follower_tail = FileTail::from_end(cluster.node_log_path(follower));
    let mut leader_tail = FileTail::from_end(cluster.node_log_path(leader));
    let spawned_at = cluster.restart(follower)?;
    let stall = Duration::from_millis(WIPED_STALL_MS);
    let (first_answer_ms, converged_ms) = watch_catchup(
        cluster,
        follower,
        leader,
        spawned_at,
        leader_now,
        Some(stall),
    )
    .await
    .map_err(|error| {
        if error.contains("applied index 0 ") {
            format!(
                "{error}. The leader sent the wiped node nothing: it still counts the entries \
                 that node acknowledged before it lost its data (its match index) and does not \
                 resend them; it sends a snapshot only once its own log starts after that index \
                 (after a compaction). With --wiped-before-fill the node acknowledged almost \
                 nothing, and a fill of more keys than the nodes' --snapshot-entries-threshold \
                 makes the leader compact past it"
            )
        } else {
            error
        }
    })?;
    let status = cluster.status(follower).await?;
    let via_snapshot = installed_snapshot(&mut follower_tail, follower);
    let (snapshots_sent, snapshot_sent_bytes) =
        snapshots_sent_to(&leader_tail.read_new_lines(), leader, follower);
    let snapshot_file_bytes = newest_snapshot_bytes(&cluster.node_data_dir(follower));
    cluster.wait_converged().await?;
    Ok(WipedCatchupReport {
        fill,
        follower,
        leader,
        applied_index: status.applied_index,
        digest_matches: true,
        follower_keys: status.keys,
        wipe_ms,
        first_answer_ms,
        converged_ms,
        via_snapshot,
        snapshots_sent,
        snapshot_sent_bytes,
        snapshot_file_bytes,
    })
}

/// (count, total bytes) of the `snapshot_sent` lines to `to` in these lines
/// of `leader`'s log.
fn snapshots_sent_to(lines: &[String], leader: u64, to: u64) -> (u64, u64) {
    lines
        .iter()
        .map(|line| parse_event_line(leader, line, 0))
        .filter(|line| {
            line.event.as_deref() == Some(log_events::SNAPSHOT_SENT)
                && line.field_u64("to") == Some(to)
        })
        .fold((0, 0), |(count, bytes), line| {
            (count + 1, bytes + line.field_u64("bytes").unwrap_or(0))
        })
}

/// The size of the newest `snapshot-<index>-<term>.snap` in a node's data dir.
fn newest_snapshot_bytes(dir: &std::path::Path) -> Option<u64> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let index: u64 = name
                .strip_prefix("snapshot-")?
                .strip_suffix(".snap")?
                .split('-')
                .next()?
                .parse()
                .ok()?;
            Some((index, entry.metadata().ok()?.len()))
        })
        .max_by_key(|(index, _)| *index)
        .map(|(_, bytes)| bytes)
}

async fn run_round(
    cluster: &mut LocalCluster,
    args: &BenchArgs,
    entries: u64,
) -> Result<CatchupRound, String> {
    let (follower, before) = kill_a_follower(cluster).await?;
    let leader = before.leader;

    let (written, write_ops_per_sec) = if entries > 0 {
        let target = Arc::new(RaftkvTarget::new(
            vec![cluster.client_addr(leader)],
            Duration::from_millis(args.request_timeout_ms),
        ));
        let result = load::run_load(
            target,
            args.load_spec(Some(entries), args.progress("catch-up writes")),
            Arc::new(args.workload(0.0)),
        )
        .await?;
        (result.tally.ok_ops(), result.ops_per_sec())
    } else {
        (0, 0.0)
    };
    let leader_now = leader_settled(cluster, leader).await?;

    let mut tail = FileTail::from_end(cluster.node_log_path(follower));
    let spawned_at = cluster.restart(follower)?;
    let (first_answer_ms, converged_ms) = watch_catchup(
        cluster,
        follower,
        leader,
        spawned_at,
        leader_now.clone(),
        None,
    )
    .await?;
    let via_snapshot = installed_snapshot(&mut tail, follower);
    cluster.wait_converged().await?;
    Ok(CatchupRound {
        follower,
        leader,
        entries: written,
        behind_entries: leader_now.0.saturating_sub(before.applied_index),
        first_answer_ms,
        converged_ms,
        via_snapshot,
        write_ops_per_sec,
    })
}

/// The leader's (applied index, digest) once it has applied all it committed.
async fn leader_settled(cluster: &mut LocalCluster, leader: u64) -> Result<(u64, String), String> {
    let deadline = Instant::now() + Duration::from_millis(CATCHUP_TIMEOUT_MS);
    loop {
        cluster.check_exits()?;
        let status = cluster.status(leader).await?;
        if !status.is_leader() {
            return Err(format!(
                "node {leader} lost its leadership during the catch-up writes (now {}); try again",
                status.role.name()
            ));
        }
        if status.applied_index == status.commit_index {
            return Ok((status.applied_index, status.digest));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "leader {leader} did not apply its committed entries in time"
            ));
        }
        tokio::time::sleep(Duration::from_millis(CATCHUP_POLL_MS)).await;
    }
}

/// Polls the restarted follower until it matches the leader; returns ms from
/// its spawn to its first answer and to convergence. With `stall`, gives up
/// early when its applied index has not moved for that long since its
/// first answer.
async fn watch_catchup(
    cluster: &mut LocalCluster,
    follower: u64,
    leader: u64,
    spawned_at: Instant,
    mut expected: (u64, String),
    stall: Option<Duration>,
) -> Result<(f64, f64), String> {
    let deadline = spawned_at + Duration::from_millis(CATCHUP_TIMEOUT_MS);
    let mut first_answer_ms = None;
    let mut last_seen = String::from("no answer yet");
    // (applied index, when it was first seen at that value)
    let mut progress: Option<(u64, Instant)> = None;
    loop {
        cluster.check_exits()?;
        let poll = tokio::time::timeout(
            Duration::from_millis(CATCHUP_STATUS_DEADLINE_MS),
            cluster.status(follower),
        )
        .await;
        let answered_ms = spawned_at.elapsed().as_secs_f64() * 1000.0;
        if let Ok(Ok(status)) = poll {
            first_answer_ms.get_or_insert(answered_ms);
            if status.applied_index > expected.0 {
                // Something committed after the writes (a new term's no-op): compare with the leader now.
                let now = leader_settled(cluster, leader).await?;
                expected = now;
            }
            if status.applied_index == expected.0 && status.digest == expected.1 {
                return Ok((first_answer_ms.unwrap_or(answered_ms), answered_ms));
            }
            last_seen = if status.applied_index == expected.0 {
                format!(
                    "applied index {} equals the leader's but the digest differs",
                    status.applied_index
                )
            } else {
                format!("applied index {} of {}", status.applied_index, expected.0)
            };
            match progress {
                Some((applied, _)) if applied == status.applied_index => {}
                _ => progress = Some((status.applied_index, Instant::now())),
            }
            if let (Some(stall), Some((_, since))) = (stall, progress) {
                if since.elapsed() >= stall {
                    return Err(format!(
                        "node {follower} made no progress for {} s after its restart ({last_seen} \
                         for {:.1} s)",
                        stall.as_secs(),
                        since.elapsed().as_secs_f64()
                    ));
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "node {follower} did not catch up within {} s of its restart ({last_seen})",
                CATCHUP_TIMEOUT_MS / 1000
            ));
        }
        tokio::time::sleep(Duration::from_millis(CATCHUP_POLL_MS)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_sent_lines_are_counted_for_the_follower_only() {
        let lines = [
            r#"{"timestamp":"2026-11-28T07:00:00.000Z","level":"INFO","fields":{"event":"snapshot_sent","to":2,"index":10,"term":1,"bytes":1500}}"#,
            r#"{"timestamp":"2026-11-28T07:00:00.001Z","level":"INFO","fields":{"event":"snapshot_sent","to":3,"index":10,"term":1,"bytes":99}}"#,
            r#"{"timestamp":"2026-11-28T07:00:00.002Z","level":"INFO","fields":{"event":"snapshot_sent","to":2,"index":12,"term":1,"bytes":500}}"#,
            "not json",
        ]
        .map(String::from);
        assert_eq!(snapshots_sent_to(&lines, 1, 2), (2, 2000));
        assert_eq!(snapshots_sent_to(&lines, 1, 4), (0, 0));
    }

    #[test]
    fn the_newest_snapshot_file_is_measured() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(newest_snapshot_bytes(dir.path()), None);
        std::fs::write(dir.path().join("snapshot-9-1.snap"), [0u8; 3]).unwrap();
        std::fs::write(dir.path().join("snapshot-12-2.snap"), [0u8; 7]).unwrap();
        std::fs::write(dir.path().join("snapshot-13-2.snap.tmp"), [0u8; 1]).unwrap();
        assert_eq!(newest_snapshot_bytes(dir.path()), Some(7));
        assert_eq!(newest_snapshot_bytes(&dir.path().join("missing")), None);
    }
}
