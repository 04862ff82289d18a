//! The writes and checks the dashboard makes itself: bulk writes (`w`,
//! queued behind each other), the continuous load (`W`), the keys they got
//! acknowledged and the write rate, and the verification of those keys on
//! every node (`v`).

use std::collections::VecDeque;
use std::ops::Range;

use super::{App, Effect, Flash, Tone, GATE_RUNNING_REFUSAL};
use crate::clock::format_duration_ms;
use crate::jobs::WRITE_DEADLINE_MS;
use crate::key_check::{KeyCheck, KEY_PROBLEM_EXAMPLES_PER_KIND_MAX};
use crate::poll::StatusReport;
use crate::status::NodeStatus;

/// Seconds of write throughput history kept for the sparkline.
pub const WRITE_RATE_SECONDS_MAX: usize = 300;
/// Bulk writes that may wait behind the running one.
pub const BULK_WRITES_QUEUED_MAX: usize = 8;
/// The sizes `+`/`-` step through.
pub const BULK_WRITE_COUNTS: [u64; 7] = [10, 50, 100, 500, 1_000, 5_000, 10_000];
pub const BULK_WRITE_COUNT_DEFAULT: u64 = 50;

/// Verify reports name at most this many bad keys per node.
pub const VERIFY_EXAMPLES_MAX: usize = 3;
const _: () = assert!(
    VERIFY_EXAMPLES_MAX <= KEY_PROBLEM_EXAMPLES_PER_KIND_MAX,
    "a KeyCheck keeps the first bad keys the report names"
);

const _: () = assert!(BULK_WRITE_COUNTS[1] == BULK_WRITE_COUNT_DEFAULT);

/// Sequence numbers of the keys this dashboard wrote and got acknowledged,
/// as sorted, disjoint ranges (concurrent writers fragment it a little).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AckedKeys {
    ranges: Vec<Range<u64>>,
}

impl AckedKeys {
    pub fn insert(&mut self, range: Range<u64>) {
        if range.is_empty() {
            return;
        }
        let mut merged = range;
        let mut kept = Vec::with_capacity(self.ranges.len() + 1);
        for r in self.ranges.drain(..) {
            if r.end < merged.start || merged.end < r.start {
                kept.push(r);
            } else {
                merged = merged.start.min(r.start)..merged.end.max(r.end);
            }
        }
        kept.push(merged);
        kept.sort_by_key(|r| r.start);
        self.ranges = kept;
    }

    pub fn count(&self) -> u64 {
        self.ranges.iter().map(|r| r.end - r.start).sum()
    }

    pub fn ranges(&self) -> &[Range<u64>] {
        &self.ranges
    }
}

/// Acknowledged writes per second, newest last.
#[derive(Clone, Debug, Default)]
pub struct WriteRate {
    /// The second (since the epoch) of the last bucket.
    last_second: u64,
    buckets: VecDeque<u64>,
}

impl WriteRate {
    pub(super) fn advance_to(&mut self, now_ms: u64) {
        let second = now_ms / 1000;
        if self.buckets.is_empty() {
            self.last_second = second;
            self.buckets.push_back(0);
            return;
        }
        let missing = second.saturating_sub(self.last_second);
        for _ in 0..missing.min(WRITE_RATE_SECONDS_MAX as u64) {
            self.buckets.push_back(0);
        }
        self.last_second = self.last_second.max(second);
        while self.buckets.len() > WRITE_RATE_SECONDS_MAX {
            self.buckets.pop_front();
        }
    }

    fn add(&mut self, at_ms: u64, count: u64) {
        self.advance_to(at_ms);
        let age_seconds = self.last_second.saturating_sub(at_ms / 1000) as usize;
        let len = self.buckets.len();
        if age_seconds < len {
            self.buckets[len - 1 - age_seconds] += count;
        }
    }

    /// Per-second counts, oldest first (the last one is the current second).
    pub fn buckets(&self) -> &VecDeque<u64> {
        &self.buckets
    }

    /// Writes acknowledged in the last complete second.
    pub fn last_complete_second(&self) -> u64 {
        let len = self.buckets.len();
        if len >= 2 {
            self.buckets[len - 2]
        } else {
            0
        }
    }

    pub fn peak(&self) -> u64 {
        self.buckets.iter().copied().max().unwrap_or(0)
    }
}

/// The result of a bulk write job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BulkWriteResult {
    pub requested: u64,
    pub acked: u64,
    /// Not applied (refused, no leader, ...).
    pub failed: u64,
    /// Maybe applied: the leader was lost while the write was in flight.
    pub outcome_unknown: u64,
    /// Client address of the node that acknowledged the writes.
    pub via: Option<String>,
    /// That node's RAFT.STATUS read right after the last acknowledgement:
    /// the commit index the writes reached is known before "wrote N keys"
    /// is shown, even if that node is killed before the next poll (the `R`
    /// refusal counts holders of the log up to it).
    pub via_status: Option<Box<NodeStatus>>,
    pub elapsed_ms: u64,
    pub first_error: Option<String>,
}

