//! CLUSTER SLOTS | SHARDS | NODES | MYID | INFO | KEYSLOT | HELP: Redis
//! Cluster discovery for cluster clients (redis-py `RedisCluster`, ioredis,
//! `redis-cli --cluster`, `redis-benchmark --cluster`).
//!
//! raftkv is one shard that owns slots 0-16383: the Raft leader is its
//! master and the other members are its replicas. While this node knows no
//! reachable leader (an election, or its link to the leader just broke) the
//! topology commands answer `-CLUSTERDOWN`, so a client never learns a dead
//! leader as the master. Node ids are 40 hex digits derived from the Raft
//! member id, so they are the same on every node and across restarts.

use std::fmt::Write;

use bytes::Bytes;

use super::{Args, CommandError, Context, Execution, Spec};
use crate::driver::handle::NodeStatus;
use crate::resp::backend::{not_leader_frame, Backend};
use crate::resp::slot::{key_slot, SLOTS};
use crate::resp::Frame;

pub(crate) const SPEC: Spec = Spec::keyless("cluster", -2, &["stale", "loading"]);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Cluster {
    Slots,
    Shards,
    Nodes,
    MyId,
    Info,
    KeySlot(Bytes),
    Help,
}

/// The 40-hex node id cluster clients see for Raft member `id`.
pub(crate) fn cluster_node_id(id: u64) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(b"raftkv-cluster-node-id");
    hasher.update(id.to_be_bytes());
    raftkv::kv::hex(&hasher.finalize()[..20])
}

impl Cluster {
    pub(crate) fn from_args(args: &mut Args) -> Result<Cluster, CommandError> {
        let subcommand = args.next_bytes()?;
        let upper = subcommand.to_ascii_uppercase();
        let (cluster, arity) = match upper.as_slice() {
            b"SLOTS" => (Cluster::Slots, 2),
            b"SHARDS" => (Cluster::Shards, 2),
            b"NODES" => (Cluster::Nodes, 2),
            b"MYID" => (Cluster::MyId, 2),
            b"INFO" => (Cluster::Info, 2),
            b"HELP" => (Cluster::Help, 2),
            b"KEYSLOT" => (Cluster::KeySlot(Bytes::new()), 3),
            _ => {
                return Err(CommandError::UnknownSubcommand {
                    command: "CLUSTER".into(),
                    subcommand: String::from_utf8_lossy(&subcommand).into_owned(),
                })
            }
        };
        if args.remaining() as i64 + 2 != arity {
            return Err(CommandError::WrongArity(format!(
                "cluster|{}",
                String::from_utf8_lossy(&upper).to_ascii_lowercase()
            )));
        }
        Ok(match cluster {
            Cluster::KeySlot(_) => Cluster::KeySlot(args.next_bytes()?),
            other => other,
        })
    }

    pub(crate) fn execute<B: Backend>(self, context: &mut Context<'_, B>) -> Execution {
        let status = context.server.backend.status();
        let view = View::of(&status);
        Execution::Now(match self {
            Cluster::KeySlot(key) => Frame::Integer(i64::from(key_slot(&key))),
            Cluster::MyId => Frame::bulk(cluster_node_id(status.id)),
            Cluster::Info => Frame::Verbatim {
                format: "txt".into(),
                text: Bytes::from(view.info_text(&status)),
            },
            Cluster::Help => Frame::Array(
                HELP.iter()
                    .map(|line| Frame::Simple(line.to_string()))
                    .collect(),
            ),
            Cluster::Slots | Cluster::Shards | Cluster::Nodes if view.master.is_none() => {
                not_leader_frame(None, 0)
            }
            Cluster::Slots => view.slots(),
            Cluster::Shards => view.shards(),
            Cluster::Nodes => Frame::bulk(view.nodes_text(&status)),
        })
    }
}

const HELP: &[&str] = &[
    "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "SLOTS: one shard (slots 0-16383): the Raft leader as master, the other members as replicas.",
    "SHARDS: the same shard in CLUSTER SHARDS form.",
    "NODES: the same members in CLUSTER NODES form.",
    "MYID: this node's id.",
    "INFO: cluster state.",
    "KEYSLOT <key>: the hash slot of <key>.",
    "HELP: this text.",
];

/// A member as cluster clients see it.
struct Member {
    raft_id: u64,
    host: String,
    port: u16,
}

impl Member {
    fn parse(raft_id: u64, addr: &str) -> Option<Member> {
        let (host, port) = addr.rsplit_once(':')?;
        Some(Member {
            raft_id,
            host: host.to_string(),
            port: port.parse().ok()?,
        })
    }

