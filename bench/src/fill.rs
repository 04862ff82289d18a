//! Fills a cluster with distinct keys for `--memory` and `--catchup-wiped`:
//! key n (`bench:<n, 10 digits>`) gets one value, for n in 0..KEYS,
//! pipelined, then waits until every node has applied it all.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::load::{self, LoadSpec, Workload, KEY_BYTES};
use super::local::{wait_for_convergence, Converged, STATUS_DEADLINE_MS};
use super::resp_target::RaftkvTarget;
use super::BenchArgs;
use crate::status::StatusFetcher;

/// Connections of the fill (fixed, so a fill is the same on every run;
/// with `FILL_PIPELINE` this writes about 100k keys/s on 2 cores).
pub(crate) const FILL_CLIENTS: usize = 32;
/// Requests each fill connection keeps in flight.
pub(crate) const FILL_PIPELINE: usize = 16;
/// Most keys one fill writes.
pub(crate) const FILL_KEYS_MAX: u64 = 100_000_000;
/// RAFT.STATUS is polled this often while waiting for convergence.
const FILL_CONVERGE_POLL_MS: u64 = 20;

/// What a fill did.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FillReport {
    pub(crate) keys_requested: u64,
    /// Writes acknowledged.
    pub(crate) writes_ok: u64,
    pub(crate) writes_failed: u64,
    pub(crate) value_size_bytes: usize,
    pub(crate) elapsed_ms: f64,
    pub(crate) writes_per_sec: f64,
    /// From the last write to every node applied and equal.
    pub(crate) converge_ms: f64,
    /// The state every node reached.
    pub(crate) applied_index: u64,
    /// Keys the leader holds afterwards (RAFT.STATUS `keys`).
    pub(crate) keys_held: u64,
}

impl FillReport {
    /// Keys x (key + value bytes): what the data is worth without overhead.
    pub(crate) fn raw_data_bytes(&self) -> u64 {
        self.keys_held * (KEY_BYTES + self.value_size_bytes) as u64
    }
}

/// Writes `keys` distinct keys through `addrs` and waits until the nodes
/// agree (the converged state and the report).
pub(crate) async fn fill(
    addrs: &[String],
    args: &BenchArgs,
    keys: u64,
) -> Result<(FillReport, Converged), String> {
    let target = Arc::new(RaftkvTarget::new(
        addrs.to_vec(),
        Duration::from_millis(args.request_timeout_ms),
    ));
    let spec = LoadSpec {
        clients: FILL_CLIENTS,
        pipeline: FILL_PIPELINE,
        ..args.load_spec(Some(keys), args.progress("fill"))
    };
    let result = load::run_load(
        target,
        spec,
        Arc::new(Workload::sequential(args.value_size)),
    )
    .await?;
    let filled_at = Instant::now();
    let (converged, keys_held) = wait_converged(addrs).await?;
    let converge_ms = filled_at.elapsed().as_secs_f64() * 1000.0;
    Ok((
        FillReport {
            keys_requested: keys,
            writes_ok: result.tally.ok_ops(),
            writes_failed: result.tally.failed_ops(),
            value_size_bytes: args.value_size,
            elapsed_ms: result.elapsed.as_secs_f64() * 1000.0,
            writes_per_sec: result.ops_per_sec(),
            converge_ms,
            applied_index: converged.applied_index,
            keys_held,
        },
        converged,
    ))
}

/// Waits until every node at `addrs` has one leader, the leader's commit
/// index applied and the same digest; returns that state and the number of
/// keys the leader holds.
pub(crate) async fn wait_converged(addrs: &[String]) -> Result<(Converged, u64), String> {
    let mut fetchers: Vec<StatusFetcher> = addrs
        .iter()
        .map(|addr| StatusFetcher::new(addr.clone()))
        .collect();
    let poll_interval = Duration::from_millis(FILL_CONVERGE_POLL_MS);
    let (converged, statuses) =
        wait_for_convergence(addrs.len(), poll_interval, " of the fill", async || {
            let mut statuses = BTreeMap::new();
            for (index, fetcher) in fetchers.iter_mut().enumerate() {
                let status = fetcher
                    .fetch(Duration::from_millis(STATUS_DEADLINE_MS))
                    .await
                    .map_err(|e| format!("{}: {e}", addrs[index]));
                statuses.insert(index as u64, status);
            }
            Ok(statuses)
        })
        .await?;
    let keys = statuses
        .values()
        .filter_map(|status| status.as_ref().ok())
        .find(|status| status.id == converged.leader)
        .map_or(0, |status| status.keys);
    Ok((converged, keys))
}
