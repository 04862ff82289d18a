//! Key -> Input -> state tests for every key, refusals included, and the
//! timeline's measured intervals. `fixtures` builds the screens the UI
//! snapshots use, with fixed pids and times.

// Key sequence numbers travel as lists of ranges; a list of one range is meant.
#![allow(clippy::single_range_in_vec_init)]

use super::gate::GATE_PANEL_AFTER_MS;
use super::nodes::STATUS_STALE_MS;
use super::observer::OUTPUT_LINES_IN_TIMELINE_MAX;
use super::workload::BULK_WRITES_QUEUED_MAX;
use super::*;
use crate::evidence::{StepKind, Verdict};
use crate::plan::ITEM_COUNT;
use crate::poll::LogSource;
use crate::status::NodeStatus;
use crate::supervisor::{ExitKind, ProcessEvent};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyEventState, KeyModifiers};

pub(crate) mod fixtures {
    use super::*;
    use crate::status::Role;

    /// 2024-05-01 10:00:00.000 UTC.
    pub(crate) const T0: u64 = 1_714_557_600_000;
    pub(crate) const DIGEST_A: &str =
        "9c416561b5d29b481f4aaa44c5b47c98ce71d1bd47875d1c50203a677daa568c";
    pub(crate) const DIGEST_B: &str =
        "f9de357db9c61f71fae95744165a192bd493832bd09207da42c26293f1c136b4";
    /// The empty state's digest (DESIGN.md).
    pub(crate) const DIGEST_C: &str =
        "9ee758fbc40fa99db071432ef003a18c7a85d601caf11ff37d96f2a3654bc03f";

    pub(crate) fn status(
        id: u64,
        role: Role,
        term: u64,
        leader_id: u64,
        applied: u64,
        digest: &str,
    ) -> NodeStatus {
        NodeStatus {
            id,
            role,
            term,
            leader_id,
            leader_client_addr: if leader_id == 0 {
                String::new()
            } else {
                format!("127.0.0.1:{}", 7000 + leader_id)
            },
            commit_index: applied,
            applied_index: applied,
            first_index: 1,
            last_index: applied,
            snapshot_index: 0,
            keys: applied.saturating_sub(7),
            digest: digest.to_string(),
            leader_contact_ms: if leader_id == id { 0 } else { 14 + id },
            pid: 4100 + id as u32,
            uptime_ms: 60_000,
            incarnation: None,
            registered: None,
            strangers: Vec::new(),
        }
    }

    pub(crate) fn poll(app: &mut App, at_ms: u64, status: NodeStatus) -> Vec<Effect> {
        let id = status.id;
        app.update(
            Report::Status(StatusReport {
                id,
                at_ms,
                result: Ok(status),
            }),
            at_ms,
        )
    }

    pub(crate) fn poll_failed(app: &mut App, at_ms: u64, id: u64, error: &str) {
        app.update(
            Report::Status(StatusReport {
                id,
                at_ms,
                result: Err(error.to_string()),
            }),
            at_ms,
        );
    }

    /// Every answering node answers again at `at_ms`, unchanged.
    pub(crate) fn refresh(app: &mut App, at_ms: u64) {
        let statuses: Vec<NodeStatus> = app
            .nodes
            .iter()
            .filter(|n| n.process.is_alive())
            .filter_map(|n| n.status.clone())
            .collect();
        for status in statuses {
            poll(app, at_ms, status);
        }
    }

    pub(crate) fn process(app: &mut App, at_ms: u64, id: u64, event: ProcessEvent) -> Vec<Effect> {
        app.update(Report::Process(ProcessReport { id, at_ms, event }), at_ms)
    }

    pub(crate) fn exited(app: &mut App, at_ms: u64, id: u64, exit: ExitKind) -> Vec<Effect> {
        process(app, at_ms, id, ProcessEvent::Exited { exit })
    }

    pub(crate) fn log_event(
        app: &mut App,
        at_ms: u64,
        id: u64,
        event: &str,
        fields: &[(&str, &str)],
    ) {
        let line = LogLine {
            id,
            at_ms,
            source: LogSource::Events,
            level: "INFO".into(),
            event: Some(event.into()),
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            text: String::new(),
        };
        app.update(Report::NodeLog(line), at_ms);
    }

    pub(crate) fn key(app: &mut App, at_ms: u64, code: KeyCode) -> Vec<Effect> {
        let action = action_for_key(KeyEvent::new(code, KeyModifiers::NONE)).expect("a mapped key");
        app.update(action, at_ms)
    }

    pub(crate) fn config(n: u64) -> Vec<NodeConfig> {
        (1..=n)
            .map(|id| NodeConfig {
                id,
                client_addr: format!("127.0.0.1:{}", 7000 + id),
            })
            .collect()
    }

