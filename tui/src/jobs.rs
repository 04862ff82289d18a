//! Background jobs the dashboard starts: bulk writes and the continuous
//! write load through the leader, and verification of every written key on
//! every node through READONLY local reads. They report through bounded
//! channels and stop when cancelled. Bulk writes record every write, and
//! the reads of their keys afterwards, in the live history.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use raftkv::linearizability::Outcome;
use raftkv_node::client::{ClientError, ClusterClient};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::{BulkWriteResult, NodeVerification, VerifyResult, WriteReport};
use crate::chaos::{RecordKind, Recorder};
use crate::clock;
use crate::key_check::{self, KeyCheck};
use crate::status::{NodeStatus, StatusFetcher};

/// One write may retry (elections, redirects) for this long before it fails.
pub const WRITE_DEADLINE_MS: u64 = 5_000;
/// Clients writing one bulk batch side by side (each keeps its own connection).
pub const BULK_WRITERS_MAX: u64 = 8;
/// Clients of the continuous write load.
pub const LOAD_WRITERS: usize = 4;
/// Acknowledged keys are reported at least this often (sparkline resolution).
pub const ACK_FLUSH_INTERVAL_MS: u64 = 100;
/// The continuous load gives up when no write succeeded for this long.
pub const LOAD_FAILING_MS_MAX: u64 = 30_000;
/// Keys a bulk write reads back into the history afterwards, at most
/// (evenly spaced over its keys when it wrote more).
pub const BULK_READ_BACK_KEYS_MAX: u64 = 1_000;
/// Recorded for a read-back value that is not the one the dashboard wrote
/// to that key: no write wrote it, so the check rejects it.
pub const UNRECOGNISED_VALUE: u64 = u64::MAX;
/// A node gets this long to apply everything committed before it is checked.
pub const VERIFY_CATCH_UP_MS: u64 = 5_000;
/// How often a lagging node's applied index is re-read while verifying.
const VERIFY_CATCH_UP_POLL_MS: u64 = 50;

/// Names and values of the keys this dashboard writes. Keys carry a session
/// tag, so a second dashboard run on the same data adds keys instead of
/// silently overwriting the first run's.
#[derive(Clone, Debug)]
pub struct KeySpace {
    session: String,
    next_seq: Arc<AtomicU64>,
}

impl KeySpace {
    pub fn new(started_at_ms: u64) -> KeySpace {
        KeySpace {
            session: format!("{:x}", started_at_ms / 1000),
            next_seq: Arc::new(AtomicU64::new(1)),
        }
    }

    pub fn key(&self, seq: u64) -> String {
        format!("dash:{}:{seq:06}", self.session)
    }

    pub fn value(&self, seq: u64) -> String {
        format!("value-{seq}-{}", self.session)
    }

    /// Reserves `count` fresh sequence numbers.
    fn allocate(&self, count: u64) -> Range<u64> {
        let start = self.next_seq.fetch_add(count, Ordering::Relaxed);
        start..start + count
    }
}

/// Acknowledged sequence numbers waiting to be reported.
struct AckBuffer {
    seqs: Vec<Range<u64>>,
    flushed_at: Instant,
}

impl AckBuffer {
    fn new() -> AckBuffer {
        AckBuffer {
            seqs: Vec::new(),
            flushed_at: Instant::now(),
        }
    }

    fn push(&mut self, seq: u64) {
        match self.seqs.last_mut() {
            Some(last) if last.end == seq => last.end += 1,
            _ => self.seqs.push(seq..seq + 1),
        }
    }

    /// Sends when due (or `force`); false when the dashboard is gone.
    async fn flush(&mut self, reports: &mpsc::Sender<WriteReport>, force: bool) -> bool {
        let due = self.flushed_at.elapsed() >= Duration::from_millis(ACK_FLUSH_INTERVAL_MS);
        if self.seqs.is_empty() || !(due || force) {
            return true;
        }
        self.flushed_at = Instant::now();
        let report = WriteReport::Acked {
            seqs: std::mem::take(&mut self.seqs),
            at_ms: clock::now_ms(),
        };
        reports.send(report).await.is_ok()
    }
}

