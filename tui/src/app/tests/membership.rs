//! The membership keys (`a - R`): the effects each gives, the steps the
//! timeline tells with their figures, and the refusals with their reasons.

use super::*;
use crate::app::membership::quorum_refusal;
use crate::membership::MemberChange;
use crate::status::Role;

fn changed(
    app: &mut App,
    at_ms: u64,
    change: MemberChange,
    result: Result<&str, &str>,
) -> Vec<Effect> {
    app.update(
        Report::MemberChanged {
            change,
            result: result.map(str::to_string).map_err(str::to_string),
        },
        at_ms,
    )
}

#[test]
fn quorum_refusals_look_at_the_voters_before_and_after() {
    assert_eq!(quorum_refusal(&[1, 2, 3], 3, &[1, 2, 3]), None);
    assert_eq!(quorum_refusal(&[1, 2, 3], 3, &[1, 2]), None);
    assert_eq!(
        quorum_refusal(&[1], 1, &[1]).as_deref(),
        Some("node 1 is the last voter")
    );
    assert_eq!(
        quorum_refusal(&[1, 2, 3], 2, &[1]).as_deref(),
        Some("the voters {1,2,3} would have 1 up and connected (node 1); a quorum of them is 2")
    );
    // Four voters, one down: removing a live one leaves {1,2,4} with two
    // up, enough; but the four before it need three of them.
    assert_eq!(
        quorum_refusal(&[1, 2, 3, 4], 3, &[1, 2, 3]).as_deref(),
        Some("the voters {1,2,3,4} would have 2 up and connected (nodes 1 and 2); a quorum of them is 3")
    );
    // A learner leaves without touching any quorum.
    assert_eq!(quorum_refusal(&[1, 2, 3], 4, &[1, 2]), None);
}

/// `a`: node 4 starts empty with `--join` through the leader, shows as a
/// learner catching up, then the promotion: every step in the timeline
/// with its figures, and the change ends.
#[test]
fn a_adds_the_next_node_as_a_learner_then_a_voter_with_figures() {
    let mut app = joint_promotion();
    let texts = timeline_text(&app);
    assert!(
        texts.iter().any(|t| t
            == "add node 4: started with an empty disk, --join 127.0.0.1:7002 (leader node 2); \
                it becomes a learner, then a voter once caught up"),
        "{texts:#?}"
    );
    assert!(
        texts.contains(
            &"node 4 added as learner (incarnation a41f..) at index 108, 300 ms after its start"
                .to_string()
        ),
        "{texts:#?}"
    );
    assert!(
        texts.contains(&"node 4 caught up to index 112 in 600 ms".to_string()),
        "{texts:#?}"
    );
    assert!(
        app.member_op.is_some(),
        "the joint configuration is pending"
    );
    let at = T0 + 4_800;
    for id in 1..=4 {
        let role = if id == 2 {
            Role::Leader
        } else {
            Role::Follower
        };
        let status = with_members(
            status(id, role, 2, 2, 113, DIGEST_A),
            &[1, 2, 3, 4],
            &[],
            &[],
            113,
        );
        poll(&mut app, at, status);
    }
    assert_eq!(app.member_op, None);
    let texts = timeline_text(&app);
    let promoted =
        "node 4 added as learner; caught up to index 112 in 600 ms; promoted; voters {1,2,3,4}";
    assert_eq!(texts[texts.len() - 2], promoted, "{texts:#?}");
    assert!(texts.last().unwrap().starts_with("CONVERGED at index 113"));
    app.update(Report::Tick, T0 + 4_900);
    match app.convergence() {
        Convergence::Converged {
            nodes_up,
            nodes_total,
            ..
        } => {
            assert_eq!((nodes_up, nodes_total), (4, 4));
        }
        other => panic!("not converged: {other:?}"),
    }
    // A second `a` adds node 5; a third finds no free id.
    let effects = key(&mut app, T0 + 5_000, KeyCode::Char('a'));
    assert!(
        matches!(effects[0], Effect::Join { id: 5, .. }),
        "{effects:?}"
    );
    app.member_op = None;
    assert!(key(&mut app, T0 + 5_001, KeyCode::Char('a')).is_empty());
    assert_eq!(
        flash_text(&app),
        "a refused: the dashboard runs at most 5 nodes (remove one with -)"
    );
}

