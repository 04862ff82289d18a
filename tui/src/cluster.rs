//! The local cluster's shape: node ids, ports, data and log directories, and
//! the exact `raftkv node ...` command line each child runs.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

/// The dashboard selects nodes with the keys 1-9, so a local cluster has at most nine.
pub const NODES_MAX: u64 = 9;
/// Peer ports sit this far above client ports (DESIGN.md "Processes and addresses").
pub const PEER_PORT_OFFSET: u16 = 100;

const _: () = assert!(NODES_MAX < PEER_PORT_OFFSET as u64);

/// Flags shared by `raftkv up`, `raftkv tui` and `raftkv demo`.
#[derive(Clone, Debug, clap::Args)]
pub struct ClusterArgs {
    /// Number of nodes to start (1-9).
    #[arg(long, default_value_t = 3)]
    pub nodes: u64,
    /// Node i listens for clients on base+i and for peers on base+100+i.
    #[arg(long, default_value_t = 7000)]
    pub base_port: u16,
    /// Node i keeps its data in <data-dir>/node-i.
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Node logs (node-<id>.log, node-<id>.out) and tui.log go here.
    #[arg(long, default_value = "logs")]
    pub log_dir: PathBuf,
    /// Delete the nodes' data dirs first and start an empty cluster.
    #[arg(long)]
    pub fresh: bool,
    /// Start every node with `--requirepass`; the dashboard's, the gate's
    /// and the benchmarks' own connections AUTH with it.
    #[arg(long)]
    pub requirepass: Option<String>,
}

/// Where every node of a local cluster lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterLayout {
    pub nodes: u64,
    pub base_port: u16,
    pub data_dir: PathBuf,
    pub log_dir: PathBuf,
    /// Node id -> its `--cluster` value when its peer links pass through a
    /// fault proxy (`raftkv_node::fault_proxy`); otherwise `cluster_arg()`.
    pub routed_cluster_args: BTreeMap<u64, String>,
    /// Every node's `--requirepass`.
    pub requirepass: Option<String>,
}

impl ClusterLayout {
    /// Starts a fault proxy for this cluster's peer links and routes every
    /// node's `--cluster` through it (`routed_cluster_args`); the proxy
    /// lives as long as the returned value.
    pub async fn route_through_fault_proxy(
        &mut self,
    ) -> Result<raftkv_node::fault_proxy::FaultProxy, String> {
        let peers = self.peer_addrs();
        let proxy = raftkv_node::fault_proxy::FaultProxy::start(&peers)
            .await
            .map_err(|e| format!("cannot start the fault proxy: {e}"))?;
        self.routed_cluster_args = peers
            .iter()
            .map(|&(id, _)| (id, proxy.cluster_arg(id, &peers)))
            .collect();
        Ok(proxy)
    }

    /// Checks the node count and that every port fits below 65536.
    pub fn new(args: &ClusterArgs) -> Result<ClusterLayout, String> {
        if args.nodes == 0 || args.nodes > NODES_MAX {
            return Err(format!(
                "--nodes {}: a local cluster has 1 to {NODES_MAX} nodes",
                args.nodes
            ));
        }
        let highest_port = u64::from(args.base_port) + u64::from(PEER_PORT_OFFSET) + args.nodes;
        if highest_port > u64::from(u16::MAX) {
            return Err(format!(
                "--base-port {}: node {} would need port {highest_port}, above 65535; pick a lower base port",
                args.base_port, args.nodes
            ));
        }
        if args.base_port == 0 {
            return Err("--base-port 0: pick a real port such as 7000".into());
        }
        Ok(ClusterLayout {
            nodes: args.nodes,
            base_port: args.base_port,
            data_dir: args.data_dir.clone(),
            log_dir: args.log_dir.clone(),
            routed_cluster_args: BTreeMap::new(),
            requirepass: args.requirepass.clone(),
        })
    }

    pub fn ids(&self) -> impl Iterator<Item = u64> {
        1..=self.nodes
    }

    fn port(&self, offset: u64) -> u16 {
        // In range: checked by `new`.
        (u64::from(self.base_port) + offset) as u16
    }

    /// (id, real peer address) of every node.
    pub fn peer_addrs(&self) -> Vec<(u64, SocketAddr)> {
        self.ids().map(|id| (id, self.peer_addr(id))).collect()
    }

