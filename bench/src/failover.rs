//! Leader failover trials: under a steady write load, kill -9 the leader and
//! time the first write a surviving node acknowledges, split into detection
//! (a survivor logs leader_lost or election_timeout), election (a survivor
//! becomes leader) and the rest (clients finding it, the write committing).
//! The killed node is restarted and the cluster converges between trials.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use raftkv_node::log_events;

use super::load::{self, AckWatch, LoadSpec, ProgressStyle};
use super::local::LocalCluster;
use super::resp_target::RaftkvTarget;
use super::BenchArgs;
use crate::clock;
use crate::poll::{parse_event_line, FileTail};

/// Writes acknowledged before the kill, so the load is known to be running.
const WARMUP_ACKS_MIN: u64 = 50;
/// The warm-up must reach `WARMUP_ACKS_MIN` within this.
const WARMUP_TIMEOUT_MS: u64 = 10_000;
/// A trial fails when no write is acknowledged this long after the kill.
const FIRST_WRITE_TIMEOUT_MS: u64 = 30_000;
/// Survivors' logs and statuses are checked this often during a trial.
const OBSERVE_INTERVAL_MS: u64 = 5;
/// Log lines are written by a background thread in each node; after the
/// first write, wait at most this long for the detection and election lines.
const LOG_LINES_GRACE_MS: u64 = 1_000;
/// RAFT.STATUS requests during a trial wait at most this long.
const TRIAL_STATUS_DEADLINE_MS: u64 = 100;

/// Events that show a follower noticed its leader was gone.
const DETECTION_EVENTS: [&str; 2] = [log_events::LEADER_LOST, log_events::ELECTION_TIMEOUT];

/// One trial, all times in ms after the kill.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FailoverTrial {
    pub(crate) trial: u32,
    pub(crate) killed: u64,
    pub(crate) old_term: u64,
    pub(crate) new_leader: Option<u64>,
    pub(crate) new_term: Option<u64>,
    /// First leader_lost/election_timeout line of a survivor.
    pub(crate) detection_ms: Option<u64>,
    pub(crate) detection_event: Option<String>,
    /// A survivor became leader (its became_leader line, or RAFT.STATUS if seen first).
    pub(crate) leader_ms: Option<u64>,
    /// First write acknowledged by a surviving node (microsecond precision).
    pub(crate) first_write_ms: f64,
    /// Writes that failed during the trial (MOVED, CLUSTERDOWN, connection lost...).
    pub(crate) failed_writes: u64,
}

impl FailoverTrial {
    /// Detection to new leader.
    pub(crate) fn election_ms(&self) -> Option<u64> {
        Some(self.leader_ms?.saturating_sub(self.detection_ms?))
    }

    /// New leader to first acknowledged write.
    pub(crate) fn after_election_ms(&self) -> Option<f64> {
        Some((self.first_write_ms - self.leader_ms? as f64).max(0.0))
    }
}

/// What the observer has seen since the kill.
#[derive(Debug, Default)]
struct Observations {
    detection: Option<(u64, String)>,
    /// (epoch ms, node id, term) of the first became_leader line.
    leader_line: Option<(u64, u64, u64)>,
    /// (epoch ms, node id, term) when RAFT.STATUS first showed a new leader.
    leader_status: Option<(u64, u64, u64)>,
}

impl Observations {
    /// Takes in one line of survivor `id`'s event log.
    fn observe_line(&mut self, id: u64, line: &str, kill_epoch_ms: u64) {
        let parsed = parse_event_line(id, line, clock::now_ms());
        let Some(event) = parsed.event.as_deref() else {
            return;
        };
        if parsed.at_ms < kill_epoch_ms {
            return;
        }
        if DETECTION_EVENTS.contains(&event)
            && self
                .detection
                .as_ref()
                .is_none_or(|(at, _)| parsed.at_ms < *at)
        {
            self.detection = Some((parsed.at_ms, format!("{event} on node {id}")));
        }
        if event == log_events::BECAME_LEADER && self.leader_line.is_none() {
            self.leader_line = Some((parsed.at_ms, id, parsed.field_u64("term").unwrap_or(0)));
        }
    }

    fn leader_seen(&self) -> Option<(u64, u64, u64)> {
        match (self.leader_line, self.leader_status) {
            (Some(line), Some(status)) => Some(if status.0 < line.0 { status } else { line }),
            (line, status) => line.or(status),
        }
    }
}

pub(crate) struct FailoverReport {
    pub(crate) trials: Vec<FailoverTrial>,
    pub(crate) clients: usize,
}

