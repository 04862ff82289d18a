//! A node's RAFT.STATUS, typed, and fetching it with a deadline. The field
//! names and their decoding are the node's (`raftkv_node::driver::status`),
//! where `NodeStatus::fields` publishes them.

use std::collections::BTreeMap;
use std::time::Duration;

use raftkv_node::client::Connection;
use raftkv_node::driver::status::{
    field, id_list, number, optional_flag, optional_incarnation, text,
};
use raftkv_node::resp::Frame;

/// A node's role as RAFT.STATUS names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower,
    Candidate,
    PreCandidate,
    Other(String),
}

impl Role {
    pub fn parse(text: &str) -> Role {
        match text {
            "leader" => Role::Leader,
            "follower" => Role::Follower,
            "candidate" => Role::Candidate,
            "precandidate" => Role::PreCandidate,
            other => Role::Other(other.to_string()),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Candidate => "candidate",
            Role::PreCandidate => "precandidate",
            Role::Other(other) => other,
        }
    }
}

/// The RAFT.STATUS fields the dashboard and `raftkv kv` use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    pub id: u64,
    pub role: Role,
    pub term: u64,
    /// 0 when no leader is known.
    pub leader_id: u64,
    pub leader_client_addr: String,
    pub commit_index: u64,
    pub applied_index: u64,
    pub first_index: u64,
    pub last_index: u64,
    pub snapshot_index: u64,
    pub keys: u64,
    pub digest: String,
    pub leader_contact_ms: u64,
    pub pid: u32,
    pub uptime_ms: u64,
    /// The node's random identity, created when its data dir was empty
    /// (16 lowercase hex chars). `None`: a node from before incarnations.
    pub incarnation: Option<String>,
    /// `Some(false)`: the node came back with an empty disk and the cluster
    /// configuration it holds committed does not count it as a voter yet.
    /// `None`: an older node that does not say (taken as registered).
    pub registered: Option<bool>,
    /// Leader only: peers whose incarnation is not the registered one, so
    /// their votes and acknowledgements do not count. Empty otherwise.
    pub strangers: Vec<u64>,
    /// The voters of the newest configuration this node holds (empty: an
    /// older node that does not say, or a joiner that has no configuration).
    pub voters: Vec<u64>,
    /// Its learners: members that receive the log and never vote.
    pub learners: Vec<u64>,
    /// Non-empty only while a change is pending (a joint configuration):
    /// the voters of the configuration before it, which must agree too.
    pub previous_voters: Vec<u64>,
    /// Log index of the newest configuration (0 when the node does not say).
    pub membership_index: u64,
    /// Leader only: (member id, match index), learners included.
    pub match_indexes: Vec<(u64, u64)>,
}

impl NodeStatus {
    /// From RAFT.STATUS field/value pairs, read through the node's schema
    /// (`raftkv_node::driver::status`); names the first missing or bad field.
    pub fn from_fields(fields: &BTreeMap<String, String>) -> Result<NodeStatus, String> {
        Ok(NodeStatus {
            id: number(fields, field::ID)?,
            role: Role::parse(&text(fields, field::ROLE)?),
            term: number(fields, field::TERM)?,
            leader_id: number(fields, field::LEADER_ID)?,
            leader_client_addr: fields
                .get(field::LEADER_CLIENT_ADDR)
                .cloned()
                .unwrap_or_default(),
            commit_index: number(fields, field::COMMIT_INDEX)?,
            applied_index: number(fields, field::APPLIED_INDEX)?,
            first_index: number(fields, field::FIRST_INDEX).unwrap_or(0),
            last_index: number(fields, field::LAST_INDEX)?,
            snapshot_index: number(fields, field::SNAPSHOT_INDEX).unwrap_or(0),
            keys: number(fields, field::KEYS)?,
            digest: text(fields, field::DIGEST)?,
            leader_contact_ms: number(fields, field::LEADER_CONTACT_MS).unwrap_or(0),
            pid: u32::try_from(number(fields, field::PID).unwrap_or(0)).unwrap_or(0),
            uptime_ms: number(fields, field::UPTIME_MS).unwrap_or(0),
            incarnation: optional_incarnation(fields)?,
            registered: optional_flag(fields, field::REGISTERED)?,
            strangers: id_list(fields, field::STRANGERS)?,
            voters: id_list(fields, field::VOTERS)?,
            learners: id_list(fields, field::LEARNERS)?,
            previous_voters: id_list(fields, field::PREVIOUS_VOTERS)?,
            membership_index: match fields.get(field::MEMBERSHIP_INDEX) {
                Some(_) => number(fields, field::MEMBERSHIP_INDEX)?,
                None => 0,
            },
            match_indexes: match_indexes(fields)?,
        })
    }

