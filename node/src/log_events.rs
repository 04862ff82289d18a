//! The name of every event a node writes to its JSON log.
//!
//! Each log line carries `event=<name>` plus fields with units (see
//! DESIGN.md "Logs and evidence"). The node logs with these constants, and
//! everything that reads the logs (the dashboard, the gate, the benchmarks
//! and the tests) matches on the same constants, so a renamed event cannot
//! leave a reader looking for a line that is no longer written.

// Consensus: what the core reports through `Ready::events` (driver/events.rs).
pub const ELECTION_TIMEOUT: &str = "election_timeout";
pub const LEADER_LOST: &str = "leader_lost";
pub const BECAME_PRECANDIDATE: &str = "became_precandidate";
pub const BECAME_CANDIDATE: &str = "became_candidate";
pub const BECAME_LEADER: &str = "became_leader";
pub const BECAME_FOLLOWER: &str = "became_follower";
pub const STEPPED_DOWN: &str = "stepped_down";
pub const VOTE_GRANTED: &str = "vote_granted";
pub const VOTE_REFUSED: &str = "vote_refused";
pub const SNAPSHOT_SENT: &str = "snapshot_sent";
pub const SNAPSHOT_INSTALLED: &str = "snapshot_installed";
pub const TRANSFER_STARTED: &str = "transfer_started";
pub const TRANSFER_ABORTED: &str = "transfer_aborted";
pub const PEER_INCARNATION_CHANGED: &str = "peer_incarnation_changed";
pub const AWAITING_READMISSION: &str = "awaiting_readmission";
pub const READMISSION_PROPOSED: &str = "readmission_proposed";
pub const MEMBER_READMITTED: &str = "member_readmitted";
pub const MEMBERSHIP_COMMITTED: &str = "membership_committed";

// Membership changes asked for by clients (driver/run.rs) and joining a
// running cluster (join.rs).
pub const MEMBERSHIP_CHANGED: &str = "membership_changed";
pub const CONF_CHANGE_PROPOSED: &str = "conf_change_proposed";
pub const CONF_CHANGE_REFUSED: &str = "conf_change_refused";
pub const JOIN_REQUESTED: &str = "join_requested";
pub const JOINED_AS_LEARNER: &str = "joined_as_learner";
pub const PROMOTED: &str = "promoted";
pub const JOIN_RETRY: &str = "join_retry";

// The driver's own loop: peer links, bad input, stopping (driver/run.rs).
pub const PEER_UP: &str = "peer_up";
pub const PEER_DOWN: &str = "peer_down";
pub const PEER_MESSAGE_REFUSED: &str = "peer_message_refused";
pub const BAD_ENTRY: &str = "bad_entry";
pub const GRACEFUL_STOP: &str = "graceful_stop";
pub const STOPPED: &str = "stopped";

// Snapshots and log compaction (driver/compaction.rs, node.rs, driver/run.rs).
pub const LOG_COMPACTED: &str = "log_compacted";
pub const COMPACT_REFUSED: &str = "compact_refused";
pub const SNAPSHOT_FAILED: &str = "snapshot_failed";
pub const SNAPSHOT_MAP_FAILED: &str = "snapshot_map_failed";
pub const SNAPSHOT_RESTORED: &str = "snapshot_restored";

// Storage: recovery at start and housekeeping (node.rs, storage, driver/persister.rs).
pub const RECOVERY: &str = "recovery";
pub const SNAPSHOT_SKIPPED: &str = "snapshot_skipped";
pub const STORAGE_CLEANUP_FAILED: &str = "storage_cleanup_failed";
pub const WAL_FINAL_SYNC_FAILED: &str = "wal_final_sync_failed";

// The process: start, identity, configuration, fatal errors (node.rs).
pub const STARTED: &str = "started";
pub const IDENTITY_CREATED: &str = "identity_created";
pub const CONFIG_WARNING: &str = "config_warning";
pub const FATAL: &str = "fatal";