/// What one writer did.
#[derive(Default)]
struct WriterTally {
    acked: u64,
    failed: u64,
    outcome_unknown: u64,
    first_error: Option<String>,
    via: Option<String>,
    /// Load writers: the keys written that may hold their value (acked or
    /// unknown), to read back once the load stops.
    written: Vec<u64>,
}

impl WriterTally {
    fn record_error(&mut self, error: &ClientError, outcome: Outcome) {
        if outcome == Outcome::Unknown {
            self.outcome_unknown += 1;
        } else {
            self.failed += 1;
        }
        self.first_error.get_or_insert_with(|| error.to_string());
    }
}

/// How a failed bulk write ended, for the history and the counts.
///
/// The bulk writes' client resends a SET whose attempt may have taken
/// effect (`-UNCERTAIN`, a connection lost after sending), unlike the
/// contended-key clients (`without_resending_ambiguous_writes`). Here that
/// is safe: each key is written once, by one writer, with one value, so a
/// second copy landing changes nothing a read can see. An acknowledgement
/// after a resend is therefore recorded ok: the write took effect between
/// its invocation and its completion (once, or twice to the same value).
/// What the client cannot tell is whether an earlier ambiguous attempt took
/// effect when the last attempt failed, so only a deadline that passed with
/// no ambiguous attempt (`maybe_applied` false: every attempt was refused
/// or never sent) is failed for sure; every other error is unknown, which
/// the checker treats as maybe applied at any time after the invocation.
pub fn bulk_write_outcome(error: &ClientError) -> Outcome {
    match error {
        ClientError::DeadlineExceeded {
            maybe_applied: false,
            ..
        }
        | ClientError::NoAddresses => Outcome::Failed,
        _ => Outcome::Unknown,
    }
}

/// Where a bulk write records what it does: the live history, and the
/// client ids it uses there (`BULK_WRITERS_MAX` of them from `first_client`).
#[derive(Clone)]
pub struct BulkHistory {
    pub recorder: Recorder,
    pub first_client: u64,
}

fn write_client(addrs: &[String]) -> ClusterClient {
    ClusterClient::new(addrs.to_vec(), Duration::from_millis(WRITE_DEADLINE_MS))
}

/// Writes `count` new keys through the leader, reports `BulkFinished`,
/// then reads (a sample of) them back, all recorded in `history`.
pub fn spawn_bulk_write(
    addrs: Vec<String>,
    keys: KeySpace,
    count: u64,
    history: BulkHistory,
    reports: mpsc::Sender<WriteReport>,
    cancel: CancellationToken,
    tracker: &TaskTracker,
) {
    tracker.spawn(async move {
        let started = Instant::now();
        let seqs = keys.allocate(count);
        let writers = BULK_WRITERS_MAX.min(count.max(1));
        let shares = (0..writers).map(|writer| {
            let share: Vec<u64> = seqs.clone().filter(|seq| seq % writers == writer).collect();
            write_share(
                write_client(&addrs),
                keys.clone(),
                share,
                (&history.recorder, history.first_client + writer),
                reports.clone(),
                cancel.clone(),
            )
        });
        let tallies = futures::future::join_all(shares).await;
        let mut result = BulkWriteResult {
            requested: count,
            acked: 0,
            failed: 0,
            outcome_unknown: 0,
            via: None,
            via_status: None,
            elapsed_ms: started.elapsed().as_millis() as u64,
            first_error: None,
        };
        for tally in tallies {
            result.acked += tally.acked;
            result.failed += tally.failed;
            result.outcome_unknown += tally.outcome_unknown;
            result.first_error = result.first_error.or(tally.first_error);
            result.via = result.via.or(tally.via);
        }
        result.failed += count - result.acked - result.failed - result.outcome_unknown;
        if let Some(via) = &result.via {
            let deadline = Duration::from_millis(crate::poll::STATUS_DEADLINE_MS);
            let status = StatusFetcher::new(via.clone()).fetch(deadline).await;
            result.via_status = status.ok().map(Box::new);
        }
        if reports
            .send(WriteReport::BulkFinished(result))
            .await
            .is_err()
        {
            return;
        }
        // A lost acknowledged write shows up in the live verdict only if
        // something reads the key after it: read the keys back, through
        // the leader (linearizable reads), as the same clients.
        let sample = sample_evenly(seqs, BULK_READ_BACK_KEYS_MAX);
        let readers = (0..writers).map(|reader| {
            let share: Vec<u64> = sample
                .iter()
                .copied()
                .skip(reader as usize)
                .step_by(writers as usize)
                .collect();
            read_back_share(
                write_client(&addrs),
                keys.clone(),
                share,
                (&history.recorder, history.first_client + reader),
                cancel.clone(),
            )
        });
        futures::future::join_all(readers).await;
    });
}

