//! The quality-gate scenario shared by `raftkv demo` and the dashboard's `d`
//! key: the steps, the measurements, and a PASS/FAIL per item on evidence
//! measured in this run (see docs/DEMO.md for the plan it follows).
//!
//! Every wait polls a condition until a deadline; a failed step records why
//! and the later items still run where they can; the bundle is always written.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use raftkv_node::client::{ClusterClient, Connection, NODE_QUERY_TIMEOUT_MS};
use raftkv_node::resp::Frame;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::clock;
use crate::cluster::{parse_addr_list, ClusterArgs, ClusterLayout};
use crate::digest::state_digest;
use crate::evidence::{
    self, BenchResult, Bundle, CatchUp, DigestRow, Election, GateNode, GateRecord, ItemResult,
    RunMode, StepKind, TimelineEntry, Verdict,
};
use crate::plan::{self, bench_key_name, key_name, ITEM_COUNT, ITEM_NAMES};
use crate::poll::{parse_event_line, LogLine};
use crate::status::{NodeStatus, Role, StatusFetcher};
use crate::supervisor::{
    ExitKind, NodeProgram, ProcessEvent, ProcessReport, Supervisor, STOP_GRACE_MS_DEFAULT,
};

/// Keys written in each write phase (items 2 and 5).
pub const KEYS_PER_PHASE: u64 = 50;
/// SETs of the built-in benchmark (item 8).
pub const BENCH_SETS: u64 = 2_000;
/// Concurrent benchmark clients, each with its own connection.
pub const BENCH_CLIENTS: u64 = 16;
const _: () = assert!(
    BENCH_SETS % BENCH_CLIENTS == 0,
    "every client writes the same share"
);
const _: () = assert!(2 * KEYS_PER_PHASE <= 9_999, "key names have four digits");
const _: () = assert!(BENCH_SETS <= 9_999, "bench key names have four digits");

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
pub const LOG_LINE_DEADLINE_MS: u64 = 3_000;
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
/// A request to the dashboard's supervisor must be answered within this.
pub const PROCESS_REQUEST_DEADLINE_MS: u64 = 5_000;
/// Process reports buffered for the gate's own supervisor.
pub const PROCESS_REPORTS_MAX: usize = 64;
/// Suggested bound of the progress channel (updates are snapshots: when it
/// is full the gate skips one, the next carries everything).
pub const PROGRESS_QUEUE_MAX: usize = 16;

/// The annotated tag message of `--git-tag`.
pub const GIT_TAG_MESSAGE: &str = "Week 12: Month 3 demo — full cluster";
/// Exit status when every item passed but `--git-tag` could not create the tag.
pub const EXIT_TAG_FAILED: i32 = 3;
/// Exit status when the demo could not start (bad flags, ports taken, ...).
pub const EXIT_CANNOT_START: i32 = 2;

const ABORTED: &str = "aborted before this step finished";
const ATTACHED: &str =
    "cannot run: attached to a cluster this demo did not start, so it may not kill or restart nodes";

/// `raftkv demo` flags.
///
/// Exit status: 0 when all eight items pass, 1 when any fails, 2 when the
/// demo cannot start, 3 when all pass but `--git-tag` could not tag.
#[derive(Clone, Debug, clap::Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Evidence bundles are written to <out>/<UTC timestamp>/.
    #[arg(long, default_value = "logs/evidence")]
    pub out: PathBuf,
    /// Run against a running cluster (host:port,...) instead of starting one.
    /// It is never killed, so items 3-7 cannot run and the gate fails.
    #[arg(long, value_name = "ADDRS")]
    pub attach: Option<String>,
    /// Print the plan (docs/DEMO.md) and exit.
    #[arg(long)]
    pub plan: bool,
    /// When all eight items pass, create this annotated tag in the current
    /// git repository and list the v0.* tags.
    #[arg(long, value_name = "NAME")]
    pub git_tag: Option<String>,
    /// Test only: corrupt the killed leader's WAL before restarting it, so it
    /// refuses to start and items 6 and 7 must fail.
    #[arg(long, hide = true)]
    pub sabotage_catchup: bool,
}

impl Default for DemoArgs {
    /// The defaults of `raftkv demo` with no flags.
    fn default() -> DemoArgs {
        DemoArgs {
            cluster: ClusterArgs {
                nodes: 3,
                base_port: 7000,
                data_dir: "data".into(),
                log_dir: "logs".into(),
                fresh: true,
            },
            out: "logs/evidence".into(),
            attach: None,
            plan: false,
            git_tag: None,
            sabotage_catchup: false,
        }
    }
}

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
/// owns it: `Supervisor::start` must run on the main thread).
pub fn serve_process_request(supervisor: &mut Supervisor, request: ProcessRequest) {
    let result = match request.op {
        ProcessOp::Kill => supervisor.kill(request.id).map(Some),
        ProcessOp::Start => supervisor.start(request.id, false).map(Some),
        ProcessOp::Pid => Ok(supervisor.pid(request.id)),
    };
    // The gate may have been aborted meanwhile; then nobody waits for this.
    let _ = request.reply.send(result);
}

/// How the gate reaches the node processes.
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
            nodes: evidence::nodes_from_layout(layout),
            data_dir: Some(layout.data_dir.clone()),
            processes: ProcessControl::Dashboard(requests),
            out_dir,
            fresh: false,
            echo: false,
            sabotage_catchup: false,
        }
    }

    /// A cluster this process may not kill (`--attach`): `nodes` are
    /// (id, client address); logs are read from `log_dir` when they are there.
    pub fn for_attached(
        nodes: Vec<(u64, String)>,
        log_dir: Option<&Path>,
        out_dir: PathBuf,
    ) -> GateContext {
        let nodes = nodes
            .into_iter()
            .map(|(id, client_addr)| {
                let local = |path: PathBuf| path.exists().then_some(path);
                GateNode {
                    id,
                    client_addr,
                    peer_addr: None,
                    event_log: log_dir
                        .and_then(|dir| local(crate::cluster::node_log_path(dir, id))),
                    output_log: log_dir
                        .and_then(|dir| local(crate::cluster::node_output_path(dir, id))),
                    log_start_offset_bytes: 0,
                }
            })
            .collect();
        GateContext {
            mode: RunMode::Attached,
            nodes,
            data_dir: None,
            processes: ProcessControl::Attached,
            out_dir,
            fresh: false,
            echo: false,
            sabotage_catchup: false,
        }
    }
}

/// Sent after every change of the record (a step began, a verdict, a
/// checkpoint); each one is complete, so a receiver that misses some loses nothing.
#[derive(Clone, Debug)]
pub struct GateProgress {
    pub record: GateRecord,
    pub bundle_dir: Option<PathBuf>,
}

