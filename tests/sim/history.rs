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

/// One operation as the checker will see it (its id is its place in the
/// history), and what the simulator knows about it besides.
#[derive(Clone, Debug)]
pub struct OpRecord {
    pub op: Operation,
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
        // Values are unique per write and never NIL.
        let value = self.ops.len() as Value + 1;
        debug_assert_ne!(value, NIL);
        (self.invoke(client, key, OpKind::Write(value)), value)
    }

    pub fn invoke_read(&mut self, client: u64, key: u64) -> OpId {
        self.invoke(client, key, OpKind::Read(NIL))
    }

    fn invoke(&mut self, client: u64, key: u64, kind: OpKind) -> OpId {
        let id = self.ops.len() as OpId;
        let invoke = self.tick_clock();
        self.ops.push(OpRecord {
            op: Operation {
                id,
                client,
                key,
                kind,
                invoke,
                complete: None,
                outcome: Outcome::Unknown,
            },
            proposal: None,
            open: true,
        });
        id
    }

    pub fn set_proposal(&mut self, op: OpId, proposal: Proposal) {
        self.ops[op as usize].proposal = Some(proposal);
    }

    /// The operation definitely did not take effect.
    pub fn fail(&mut self, op: OpId) {
        let now = self.tick_clock();
        self.finish(op, Outcome::Failed, now);
    }

    /// A write took effect by now.
    pub fn complete_write(&mut self, op: OpId) {
        let now = self.tick_clock();
        self.complete_write_at(op, now);
    }

    /// A write took effect by logical time `at`, which is after its
    /// invocation (it was applied then).
    pub fn complete_write_at(&mut self, op: OpId, at: u64) {
        debug_assert!(at > self.get(op).op.invoke);
        self.finish(op, Outcome::Ok, at);
    }

    /// A read returned `value` now.
    pub fn complete_read(&mut self, op: OpId, value: Value) {
        let now = self.tick_clock();
        self.ops[op as usize].op.kind = OpKind::Read(value);
        self.finish(op, Outcome::Ok, now);
    }

    fn finish(&mut self, op: OpId, outcome: Outcome, at: u64) {
        let record = &mut self.ops[op as usize];
        debug_assert!(record.open);
        record.op.outcome = outcome;
        record.op.complete = Some(at);
        record.open = false;
    }

    /// Writes whose outcome is still open, with their proposals.
    pub fn open_writes(&self) -> Vec<(OpId, Option<Proposal>)> {
        self.ops
            .iter()
            .enumerate()
            .filter(|(_, r)| r.open && matches!(r.op.kind, OpKind::Write(_)))
            .map(|(op, r)| (op as OpId, r.proposal))
            .collect()
    }

    pub fn stats(&self) -> HistoryStats {
        let mut stats = HistoryStats::default();
        for record in &self.ops {
            match (record.op.kind, record.op.outcome) {
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
            .map(|r| Operation {
                outcome: match (r.op.kind, r.op.outcome) {
                    (OpKind::Read(_), Outcome::Unknown) => Outcome::Failed,
                    (_, outcome) => outcome,
                },
                ..r.op.clone()
            })
            .collect()
    }

    /// The operations that completed ok, for the final durability check.
    pub fn ok_writes(&self) -> impl Iterator<Item = (OpId, &OpRecord)> {
        self.ops
            .iter()
            .enumerate()
            .filter(|(_, r)| r.op.outcome == Outcome::Ok && matches!(r.op.kind, OpKind::Write(_)))
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
