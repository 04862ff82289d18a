//! Multi-process test harness: a cluster of real `raftkv-node` processes on
//! free loopback ports and temporary data dirs. Every wait has a deadline;
//! every child is killed when the harness is dropped (and dies with the test
//! process through PR_SET_DEATHSIG).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use raftkv_node::client::ClusterClient;

/// How long any single condition may take before the test fails.
pub const WAIT_DEADLINE: Duration = Duration::from_secs(30);
/// Interval between two polls of a condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .unwrap()
        .port()
}

pub struct NodeProcess {
    pub id: u64,
    pub client_addr: String,
    pub peer_addr: String,
    pub data_dir: PathBuf,
    pub child: Option<Child>,
    /// Started with `--join <this client address>` instead of `--cluster`.
    pub join: Option<String>,
}

/// Process tests share 2 cores: one cluster at a time per test binary, so
/// timing-sensitive elections are not starved by a sibling test.
static ONE_CLUSTER_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub struct Cluster {
    _serial: std::sync::MutexGuard<'static, ()>,
    pub nodes: Vec<NodeProcess>,
    pub dir: tempfile::TempDir,
    pub log_dir: PathBuf,
    cluster_flag: String,
    /// Per-node `--cluster` values that replace `cluster_flag` (peer links
    /// routed through a fault proxy).
    cluster_flags: BTreeMap<u64, String>,
    pub extra_args: Vec<String>,
}

impl Cluster {
    /// Starts `n` nodes and waits for a leader.
    pub fn start(n: u64) -> Cluster {
        Cluster::start_with(n, Vec::new())
    }

    pub fn start_with(n: u64, extra_args: Vec<String>) -> Cluster {
        let mut cluster = Cluster::new(n, extra_args);
        cluster.start_all();
        cluster
    }

    pub fn new(n: u64, extra_args: Vec<String>) -> Cluster {
        let serial = ONE_CLUSTER_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let dir = tempfile::tempdir().expect("temp dir");
        let log_dir = dir.path().join("logs");
        std::fs::create_dir_all(&log_dir).unwrap();
        let mut nodes = Vec::new();
        for id in 1..=n {
            nodes.push(NodeProcess {
                id,
                client_addr: format!("127.0.0.1:{}", free_port()),
                peer_addr: format!("127.0.0.1:{}", free_port()),
                data_dir: dir.path().join(format!("node-{id}")),
                child: None,
                join: None,
            });
        }
        let cluster_flag = nodes
            .iter()
            .map(|n| format!("{}={}", n.id, n.peer_addr))
            .collect::<Vec<_>>()
            .join(",");
        Cluster {
            _serial: serial,
            nodes,
            dir,
            log_dir,
            cluster_flag,
            cluster_flags: BTreeMap::new(),
            extra_args,
        }
    }

    pub fn node(&self, id: u64) -> &NodeProcess {
        &self.nodes[(id - 1) as usize]
    }

    fn node_mut(&mut self, id: u64) -> &mut NodeProcess {
        &mut self.nodes[(id - 1) as usize]
    }

    pub fn command(&self, id: u64) -> Command {
        let node = self.node(id);
        let mut command = Command::new(env!("CARGO_BIN_EXE_raftkv-node"));
        command
            .arg("--id")
            .arg(id.to_string())
            .arg("--client")
            .arg(&node.client_addr)
            .arg("--peer")
            .arg(&node.peer_addr);
        match &node.join {
            Some(join) => command.arg("--join").arg(join),
            None => command
                .arg("--cluster")
                .arg(self.cluster_flags.get(&id).unwrap_or(&self.cluster_flag)),
        };
        command
            .arg("--data-dir")
            .arg(&node.data_dir)
            .arg("--log-dir")
            .arg(&self.log_dir)
            .args(&self.extra_args);
        command
    }

    /// Adds node N+1 (new ports, empty data dir), started with `--join`
    /// through node `via`'s client address; returns its id.
    pub fn add_joining_node(&mut self, via: u64) -> u64 {
        let id = self.nodes.len() as u64 + 1;
        let join = self.node(via).client_addr.clone();
        self.nodes.push(NodeProcess {
            id,
            client_addr: format!("127.0.0.1:{}", free_port()),
            peer_addr: format!("127.0.0.1:{}", free_port()),
            data_dir: self.dir.path().join(format!("node-{id}")),
            child: None,
            join: Some(join),
        });
        self.start_node(id);
        id
    }

    /// Node `id` starts with `--join` through node `via` from its next
    /// start on.
    pub fn set_join(&mut self, id: u64, via: u64) {
        let join = self.node(via).client_addr.clone();
        self.node_mut(id).join = Some(join);
    }

    /// Deletes node `id`'s data dir (the node must be stopped).
    pub fn wipe(&mut self, id: u64) {
        assert!(
            !self.is_running(id),
            "wipe node {id} only while it is stopped"
        );
        let dir = self.node(id).data_dir.clone();
        if dir.exists() {
            std::fs::remove_dir_all(&dir).expect("remove the data dir");
        }
    }

    /// Node `id` gets `flag` as its `--cluster` from its next start on.
    pub fn set_cluster_flag(&mut self, id: u64, flag: String) {
        self.cluster_flags.insert(id, flag);
    }

