//! The selection and process control: kill, stop, restart, wipe and the
//! `R` refusal, and what the supervisor reports back.

// Key sequence numbers travel as lists of ranges; a list of one range is meant.
#![allow(clippy::single_range_in_vec_init)]

use super::*;
#[test]
fn selection_moves_wraps_and_refuses_missing_nodes() {
    let mut app = healthy();
    assert_eq!(app.selected, 0);
    key(&mut app, T0 + 4_000, KeyCode::Left);
    assert_eq!(app.selected, 2);
    key(&mut app, T0 + 4_001, KeyCode::Right);
    assert_eq!(app.selected, 0);
    key(&mut app, T0 + 4_002, KeyCode::Char('2'));
    assert_eq!(app.selected, 1);
    key(&mut app, T0 + 4_003, KeyCode::Char('7'));
    assert_eq!(app.selected, 1);
    assert_eq!(
        flash_text(&app),
        "there is no node 7: this cluster has 3 nodes"
    );
}

#[test]
fn k_kills_the_leader_and_selects_it() {
    let mut app = healthy();
    let effects = key(&mut app, T0 + 4_000, KeyCode::Char('k'));
    assert_eq!(effects, vec![Effect::Kill { id: 2 }]);
    assert_eq!(app.selected, 1);
    assert_eq!(
        app.nodes[1].process,
        ProcessState::Stopping {
            pid: 4102,
            graceful: false
        }
    );
    assert_eq!(
        flash_text(&app),
        "kill -9 node 2, leader of term 2 (pid 4102)"
    );
    assert_eq!(
        app.leader_kill.as_ref().map(|k| (k.node, k.at_ms)),
        Some((2, T0 + 4_000))
    );
}

#[test]
fn k_without_a_leader_is_refused_with_the_reason() {
    let mut app = leader_killed();
    assert!(key(&mut app, T0 + 10_250, KeyCode::Char('k')).is_empty());
    assert!(flash_text(&app).starts_with("no leader to kill"));
    let mut fresh = started();
    assert!(key(&mut fresh, T0 + 100, KeyCode::Char('k')).is_empty());
    assert!(flash_text(&fresh).starts_with("no leader to kill"));
}

/// The screen showed node 2 leading; by the time `k` arrives its status has
/// gone stale (a poll late on a loaded machine): `k` still kills the leader
/// the table showed.
#[test]
fn k_kills_the_leader_the_screen_showed_even_when_its_status_went_stale() {
    let mut app = healthy();
    app.note_drawn();
    app.update(Report::Tick, T0 + 3_200 + STATUS_STALE_MS + 1);
    assert!(app.leader().is_none());
    let effects = key(
        &mut app,
        T0 + 3_200 + STATUS_STALE_MS + 2,
        KeyCode::Char('k'),
    );
    assert_eq!(effects, vec![Effect::Kill { id: 2 }]);
    assert!(flash_text(&app).starts_with("kill -9 node 2, leader of term 2"));
}

#[test]
fn process_keys_are_refused_when_attached() {
    let mut app = App::new(Mode::Attached, config(3), T0, Vec::new());
    for (i, leader) in [false, true, false].into_iter().enumerate() {
        let role = if leader {
            crate::status::Role::Leader
        } else {
            crate::status::Role::Follower
        };
        poll(
            &mut app,
            T0 + 10,
            status(i as u64 + 1, role, 2, 2, 7, DIGEST_A),
        );
    }
    for code in ['k', 'x', 's', 'r', 'R', 'p'] {
        assert!(
            key(&mut app, T0 + 20, KeyCode::Char(code)).is_empty(),
            "{code}"
        );
        assert_eq!(flash_text(&app), ATTACHED_REFUSAL, "{code}");
    }
    // Writes and verification still work when attached.
    assert_eq!(
        key(&mut app, T0 + 30, KeyCode::Char('w')),
        vec![Effect::BulkWrite { count: 50 }]
    );
}

