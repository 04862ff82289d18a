//! The dashboard runtime: prepares the cluster, owns the terminal (restored
//! on every exit path), runs the event loop, and carries out the app's
//! effects with the supervisor and background jobs.

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crossterm::event::{Event, EventStream};
use futures::{Stream, StreamExt};
use raftkv_node::fault_proxy::FaultProxy;

use crate::chaos::{self, Recorder};
use crate::live_history::{self, HistoryVerdict};
use ratatui::backend::Backend;
use ratatui::Terminal;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::{
    action_for_key, Action, App, Effect, Input, Mode, NodeConfig, Report, VerifyResult, WriteReport,
};
use crate::clock;
use crate::cluster::{
    node_log_path, node_output_path, parse_addr_list, ClusterArgs, ClusterLayout,
    DASHBOARD_MEMBERS_MAX,
};
use crate::evidence;
use crate::gate_record::{self, GateRecord, RunMode};
use crate::jobs::{self, KeySpace};
use crate::membership;
use crate::poll::{self, LogLine, StatusReport};
use crate::scenario::{self, GateContext, GateOutcome, GateProgress, ProcessRequest};
use crate::supervisor::{
    NodeProgram, ProcessEvent, ProcessReport, Supervisor, STOP_GRACE_MS_DEFAULT,
};

/// Capacity of each report channel into the event loop.
pub const REPORTS_QUEUE_MAX: usize = 1024;
/// Reports handled between two frames at most, so a flood cannot starve drawing.
pub const REPORTS_PER_FRAME_MAX: usize = 512;
/// A frame that takes longer than this is logged: input must never wait on drawing.
pub const FRAME_BUDGET_MS: u64 = 50;
/// The screen is redrawn at least this often (clock, sparkline).
pub const TICK_INTERVAL_MS: u64 = 250;
/// After the loop ends, nodes still alive get this long to exit after SIGKILL.
const EXIT_KILL_WAIT_MS: u64 = 2_000;

/// `--attach host:port,...`
#[derive(Clone, Debug)]
pub struct AddrList(pub Vec<String>);

pub fn parse_addr_list_arg(text: &str) -> Result<AddrList, String> {
    parse_addr_list(text).map(AddrList)
}

/// `raftkv tui` flags (also accepted by a bare `raftkv`).
#[derive(Clone, Debug, clap::Args)]
pub struct TuiArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Show an existing cluster (client addresses) instead of starting one;
    /// kill and restart keys are disabled.
    #[arg(long, value_parser = parse_addr_list_arg, value_name = "ADDR,...")]
    pub attach: Option<AddrList>,
}

/// Bound of the gate-finished channel: one gate runs at a time, and it
/// reports its outcome once.
const GATE_DONE_QUEUE_MAX: usize = 1;

/// Report channels from the background work into the event loop.
struct Channels {
    status: mpsc::Receiver<StatusReport>,
    process: mpsc::Receiver<ProcessReport>,
    log: mpsc::Receiver<LogLine>,
    write: mpsc::Receiver<WriteReport>,
    verify: mpsc::Receiver<VerifyResult>,
    gate: mpsc::Receiver<GateProgress>,
    gate_done: mpsc::Receiver<GateOutcome>,
    history: mpsc::Receiver<HistoryVerdict>,
    /// The gate's kill/start/pid requests, served on this (the main) thread.
    process_requests: mpsc::Receiver<ProcessRequest>,
    member: mpsc::Receiver<Report>,
}

/// The sending ends of `Channels`, handed to the background work.
struct ChannelSenders {
    status: mpsc::Sender<StatusReport>,
    process: mpsc::Sender<ProcessReport>,
    log: mpsc::Sender<LogLine>,
    write: mpsc::Sender<WriteReport>,
    verify: mpsc::Sender<VerifyResult>,
    gate: mpsc::Sender<GateProgress>,
    gate_done: mpsc::Sender<GateOutcome>,
    history: mpsc::Sender<HistoryVerdict>,
    process_requests: mpsc::Sender<ProcessRequest>,
    /// Replies to membership changes (`Report::MemberChanged`).
    member: mpsc::Sender<Report>,
}

