//! The client history of a chaos run: every operation the workload sent
//! (client, key, read or write, unique value, invoke and complete time,
//! outcome), as `history.jsonl` lines, and its check by the core's
//! linearizability checker (`raftkv::linearizability`, the simulator's).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use raftkv::linearizability::{check_history, CheckError, CheckStats, OpKind, Operation, Outcome};
use serde_json::{json, Value};

/// One operation as the workload saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub client: u64,
    pub key: String,
    pub kind: RecordKind,
    /// Microseconds since the run started; unique across the history.
    pub invoke_us: u64,
    /// `None` while in flight (or never completed).
    pub complete_us: Option<u64>,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// The value written (unique, never 0).
    Write(u64),
    /// The value read (`None`: the key was absent, or the read did not
    /// complete).
    Read(Option<u64>),
}

impl Record {
    pub fn to_json(&self) -> Value {
        let (op, value) = match &self.kind {
            RecordKind::Write(v) => ("write", Some(v.to_string())),
            RecordKind::Read(v) => ("read", v.map(|v| v.to_string())),
        };
        json!({
            "client": self.client,
            "key": self.key,
            "op": op,
            "value": value,
            "invoke_us": self.invoke_us,
            "complete_us": self.complete_us,
            "outcome": outcome_name(self.outcome),
        })
    }

    /// Parses one `history.jsonl` line; the error names what is wrong.
    pub fn from_json(line: &Value) -> Result<Record, String> {
        let text = |name: &str| {
            line[name]
                .as_str()
                .ok_or_else(|| format!("field {name:?} missing or not a string"))
        };
        let number = |name: &str| {
            line[name]
                .as_u64()
                .ok_or_else(|| format!("field {name:?} missing or not a number"))
        };
        let value = match &line["value"] {
            Value::Null => None,
            Value::String(v) => Some(
                v.parse::<u64>()
                    .map_err(|_| format!("value {v:?} is not a number"))?,
            ),
            other => return Err(format!("value {other} is neither a string nor null")),
        };
        let kind = match text("op")? {
            "write" => RecordKind::Write(value.ok_or("a write without a value")?),
            "read" => RecordKind::Read(value),
            other => return Err(format!("op {other:?} is neither read nor write")),
        };
        let outcome = match text("outcome")? {
            "ok" => Outcome::Ok,
            "failed" => Outcome::Failed,
            "unknown" => Outcome::Unknown,
            other => return Err(format!("outcome {other:?} is not ok, failed or unknown")),
        };
        Ok(Record {
            client: number("client")?,
            key: text("key")?.to_string(),
            kind,
            invoke_us: number("invoke_us")?,
            complete_us: line["complete_us"].as_u64(),
            outcome,
        })
    }
}

pub fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Ok => "ok",
        Outcome::Failed => "failed",
        Outcome::Unknown => "unknown",
    }
}

/// The history being recorded, shared by the workload's clients. Times are
/// microseconds since `started`, made unique under the lock.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Mutex<RecorderState>>,
    started: Instant,
    /// Records kept at most (`Recorder::bounded`): the history is full then.
    records_max: usize,
}

/// What `Recorder::invoke` returns for an operation not recorded because
/// the history is full; `complete` ignores it.
pub const NOT_RECORDED: usize = usize::MAX;

struct RecorderState {
    records: Vec<Record>,
    /// Operations invoked once the history was full, not recorded.
    not_recorded: u64,
    last_us: u64,
    /// Indexes of the records that ended (ok, failed or unknown), in the
    /// order they ended: what an incremental check takes in, once each.
    finished: Vec<usize>,
    /// Indexes of the records invoked and not ended yet.
    in_flight: BTreeSet<usize>,
}

/// What happened since an incremental check last looked (`Recorder::progress`).
#[derive(Clone, Debug, Default)]
pub struct Progress {
    /// Records that ended since then, with their indexes.
    pub finished: Vec<(usize, Record)>,
    /// Records still running, with their indexes.
    pub in_flight: Vec<(usize, Record)>,
    /// Pass this to the next `progress` call.
    pub finished_next: usize,
    /// Records in the history.
    pub total: usize,
    /// Operations not recorded since the history became full.
    pub not_recorded: u64,
}

impl Recorder {
    pub fn new(started: Instant) -> Recorder {
        Recorder::bounded(started, usize::MAX)
    }

