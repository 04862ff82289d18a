//! What polling and node logs put on screen: failover times, convergence,
//! catch-up, storage and membership events, and integrity alarms.

// Key sequence numbers travel as lists of ranges; a list of one range is meant.
#![allow(clippy::single_range_in_vec_init)]

use super::*;
use crate::key_check::KeyCheck;
#[test]
fn failover_is_timed_from_the_kill() {
    let mut app = elected();
    let timeline = timeline_text(&app);
    assert!(timeline.contains(&"node 1 lost the leader after 180 ms of silence, term 2 (181 ms after node 2 was killed)".to_string()), "{timeline:#?}");
    assert!(
        timeline.contains(&"node 1 election timeout after 297 ms of silence, term 2".to_string()),
        "{timeline:#?}"
    );
    assert!(
        timeline.contains(&"node 1 leader of term 3, 412 ms after node 2 was killed".to_string()),
        "{timeline:#?}"
    );
    assert_eq!(app.elections_seen, 2);
    assert!(app.leader_kill.is_none());
    // The poll that sees the same leader later does not announce it twice.
    poll(
        &mut app,
        T0 + 10_500,
        status(1, crate::status::Role::Leader, 3, 1, 108, DIGEST_A),
    );
    assert_eq!(
        app.timeline
            .iter()
            .filter(|e| e.text.contains("leader of term 3"))
            .count(),
        1
    );
}

#[test]
fn a_restarted_node_reports_its_catch_up_time() {
    let mut app = restarting();
    process(
        &mut app,
        T0 + 11_020,
        2,
        ProcessEvent::Started { pid: 5102 },
    );
    refresh(&mut app, T0 + 11_390);
    poll(
        &mut app,
        T0 + 11_400,
        status(2, crate::status::Role::Follower, 3, 1, 90, DIGEST_B),
    );
    assert!(app.nodes[1].restarted_at_ms.is_some());
    refresh(&mut app, T0 + 12_240);
    poll(
        &mut app,
        T0 + 12_250,
        status(2, crate::status::Role::Follower, 3, 1, 108, DIGEST_A),
    );
    assert!(timeline_text(&app)
        .contains(&"node 2 caught up to index 108, 1.2 s after restart".to_string()));
    assert!(app.nodes[1].restarted_at_ms.is_none());
}

#[test]
fn convergence_states_follow_the_polls() {
    let app = healthy();
    assert_eq!(
        app.convergence(),
        Convergence::Converged {
            index: 107,
            digest: DIGEST_A.into(),
            nodes_up: 3,
            nodes_total: 3
        }
    );
    assert!(timeline_text(&app).contains(&"CONVERGED at index 107: digest 9c4165…".to_string()));
    assert_eq!(leader_killed().convergence(), Convergence::NoLeader);
    let app = diverged();
    let Convergence::Alarm(alarm) = app.convergence() else {
        panic!("{:?}", app.convergence());
    };
    assert_eq!(alarm.summary, "DIVERGED: node 3 ≠ node 1 at index 120");
    assert!(timeline_text(&app).iter().any(|line| line.starts_with(
        "DIVERGED: node 3 ≠ node 1 at index 120: node 3 has digest f9de35.. at applied index 120"
    )));
    let mut syncing = healthy();
    poll(
        &mut syncing,
        T0 + 4_000,
        status(3, crate::status::Role::Follower, 2, 2, 100, DIGEST_B),
    );
    assert_eq!(syncing.convergence(), Convergence::Syncing { lag: 7 });
    assert_eq!(syncing.lag_of(2), Some(7));
}

#[test]
fn a_silent_node_is_not_trusted_and_a_stale_status_expires() {
    let mut app = healthy();
    poll_failed(&mut app, T0 + 3_400, 3, "no answer within 400 ms");
    assert!(app.nodes[2].live_status(app.now_ms).is_none());
    // Its process runs: nobody can say it agrees, so no CONVERGED.
    assert_eq!(app.convergence(), Convergence::Unknown { silent: vec![3] });
    app.update(Report::Tick, T0 + 3_200 + STATUS_STALE_MS + 1);
    assert_eq!(app.convergence(), Convergence::NoLeader);
}

