//! The clients' history: every operation with its logical invocation and
//! completion times and its outcome, ready for the linearizability checker.

use raftkv::message::{Index, NodeId, Term};

use raftkv::linearizability::{OpKind, Operation, Outcome, Value, NIL};

/// Identifies an operation; also the read context handed to `read_index`.
pub type OpId = u64;

/// Where a write went in the log, as `propose` reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub node: NodeId,
    pub term: Term,
    pub index: Index,
}

#[derive(Clone, Debug)]
pub struct OpRecord {
    pub client: u64,
    pub key: u64,
    pub kind: OpKind,
    pub invoke: u64,
    pub complete: Option<u64>,
    pub outcome: Outcome,
    pub proposal: Option<Proposal>,
    /// True while the outcome may still change (not yet definite).
    pub open: bool,
}

/// Counters for the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistoryStats {
    pub writes_ok: u64,
    pub writes_failed: u64,
    pub writes_unknown: u64,
    pub reads_ok: u64,
    pub reads_failed: u64,
}

impl HistoryStats {
    pub fn ok(&self) -> u64 {
        self.writes_ok + self.reads_ok
    }

    pub fn add(&mut self, other: &HistoryStats) {
        self.writes_ok += other.writes_ok;
        self.writes_failed += other.writes_failed;
        self.writes_unknown += other.writes_unknown;
        self.reads_ok += other.reads_ok;
        self.reads_failed += other.reads_failed;
    }
}

/// All operations, and a logical clock that orders every invocation and
/// completion strictly (several happen within one tick).
#[derive(Default)]
pub struct History {
    ops: Vec<OpRecord>,
    clock: u64,
}

impl History {
    fn tick_clock(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// The logical time now, advancing the clock.
    pub fn now(&mut self) -> u64 {
        self.tick_clock()
    }

    pub fn get(&self, op: OpId) -> &OpRecord {
        &self.ops[op as usize]
    }

    /// Starts a write of a fresh unique value; returns its id and value.
    pub fn invoke_write(&mut self, client: u64, key: u64) -> (OpId, Value) {
        let op = self.ops.len() as OpId;
        // Values are unique per write and never NIL.
        let value = op + 1;
        let invoke = self.tick_clock();
        self.ops.push(OpRecord {
            client,
            key,
            kind: OpKind::Write(value),
            invoke,
            complete: None,
            outcome: Outcome::Unknown,
            proposal: None,
            open: true,
        });
        debug_assert_ne!(value, NIL);
        (op, value)
    }

    pub fn invoke_read(&mut self, client: u64, key: u64) -> OpId {
        let op = self.ops.len() as OpId;
        let invoke = self.tick_clock();
        self.ops.push(OpRecord {
            client,
            key,
            kind: OpKind::Read(NIL),
            invoke,
            complete: None,
            outcome: Outcome::Unknown,
            proposal: None,
            open: true,
        });
        op
    }

    pub fn set_proposal(&mut self, op: OpId, proposal: Proposal) {
        self.ops[op as usize].proposal = Some(proposal);
    }

    /// The operation definitely did not take effect.
    pub fn fail(&mut self, op: OpId) {
        let now = self.tick_clock();
        let record = &mut self.ops[op as usize];
        debug_assert!(record.open);
        record.outcome = Outcome::Failed;
        record.complete = Some(now);
        record.open = false;
    }

    /// A write took effect by now.
    pub fn complete_write(&mut self, op: OpId) {
        let now = self.tick_clock();
        self.complete_write_at(op, now);
    }

    /// A write took effect by logical time `at`, which is after its
    /// invocation (it was applied then).
    pub fn complete_write_at(&mut self, op: OpId, at: u64) {
        let record = &mut self.ops[op as usize];
        debug_assert!(record.open && at > record.invoke);
        record.outcome = Outcome::Ok;
        record.complete = Some(at);
        record.open = false;
    }

    /// A read returned `value` now.
    pub fn complete_read(&mut self, op: OpId, value: Value) {
        let now = self.tick_clock();
        let record = &mut self.ops[op as usize];
        debug_assert!(record.open);
        record.kind = OpKind::Read(value);
        record.outcome = Outcome::Ok;
        record.complete = Some(now);
        record.open = false;
    }

    /// Writes whose outcome is still open, with their proposals.
    pub fn open_writes(&self) -> Vec<(OpId, Option<Proposal>)> {
        self.ops
            .iter()
            .enumerate()
            .filter(|(_, r)| r.open && matches!(r.kind, OpKind::Write(_)))
            .map(|(op, r)| (op as OpId, r.proposal))
            .collect()
    }

    pub fn stats(&self) -> HistoryStats {
        let mut stats = HistoryStats::default();
        for record in &self.ops {
            match (record.kind, record.outcome) {
                (OpKind::Write(_), Outcome::Ok) => stats.writes_ok += 1,
                (OpKind::Write(_), Outcome::Failed) => stats.writes_failed += 1,
                (OpKind::Write(_), Outcome::Unknown) => stats.writes_unknown += 1,
                (OpKind::Read(_), Outcome::Ok) => stats.reads_ok += 1,
                (OpKind::Read(_), _) => stats.reads_failed += 1,
            }
        }
        stats
    }

    /// The history for the checker. Reads still open observed nothing and
    /// count as failed; open writes are unknown.
    pub fn operations(&self) -> Vec<Operation> {
        self.ops
            .iter()
            .enumerate()
            .map(|(op, r)| Operation {
                id: op as u64,
                client: r.client,
                key: r.key,
                kind: r.kind,
                invoke: r.invoke,
                complete: r.complete,
                outcome: match (r.kind, r.outcome) {
                    (OpKind::Read(_), Outcome::Unknown) => Outcome::Failed,
                    (_, outcome) => outcome,
                },
            })
            .collect()
    }

    /// The operations that completed ok, for the final durability check.
    pub fn ok_writes(&self) -> impl Iterator<Item = (OpId, &OpRecord)> {
        self.ops
            .iter()
            .enumerate()
            .filter(|(_, r)| r.outcome == Outcome::Ok && matches!(r.kind, OpKind::Write(_)))
            .map(|(op, r)| (op as OpId, r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_strictly_increasing_and_values_unique() {
        let mut history = History::default();
        let (a, va) = history.invoke_write(1, 0);
        let (b, vb) = history.invoke_write(2, 0);
        let r = history.invoke_read(3, 0);
        assert_ne!(va, vb);
        history.complete_write(a);
        history.fail(b);
        history.complete_read(r, va);
        let ops = history.operations();
        assert!(ops[0].invoke < ops[1].invoke && ops[1].invoke < ops[2].invoke);
        assert!(ops[0].complete.unwrap() < ops[2].complete.unwrap());
        assert_eq!(ops[2].kind, OpKind::Read(va));
        let stats = history.stats();
        assert_eq!(
            (stats.writes_ok, stats.writes_failed, stats.reads_ok),
            (1, 1, 1)
        );
        assert!(history.open_writes().is_empty());
    }
}
