//! Rendering: the dashboard as a pure function of `App` (`impl Widget for &App`).

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, BorderType, Cell, Clear, Paragraph, Row, Sparkline, Table, Widget, Wrap,
};

use crate::app::keymap::{self, FooterPlace, KEYMAP};
use crate::app::{App, Convergence, Input, Mode, NodeView, ProcessState, Tone};
use crate::clock::{format_duration_ms, format_time_of_day};
use crate::gate_record::{GateRecord, Verdict};
use crate::integrity::AlarmKind;
use crate::plan::ITEM_NAMES;
use crate::poll::LogSource;
use crate::status::{id_set, Role};
use crate::supervisor::{signal_name, ExitKind};

/// At this width and wider the table gets a pid column and long labels, and
/// the timeline and log sit side by side.
const WIDE_COLUMNS_MIN: u16 = 110;

/// The footer's lines: process and network keys, then the others.
const FOOTER_LINES: u16 = 2;

/// Under the keys in the help overlay: words the screen uses.
const GLOSSARY: [(&str, &str); 3] = [
    ("", ""),
    ("times", "wall clock, UTC; intervals are measured"),
    (
        "lag",
        "entries the node has yet to apply to reach the leader's commit",
    ),
];

/// Rows of the help overlay: the keys (from `KEYMAP`), then the glossary.
const HELP_ROWS: usize = keymap::help_line_count() + GLOSSARY.len();
const _: () = assert!(HELP_ROWS + 4 <= 24, "the help fits an 80x24 terminal");

/// Shown under the keys: what the red header badges mean.
const ALARM_HELP: &str = " DATA LOSS / DIVERGED alarms stay until quit; d and v then FAIL.";

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let table_height = self.nodes.len() as u16 + 3;
        let [header, table, rate, body, message, footer] = Layout::vertical([
            Constraint::Length(2),
            Constraint::Length(table_height),
            Constraint::Length(1),
            Constraint::Min(4),
            Constraint::Length(1),
            Constraint::Length(FOOTER_LINES),
        ])
        .areas(area);
        render_header(self, header, buf);
        render_nodes(self, table, buf);
        render_write_rate(self, rate, buf);
        let [timeline, log] = if area.width >= WIDE_COLUMNS_MIN {
            Layout::horizontal([Constraint::Percentage(58), Constraint::Percentage(42)]).areas(body)
        } else {
            Layout::vertical([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(body)
        };
        render_timeline(self, timeline, buf);
        if self.gate_panel_visible() {
            render_gate(self, log, buf);
        } else {
            render_log(self, log, buf);
        }
        render_message(self, message, buf);
        render_footer(self, footer, buf);
        if self.help_open {
            render_help(self, area, buf);
        }
    }
}

fn tone_style(tone: Tone) -> Style {
    match tone {
        Tone::Info => Style::new(),
        Tone::Good => Style::new().fg(Color::Green),
        Tone::Warn => Style::new().fg(Color::Yellow),
        Tone::Bad => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        Tone::Action => Style::new().fg(Color::Cyan),
    }
}

/// The header badge of an alarm.
fn alarm_badge(kind: AlarmKind) -> &'static str {
    match kind {
        AlarmKind::DataLoss => " DATA LOSS ",
        AlarmKind::Diverged => " DIVERGED ",
    }
}

fn short_digest(digest: &str, chars: usize) -> String {
    digest.chars().take(chars).collect()
}

