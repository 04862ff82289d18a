//! The fault keys (`p o z l h`): the links each gives the proxy, the
//! signals, the refusals, the header without a quorum, and the timeline's
//! story of a leader taken away by a fault.

use super::*;
use crate::app::faults::{link_modes, NodeFaults, SLOW_LINK};
use crate::status::Role;
use raftkv_node::fault_proxy::LinkMode;

/// The mode the `SetLinks` among `effects` gives link (from, to).
fn link(effects: &[Effect], from: u64, to: u64) -> LinkMode {
    effects
        .iter()
        .find_map(|effect| match effect {
            Effect::SetLinks { links } => links
                .iter()
                .find(|(l, _)| *l == (from, to))
                .map(|(_, mode)| *mode),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no mode for link {from}->{to} in {effects:?}"))
}

fn all_links_open(effects: &[Effect]) -> bool {
    [(1, 2), (1, 3), (2, 1), (2, 3), (3, 1), (3, 2)]
        .iter()
        .all(|&(from, to)| link(effects, from, to) == LinkMode::Open)
}

#[test]
fn link_modes_follow_every_nodes_faults() {
    let faults = |isolated, inbound_cut, slow| NodeFaults {
        isolated,
        inbound_cut,
        slow,
        paused: false,
    };
    let modes = link_modes(&[
        (1, faults(false, true, false)),
        (2, faults(false, false, true)),
        (3, faults(false, false, false)),
    ]);
    let mode = |from, to| {
        modes
            .iter()
            .find(|(l, _)| *l == (from, to))
            .map(|(_, m)| *m)
            .unwrap()
    };
    assert_eq!(modes.len(), 6);
    // Node 1 hears nothing but still sends; node 2 is slow both ways.
    assert_eq!(mode(2, 1), LinkMode::Stall);
    assert_eq!(mode(3, 1), LinkMode::Stall);
    assert_eq!(mode(1, 2), SLOW_LINK);
    assert_eq!(mode(1, 3), LinkMode::Open);
    assert_eq!(mode(2, 3), SLOW_LINK);
    assert_eq!(mode(3, 2), SLOW_LINK);
    // Isolation wins over everything else on its links.
    let modes = link_modes(&[
        (1, faults(true, true, true)),
        (2, faults(false, false, true)),
    ]);
    assert!(
        modes.iter().all(|(_, m)| *m == LinkMode::Sever),
        "{modes:?}"
    );
}

#[test]
fn links_labels_name_each_fault() {
    let label = |isolated, inbound_cut, slow| {
        NodeFaults {
            isolated,
            inbound_cut,
            slow,
            paused: false,
        }
        .links_label()
    };
    assert_eq!(label(false, false, false), "ok");
    assert_eq!(label(true, false, false), "cut");
    assert_eq!(label(true, true, true), "cut+slow");
    assert_eq!(label(false, true, false), "out-only");
    assert_eq!(label(false, true, true), "out+slow");
    assert_eq!(label(false, false, true), "slow");
}

/// `p` on the leader, the new leader and the step-down timed from it, then
/// `p` again and the rejoin with its catch-up time.
#[test]
fn isolating_the_leader_tells_the_failover_and_the_rejoin_with_figures() {
    let mut app = healthy();
    key(&mut app, T0 + 4_000, KeyCode::Char('2'));
    let effects = key(&mut app, T0 + 4_000, KeyCode::Char('p'));
    assert_eq!(link(&effects, 2, 1), LinkMode::Sever);
    assert_eq!(link(&effects, 3, 2), LinkMode::Sever);
    assert_eq!(link(&effects, 1, 3), LinkMode::Open);
    assert!(app.nodes[1].faults.isolated);
    assert_eq!(
        flash_text(&app),
        "node 2 (leader, term 2) isolated: every peer link to and from it cut"
    );

    log_event(
        &mut app,
        T0 + 4_190,
        1,
        log_events::ELECTION_TIMEOUT,
        &[("silence_ms", "190"), ("term", "2")],
    );
    log_event(
        &mut app,
        T0 + 4_410,
        1,
        log_events::BECAME_LEADER,
        &[("term", "3")],
    );
    log_event(
        &mut app,
        T0 + 5_210,
        2,
        log_events::STEPPED_DOWN,
        &[("term", "2"), ("reason", "lost contact with a majority")],
    );
    let timeline = timeline_text(&app);
    for line in [
        "node 1 election timeout after 190 ms of silence, term 2 (190 ms after node 2 was cut off)",
        "node 1 leader of term 3, 410 ms after node 2 was cut off",
        "node 2 (leader, term 2) stepped down after 1.2 s without a quorum: lost contact with a \
         majority",
    ] {
        assert!(
            timeline.contains(&line.to_string()),
            "{line}\n{timeline:#?}"
        );
    }
    assert_eq!(app.leader_fault, None, "both consequences told");

    let effects = key(&mut app, T0 + 6_000, KeyCode::Char('p'));
    assert!(all_links_open(&effects), "{effects:?}");
    assert_eq!(
        flash_text(&app),
        "node 2 healed: its peer links are open again"
    );
    let at = T0 + 6_038;
    poll(&mut app, at, status(1, Role::Leader, 3, 1, 108, DIGEST_A));
    poll(&mut app, at, status(2, Role::Follower, 3, 1, 108, DIGEST_A));
    poll(&mut app, at, status(3, Role::Follower, 3, 1, 108, DIGEST_A));
    assert!(
        timeline_text(&app).contains(
            &"node 2 rejoined as follower of term 3, caught up to index 108 in 38 ms".into()
        ),
        "{:#?}",
        timeline_text(&app)
    );
    assert_eq!(app.nodes[1].rejoining_since_ms, None);
}

#[test]
fn one_way_cuts_only_what_the_node_receives() {
    let mut app = healthy();
    key(&mut app, T0 + 4_000, KeyCode::Char('3'));
    let effects = key(&mut app, T0 + 4_001, KeyCode::Char('o'));
    assert_eq!(link(&effects, 1, 3), LinkMode::Stall);
    assert_eq!(link(&effects, 2, 3), LinkMode::Stall);
    assert_eq!(link(&effects, 3, 1), LinkMode::Open);
    assert_eq!(link(&effects, 3, 2), LinkMode::Open);
    assert_eq!(app.nodes[2].faults.links_label(), "out-only");
    assert_eq!(
        flash_text(&app),
        "node 3 one-way: it still sends, but receives nothing from its peers"
    );
    let effects = key(&mut app, T0 + 4_100, KeyCode::Char('o'));
    assert!(all_links_open(&effects));
    assert!(!app.nodes[2].faults.any());
}

#[test]
fn slow_links_are_a_toggle() {
    let mut app = healthy();
    let effects = key(&mut app, T0 + 4_000, KeyCode::Char('l'));
    assert_eq!(link(&effects, 1, 2), SLOW_LINK);
    assert_eq!(link(&effects, 3, 1), SLOW_LINK);
    assert_eq!(link(&effects, 2, 3), LinkMode::Open);
    assert_eq!(
        flash_text(&app),
        "node 1 slow links: 40 ms + up to 20 ms each way, to and from it"
    );
    assert!(all_links_open(&key(
        &mut app,
        T0 + 4_100,
        KeyCode::Char('l')
    )));
}

/// `z` on the leader: SIGSTOP, PAUSED, the others elect; `z` again: SIGCONT,
/// and the old leader's step-down is timed from its resume.
#[test]
fn pausing_the_leader_and_resuming_it_is_told_with_figures() {
    let mut app = healthy();
    key(&mut app, T0 + 4_000, KeyCode::Char('2'));
    assert_eq!(
        key(&mut app, T0 + 4_000, KeyCode::Char('z')),
        vec![Effect::Pause { id: 2 }]
    );
    assert!(app.nodes[1].faults.paused);
    assert_eq!(
        flash_text(&app),
        "node 2 (leader, term 2) paused (SIGSTOP): frozen, sockets open, still sure of its role"
    );
    // A paused node does not answer; the others' agreement still counts.
    poll_failed(&mut app, T0 + 4_500, 2, "timed out");
    log_event(
        &mut app,
        T0 + 4_300,
        3,
        log_events::BECAME_LEADER,
        &[("term", "3")],
    );
    let at = T0 + 4_600;
    poll(&mut app, at, status(1, Role::Follower, 3, 3, 108, DIGEST_A));
    poll(&mut app, at, status(3, Role::Leader, 3, 3, 108, DIGEST_A));
    assert!(
        matches!(
            app.convergence(),
            Convergence::Converged { nodes_up: 2, .. }
        ),
        "{:?}",
        app.convergence()
    );
    assert!(timeline_text(&app)
        .contains(&"node 3 leader of term 3, 300 ms after node 2 was paused".into()));

    assert_eq!(
        key(&mut app, T0 + 9_000, KeyCode::Char('z')),
        vec![Effect::Resume { id: 2 }]
    );
    assert_eq!(flash_text(&app), "node 2 resumed (SIGCONT) after 5.0 s");
    log_event(
        &mut app,
        T0 + 9_004,
        2,
        log_events::STEPPED_DOWN,
        &[("term", "3"), ("reason", "higher term seen")],
    );
    assert!(
        timeline_text(&app).contains(
            &"node 2 (leader of term 2 until paused) stepped down 4 ms after it resumed: higher \
              term seen"
                .into()
        ),
        "{:#?}",
        timeline_text(&app)
    );
}

#[test]
fn pause_is_refused_for_a_node_that_is_not_running_and_cleared_by_its_exit() {
    let mut app = healthy();
    key(&mut app, T0 + 4_000, KeyCode::Char('z'));
    assert!(app.nodes[0].faults.paused);
    // kill -9 reaches a stopped process; its pause ends with it.
    key(&mut app, T0 + 4_100, KeyCode::Char('x'));
    exited(&mut app, T0 + 4_110, 1, ExitKind::Signal(libc::SIGKILL));
    assert!(!app.nodes[0].faults.paused);
    assert!(key(&mut app, T0 + 4_200, KeyCode::Char('z')).is_empty());
    assert_eq!(
        flash_text(&app),
        "node 1 is not running: nothing to pause (press r to start it)"
    );
}

#[test]
fn heal_opens_every_link_and_resumes_every_paused_node() {
    let mut app = healthy();
    assert!(key(&mut app, T0 + 4_000, KeyCode::Char('h')).is_empty());
    assert_eq!(
        flash_text(&app),
        "nothing to heal: every link is open and no node is paused"
    );
    key(&mut app, T0 + 4_001, KeyCode::Char('p'));
    key(&mut app, T0 + 4_002, KeyCode::Char('3'));
    key(&mut app, T0 + 4_003, KeyCode::Char('z'));
    let effects = key(&mut app, T0 + 4_004, KeyCode::Char('h'));
    assert_eq!(effects[0], Effect::Resume { id: 3 });
    assert!(all_links_open(&effects), "{effects:?}");
    assert!(!app.any_fault());
    assert_eq!(
        flash_text(&app),
        "healed: every link open, nothing paused (nodes 1 and 3 had faults)"
    );
}

#[test]
fn the_header_says_when_no_quorum_can_form() {
    let mut app = healthy();
    key(&mut app, T0 + 4_000, KeyCode::Char('p'));
    assert!(matches!(app.convergence(), Convergence::Converged { .. }));
    key(&mut app, T0 + 4_001, KeyCode::Char('3'));
    key(&mut app, T0 + 4_002, KeyCode::Char('z'));
    assert_eq!(
        app.convergence(),
        Convergence::NoQuorum {
            candidates: vec![2],
            majority: 2
        }
    );
}

#[test]
fn the_gate_heals_every_fault_before_it_runs() {
    let mut app = healthy();
    key(&mut app, T0 + 4_000, KeyCode::Char('o'));
    let effects = key(&mut app, T0 + 4_001, KeyCode::Char('d'));
    assert!(all_links_open(&effects), "{effects:?}");
    assert!(matches!(effects.last(), Some(Effect::RunGate { .. })));
    assert!(!app.any_fault());
}

#[test]
fn fault_keys_are_refused_when_attached() {
    let mut app = App::new(Mode::Attached, config(3), T0, Vec::new());
    for code in ['p', 'o', 'z', 'l', 'h'] {
        assert!(
            key(&mut app, T0 + 1, KeyCode::Char(code)).is_empty(),
            "{code}"
        );
        assert_eq!(flash_text(&app), ATTACHED_REFUSAL);
    }
}

/// A node cut off from a quorum times out every few hundred ms: the
/// timeline says two, sums up the third, and stays quiet until the node
/// has a leader again.
#[test]
fn repeated_election_timeouts_are_summed_up() {
    let mut app = healthy();
    for i in 0..6 {
        log_event(
            &mut app,
            T0 + 4_000 + i * 200,
            3,
            log_events::ELECTION_TIMEOUT,
            &[("silence_ms", &(200 * (i + 1)).to_string()), ("term", "2")],
        );
    }
    let said = |app: &App| {
        timeline_text(app)
            .iter()
            .filter(|t| t.starts_with("node 3 election timeout"))
            .count()
    };
    assert_eq!(said(&app), 2);
    assert!(timeline_text(&app).contains(
        &"node 3 keeps timing out without finding a leader (further timeouts in its log only)"
            .into()
    ));
    log_event(
        &mut app,
        T0 + 6_000,
        3,
        log_events::BECAME_FOLLOWER,
        &[("leader", "2"), ("term", "2")],
    );
    log_event(
        &mut app,
        T0 + 7_000,
        3,
        log_events::ELECTION_TIMEOUT,
        &[("silence_ms", "200"), ("term", "2")],
    );
    assert_eq!(said(&app), 3);
}
