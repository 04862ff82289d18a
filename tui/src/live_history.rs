//! The dashboard's live verdict: the continuous load (`W`) also runs
//! clients that read and write a few contended keys with unique values, and
//! the bulk writes (`w`) record each key they write and the keys they read
//! back afterwards; every operation goes to one `chaos::Recorder`. A
//! background task checks the history for linearizability with the core's
//! checker, incrementally (`LiveCheck`), off the draw loop (on a blocking
//! thread), and reports a `HistoryVerdict`.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use raftkv::linearizability::{CheckError, IncrementalChecker, OpKind, Operation, NIL};

use crate::chaos::{lost_writes, Record, RecordKind, Recorder};

/// Contended keys of the dashboard's load: `live:0` .. `live:4`.
pub const KEY_PREFIX: &str = "live";
/// Clients on the contended keys while the load runs.
pub const CLIENTS: u64 = 2;
/// The history is checked again this often while it grows.
pub const CHECK_INTERVAL_MS: u64 = 2_000;
/// Client ids of the bulk writes start here (the load's are small numbers);
/// each bulk write takes `jobs::BULK_WRITERS_MAX` new ones.
pub const BULK_CLIENT_ID_FIRST: u64 = 1_000_000;
/// The first client id of the write load's writers (`W`): each load takes
/// `jobs::LOAD_WRITERS` new ids from here.
pub const LOAD_CLIENT_ID_FIRST: u64 = 2_000_000_000;

/// Operations the dashboard's history keeps (`Recorder::bounded`): about
/// 575 bytes each with the checker's state, 690 MB in all when full
/// (docs/BENCHMARKS.md), where 30 minutes of load took 8.4 GB unbounded.
/// A longer checked run is `raftkv chaos`'s job.
pub const RECORDS_MAX: usize = 1_000_000;

/// The verdict on the history so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryVerdict {
    pub ops: u64,
    /// Operations not recorded (nor checked) since the history filled up.
    pub not_recorded: u64,
    /// `None`: linearizable, no acknowledged write lost. `Some`: what breaks
    /// it (the key first).
    pub problem: Option<String>,
}

/// Checks the recorded history every `CHECK_INTERVAL_MS` while it grows.
pub fn spawn_checker(
    recorder: Recorder,
    reports: mpsc::Sender<HistoryVerdict>,
    cancel: CancellationToken,
    tracker: &TaskTracker,
) {
    tracker.spawn(async move {
        let mut live = LiveCheck::default();
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(CHECK_INTERVAL_MS)) => {}
            }
            let recorder = recorder.clone();
            let checked = tokio::task::spawn_blocking(move || {
                let verdict = live.step(&recorder);
                (live, verdict)
            })
            .await;
            let Ok((checked_live, verdict)) = checked else {
                return;
            };
            live = checked_live;
            let Some(verdict) = verdict else { continue };
            if reports.send(verdict).await.is_err() {
                return;
            }
        }
    });
}

/// The live check: the core's `IncrementalChecker` fed from the recorder,
/// so each check costs what was recorded since the last one. A violation
/// is reported at once, with the key's name, as a lost acknowledged write
/// when the key's final read shows one (`lost_writes`, over that key's
/// records only). The history is not checked again in full here: on a
/// million operations that takes a minute, during which the header would
/// go on showing the last verdict; the export (`e`) checks it in full.
#[derive(Default)]
pub struct LiveCheck {
    checker: IncrementalChecker,
    key_ids: HashMap<String, u64>,
    /// Where the recorder's list of ended operations is read from next.
    finished_next: usize,
    /// Records in the history at the last check.
    checked_total: usize,
    /// Operations not recorded at the last check (the history is full).
    not_recorded: u64,
    /// The verdict once it is a problem: it stays.
    problem: Option<HistoryVerdict>,
}

