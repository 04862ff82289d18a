//! Bulk writes, the continuous load, the write rate and verification.

// Key sequence numbers travel as lists of ranges; a list of one range is meant.
#![allow(clippy::single_range_in_vec_init)]

use super::*;
use crate::key_check::{KeyCheck, KeyProblem};
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

    // Without a leader the write waits for one, as a Redis client retries
    // CLUSTERDOWN, and says so.
    let mut leaderless = leader_killed();
    assert_eq!(
        key(&mut leaderless, T0 + 10_300, KeyCode::Char('w')),
        vec![Effect::BulkWrite { count: 50 }]
    );
    assert_eq!(
        flash_text(&leaderless),
        "write 50 keys: no leader right now, waiting for one (each write gives up after 5 s)"
    );
    assert_eq!(leaderless.bulk_in_flight, Some(50));
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
        key(&mut app, T0 + 4_002, KeyCode::Char('_'));
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
                        right: 99,
                        missing: 1,
                        wrong: 0,
                        examples: vec![KeyProblem::Missing {
                            key: "dash:1:000007".into(),
                        }],
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