#[test]
fn node_output_lines_reach_the_timeline_a_bounded_number_of_times() {
    let mut app = started();
    for i in 0..(OUTPUT_LINES_IN_TIMELINE_MAX + 3) {
        app.update(
            Report::NodeLog(LogLine {
                id: 1,
                at_ms: T0 + 100,
                source: LogSource::Output,
                level: String::new(),
                event: None,
                fields: Vec::new(),
                text: format!("line {i}"),
            }),
            T0 + 100,
        );
    }
    let shown = app
        .timeline
        .iter()
        .filter(|e| e.text.starts_with("node 1 output"))
        .count();
    assert_eq!(shown, OUTPUT_LINES_IN_TIMELINE_MAX as usize);
    assert_eq!(
        app.nodes[0].log_tail.len(),
        OUTPUT_LINES_IN_TIMELINE_MAX as usize + 3
    );
}

#[test]
fn storage_events_read_as_sentences() {
    let mut app = started();
    log_event(
        &mut app,
        T0 + 100,
        1,
        log_events::RECOVERY,
        &[
            ("last_index", "52"),
            ("snapshot_index", "0"),
            ("summary", "x=1"),
            ("term", "2"),
            ("torn_tail_bytes", "17"),
        ],
    );
    log_event(
        &mut app,
        T0 + 200,
        1,
        log_events::SNAPSHOT_SENT,
        &[
            ("bytes", "1248974"),
            ("index", "30004"),
            ("term", "3"),
            ("to", "3"),
        ],
    );
    log_event(
        &mut app,
        T0 + 300,
        3,
        log_events::SNAPSHOT_INSTALLED,
        &[("index", "30004"), ("term", "3")],
    );
    log_event(
        &mut app,
        T0 + 400,
        2,
        log_events::LEADER_LOST,
        &[
            ("leader", "1"),
            ("reason", "eof"),
            ("silence_ms", "7"),
            ("term", "1"),
        ],
    );
    let timeline = timeline_text(&app);
    for expected in [
        "node 1 recovered: log up to index 52, snapshot at 0, term 2, cut a torn tail of 17 bytes",
        "node 1 sent a snapshot to node 3 (index 30004, 1.2 MB)",
        "node 3 installed a snapshot at index 30004",
        "node 2 lost leader 1 (eof) after 7 ms of silence, term 1",
    ] {
        assert!(
            timeline.contains(&expected.to_string()),
            "{expected}: {timeline:#?}"
        );
    }
}

#[test]
fn the_timeline_is_bounded() {
    let mut app = started();
    for i in 0..(TIMELINE_EVENTS_MAX as u64 + 10) {
        log_event(
            &mut app,
            T0 + i,
            1,
            log_events::STEPPED_DOWN,
            &[("term", "1")],
        );
    }
    assert_eq!(app.timeline.len(), TIMELINE_EVENTS_MAX);
}

#[test]
fn a_new_clusters_first_registration_is_quiet_and_a_replaced_disk_is_announced() {
    let mut app = healthy();
    let before = timeline_text(&app).len();
    // Bootstrapping: not registered, then registered, with one incarnation.
    let mut bootstrapping = fixtures::status(1, crate::status::Role::Follower, 2, 2, 107, DIGEST_A);
    bootstrapping.incarnation = Some(INCARNATION_NEW.into());
    bootstrapping.registered = Some(false);
    poll(&mut app, T0 + 4_000, bootstrapping.clone());
    let mut registered = bootstrapping.clone();
    registered.registered = Some(true);
    poll(&mut app, T0 + 4_100, registered.clone());
    assert!(
        !timeline_text(&app)[before..]
            .iter()
            .any(|line| line.contains("voter again")),
        "{:?}",
        timeline_text(&app)
    );
    // The same node id registered later under another incarnation: its disk
    // was replaced outside this dashboard and it was re-admitted.
    let mut replaced = registered;
    replaced.incarnation = Some("7c02a41f9b3e0d55".into());
    poll(&mut app, T0 + 4_200, replaced);
    assert!(timeline_text(&app).contains(&"node 1: voter again (incarnation 7c02..)".to_string()));
}

#[test]
fn a_leader_below_the_committed_index_is_data_loss_in_red_and_it_stays() {
    let mut app = data_loss();
    let Convergence::Alarm(alarm) = app.convergence() else {
        panic!("{:?}", app.convergence());
    };
    assert_eq!(alarm.summary, "DATA LOSS: leader 2 commit 4 < committed 53");
    assert_eq!(
        flash_text(&app),
        "DATA LOSS: leader 2 commit 4 < committed 53"
    );
    let timeline = timeline_text(&app);
    assert!(
        timeline.iter().any(|l| l.starts_with(
            "DATA LOSS: leader 2 commit 4 < committed 53: node 2 leads term 4 with commit index 4"
        )),
        "{timeline:#?}"
    );
    assert!(timeline
        .iter()
        .any(|l| l.starts_with("DATA LOSS: node 1 applied 53 > leader 2 log 4")));
    // Every node agrees again later: the alarm stands, CONVERGED is never shown.
    let at = T0 + 9_000;
    for id in 1..=2 {
        let role = if id == 2 {
            crate::status::Role::Leader
        } else {
            crate::status::Role::Follower
        };
        poll(&mut app, at, fixtures::status(id, role, 4, 2, 60, DIGEST_B));
    }
    assert!(matches!(app.convergence(), Convergence::Alarm(_)));
    assert!(!timeline_text(&app)
        .iter()
        .any(|l| l.starts_with("CONVERGED") && l.contains("60")));
}