pub(crate) async fn run_trials(
    cluster: &mut LocalCluster,
    args: &BenchArgs,
    trials: u32,
) -> Result<FailoverReport, String> {
    let mut done = Vec::new();
    for trial in 1..=trials {
        let result = run_trial(cluster, args, trial).await?;
        if !args.json {
            eprintln!("{}", super::report::failover_trial_line(&result));
        }
        done.push(result);
    }
    Ok(FailoverReport {
        trials: done,
        clients: args.failover_clients,
    })
}

async fn run_trial(
    cluster: &mut LocalCluster,
    args: &BenchArgs,
    trial: u32,
) -> Result<FailoverTrial, String> {
    let before = cluster.wait_converged().await?;
    let killed = before.leader;
    let watch = Arc::new(AckWatch::new());
    let target = Arc::new(RaftkvTarget::new(
        cluster.client_addrs(),
        Duration::from_millis(args.request_timeout_ms),
    ));
    let spec = LoadSpec {
        clients: args.failover_clients,
        pipeline: 1,
        ops: None,
        progress: ProgressStyle::Quiet,
        ..args.load_spec(None, ProgressStyle::Quiet)
    };
    let running = load::start_load(
        target,
        spec,
        Arc::new(args.workload(0.0)),
        Some(watch.clone()),
    )
    .await;
    let measured = measure_kill(cluster, &running, &watch, killed, trial).await;
    running.stop();
    let load_result = running.finish().await;
    let (observations, first_write_ms, kill_epoch_ms) = measured?;
    let failed_writes = load_result.map(|r| r.tally.failed_ops())?;
    cluster.restart(killed)?;
    cluster.wait_converged().await?;
    let since_kill = |epoch_ms: u64| epoch_ms.saturating_sub(kill_epoch_ms);
    let leader = observations.leader_seen();
    Ok(FailoverTrial {
        trial,
        killed,
        old_term: before.term,
        new_leader: leader.map(|(_, id, _)| id),
        new_term: leader.map(|(_, _, term)| term).filter(|term| *term > 0),
        detection_ms: observations
            .detection
            .as_ref()
            .map(|(at, _)| since_kill(*at)),
        detection_event: observations.detection.map(|(_, event)| event),
        leader_ms: leader.map(|(at, _, _)| since_kill(at)),
        first_write_ms,
        failed_writes,
    })
}

/// Warms up, kills the leader, and watches until a survivor acknowledges a
/// write. Returns what was seen, ms to the first write, and the kill's epoch ms.
async fn measure_kill(
    cluster: &mut LocalCluster,
    running: &load::RunningLoad,
    watch: &AckWatch,
    killed: u64,
    trial: u32,
) -> Result<(Observations, f64, u64), String> {
    let warmup_deadline = Instant::now() + Duration::from_millis(WARMUP_TIMEOUT_MS);
    while running.counters().ok.load(Ordering::Relaxed) < WARMUP_ACKS_MIN {
        cluster.check_exits()?;
        if Instant::now() >= warmup_deadline {
            return Err(format!(
                "failover trial {trial}: the write load got fewer than {WARMUP_ACKS_MIN} acknowledgements in {} s \
                 before the kill; last error: {}",
                WARMUP_TIMEOUT_MS / 1000,
                running.counters().last_error().unwrap_or_else(|| "none".into())
            ));
        }
        tokio::time::sleep(Duration::from_millis(OBSERVE_INTERVAL_MS)).await;
    }
    let survivors: Vec<u64> = cluster
        .ids()
        .into_iter()
        .filter(|id| *id != killed)
        .collect();
    let mut tails: Vec<(u64, FileTail)> = survivors
        .iter()
        .map(|id| (*id, FileTail::from_end(cluster.node_log_path(*id))))
        .collect();
    let kill_at = Instant::now();
    let kill_epoch_ms = clock::now_ms();
    watch.arm(kill_at, cluster.client_addr(killed));
    cluster.kill(killed)?;
    let mut seen = Observations::default();
    let deadline = kill_at + Duration::from_millis(FIRST_WRITE_TIMEOUT_MS);
    let first_write = loop {
        cluster.check_exits()?;
        read_logs(&mut tails, &mut seen, kill_epoch_ms);
        if seen.leader_status.is_none() {
            for id in &survivors {
                let status = cluster.status(*id);
                let Ok(Ok(status)) =
                    tokio::time::timeout(Duration::from_millis(TRIAL_STATUS_DEADLINE_MS), status)
                        .await
                else {
                    continue;
                };
                if status.is_leader() {
                    seen.leader_status = Some((clock::now_ms(), status.id, status.term));
                    break;
                }
            }
        }
        if let Some(at) = watch.first_ack() {
            break at;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "failover trial {trial}: no write was acknowledged within {} s of killing node {killed}; \
                 last error: {}",
                FIRST_WRITE_TIMEOUT_MS / 1000,
                running.counters().last_error().unwrap_or_else(|| "none".into())
            ));
        }
        tokio::time::sleep(Duration::from_millis(OBSERVE_INTERVAL_MS)).await;
    };
    let first_write_ms = first_write.duration_since(kill_at).as_secs_f64() * 1000.0;
    let grace_deadline = Instant::now() + Duration::from_millis(LOG_LINES_GRACE_MS);
    while (seen.detection.is_none() || seen.leader_line.is_none())
        && Instant::now() < grace_deadline
    {
        tokio::time::sleep(Duration::from_millis(OBSERVE_INTERVAL_MS)).await;
        read_logs(&mut tails, &mut seen, kill_epoch_ms);
    }
    Ok((seen, first_write_ms, kill_epoch_ms))
}

