//! Checking a growing history incrementally: per key, the operations that
//! can no longer be reordered with anything later are collapsed into the
//! set of values the register may hold after them, so each check costs the
//! operations added since the last one, not the whole history.
//!
//! A key's *settled point* is a time T at which none of its operations was
//! running: every settled operation completed before T, every later one is
//! invoked after T (or is still running and was invoked after T). Real time
//! then orders every settled operation before every later one, so the
//! key's history is linearizable exactly when the settled operations have a
//! legal order ending in some value s, and the later ones have a legal order
//! starting from s. What is kept of the settled part is therefore:
//! - `possible`: every value s in which a legal order of the settled
//!   operations can end (more than one when writes overlapped at the end);
//! - `floating`: the unknown writes invoked before T whose value no settled
//!   read observed. They may still take effect after T. One that took
//!   effect before T unobserved can be moved to T without changing any read
//!   (values are unique), so nothing is lost by assuming they did not. An
//!   unknown write whose value a settled read observed took effect before
//!   that read and is not kept: it cannot take effect again.
//!
//! Every check then runs the core's search (and zone check) on a window:
//! the values in `possible` as concurrent writes just before everything
//! else (any of them can be the last, so the register starts from any one
//! of them), the floating writes, and the operations after T. The window's
//! times are shifted up to make room for those writes. Nil is never among
//! several possible values: nil cannot be written, so once any write must
//! have taken effect the register cannot hold nil again, and a window
//! starting from nil alone is the history itself.
//!
//! The settled point advances to the invocation of the oldest operation of
//! the key still running (or past everything when none runs) as far as no
//! finished operation spans it. The new `possible` is found by asking, for
//! each write that can be last (no other write of the chunk invoked after
//! it completed), whether the chunk has a legal order followed by a read of
//! its value.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::{
    check_register, prepare_register, CheckError, CheckStats, OpKind, Operation, Outcome, Value,
    NIL,
};

/// Ids of the operations a window adds (the possible values' writes and
/// the probing read) count down from here; recorded ids stay below.
const WINDOW_ID_MIN: u64 = u64::MAX - (1 << 32);

/// Checks a history that grows between checks. Contract: every operation
/// is `add`ed once, when it finished (ok, failed or unknown); at each
/// `check`, every operation invoked so far and not added is passed as in
/// flight. Violations are sticky: once found, every later check returns it.
#[derive(Default)]
pub struct IncrementalChecker {
    registers: BTreeMap<u64, Register>,
    /// Keys with operations added since the last check.
    changed: BTreeSet<u64>,
    violation: Option<CheckError>,
    /// Operations added that take part in checks (ok ones, unknown writes).
    operations: u64,
    searches_undecided: u64,
}

struct Register {
    /// Every settled operation completed before this time; every later
    /// operation must be invoked after it.
    settled_at: u64,
    /// The values the register may hold at `settled_at`: never empty, and
    /// holding nil only as `{nil}` (before any write took effect).
    possible: BTreeSet<Value>,
    /// Unknown writes invoked before `settled_at` that may still take effect.
    floating: Vec<Operation>,
    /// Finished operations after `settled_at`.
    pending: Vec<Operation>,
    /// Every value written on this key, so a value written twice is caught
    /// across the settled point too.
    written: HashSet<Value>,
    settled_operations: u64,
}

impl Default for Register {
    fn default() -> Register {
        Register {
            settled_at: 0,
            possible: BTreeSet::from([NIL]),
            floating: Vec::new(),
            pending: Vec::new(),
            written: HashSet::new(),
            settled_operations: 0,
        }
    }
}

/// What the last check cost and how much of the history is settled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IncrementalStats {
    /// As for a full check: keys and operations taking part so far,
    /// search steps of this check, undecided searches so far.
    pub check: CheckStats,
    /// Operations settled so far (no longer searched).
    pub settled_operations: u64,
    /// Operations this check searched (windows and settling probes).
    pub window_operations: u64,
}

impl IncrementalChecker {
    pub fn new() -> IncrementalChecker {
        IncrementalChecker::default()
    }