#[test]
fn a_snapshot_on_the_way_is_named_and_a_learner_is_never_converged_with_a_lag() {
    let mut app = learner_catching_up();
    assert!(matches!(
        app.convergence(),
        Convergence::Syncing { lag: 50 }
    ));
    log_event(
        &mut app,
        T0 + 4_400,
        4,
        log_events::SNAPSHOT_INSTALLED,
        &[("index", "100")],
    );
    let app_with_joint = {
        let at = T0 + 4_500;
        let mut leader = with_members(
            status(2, Role::Leader, 2, 2, 110, DIGEST_A),
            &[1, 2, 3],
            &[4],
            &[],
            108,
        );
        leader.match_indexes = vec![(1, 110), (3, 110), (4, 110)];
        poll(&mut app, at, leader);
        app
    };
    assert!(timeline_text(&app_with_joint)
        .contains(&"node 4 caught up to index 110 in 500 ms by snapshot".to_string()));
}

#[test]
fn a_is_refused_without_a_leader_while_a_change_runs_and_when_attached() {
    let mut app = learner_catching_up();
    assert!(key(&mut app, T0 + 5_000, KeyCode::Char('a')).is_empty());
    assert_eq!(
        flash_text(&app),
        "a refused: adding node 4 is still in progress"
    );
    let mut app = joint_promotion();
    app.member_op = None;
    assert!(key(&mut app, T0 + 5_000, KeyCode::Char('a')).is_empty());
    assert_eq!(
        flash_text(&app),
        "a refused: a configuration change is pending (voters {1,2,3} -> {1,2,3,4}); wait until it commits"
    );
    let mut app = leader_killed();
    allow_five(&mut app);
    assert!(key(&mut app, T0 + 10_300, KeyCode::Char('a')).is_empty());
    assert_eq!(
        flash_text(&app),
        "a refused: no leader to join through (election running or no quorum)"
    );
    let mut attached = App::new(Mode::Attached, config(3), T0, Vec::new());
    assert!(key(&mut attached, T0 + 1, KeyCode::Char('a')).is_empty());
    assert_eq!(flash_text(&attached), ATTACHED_REFUSAL);
}

/// A joining node that exits stops the change; `-` on it (never a
/// member, not running) just drops its row.
#[test]
fn a_join_that_dies_stops_and_its_row_can_be_dropped() {
    let mut app = healthy_with_members();
    key(&mut app, T0 + 4_000, KeyCode::Char('a'));
    process(&mut app, T0 + 4_020, 4, ProcessEvent::Started { pid: 4104 });
    exited(&mut app, T0 + 4_100, 4, ExitKind::Code(1));
    assert_eq!(app.member_op, None);
    assert!(timeline_text(&app)
        .contains(&"node 4 exited before it became a voter: the join stopped; press r to start it again or - to remove it".to_string()));
    assert_eq!(app.selected_node().unwrap().id(), 4);
    let effects = key(&mut app, T0 + 4_200, KeyCode::Char('-'));
    assert_eq!(effects[0], Effect::Forget { id: 4 });
    assert_eq!(app.nodes.len(), 3);
    assert_eq!(app.selected, 2);
}

/// `-`: RAFT.REMOVE through the leader, the process stopped only once the
/// removal committed, then the row leaves the table.
#[test]
fn minus_removes_through_the_leader_then_stops_the_node() {
    let mut app = healthy_with_members();
    key(&mut app, T0 + 4_000, KeyCode::Char('3'));
    let effects = key(&mut app, T0 + 4_001, KeyCode::Char('-'));
    assert_eq!(
        effects,
        vec![Effect::ChangeMembership {
            change: MemberChange::Remove { id: 3 },
            addrs: vec![
                "127.0.0.1:7002".into(),
                "127.0.0.1:7001".into(),
                "127.0.0.1:7003".into()
            ],
        }]
    );
    assert!(
        app.nodes[2].process.is_alive(),
        "not stopped before the commit"
    );
    let effects = changed(
        &mut app,
        T0 + 4_050,
        MemberChange::Remove { id: 3 },
        Ok("127.0.0.1:7002"),
    );
    assert_eq!(effects, vec![Effect::Stop { id: 3 }]);
    assert!(timeline_text(&app).contains(
        &"node 3 removed (committed by the leader at 127.0.0.1:7002, 49 ms after -); voters {1,2}; stopping its process".to_string()
    ));
    // Removed, still running: it no longer counts for convergence.
    let at = T0 + 4_100;
    for (id, role) in [(1, Role::Follower), (2, Role::Leader)] {
        let settled = status(id, role, 2, 2, 109, DIGEST_B);
        poll(&mut app, at, with_members(settled, &[1, 2], &[], &[], 108));
    }
    poll(
        &mut app,
        at,
        with_members(
            status(3, Role::Follower, 2, 2, 107, DIGEST_A),
            &[1, 2, 3],
            &[],
            &[],
            3,
        ),
    );
    assert!(matches!(
        app.convergence(),
        Convergence::Converged {
            nodes_up: 2,
            nodes_total: 2,
            ..
        }
    ));
    let effects = exited(&mut app, T0 + 4_200, 3, ExitKind::Code(0));
    assert_eq!(effects[0], Effect::Forget { id: 3 });
    assert!(matches!(effects[1], Effect::SetLinks { .. }));
    assert_eq!(app.nodes.len(), 2);
    assert_eq!(app.member_op, None);
    assert_eq!(app.majority(), 2);
    // `a` then takes the free id 3 again.
    let effects = key(&mut app, T0 + 4_300, KeyCode::Char('a'));
    assert!(
        matches!(effects[0], Effect::Join { id: 3, .. }),
        "{effects:?}"
    );
}

