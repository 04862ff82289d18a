//! The RAFT.STATUS schema: the name and text form of every field a node
//! publishes. `NodeStatus::fields` writes them and the readers (the
//! dashboard, `raftkv kv`, the tests) look them up by the same `field`
//! constants and decode them with the helpers here, so a renamed or
//! re-encoded field changes both sides at once.

use std::collections::BTreeMap;

/// RAFT.STATUS field names, in the order `NodeStatus::fields` publishes them.
pub mod field {
    pub const ID: &str = "id";
    pub const ROLE: &str = "role";
    pub const TERM: &str = "term";
    pub const LEADER_ID: &str = "leader_id";
    pub const LEADER_CLIENT_ADDR: &str = "leader_client_addr";
    pub const COMMIT_INDEX: &str = "commit_index";
    pub const APPLIED_INDEX: &str = "applied_index";
    pub const FIRST_INDEX: &str = "first_index";
    pub const LAST_INDEX: &str = "last_index";
    pub const SNAPSHOT_INDEX: &str = "snapshot_index";
    pub const KEYS: &str = "keys";
    pub const DIGEST: &str = "digest";
    pub const LEADER_CONTACT_MS: &str = "leader_contact_ms";
    /// Leader only, one per peer: `match_index_<peer id>` (see `match_index_field`).
    pub const MATCH_INDEX_PREFIX: &str = "match_index_";
    pub const INCARNATION: &str = "incarnation";
    pub const REGISTERED: &str = "registered";
    pub const STRANGERS: &str = "strangers";
    /// Voters of the newest configuration this node's log holds.
    pub const VOTERS: &str = "voters";
    /// Learners of that configuration.
    pub const LEARNERS: &str = "learners";
    /// Non-empty only while that configuration is not known committed
    /// (joint consensus): the voters of the one before it.
    pub const PREVIOUS_VOTERS: &str = "previous_voters";
    /// Log index of the newest configuration entry (0: a snapshot's, or none).
    pub const MEMBERSHIP_INDEX: &str = "membership_index";
    pub const PID: &str = "pid";
    pub const UPTIME_MS: &str = "uptime_ms";
}

/// RAFT.MEMBERS field names: each member is a flat field/value array in
/// this order.
pub mod member_field {
    pub const ID: &str = "id";
    pub const INCARNATION: &str = "incarnation";
    pub const ROLE: &str = "role";
    pub const PEER_ADDR: &str = "peer_addr";
    pub const CLIENT_ADDR: &str = "client_addr";
    pub const MATCH_INDEX: &str = "match_index";
}

/// A member's role as RAFT.MEMBERS shows it.
pub const ROLE_VOTER: &str = "voter";
pub const ROLE_LEARNER: &str = "learner";

/// One member as RAFT.MEMBERS shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberView {
    pub id: u64,
    /// 16 hex digits; empty while not known (a learner that has not
    /// answered the leader yet, or a member before the cluster's first
    /// configuration).
    pub incarnation: String,
    /// `voter` or `learner`.
    pub role: String,
    /// Where peers reach it (empty when unknown).
    pub peer_addr: String,
    /// Where clients reach it (empty when unknown).
    pub client_addr: String,
    /// The leader's match index for it (the leader's own last index for
    /// itself); None on a follower or when not known.
    pub match_index: Option<u64>,
}

impl MemberView {
    pub fn is_voter(&self) -> bool {
        self.role == ROLE_VOTER
    }
}

/// Length of an incarnation id in hex (64 random bits).
pub const INCARNATION_HEX_CHARS: usize = 16;

/// RAFT.STATUS field/value pairs as a reader holds them.
pub type StatusFields = BTreeMap<String, String>;