impl Channels {
    /// Every channel with its bound: reports `REPORTS_QUEUE_MAX`, gate
    /// progress `scenario::PROGRESS_QUEUE_MAX`, the gate's outcome
    /// `GATE_DONE_QUEUE_MAX`.
    fn new() -> (ChannelSenders, Channels) {
        let (status_tx, status) = mpsc::channel(REPORTS_QUEUE_MAX);
        let (process_tx, process) = mpsc::channel(REPORTS_QUEUE_MAX);
        let (log_tx, log) = mpsc::channel(REPORTS_QUEUE_MAX);
        let (write_tx, write) = mpsc::channel(REPORTS_QUEUE_MAX);
        let (verify_tx, verify) = mpsc::channel(REPORTS_QUEUE_MAX);
        let (gate_tx, gate) = mpsc::channel(scenario::PROGRESS_QUEUE_MAX);
        let (gate_done_tx, gate_done) = mpsc::channel(GATE_DONE_QUEUE_MAX);
        let (history_tx, history) = mpsc::channel(REPORTS_QUEUE_MAX);
        let (process_requests_tx, process_requests) = mpsc::channel(REPORTS_QUEUE_MAX);
        let (member_tx, member) = mpsc::channel(REPORTS_QUEUE_MAX);
        let senders = ChannelSenders {
            member: member_tx,
            status: status_tx,
            process: process_tx,
            log: log_tx,
            write: write_tx,
            verify: verify_tx,
            gate: gate_tx,
            gate_done: gate_done_tx,
            history: history_tx,
            process_requests: process_requests_tx,
        };
        let channels = Channels {
            status,
            process,
            log,
            write,
            verify,
            gate,
            gate_done,
            history,
            process_requests,
            member,
        };
        (senders, channels)
    }
}

/// Where the gate's and `e`'s bundles go: `<log-dir>/evidence/<UTC timestamp>/`.
fn evidence_dir(log_dir: &Path) -> PathBuf {
    log_dir.join("evidence")
}

/// Carries out effects: the supervisor (supervised mode) and the jobs.
struct Workers {
    supervisor: Option<Supervisor>,
    addrs: Vec<String>,
    keys: KeySpace,
    cancel: CancellationToken,
    tracker: TaskTracker,
    load_stop: Option<CancellationToken>,
    write_tx: mpsc::Sender<WriteReport>,
    verify_tx: mpsc::Sender<VerifyResult>,
    log_dir: PathBuf,
    /// The supervised cluster's shape (`None` when attached).
    layout: Option<ClusterLayout>,
    /// (row id, client address) of every node.
    nodes: Vec<(u64, String)>,
    gate_tx: mpsc::Sender<GateProgress>,
    gate_done_tx: mpsc::Sender<GateOutcome>,
    process_requests_tx: mpsc::Sender<ProcessRequest>,
    gate_stop: Option<CancellationToken>,
    /// Where the supervised nodes' peer links pass (None when attached).
    fault_proxy: Option<FaultProxy>,
    /// Every operation of the load's clients on the contended keys, and of
    /// the bulk writes and their reads back.
    history: Recorder,
    /// Loads started so far: each gets new client ids (values stay unique).
    load_sessions: u64,
    /// Where pollers and log tailers of nodes added at runtime report.
    status_tx: mpsc::Sender<StatusReport>,
    log_tx: mpsc::Sender<LogLine>,
    member_tx: mpsc::Sender<Report>,
    /// Node ids whose status is polled and whose logs are tailed.
    watched: BTreeSet<u64>,
    /// Bulk writes started so far: each gets new client ids.
    bulk_writes: u64,
}

impl Workers {
    /// The gate's context: this dashboard's cluster, or the attached one.
    fn gate_context(&self) -> GateContext {
        let out_dir = evidence_dir(&self.log_dir);
        match &self.layout {
            Some(layout) => {
                GateContext::for_dashboard(layout, self.process_requests_tx.clone(), out_dir)
            }
            None => GateContext::for_attached(self.nodes.clone(), Some(&self.log_dir), out_dir),
        }
    }