impl LiveCheck {
    /// Checks what was recorded since the last call; `None` when nothing was.
    pub fn step(&mut self, recorder: &Recorder) -> Option<HistoryVerdict> {
        let progress = recorder.progress(self.finished_next);
        if progress.finished.is_empty()
            && progress.total == self.checked_total
            && progress.not_recorded == self.not_recorded
        {
            return None;
        }
        self.finished_next = progress.finished_next;
        self.checked_total = progress.total;
        self.not_recorded = progress.not_recorded;
        if let Some(problem) = &self.problem {
            return Some(HistoryVerdict {
                ops: progress.total as u64,
                not_recorded: progress.not_recorded,
                ..problem.clone()
            });
        }
        let mut result = Ok(());
        for (index, record) in &progress.finished {
            let operation = self.operation(*index, record);
            result = result.and_then(|()| self.checker.add(operation));
        }
        let in_flight: Vec<Operation> = progress
            .in_flight
            .iter()
            .map(|(index, record)| self.operation(*index, record))
            .collect();
        let result = result.and_then(|()| self.checker.check(&in_flight).map(|_| ()));
        let Err(error) = result else {
            return Some(HistoryVerdict {
                ops: progress.total as u64,
                not_recorded: progress.not_recorded,
                problem: None,
            });
        };
        let verdict = HistoryVerdict {
            ops: progress.total as u64,
            not_recorded: progress.not_recorded,
            problem: Some(self.describe(&error, recorder)),
        };
        self.problem = Some(verdict.clone());
        Some(verdict)
    }

    /// The header's words for a failed check, key first.
    fn describe(&self, error: &CheckError, recorder: &Recorder) -> String {
        let first_line = |error: &CheckError| {
            let text = error.to_string();
            text.lines().next().unwrap_or_default().to_string()
        };
        let CheckError::NotLinearizable { key, .. } = error else {
            return format!("cannot check: {}", first_line(error));
        };
        let Some(name) = self
            .key_ids
            .iter()
            .find_map(|(name, id)| (id == key).then_some(name))
        else {
            return first_line(error);
        };
        let records: Vec<Record> = recorder
            .records()
            .into_iter()
            .filter(|r| &r.key == name)
            .collect();
        match lost_writes(&records).first() {
            Some((_, seen, acked)) => {
                let seen = seen.map_or("nil".to_string(), |v| v.to_string());
                format!("key {name}: read {seen} after write {acked} was acknowledged")
            }
            None => format!("key {name}: {}", first_line(error)),
        }
    }