    /// Three supervised nodes started (pids 4101-4103), none polled yet.
    pub(crate) fn started() -> App {
        let mut app = App::new(
            Mode::Supervised,
            config(3),
            T0,
            vec!["new cluster, data in data".into()],
        );
        let effects = app.start_all();
        assert_eq!(effects.len(), 3);
        for id in 1..=3 {
            process(
                &mut app,
                T0 + 20 + id,
                id,
                ProcessEvent::Started {
                    pid: 4100 + id as u32,
                },
            );
        }
        app
    }

    /// Node 2 leads term 2; everyone at index 107 with 100 keys written here.
    pub(crate) fn healthy() -> App {
        let mut app = started();
        log_event(
            &mut app,
            T0 + 180,
            1,
            "recovery",
            &[("entries", "0"), ("snapshot_index", "0")],
        );
        log_event(&mut app, T0 + 412, 2, "became_leader", &[("term", "2")]);
        let at = T0 + 600;
        poll(&mut app, at, status(1, Role::Follower, 2, 2, 7, DIGEST_B));
        poll(&mut app, at, status(2, Role::Leader, 2, 2, 7, DIGEST_B));
        poll(&mut app, at, status(3, Role::Follower, 2, 2, 7, DIGEST_B));
        refresh(&mut app, T0 + 1_950);
        key(&mut app, T0 + 2_000, KeyCode::Char('w'));
        key(&mut app, T0 + 2_001, KeyCode::Char('w'));
        app.update(
            Report::Write(WriteReport::Acked {
                seqs: vec![1..51],
                at_ms: T0 + 2_030,
            }),
            T0 + 2_030,
        );
        finish_bulk(&mut app, T0 + 2_031, 50, 29);
        app.update(
            Report::Write(WriteReport::Acked {
                seqs: vec![51..101],
                at_ms: T0 + 3_020,
            }),
            T0 + 3_020,
        );
        finish_bulk(&mut app, T0 + 3_021, 50, 21);
        let at = T0 + 3_200;
        poll(&mut app, at, status(1, Role::Follower, 2, 2, 107, DIGEST_A));
        poll(&mut app, at, status(2, Role::Leader, 2, 2, 107, DIGEST_A));
        poll(&mut app, at, status(3, Role::Follower, 2, 2, 107, DIGEST_A));
        app.nodes[1].log_tail.push_back(LogLine {
            id: 2,
            at_ms: T0 + 412,
            source: LogSource::Output,
            level: String::new(),
            event: None,
            fields: Vec::new(),
            text: "--- starting node 2 at 10:00:00.021 UTC ---".into(),
        });
        app.update(Report::Tick, T0 + 3_300);
        app
    }

    pub(crate) fn finish_bulk(
        app: &mut App,
        at_ms: u64,
        count: u64,
        elapsed_ms: u64,
    ) -> Vec<Effect> {
        app.update(
            Report::Write(WriteReport::BulkFinished(BulkWriteResult {
                via_status: None,
                requested: count,
                acked: count,
                failed: 0,
                outcome_unknown: 0,
                via: Some("127.0.0.1:7002".into()),
                elapsed_ms,
                first_error: None,
            })),
            at_ms,
        )
    }

    /// `healthy`, then k: node 2 killed; followers noticed, no leader yet.
    pub(crate) fn leader_killed() -> App {
        let mut app = healthy();
        refresh(&mut app, T0 + 9_990);
        let effects = key(&mut app, T0 + 10_000, KeyCode::Char('k'));
        assert_eq!(effects, vec![Effect::Kill { id: 2 }]);
        exited(&mut app, T0 + 10_003, 2, ExitKind::Signal(libc::SIGKILL));
        log_event(
            &mut app,
            T0 + 10_181,
            1,
            "leader_lost",
            &[("silence_ms", "180"), ("term", "2")],
        );
        log_event(
            &mut app,
            T0 + 10_190,
            3,
            "leader_lost",
            &[("silence_ms", "188"), ("term", "2")],
        );
        let at = T0 + 10_200;
        let mut one = status(1, Role::Follower, 2, 2, 107, DIGEST_A);
        one.leader_contact_ms = 196;
        let mut three = status(3, Role::Follower, 2, 2, 107, DIGEST_A);
        three.leader_contact_ms = 197;
        poll(&mut app, at, one);
        poll(&mut app, at, three);
        app
    }

    /// `leader_killed`, then an election: node 3 precandidate, node 1 candidate of term 3.
    pub(crate) fn election() -> App {
        let mut app = leader_killed();
        log_event(
            &mut app,
            T0 + 10_300,
            1,
            "election_timeout",
            &[("silence_ms", "297"), ("term", "2")],
        );
        log_event(
            &mut app,
            T0 + 10_301,
            1,
            "became_candidate",
            &[("term", "3")],
        );
        let at = T0 + 10_350;
        poll(
            &mut app,
            at,
            status(1, Role::Candidate, 3, 0, 107, DIGEST_A),
        );
        poll(
            &mut app,
            at,
            status(3, Role::PreCandidate, 2, 0, 107, DIGEST_A),
        );
        app
    }

