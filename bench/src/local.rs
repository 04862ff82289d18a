//! The cluster a bench run starts for itself: spawned through the
//! supervisor, waited on until it serves writes, inspected through
//! RAFT.STATUS, and stopped (data dir removed when it was temporary).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use raftkv_node::client::ClusterClient;

use super::BenchArgs;
use crate::clock;
use crate::cluster::{ClusterArgs, ClusterLayout};
use crate::status::{NodeStatus, StatusFetcher};
use crate::supervisor::{
    NodeProgram, ProcessEvent, ProcessReport, Supervisor, STOP_GRACE_MS_DEFAULT,
};

/// Process reports waiting to be read; the bench drains them at every poll.
const PROCESS_REPORTS_MAX: usize = 64;
/// A fresh cluster must elect a leader and acknowledge a write within this.
pub(crate) const READY_TIMEOUT_MS: u64 = 30_000;
/// One readiness write may take this long before it is tried again.
const READY_WRITE_DEADLINE_MS: u64 = 1_000;
/// Nodes must reach equal applied index and digest within this.
pub(crate) const CONVERGE_TIMEOUT_MS: u64 = 60_000;
/// RAFT.STATUS is polled this often while waiting for convergence.
const CONVERGE_POLL_MS: u64 = 10;
/// One RAFT.STATUS request may take this long.
pub(crate) const STATUS_DEADLINE_MS: u64 = 500;
/// A killed node's exit must be seen within this.
pub(crate) const EXIT_TIMEOUT_MS: u64 = 10_000;
/// Nodes get this long to stop gracefully at the end before they are killed.
const SHUTDOWN_TIMEOUT_MS: u64 = 10_000;

/// The nodes agree: one leader, equal applied index and digest on every node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Converged {
    pub(crate) leader: u64,
    pub(crate) term: u64,
    pub(crate) applied_index: u64,
    pub(crate) digest: String,
}

pub(crate) struct LocalCluster {
    layout: ClusterLayout,
    supervisor: Supervisor,
    reports: mpsc::Receiver<ProcessReport>,
    /// Nodes the bench killed on purpose: their exit is no error.
    expected_exits: BTreeSet<u64>,
    /// The data dir the bench created for this run, deleted at the end.
    temp_data_dir: Option<PathBuf>,
    fetchers: BTreeMap<u64, StatusFetcher>,
}

impl LocalCluster {
    /// Checks the layout, the data dir and the ports; starts nothing yet.
    pub(crate) fn prepare(args: &BenchArgs) -> Result<LocalCluster, String> {
        let (data_dir, temp_data_dir) = match &args.data_dir {
            Some(dir) => (dir.clone(), None),
            None => {
                let dir = std::env::temp_dir().join(format!(
                    "raftkv-bench-{}-{}",
                    std::process::id(),
                    clock::now_ms()
                ));
                (dir.clone(), Some(dir))
            }
        };
        let layout = ClusterLayout::new(&ClusterArgs {
            nodes: args.nodes,
            base_port: args.base_port,
            data_dir: data_dir.clone(),
            log_dir: args.log_dir.clone(),
            fresh: args.fresh,
            requirepass: None,
        })?;
        if layout.has_existing_data() {
            if !args.fresh {
                return Err(format!(
                    "--data-dir {} holds node data from an earlier run, and the bench measures a \
                     fresh cluster: pass --fresh to delete it, or pick another --data-dir",
                    data_dir.display()
                ));
            }
            layout.wipe_all_data()?;
        }
        layout.check_ports_free()?;
        layout.create_dirs()?;
        let program = NodeProgram::current_exe()?;
        let (reports_tx, reports) = mpsc::channel(PROCESS_REPORTS_MAX);
        Ok(LocalCluster {
            supervisor: Supervisor::new(layout.clone(), program, reports_tx, STOP_GRACE_MS_DEFAULT),
            layout,
            reports,
            expected_exits: BTreeSet::new(),
            temp_data_dir,
            fetchers: BTreeMap::new(),
        })
    }

    /// `3 nodes started by the bench (127.0.0.1:7001,...; logs in logs)`.
    pub(crate) fn description(&self) -> String {
        let layout = &self.layout;
        format!(
            "{} nodes started by the bench ({}; logs in {})",
            layout.nodes,
            layout.client_addrs().join(","),
            layout.log_dir.display()
        )
    }

    pub(crate) fn ids(&self) -> Vec<u64> {
        self.layout.ids().collect()
    }

    pub(crate) fn client_addrs(&self) -> Vec<String> {
        self.layout.client_addrs()
    }

    pub(crate) fn client_addr(&self, id: u64) -> String {
        self.layout.client_addr(id).to_string()
    }

    pub(crate) fn node_log_path(&self, id: u64) -> PathBuf {
        crate::cluster::node_log_path(&self.layout.log_dir, id)
    }