/// At most `max` of `seqs`, evenly spaced (all of them when they fit).
fn sample_evenly(seqs: Range<u64>, max: u64) -> Vec<u64> {
    let len = seqs.end - seqs.start;
    if len <= max {
        return seqs.collect();
    }
    (0..max).map(|i| seqs.start + i * len / max).collect()
}

/// Reads `share` back, each read recorded with the value it saw.
async fn read_back_share(
    mut client: ClusterClient,
    keys: KeySpace,
    share: Vec<u64>,
    (history, client_id): (&Recorder, u64),
    cancel: CancellationToken,
) {
    for seq in share {
        let key = keys.key(seq);
        let op = history.invoke(client_id, &key, RecordKind::Read(None));
        let result = tokio::select! {
            () = cancel.cancelled() => {
                history.complete(op, Outcome::Unknown, None);
                return;
            }
            result = client.get(&key) => result,
        };
        match result {
            Ok(value) => {
                let seen = value.map(|bytes| {
                    if bytes == keys.value(seq).as_bytes() {
                        seq
                    } else {
                        UNRECOGNISED_VALUE
                    }
                });
                history.complete(op, Outcome::Ok, Some(seen));
            }
            Err(error) if error.is_outcome_unknown() => {
                history.complete(op, Outcome::Unknown, None)
            }
            Err(_) => history.complete(op, Outcome::Failed, None),
        }
    }
}

/// Writes `share`, each write recorded with its key's sequence number as
/// the value (unique on its key: every key is written once).
async fn write_share(
    mut client: ClusterClient,
    keys: KeySpace,
    share: Vec<u64>,
    (history, client_id): (&Recorder, u64),
    reports: mpsc::Sender<WriteReport>,
    cancel: CancellationToken,
) -> WriterTally {
    let mut tally = WriterTally::default();
    let mut acks = AckBuffer::new();
    for seq in share {
        let key = keys.key(seq);
        let op = history.invoke(client_id, &key, RecordKind::Write(seq));
        let result = tokio::select! {
            () = cancel.cancelled() => {
                // Sent or not, nobody will learn how it ended.
                history.complete(op, Outcome::Unknown, None);
                break;
            }
            result = client.set(&key, keys.value(seq)) => result,
        };
        match result {
            Ok(()) => {
                history.complete(op, Outcome::Ok, None);
                tally.acked += 1;
                acks.push(seq);
            }
            Err(error) => {
                let outcome = bulk_write_outcome(&error);
                history.complete(op, outcome, None);
                tally.record_error(&error, outcome);
            }
        }
        if !acks.flush(&reports, false).await {
            break;
        }
    }
    acks.flush(&reports, true).await;
    tally.via = client.leader_hint().map(str::to_string);
    tally
}