    /// True while a configuration change is pending: the previous voters
    /// must agree as well as the new ones (joint consensus).
    pub fn is_joint(&self) -> bool {
        !self.previous_voters.is_empty()
    }

    /// The leader's match index for member `id`, learners included.
    pub fn match_index_of(&self, id: u64) -> Option<u64> {
        self.match_indexes
            .iter()
            .find(|(member, _)| *member == id)
            .map(|(_, index)| *index)
    }

    /// False only when the node says it is not (yet) a registered voter.
    pub fn is_registered(&self) -> bool {
        self.registered != Some(false)
    }

    /// True when this status and `other` come from the same process and
    /// this one was produced later (uptime only grows within a process).
    pub fn is_newer_than(&self, other: &NodeStatus) -> bool {
        self.pid == other.pid && self.uptime_ms > other.uptime_ms
    }

    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }
}

/// Every `match_index_<id>` field, in id order.
fn match_indexes(fields: &BTreeMap<String, String>) -> Result<Vec<(u64, u64)>, String> {
    let mut indexes = Vec::new();
    for (name, value) in fields {
        let Some(id) = name.strip_prefix(field::MATCH_INDEX_PREFIX) else {
            continue;
        };
        let (Ok(id), Ok(index)) = (id.parse::<u64>(), value.parse::<u64>()) else {
            return Err(format!(
                "RAFT.STATUS field '{name}' is '{value}', not a match index of a node id"
            ));
        };
        indexes.push((id, index));
    }
    indexes.sort_unstable();
    Ok(indexes)
}

/// Node ids as a set: `{1,2,3}`.
pub fn id_set(ids: &[u64]) -> String {
    let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
    format!("{{{}}}", ids.join(","))
}

/// The first four hex chars and an ellipsis, as the timeline shows an incarnation.
pub fn short_incarnation(incarnation: &str) -> String {
    let head: String = incarnation.chars().take(4).collect();
    format!("{head}..")
}

/// Asks one node for RAFT.STATUS over a connection it keeps open between
/// polls (and reopens after any failure).
pub struct StatusFetcher {
    addr: String,
    connection: Option<Connection>,
}

impl StatusFetcher {
    pub fn new(addr: String) -> StatusFetcher {
        StatusFetcher {
            addr,
            connection: None,
        }
    }

    /// RAFT.STATUS fields, or why not, within `deadline` (connecting included).
    pub async fn fetch_fields(
        &mut self,
        deadline: Duration,
    ) -> Result<BTreeMap<String, String>, String> {
        let result = tokio::time::timeout(deadline, self.request(deadline)).await;
        let result =
            result.unwrap_or_else(|_| Err(format!("no answer within {} ms", deadline.as_millis())));
        if result.is_err() {
            // The connection may hold a late reply: never reuse it.
            self.connection = None;
        }
        result
    }

    /// The typed status, within `deadline`.
    pub async fn fetch(&mut self, deadline: Duration) -> Result<NodeStatus, String> {
        NodeStatus::from_fields(&self.fetch_fields(deadline).await?)
    }

    async fn request(&mut self, deadline: Duration) -> Result<BTreeMap<String, String>, String> {
        let connection = match &mut self.connection {
            Some(connection) if !connection.is_closed_by_peer() => connection,
            _ => {
                let connection = Connection::connect(&self.addr, deadline)
                    .await
                    .map_err(|e| e.to_string())?;
                self.connection.insert(connection)
            }
        };
        let reply = connection
            .request(&[b"RAFT.STATUS"])
            .await
            .map_err(|e| e.to_string())?;
        fields_from_frame(reply).map_err(|e| format!("{}: {e}", self.addr))
    }
}