    /// Starts every node, then waits until a leader acknowledges a write and
    /// all nodes have converged. Must run on the main thread (see supervisor).
    pub(crate) async fn start_and_wait_ready(&mut self) -> Result<Converged, String> {
        for id in self.ids() {
            self.supervisor.start(id, false)?;
        }
        let deadline = Instant::now() + Duration::from_millis(READY_TIMEOUT_MS);
        let mut client = ClusterClient::new(
            self.client_addrs(),
            Duration::from_millis(READY_WRITE_DEADLINE_MS),
        );
        loop {
            self.check_exits()?;
            let error = match client.set("bench:ready", "1").await {
                Ok(()) => break,
                Err(error) => error,
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "the started cluster accepted no write within {} s; last error: {error}. \
                     See the node logs in {}",
                    READY_TIMEOUT_MS / 1000,
                    self.layout.log_dir.display()
                ));
            }
        }
        self.wait_converged().await
    }

    /// Fails when a node exited that the bench did not kill.
    pub(crate) fn check_exits(&mut self) -> Result<(), String> {
        while let Ok(report) = self.reports.try_recv() {
            let id = report.id;
            match report.event {
                ProcessEvent::Exited { .. } if self.expected_exits.remove(&id) => {}
                ProcessEvent::Exited { exit } => {
                    return Err(format!(
                        "node {id} {exit} during the bench; its output is in {}",
                        crate::cluster::node_output_path(&self.layout.log_dir, id).display()
                    ))
                }
                ProcessEvent::SpawnFailed { error } => return Err(format!("node {id}: {error}")),
                ProcessEvent::Started { .. } => {}
            }
        }
        Ok(())
    }

    /// RAFT.STATUS of one node over a connection kept between calls.
    pub(crate) async fn status(&mut self, id: u64) -> Result<NodeStatus, String> {
        let addr = self.client_addr(id);
        let fetcher = self
            .fetchers
            .entry(id)
            .or_insert_with(|| StatusFetcher::new(addr));
        fetcher
            .fetch(Duration::from_millis(STATUS_DEADLINE_MS))
            .await
            .map_err(|e| format!("node {id}: {e}"))
    }

    /// Waits until every running node reports the same leader, applied
    /// index (equal to the leader's commit index) and digest.
    pub(crate) async fn wait_converged(&mut self) -> Result<Converged, String> {
        let nodes = self.ids().len();
        let poll_interval = Duration::from_millis(CONVERGE_POLL_MS);
        let (converged, _) = wait_for_convergence(nodes, poll_interval, "", async || {
            self.check_exits()?;
            let mut statuses = BTreeMap::new();
            for id in self.supervisor.running_ids() {
                statuses.insert(id, self.status(id).await);
            }
            Ok(statuses)
        })
        .await?;
        Ok(converged)
    }

    /// kill -9 of node `id`; its exit is expected from now on.
    pub(crate) fn kill(&mut self, id: u64) -> Result<(), String> {
        self.expected_exits.insert(id);
        self.fetchers.remove(&id);
        self.supervisor.kill(id).map(|_pid| ())
    }

    /// Waits until the process of node `id` has exited.
    pub(crate) async fn wait_exited(&mut self, id: u64) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_millis(EXIT_TIMEOUT_MS);
        while self.supervisor.pid(id).is_some() {
            if Instant::now() >= deadline {
                return Err(format!(
                    "node {id} was killed but did not exit within {} s",
                    EXIT_TIMEOUT_MS / 1000
                ));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(())
    }

    /// Deletes the data dir of node `id` (which must not be running).
    pub(crate) fn wipe(&self, id: u64) -> Result<(), String> {
        if let Some(pid) = self.supervisor.pid(id) {
            return Err(format!("node {id} is still running (pid {pid})"));
        }
        self.layout.wipe_node_data(id)
    }

    /// The data dir of node `id`.
    pub(crate) fn node_data_dir(&self, id: u64) -> PathBuf {
        self.layout.node_data_dir(id)
    }

    /// Starts node `id` again on its data; returns the moment just before the spawn.
    pub(crate) fn restart(&mut self, id: u64) -> Result<Instant, String> {
        self.fetchers.remove(&id);
        let spawned_at = Instant::now();
        self.supervisor.start(id, false)?;
        Ok(spawned_at)
    }

    /// Stops every node gracefully (killing what does not stop in time) and
    /// deletes the temporary data dir.
    pub(crate) async fn shutdown(self) -> Result<(), String> {
        self.supervisor.stop_all();
        let clean = self
            .supervisor
            .wait_all_exited(Duration::from_millis(SHUTDOWN_TIMEOUT_MS))
            .await;
        if !clean {
            eprintln!(
                "raftkv bench: some nodes did not stop within {} s and were killed",
                SHUTDOWN_TIMEOUT_MS / 1000
            );
        }
        if let Some(dir) = &self.temp_data_dir {
            std::fs::remove_dir_all(dir).map_err(|e| {
                format!("cannot delete the bench's data dir {}: {e}", dir.display())
            })?;
        }
        Ok(())
    }
}