    /// A recorder that keeps at most `records_max` operations. Past that,
    /// operations are not recorded, and a read that was running when the
    /// history filled up ends unknown: it may have seen a write that is not
    /// recorded. So the history stays one a correct store produces (every
    /// operation invoked before it filled), and checking it stays sound.
    pub fn bounded(started: Instant, records_max: usize) -> Recorder {
        Recorder {
            inner: Arc::new(Mutex::new(RecorderState {
                records: Vec::new(),
                not_recorded: 0,
                last_us: 0,
                finished: Vec::new(),
                in_flight: BTreeSet::new(),
            })),
            started,
            records_max,
        }
    }

    fn now_us(&self, state: &mut RecorderState) -> u64 {
        let now = (self.started.elapsed().as_micros() as u64).max(state.last_us + 1);
        state.last_us = now;
        now
    }

    /// Records an invocation; returns its index for `complete`
    /// (`NOT_RECORDED` once the history is full).
    pub fn invoke(&self, client: u64, key: &str, kind: RecordKind) -> usize {
        let mut state = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if state.records.len() >= self.records_max {
            state.not_recorded += 1;
            return NOT_RECORDED;
        }
        let invoke_us = self.now_us(&mut state);
        state.records.push(Record {
            client,
            key: key.to_string(),
            kind,
            invoke_us,
            complete_us: None,
            outcome: Outcome::Unknown,
        });
        let index = state.records.len() - 1;
        state.in_flight.insert(index);
        index
    }

    /// Records how operation `index` ended (a read with the value it saw).
    pub fn complete(&self, index: usize, outcome: Outcome, read: Option<Option<u64>>) {
        if index == NOT_RECORDED {
            return;
        }
        let mut state = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let complete_us = self.now_us(&mut state);
        let full = state.records.len() >= self.records_max;
        let record = &mut state.records[index];
        let is_read = matches!(record.kind, RecordKind::Read(_));
        record.outcome = if full && is_read {
            Outcome::Unknown
        } else {
            outcome
        };
        if record.outcome != Outcome::Unknown {
            record.complete_us = Some(complete_us);
        }
        if let (RecordKind::Read(seen), Some(value), false) = (&mut record.kind, read, full) {
            *seen = value;
        }
        if state.in_flight.remove(&index) {
            state.finished.push(index);
        }
    }

    /// The records that ended after the first `finished_from` that ended,
    /// and those still running, taken at one instant.
    pub fn progress(&self, finished_from: usize) -> Progress {
        let state = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let from = finished_from.min(state.finished.len());
        Progress {
            finished: state.finished[from..]
                .iter()
                .map(|&i| (i, state.records[i].clone()))
                .collect(),
            in_flight: state
                .in_flight
                .iter()
                .map(|&i| (i, state.records[i].clone()))
                .collect(),
            finished_next: state.finished.len(),
            total: state.records.len(),
            not_recorded: state.not_recorded,
        }
    }

    pub fn records(&self) -> Vec<Record> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .records
            .clone()
    }
}

/// Counts of a history by kind and outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub writes_ok: u64,
    pub writes_failed: u64,
    pub writes_unknown: u64,
    pub reads_ok: u64,
    pub reads_failed: u64,
    pub reads_unknown: u64,
}

pub fn tally(records: &[Record]) -> Tally {
    let mut t = Tally::default();
    for record in records {
        let slot = match (&record.kind, record.outcome) {
            (RecordKind::Write(_), Outcome::Ok) => &mut t.writes_ok,
            (RecordKind::Write(_), Outcome::Failed) => &mut t.writes_failed,
            (RecordKind::Write(_), Outcome::Unknown) => &mut t.writes_unknown,
            (RecordKind::Read(_), Outcome::Ok) => &mut t.reads_ok,
            (RecordKind::Read(_), Outcome::Failed) => &mut t.reads_failed,
            (RecordKind::Read(_), Outcome::Unknown) => &mut t.reads_unknown,
        };
        *slot += 1;
    }
    t
}

/// The verdict on a history.
#[derive(Clone, Debug)]
pub enum Verdict {
    Linearizable(CheckStats),
    /// Not linearizable: the key (by name) and the checker's explanation.
    Violation {
        key: String,
        report: String,
    },
    /// The history itself is malformed or the checker disagreed with itself.
    Invalid(String),
}

impl Verdict {
    pub fn passed(&self) -> bool {
        matches!(self, Verdict::Linearizable(_))
    }
}