/// RAFT.STATUS replies as a RESP3 map or a RESP2 flat field/value array.
pub fn fields_from_frame(frame: Frame) -> Result<BTreeMap<String, String>, String> {
    let pairs: Vec<(Frame, Frame)> = match frame {
        Frame::Map(pairs) => pairs,
        Frame::Array(items) if items.len() % 2 == 0 => {
            let mut items = items.into_iter();
            let mut pairs = Vec::new();
            while let (Some(key), Some(value)) = (items.next(), items.next()) {
                pairs.push((key, value));
            }
            pairs
        }
        Frame::Error(message) => return Err(format!("RAFT.STATUS failed: {message}")),
        other => {
            return Err(format!(
                "RAFT.STATUS answered {other:?}, not a field/value map"
            ))
        }
    };
    pairs
        .into_iter()
        .map(|(key, value)| Ok((frame_text(key)?, frame_text(value)?)))
        .collect()
}

/// A scalar reply frame as text.
pub fn frame_text(frame: Frame) -> Result<String, String> {
    match frame {
        Frame::Simple(text) | Frame::BigNumber(text) => Ok(text),
        Frame::Bulk(bytes) | Frame::Verbatim { text: bytes, .. } => {
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        }
        Frame::Integer(number) => Ok(number.to_string()),
        Frame::Double(number) => Ok(number.to_string()),
        Frame::Boolean(value) => Ok(value.to_string()),
        Frame::Null => Ok(String::new()),
        other => Err(format!("expected a scalar, got {other:?}")),
    }
}

/// A status with plain values (term 0, empty log and digest, no pid) for
/// tests to override with struct-update syntax. Public (not `cfg(test)`)
/// because the dashboard's and the benchmarks' tests use it too.
pub fn example_status(id: u64, role: Role) -> NodeStatus {
    NodeStatus {
        id,
        role,
        term: 0,
        leader_id: 0,
        leader_client_addr: String::new(),
        commit_index: 0,
        applied_index: 0,
        first_index: 1,
        last_index: 0,
        snapshot_index: 0,
        keys: 0,
        digest: String::new(),
        leader_contact_ms: 0,
        pid: 0,
        uptime_ms: 0,
        incarnation: None,
        registered: None,
        strangers: Vec::new(),
        voters: Vec::new(),
        learners: Vec::new(),
        previous_voters: Vec::new(),
        membership_index: 0,
        match_indexes: Vec::new(),
    }
}

