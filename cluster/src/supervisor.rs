//! Supervisor: spawns the child node processes, watches them, signals them
//! (kill -9, graceful stop) and starts them again.
//!
//! Each child runs `raftkv node ...` (the current binary re-executed), with its
//! stdout and stderr appended to `<log-dir>/node-<id>.out`, in a process group
//! of its own (a Ctrl-C at the terminal reaches only the parent, which then
//! stops the nodes gracefully), and with a parent-death signal so it is killed
//! when the parent dies, even by SIGKILL.
//!
//! `Supervisor::start` must be called from a thread that lives as long as the
//! process (the main thread): Linux delivers the parent-death signal when the
//! *thread* that forked the child exits.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::clock;
use crate::cluster::{ClusterArgs, ClusterLayout};

/// Control messages a child's watcher accepts; a few at most are ever pending.
const CONTROL_QUEUE_MAX: usize = 8;
/// How long a node gets between SIGTERM and SIGKILL by default.
pub const STOP_GRACE_MS_DEFAULT: u64 = 5_000;

/// What happened to a child process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcessEvent {
    Started { pid: u32 },
    SpawnFailed { error: String },
    Exited { exit: ExitKind },
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    Code(i32),
    Signal(i32),
}

impl ExitKind {
    fn from_status(status: std::process::ExitStatus) -> ExitKind {
        match (status.code(), status.signal()) {
            (Some(code), _) => ExitKind::Code(code),
            (None, Some(signal)) => ExitKind::Signal(signal),
            (None, None) => ExitKind::Code(-1),
        }
    }
}

/// Signal names for the signals a supervisor sees in practice.
pub fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGINT => "SIGINT".into(),
        libc::SIGABRT => "SIGABRT".into(),
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGHUP => "SIGHUP".into(),
        libc::SIGBUS => "SIGBUS".into(),
        other => format!("signal {other}"),
    }
}

impl std::fmt::Display for ExitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitKind::Code(code) => write!(f, "exited with code {code}"),
            ExitKind::Signal(signal) => write!(f, "killed by {}", signal_name(*signal)),
        }
    }
}

/// One report from the supervisor about node `id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessReport {
    pub id: u64,
    pub at_ms: u64,
    pub event: ProcessEvent,
}

/// The program a child runs: normally the current binary, in tests a stand-in.
#[derive(Clone, Debug)]
pub struct NodeProgram {
    pub program: PathBuf,
    /// Arguments placed before the node arguments (tests use `-c script` here).
    pub leading_args: Vec<OsString>,
}

impl NodeProgram {
    /// This very binary, re-executed as `raftkv node ...`.
    pub fn current_exe() -> Result<NodeProgram, String> {
        let program = std::env::current_exe()
            .map_err(|e| format!("cannot find the raftkv binary to start nodes with: {e}"))?;
        Ok(NodeProgram {
            program,
            leading_args: Vec::new(),
        })
    }
}

enum Control {
    Signal(i32),
    /// SIGTERM now, SIGKILL if still alive after `grace_ms`.
    Stop {
        grace_ms: u64,
    },
}

struct ChildHandle {
    pid: u32,
    control: mpsc::Sender<Control>,
}

impl ChildHandle {
    /// The watcher drops its receiver before it reports the exit.
    fn is_alive(&self) -> bool {
        !self.control.is_closed()
    }
}

/// Owns the node processes of one local cluster.
pub struct Supervisor {
    layout: ClusterLayout,
    program: NodeProgram,
    children: BTreeMap<u64, ChildHandle>,
    reports: mpsc::Sender<ProcessReport>,
    stop_grace_ms: u64,
}

impl Supervisor {
    /// Exit reports go to `reports`; the receiver must keep draining it.
    pub fn new(
        layout: ClusterLayout,
        program: NodeProgram,
        reports: mpsc::Sender<ProcessReport>,
        stop_grace_ms: u64,
    ) -> Supervisor {
        Supervisor {
            layout,
            program,
            children: BTreeMap::new(),
            reports,
            stop_grace_ms,
        }
    }

