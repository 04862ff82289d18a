//! `raftkv kv`: a command-line client for a running cluster (get, set, del,
//! an etcdctl-like status table, digests, a full dump, wait-converged, and
//! `member list|add|promote|remove`).

use std::time::{Duration, Instant};

use raftkv_node::client::ClusterClient;

use crate::clock::format_duration_ms;
use crate::columns::format_columns;
use crate::dashboard::{parse_addr_list_arg, AddrList};
use crate::digest::state_digest;
use crate::membership::{self, MemberChange};
use crate::status::NodeStatus;

/// How often `wait-converged` re-reads every node.
const CONVERGE_POLL_INTERVAL_MS: u64 = 100;

#[derive(Clone, Debug, clap::Args)]
pub struct KvArgs {
    /// Client addresses of the cluster's nodes.
    #[arg(
        long,
        value_parser = parse_addr_list_arg,
        default_value = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003",
        value_name = "ADDR,..."
    )]
    pub cluster: AddrList,
    /// How long one request may retry (elections, redirects) before failing.
    #[arg(long, default_value_t = 5_000)]
    pub deadline_ms: u64,
    /// AUTH with this password (nodes started with `--requirepass`).
    #[arg(long)]
    pub requirepass: Option<String>,
    #[command(subcommand)]
    pub command: KvCommand,
}

#[derive(Clone, Debug, clap::Subcommand)]
pub enum KvCommand {
    /// Linearizable read through the leader; prints the value or (nil).
    Get { key: String },
    /// Write through the leader.
    Set { key: String, value: String },
    /// Delete through the leader; prints how many keys were removed.
    Del { key: String },
    /// A table of every node's RAFT.STATUS.
    Status,
    /// Every node's digest and the applied index it belongs to.
    Digest,
    /// Every key and value of one node's own state, one `key<TAB>value` a line
    /// (tab, newline, backslash and non-printable bytes escaped).
    Dump {
        /// The node to read (default: the first address of --cluster).
        #[arg(long)]
        node: Option<String>,
        /// Recompute the digest from the dump and compare it with the node's.
        #[arg(long)]
        check: bool,
    },
    /// Wait until every node answers with one leader and equal applied index and digest.
    WaitConverged {
        #[arg(long, default_value_t = 30_000)]
        timeout_ms: u64,
    },
    /// List or change the members (through the leader; MOVED is followed).
    Member {
        #[command(subcommand)]
        command: MemberCommand,
    },
}

#[derive(Clone, Debug, clap::Subcommand)]
pub enum MemberCommand {
    /// One row per member: id, incarnation, role, addresses, match index.
    List,
    /// Add a learner: it receives the log and never votes until promoted.
    /// (A node started with `raftkv node --join` adds itself.)
    Add {
        id: u64,
        /// Its `--peer` address (host:port).
        peer_addr: String,
        /// Its `--client` address (host:port).
        client_addr: String,
    },
    /// Make a caught-up learner a voter.
    Promote { id: u64 },
    /// Remove a member (the leader too; never the last voter).
    Remove { id: u64 },
}

pub fn run(args: KvArgs) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(execute(args))
}

async fn execute(args: KvArgs) -> Result<(), String> {
    let AddrList(addrs) = args.cluster;
    let mut client = ClusterClient::new(addrs.clone(), Duration::from_millis(args.deadline_ms));
    match args.command {
        KvCommand::Get { key } => match client.get(&key).await.map_err(|e| e.to_string())? {
            Some(value) => println!("{}", String::from_utf8_lossy(&value)),
            None => println!("(nil)"),
        },
        KvCommand::Set { key, value } => {
            client.set(&key, &value).await.map_err(|e| e.to_string())?;
            println!("OK");
        }
        KvCommand::Del { key } => {
            let removed = client.del(&key).await.map_err(|e| e.to_string())?;
            println!("(integer) {removed}");
        }
        KvCommand::Status => return print_status(&addrs).await,
        KvCommand::Digest => return print_digests(&addrs).await,
        KvCommand::Dump { node, check } => {
            let addr = node.unwrap_or_else(|| addrs[0].clone());
            return dump(&addr, check).await;
        }
        KvCommand::WaitConverged { timeout_ms } => return wait_converged(&addrs, timeout_ms).await,
        KvCommand::Member { command } => {
            return member(&addrs, command, Duration::from_millis(args.deadline_ms)).await
        }
    }
    Ok(())
}

