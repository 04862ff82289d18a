//! Linearizability checking of a key-value history with the Wing–Gong–Lowe
//! search, one register per key (the approach of porcupine and Knossos).
//!
//! Each key is an independent register whose initial value is `NIL`. A write
//! sets it; a read returns it. An operation is a real-time interval from its
//! invocation to its completion. The history is linearizable when every key's
//! operations can be put in one sequential order that respects real time
//! (an operation that completed before another was invoked comes first) and
//! the register semantics.
//!
//! Outcomes follow Knossos: a failed operation never took effect and is left
//! out; a write whose outcome is unknown may have taken effect at any time
//! after its invocation, or never, so it is given an infinite completion time
//! (placing it after everything else is the same as it never happening); a
//! read whose outcome is unknown observed nothing and is left out.
//!
//! Written values are unique, which allows two exact simplifications that
//! keep the search small when many writes have unknown outcomes:
//! - an unknown write whose value no read observed is left out: any order
//!   that places it can drop it and stay legal, since no read sits between it
//!   and the next write;
//! - an unknown write whose value was observed must precede the reads that
//!   observed it, so it completes no later than the earliest of them.

use std::collections::{HashMap, HashSet};

mod incremental;
pub use incremental::{IncrementalChecker, IncrementalStats};

/// A value written to or read from a register. Values are unique per write.
pub type Value = u64;

/// The value of a key that was never written.
pub const NIL: Value = 0;

/// What an operation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// Set the register to the value.
    Write(Value),
    /// Observed the value (`NIL` when the key was absent).
    Read(Value),
}

/// How an operation ended, as the client saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Completed; for a read the observed value is in `OpKind::Read`.
    Ok,
    /// Definitely did not take effect.
    Failed,
    /// May or may not have taken effect (a write whose leader was lost).
    Unknown,
}

/// One client operation on one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// Identifies the operation in reports.
    pub id: u64,
    pub client: u64,
    pub key: u64,
    pub kind: OpKind,
    /// Logical time of the invocation (unique across the history).
    pub invoke: u64,
    /// Logical time of the completion; `None` when it never completed.
    pub complete: Option<u64>,
    pub outcome: Outcome,
}

/// Bound on search steps per key. A linearizable history is usually
/// ordered in far fewer; a non-linearizable one with many overlapping
/// operations can take exponentially many to refute, and is then decided by
/// the zone check alone.
pub const SEARCH_STEPS_PER_KEY_MAX: u64 = 2_000_000;

/// How many operations were checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckStats {
    pub keys: u64,
    /// Operations that entered the check (ok ops and observed unknown writes).
    pub operations: u64,
    pub search_steps: u64,
    /// Keys whose search hit `SEARCH_STEPS_PER_KEY_MAX` (decided by zones).
    pub searches_undecided: u64,
}

/// Why a history was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckError {
    /// No legal sequential order exists for this key.
    NotLinearizable {
        key: u64,
        /// What makes it impossible, in words.
        explanation: String,
        /// The operations at the heart of the contradiction.
        evidence: Vec<Operation>,
        /// Every operation on the key that was checked, by invocation.
        operations: Vec<Operation>,
    },
    /// The search and the zone check reached different verdicts: a bug in
    /// this checker, never in the system under test.
    CheckersDisagree {
        key: u64,
        search_says_linearizable: bool,
        operations: Vec<Operation>,
    },
    /// An operation is malformed (completion before invocation, ok without
    /// completion time, reused invocation time, a value written twice).
    Malformed {
        operation: Box<Operation>,
        reason: &'static str,
    },
}

/// Bound on operations printed around the evidence of a violation.
const SHOWN_OPERATIONS_MAX: usize = 60;