fn render_header(app: &App, area: Rect, buf: &mut Buffer) {
    let mut first = vec![
        Span::styled(
            " raftkv ",
            Style::new().fg(Color::Black).bg(Color::Cyan).bold(),
        ),
        Span::raw(" "),
    ];
    match app.leader() {
        Some((row, status)) => {
            first.push(Span::styled(
                format!("leader node {}", app.nodes[row].config.id),
                Style::new().fg(Color::Green).bold(),
            ));
            first.push(Span::raw(format!(" · term {} ", status.term)));
        }
        None => first.push(Span::styled(
            "no leader ",
            Style::new().fg(Color::Red).bold(),
        )),
    }
    first.push(Span::raw(" "));
    let (badge, badge_style, detail) = match app.convergence() {
        Convergence::Converged {
            index,
            digest,
            nodes_up,
            nodes_total,
        } => {
            let of = if nodes_up < nodes_total {
                format!(" · {nodes_up} of {nodes_total} up")
            } else {
                String::new()
            };
            (
                " CONVERGED ",
                Style::new().fg(Color::Black).bg(Color::Green).bold(),
                format!(" index {index} · digest {}…{of}", short_digest(&digest, 8)),
            )
        }
        Convergence::Syncing { lag } => (
            " SYNCING ",
            Style::new().fg(Color::Black).bg(Color::Yellow).bold(),
            format!(" lag {lag} entries"),
        ),
        Convergence::Alarm(alarm) => {
            let more = app.integrity.alarms().len() - 1;
            let more = if more > 0 {
                format!(" (+{more} more alarms, see events)")
            } else {
                String::new()
            };
            let what = alarm
                .summary
                .strip_prefix(alarm.kind.badge())
                .unwrap_or(&alarm.summary)
                .trim_start_matches(':')
                .to_string();
            (
                alarm_badge(alarm.kind),
                Style::new().fg(Color::White).bg(Color::Red).bold(),
                format!("{what}{more}"),
            )
        }
        Convergence::Unknown { silent } => (
            " UNKNOWN ",
            Style::new().fg(Color::Black).bg(Color::Yellow).bold(),
            format!(" {} not answering", crate::app::name_nodes(&silent)),
        ),
        Convergence::NoQuorum {
            candidates,
            majority,
        } => (
            " NO QUORUM ",
            Style::new().fg(Color::White).bg(Color::Red).bold(),
            format!(
                " {} of {} nodes up and connected{}; {majority} needed to elect or commit",
                candidates.len(),
                app.voter_ids().len(),
                if candidates.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", crate::app::name_nodes(&candidates))
                }
            ),
        ),
        Convergence::NoLeader => (
            " NO LEADER ",
            Style::new().fg(Color::White).bg(Color::Red).bold(),
            " election in progress or no quorum".to_string(),
        ),
    };
    first.push(Span::styled(badge, badge_style));
    first.push(Span::raw(detail));

    let mut second = vec![Span::raw(format!(
        " keys written {} · elections {} · up {}",
        app.acked.count(),
        app.elections_seen,
        format_duration_ms(app.now_ms.saturating_sub(app.started_at_ms))
    ))];
    if app.outcome_unknown_writes > 0 {
        second.push(Span::styled(
            format!(
                " · {} writes of unknown outcome",
                app.outcome_unknown_writes
            ),
            Style::new().fg(Color::Yellow),
        ));
    }
    if let Some(verdict) = &app.history_verdict {
        let (text, color) = match &verdict.problem {
            None => ("LINEARIZABLE".to_string(), Color::Green),
            Some(problem) => (format!("NOT LINEARIZABLE ({problem})"), Color::Red),
        };
        let full = if verdict.not_recorded > 0 {
            format!(
                " (full: {} more not checked)",
                crate::plan::thousands(verdict.not_recorded)
            )
        } else {
            String::new()
        };
        second.push(Span::raw(format!(
            " · history {} ops{full} · ",
            crate::plan::thousands(verdict.ops)
        )));
        second.push(Span::styled(text, Style::new().fg(color).bold()));
    }
    let mode = match app.mode {
        Mode::Supervised => format!(" · {} nodes supervised", app.nodes.len()),
        Mode::Attached => format!(" · attached to {} nodes", app.nodes.len()),
    };
    second.push(Span::styled(mode, Style::new().fg(Color::DarkGray)));
    Paragraph::new(vec![Line::from(first), Line::from(second)]).render(area, buf);
}

/// Widths of the node table's number columns that do not depend on the
/// terminal's width.
const TERM_WIDTH: usize = 5;
const KEYS_WIDTH: usize = 6;
const LAG_WIDTH: usize = 6;