    /// Adds a finished operation. Failed operations and unknown reads
    /// never took effect and are only validated.
    pub fn add(&mut self, operation: Operation) -> Result<(), CheckError> {
        let malformed = |operation: &Operation, reason| CheckError::Malformed {
            operation: Box::new(operation.clone()),
            reason,
        };
        match (operation.outcome, operation.complete) {
            (Outcome::Ok, None) => return Err(malformed(&operation, "ok without completion time")),
            (_, Some(complete)) if complete <= operation.invoke => {
                return Err(malformed(&operation, "completes before it is invoked"))
            }
            _ => {}
        }
        if operation.id >= WINDOW_ID_MIN {
            return Err(malformed(
                &operation,
                "id reserved for the checker's windows",
            ));
        }
        let register = self.registers.entry(operation.key).or_default();
        if operation.invoke < register.settled_at {
            return Err(malformed(
                &operation,
                "invoked before its key's settled point (it was running but not named in flight)",
            ));
        }
        if let OpKind::Write(value) = operation.kind {
            if value == NIL || !register.written.insert(value) {
                return Err(malformed(
                    &operation,
                    "a value is written twice (or nil is written)",
                ));
            }
        }
        // Even an operation that never took effect changes the verdict when
        // it was running at the last check: a running write may have taken
        // effect, a failed one did not, and a read may have seen its value.
        self.changed.insert(operation.key);
        let takes_part = matches!(
            (operation.outcome, operation.kind),
            (Outcome::Ok, _) | (Outcome::Unknown, OpKind::Write(_))
        );
        if takes_part {
            self.operations += 1;
            register.pending.push(operation);
        }
        Ok(())
    }

    /// Checks everything added so far; `in_flight` are the operations
    /// invoked and not finished (their writes may have taken effect).
    pub fn check(&mut self, in_flight: &[Operation]) -> Result<IncrementalStats, CheckError> {
        if let Some(violation) = &self.violation {
            return Err(violation.clone());
        }
        let mut running: HashMap<u64, Vec<&Operation>> = HashMap::new();
        for operation in in_flight {
            running.entry(operation.key).or_default().push(operation);
        }
        let mut stats = IncrementalStats::default();
        for key in std::mem::take(&mut self.changed) {
            let Some(register) = self.registers.get_mut(&key) else {
                continue;
            };
            let running = running.get(&key).map(Vec::as_slice).unwrap_or(&[]);
            let result = register
                .settle(key, running, &mut stats)
                .and_then(|()| register.check_pending(key, running, &mut stats));
            if let Err(error) = result {
                self.violation = Some(error.clone());
                return Err(error);
            }
        }
        self.searches_undecided += stats.check.searches_undecided;
        stats.check.keys = self.registers.len() as u64;
        stats.check.operations = self.operations;
        stats.check.searches_undecided = self.searches_undecided;
        stats.settled_operations = self.registers.values().map(|r| r.settled_operations).sum();
        Ok(stats)
    }
}

impl Register {
    /// Moves the settled point as far as the finished operations allow.
    fn settle(
        &mut self,
        key: u64,
        running: &[&Operation],
        stats: &mut IncrementalStats,
    ) -> Result<(), CheckError> {
        let oldest_running = running.iter().map(|o| o.invoke).min();
        self.pending.sort_unstable_by_key(|o| o.invoke);
        // The longest prefix of `pending` (by invocation) whose operations
        // all completed before the next one (or the oldest running one,
        // or anything still to come) was invoked.
        let mut latest_complete = 0u64;
        let mut cut: Option<(usize, u64)> = None;
        let mut scanned = self.pending.len();
        for (index, operation) in self.pending.iter().enumerate() {
            if oldest_running.is_some_and(|oldest| operation.invoke > oldest) {
                scanned = index;
                break;
            }
            if index > 0 && latest_complete < operation.invoke {
                cut = Some((index, operation.invoke));
            }
            if operation.outcome == Outcome::Ok {
                latest_complete = latest_complete.max(operation.complete.unwrap_or(0));
            }
        }
        let end = match oldest_running {
            Some(oldest) => oldest,
            // Nothing runs: whatever is invoked next comes after every
            // time recorded so far.
            None => self
                .pending
                .iter()
                .map(|o| o.complete.unwrap_or(o.invoke))
                .max()
                .unwrap_or(0)
                .saturating_add(1),
        };
        if scanned > 0 && latest_complete < end {
            cut = Some((scanned, end));
        }
        let Some((count, settled_at)) = cut else {
            return Ok(());
        };
        let chunk: Vec<Operation> = self.pending.drain(..count).collect();
        let observed: HashSet<Value> = chunk
            .iter()
            .filter_map(|o| match (o.outcome, o.kind) {
                (Outcome::Ok, OpKind::Read(value)) => Some(value),
                _ => None,
            })
            .collect();
        let possible = self.possible_after(key, &chunk, &observed, stats)?;
        let unknown_writes = chunk.iter().filter(|o| o.outcome == Outcome::Unknown);
        let mut floating: Vec<Operation> = std::mem::take(&mut self.floating)
            .into_iter()
            .chain(unknown_writes.cloned())
            .collect();
        floating.retain(|o| !matches!(o.kind, OpKind::Write(value) if observed.contains(&value)));
        self.floating = floating;
        self.possible = possible;
        self.settled_at = settled_at;
        self.settled_operations += chunk.len() as u64;
        Ok(())
    }