/// Every node's RAFT.STATUS answer, or why it gave none, by node.
pub(crate) type Statuses = BTreeMap<u64, Result<NodeStatus, String>>;

/// Polls `nodes` nodes every `poll_interval` until the statuses
/// `read_statuses` returns converge (see `convergence`); returns the state
/// they agree on and those statuses. Fewer statuses than `nodes` means some
/// nodes are not running. An error from `read_statuses` ends the wait at
/// once; after `CONVERGE_TIMEOUT_MS` it fails with the last reason the
/// nodes differed, `after` (e.g. " of the fill") saying what they were
/// given that time after.
pub(crate) async fn wait_for_convergence(
    nodes: usize,
    poll_interval: Duration,
    after: &str,
    mut read_statuses: impl AsyncFnMut() -> Result<Statuses, String>,
) -> Result<(Converged, Statuses), String> {
    let deadline = Instant::now() + Duration::from_millis(CONVERGE_TIMEOUT_MS);
    loop {
        let statuses = read_statuses().await?;
        let missing = nodes.saturating_sub(statuses.len());
        let reason = if missing > 0 {
            format!("{missing} node(s) not running")
        } else {
            match convergence(&statuses) {
                Ok(converged) => return Ok((converged, statuses)),
                Err(reason) => reason,
            }
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "the nodes did not converge within {} s{after}: {reason}",
                CONVERGE_TIMEOUT_MS / 1000
            ));
        }
        tokio::time::sleep(poll_interval).await;
    }
}

/// The converged state of these statuses, or what is still different.
pub(crate) fn convergence(statuses: &Statuses) -> Result<Converged, String> {
    let mut answered = Vec::new();
    for result in statuses.values() {
        match result {
            Ok(status) => answered.push(status),
            Err(error) => return Err(error.clone()),
        }
    }
    let leaders: Vec<&&NodeStatus> = answered.iter().filter(|s| s.is_leader()).collect();
    let [leader] = leaders.as_slice() else {
        return Err(format!("{} nodes say they lead", leaders.len()));
    };
    for status in &answered {
        if status.leader_id != leader.id {
            return Err(format!(
                "node {} follows leader {}, not {}",
                status.id, status.leader_id, leader.id
            ));
        }
        if status.applied_index != leader.commit_index {
            return Err(format!(
                "node {} applied {} of the leader's commit index {}",
                status.id, status.applied_index, leader.commit_index
            ));
        }
        if status.digest != leader.digest {
            return Err(format!(
                "node {} digest differs from the leader's",
                status.id
            ));
        }
    }
    Ok(Converged {
        leader: leader.id,
        term: leader.term,
        applied_index: leader.applied_index,
        digest: leader.digest.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Role;

    fn status(
        id: u64,
        role: Role,
        leader_id: u64,
        commit: u64,
        applied: u64,
        digest: &str,
    ) -> NodeStatus {
        NodeStatus {
            term: 3,
            leader_id,
            commit_index: commit,
            applied_index: applied,
            last_index: commit,
            keys: 1,
            digest: digest.into(),
            pid: 1,
            uptime_ms: 1,
            ..crate::status::example_status(id, role)
        }
    }

    #[test]
    fn convergence_needs_one_leader_and_equal_applied_index_and_digest() {
        let mut statuses = BTreeMap::new();
        statuses.insert(1, Ok(status(1, Role::Leader, 1, 10, 10, "aa")));
        statuses.insert(2, Ok(status(2, Role::Follower, 1, 10, 10, "aa")));
        statuses.insert(3, Ok(status(3, Role::Follower, 1, 9, 9, "ab")));
        assert!(convergence(&statuses)
            .unwrap_err()
            .contains("node 3 applied 9"));
        statuses.insert(3, Ok(status(3, Role::Follower, 1, 10, 10, "ab")));
        assert!(convergence(&statuses).unwrap_err().contains("digest"));
        statuses.insert(3, Ok(status(3, Role::Follower, 1, 10, 10, "aa")));
        assert_eq!(
            convergence(&statuses).unwrap(),
            Converged {
                leader: 1,
                term: 3,
                applied_index: 10,
                digest: "aa".into()
            }
        );
        statuses.insert(2, Ok(status(2, Role::Candidate, 0, 10, 10, "aa")));
        assert!(convergence(&statuses)
            .unwrap_err()
            .contains("follows leader 0"));
        statuses.insert(2, Ok(status(2, Role::Leader, 2, 10, 10, "aa")));
        assert!(convergence(&statuses)
            .unwrap_err()
            .contains("2 nodes say they lead"));
        statuses.insert(2, Err("node 2: no answer".into()));
        assert_eq!(convergence(&statuses).unwrap_err(), "node 2: no answer");
    }
}
