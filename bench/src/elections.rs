//! Elections during a throughput run: every node's RAFT.STATUS before and
//! after (highest term, leader), the leader seen by a light poll during the
//! run (leader changes), and, on a cluster the bench started, the
//! `became_leader` lines its nodes logged meanwhile. A healthy cluster under
//! load keeps one leader and one term: any election shows up here.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use raftkv_node::log_events;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::poll::{parse_event_line, FileTail};
use crate::status::{NodeStatus, StatusFetcher};

/// During the run every node is asked for RAFT.STATUS this often (3 small
/// requests per interval: negligible next to the load).
const ELECTION_POLL_MS: u64 = 200;
/// One RAFT.STATUS request may take this long (a node under load answers late).
const ELECTION_STATUS_DEADLINE_MS: u64 = 1_000;
/// After the run, wait this long at most for log lines still being written
/// (nodes write their event log from a background thread).
const LOG_FLUSH_WAIT_MS: u64 = 300;
/// The node logs are re-read this often while waiting for that flush.
const LOG_FLUSH_POLL_MS: u64 = 20;

/// The cluster's terms and leader, as far as the nodes answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TermSnapshot {
    /// Highest term any node reported (0 when none answered).
    pub(crate) max_term: u64,
    /// The node that said it leads, if exactly one did.
    pub(crate) leader: Option<u64>,
    /// Nodes that answered.
    pub(crate) answered: usize,
}

impl TermSnapshot {
    fn of(statuses: &[NodeStatus]) -> TermSnapshot {
        let leaders: Vec<u64> = statuses
            .iter()
            .filter(|s| s.is_leader())
            .map(|s| s.id)
            .collect();
        TermSnapshot {
            max_term: statuses.iter().map(|s| s.term).max().unwrap_or(0),
            leader: match leaders.as_slice() {
                [one] => Some(*one),
                _ => None,
            },
            answered: statuses.len(),
        }
    }
}

/// What one run saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ElectionReport {
    pub(crate) before: TermSnapshot,
    pub(crate) after: TermSnapshot,
    /// Times the poll saw the leader change (to another node, or to none).
    pub(crate) leader_changes: u64,
    /// Polls made during the run.
    pub(crate) polls: u64,
    /// `became_leader` lines in the node logs during the run (a cluster
    /// the bench started; `None` when attached).
    pub(crate) became_leader_lines: Option<u64>,
}

impl ElectionReport {
    /// Highest term after minus before: every election (won or not) raises it.
    pub(crate) fn term_changes(&self) -> u64 {
        self.after.max_term.saturating_sub(self.before.max_term)
    }

    /// The elections the run saw: the largest of the term changes, the
    /// leader changes and the `became_leader` lines (each can miss some,
    /// none counts one that did not happen).
    pub(crate) fn elections(&self) -> u64 {
        self.term_changes()
            .max(self.leader_changes)
            .max(self.became_leader_lines.unwrap_or(0))
    }
}

/// Watches a run from start to finish.
pub(crate) struct ElectionWatch {
    before: TermSnapshot,
    cancel: CancellationToken,
    poller: JoinHandle<(u64, u64)>,
    addrs: Vec<String>,
    tails: Vec<(u64, FileTail)>,
}

/// Every node's status that answered within the deadline.
async fn statuses(addrs: &[String]) -> Vec<NodeStatus> {
    let deadline = Duration::from_millis(ELECTION_STATUS_DEADLINE_MS);
    futures::future::join_all(
        addrs
            .iter()
            .map(|addr| async move { StatusFetcher::new(addr.clone()).fetch(deadline).await }),
    )
    .await
    .into_iter()
    .filter_map(Result::ok)
    .collect()
}

impl ElectionWatch {
    /// Takes the "before" picture and starts the poll. `logs` are the
    /// node logs (id, path) of a cluster the bench started, read from their
    /// current end.
    pub(crate) async fn start(addrs: Vec<String>, logs: Vec<(u64, PathBuf)>) -> ElectionWatch {
        let tails = logs
            .into_iter()
            .map(|(id, path)| (id, FileTail::from_end(path)))
            .collect();
        let before = TermSnapshot::of(&statuses(&addrs).await);
        let cancel = CancellationToken::new();
        let poller = tokio::spawn(poll_leaders(addrs.clone(), before.leader, cancel.clone()));
        ElectionWatch {
            before,
            cancel,
            poller,
            addrs,
            tails,
        }
    }