    /// The values the register may hold after `chunk`, which must be
    /// linearizable from `possible` (else the violation is returned).
    fn possible_after(
        &self,
        key: u64,
        chunk: &[Operation],
        observed: &HashSet<Value>,
        stats: &mut IncrementalStats,
    ) -> Result<BTreeSet<Value>, CheckError> {
        // Writes that must take effect in the chunk, with the time by
        // which they did: ok writes, and unknown writes a chunk read saw.
        let mut first_observed: HashMap<Value, u64> = HashMap::new();
        for operation in chunk {
            if let (Outcome::Ok, OpKind::Read(value), Some(complete)) =
                (operation.outcome, operation.kind, operation.complete)
            {
                let earliest = first_observed.entry(value).or_insert(complete);
                *earliest = (*earliest).min(complete);
            }
        }
        let effective: Vec<(Value, u64, u64)> = chunk
            .iter()
            .chain(&self.floating)
            .filter_map(|o| match (o.outcome, o.kind) {
                (Outcome::Ok, OpKind::Write(value)) => Some((value, o.invoke, o.complete?)),
                (Outcome::Unknown, OpKind::Write(value)) if observed.contains(&value) => {
                    Some((value, o.invoke, first_observed[&value]))
                }
                _ => None,
            })
            .collect();
        // The last write of a legal order is one no other write follows in
        // real time; without writes the register keeps a possible value.
        let candidates: Vec<Value> = match effective.iter().map(|w| w.1).max() {
            None => self.possible.iter().copied().collect(),
            Some(last_invoke) => effective
                .iter()
                .filter(|w| w.2 >= last_invoke)
                .map(|w| w.0)
                .collect(),
        };
        let mut possible = BTreeSet::new();
        for candidate in candidates {
            let window = self.window(key, chunk, &[], Some(candidate));
            stats.window_operations += window.operations.len() as u64;
            match window.check(key) {
                Ok(check) => {
                    stats.check.search_steps += check.search_steps;
                    stats.check.searches_undecided += check.searches_undecided;
                    possible.insert(candidate);
                }
                Err(CheckError::NotLinearizable { .. }) => {}
                Err(other) => return Err(other),
            }
        }
        if !possible.is_empty() {
            return Ok(possible);
        }
        // No value can follow the chunk: the chunk itself has no legal
        // order; the window without a probe says why.
        let window = self.window(key, chunk, &[], None);
        match window.check(key) {
            Err(error) => Err(error),
            Ok(_) => Err(CheckError::CheckersDisagree {
                key,
                search_says_linearizable: true,
                operations: chunk.to_vec(),
            }),
        }
    }

