//! The local cluster's shape: node ids, ports, data and log directories, and
//! the exact `raftkv node ...` command line each child runs.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

/// The dashboard selects nodes with the keys 1-9, so a local cluster has at most nine.
pub const NODES_MAX: u64 = 9;
/// The dashboard's `a` adds nodes up to this many members (or up to
/// `--nodes` when more were started): five voters is the largest cluster
/// the simulator and the benchmarks run.
pub const DASHBOARD_MEMBERS_MAX: u64 = 5;
/// Peer ports sit this far above client ports (DESIGN.md "Processes and addresses").
pub const PEER_PORT_OFFSET: u16 = 100;

const _: () = assert!(NODES_MAX < PEER_PORT_OFFSET as u64);
const _: () = assert!(DASHBOARD_MEMBERS_MAX <= NODES_MAX);

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
    /// The bootstrap voters: nodes 1..=nodes, named by every `--cluster`.
    pub nodes: u64,
    /// The ids that are members now, in id order: the bootstrap voters,
    /// plus the nodes added at runtime, less the ones removed.
    members: Vec<u64>,
    /// Nodes are added at runtime up to this many ids (1..=members_max);
    /// their ports are reserved from the start.
    pub members_max: u64,
    pub base_port: u16,
    pub data_dir: PathBuf,
    pub log_dir: PathBuf,
    /// Node id -> its `--peer-routes` value when its peer links pass through
    /// a fault proxy (`raftkv_node::fault_proxy`): a route to the (i,j)
    /// listener for every other id j up to `members_max`, so nodes added
    /// later are reached through the proxy too.
    pub peer_routes: BTreeMap<u64, String>,
    /// Node id -> the member client address it joins through (`--join`, no
    /// `--cluster`): nodes added at runtime and replacements.
    joins: BTreeMap<u64, String>,
    /// Every node's `--requirepass`.
    pub requirepass: Option<String>,
}

impl ClusterLayout {
    /// Starts a fault proxy with a listener for every ordered pair of ids up
    /// to `members_max` (nodes added later included) and routes every
    /// node's peer links through it (`peer_routes`); the proxy lives as long
    /// as the returned value.
    pub async fn route_through_fault_proxy(
        &mut self,
    ) -> Result<raftkv_node::fault_proxy::FaultProxy, String> {
        let peers: Vec<(u64, SocketAddr)> = (1..=self.members_max)
            .map(|id| (id, self.peer_addr(id)))
            .collect();
        let proxy = raftkv_node::fault_proxy::FaultProxy::start(&peers)
            .await
            .map_err(|e| format!("cannot start the fault proxy: {e}"))?;
        self.peer_routes = peers
            .iter()
            .map(|&(from, _)| {
                let routes: Vec<String> = peers
                    .iter()
                    .filter(|(to, _)| *to != from)
                    .filter_map(|&(to, _)| {
                        let listener = proxy.listen_addr((from, to))?;
                        Some(format!("{to}={listener}"))
                    })
                    .collect();
                (from, routes.join(","))
            })
            .collect();
        Ok(proxy)
    }

    /// Raises the number of ids nodes may be added with (the dashboard's
    /// `a`); never below the bootstrap voters nor above `NODES_MAX`. Call
    /// before `route_through_fault_proxy`, which reserves the links.
    pub fn allow_members_up_to(&mut self, members_max: u64) -> Result<(), String> {
        let members_max = members_max.clamp(self.nodes, NODES_MAX);
        let highest_port = u64::from(self.base_port) + u64::from(PEER_PORT_OFFSET) + members_max;
        if highest_port > u64::from(u16::MAX) {
            return Err(format!(
                "--base-port {}: node {members_max} would need port {highest_port}, above 65535; pick a lower base port",
                self.base_port
            ));
        }
        self.members_max = members_max;
        Ok(())
    }

    /// Node `id` becomes a member that starts with `--join via` (no
    /// `--cluster`), now and on every later start.
    pub fn add_joining_member(&mut self, id: u64, via: String) -> Result<(), String> {
        if !(1..=self.members_max).contains(&id) {
            return Err(format!(
                "node {id}: this cluster takes node ids 1 to {}",
                self.members_max
            ));
        }
        if let Err(at) = self.members.binary_search(&id) {
            self.members.insert(at, id);
        }
        self.joins.insert(id, via);
        Ok(())
    }

    /// Node `id` is no longer a member (its removal committed).
    pub fn remove_member(&mut self, id: u64) {
        self.members.retain(|m| *m != id);
    }