    /// `election`, node 1 wins term 3; then r restarts the old leader (node 2).
    pub(crate) fn restarting() -> App {
        let mut app = election();
        log_event(&mut app, T0 + 10_412, 1, "became_leader", &[("term", "3")]);
        let at = T0 + 10_500;
        poll(&mut app, at, status(1, Role::Leader, 3, 1, 108, DIGEST_A));
        poll(&mut app, at, status(3, Role::Follower, 3, 1, 108, DIGEST_A));
        assert_eq!(app.nodes[app.selected].config.id, 2);
        let effects = key(&mut app, T0 + 11_000, KeyCode::Char('r'));
        assert_eq!(
            effects,
            vec![Effect::Start {
                id: 2,
                wipe_data: false
            }]
        );
        app.update(Report::Tick, T0 + 11_001);
        app
    }

    pub(crate) const INCARNATION_NEW: &str = "a41f0c9d22e3b871";
    pub(crate) const INCARNATION_OLD: &str = "7c02e51a9b3d4f60";

    /// Issue #10 on a fresh cluster led by node 3: `2` `s` (stop node 2), `w`
    /// (50 keys acknowledged by nodes 3 and 1, committed up to 53), `k` (kill
    /// node 3), then `1` selects node 1. The committed log is on node 1 and
    /// the killed node 3 only.
    pub(crate) fn issue_10_before_wipe() -> App {
        let mut app = started();
        log_event(&mut app, T0 + 400, 3, "became_leader", &[("term", "2")]);
        let at = T0 + 600;
        poll(&mut app, at, status(1, Role::Follower, 2, 3, 3, DIGEST_B));
        poll(&mut app, at, status(2, Role::Follower, 2, 3, 3, DIGEST_B));
        poll(&mut app, at, status(3, Role::Leader, 2, 3, 3, DIGEST_B));
        key(&mut app, T0 + 1_000, KeyCode::Char('2'));
        assert_eq!(
            key(&mut app, T0 + 1_001, KeyCode::Char('s')),
            vec![Effect::Stop { id: 2 }]
        );
        exited(&mut app, T0 + 1_100, 2, ExitKind::Code(0));
        refresh(&mut app, T0 + 1_950);
        assert_eq!(
            key(&mut app, T0 + 2_000, KeyCode::Char('w')),
            vec![Effect::BulkWrite { count: 50 }]
        );
        app.update(
            Report::Write(WriteReport::Acked {
                seqs: vec![1..51],
                at_ms: T0 + 2_030,
            }),
            T0 + 2_030,
        );
        finish_bulk(&mut app, T0 + 2_031, 50, 29);
        let at = T0 + 2_200;
        poll(&mut app, at, status(1, Role::Follower, 2, 3, 53, DIGEST_A));
        poll(&mut app, at, status(3, Role::Leader, 2, 3, 53, DIGEST_A));
        assert_eq!(
            key(&mut app, T0 + 3_000, KeyCode::Char('k')),
            vec![Effect::Kill { id: 3 }]
        );
        exited(&mut app, T0 + 3_003, 3, ExitKind::Signal(libc::SIGKILL));
        key(&mut app, T0 + 3_500, KeyCode::Char('1'));
        app
    }

    /// `issue_10_before_wipe`, then what older nodes (without incarnations)
    /// let happen: node 1's disk is wiped anyway, node 2 restarts with its 3
    /// entries and wins term 4 with node 1's vote. Committed entries 4-53 are
    /// gone: node 2 leads with commit index 4.
    pub(crate) fn data_loss() -> App {
        let mut app = issue_10_before_wipe();
        key(&mut app, T0 + 4_000, KeyCode::Char('2'));
        assert_eq!(
            key(&mut app, T0 + 4_001, KeyCode::Char('r')),
            vec![Effect::Start {
                id: 2,
                wipe_data: false
            }]
        );
        process(&mut app, T0 + 4_020, 2, ProcessEvent::Started { pid: 4202 });
        log_event(&mut app, T0 + 4_500, 2, "became_leader", &[("term", "4")]);
        let mut one = status(1, Role::Follower, 4, 2, 0, DIGEST_C);
        one.commit_index = 4;
        one.last_index = 4;
        one.incarnation = Some(INCARNATION_NEW.into());
        one.registered = Some(false);
        let mut two = status(2, Role::Leader, 4, 2, 4, DIGEST_B);
        two.pid = 4202;
        two.strangers = vec![1];
        let at = T0 + 4_600;
        poll(&mut app, at, two);
        poll(&mut app, at, one);
        app
    }

    /// Nodes 1 and 3 at the same applied index with different digests.
    pub(crate) fn diverged() -> App {
        let mut app = healthy();
        let at = T0 + 5_000;
        poll(&mut app, at, status(1, Role::Follower, 2, 2, 120, DIGEST_A));
        poll(&mut app, at, status(2, Role::Leader, 2, 2, 121, DIGEST_A));
        poll(&mut app, at, status(3, Role::Follower, 2, 2, 120, DIGEST_B));
        app
    }
}