    /// Checks the operations after the settled point with those running.
    fn check_pending(
        &self,
        key: u64,
        running: &[&Operation],
        stats: &mut IncrementalStats,
    ) -> Result<(), CheckError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let window = self.window(key, &self.pending, running, None);
        stats.window_operations += window.operations.len() as u64;
        let check = window.check(key)?;
        stats.check.search_steps += check.search_steps;
        stats.check.searches_undecided += check.searches_undecided;
        Ok(())
    }

    /// The window of `operations` (after the settled point) and the
    /// `running` ones, starting from `possible`, with the floating writes
    /// and, with `probe`, a read of that value after everything.
    fn window(
        &self,
        key: u64,
        operations: &[Operation],
        running: &[&Operation],
        probe: Option<Value>,
    ) -> Window {
        let recorded = operations
            .iter()
            .chain(&self.floating)
            .chain(running.iter().copied())
            .map(|o| Operation {
                // A running operation may still take effect, like an unknown one.
                outcome: if o.complete.is_none() {
                    Outcome::Unknown
                } else {
                    o.outcome
                },
                ..o.clone()
            });
        // From nil alone the window is the history itself.
        if self.possible.len() == 1 && self.possible.contains(&NIL) {
            let mut window: Vec<Operation> = recorded.collect();
            if let Some(value) = probe {
                window.push(probe_read(key, &window, value, 0));
            }
            return Window {
                operations: window,
                shift: 0,
                possible: self.possible.clone(),
            };
        }
        debug_assert!(
            !self.possible.contains(&NIL),
            "nil is only ever possible alone"
        );
        let starts = self.possible.len() as u64;
        // Starting writes: invoked at 1..=n, completed at n+1..=2n, so each
        // overlaps all others and any of them can be the last.
        let shift = 2 * starts + 1;
        let mut window: Vec<Operation> = self
            .possible
            .iter()
            .enumerate()
            .map(|(i, &value)| Operation {
                id: u64::MAX - i as u64,
                client: u64::MAX,
                key,
                kind: OpKind::Write(value),
                invoke: 1 + i as u64,
                complete: Some(1 + starts + i as u64),
                outcome: Outcome::Ok,
            })
            .collect();
        window.extend(recorded.map(|o| Operation {
            invoke: o.invoke.saturating_add(shift),
            complete: o.complete.map(|c| c.saturating_add(shift)),
            ..o
        }));
        if let Some(value) = probe {
            window.push(probe_read(key, &window, value, starts));
        }
        Window {
            operations: window,
            shift,
            possible: self.possible.clone(),
        }
    }
}

/// A read of `value` invoked after everything in `window`.
fn probe_read(key: u64, window: &[Operation], value: Value, starts: u64) -> Operation {
    let last = window
        .iter()
        .map(|o| o.complete.unwrap_or(o.invoke).max(o.invoke))
        .max()
        .unwrap_or(0);
    Operation {
        id: u64::MAX - starts,
        client: u64::MAX,
        key,
        kind: OpKind::Read(value),
        invoke: last.saturating_add(1),
        complete: Some(last.saturating_add(2)),
        outcome: Outcome::Ok,
    }
}

/// Operations checked as one register's history.
struct Window {
    operations: Vec<Operation>,
    /// Added to every recorded time (0 when the window starts from nil).
    shift: u64,
    possible: BTreeSet<Value>,
}

impl Window {
    fn check(self, key: u64) -> Result<CheckStats, CheckError> {
        let Window {
            operations,
            shift,
            possible,
        } = self;
        let prepared = prepare_register(operations);
        if prepared.is_empty() {
            return Ok(CheckStats::default());
        }
        check_register(key, prepared).map_err(|error| explain_window(error, shift, &possible))
    }
}

/// Says where a window's violation comes from: the times it names are
/// shifted and it may start from values written before the settled point.
fn explain_window(error: CheckError, shift: u64, possible: &BTreeSet<Value>) -> CheckError {
    let CheckError::NotLinearizable {
        key,
        explanation,
        evidence,
        operations,
    } = error
    else {
        return error;
    };
    if shift == 0 {
        return CheckError::NotLinearizable {
            key,
            explanation,
            evidence,
            operations,
        };
    }
    let values: Vec<String> = possible.iter().map(u64::to_string).collect();
    let unshift = |operations: Vec<Operation>| -> Vec<Operation> {
        operations
            .into_iter()
            .filter(|o| o.id < WINDOW_ID_MIN)
            .map(|o| Operation {
                invoke: o.invoke - shift,
                complete: o.complete.map(|c| c - shift),
                ..o
            })
            .collect()
    };
    CheckError::NotLinearizable {
        key,
        explanation: format!(
            "starting from the settled point where the key may hold {{{}}} (times in this \
             sentence are {shift} late): {explanation}",
            values.join(", ")
        ),
        evidence: unshift(evidence),
        operations: unshift(operations),
    }
}

#[cfg(test)]
mod tests {
    use super::super::check_history;
    use super::*;
    use crate::raft::Rng;

    use OpKind::{Read, Write};
    use Outcome::{Failed, Ok as Done, Unknown};

