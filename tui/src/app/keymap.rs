//! Every key of the dashboard, in one table: `KEYMAP`. Each row names its
//! keys, the `Input` they give, its lines in the `?` help, its footer label
//! and the hint that names it on the message line. `action_for_key`, the
//! help overlay, the footer and the hints all read this table, so a new key
//! is one row here plus its handler in `App::update`.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::Input;
use FooterPlace::{Always, IfRoomLeft, WhileRoom};

/// One key (or a few keys with one meaning) and everything said about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyBinding {
    /// How the footer, the hints and the tests name the key: `k`, `←`, `1-9`.
    pub label: &'static str,
    /// The key codes that give this row's input (modifiers are ignored).
    pub codes: &'static [KeyCode],
    pub input: KeyInput,
    /// Its lines in the `?` help; `None` when another row's lines explain it
    /// (`→` with `←`, `_` with `+`, Esc in the text of `?`).
    pub help: Option<Help>,
    pub footer: Option<Footer>,
    /// Kills, stops or restarts node processes: left out of the footer when
    /// attached to a cluster this dashboard did not start.
    pub controls_processes: bool,
    /// What the key does, as a hint on the message line says it after the
    /// label: `k` + "kills the leader".
    pub hint: Option<&'static str>,
}

/// What a row's keys give.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyInput {
    /// Every key of the row gives this input.
    Fixed(Input),
    /// A digit key selects the node with that id.
    SelectNodeByDigit,
}

/// A row's lines in the `?` help.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Help {
    /// The key column: may name the keys of the rows it explains too.
    pub keys: &'static str,
    /// The first line sits beside the keys, the others under it.
    pub lines: &'static [&'static str],
}

/// A row's place in the footer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footer {
    /// `{count}` stands for the bulk write size.
    pub label: &'static str,
    pub place: FooterPlace,
}

/// Which footer entries give way on a narrow terminal. The footer shows them
/// in this order, and each group in `KEYMAP` order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FooterPlace {
    /// Shown while there is room.
    WhileRoom,
    /// Shown only with room left after every `WhileRoom` entry.
    IfRoomLeft,
    /// Always shown, at the right end: room is kept for them first.
    Always,
}

/// A row with a key and its input; the `with_` methods add the rest.
const fn key(label: &'static str, codes: &'static [KeyCode], input: Input) -> KeyBinding {
    KeyBinding {
        label,
        codes,
        input: KeyInput::Fixed(input),
        help: None,
        footer: None,
        controls_processes: false,
        hint: None,
    }
}