    /// True for ids nodes may run under (members now or later).
    pub fn is_possible_member(&self, id: u64) -> bool {
        (1..=self.members_max).contains(&id)
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
            members: (1..=args.nodes).collect(),
            members_max: args.nodes,
            base_port: args.base_port,
            data_dir: args.data_dir.clone(),
            log_dir: args.log_dir.clone(),
            peer_routes: BTreeMap::new(),
            joins: BTreeMap::new(),
            requirepass: args.requirepass.clone(),
        })
    }

    /// The members now, in id order.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.members.iter().copied()
    }

    fn port(&self, offset: u64) -> u16 {
        // In range: checked by `new`.
        (u64::from(self.base_port) + offset) as u16
    }

    pub fn client_addr(&self, id: u64) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port(id)))
    }

    pub fn peer_addr(&self, id: u64) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port(u64::from(PEER_PORT_OFFSET) + id)))
    }

    /// The bootstrap voters' real peer addresses:
    /// `1=127.0.0.1:7101,2=127.0.0.1:7102,...`
    pub fn cluster_arg(&self) -> String {
        (1..=self.nodes)
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
    /// A bootstrap voter gets `--cluster`, a node added at runtime `--join`;
    /// either gets `--peer-routes` when the links pass through the proxy.
    pub fn node_args(&self, id: u64) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "node".into(),
            "--id".into(),
            id.to_string().into(),
            "--client".into(),
            self.client_addr(id).to_string().into(),
            "--peer".into(),
            self.peer_addr(id).to_string().into(),
        ];
        match self.joins.get(&id) {
            Some(via) => args.extend(["--join".into(), via.into()]),
            None => args.extend(["--cluster".into(), self.cluster_arg().into()]),
        }
        if let Some(routes) = self.peer_routes.get(&id) {
            args.extend(["--peer-routes".into(), routes.into()]);
        }
        args.extend([
            "--data-dir".into(),
            self.node_data_dir(id).into_os_string(),
            "--log-dir".into(),
            self.log_dir.clone().into_os_string(),
        ]);
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
        self.ids().try_for_each(|id| self.check_node_ports_free(id))
    }

    /// Fails when another process holds node `id`'s client or peer port.
    pub fn check_node_ports_free(&self, id: u64) -> Result<(), String> {
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

    /// `--fresh`: deletes every node's data dir, those of ids a node may be
    /// added under included. Returns the ones that existed.
    pub fn wipe_all_data(&self) -> Result<Vec<PathBuf>, String> {
        let mut wiped = Vec::new();
        for id in 1..=self.members_max {
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

    /// A node added at runtime joins (no `--cluster`); with the fault proxy
    /// every node, bootstrap voters included, gets a route to every id up
    /// to the cap, and `--cluster` keeps the real addresses (they go into
    /// the configuration).
    #[tokio::test]
    async fn joined_nodes_and_peer_routes_follow_the_contract() {
        let mut layout = ClusterLayout::new(&args(3, 7000)).unwrap();
        layout.allow_members_up_to(5).unwrap();
        layout
            .add_joining_member(4, "127.0.0.1:7002".into())
            .unwrap();
        assert_eq!(layout.ids().collect::<Vec<_>>(), vec![1, 2, 3, 4]);
        let line = |layout: &ClusterLayout, id| -> String {
            let args: Vec<String> = layout
                .node_args(id)
                .into_iter()
                .map(|s| s.into_string().unwrap())
                .collect();
            args.join(" ")
        };
        assert_eq!(
            line(&layout, 4),
            "node --id 4 --client 127.0.0.1:7004 --peer 127.0.0.1:7104 \
             --join 127.0.0.1:7002 --data-dir d/node-4 --log-dir l"
        );
        layout.remove_member(2);
        assert_eq!(layout.ids().collect::<Vec<_>>(), vec![1, 3, 4]);
        assert!(layout.add_joining_member(6, "x".into()).is_err());

        let _proxy = layout.route_through_fault_proxy().await.unwrap();
        for id in 1..=5 {
            let routes = &layout.peer_routes[&id];
            let targets: Vec<u64> = routes
                .split(',')
                .map(|r| r.split_once('=').unwrap().0.parse().unwrap())
                .collect();
            let others: Vec<u64> = (1..=5).filter(|j| *j != id).collect();
            assert_eq!(targets, others, "node {id}: {routes}");
            assert!(
                !routes.contains(":71"),
                "routes name proxy listeners: {routes}"
            );
        }
        let one = line(&layout, 1);
        assert!(
            one.contains(
                "--cluster 1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103 --peer-routes 2="
            ),
            "{one}"
        );
        assert!(line(&layout, 4).contains("--join 127.0.0.1:7002 --peer-routes 1="));
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
