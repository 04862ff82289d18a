//! Follower catch-up: kill -9 a follower, write entries while it is down,
//! restart it, and time from its process start until its applied index and
//! digest equal the leader's. A first round with nothing written while the
//! follower is down gives the pure restart cost to compare with.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::load::{self, ProgressStyle};
use super::local::LocalCluster;
use super::resp_target::RaftkvTarget;
use super::BenchArgs;
use crate::poll::{parse_event_line, FileTail};

/// The restarted follower's RAFT.STATUS is polled this often.
const CATCHUP_POLL_MS: u64 = 2;
/// One poll waits at most this long (a node still starting does not answer).
const CATCHUP_STATUS_DEADLINE_MS: u64 = 200;
/// The follower must converge within this after its restart.
const CATCHUP_TIMEOUT_MS: u64 = 60_000;

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

async fn run_round(
    cluster: &mut LocalCluster,
    args: &BenchArgs,
    entries: u64,
) -> Result<CatchupRound, String> {
    let before = cluster.wait_converged().await?;
    let leader = before.leader;
    let follower = cluster
        .ids()
        .into_iter()
        .find(|id| *id != leader)
        .ok_or("catch-up needs a follower, and the cluster has one node")?;
    cluster.kill(follower)?;
    cluster.wait_exited(follower).await?;

    let (written, write_ops_per_sec) = if entries > 0 {
        let target = Arc::new(RaftkvTarget::new(
            vec![cluster.client_addr(leader)],
            Duration::from_millis(args.request_timeout_ms),
        ));
        let progress = if args.json {
            ProgressStyle::Quiet
        } else {
            ProgressStyle::live("catch-up writes")
        };
        let result = load::run_load(
            target,
            args.load_spec(Some(entries), progress),
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
    let (first_answer_ms, converged_ms) =
        watch_catchup(cluster, follower, leader, spawned_at, leader_now.clone()).await?;
    let via_snapshot = tail.read_new_lines().iter().any(|line| {
        parse_event_line(follower, line, 0).event.as_deref() == Some("snapshot_installed")
    });
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
/// its spawn to its first answer and to convergence.
async fn watch_catchup(
    cluster: &mut LocalCluster,
    follower: u64,
    leader: u64,
    spawned_at: Instant,
    mut expected: (u64, String),
) -> Result<(f64, f64), String> {
    let deadline = spawned_at + Duration::from_millis(CATCHUP_TIMEOUT_MS);
    let mut first_answer_ms = None;
    let mut last_seen = String::from("no answer yet");
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