#[test]
fn x_kills_the_selected_node_and_refuses_a_dead_one() {
    let mut app = healthy();
    key(&mut app, T0 + 4_000, KeyCode::Char('3'));
    assert_eq!(
        key(&mut app, T0 + 4_001, KeyCode::Char('x')),
        vec![Effect::Kill { id: 3 }]
    );
    assert!(
        app.leader_kill.is_none(),
        "a follower kill is not a leader kill"
    );
    exited(&mut app, T0 + 4_010, 3, ExitKind::Signal(9));
    assert!(key(&mut app, T0 + 4_020, KeyCode::Char('x')).is_empty());
    assert_eq!(
        flash_text(&app),
        "node 3 is not running (killed by SIGKILL); press r to restart it"
    );
    // x on the leader times the failover like k does.
    key(&mut app, T0 + 4_030, KeyCode::Char('2'));
    assert_eq!(
        key(&mut app, T0 + 4_031, KeyCode::Char('x')),
        vec![Effect::Kill { id: 2 }]
    );
    assert!(app.leader_kill.is_some());
}

#[test]
fn s_stops_gracefully_and_says_the_leader_hands_over() {
    let mut app = healthy();
    key(&mut app, T0 + 4_000, KeyCode::Char('2'));
    assert_eq!(
        key(&mut app, T0 + 4_001, KeyCode::Char('s')),
        vec![Effect::Stop { id: 2 }]
    );
    assert!(flash_text(&app).contains("hands leadership over first"));
    assert!(key(&mut app, T0 + 4_002, KeyCode::Char('s')).is_empty());
    assert_eq!(flash_text(&app), "node 2 is already stopping");
    exited(&mut app, T0 + 4_100, 2, ExitKind::Code(0));
    assert!(timeline_text(&app).contains(&"node 2 exited with code 0 (pid 4102)".to_string()));
    assert!(key(&mut app, T0 + 4_200, KeyCode::Char('s')).is_empty());
    assert!(flash_text(&app).starts_with("node 2 is not running (exited with code 0)"));
}

#[test]
fn r_restarts_a_dead_node_and_refuses_while_it_restarts() {
    let mut app = leader_killed();
    assert_eq!(
        key(&mut app, T0 + 11_000, KeyCode::Char('r')),
        vec![Effect::Start {
            id: 2,
            wipe_data: false
        }]
    );
    assert!(app.nodes[1].is_restarting());
    assert!(key(&mut app, T0 + 11_001, KeyCode::Char('r')).is_empty());
    assert_eq!(flash_text(&app), "node 2 is already restarting");
    process(
        &mut app,
        T0 + 11_010,
        2,
        ProcessEvent::Started { pid: 5102 },
    );
    assert_eq!(app.nodes[1].process, ProcessState::Running { pid: 5102 });
}

#[test]
fn r_on_a_running_node_restarts_every_down_node_first() {
    let mut app = leader_killed();
    key(&mut app, T0 + 11_000, KeyCode::Char('1'));
    assert_eq!(
        key(&mut app, T0 + 11_001, KeyCode::Char('r')),
        vec![Effect::Start {
            id: 2,
            wipe_data: false
        }]
    );
}

#[test]
fn r_on_a_running_node_with_none_down_stops_then_starts_it() {
    let mut app = healthy();
    key(&mut app, T0 + 4_000, KeyCode::Char('3'));
    assert_eq!(
        key(&mut app, T0 + 4_001, KeyCode::Char('r')),
        vec![Effect::Stop { id: 3 }]
    );
    assert_eq!(app.nodes[2].restart_pending, Some(false));
    let effects = exited(&mut app, T0 + 4_200, 3, ExitKind::Code(0));
    assert_eq!(
        effects,
        vec![Effect::Start {
            id: 3,
            wipe_data: false
        }]
    );
}

#[test]
fn r_while_a_node_is_stopping_queues_the_restart() {
    let mut app = healthy();
    key(&mut app, T0 + 4_000, KeyCode::Char('3'));
    key(&mut app, T0 + 4_001, KeyCode::Char('x'));
    assert!(key(&mut app, T0 + 4_002, KeyCode::Char('r')).is_empty());
    assert_eq!(flash_text(&app), "node 3 restarts once it has stopped");
    assert_eq!(
        exited(&mut app, T0 + 4_010, 3, ExitKind::Signal(9)),
        vec![Effect::Start {
            id: 3,
            wipe_data: false
        }]
    );
}