    fn operation(&mut self, index: usize, record: &Record) -> Operation {
        let next_id = self.key_ids.len() as u64;
        let key = *self.key_ids.entry(record.key.clone()).or_insert(next_id);
        Operation {
            id: index as u64,
            client: record.client,
            key,
            kind: match record.kind {
                RecordKind::Write(value) => OpKind::Write(value),
                RecordKind::Read(value) => OpKind::Read(value.unwrap_or(NIL)),
            },
            invoke: record.invoke_us,
            complete: record.complete_us,
            outcome: record.outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::{check, Verdict};
    use raftkv::linearizability::Outcome;
    use std::time::Instant;

    /// The full check's verdict on `records`, as `raftkv chaos` and the
    /// export reach it: what the live check must agree with.
    fn judge(records: &[Record]) -> HistoryVerdict {
        let problem = match check(records) {
            Verdict::Linearizable(_) => lost_writes(records).first().map(|(key, seen, acked)| {
                let seen = seen.map_or("nil".to_string(), |v| v.to_string());
                format!("key {key}: read {seen} after write {acked} was acknowledged")
            }),
            Verdict::Violation { key, report } => Some(format!(
                "key {key}: {}",
                report.lines().next().unwrap_or_default()
            )),
            Verdict::Invalid(why) => Some(format!("cannot check: {why}")),
        };
        HistoryVerdict {
            ops: records.len() as u64,
            not_recorded: 0,
            problem,
        }
    }

    fn op(kind: RecordKind, invoke_us: u64, complete_us: u64) -> Record {
        Record {
            client: 1,
            key: "live:3".into(),
            kind,
            invoke_us,
            complete_us: Some(complete_us),
            outcome: Outcome::Ok,
        }
    }

    #[test]
    fn the_verdict_names_the_key_of_a_stale_read() {
        let mut records = vec![
            op(RecordKind::Write(1), 10, 20),
            op(RecordKind::Write(2), 30, 40),
            op(RecordKind::Read(Some(2)), 50, 60),
        ];
        assert_eq!(
            judge(&records),
            HistoryVerdict {
                ops: 3,
                not_recorded: 0,
                problem: None
            }
        );
        records[2].kind = RecordKind::Read(Some(1));
        let verdict = judge(&records);
        let problem = verdict.problem.expect("a stale read is a problem");
        assert!(problem.starts_with("key live:3: "), "{problem}");
    }

    /// The live check sees the history as it grows, with operations still
    /// running, and says what the full check says.
    #[test]
    fn the_live_check_follows_a_growing_history_like_the_full_check() {
        let recorder = Recorder::new(Instant::now());
        let mut live = LiveCheck::default();
        assert_eq!(live.step(&recorder), None, "nothing recorded");
        let write = |value: u64| {
            let op = recorder.invoke(1, "live:0", RecordKind::Write(value));
            recorder.complete(op, Outcome::Ok, None);
        };
        let read = |seen: Option<u64>| {
            let op = recorder.invoke(2, "live:0", RecordKind::Read(None));
            recorder.complete(op, Outcome::Ok, Some(seen));
        };
        write(1);
        read(Some(1));
        let fine = HistoryVerdict {
            ops: 2,
            not_recorded: 0,
            problem: None,
        };
        assert_eq!(live.step(&recorder), Some(fine));
        assert_eq!(live.step(&recorder), None, "nothing new");
        // A write still running: reads may see either value meanwhile.
        let running = recorder.invoke(3, "live:0", RecordKind::Write(2));
        read(Some(2));
        read(Some(2));
        assert_eq!(live.step(&recorder).and_then(|v| v.problem), None);
        recorder.complete(running, Outcome::Unknown, None);
        write(3);
        assert_eq!(live.step(&recorder).and_then(|v| v.problem), None);
        // A read of the value written before 3: stale (the full check
        // agrees), named with its key, and it stays.
        read(Some(2));
        let verdict = live.step(&recorder).expect("a new read");
        assert!(judge(&recorder.records()).problem.is_some());
        let problem = verdict.problem.expect("a stale read is a problem");
        assert!(
            problem.starts_with("key live:0: history of key k0 is not linearizable"),
            "{problem}"
        );
        read(Some(3));
        let later = live.step(&recorder).expect("a new read");
        assert_eq!(later.ops, 8);
        assert_eq!(later.problem, Some(problem));
    }

    /// Once the history is full, the check reports the operations left out
    /// even when nothing new was recorded.
    #[test]
    fn the_live_check_reports_what_a_full_history_left_out() {
        let recorder = Recorder::bounded(Instant::now(), 1);
        let mut live = LiveCheck::default();
        let write = recorder.invoke(1, "live:0", RecordKind::Write(1));
        recorder.complete(write, Outcome::Ok, None);
        assert_eq!(live.step(&recorder).map(|v| v.not_recorded), Some(0));
        for value in 2..=4 {
            let op = recorder.invoke(1, "live:0", RecordKind::Write(value));
            recorder.complete(op, Outcome::Ok, None);
        }
        let verdict = live.step(&recorder).expect("operations left out");
        assert_eq!(
            verdict,
            HistoryVerdict {
                ops: 1,
                not_recorded: 3,
                problem: None
            }
        );
        assert_eq!(live.step(&recorder), None, "nothing new");
    }

    /// A bulk write's key read back without its acknowledged value (lost,
    /// or overwritten by a value the dashboard never wrote) breaks the
    /// verdict; an unknown write read back either way does not.
    #[test]
    fn a_bulk_key_read_back_without_its_acknowledged_write_is_a_violation() {
        let recorded = |outcome: Outcome, seen: Option<u64>| {
            let recorder = Recorder::new(Instant::now());
            let write =
                recorder.invoke(BULK_CLIENT_ID_FIRST, "dash:1:000007", RecordKind::Write(7));
            recorder.complete(write, outcome, None);
            let mut live = LiveCheck::default();
            live.step(&recorder);
            let read = recorder.invoke(
                BULK_CLIENT_ID_FIRST,
                "dash:1:000007",
                RecordKind::Read(None),
            );
            recorder.complete(read, Outcome::Ok, Some(seen));
            live.step(&recorder).expect("a new read").problem
        };
        assert_eq!(recorded(Outcome::Ok, Some(7)), None);
        let lost = recorded(Outcome::Ok, None).expect("a lost write is a problem");
        assert_eq!(
            lost,
            "key dash:1:000007: read nil after write 7 was acknowledged"
        );
        let foreign = crate::jobs::UNRECOGNISED_VALUE;
        assert!(recorded(Outcome::Ok, Some(foreign)).is_some());
        assert_eq!(recorded(Outcome::Unknown, Some(7)), None);
        assert_eq!(recorded(Outcome::Unknown, None), None);
        assert!(recorded(Outcome::Failed, Some(7)).is_some());
    }
}
