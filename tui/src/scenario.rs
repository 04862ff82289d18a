//! The quality-gate scenario shared by `raftkv demo` and the dashboard's `d`
//! key: the steps, the measurements, and a PASS/FAIL per item on evidence
//! measured in this run (see docs/DEMO.md for the plan it follows).
//!
//! Every wait polls a condition until a deadline; a failed step records why
//! and the later items still run where they can; the bundle is always written.
//!
//! This file holds the run itself (items 1, 2, 7, 8 and the checkpoints);
//! `failover` holds items 3-6 (kill, detection, election, restart),
//! `probes` the reads of node logs, `checks` the pure evaluation of
//! what was observed, `sabotage` the test-only WAL corruption, `write_bench`
//! the built-in benchmark and `demo` the `raftkv demo` command.

mod checks;
mod demo;
mod failover;
mod probes;
mod sabotage;
mod write_bench;

pub use demo::{run_demo, DemoArgs, EXIT_CANNOT_START};

use self::checks::agreed_leader;

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use raftkv_node::client::ClusterClient;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::clock;
use crate::cluster::ClusterLayout;
use crate::digest::state_digest;
use crate::evidence::{self, Bundle};
use crate::gate_record::{
    self, BenchResult, CatchUp, DigestRow, Election, GateNode, GateRecord, ItemResult,
    Measurements, RunMode, StepKind, TimelineEntry, Verdict,
};
use crate::integrity::{Alarm, IntegrityWatch};
use crate::key_check;
use crate::plan::{
    self, bench_key_name, key_name, BENCH_CLIENTS, BENCH_SETS, ITEM_COUNT, ITEM_NAMES,
    KEYS_PER_PHASE,
};
use crate::status::{NodeStatus, Role, StatusFetcher};
use crate::supervisor::{ExitKind, ProcessEvent, ProcessReport, Supervisor};

/// How often a waiting step polls its condition.
pub const POLL_INTERVAL_MS: u64 = 20;
/// One RAFT.STATUS poll of one node.
pub const STATUS_DEADLINE_MS: u64 = 1_000;
/// Started nodes must agree on a leader within this.
pub const CLUSTER_READY_DEADLINE_MS: u64 = 30_000;
/// One client request, retries included.
pub const REQUEST_DEADLINE_MS: u64 = 5_000;
/// Written keys must be readable on every node within this.
pub const REPLICATION_DEADLINE_MS: u64 = 15_000;
/// A killed process must be reaped within this.
pub const KILL_DEADLINE_MS: u64 = 5_000;
/// Each survivor must log the leader's loss within this of the kill.
pub const DETECTION_DEADLINE_MS: u64 = 10_000;
/// A new leader must be elected and followed within this of the kill.
pub const ELECTION_DEADLINE_MS: u64 = 15_000;
/// The new leader's `became_leader` line must reach its log within this.
pub const LOG_LINE_DEADLINE_MS: u64 = 5_000;
/// The restarted node must catch up within this of its restart.
pub const CATCH_UP_DEADLINE_MS: u64 = 20_000;
/// Live nodes must reach an equal applied index within this.
pub const CHECKPOINT_DEADLINE_MS: u64 = 15_000;
/// The whole benchmark.
pub const BENCH_DEADLINE_MS: u64 = 60_000;
/// Latencies above this are recorded as this (the histogram's upper bound).
pub const BENCH_LATENCY_US_MAX: u64 = 60_000_000;
/// The nodes must exit within this of the final graceful stop.
pub const STOP_DEADLINE_MS: u64 = 10_000;
/// A status the gate polls was produced at most this long before it was
/// taken in (the fetch deadline, doubled for the wait on the slowest node of a
/// parallel poll): the integrity checks rely on it.
pub const INTEGRITY_STATUS_AGE_MS_MAX: u64 = 2 * STATUS_DEADLINE_MS;
/// A request to the dashboard's supervisor must be answered within this.
pub const PROCESS_REQUEST_DEADLINE_MS: u64 = 5_000;
/// Process reports buffered for the gate's own supervisor.
pub const PROCESS_REPORTS_MAX: usize = 64;
/// Suggested bound of the progress channel (updates are snapshots: when it
/// is full the gate skips one, the next carries everything).
pub const PROGRESS_QUEUE_MAX: usize = 16;

pub(crate) const ABORTED: &str = "aborted before this step finished";
pub(crate) const ATTACHED: &str =
    "cannot run: attached to a cluster this demo did not start, so it may not kill or restart nodes";

// ----- process control ------------------------------------------------------

/// What the gate asks of whoever owns the node processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessOp {
    /// kill -9; answers the pid.
    Kill,
    /// Start with the data dir kept; answers the pid.
    Start,
    /// The pid while running, `None` when not.
    Pid,
}

/// A request from the gate to the dashboard's supervisor; answer it with
/// [`serve_process_request`].
#[derive(Debug)]
pub struct ProcessRequest {
    pub id: u64,
    pub op: ProcessOp,
    pub reply: oneshot::Sender<Result<Option<u32>, String>>,
}