    fn op(
        id: u64,
        kind: OpKind,
        invoke: u64,
        complete: Option<u64>,
        outcome: Outcome,
    ) -> Operation {
        Operation {
            id,
            client: id,
            key: 0,
            kind,
            invoke,
            complete,
            outcome,
        }
    }

    /// Adds `operations` (all finished) and checks with nothing in flight.
    fn feed(
        checker: &mut IncrementalChecker,
        operations: &[Operation],
    ) -> Result<IncrementalStats, CheckError> {
        for operation in operations {
            checker.add(operation.clone())?;
        }
        checker.check(&[])
    }

    #[test]
    fn a_stale_read_after_the_settled_point_is_a_violation() {
        let mut checker = IncrementalChecker::new();
        let stats = feed(
            &mut checker,
            &[
                op(1, Write(1), 1, Some(2), Done),
                op(2, Write(2), 3, Some(4), Done),
            ],
        )
        .expect("linearizable");
        assert_eq!(stats.settled_operations, 2);
        // Settled: the key holds 2. A read of 1 now is stale.
        let error = feed(&mut checker, &[op(3, Read(1), 10, Some(11), Done)]).unwrap_err();
        assert!(
            matches!(error, CheckError::NotLinearizable { key: 0, .. }),
            "{error}"
        );
        // And it stays a violation.
        assert!(checker.check(&[]).is_err());
    }

    /// A checker fed two writes (1 and 2) that overlap in time.
    fn after_two_overlapping_writes() -> IncrementalChecker {
        let mut checker = IncrementalChecker::new();
        feed(
            &mut checker,
            &[
                op(1, Write(1), 1, Some(5), Done),
                op(2, Write(2), 2, Some(6), Done),
            ],
        )
        .expect("linearizable");
        checker
    }

    #[test]
    fn overlapping_writes_at_the_settled_point_leave_both_values_possible() {
        for (seen, legal) in [(1, true), (2, true), (NIL, false)] {
            let mut checker = after_two_overlapping_writes();
            let later = [
                op(3, Read(seen), 10, Some(11), Done),
                op(4, Read(seen), 12, Some(13), Done),
            ];
            assert_eq!(feed(&mut checker, &later).is_ok(), legal, "read {seen}");
        }
        // Once one read fixed the value, the other cannot appear.
        let mut checker = after_two_overlapping_writes();
        feed(&mut checker, &[op(3, Read(1), 10, Some(11), Done)]).expect("1 may be last");
        assert!(feed(&mut checker, &[op(4, Read(2), 12, Some(13), Done)]).is_err());
    }

    #[test]
    fn an_unknown_write_may_take_effect_long_after_it_was_settled() {
        let mut checker = IncrementalChecker::new();
        feed(
            &mut checker,
            &[
                op(1, Write(1), 1, None, Unknown),
                op(2, Read(NIL), 2, Some(3), Done),
            ],
        )
        .expect("linearizable");
        feed(&mut checker, &[op(3, Write(2), 4, Some(5), Done)]).expect("linearizable");
        // The unknown write lands now, after everything settled so far.
        feed(&mut checker, &[op(4, Read(1), 8, Some(9), Done)]).expect("linearizable");
        // It cannot land a second time.
        feed(&mut checker, &[op(5, Write(3), 10, Some(11), Done)]).expect("linearizable");
        let error = feed(&mut checker, &[op(6, Read(1), 12, Some(13), Done)]).unwrap_err();
        assert!(
            matches!(error, CheckError::NotLinearizable { .. }),
            "{error}"
        );
    }

    #[test]
    fn nothing_is_settled_past_an_operation_still_running() {
        let mut checker = IncrementalChecker::new();
        checker.add(op(1, Write(1), 1, Some(2), Done)).unwrap();
        checker.add(op(3, Read(1), 5, Some(6), Done)).unwrap();
        let running = op(2, Write(2), 3, None, Unknown);
        let stats = checker
            .check(std::slice::from_ref(&running))
            .expect("linearizable");
        assert_eq!(
            stats.settled_operations, 1,
            "only the write before the running one"
        );
        // The running write completes; a read sees it after the first read.
        checker.add(op(2, Write(2), 3, Some(7), Done)).unwrap();
        checker.add(op(4, Read(2), 8, Some(9), Done)).unwrap();
        let stats = checker.check(&[]).expect("linearizable");
        assert_eq!(stats.settled_operations, 4);
        // An operation invoked before the settled point was not named in flight.
        let late = op(5, Read(2), 4, Some(10), Done);
        assert!(matches!(
            checker.add(late),
            Err(CheckError::Malformed { .. })
        ));
    }

