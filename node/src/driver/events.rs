//! Turns core events into the JSON log lines the dashboard and the gate read.
//!
//! Every line carries `event=<name>` plus fields with units; see DESIGN.md
//! "Logs and evidence". The names are the constants of `crate::log_events`,
//! which the readers of these lines match on too.

use raftkv::raft::{Event, StepDownReason};
use tracing::info;

use crate::log_events;

/// Logs one core event. `tick_ms` converts tick counts to milliseconds and
/// `had_leader` says whether this node knew a leader when the event fired.
pub(crate) fn log_event(event: &Event, tick_ms: u64, had_leader: bool) {
    match event {
        Event::ElectionTimeout {
            term,
            ticks_since_leader_contact,
        } => {
            let silence_ms = ticks_since_leader_contact.map(|t| t * tick_ms);
            info!(event = log_events::ELECTION_TIMEOUT, term, silence_ms);
            if had_leader {
                info!(
                    event = log_events::LEADER_LOST,
                    term,
                    silence_ms,
                    reason = "election timeout"
                );
            }
        }
        Event::BecamePreCandidate { term } => info!(event = log_events::BECAME_PRECANDIDATE, term),
        Event::BecameCandidate { term } => info!(event = log_events::BECAME_CANDIDATE, term),
        Event::BecameLeader { term } => info!(event = log_events::BECAME_LEADER, term),
        Event::BecameFollower { term, leader } => {
            info!(event = log_events::BECAME_FOLLOWER, term, leader)
        }
        Event::SteppedDown { term, reason } => {
            let reason = match reason {
                StepDownReason::HigherTerm => "higher term seen",
                StepDownReason::LostQuorum => "lost contact with a majority",
                StepDownReason::Transferred => "leadership transferred",
                StepDownReason::Removed => "removed from the cluster's configuration",
            };
            info!(event = log_events::STEPPED_DOWN, term, reason)
        }
        Event::VoteGranted {
            candidate,
            term,
            pre_vote,
        } => {
            info!(event = log_events::VOTE_GRANTED, candidate, term, pre_vote)
        }
        Event::VoteRefused {
            candidate,
            term,
            pre_vote,
            reason,
        } => {
            info!(
                event = log_events::VOTE_REFUSED,
                candidate,
                term,
                pre_vote,
                reason = *reason
            )
        }
        Event::SnapshotSent {
            to,
            index,
            term,
            bytes,
        } => {
            info!(event = log_events::SNAPSHOT_SENT, to, index, term, bytes)
        }
        Event::SnapshotInstalled { index, term } => {
            info!(event = log_events::SNAPSHOT_INSTALLED, index, term)
        }
        Event::TransferStarted { to, term } => {
            info!(event = log_events::TRANSFER_STARTED, to, term)
        }
        Event::TransferAborted { to, term } => {
            info!(event = log_events::TRANSFER_ABORTED, to, term)
        }
        Event::PeerIncarnationChanged {
            peer,
            incarnation,
            registered,
        } => {
            let (incarnation, registered) = (hex(*incarnation), hex(*registered));
            let message = format!(
                "node {peer} came back with an empty disk (incarnation {incarnation} was \
                 {registered}): not counted as a voter until it is re-admitted"
            );
            info!(
                event = log_events::PEER_INCARNATION_CHANGED,
                peer,
                incarnation,
                registered_incarnation = registered,
                message
            )
        }
        Event::AwaitingReadmission {
            incarnation,
            registered,
        } => {
            let (incarnation, registered) = (hex(*incarnation), hex(*registered));
            let message = format!(
                "this node came back with an empty disk (incarnation {incarnation}; the cluster \
                 registered {registered}): not counted as a voter until it is re-admitted"
            );
            info!(
                event = log_events::AWAITING_READMISSION,
                incarnation,
                registered_incarnation = registered,
                message
            )
        }
        Event::ReadmissionProposed {
            peer,
            incarnation,
            index,
            match_index,
        } => info!(
            event = log_events::READMISSION_PROPOSED,
            peer,
            incarnation = hex(*incarnation),
            index,
            match_index
        ),
        Event::MemberReadmitted {
            peer,
            incarnation,
            index,
        } => info!(
            event = log_events::MEMBER_READMITTED,
            peer,
            incarnation = hex(*incarnation),
            index
        ),
        Event::MembershipCommitted {
            index,
            voters,
            learners,
        } => info!(
            event = log_events::MEMBERSHIP_COMMITTED,
            index,
            voters = format!("{voters:?}"),
            learners = format!("{learners:?}")
        ),
    }
}

/// An incarnation as logs and RAFT.STATUS show it.
fn hex(incarnation: u64) -> String {
    super::status::incarnation_text(incarnation)
}