/// Carries out one request on the dashboard's supervisor (on the thread that
/// owns it: `Supervisor::start` must run on the main thread). A start is
/// returned as the report the dashboard would have made for its own `r`
/// (the supervisor reports only exits), so the screen learns of it.
pub fn serve_process_request(
    supervisor: &mut Supervisor,
    request: ProcessRequest,
) -> Option<ProcessReport> {
    let result = match request.op {
        ProcessOp::Kill => supervisor.kill(request.id).map(Some),
        ProcessOp::Start => supervisor.start(request.id, false).map(Some),
        ProcessOp::Pid => Ok(supervisor.pid(request.id)),
    };
    let report = (request.op == ProcessOp::Start).then(|| ProcessReport {
        id: request.id,
        at_ms: clock::now_ms(),
        event: match &result {
            Ok(pid) => ProcessEvent::Started {
                pid: pid.unwrap_or(0),
            },
            Err(error) => ProcessEvent::SpawnFailed {
                error: error.clone(),
            },
        },
    });
    // The gate may have been aborted meanwhile; then nobody waits for this.
    let _ = request.reply.send(result);
    report
}

/// How the gate reaches the node processes.
// One per gate run, never moved around: the supervisor stays inline.
#[allow(clippy::large_enum_variant)]
pub enum ProcessControl {
    /// `raftkv demo`: the gate owns the supervisor and its reports. The gate
    /// future must then run on the main thread (`block_on`), see supervisor.rs.
    Owned {
        supervisor: Supervisor,
        reports: mpsc::Receiver<ProcessReport>,
    },
    /// The dashboard owns the processes and serves [`ProcessRequest`]s.
    Dashboard(mpsc::Sender<ProcessRequest>),
    /// A cluster this process did not start: no kill, no restart.
    Attached,
}

impl ProcessControl {
    fn can_control(&self) -> bool {
        !matches!(self, ProcessControl::Attached)
    }

    async fn request(&mut self, id: u64, op: ProcessOp) -> Result<Option<u32>, String> {
        match self {
            ProcessControl::Owned { supervisor, .. } => match op {
                ProcessOp::Kill => supervisor.kill(id).map(Some),
                ProcessOp::Start => supervisor.start(id, false).map(Some),
                ProcessOp::Pid => Ok(supervisor.pid(id)),
            },
            ProcessControl::Dashboard(requests) => {
                let (reply, answer) = oneshot::channel();
                let ask = async {
                    requests
                        .send(ProcessRequest { id, op, reply })
                        .await
                        .map_err(|_| {
                            "the dashboard no longer takes process requests".to_string()
                        })?;
                    answer
                        .await
                        .map_err(|_| "the dashboard dropped the process request".to_string())?
                };
                tokio::time::timeout(Duration::from_millis(PROCESS_REQUEST_DEADLINE_MS), ask)
                    .await
                    .map_err(|_| {
                        format!(
                            "the dashboard did not answer within {PROCESS_REQUEST_DEADLINE_MS} ms"
                        )
                    })?
            }
            ProcessControl::Attached => Err(ATTACHED.into()),
        }
    }

    /// How node `id` last exited, when the gate's own supervisor saw it.
    fn last_exit(&mut self, id: u64) -> Option<ExitKind> {
        let ProcessControl::Owned { reports, .. } = self else {
            return None;
        };
        let mut last = None;
        while let Ok(report) = reports.try_recv() {
            if let (true, ProcessEvent::Exited { exit }) = (report.id == id, &report.event) {
                last = Some(*exit);
            }
        }
        last
    }
}

// ----- context, progress, outcome --------------------------------------------

/// Everything a gate run needs to know about its cluster.
pub struct GateContext {
    pub mode: RunMode,
    pub nodes: Vec<GateNode>,
    /// Node i's data dir is `<data_dir>/node-<i>` (needed only by the sabotage).
    pub data_dir: Option<PathBuf>,
    pub processes: ProcessControl,
    /// Bundles go to `<out_dir>/<UTC timestamp>/`.
    pub out_dir: PathBuf,
    /// The cluster held no data before the gate: values are `value-<n>` and
    /// every checkpoint's digest must equal the digest of the pairs written.
    pub fresh: bool,
    /// Print the plan and every progress line to stdout (`raftkv demo`).
    pub echo: bool,
    /// Test only: corrupt the killed leader's WAL before its restart.
    pub sabotage_catchup: bool,
    /// What has been seen committed and applied before the gate (the
    /// dashboard's, alarms included); every status the gate polls adds to it,
    /// and any alarm fails item 7.
    pub integrity: IntegrityWatch,
}

impl GateContext {
    /// The dashboard's `d`: its running cluster, processes through `requests`.
    pub fn for_dashboard(
        layout: &ClusterLayout,
        requests: mpsc::Sender<ProcessRequest>,
        out_dir: PathBuf,
    ) -> GateContext {
        GateContext {
            mode: RunMode::Dashboard,
            nodes: gate_record::nodes_from_layout(layout),
            data_dir: Some(layout.data_dir.clone()),
            processes: ProcessControl::Dashboard(requests),
            out_dir,
            fresh: false,
            echo: false,
            sabotage_catchup: false,
            integrity: IntegrityWatch::new(INTEGRITY_STATUS_AGE_MS_MAX),
        }
    }