    pub fn client_addr(&self, id: u64) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port(id)))
    }

    pub fn peer_addr(&self, id: u64) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port(u64::from(PEER_PORT_OFFSET) + id)))
    }

    /// `1=127.0.0.1:7101,2=127.0.0.1:7102,...`
    pub fn cluster_arg(&self) -> String {
        self.ids()
            .map(|id| format!("{id}={}", self.peer_addr(id)))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn node_data_dir(&self, id: u64) -> PathBuf {
        self.data_dir.join(format!("node-{id}"))
    }

    /// The node's captured stdout and stderr.
    pub fn node_output_path(&self, id: u64) -> PathBuf {
        node_output_path(&self.log_dir, id)
    }

    /// Arguments after the program name: `node --id i --client ... --log-dir L`.
    pub fn node_args(&self, id: u64) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "node".into(),
            "--id".into(),
            id.to_string().into(),
            "--client".into(),
            self.client_addr(id).to_string().into(),
            "--peer".into(),
            self.peer_addr(id).to_string().into(),
            "--cluster".into(),
            self.routed_cluster_args
                .get(&id)
                .cloned()
                .unwrap_or_else(|| self.cluster_arg())
                .into(),
            "--data-dir".into(),
            self.node_data_dir(id).into_os_string(),
            "--log-dir".into(),
            self.log_dir.clone().into_os_string(),
        ];
        if let Some(password) = &self.requirepass {
            args.extend(["--requirepass".into(), password.into()]);
        }
        args
    }

    /// Client addresses in id order.
    pub fn client_addrs(&self) -> Vec<String> {
        self.ids()
            .map(|id| self.client_addr(id).to_string())
            .collect()
    }

    /// Fails with the first port another process holds, so the user hears about
    /// it before any node starts (and not as a node crash).
    pub fn check_ports_free(&self) -> Result<(), String> {
        for id in self.ids() {
            for (what, addr) in [
                ("client", self.client_addr(id)),
                ("peer", self.peer_addr(id)),
            ] {
                if let Err(error) = TcpListener::bind(addr) {
                    return Err(format!(
                        "node {id}: {what} port {addr} is not free ({error}). Is another raftkv \
                         cluster running? Stop it, or pick another --base-port."
                    ));
                }
            }
        }
        Ok(())
    }

    /// Creates the log dir and the data dir (not the per-node dirs: nodes do that).
    pub fn create_dirs(&self) -> Result<(), String> {
        for dir in [&self.log_dir, &self.data_dir] {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
        }
        Ok(())
    }

    /// Deletes one node's data dir (only `<data-dir>/node-<id>`, nothing else).
    pub fn wipe_node_data(&self, id: u64) -> Result<(), String> {
        let dir = self.node_data_dir(id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("cannot delete {}: {e}", dir.display())),
        }
    }

    /// `--fresh`: deletes every node's data dir. Returns the ones that existed.
    pub fn wipe_all_data(&self) -> Result<Vec<PathBuf>, String> {
        let mut wiped = Vec::new();
        for id in self.ids() {
            let dir = self.node_data_dir(id);
            if dir.exists() {
                self.wipe_node_data(id)?;
                wiped.push(dir);
            }
        }
        Ok(wiped)
    }

    /// True when at least one node has a data dir to recover from.
    pub fn has_existing_data(&self) -> bool {
        self.ids().any(|id| self.node_data_dir(id).exists())
    }
}

pub fn node_log_path(log_dir: &Path, id: u64) -> PathBuf {
    log_dir.join(format!("node-{id}.log"))
}

pub fn node_output_path(log_dir: &Path, id: u64) -> PathBuf {
    log_dir.join(format!("node-{id}.out"))
}

/// Parses `host:port,host:port` (as given to `--attach` and `kv --cluster`).
pub fn parse_addr_list(text: &str) -> Result<Vec<String>, String> {
    let addrs: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if addrs.is_empty() {
        return Err(format!(
            "'{text}' lists no addresses; expected host:port,host:port"
        ));
    }
    for addr in &addrs {
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| format!("'{addr}' is not host:port"))?;
        if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("'{addr}' is not host:port with a port 1-65535"));
        }
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(nodes: u64, base_port: u16) -> ClusterArgs {
        ClusterArgs {
            nodes,
            base_port,
            data_dir: "d".into(),
            log_dir: "l".into(),
            fresh: false,
            requirepass: None,
        }
    }

    #[test]
    fn node_command_line_matches_the_design() {
        let layout = ClusterLayout::new(&args(3, 7000)).unwrap();
        let line: Vec<String> = layout
            .node_args(2)
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        assert_eq!(
            line.join(" "),
            "node --id 2 --client 127.0.0.1:7002 --peer 127.0.0.1:7102 \
             --cluster 1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103 \
             --data-dir d/node-2 --log-dir l"
        );
        let mut protected = args(3, 7000);
        protected.requirepass = Some("pw".into());
        let line = ClusterLayout::new(&protected).unwrap().node_args(1);
        assert_eq!(line[line.len() - 2..], ["--requirepass", "pw"]);
    }

    #[test]
    fn bad_layouts_are_refused_with_a_reason() {
        assert!(ClusterLayout::new(&args(0, 7000))
            .unwrap_err()
            .contains("1 to 9"));
        assert!(ClusterLayout::new(&args(10, 7000))
            .unwrap_err()
            .contains("1 to 9"));
        assert!(ClusterLayout::new(&args(3, 65_500))
            .unwrap_err()
            .contains("above 65535"));
        assert!(ClusterLayout::new(&args(3, 0)).is_err());
    }

    #[test]
    fn address_lists_parse_and_reject_garbage() {
        assert_eq!(
            parse_addr_list("127.0.0.1:7001, 127.0.0.1:7002").unwrap(),
            vec!["127.0.0.1:7001", "127.0.0.1:7002"]
        );
        assert!(parse_addr_list("").is_err());
        assert!(parse_addr_list("localhost").is_err());
        assert!(parse_addr_list("localhost:0").is_err());
        assert!(parse_addr_list("localhost:99999").is_err());
    }

    #[test]
    fn wipe_touches_only_the_node_dir() {
        let root = tempfile::tempdir().unwrap();
        let mut a = args(2, 7000);
        a.data_dir = root.path().to_path_buf();
        let layout = ClusterLayout::new(&a).unwrap();
        std::fs::create_dir_all(layout.node_data_dir(1)).unwrap();
        std::fs::create_dir_all(layout.node_data_dir(2)).unwrap();
        std::fs::write(root.path().join("keep.txt"), b"x").unwrap();
        layout.wipe_node_data(1).unwrap();
        assert!(!layout.node_data_dir(1).exists());
        assert!(layout.node_data_dir(2).exists());
        assert_eq!(layout.wipe_all_data().unwrap().len(), 1);
        assert!(root.path().join("keep.txt").exists());
        assert!(!layout.has_existing_data());
    }
}
