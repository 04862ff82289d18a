//! The closed-loop load generator: `clients` connections, each keeping up to
//! `pipeline` requests in flight, drawing operations (read or write, key from
//! a fixed key space) until the ops run out or the run is stopped, recording
//! every latency in hdrhistogram at microsecond precision.
//!
//! It knows nothing about a store's protocol: a `Target` opens `Session`s,
//! and a session queues requests and hands back their outcomes in order.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use tokio::sync::{watch, Barrier};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::rng::SplitMix64;

/// Keys are `bench:` and ten decimal digits: 16 bytes, like the keys of the
/// performance targets.
pub(crate) const KEY_PREFIX: &[u8] = b"bench:";
pub(crate) const KEY_DIGITS: usize = 10;
pub(crate) const KEY_BYTES: usize = KEY_PREFIX.len() + KEY_DIGITS;
/// Ten digits hold key indexes below 10^10.
pub(crate) const KEYSPACE_MAX: u64 = 10_000_000_000;
/// Latencies above this (one minute) are recorded as this.
pub(crate) const LATENCY_US_MAX: u64 = 60_000_000;
/// Three significant digits: 1 µs resolution up to 1 ms, 0.1% above.
const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;
/// The live progress line is refreshed this often.
pub(crate) const PROGRESS_INTERVAL_MS: u64 = 250;
/// Without a terminal, a progress line is printed this often instead.
const PROGRESS_PLAIN_INTERVAL_MS: u64 = 1_000;
/// Reconnect backoff after a failure: first retry at once, then doubling
/// from the initial wait up to the maximum.
/// The cap is low on purpose: during a failover a client must find the new
/// leader within a few ms, or the bench measures its own backoff.
const RECONNECT_BACKOFF_MS_INITIAL: u64 = 2;
const RECONNECT_BACKOFF_MS_MAX: u64 = 10;

const _: () = assert!(KEY_BYTES == 16);
const _: () = assert!(RECONNECT_BACKOFF_MS_INITIAL <= RECONNECT_BACKOFF_MS_MAX);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpKind {
    Read,
    Write,
}

/// One operation: a GET or a SET of the workload's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Op {
    pub(crate) kind: OpKind,
    pub(crate) key: [u8; KEY_BYTES],
}

/// What the clients send: key space, read fraction and the value written.
#[derive(Clone, Debug)]
pub(crate) struct Workload {
    keyspace: u64,
    read_ratio: f64,
    value: Bytes,
    seed: u64,
    /// Operation n writes key n (every key once, in order) instead of a
    /// random key: how `--memory` and `--catchup-wiped` fill a cluster.
    sequential: bool,
}

impl Workload {
    pub(crate) fn new(
        keyspace: u64,
        read_ratio: f64,
        value_size_bytes: usize,
        seed: u64,
    ) -> Workload {
        debug_assert!(keyspace > 0 && keyspace <= KEYSPACE_MAX);
        let value: Vec<u8> = (0..value_size_bytes)
            .map(|i| b'a' + (i % 26) as u8)
            .collect();
        Workload {
            keyspace,
            read_ratio,
            value: Bytes::from(value),
            seed,
            sequential: false,
        }
    }

    /// Writes only, operation n to key n: a run of K operations leaves
    /// keys 0..K-1 (each written once, unless a write fails).
    pub(crate) fn sequential(value_size_bytes: usize) -> Workload {
        Workload {
            sequential: true,
            ..Workload::new(KEYSPACE_MAX, 0.0, value_size_bytes, 0)
        }
    }

    pub(crate) fn value(&self) -> &Bytes {
        &self.value
    }

    /// The operation stream of client `index`: independent of the other
    /// clients, and the same on every run with the same seed.
    pub(crate) fn chooser(&self, index: usize) -> OpChooser {
        let stream = (index as u64)
            .wrapping_add(1)
            .wrapping_mul(0xD1B5_4A32_D192_ED03);
        OpChooser {
            rng: SplitMix64::new(self.seed ^ stream),
            keyspace: self.keyspace,
            read_ratio: self.read_ratio,
            sequential: self.sequential,
        }
    }