// Builders for the const table (struct update syntax would drop a
// `KeyBinding` at compile time, which const evaluation cannot do).
impl KeyBinding {
    const fn with_help(mut self, keys: &'static str, lines: &'static [&'static str]) -> Self {
        self.help = Some(Help { keys, lines });
        self
    }

    const fn with_footer(mut self, label: &'static str, place: FooterPlace) -> Self {
        self.footer = Some(Footer { label, place });
        self
    }

    const fn with_hint(mut self, hint: &'static str) -> Self {
        self.hint = Some(hint);
        self
    }

    const fn controlling_processes(mut self) -> Self {
        self.controls_processes = true;
        self
    }
}

const DIGITS: &[KeyCode] = &[
    KeyCode::Char('1'),
    KeyCode::Char('2'),
    KeyCode::Char('3'),
    KeyCode::Char('4'),
    KeyCode::Char('5'),
    KeyCode::Char('6'),
    KeyCode::Char('7'),
    KeyCode::Char('8'),
    KeyCode::Char('9'),
];

/// Every key, in the order of the `?` help.
pub const KEYMAP: &[KeyBinding] = &[
    key("k", &[KeyCode::Char('k')], Input::KillLeader)
        .with_help("k x", &["kill -9 the leader (k) or the selected node (x)"])
        .with_footer("kill leader", WhileRoom)
        .with_hint("kills the leader")
        .controlling_processes(),
    key("←", &[KeyCode::Left], Input::SelectPrevious).with_help("← →  1-9", &["select a node"]),
    key("→", &[KeyCode::Right, KeyCode::Tab], Input::SelectNext),
    KeyBinding {
        label: "1-9",
        codes: DIGITS,
        input: KeyInput::SelectNodeByDigit,
        help: None,
        footer: None,
        controls_processes: false,
        hint: None,
    },
    key("x", &[KeyCode::Char('x')], Input::KillSelected)
        .with_footer("kill", WhileRoom)
        .controlling_processes(),
    key("s", &[KeyCode::Char('s')], Input::StopSelected)
        .with_help(
            "s",
            &["stop the selected node gracefully (a leader hands over first)"],
        )
        .with_footer("stop", WhileRoom)
        .controlling_processes(),
    key("r", &[KeyCode::Char('r')], Input::RestartSelected)
        .with_help(
            "r",
            &["restart the selected node (or every node that is down)"],
        )
        .with_footer("restart", WhileRoom)
        .controlling_processes(),
    key("a", &[KeyCode::Char('a')], Input::AddNode)
        .with_help(
            "a -",
            &["add a node: a learner, then a voter (a); remove the selected (-)"],
        )
        .with_footer("add", IfRoomLeft)
        .controlling_processes(),
    key("-", &[KeyCode::Char('-')], Input::RemoveSelected)
        .with_footer("remove", IfRoomLeft)
        .controlling_processes(),
    // The most dangerous key is the first to give way on a narrow screen.
    key("R", &[KeyCode::Char('R')], Input::ReplaceSelected)
        .with_help(
            "R",
            &[
                "replace the selected node with an empty disk (stop, remove,",
                "wipe, join anew); refused if quorum or writes would be lost",
            ],
        )
        .with_footer("replace", IfRoomLeft)
        .controlling_processes(),
    key("p", &[KeyCode::Char('p')], Input::ToggleIsolateSelected)
        .with_help(
            "p o",
            &["isolate the selected node (p), or cut only what it hears (o)"],
        )
        .with_footer("cut", WhileRoom)
        .controlling_processes(),
    key("o", &[KeyCode::Char('o')], Input::ToggleInboundCutSelected)
        .with_footer("one-way", WhileRoom)
        .controlling_processes(),
    key("z", &[KeyCode::Char('z')], Input::TogglePauseSelected)
        .with_help(
            "z",
            &["pause the selected node (SIGSTOP); again resumes it"],
        )
        .with_footer("pause", WhileRoom)
        .controlling_processes(),
    key("l", &[KeyCode::Char('l')], Input::ToggleSlowSelected)
        .with_help(
            "l",
            &["slow the selected node's links (40 ms + up to 20 ms each way)"],
        )
        .with_footer("slow", IfRoomLeft)
        .controlling_processes(),
    key("h", &[KeyCode::Char('h')], Input::HealAll)
        .with_help("h", &["heal: every link open, every paused node resumed"])
        .with_footer("heal", WhileRoom)
        .with_hint("heals every fault")
        .controlling_processes(),
    key("w", &[KeyCode::Char('w')], Input::BulkWrite)
        .with_help(
            "w + _",
            &["write a batch of keys through the leader (+ _ change its size)"],
        )
        .with_footer("write {count}", WhileRoom),
    // `=` is `+` without shift.
    key(
        "+",
        &[KeyCode::Char('+'), KeyCode::Char('=')],
        Input::BulkWriteCountUp,
    ),
    // `_` is `-` with shift, as `+` is `=` with shift (`-` removes a node).
    key("_", &[KeyCode::Char('_')], Input::BulkWriteCountDown),
    key("W", &[KeyCode::Char('W')], Input::ToggleWriteLoad)
        .with_help("W", &["continuous write load on/off"])
        .with_footer("load", WhileRoom),
    key("v", &[KeyCode::Char('v')], Input::Verify)
        .with_help("v", &["verify every key written here, on every node"])
        .with_footer("verify", WhileRoom)
        .with_hint("verifies every key on every node"),
    key("d", &[KeyCode::Char('d')], Input::RunGate)
        .with_help(
            "d e",
            &["run the quality gate (d); export the evidence bundle (e)"],
        )
        .with_footer("gate", WhileRoom),
    key("e", &[KeyCode::Char('e')], Input::ExportEvidence).with_footer("export", WhileRoom),
    key("?", &[KeyCode::Char('?')], Input::ToggleHelp)
        .with_help("?", &["this help (Esc or ? closes it)"])
        .with_footer("help", Always)
        .with_hint("help"),
    // Esc also aborts a running quality gate; the gate panel's title says so.
    key("Esc", &[KeyCode::Esc], Input::CloseHelp),
    key("q", &[KeyCode::Char('q')], Input::Quit)
        .with_help(
            "q",
            &["quit: stops the nodes gracefully (q twice: at once)"],
        )
        .with_footer("quit", Always),
];

/// Lines the `?` help gives to keys.
pub const fn help_line_count() -> usize {
    let mut count = 0;
    let mut row = 0;
    while row < KEYMAP.len() {
        if let Some(help) = &KEYMAP[row].help {
            count += help.lines.len();
        }
        row += 1;
    }
    count
}

impl KeyBinding {
    /// The input `code` gives when it is one of this row's keys.
    pub fn input_for(&self, code: KeyCode) -> Option<Input> {
        if !self.codes.contains(&code) {
            return None;
        }
        match (&self.input, code) {
            (KeyInput::Fixed(input), _) => Some(input.clone()),
            (KeyInput::SelectNodeByDigit, KeyCode::Char(digit)) => {
                digit.to_digit(10).map(|id| Input::Select(u64::from(id)))
            }
            (KeyInput::SelectNodeByDigit, _) => None,
        }
    }