    /// The history of the load and the bulk writes, and its verdict, into
    /// an evidence bundle. Nothing is written when neither has run.
    fn export_history(&self, dir: &Path) -> Result<(), String> {
        let records = self.history.records();
        if records.is_empty() {
            return Ok(());
        }
        let readme = "\nhistory.jsonl   Every operation the dashboard's load (W) sent to the contended\n\
                      \x20               keys live:0-4, and every write of the bulk writes (w; the\n\
                      \x20               value is the key's number) and the reads of their keys\n\
                      \x20               afterwards: client, key, read or write, unique value,\n\
                      \x20               invoke and complete time (us), outcome (ok, failed, unknown).\n\
                      verdict.txt     That history checked for linearizability per key (the\n\
                      \x20               checker of the simulator and `raftkv chaos`;\n\
                      \x20               `raftkv chaos --check history.jsonl` checks it again).\n";
        let readme_path = dir.join("README.txt");
        let mut text = std::fs::read_to_string(&readme_path).unwrap_or_default();
        text.push_str(readme);
        std::fs::write(&readme_path, text)
            .map_err(|e| format!("cannot write {}: {e}", readme_path.display()))?;
        let lines = chaos::verdict_lines(&records, &chaos::check(&records));
        let history = chaos::to_jsonl(&records);
        for (name, text) in [
            ("history.jsonl", history),
            ("verdict.txt", lines.join("\n") + "\n"),
        ] {
            std::fs::write(dir.join(name), text)
                .map_err(|e| format!("cannot write {}: {e}", dir.join(name).display()))?;
        }
        Ok(())
    }

    /// The nodes a bundle names when no gate has run.
    fn export_nodes(&self) -> Vec<gate_record::GateNode> {
        match &self.layout {
            Some(layout) => gate_record::nodes_from_layout(layout),
            None => gate_record::nodes_from_addrs(self.nodes.clone(), Some(&self.log_dir)),
        }
    }

    /// Serves one gate request with the supervisor; a start becomes the
    /// report the app would have had from its own `r`.
    fn serve_process_request(&mut self, request: ProcessRequest) -> Option<Action> {
        match &mut self.supervisor {
            Some(supervisor) => scenario::serve_process_request(supervisor, request)
                .map(|report| Report::Process(report).into()),
            None => {
                let _ = request
                    .reply
                    .send(Err(crate::app::ATTACHED_REFUSAL.to_string()));
                None
            }
        }
    }

    /// Starts polling and tailing node `id` unless that runs already.
    fn watch_node(&mut self, id: u64, client_addr: String) {
        if !self.watched.insert(id) {
            return;
        }
        poll::spawn_status_pollers(
            vec![(id, client_addr)],
            self.status_tx.clone(),
            self.cancel.clone(),
            &self.tracker,
        );
        poll::spawn_log_tailer(
            vec![(
                id,
                node_log_path(&self.log_dir, id),
                node_output_path(&self.log_dir, id),
            )],
            self.log_tx.clone(),
            self.cancel.clone(),
            &self.tracker,
        );
    }

    /// Node `id` starts with `--join via`; from now on it is a member the
    /// jobs, the gate and the pollers know.
    fn join(&mut self, id: u64, via: String, wipe_data: bool) -> Vec<Action> {
        let (Some(supervisor), Some(layout)) = (&mut self.supervisor, &mut self.layout) else {
            return Vec::new();
        };
        let client_addr = layout.client_addr(id).to_string();
        let result = if wipe_data {
            supervisor.join(id, via.clone())
        } else {
            supervisor.restart_joined(id, via.clone())
        };
        if result.is_ok() {
            // The gate's context and `e` name the members from this layout.
            let _ = layout.add_joining_member(id, via);
            if !self.addrs.contains(&client_addr) {
                self.addrs.push(client_addr.clone());
            }
            if !self.nodes.iter().any(|(n, _)| *n == id) {
                self.nodes.push((id, client_addr.clone()));
                self.nodes.sort();
            }
            self.watch_node(id, client_addr);
        }
        let event = match result {
            Ok(pid) => ProcessEvent::Started { pid },
            Err(error) => ProcessEvent::SpawnFailed { error },
        };
        vec![Report::Process(ProcessReport {
            id,
            at_ms: clock::now_ms(),
            event,
        })
        .into()]
    }

