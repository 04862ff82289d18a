//! Snapshots of the key screens, drawn into a `TestBackend`. The app states
//! come from `app::tests::fixtures`, which fix every pid, port and time, so
//! the snapshots are stable without filters and show the exact layout
//! (a filter that shortens a time would misalign every column after it).

use ratatui::backend::TestBackend;
use ratatui::Terminal;

use crate::app::keymap::KEYMAP;
use crate::app::tests::fixtures;
use crate::app::App;

pub(crate) fn draw(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal
        .draw(|frame| frame.render_widget(app, frame.area()))
        .unwrap();
    terminal.backend().to_string()
}

macro_rules! assert_screen {
    ($name:expr, $screen:expr) => {
        insta::assert_snapshot!($name, $screen);
    };
}

#[test]
fn healthy_cluster() {
    assert_screen!("healthy", draw(&fixtures::healthy(), 120, 32));
}

#[test]
fn healthy_cluster_at_80x24() {
    assert_screen!("healthy_80x24", draw(&fixtures::healthy(), 80, 24));
}

/// LINKS, PAUSED and the header without a quorum, wide and narrow (where
/// the link fault shows in the process column).
#[test]
fn faults_in_the_table_and_the_header() {
    let app = fixtures::faulted();
    let wide = draw(&app, 120, 32);
    assert!(wide.lines().next().unwrap().contains("NO QUORUM"), "{wide}");
    assert_screen!("faulted", wide);
    assert_screen!("faulted_80x24", draw(&app, 80, 24));
}

/// The load's history verdict sits on the header's second line.
#[test]
fn the_history_verdict_is_in_the_header() {
    let mut app = fixtures::healthy();
    app.history_verdict = Some(crate::live_history::HistoryVerdict {
        ops: 48_211,
        not_recorded: 0,
        problem: None,
    });
    let screen = draw(&app, 120, 32);
    let second = screen.lines().nth(1).unwrap();
    assert!(
        second.contains("history 48,211 ops · LINEARIZABLE"),
        "{second}"
    );
}

#[test]
fn leader_killed() {
    assert_screen!("leader_killed", draw(&fixtures::leader_killed(), 120, 32));
}

#[test]
fn election_in_progress() {
    assert_screen!("election", draw(&fixtures::election(), 100, 30));
}

#[test]
fn node_restarting() {
    assert_screen!("restarting", draw(&fixtures::restarting(), 100, 30));
}

#[test]
fn diverged() {
    assert_screen!("diverged", draw(&fixtures::diverged(), 100, 30));
}

#[test]
fn help_overlay_at_80x24() {
    let mut app = fixtures::healthy();
    fixtures::key(
        &mut app,
        fixtures::T0 + 3_400,
        crossterm::event::KeyCode::Char('?'),
    );
    assert_screen!("help_80x24", draw(&app, 80, 24));
}

/// Every screen fits a small terminal without panicking, down to absurd sizes.
#[test]
fn tiny_terminals_do_not_panic() {
    let app = fixtures::restarting();
    for (width, height) in [(80, 24), (40, 10), (10, 5), (1, 1), (200, 60)] {
        let screen = draw(&app, width, height);
        assert_eq!(screen.lines().count(), usize::from(height));
    }
}

/// The table columns fit 80 columns: the LAG column (the last) is visible.
#[test]
fn all_columns_fit_80_wide() {
    let screen = draw(&fixtures::healthy(), 80, 24);
    let header = screen.lines().find(|l| l.contains("PROCESS")).unwrap();
    assert!(header.contains("LAG"), "{header}");
    let leader_row = screen.lines().find(|l| l.contains("LEADER")).unwrap();
    assert!(leader_row.contains("9c416561"), "{leader_row}");
}

/// An attached dashboard does not offer the keys it would refuse.
#[test]
fn attached_footer_offers_no_process_keys() {
    let mut app = App::new(
        crate::app::Mode::Attached,
        fixtures::config(3),
        fixtures::T0,
        Vec::new(),
    );
    let screen = draw(&app, 120, 30);
    let footer = screen.lines().last().unwrap();
    assert!(!footer.contains("kill"), "{footer}");
    assert!(
        footer.contains("verify") && footer.contains("quit"),
        "{footer}"
    );
    assert!(screen.contains("Nodes (attached)"));
    fixtures::key(
        &mut app,
        fixtures::T0 + 1,
        crossterm::event::KeyCode::Char('?'),
    );
    assert!(draw(&app, 120, 30).contains("kill, stop and restart are disabled"));
}