/// `value` in at most `width` characters: in full when it fits, else with
/// three significant digits and a unit (6067644 in 6 is "6.07M"), never
/// cut short into another number.
fn fit_number(value: u64, width: usize) -> String {
    let full = value.to_string();
    if full.len() <= width {
        return full;
    }
    for (unit, scale) in [
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ] {
        let scaled = value as f64 / scale;
        let text = match scaled {
            s if s < 9.995 => format!("{s:.2}{unit}"),
            s if s < 99.95 => format!("{s:.1}{unit}"),
            s if s < 999.5 => format!("{s:.0}{unit}"),
            _ => continue,
        };
        if text.len() <= width {
            return text;
        }
    }
    full
}

/// The process column, short or long.
fn process_label(node: &NodeView, wide: bool) -> String {
    if node.is_restarting() {
        return "restarting".into();
    }
    if node.removed && node.process.is_alive() {
        return "removed".into();
    }
    match &node.process {
        ProcessState::NotStarted => "not started".into(),
        ProcessState::Starting => "starting".into(),
        ProcessState::Running { .. } if node.faults.paused => "PAUSED".into(),
        // A narrow table has no LINKS column: the link fault shows here.
        ProcessState::Running { .. } if !wide && node.faults.any() => node.faults.links_label(),
        ProcessState::Running { .. } => "running".into(),
        ProcessState::Stopping { graceful: true, .. } => "stopping".into(),
        ProcessState::Stopping {
            graceful: false, ..
        } => "killing".into(),
        ProcessState::Dead { exit } => match (exit, wide) {
            (ExitKind::Signal(signal), true) => format!("✖ killed {}", signal_name(*signal)),
            (ExitKind::Signal(signal), false) => format!("✖ killed -{signal}"),
            (ExitKind::Code(code), true) => format!("✖ exited code {code}"),
            (ExitKind::Code(code), false) => format!("✖ exit {code}"),
        },
        ProcessState::SpawnFailed { .. } => "✖ spawn failed".into(),
        ProcessState::External => "attached".into(),
    }
}

fn role_label(role: &Role, wide: bool) -> String {
    match role {
        Role::Leader => "★ LEADER".into(),
        Role::PreCandidate if !wide => "precand.".into(),
        other => other.name().to_string(),
    }
}

fn contact_label(ms: u64) -> String {
    if ms < 10_000 {
        format!("{ms}ms")
    } else {
        format_duration_ms(ms).replace(' ', "")
    }
}