    /// For tests of the code that drives processes, not nodes: a
    /// supervisor of `nodes` stand-in nodes with their dirs under `dir`.
    /// Each stand-in is `/bin/sh -c script`, which ignores the node
    /// arguments; `trap` in the script decides what SIGTERM does.
    pub fn stand_in(
        dir: &Path,
        nodes: u64,
        script: &str,
        stop_grace_ms: u64,
    ) -> (Supervisor, mpsc::Receiver<ProcessReport>) {
        let layout = ClusterLayout::new(&ClusterArgs {
            nodes,
            base_port: 7000,
            data_dir: dir.join("data"),
            log_dir: dir.join("logs"),
            fresh: false,
            requirepass: None,
        })
        .expect("a stand-in layout");
        layout.create_dirs().expect("stand-in dirs");
        let program = NodeProgram {
            program: "/bin/sh".into(),
            leading_args: vec!["-c".into(), script.into(), "sh".into()],
        };
        let (reports_tx, reports) = mpsc::channel(16);
        let supervisor = Supervisor::new(layout, program, reports_tx, stop_grace_ms);
        (supervisor, reports)
    }

    #[cfg(test)]
    pub fn layout(&self) -> &ClusterLayout {
        &self.layout
    }

    /// Starts node `id` with an empty data dir as a new member that joins
    /// through the member at client address `via` (`--join`); later starts
    /// of `id` join too. Returns its pid.
    pub fn join(&mut self, id: u64, via: String) -> Result<u32, String> {
        if let Some(pid) = self.pid(id) {
            return Err(format!("node {id} is still running (pid {pid})"));
        }
        self.layout.check_node_ports_free(id)?;
        self.layout.add_joining_member(id, via)?;
        self.start(id, true)
    }

    /// Starts a node that joined earlier again, with its data, telling it
    /// the member `via` to learn addresses from (`--join`).
    pub fn restart_joined(&mut self, id: u64, via: String) -> Result<u32, String> {
        if let Some(pid) = self.pid(id) {
            return Err(format!("node {id} is still running (pid {pid})"));
        }
        self.layout.add_joining_member(id, via)?;
        self.start(id, false)
    }

    /// Node `id` left the cluster (its removal committed): it is no longer
    /// started with the others.
    pub fn forget(&mut self, id: u64) {
        self.layout.remove_member(id);
    }

    /// Starts node `id` (wiping its data dir first when asked) and returns its pid.
    /// Must run inside a tokio runtime, on the main thread (see the module doc).
    pub fn start(&mut self, id: u64, wipe_data: bool) -> Result<u32, String> {
        if !self.layout.is_possible_member(id) {
            return Err(format!("there is no node {id}"));
        }
        if let Some(pid) = self.pid(id) {
            return Err(format!("node {id} is still running (pid {pid})"));
        }
        if wipe_data {
            self.layout.wipe_node_data(id)?;
        }
        let output_path = self.layout.node_output_path(id);
        let mut output = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&output_path)
            .map_err(|e| format!("node {id}: cannot open {}: {e}", output_path.display()))?;
        // A marker in the captured output separates one run from the next.
        let _ = writeln!(
            output,
            "--- starting node {id} at {} UTC{} ---",
            clock::format_time_of_day(clock::now_ms()),
            if wipe_data {
                " with an empty data dir"
            } else {
                ""
            }
        );
        let stderr = output
            .try_clone()
            .map_err(|e| format!("node {id}: cannot share {}: {e}", output_path.display()))?;