/// How a gate run ended.
#[derive(Clone, Debug)]
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

// ----- pure evaluation helpers -------------------------------------------------

/// The leader every answering node agrees on, if a majority of the
/// `cluster_size` answered, exactly one of them leads in a term above
/// `above_term`, and every other answering node follows it in that term.
/// Otherwise why not, for the failure message.
pub fn agreed_leader(
    polled: &[(u64, Result<NodeStatus, String>)],
    cluster_size: usize,
    above_term: u64,
) -> Result<(u64, u64), String> {
    let answered: Vec<(u64, &NodeStatus)> = polled
        .iter()
        .filter_map(|(id, result)| result.as_ref().ok().map(|s| (*id, s)))
        .collect();
    let majority = cluster_size / 2 + 1;
    if answered.len() < majority {
        let silent: Vec<String> = polled
            .iter()
            .filter_map(|(id, result)| result.as_ref().err().map(|e| format!("node {id}: {e}")))
            .collect();
        return Err(format!(
            "{} of {cluster_size} nodes answered RAFT.STATUS, a majority is {majority} ({})",
            answered.len(),
            silent.join("; ")
        ));
    }
    let leaders: Vec<&(u64, &NodeStatus)> =
        answered.iter().filter(|(_, s)| s.is_leader()).collect();
    let (leader_id, leader) = match leaders.as_slice() {
        [] => {
            let roles: Vec<String> = answered
                .iter()
                .map(|(id, s)| format!("node {id} {} in term {}", s.role.name(), s.term))
                .collect();
            return Err(format!("no leader yet ({})", roles.join(", ")));
        }
        [one] => (one.0, one.1),
        many => {
            let claims: Vec<String> = many
                .iter()
                .map(|(id, s)| format!("node {id} (term {})", s.term))
                .collect();
            return Err(format!(
                "{} nodes claim leadership: {}",
                many.len(),
                claims.join(", ")
            ));
        }
    };
    if leader.term <= above_term {
        return Err(format!(
            "node {leader_id} leads in term {}, not above term {above_term}",
            leader.term
        ));
    }
    for (id, status) in &answered {
        if *id != leader_id && (status.leader_id != leader_id || status.term != leader.term) {
            return Err(format!(
                "node {id} follows node {} in term {}, not node {leader_id} in term {}",
                status.leader_id, status.term, leader.term
            ));
        }
    }
    Ok((leader_id, leader.term))
}

/// The first line at or after `after_ms` that records losing the leader:
/// `leader_lost`, or `election_timeout` (which fires only without leader contact).
pub fn find_detection(lines: &[(usize, LogLine)], after_ms: u64) -> Option<(usize, &LogLine)> {
    lines
        .iter()
        .find(|(_, line)| {
            line.at_ms >= after_ms
                && matches!(
                    line.event.as_deref(),
                    Some("leader_lost" | "election_timeout")
                )
        })
        .map(|(number, line)| (*number, line))
}

/// The first `became_leader` line for `term` at or after `after_ms`.
pub fn find_became_leader(
    lines: &[(usize, LogLine)],
    term: u64,
    after_ms: u64,
) -> Option<(usize, &LogLine)> {
    lines
        .iter()
        .find(|(_, line)| {
            line.at_ms >= after_ms
                && line.event.as_deref() == Some("became_leader")
                && line.field_u64("term") == Some(term)
        })
        .map(|(number, line)| (*number, line))
}

/// Numbered, parsed lines of this run's part of a node's event log.
pub fn read_event_lines(node: &GateNode) -> Result<Vec<(usize, LogLine)>, String> {
    let path = node
        .event_log
        .as_ref()
        .ok_or_else(|| format!("node {}'s log is not on this machine", node.id))?;
    let bytes = evidence::read_log_portion(path, node.log_start_offset_bytes)?;
    let now_ms = clock::now_ms();
    Ok(String::from_utf8_lossy(&bytes)
        .lines()
        .enumerate()
        .map(|(i, line)| (i + 1, parse_event_line(node.id, line, now_ms)))
        .collect())
}

/// How one node's copy of some keys compares with what was written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyCheck {
    pub right: u64,
    pub missing: Vec<String>,
    /// (key, value found)
    pub wrong: Vec<(String, String)>,
}

impl KeyCheck {
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.wrong.is_empty()
    }

    /// `48/50 right; missing key:0049, key:0050`
    pub fn describe(&self, total: u64) -> String {
        let mut text = format!("{}/{total} right", self.right);
        if !self.missing.is_empty() {
            let shown: Vec<&str> = self.missing.iter().take(3).map(String::as_str).collect();
            text.push_str(&format!(
                "; {} missing ({}",
                self.missing.len(),
                shown.join(", ")
            ));
            text.push_str(if self.missing.len() > 3 {
                ", ...)"
            } else {
                ")"
            });
        }
        if let Some((key, value)) = self.wrong.first() {
            text.push_str(&format!("; {} wrong ({key} = '{value}')", self.wrong.len()));
        }
        text
    }
}

/// Compares values read back (in key order, `None` = missing) with the expected ones.
pub fn compare_values(expected: &[(String, String)], found: &[Option<Vec<u8>>]) -> KeyCheck {
    let mut check = KeyCheck::default();
    for (i, (key, value)) in expected.iter().enumerate() {
        match found.get(i).cloned().flatten() {
            None => check.missing.push(key.clone()),
            Some(bytes) if bytes == value.as_bytes() => check.right += 1,
            Some(bytes) => check
                .wrong
                .push((key.clone(), String::from_utf8_lossy(&bytes).into_owned())),
        }
    }
    check
}

/// Flips the checksum byte of the first record of the node's oldest WAL
/// segment: the node must then refuse to start (DESIGN.md "Storage").
pub fn corrupt_wal(node_data_dir: &Path) -> Result<String, String> {
    let wal_dir = node_data_dir.join("wal");
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&wal_dir)
        .map_err(|e| format!("cannot list {}: {e}", wal_dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "wal"))
        .collect();
    segments.sort();
    let first = segments
        .first()
        .ok_or_else(|| format!("{} holds no WAL segment", wal_dir.display()))?;
    let mut bytes =
        std::fs::read(first).map_err(|e| format!("cannot read {}: {e}", first.display()))?;
    // Record layout: u32 length | u32 CRC32C | payload.
    const CHECKSUM_BYTE_OFFSET: usize = 4;
    let byte = bytes
        .get_mut(CHECKSUM_BYTE_OFFSET)
        .ok_or_else(|| format!("{} is too short to corrupt", first.display()))?;
    *byte ^= 0xFF;
    std::fs::write(first, &bytes).map_err(|e| format!("cannot write {}: {e}", first.display()))?;
    Ok(format!(
        "flipped byte {CHECKSUM_BYTE_OFFSET} (the first record's checksum) of {}",
        first.display()
    ))
}