    /// A cluster this process may not kill (`--attach`): `nodes` are
    /// (id, client address); logs are read from `log_dir` when they are there.
    pub fn for_attached(
        nodes: Vec<(u64, String)>,
        log_dir: Option<&Path>,
        out_dir: PathBuf,
    ) -> GateContext {
        let nodes = gate_record::nodes_from_addrs(nodes, log_dir);
        GateContext {
            mode: RunMode::Attached,
            nodes,
            data_dir: None,
            processes: ProcessControl::Attached,
            out_dir,
            fresh: false,
            echo: false,
            sabotage_catchup: false,
            integrity: IntegrityWatch::new(INTEGRITY_STATUS_AGE_MS_MAX),
        }
    }
}

/// Sent after every change of the record (a step began, a verdict, a
/// checkpoint); each one is complete, so a receiver that misses some loses nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GateProgress {
    pub record: GateRecord,
    pub bundle_dir: Option<PathBuf>,
}

/// How a gate run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GateOutcome {
    pub record: GateRecord,
    /// The bundle folder, or why it could not be written (completely).
    pub bundle: Result<PathBuf, String>,
}

impl GateOutcome {
    pub fn all_passed(&self) -> bool {
        self.record.all_passed()
    }
}

// ----- the run ------------------------------------------------------------------

/// The leader as one poll saw it.
#[derive(Clone, Debug)]
struct Leader {
    id: u64,
    term: u64,
    addr: String,
}

/// One of the gate's write items (2: the first keys through the leader,
/// 5: more through the new leader after the kill).
struct WriteItem<'a> {
    item: usize,
    /// The timeline steps of the writes and of their check.
    steps: (&'a str, &'a str),
    leader: &'a Leader,
    keys: RangeInclusive<u64>,
    /// The nodes every gate key so far is checked on.
    nodes: &'a [u64],
    /// What the figure says was written, and through whom.
    written: &'a str,
    /// Where the writes' duration is kept.
    measured: fn(&mut Measurements) -> &mut Option<u64>,
}

/// The killed leader.
#[derive(Clone, Copy, Debug)]
struct Killed {
    id: u64,
    term: u64,
    at_ms: u64,
}

struct Gate {
    ctx: GateContext,
    record: GateRecord,
    progress: mpsc::Sender<GateProgress>,
    cancel: CancellationToken,
    bundle: Result<Bundle, String>,
    /// The run's tag in values when the cluster is not fresh.
    run_tag: String,
    /// Gate keys acknowledged so far (1-based key numbers).
    acked_keys: u64,
    /// A write failed or its outcome is unknown: the nodes need not hold
    /// exactly keys 1..=acked_keys, so there is no expected digest.
    writes_uncertain: bool,
    /// Checkpoint name -> its result (figure or reason), for item 7.
    checkpoints: BTreeMap<&'static str, Result<String, String>>,
    /// One RAFT.STATUS connection per node, kept open between polls.
    fetchers: BTreeMap<u64, StatusFetcher>,
}

/// Runs the gate: items 1-8, then (when it owns the cluster) stops the nodes,
/// and writes the bundle. Progress goes to `progress` after every change;
/// `cancel` aborts what is left (items not reached are FAIL, "not run").
pub async fn run_gate(
    mut ctx: GateContext,
    progress: mpsc::Sender<GateProgress>,
    cancel: CancellationToken,
) -> GateOutcome {
    let started_at_ms = clock::now_ms();
    for node in &mut ctx.nodes {
        node.log_start_offset_bytes = node
            .event_log
            .as_deref()
            .map_or(0, evidence::log_end_offset);
    }
    let record = GateRecord::new(ctx.mode, ctx.nodes.clone(), started_at_ms);
    let bundle = Bundle::create(&ctx.out_dir, started_at_ms);
    let fetchers = ctx
        .nodes
        .iter()
        .map(|n| (n.id, StatusFetcher::new(n.client_addr.clone())))
        .collect();
    let mut gate = Gate {
        ctx,
        record,
        progress,
        cancel,
        bundle,
        run_tag: evidence::bundle_dir_name(started_at_ms),
        acked_keys: 0,
        writes_uncertain: false,
        checkpoints: BTreeMap::new(),
        fetchers,
    };
    gate.run().await;
    gate.finish().await
}

impl Gate {
    fn all_ids(&self) -> Vec<u64> {
        self.ctx.nodes.iter().map(|n| n.id).collect()
    }

    fn addr(&self, id: u64) -> String {
        self.ctx
            .nodes
            .iter()
            .find(|n| n.id == id)
            .map_or_else(String::new, |n| n.client_addr.clone())
    }

    fn value(&self, n: u64) -> String {
        if self.ctx.fresh {
            format!("value-{n}")
        } else {
            format!("value-{n}@{}", self.run_tag)
        }
    }

    fn expected_pairs(&self, keys: RangeInclusive<u64>) -> Vec<(String, String)> {
        keys.map(|n| (key_name(n), self.value(n))).collect()
    }

    fn send_progress(&self) {
        // A full queue skips this update (the next one carries it); a closed
        // one means nobody watches.
        let _ = self.progress.try_send(GateProgress {
            record: self.record.clone(),
            bundle_dir: self.bundle.as_ref().ok().map(|b| b.dir.clone()),
        });
    }