    /// Does `effect`; returns what the app must hear at once (spawn results).
    fn execute(&mut self, effect: Effect) -> Vec<Action> {
        match effect {
            Effect::Join { id, via, wipe_data } => self.join(id, via, wipe_data),
            Effect::ChangeMembership { change, addrs } => {
                let reports = self.member_tx.clone();
                let cancel = self.cancel.clone();
                self.tracker.spawn(async move {
                    let deadline = Duration::from_millis(crate::app::MEMBER_CHANGE_DEADLINE_MS);
                    let sent = membership::send_change(&addrs, &change, true, deadline);
                    let result = tokio::select! {
                        () = cancel.cancelled() => return,
                        result = sent => result.map_err(|e| e.to_string()),
                    };
                    // A closed receiver means the dashboard is gone.
                    let _ = reports.send(Report::MemberChanged { change, result }).await;
                });
                Vec::new()
            }
            Effect::Forget { id } => {
                if let Some(supervisor) = &mut self.supervisor {
                    supervisor.forget(id);
                }
                if let Some(layout) = &mut self.layout {
                    layout.remove_member(id);
                    let addr = layout.client_addr(id).to_string();
                    self.addrs.retain(|a| *a != addr);
                }
                self.nodes.retain(|(n, _)| *n != id);
                Vec::new()
            }
            Effect::Kill { id } | Effect::Stop { id } => {
                let Some(supervisor) = &self.supervisor else {
                    return Vec::new();
                };
                let result = if matches!(effect, Effect::Kill { .. }) {
                    supervisor.kill(id)
                } else {
                    supervisor.stop(id)
                };
                if let Err(error) = result {
                    // The exit report is already on its way.
                    tracing::warn!(event = "signal_not_sent", node = id, %error);
                }
                Vec::new()
            }
            Effect::Start { id, wipe_data } => {
                let Some(supervisor) = &mut self.supervisor else {
                    return Vec::new();
                };
                let event = match supervisor.start(id, wipe_data) {
                    Ok(pid) => ProcessEvent::Started { pid },
                    Err(error) => ProcessEvent::SpawnFailed { error },
                };
                let report = ProcessReport {
                    id,
                    at_ms: clock::now_ms(),
                    event,
                };
                vec![Report::Process(report).into()]
            }
            Effect::BulkWrite { count } => {
                let history = jobs::BulkHistory {
                    recorder: self.history.clone(),
                    first_client: live_history::BULK_CLIENT_ID_FIRST
                        + self.bulk_writes * jobs::BULK_WRITERS_MAX,
                };
                self.bulk_writes += 1;
                jobs::spawn_bulk_write(
                    self.addrs.clone(),
                    self.keys.clone(),
                    count,
                    history,
                    self.write_tx.clone(),
                    self.cancel.clone(),
                    &self.tracker,
                );
                Vec::new()
            }
            Effect::SetWriteLoad { on: true } => {
                if self.load_stop.is_none() {
                    let stop = self.cancel.child_token();
                    let history = jobs::BulkHistory {
                        recorder: self.history.clone(),
                        first_client: live_history::LOAD_CLIENT_ID_FIRST
                            + self.load_sessions * jobs::LOAD_WRITERS as u64,
                    };
                    jobs::spawn_write_load(
                        self.addrs.clone(),
                        self.keys.clone(),
                        history,
                        self.write_tx.clone(),
                        (stop.clone(), self.cancel.clone()),
                        &self.tracker,
                    );
                    let first = self.load_sessions * live_history::CLIENTS + 1;
                    self.load_sessions += 1;
                    chaos::spawn_workload(
                        &self.addrs,
                        first..=first + live_history::CLIENTS - 1,
                        live_history::KEY_PREFIX,
                        self.load_sessions,
                        &self.history,
                        &stop,
                    );
                    self.load_stop = Some(stop);
                }
                Vec::new()
            }
            Effect::SetWriteLoad { on: false } => {
                if let Some(stop) = self.load_stop.take() {
                    stop.cancel();
                }
                Vec::new()
            }
            Effect::Verify { nodes, ranges } => {
                jobs::spawn_verify(
                    nodes,
                    ranges,
                    self.keys.clone(),
                    self.verify_tx.clone(),
                    self.cancel.clone(),
                    &self.tracker,
                );
                Vec::new()
            }
            Effect::SetLinks { links } => {
                if let Some(proxy) = &self.fault_proxy {
                    for (link, mode) in links {
                        proxy.set(link, mode);
                    }
                }
                Vec::new()
            }
            Effect::Pause { id } | Effect::Resume { id } => {
                let Some(supervisor) = &self.supervisor else {
                    return Vec::new();
                };
                let result = if matches!(effect, Effect::Pause { .. }) {
                    supervisor.pause(id)
                } else {
                    supervisor.resume(id)
                };
                if let Err(error) = result {
                    tracing::warn!(event = "signal_not_sent", node = id, %error);
                }
                Vec::new()
            }
            Effect::StopAll => {
                if let Some(supervisor) = &self.supervisor {
                    supervisor.stop_all();
                }
                Vec::new()
            }
            Effect::RunGate { integrity } => {
                let mut context = self.gate_context();
                context.integrity = *integrity;
                let stop = self.cancel.child_token();
                self.gate_stop = Some(stop.clone());
                let progress = self.gate_tx.clone();
                let done = self.gate_done_tx.clone();
                self.tracker.spawn(async move {
                    let outcome = scenario::run_gate(context, progress, stop).await;
                    // A closed receiver means the dashboard is gone.
                    let _ = done.send(outcome).await;
                });
                Vec::new()
            }
            Effect::AbortGate => {
                if let Some(stop) = self.gate_stop.take() {
                    stop.cancel();
                }
                Vec::new()
            }
            Effect::ExportEvidence { gate } => {
                let record = match gate {
                    Some(record) => *record,
                    None => {
                        GateRecord::new(RunMode::ExportOnly, self.export_nodes(), clock::now_ms())
                    }
                };
                let result = evidence::export_evidence(&record, &evidence_dir(&self.log_dir))
                    .and_then(|dir| self.export_history(&dir).map(|()| dir));
                vec![Report::EvidenceExported(result).into()]
            }
        }
    }
}