    /// `bench:0000000042`.
    pub(crate) fn key(index: u64) -> [u8; KEY_BYTES] {
        let mut key = [b'0'; KEY_BYTES];
        key[..KEY_PREFIX.len()].copy_from_slice(KEY_PREFIX);
        let mut rest = index % KEYSPACE_MAX;
        for slot in key[KEY_PREFIX.len()..].iter_mut().rev() {
            *slot = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        key
    }
}

pub(crate) struct OpChooser {
    rng: SplitMix64,
    keyspace: u64,
    read_ratio: f64,
    sequential: bool,
}

impl OpChooser {
    /// The operation of run-wide operation number `ticket`: key `ticket`
    /// for a sequential workload, else the next random choice.
    pub(crate) fn op_for(&mut self, ticket: u64) -> Op {
        if self.sequential {
            Op {
                kind: OpKind::Write,
                key: Workload::key(ticket),
            }
        } else {
            self.next_op()
        }
    }

    pub(crate) fn next_op(&mut self) -> Op {
        let kind = if self.read_ratio > 0.0 && self.rng.unit() < self.read_ratio {
            OpKind::Read
        } else {
            OpKind::Write
        };
        Op {
            kind,
            key: Workload::key(self.rng.below(self.keyspace)),
        }
    }
}

/// Why an operation (or a connection attempt) failed, as the report groups them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ErrorKind {
    /// `-MOVED`: sent to a follower; not applied.
    Moved,
    /// `-CLUSTERDOWN`: no leader; not applied.
    ClusterDown,
    /// `-TRYAGAIN`: not applied.
    TryAgain,
    /// `-UNCERTAIN`: the leader lost its role mid-flight; may have been applied.
    Uncertain,
    /// Another error reply, by its first word (`ERR`, `OOM`, ...).
    ServerError(String),
    /// A reply of the wrong type for the command.
    UnexpectedReply,
    /// The connection broke with the request sent: outcome unknown.
    ConnectionLost,
    /// No reply within the request timeout: outcome unknown.
    Timeout,
    /// The reply could not be parsed.
    Protocol,
    /// Connecting failed (connection attempts, not operations).
    ConnectFailed,
    /// No node knew a leader (connection attempts, not operations).
    NoLeader,
}

impl ErrorKind {
    /// Stable short name, used as the JSON key.
    pub(crate) fn name(&self) -> String {
        match self {
            ErrorKind::Moved => "moved".into(),
            ErrorKind::ClusterDown => "clusterdown".into(),
            ErrorKind::TryAgain => "tryagain".into(),
            ErrorKind::Uncertain => "uncertain".into(),
            ErrorKind::ServerError(code) => format!("error_{}", code.to_ascii_lowercase()),
            ErrorKind::UnexpectedReply => "unexpected_reply".into(),
            ErrorKind::ConnectionLost => "connection_lost".into(),
            ErrorKind::Timeout => "timeout".into(),
            ErrorKind::Protocol => "protocol".into(),
            ErrorKind::ConnectFailed => "connect_failed".into(),
            ErrorKind::NoLeader => "no_leader".into(),
        }
    }

    /// What the error means for the operation, for the human report.
    pub(crate) fn meaning(&self) -> &'static str {
        match self {
            ErrorKind::Moved => "sent to a follower, not applied",
            ErrorKind::ClusterDown => "no leader, not applied",
            ErrorKind::TryAgain => "not applied",
            ErrorKind::Uncertain | ErrorKind::ConnectionLost | ErrorKind::Timeout => {
                "outcome unknown"
            }
            ErrorKind::ServerError(_) => "error reply",
            ErrorKind::UnexpectedReply | ErrorKind::Protocol => "bad reply",
            ErrorKind::ConnectFailed | ErrorKind::NoLeader => "connection attempt",
        }
    }
}

/// One failed operation or connection attempt.
#[derive(Clone, Debug)]
pub(crate) struct OpFailure {
    pub(crate) kind: ErrorKind,
    pub(crate) detail: String,
    /// The session cannot be used any more (no reply will come for the rest
    /// of its window).
    pub(crate) session_broken: bool,
    /// Where the store says to send requests instead (`-MOVED`).
    pub(crate) redirect: Option<String>,
}