/// Checks `records` per key with the core's checker.
pub fn check(records: &[Record]) -> Verdict {
    let mut key_ids: BTreeMap<&str, u64> = BTreeMap::new();
    for record in records {
        let next = key_ids.len() as u64;
        key_ids.entry(record.key.as_str()).or_insert(next);
    }
    let key_names: BTreeMap<u64, &str> = key_ids.iter().map(|(k, v)| (*v, *k)).collect();
    let operations: Vec<Operation> = records
        .iter()
        .enumerate()
        .map(|(i, record)| Operation {
            id: i as u64,
            client: record.client,
            key: key_ids[record.key.as_str()],
            kind: match record.kind {
                RecordKind::Write(value) => OpKind::Write(value),
                RecordKind::Read(value) => {
                    OpKind::Read(value.unwrap_or(raftkv::linearizability::NIL))
                }
            },
            invoke: record.invoke_us,
            complete: record.complete_us,
            outcome: record.outcome,
        })
        .collect();
    match check_history(&operations) {
        Ok(stats) => Verdict::Linearizable(stats),
        Err(error @ CheckError::NotLinearizable { key, .. }) => Verdict::Violation {
            key: key_names.get(&key).unwrap_or(&"?").to_string(),
            report: error.to_string(),
        },
        Err(other) => Verdict::Invalid(other.to_string()),
    }
}

/// Acknowledged writes that the final reads show lost. Per key, the final
/// read (the last read in the history) sees the value of some write W (or
/// nil); an acknowledged write A is lost when it completed before that read
/// began while W (never, for nil) completed before A began: A is then
/// certainly newer than what the read saw. Returns (key, what the read saw,
/// the newest such A's value).
pub fn lost_writes(records: &[Record]) -> Vec<(String, Option<u64>, u64)> {
    let mut lost = Vec::new();
    let mut by_key: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for record in records {
        by_key.entry(record.key.as_str()).or_default().push(record);
    }
    for (key, ops) in by_key {
        let Some(last_read) = ops
            .iter()
            .filter(|r| matches!(r.kind, RecordKind::Read(_)) && r.outcome == Outcome::Ok)
            .max_by_key(|r| r.invoke_us)
        else {
            continue;
        };
        let RecordKind::Read(seen) = last_read.kind else {
            continue;
        };
        // When the write the read saw completed (never, for an unknown
        // outcome: it may have landed at any time); nil is older than all.
        let seen_completed: Option<u64> = match seen {
            None => Some(0),
            Some(value) => ops
                .iter()
                .find(|r| r.kind == RecordKind::Write(value))
                .and_then(|w| w.complete_us),
        };
        let Some(seen_completed) = seen_completed else {
            continue;
        };
        let newer = ops
            .iter()
            .filter(|r| r.outcome == Outcome::Ok)
            .filter(|r| r.complete_us.is_some_and(|c| c < last_read.invoke_us))
            .filter(|r| r.invoke_us > seen_completed)
            .filter_map(|r| match r.kind {
                RecordKind::Write(value) => Some((r.complete_us.unwrap_or(0), value)),
                RecordKind::Read(_) => None,
            })
            .max();
        if let Some((_, value)) = newer {
            lost.push((key.to_string(), seen, value));
        }
    }
    lost
}

/// `history.jsonl`: one record a line.
pub fn to_jsonl(records: &[Record]) -> String {
    records
        .iter()
        .map(|r| r.to_json().to_string() + "\n")
        .collect()
}