/// Sets up `<log-dir>/tui.log`; the guard flushes it when dropped.
fn init_logging(log_dir: &Path) -> Result<tracing_appender::non_blocking::WorkerGuard, String> {
    std::fs::create_dir_all(log_dir)
        .map_err(|e| format!("cannot create log dir {}: {e}", log_dir.display()))?;
    let (writer, guard) =
        tracing_appender::non_blocking(tracing_appender::rolling::never(log_dir, "tui.log"));
    let filter = tracing_subscriber::EnvFilter::try_from_env("RAFTKV_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_writer(writer)
        .with_env_filter(filter)
        .try_init()
        .map_err(|e| format!("cannot set up logging: {e}"))?;
    Ok(guard)
}

/// What the dashboard will show, decided before the terminal is taken over
/// (so every setup error prints plainly).
struct Plan {
    mode: Mode,
    layout: Option<ClusterLayout>,
    nodes: Vec<NodeConfig>,
    notes: Vec<String>,
}

fn plan(args: &TuiArgs) -> Result<Plan, String> {
    if let Some(AddrList(addrs)) = &args.attach {
        let nodes = addrs
            .iter()
            .enumerate()
            .map(|(i, addr)| NodeConfig {
                id: i as u64 + 1,
                client_addr: addr.clone(),
            })
            .collect();
        return Ok(Plan {
            mode: Mode::Attached,
            layout: None,
            nodes,
            notes: vec![format!("attached to {}", addrs.join(", "))],
        });
    }
    let mut layout = ClusterLayout::new(&args.cluster)?;
    // `a` adds nodes up to the cap; their ports and proxy links are
    // reserved now, and `--fresh` wipes their data dirs too.
    layout.allow_members_up_to(DASHBOARD_MEMBERS_MAX)?;
    layout.create_dirs()?;
    layout.check_ports_free()?;
    let data = layout.data_dir.display();
    let note = if args.cluster.fresh {
        let wiped = layout.wipe_all_data()?;
        format!(
            "--fresh: deleted {} node data dirs under {data}; the cluster starts empty",
            wiped.len()
        )
    } else if layout.has_existing_data() {
        format!("reusing the data in {data} (start with --fresh for an empty cluster)")
    } else {
        format!("new cluster, data in {data}")
    };
    let nodes = layout
        .ids()
        .map(|id| NodeConfig {
            id,
            client_addr: layout.client_addr(id).to_string(),
        })
        .collect();
    Ok(Plan {
        mode: Mode::Supervised,
        layout: Some(layout),
        nodes,
        notes: vec![note],
    })
}

/// `raftkv tui`: runs the dashboard until the user quits.
pub fn run(args: TuiArgs) -> Result<(), String> {
    let log_dir = args.cluster.log_dir.clone();
    let _log_guard = init_logging(&log_dir)?;
    let plan = plan(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let result = runtime.block_on(async move {
        // Installs a panic hook that restores the terminal before the panic message prints.
        let mut terminal =
            ratatui::try_init().map_err(|e| format!("cannot take over the terminal: {e}"))?;
        let result = run_with_terminal(&mut terminal, plan, &log_dir).await;
        ratatui::restore();
        result
    });
    // Tasks still running (pollers, jobs) are dropped with the runtime; any
    // child left is killed on drop and by its parent-death signal.
    runtime.shutdown_timeout(Duration::from_millis(500));
    if result.is_ok() {
        println!(
            "raftkv: dashboard closed; logs in {}",
            args.cluster.log_dir.display()
        );
    }
    result
}

async fn run_with_terminal<B: Backend>(
    terminal: &mut Terminal<B>,
    plan: Plan,
    log_dir: &Path,
) -> Result<(), String> {
    let (senders, mut channels) = Channels::new();
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let now_ms = clock::now_ms();
    let addrs: Vec<String> = plan.nodes.iter().map(|n| n.client_addr.clone()).collect();

    // Tail the logs before any node starts, so no event of this run is missed.
    let files = plan
        .nodes
        .iter()
        .map(|n| {
            (
                n.id,
                node_log_path(log_dir, n.id),
                node_output_path(log_dir, n.id),
            )
        })
        .collect();
    poll::spawn_log_tailer(files, senders.log.clone(), cancel.clone(), &tracker);
    poll::spawn_status_pollers(
        plan.nodes
            .iter()
            .map(|n| (n.id, n.client_addr.clone()))
            .collect(),
        senders.status.clone(),
        cancel.clone(),
        &tracker,
    );
    // Every peer link of a cluster this dashboard runs passes through the
    // fault proxy, so `p` can cut a node off without touching it.
    let mut plan = plan;
    let fault_proxy = match &mut plan.layout {
        Some(layout) => Some(layout.route_through_fault_proxy().await?),
        None => None,
    };
    let layout = plan.layout.clone();
    let supervisor = match plan.layout {
        Some(layout) => Some(Supervisor::new(
            layout,
            NodeProgram::current_exe()?,
            senders.process,
            STOP_GRACE_MS_DEFAULT,
        )),
        None => None,
    };
    let history = Recorder::bounded(std::time::Instant::now(), live_history::RECORDS_MAX);
    let mut workers = Workers {
        supervisor,
        fault_proxy,
        addrs,
        keys: KeySpace::new(now_ms),
        cancel: cancel.clone(),
        tracker: tracker.clone(),
        load_stop: None,
        write_tx: senders.write,
        verify_tx: senders.verify,
        log_dir: log_dir.to_path_buf(),
        layout,
        nodes: plan
            .nodes
            .iter()
            .map(|n| (n.id, n.client_addr.clone()))
            .collect(),
        gate_tx: senders.gate,
        gate_done_tx: senders.gate_done,
        process_requests_tx: senders.process_requests,
        gate_stop: None,
        history: history.clone(),
        load_sessions: 0,
        status_tx: senders.status,
        log_tx: senders.log,
        member_tx: senders.member,
        watched: plan.nodes.iter().map(|n| n.id).collect(),
        bulk_writes: 0,
    };
    live_history::spawn_checker(history, senders.history, cancel.clone(), &tracker);
    let mut app = App::new(plan.mode, plan.nodes, now_ms, plan.notes);
    if let Some(layout) = &workers.layout {
        app.set_addable(
            (1..=layout.members_max)
                .map(|id| NodeConfig {
                    id,
                    client_addr: layout.client_addr(id).to_string(),
                })
                .collect(),
        );
    }
    let start = app.start_all();
    let mut pending: VecDeque<Action> =
        start.into_iter().flat_map(|e| workers.execute(e)).collect();
    while let Some(action) = pending.pop_front() {
        dispatch(&mut app, &mut workers, action, &mut pending);
    }

    let result = event_loop(
        terminal,
        &mut app,
        &mut workers,
        &mut channels,
        EventStream::new(),
        Some(QuitSignals::watch()?),
    )
    .await;

    cancel.cancel();
    tracker.close();
    if let Some(supervisor) = &workers.supervisor {
        // Leaving without a graceful stop (q twice, deadline, error): kill what is left.
        if !supervisor.running_ids().is_empty() {
            for id in supervisor.running_ids() {
                let _ = supervisor.kill(id);
            }
            supervisor
                .wait_all_exited(Duration::from_millis(EXIT_KILL_WAIT_MS))
                .await;
        }
    }
    result
}

/// Applies `action`, carries out its effects, and queues their immediate results.
fn dispatch(app: &mut App, workers: &mut Workers, action: Action, pending: &mut VecDeque<Action>) {
    let effects = app.update(action, clock::now_ms());
    for effect in effects {
        pending.extend(workers.execute(effect));
    }
}

/// SIGTERM, SIGHUP (the terminal went away) and SIGINT quit like `q` does.
struct QuitSignals {
    terminate: Signal,
    hangup: Signal,
    interrupt: Signal,
}

impl QuitSignals {
    fn watch() -> Result<QuitSignals, String> {
        let watch = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| format!("cannot watch {name}: {e}"))
        };
        Ok(QuitSignals {
            terminate: watch(SignalKind::terminate(), "SIGTERM")?,
            hangup: watch(SignalKind::hangup(), "SIGHUP")?,
            interrupt: watch(SignalKind::interrupt(), "SIGINT")?,
        })
    }
}