#[test]
fn v_and_d_fail_with_the_alarm_even_when_every_key_reads_back() {
    let mut app = data_loss();
    assert!(!key(&mut app, T0 + 5_000, KeyCode::Char('v')).is_empty());
    app.update(
        Report::VerifyFinished(VerifyResult {
            keys: 50,
            nodes: (1..=3)
                .map(|id| NodeVerification {
                    id,
                    result: Ok(KeyCheck::default()),
                })
                .collect(),
            elapsed_ms: 12,
        }),
        T0 + 5_100,
    );
    assert_eq!(
        flash_text(&app),
        "verify FAIL: DATA LOSS: leader 2 commit 4 < committed 53 (alarm stands); \
         all 50 keys read back on 3 nodes"
    );
    let effects = key(&mut app, T0 + 6_000, KeyCode::Char('d'));
    let [Effect::RunGate { integrity }] = effects.as_slice() else {
        panic!("{effects:?}");
    };
    assert_eq!(
        integrity.alarms(),
        app.integrity.alarms(),
        "the gate starts from them"
    );
    let mut record = gate_record(&[], &[]);
    for item in 1..=ITEM_COUNT {
        record.set_item(
            item,
            crate::gate_record::ItemResult::pass("measured", "here"),
        );
    }
    app.update(
        Report::GateFinished(Box::new(GateOutcome {
            record,
            bundle: Ok("logs/evidence/x".into()),
        })),
        T0 + 7_000,
    );
    assert_eq!(
        flash_text(&app),
        "quality gate FAIL: DATA LOSS: leader 2 commit 4 < committed 53 (alarm stands); \
         8/8 PASS; evidence in logs/evidence/x"
    );
    assert_eq!(app.visible_flash().unwrap().tone, Tone::Bad);
}

#[test]
fn restarts_elections_and_lagging_followers_raise_no_alarm() {
    for app in [healthy(), leader_killed(), election(), restarting()] {
        assert!(
            app.integrity.alarms().is_empty(),
            "{:#?}",
            app.integrity.alarms()
        );
    }
    // The restarted node answers from its snapshot, far behind, then catches up.
    let mut app = restarting();
    process(
        &mut app,
        T0 + 11_020,
        2,
        ProcessEvent::Started { pid: 4202 },
    );
    let mut behind = fixtures::status(2, crate::status::Role::Follower, 3, 1, 40, DIGEST_B);
    behind.snapshot_index = 40;
    poll(&mut app, T0 + 11_200, behind);
    assert_eq!(app.convergence(), Convergence::Syncing { lag: 68 });
    // The new leader of term 5 starts with an older commit index than 108.
    let mut new_leader = fixtures::status(1, crate::status::Role::Leader, 5, 1, 100, DIGEST_A);
    new_leader.last_index = 108;
    poll(&mut app, T0 + 11_300, new_leader);
    assert!(
        app.integrity.alarms().is_empty(),
        "{:#?}",
        app.integrity.alarms()
    );
}