#[test]
fn capital_r_stops_a_running_node_and_removes_a_dead_one_first() {
    let mut app = healthy();
    key(&mut app, T0 + 4_000, KeyCode::Char('1'));
    assert_eq!(
        key(&mut app, T0 + 4_001, KeyCode::Char('R')),
        vec![Effect::Stop { id: 1 }]
    );
    assert!(key(&mut app, T0 + 4_002, KeyCode::Char('R')).is_empty());
    assert_eq!(
        flash_text(&app),
        "R refused: replacing node 1 is still in progress"
    );
    let removal = exited(&mut app, T0 + 4_100, 1, ExitKind::Code(0));
    assert!(
        matches!(&removal[..], [Effect::ChangeMembership { .. }]),
        "{removal:?}"
    );
    let mut dead = leader_killed();
    let removal = key(&mut dead, T0 + 11_000, KeyCode::Char('R'));
    assert!(
        matches!(&removal[..], [Effect::ChangeMembership { .. }]),
        "{removal:?}"
    );
}

#[test]
fn spawn_failures_and_unexpected_exits_are_reported() {
    let mut app = started();
    exited(&mut app, T0 + 50, 1, ExitKind::Code(1));
    assert!(timeline_text(&app)
        .contains(&"node 1 unexpectedly exited with code 1 (pid 4101)".to_string()));
    key(&mut app, T0 + 60, KeyCode::Char('r'));
    process(
        &mut app,
        T0 + 61,
        1,
        ProcessEvent::SpawnFailed {
            error: "no such file".into(),
        },
    );
    assert_eq!(flash_text(&app), "node 1 could not start: no such file");
    assert!(app.nodes[0].is_down());
}

// ----- issue #10: R refusal, integrity alarms, re-admission events ------------

#[test]
fn capital_r_is_refused_when_too_few_intact_holders_of_the_committed_log_would_remain() {
    let mut app = issue_10_before_wipe();
    assert_eq!(app.integrity.committed_max(), 53);
    // Node 2 stopped at index 3 and node 3 is dead: only node 3's disk has 53.
    assert!(key(&mut app, T0 + 4_000, KeyCode::Char('R')).is_empty());
    let refusal = "R refused: wiping node 1 would leave 1 intact holder of the committed log \
                   (up to index 53: node 3); a quorum is 2. Restart the stopped nodes first and \
                   let them catch up.";
    assert_eq!(flash_text(&app), refusal);
    assert_eq!(timeline_text(&app).last().unwrap(), refusal);
    assert!(app.nodes[0].wiped_at_ms.is_none() && !app.nodes[0].is_restarting());
    // Node 2 (behind, holds nothing committed) would not lose the log, but
    // replacing it removes it first, and only node 1 is up to agree.
    key(&mut app, T0 + 4_100, KeyCode::Char('2'));
    assert!(key(&mut app, T0 + 4_101, KeyCode::Char('R')).is_empty());
    assert_eq!(
        flash_text(&app),
        "R refused: replacing node 2 removes it first, and the voters {1,2,3} would have 1 up \
         and connected (node 1); a quorum of them is 2"
    );
}

/// Under write load the leader's last poll is older than the commit index
/// a follower reported since: the leader of the newest term still holds
/// every committed entry, and the refusal counts it.
#[test]
fn the_leader_of_the_newest_term_counts_as_a_holder_when_its_poll_is_older() {
    let mut app = started();
    let at = T0 + 600;
    for (id, role) in [
        (1, crate::status::Role::Follower),
        (2, crate::status::Role::Leader),
        (3, crate::status::Role::Follower),
    ] {
        poll(
            &mut app,
            at,
            fixtures::status(id, role, 2, 2, 100, DIGEST_A),
        );
    }
    key(&mut app, T0 + 700, KeyCode::Char('k'));
    exited(&mut app, T0 + 710, 2, ExitKind::Signal(9));
    // Node 1 leads term 3; node 3 then reports a commit index above
    // node 1's last poll.
    poll(
        &mut app,
        T0 + 900,
        fixtures::status(1, crate::status::Role::Leader, 3, 1, 140, DIGEST_A),
    );
    poll(
        &mut app,
        T0 + 950,
        fixtures::status(3, crate::status::Role::Follower, 3, 1, 150, DIGEST_B),
    );
    assert_eq!(app.integrity.committed_max(), 150);
    key(&mut app, T0 + 960, KeyCode::Char('3'));
    assert!(key(&mut app, T0 + 961, KeyCode::Char('R')).is_empty());
    assert_eq!(
        flash_text(&app),
        "R refused: wiping node 3 would leave 1 intact holder of the committed log (up to \
         index 150: node 1); a quorum is 2. Restart the stopped nodes first and let them \
         catch up."
    );
    // A leader of an older term is no holder: it may lack what a later
    // leader committed.
    poll(
        &mut app,
        T0 + 970,
        fixtures::status(3, crate::status::Role::Follower, 4, 0, 150, DIGEST_B),
    );
    assert!(key(&mut app, T0 + 980, KeyCode::Char('R')).is_empty());
    assert!(
        flash_text(&app)
            .contains("would leave 0 intact holders of the committed log (up to index 150: none)"),
        "{}",
        flash_text(&app)
    );
}

