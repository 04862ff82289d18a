//! The quality gate run from the dashboard, and the evidence bundle.

use super::*;
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