/// `d` on a healthy cluster, three items in: the gate panel replaces the log
/// pane with each item's verdict so far, the step in progress and the bundle.
#[test]
fn gate_running() {
    use crate::gate_record::{GateRecord, ItemResult, RunMode, StepKind, TimelineEntry};
    let mut app = fixtures::healthy();
    fixtures::key(
        &mut app,
        fixtures::T0 + 4_000,
        crossterm::event::KeyCode::Char('d'),
    );
    let mut record = GateRecord::new(RunMode::Dashboard, Vec::new(), fixtures::T0 + 4_000);
    for (at, step, kind, text) in [
        (4_010, "1", StepKind::Pass, "Demo plan written: plan saved"),
        (
            4_200,
            "2",
            StepKind::Pass,
            "Writes to leader work: 50/50 keys right",
        ),
        (
            4_300,
            "3",
            StepKind::Pass,
            "Leader kill triggers detection: node 1 5 ms",
        ),
        (
            4_310,
            "4.1",
            StepKind::Step,
            "poll the survivors until exactly one leads",
        ),
    ] {
        record.push(TimelineEntry {
            at_ms: fixtures::T0 + at,
            step: step.into(),
            kind,
            text: text.into(),
        });
    }
    for item in 1..=3 {
        record.set_item(item, ItemResult::pass("measured", "here"));
    }
    let progress = crate::scenario::GateProgress {
        record,
        bundle_dir: Some("logs/evidence/2024-05-01T10-00-04Z".into()),
    };
    app.update(
        crate::app::Report::GateProgress(Box::new(progress)),
        fixtures::T0 + 4_320,
    );
    fixtures::refresh(&mut app, fixtures::T0 + 4_330);
    assert_screen!("gate_running", draw(&app, 120, 32));
}

/// Issue #10 with older nodes: the header turns red with the node and index
/// instead of CONVERGED, and node 1, back with an empty disk, is a non-voter.
#[test]
fn data_loss_alarm_in_the_header() {
    let screen = draw(&fixtures::data_loss(), 120, 32);
    let header = screen.lines().next().unwrap();
    assert!(
        header.contains("DATA LOSS  leader 2 commit 4 < committed 53"),
        "{header}"
    );
    assert!(!header.contains("CONVERGED"), "{header}");
    assert_screen!("data_loss", screen);
}

/// Every `KEYMAP` row with a footer label shows it at 120 columns, on the
/// footer's two lines.
#[test]
fn every_footer_label_of_the_keymap_is_in_the_footer_at_120_columns() {
    let app = fixtures::healthy();
    let screen = draw(&app, 120, 32);
    let lines: Vec<&str> = screen.lines().collect();
    let footer = lines[lines.len() - 2..].join("\n");
    for binding in KEYMAP {
        let Some(label) = binding.footer_label(app.bulk_write_count) else {
            continue;
        };
        let entry = format!(" {} {label} ", binding.label);
        assert!(footer.contains(&entry), "{entry:?} not in {footer}");
    }
}

/// Every help line fits the `?` overlay (76 columns less its borders and
/// the key column).
#[test]
fn every_help_line_fits_the_overlay() {
    for help in KEYMAP.iter().filter_map(|binding| binding.help) {
        for line in help.lines {
            assert!(
                line.chars().count() <= 64,
                "{line:?} is too long for the help"
            );
        }
    }
}

/// Every `KEYMAP` row is in the `?` help: its key column and lines, or (for
/// a row explained by another's lines) its key's name.
#[test]
fn every_keymap_row_is_in_the_help_overlay() {
    let mut app = fixtures::healthy();
    fixtures::key(
        &mut app,
        fixtures::T0 + 3_400,
        crossterm::event::KeyCode::Char('?'),
    );
    let screen = draw(&app, 120, 32);
    for binding in KEYMAP {
        match binding.help {
            Some(help) => {
                let first = format!(" {:<9}{}", help.keys, help.lines[0]);
                assert!(screen.contains(&first), "{first:?} not in help");
                for line in &help.lines[1..] {
                    assert!(screen.contains(line), "{line:?} not in help");
                }
            }
            None => assert!(
                screen.contains(binding.label),
                "{} not in help",
                binding.label
            ),
        }
    }
}

/// `a`, node 4 catching up: its role is LEARNER, the table's title names
/// the voters and the learner, the timeline the step with its figures.
#[test]
fn a_learner_catching_up() {
    let app = fixtures::learner_catching_up();
    let screen = draw(&app, 120, 32);
    assert!(
        screen.contains(" Nodes · voters {1,2,3} · learner {4} "),
        "{screen}"
    );
    let row = screen.lines().find(|l| l.contains(" 4  4104 ")).unwrap();
    assert!(row.contains("LEARNER"), "{row}");
    assert_screen!("learner", screen);
    assert_screen!("learner_80x24", draw(&app, 80, 24));
}

/// The promotion pending: the title says JOINT with both voter sets.
#[test]
fn a_joint_configuration() {
    let screen = draw(&fixtures::joint_promotion(), 120, 32);
    assert!(
        screen.contains(" Nodes · JOINT {1,2,3} → {1,2,3,4} "),
        "{screen}"
    );
    assert_screen!("joint", screen);
}

/// A number wider than its column is shortened with a unit, never cut into
/// another number (6067644 keys once showed as 606764).
#[test]
fn numbers_wider_than_their_column_keep_their_magnitude() {
    use super::fit_number;
    assert_eq!(fit_number(606_764, 6), "606764");
    assert_eq!(fit_number(6_067_644, 6), "6.07M");
    assert_eq!(fit_number(60_676_440, 6), "60.7M");
    assert_eq!(fit_number(606_764_400, 6), "607M");
    assert_eq!(fit_number(1_234_567, 5), "1.23M");
    assert_eq!(fit_number(999_999, 5), "1.00M");
    assert_eq!(fit_number(8_008_017, 8), "8008017");
    assert_eq!(fit_number(u64::MAX, 6), "18.4E");
}