impl OpFailure {
    pub(crate) fn new(kind: ErrorKind, detail: String) -> OpFailure {
        OpFailure {
            kind,
            detail,
            session_broken: false,
            redirect: None,
        }
    }

    pub(crate) fn broken(kind: ErrorKind, detail: String) -> OpFailure {
        OpFailure {
            session_broken: true,
            ..OpFailure::new(kind, detail)
        }
    }
}

/// A store to load: opens sessions to whichever node should take requests.
pub(crate) trait Target: Send + Sync + 'static {
    type Session: Session + 'static;

    /// Opens a session to `hint` when given (a redirect target), else to
    /// the node the target finds best (the leader).
    fn connect(
        &self,
        hint: Option<String>,
    ) -> impl Future<Output = Result<Self::Session, OpFailure>> + Send;
}

/// One client connection with a window of requests in flight.
pub(crate) trait Session: Send {
    /// The node this session talks to (failover ignores acknowledgements
    /// from the node it killed).
    fn addr(&self) -> &str;

    /// Queues one request; it is sent by the next `next_outcome`.
    fn submit(&mut self, op: &Op, workload: &Workload);

    /// Sends what is queued and waits for the outcome of the oldest
    /// request still in flight, whose kind is `kind`.
    fn next_outcome(&mut self, kind: OpKind) -> impl Future<Output = Result<(), OpFailure>> + Send;
}

/// How a run shows its progress on stderr.
#[derive(Clone, Debug)]
pub(crate) enum ProgressStyle {
    Quiet,
    Live { label: String },
}

impl ProgressStyle {
    pub(crate) fn live(label: &str) -> ProgressStyle {
        ProgressStyle::Live {
            label: label.to_string(),
        }
    }
}

/// The shape of one run.
#[derive(Clone, Debug)]
pub(crate) struct LoadSpec {
    pub(crate) clients: usize,
    pub(crate) pipeline: usize,
    /// Operations to issue in total; `None` runs until stopped (or until
    /// `duration`).
    pub(crate) ops: Option<u64>,
    /// The run stops this long after every client is connected (whichever
    /// of `ops` and `duration` comes first ends it).
    pub(crate) duration: Option<Duration>,
    /// The run fails when no operation succeeds for this long.
    pub(crate) stall_timeout: Duration,
    pub(crate) progress: ProgressStyle,
}

/// Counters every client updates, read by the progress line and by
/// failover and catch-up while the load runs.
#[derive(Debug, Default)]
pub(crate) struct LiveCounters {
    pub(crate) ok: AtomicU64,
    pub(crate) failed: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl LiveCounters {
    fn note_failure(&self, failure: &OpFailure, counts_as_op: bool) {
        if counts_as_op {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(format!("{} ({})", failure.detail, failure.kind.name()));
        }
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|last| last.clone())
    }
}

/// Reports the first write acknowledged after a moment by a node other than
/// an excluded one (the killed leader), for failover trials.
#[derive(Debug)]
pub(crate) struct AckWatch {
    armed: Mutex<Option<(Instant, String)>>,
    first: watch::Sender<Option<Instant>>,
}

impl AckWatch {
    pub(crate) fn new() -> AckWatch {
        AckWatch {
            armed: Mutex::new(None),
            first: watch::Sender::new(None),
        }
    }

    /// From now on, watch for a write acknowledged at or after `after` by
    /// a node other than `excluded_addr`.
    pub(crate) fn arm(&self, after: Instant, excluded_addr: String) {
        if let Ok(mut armed) = self.armed.lock() {
            *armed = Some((after, excluded_addr));
        }
        self.first.send_replace(None);
    }

    /// When the first such write was acknowledged, if it was.
    pub(crate) fn first_ack(&self) -> Option<Instant> {
        *self.first.borrow()
    }

