//! Pure evaluation of what the gate observed: leader agreement, detection
//! and election lines in node logs. No I/O and no waiting here: `probes`
//! reads the node logs, the scenario polls, and these judge. Read-back keys
//! are judged by `crate::key_check`, shared with the dashboard's `v`.

use raftkv_node::log_events;

use crate::gate_record;
use crate::poll::LogLine;
use crate::status::NodeStatus;

/// The leader every answering node agrees on, if a majority of the
/// `cluster_size` answered, exactly one of them leads in a term above
/// `above_term`, and every other answering node follows it in that term.
/// Otherwise why not, for the failure message.
pub fn agreed_leader(
    polled: &[(u64, Result<NodeStatus, String>)],
    cluster_size: usize,
    above_term: u64,
) -> Result<(u64, u64), String> {
    let answered: Vec<(u64, &NodeStatus)> = polled
        .iter()
        .filter_map(|(id, result)| result.as_ref().ok().map(|s| (*id, s)))
        .collect();
    let majority = cluster_size / 2 + 1;
    if answered.len() < majority {
        let silent: Vec<String> = polled
            .iter()
            .filter_map(|(id, result)| result.as_ref().err().map(|e| format!("node {id}: {e}")))
            .collect();
        return Err(format!(
            "{} of {cluster_size} nodes answered RAFT.STATUS, a majority is {majority} ({})",
            answered.len(),
            silent.join("; ")
        ));
    }
    let leaders: Vec<&(u64, &NodeStatus)> =
        answered.iter().filter(|(_, s)| s.is_leader()).collect();
    let (leader_id, leader) = match leaders.as_slice() {
        [] => {
            let roles: Vec<String> = answered
                .iter()
                .map(|(id, s)| format!("node {id} {} in term {}", s.role.name(), s.term))
                .collect();
            return Err(format!("no leader yet ({})", roles.join(", ")));
        }
        [one] => (one.0, one.1),
        many => {
            let claims: Vec<String> = many
                .iter()
                .map(|(id, s)| format!("node {id} (term {})", s.term))
                .collect();
            return Err(format!(
                "{} nodes claim leadership: {}",
                many.len(),
                claims.join(", ")
            ));
        }
    };
    if leader.term <= above_term {
        return Err(format!(
            "node {leader_id} leads in term {}, not above term {above_term}",
            leader.term
        ));
    }
    for (id, status) in &answered {
        if *id != leader_id && (status.leader_id != leader_id || status.term != leader.term) {
            return Err(format!(
                "node {id} follows node {} in term {}, not node {leader_id} in term {}",
                status.leader_id, status.term, leader.term
            ));
        }
    }
    Ok((leader_id, leader.term))
}

/// The first line at or after `after_ms` that records losing the leader:
/// `leader_lost`, or `election_timeout` (which fires only without leader contact).
pub fn find_detection(lines: &[(usize, LogLine)], after_ms: u64) -> Option<(usize, &LogLine)> {
    lines
        .iter()
        .find(|(_, line)| {
            line.at_ms >= after_ms
                && matches!(
                    line.event.as_deref(),
                    Some(log_events::LEADER_LOST | log_events::ELECTION_TIMEOUT)
                )
        })
        .map(|(number, line)| (*number, line))
}

/// The first `became_leader` line for `term` at or after `after_ms`.
pub fn find_became_leader(
    lines: &[(usize, LogLine)],
    term: u64,
    after_ms: u64,
) -> Option<(usize, &LogLine)> {
    lines
        .iter()
        .find(|(_, line)| {
            line.at_ms >= after_ms
                && line.event.as_deref() == Some(log_events::BECAME_LEADER)
                && line.field_u64("term") == Some(term)
        })
        .map(|(number, line)| (*number, line))
}

/// The first 16 hex digits of a digest: enough to tell digests apart in a line.
pub(crate) fn short(digest: &str) -> &str {
    digest.get(..16).unwrap_or(digest)
}