use fixtures::*;

fn press(code: KeyCode) -> Option<Input> {
    action_for_key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn flash_text(app: &App) -> String {
    app.visible_flash()
        .map(|f| f.text.clone())
        .unwrap_or_default()
}

fn timeline_text(app: &App) -> Vec<String> {
    app.timeline.iter().map(|e| e.text.clone()).collect()
}

#[test]
fn every_key_maps_to_its_action() {
    let table = [
        (KeyCode::Char('q'), Input::Quit),
        (KeyCode::Char('?'), Input::ToggleHelp),
        (KeyCode::Esc, Input::CloseHelp),
        (KeyCode::Left, Input::SelectPrevious),
        (KeyCode::Right, Input::SelectNext),
        (KeyCode::Char('1'), Input::Select(1)),
        (KeyCode::Char('9'), Input::Select(9)),
        (KeyCode::Char('k'), Input::KillLeader),
        (KeyCode::Char('x'), Input::KillSelected),
        (KeyCode::Char('s'), Input::StopSelected),
        (KeyCode::Char('r'), Input::RestartSelected),
        (KeyCode::Char('R'), Input::WipeAndRestartSelected),
        (KeyCode::Char('w'), Input::BulkWrite),
        (KeyCode::Char('W'), Input::ToggleWriteLoad),
        (KeyCode::Char('+'), Input::BulkWriteCountUp),
        (KeyCode::Char('-'), Input::BulkWriteCountDown),
        (KeyCode::Char('v'), Input::Verify),
        (KeyCode::Char('d'), Input::RunGate),
        (KeyCode::Char('e'), Input::ExportEvidence),
        (KeyCode::Char('z'), Input::UnknownKey("z".into())),
    ];
    for (code, action) in table {
        assert_eq!(press(code), Some(action), "{code:?}");
    }
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(action_for_key(ctrl_c), Some(Input::Quit));
    let release = KeyEvent {
        code: KeyCode::Char('k'),
        modifiers: KeyModifiers::NONE,
        kind: KeyEventKind::Release,
        state: KeyEventState::NONE,
    };
    assert_eq!(action_for_key(release), None);
}

#[test]
fn unknown_keys_say_they_did_nothing() {
    let mut app = healthy();
    key(&mut app, T0 + 4_000, KeyCode::Char('z'));
    assert_eq!(
        flash_text(&app),
        "key 'z' does nothing; press ? for the list of keys"
    );
}

#[test]
fn quit_stops_nodes_gracefully_then_exits_when_all_are_down() {
    let mut app = healthy();
    let effects = key(&mut app, T0 + 4_000, KeyCode::Char('q'));
    assert_eq!(effects, vec![Effect::StopAll]);
    assert!(!app.should_exit);
    assert!(app
        .nodes
        .iter()
        .all(|n| matches!(n.process, ProcessState::Stopping { graceful: true, .. })));
    // Process keys are refused while quitting.
    assert!(key(&mut app, T0 + 4_001, KeyCode::Char('k')).is_empty());
    assert!(flash_text(&app).starts_with("quitting"));
    for id in 1..=3 {
        assert!(exited(&mut app, T0 + 4_100, id, ExitKind::Code(0)).is_empty());
    }
    assert!(app.should_exit);
}

#[test]
fn quit_twice_exits_at_once_and_the_deadline_exits_too() {
    let mut app = healthy();
    key(&mut app, T0 + 4_000, KeyCode::Char('q'));
    key(&mut app, T0 + 4_100, KeyCode::Char('q'));
    assert!(app.should_exit);

    let mut app = healthy();
    key(&mut app, T0 + 4_000, KeyCode::Char('q'));
    app.update(Report::Tick, T0 + 4_000 + QUIT_DEADLINE_MS + 1);
    assert!(app.should_exit);
}

#[test]
fn quit_stops_the_write_load_and_attached_quits_at_once() {
    let mut app = App::new(Mode::Attached, config(3), T0, Vec::new());
    key(&mut app, T0 + 1, KeyCode::Char('W'));
    let effects = key(&mut app, T0 + 2, KeyCode::Char('q'));
    assert_eq!(effects, vec![Effect::SetWriteLoad { on: false }]);
    assert!(app.should_exit);
}

#[test]
fn help_toggles_and_any_other_key_closes_it_and_acts() {
    let mut app = healthy();
    key(&mut app, T0 + 4_000, KeyCode::Char('?'));
    assert!(app.help_open);
    key(&mut app, T0 + 4_001, KeyCode::Char('?'));
    assert!(!app.help_open);
    key(&mut app, T0 + 4_002, KeyCode::Char('?'));
    assert!(key(&mut app, T0 + 4_003, KeyCode::Esc).is_empty());
    assert!(!app.help_open);
    key(&mut app, T0 + 4_004, KeyCode::Char('?'));
    key(&mut app, T0 + 4_005, KeyCode::Char('3'));
    assert!(!app.help_open);
    assert_eq!(app.selected, 2);
}

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
    for code in ['k', 'x', 's', 'r', 'R'] {
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
fn capital_r_wipes_and_restarts_running_or_dead_nodes() {
    let mut app = healthy();
    key(&mut app, T0 + 4_000, KeyCode::Char('1'));
    assert_eq!(
        key(&mut app, T0 + 4_001, KeyCode::Char('R')),
        vec![Effect::Stop { id: 1 }]
    );
    assert_eq!(app.nodes[0].restart_pending, Some(true));
    assert!(key(&mut app, T0 + 4_002, KeyCode::Char('R')).is_empty());
    assert_eq!(flash_text(&app), "node 1 is already restarting");
    assert_eq!(
        exited(&mut app, T0 + 4_100, 1, ExitKind::Code(0)),
        vec![Effect::Start {
            id: 1,
            wipe_data: true
        }]
    );
    let mut dead = leader_killed();
    assert_eq!(
        key(&mut dead, T0 + 11_000, KeyCode::Char('R')),
        vec![Effect::Start {
            id: 2,
            wipe_data: true
        }]
    );
}

#[test]
fn w_writes_through_the_leader_queues_behind_a_running_write_and_refuses_without_leader() {
    let mut app = healthy();
    assert_eq!(
        key(&mut app, T0 + 4_000, KeyCode::Char('w')),
        vec![Effect::BulkWrite { count: 50 }]
    );
    assert!(key(&mut app, T0 + 4_001, KeyCode::Char('w')).is_empty());
    assert_eq!(app.bulk_queue.len(), 1);
    assert!(flash_text(&app).contains("queued"));
    let effects = finish_bulk(&mut app, T0 + 4_050, 50, 40);
    assert_eq!(effects, vec![Effect::BulkWrite { count: 50 }]);
    assert!(app.bulk_queue.is_empty());
    for _ in 0..BULK_WRITES_QUEUED_MAX {
        key(&mut app, T0 + 4_060, KeyCode::Char('w'));
    }
    assert!(key(&mut app, T0 + 4_061, KeyCode::Char('w')).is_empty());
    assert!(flash_text(&app).contains("already waiting"));

    let mut leaderless = leader_killed();
    assert!(key(&mut leaderless, T0 + 10_300, KeyCode::Char('w')).is_empty());
    assert!(flash_text(&leaderless).starts_with("no leader to write 50 keys through"));
}

#[test]
fn bulk_results_name_the_node_and_the_time_or_the_failure() {
    let app = healthy();
    assert!(timeline_text(&app).contains(&"wrote 50 keys via node 2 in 29 ms".to_string()));
    assert_eq!(app.acked.count(), 100);

    let mut app = healthy();
    key(&mut app, T0 + 4_000, KeyCode::Char('w'));
    app.update(
        Report::Write(WriteReport::BulkFinished(BulkWriteResult {
            via_status: None,
            requested: 50,
            acked: 47,
            failed: 2,
            outcome_unknown: 1,
            via: None,
            elapsed_ms: 5_100,
            first_error: Some("CLUSTERDOWN no leader".into()),
        })),
        T0 + 9_100,
    );
    assert_eq!(
        flash_text(&app),
        "wrote 47 of 50 keys in 5.1 s; 2 not applied; 1 outcome unknown (CLUSTERDOWN no leader)"
    );
    assert_eq!(app.outcome_unknown_writes, 1);
}

#[test]
fn plus_and_minus_step_the_batch_size_within_bounds() {
    let mut app = healthy();
    key(&mut app, T0 + 4_000, KeyCode::Char('+'));
    assert_eq!(app.bulk_write_count, 100);
    assert_eq!(flash_text(&app), "w now writes 100 keys");
    for _ in 0..10 {
        key(&mut app, T0 + 4_001, KeyCode::Char('+'));
    }
    assert_eq!(app.bulk_write_count, 10_000);
    assert!(flash_text(&app).starts_with("bulk write size stays 10000"));
    for _ in 0..10 {
        key(&mut app, T0 + 4_002, KeyCode::Char('-'));
    }
    assert_eq!(app.bulk_write_count, 10);
    assert_eq!(
        key(&mut app, T0 + 4_003, KeyCode::Char('w')),
        vec![Effect::BulkWrite { count: 10 }]
    );
}

#[test]
fn capital_w_toggles_the_load_and_a_stopped_load_turns_off() {
    let mut app = healthy();
    assert_eq!(
        key(&mut app, T0 + 4_000, KeyCode::Char('W')),
        vec![Effect::SetWriteLoad { on: true }]
    );
    assert!(app.load_on);
    assert_eq!(
        key(&mut app, T0 + 4_001, KeyCode::Char('W')),
        vec![Effect::SetWriteLoad { on: false }]
    );
    assert!(!app.load_on);
    key(&mut app, T0 + 4_002, KeyCode::Char('W'));
    app.update(
        Report::Write(WriteReport::LoadStopped {
            outcome_unknown: 2,
            error: Some("no write succeeded for 30 s".into()),
        }),
        T0 + 40_000,
    );
    assert!(!app.load_on);
    assert_eq!(app.outcome_unknown_writes, 2);
    assert!(flash_text(&app).contains("no write succeeded"));
}

#[test]
fn acked_writes_feed_the_per_second_rate() {
    let mut app = healthy();
    for (second, count) in [(5u64, 300u64), (6, 900), (7, 10)] {
        app.update(
            Report::Write(WriteReport::Acked {
                seqs: vec![1_000 * second..1_000 * second + count],
                at_ms: T0 + second * 1_000 + 500,
            }),
            T0 + second * 1_000 + 500,
        );
    }
    app.update(Report::Tick, T0 + 8_100);
    assert_eq!(app.write_rate.last_complete_second(), 10);
    assert_eq!(app.write_rate.peak(), 900);
    assert_eq!(app.acked.count(), 100 + 1_210);
}

#[test]
fn v_verifies_written_keys_and_refuses_when_nothing_or_busy() {
    let mut fresh = started();
    assert!(key(&mut fresh, T0 + 100, KeyCode::Char('v')).is_empty());
    assert!(flash_text(&fresh).starts_with("nothing to verify"));

    let mut app = healthy();
    let effects = key(&mut app, T0 + 4_000, KeyCode::Char('v'));
    assert_eq!(
        effects,
        vec![Effect::Verify {
            nodes: config(3)
                .into_iter()
                .map(|c| (c.id, c.client_addr))
                .collect(),
            ranges: vec![1..101],
        }]
    );
    assert!(key(&mut app, T0 + 4_001, KeyCode::Char('v')).is_empty());
    assert_eq!(flash_text(&app), "a verification is already running");
    let check = |id, result| NodeVerification { id, result };
    app.update(
        Report::VerifyFinished(VerifyResult {
            keys: 100,
            nodes: vec![
                check(1, Ok(KeyCheck::default())),
                check(
                    2,
                    Ok(KeyCheck {
                        missing: 1,
                        wrong: 0,
                        examples: vec!["dash:1:000007 missing".into()],
                    }),
                ),
                check(3, Err("connection refused".into())),
            ],
            elapsed_ms: 45,
        }),
        T0 + 4_100,
    );
    assert!(!app.verify_running);
    assert_eq!(
        flash_text(&app),
        "verify 100 keys: node 2: 1 missing, 0 wrong (dash:1:000007 missing); node 3: not checked, connection refused"
    );
    key(&mut app, T0 + 4_200, KeyCode::Char('v'));
    app.update(
        Report::VerifyFinished(VerifyResult {
            keys: 100,
            nodes: (1..=3)
                .map(|id| check(id, Ok(KeyCheck::default())))
                .collect(),
            elapsed_ms: 45,
        }),
        T0 + 4_300,
    );
    assert_eq!(
        flash_text(&app),
        "verified 100 keys on 3 nodes in 45 ms: every value matches"
    );
}

/// A gate record as the scenario sends it: `entries` timeline lines, the
/// given verdicts.
fn gate_record(entries: &[(&str, StepKind, &str)], verdicts: &[(usize, bool)]) -> GateRecord {
    let mut record = GateRecord::new(crate::evidence::RunMode::Dashboard, Vec::new(), T0);
    for (i, (step, kind, text)) in entries.iter().enumerate() {
        record.push(crate::evidence::TimelineEntry {
            at_ms: T0 + 5_000 + i as u64,
            step: step.to_string(),
            kind: *kind,
            text: text.to_string(),
        });
    }
    for (item, pass) in verdicts {
        let result = if *pass {
            crate::evidence::ItemResult::pass("measured", "here")
        } else {
            crate::evidence::ItemResult::fail("why", "here")
        };
        record.set_item(*item, result);
    }
    record
}

fn gate_progress(app: &mut App, at_ms: u64, record: GateRecord) {
    let progress = GateProgress {
        record,
        bundle_dir: Some("logs/evidence/2024-05-01T10-00-05Z".into()),
    };
    app.update(Report::GateProgress(Box::new(progress)), at_ms);
}

#[test]
fn d_runs_the_gate_and_keys_that_would_disturb_it_wait() {
    let mut app = healthy();
    assert!(
        key(&mut app, T0 + 4_000, KeyCode::Char('W')).contains(&Effect::SetWriteLoad { on: true })
    );
    // The gate needs a cluster that stands still: the write load stops.
    assert_eq!(
        key(&mut app, T0 + 4_100, KeyCode::Char('d')),
        vec![
            Effect::SetWriteLoad { on: false },
            Effect::RunGate {
                integrity: Box::new(app.integrity.clone())
            }
        ]
    );
    assert!(app.gate_running() && app.gate_panel_visible());
    assert!(key(&mut app, T0 + 4_200, KeyCode::Char('d')).is_empty());
    assert_eq!(
        flash_text(&app),
        "the quality gate is already running (Esc aborts it)"
    );
    for refused in ['k', 'x', 's', 'r', 'R', 'w', 'W'] {
        assert!(
            key(&mut app, T0 + 4_300, KeyCode::Char(refused)).is_empty(),
            "{refused}"
        );
        assert_eq!(flash_text(&app), GATE_RUNNING_REFUSAL, "{refused}");
    }
    // Watching keeps working.
    assert!(key(&mut app, T0 + 4_400, KeyCode::Char('2')).is_empty());
    assert_eq!(app.selected, 1);

    gate_progress(
        &mut app,
        T0 + 5_100,
        gate_record(
            &[
                ("1.1", StepKind::Step, "print the plan"),
                ("1", StepKind::Pass, "Demo plan written: plan saved"),
            ],
            &[(1, true)],
        ),
    );
    let gate = app.gate.as_ref().unwrap();
    assert_eq!(gate.verdict(1), Some(Verdict::Pass));
    assert_eq!(gate.verdict(2), None);
    let timeline = timeline_text(&app);
    assert!(
        timeline.contains(&"gate [1.1] print the plan".to_string()),
        "{timeline:#?}"
    );
    assert!(
        timeline.contains(&"gate [1] PASS Demo plan written: plan saved".to_string()),
        "{timeline:#?}"
    );

    // Esc aborts the gate (it leaves the cluster as it is).
    assert_eq!(
        key(&mut app, T0 + 5_200, KeyCode::Esc),
        vec![Effect::AbortGate]
    );
    let record = gate_record(
        &[
            ("1.1", StepKind::Step, "print the plan"),
            ("1", StepKind::Pass, "Demo plan written: plan saved"),
        ],
        &[(1, true), (2, false)],
    );
    let outcome = GateOutcome {
        record,
        bundle: Ok("logs/evidence/2024-05-01T10-00-05Z".into()),
    };
    app.update(Report::GateFinished(Box::new(outcome)), T0 + 5_300);
    assert!(!app.gate_running());
    // A progress update that arrives after the outcome is stale: ignored.
    let shown = app.timeline.len();
    gate_progress(
        &mut app,
        T0 + 5_301,
        gate_record(&[("1.1", StepKind::Step, "print the plan")], &[]),
    );
    assert_eq!(app.timeline.len(), shown);
    assert_eq!(app.gate.as_ref().unwrap().verdict(2), Some(Verdict::Fail));
    assert_eq!(
        flash_text(&app),
        "quality gate: 1/8 PASS; evidence in logs/evidence/2024-05-01T10-00-05Z"
    );
    // Process keys work again; the panel stays a while, then the log returns.
    assert_eq!(
        key(&mut app, T0 + 5_400, KeyCode::Char('x')),
        vec![Effect::Kill { id: 2 }]
    );
    assert!(app.gate_panel_visible());
    app.update(Report::Tick, T0 + 5_300 + GATE_PANEL_AFTER_MS + 1);
    assert!(!app.gate_panel_visible());
}

#[test]
fn e_exports_what_the_gate_has_shown_so_far() {
    let mut app = healthy();
    assert_eq!(
        key(&mut app, T0 + 4_000, KeyCode::Char('e')),
        vec![Effect::ExportEvidence { gate: None }]
    );
    key(&mut app, T0 + 4_100, KeyCode::Char('d'));
    let record = gate_record(&[("2.3", StepKind::Step, "SET key:0001..")], &[(1, true)]);
    gate_progress(&mut app, T0 + 5_000, record.clone());
    assert_eq!(
        key(&mut app, T0 + 5_100, KeyCode::Char('e')),
        vec![Effect::ExportEvidence {
            gate: Some(Box::new(record))
        }]
    );
    app.update(
        Report::EvidenceExported(Ok("logs/evidence/2024-05-01T10-00-05Z".into())),
        T0 + 5_200,
    );
    assert_eq!(
        flash_text(&app),
        "evidence exported to logs/evidence/2024-05-01T10-00-05Z (items not shown yet are FAIL, not run)"
    );
    app.update(
        Report::EvidenceExported(Err("disk full".into())),
        T0 + 5_300,
    );
    assert_eq!(flash_text(&app), "evidence export failed: disk full");
}

#[test]
fn quitting_aborts_a_running_gate() {
    let mut app = healthy();
    key(&mut app, T0 + 4_000, KeyCode::Char('d'));
    let effects = key(&mut app, T0 + 4_100, KeyCode::Char('q'));
    assert!(effects.contains(&Effect::AbortGate), "{effects:?}");
    assert!(effects.contains(&Effect::StopAll), "{effects:?}");
}

#[test]
fn failover_is_timed_from_the_kill() {
    let mut app = election();
    log_event(&mut app, T0 + 10_412, 1, "became_leader", &[("term", "3")]);
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

#[test]
fn storage_events_read_as_sentences() {
    let mut app = started();
    log_event(
        &mut app,
        T0 + 100,
        1,
        "recovery",
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
        "snapshot_sent",
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
        "snapshot_installed",
        &[("index", "30004"), ("term", "3")],
    );
    log_event(
        &mut app,
        T0 + 400,
        2,
        "leader_lost",
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
fn acked_ranges_merge() {
    let mut acked = AckedKeys::default();
    acked.insert(5..10);
    acked.insert(1..3);
    acked.insert(3..5);
    acked.insert(20..21);
    acked.insert(8..12);
    acked.insert(4..4);
    assert_eq!(acked.ranges(), &[1..12, 20..21]);
    assert_eq!(acked.count(), 12);
}

#[test]
fn the_timeline_is_bounded() {
    let mut app = started();
    for i in 0..(TIMELINE_EVENTS_MAX as u64 + 10) {
        log_event(&mut app, T0 + i, 1, "stepped_down", &[("term", "1")]);
    }
    assert_eq!(app.timeline.len(), TIMELINE_EVENTS_MAX);
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
    // Wiping node 2 (behind, holds nothing committed) is fine: 1 and 3 hold it.
    key(&mut app, T0 + 4_100, KeyCode::Char('2'));
    assert_eq!(
        key(&mut app, T0 + 4_101, KeyCode::Char('R')),
        vec![Effect::Start {
            id: 2,
            wipe_data: true
        }]
    );
}

#[test]
fn capital_r_is_allowed_while_a_quorum_holds_the_log_and_a_wiped_node_counts_again_once_readmitted()
{
    let mut app = healthy();
    key(&mut app, T0 + 4_000, KeyCode::Char('1'));
    assert_eq!(
        key(&mut app, T0 + 4_001, KeyCode::Char('R')),
        vec![Effect::Stop { id: 1 }]
    );
    // Until the wipe happens node 1 is already no holder: R on node 2 waits.
    key(&mut app, T0 + 4_002, KeyCode::Char('2'));
    assert!(key(&mut app, T0 + 4_003, KeyCode::Char('R')).is_empty());
    assert!(
        flash_text(&app).contains("would leave 1 intact holder"),
        "{}",
        flash_text(&app)
    );
    assert!(flash_text(&app).contains("(up to index 107: node 3)"));
    assert_eq!(
        exited(&mut app, T0 + 4_100, 1, ExitKind::Code(0)),
        vec![Effect::Start {
            id: 1,
            wipe_data: true
        }]
    );
    assert!(timeline_text(&app)
        .contains(&"node 1: data dir wiped, restarting with an empty disk".to_string()));
    assert_eq!(app.nodes[0].wiped_at_ms, Some(T0 + 4_100));
    process(&mut app, T0 + 4_120, 1, ProcessEvent::Started { pid: 4201 });
    // Back with an empty disk, not yet re-admitted: still no holder.
    let mut fresh = fixtures::status(1, crate::status::Role::Follower, 2, 2, 0, DIGEST_C);
    fresh.incarnation = Some(INCARNATION_NEW.into());
    fresh.registered = Some(false);
    poll(&mut app, T0 + 4_300, fresh.clone());
    assert!(key(&mut app, T0 + 4_301, KeyCode::Char('R')).is_empty());
    assert!(flash_text(&app).starts_with("R refused: wiping node 2"));
    // Caught up and re-admitted: a voter and a holder again.
    let mut readmitted = fixtures::status(1, crate::status::Role::Follower, 2, 2, 107, DIGEST_A);
    readmitted.incarnation = Some(INCARNATION_NEW.into());
    readmitted.registered = Some(true);
    poll(&mut app, T0 + 4_500, readmitted);
    assert!(app.nodes[0].wiped_at_ms.is_none());
    assert!(timeline_text(&app).contains(&"node 1: voter again (incarnation a41f..)".to_string()));
    assert_eq!(
        key(&mut app, T0 + 4_600, KeyCode::Char('R')),
        vec![Effect::Stop { id: 2 }]
    );
    assert!(app.integrity.alarms().is_empty());
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
        record.set_item(item, crate::evidence::ItemResult::pass("measured", "here"));
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
    log_event(&mut app, T0 + 100, 3, "peer_incarnation_changed", &changed);
    log_event(&mut app, T0 + 101, 2, "peer_incarnation_changed", &changed);
    log_event(
        &mut app,
        T0 + 200,
        3,
        "readmission_proposed",
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
            "member_readmitted",
            &readmitted,
        );
    }
    log_event(
        &mut app,
        T0 + 400,
        3,
        "member_readmitted",
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
