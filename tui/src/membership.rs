//! Membership from the client side: the member table, and sending a
//! change (RAFT.ADDLEARNER, RAFT.PROMOTE, RAFT.REMOVE) to the leader,
//! following MOVED. `raftkv kv member` and the dashboard's `a`, `-` and `R`
//! both go through `send_change`, so they meet the same refusals.

use std::time::{Duration, Instant};

use raftkv_node::client::{ClusterClient, Connection};
use raftkv_node::driver::status::MemberView;
use raftkv_node::resp::Frame;

use crate::columns::format_columns;
use crate::status::NodeStatus;

/// First wait after CLUSTERDOWN, a refused connection or (when retried)
/// TRYAGAIN; doubled per retry up to `CHANGE_BACKOFF_MAX_MS`.
const CHANGE_BACKOFF_INITIAL_MS: u64 = 20;
const CHANGE_BACKOFF_MAX_MS: u64 = 500;
/// Redirects followed back to back before waiting between them (nodes that
/// disagree about the leader during an election).
const REDIRECTS_WITHOUT_BACKOFF_MAX: u32 = 3;
/// Connecting to one node may take this long before the next is tried.
const CONNECT_TIMEOUT_MS: u64 = 1_000;

/// A membership change, as the leader takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberChange {
    AddLearner {
        id: u64,
        peer_addr: String,
        client_addr: String,
    },
    Promote {
        id: u64,
    },
    Remove {
        id: u64,
    },
}

impl MemberChange {
    pub fn id(&self) -> u64 {
        match self {
            MemberChange::AddLearner { id, .. }
            | MemberChange::Promote { id }
            | MemberChange::Remove { id } => *id,
        }
    }

    /// The command and its arguments.
    pub fn command(&self) -> Vec<String> {
        match self {
            MemberChange::AddLearner {
                id,
                peer_addr,
                client_addr,
            } => vec![
                "RAFT.ADDLEARNER".into(),
                id.to_string(),
                peer_addr.clone(),
                client_addr.clone(),
            ],
            MemberChange::Promote { id } => vec!["RAFT.PROMOTE".into(), id.to_string()],
            MemberChange::Remove { id } => vec!["RAFT.REMOVE".into(), id.to_string()],
        }
    }

    /// `RAFT.REMOVE 2`, as messages name the change.
    pub fn name(&self) -> String {
        let command = self.command();
        format!("{} {}", command[0], command[1])
    }
}

/// Why a change was not made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeError {
    /// `-TRYAGAIN`: not now (a change in flight, a new leader that has not
    /// committed yet, a learner not caught up); the same change may work later.
    TryAgain {
        change: String,
        addr: String,
        reason: String,
    },
    /// `-ERR`: never (unknown id, already a member, the last voter, ...).
    Refused {
        change: String,
        addr: String,
        reason: String,
    },
    /// The request was sent and no reply came: the change may have been made.
    OutcomeUnknown { change: String, reason: String },
    /// No leader took the change in time (elections, nodes down).
    NoLeader {
        change: String,
        deadline_ms: u64,
        last: String,
    },
}

impl std::fmt::Display for ChangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChangeError::TryAgain {
                change,
                addr,
                reason,
            } => write!(f, "{change} not taken now (TRYAGAIN from {addr}): {reason}"),
            ChangeError::Refused {
                change,
                addr,
                reason,
            } => write!(f, "{change} refused by {addr}: {reason}"),
            ChangeError::OutcomeUnknown { change, reason } => write!(
                f,
                "{change}: outcome unknown ({reason}); check with `raftkv kv member list`"
            ),
            ChangeError::NoLeader {
                change,
                deadline_ms,
                last,
            } => write!(
                f,
                "{change}: no leader took it within {deadline_ms} ms; last: {last}"
            ),
        }
    }
}

impl std::error::Error for ChangeError {}

/// What one attempt at one node gave.
enum Attempt {
    Reply(Frame),
    NotSent(String),
    MaybeSent(String),
}