        let mut command = Command::new(&self.program.program);
        command
            .args(&self.program.leading_args)
            .args(self.layout.node_args(id))
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(stderr)
            .process_group(0)
            .kill_on_drop(true);
        set_parent_death_signal(&mut command);
        let child = command.spawn().map_err(|e| {
            format!(
                "node {id}: cannot start {}: {e}",
                self.program.program.display()
            )
        })?;
        let pid = child
            .id()
            .ok_or_else(|| format!("node {id}: exited before its pid could be read"))?;
        let (control_tx, control_rx) = mpsc::channel(CONTROL_QUEUE_MAX);
        tokio::spawn(watch_child(
            id,
            child,
            pid,
            control_rx,
            self.reports.clone(),
        ));
        self.children.insert(
            id,
            ChildHandle {
                pid,
                control: control_tx,
            },
        );
        tracing::info!(event = "node_started", node = id, pid);
        Ok(pid)
    }

    /// The pid of node `id` while its process is alive.
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.children
            .get(&id)
            .filter(|c| c.is_alive())
            .map(|c| c.pid)
    }

    pub fn running_ids(&self) -> Vec<u64> {
        self.children
            .iter()
            .filter(|(_, c)| c.is_alive())
            .map(|(id, _)| *id)
            .collect()
    }

    /// kill -9.
    pub fn kill(&self, id: u64) -> Result<u32, String> {
        self.send(id, Control::Signal(libc::SIGKILL))
    }

    /// SIGSTOP: the process freezes with its sockets open.
    pub fn pause(&self, id: u64) -> Result<u32, String> {
        self.send(id, Control::Signal(libc::SIGSTOP))
    }

    /// SIGCONT.
    pub fn resume(&self, id: u64) -> Result<u32, String> {
        self.send(id, Control::Signal(libc::SIGCONT))
    }

    /// SIGTERM, then SIGKILL after the grace period if the node is still alive.
    pub fn stop(&self, id: u64) -> Result<u32, String> {
        self.send(
            id,
            Control::Stop {
                grace_ms: self.stop_grace_ms,
            },
        )
    }

    /// Gracefully stops every running node; returns how many were asked.
    pub fn stop_all(&self) -> usize {
        self.running_ids()
            .into_iter()
            .filter(|id| self.stop(*id).is_ok())
            .count()
    }

    /// Waits until every child has exited or `deadline` passes; then kills what is left.
    pub async fn wait_all_exited(&self, deadline: Duration) -> bool {
        let all_closed =
            futures::future::join_all(self.children.values().map(|child| child.control.closed()));
        if tokio::time::timeout(deadline, all_closed).await.is_ok() {
            return true;
        }
        for id in self.running_ids() {
            let _ = self.kill(id);
        }
        false
    }

    fn send(&self, id: u64, control: Control) -> Result<u32, String> {
        let child = self
            .children
            .get(&id)
            .filter(|c| c.is_alive())
            .ok_or_else(|| format!("node {id} is not running"))?;
        child
            .control
            .try_send(control)
            .map_err(|e| format!("node {id}: cannot signal pid {}: {e}", child.pid))?;
        Ok(child.pid)
    }
}

#[cfg(target_os = "linux")]
fn set_parent_death_signal(command: &mut Command) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe system calls; it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl: then nobody would ever kill us.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn set_parent_death_signal(_command: &mut Command) {}

fn send_signal(pid: u32, signal: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions. The pid is our
    // unreaped child (the watcher reaps it), so it cannot have been reused.
    let result = unsafe { libc::kill(pid as libc::pid_t, signal) };
    if result != 0 {
        tracing::warn!(event = "signal_failed", pid, signal, error = %std::io::Error::last_os_error());
    }
}

