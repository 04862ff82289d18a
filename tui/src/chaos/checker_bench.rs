//! `raftkv chaos --bench-checker 10000,100000,1000000`: what one live check
//! costs at a given history size, full (the whole history every time) and
//! incremental (`raftkv::linearizability::IncrementalChecker`, as the
//! dashboard runs it). No cluster: the histories are generated, shaped like
//! the dashboard's load (sequential clients on a few contended keys, reads
//! and writes, some slow, unknown and failed operations).

use std::time::Instant;

use raftkv::linearizability::{check_history, IncrementalChecker, OpKind, Operation, Outcome, NIL};
use raftkv::raft::Rng;

/// Clients and keys of the generated load (the dashboard's contended keys).
const CLIENTS: u64 = 4;
const KEYS: u64 = 5;
/// Operations added between two checks: what the dashboard's 2 s interval
/// sees at ~500 recorded operations a second.
pub const OPS_PER_CHECK: usize = 1_000;
/// Checks timed at the end of each history size (the figure is their mean).
const TIMED_CHECKS: usize = 20;

/// An operation and the time its client learned how it ended.
struct Timed {
    operation: Operation,
    finished: u64,
}

/// A linearizable history of `count` operations: each takes effect at a
/// random point of its interval (an unknown write maybe never).
fn generate(count: u64, seed: u64) -> Vec<Timed> {
    let mut rng = Rng::new(seed);
    let mut free_at = [0u64; CLIENTS as usize];
    let mut timed = Vec::with_capacity(count as usize);
    let mut effects = Vec::with_capacity(count as usize);
    for id in 0..count {
        let client = id % CLIENTS;
        // Microseconds times CLIENTS plus the client: unique across clients.
        let start = free_at[client as usize] + rng.range(1, 50);
        let latency = match rng.range(0, 100) {
            0 => rng.range(20_000, 200_000),
            _ => rng.range(200, 2_000),
        };
        free_at[client as usize] = start + latency;
        let (invoke, complete) = (
            start * CLIENTS + client,
            (start + latency) * CLIENTS + client,
        );
        let is_write = rng.range(0, 2) == 0;
        let outcome = match rng.range(0, 100) {
            0 => Outcome::Unknown,
            1 => Outcome::Failed,
            _ => Outcome::Ok,
        };
        let takes_effect = match outcome {
            Outcome::Ok => true,
            Outcome::Unknown => is_write && rng.range(0, 2) == 0,
            Outcome::Failed => false,
        };
        if takes_effect {
            effects.push((rng.range(invoke + 1, complete), id as usize));
        }
        timed.push(Timed {
            operation: Operation {
                id,
                client,
                key: rng.range(0, KEYS),
                kind: if is_write {
                    OpKind::Write(id + 1)
                } else {
                    OpKind::Read(NIL)
                },
                invoke,
                complete: (outcome != Outcome::Unknown).then_some(complete),
                outcome,
            },
            finished: complete,
        });
    }
    effects.sort_unstable();
    let mut values = [NIL; KEYS as usize];
    for (_, index) in effects {
        let operation = &mut timed[index].operation;
        match operation.kind {
            OpKind::Write(value) => values[operation.key as usize] = value,
            OpKind::Read(_) => operation.kind = OpKind::Read(values[operation.key as usize]),
        }
    }
    timed
}

/// Figures for one history size.
pub struct Figures {
    pub ops: u64,
    pub full_check_ms: f64,
    /// Mean of the last `TIMED_CHECKS` incremental checks.
    pub incremental_check_ms: f64,
    /// The slowest incremental check while the history was built up.
    pub incremental_slowest_ms: f64,
    /// Every incremental check that built the history up, added together.
    pub incremental_total_ms: f64,
    /// Operations that take part in the check (ok ones, unknown writes).
    pub checked_ops: u64,
    pub settled_ops: u64,
}