// ----- the run ------------------------------------------------------------------

/// The leader as one poll saw it.
#[derive(Clone, Debug)]
struct Leader {
    id: u64,
    term: u64,
    addr: String,
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
    /// Some write may or may not have been applied: the expected digest is unknown.
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
        futures::future::join_all(polls).await
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

    async fn run(&mut self) {
        if let Ok(bundle) = &self.bundle {
            let dir = bundle.dir.display().to_string();
            self.emit("1", StepKind::Info, format!("evidence bundle: {dir}"));
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
        }
        let saved = match &self.bundle {
            Ok(bundle) => bundle.write_plan(),
            Err(e) => Err(e.clone()),
        };
        let steps = plan
            .lines()
            .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
            .count();
        let shown = if self.ctx.echo { "printed" } else { "shown" };
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
        let leader = match self
            .wait_for_leader(&ids, 0, CLUSTER_READY_DEADLINE_MS)
            .await
        {
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
        let keys = 1..=KEYS_PER_PHASE;
        let result = match self.write_keys("2.3", &leader, keys.clone()).await {
            Ok(ms) => {
                self.record.measurements.first_writes_ms = Some(ms);
                self.verify_keys("2.4", &ids, 1..=KEYS_PER_PHASE).await.map(|figure| {
                    format!(
                        "{KEYS_PER_PHASE} keys written through leader node {} (term {}) in {}; {figure}",
                        leader.id,
                        leader.term,
                        evidence::format_ms(ms)
                    )
                })
            }
            Err(e) => Err(e),
        };
        self.verdict(
            2,
            match result {
                Ok(figure) => ItemResult::pass(figure, "timeline.jsonl steps 2.3-2.4"),
                Err(e) => ItemResult::fail(e, "timeline.jsonl steps 2.3-2.4"),
            },
        );
        Some(leader)
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
                () = self.cancel.cancelled() => return Err(ABORTED.into()),
                result = write => result,
            };
            if let Err(e) = result {
                self.writes_uncertain |= e.is_outcome_unknown();
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
                async move { (*id, read_local_values(&addr, expected).await) }
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
            let equal_applied = answered.windows(2).all(|w| w[0].1.applied_index == w[1].1.applied_index);
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
                        Ok(s) => format!("node {id} at applied index {} (digest {})", s.applied_index, short(&s.digest)),
                        Err(_) if down.contains(id) => format!("node {id} is not running"),
                        Err(e) => format!("node {id} does not answer ({e})"),
                    })
                    .collect();
                let why = if down.is_empty() {
                    format!("applied indexes did not become equal within {CHECKPOINT_DEADLINE_MS} ms")
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
            if result.is_err() && matches!(self.ctx.processes.request(*id, ProcessOp::Pid).await, Ok(None)) {
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
            short(&first.digest),
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

    // ----- item 3 ---------------------------------------------------------------

    async fn item3_kill_and_detect(&mut self, leader: Option<&Leader>) -> Option<Killed> {
        if !self.ctx.processes.can_control() {
            self.verdict(3, ItemResult::fail(ATTACHED, "timeline.jsonl"));
            return None;
        }
        if leader.is_none() || self.aborted() {
            let why = if self.aborted() {
                ABORTED
            } else {
                "not run: there was no leader to kill (item 2)"
            };
            self.verdict(3, ItemResult::fail(why, "timeline.jsonl"));
            return None;
        }
        // The leader may have changed since item 2: kill the current one.
        let ids = self.all_ids();
        let leader = match self
            .wait_for_leader(&ids, 0, CLUSTER_READY_DEADLINE_MS)
            .await
        {
            Ok(leader) => leader,
            Err(e) => {
                self.verdict(
                    3,
                    ItemResult::fail(format!("no leader to kill: {e}"), "timeline.jsonl step 3.1"),
                );
                return None;
            }
        };
        self.emit(
            "3.1",
            StepKind::Step,
            format!("kill -9 leader node {} (term {})", leader.id, leader.term),
        );
        let at_ms = clock::now_ms();
        let pid = match self.ctx.processes.request(leader.id, ProcessOp::Kill).await {
            Ok(pid) => pid.unwrap_or(0),
            Err(e) => {
                self.verdict(
                    3,
                    ItemResult::fail(format!("kill -9 failed: {e}"), "timeline.jsonl step 3.1"),
                );
                return None;
            }
        };
        let killed = Killed {
            id: leader.id,
            term: leader.term,
            at_ms,
        };
        match self.wait_until_exited(leader.id).await {
            Ok(()) => self.emit(
                "3.1",
                StepKind::Info,
                format!("node {} (pid {pid}) is dead", leader.id),
            ),
            Err(e) => self.emit("3.1", StepKind::Warn, e),
        }
        let result = self.wait_for_detection(killed).await;
        self.verdict(3, result);
        Some(killed)
    }

    async fn wait_until_exited(&mut self, id: u64) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_millis(KILL_DEADLINE_MS);
        loop {
            if self
                .ctx
                .processes
                .request(id, ProcessOp::Pid)
                .await?
                .is_none()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "node {id} was still running {KILL_DEADLINE_MS} ms after kill -9"
                ));
            }
            self.pause().await?;
        }
    }

    async fn wait_for_detection(&mut self, killed: Killed) -> ItemResult {
        self.emit(
            "3.2",
            StepKind::Step,
            "wait for each survivor's leader_lost / election_timeout line after the kill",
        );
        let survivors: Vec<GateNode> = self
            .ctx
            .nodes
            .iter()
            .filter(|n| n.id != killed.id)
            .cloned()
            .collect();
        let deadline = Instant::now() + Duration::from_millis(DETECTION_DEADLINE_MS);
        let mut found: BTreeMap<u64, evidence::Detection> = BTreeMap::new();
        let mut problems: BTreeMap<u64, String> = BTreeMap::new();
        loop {
            let pending: Vec<&GateNode> = survivors
                .iter()
                .filter(|n| !found.contains_key(&n.id))
                .collect();
            for node in pending {
                match read_event_lines(node) {
                    Ok(lines) => match find_detection(&lines, killed.at_ms) {
                        Some((line_number, line)) => {
                            found.insert(
                                node.id,
                                detection_of(node.id, line_number, line, killed.at_ms),
                            );
                        }
                        None => {
                            problems.insert(
                                node.id,
                                format!("no leader_lost or election_timeout line in node-{}.log after the kill", node.id),
                            );
                        }
                    },
                    Err(e) => {
                        problems.insert(node.id, e);
                    }
                }
            }
            if found.len() == survivors.len() || Instant::now() >= deadline || self.aborted() {
                break;
            }
            if self.pause().await.is_err() {
                break;
            }
        }
        let detections: Vec<evidence::Detection> = found.into_values().collect();
        for d in &detections {
            self.emit(
                "3.2",
                StepKind::Info,
                format!(
                    "node {}: {} {} after the kill ({}{}) at node-{}.log line {}",
                    d.node,
                    d.event,
                    evidence::format_ms(d.after_kill_ms),
                    d.reason,
                    d.silence_ms
                        .map_or(String::new(), |s| format!(", silence_ms={s}")),
                    d.node,
                    d.log_line
                ),
            );
        }
        self.record.measurements.detections = detections.clone();
        let evidence = detections
            .iter()
            .map(|d| format!("node-{}.log line {}", d.node, d.log_line))
            .collect::<Vec<_>>()
            .join(", ");
        let figure = detections
            .iter()
            .map(|d| {
                format!(
                    "node {} {} {} after the kill{}",
                    d.node,
                    d.event,
                    evidence::format_ms(d.after_kill_ms),
                    match (&d.silence_ms, d.reason.as_str()) {
                        (Some(s), "") => format!(" (silence_ms={s})"),
                        (Some(s), reason) => format!(" ({reason}, silence_ms={s})"),
                        (None, "") => String::new(),
                        (None, reason) => format!(" ({reason})"),
                    }
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        if detections.len() == survivors.len() && !survivors.is_empty() {
            ItemResult::pass(figure, evidence)
        } else {
            let missing: Vec<String> = survivors
                .iter()
                .filter(|n| !detections.iter().any(|d| d.node == n.id))
                .map(|n| {
                    format!(
                        "node {}: {}",
                        n.id,
                        problems.get(&n.id).map_or("no survivor", String::as_str)
                    )
                })
                .collect();
            let reason = if self.aborted() {
                ABORTED.to_string()
            } else {
                format!("within {DETECTION_DEADLINE_MS} ms: {}", missing.join("; "))
            };
            let figure = if figure.is_empty() {
                reason
            } else {
                format!("{figure}; but {reason}")
            };
            ItemResult::fail(
                figure,
                if evidence.is_empty() {
                    "timeline.jsonl step 3.2".into()
                } else {
                    evidence
                },
            )
        }
    }

    // ----- item 4 ---------------------------------------------------------------

    async fn item4_new_leader(&mut self, killed: Option<Killed>) -> Option<Leader> {
        let Some(killed) = killed else {
            let why = if self.ctx.processes.can_control() {
                "not run: no leader was killed (item 3)"
            } else {
                ATTACHED
            };
            self.verdict(4, ItemResult::fail(why, "timeline.jsonl"));
            return None;
        };
        self.emit(
            "4.1",
            StepKind::Step,
            format!("poll the survivors until exactly one leads in a term above {} and the others follow it", killed.term),
        );
        let survivors: Vec<u64> = self
            .all_ids()
            .into_iter()
            .filter(|id| *id != killed.id)
            .collect();
        let remaining_ms =
            ELECTION_DEADLINE_MS.saturating_sub(clock::now_ms().saturating_sub(killed.at_ms));
        let leader = match self
            .wait_for_leader(&survivors, killed.term, remaining_ms)
            .await
        {
            Ok(leader) => leader,
            Err(e) => {
                self.verdict(4, ItemResult::fail(e, "timeline.jsonl step 4.1"));
                return None;
            }
        };
        let confirmed_after_kill_ms = clock::now_ms().saturating_sub(killed.at_ms);
        let (after_kill_ms, log_line) = self.became_leader_line(&leader, killed).await;
        let election = Election {
            node: leader.id,
            term: leader.term,
            old_leader: killed.id,
            old_term: killed.term,
            after_kill_ms: after_kill_ms.unwrap_or(confirmed_after_kill_ms),
            confirmed_after_kill_ms,
            log_line,
        };
        let followers: Vec<String> = survivors
            .iter()
            .filter(|id| **id != leader.id)
            .map(u64::to_string)
            .collect();
        let figure = format!(
            "node {} leader in term {} (killed node {} led term {}), {} after the kill{}; exactly one leader, followed by node {} ({} after the kill, RAFT.STATUS)",
            leader.id,
            leader.term,
            killed.id,
            killed.term,
            evidence::format_ms(election.after_kill_ms),
            if log_line.is_some() { " (became_leader line)" } else { " (first poll; no became_leader line found)" },
            followers.join(", node "),
            evidence::format_ms(confirmed_after_kill_ms)
        );
        let evidence = match log_line {
            Some(line) => format!(
                "node-{}.log line {line}; timeline.jsonl step 4.1",
                leader.id
            ),
            None => "timeline.jsonl step 4.1".into(),
        };
        self.record.measurements.election = Some(election);
        self.verdict(4, ItemResult::pass(figure, evidence));
        Some(leader)
    }

    /// ms from the kill to the new leader's `became_leader` line, and its line number.
    async fn became_leader_line(
        &self,
        leader: &Leader,
        killed: Killed,
    ) -> (Option<u64>, Option<usize>) {
        let Some(node) = self.ctx.nodes.iter().find(|n| n.id == leader.id) else {
            return (None, None);
        };
        let deadline = Instant::now() + Duration::from_millis(LOG_LINE_DEADLINE_MS);
        loop {
            if let Ok(lines) = read_event_lines(node) {
                if let Some((number, line)) = find_became_leader(&lines, leader.term, killed.at_ms)
                {
                    return (Some(line.at_ms.saturating_sub(killed.at_ms)), Some(number));
                }
            }
            if Instant::now() >= deadline || self.pause().await.is_err() {
                return (None, None);
            }
        }
    }

    // ----- item 5 ---------------------------------------------------------------

    async fn item5_writes_to_new_leader(
        &mut self,
        new_leader: Option<&Leader>,
        survivors: &[u64],
        killed: Option<Killed>,
    ) {
        let Some(killed) = killed else {
            let why = if self.ctx.processes.can_control() {
                "not run: no leader was killed (item 3)"
            } else {
                ATTACHED
            };
            self.verdict(5, ItemResult::fail(why, "timeline.jsonl"));
            return;
        };
        let leader = match new_leader {
            Some(leader) => leader.clone(),
            None => match self
                .wait_for_leader(survivors, killed.term, ELECTION_DEADLINE_MS)
                .await
            {
                Ok(leader) => leader,
                Err(e) => {
                    self.verdict(
                        5,
                        ItemResult::fail(
                            format!("no new leader to write to: {e}"),
                            "timeline.jsonl step 5.1",
                        ),
                    );
                    return;
                }
            },
        };
        let keys = KEYS_PER_PHASE + 1..=2 * KEYS_PER_PHASE;
        let result = match self.write_keys("5.1", &leader, keys).await {
            Ok(ms) => {
                self.record.measurements.second_writes_ms = Some(ms);
                self.verify_keys("5.2", survivors, 1..=2 * KEYS_PER_PHASE).await.map(|figure| {
                    format!(
                        "{KEYS_PER_PHASE} more keys written through new leader node {} (term {}) in {}; {figure}",
                        leader.id,
                        leader.term,
                        evidence::format_ms(ms)
                    )
                })
            }
            Err(e) => Err(e),
        };
        self.verdict(
            5,
            match result {
                Ok(figure) => ItemResult::pass(figure, "timeline.jsonl steps 5.1-5.2"),
                Err(e) => ItemResult::fail(e, "timeline.jsonl steps 5.1-5.2"),
            },
        );
    }

    // ----- item 6 ---------------------------------------------------------------

    async fn item6_restart_and_verify(&mut self, killed: Option<Killed>) {
        let Some(killed) = killed else {
            let why = if self.ctx.processes.can_control() {
                "not run: no node was killed (item 3)"
            } else {
                ATTACHED
            };
            self.verdict(6, ItemResult::fail(why, "timeline.jsonl"));
            return;
        };
        if self.aborted() {
            self.verdict(6, ItemResult::fail(ABORTED, "timeline.jsonl"));
            return;
        }
        if self.ctx.sabotage_catchup {
            self.sabotage(killed.id);
        }
        let result = match self.restart_and_catch_up(killed.id).await {
            Ok(catch_up) => {
                let catch_up_figure = format!(
                    "node {} restarted and caught up to applied index {} in {}",
                    catch_up.node,
                    catch_up.applied_index,
                    evidence::format_ms(catch_up.ms)
                );
                self.record.measurements.catch_up = Some(catch_up);
                let ids = self.all_ids();
                self.verify_keys("6.3", &ids, 1..=2 * KEYS_PER_PHASE)
                    .await
                    .map(|figure| format!("{catch_up_figure}; {figure}"))
            }
            Err(e) => Err(e),
        };
        self.verdict(
            6,
            match result {
                Ok(figure) => ItemResult::pass(
                    figure,
                    format!("timeline.jsonl steps 6.1-6.3; node-{}.log", killed.id),
                ),
                Err(e) => ItemResult::fail(
                    e,
                    format!("timeline.jsonl steps 6.1-6.3; node-{}.log", killed.id),
                ),
            },
        );
    }

    fn sabotage(&mut self, id: u64) {
        let note = match &self.ctx.data_dir {
            Some(data_dir) => corrupt_wal(&data_dir.join(format!("node-{id}"))),
            None => Err("the data dir is unknown".into()),
        };
        let text = match note {
            Ok(done) => format!("test-only sabotage (--sabotage-catchup): node {id}: {done}"),
            Err(e) => format!("test-only sabotage (--sabotage-catchup) of node {id} failed: {e}"),
        };
        self.record.notes.push(text.clone());
        self.emit("6.1", StepKind::Warn, text);
    }

    async fn restart_and_catch_up(&mut self, id: u64) -> Result<CatchUp, String> {
        self.emit(
            "6.1",
            StepKind::Step,
            format!("restart node {id} with its data dir"),
        );
        let restarted = Instant::now();
        let pid = self
            .ctx
            .processes
            .request(id, ProcessOp::Start)
            .await?
            .unwrap_or(0);
        self.emit(
            "6.1",
            StepKind::Info,
            format!("node {id} started (pid {pid})"),
        );
        let others: Vec<u64> = self
            .all_ids()
            .into_iter()
            .filter(|other| *other != id)
            .collect();
        let target = self.catch_up_target(&others).await?;
        self.emit(
            "6.2",
            StepKind::Step,
            format!(
                "wait until node {id}'s applied index reaches the leader's commit index {target}"
            ),
        );
        let deadline = restarted + Duration::from_millis(CATCH_UP_DEADLINE_MS);
        let mut last;
        loop {
            match self.status(id).await {
                Ok(status) if status.applied_index >= target => {
                    let ms = restarted.elapsed().as_millis() as u64;
                    self.emit(
                        "6.2",
                        StepKind::Info,
                        format!(
                            "node {id} at applied index {} after {}",
                            status.applied_index,
                            evidence::format_ms(ms)
                        ),
                    );
                    return Ok(CatchUp {
                        node: id,
                        ms,
                        applied_index: status.applied_index,
                    });
                }
                Ok(status) => last = format!("applied index {} of {target}", status.applied_index),
                Err(e) => last = e,
            }
            if self
                .ctx
                .processes
                .request(id, ProcessOp::Pid)
                .await?
                .is_none()
            {
                return Err(self.why_node_died(id));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "node {id} did not catch up within {CATCH_UP_DEADLINE_MS} ms ({last})"
                ));
            }
            self.pause().await?;
        }
    }

    /// The leader's commit index (or, without a leader, the highest applied index).
    async fn catch_up_target(&mut self, others: &[u64]) -> Result<u64, String> {
        let polled = self.poll(others).await;
        let statuses: Vec<&NodeStatus> =
            polled.iter().filter_map(|(_, r)| r.as_ref().ok()).collect();
        if let Some(leader) = statuses.iter().find(|s| s.role == Role::Leader) {
            return Ok(leader.commit_index);
        }
        statuses
            .iter()
            .map(|s| s.applied_index)
            .max()
            .ok_or_else(|| {
                "no other node answers, so there is nothing to catch up with".to_string()
            })
    }

    /// The node's own last words: its `fatal` log event, else the last line
    /// of its captured output, with how the process ended.
    fn why_node_died(&mut self, id: u64) -> String {
        let exit = self
            .ctx
            .processes
            .last_exit(id)
            .map_or("exited".to_string(), |exit| exit.to_string());
        let node = self.ctx.nodes.iter().find(|n| n.id == id).cloned();
        let fatal = node.as_ref().and_then(|node| {
            let lines = read_event_lines(node).ok()?;
            lines
                .iter()
                .rev()
                .find(|(_, l)| l.event.as_deref() == Some("fatal"))
                .map(|(number, l)| {
                    let message = l.field("message").map_or(l.text.clone(), str::to_string);
                    format!("{message} (node-{id}.log line {number})")
                })
        });
        let said = fatal.or_else(|| {
            let path = node?.output_log?;
            let text = std::fs::read_to_string(path).ok()?;
            text.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_string)
        });
        match said {
            Some(said) => format!("node {id} {exit} after its restart: {said}"),
            None => format!("node {id} {exit} after its restart"),
        }
    }

    // ----- item 7 ---------------------------------------------------------------

    fn item7_digests(&mut self) {
        let mut lines = Vec::new();
        let mut all_ok = true;
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
                    "REPORT.md with this run's numbers: {:.0} SET/s, p50 {}, p99 {}, gate wall time {}",
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
        let run = bench(leader.addr.clone(), leader.id);
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
                        "{} SETs in {}: {:.0} SET/s, p50 {}, p99 {}, max {}, {} failed",
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

fn detection_of(
    node: u64,
    line_number: usize,
    line: &LogLine,
    killed_at_ms: u64,
) -> evidence::Detection {
    evidence::Detection {
        node,
        after_kill_ms: line.at_ms.saturating_sub(killed_at_ms),
        event: line.event.clone().unwrap_or_default(),
        silence_ms: line.field_u64("silence_ms"),
        reason: line.field("reason").unwrap_or("").to_string(),
        log_line: line_number,
    }
}

/// Reads `expected`'s keys from one node's own state: READONLY, then one MGET.
async fn read_local_values(addr: &str, expected: &[(String, String)]) -> Result<KeyCheck, String> {
    let timeout = Duration::from_millis(NODE_QUERY_TIMEOUT_MS);
    let mut connection = Connection::connect(addr, timeout)
        .await
        .map_err(|e| e.to_string())?;
    match connection
        .request(&[b"READONLY"])
        .await
        .map_err(|e| e.to_string())?
    {
        Frame::Simple(ok) if ok == "OK" => {}
        other => return Err(format!("{addr} answered READONLY with {other:?}")),
    }
    let mut args: Vec<&[u8]> = vec![b"MGET"];
    args.extend(expected.iter().map(|(key, _)| key.as_bytes()));
    let values = match connection.request(&args).await.map_err(|e| e.to_string())? {
        Frame::Array(items) if items.len() == expected.len() => items
            .into_iter()
            .map(|item| match item {
                Frame::Bulk(bytes) => Ok(Some(bytes.to_vec())),
                Frame::Null => Ok(None),
                other => Err(format!("{addr} answered MGET with an element {other:?}")),
            })
            .collect::<Result<Vec<_>, String>>()?,
        Frame::Error(message) => return Err(format!("{addr} refused MGET: {message}")),
        other => {
            return Err(format!(
                "{addr} answered MGET of {} keys with {other:?}",
                expected.len()
            ))
        }
    };
    Ok(compare_values(expected, &values))
}

/// The built-in write benchmark: BENCH_SETS SETs from BENCH_CLIENTS
/// concurrent clients, each with its own connection to `addr`.
async fn bench(addr: String, via_node: u64) -> Result<BenchResult, String> {
    let per_client = BENCH_SETS / BENCH_CLIENTS;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for client_number in 0..BENCH_CLIENTS {
        let addr = addr.clone();
        tasks.spawn(async move {
            let mut latencies =
                hdrhistogram::Histogram::<u64>::new_with_bounds(1, BENCH_LATENCY_US_MAX, 3)
                    .map_err(|e| format!("latency histogram: {e}"))?;
            let mut client =
                ClusterClient::new(vec![addr], Duration::from_millis(REQUEST_DEADLINE_MS));
            let mut failed = 0u64;
            let mut first_error = None;
            for i in 0..per_client {
                let n = client_number * per_client + i + 1;
                let sent = Instant::now();
                match client
                    .set(bench_key_name(n), format!("bench-value-{n}"))
                    .await
                {
                    Ok(()) => latencies.saturating_record(sent.elapsed().as_micros() as u64),
                    Err(e) => {
                        failed += 1;
                        first_error.get_or_insert(e.to_string());
                    }
                }
            }
            Ok::<_, String>((latencies, failed, first_error))
        });
    }
    let mut latencies = hdrhistogram::Histogram::<u64>::new_with_bounds(1, BENCH_LATENCY_US_MAX, 3)
        .map_err(|e| format!("latency histogram: {e}"))?;
    let mut failed = 0;
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let (client_latencies, client_failed, client_error) =
            joined.map_err(|e| format!("a benchmark client crashed: {e}"))??;
        latencies
            .add(&client_latencies)
            .map_err(|e| format!("latency histogram: {e:?}"))?;
        failed += client_failed;
        first_error = first_error.or(client_error);
    }
    let elapsed = started.elapsed();
    let succeeded = latencies.len();
    if succeeded == 0 {
        return Err(format!(
            "all {BENCH_SETS} SETs failed: {}",
            first_error.unwrap_or_else(|| "no error recorded".into())
        ));
    }
    Ok(BenchResult {
        via_node,
        sets: BENCH_SETS,
        clients: BENCH_CLIENTS,
        failed,
        elapsed_ms: elapsed.as_millis() as u64,
        ops_per_sec: succeeded as f64 / elapsed.as_secs_f64().max(1e-6),
        latency_us_p50: latencies.value_at_quantile(0.50),
        latency_us_p99: latencies.value_at_quantile(0.99),
        latency_us_max: latencies.max(),
    })
}