/// Everything RAFT.STATUS shows. Cheap to copy out (the driver publishes it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStatus {
    pub id: u64,
    pub role: &'static str,
    pub term: u64,
    pub leader_id: u64,
    /// Empty when no leader is known.
    pub leader_client_addr: String,
    pub commit_index: u64,
    pub applied_index: u64,
    pub first_index: u64,
    pub last_index: u64,
    pub snapshot_index: u64,
    pub keys: u64,
    pub digest: String,
    /// Milliseconds since this node last heard from the leader (0 on the leader).
    pub leader_contact_ms: u64,
    /// Leader only: (peer id, match index).
    pub match_index: Vec<(u64, u64)>,
    /// This node's incarnation (16 hex digits): drawn when its data dir was empty.
    pub incarnation: String,
    /// This incarnation is the voter the committed member registry names
    /// (false after an empty disk, until the cluster re-admits it).
    pub registered: bool,
    /// Leader only: peers whose replies come from another incarnation than
    /// the registered one, so they count for neither votes nor commit.
    pub strangers: Vec<u64>,
    /// Voters, learners and, while a change is pending, the previous
    /// voters of the newest configuration (see `field::VOTERS`...).
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    pub previous_voters: Vec<u64>,
    pub membership_index: u64,
    /// The newest configuration, for RAFT.MEMBERS (match indexes are
    /// filled in from `match_index` when asked). Not a RAFT.STATUS field.
    pub members: Vec<MemberView>,
    /// (member id, client address) of every member whose address is known,
    /// this node included. Not a RAFT.STATUS field: CLUSTER SLOTS, SHARDS
    /// and NODES show it.
    pub member_client_addrs: Vec<(u64, String)>,
    pub pid: u32,
    pub uptime_ms: u64,
}