/// RAFT.STATUS fields from literal pairs, for tests (here and in the
/// dashboard) to parse.
pub fn example_fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields of node 1 leading term 5 at index 54, with `more`.
    fn leader_1_fields(more: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut map = example_fields(&[
            ("id", "1"),
            ("role", "leader"),
            ("term", "5"),
            ("leader_id", "1"),
            ("commit_index", "54"),
            ("applied_index", "54"),
            ("last_index", "54"),
            ("keys", "50"),
            ("digest", "9c41"),
        ]);
        map.extend(example_fields(more));
        map
    }

    #[test]
    fn status_fields_parse_and_missing_ones_are_named() {
        let map = example_fields(&[
            ("id", "2"),
            ("role", "leader"),
            ("term", "4"),
            ("leader_id", "2"),
            ("leader_client_addr", "127.0.0.1:7002"),
            ("commit_index", "107"),
            ("applied_index", "107"),
            ("first_index", "1"),
            ("last_index", "107"),
            ("snapshot_index", "0"),
            ("keys", "100"),
            ("digest", "9c41"),
            ("leader_contact_ms", "0"),
            ("match_index_1", "107"),
            ("pid", "4242"),
            ("uptime_ms", "1000"),
        ]);
        let status = NodeStatus::from_fields(&map).unwrap();
        assert!(status.is_leader());
        assert_eq!(status.applied_index, 107);
        assert_eq!(status.pid, 4242);

        let mut broken = map.clone();
        broken.remove("term");
        assert_eq!(
            NodeStatus::from_fields(&broken).unwrap_err(),
            "RAFT.STATUS has no 'term' field"
        );
        broken.insert("term".into(), "x".into());
        assert!(NodeStatus::from_fields(&broken)
            .unwrap_err()
            .contains("not a number"));
        assert_eq!(status.incarnation, None, "an older node sends none");
        assert_eq!(status.registered, None);
        assert!(status.is_registered());
        assert!(status.strangers.is_empty());
        assert_eq!(Role::parse("precandidate"), Role::PreCandidate);
        assert_eq!(Role::parse("learner").name(), "learner");
    }

    #[test]
    fn membership_fields_parse_and_say_when_a_change_is_pending() {
        let mut map = leader_1_fields(&[
            ("match_index_2", "54"),
            ("match_index_4", "12"),
            ("voters", "1,2,3,4"),
            ("learners", "5"),
            ("previous_voters", "1,2,3"),
            ("membership_index", "53"),
        ]);
        let status = NodeStatus::from_fields(&map).unwrap();
        assert_eq!(status.voters, vec![1, 2, 3, 4]);
        assert_eq!(status.learners, vec![5]);
        assert!(status.is_joint());
        assert_eq!(status.membership_index, 53);
        assert_eq!(status.match_index_of(4), Some(12));
        assert_eq!(status.match_index_of(3), None);
        assert_eq!(id_set(&status.voters), "{1,2,3,4}");
        map.insert("previous_voters".into(), String::new());
        assert!(!NodeStatus::from_fields(&map).unwrap().is_joint());
        map.insert("match_index_x".into(), "3".into());
        assert!(NodeStatus::from_fields(&map)
            .unwrap_err()
            .contains("match_index_x"));
    }

    #[test]
    fn status_replies_are_read_from_resp2_and_resp3_shapes() {
        let flat = Frame::Array(vec![
            Frame::bulk("id"),
            Frame::bulk("2"),
            Frame::Simple("term".into()),
            Frame::Integer(4),
        ]);
        let map = fields_from_frame(flat).unwrap();
        assert_eq!(map["id"], "2");
        assert_eq!(map["term"], "4");
        let resp3 = Frame::Map(vec![(Frame::bulk("role"), Frame::bulk("leader"))]);
        assert_eq!(fields_from_frame(resp3).unwrap()["role"], "leader");
        assert!(
            fields_from_frame(Frame::Error("ERR unknown command".into()))
                .unwrap_err()
                .contains("unknown command")
        );
        assert!(fields_from_frame(Frame::Array(vec![Frame::bulk("odd")])).is_err());
    }

    #[test]
    fn incarnation_fields_parse_when_present_and_bad_ones_are_named() {
        let mut map = leader_1_fields(&[
            ("incarnation", "a41f0c9d22e3b871"),
            ("registered", "0"),
            ("strangers", "2,3"),
        ]);
        let status = NodeStatus::from_fields(&map).unwrap();
        assert_eq!(status.incarnation.as_deref(), Some("a41f0c9d22e3b871"));
        assert_eq!(status.registered, Some(false));
        assert!(!status.is_registered());
        assert_eq!(status.strangers, vec![2, 3]);
        assert_eq!(short_incarnation("a41f0c9d22e3b871"), "a41f..");

        map.insert("strangers".into(), String::new());
        map.insert("registered".into(), "1".into());
        let status = NodeStatus::from_fields(&map).unwrap();
        assert!(status.strangers.is_empty());
        assert_eq!(status.registered, Some(true));

        for (name, bad) in [
            ("incarnation", "A41F0C9D22E3B871"),
            ("incarnation", "a41f"),
            ("registered", "yes"),
            ("strangers", "2,x"),
        ] {
            let mut broken = map.clone();
            broken.insert(name.into(), bad.into());
            let error = NodeStatus::from_fields(&broken).unwrap_err();
            assert!(error.contains(name) && error.contains(bad), "{error}");
        }
    }
}