// ----- `raftkv demo` ----------------------------------------------------------------

/// `raftkv demo`: prints the plan, runs the gate against a fresh cluster (or
/// `--attach`ed one), prints the checklist, and returns the exit status.
/// Run it with `block_on` on the main thread: the supervisor it owns must
/// fork from the thread that lives as long as the process.
pub async fn run_demo(args: DemoArgs) -> i32 {
    if args.plan {
        print!("{}", plan::plan_text());
        return 0;
    }
    if let Some(tag) = &args.git_tag {
        if let Err(e) = git_tag_precheck(tag) {
            eprintln!("raftkv demo: --git-tag {tag}: {e}");
            return EXIT_CANNOT_START;
        }
    }
    let ctx = match prepare(&args).await {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("raftkv demo: {e}");
            return EXIT_CANNOT_START;
        }
    };
    let cancel = CancellationToken::new();
    let interrupt = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("raftkv demo: interrupted; stopping the cluster and writing the bundle");
                cancel.cancel();
            }
        })
    };
    // Progress is echoed to stdout by the gate itself; nobody reads this channel.
    let (progress, _) = mpsc::channel(1);
    let outcome = run_gate(ctx, progress, cancel).await;
    interrupt.abort();
    println!();
    print!("{}", evidence::checklist_text(&outcome.record));
    match &outcome.bundle {
        Ok(dir) => println!("\nevidence bundle: {}", dir.display()),
        Err(e) => eprintln!("\nraftkv demo: the evidence bundle is incomplete: {e}"),
    }
    let mut code = if outcome.all_passed() && outcome.bundle.is_ok() {
        0
    } else {
        1
    };
    if let Some(tag) = &args.git_tag {
        match create_git_tag(tag, &outcome.record) {
            Ok(listing) => {
                println!("\ncreated annotated tag {tag}; git tag -l \"v0.*\":");
                print!("{listing}");
            }
            Err(e) => {
                eprintln!("raftkv demo: --git-tag {tag}: {e}");
                if code == 0 {
                    code = EXIT_TAG_FAILED;
                }
            }
        }
    }
    code
}