/// Owns one child until it exits, applying control messages, then reports the exit.
async fn watch_child(
    id: u64,
    mut child: Child,
    pid: u32,
    mut control: mpsc::Receiver<Control>,
    reports: mpsc::Sender<ProcessReport>,
) {
    let mut kill_at: Option<tokio::time::Instant> = None;
    let status = loop {
        let escalate = async {
            match kill_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            status = child.wait() => break status,
            Some(message) = control.recv() => match message {
                Control::Signal(signal) => send_signal(pid, signal),
                Control::Stop { grace_ms } => {
                    send_signal(pid, libc::SIGTERM);
                    // A paused node (`z`) must wake up to stop gracefully.
                    send_signal(pid, libc::SIGCONT);
                    kill_at.get_or_insert(
                        tokio::time::Instant::now() + Duration::from_millis(grace_ms),
                    );
                }
            },
            () = escalate => {
                tracing::warn!(event = "stop_escalated", node = id, pid);
                send_signal(pid, libc::SIGKILL);
                kill_at = None;
            }
        }
    };
    // Closing the control channel first makes `Supervisor::pid` see the exit
    // before the report arrives, so a restart triggered by it can spawn at once.
    drop(control);
    let event = match status {
        Ok(status) => ProcessEvent::Exited {
            exit: ExitKind::from_status(status),
        },
        Err(error) => ProcessEvent::SpawnFailed {
            error: format!("lost track of pid {pid}: {error}"),
        },
    };
    tracing::info!(event = "node_exited", node = id, pid, detail = ?event);
    // A closed receiver means the dashboard is gone; nobody is left to tell.
    let _ = reports
        .send(ProcessReport {
            id,
            at_ms: clock::now_ms(),
            event,
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two stand-in nodes running `script` (see `Supervisor::stand_in`).
    fn supervisor(
        script: &str,
        grace_ms: u64,
    ) -> (Supervisor, mpsc::Receiver<ProcessReport>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let (supervisor, reports) = Supervisor::stand_in(dir.path(), 2, script, grace_ms);
        (supervisor, reports, dir)
    }

    /// Waits until the stand-in has printed `ready` (its traps are set) `count` times.
    async fn wait_ready(sup: &Supervisor, id: u64, count: usize) {
        let path = sup.layout().node_output_path(id);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let output = std::fs::read_to_string(&path).unwrap_or_default();
            if output.matches("ready").count() >= count {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "node {id} never got ready: {output}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn next_report(rx: &mut mpsc::Receiver<ProcessReport>) -> ProcessReport {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a process report within 10 s")
            .expect("report channel open")
    }

    #[tokio::test]
    async fn kill_reports_sigkill_and_restart_gets_a_new_pid() {
        let (mut sup, mut rx, _dir) = supervisor("echo ready; exec sleep 30", 5_000);
        let first = sup.start(1, false).unwrap();
        wait_ready(&sup, 1, 1).await;
        assert_eq!(sup.pid(1), Some(first));
        assert!(sup.start(1, false).unwrap_err().contains("still running"));
        sup.kill(1).unwrap();
        let report = next_report(&mut rx).await;
        assert_eq!(report.id, 1);
        assert_eq!(
            report.event,
            ProcessEvent::Exited {
                exit: ExitKind::Signal(libc::SIGKILL)
            }
        );
        assert_eq!(sup.pid(1), None);
        assert!(sup.kill(1).unwrap_err().contains("not running"));
        let second = sup.start(1, false).unwrap();
        assert_ne!(first, second);
        sup.kill(1).unwrap();
        next_report(&mut rx).await;
        let output = std::fs::read_to_string(sup.layout().node_output_path(1)).unwrap();
        assert_eq!(output.matches("--- starting node 1").count(), 2, "{output}");
        assert!(output.contains("ready"), "{output}");
    }

    #[tokio::test]
    async fn graceful_stop_sends_sigterm_then_escalates() {
        // (script, grace, node, its exit): a node that exits on SIGTERM, and
        // a stubborn one that ignores it and is killed once the grace is over.
        for (script, grace_ms, id, exit) in [
            (
                "trap 'exit 0' TERM; echo ready; while :; do sleep 0.05; done",
                5_000,
                1,
                ExitKind::Code(0),
            ),
            (
                "trap '' TERM; echo ready; while :; do sleep 0.05; done",
                200,
                2,
                ExitKind::Signal(libc::SIGKILL),
            ),
        ] {
            let (mut sup, mut rx, _dir) = supervisor(script, grace_ms);
            sup.start(id, false).unwrap();
            wait_ready(&sup, id, 1).await;
            sup.stop(id).unwrap();
            assert_eq!(
                next_report(&mut rx).await.event,
                ProcessEvent::Exited { exit },
                "{script}"
            );
        }
    }

    #[tokio::test]
    async fn stop_all_waits_for_every_child() {
        let (mut sup, mut rx, _dir) =
            supervisor("trap 'exit 0' TERM; while :; do sleep 0.05; done", 5_000);
        sup.start(1, false).unwrap();
        sup.start(2, false).unwrap();
        assert_eq!(sup.running_ids(), vec![1, 2]);
        assert_eq!(sup.stop_all(), 2);
        assert!(sup.wait_all_exited(Duration::from_secs(10)).await);
        assert!(sup.running_ids().is_empty());
        next_report(&mut rx).await;
        next_report(&mut rx).await;
    }

    #[tokio::test]
    async fn wipe_restart_removes_the_data_dir_and_exit_codes_are_reported() {
        let (mut sup, mut rx, _dir) = supervisor("exit 3", 5_000);
        let data = sup.layout().node_data_dir(2);
        std::fs::create_dir_all(&data).unwrap();
        sup.start(2, true).unwrap();
        assert!(!data.exists());
        assert_eq!(
            next_report(&mut rx).await.event,
            ProcessEvent::Exited {
                exit: ExitKind::Code(3)
            }
        );
        assert!(sup.start(9, false).unwrap_err().contains("no node 9"));
    }

    #[test]
    fn exits_describe_themselves() {
        assert_eq!(ExitKind::Signal(9).to_string(), "killed by SIGKILL");
        assert_eq!(ExitKind::Code(1).to_string(), "exited with code 1");
    }
}