/// Under write load every poll lags the commit index seen last: a live
/// follower of the newest term's leader counts as a holder, as the leader
/// streams it everything; one that lost its leader does not.
#[test]
fn a_live_follower_of_the_leader_counts_as_a_holder_under_write_load() {
    use crate::status::Role;
    // Leader 2 polled at 100, node 1 behind it at 95 and following
    // `node_1_follows`, node 3 (to be replaced) at 110.
    let r_on_node_3 = |node_1_follows: u64| {
        let mut app = started();
        for status in [
            fixtures::status(2, Role::Leader, 2, 2, 100, DIGEST_A),
            fixtures::status(1, Role::Follower, 2, node_1_follows, 95, DIGEST_B),
            fixtures::status(3, Role::Follower, 2, 2, 110, DIGEST_B),
        ] {
            poll(&mut app, T0 + 600, status);
        }
        assert_eq!(app.integrity.committed_max(), 110);
        key(&mut app, T0 + 700, KeyCode::Char('3'));
        let effects = key(&mut app, T0 + 701, KeyCode::Char('R'));
        (effects, flash_text(&app))
    };
    let (effects, said) = r_on_node_3(2);
    assert_eq!(effects, vec![Effect::Stop { id: 3 }], "{said}");
    let (effects, said) = r_on_node_3(0);
    assert!(effects.is_empty());
    assert!(
        said.contains("would leave 1 intact holder of the committed log (up to index 110: node 2)"),
        "{said}"
    );
}

/// Issue #10's sequence, typed faster than the dashboard polls: node 3
/// stopped, 50 writes, the leader killed before any poll saw the writes'
/// commit index. The status read at the end of the bulk write is what makes
/// `R` on node 1 refused.
#[test]
fn the_writes_commit_index_counts_for_the_wipe_refusal_before_the_next_poll() {
    let mut app = started();
    let at = T0 + 600;
    poll(
        &mut app,
        at,
        fixtures::status(1, crate::status::Role::Follower, 2, 2, 7, DIGEST_B),
    );
    poll(
        &mut app,
        at,
        fixtures::status(2, crate::status::Role::Leader, 2, 2, 7, DIGEST_B),
    );
    poll(
        &mut app,
        at,
        fixtures::status(3, crate::status::Role::Follower, 2, 2, 7, DIGEST_B),
    );
    key(&mut app, T0 + 1_000, KeyCode::Char('3'));
    key(&mut app, T0 + 1_001, KeyCode::Char('s'));
    exited(&mut app, T0 + 1_100, 3, ExitKind::Code(0));
    key(&mut app, T0 + 2_000, KeyCode::Char('w'));
    let leader_after_writes = fixtures::status(2, crate::status::Role::Leader, 2, 2, 57, DIGEST_A);
    app.update(
        Report::Write(WriteReport::BulkFinished(BulkWriteResult {
            via_status: Some(Box::new(leader_after_writes)),
            requested: 50,
            acked: 50,
            failed: 0,
            outcome_unknown: 0,
            via: Some("127.0.0.1:7002".into()),
            elapsed_ms: 30,
            first_error: None,
        })),
        T0 + 2_040,
    );
    assert_eq!(app.integrity.committed_max(), 57);
    // A poll of the leader answered before that status read, arriving after
    // it, does not take the writes back.
    let mut stale = fixtures::status(2, crate::status::Role::Leader, 2, 2, 7, DIGEST_B);
    stale.uptime_ms -= 300;
    poll(&mut app, T0 + 2_045, stale);
    assert_eq!(app.nodes[1].status.as_ref().map(|s| s.last_index), Some(57));
    key(&mut app, T0 + 2_050, KeyCode::Char('k'));
    exited(&mut app, T0 + 2_060, 2, ExitKind::Signal(9));
    key(&mut app, T0 + 2_100, KeyCode::Char('1'));
    assert!(key(&mut app, T0 + 2_101, KeyCode::Char('R')).is_empty());
    assert!(
        flash_text(&app)
            .contains("would leave 1 intact holder of the committed log (up to index 57: node 2)"),
        "{}",
        flash_text(&app)
    );
}