/// Builds the context: a fresh local cluster (ports checked, data dirs
/// wiped, nothing started yet) or an attached one.
async fn prepare(args: &DemoArgs) -> Result<GateContext, String> {
    if let Some(list) = &args.attach {
        let addrs = parse_addr_list(list)?;
        let mut nodes = Vec::new();
        for (i, addr) in addrs.into_iter().enumerate() {
            // Ids come from the nodes themselves; a silent node keeps its position.
            let id = StatusFetcher::new(addr.clone())
                .fetch(Duration::from_millis(STATUS_DEADLINE_MS))
                .await
                .map_or(i as u64 + 1, |s| s.id);
            nodes.push((id, addr));
        }
        let mut ctx =
            GateContext::for_attached(nodes, Some(&args.cluster.log_dir), args.out.clone());
        ctx.echo = true;
        println!(
            "raftkv demo: attached to {} nodes; it may not kill or restart them, so items 3-7 cannot run and the gate will FAIL",
            ctx.nodes.len()
        );
        return Ok(ctx);
    }
    let layout = ClusterLayout::new(&args.cluster)?;
    layout.check_ports_free()?;
    layout.create_dirs()?;
    let wiped = layout.wipe_all_data()?;
    let (reports_tx, reports) = mpsc::channel(PROCESS_REPORTS_MAX);
    let supervisor = Supervisor::new(
        layout.clone(),
        NodeProgram::current_exe()?,
        reports_tx,
        STOP_GRACE_MS_DEFAULT,
    );
    let clients = layout.client_addrs();
    println!(
        "raftkv demo: {} nodes, clients {}, data {}{}, logs {}",
        layout.nodes,
        clients.join(" "),
        layout.data_dir.display(),
        if wiped.is_empty() {
            String::new()
        } else {
            format!(" (wiped {} old node dirs)", wiped.len())
        },
        layout.log_dir.display()
    );
    Ok(GateContext {
        mode: RunMode::Demo,
        nodes: evidence::nodes_from_layout(&layout),
        data_dir: Some(layout.data_dir.clone()),
        processes: ProcessControl::Owned {
            supervisor,
            reports,
        },
        out_dir: args.out.clone(),
        fresh: true,
        echo: true,
        sabotage_catchup: args.sabotage_catchup,
    })
}