async fn attempt(addr: &str, args: &[&[u8]], reply_within: Duration) -> Attempt {
    let mut connection =
        match Connection::connect(addr, Duration::from_millis(CONNECT_TIMEOUT_MS)).await {
            Ok(connection) => connection,
            Err(error) => return Attempt::NotSent(error.to_string()),
        };
    connection.set_io_timeout(reply_within);
    // Any failure after connecting may have come after the request left.
    match connection.request(args).await {
        Ok(frame) => Attempt::Reply(frame),
        Err(error) => Attempt::MaybeSent(error.to_string()),
    }
}

/// `MOVED <slot> <addr>` -> the address.
fn moved_address(message: &str) -> Option<String> {
    let mut words = message.split_whitespace();
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some("MOVED"), Some(_slot), Some(addr), None) => Some(addr.to_string()),
        _ => None,
    }
}

/// Sends `change` to the leader among `addrs` (following MOVED, waiting out
/// CLUSTERDOWN and unreachable nodes) until it answers `+OK`, which a leader
/// does once the configuration entry is committed. A `-TRYAGAIN` is
/// retried when `retry_tryagain` (the dashboard, and `raftkv kv member`
/// within its deadline: the confirming copy of the previous change commits
/// within a round trip) and returned otherwise; one still answered when the
/// deadline passes is returned as such. Returns the address of the leader
/// that took it.
pub async fn send_change(
    addrs: &[String],
    change: &MemberChange,
    retry_tryagain: bool,
    deadline: Duration,
) -> Result<String, ChangeError> {
    let command = change.command();
    let args: Vec<&[u8]> = command.iter().map(|a| a.as_bytes()).collect();
    let name = change.name();
    let started = Instant::now();
    let mut hint: Option<String> = None;
    let mut next = 0usize;
    let mut redirects_in_row = 0u32;
    let mut backoff_ms = CHANGE_BACKOFF_INITIAL_MS;
    let mut last = "no node tried".to_string();
    // The leader's last `-TRYAGAIN`, said as such if the deadline passes.
    let mut last_tryagain: Option<(String, String)> = None;
    while started.elapsed() < deadline && !addrs.is_empty() {
        let target = hint
            .take()
            .unwrap_or_else(|| addrs[next % addrs.len()].clone());
        let remaining = deadline.saturating_sub(started.elapsed());
        let mut wait = true;
        match attempt(&target, &args, remaining.max(Duration::from_millis(1))).await {
            Attempt::Reply(Frame::Simple(text)) if text == "OK" => return Ok(target),
            Attempt::Reply(Frame::Error(message)) => {
                let (code, reason) = message.split_once(' ').unwrap_or((&message, ""));
                match code {
                    "MOVED" => {
                        let Some(leader) = moved_address(&message) else {
                            return Err(refused(&name, &target, &message));
                        };
                        redirects_in_row += 1;
                        wait = redirects_in_row > REDIRECTS_WITHOUT_BACKOFF_MAX;
                        last = format!("{target} redirected to {leader}");
                        hint = Some(leader);
                    }
                    "CLUSTERDOWN" => {
                        redirects_in_row = 0;
                        next += 1;
                        last = format!("{target}: {message}");
                    }
                    "TRYAGAIN" if retry_tryagain => {
                        redirects_in_row = 0;
                        last = format!("{target}: {message}");
                        last_tryagain = Some((target.clone(), reason.to_string()));
                        hint = Some(target.clone());
                    }
                    "TRYAGAIN" => {
                        return Err(ChangeError::TryAgain {
                            change: name,
                            addr: target,
                            reason: reason.to_string(),
                        })
                    }
                    "ERR" => return Err(refused(&name, &target, reason)),
                    _ => return Err(refused(&name, &target, &message)),
                }
            }
            Attempt::Reply(other) => {
                return Err(refused(
                    &name,
                    &target,
                    &format!("unexpected reply {other:?}"),
                ))
            }
            Attempt::NotSent(error) => {
                next += 1;
                last = error;
            }
            Attempt::MaybeSent(reason) => {
                return Err(ChangeError::OutcomeUnknown {
                    change: name,
                    reason,
                })
            }
        }
        if wait {
            let remaining = deadline.saturating_sub(started.elapsed());
            tokio::time::sleep(remaining.min(Duration::from_millis(backoff_ms))).await;
            backoff_ms = (backoff_ms * 2).min(CHANGE_BACKOFF_MAX_MS);
        }
    }
    if let Some((addr, reason)) = last_tryagain {
        return Err(ChangeError::TryAgain {
            change: name,
            addr,
            reason,
        });
    }
    Err(ChangeError::NoLeader {
        change: name,
        deadline_ms: deadline.as_millis() as u64,
        last,
    })
}