impl std::fmt::Display for CheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckError::NotLinearizable {
                key,
                explanation,
                evidence,
                operations,
            } => {
                writeln!(
                    f,
                    "history of key k{key} is not linearizable: {explanation}"
                )?;
                for operation in evidence {
                    writeln!(
                        f,
                        "  evidence op {:>6} {}",
                        operation.id,
                        describe(operation)
                    )?;
                }
                // The operations around the evidence, by invocation.
                let first = evidence.iter().map(|o| o.invoke).min().unwrap_or(0);
                let center = operations
                    .iter()
                    .position(|o| o.invoke >= first)
                    .unwrap_or(0);
                let start = center.saturating_sub(SHOWN_OPERATIONS_MAX / 3);
                writeln!(
                    f,
                    "  operations on k{key} around it ({} in all):",
                    operations.len()
                )?;
                for operation in operations.iter().skip(start).take(SHOWN_OPERATIONS_MAX) {
                    writeln!(f, "  op {:>6} {}", operation.id, describe(operation))?;
                }
                Ok(())
            }
            CheckError::CheckersDisagree {
                key,
                search_says_linearizable,
                operations,
            } => {
                writeln!(
                    f,
                    "checker bug: for key k{key} the search says linearizable={search_says_linearizable}, the zone check the opposite"
                )?;
                for operation in operations.iter().take(SHOWN_OPERATIONS_MAX * 4) {
                    writeln!(f, "  op {:>6} {}", operation.id, describe(operation))?;
                }
                Ok(())
            }
            CheckError::Malformed { operation, reason } => {
                write!(
                    f,
                    "malformed operation {}: {reason}: {}",
                    operation.id,
                    describe(operation)
                )
            }
        }
    }
}

/// One line for a report: client, interval, kind, outcome.
pub fn describe(operation: &Operation) -> String {
    let complete = match operation.complete {
        Some(time) => time.to_string(),
        None => "inf".to_string(),
    };
    let kind = match operation.kind {
        OpKind::Write(value) => format!("write({})", show_value(value)),
        OpKind::Read(value) => format!("read() -> {}", show_value(value)),
    };
    format!(
        "client {} [{} .. {}] {kind} {:?}",
        operation.client, operation.invoke, complete, operation.outcome
    )
}

fn show_value(value: Value) -> String {
    if value == NIL {
        "nil".to_string()
    } else {
        value.to_string()
    }
}

/// Checks every key's history; stops at the first key that fails.
pub fn check_history(operations: &[Operation]) -> Result<CheckStats, CheckError> {
    let mut invoke_times = HashSet::new();
    for operation in operations {
        validate(operation, &mut invoke_times)?;
    }
    let mut by_key: std::collections::BTreeMap<u64, Vec<Operation>> = Default::default();
    for operation in operations {
        by_key
            .entry(operation.key)
            .or_default()
            .push(operation.clone());
    }
    let mut stats = CheckStats::default();
    for (key, key_operations) in by_key {
        let checked = prepare_register(key_operations);
        if checked.is_empty() {
            continue;
        }
        stats.add(&check_register(key, checked)?);
    }
    Ok(stats)
}

impl CheckStats {
    fn add(&mut self, other: &CheckStats) {
        self.keys += other.keys;
        self.operations += other.operations;
        self.search_steps += other.search_steps;
        self.searches_undecided += other.searches_undecided;
    }
}

/// One key's operations as the search sees them, by invocation: failed
/// operations and unknown reads left out, unknown writes kept only when
/// observed, and then completing no later than their first observer.
fn prepare_register(operations: Vec<Operation>) -> Vec<Operation> {
    // value -> the earliest completion of an ok read that observed it.
    let mut first_observed: HashMap<Value, u64> = HashMap::new();
    for operation in &operations {
        if let (Outcome::Ok, OpKind::Read(value), Some(complete)) =
            (operation.outcome, operation.kind, operation.complete)
        {
            let earliest = first_observed.entry(value).or_insert(complete);
            *earliest = (*earliest).min(complete);
        }
    }
    let mut kept: Vec<Operation> = operations
        .into_iter()
        .filter_map(|mut operation| match (operation.outcome, operation.kind) {
            (Outcome::Failed, _) | (Outcome::Unknown, OpKind::Read(_)) => None,
            (Outcome::Ok, _) => Some(operation),
            (Outcome::Unknown, OpKind::Write(value)) => {
                let observed = *first_observed.get(&value)?;
                let complete = operation.complete.unwrap_or(u64::MAX).min(observed);
                // A read that completed before the write was invoked
                // observed it: keep the interval non-empty and let the
                // search reject it (the read precedes the write).
                operation.complete = Some(complete.max(operation.invoke + 1));
                Some(operation)
            }
        })
        .collect();
    kept.sort_by_key(|o| o.invoke);
    kept
}