    fn emit(&mut self, step: &str, kind: StepKind, text: impl Into<String>) {
        let entry = TimelineEntry {
            at_ms: clock::now_ms(),
            step: step.to_string(),
            kind,
            text: text.into(),
        };
        if self.ctx.echo {
            println!("{}", entry.progress_line());
        }
        tracing::info!(
            event = "gate_step",
            step,
            kind = kind.name(),
            text = entry.text.as_str()
        );
        self.record.push(entry);
        self.send_progress();
    }

    fn verdict(&mut self, item: usize, result: ItemResult) {
        let kind = match result.verdict {
            Verdict::Pass => StepKind::Pass,
            Verdict::Fail => StepKind::Fail,
        };
        let text = format!("{}: {}", ITEM_NAMES[item - 1], result.figure);
        self.record.set_item(item, result);
        self.emit(&item.to_string(), kind, text);
    }

    /// Waits one poll interval, or fails when the run was aborted.
    async fn pause(&self) -> Result<(), String> {
        tokio::select! {
            () = self.cancel.cancelled() => Err(ABORTED.into()),
            () = tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)) => Ok(()),
        }
    }

    async fn poll(&mut self, ids: &[u64]) -> Vec<(u64, Result<NodeStatus, String>)> {
        let deadline = Duration::from_millis(STATUS_DEADLINE_MS);
        let polls = self
            .fetchers
            .iter_mut()
            .filter(|(id, _)| ids.contains(id))
            .map(|(id, fetcher)| async move { (*id, fetcher.fetch(deadline).await) });
        let polled = futures::future::join_all(polls).await;
        let at_ms = clock::now_ms();
        let mut raised = Vec::new();
        for status in polled.iter().filter_map(|(_, r)| r.as_ref().ok()) {
            raised.extend(self.ctx.integrity.observe(status, at_ms));
        }
        for alarm in raised {
            self.emit_alarm(&alarm);
        }
        polled
    }

    fn emit_alarm(&mut self, alarm: &Alarm) {
        self.emit(
            "7",
            StepKind::Fail,
            format!("integrity alarm: {}: {}", alarm.summary, alarm.detail),
        );
    }

    async fn status(&mut self, id: u64) -> Result<NodeStatus, String> {
        let mut polled = self.poll(&[id]).await;
        polled.pop().map_or_else(
            || Err(format!("there is no node {id}")),
            |(_, result)| result,
        )
    }

    async fn wait_for_leader(
        &mut self,
        ids: &[u64],
        above_term: u64,
        deadline_ms: u64,
    ) -> Result<Leader, String> {
        let deadline = Instant::now() + Duration::from_millis(deadline_ms);
        loop {
            let polled = self.poll(ids).await;
            let problem = match agreed_leader(&polled, self.ctx.nodes.len(), above_term) {
                Ok((id, term)) => {
                    return Ok(Leader {
                        id,
                        term,
                        addr: self.addr(id),
                    })
                }
                Err(problem) => problem,
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "no agreed leader within {deadline_ms} ms: {problem}"
                ));
            }
            self.pause().await?;
        }
    }

    /// The leader all nodes agree on, given the time a cluster needs to
    /// start and elect one.
    async fn wait_for_cluster_leader(&mut self) -> Result<Leader, String> {
        let ids = self.all_ids();
        self.wait_for_leader(&ids, 0, CLUSTER_READY_DEADLINE_MS)
            .await
    }

    async fn run(&mut self) {
        if let Ok(bundle) = &self.bundle {
            let dir = bundle.dir.display().to_string();
            self.emit("1", StepKind::Info, format!("evidence bundle: {dir}"));
        }
        self.ctx
            .integrity
            .allow_status_age_ms(INTEGRITY_STATUS_AGE_MS_MAX);
        let standing: Vec<Alarm> = self.ctx.integrity.alarms().to_vec();
        for alarm in &standing {
            self.emit_alarm(alarm);
        }
        self.item1_plan();
        let leader = self.item2_writes_to_leader().await;
        self.checkpoint("after-2", "2.5", &self.all_ids()).await;
        let killed = self.item3_kill_and_detect(leader.as_ref()).await;
        let new_leader = self.item4_new_leader(killed).await;
        let survivors: Vec<u64> = self
            .all_ids()
            .into_iter()
            .filter(|id| Some(*id) != killed.map(|k| k.id))
            .collect();
        self.item5_writes_to_new_leader(new_leader.as_ref(), &survivors, killed)
            .await;
        if killed.is_some() {
            self.checkpoint("after-5", "5.3", &survivors).await;
        }
        self.item6_restart_and_verify(killed).await;
        if killed.is_some() {
            self.checkpoint("after-6", "6.4", &self.all_ids()).await;
        }
        self.item7_digests();
        self.item8_report().await;
    }

    fn aborted(&self) -> bool {
        self.cancel.is_cancelled()
    }

    // ----- item 1 ---------------------------------------------------------------

    fn item1_plan(&mut self) {
        self.emit(
            "1.1",
            StepKind::Step,
            "print the plan and save it as DEMO.md in the bundle",
        );
        let plan = plan::plan_text();
        if self.ctx.echo {
            println!("{plan}");
        } else {
            // The dashboard owns the screen: its timeline shows the numbered items.
            for (i, name) in ITEM_NAMES.iter().enumerate() {
                self.emit("1.1", StepKind::Info, format!("plan {}. {name}", i + 1));
            }
        }
        let saved = match &self.bundle {
            Ok(bundle) => bundle.write_plan(),
            Err(e) => Err(e.clone()),
        };
        let steps = plan
            .lines()
            .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
            .count();
        let shown = if self.ctx.echo {
            "printed"
        } else {
            "shown in the dashboard timeline"
        };
        let result = match saved {
            Ok(()) => ItemResult::pass(
                format!(
                    "plan of {steps} numbered steps {shown} and saved ({} lines)",
                    plan.lines().count()
                ),
                "DEMO.md; timeline.jsonl step 1.1",
            ),
            Err(e) => ItemResult::fail(format!("plan not saved: {e}"), "timeline.jsonl step 1.1"),
        };
        self.verdict(1, result);
    }

    // ----- item 2 ---------------------------------------------------------------

    async fn start_nodes_that_are_down(&mut self) {
        if !self.ctx.processes.can_control() {
            self.emit(
                "2.1",
                StepKind::Step,
                "attached: using the running nodes as they are",
            );
            return;
        }
        let mut started = Vec::new();
        for id in self.all_ids() {
            match self.ctx.processes.request(id, ProcessOp::Pid).await {
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(e) => {
                    self.emit("2.1", StepKind::Warn, format!("node {id}: {e}"));
                    continue;
                }
            }
            match self.ctx.processes.request(id, ProcessOp::Start).await {
                Ok(pid) => started.push(format!("{id} (pid {})", pid.unwrap_or(0))),
                Err(e) => self.emit(
                    "2.1",
                    StepKind::Warn,
                    format!("cannot start node {id}: {e}"),
                ),
            }
        }
        let text = if started.is_empty() {
            "every node is already running".to_string()
        } else {
            format!("started node {}", started.join(", node "))
        };
        self.emit("2.1", StepKind::Step, text);
    }

    async fn item2_writes_to_leader(&mut self) -> Option<Leader> {
        self.start_nodes_that_are_down().await;
        self.emit(
            "2.2",
            StepKind::Step,
            "wait until the nodes agree on one leader",
        );
        let ids = self.all_ids();
        let leader = match self.wait_for_cluster_leader().await {
            Ok(leader) => leader,
            Err(e) => {
                self.verdict(2, ItemResult::fail(e, "timeline.jsonl step 2.2"));
                return None;
            }
        };
        self.emit(
            "2.2",
            StepKind::Info,
            format!(
                "node {} ({}) is leader in term {}",
                leader.id, leader.addr, leader.term
            ),
        );
        self.write_and_verify(WriteItem {
            item: 2,
            steps: ("2.3", "2.4"),
            leader: &leader,
            keys: 1..=KEYS_PER_PHASE,
            nodes: &ids,
            written: "keys written through leader",
            measured: |measurements| &mut measurements.first_writes_ms,
        })
        .await;
        Some(leader)
    }

    /// A write item (2 and 5): SETs its keys through its leader, keeps the
    /// ms that took, checks every gate key so far on its nodes, and gives
    /// the item its verdict.
    async fn write_and_verify(&mut self, write: WriteItem<'_>) {
        let (write_step, verify_step) = write.steps;
        let through = *write.keys.end();
        let result = match self.write_keys(write_step, write.leader, write.keys).await {
            Ok(ms) => {
                *(write.measured)(&mut self.record.measurements) = Some(ms);
                self.verify_keys(verify_step, write.nodes, 1..=through)
                    .await
                    .map(|figure| {
                        format!(
                            "{KEYS_PER_PHASE} {} node {} (term {}) in {}; {figure}",
                            write.written,
                            write.leader.id,
                            write.leader.term,
                            evidence::format_ms(ms)
                        )
                    })
            }
            Err(e) => Err(e),
        };
        let timeline_steps = format!("timeline.jsonl steps {write_step}-{verify_step}");
        self.verdict(
            write.item,
            match result {
                Ok(figure) => ItemResult::pass(figure, timeline_steps),
                Err(e) => ItemResult::fail(e, timeline_steps),
            },
        );
    }

    /// SETs the gate keys `keys` through `leader`; returns the ms it took.
    async fn write_keys(
        &mut self,
        step: &str,
        leader: &Leader,
        keys: RangeInclusive<u64>,
    ) -> Result<u64, String> {
        let (first, last) = (*keys.start(), *keys.end());
        self.emit(
            step,
            StepKind::Step,
            format!(
                "SET {}..{} = {}..{} through leader node {} ({})",
                key_name(first),
                key_name(last),
                self.value(first),
                self.value(last),
                leader.id,
                leader.addr
            ),
        );
        let started = Instant::now();
        let mut client = ClusterClient::new(
            vec![leader.addr.clone()],
            Duration::from_millis(REQUEST_DEADLINE_MS),
        );
        for n in keys {
            let write = client.set(key_name(n), self.value(n));
            let result = tokio::select! {
                () = self.cancel.cancelled() => {
                    // The SET in flight may or may not have been applied.
                    self.writes_uncertain = true;
                    return Err(ABORTED.into());
                }
                result = write => result,
            };
            if let Err(e) = result {
                // The keys now on the nodes are no longer exactly 1..=acked_keys
                // (a gap, or a write whose outcome is unknown).
                self.writes_uncertain = true;
                return Err(format!(
                    "SET {} failed after {} of {} keys were acknowledged: {e}",
                    key_name(n),
                    n - first,
                    last - first + 1
                ));
            }
            self.acked_keys = self.acked_keys.max(n);
        }
        let ms = started.elapsed().as_millis() as u64;
        let via = client.leader_hint().unwrap_or(&leader.addr).to_string();
        self.emit(
            step,
            StepKind::Info,
            format!(
                "{} SETs acknowledged in {} (last served by {via})",
                last - first + 1,
                evidence::format_ms(ms)
            ),
        );
        Ok(ms)
    }

    /// Reads `keys` on every node in `ids` (READONLY + MGET: each node's own
    /// state) until all are right or the deadline passes.
    async fn verify_keys(
        &mut self,
        step: &str,
        ids: &[u64],
        keys: RangeInclusive<u64>,
    ) -> Result<String, String> {
        let total = keys.end() - keys.start() + 1;
        let node_list = ids
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        self.emit(
            step,
            StepKind::Step,
            format!(
                "read {}..{} on node {node_list} (READONLY + MGET, each node's own state)",
                key_name(*keys.start()),
                key_name(*keys.end())
            ),
        );
        let expected = self.expected_pairs(keys);
        let started = Instant::now();
        let deadline = started + Duration::from_millis(REPLICATION_DEADLINE_MS);
        let mut pending: Vec<u64> = ids.to_vec();
        let mut problems: BTreeMap<u64, String> = BTreeMap::new();
        loop {
            let checks = futures::future::join_all(pending.iter().map(|id| {
                let addr = self.addr(*id);
                let expected = &expected;
                async move { (*id, key_check::read_back(&addr, expected).await) }
            }))
            .await;
            for (id, check) in checks {
                match check {
                    Ok(check) if check.is_complete() => {
                        pending.retain(|p| *p != id);
                        problems.remove(&id);
                    }
                    Ok(check) => {
                        problems.insert(id, check.describe(total));
                    }
                    Err(e) => {
                        problems.insert(id, e);
                    }
                }
            }
            if pending.is_empty() {
                let ms = started.elapsed().as_millis() as u64;
                let figure = format!(
                    "{total}/{total} keys right on node {node_list} (all read within {})",
                    evidence::format_ms(ms)
                );
                self.emit(step, StepKind::Info, figure.clone());
                return Ok(figure);
            }
            if Instant::now() >= deadline {
                let details: Vec<String> = problems
                    .iter()
                    .map(|(id, p)| format!("node {id}: {p}"))
                    .collect();
                let text = format!(
                    "not every node had the {total} keys within {REPLICATION_DEADLINE_MS} ms: {}",
                    details.join("; ")
                );
                self.emit(step, StepKind::Warn, text.clone());
                return Err(text);
            }
            self.pause().await?;
        }
    }

    // ----- checkpoints (item 7) ---------------------------------------------------

    /// Digest, applied index and key count of every node in `ids` once their
    /// applied indexes are equal; the rows go to digests.csv.
    async fn checkpoint(&mut self, name: &'static str, step: &str, ids: &[u64]) {
        if self.aborted() {
            self.checkpoints.insert(name, Err(ABORTED.into()));
            return;
        }
        self.emit(
            step,
            StepKind::Step,
            format!(
                "checkpoint {name}: digest and applied index of node {}",
                ids.iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        let result = self.checkpoint_rows(name, ids).await;
        match &result {
            Ok(figure) => self.emit(step, StepKind::Info, format!("checkpoint {name}: {figure}")),
            Err(e) => self.emit(step, StepKind::Warn, format!("checkpoint {name}: {e}")),
        }
        self.checkpoints.insert(name, result);
    }

    async fn checkpoint_rows(&mut self, name: &'static str, ids: &[u64]) -> Result<String, String> {
        if ids.is_empty() {
            return Err("no live node to compare".into());
        }
        let deadline = Instant::now() + Duration::from_millis(CHECKPOINT_DEADLINE_MS);
        loop {
            let polled = self.poll(ids).await;
            let answered: Vec<(u64, NodeStatus)> = polled
                .iter()
                .filter_map(|(id, r)| r.as_ref().ok().map(|s| (*id, s.clone())))
                .collect();
            let all_answered = answered.len() == ids.len();
            let equal_applied = answered
                .windows(2)
                .all(|w| w[0].1.applied_index == w[1].1.applied_index);
            if all_answered && equal_applied {
                self.record_rows(name, &answered);
                return self.judge_checkpoint(&answered);
            }
            // A node whose process is gone will not answer: no use waiting for it.
            let down = self.not_running(&polled).await;
            if !down.is_empty() || Instant::now() >= deadline {
                self.record_rows(name, &answered);
                let seen: Vec<String> = polled
                    .iter()
                    .map(|(id, r)| match r {
                        Ok(s) => format!(
                            "node {id} at applied index {} (digest {})",
                            s.applied_index,
                            checks::short(&s.digest)
                        ),
                        Err(_) if down.contains(id) => format!("node {id} is not running"),
                        Err(e) => format!("node {id} does not answer ({e})"),
                    })
                    .collect();
                let why = if down.is_empty() {
                    format!(
                        "applied indexes did not become equal within {CHECKPOINT_DEADLINE_MS} ms"
                    )
                } else {
                    "not every node is live".to_string()
                };
                return Err(format!("{why}: {}", seen.join(", ")));
            }
            self.pause().await?;
        }
    }

    fn record_rows(&mut self, name: &str, answered: &[(u64, NodeStatus)]) {
        for (id, status) in answered {
            self.record.digests.push(DigestRow {
                node: *id,
                checkpoint: name.to_string(),
                applied_index: status.applied_index,
                digest: status.digest.clone(),
                keys: status.keys,
            });
        }
        self.send_progress();
    }

    /// The nodes among those that did not answer whose process has exited.
    async fn not_running(&mut self, polled: &[(u64, Result<NodeStatus, String>)]) -> Vec<u64> {
        let mut down = Vec::new();
        if !self.ctx.processes.can_control() {
            return down;
        }
        for (id, result) in polled {
            if result.is_err()
                && matches!(
                    self.ctx.processes.request(*id, ProcessOp::Pid).await,
                    Ok(None)
                )
            {
                down.push(*id);
            }
        }
        down
    }

    /// Equal applied index reached: digests must be equal, and in a fresh
    /// cluster equal to the digest of exactly the pairs written.
    fn judge_checkpoint(&self, answered: &[(u64, NodeStatus)]) -> Result<String, String> {
        let (_, first) = &answered[0];
        if let Some((id, other)) = answered.iter().find(|(_, s)| s.digest != first.digest) {
            return Err(format!(
                "digests differ at applied index {}: node {} has {}, node {id} has {}",
                first.applied_index, answered[0].0, first.digest, other.digest
            ));
        }
        let mut figure = format!(
            "{} nodes at applied index {}, digest {}, {} keys",
            answered.len(),
            first.applied_index,
            checks::short(&first.digest),
            first.keys
        );
        if self.ctx.fresh && !self.writes_uncertain {
            let pairs = self.expected_pairs(1..=self.acked_keys);
            // Computed by the dashboard's own digest code, independent of the node's.
            let expected = state_digest(pairs.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())));
            if first.digest != expected {
                return Err(format!(
                    "the nodes agree on digest {} but the {} pairs written have digest {expected}",
                    first.digest, self.acked_keys
                ));
            }
            figure.push_str(&format!(
                ", = digest of the {} pairs written",
                self.acked_keys
            ));
            if expected == plan::FRESH_FINAL_DIGEST {
                figure.push_str(" (the DESIGN.md test vector)");
            }
        }
        Ok(figure)
    }

    // ----- item 7 ---------------------------------------------------------------

    fn item7_digests(&mut self) {
        let mut lines = Vec::new();
        let mut all_ok = true;
        // Equal digests at the checkpoints prove nothing if the cluster lost or
        // forked committed entries at any moment of the run (or before it).
        for alarm in self.ctx.integrity.alarms() {
            all_ok = false;
            lines.push(format!("integrity alarm: {}", alarm.summary));
        }
        for name in ["after-2", "after-5", "after-6"] {
            match self.checkpoints.get(name) {
                Some(Ok(figure)) => lines.push(format!("{name}: {figure}")),
                Some(Err(e)) => {
                    all_ok = false;
                    lines.push(format!("{name} FAILED: {e}"));
                }
                None => {
                    all_ok = false;
                    lines.push(format!("{name} not taken: no node was killed (item 3)"));
                }
            }
        }
        let evidence = format!("digests.csv ({} rows)", self.record.digests.len());
        let result = if all_ok {
            ItemResult::pass(lines.join("; "), evidence)
        } else {
            ItemResult::fail(lines.join("; "), evidence)
        };
        self.verdict(7, result);
    }

    // ----- item 8 ---------------------------------------------------------------

    async fn item8_report(&mut self) {
        let bench = if self.aborted() {
            Err(ABORTED.to_string())
        } else {
            self.run_bench().await
        };
        self.emit("8.2", StepKind::Step, "write REPORT.md");
        self.record.measurements.gate_wall_ms =
            Some(clock::now_ms().saturating_sub(self.record.started_at_ms));
        let provisional = match &bench {
            Ok(b) => ItemResult::pass(
                format!(
                    "REPORT.md with this run's numbers: {} SET/s, p50 {}, p99 {}, gate wall time {}",
                    b.ops_per_sec,
                    evidence::format_us_as_ms(b.latency_us_p50),
                    evidence::format_us_as_ms(b.latency_us_p99),
                    evidence::format_ms(self.record.measurements.gate_wall_ms.unwrap_or(0))
                ),
                "REPORT.md",
            ),
            Err(e) => ItemResult::fail(format!("the benchmark gave no numbers: {e}"), "REPORT.md; timeline.jsonl step 8.1"),
        };
        self.record.set_item(8, provisional.clone());
        let written = match &self.bundle {
            Ok(bundle) => bundle.write_report(&self.record),
            Err(e) => Err(e.clone()),
        };
        let result = match written {
            Ok(()) => provisional,
            Err(e) => ItemResult::fail(
                format!("REPORT.md not written: {e}"),
                "timeline.jsonl step 8.2",
            ),
        };
        self.verdict(8, result);
    }

    async fn run_bench(&mut self) -> Result<BenchResult, String> {
        let ids = self.all_ids();
        let leader = self
            .wait_for_leader(&ids, 0, ELECTION_DEADLINE_MS)
            .await
            .map_err(|e| format!("no leader: {e}"));
        let leader = match leader {
            Ok(leader) => leader,
            Err(e) => {
                self.emit("8.1", StepKind::Warn, e.clone());
                return Err(e);
            }
        };
        self.emit(
            "8.1",
            StepKind::Step,
            format!(
                "benchmark: {} SETs of {}..{} from {BENCH_CLIENTS} clients through leader node {}",
                plan::thousands(BENCH_SETS),
                bench_key_name(1),
                bench_key_name(BENCH_SETS),
                leader.id
            ),
        );
        let run = write_bench::bench(leader.addr.clone(), leader.id);
        let result = tokio::select! {
            () = self.cancel.cancelled() => Err(ABORTED.to_string()),
            result = tokio::time::timeout(Duration::from_millis(BENCH_DEADLINE_MS), run) => {
                result.unwrap_or_else(|_| Err(format!("did not finish within {BENCH_DEADLINE_MS} ms")))
            }
        };
        match &result {
            Ok(b) => {
                self.emit(
                    "8.1",
                    StepKind::Info,
                    format!(
                        "{} SETs in {}: {} SET/s, p50 {}, p99 {}, max {}, {} failed",
                        plan::thousands(b.sets),
                        evidence::format_ms(b.elapsed_ms),
                        b.ops_per_sec,
                        evidence::format_us_as_ms(b.latency_us_p50),
                        evidence::format_us_as_ms(b.latency_us_p99),
                        evidence::format_us_as_ms(b.latency_us_max),
                        b.failed
                    ),
                );
                self.record.measurements.bench = Some(b.clone());
            }
            Err(e) => self.emit("8.1", StepKind::Warn, format!("benchmark: {e}")),
        }
        result
    }

    // ----- the end ----------------------------------------------------------------

    async fn finish(mut self) -> GateOutcome {
        if let ProcessControl::Owned { supervisor, .. } = &self.ctx.processes {
            let asked = supervisor.stop_all();
            let all_exited = supervisor
                .wait_all_exited(Duration::from_millis(STOP_DEADLINE_MS))
                .await;
            let text = if all_exited {
                format!("stopped the cluster ({asked} running nodes, SIGTERM)")
            } else {
                format!("stopped the cluster: nodes still running after {STOP_DEADLINE_MS} ms were killed")
            };
            self.emit("8.3", StepKind::Step, text);
        }
        self.record.finished_at_ms = Some(clock::now_ms());
        let passed = self.record.passed_count();
        self.emit(
            "8.4",
            StepKind::Info,
            format!("{passed}/{ITEM_COUNT} items PASS; writing the bundle"),
        );
        let bundle = match &self.bundle {
            Ok(bundle) => bundle.write_rest(&self.record).map(|()| bundle.dir.clone()),
            Err(e) => Err(e.clone()),
        };
        self.send_progress();
        GateOutcome {
            record: self.record,
            bundle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_dashboard_serves_the_gates_process_requests() {
        let dir = tempfile::tempdir().unwrap();
        // A stand-in node: the requests, not the node, are under test.
        let (mut supervisor, _reports) =
            Supervisor::stand_in(dir.path(), 1, "exec sleep 30", 1_000);
        let (requests_tx, mut requests) = mpsc::channel(4);
        let mut control = ProcessControl::Dashboard(requests_tx);

        // The dashboard's side, as its event loop serves them.
        let dashboard = async move {
            let mut reports = Vec::new();
            while let Some(request) = requests.recv().await {
                reports.extend(serve_process_request(&mut supervisor, request));
            }
            reports
        };
        let gate = async move {
            assert_eq!(control.request(1, ProcessOp::Pid).await, Ok(None));
            let pid = control.request(1, ProcessOp::Start).await.unwrap();
            assert!(pid.is_some());
            assert_eq!(control.request(1, ProcessOp::Pid).await, Ok(pid));
            let refused = control.request(2, ProcessOp::Start).await.unwrap_err();
            assert!(refused.contains("no node 2"), "{refused}");
            assert_eq!(control.request(1, ProcessOp::Kill).await, Ok(pid));
            let deadline = Instant::now() + Duration::from_secs(10);
            while control.request(1, ProcessOp::Pid).await.unwrap().is_some() {
                assert!(Instant::now() < deadline, "node 1 outlived kill -9");
                tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)).await;
            }
            pid.unwrap()
        };
        let (reports, pid) = tokio::join!(dashboard, gate);
        let events: Vec<(u64, ProcessEvent)> =
            reports.into_iter().map(|r| (r.id, r.event)).collect();
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[0], (1, ProcessEvent::Started { pid }));
        assert!(
            matches!(&events[1], (2, ProcessEvent::SpawnFailed { error }) if error.contains("no node 2"))
        );
    }

    #[tokio::test]
    async fn an_attached_gate_may_not_touch_processes() {
        let mut control = ProcessControl::Attached;
        assert!(!control.can_control());
        assert_eq!(
            control.request(1, ProcessOp::Kill).await,
            Err(ATTACHED.to_string())
        );
        assert_eq!(control.last_exit(1), None);
    }
}