/// Writes new keys through the leader until `stop` (or `cancel`) fires,
/// then reports `LoadStopped`; every write is recorded in `history` (as a
/// bulk write's are), and once stopped each writer reads (a sample of) the
/// keys it wrote back, recorded too, unless `cancel` fired.
pub fn spawn_write_load(
    addrs: Vec<String>,
    keys: KeySpace,
    history: BulkHistory,
    reports: mpsc::Sender<WriteReport>,
    (stop, cancel): (CancellationToken, CancellationToken),
    tracker: &TaskTracker,
) {
    tracker.spawn(async move {
        let writers = (0..LOAD_WRITERS as u64).map(|writer| {
            load_writer(
                write_client(&addrs),
                keys.clone(),
                (&history.recorder, history.first_client + writer),
                reports.clone(),
                stop.clone(),
            )
        });
        let tallies = futures::future::join_all(writers).await;
        let outcome_unknown = tallies.iter().map(|t| t.outcome_unknown).sum();
        let error = tallies.iter().find_map(|t| t.first_error.clone());
        let _ = reports
            .send(WriteReport::LoadStopped {
                outcome_unknown,
                error,
            })
            .await;
        let per_writer = BULK_READ_BACK_KEYS_MAX / LOAD_WRITERS as u64;
        let readers = tallies.into_iter().enumerate().map(|(writer, tally)| {
            let written = tally.written.len() as u64;
            let sample: Vec<u64> = sample_evenly(0..written, per_writer)
                .into_iter()
                .map(|i| tally.written[i as usize])
                .collect();
            read_back_share(
                write_client(&addrs),
                keys.clone(),
                sample,
                (&history.recorder, history.first_client + writer as u64),
                cancel.clone(),
            )
        });
        futures::future::join_all(readers).await;
    });
}

/// One load writer; `first_error` is set only when it gave up. Each write
/// is recorded with its key's sequence number as the value.
async fn load_writer(
    mut client: ClusterClient,
    keys: KeySpace,
    (history, client_id): (&Recorder, u64),
    reports: mpsc::Sender<WriteReport>,
    stop: CancellationToken,
) -> WriterTally {
    let mut tally = WriterTally::default();
    let mut acks = AckBuffer::new();
    let mut last_success = Instant::now();
    loop {
        let seq = keys.allocate(1).start;
        let key = keys.key(seq);
        let op = history.invoke(client_id, &key, RecordKind::Write(seq));
        let result = tokio::select! {
            () = stop.cancelled() => {
                // Sent or not, nobody will learn how it ended.
                history.complete(op, Outcome::Unknown, None);
                tally.written.push(seq);
                break;
            }
            result = client.set(&key, keys.value(seq)) => result,
        };
        match &result {
            Ok(()) => history.complete(op, Outcome::Ok, None),
            Err(error) => history.complete(op, bulk_write_outcome(error), None),
        }
        if !matches!(&result, Err(e) if bulk_write_outcome(e) == Outcome::Failed) {
            tally.written.push(seq);
        }
        match result {
            Ok(()) => {
                acks.push(seq);
                last_success = Instant::now();
            }
            Err(error) => {
                if error.is_outcome_unknown() {
                    tally.outcome_unknown += 1;
                }
                if last_success.elapsed() >= Duration::from_millis(LOAD_FAILING_MS_MAX) {
                    tally.first_error = Some(format!(
                        "no write succeeded for {} s; last error: {error}",
                        LOAD_FAILING_MS_MAX / 1000
                    ));
                    break;
                }
            }
        }
        if !acks.flush(&reports, false).await {
            break;
        }
    }
    acks.flush(&reports, true).await;
    tally
}

/// Reads every acknowledged key back from every node and reports `VerifyResult`.
pub fn spawn_verify(
    nodes: Vec<(u64, String)>,
    ranges: Vec<Range<u64>>,
    keys: KeySpace,
    reports: mpsc::Sender<VerifyResult>,
    cancel: CancellationToken,
    tracker: &TaskTracker,
) {
    tracker.spawn(async move {
        let started = Instant::now();
        let key_count = ranges.iter().map(|r| r.end - r.start).sum();
        // Everything committed now must be applied on a node before it is judged.
        let statuses =
            futures::future::join_all(nodes.iter().map(|(_, addr)| node_status(addr))).await;
        let target = statuses
            .iter()
            .filter_map(|s| s.as_ref().ok())
            .map(|s| s.commit_index)
            .max()
            .unwrap_or(0);
        let checks = nodes.iter().map(|(id, addr)| {
            let (keys, ranges) = (keys.clone(), ranges.clone());
            async move {
                NodeVerification {
                    id: *id,
                    result: verify_node(addr, target, &ranges, &keys).await,
                }
            }
        });
        let nodes = tokio::select! {
            () = cancel.cancelled() => return,
            nodes = futures::future::join_all(checks) => nodes,
        };
        let result = VerifyResult {
            keys: key_count,
            nodes,
            elapsed_ms: started.elapsed().as_millis() as u64,
        };
        let _ = reports.send(result).await;
    });
}