/// Checks one key's prepared operations with the search, backed by the
/// zone check; the two must agree whenever the search decides.
fn check_register(key: u64, operations: Vec<Operation>) -> Result<CheckStats, CheckError> {
    let mut stats = CheckStats {
        keys: 1,
        operations: operations.len() as u64,
        ..CheckStats::default()
    };
    let zones = check_register_zones(key, &operations);
    let search = search_register(key, &operations);
    stats.search_steps += search.steps;
    match (search.verdict, zones) {
        (None, Ok(())) => stats.searches_undecided += 1,
        (None, Err(error)) => return Err(error),
        (Some(Ok(())), Ok(())) => {}
        (Some(Err(error)), Err(_)) => return Err(error),
        (Some(verdict), _) => {
            return Err(CheckError::CheckersDisagree {
                key,
                search_says_linearizable: verdict.is_ok(),
                operations,
            })
        }
    }
    Ok(stats)
}

/// Gibbons and Korach's check for registers whose written values are
/// unique ("Testing shared memories", SIAM J. Comput. 1997), in
/// O(n log n): a write and the reads of its value form a cluster that must
/// occupy one contiguous stretch of any legal order. If some operation of
/// the cluster completes (at f) before another one is invoked (at s), the
/// cluster spans all of [f, s]: a forward zone. Otherwise it fits at any
/// single point of [s, f]: a backward zone. The history is legal exactly
/// when every read follows the invocation of its write, no two forward
/// zones overlap, and no backward zone lies inside another's forward zone.
/// The initial value is a write at time 0.
fn check_register_zones(key: u64, operations: &[Operation]) -> Result<(), CheckError> {
    struct Cluster {
        write: Option<usize>,
        reads: Vec<usize>,
    }
    // Ordered, so a violation is always reported the same way.
    let mut clusters: std::collections::BTreeMap<Value, Cluster> = Default::default();
    clusters.insert(
        NIL,
        Cluster {
            write: None,
            reads: Vec::new(),
        },
    );
    for (index, operation) in operations.iter().enumerate() {
        if let OpKind::Write(value) = operation.kind {
            let cluster = clusters.entry(value).or_insert(Cluster {
                write: None,
                reads: Vec::new(),
            });
            if value == NIL || cluster.write.is_some() {
                return Err(CheckError::Malformed {
                    operation: Box::new(operation.clone()),
                    reason: "a value is written twice (or nil is written)",
                });
            }
            cluster.write = Some(index);
        }
    }
    let not_linearizable =
        |explanation: String, evidence: Vec<usize>| CheckError::NotLinearizable {
            key,
            explanation,
            evidence: evidence
                .into_iter()
                .map(|i| operations[i].clone())
                .collect(),
            operations: operations.to_vec(),
        };
    for (index, operation) in operations.iter().enumerate() {
        let OpKind::Read(value) = operation.kind else {
            continue;
        };
        let Some(cluster) = clusters.get_mut(&value) else {
            return Err(not_linearizable(
                format!("a read returned {value}, which no write wrote"),
                vec![index],
            ));
        };
        cluster.reads.push(index);
        if let Some(write) = cluster.write {
            let read_complete = operation.complete.expect("checked operations completed");
            if read_complete < operations[write].invoke {
                return Err(not_linearizable(
                    format!("a read returned {value} before the write of {value} was invoked"),
                    vec![write, index],
                ));
            }
        }
    }
    // (lo, hi, value) per zone.
    let mut forward: Vec<(u64, u64, Value)> = Vec::new();
    let mut backward: Vec<(u64, u64, Value)> = Vec::new();
    for (&value, cluster) in &clusters {
        let members = cluster
            .write
            .iter()
            .chain(&cluster.reads)
            .map(|&i| &operations[i]);
        let (mut first_complete, mut last_invoke) = match cluster.write {
            Some(_) => (u64::MAX, 0),
            // The initial value is written at time 0.
            None => (0, 0),
        };
        for member in members {
            first_complete =
                first_complete.min(member.complete.expect("checked operations completed"));
            last_invoke = last_invoke.max(member.invoke);
        }
        if first_complete < last_invoke {
            forward.push((first_complete, last_invoke, value));
        } else {
            backward.push((last_invoke, first_complete, value));
        }
    }
    forward.sort_unstable();
    let cluster_evidence = |values: &[Value]| -> Vec<usize> {
        values
            .iter()
            .flat_map(|v| {
                let cluster = &clusters[v];
                cluster
                    .write
                    .iter()
                    .chain(&cluster.reads)
                    .copied()
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    for pair in forward.windows(2) {
        let ((lo_a, hi_a, a), (lo_b, hi_b, b)) = (pair[0], pair[1]);
        if lo_b <= hi_a {
            return Err(not_linearizable(
                format!(
                    "the value {} must stay from time {lo_a} to {hi_a} and the value {} from {lo_b} to {hi_b}",
                    show_value(a),
                    show_value(b)
                ),
                cluster_evidence(&[a, b]),
            ));
        }
    }
    for &(lo, hi, value) in &backward {
        // The forward zone starting last at or before `lo`.
        let position = forward.partition_point(|&(f_lo, _, _)| f_lo <= lo);
        if position == 0 {
            continue;
        }
        let (f_lo, f_hi, f_value) = forward[position - 1];
        if hi <= f_hi && f_value != value {
            return Err(not_linearizable(
                format!(
                    "the value {} must stay from time {f_lo} to {f_hi}, but the value {} must appear and be \
                     superseded between {lo} and {hi}",
                    show_value(f_value),
                    show_value(value)
                ),
                cluster_evidence(&[f_value, value]),
            ));
        }
    }
    Ok(())
}

/// The search's outcome: `None` when it ran out of steps.
struct SearchResult {
    verdict: Option<Result<(), CheckError>>,
    steps: u64,
}

fn validate(operation: &Operation, invoke_times: &mut HashSet<u64>) -> Result<(), CheckError> {
    let malformed = |reason| CheckError::Malformed {
        operation: Box::new(operation.clone()),
        reason,
    };
    if !invoke_times.insert(operation.invoke) {
        return Err(malformed("invocation time used twice"));
    }
    match (operation.outcome, operation.complete) {
        (Outcome::Ok, None) => Err(malformed("ok without completion time")),
        (_, Some(complete)) if complete <= operation.invoke => {
            Err(malformed("completes before it is invoked"))
        }
        _ => Ok(()),
    }
}

/// A call or return event in the doubly linked list of the search.
#[derive(Clone, Copy, Debug)]
struct Event {
    operation: usize,
    is_call: bool,
    /// For a call: the index of its return event.
    matching: usize,
    prev: usize,
    next: usize,
}

const NONE: usize = usize::MAX;
const HEAD: usize = 0;

/// Wing–Gong–Lowe with Lowe's memoisation of (linearized set, state).
fn search_register(key: u64, operations: &[Operation]) -> SearchResult {
    // Events sorted by time; calls before returns at equal times (only the
    // infinite completions of unknown writes can tie).
    let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(operations.len() * 2);
    for (index, operation) in operations.iter().enumerate() {
        order.push((operation.invoke, false, index));
        order.push((operation.complete.unwrap_or(u64::MAX), true, index));
    }
    order.sort();

    // events[0] is the head sentinel.
    let mut events = vec![Event {
        operation: NONE,
        is_call: false,
        matching: NONE,
        prev: NONE,
        next: NONE,
    }];
    let mut return_slot = vec![NONE; operations.len()];
    let mut call_slot = vec![NONE; operations.len()];
    for &(_, is_return, operation) in &order {
        let slot = events.len();
        let prev = slot - 1;
        events[prev].next = slot;
        events.push(Event {
            operation,
            is_call: !is_return,
            matching: NONE,
            prev,
            next: NONE,
        });
        if is_return {
            return_slot[operation] = slot;
        } else {
            call_slot[operation] = slot;
        }
    }
    for operation in 0..operations.len() {
        events[call_slot[operation]].matching = return_slot[operation];
    }

    let words = operations.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut linearized_count = 0usize;
    let mut seen: HashSet<(Vec<u64>, Value)> = HashSet::new();
    let mut calls: Vec<(usize, Value)> = Vec::new();
    let mut state = NIL;
    let mut steps = 0u64;
    let mut longest_prefix = 0usize;
    let mut stuck_at = NONE;

    let mut entry = events[HEAD].next;
    while events[HEAD].next != NONE {
        steps += 1;
        if steps > SEARCH_STEPS_PER_KEY_MAX {
            return SearchResult {
                verdict: None,
                steps,
            };
        }
        let event = events[entry];
        if event.is_call {
            let operation = event.operation;
            let (legal, next_state) = match operations[operation].kind {
                OpKind::Write(value) => (true, value),
                OpKind::Read(value) => (value == state, state),
            };
            if legal {
                linearized[operation / 64] |= 1 << (operation % 64);
                if seen.insert((linearized.clone(), next_state)) {
                    calls.push((entry, state));
                    state = next_state;
                    linearized_count += 1;
                    lift(&mut events, entry);
                    entry = events[HEAD].next;
                    continue;
                }
                linearized[operation / 64] &= !(1 << (operation % 64));
            }
            entry = event.next;
        } else {
            // A return reached before its call was linearized: backtrack.
            if linearized_count >= longest_prefix {
                longest_prefix = linearized_count;
                stuck_at = event.operation;
            }
            let Some((call, previous_state)) = calls.pop() else {
                let stuck = &operations[stuck_at];
                let error = CheckError::NotLinearizable {
                    key,
                    explanation: format!(
                        "the longest legal order holds {longest_prefix} of {} operations and cannot place op {} \
                         ({}) before it completes",
                        operations.len(),
                        stuck.id,
                        describe(stuck)
                    ),
                    evidence: vec![stuck.clone()],
                    operations: operations.to_vec(),
                };
                return SearchResult {
                    verdict: Some(Err(error)),
                    steps,
                };
            };
            let operation = events[call].operation;
            linearized[operation / 64] &= !(1 << (operation % 64));
            linearized_count -= 1;
            state = previous_state;
            unlift(&mut events, call);
            entry = events[call].next;
        }
    }
    SearchResult {
        verdict: Some(Ok(())),
        steps,
    }
}

/// Removes a call and its return from the list.
fn lift(events: &mut [Event], call: usize) {
    let Event {
        prev,
        next,
        matching,
        ..
    } = events[call];
    events[prev].next = next;
    if next != NONE {
        events[next].prev = prev;
    }
    let Event { prev, next, .. } = events[matching];
    events[prev].next = next;
    if next != NONE {
        events[next].prev = prev;
    }
}

/// Puts a lifted call and its return back where they were.
fn unlift(events: &mut [Event], call: usize) {
    let matching = events[call].matching;
    let Event { prev, next, .. } = events[matching];
    events[prev].next = matching;
    if next != NONE {
        events[next].prev = matching;
    }
    let Event { prev, next, .. } = events[call];
    events[prev].next = call;
    if next != NONE {
        events[next].prev = call;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (client, key, kind, invoke, complete, outcome)
    type Row = (u64, u64, OpKind, u64, Option<u64>, Outcome);

    /// Builds operations from rows.
    fn history(rows: &[Row]) -> Vec<Operation> {
        rows.iter()
            .enumerate()
            .map(
                |(id, &(client, key, kind, invoke, complete, outcome))| Operation {
                    id: id as u64,
                    client,
                    key,
                    kind,
                    invoke,
                    complete,
                    outcome,
                },
            )
            .collect()
    }

    use OpKind::{Read, Write};
    use Outcome::{Failed, Ok as Done, Unknown};

    #[test]
    fn sequential_history_is_linearizable() {
        let operations = history(&[
            (1, 0, Read(NIL), 1, Some(2), Done),
            (1, 0, Write(5), 3, Some(4), Done),
            (2, 0, Read(5), 5, Some(6), Done),
            (2, 0, Write(6), 7, Some(8), Done),
            (1, 0, Read(6), 9, Some(10), Done),
        ]);
        let stats = check_history(&operations).expect("linearizable");
        assert_eq!(stats.operations, 5);
        assert_eq!(stats.keys, 1);
    }

    #[test]
    fn concurrent_reads_may_see_either_side_of_an_overlapping_write() {
        // The write overlaps both reads: one sees the old value, one the new;
        // the read that saw the old value must be ordered first, and can be.
        let operations = history(&[
            (1, 0, Write(1), 1, Some(2), Done),
            (2, 0, Write(2), 3, Some(10), Done),
            (3, 0, Read(1), 4, Some(6), Done),
            (4, 0, Read(2), 5, Some(7), Done),
        ]);
        assert!(check_history(&operations).is_ok());
    }

    #[test]
    fn stale_read_after_completed_write_is_not_linearizable() {
        // Raft §8: a deposed leader serving a read from its own state.
        let operations = history(&[
            (1, 0, Write(1), 1, Some(2), Done),
            (1, 0, Write(2), 3, Some(4), Done),
            (2, 0, Read(1), 5, Some(6), Done),
        ]);
        match check_history(&operations) {
            Err(CheckError::NotLinearizable { key, evidence, .. }) => {
                assert_eq!(key, 0);
                assert!(evidence.iter().any(|o| o.kind == Read(1)), "{evidence:?}");
            }
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    #[test]
    fn read_going_back_in_time_is_not_linearizable() {
        // Two sequential reads by one client see the new value, then the old.
        let operations = history(&[
            (1, 0, Write(1), 1, Some(2), Done),
            (2, 0, Write(2), 3, Some(20), Done),
            (3, 0, Read(2), 4, Some(5), Done),
            (3, 0, Read(1), 6, Some(7), Done),
        ]);
        assert!(matches!(
            check_history(&operations),
            Err(CheckError::NotLinearizable { .. })
        ));
    }

    #[test]
    fn read_of_a_failed_write_is_not_linearizable() {
        let operations = history(&[
            (1, 0, Write(1), 1, Some(2), Failed),
            (2, 0, Read(1), 3, Some(4), Done),
        ]);
        assert!(matches!(
            check_history(&operations),
            Err(CheckError::NotLinearizable { .. })
        ));
    }

    #[test]
    fn read_of_a_value_never_written_is_not_linearizable() {
        let operations = history(&[
            (1, 0, Write(1), 1, Some(2), Done),
            (2, 0, Read(9), 3, Some(4), Done),
        ]);
        assert!(matches!(
            check_history(&operations),
            Err(CheckError::NotLinearizable { .. })
        ));
    }

    #[test]
    fn read_of_nil_after_a_completed_write_is_not_linearizable() {
        let operations = history(&[
            (1, 0, Write(1), 1, Some(2), Done),
            (2, 0, Read(NIL), 3, Some(4), Done),
        ]);
        assert!(matches!(
            check_history(&operations),
            Err(CheckError::NotLinearizable { .. })
        ));
    }

    #[test]
    fn unknown_write_may_take_effect_long_after_its_invocation() {
        // The leader was lost before the reply; the next leader committed it.
        let operations = history(&[
            (1, 0, Write(1), 1, None, Unknown),
            (2, 0, Read(NIL), 2, Some(3), Done),
            (2, 0, Write(2), 4, Some(5), Done),
            (2, 0, Read(2), 6, Some(7), Done),
            (3, 0, Read(1), 8, Some(9), Done),
        ]);
        assert!(check_history(&operations).is_ok());
    }

    #[test]
    fn unknown_write_may_never_take_effect() {
        let operations = history(&[
            (1, 0, Write(1), 1, None, Unknown),
            (2, 0, Write(2), 2, Some(3), Done),
            (2, 0, Read(2), 4, Some(5), Done),
        ]);
        assert!(check_history(&operations).is_ok());
    }

    #[test]
    fn unknown_write_cannot_take_effect_twice() {
        // Once a later write was observed after the unknown write's value,
        // the unknown write's value cannot come back.
        let operations = history(&[
            (1, 0, Write(1), 1, None, Unknown),
            (2, 0, Read(1), 2, Some(3), Done),
            (2, 0, Write(2), 4, Some(5), Done),
            (2, 0, Read(2), 6, Some(7), Done),
            (3, 0, Read(1), 8, Some(9), Done),
        ]);
        assert!(matches!(
            check_history(&operations),
            Err(CheckError::NotLinearizable { .. })
        ));
    }

    #[test]
    fn unknown_write_cannot_take_effect_before_its_invocation() {
        let operations = history(&[
            (2, 0, Read(1), 1, Some(2), Done),
            (1, 0, Write(1), 3, None, Unknown),
        ]);
        assert!(matches!(
            check_history(&operations),
            Err(CheckError::NotLinearizable { .. })
        ));
    }

    #[test]
    fn unknown_and_failed_reads_are_ignored() {
        let operations = history(&[
            (1, 0, Write(1), 1, Some(2), Done),
            (2, 0, Read(7), 3, None, Unknown),
            (2, 0, Read(8), 4, Some(5), Failed),
            (2, 0, Read(1), 6, Some(7), Done),
        ]);
        let stats = check_history(&operations).expect("linearizable");
        assert_eq!(stats.operations, 2);
    }

    #[test]
    fn keys_are_independent_registers() {
        // Linearizable per key, although read(k0)=1 and read(k1)=nil would
        // be contradictory if both were one register.
        let operations = history(&[
            (1, 0, Write(1), 1, Some(2), Done),
            (2, 1, Read(NIL), 3, Some(4), Done),
            (2, 0, Read(1), 5, Some(6), Done),
        ]);
        let stats = check_history(&operations).expect("linearizable");
        assert_eq!(stats.keys, 2);
        // And a violation on one key is reported with that key.
        let operations = history(&[
            (1, 0, Write(1), 1, Some(2), Done),
            (1, 1, Write(2), 3, Some(4), Done),
            (2, 1, Read(NIL), 5, Some(6), Done),
        ]);
        match check_history(&operations) {
            Err(CheckError::NotLinearizable { key, .. }) => assert_eq!(key, 1),
            other => panic!("expected a violation on key 1, got {other:?}"),
        }
    }

    #[test]
    fn overlapping_writes_with_late_reads_are_decided_quickly() {
        // Ten overlapping writes (more than the simulator's clients ever
        // have in flight on one key), then reads that fix the final value:
        // the memoisation keeps this far below the step bound.
        let mut rows = Vec::new();
        for value in 1..=10u64 {
            rows.push((value, 0, Write(value), value, Some(100 + value), Done));
        }
        rows.push((99, 0, Read(7), 200, Some(201), Done));
        rows.push((99, 0, Read(7), 202, Some(203), Done));
        let stats = check_history(&history(&rows)).expect("linearizable");
        assert!(
            stats.search_steps < 1_000_000,
            "steps: {}",
            stats.search_steps
        );
        // 7 cannot be the final value if 8 was read after 7 was.
        rows.push((98, 0, Read(8), 204, Some(205), Done));
        rows.push((99, 0, Read(7), 206, Some(207), Done));
        assert!(matches!(
            check_history(&history(&rows)),
            Err(CheckError::NotLinearizable { .. })
        ));
    }

    #[test]
    fn unobserved_unknown_writes_do_not_grow_the_search() {
        // Hundreds of writes whose leader was lost and nobody read.
        let mut rows = Vec::new();
        for value in 1..=300u64 {
            rows.push((value, 0, Write(value), value, None, Unknown));
        }
        rows.push((999, 0, Write(1000), 1000, Some(1001), Done));
        rows.push((999, 0, Read(1000), 1002, Some(1003), Done));
        let stats = check_history(&history(&rows)).expect("linearizable");
        assert_eq!(stats.operations, 2);
    }

    /// A random history of an atomic register: each operation takes effect
    /// at a random point of its interval (an unknown write maybe never);
    /// sometimes one read is then given a wrong value.
    fn random_history(rng: &mut raftkv::raft::Rng, operations_max: u64) -> Vec<Operation> {
        let count = rng.range(1, operations_max + 1);
        // Distinct times: a coarse random time times 64 plus a unique slot.
        let mut slot = 0;
        let mut time = |coarse: u64| {
            slot += 1;
            coarse * 64 + slot
        };
        let mut operations = Vec::new();
        let mut effects = Vec::new();
        for id in 0..count {
            let start = rng.range(0, 60);
            let end = start + rng.range(0, 25);
            let (invoke, complete) = (time(start), time(end));
            let effect_at = rng.range(invoke, complete) + 1;
            let is_write = rng.range(0, 2) == 0;
            let unknown = is_write && rng.range(0, 6) == 0;
            let takes_effect = !unknown || rng.range(0, 2) == 0;
            operations.push(Operation {
                id,
                client: id,
                key: 0,
                kind: if is_write { Write(id + 1) } else { Read(NIL) },
                invoke,
                complete: (!unknown).then_some(complete),
                outcome: if unknown { Unknown } else { Done },
            });
            if takes_effect {
                effects.push((effect_at, id as usize));
            }
        }
        effects.sort_unstable();
        let mut value = NIL;
        for (_, index) in effects {
            match operations[index].kind {
                Write(v) => value = v,
                Read(_) => operations[index].kind = Read(value),
            }
        }
        if rng.range(0, 3) == 0 {
            let reads: Vec<usize> = (0..operations.len())
                .filter(|&i| matches!(operations[i].kind, Read(_)))
                .collect();
            if !reads.is_empty() {
                let read = reads[rng.range(0, reads.len() as u64) as usize];
                operations[read].kind = Read(rng.range(0, count + 1));
            }
        }
        operations
    }

    #[test]
    fn search_and_zone_check_agree_on_random_histories() {
        let mut rng = raftkv::raft::Rng::new(0x5eed);
        let (mut linearizable, mut not_linearizable) = (0, 0);
        for round in 0..20_000 {
            let operations = random_history(&mut rng, 14);
            match check_history(&operations) {
                Ok(stats) => {
                    assert_eq!(stats.searches_undecided, 0);
                    linearizable += 1;
                }
                Err(CheckError::NotLinearizable { .. }) => not_linearizable += 1,
                Err(error) => panic!("round {round}: {error}"),
            }
        }
        // Both verdicts must be well represented for the agreement to mean much.
        assert!(
            linearizable > 5_000 && not_linearizable > 1_000,
            "{linearizable} / {not_linearizable}"
        );
    }

    #[test]
    fn malformed_operations_are_rejected_with_a_reason() {
        let operations = history(&[(1, 0, Write(1), 5, Some(5), Done)]);
        assert!(matches!(
            check_history(&operations),
            Err(CheckError::Malformed {
                reason: "completes before it is invoked",
                ..
            })
        ));
        let operations = history(&[(1, 0, Read(1), 5, None, Done)]);
        assert!(matches!(
            check_history(&operations),
            Err(CheckError::Malformed {
                reason: "ok without completion time",
                ..
            })
        ));
        let operations = history(&[
            (1, 0, Write(1), 5, Some(6), Done),
            (2, 0, Write(2), 5, Some(7), Done),
        ]);
        assert!(matches!(
            check_history(&operations),
            Err(CheckError::Malformed {
                reason: "invocation time used twice",
                ..
            })
        ));
    }
}
