//! Which key gives which `Input`.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::Input;

/// Maps a key press to an input (`None` for releases and repeats of nothing).
pub fn action_for_key(key: KeyEvent) -> Option<Input> {
    if key.kind != KeyEventKind::Press {
        return None;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Some(Input::Quit);
    }
    let input = match key.code {
        KeyCode::Char('q') => Input::Quit,
        KeyCode::Char('?') => Input::ToggleHelp,
        KeyCode::Esc => Input::CloseHelp,
        KeyCode::Left => Input::SelectPrevious,
        KeyCode::Right | KeyCode::Tab => Input::SelectNext,
        KeyCode::Char(digit @ '1'..='9') => Input::Select(u64::from(digit as u8 - b'0')),
        KeyCode::Char('k') => Input::KillLeader,
        KeyCode::Char('x') => Input::KillSelected,
        KeyCode::Char('s') => Input::StopSelected,
        KeyCode::Char('r') => Input::RestartSelected,
        KeyCode::Char('R') => Input::WipeAndRestartSelected,
        KeyCode::Char('w') => Input::BulkWrite,
        KeyCode::Char('W') => Input::ToggleWriteLoad,
        KeyCode::Char('+') | KeyCode::Char('=') => Input::BulkWriteCountUp,
        KeyCode::Char('-') => Input::BulkWriteCountDown,
        KeyCode::Char('v') => Input::Verify,
        KeyCode::Char('d') => Input::RunGate,
        KeyCode::Char('e') => Input::ExportEvidence,
        KeyCode::Char(other) => Input::UnknownKey(other.to_string()),
        other => Input::UnknownKey(format!("{other}")),
    };
    Some(input)
}