fn render_nodes(app: &App, area: Rect, buf: &mut Buffer) {
    let wide = area.width >= WIDE_COLUMNS_MIN;
    let leader_row = app.leader().map(|(row, _)| row);
    let leader_strangers: Vec<u64> = app
        .leader()
        .map(|(_, status)| status.strangers.clone())
        .unwrap_or_default();
    let digest_chars = if wide { 12 } else { 8 };
    let commit_width = if wide { 8 } else { 6 };
    let applied_width = if wide { 8 } else { 7 };
    let mut header = vec!["  ID"];
    if wide {
        header.push("PID");
    }
    header.push("PROCESS");
    if wide {
        header.push("LINKS");
    }
    header.extend([
        "ROLE", "TERM", "COMMIT", "APPLIED", "KEYS", "DIGEST", "CONTACT", "LAG",
    ]);
    let rows = app.nodes.iter().enumerate().map(|(row, node)| {
        let selected = row == app.selected;
        let marker = if selected { "▶" } else { " " };
        let live = node.live_status(app.now_ms);
        let shown = live.or(node.status.as_ref());
        let number = |value: Option<u64>, width: usize| {
            value.map_or("—".to_string(), |v| fit_number(v, width))
        };
        let stranger = leader_strangers.contains(&node.config.id);
        let joining = app.joining().is_some_and(|j| j.id == node.id());
        let role = match (live, node.process.is_alive()) {
            (Some(_), _) if app.is_learner(node.id()) => "LEARNER".into(),
            // Started with --join and not in the configuration yet.
            (Some(_), _) if joining && !app.voter_ids().contains(&node.id()) => "joining".into(),
            // Came back with an empty disk: not counted until re-admitted.
            (Some(status), _) if !status.is_registered() || stranger => "non-voter".into(),
            (Some(status), _) => role_label(&status.role, wide),
            _ if node.is_restarting() => "—".into(),
            (None, true) => "no answer".into(),
            (None, false) => "down".into(),
        };
        let contact = match live {
            Some(status) if status.is_leader() => "—".into(),
            Some(status) => contact_label(status.leader_contact_ms),
            None => "—".into(),
        };
        let lag = number(app.lag_of(row), LAG_WIDTH);
        let pid = node
            .process
            .pid()
            .or_else(|| live.map(|s| s.pid).filter(|p| *p != 0))
            .map_or("—".to_string(), |p| p.to_string());
        let mut cells: Vec<Cell> = vec![Cell::from(format!("{marker} {}", node.config.id))];
        if wide {
            cells.push(Cell::from(pid));
        }
        cells.push(Cell::from(process_label(node, wide)));
        if wide {
            let links = if node.process.is_alive() || node.faults.any() {
                node.faults.links_label()
            } else {
                "—".to_string()
            };
            cells.push(Cell::from(links));
        }
        cells.extend([
            Cell::from(role),
            Cell::from(number(shown.map(|s| s.term), TERM_WIDTH)),
            Cell::from(number(shown.map(|s| s.commit_index), commit_width)),
            Cell::from(number(shown.map(|s| s.applied_index), applied_width)),
            Cell::from(number(shown.map(|s| s.keys), KEYS_WIDTH)),
            Cell::from(shown.map_or("—".to_string(), |s| short_digest(&s.digest, digest_chars))),
            Cell::from(contact),
            Cell::from(lag),
        ]);
        let style = if Some(row) == leader_row {
            Style::new().fg(Color::Black).bg(Color::Green).bold()
        } else if node.is_restarting() || node.process == ProcessState::Starting {
            Style::new().fg(Color::Yellow)
        } else if !node.process.is_alive() {
            Style::new().fg(Color::Red).add_modifier(Modifier::DIM)
        } else if live.is_none() {
            Style::new().fg(Color::Magenta)
        } else {
            Style::new()
        };
        let style = if selected {
            style.add_modifier(Modifier::BOLD)
        } else {
            style
        };
        Row::new(cells).style(style)
    });
    let mut widths = vec![Constraint::Length(4)];
    if wide {
        widths.push(Constraint::Length(8));
    }
    widths.push(Constraint::Length(if wide { 18 } else { 11 }));
    if wide {
        widths.push(Constraint::Length(8));
    }
    widths.extend([
        Constraint::Length(if wide { 12 } else { 9 }),
        Constraint::Length(TERM_WIDTH as u16),
        Constraint::Length(commit_width as u16),
        Constraint::Length(applied_width as u16),
        Constraint::Length(KEYS_WIDTH as u16),
        Constraint::Length(digest_chars as u16),
        Constraint::Length(7),
        Constraint::Length(LAG_WIDTH as u16),
    ]);
    let mode = match app.mode {
        Mode::Supervised => " Nodes",
        Mode::Attached => " Nodes (attached)",
    };
    let title = format!("{mode}{} ", membership_title(app));
    let table = Table::new(rows, widths)
        .flex(Flex::SpaceBetween)
        .header(Row::new(header).style(Style::new().fg(Color::DarkGray).bold()))
        .column_spacing(1)
        .block(
            Block::bordered()
                .border_type(BorderType::Rounded)
                .title(title),
        );
    Widget::render(table, area, buf);
}

/// ` · voters {1,2,3} · learner {4}`, or ` · JOINT {1,2,3} → {1,2,3,4}`
/// while a change is pending (both configurations must agree); empty when
/// the nodes do not report membership.
fn membership_title(app: &App) -> String {
    let Some(view) = app.membership() else {
        return String::new();
    };
    let mut title = if view.is_joint() {
        format!(
            " · JOINT {} → {}",
            id_set(&view.previous_voters),
            id_set(&view.voters)
        )
    } else {
        format!(" · voters {}", id_set(&view.voters))
    };
    if !view.learners.is_empty() {
        let noun = if view.learners.len() == 1 {
            "learner"
        } else {
            "learners"
        };
        title.push_str(&format!(" · {noun} {}", id_set(&view.learners)));
    }
    title
}

