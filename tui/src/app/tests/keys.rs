//! Keys reach their inputs; quitting and the help overlay.

use super::*;
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
        (KeyCode::Char('R'), Input::ReplaceSelected),
        (KeyCode::Char('a'), Input::AddNode),
        (KeyCode::Char('-'), Input::RemoveSelected),
        (KeyCode::Char('w'), Input::BulkWrite),
        (KeyCode::Char('W'), Input::ToggleWriteLoad),
        (KeyCode::Char('+'), Input::BulkWriteCountUp),
        (KeyCode::Char('_'), Input::BulkWriteCountDown),
        (KeyCode::Char('v'), Input::Verify),
        (KeyCode::Char('d'), Input::RunGate),
        (KeyCode::Char('e'), Input::ExportEvidence),
        (KeyCode::Char('p'), Input::ToggleIsolateSelected),
        (KeyCode::Char('o'), Input::ToggleInboundCutSelected),
        (KeyCode::Char('z'), Input::TogglePauseSelected),
        (KeyCode::Char('l'), Input::ToggleSlowSelected),
        (KeyCode::Char('h'), Input::HealAll),
        (KeyCode::Char('j'), Input::UnknownKey("j".into())),
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
    key(&mut app, T0 + 4_000, KeyCode::Char('j'));
    assert_eq!(
        flash_text(&app),
        "key 'j' does nothing; press ? for the list of keys"
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
