//! Key -> Input -> state tests for every key, refusals included, and the
//! timeline's measured intervals, one file per module of `app`. `fixtures`
//! builds the states these tests and the UI snapshots use, with fixed pids
//! and times.

// Key sequence numbers travel as lists of ranges; a list of one range is meant.
#![allow(clippy::single_range_in_vec_init)]

use super::gate::GATE_PANEL_AFTER_MS;
use super::nodes::STATUS_STALE_MS;
use super::observer::OUTPUT_LINES_IN_TIMELINE_MAX;
use super::workload::BULK_WRITES_QUEUED_MAX;
use super::*;
use crate::gate_record::{StepKind, Verdict};
use crate::plan::ITEM_COUNT;
use crate::poll::LogSource;
use crate::status::NodeStatus;
use crate::supervisor::{ExitKind, ProcessEvent};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyEventState, KeyModifiers};
use raftkv_node::log_events;

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
            term,
            leader_id,
            leader_client_addr: if leader_id == 0 {
                String::new()
            } else {
                format!("127.0.0.1:{}", 7000 + leader_id)
            },
            commit_index: applied,
            applied_index: applied,
            last_index: applied,
            keys: applied.saturating_sub(7),
            digest: digest.to_string(),
            leader_contact_ms: if leader_id == id { 0 } else { 14 + id },
            pid: 4100 + id as u32,
            uptime_ms: 60_000,
            ..crate::status::example_status(id, role)
        }
    }

    /// `status` with a configuration: its voters, learners, the voters
    /// before a pending change, and the configuration's index.
    pub(crate) fn with_members(
        status: NodeStatus,
        voters: &[u64],
        learners: &[u64],
        previous_voters: &[u64],
        index: u64,
    ) -> NodeStatus {
        NodeStatus {
            voters: voters.to_vec(),
            learners: learners.to_vec(),
            previous_voters: previous_voters.to_vec(),
            membership_index: index,
            ..status
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
            log_events::RECOVERY,
            &[("entries", "0"), ("snapshot_index", "0")],
        );
        log_event(
            &mut app,
            T0 + 412,
            2,
            log_events::BECAME_LEADER,
            &[("term", "2")],
        );
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

    /// `healthy`, then faults: node 1 isolated, node 3 one-way and slow,
    /// node 2 (the leader) paused and silent. No quorum can form.
    pub(crate) fn faulted() -> App {
        let mut app = healthy();
        key(&mut app, T0 + 4_000, KeyCode::Char('p'));
        key(&mut app, T0 + 4_001, KeyCode::Char('3'));
        key(&mut app, T0 + 4_002, KeyCode::Char('o'));
        key(&mut app, T0 + 4_003, KeyCode::Char('l'));
        key(&mut app, T0 + 4_004, KeyCode::Char('2'));
        key(&mut app, T0 + 4_005, KeyCode::Char('z'));
        poll_failed(&mut app, T0 + 4_500, 2, "timed out");
        let at = T0 + 4_500;
        poll(
            &mut app,
            at,
            status(1, Role::PreCandidate, 2, 0, 107, DIGEST_A),
        );
        poll(
            &mut app,
            at,
            status(3, Role::PreCandidate, 2, 0, 107, DIGEST_A),
        );
        app.update(Report::Tick, T0 + 4_600);
        app
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
            log_events::LEADER_LOST,
            &[("silence_ms", "180"), ("term", "2")],
        );
        log_event(
            &mut app,
            T0 + 10_190,
            3,
            log_events::LEADER_LOST,
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
            log_events::ELECTION_TIMEOUT,
            &[("silence_ms", "297"), ("term", "2")],
        );
        log_event(
            &mut app,
            T0 + 10_301,
            1,
            log_events::BECAME_CANDIDATE,
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

    /// `election`, and node 1's log says it won term 3.
    pub(crate) fn elected() -> App {
        let mut app = election();
        log_event(
            &mut app,
            T0 + 10_412,
            1,
            log_events::BECAME_LEADER,
            &[("term", "3")],
        );
        app
    }

    /// `elected`, node 1 answers as leader; then r restarts the old leader (node 2).
    pub(crate) fn restarting() -> App {
        let mut app = elected();
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
        log_event(
            &mut app,
            T0 + 400,
            3,
            log_events::BECAME_LEADER,
            &[("term", "2")],
        );
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
        log_event(
            &mut app,
            T0 + 4_500,
            2,
            log_events::BECAME_LEADER,
            &[("term", "4")],
        );
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

    /// Every id up to 5 may be added (as the dashboard's layout allows).
    pub(crate) fn allow_five(app: &mut App) {
        app.set_addable(config(5));
    }

    /// `healthy`, five nodes allowed, and every node answers with a
    /// configuration (voters {1,2,3} at index 3).
    pub(crate) fn healthy_with_members() -> App {
        let mut app = healthy();
        allow_five(&mut app);
        let at = T0 + 3_400;
        for id in 1..=3 {
            let role = if id == 2 {
                Role::Leader
            } else {
                Role::Follower
            };
            let status = with_members(
                status(id, role, 2, 2, 107, DIGEST_A),
                &[1, 2, 3],
                &[],
                &[],
                3,
            );
            poll(&mut app, at, status);
        }
        app
    }

    /// `healthy_with_members`, then `a`: node 4 started with `--join`
    /// through the leader, listed as a learner at index 108 and catching up
    /// (applied 60 of 110).
    pub(crate) fn learner_catching_up() -> App {
        let mut app = healthy_with_members();
        let effects = key(&mut app, T0 + 4_000, KeyCode::Char('a'));
        assert_eq!(
            effects[0],
            Effect::Join {
                id: 4,
                via: "127.0.0.1:7002".into(),
                wipe_data: true
            }
        );
        process(&mut app, T0 + 4_020, 4, ProcessEvent::Started { pid: 4104 });
        let at = T0 + 4_300;
        let mut four = with_members(
            status(4, Role::Follower, 2, 2, 60, DIGEST_B),
            &[1, 2, 3],
            &[4],
            &[],
            108,
        );
        four.incarnation = Some(INCARNATION_NEW.into());
        four.uptime_ms = 280;
        poll(&mut app, at, four);
        for id in 1..=3 {
            let role = if id == 2 {
                Role::Leader
            } else {
                Role::Follower
            };
            let mut s = with_members(
                status(id, role, 2, 2, 110, DIGEST_A),
                &[1, 2, 3],
                &[4],
                &[],
                108,
            );
            if id == 2 {
                s.match_indexes = vec![(1, 110), (3, 110), (4, 60)];
            }
            poll(&mut app, at, s);
        }
        app.update(Report::Tick, T0 + 4_310);
        app
    }

    /// `learner_catching_up`, then node 4 caught up and the leader proposed
    /// its promotion: voters {1,2,3,4} while {1,2,3} must still agree.
    pub(crate) fn joint_promotion() -> App {
        let mut app = learner_catching_up();
        let at = T0 + 4_600;
        for id in 1..=4 {
            let role = if id == 2 {
                Role::Leader
            } else {
                Role::Follower
            };
            let mut s = with_members(
                status(id, role, 2, 2, 112, DIGEST_A),
                &[1, 2, 3, 4],
                &[],
                &[1, 2, 3],
                112,
            );
            if id == 2 {
                s.match_indexes = vec![(1, 112), (3, 112), (4, 112)];
            }
            if id == 4 {
                s.incarnation = Some(INCARNATION_NEW.into());
                s.pid = 4104;
            }
            poll(&mut app, at, s);
        }
        app.update(Report::Tick, T0 + 4_610);
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

/// A gate record as the scenario sends it: `entries` timeline lines, the
/// given verdicts.
fn gate_record(entries: &[(&str, StepKind, &str)], verdicts: &[(usize, bool)]) -> GateRecord {
    let mut record = GateRecord::new(crate::gate_record::RunMode::Dashboard, Vec::new(), T0);
    for (i, (step, kind, text)) in entries.iter().enumerate() {
        record.push(crate::gate_record::TimelineEntry {
            at_ms: T0 + 5_000 + i as u64,
            step: step.to_string(),
            kind: *kind,
            text: text.to_string(),
        });
    }
    for (item, pass) in verdicts {
        let result = if *pass {
            crate::gate_record::ItemResult::pass("measured", "here")
        } else {
            crate::gate_record::ItemResult::fail("why", "here")
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

mod faults;
mod gate;
mod keys;
mod membership;
mod nodes;
mod observer;
mod workload;