    /// (id, peer address) of every node.
    pub fn peer_addrs(&self) -> Vec<(u64, std::net::SocketAddr)> {
        self.nodes
            .iter()
            .map(|n| (n.id, n.peer_addr.parse().expect("peer address")))
            .collect()
    }

    /// Spawns node `id` (stdout/stderr to files in the log dir).
    pub fn spawn(&self, id: u64) -> Child {
        let out = std::fs::File::create(self.log_dir.join(format!("node-{id}.out"))).unwrap();
        let err = out.try_clone().unwrap();
        let mut command = self.command(id);
        command.stdout(Stdio::from(out)).stderr(Stdio::from(err));
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        command.spawn().expect("spawn raftkv-node")
    }

    pub fn start_node(&mut self, id: u64) {
        let child = self.spawn(id);
        self.node_mut(id).child = Some(child);
    }

    pub fn start_all(&mut self) {
        for id in 1..=self.nodes.len() as u64 {
            self.start_node(id);
        }
    }

    /// kill -9 node `id` and reap it.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.node_mut(id).child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn is_running(&self, id: u64) -> bool {
        self.node(id).child.is_some()
    }

    pub fn client_addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.client_addr.clone()).collect()
    }

    pub fn live_ids(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.id)
            .collect()
    }

    pub fn client(&self) -> ClusterClient {
        ClusterClient::new(self.client_addrs(), Duration::from_secs(10))
    }

    pub fn log_path(&self, id: u64) -> PathBuf {
        self.log_dir.join(format!("node-{id}.log"))
    }

    /// Runs node `id` in the foreground and expects it to refuse to start
    /// because of `file` (`why`: what is wrong with it): it must exit
    /// unsuccessfully and name the file in its error. Returns that error
    /// output for further checks.
    pub fn refused_start_stderr(&self, id: u64, file: &Path, why: &str) -> String {
        let output = self
            .command(id)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("run raftkv-node");
        assert!(
            !output.status.success(),
            "{why}: node {id} must refuse to start"
        );
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        assert!(stderr.contains(&name), "the error names {name}: {stderr}");
        stderr
    }

    pub fn stderr_text(&self, id: u64) -> String {
        std::fs::read_to_string(self.log_dir.join(format!("node-{id}.out"))).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Polls `condition` until it returns Some or the deadline passes.
pub async fn wait_for<T, F, Fut>(what: &str, mut condition: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT_DEADLINE;
    loop {
        if let Some(value) = condition().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {WAIT_DEADLINE:?} waiting for {what}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Lines of a node's JSON log whose `fields.event` equals `event`.
pub fn log_events(path: &Path, event: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|v| v["fields"]["event"] == event)
        .collect()
}

pub type Status = BTreeMap<String, String>;

/// SET key:NNNN = value-N for every N in `range`, through the cluster
/// client (follows MOVED, retries elections); panics on a failed write.
pub async fn write_keys(cluster: &Cluster, range: std::ops::RangeInclusive<u32>) {
    let mut client = cluster.client();
    for i in range {
        client
            .set(format!("key:{i:04}"), format!("value-{i}"))
            .await
            .unwrap_or_else(|e| panic!("SET key:{i:04}: {e}"));
    }
}

/// RAFT.STATUS of every running node (a node that does not answer is absent).
pub async fn statuses(cluster: &Cluster) -> BTreeMap<u64, Status> {
    let mut out = BTreeMap::new();
    for id in cluster.live_ids() {
        if let Ok(status) = ClusterClient::status(&cluster.node(id).client_addr).await {
            out.insert(id, status);
        }
    }
    out
}

pub fn field(status: &Status, name: &str) -> u64 {
    status.get(name).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Waits until exactly one running node says it is leader and every running
/// node agrees on it; returns (leader id, term).
pub async fn wait_for_leader(cluster: &Cluster) -> (u64, u64) {
    wait_for("a single agreed leader", || async {
        let all = statuses(cluster).await;
        if all.len() != cluster.live_ids().len() {
            return None;
        }
        let leaders: Vec<_> = all.iter().filter(|(_, s)| s["role"] == "leader").collect();
        if leaders.len() != 1 {
            return None;
        }
        let (id, status) = leaders[0];
        let term = field(status, "term");
        let agreed = all
            .values()
            .all(|s| field(s, "leader_id") == *id && field(s, "term") == term);
        agreed.then_some((*id, term))
    })
    .await
}

/// Waits until every running node has the same applied index and digest;
/// returns (applied index, digest).
pub async fn wait_converged(cluster: &Cluster) -> (u64, String) {
    wait_for(
        "equal applied index and digest on every running node",
        || async {
            let mut seen = Vec::new();
            for id in cluster.live_ids() {
                let Ok(pair) = ClusterClient::digest(&cluster.node(id).client_addr).await else {
                    return None;
                };
                seen.push(pair);
            }
            let (digest, applied) = seen.first()?.clone();
            seen.iter()
                .all(|(d, a)| *d == digest && *a == applied)
                .then_some((applied, digest))
        },
    )
    .await
}