impl NodeStatus {
    /// Field/value pairs in RAFT.STATUS order (also used by `INFO raft`).
    pub fn fields(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = [
            (field::ID, self.id.to_string()),
            (field::ROLE, self.role.to_string()),
            (field::TERM, self.term.to_string()),
            (field::LEADER_ID, self.leader_id.to_string()),
            (field::LEADER_CLIENT_ADDR, self.leader_client_addr.clone()),
            (field::COMMIT_INDEX, self.commit_index.to_string()),
            (field::APPLIED_INDEX, self.applied_index.to_string()),
            (field::FIRST_INDEX, self.first_index.to_string()),
            (field::LAST_INDEX, self.last_index.to_string()),
            (field::SNAPSHOT_INDEX, self.snapshot_index.to_string()),
            (field::KEYS, self.keys.to_string()),
            (field::DIGEST, self.digest.clone()),
            (field::LEADER_CONTACT_MS, self.leader_contact_ms.to_string()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect();
        for (peer, index) in &self.match_index {
            out.push((match_index_field(*peer), index.to_string()));
        }
        let tail = [
            (field::INCARNATION, self.incarnation.clone()),
            (field::REGISTERED, flag_text(self.registered)),
            (field::STRANGERS, id_list_text(&self.strangers)),
            (field::VOTERS, id_list_text(&self.voters)),
            (field::LEARNERS, id_list_text(&self.learners)),
            (field::PREVIOUS_VOTERS, id_list_text(&self.previous_voters)),
            (field::MEMBERSHIP_INDEX, self.membership_index.to_string()),
            (field::PID, self.pid.to_string()),
            (field::UPTIME_MS, self.uptime_ms.to_string()),
        ];
        out.extend(tail.map(|(name, value)| (name.to_string(), value)));
        out
    }
}

/// The field that carries the leader's match index for `peer`.
pub fn match_index_field(peer: u64) -> String {
    format!("{}{peer}", field::MATCH_INDEX_PREFIX)
}

/// An incarnation as RAFT.STATUS and the logs show it: 16 lowercase hex digits.
pub fn incarnation_text(incarnation: u64) -> String {
    format!("{incarnation:016x}")
}

/// A flag as RAFT.STATUS writes it: `1` or `0`.
fn flag_text(value: bool) -> String {
    u8::from(value).to_string()
}

/// Node ids as RAFT.STATUS writes them: comma-separated, empty for none.
fn id_list_text(ids: &[u64]) -> String {
    let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
    ids.join(",")
}

/// A field's text, or an error naming the missing field.
pub fn text(fields: &StatusFields, name: &str) -> Result<String, String> {
    fields
        .get(name)
        .cloned()
        .ok_or_else(|| format!("RAFT.STATUS has no '{name}' field"))
}

/// A numeric field, or an error naming the missing or bad field.
pub fn number(fields: &StatusFields, name: &str) -> Result<u64, String> {
    let value = text(fields, name)?;
    value
        .parse()
        .map_err(|_| format!("RAFT.STATUS field '{name}' is '{value}', not a number"))
}

/// `incarnation`: absent on older nodes; when present, 16 lowercase hex chars.
pub fn optional_incarnation(fields: &StatusFields) -> Result<Option<String>, String> {
    let Some(value) = fields.get(field::INCARNATION) else {
        return Ok(None);
    };
    let is_hex = value
        .chars()
        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    if value.len() != INCARNATION_HEX_CHARS || !is_hex {
        return Err(format!(
            "RAFT.STATUS field '{}' is '{value}', not {INCARNATION_HEX_CHARS} lowercase hex chars",
            field::INCARNATION
        ));
    }
    Ok(Some(value.clone()))
}

/// A `0`/`1` field (see `flag_text`) that older nodes do not send.
pub fn optional_flag(fields: &StatusFields, name: &str) -> Result<Option<bool>, String> {
    match fields.get(name).map(String::as_str) {
        None => Ok(None),
        Some("1") => Ok(Some(true)),
        Some("0") => Ok(Some(false)),
        Some(other) => Err(format!(
            "RAFT.STATUS field '{name}' is '{other}', not 0 or 1"
        )),
    }
}

/// A comma-separated list of node ids (see `id_list_text`; absent or empty: none).
pub fn id_list(fields: &StatusFields, name: &str) -> Result<Vec<u64>, String> {
    let Some(value) = fields.get(name) else {
        return Ok(Vec::new());
    };
    value
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            part.parse().map_err(|_| {
                format!("RAFT.STATUS field '{name}' is '{value}', not a list of node ids")
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `fields` publishes, the readers decode back to the same values.
    #[test]
    fn published_fields_read_back_through_the_schema() {
        let status = NodeStatus {
            id: 2,
            role: "leader",
            term: 4,
            leader_id: 2,
            leader_client_addr: "127.0.0.1:7002".into(),
            commit_index: 107,
            applied_index: 106,
            first_index: 1,
            last_index: 108,
            snapshot_index: 50,
            keys: 100,
            digest: "9c41".into(),
            leader_contact_ms: 0,
            match_index: vec![(1, 107), (3, 90)],
            incarnation: incarnation_text(0xa41f_0c9d_22e3_b871),
            registered: true,
            strangers: vec![3],
            voters: vec![1, 2, 3],
            learners: vec![4],
            previous_voters: vec![1, 2],
            membership_index: 99,
            members: Vec::new(),
            member_client_addrs: Vec::new(),
            pid: 4242,
            uptime_ms: 1000,
        };
        let fields: StatusFields = status.fields().into_iter().collect();
        assert_eq!(number(&fields, field::ID), Ok(2));
        assert_eq!(text(&fields, field::ROLE).as_deref(), Ok("leader"));
        assert_eq!(number(&fields, field::APPLIED_INDEX), Ok(106));
        assert_eq!(number(&fields, &match_index_field(3)), Ok(90));
        assert_eq!(
            optional_incarnation(&fields),
            Ok(Some("a41f0c9d22e3b871".to_string()))
        );
        assert_eq!(optional_flag(&fields, field::REGISTERED), Ok(Some(true)));
        assert_eq!(id_list(&fields, field::STRANGERS), Ok(vec![3]));
        assert_eq!(number(&fields, field::UPTIME_MS), Ok(1000));
        assert_eq!(id_list(&fields, field::VOTERS), Ok(vec![1, 2, 3]));
        assert_eq!(id_list(&fields, field::LEARNERS), Ok(vec![4]));
        assert_eq!(id_list(&fields, field::PREVIOUS_VOTERS), Ok(vec![1, 2]));
        assert_eq!(number(&fields, field::MEMBERSHIP_INDEX), Ok(99));
        assert_eq!(incarnation_text(1).len(), INCARNATION_HEX_CHARS);

        let idle = NodeStatus {
            strangers: Vec::new(),
            ..status
        };
        let fields: StatusFields = idle.fields().into_iter().collect();
        assert_eq!(fields[field::STRANGERS], "");
        assert_eq!(id_list(&fields, field::STRANGERS), Ok(Vec::new()));
    }
}