/// What a write job reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteReport {
    /// These key sequence numbers were acknowledged.
    Acked {
        seqs: Vec<Range<u64>>,
        at_ms: u64,
    },
    BulkFinished(BulkWriteResult),
    /// The continuous load ended (switched off, or it could not go on).
    LoadStopped {
        outcome_unknown: u64,
        error: Option<String>,
    },
}

/// One node's part of a verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeVerification {
    pub id: u64,
    /// `Err` when the node could not be checked (down, unreachable, behind).
    pub result: Result<KeyCheck, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyResult {
    pub keys: u64,
    pub nodes: Vec<NodeVerification>,
    pub elapsed_ms: u64,
}

impl App {
    /// Refuses a new write (with the reason) while quitting or while the
    /// gate runs; true when refused.
    fn refuse_writes(&mut self) -> bool {
        if self.quitting_since_ms.is_some() {
            self.refuse("quitting: no more writes".into());
            return true;
        }
        if self.gate_running() {
            self.refuse(GATE_RUNNING_REFUSAL.to_string());
            return true;
        }
        false
    }

    pub(super) fn bulk_write(&mut self) -> Vec<Effect> {
        if self.refuse_writes() {
            return Vec::new();
        }
        let count = self.bulk_write_count;
        if self.bulk_in_flight.is_some() {
            if self.bulk_queue.len() >= BULK_WRITES_QUEUED_MAX {
                self.refuse(format!(
                    "{} bulk writes are already waiting; wait for them to finish",
                    self.bulk_queue.len()
                ));
                return Vec::new();
            }
            self.bulk_queue.push_back(count);
            self.tell(
                Tone::Action,
                format!(
                    "write {count} keys: queued behind the running write ({} waiting)",
                    self.bulk_queue.len()
                ),
            );
            return Vec::new();
        }
        self.bulk_in_flight = Some(count);
        if self.leader().is_none() {
            // As a Redis client does on CLUSTERDOWN: each write retries
            // until a leader answers or its deadline passes.
            self.tell(
                Tone::Action,
                format!(
                    "write {count} keys: no leader right now, waiting for one (each write gives \
                     up after {} s)",
                    WRITE_DEADLINE_MS / 1_000
                ),
            );
            return vec![Effect::BulkWrite { count }];
        }
        self.record(
            Tone::Action,
            format!("write {count} keys through the leader"),
        );
        vec![Effect::BulkWrite { count }]
    }

    pub(super) fn step_bulk_count(&mut self, up: bool) {
        let position = BULK_WRITE_COUNTS
            .iter()
            .position(|c| *c >= self.bulk_write_count)
            .unwrap_or(BULK_WRITE_COUNTS.len() - 1);
        let position = if up {
            (position + 1).min(BULK_WRITE_COUNTS.len() - 1)
        } else {
            position.saturating_sub(1)
        };
        let before = self.bulk_write_count;
        self.bulk_write_count = BULK_WRITE_COUNTS[position];
        if before == self.bulk_write_count {
            self.refuse(format!(
                "bulk write size stays {before}: it goes from {} to {}",
                BULK_WRITE_COUNTS[0],
                BULK_WRITE_COUNTS[BULK_WRITE_COUNTS.len() - 1]
            ));
        } else {
            self.flash = Some(Flash {
                at_ms: self.now_ms,
                tone: Tone::Info,
                text: format!("w now writes {} keys", self.bulk_write_count),
            });
        }
    }

    /// Turns the write load off; the effect that stops it, when it ran.
    pub(super) fn stop_write_load(&mut self) -> Option<Effect> {
        if !self.load_on {
            return None;
        }
        self.load_on = false;
        Some(Effect::SetWriteLoad { on: false })
    }

    pub(super) fn toggle_write_load(&mut self) -> Vec<Effect> {
        if self.load_on {
            self.load_on = false;
            self.tell(Tone::Action, "continuous write load: stopping".into());
            return vec![Effect::SetWriteLoad { on: false }];
        }
        if self.refuse_writes() {
            return Vec::new();
        }
        self.load_on = true;
        self.tell(
            Tone::Action,
            "continuous write load: on (W again to stop)".into(),
        );
        vec![Effect::SetWriteLoad { on: true }]
    }