async fn node_status(addr: &str) -> Result<NodeStatus, String> {
    let fields = ClusterClient::status(addr)
        .await
        .map_err(|e| e.to_string())?;
    NodeStatus::from_fields(&fields)
}

/// Waits (bounded) until the node at `addr` has applied `target`.
pub async fn wait_applied(addr: &str, target: u64, patience: Duration) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let error = match node_status(addr).await {
            Ok(status) if status.applied_index >= target => return Ok(()),
            Ok(status) => format!(
                "applied index {} is still below {target}",
                status.applied_index
            ),
            Err(error) => error,
        };
        if started.elapsed() >= patience {
            return Err(format!("after {} s: {error}", patience.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(VERIFY_CATCH_UP_POLL_MS)).await;
    }
}

/// Waits for the node to apply everything committed, then reads every
/// acknowledged key back from its own state.
async fn verify_node(
    addr: &str,
    target: u64,
    ranges: &[Range<u64>],
    keys: &KeySpace,
) -> Result<KeyCheck, String> {
    wait_applied(addr, target, Duration::from_millis(VERIFY_CATCH_UP_MS)).await?;
    let mut seqs = ranges.iter().flat_map(|range| range.clone());
    let chunks = std::iter::from_fn(move || {
        let chunk: Vec<(String, String)> = seqs
            .by_ref()
            .take(key_check::READ_BACK_KEYS_PER_REQUEST_MAX)
            .map(|seq| (keys.key(seq), keys.value(seq)))
            .collect();
        (!chunk.is_empty()).then_some(chunk)
    });
    key_check::read_back_chunks(addr, chunks).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_per_session_and_values_follow_from_the_key() {
        let keys = KeySpace::new(1_714_557_600_123);
        assert_eq!(keys.key(7), "dash:663212a0:000007");
        assert_eq!(keys.value(7), "value-7-663212a0");
        assert_eq!(keys.allocate(50), 1..51);
        assert_eq!(keys.allocate(1), 51..52);
        let other_run = KeySpace::new(1_714_557_700_000);
        assert_ne!(keys.key(1), other_run.key(1));
    }

    #[test]
    fn a_large_bulk_write_reads_back_an_even_sample() {
        assert_eq!(sample_evenly(5..9, 10), vec![5, 6, 7, 8]);
        assert_eq!(sample_evenly(0..10, 4), vec![0, 2, 5, 7]);
        let sample = sample_evenly(1..10_001, BULK_READ_BACK_KEYS_MAX);
        assert_eq!(sample.len() as u64, BULK_READ_BACK_KEYS_MAX);
        assert_eq!((sample[0], sample[999]), (1, 9_991));
    }

    /// A resent write is ok once acknowledged; a failure is failed for sure
    /// only when no attempt may have taken effect.
    #[test]
    fn a_bulk_write_is_failed_for_sure_only_when_no_attempt_was_ambiguous() {
        let deadline = |maybe_applied| ClientError::DeadlineExceeded {
            command: "SET".into(),
            deadline_ms: 5_000,
            attempts: 3,
            maybe_applied,
            last: Box::new(ClientError::NoAddresses),
        };
        assert_eq!(bulk_write_outcome(&deadline(false)), Outcome::Failed);
        assert_eq!(bulk_write_outcome(&deadline(true)), Outcome::Unknown);
        let refused = ClientError::Server {
            addr: "127.0.0.1:1".into(),
            message: "ERR refused".into(),
        };
        // An error reply may follow an earlier attempt that took effect.
        assert_eq!(bulk_write_outcome(&refused), Outcome::Unknown);
    }

    #[test]
    fn acks_coalesce_into_ranges() {
        let mut acks = AckBuffer::new();
        for seq in [1, 2, 3, 7, 8, 4] {
            acks.push(seq);
        }
        assert_eq!(acks.seqs, vec![1..4, 7..9, 4..5]);
    }
}