    /// Seen while running, it may have taken effect; once it failed, the
    /// read of its value has no write to come from.
    #[test]
    fn a_running_write_that_fails_takes_its_readers_down_with_it() {
        let mut checker = IncrementalChecker::new();
        checker.add(op(2, Read(1), 3, Some(4), Done)).unwrap();
        let running = op(1, Write(1), 1, None, Unknown);
        checker
            .check(std::slice::from_ref(&running))
            .expect("it may have landed");
        checker.add(op(1, Write(1), 1, Some(6), Failed)).unwrap();
        let error = checker.check(&[]).unwrap_err();
        assert!(
            matches!(error, CheckError::NotLinearizable { .. }),
            "{error}"
        );
    }

    #[test]
    fn a_value_written_twice_across_the_settled_point_is_malformed() {
        let mut checker = IncrementalChecker::new();
        feed(&mut checker, &[op(1, Write(1), 1, Some(2), Done)]).unwrap();
        assert!(matches!(
            checker.add(op(2, Write(1), 3, Some(4), Failed)),
            Err(CheckError::Malformed { .. })
        ));
    }

    #[test]
    fn each_check_searches_only_what_was_added_since_the_last_one() {
        let mut checker = IncrementalChecker::new();
        let mut time = 0;
        for batch in 0..50u64 {
            let mut operations = Vec::new();
            for i in 0..100u64 {
                let id = batch * 100 + i;
                time += 2;
                let kind = if i % 2 == 0 {
                    Write(id / 2 + 1)
                } else {
                    Read(id / 2 + 1)
                };
                operations.push(Operation {
                    key: (id / 2) % 3,
                    ..op(id, kind, time, Some(time + 1), Done)
                });
            }
            let stats = feed(&mut checker, &operations).expect("linearizable");
            // Each op once, plus at most one probe per key, per check.
            assert!(
                stats.window_operations <= 100 + 3 * 3,
                "batch {batch}: {stats:?}"
            );
            assert_eq!(stats.settled_operations, (batch + 1) * 100);
        }
    }

    /// One operation of a random timeline, with the time its client
    /// learned how it ended (for an unknown write: gave up).
    struct Timed {
        operation: Operation,
        finished: u64,
    }

    /// A random history of `keys` atomic registers under `clients`
    /// sequential clients: each operation takes effect at a random point of
    /// its interval, an unknown write at any later time or never, a failed
    /// one never. Sometimes one read is given a wrong value.
    fn random_timeline(rng: &mut Rng, operations_max: u64, keys: u64, clients: u64) -> Vec<Timed> {
        let count = rng.range(1, operations_max + 1);
        let stride = 4 * count + 4;
        let mut slot = 0;
        let mut time = |coarse: u64| {
            slot += 1;
            coarse * stride + slot
        };
        let mut client_free_at = vec![0u64; clients as usize];
        let mut timeline = Vec::new();
        let mut effects = Vec::new();
        for id in 0..count {
            let client = rng.range(0, clients);
            let start = client_free_at[client as usize] + rng.range(0, 4);
            let length = if rng.range(0, 8) == 0 {
                rng.range(5, 40)
            } else {
                rng.range(1, 6)
            };
            let end = start + length;
            client_free_at[client as usize] = end + 1;
            let (invoke, complete) = (time(start), time(end));
            let is_write = rng.range(0, 2) == 0;
            let outcome = match rng.range(0, 10) {
                0 => Unknown,
                1 => Failed,
                _ => Done,
            };
            let effect_at = match outcome {
                Done => Some(rng.range(invoke, complete) + 1),
                Unknown if is_write && rng.range(0, 2) == 0 => {
                    Some(invoke + 1 + rng.range(0, (complete - invoke) * 3))
                }
                _ => None,
            };
            let key = rng.range(0, keys);
            timeline.push(Timed {
                operation: Operation {
                    id,
                    client,
                    key,
                    kind: if is_write { Write(id + 1) } else { Read(NIL) },
                    invoke,
                    complete: (outcome != Unknown).then_some(complete),
                    outcome,
                },
                finished: complete,
            });
            if let Some(at) = effect_at {
                effects.push((at, id as usize));
            }
        }
        effects.sort_unstable();
        let mut values = vec![NIL; keys as usize];
        for (_, index) in effects {
            let operation = &mut timeline[index].operation;
            match operation.kind {
                Write(v) => values[operation.key as usize] = v,
                Read(_) => operation.kind = Read(values[operation.key as usize]),
            }
        }
        if rng.range(0, 3) == 0 {
            let reads: Vec<usize> = (0..timeline.len())
                .filter(|&i| matches!(timeline[i].operation.kind, Read(_)))
                .collect();
            if !reads.is_empty() {
                let read = reads[rng.range(0, reads.len() as u64) as usize];
                // Nil or a value some write (of any outcome) wrote: the
                // subtle violations, not values nobody wrote.
                let writes: Vec<Value> = timeline
                    .iter()
                    .filter_map(|t| match t.operation.kind {
                        Write(value) => Some(value),
                        Read(_) => None,
                    })
                    .collect();
                let pick = rng.range(0, writes.len() as u64 + 1) as usize;
                timeline[read].operation.kind = Read(writes.get(pick).copied().unwrap_or(NIL));
            }
        }
        timeline
    }