fn read_logs(tails: &mut [(u64, FileTail)], seen: &mut Observations, kill_epoch_ms: u64) {
    for (id, tail) in tails.iter_mut() {
        for line in tail.read_new_lines() {
            seen.observe_line(*id, &line, kill_epoch_ms);
        }
    }
}

/// min, median, max of some numbers (the median of an even count is the
/// mean of the middle two).
pub(crate) fn min_median_max(values: &[f64]) -> Option<(f64, f64, f64)> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    let median = if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    };
    Some((sorted[0], median, sorted[sorted.len() - 1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(timestamp: &str, event: &str, extra: &str) -> String {
        format!(
            r#"{{"timestamp":"{timestamp}","level":"INFO","fields":{{"event":"{event}"{extra}}}}}"#
        )
    }

    #[test]
    fn detection_and_election_come_from_survivor_log_lines_after_the_kill() {
        let kill_ms = clock::parse_rfc3339_ms("2024-05-01T10:00:00.100Z").unwrap();
        let mut seen = Observations::default();
        // Before the kill: ignored.
        seen.observe_line(
            2,
            &line("2024-05-01T10:00:00.050Z", log_events::LEADER_LOST, ""),
            kill_ms,
        );
        assert!(seen.detection.is_none());
        seen.observe_line(
            3,
            &line(
                "2024-05-01T10:00:00.400Z",
                log_events::ELECTION_TIMEOUT,
                r#","silence_ms":300"#,
            ),
            kill_ms,
        );
        seen.observe_line(
            2,
            &line(
                "2024-05-01T10:00:00.101Z",
                log_events::LEADER_LOST,
                r#","silence_ms":1"#,
            ),
            kill_ms,
        );
        seen.observe_line(
            3,
            &line(
                "2024-05-01T10:00:00.450Z",
                log_events::BECAME_LEADER,
                r#","term":5"#,
            ),
            kill_ms,
        );
        seen.observe_line(2, "not json at all", kill_ms);
        assert_eq!(
            seen.detection,
            Some((kill_ms + 1, "leader_lost on node 2".into()))
        );
        assert_eq!(seen.leader_seen(), Some((kill_ms + 350, 3, 5)));
        // RAFT.STATUS saw it earlier than the line's timestamp: the earlier one counts.
        seen.leader_status = Some((kill_ms + 340, 3, 5));
        assert_eq!(seen.leader_seen(), Some((kill_ms + 340, 3, 5)));
    }

    #[test]
    fn a_trial_splits_into_detection_election_and_the_rest() {
        let trial = FailoverTrial {
            trial: 1,
            killed: 1,
            old_term: 4,
            new_leader: Some(3),
            new_term: Some(5),
            detection_ms: Some(1),
            detection_event: Some("leader_lost on node 2".into()),
            leader_ms: Some(350),
            first_write_ms: 362.5,
            failed_writes: 4,
        };
        assert_eq!(trial.election_ms(), Some(349));
        assert_eq!(trial.after_election_ms(), Some(12.5));
        let unknown = FailoverTrial {
            leader_ms: None,
            ..trial
        };
        assert_eq!(unknown.election_ms(), None);
    }

    #[test]
    fn min_median_max_of_odd_and_even_counts() {
        assert_eq!(min_median_max(&[3.0, 1.0, 2.0]), Some((1.0, 2.0, 3.0)));
        assert_eq!(min_median_max(&[4.0, 1.0, 2.0, 3.0]), Some((1.0, 2.5, 4.0)));
        assert_eq!(min_median_max(&[]), None);
    }
}
