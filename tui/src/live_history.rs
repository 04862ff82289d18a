//! The dashboard's live verdict: the continuous load (`W`) also runs
//! clients that read and write a few contended keys with unique values,
//! recording every operation (`chaos::Recorder`); a background task checks
//! the history for linearizability with the core's checker, off the draw
//! loop (on a blocking thread), and reports a `HistoryVerdict`.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::chaos::{check, lost_writes, Recorder, Verdict};

/// Contended keys of the dashboard's load: `live:0` .. `live:4`.
pub const KEY_PREFIX: &str = "live";
/// Clients on the contended keys while the load runs.
pub const CLIENTS: u64 = 2;
/// The history is checked again this often while it grows.
pub const CHECK_INTERVAL_MS: u64 = 2_000;

/// The verdict on the history so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryVerdict {
    pub ops: u64,
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
        let mut checked = 0usize;
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(CHECK_INTERVAL_MS)) => {}
            }
            let records = recorder.records();
            if records.len() == checked {
                continue;
            }
            checked = records.len();
            let verdict = tokio::task::spawn_blocking(move || judge(&records)).await;
            let Ok(verdict) = verdict else { return };
            if reports.send(verdict).await.is_err() {
                return;
            }
        }
    });
}

/// The verdict on `records`.
pub fn judge(records: &[crate::chaos::Record]) -> HistoryVerdict {
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
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::{Record, RecordKind};
    use raftkv::linearizability::Outcome;

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
                problem: None
            }
        );
        records[2].kind = RecordKind::Read(Some(1));
        let verdict = judge(&records);
        let problem = verdict.problem.expect("a stale read is a problem");
        assert!(problem.starts_with("key live:3: "), "{problem}");
    }
}
