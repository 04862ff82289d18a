//! The quality gate as the dashboard runs and shows it (`d`, Esc aborts),
//! and the evidence bundle (`e`). The gate itself runs in `scenario`; it
//! reports its record here after each step.

use std::path::PathBuf;

use super::{App, Effect, Mode, Tone};
use crate::gate_record::{GateRecord, StepKind, Verdict};
use crate::plan::ITEM_COUNT;
use crate::scenario::{GateOutcome, GateProgress};

/// The gate panel stays on screen this long after the gate has finished.
pub const GATE_PANEL_AFTER_MS: u64 = 60_000;

/// The quality gate as the dashboard shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GateView {
    /// The latest record the gate sent (`None` until its first step).
    pub record: Option<GateRecord>,
    pub bundle_dir: Option<PathBuf>,
    pub running: bool,
    /// Set when the gate has ended: its bundle folder, or why it is incomplete.
    pub bundle: Option<Result<PathBuf, String>>,
    pub finished_at_ms: Option<u64>,
    /// Gate timeline entries already copied into the dashboard's timeline.
    pub entries_shown: usize,
}

impl GateView {
    /// Item `n`'s verdict so far (`None`: not reached yet).
    pub fn verdict(&self, n: usize) -> Option<Verdict> {
        let record = self.record.as_ref()?;
        record
            .items
            .get(n.checked_sub(1)?)?
            .as_ref()
            .map(|i| i.verdict)
    }
}

/// Why keys that would disturb the gate do nothing while it runs.
pub const GATE_RUNNING_REFUSAL: &str =
    "the quality gate is running: kill, stop, restart, wipe and writes wait until it ends (Esc aborts it)";

impl App {
    pub fn gate_running(&self) -> bool {
        self.gate.as_ref().is_some_and(|g| g.running)
    }

    /// The gate panel replaces the log pane while the gate runs and for a
    /// while after it ends.
    pub fn gate_panel_visible(&self) -> bool {
        self.gate.as_ref().is_some_and(|g| {
            g.running
                || g.finished_at_ms
                    .is_some_and(|at| self.now_ms.saturating_sub(at) <= GATE_PANEL_AFTER_MS)
        })
    }
    /// `d`: the quality gate runs as a background job against this cluster
    /// (scenario.rs) and reports through `Report::GateProgress`.
    pub(super) fn run_gate(&mut self) -> Vec<Effect> {
        if self.gate_running() {
            self.refuse("the quality gate is already running (Esc aborts it)".into());
            return Vec::new();
        }
        if self.quitting_since_ms.is_some() {
            self.refuse("quitting: no quality gate now".into());
            return Vec::new();
        }
        if let Some(op) = &self.member_op {
            // The gate kills and restarts the leader: not in mid-change.
            let id = op.id();
            self.refuse(format!(
                "a membership change of node {id} is running: press d again once it has finished"
            ));
            return Vec::new();
        }
        if self.bulk_in_flight.is_some() || self.verify_running {
            self.refuse(
                "a write or verification is running: press d again once it has finished".into(),
            );
            return Vec::new();
        }
        let mut effects = Vec::new();
        // The checkpoints need a cluster that stands still.
        effects.extend(self.stop_write_load());
        if self.any_fault() {
            // The gate measures failover on a healthy network.
            effects.extend(self.heal_all());
        }
        self.gate = Some(GateView {
            record: None,
            bundle_dir: None,
            running: true,
            bundle: None,
            finished_at_ms: None,
            entries_shown: 0,
        });
        let text = match self.mode {
            Mode::Supervised => "quality gate: running the 8 items (kills and restarts the leader; Esc aborts)",
            Mode::Attached => {
                "quality gate: running what an attached dashboard can (items 3-7 need process control and will FAIL)"
            }
        };
        self.tell(Tone::Action, text.into());
        effects.push(Effect::RunGate {
            integrity: Box::new(self.integrity.clone()),
        });
        effects
    }

    /// Esc while the gate runs: stop it where it is.
    pub(super) fn abort_gate(&mut self) -> Vec<Effect> {
        self.tell(
            Tone::Action,
            "quality gate: aborting (the cluster stays as it is now)".into(),
        );
        vec![Effect::AbortGate]
    }

    /// `e`: a bundle of whatever the gate has shown so far.
    pub(super) fn export_evidence(&mut self) -> Vec<Effect> {
        let gate = self
            .gate
            .as_ref()
            .and_then(|g| g.record.clone())
            .map(Box::new);
        self.record(Tone::Action, "export the evidence bundle".into());
        vec![Effect::ExportEvidence { gate }]
    }

    pub(super) fn on_gate_progress(&mut self, progress: GateProgress) {
        let Some(gate) = &mut self.gate else {
            return;
        };
        // Progress and the final outcome come on separate channels: an
        // update older than what is shown (or than the outcome) is stale.
        if !gate.running || progress.record.timeline.len() < gate.entries_shown {
            return;
        }
        let new_entries: Vec<_> = progress
            .record
            .timeline
            .iter()
            .skip(gate.entries_shown)
            .cloned()
            .collect();
        gate.entries_shown = progress.record.timeline.len();
        gate.bundle_dir = progress.bundle_dir;
        gate.record = Some(progress.record);
        for entry in new_entries {
            let tone = match entry.kind {
                StepKind::Step => Tone::Action,
                StepKind::Info => Tone::Info,
                StepKind::Warn => Tone::Warn,
                StepKind::Pass => Tone::Good,
                StepKind::Fail => Tone::Bad,
            };
            let verdict = match entry.kind {
                StepKind::Pass => "PASS ",
                StepKind::Fail => "FAIL ",
                _ => "",
            };
            self.record_at(
                entry.at_ms,
                tone,
                format!("gate [{}] {verdict}{}", entry.step, entry.text),
            );
        }
    }

    pub(super) fn on_gate_finished(&mut self, outcome: GateOutcome) {
        let passed = outcome.record.passed_count();
        self.on_gate_progress(GateProgress {
            record: outcome.record,
            bundle_dir: outcome.bundle.as_ref().ok().cloned(),
        });
        let Some(gate) = &mut self.gate else {
            return;
        };
        if !gate.running {
            return;
        }
        gate.running = false;
        gate.finished_at_ms = Some(self.now_ms);
        gate.bundle = Some(outcome.bundle.clone());
        let alarm = self
            .integrity
            .first_alarm()
            .map(|a| format!("quality gate FAIL: {} (alarm stands); ", a.summary));
        let tone = if passed == ITEM_COUNT && alarm.is_none() {
            Tone::Good
        } else {
            Tone::Bad
        };
        let text = match outcome.bundle {
            Ok(dir) => format!(
                "quality gate: {passed}/{ITEM_COUNT} PASS; evidence in {}",
                dir.display()
            ),
            Err(error) => format!(
                "quality gate: {passed}/{ITEM_COUNT} PASS; the evidence bundle is incomplete: {error}"
            ),
        };
        let text = match alarm {
            Some(prefix) => format!("{prefix}{}", text.trim_start_matches("quality gate: ")),
            None => text,
        };
        self.tell(tone, text);
    }

    pub(super) fn on_evidence_exported(&mut self, result: Result<PathBuf, String>) {
        match result {
            Ok(dir) => self.tell(
                Tone::Good,
                format!(
                    "evidence exported to {} (items not shown yet are FAIL, not run)",
                    dir.display()
                ),
            ),
            Err(error) => self.tell(Tone::Bad, format!("evidence export failed: {error}")),
        }
    }
}