    /// Stops the poll and takes the "after" picture.
    pub(crate) async fn finish(self) -> ElectionReport {
        let ElectionWatch {
            before,
            cancel,
            poller,
            addrs,
            mut tails,
        } = self;
        cancel.cancel();
        let (leader_changes, polls) = poller.await.unwrap_or((0, 0));
        let after = TermSnapshot::of(&statuses(&addrs).await);
        let became_leader_lines = if tails.is_empty() {
            None
        } else {
            let expected = after.max_term.saturating_sub(before.max_term);
            Some(count_became_leader(&mut tails, expected).await)
        };
        ElectionReport {
            before,
            after,
            leader_changes,
            polls,
            became_leader_lines,
        }
    }
}

/// `became_leader` lines logged since the tails started. When `expected`
/// elections are known from the terms, their lines may still be on their way
/// to the files: wait for them a little (never longer than `LOG_FLUSH_WAIT_MS`).
async fn count_became_leader(tails: &mut [(u64, FileTail)], expected: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(LOG_FLUSH_WAIT_MS);
    let mut count = 0;
    loop {
        for (id, tail) in tails.iter_mut() {
            count += tail
                .read_new_lines()
                .iter()
                .filter(|line| {
                    parse_event_line(*id, line, 0).event.as_deref()
                        == Some(log_events::BECAME_LEADER)
                })
                .count() as u64;
        }
        if count >= expected || tokio::time::Instant::now() >= deadline {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(LOG_FLUSH_POLL_MS)).await;
    }
}

/// Polls every node until cancelled; returns (leader changes, polls).
async fn poll_leaders(
    addrs: Vec<String>,
    mut leader: Option<u64>,
    cancel: CancellationToken,
) -> (u64, u64) {
    let mut fetchers: BTreeMap<String, StatusFetcher> = addrs
        .iter()
        .map(|addr| (addr.clone(), StatusFetcher::new(addr.clone())))
        .collect();
    let deadline = Duration::from_millis(ELECTION_STATUS_DEADLINE_MS);
    let mut interval = tokio::time::interval(Duration::from_millis(ELECTION_POLL_MS));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut changes, mut polls) = (0u64, 0u64);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return (changes, polls),
            _ = interval.tick() => {}
        }
        let answers = futures::future::join_all(
            fetchers
                .values_mut()
                .map(|fetcher| async move { fetcher.fetch(deadline).await }),
        )
        .await;
        let answered: Vec<NodeStatus> = answers.into_iter().filter_map(Result::ok).collect();
        if answered.is_empty() {
            continue; // Nothing known: neither a change nor a poll.
        }
        polls += 1;
        let now = TermSnapshot::of(&answered).leader;
        if now != leader {
            changes += 1;
            leader = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Role;

    fn status(id: u64, role: Role, term: u64) -> NodeStatus {
        NodeStatus {
            term,
            pid: 1,
            uptime_ms: 1,
            ..crate::status::example_status(id, role)
        }
    }

    #[test]
    fn a_snapshot_takes_the_highest_term_and_the_single_leader() {
        let statuses = [
            status(1, Role::Follower, 4),
            status(2, Role::Leader, 5),
            status(3, Role::Follower, 5),
        ];
        let snapshot = TermSnapshot::of(&statuses);
        assert_eq!(
            snapshot,
            TermSnapshot {
                max_term: 5,
                leader: Some(2),
                answered: 3
            }
        );
        let two_leaders = [status(1, Role::Leader, 4), status(2, Role::Leader, 5)];
        assert_eq!(TermSnapshot::of(&two_leaders).leader, None);
        assert_eq!(TermSnapshot::of(&[]), TermSnapshot::default());
    }

    #[test]
    fn elections_are_the_largest_of_the_three_counts() {
        let quiet = ElectionReport {
            before: TermSnapshot {
                max_term: 2,
                leader: Some(1),
                answered: 3,
            },
            after: TermSnapshot {
                max_term: 2,
                leader: Some(1),
                answered: 3,
            },
            leader_changes: 0,
            polls: 10,
            became_leader_lines: Some(0),
        };
        assert_eq!(quiet.term_changes(), 0);
        assert_eq!(quiet.elections(), 0);
        let moved = ElectionReport {
            after: TermSnapshot {
                max_term: 4,
                leader: Some(3),
                answered: 3,
            },
            leader_changes: 1,
            became_leader_lines: Some(1),
            ..quiet.clone()
        };
        assert_eq!(moved.term_changes(), 2);
        assert_eq!(moved.elections(), 2);
        let seen_in_logs_only = ElectionReport {
            became_leader_lines: Some(3),
            ..quiet
        };
        assert_eq!(seen_in_logs_only.elections(), 3);
    }
}