#[test]
fn minus_is_refused_when_it_would_lose_the_quorum_or_the_last_voter() {
    let mut app = healthy_with_members();
    key(&mut app, T0 + 4_000, KeyCode::Char('1'));
    key(&mut app, T0 + 4_001, KeyCode::Char('x'));
    exited(&mut app, T0 + 4_010, 1, ExitKind::Signal(9));
    key(&mut app, T0 + 4_020, KeyCode::Char('3'));
    assert!(key(&mut app, T0 + 4_021, KeyCode::Char('-')).is_empty());
    assert_eq!(
        flash_text(&app),
        "- refused: removing node 3: the voters {1,2,3} would have 1 up and connected (node 2); a quorum of them is 2"
    );
    // Removing the dead node itself is fine: 2 and 3 are up.
    key(&mut app, T0 + 4_030, KeyCode::Char('1'));
    let effects = key(&mut app, T0 + 4_031, KeyCode::Char('-'));
    assert!(matches!(effects[0], Effect::ChangeMembership { .. }));
    // A refusal from the leader is said, and nothing is stopped.
    let effects = changed(
        &mut app,
        T0 + 4_100,
        MemberChange::Remove { id: 1 },
        Err("RAFT.REMOVE 1 refused by 127.0.0.1:7002: unknown id"),
    );
    assert!(effects.is_empty());
    assert_eq!(
        flash_text(&app),
        "RAFT.REMOVE 1 failed: RAFT.REMOVE 1 refused by 127.0.0.1:7002: unknown id"
    );
    assert_eq!(app.member_op, None);

    let mut single = App::new(Mode::Supervised, config(1), T0, Vec::new());
    process(&mut single, T0 + 10, 1, ProcessEvent::Started { pid: 4101 });
    poll(
        &mut single,
        T0 + 500,
        with_members(
            status(1, Role::Leader, 2, 1, 3, DIGEST_B),
            &[1],
            &[],
            &[],
            3,
        ),
    );
    assert!(key(&mut single, T0 + 600, KeyCode::Char('-')).is_empty());
    assert_eq!(
        flash_text(&single),
        "- refused: removing node 1: node 1 is the last voter"
    );
}

