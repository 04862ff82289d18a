//! INFO [section ...]: Redis INFO text. Sections: `server`, `clients`,
//! `replication`, `cluster`, `raft` (every RAFT.STATUS field) and `keyspace`; no
//! section, `default`, `all` or `everything` gives them all. Like Valkey,
//! the server section reports the Redis version whose protocol clients may
//! assume (`redis_version`) and its own name and version.

use std::fmt::Write;

use bytes::Bytes;

use super::{Args, CommandError, Context, Execution, Spec};
use crate::driver::handle::NodeStatus;
use crate::resp::backend::Backend;
use crate::resp::Frame;

pub(crate) const SPEC: Spec = Spec::keyless("info", -1, &["stale", "loading"]);

/// The Redis version clients may assume for the protocol and reply shapes.
pub(crate) const REDIS_COMPATIBLE_VERSION: &str = "7.2.4";

const SECTIONS: &[&str] = &[
    "server",
    "clients",
    "replication",
    "cluster",
    "raft",
    "keyspace",
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Info {
    /// Lowercase section names; empty means every section.
    pub sections: Vec<String>,
}

/// Redis's name for a Raft role: the leader is the master.
pub(crate) fn redis_role(raft_role: &str) -> &'static str {
    if raft_role == "leader" {
        "master"
    } else {
        "replica"
    }
}

impl Info {
    pub(crate) fn from_args(args: &mut Args) -> Result<Info, CommandError> {
        let sections = args
            .take_rest()
            .iter()
            .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
            .collect();
        Ok(Info { sections })
    }

    pub(crate) fn execute<B: Backend>(self, context: &mut Context<'_, B>) -> Execution {
        let server = context.server;
        let status = server.backend.status();
        let wanted = |section: &str| {
            self.sections.is_empty()
                || self
                    .sections
                    .iter()
                    .any(|s| s == section || s == "all" || s == "everything" || s == "default")
        };
        let mut text = String::new();
        for section in SECTIONS.iter().copied().filter(|s| wanted(s)) {
            if !text.is_empty() {
                text.push_str("\r\n");
            }
            match section {
                "server" => server_section(&mut text, &status, server.local_port),
                "clients" => {
                    text.push_str("# Clients\r\n");
                    let _ = write!(text, "connected_clients:{}\r\n", server.connected_clients());
                    let _ = write!(text, "maxclients:{}\r\n", server.limits.connections_max);
                }
                "replication" => replication_section(&mut text, &status),
                // Cluster clients check this before CLUSTER SLOTS (see cluster.rs).
                "cluster" => text.push_str("# Cluster\r\ncluster_enabled:1\r\n"),
                "raft" => {
                    text.push_str("# Raft\r\n");
                    for (field, value) in status.fields() {
                        let _ = write!(text, "{field}:{value}\r\n");
                    }
                }
                _ => {
                    let (keys, expires) = server
                        .backend
                        .local_read(|store| (store.len(), store.keys_with_expiry()));
                    text.push_str("# Keyspace\r\n");
                    let _ = write!(text, "db0:keys={keys},expires={expires},avg_ttl=0\r\n");
                }
            }
        }
        Execution::Now(Frame::Verbatim {
            format: "txt".into(),
            text: Bytes::from(text),
        })
    }
}

fn server_section(text: &mut String, status: &NodeStatus, local_port: u16) {
    let uptime_seconds = status.uptime_ms / 1000;
    text.push_str("# Server\r\n");
    let _ = write!(text, "redis_version:{REDIS_COMPATIBLE_VERSION}\r\n");
    let _ = write!(text, "server_name:raftkv\r\n");
    let _ = write!(text, "raftkv_version:{}\r\n", env!("CARGO_PKG_VERSION"));
    let _ = write!(text, "redis_mode:cluster\r\n");
    let _ = write!(
        text,
        "os:{} {}\r\n",
        std::env::consts::OS,
        std::env::consts::ARCH
    );
    let _ = write!(text, "arch_bits:{}\r\n", usize::BITS);
    let _ = write!(text, "process_id:{}\r\n", std::process::id());
    let _ = write!(text, "tcp_port:{local_port}\r\n");
    let _ = write!(text, "uptime_in_seconds:{uptime_seconds}\r\n");
    let _ = write!(text, "uptime_in_days:{}\r\n", uptime_seconds / 86_400);
}

fn replication_section(text: &mut String, status: &NodeStatus) {
    text.push_str("# Replication\r\n");
    let role = redis_role(status.role);
    let _ = write!(
        text,
        "role:{}\r\n",
        if role == "master" { "master" } else { "slave" }
    );
    if role == "master" {
        let _ = write!(text, "connected_slaves:{}\r\n", status.match_index.len());
        return;
    }
    match status.leader_client_addr.rsplit_once(':') {
        Some((host, port)) => {
            let _ = write!(
                text,
                "master_host:{host}\r\nmaster_port:{port}\r\nmaster_link_status:up\r\n"
            );
        }
        None => text.push_str("master_link_status:down\r\n"),
    }
    let _ = write!(
        text,
        "master_last_io_seconds_ago:{}\r\n",
        status.leader_contact_ms / 1000
    );
}