    /// True when this row's keys give `input`.
    pub fn gives(&self, input: &Input) -> bool {
        match &self.input {
            KeyInput::Fixed(fixed) => fixed == input,
            KeyInput::SelectNodeByDigit => matches!(input, Input::Select(_)),
        }
    }

    /// The footer label with the bulk write size filled in.
    pub fn footer_label(&self, bulk_write_count: u64) -> Option<String> {
        let footer = self.footer.as_ref()?;
        Some(
            footer
                .label
                .replace("{count}", &bulk_write_count.to_string()),
        )
    }
}

/// The row whose keys give `input` (`None` for `UnknownKey`).
pub fn binding_for(input: &Input) -> Option<&'static KeyBinding> {
    KEYMAP.iter().find(|binding| binding.gives(input))
}

/// The key that gives `input`, as the screen names it (`r` for a restart).
pub fn key_label(input: &Input) -> &'static str {
    binding_for(input).map_or("", |binding| binding.label)
}

/// `k kills the leader`: the key and what it does, for the message line.
pub fn hint(input: &Input) -> String {
    let binding = binding_for(input);
    let label = binding.map_or("", |b| b.label);
    let hint = binding.and_then(|b| b.hint).unwrap_or_default();
    format!("{label} {hint}")
}

/// Maps a key press to an input (`None` for releases and repeats of nothing).
/// Ctrl-C quits like `q`; other modifiers are ignored.
pub fn action_for_key(key: KeyEvent) -> Option<Input> {
    if key.kind != KeyEventKind::Press {
        return None;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Some(Input::Quit);
    }
    let known = KEYMAP
        .iter()
        .find_map(|binding| binding.input_for(key.code));
    Some(known.unwrap_or_else(|| unknown_key(key.code)))
}

/// A key with no row, named so the message line can say it did nothing.
fn unknown_key(code: KeyCode) -> Input {
    match code {
        KeyCode::Char(other) => Input::UnknownKey(other.to_string()),
        other => Input::UnknownKey(format!("{other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode) -> Option<Input> {
        action_for_key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    /// Every key of every row gives that row's input: no earlier row shadows it.
    #[test]
    fn every_keymap_key_maps_back_to_its_row() {
        for binding in KEYMAP {
            assert!(!binding.codes.is_empty(), "{} has no key", binding.label);
            for code in binding.codes {
                let input = press(*code).expect("a key press gives an input");
                assert!(binding.gives(&input), "{code:?} gives {input:?}");
                assert_eq!(binding.input_for(*code), Some(input.clone()));
                assert_eq!(binding_for(&input), Some(binding), "{code:?}");
            }
        }
        assert_eq!(press(KeyCode::Char('7')), Some(Input::Select(7)));
    }

    /// No key is in two rows, and every input a person can give has a key.
    #[test]
    fn keys_are_unique_and_every_input_has_one() {
        let codes: Vec<KeyCode> = KEYMAP
            .iter()
            .flat_map(|b| b.codes.iter().copied())
            .collect();
        for (i, code) in codes.iter().enumerate() {
            assert!(!codes[i + 1..].contains(code), "{code:?} is bound twice");
        }
        let inputs = [
            Input::Quit,
            Input::ToggleHelp,
            Input::CloseHelp,
            Input::SelectNext,
            Input::SelectPrevious,
            Input::Select(1),
            Input::KillLeader,
            Input::KillSelected,
            Input::StopSelected,
            Input::RestartSelected,
            Input::ReplaceSelected,
            Input::AddNode,
            Input::RemoveSelected,
            Input::ToggleIsolateSelected,
            Input::ToggleInboundCutSelected,
            Input::TogglePauseSelected,
            Input::ToggleSlowSelected,
            Input::HealAll,
            Input::BulkWrite,
            Input::BulkWriteCountUp,
            Input::BulkWriteCountDown,
            Input::ToggleWriteLoad,
            Input::Verify,
            Input::RunGate,
            Input::ExportEvidence,
        ];
        for input in &inputs {
            assert!(!key_label(input).is_empty(), "no key gives {input:?}");
        }
        assert_eq!(binding_for(&Input::UnknownKey("j".into())), None);
    }

    #[test]
    fn hints_name_the_key_then_what_it_does() {
        assert_eq!(hint(&Input::KillLeader), "k kills the leader");
        assert_eq!(hint(&Input::ToggleHelp), "? help");
        assert_eq!(key_label(&Input::RestartSelected), "r");
    }

    /// The `?` help fits an 80x24 terminal (ui.rs checks it with the
    /// glossary at compile time).
    #[test]
    fn help_lines_are_counted() {
        let counted: usize = KEYMAP
            .iter()
            .filter_map(|b| b.help)
            .map(|h| h.lines.len())
            .sum();
        assert_eq!(help_line_count(), counted);
    }
}