    /// The history as known at `now`: finished operations as they ended,
    /// running ones as unknown and unfinished.
    fn running_at(timeline: &[Timed], now: u64) -> Vec<Operation> {
        timeline
            .iter()
            .filter(|t| t.operation.invoke <= now && t.finished > now)
            .map(|t| Operation {
                kind: match t.operation.kind {
                    Read(_) => Read(NIL),
                    write => write,
                },
                complete: None,
                outcome: Unknown,
                ..t.operation.clone()
            })
            .collect()
    }

    #[test]
    fn incremental_and_full_checks_agree_on_random_growing_histories() {
        let mut rng = Rng::new(0x1ac7);
        let (mut linearizable, mut violations, mut checks) = (0u64, 0u64, 0u64);
        let (mut settled, mut operations) = (0u64, 0u64);
        for round in 0..3_000 {
            let keys = rng.range(1, 4);
            let clients = rng.range(1, 8);
            let timeline = random_timeline(&mut rng, 120, keys, clients);
            let mut order: Vec<usize> = (0..timeline.len()).collect();
            order.sort_by_key(|&i| timeline[i].finished);
            let end = timeline.iter().map(|t| t.finished).max().unwrap_or(0);
            let mut checker = IncrementalChecker::new();
            let mut added = 0;
            let mut now = 0;
            let mut verdict = Ok(());
            // Checks a few times per history, or after nearly every event.
            let gap_max = end / [4, 40][rng.range(0, 2) as usize] + 2;
            while now <= end {
                now += rng.range(1, gap_max);
                while added < order.len() && timeline[order[added]].finished <= now {
                    checker
                        .add(timeline[order[added]].operation.clone())
                        .unwrap_or_else(|e| panic!("round {round}: {e}"));
                    added += 1;
                }
                let running = running_at(&timeline, now);
                let incremental = checker.check(&running);
                let mut snapshot: Vec<Operation> = order[..added]
                    .iter()
                    .map(|&i| timeline[i].operation.clone())
                    .collect();
                snapshot.extend(running);
                let full = check_history(&snapshot);
                checks += 1;
                match (&incremental, &full) {
                    (Ok(_), Ok(_)) => {}
                    (Err(CheckError::NotLinearizable { .. }), Err(CheckError::NotLinearizable { .. })) => {}
                    _ => panic!(
                        "round {round} at {now}: incremental {incremental:?}, full {full:?}, history {:#?}",
                        timeline.iter().map(|t| &t.operation).collect::<Vec<_>>()
                    ),
                }
                verdict = full.map(|_| ());
            }
            if let Ok(stats) = checker.check(&[]) {
                settled += stats.settled_operations;
                operations += stats.check.operations;
            }
            match verdict {
                Ok(()) => linearizable += 1,
                Err(_) => violations += 1,
            }
        }
        // Both verdicts must be well represented for the agreement to mean much.
        assert!(
            linearizable > 1_000 && violations > 300 && checks > 10_000,
            "{linearizable} / {violations} / {checks}"
        );
        // And the incremental side must really settle most of what it saw.
        assert!(
            settled * 2 > operations,
            "{settled} of {operations} settled"
        );
    }
}