// ----- --git-tag ---------------------------------------------------------------------

fn git(args: &[&str]) -> Result<std::process::Output, String> {
    std::process::Command::new("git")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))
}

fn git_stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).trim().to_string()
}

/// Refuses early (before the gate runs) a tag that could not be created.
pub fn git_tag_precheck(name: &str) -> Result<(), String> {
    let inside = git(&["rev-parse", "--is-inside-work-tree"])?;
    if !inside.status.success() {
        return Err(format!(
            "the current directory is not in a git repository ({}); run the demo from the repository to tag",
            git_stderr(&inside)
        ));
    }
    let valid = git(&["check-ref-format", &format!("refs/tags/{name}")])?;
    if !valid.status.success() {
        return Err(format!("'{name}' is not a valid tag name"));
    }
    let head = git(&["rev-parse", "--verify", "-q", "HEAD"])?;
    if !head.status.success() {
        return Err("the repository has no commit to tag yet".into());
    }
    let exists = git(&["rev-parse", "--verify", "-q", &format!("refs/tags/{name}")])?;
    if exists.status.success() {
        return Err(format!(
            "the tag {name} already exists; pick another name or delete it first"
        ));
    }
    Ok(())
}

/// Creates the annotated tag when every item passed; returns `git tag -l "v0.*"`.
pub fn create_git_tag(name: &str, record: &GateRecord) -> Result<String, String> {
    if !record.all_passed() {
        let failed: Vec<String> = (1..=ITEM_COUNT)
            .filter(|n| record.item(*n).verdict == Verdict::Fail)
            .map(|n| n.to_string())
            .collect();
        return Err(format!(
            "not tagging: item {} failed; the tag marks a gate with all eight items PASS",
            failed.join(", ")
        ));
    }
    git_tag_precheck(name)?;
    let tagged = git(&["tag", "-a", name, "-m", GIT_TAG_MESSAGE])?;
    if !tagged.status.success() {
        return Err(format!("git tag failed: {}", git_stderr(&tagged)));
    }
    let listed = git(&["tag", "-l", "v0.*"])?;
    Ok(String::from_utf8_lossy(&listed.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::tests::fields;

    fn status(id: u64, role: &str, term: u64, leader_id: u64) -> NodeStatus {
        let id_text = id.to_string();
        let term_text = term.to_string();
        let leader_text = leader_id.to_string();
        NodeStatus::from_fields(&fields(&[
            ("id", &id_text),
            ("role", role),
            ("term", &term_text),
            ("leader_id", &leader_text),
            ("commit_index", "10"),
            ("applied_index", "10"),
            ("last_index", "10"),
            ("keys", "5"),
            ("digest", "abc"),
        ]))
        .unwrap()
    }

    #[test]
    fn one_leader_everyone_follows_is_agreed() {
        let polled = vec![
            (1, Ok(status(1, "follower", 3, 2))),
            (2, Ok(status(2, "leader", 3, 2))),
            (3, Ok(status(3, "follower", 3, 2))),
        ];
        assert_eq!(agreed_leader(&polled, 3, 0), Ok((2, 3)));
        assert_eq!(agreed_leader(&polled, 3, 2), Ok((2, 3)));
        assert!(agreed_leader(&polled, 3, 3)
            .unwrap_err()
            .contains("not above term 3"));
    }

    #[test]
    fn leader_disagreements_and_silence_are_explained() {
        let two = vec![
            (1, Ok(status(1, "leader", 2, 1))),
            (2, Ok(status(2, "leader", 3, 2))),
        ];
        assert!(agreed_leader(&two, 3, 0)
            .unwrap_err()
            .contains("2 nodes claim leadership: node 1 (term 2), node 2 (term 3)"));
        let none = vec![
            (1, Ok(status(1, "candidate", 4, 0))),
            (2, Ok(status(2, "follower", 3, 0))),
        ];
        assert!(agreed_leader(&none, 3, 0)
            .unwrap_err()
            .starts_with("no leader yet (node 1 candidate in term 4"));
        let stray = vec![
            (1, Ok(status(1, "leader", 3, 1))),
            (2, Ok(status(2, "follower", 2, 3))),
        ];
        assert!(agreed_leader(&stray, 3, 0)
            .unwrap_err()
            .contains("node 2 follows node 3 in term 2"));
        let silent = vec![
            (1, Ok(status(1, "leader", 3, 1))),
            (2, Err("connection refused".to_string())),
            (3, Err("no answer within 1000 ms".to_string())),
        ];
        let error = agreed_leader(&silent, 3, 0).unwrap_err();
        assert!(error.contains("1 of 3 nodes answered"), "{error}");
        assert!(error.contains("node 2: connection refused"), "{error}");
        // A silent minority does not block agreement (its read-back will fail instead).
        let minority = vec![
            (1, Ok(status(1, "leader", 3, 1))),
            (2, Ok(status(2, "follower", 3, 1))),
            (3, Err("connection refused".to_string())),
        ];
        assert_eq!(agreed_leader(&minority, 3, 0), Ok((1, 3)));
    }

    fn log(lines: &[&str]) -> Vec<(usize, LogLine)> {
        lines
            .iter()
            .enumerate()
            .map(|(i, line)| (i + 1, parse_event_line(2, line, 0)))
            .collect()
    }

    #[test]
    fn detection_is_the_first_loss_line_after_the_kill() {
        let lines = log(&[
            r#"{"timestamp":"2024-05-01T10:00:00.000Z","level":"INFO","fields":{"event":"leader_lost","silence_ms":400,"reason":"election timeout","term":1}}"#,
            r#"{"timestamp":"2024-05-01T10:00:05.000Z","level":"INFO","fields":{"event":"peer_down","peer":3}}"#,
            r#"{"timestamp":"2024-05-01T10:00:05.004Z","level":"INFO","fields":{"event":"leader_lost","leader":1,"silence_ms":38,"reason":"connection reset by peer","term":2}}"#,
            r#"{"timestamp":"2024-05-01T10:00:05.300Z","level":"INFO","fields":{"event":"election_timeout","silence_ms":300,"term":2}}"#,
            r#"{"timestamp":"2024-05-01T10:00:05.310Z","level":"INFO","fields":{"event":"became_leader","term":3}}"#,
        ]);
        let kill_ms = clock::parse_rfc3339_ms("2024-05-01T10:00:05.000Z").unwrap();
        let (number, line) = find_detection(&lines, kill_ms).unwrap();
        assert_eq!(number, 3, "the earlier loss happened before the kill");
        let detection = detection_of(2, number, line, kill_ms);
        assert_eq!(detection.after_kill_ms, 4);
        assert_eq!(detection.silence_ms, Some(38));
        assert_eq!(detection.reason, "connection reset by peer");
        assert_eq!(detection.event, "leader_lost");
        assert!(find_detection(&lines, kill_ms + 1_000).is_none());

        let (number, line) = find_became_leader(&lines, 3, kill_ms).unwrap();
        assert_eq!((number, line.at_ms - kill_ms), (5, 310));
        assert!(find_became_leader(&lines, 4, kill_ms).is_none());
    }

    #[test]
    fn read_back_values_are_compared_key_by_key() {
        let expected: Vec<(String, String)> = (1..=4)
            .map(|n| (key_name(n), format!("value-{n}")))
            .collect();
        let found = vec![
            Some(b"value-1".to_vec()),
            None,
            Some(b"value-9".to_vec()),
            Some(b"value-4".to_vec()),
        ];
        let check = compare_values(&expected, &found);
        assert_eq!(check.right, 2);
        assert_eq!(check.missing, vec!["key:0002"]);
        assert_eq!(
            check.wrong,
            vec![("key:0003".to_string(), "value-9".to_string())]
        );
        assert!(!check.is_complete());
        assert_eq!(
            check.describe(4),
            "2/4 right; 1 missing (key:0002); 1 wrong (key:0003 = 'value-9')"
        );
        // A short reply counts the rest as missing, never panics.
        assert_eq!(compare_values(&expected, &[]).missing.len(), 4);
    }

    #[test]
    fn corrupting_the_wal_flips_the_first_records_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("wal");
        std::fs::create_dir_all(&wal).unwrap();
        std::fs::write(wal.join("00000002.wal"), [0u8; 16]).unwrap();
        std::fs::write(wal.join("00000001.wal"), [1u8; 16]).unwrap();
        let note = corrupt_wal(dir.path()).unwrap();
        assert!(note.contains("00000001.wal"), "{note}");
        let bytes = std::fs::read(wal.join("00000001.wal")).unwrap();
        assert_eq!(bytes[4], 0xFE);
        assert_eq!(bytes[3], 1);
        assert_eq!(std::fs::read(wal.join("00000002.wal")).unwrap(), [0u8; 16]);
        let empty = tempfile::tempdir().unwrap();
        assert!(corrupt_wal(empty.path())
            .unwrap_err()
            .contains("cannot list"));
    }

    #[test]
    fn tagging_is_refused_when_an_item_failed() {
        let mut record = GateRecord::new(RunMode::Demo, Vec::new(), 0);
        for n in 1..=ITEM_COUNT {
            record.set_item(n, ItemResult::pass("ok", "here"));
        }
        record.set_item(6, ItemResult::fail("corrupt", "there"));
        record.set_item(7, ItemResult::fail("not taken", "there"));
        let error = create_git_tag("v0.0.0-never", &record).unwrap_err();
        assert_eq!(
            error,
            "not tagging: item 6, 7 failed; the tag marks a gate with all eight items PASS"
        );
    }

    #[test]
    fn demo_defaults_match_the_documented_ones() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            demo: DemoArgs,
        }
        let parsed = Cli::parse_from(["raftkv"]).demo;
        let defaults = DemoArgs::default();
        assert_eq!(parsed.cluster.nodes, defaults.cluster.nodes);
        assert_eq!(parsed.cluster.base_port, defaults.cluster.base_port);
        assert_eq!(parsed.cluster.data_dir, defaults.cluster.data_dir);
        assert_eq!(parsed.cluster.log_dir, defaults.cluster.log_dir);
        assert_eq!(parsed.out, defaults.out);
        assert!(!parsed.sabotage_catchup && !parsed.plan && parsed.git_tag.is_none());
        let sabotaged =
            Cli::parse_from(["raftkv", "--sabotage-catchup", "--git-tag", "v0.3.0"]).demo;
        assert!(sabotaged.sabotage_catchup);
        assert_eq!(sabotaged.git_tag.as_deref(), Some("v0.3.0"));
    }
}