/// `raftkv kv member ...`: prints the table or what the change did; a
/// refusal (`-ERR`), or a `-TRYAGAIN` still answered at the deadline, is
/// the error, with the node's reason.
async fn member(
    addrs: &[String],
    command: MemberCommand,
    deadline: Duration,
) -> Result<(), String> {
    let change = match command {
        MemberCommand::List => {
            let list = membership::list_members(addrs).await?;
            print!("{}", membership::member_table(&list));
            return Ok(());
        }
        MemberCommand::Add {
            id,
            peer_addr,
            client_addr,
        } => {
            for (what, addr) in [("peer", &peer_addr), ("client", &client_addr)] {
                crate::cluster::parse_addr_list(addr)
                    .ok()
                    .filter(|list| list.len() == 1)
                    .ok_or_else(|| format!("{what} address '{addr}' is not one host:port"))?;
            }
            MemberChange::AddLearner {
                id,
                peer_addr,
                client_addr,
            }
        }
        MemberCommand::Promote { id } => MemberChange::Promote { id },
        MemberCommand::Remove { id } => MemberChange::Remove { id },
    };
    let leader = membership::send_change(addrs, &change, true, deadline)
        .await
        .map_err(|error| error.to_string())?;
    println!("{}", change_done(&change, &leader));
    Ok(())
}

/// What `member add|promote|remove` prints after the leader's `+OK`.
pub fn change_done(change: &MemberChange, leader: &str) -> String {
    match change {
        MemberChange::AddLearner {
            id,
            peer_addr,
            client_addr,
        } => format!(
            "Member {id} added as a learner (peer {peer_addr}, client {client_addr}) by the \
             leader at {leader}; once it has caught up: raftkv kv member promote {id}"
        ),
        MemberChange::Promote { id } => {
            format!("Member {id} promoted to voter by the leader at {leader}")
        }
        MemberChange::Remove { id } => {
            format!("Member {id} removed by the leader at {leader}; its process can be stopped now")
        }
    }
}

async fn statuses(addrs: &[String]) -> Vec<Result<NodeStatus, String>> {
    futures::future::join_all(addrs.iter().map(|addr| async move {
        let fields = ClusterClient::status(addr)
            .await
            .map_err(|e| e.to_string())?;
        NodeStatus::from_fields(&fields)
    }))
    .await
}

/// Formats the status table (a pure function, for tests).
pub fn status_table(addrs: &[String], statuses: &[Result<NodeStatus, String>]) -> String {
    let mut rows = vec![[
        "ID", "ADDRESS", "ROLE", "TERM", "LEADER", "COMMIT", "APPLIED", "KEYS", "DIGEST",
        "CONTACT", "UPTIME",
    ]
    .map(str::to_string)
    .to_vec()];
    let mut errors = Vec::new();
    for (addr, status) in addrs.iter().zip(statuses) {
        match status {
            Ok(s) => rows.push(vec![
                s.id.to_string(),
                addr.clone(),
                // A learner follows; its own configuration says it votes not.
                if s.learners.contains(&s.id) {
                    "learner".to_string()
                } else {
                    s.role.name().to_string()
                },
                s.term.to_string(),
                s.leader_id.to_string(),
                s.commit_index.to_string(),
                s.applied_index.to_string(),
                s.keys.to_string(),
                s.digest.chars().take(16).collect(),
                if s.is_leader() {
                    "-".into()
                } else {
                    format!("{}ms", s.leader_contact_ms)
                },
                format_duration_ms(s.uptime_ms),
            ]),
            Err(error) => {
                let mut row = vec!["?".to_string(), addr.clone(), "unreachable".into()];
                row.resize(11, "-".into());
                rows.push(row);
                errors.push(format!("{addr}: {error}"));
            }
        }
    }
    let mut out = format_columns(&rows);
    for error in errors {
        out.push_str(&error);
        out.push('\n');
    }
    out
}

