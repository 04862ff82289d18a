//! The built-in write benchmark of item 8: a fixed number of SETs from
//! concurrent clients through the leader, latencies in hdrhistogram.

use std::time::{Duration, Instant};

use raftkv_node::client::ClusterClient;

use super::{BENCH_LATENCY_US_MAX, REQUEST_DEADLINE_MS};
use crate::gate_record::BenchResult;
use crate::plan::{bench_key_name, BENCH_CLIENTS, BENCH_SETS};

/// The built-in write benchmark: BENCH_SETS SETs from BENCH_CLIENTS
/// concurrent clients, each with its own connection to `addr`.
pub(crate) async fn bench(addr: String, via_node: u64) -> Result<BenchResult, String> {
    let per_client = BENCH_SETS / BENCH_CLIENTS;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for client_number in 0..BENCH_CLIENTS {
        let addr = addr.clone();
        tasks.spawn(async move {
            let mut latencies =
                hdrhistogram::Histogram::<u64>::new_with_bounds(1, BENCH_LATENCY_US_MAX, 3)
                    .map_err(|e| format!("latency histogram: {e}"))?;
            let mut client =
                ClusterClient::new(vec![addr], Duration::from_millis(REQUEST_DEADLINE_MS));
            let mut failed = 0u64;
            let mut first_error = None;
            for i in 0..per_client {
                let n = client_number * per_client + i + 1;
                let sent = Instant::now();
                match client
                    .set(bench_key_name(n), format!("bench-value-{n}"))
                    .await
                {
                    Ok(()) => latencies.saturating_record(sent.elapsed().as_micros() as u64),
                    Err(e) => {
                        failed += 1;
                        first_error.get_or_insert(e.to_string());
                    }
                }
            }
            Ok::<_, String>((latencies, failed, first_error))
        });
    }
    let mut latencies = hdrhistogram::Histogram::<u64>::new_with_bounds(1, BENCH_LATENCY_US_MAX, 3)
        .map_err(|e| format!("latency histogram: {e}"))?;
    let mut failed = 0;
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let (client_latencies, client_failed, client_error) =
            joined.map_err(|e| format!("a benchmark client crashed: {e}"))??;
        latencies
            .add(&client_latencies)
            .map_err(|e| format!("latency histogram: {e:?}"))?;
        failed += client_failed;
        first_error = first_error.or(client_error);
    }
    let elapsed = started.elapsed();
    let succeeded = latencies.len();
    if succeeded == 0 {
        return Err(format!(
            "all {BENCH_SETS} SETs failed: {}",
            first_error.unwrap_or_else(|| "no error recorded".into())
        ));
    }
    Ok(BenchResult {
        via_node,
        sets: BENCH_SETS,
        clients: BENCH_CLIENTS,
        failed,
        elapsed_ms: elapsed.as_millis() as u64,
        ops_per_sec: (succeeded as f64 / elapsed.as_secs_f64().max(1e-6)).round() as u64,
        latency_us_p50: latencies.value_at_quantile(0.50),
        latency_us_p99: latencies.value_at_quantile(0.99),
        latency_us_max: latencies.max(),
    })
}