    fn on_write_ack(&self, at: Instant, addr: &str) {
        let counts = match self.armed.lock() {
            Ok(armed) => armed
                .as_ref()
                .is_some_and(|(after, excluded)| at >= *after && addr != excluded),
            Err(_) => false,
        };
        if counts {
            self.first.send_if_modified(|first| {
                if first.is_none() {
                    *first = Some(at);
                    true
                } else {
                    false
                }
            });
        }
    }
}

/// Latencies and errors of one client, merged into the run's at the end.
#[derive(Clone, Debug)]
pub(crate) struct Tally {
    pub(crate) reads: Histogram<u64>,
    pub(crate) writes: Histogram<u64>,
    /// Failed operations by kind.
    pub(crate) errors: BTreeMap<ErrorKind, u64>,
    /// Failed connection attempts by kind (these are not operations).
    pub(crate) connect_failures: BTreeMap<ErrorKind, u64>,
}

impl Tally {
    pub(crate) fn new() -> Tally {
        Tally {
            reads: new_histogram(),
            writes: new_histogram(),
            errors: BTreeMap::new(),
            connect_failures: BTreeMap::new(),
        }
    }

    pub(crate) fn record(&mut self, kind: OpKind, latency: Duration) {
        let micros = (latency.as_micros() as u64).clamp(1, LATENCY_US_MAX);
        match kind {
            OpKind::Read => self.reads.saturating_record(micros),
            OpKind::Write => self.writes.saturating_record(micros),
        }
    }

    pub(crate) fn merge(&mut self, other: &Tally) -> Result<(), String> {
        self.reads
            .add(&other.reads)
            .and_then(|()| self.writes.add(&other.writes))
            .map_err(|e| format!("cannot merge latency histograms: {e:?}"))?;
        for (kind, count) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += count;
        }
        for (kind, count) in &other.connect_failures {
            *self.connect_failures.entry(kind.clone()).or_default() += count;
        }
        Ok(())
    }

    /// Reads and writes together.
    pub(crate) fn all(&self) -> Result<Histogram<u64>, String> {
        let mut all = self.reads.clone();
        all.add(&self.writes)
            .map_err(|e| format!("cannot merge latency histograms: {e:?}"))?;
        Ok(all)
    }

    pub(crate) fn ok_ops(&self) -> u64 {
        self.reads.len() + self.writes.len()
    }

    pub(crate) fn failed_ops(&self) -> u64 {
        self.errors.values().sum()
    }
}