fn refused(change: &str, addr: &str, reason: &str) -> ChangeError {
    ChangeError::Refused {
        change: change.to_string(),
        addr: addr.to_string(),
        reason: reason.to_string(),
    }
}

/// What `member list` shows: the members, and the status of the node that
/// listed them (the leader when one answers, so match indexes are known).
#[derive(Clone, Debug)]
pub struct MemberList {
    pub members: Vec<MemberView>,
    pub asked: String,
    pub status: Option<NodeStatus>,
}

/// RAFT.MEMBERS from the leader when a node names one that answers, else
/// from the first node that answers.
pub async fn list_members(addrs: &[String]) -> Result<MemberList, String> {
    let mut errors = Vec::new();
    let mut first_answering: Option<(String, NodeStatus)> = None;
    for addr in addrs {
        match node_status(addr).await {
            Ok(status) if status.is_leader() => {
                first_answering = Some((addr.clone(), status));
                break;
            }
            Ok(status) => {
                let leader = status.leader_client_addr.clone();
                if first_answering.is_none() {
                    first_answering = Some((addr.clone(), status));
                }
                if !leader.is_empty() {
                    if let Ok(leader_status) = node_status(&leader).await {
                        if leader_status.is_leader() {
                            first_answering = Some((leader, leader_status));
                            break;
                        }
                    }
                }
            }
            Err(error) => errors.push(format!("{addr}: {error}")),
        }
    }
    let Some((asked, status)) = first_answering else {
        return Err(format!("no node answered: {}", errors.join("; ")));
    };
    let members = ClusterClient::members(&asked)
        .await
        .map_err(|e| e.to_string())?;
    Ok(MemberList {
        members,
        asked,
        status: Some(status),
    })
}

async fn node_status(addr: &str) -> Result<NodeStatus, String> {
    let fields = ClusterClient::status(addr)
        .await
        .map_err(|e| e.to_string())?;
    NodeStatus::from_fields(&fields)
}