/// `R`: stop, remove, wipe and join, each step in the timeline, and the
/// replacement a voter (and a holder of the log) again once promoted.
#[test]
fn capital_r_replaces_a_node_stop_remove_wipe_join_promote() {
    let mut app = healthy_with_members();
    key(&mut app, T0 + 4_000, KeyCode::Char('1'));
    assert_eq!(
        key(&mut app, T0 + 4_001, KeyCode::Char('R')),
        vec![Effect::Stop { id: 1 }]
    );
    key(&mut app, T0 + 4_002, KeyCode::Char('2'));
    assert!(key(&mut app, T0 + 4_003, KeyCode::Char('R')).is_empty());
    assert_eq!(
        flash_text(&app),
        "R refused: replacing node 1 is still in progress"
    );
    assert_eq!(
        exited(&mut app, T0 + 4_100, 1, ExitKind::Code(0)),
        vec![Effect::ChangeMembership {
            change: MemberChange::Remove { id: 1 },
            addrs: vec!["127.0.0.1:7002".into(), "127.0.0.1:7003".into()],
        }]
    );
    // Node 1 is down while its old member is removed: r leaves it alone.
    key(&mut app, T0 + 4_101, KeyCode::Char('1'));
    assert!(key(&mut app, T0 + 4_102, KeyCode::Char('r')).is_empty());
    assert_eq!(
        flash_text(&app),
        "r refused: node 1 is being replaced: it starts empty once the old member is removed"
    );
    assert_eq!(
        changed(
            &mut app,
            T0 + 4_150,
            MemberChange::Remove { id: 1 },
            Ok("127.0.0.1:7002")
        ),
        vec![Effect::Join {
            id: 1,
            via: "127.0.0.1:7002".into(),
            wipe_data: true
        }]
    );
    process(&mut app, T0 + 4_170, 1, ProcessEvent::Started { pid: 4201 });
    // Until promoted the new incarnation holds nothing: R on node 2 waits.
    let mut fresh = with_members(
        status(1, Role::Follower, 2, 2, 0, DIGEST_C),
        &[2, 3],
        &[1],
        &[],
        110,
    );
    fresh.incarnation = Some(INCARNATION_NEW.into());
    fresh.pid = 4201;
    poll(&mut app, T0 + 4_300, fresh);
    for (id, role) in [(2, Role::Leader), (3, Role::Follower)] {
        let settled = status(id, role, 2, 2, 110, DIGEST_A);
        poll(
            &mut app,
            T0 + 4_300,
            with_members(settled, &[2, 3], &[1], &[], 110),
        );
    }
    assert!(app.is_learner(1));
    let mut caught_up = with_members(
        status(1, Role::Follower, 2, 2, 112, DIGEST_A),
        &[1, 2, 3],
        &[],
        &[],
        112,
    );
    caught_up.incarnation = Some(INCARNATION_NEW.into());
    caught_up.pid = 4201;
    poll(&mut app, T0 + 4_500, caught_up);
    for (id, role) in [(2, Role::Leader), (3, Role::Follower)] {
        let settled = status(id, role, 2, 2, 112, DIGEST_A);
        poll(
            &mut app,
            T0 + 4_500,
            with_members(settled, &[1, 2, 3], &[], &[], 112),
        );
    }
    assert_eq!(app.member_op, None);
    let texts = timeline_text(&app);
    for expected in [
        "replace node 1 with an empty disk: 1/4 stop it (SIGTERM), then remove it, wipe it and start it empty with --join",
        "replace node 1: 2/4 RAFT.REMOVE 1 through the leader",
        "replace node 1: old member removed (committed by the leader at 127.0.0.1:7002); voters {2,3}",
        "replace node 1: 3/4 data dir wiped; started empty with --join 127.0.0.1:7002 (a new incarnation)",
        "node 1 added as learner (incarnation a41f..) at index 110, 150 ms after its start",
        "node 1 caught up to index 110 in 350 ms",
        "4/4 node 1 added as learner; caught up to index 110 in 350 ms; promoted; voters {1,2,3}",
    ] {
        assert!(texts.contains(&expected.to_string()), "{expected:?} not in {texts:#?}");
    }
    assert!(app.nodes[0].joined && app.nodes[0].wiped_at_ms.is_none());
    assert_eq!(key(&mut app, T0 + 4_600, KeyCode::Char('2')), vec![]);
    assert_eq!(
        key(&mut app, T0 + 4_601, KeyCode::Char('R')),
        vec![Effect::Stop { id: 2 }]
    );
    // A restart of a joined node joins again, through the leader.
    let mut app2 = app.clone();
    app2.member_op = None;
    key(&mut app2, T0 + 4_700, KeyCode::Char('1'));
    key(&mut app2, T0 + 4_701, KeyCode::Char('x'));
    exited(&mut app2, T0 + 4_710, 1, ExitKind::Signal(9));
    assert_eq!(
        key(&mut app2, T0 + 4_720, KeyCode::Char('r')),
        vec![Effect::Join {
            id: 1,
            via: "127.0.0.1:7002".into(),
            wipe_data: false
        }]
    );
    assert!(app.integrity.alarms().is_empty());
}

/// A dead node is replaced without a stop; a failed removal leaves it as it
/// was, with its data.
#[test]
fn capital_r_on_a_dead_node_removes_at_once_and_a_failure_keeps_its_data() {
    let mut app = leader_killed();
    let effects = key(&mut app, T0 + 11_000, KeyCode::Char('R'));
    assert_eq!(
        effects,
        vec![Effect::ChangeMembership {
            change: MemberChange::Remove { id: 2 },
            addrs: vec!["127.0.0.1:7001".into(), "127.0.0.1:7003".into()],
        }]
    );
    changed(
        &mut app,
        T0 + 31_000,
        MemberChange::Remove { id: 2 },
        Err("RAFT.REMOVE 2: no leader took it within 20000 ms; last: x"),
    );
    assert_eq!(app.member_op, None);
    assert!(app.nodes[1].wiped_at_ms.is_none());
    assert!(flash_text(&app).starts_with("replace node 2 stopped at step 2"));
}

/// The gate kills and restarts the leader: it waits for a change to end.
#[test]
fn d_waits_for_a_membership_change_to_finish() {
    let mut app = learner_catching_up();
    assert!(key(&mut app, T0 + 5_000, KeyCode::Char('d')).is_empty());
    assert_eq!(
        flash_text(&app),
        "a membership change of node 4 is running: press d again once it has finished"
    );
    assert!(app.gate.is_none());
}