    fn node_id(&self) -> String {
        cluster_node_id(self.raft_id)
    }

    fn endpoint(&self) -> Frame {
        Frame::Array(vec![
            Frame::bulk(self.host.clone()),
            Frame::Integer(i64::from(self.port)),
            Frame::bulk(self.node_id()),
        ])
    }
}

/// The shard as this node sees it: the reachable leader, if any, and the
/// other members whose client address is known.
struct View {
    master: Option<Member>,
    replicas: Vec<Member>,
}

impl View {
    fn of(status: &NodeStatus) -> View {
        let leader_known = status.leader_id != 0 && !status.leader_client_addr.is_empty();
        let master = if leader_known {
            Member::parse(status.leader_id, &status.leader_client_addr)
        } else {
            None
        };
        let replicas = status
            .member_client_addrs
            .iter()
            .filter(|(id, _)| master.as_ref().is_none_or(|m| m.raft_id != *id))
            .filter_map(|(id, addr)| Member::parse(*id, addr))
            .collect();
        View { master, replicas }
    }

    fn slots(&self) -> Frame {
        let mut entry = vec![Frame::Integer(0), Frame::Integer(i64::from(SLOTS - 1))];
        entry.extend(self.master.iter().map(Member::endpoint));
        entry.extend(self.replicas.iter().map(Member::endpoint));
        Frame::Array(vec![Frame::Array(entry)])
    }

    fn shards(&self) -> Frame {
        let node = |member: &Member, role: &str| {
            Frame::Map(vec![
                (Frame::bulk("id"), Frame::bulk(member.node_id())),
                (Frame::bulk("port"), Frame::Integer(i64::from(member.port))),
                (Frame::bulk("ip"), Frame::bulk(member.host.clone())),
                (Frame::bulk("endpoint"), Frame::bulk(member.host.clone())),
                (Frame::bulk("role"), Frame::bulk(role.to_string())),
                (Frame::bulk("replication-offset"), Frame::Integer(0)),
                (Frame::bulk("health"), Frame::bulk("online")),
            ])
        };
        let mut nodes: Vec<Frame> = self.master.iter().map(|m| node(m, "master")).collect();
        nodes.extend(self.replicas.iter().map(|m| node(m, "replica")));
        Frame::Array(vec![Frame::Map(vec![
            (
                Frame::bulk("slots"),
                Frame::Array(vec![
                    Frame::Integer(0),
                    Frame::Integer(i64::from(SLOTS - 1)),
                ]),
            ),
            (Frame::bulk("nodes"), Frame::Array(nodes)),
        ])])
    }

    /// One line per member: `id host:port@cport flags master ping pong
    /// epoch link-state slots`. There is no cluster bus, so cport is 0.
    fn nodes_text(&self, status: &NodeStatus) -> String {
        let mut text = String::new();
        let myself = |member: &Member| {
            if member.raft_id == status.id {
                "myself,"
            } else {
                ""
            }
        };
        if let Some(master) = &self.master {
            let _ = writeln!(
                text,
                "{} {}:{}@0 {}master - 0 0 {} connected 0-{}",
                master.node_id(),
                master.host,
                master.port,
                myself(master),
                status.term,
                SLOTS - 1
            );
            for replica in &self.replicas {
                let _ = writeln!(
                    text,
                    "{} {}:{}@0 {}slave {} 0 0 {} connected",
                    replica.node_id(),
                    replica.host,
                    replica.port,
                    myself(replica),
                    master.node_id(),
                    status.term
                );
            }
        }
        text
    }

    fn info_text(&self, status: &NodeStatus) -> String {
        let ok = self.master.is_some();
        let known = self.replicas.len() + usize::from(ok);
        let mut text = String::new();
        let _ = write!(
            text,
            "cluster_enabled:1\r\ncluster_state:{}\r\ncluster_slots_assigned:{SLOTS}\r\n\
             cluster_slots_ok:{}\r\ncluster_slots_pfail:0\r\ncluster_slots_fail:{}\r\n\
             cluster_known_nodes:{known}\r\ncluster_size:1\r\ncluster_current_epoch:{}\r\n\
             cluster_my_epoch:{}\r\n",
            if ok { "ok" } else { "fail" },
            if ok { SLOTS } else { 0 },
            if ok { 0 } else { SLOTS },
            status.term,
            status.term,
        );
        text
    }
}