    pub(super) fn verify(&mut self) -> Vec<Effect> {
        if self.verify_running {
            self.refuse("a verification is already running".into());
            return Vec::new();
        }
        let keys = self.acked.count();
        if keys == 0 {
            self.refuse(
                "nothing to verify: this dashboard has not written any key yet (press w)".into(),
            );
            return Vec::new();
        }
        self.verify_running = true;
        self.record(
            Tone::Action,
            format!("verify {keys} keys on every node (READONLY local reads)"),
        );
        vec![Effect::Verify {
            nodes: self
                .nodes
                .iter()
                .map(|n| (n.config.id, n.config.client_addr.clone()))
                .collect(),
            ranges: self.acked.ranges().to_vec(),
        }]
    }

    pub(super) fn on_write(&mut self, report: WriteReport) -> Vec<Effect> {
        match report {
            WriteReport::Acked { seqs, at_ms } => {
                let count: u64 = seqs.iter().map(|r| r.end - r.start).sum();
                for range in seqs {
                    self.acked.insert(range);
                }
                self.write_rate.add(at_ms, count);
                Vec::new()
            }
            WriteReport::BulkFinished(result) => self.on_bulk_finished(result),
            WriteReport::LoadStopped {
                outcome_unknown,
                error,
            } => {
                self.load_on = false;
                self.outcome_unknown_writes += outcome_unknown;
                match error {
                    Some(error) => {
                        self.tell(Tone::Bad, format!("continuous write load stopped: {error}"))
                    }
                    None => self.record(Tone::Info, "continuous write load: off".into()),
                }
                Vec::new()
            }
        }
    }

    fn via_text(&self, via: &Option<String>) -> String {
        let Some(addr) = via else {
            return String::new();
        };
        let by_row = self
            .nodes
            .iter()
            .find(|n| &n.config.client_addr == addr)
            .map(|n| n.config.id);
        match by_row {
            Some(id) => format!(" via node {id}"),
            None => format!(" via {addr}"),
        }
    }

    fn on_bulk_finished(&mut self, result: BulkWriteResult) -> Vec<Effect> {
        self.bulk_in_flight = None;
        if let Some(status) = result.via_status.clone() {
            self.on_status(StatusReport {
                id: status.id,
                at_ms: self.now_ms,
                result: Ok(*status),
            });
        }
        self.outcome_unknown_writes += result.outcome_unknown;
        let via = self.via_text(&result.via);
        let took = format_duration_ms(result.elapsed_ms);
        if result.acked == result.requested {
            self.tell(
                Tone::Good,
                format!("wrote {} keys{via} in {took}", result.acked),
            );
        } else {
            let mut text = format!(
                "wrote {} of {} keys{via} in {took}",
                result.acked, result.requested
            );
            if result.failed > 0 {
                text.push_str(&format!("; {} not applied", result.failed));
            }
            if result.outcome_unknown > 0 {
                text.push_str(&format!("; {} outcome unknown", result.outcome_unknown));
            }
            if let Some(error) = &result.first_error {
                text.push_str(&format!(" ({error})"));
            }
            self.tell(Tone::Bad, text);
        }
        match self.bulk_queue.pop_front() {
            Some(count) => {
                self.bulk_in_flight = Some(count);
                self.record(
                    Tone::Action,
                    format!("write {count} keys through the leader (queued)"),
                );
                vec![Effect::BulkWrite { count }]
            }
            None => {
                self.observe_cluster();
                Vec::new()
            }
        }
    }

    pub(super) fn on_verify(&mut self, result: VerifyResult) {
        self.verify_running = false;
        let took = format_duration_ms(result.elapsed_ms);
        let mut problems = Vec::new();
        for node in &result.nodes {
            match &node.result {
                Ok(check) if check.is_complete() => {}
                Ok(check) => problems.push(format!(
                    "node {}: {} missing, {} wrong ({})",
                    node.id,
                    check.missing,
                    check.wrong,
                    check.examples_text(VERIFY_EXAMPLES_MAX)
                )),
                Err(error) => problems.push(format!("node {}: not checked, {error}", node.id)),
            }
        }
        if let Some(alarm) = self.integrity.first_alarm() {
            // The keys read back may all be there and the cluster still have
            // lost or forked committed entries: an alarm decides.
            let keys = if problems.is_empty() {
                format!(
                    "all {} keys read back on {} nodes",
                    result.keys,
                    result.nodes.len()
                )
            } else {
                problems.join("; ")
            };
            let text = format!("verify FAIL: {} (alarm stands); {keys}", alarm.summary);
            self.tell(Tone::Bad, text);
        } else if problems.is_empty() {
            self.tell(
                Tone::Good,
                format!(
                    "verified {} keys on {} nodes in {took}: every value matches",
                    result.keys,
                    result.nodes.len()
                ),
            );
        } else {
            self.tell(
                Tone::Bad,
                format!("verify {} keys: {}", result.keys, problems.join("; ")),
            );
        }
    }
}