fn render_write_rate(app: &App, area: Rect, buf: &mut Buffer) {
    let label = " writes/s ";
    let load = if app.load_on { "load ON" } else { "load off" };
    // Writes retry until a leader answers: say so while they wait.
    let waiting = if (app.load_on || app.bulk_in_flight.is_some()) && app.leader().is_none() {
        "waiting for a leader · "
    } else {
        ""
    };
    let stats = format!(
        " {waiting}{}/s · peak {} · {load} · w={} ",
        app.write_rate.last_complete_second(),
        app.write_rate.peak(),
        app.bulk_write_count
    );
    let [label_area, spark_area, stats_area] = Layout::horizontal([
        Constraint::Length(label.len() as u16),
        Constraint::Min(1),
        Constraint::Length(stats.chars().count() as u16),
    ])
    .areas(area);
    Paragraph::new(label)
        .style(Style::new().fg(Color::DarkGray))
        .render(label_area, buf);
    let buckets = app.write_rate.buckets();
    let shown = (spark_area.width as usize).min(buckets.len());
    let data: Vec<u64> = buckets
        .iter()
        .skip(buckets.len() - shown)
        .copied()
        .collect();
    // Newest at the right edge, like a scrolling chart.
    let spark_area = Rect {
        x: spark_area.right() - shown as u16,
        width: shown as u16,
        ..spark_area
    };
    Sparkline::default()
        .data(&data)
        .max(app.write_rate.peak().max(1))
        .style(Style::new().fg(Color::Cyan))
        .render(spark_area, buf);
    let stats_style = if app.load_on {
        Style::new().fg(Color::Cyan).bold()
    } else {
        Style::new().fg(Color::DarkGray)
    };
    Paragraph::new(stats)
        .style(stats_style)
        .render(stats_area, buf);
}

/// The newest lines that fit `height` rows of `width` columns when wrapped.
fn newest_that_fit<'a>(
    lines: impl DoubleEndedIterator<Item = Line<'a>>,
    width: u16,
    height: u16,
) -> Vec<Line<'a>> {
    let width = usize::from(width.max(1));
    let mut used = 0usize;
    let mut kept = Vec::new();
    for line in lines.rev() {
        let rows = line.width().max(1).div_ceil(width);
        if used + rows > usize::from(height) {
            break;
        }
        used += rows;
        kept.push(line);
    }
    kept.reverse();
    kept
}

fn render_timeline(app: &App, area: Rect, buf: &mut Buffer) {
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(" Events (UTC) ");
    let inner = block.inner(area);
    let lines = app.timeline.iter().map(|event| {
        Line::from(vec![
            Span::styled(
                format!("{} ", format_time_of_day(event.at_ms)),
                Style::new().fg(Color::DarkGray),
            ),
            Span::styled(event.text.clone(), tone_style(event.tone)),
        ])
    });
    let lines = newest_that_fit(lines, inner.width, inner.height);
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .block(block)
        .render(area, buf);
}

fn render_log(app: &App, area: Rect, buf: &mut Buffer) {
    let Some(node) = app.selected_node() else {
        return;
    };
    let title = format!(" Log · node {} ", node.config.id);
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(title);
    let inner = block.inner(area);
    let mut lines: Vec<Line> = node
        .log_tail
        .iter()
        .rev()
        .take(usize::from(inner.height))
        .rev()
        .map(|line| {
            let (tag, tag_style) = match (line.source, line.level.as_str()) {
                (LogSource::Output, _) => ("out  ".to_string(), Style::new().fg(Color::Magenta)),
                (_, "ERROR") => ("ERROR".to_string(), Style::new().fg(Color::Red).bold()),
                (_, "WARN") => ("WARN ".to_string(), Style::new().fg(Color::Yellow)),
                (_, level) => (format!("{level:<5}"), Style::new().fg(Color::DarkGray)),
            };
            Line::from(vec![
                Span::styled(
                    format!("{} ", format_time_of_day(line.at_ms)),
                    Style::new().fg(Color::DarkGray),
                ),
                Span::styled(tag, tag_style),
                Span::raw(" "),
                Span::raw(line.summary()),
            ])
        })
        .collect();
    if lines.is_empty() {
        let hint = match app.mode {
            Mode::Supervised => "no log lines from this node yet",
            Mode::Attached => {
                "no log lines (attached: node logs are read from --log-dir if present)"
            }
        };
        lines.push(Line::styled(hint, Style::new().fg(Color::DarkGray)));
    }
    Paragraph::new(lines).block(block).render(area, buf);
}

