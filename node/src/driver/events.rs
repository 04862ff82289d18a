//! Turns core events into the JSON log lines the dashboard and the gate read.
//!
//! Every line carries `event=<name>` plus fields with units; see DESIGN.md
//! "Logs and evidence".

use raftkv::raft::{Event, StepDownReason};
use tracing::info;

/// Logs one core event. `tick_ms` converts tick counts to milliseconds and
/// `had_leader` says whether this node knew a leader when the event fired.
pub(crate) fn log_event(event: &Event, tick_ms: u64, had_leader: bool) {
    match event {
        Event::ElectionTimeout {
            term,
            ticks_since_leader_contact,
        } => {
            let silence_ms = ticks_since_leader_contact.map(|t| t * tick_ms);
            info!(event = "election_timeout", term, silence_ms);
            if had_leader {
                info!(
                    event = "leader_lost",
                    term,
                    silence_ms,
                    reason = "election timeout"
                );
            }
        }
        Event::BecamePreCandidate { term } => info!(event = "became_precandidate", term),
        Event::BecameCandidate { term } => info!(event = "became_candidate", term),
        Event::BecameLeader { term } => info!(event = "became_leader", term),
        Event::BecameFollower { term, leader } => info!(event = "became_follower", term, leader),
        Event::SteppedDown { term, reason } => {
            let reason = match reason {
                StepDownReason::HigherTerm => "higher term seen",
                StepDownReason::LostQuorum => "lost contact with a majority",
                StepDownReason::Transferred => "leadership transferred",
            };
            info!(event = "stepped_down", term, reason)
        }
        Event::VoteGranted {
            candidate,
            term,
            pre_vote,
        } => {
            info!(event = "vote_granted", candidate, term, pre_vote)
        }
        Event::VoteRefused {
            candidate,
            term,
            pre_vote,
            reason,
        } => {
            info!(
                event = "vote_refused",
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
            info!(event = "snapshot_sent", to, index, term, bytes)
        }
        Event::SnapshotInstalled { index, term } => {
            info!(event = "snapshot_installed", index, term)
        }
        Event::TransferStarted { to, term } => info!(event = "transfer_started", to, term),
        Event::TransferAborted { to, term } => info!(event = "transfer_aborted", to, term),
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
                event = "peer_incarnation_changed",
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
                event = "awaiting_readmission",
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
            event = "readmission_proposed",
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
            event = "member_readmitted",
            peer,
            incarnation = hex(*incarnation),
            index
        ),
    }
}

/// An incarnation as logs and RAFT.STATUS show it.
fn hex(incarnation: u64) -> String {
    format!("{incarnation:016x}")
}