// Transport: peer links, dialled and accepted (transport/).
pub const TRANSPORT_LISTENING: &str = "transport_listening";
pub const PEER_CONNECTED: &str = "peer_connected";
pub const PEER_DIAL_FAILED: &str = "peer_dial_failed";
pub const PEER_DISCONNECTED: &str = "peer_disconnected";
pub const PEER_REJECTED: &str = "peer_rejected";
pub const PEER_ACCEPTED: &str = "peer_accepted";
pub const PEER_ACCEPT_FAILED: &str = "peer_accept_failed";
pub const PEER_LINK_CLOSED: &str = "peer_link_closed";
pub const PEER_LINK_ADDED: &str = "peer_link_added";
pub const PEER_LINK_REMOVED: &str = "peer_link_removed";
pub const MESSAGE_DROPPED: &str = "message_dropped";

// The RESP server and its connections (resp/).
pub const CLIENT_CONNECTED: &str = "client_connected";
pub const CLIENT_DISCONNECTED: &str = "client_disconnected";
pub const CLIENT_PROTOCOL_ERROR: &str = "client_protocol_error";
pub const CLIENT_HTTP_REQUEST_REFUSED: &str = "client_http_request_refused";
pub const CLIENT_CLOSE_DRAIN_TIMEOUT: &str = "client_close_drain_timeout";
pub const CLIENT_ACCEPT_FAILED: &str = "client_accept_failed";
pub const CLIENT_REFUSED: &str = "client_refused";
pub const CLIENT_SERVER_STOPPED: &str = "client_server_stopped";

// The cluster client the tools use (client/cluster.rs).
pub const CLIENT_REDIRECT: &str = "client_redirect";
pub const CLIENT_RETRY: &str = "client_retry";

/// Every name above, to check they stay distinct.
pub const ALL: &[&str] = &[
    ELECTION_TIMEOUT,
    LEADER_LOST,
    BECAME_PRECANDIDATE,
    BECAME_CANDIDATE,
    BECAME_LEADER,
    BECAME_FOLLOWER,
    STEPPED_DOWN,
    VOTE_GRANTED,
    VOTE_REFUSED,
    SNAPSHOT_SENT,
    SNAPSHOT_INSTALLED,
    TRANSFER_STARTED,
    TRANSFER_ABORTED,
    PEER_INCARNATION_CHANGED,
    AWAITING_READMISSION,
    READMISSION_PROPOSED,
    MEMBER_READMITTED,
    MEMBERSHIP_COMMITTED,
    PEER_UP,
    PEER_DOWN,
    PEER_MESSAGE_REFUSED,
    BAD_ENTRY,
    GRACEFUL_STOP,
    STOPPED,
    LOG_COMPACTED,
    COMPACT_REFUSED,
    SNAPSHOT_FAILED,
    SNAPSHOT_MAP_FAILED,
    SNAPSHOT_RESTORED,
    RECOVERY,
    SNAPSHOT_SKIPPED,
    STORAGE_CLEANUP_FAILED,
    WAL_FINAL_SYNC_FAILED,
    STARTED,
    IDENTITY_CREATED,
    CONFIG_WARNING,
    FATAL,
    TRANSPORT_LISTENING,
    PEER_CONNECTED,
    PEER_DIAL_FAILED,
    PEER_DISCONNECTED,
    PEER_REJECTED,
    PEER_ACCEPTED,
    PEER_ACCEPT_FAILED,
    PEER_LINK_CLOSED,
    MESSAGE_DROPPED,
    CLIENT_CONNECTED,
    CLIENT_DISCONNECTED,
    CLIENT_PROTOCOL_ERROR,
    CLIENT_HTTP_REQUEST_REFUSED,
    CLIENT_CLOSE_DRAIN_TIMEOUT,
    CLIENT_ACCEPT_FAILED,
    CLIENT_REFUSED,
    CLIENT_SERVER_STOPPED,
    CLIENT_REDIRECT,
    CLIENT_RETRY,
];

#[cfg(test)]
mod tests {
    use super::ALL;

    #[test]
    fn event_names_are_distinct_snake_case_words() {
        let mut names = ALL.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len(), "two events share a name");
        for name in ALL {
            let snake_case = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            assert!(snake_case, "event name '{name}' is not snake_case");
        }
    }
}