fn new_histogram() -> Histogram<u64> {
    // Constant, valid bounds: 1 <= low, high >= 2 * low, sigfig <= 5.
    Histogram::new_with_bounds(1, LATENCY_US_MAX, LATENCY_SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

/// The outcome of one run.
#[derive(Clone, Debug)]
pub(crate) struct LoadResult {
    pub(crate) clients: usize,
    pub(crate) pipeline: usize,
    /// From the moment every client was connected to the last reply.
    pub(crate) elapsed: Duration,
    pub(crate) tally: Tally,
}

impl LoadResult {
    pub(crate) fn ops_per_sec(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.tally.ok_ops() as f64 / seconds
        } else {
            0.0
        }
    }
}

/// Hands out operation numbers until the limit.
#[derive(Debug)]
struct Tickets {
    issued: AtomicU64,
    limit: Option<u64>,
}

impl Tickets {
    /// The next operation number, or `None` when the limit is reached.
    fn claim(&self) -> Option<u64> {
        let ticket = self.issued.fetch_add(1, Ordering::Relaxed);
        match self.limit {
            Some(limit) if ticket >= limit => None,
            _ => Some(ticket),
        }
    }
}

/// What every client of one run shares.
struct Shared<T> {
    target: Arc<T>,
    workload: Arc<Workload>,
    pipeline: usize,
    tickets: Tickets,
    counters: Arc<LiveCounters>,
    ack_watch: Option<Arc<AckWatch>>,
    cancel: CancellationToken,
}

/// Capped exponential backoff between reconnects; the first retry after a
/// success is immediate (a redirect usually points at a working leader).
#[derive(Debug, Default)]
struct Backoff {
    failures_in_row: u32,
}

impl Backoff {
    fn next_delay(&mut self) -> Duration {
        let delay_ms = match self.failures_in_row {
            0 => 0,
            n => (RECONNECT_BACKOFF_MS_INITIAL << (n - 1).min(16)).min(RECONNECT_BACKOFF_MS_MAX),
        };
        self.failures_in_row = self.failures_in_row.saturating_add(1);
        Duration::from_millis(delay_ms)
    }

    fn reset(&mut self) {
        self.failures_in_row = 0;
    }
}

/// A run in progress.
pub(crate) struct RunningLoad {
    cancel: CancellationToken,
    clients: Vec<JoinHandle<Tally>>,
    monitor_cancel: CancellationToken,
    monitor: JoinHandle<Option<String>>,
    counters: Arc<LiveCounters>,
    started: Instant,
    spec: LoadSpec,
}

/// Starts the clients, waits until each has tried to connect, and starts the clock.
pub(crate) async fn start_load<T: Target>(
    target: Arc<T>,
    spec: LoadSpec,
    workload: Arc<Workload>,
    ack_watch: Option<Arc<AckWatch>>,
) -> RunningLoad {
    let cancel = CancellationToken::new();
    let counters = Arc::new(LiveCounters::default());
    let shared = Arc::new(Shared {
        target,
        workload,
        pipeline: spec.pipeline,
        tickets: Tickets {
            issued: AtomicU64::new(0),
            limit: spec.ops,
        },
        counters: counters.clone(),
        ack_watch,
        cancel: cancel.clone(),
    });
    let barrier = Arc::new(Barrier::new(spec.clients + 1));
    let clients = (0..spec.clients)
        .map(|index| tokio::spawn(run_client(shared.clone(), index, barrier.clone())))
        .collect();
    barrier.wait().await;
    let started = Instant::now();
    let monitor_cancel = CancellationToken::new();
    let monitor = tokio::spawn(monitor(
        counters.clone(),
        spec.clone(),
        started,
        cancel.clone(),
        monitor_cancel.clone(),
    ));
    RunningLoad {
        cancel,
        clients,
        monitor_cancel,
        monitor,
        counters,
        started,
        spec,
    }
}

/// Runs a load to its end (all ops done) and returns its result.
pub(crate) async fn run_load<T: Target>(
    target: Arc<T>,
    spec: LoadSpec,
    workload: Arc<Workload>,
) -> Result<LoadResult, String> {
    start_load(target, spec, workload, None)
        .await
        .finish()
        .await
}

impl RunningLoad {
    pub(crate) fn counters(&self) -> &LiveCounters {
        &self.counters
    }

    /// Asks every client to stop now (replies still in flight are not counted).
    pub(crate) fn stop(&self) {
        self.cancel.cancel();
    }

    /// Waits for every client to end; fails when the run stalled.
    pub(crate) async fn finish(self) -> Result<LoadResult, String> {
        let mut tally = Tally::new();
        let mut panicked = None;
        for client in self.clients {
            match client.await {
                Ok(client_tally) => tally.merge(&client_tally)?,
                Err(error) => panicked = Some(error.to_string()),
            }
        }
        let elapsed = self.started.elapsed();
        self.monitor_cancel.cancel();
        let stalled = self.monitor.await.unwrap_or(None);
        if let Some(error) = panicked {
            return Err(format!("a load client failed: {error}"));
        }
        if let Some(stall) = stalled {
            return Err(stall);
        }
        Ok(LoadResult {
            clients: self.spec.clients,
            pipeline: self.spec.pipeline,
            elapsed,
            tally,
        })
    }
}

/// One client: connect, then keep the window full until the tickets run out
/// or the run is cancelled.
async fn run_client<T: Target>(
    shared: Arc<Shared<T>>,
    index: usize,
    barrier: Arc<Barrier>,
) -> Tally {
    let mut tally = Tally::new();
    let mut chooser = shared.workload.chooser(index);
    // Connect before the clock starts, so set-up is not measured.
    let mut session = match shared.target.connect(None).await {
        Ok(session) => Some(session),
        Err(failure) => {
            note_connect_failure(&shared, &mut tally, &failure);
            None
        }
    };
    barrier.wait().await;
    let mut window: VecDeque<(Instant, OpKind)> = VecDeque::with_capacity(shared.pipeline);
    let mut backoff = Backoff::default();
    let mut hint: Option<String> = None;
    // After -MOVED or -CLUSTERDOWN nothing more is sent on this session; it
    // is replaced once the replies in flight have come back.
    let mut draining = false;
    loop {
        let Some(current) = session.as_mut() else {
            if !pause(&shared.cancel, backoff.next_delay()).await {
                break;
            }
            let attempt = tokio::select! {
                () = shared.cancel.cancelled() => break,
                attempt = shared.target.connect(hint.take()) => attempt,
            };
            match attempt {
                Ok(opened) => session = Some(opened),
                Err(failure) => note_connect_failure(&shared, &mut tally, &failure),
            }
            continue;
        };
        if !draining {
            while window.len() < shared.pipeline && !shared.cancel.is_cancelled() {
                let Some(ticket) = shared.tickets.claim() else {
                    break;
                };
                let op = chooser.op_for(ticket);
                current.submit(&op, &shared.workload);
                window.push_back((Instant::now(), op.kind));
            }
        }
        let Some(&(_, kind)) = window.front() else {
            if draining {
                draining = false;
                session = None;
                continue;
            }
            break; // No tickets left and nothing in flight.
        };
        let outcome = tokio::select! {
            () = shared.cancel.cancelled() => break,
            outcome = current.next_outcome(kind) => outcome,
        };
        let now = Instant::now();
        let Some((submitted, _)) = window.pop_front() else {
            break;
        };
        match outcome {
            Ok(()) => {
                tally.record(kind, now.duration_since(submitted));
                shared.counters.ok.fetch_add(1, Ordering::Relaxed);
                if let (OpKind::Write, Some(watch)) = (kind, &shared.ack_watch) {
                    watch.on_write_ack(now, current.addr());
                }
                backoff.reset();
            }
            Err(failure) => {
                *tally.errors.entry(failure.kind.clone()).or_default() += 1;
                shared.counters.note_failure(&failure, true);
                if failure.session_broken {
                    // No reply will come for the rest of the window: their outcome is unknown.
                    let lost = window.len() as u64;
                    window.clear();
                    if lost > 0 {
                        *tally.errors.entry(ErrorKind::ConnectionLost).or_default() += lost;
                        shared.counters.failed.fetch_add(lost, Ordering::Relaxed);
                    }
                    session = None;
                    draining = false;
                    hint = None;
                } else if failure.redirect.is_some()
                    || matches!(failure.kind, ErrorKind::ClusterDown | ErrorKind::TryAgain)
                {
                    draining = true;
                    hint = failure.redirect;
                }
            }
        }
    }
    tally
}

fn note_connect_failure<T>(shared: &Shared<T>, tally: &mut Tally, failure: &OpFailure) {
    *tally
        .connect_failures
        .entry(failure.kind.clone())
        .or_default() += 1;
    shared.counters.note_failure(failure, false);
}

/// Sleeps for `delay` unless cancelled first; false when cancelled.
async fn pause(cancel: &CancellationToken, delay: Duration) -> bool {
    if delay.is_zero() {
        return !cancel.is_cancelled();
    }
    tokio::select! {
        () = cancel.cancelled() => false,
        () = tokio::time::sleep(delay) => true,
    }
}

/// Prints the progress line and stops the run when nothing has succeeded for
/// the stall timeout; returns the stall message if it stopped the run.
async fn monitor(
    counters: Arc<LiveCounters>,
    spec: LoadSpec,
    started: Instant,
    load_cancel: CancellationToken,
    cancel: CancellationToken,
) -> Option<String> {
    let live_label = match &spec.progress {
        ProgressStyle::Live { label } => Some(label.clone()),
        ProgressStyle::Quiet => None,
    };
    let terminal = std::io::stderr().is_terminal();
    let mut interval = tokio::time::interval(Duration::from_millis(PROGRESS_INTERVAL_MS));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_ok = 0u64;
    let mut last_tick = started;
    let mut last_success = started;
    let mut last_plain_print = (started, 0u64);
    let mut printed = false;
    // With a duration, the run is stopped at its end (no deadline without one).
    let end = spec.duration.map(|duration| started + duration);
    let mut ended = false;
    let stall = loop {
        tokio::select! {
            () = cancel.cancelled() => break None,
            () = tokio::time::sleep_until(end.unwrap_or(started).into()), if end.is_some() && !ended => {
                ended = true;
                load_cancel.cancel();
                continue;
            }
            _ = interval.tick() => {}
        }
        let now = Instant::now();
        let ok = counters.ok.load(Ordering::Relaxed);
        if ok != last_ok {
            last_success = now;
        }
        if now.duration_since(last_success) >= spec.stall_timeout {
            load_cancel.cancel();
            let last_error = counters.last_error().unwrap_or_else(|| "none".into());
            break Some(format!(
                "no operation succeeded for {} ms ({ok} done so far); last error: {last_error}",
                spec.stall_timeout.as_millis()
            ));
        }
        if let Some(label) = &live_label {
            let failed = counters.failed.load(Ordering::Relaxed);
            let rate = |since: Instant, ok_then: u64| {
                (ok - ok_then) as f64 / now.duration_since(since).as_secs_f64().max(1e-3)
            };
            if terminal {
                let line = progress_line(
                    label,
                    ok,
                    failed,
                    spec.ops,
                    rate(last_tick, last_ok),
                    now.duration_since(started),
                );
                eprint!("\r{line}\x1b[K");
                printed = true;
            } else if now.duration_since(last_plain_print.0)
                >= Duration::from_millis(PROGRESS_PLAIN_INTERVAL_MS)
            {
                let (since, ok_then) = last_plain_print;
                eprintln!(
                    "{}",
                    progress_line(
                        label,
                        ok,
                        failed,
                        spec.ops,
                        rate(since, ok_then),
                        now.duration_since(started)
                    )
                );
                last_plain_print = (now, ok);
            }
            let _ = std::io::stderr().flush();
        }
        last_ok = ok;
        last_tick = now;
    };
    if printed {
        eprint!("\r\x1b[K");
        let _ = std::io::stderr().flush();
    }
    stall
}

/// `load: 12345/100000 ops  23456 ops/s  0 failed  1.2 s`.
pub(crate) fn progress_line(
    label: &str,
    ok: u64,
    failed: u64,
    total: Option<u64>,
    rate_per_sec: f64,
    elapsed: Duration,
) -> String {
    let done = match total {
        Some(total) => format!("{}/{total}", ok + failed),
        None => format!("{}", ok + failed),
    };
    format!(
        "{label}: {done} ops  {rate_per_sec:.0} ops/s  {failed} failed  {:.1} s",
        elapsed.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sixteen_bytes_zero_padded() {
        assert_eq!(&Workload::key(42), b"bench:0000000042");
        assert_eq!(&Workload::key(9_999_999_999), b"bench:9999999999");
        let workload = Workload::new(10, 0.0, 5, 1);
        assert_eq!(&workload.value()[..], b"abcde");
    }

    #[test]
    fn the_read_ratio_and_key_space_are_respected() {
        let workload = Workload::new(50, 0.25, 1, 9);
        let mut chooser = workload.chooser(3);
        let ops: Vec<Op> = (0..20_000).map(|_| chooser.next_op()).collect();
        let reads = ops.iter().filter(|op| op.kind == OpKind::Read).count();
        assert!((4_500..5_500).contains(&reads), "{reads} reads of 20000");
        assert!(ops.iter().all(|op| &op.key[..11] == b"bench:00000"));
        // Same seed and client, same stream; another client, another stream.
        let mut again = workload.chooser(3);
        assert_eq!(again.next_op(), ops[0]);
        let other: Vec<Op> = {
            let mut chooser = workload.chooser(4);
            (0..20).map(|_| chooser.next_op()).collect()
        };
        assert_ne!(other, ops[..20].to_vec());
        let writes_only = Workload::new(50, 0.0, 1, 9);
        let mut chooser = writes_only.chooser(0);
        assert!((0..1000).all(|_| chooser.next_op().kind == OpKind::Write));
    }

    #[test]
    fn a_sequential_workload_writes_key_n_for_operation_n() {
        let workload = Workload::sequential(3);
        let mut chooser = workload.chooser(5);
        assert_eq!(
            chooser.op_for(0),
            Op {
                kind: OpKind::Write,
                key: *b"bench:0000000000"
            }
        );
        assert_eq!(chooser.op_for(41).key, Workload::key(41));
        assert_eq!(&workload.value()[..], b"abc");
        // A random workload ignores the operation number.
        let random = Workload::new(50, 0.0, 1, 9);
        let (mut a, mut b) = (random.chooser(0), random.chooser(0));
        assert_eq!(a.op_for(7), b.next_op());
    }

    #[test]
    fn tickets_are_numbered_up_to_the_limit() {
        let limited = Tickets {
            issued: AtomicU64::new(0),
            limit: Some(2),
        };
        assert_eq!(
            [limited.claim(), limited.claim(), limited.claim()],
            [Some(0), Some(1), None]
        );
        let unlimited = Tickets {
            issued: AtomicU64::new(0),
            limit: None,
        };
        assert_eq!([unlimited.claim(), unlimited.claim()], [Some(0), Some(1)]);
    }

    #[test]
    fn tallies_merge_latencies_and_errors() {
        let mut a = Tally::new();
        a.record(OpKind::Write, Duration::from_micros(100));
        a.record(OpKind::Read, Duration::from_nanos(10)); // recorded as 1 µs
        *a.errors.entry(ErrorKind::Moved).or_default() += 2;
        let mut b = Tally::new();
        b.record(OpKind::Write, Duration::from_secs(3600)); // capped at the maximum
        *b.errors.entry(ErrorKind::Moved).or_default() += 1;
        *b.connect_failures.entry(ErrorKind::NoLeader).or_default() += 4;
        a.merge(&b).unwrap();
        assert_eq!(a.ok_ops(), 3);
        assert_eq!(a.failed_ops(), 3);
        assert_eq!(a.connect_failures[&ErrorKind::NoLeader], 4);
        assert_eq!(a.reads.min(), 1);
        let all = a.all().unwrap();
        assert_eq!(all.len(), 3);
        assert!(all.max() >= LATENCY_US_MAX - LATENCY_US_MAX / 1000);
    }

    #[test]
    fn backoff_starts_immediately_then_doubles_to_the_cap() {
        let mut backoff = Backoff::default();
        let delays: Vec<u64> = (0..9)
            .map(|_| backoff.next_delay().as_millis() as u64)
            .collect();
        assert_eq!(delays, vec![0, 2, 4, 8, 10, 10, 10, 10, 10]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::ZERO);
    }

    #[test]
    fn the_ack_watch_ignores_the_excluded_node_and_earlier_acks() {
        let watch = AckWatch::new();
        let before = Instant::now();
        watch.on_write_ack(before, "b");
        assert_eq!(watch.first_ack(), None, "not armed yet");
        let kill = Instant::now();
        watch.arm(kill, "a".into());
        watch.on_write_ack(before, "b");
        watch.on_write_ack(kill + Duration::from_millis(1), "a");
        assert_eq!(watch.first_ack(), None);
        let ack = kill + Duration::from_millis(2);
        watch.on_write_ack(ack, "b");
        watch.on_write_ack(ack + Duration::from_millis(1), "c");
        assert_eq!(watch.first_ack(), Some(ack));
    }

    #[test]
    fn the_progress_line_shows_counts_rate_and_time() {
        let line = progress_line(
            "load",
            90,
            10,
            Some(1000),
            1234.4,
            Duration::from_millis(1500),
        );
        assert_eq!(line, "load: 100/1000 ops  1234 ops/s  10 failed  1.5 s");
        assert!(progress_line("failover", 5, 0, None, 0.0, Duration::ZERO)
            .starts_with("failover: 5 ops"));
    }
}