/// Builds a history of `ops` operations check by check, as the dashboard
/// does, then times one full check of all of it.
pub fn measure(ops: u64, seed: u64) -> Result<Figures, String> {
    let timed = generate(ops, seed);
    let mut by_finish: Vec<usize> = (0..timed.len()).collect();
    by_finish.sort_by_key(|&i| timed[i].finished);
    let mut checker = IncrementalChecker::new();
    let checks = by_finish.len().div_ceil(OPS_PER_CHECK);
    let mut total_ms = 0.0;
    let mut last_ms = Vec::new();
    let (mut settled_ops, mut checked_ops, mut slowest_ms) = (0, 0, 0.0f64);
    // Per client, its operations in order and the first one not finished.
    let mut per_client: Vec<Vec<usize>> = vec![Vec::new(); CLIENTS as usize];
    for (index, t) in timed.iter().enumerate() {
        per_client[t.operation.client as usize].push(index);
    }
    let mut unfinished = vec![0usize; CLIENTS as usize];
    for (check, batch) in by_finish.chunks(OPS_PER_CHECK).enumerate() {
        let now = timed[*batch.last().expect("chunks are not empty")].finished;
        // Each client's first operation not finished by now, if invoked.
        let mut running = Vec::new();
        for (client, operations) in per_client.iter().enumerate() {
            let next = &mut unfinished[client];
            while *next < operations.len() && timed[operations[*next]].finished <= now {
                *next += 1;
            }
            if let Some(&index) = operations.get(*next) {
                if timed[index].operation.invoke <= now {
                    running.push(Operation {
                        complete: None,
                        outcome: Outcome::Unknown,
                        ..timed[index].operation.clone()
                    });
                }
            }
        }
        let started = Instant::now();
        for &index in batch {
            checker
                .add(timed[index].operation.clone())
                .map_err(|e| e.to_string())?;
        }
        let stats = checker.check(&running).map_err(|e| e.to_string())?;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        total_ms += ms;
        slowest_ms = slowest_ms.max(ms);
        settled_ops = stats.settled_operations;
        checked_ops = stats.check.operations;
        if check + TIMED_CHECKS >= checks {
            last_ms.push(ms);
        }
    }
    let operations: Vec<Operation> = timed.into_iter().map(|t| t.operation).collect();
    let started = Instant::now();
    check_history(&operations).map_err(|e| e.to_string())?;
    let full_check_ms = started.elapsed().as_secs_f64() * 1e3;
    Ok(Figures {
        ops,
        full_check_ms,
        incremental_check_ms: last_ms.iter().sum::<f64>() / last_ms.len().max(1) as f64,
        incremental_slowest_ms: slowest_ms,
        incremental_total_ms: total_ms,
        checked_ops,
        settled_ops,
    })
}

/// Runs the benchmark for each size and prints a table; the exit status.
pub fn run(sizes: &[u64]) -> i32 {
    println!(
        "raftkv chaos --bench-checker: one check of a generated history ({CLIENTS} clients, {KEYS} keys, \
         1% slow, 1% unknown, 1% failed), {OPS_PER_CHECK} new operations per check"
    );
    println!(
        "{:>10}  {:>12}  {:>17}  {:>16}  {:>16}  {:>8}",
        "ops", "full check", "incremental check", "slowest one", "all of them", "settled"
    );
    for &ops in sizes {
        match measure(ops, ops ^ 0x5eed) {
            Ok(f) => println!(
                "{:>10}  {:>9.1} ms  {:>14.2} ms  {:>13.2} ms  {:>13.1} ms  {:>7.1}%",
                crate::plan::thousands(f.ops),
                f.full_check_ms,
                f.incremental_check_ms,
                f.incremental_slowest_ms,
                f.incremental_total_ms,
                100.0 * f.settled_ops as f64 / f.checked_ops.max(1) as f64
            ),
            Err(error) => {
                eprintln!("raftkv chaos --bench-checker: {ops} ops: {error}");
                return 1;
            }
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generated histories are linearizable and mostly settled, so the
    /// figures time the path the dashboard takes (no timing is asserted).
    #[test]
    fn a_generated_history_checks_and_settles() {
        let figures = measure(5_000, 7).expect("linearizable");
        assert!(
            figures.settled_ops * 10 >= figures.checked_ops * 9,
            "{} of {}",
            figures.settled_ops,
            figures.checked_ops
        );
    }
}