/// Reads a `history.jsonl` file.
pub fn load(path: &std::path::Path) -> Result<Vec<Record>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let value: Value = serde_json::from_str(line)
                .map_err(|e| format!("{} line {}: not JSON: {e}", path.display(), i + 1))?;
            Record::from_json(&value).map_err(|e| format!("{} line {}: {e}", path.display(), i + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: u64, kind: RecordKind, invoke: u64, complete: u64) -> Record {
        Record {
            client,
            key: "chaos:0".into(),
            kind,
            invoke_us: invoke,
            complete_us: Some(complete),
            outcome: Outcome::Ok,
        }
    }

    #[test]
    fn records_round_trip_through_json() {
        let records = [
            op(1, RecordKind::Write(7), 10, 20),
            op(2, RecordKind::Read(None), 11, 21),
            Record {
                complete_us: None,
                outcome: Outcome::Unknown,
                ..op(3, RecordKind::Write(9), 12, 0)
            },
        ];
        for record in &records {
            assert_eq!(&Record::from_json(&record.to_json()).unwrap(), record);
        }
        let bad = json!({"client": 1, "key": "k", "op": "cas", "invoke_us": 1, "outcome": "ok"});
        assert_eq!(
            Record::from_json(&bad).unwrap_err(),
            "op \"cas\" is neither read nor write"
        );
    }

    #[test]
    fn a_stale_read_is_a_violation_that_names_its_key() {
        let fine = vec![
            op(1, RecordKind::Write(1), 10, 20),
            op(1, RecordKind::Write(2), 30, 40),
            op(2, RecordKind::Read(Some(2)), 50, 60),
        ];
        assert!(check(&fine).passed());
        assert!(lost_writes(&fine).is_empty());
        let mut stale = fine.clone();
        stale[2].kind = RecordKind::Read(Some(1));
        match check(&stale) {
            Verdict::Violation { key, .. } => assert_eq!(key, "chaos:0"),
            other => panic!("a stale read passed: {other:?}"),
        }
        assert_eq!(
            lost_writes(&stale),
            vec![("chaos:0".to_string(), Some(1), 2)]
        );
    }

    /// Two overlapping acknowledged writes may take effect in either order:
    /// a final read of the one that began first loses nothing.
    #[test]
    fn overlapping_writes_may_land_in_either_order() {
        let records = vec![
            op(1, RecordKind::Write(1), 10, 40),
            op(2, RecordKind::Write(2), 20, 30),
            op(3, RecordKind::Read(Some(1)), 50, 60),
        ];
        assert!(check(&records).passed());
        assert!(lost_writes(&records).is_empty());
        let mut nil = records.clone();
        nil[2].kind = RecordKind::Read(None);
        assert_eq!(lost_writes(&nil), vec![("chaos:0".to_string(), None, 1)]);
    }

    /// A full history records nothing more, and a read that was running
    /// when it filled ends unknown: it may have seen an unrecorded write.
    #[test]
    fn a_full_recorder_keeps_its_history_checkable() {
        let recorder = Recorder::bounded(Instant::now(), 3);
        let first = recorder.invoke(1, "k", RecordKind::Write(1));
        recorder.complete(first, Outcome::Ok, None);
        let running_read = recorder.invoke(2, "k", RecordKind::Read(None));
        let running_write = recorder.invoke(3, "k", RecordKind::Write(2));
        let unrecorded = recorder.invoke(4, "k", RecordKind::Write(3));
        assert_eq!(unrecorded, NOT_RECORDED);
        recorder.complete(unrecorded, Outcome::Ok, None);
        // The read saw the write nobody recorded.
        recorder.complete(running_read, Outcome::Ok, Some(Some(3)));
        recorder.complete(running_write, Outcome::Ok, None);
        let records = recorder.records();
        assert_eq!(records.len(), 3);
        assert_eq!(
            (records[1].kind.clone(), records[1].outcome),
            (RecordKind::Read(None), Outcome::Unknown)
        );
        assert_eq!(records[2].outcome, Outcome::Ok, "writes keep their outcome");
        assert!(check(&records).passed());
        let progress = recorder.progress(0);
        assert_eq!((progress.total, progress.not_recorded), (3, 1));
        assert_eq!(progress.finished.len(), 3);
    }

    #[test]
    fn recorder_times_are_unique_and_outcomes_stick() {
        let recorder = Recorder::new(Instant::now());
        let a = recorder.invoke(1, "k", RecordKind::Write(5));
        let b = recorder.invoke(2, "k", RecordKind::Read(None));
        assert_eq!(recorder.progress(0).in_flight.len(), 2);
        recorder.complete(b, Outcome::Ok, Some(Some(5)));
        recorder.complete(a, Outcome::Unknown, None);
        let records = recorder.records();
        assert!(records[0].invoke_us < records[1].invoke_us);
        assert_eq!(records[0].complete_us, None);
        assert_eq!(records[1].kind, RecordKind::Read(Some(5)));
        // Both ended, the read first; nothing runs.
        let progress = recorder.progress(0);
        let ended: Vec<usize> = progress.finished.iter().map(|(i, _)| *i).collect();
        assert_eq!(ended, vec![b, a]);
        assert!(progress.in_flight.is_empty());
        assert!(recorder
            .progress(progress.finished_next)
            .finished
            .is_empty());
        assert_eq!(
            tally(&records),
            Tally {
                writes_unknown: 1,
                reads_ok: 1,
                ..Tally::default()
            }
        );
    }
}