async fn print_status(addrs: &[String]) -> Result<(), String> {
    let statuses = statuses(addrs).await;
    print!("{}", status_table(addrs, &statuses));
    let unreachable = statuses.iter().filter(|s| s.is_err()).count();
    if unreachable == addrs.len() {
        return Err("no node answered".into());
    }
    Ok(())
}

async fn print_digests(addrs: &[String]) -> Result<(), String> {
    let digests =
        futures::future::join_all(addrs.iter().map(|addr| ClusterClient::digest(addr))).await;
    let mut failed = 0;
    for (addr, digest) in addrs.iter().zip(digests) {
        match digest {
            Ok((digest, applied)) => println!("{addr}  applied {applied}  digest {digest}"),
            Err(error) => {
                failed += 1;
                println!("{addr}  unreachable: {error}");
            }
        }
    }
    if failed > 0 {
        return Err(format!("{failed} of {} nodes did not answer", addrs.len()));
    }
    Ok(())
}

/// Bytes as text: printable ASCII as is, `\t \n \r \\` and others escaped.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &byte in bytes {
        match byte {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            0x20..=0x7e => out.push(byte as char),
            other => out.push_str(&format!("\\x{other:02x}")),
        }
    }
    out
}

async fn dump(addr: &str, check: bool) -> Result<(), String> {
    let before = if check {
        Some(
            ClusterClient::digest(addr)
                .await
                .map_err(|e| e.to_string())?,
        )
    } else {
        None
    };
    let pairs = ClusterClient::dump(addr).await.map_err(|e| e.to_string())?;
    for (key, value) in &pairs {
        println!("{}\t{}", escape_bytes(key), escape_bytes(value));
    }
    let Some((node_digest, applied_before)) = before else {
        return Ok(());
    };
    let (_, applied_after) = ClusterClient::digest(addr)
        .await
        .map_err(|e| e.to_string())?;
    if applied_after != applied_before {
        return Err(format!(
            "{addr} applied entries {applied_before}..{applied_after} during the dump; run again on an idle cluster"
        ));
    }
    let computed = state_digest(pairs.iter().map(|(k, v)| (&k[..], &v[..])));
    if computed == node_digest {
        eprintln!(
            "digest check: {} keys hash to {computed}, equal to {addr}'s digest at applied index {applied_before}",
            pairs.len()
        );
        Ok(())
    } else {
        Err(format!(
            "digest check FAILED: {} keys hash to {computed} but {addr} reports {node_digest} at applied index {applied_before}",
            pairs.len()
        ))
    }
}

/// `Ok(summary)` when every node agrees, else `Err(why not yet)`.
pub fn converged(statuses: &[Result<NodeStatus, String>]) -> Result<String, String> {
    let mut live = Vec::new();
    for status in statuses {
        live.push(
            status
                .as_ref()
                .map_err(|e| format!("a node does not answer: {e}"))?,
        );
    }
    let leaders: Vec<&&NodeStatus> = live.iter().filter(|s| s.is_leader()).collect();
    let top_term = live.iter().map(|s| s.term).max().unwrap_or(0);
    if !leaders.iter().any(|l| l.term == top_term) {
        return Err("no leader in the newest term".into());
    }
    let first = live.first().ok_or("no nodes")?;
    if let Some(other) = live
        .iter()
        .find(|s| (s.applied_index, &s.digest) != (first.applied_index, &first.digest))
    {
        return Err(format!(
            "node {} at applied index {} ({}) vs node {} at {} ({})",
            first.id,
            first.applied_index,
            &first.digest.chars().take(8).collect::<String>(),
            other.id,
            other.applied_index,
            &other.digest.chars().take(8).collect::<String>()
        ));
    }
    Ok(format!(
        "converged: {} nodes at applied index {}, digest {}",
        live.len(),
        first.applied_index,
        first.digest
    ))
}

