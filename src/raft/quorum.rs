//! Majority math: the pure functions every quorum decision goes through
//! (commit index, election outcome, read confirmation, check-quorum).

/// How many of `voter_count` voters form a majority.
pub(crate) fn majority(voter_count: usize) -> usize {
    voter_count / 2 + 1
}

/// The largest value that a majority of `values` (one per voter) reach.
///
/// For match indexes this is the highest index stored on a majority; for
/// acknowledged read rounds it is the newest round a majority confirmed.
/// An empty slice yields 0.
pub(crate) fn majority_value(values: &[u64]) -> u64 {
    if values.is_empty() {
        return 0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted[majority(values.len()) - 1]
}

/// The state of an election among `voter_count` voters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VoteResult {
    Won,
    Lost,
    Pending,
}

/// Decides an election from the granted and refused counts so far.
pub(crate) fn vote_result(voter_count: usize, granted: usize, refused: usize) -> VoteResult {
    let needed = majority(voter_count);
    if granted >= needed {
        VoteResult::Won
    } else if voter_count.saturating_sub(refused) < needed {
        VoteResult::Lost
    } else {
        VoteResult::Pending
    }
}

/// Decides an election that needs every one of `voter_count` votes (a
/// cluster without any configuration; see `raft::membership`).
pub(crate) fn unanimous_vote_result(
    voter_count: usize,
    granted: usize,
    refused: usize,
) -> VoteResult {
    if refused > 0 {
        VoteResult::Lost
    } else if granted >= voter_count {
        VoteResult::Won
    } else {
        VoteResult::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unanimous_election_needs_every_vote_and_fails_on_one_refusal() {
        assert_eq!(unanimous_vote_result(3, 2, 0), VoteResult::Pending);
        assert_eq!(unanimous_vote_result(3, 3, 0), VoteResult::Won);
        assert_eq!(unanimous_vote_result(3, 2, 1), VoteResult::Lost);
        assert_eq!(unanimous_vote_result(1, 1, 0), VoteResult::Won);
    }

    #[test]
    fn majority_of_cluster_sizes() {
        assert_eq!(majority(1), 1);
        assert_eq!(majority(2), 2);
        assert_eq!(majority(3), 2);
        assert_eq!(majority(4), 3);
        assert_eq!(majority(5), 3);
    }

    #[test]
    fn majority_value_is_the_index_a_majority_reached() {
        assert_eq!(majority_value(&[]), 0);
        assert_eq!(majority_value(&[7]), 7);
        assert_eq!(majority_value(&[5, 9, 1]), 5);
        assert_eq!(majority_value(&[9, 9, 1]), 9);
        assert_eq!(majority_value(&[1, 2, 3, 4]), 2);
        assert_eq!(majority_value(&[10, 3, 8, 3, 1]), 3);
        assert_eq!(majority_value(&[10, 9, 8, 3, 1]), 8);
    }

    #[test]
    fn majority_value_does_not_depend_on_order() {
        let base = [4u64, 8, 1, 6, 6];
        let mut rotated = base;
        for _ in 0..base.len() {
            rotated.rotate_left(1);
            assert_eq!(majority_value(&rotated), majority_value(&base));
        }
    }

    #[test]
    fn vote_result_wins_loses_and_waits() {
        assert_eq!(vote_result(1, 1, 0), VoteResult::Won);
        assert_eq!(vote_result(3, 1, 0), VoteResult::Pending);
        assert_eq!(vote_result(3, 2, 0), VoteResult::Won);
        assert_eq!(vote_result(3, 1, 1), VoteResult::Pending);
        assert_eq!(vote_result(3, 1, 2), VoteResult::Lost);
        assert_eq!(vote_result(5, 2, 2), VoteResult::Pending);
        assert_eq!(vote_result(5, 2, 3), VoteResult::Lost);
        assert_eq!(vote_result(4, 2, 2), VoteResult::Lost);
    }
}