/// The quality gate: each item's verdict so far, the step in progress, and
/// the bundle folder.
fn render_gate(app: &App, area: Rect, buf: &mut Buffer) {
    let Some(gate) = &app.gate else {
        return;
    };
    let title = if gate.running {
        " Quality gate · running (Esc aborts) "
    } else {
        " Quality gate "
    };
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(title);
    let dim = Style::new().fg(Color::DarkGray);
    let mut lines: Vec<Line> = ITEM_NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| {
            // A finished gate without a verdict for an item did not run it.
            let verdict = gate
                .verdict(i + 1)
                .or((!gate.running).then_some(Verdict::Fail));
            let (word, style) = match verdict {
                Some(Verdict::Pass) => ("PASS", Style::new().fg(Color::Green).bold()),
                Some(Verdict::Fail) => ("FAIL", Style::new().fg(Color::Red).bold()),
                None => (" ·· ", dim),
            };
            Line::from(vec![
                Span::styled(format!(" {word} "), style),
                Span::raw(format!("{}. {name}", i + 1)),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    let latest = gate.record.as_ref().and_then(GateRecord::current_step);
    if let (true, Some(entry)) = (gate.running, latest) {
        lines.push(Line::from(vec![
            Span::styled(format!("[{}] ", entry.step), dim),
            Span::raw(entry.text.clone()),
        ]));
    }
    match (&gate.bundle, &gate.bundle_dir) {
        (Some(Ok(dir)), _) => lines.push(Line::raw(format!("bundle: {}", dir.display()))),
        (Some(Err(error)), _) => lines.push(Line::styled(
            format!("bundle incomplete: {error}"),
            Style::new().fg(Color::Red),
        )),
        (None, Some(dir)) => lines.push(Line::styled(format!("bundle: {}", dir.display()), dim)),
        (None, None) => {}
    }
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .block(block)
        .render(area, buf);
}

/// What to try next, for someone who has read nothing but the screen. The
/// keys are named as `KEYMAP` names them.
fn hint(app: &App) -> String {
    let quit = keymap::key_label(&Input::Quit);
    if app.quitting_since_ms.is_some() {
        return format!("stopping the nodes… ({quit} again to quit at once)");
    }
    if app.mode == Mode::Supervised {
        if let Some(node) = app.nodes.iter().find(|n| n.is_down()) {
            let restart = keymap::key_label(&Input::RestartSelected);
            return format!(
                "node {} is down: select it ({}) and press {restart} to restart it",
                node.config.id, node.config.id
            );
        }
    }
    if app.leader().is_none() {
        return "waiting for a leader…".into();
    }
    let write = keymap::key_label(&Input::BulkWrite);
    let kill_leader = keymap::hint(&Input::KillLeader);
    let help = keymap::hint(&Input::ToggleHelp);
    if app.acked.count() == 0 {
        return format!(
            "{write} writes {} keys through the leader · {kill_leader} · {help}",
            app.bulk_write_count
        );
    }
    match app.mode {
        Mode::Supervised => {
            let verify = keymap::hint(&Input::Verify);
            format!("{kill_leader} · {verify} · {help}")
        }
        Mode::Attached => {
            let verify = keymap::key_label(&Input::Verify);
            format!("{write} writes keys · {verify} verifies them on every node · {help}")
        }
    }
}

fn render_message(app: &App, area: Rect, buf: &mut Buffer) {
    let line = match app.visible_flash() {
        Some(flash) => Line::from(vec![
            Span::raw(" "),
            Span::styled(flash.text.clone(), tone_style(flash.tone)),
        ]),
        None => Line::styled(format!(" {}", hint(app)), Style::new().fg(Color::DarkGray)),
    };
    Paragraph::new(line).render(area, buf);
}

/// The `KEYMAP` rows with a footer label, in footer order, as (key, label,
/// place), on two lines: the keys that act on processes and the network
/// first (left out when attached), then the rest.
fn footer_lines(app: &App) -> Vec<Vec<(&'static str, String, FooterPlace)>> {
    [true, false]
        .into_iter()
        .filter(|processes| app.mode == Mode::Supervised || !processes)
        .map(|processes| {
            let mut entries: Vec<_> = KEYMAP
                .iter()
                .filter(|binding| binding.controls_processes == processes)
                .filter_map(|binding| {
                    let label = binding.footer_label(app.bulk_write_count)?;
                    let place = binding.footer.as_ref()?.place;
                    Some((binding.label, label, place))
                })
                .collect();
            // Stable: each place keeps the KEYMAP order.
            entries.sort_by_key(|(_, _, place)| *place);
            entries
        })
        .collect()
}

fn render_footer(app: &App, area: Rect, buf: &mut Buffer) {
    let lines: Vec<Line> = footer_lines(app)
        .into_iter()
        .map(|entries| footer_line(entries, usize::from(area.width)))
        .collect();
    // The last line sits at the bottom, as a one-line footer did.
    let top = area.height.saturating_sub(lines.len() as u16);
    let area = Rect {
        y: area.y + top,
        height: area.height - top,
        ..area
    };
    Paragraph::new(lines).render(area, buf);
}

/// One footer line: the entries that always show get their room first; the
/// others follow while they fit.
fn footer_line(entries: Vec<(&'static str, String, FooterPlace)>, width: usize) -> Line<'static> {
    let cost = |key: &str, label: &str| key.len() + label.len() + 3;
    let mut budget = width.saturating_sub(
        entries
            .iter()
            .filter(|(_, _, place)| *place == FooterPlace::Always)
            .map(|(key, label, _)| cost(key, label))
            .sum(),
    );
    let mut shown = Vec::new();
    for (key, label, place) in entries {
        if place == FooterPlace::Always {
            shown.push((key, label));
        } else if cost(key, &label) <= budget {
            budget -= cost(key, &label);
            shown.push((key, label));
        }
    }
    let spans: Vec<Span> = shown
        .into_iter()
        .flat_map(|(key, label)| {
            [
                Span::styled(
                    format!(" {key} "),
                    Style::new().fg(Color::Black).bg(Color::Gray).bold(),
                ),
                Span::raw(format!("{label} ")),
            ]
        })
        .collect();
    Line::from(spans)
}

/// The help overlay's rows as (key column, text): every `KEYMAP` row with
/// help lines, then the glossary.
fn help_rows() -> Vec<(&'static str, &'static str)> {
    let keys = KEYMAP
        .iter()
        .filter_map(|binding| binding.help)
        .flat_map(|help| {
            help.lines
                .iter()
                .enumerate()
                .map(move |(i, line)| (if i == 0 { help.keys } else { "" }, *line))
        });
    keys.chain(GLOSSARY).collect()
}

fn render_help(app: &App, area: Rect, buf: &mut Buffer) {
    let height = (HELP_ROWS as u16 + 4).min(area.height);
    let width = 76.min(area.width);
    let popup = area.centered(Constraint::Length(width), Constraint::Length(height));
    Clear.render(popup, buf);
    let mut lines: Vec<Line> = help_rows()
        .into_iter()
        .map(|(key, what)| {
            Line::from(vec![
                Span::styled(format!(" {key:<9}"), Style::new().fg(Color::Cyan).bold()),
                Span::raw(what),
            ])
        })
        .collect();
    lines.push(Line::styled(ALARM_HELP, Style::new().fg(Color::Red)));
    let note = match app.mode {
        Mode::Supervised => " The dashboard started these nodes; q stops them.",
        Mode::Attached => " Attached: kill, stop and restart are disabled (not our processes).",
    };
    lines.push(Line::styled(note, Style::new().fg(Color::DarkGray)));
    Paragraph::new(lines)
        .block(
            Block::bordered()
                .border_type(BorderType::Double)
                .title(" Keys ")
                .style(Style::new().fg(Color::White).bg(Color::Black)),
        )
        .render(popup, buf);
}

#[cfg(test)]
#[path = "ui_tests.rs"]
pub(crate) mod tests;