#[test]
fn readmission_events_read_as_sentences_once_each() {
    let mut app = started();
    let changed = [
        ("peer", "1"),
        ("incarnation", INCARNATION_NEW),
        ("registered_incarnation", INCARNATION_OLD),
    ];
    log_event(
        &mut app,
        T0 + 100,
        3,
        log_events::PEER_INCARNATION_CHANGED,
        &changed,
    );
    log_event(
        &mut app,
        T0 + 101,
        2,
        log_events::PEER_INCARNATION_CHANGED,
        &changed,
    );
    log_event(
        &mut app,
        T0 + 200,
        3,
        log_events::READMISSION_PROPOSED,
        &[
            ("peer", "1"),
            ("incarnation", INCARNATION_NEW),
            ("index", "54"),
            ("match_index", "53"),
        ],
    );
    let readmitted = [
        ("peer", "1"),
        ("incarnation", INCARNATION_NEW),
        ("index", "54"),
    ];
    for id in 1..=3 {
        log_event(
            &mut app,
            T0 + 300 + id,
            id,
            log_events::MEMBER_READMITTED,
            &readmitted,
        );
    }
    log_event(
        &mut app,
        T0 + 400,
        3,
        log_events::MEMBER_READMITTED,
        &[("index", "54")],
    );
    let timeline = timeline_text(&app);
    let membership: Vec<&String> = timeline
        .iter()
        .filter(|l| l.starts_with("node 1 ") && !l.contains("started"))
        .collect();
    assert_eq!(
        membership,
        [
            "node 1 came back with an empty disk (incarnation a41f.. was 7c02..): not counted \
             as a voter until re-admitted",
            "node 1 caught up to index 53; re-admission proposed at index 54",
            "node 1 re-admitted as voter (incarnation a41f..) at index 54",
        ]
    );
}

/// A verdict on the load's history shows in the header; a violation is said
/// once and stays, whatever later checks say.
#[test]
fn a_history_violation_is_told_once_and_stays() {
    use crate::live_history::HistoryVerdict;
    let mut app = healthy();
    let ok = |ops| HistoryVerdict {
        ops,
        not_recorded: 0,
        problem: None,
    };
    app.update(Report::HistoryChecked(ok(1_000)), T0 + 4_000);
    assert_eq!(app.history_verdict, Some(ok(1_000)));
    let bad = HistoryVerdict {
        ops: 2_000,
        not_recorded: 0,
        problem: Some("key live:3: read 1 after write 2 was acknowledged".into()),
    };
    app.update(Report::HistoryChecked(bad.clone()), T0 + 6_000);
    app.update(Report::HistoryChecked(ok(3_000)), T0 + 8_000);
    assert_eq!(
        app.history_verdict.as_ref().and_then(|v| v.problem.clone()),
        bad.problem
    );
    assert_eq!(app.history_verdict.as_ref().map(|v| v.ops), Some(3_000));
    let told: Vec<String> = timeline_text(&app)
        .into_iter()
        .filter(|t| t.contains("NOT LINEARIZABLE"))
        .collect();
    assert_eq!(
        told,
        vec!["history of 2000 ops NOT LINEARIZABLE: key live:3: read 1 after write 2 was acknowledged"]
    );
}

/// A history that filled up is said once in the timeline, and the header
/// says how many operations went unchecked since.
#[test]
fn a_full_history_is_told_once_and_shown_in_the_header() {
    use crate::live_history::HistoryVerdict;
    let mut app = healthy();
    let verdict = |not_recorded| HistoryVerdict {
        ops: 1_000_000,
        not_recorded,
        problem: None,
    };
    app.update(Report::HistoryChecked(verdict(0)), T0 + 4_000);
    app.update(Report::HistoryChecked(verdict(12)), T0 + 6_000);
    app.update(Report::HistoryChecked(verdict(4_000)), T0 + 8_000);
    let told: Vec<String> = timeline_text(&app)
        .into_iter()
        .filter(|t| t.contains("history is full"))
        .collect();
    assert_eq!(
        told,
        vec![
            "the live history is full at 1,000,000 ops: later ones are not recorded or checked \
             (a memory bound; `raftkv chaos` checks long runs)"
        ]
    );
    let screen = crate::ui::tests::draw(&app, 140, 32);
    assert!(
        screen.contains("history 1,000,000 ops (full: 4,000 more not checked) · LINEARIZABLE"),
        "{screen}"
    );
}

/// Node logs are read apart: an event that arrives after a later one from
/// another node still takes its place in time in the events pane.
#[test]
fn events_read_late_from_another_node_are_shown_in_time_order() {
    let mut app = healthy();
    log_event(
        &mut app,
        T0 + 5_000,
        2,
        log_events::SNAPSHOT_SENT,
        &[("to", "3"), ("index", "40")],
    );
    log_event(
        &mut app,
        T0 + 4_950,
        3,
        log_events::SNAPSHOT_INSTALLED,
        &[("index", "40")],
    );
    let timeline = timeline_text(&app);
    let last_two: Vec<&str> = timeline[timeline.len() - 2..]
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(
        last_two,
        [
            "node 3 installed a snapshot at index 40",
            "node 2 sent a snapshot to node 3 (index 40)"
        ]
    );
    assert!(app
        .timeline
        .iter()
        .zip(app.timeline.iter().skip(1))
        .all(|(a, b)| a.at_ms <= b.at_ms));
}