/// Resolves on the next quit signal; never without signals (tests).
async fn next_quit_signal(signals: &mut Option<QuitSignals>) {
    match signals {
        Some(signals) => {
            tokio::select! {
                _ = signals.terminate.recv() => {}
                _ = signals.hangup.recv() => {}
                _ = signals.interrupt.recv() => {}
            }
        }
        None => std::future::pending().await,
    }
}

/// The loop: draw, wait for input or a report, apply it (and whatever else is
/// already queued, up to a bound), repeat until the app says exit.
async fn event_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    workers: &mut Workers,
    channels: &mut Channels,
    mut events: impl Stream<Item = std::io::Result<Event>> + Unpin,
    mut quit_signals: Option<QuitSignals>,
) -> Result<(), String> {
    let mut tick = tokio::time::interval(Duration::from_millis(TICK_INTERVAL_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut pending = VecDeque::new();
    loop {
        let drawing = std::time::Instant::now();
        terminal
            .draw(|frame| frame.render_widget(&*app, frame.area()))
            .map_err(|e| format!("cannot draw: {e}"))?;
        app.note_drawn();
        let frame_ms = drawing.elapsed().as_millis() as u64;
        if frame_ms > FRAME_BUDGET_MS {
            tracing::warn!(event = "slow_frame", frame_ms);
        }
        if app.should_exit {
            return Ok(());
        }
        let first = tokio::select! {
            event = events.next() => match event {
                Some(Ok(Event::Key(key))) => action_for_key(key).map(Action::Input),
                Some(Ok(_)) => None, // resize and the like: redraw
                Some(Err(error)) => return Err(format!("cannot read the terminal: {error}")),
                None => Some(Input::Quit.into()),
            },
            Some(report) = channels.status.recv() => Some(Report::Status(report).into()),
            Some(report) = channels.process.recv() => Some(Report::Process(report).into()),
            Some(line) = channels.log.recv() => Some(Report::NodeLog(line).into()),
            Some(report) = channels.write.recv() => Some(Report::Write(report).into()),
            Some(result) = channels.verify.recv() => Some(Report::VerifyFinished(result).into()),
            Some(progress) = channels.gate.recv() => Some(Report::GateProgress(Box::new(progress)).into()),
            Some(outcome) = channels.gate_done.recv() => Some(Report::GateFinished(Box::new(outcome)).into()),
            Some(verdict) = channels.history.recv() => Some(Report::HistoryChecked(verdict).into()),
            Some(request) = channels.process_requests.recv() => workers.serve_process_request(request),
            Some(report) = channels.member.recv() => Some(report.into()),
            _ = tick.tick() => Some(Report::Tick.into()),
            () = next_quit_signal(&mut quit_signals) => Some(Input::Quit.into()),
        };
        pending.extend(first);
        drain_reports(channels, &mut pending);
        while let Some(action) = pending.pop_front() {
            dispatch(app, workers, action, &mut pending);
        }
    }
}

/// Queues reports that are already waiting (bounded), so one frame shows them all.
fn drain_reports(channels: &mut Channels, pending: &mut VecDeque<Action>) {
    for _ in 0..REPORTS_PER_FRAME_MAX {
        let next = channels
            .process
            .try_recv()
            .map(Report::Process)
            .or_else(|_| channels.status.try_recv().map(Report::Status))
            .or_else(|_| channels.log.try_recv().map(Report::NodeLog))
            .or_else(|_| channels.write.try_recv().map(Report::Write))
            .or_else(|_| channels.verify.try_recv().map(Report::VerifyFinished));
        match next {
            Ok(report) => pending.push_back(report.into()),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::{KeyCode, KeyEvent};
    use ratatui::backend::TestBackend;

    /// The loop on a test backend: attached to an address nobody listens on,
    /// `?` opens and closes help, `x` is refused, `q` quits; the screen says
    /// there is no leader and why `x` did nothing.
    #[tokio::test]
    async fn event_loop_draws_and_quits_on_q() {
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = dead.local_addr().unwrap().to_string();
        drop(dead);
        // The senders nobody uses here stay alive until the end of the test.
        let (senders, mut channels) = Channels::new();
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        poll::spawn_status_pollers(
            vec![(1, addr.clone())],
            senders.status.clone(),
            cancel.clone(),
            &tracker,
        );
        let mut workers = Workers {
            supervisor: None,
            addrs: vec![addr.clone()],
            keys: KeySpace::new(0),
            cancel: cancel.clone(),
            tracker: tracker.clone(),
            load_stop: None,
            write_tx: senders.write,
            verify_tx: senders.verify,
            log_dir: std::env::temp_dir(),
            layout: None,
            nodes: vec![(1, addr.clone())],
            gate_tx: senders.gate,
            gate_done_tx: senders.gate_done,
            process_requests_tx: senders.process_requests,
            gate_stop: None,
            fault_proxy: None,
            history: Recorder::bounded(std::time::Instant::now(), live_history::RECORDS_MAX),
            load_sessions: 0,
            status_tx: senders.status.clone(),
            log_tx: senders.log.clone(),
            member_tx: senders.member.clone(),
            watched: BTreeSet::new(),
            bulk_writes: 0,
        };
        let nodes = vec![NodeConfig {
            id: 1,
            client_addr: addr,
        }];
        let mut app = App::new(Mode::Attached, nodes, clock::now_ms(), Vec::new());
        let keys = futures::stream::iter(['?', '?', 'x', 'q'])
            .then(|c| async move {
                // Give the poller time to report between keys.
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok(Event::Key(KeyEvent::from(KeyCode::Char(c))))
            })
            .chain(futures::stream::pending());
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
        let run = event_loop(
            &mut terminal,
            &mut app,
            &mut workers,
            &mut channels,
            Box::pin(keys),
            None,
        );
        tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("q ends the loop")
            .unwrap();
        cancel.cancel();
        assert!(app.should_exit);
        let screen = terminal.backend().to_string();
        assert!(screen.contains("NO LEADER"), "{screen}");
        assert!(screen.contains("no answer"), "{screen}");
        assert!(
            screen.contains(" attached to a cluster this dashboard did not start"),
            "{screen}"
        );
        assert!(app.nodes[0].poll_error.is_some());
        assert!(!app.help_open);
    }
}