async fn wait_converged(addrs: &[String], timeout_ms: u64) -> Result<(), String> {
    let started = Instant::now();
    loop {
        match converged(&statuses(addrs).await) {
            Ok(summary) => {
                println!(
                    "{summary} (after {})",
                    format_duration_ms(started.elapsed().as_millis() as u64)
                );
                return Ok(());
            }
            Err(why) if started.elapsed() >= Duration::from_millis(timeout_ms) => {
                return Err(format!(
                    "not converged after {}: {why}",
                    format_duration_ms(timeout_ms)
                ));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(CONVERGE_POLL_INTERVAL_MS)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Role;

    fn status(id: u64, role: Role, term: u64, applied: u64, digest: &str) -> NodeStatus {
        NodeStatus {
            term,
            leader_id: 2,
            commit_index: applied,
            applied_index: applied,
            last_index: applied,
            keys: 10,
            digest: digest.into(),
            leader_contact_ms: 12,
            pid: 100 + id as u32,
            uptime_ms: 61_000,
            ..crate::status::example_status(id, role)
        }
    }

    #[test]
    fn convergence_needs_a_current_leader_and_equal_state() {
        // Node 2 leads term 4 at applied index 107 in every case.
        let leader = || Ok(status(2, Role::Leader, 4, 107, "abc"));
        let ok = [Ok(status(1, Role::Follower, 4, 107, "abc")), leader()];
        assert!(converged(&ok)
            .unwrap()
            .contains("2 nodes at applied index 107"));
        let refusals = [
            (
                [Ok(status(1, Role::Follower, 4, 100, "old")), leader()],
                "applied index 100",
            ),
            (
                [Ok(status(1, Role::Candidate, 5, 107, "abc")), leader()],
                "no leader",
            ),
            ([leader(), Err("refused".into())], "refused"),
        ];
        for (statuses, expected) in refusals {
            let error = converged(&statuses).unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
    }

    #[test]
    fn status_table_lines_up_and_names_unreachable_nodes() {
        let addrs = vec![
            "127.0.0.1:7001".to_string(),
            "127.0.0.1:7002".to_string(),
            "127.0.0.1:7004".to_string(),
        ];
        let table = status_table(
            &addrs,
            &[
                Ok(status(1, Role::Leader, 4, 107, "9c416561b5d29b481f4a")),
                Err("connection refused".into()),
                Ok(NodeStatus {
                    learners: vec![4],
                    ..status(4, Role::Follower, 4, 60, "f9de357db9c61f71fae9")
                }),
            ],
        );
        insta::assert_snapshot!(table, @r"
        ID  ADDRESS         ROLE         TERM  LEADER  COMMIT  APPLIED  KEYS  DIGEST            CONTACT  UPTIME
        1   127.0.0.1:7001  leader       4     2       107     107      10    9c416561b5d29b48  -        1m01s
        ?   127.0.0.1:7002  unreachable  -     -       -       -        -     -                 -        -
        4   127.0.0.1:7004  learner      4     2       60      60       10    f9de357db9c61f71  12ms     1m01s
        127.0.0.1:7002: connection refused
        ");
    }

    #[test]
    fn dump_escapes_make_one_line_per_pair() {
        assert_eq!(escape_bytes(b"plain value-1"), "plain value-1");
        assert_eq!(
            escape_bytes(b"a\tb\nc\\d\x00\xff"),
            "a\\tb\\nc\\\\d\\x00\\xff"
        );
    }
}