/// The etcdctl-like table of `raftkv kv member list`, then who answered and
/// whether a change is pending.
pub fn member_table(list: &MemberList) -> String {
    let mut rows = vec![[
        "ID",
        "INCARNATION",
        "ROLE",
        "PEER ADDR",
        "CLIENT ADDR",
        "MATCH INDEX",
    ]
    .map(str::to_string)
    .to_vec()];
    for member in &list.members {
        rows.push(vec![
            member.id.to_string(),
            if member.incarnation.is_empty() {
                "-".into()
            } else {
                member.incarnation.clone()
            },
            member.role.clone(),
            member.peer_addr.clone(),
            member.client_addr.clone(),
            member
                .match_index
                .map_or("-".to_string(), |index| index.to_string()),
        ]);
    }
    let mut out = format_columns(&rows);
    if let Some(status) = &list.status {
        let who = if status.is_leader() {
            format!("leader node {}", status.id)
        } else {
            format!(
                "node {} (no leader answered: match indexes unknown)",
                status.id
            )
        };
        let at = if status.membership_index > 0 {
            format!(", configuration at index {}", status.membership_index)
        } else {
            String::new()
        };
        out.push_str(&format!("listed by {who} at {}{at}\n", list.asked));
        if status.is_joint() {
            out.push_str(&format!(
                "change pending (joint configuration): the previous voters {} must agree too \
                 until it commits\n",
                crate::status::id_set(&status.previous_voters)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{example_status, Role};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn entry(pairs: &[(&str, Frame)]) -> Frame {
        Frame::Array(
            pairs
                .iter()
                .flat_map(|(k, v)| [Frame::bulk(k.to_string()), v.clone()])
                .collect(),
        )
    }

    fn member_frame(id: i64, incarnation: &str, role: &str, match_index: i64) -> Frame {
        entry(&[
            ("id", Frame::Integer(id)),
            ("incarnation", Frame::bulk(incarnation.to_string())),
            ("role", Frame::bulk(role.to_string())),
            ("peer_addr", Frame::bulk(format!("127.0.0.1:{}", 7100 + id))),
            (
                "client_addr",
                Frame::bulk(format!("127.0.0.1:{}", 7000 + id)),
            ),
            ("match_index", Frame::Integer(match_index)),
        ])
    }

    #[test]
    fn members_parse_and_list_like_etcdctl() {
        let reply = Frame::Array(vec![
            member_frame(1, "a41f0c9d22e3b871", "voter", 12_044),
            member_frame(2, "7c02e51a9b3d4f60", "voter", 12_044),
            member_frame(4, "", "learner", -1),
        ]);
        let members = raftkv_node::client::parse_members(reply).unwrap();
        assert_eq!(members.len(), 3);
        assert_eq!(members[2].role, "learner");
        assert_eq!(members[2].match_index, None);
        let mut status = example_status(1, Role::Leader);
        status.membership_index = 12_040;
        status.previous_voters = vec![1, 2, 3];
        let list = MemberList {
            members,
            asked: "127.0.0.1:7001".into(),
            status: Some(status),
        };
        insta::assert_snapshot!(member_table(&list), @r"
        ID  INCARNATION       ROLE     PEER ADDR       CLIENT ADDR     MATCH INDEX
        1   a41f0c9d22e3b871  voter    127.0.0.1:7101  127.0.0.1:7001  12044
        2   7c02e51a9b3d4f60  voter    127.0.0.1:7102  127.0.0.1:7002  12044
        4   -                 learner  127.0.0.1:7104  127.0.0.1:7004  -
        listed by leader node 1 at 127.0.0.1:7001, configuration at index 12040
        change pending (joint configuration): the previous voters {1,2,3} must agree too until it commits
        ");
    }

    /// A node that answers every request with the next reply of `script`
    /// and counts the requests.
    async fn scripted_node(script: Vec<String>) -> (String, tokio::task::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            for reply in script {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buffer = vec![0u8; 4096];
                let read = socket.read(&mut buffer).await.unwrap();
                seen.push(String::from_utf8_lossy(&buffer[..read]).into_owned());
                socket.write_all(reply.as_bytes()).await.unwrap();
            }
            seen
        });
        (addr, task)
    }

    /// A follower's MOVED is followed to the leader, whose TRYAGAIN is
    /// returned as such (the CLI) or retried until `+OK` (the dashboard).
    #[tokio::test]
    async fn changes_follow_moved_and_tryagain_is_said_or_retried() {
        let tryagain = "-TRYAGAIN learner 4 has not caught up (match index 10, commit index 52); retry once it has\r\n";
        let (leader, leader_task) = scripted_node(vec![tryagain.into()]).await;
        let (follower, follower_task) = scripted_node(vec![format!("-MOVED 0 {leader}\r\n")]).await;
        let change = MemberChange::Promote { id: 4 };
        let error = send_change(&[follower], &change, false, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "RAFT.PROMOTE 4 not taken now (TRYAGAIN from {leader}): learner 4 has not caught \
                 up (match index 10, commit index 52); retry once it has"
            )
        );
        assert!(follower_task.await.unwrap()[0].contains("RAFT.PROMOTE"));
        leader_task.await.unwrap();

        let (leader, leader_task) = scripted_node(vec![tryagain.into(), "+OK\r\n".into()]).await;
        let took = send_change(
            std::slice::from_ref(&leader),
            &change,
            true,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(took, leader);
        assert_eq!(leader_task.await.unwrap().len(), 2);

        let (leader, _task) = scripted_node(vec![
            "-ERR cannot remove node 1: it is the last voter\r\n".into(),
        ])
        .await;
        let error = send_change(
            &[leader],
            &MemberChange::Remove { id: 1 },
            true,
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(matches!(error, ChangeError::Refused { .. }), "{error:?}");
        assert!(error
            .to_string()
            .ends_with("cannot remove node 1: it is the last voter"));

        let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead_addr = dead.local_addr().unwrap().to_string();
        drop(dead);
        let error = send_change(&[dead_addr], &change, true, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(error, ChangeError::NoLeader { .. }), "{error:?}");
    }
}