pub(crate) fn detection_of(
    node: u64,
    line_number: usize,
    line: &LogLine,
    killed_at_ms: u64,
) -> gate_record::Detection {
    gate_record::Detection {
        node,
        after_kill_ms: line.at_ms.saturating_sub(killed_at_ms),
        event: line.event.clone().unwrap_or_default(),
        silence_ms: line.field_u64("silence_ms"),
        reason: line.field("reason").unwrap_or("").to_string(),
        log_line: line_number,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock;
    use crate::poll::parse_event_line;
    use crate::status::example_fields as fields;

    fn status(id: u64, role: &str, term: u64, leader_id: u64) -> NodeStatus {
        let id_text = id.to_string();
        let term_text = term.to_string();
        let leader_text = leader_id.to_string();
        NodeStatus::from_fields(&fields(&[
            ("id", &id_text),
            ("role", role),
            ("term", &term_text),
            ("leader_id", &leader_text),
            ("commit_index", "10"),
            ("applied_index", "10"),
            ("last_index", "10"),
            ("keys", "5"),
            ("digest", "abc"),
        ]))
        .unwrap()
    }

    #[test]
    fn one_leader_everyone_follows_is_agreed() {
        let polled = vec![
            (1, Ok(status(1, "follower", 3, 2))),
            (2, Ok(status(2, "leader", 3, 2))),
            (3, Ok(status(3, "follower", 3, 2))),
        ];
        assert_eq!(agreed_leader(&polled, 3, 0), Ok((2, 3)));
        assert_eq!(agreed_leader(&polled, 3, 2), Ok((2, 3)));
        assert!(agreed_leader(&polled, 3, 3)
            .unwrap_err()
            .contains("not above term 3"));
    }

    #[test]
    fn leader_disagreements_and_silence_are_explained() {
        // Every node answers; each case says how the refusal begins.
        let refusals = [
            (
                [status(1, "leader", 2, 1), status(2, "leader", 3, 2)],
                "2 nodes claim leadership: node 1 (term 2), node 2 (term 3)",
            ),
            (
                [status(1, "candidate", 4, 0), status(2, "follower", 3, 0)],
                "no leader yet (node 1 candidate in term 4",
            ),
            (
                [status(1, "leader", 3, 1), status(2, "follower", 2, 3)],
                "node 2 follows node 3 in term 2",
            ),
        ];
        for (answers, expected) in refusals {
            let polled: Vec<(u64, Result<NodeStatus, String>)> =
                answers.into_iter().map(|s| (s.id, Ok(s))).collect();
            let error = agreed_leader(&polled, 3, 0).unwrap_err();
            assert!(error.starts_with(expected), "{error}");
        }
        let silent = vec![
            (1, Ok(status(1, "leader", 3, 1))),
            (2, Err("connection refused".to_string())),
            (3, Err("no answer within 1000 ms".to_string())),
        ];
        let error = agreed_leader(&silent, 3, 0).unwrap_err();
        assert!(error.contains("1 of 3 nodes answered"), "{error}");
        assert!(error.contains("node 2: connection refused"), "{error}");
        // A silent minority does not block agreement (its read-back will fail instead).
        let minority = vec![
            (1, Ok(status(1, "leader", 3, 1))),
            (2, Ok(status(2, "follower", 3, 1))),
            (3, Err("connection refused".to_string())),
        ];
        assert_eq!(agreed_leader(&minority, 3, 0), Ok((1, 3)));
    }

    fn log(lines: &[&str]) -> Vec<(usize, LogLine)> {
        lines
            .iter()
            .enumerate()
            .map(|(i, line)| (i + 1, parse_event_line(2, line, 0)))
            .collect()
    }

    #[test]
    fn detection_is_the_first_loss_line_after_the_kill() {
        let lines = log(&[
            r#"{"timestamp":"2024-05-01T10:00:00.000Z","level":"INFO","fields":{"event":"leader_lost","silence_ms":400,"reason":"election timeout","term":1}}"#,
            r#"{"timestamp":"2024-05-01T10:00:05.000Z","level":"INFO","fields":{"event":"peer_down","peer":3}}"#,
            r#"{"timestamp":"2024-05-01T10:00:05.004Z","level":"INFO","fields":{"event":"leader_lost","leader":1,"silence_ms":38,"reason":"connection reset by peer","term":2}}"#,
            r#"{"timestamp":"2024-05-01T10:00:05.300Z","level":"INFO","fields":{"event":"election_timeout","silence_ms":300,"term":2}}"#,
            r#"{"timestamp":"2024-05-01T10:00:05.310Z","level":"INFO","fields":{"event":"became_leader","term":3}}"#,
        ]);
        let kill_ms = clock::parse_rfc3339_ms("2024-05-01T10:00:05.000Z").unwrap();
        let (number, line) = find_detection(&lines, kill_ms).unwrap();
        assert_eq!(number, 3, "the earlier loss happened before the kill");
        let detection = detection_of(2, number, line, kill_ms);
        assert_eq!(detection.after_kill_ms, 4);
        assert_eq!(detection.silence_ms, Some(38));
        assert_eq!(detection.reason, "connection reset by peer");
        assert_eq!(detection.event, log_events::LEADER_LOST);
        assert!(find_detection(&lines, kill_ms + 1_000).is_none());

        let (number, line) = find_became_leader(&lines, 3, kill_ms).unwrap();
        assert_eq!((number, line.at_ms - kill_ms), (5, 310));
        assert!(find_became_leader(&lines, 4, kill_ms).is_none());
    }
}
