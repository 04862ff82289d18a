//! End to end on the real binary: the dashboard in a tmux pane drives a fresh
//! 3-node cluster (kill the leader, see a new one, write, restart the old
//! leader, see the digests converge, quit), refuses a replacement that would
//! lose acknowledged writes and carries out an allowed one, adds a fourth
//! node that becomes a voter, and the nodes die with a dashboard killed by
//! SIGKILL.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{free_base_port, Tmux, DASHBOARD_NODES_MAX, NODES};

/// Starting three processes and electing a leader, on a loaded CI machine.
const FIRST_LEADER_WAIT_MS: u64 = 60_000;
/// Failover, writes, catch-up: each well under this.
const STEP_WAIT_MS: u64 = 60_000;
/// q stops every node gracefully (each has a few seconds) and restores the terminal.
const QUIT_WAIT_MS: u64 = 30_000;
const SCREEN_POLL_MS: u64 = 100;

/// Pids of `raftkv node` processes whose data dir lies under `data_dir`.
fn node_processes(data_dir: &Path) -> Vec<u32> {
    let prefix = format!("{}/node-", data_dir.display());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            args.get(1).is_some_and(|a| a == "node") && args.iter().any(|a| a.starts_with(&prefix))
        })
        .collect()
}

/// Waits until no node process of `data_dir` is left; kills stragglers (by pid) on failure.
fn assert_no_node_left(data_dir: &Path, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let left = node_processes(data_dir);
        if left.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            for pid in &left {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
            panic!("node processes still running: {left:?}");
        }
        std::thread::sleep(Duration::from_millis(SCREEN_POLL_MS));
    }
}

fn log_excerpts(log_dir: &Path) -> String {
    let mut out = String::new();
    for name in [
        "tui.log",
        "node-1.out",
        "node-2.out",
        "node-3.out",
        "node-4.out",
    ] {
        let text = std::fs::read_to_string(log_dir.join(name)).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        out.push_str(&format!(
            "--- {name} (last lines, newest first)\n{}\n",
            tail.join("\n")
        ));
    }
    out
}

/// The timeline line the dashboard logged (in full, where the screen wraps
/// it) that contains every one of `parts`.
fn timeline_line(log_dir: &Path, parts: &[&str]) -> Option<String> {
    let log = std::fs::read_to_string(log_dir.join("tui.log")).ok()?;
    log.lines()
        .filter(|line| line.contains("\"event\":\"timeline\""))
        .find(|line| parts.iter().all(|part| line.contains(part)))
        .map(str::to_string)
}

/// The text of `name` in the (one) evidence bundle under `evidence_dir`.
fn exported_file(evidence_dir: &Path, name: &str) -> Option<String> {
    std::fs::read_dir(evidence_dir)
        .ok()?
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path().join(name)).ok())
        .next()
}

/// Presses `e` and waits for the bundle's verdict.txt and history.jsonl;
/// returns the history.
fn export_history(tmux: &Tmux, log_dir: &Path) -> String {
    tmux.send("e");
    wait_for(tmux, "the exported history", STEP_WAIT_MS, log_dir, |_| {
        exported_file(&log_dir.join("evidence"), "verdict.txt")
            .and_then(|_| exported_file(&log_dir.join("evidence"), "history.jsonl"))
    })
}

/// Polls the screen until `done` returns a value, or fails with the screen and logs.
fn wait_for<T>(
    tmux: &Tmux,
    what: &str,
    within_ms: u64,
    log_dir: &Path,
    done: impl Fn(&str) -> Option<T>,
) -> T {
    tmux.wait_for(
        what,
        Duration::from_millis(within_ms),
        || log_excerpts(log_dir),
        done,
    )
}

/// The leader the header names (`leader node N`).
fn leader_on_screen(screen: &str) -> Option<u64> {
    let header = screen.lines().next()?;
    let rest = header.split("leader node ").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

/// (node id, process column text, digest) of every table row.
fn table_rows(screen: &str) -> Vec<(u64, String, String)> {
    screen
        .lines()
        .filter_map(|line| {
            let inner = line.trim_start_matches('│').trim_start_matches('▶').trim();
            let mut tokens = inner.split_whitespace();
            let id: u64 = tokens.next()?.parse().ok()?;
            let tokens: Vec<&str> = tokens.collect();
            let digest = tokens
                .iter()
                .find(|t| t.len() == 12 && t.chars().all(|c| c.is_ascii_hexdigit()))?;
            Some((id, tokens.join(" "), digest.to_string()))
        })
        .filter(|(id, _, _)| (1..=u64::from(DASHBOARD_NODES_MAX)).contains(id))
        .collect()
}

/// The digest when the header says CONVERGED with every node up and the
/// table has exactly `count` running rows with that digest.
fn converged_on_rows(screen: &str, count: usize) -> Option<String> {
    let header = screen.lines().next()?;
    if !header.contains("CONVERGED") || header.contains(" up") {
        return None;
    }
    let rows = table_rows(screen);
    let all_running = rows.iter().all(|(_, text, _)| text.contains("running"));
    let first = rows.first()?.2.clone();
    (rows.len() == count && all_running && rows.iter().all(|(_, _, d)| *d == first))
        .then_some(first)
}

fn converged_on_three_rows(screen: &str) -> Option<String> {
    converged_on_rows(screen, 3)
}

/// A fresh dashboard in a 120x40 tmux pane; after it exits the pane shows
/// its exit code and the terminal modes it left.
fn start_dashboard(data_dir: &Path, log_dir: &Path) -> Tmux {
    start_dashboard_on(free_base_port(), data_dir, log_dir)
}

/// `start_dashboard` with node i's client port at `base_port + i`.
fn start_dashboard_on(base_port: u16, data_dir: &Path, log_dir: &Path) -> Tmux {
    let command = format!(
        "'{bin}' tui --fresh --base-port {base_port} --data-dir '{data}' --log-dir '{logs}'; \
         echo raftkv-exit-code=$?; stty -a | tr ' ;' '\\n\\n' | grep -x -e icanon -e -icanon -e echo -e -echo | tr '\\n' ' '; \
         echo; sleep 600",
        bin = env!("CARGO_BIN_EXE_raftkv"),
        data = data_dir.display(),
        logs = log_dir.display(),
    );
    Tmux::start(120, 40, &command)
}

/// A fresh dashboard whose three nodes have converged; returns the leader.
fn start_converged(data_dir: &Path, log_dir: &Path) -> (Tmux, u64) {
    let tmux = start_dashboard(data_dir, log_dir);
    wait_for(
        &tmux,
        "CONVERGED on three rows",
        FIRST_LEADER_WAIT_MS,
        log_dir,
        converged_on_three_rows,
    );
    let leader = wait_for(&tmux, "a leader", STEP_WAIT_MS, log_dir, leader_on_screen);
    (tmux, leader)
}

/// `q`: the dashboard exits with code 0 and no node process is left.
fn quit_cleanly(tmux: &Tmux, data_dir: &Path, log_dir: &Path) {
    tmux.send("q");
    wait_for(
        tmux,
        "the dashboard to exit",
        QUIT_WAIT_MS,
        log_dir,
        |screen| screen.contains("raftkv-exit-code=0").then_some(()),
    );
    assert_no_node_left(data_dir, Duration::from_secs(10));
}

/// The process column of node `id`'s row.
fn row_text(screen: &str, id: u64) -> Option<String> {
    table_rows(screen)
        .into_iter()
        .find(|(row, _, _)| *row == id)
        .map(|(_, text, _)| text)
}

#[test]
fn dashboard_in_tmux_survives_leader_kill_and_converges() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir: PathBuf = dir.path().join("data");
    let log_dir: PathBuf = dir.path().join("logs");
    let tmux = start_dashboard(&data_dir, &log_dir);

    let first = wait_for(
        &tmux,
        "a leader on screen",
        FIRST_LEADER_WAIT_MS,
        &log_dir,
        leader_on_screen,
    );
    tmux.send("k");
    let second = wait_for(
        &tmux,
        "a different leader",
        STEP_WAIT_MS,
        &log_dir,
        |screen| leader_on_screen(screen).filter(|leader| *leader != first),
    );
    assert_ne!(first, second);
    let killed_row_dead = tmux.screen().contains("killed SIGKILL");
    assert!(
        killed_row_dead,
        "the killed leader's row shows how it died:\n{}",
        tmux.screen()
    );

    tmux.send("w");
    wait_for(&tmux, "50 keys written", STEP_WAIT_MS, &log_dir, |screen| {
        screen.contains("wrote 50 keys").then_some(())
    });
    // The bulk write is in the live history: 50 writes, then 50 reads of
    // the same keys, checked.
    wait_for(
        &tmux,
        "the live verdict on 100 ops",
        STEP_WAIT_MS,
        &log_dir,
        |screen| {
            screen
                .contains("history 100 ops · LINEARIZABLE")
                .then_some(())
        },
    );
    let history = export_history(&tmux, &log_dir);
    let lines: Vec<&str> = history.lines().collect();
    let count = |op: &str| {
        lines
            .iter()
            .filter(|l| l.contains("\"key\":\"dash:") && l.contains(&format!("\"op\":\"{op}\"")))
            .count()
    };
    assert_eq!(
        (lines.len(), count("write"), count("read")),
        (100, 50, 50),
        "{history}"
    );
    let verdict = exported_file(&log_dir.join("evidence"), "verdict.txt").unwrap();
    assert!(verdict.contains("linearizable: YES"), "{verdict}");
    // k selected the killed node, so r restarts it.
    tmux.send("r");
    let digest = wait_for(
        &tmux,
        "CONVERGED with equal digests on 3 rows",
        STEP_WAIT_MS,
        &log_dir,
        converged_on_three_rows,
    );
    assert_eq!(digest.len(), 12);

    tmux.send("q");
    let screen = wait_for(
        &tmux,
        "the dashboard to exit",
        QUIT_WAIT_MS,
        &log_dir,
        |screen| {
            screen
                .contains("raftkv-exit-code=")
                .then(|| screen.to_string())
        },
    );
    assert!(screen.contains("raftkv-exit-code=0"), "{screen}");
    assert!(
        !tmux.alternate_screen_on(),
        "the alternate screen was left on:\n{screen}"
    );
    let modes = wait_for(&tmux, "the terminal modes", 5_000, &log_dir, |screen| {
        screen
            .lines()
            .find(|l| l.contains("icanon"))
            .map(str::to_string)
    });
    assert!(
        modes.contains("icanon") && !modes.contains("-icanon"),
        "raw mode left on: {modes}"
    );
    assert!(
        modes.split_whitespace().any(|m| m == "echo"),
        "echo left off: {modes}"
    );
    assert_no_node_left(&data_dir, Duration::from_secs(10));
}

/// Issue #10's sequence, as a person would type it: stop a follower G,
/// write 50 keys, kill the leader L, then `R` on the other follower F. That
/// wipe would leave only L's copy of the 50 acknowledged writes, so it is
/// refused with the reason; once G and L are back every key is there. A
/// wipe that leaves a quorum of intact copies is done, and the wiped node
/// is re-admitted as a voter.
#[test]
fn dashboard_refuses_a_wipe_that_would_lose_writes_and_readmits_an_allowed_one() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir: PathBuf = dir.path().join("data");
    let log_dir: PathBuf = dir.path().join("logs");
    let (tmux, leader) = start_converged(&data_dir, &log_dir);
    let mut followers = (1..=u64::from(NODES)).filter(|id| *id != leader);
    let (f, g) = (followers.next().unwrap(), followers.next().unwrap());

    tmux.send(&g.to_string());
    tmux.send("s");
    wait_for(&tmux, "G stopped", STEP_WAIT_MS, &log_dir, |screen| {
        row_text(screen, g).filter(|text| text.contains("exited"))
    });
    tmux.send("w");
    wait_for(&tmux, "50 keys written", STEP_WAIT_MS, &log_dir, |screen| {
        screen.contains("wrote 50 keys").then_some(())
    });
    tmux.send("k");
    wait_for(&tmux, "L killed", STEP_WAIT_MS, &log_dir, |screen| {
        row_text(screen, leader).filter(|text| text.contains("killed"))
    });
    tmux.send(&f.to_string());
    tmux.send("R");
    let refusal = format!("R refused: wiping node {f} would leave");
    wait_for(
        &tmux,
        "R refused with the reason",
        STEP_WAIT_MS,
        &log_dir,
        |screen| screen.contains(&refusal).then_some(()),
    );
    assert!(
        row_text(&tmux.screen(), f).is_some_and(|text| text.contains("running")),
        "F was not touched:\n{}",
        tmux.screen()
    );

    tmux.send(&g.to_string());
    tmux.send("r");
    tmux.send(&leader.to_string());
    tmux.send("r");
    wait_for(
        &tmux,
        "CONVERGED on three rows after G and L are back",
        STEP_WAIT_MS,
        &log_dir,
        converged_on_three_rows,
    );
    tmux.send("v");
    wait_for(
        &tmux,
        "50 of 50 keys verified",
        STEP_WAIT_MS,
        &log_dir,
        |screen| screen.contains("verified 50 keys on 3 nodes").then_some(()),
    );

    // Every node holds the log now: replacing F leaves a quorum of intact
    // copies. F is stopped, removed, wiped, and joins as a new incarnation.
    let identity = data_dir.join(format!("node-{f}")).join("identity");
    let old_identity = std::fs::read(&identity).expect("F's identity file");
    tmux.send(&f.to_string());
    tmux.send("R");
    let promoted = format!("4/4 node {f} added as learner;");
    wait_for(
        &tmux,
        "F replaced: a learner, then a voter",
        STEP_WAIT_MS,
        &log_dir,
        |_| timeline_line(&log_dir, &[&promoted, "promoted; voters {1,2,3}"]),
    );
    wait_for(
        &tmux,
        "CONVERGED on three rows after the replacement",
        STEP_WAIT_MS,
        &log_dir,
        converged_on_three_rows,
    );
    let new_identity = std::fs::read(&identity).expect("F's new identity file");
    assert_ne!(
        old_identity, new_identity,
        "F came back as a new incarnation"
    );
    assert!(
        !tmux.screen().contains("DATA LOSS") && !tmux.screen().contains("DIVERGED"),
        "{}",
        tmux.screen()
    );
    let verified = "verified 50 keys on 3 nodes";
    let before = tmux.screen().matches(verified).count();
    tmux.send("v");
    wait_for(
        &tmux,
        "50 of 50 keys verified after the replacement",
        STEP_WAIT_MS,
        &log_dir,
        |screen| (screen.matches(verified).count() > before).then_some(()),
    );
    quit_cleanly(&tmux, &data_dir, &log_dir);
}

/// `a` adds node 4: it starts empty with `--join`, is listed as a learner,
/// catches up and is promoted; the cluster converges on four rows and
/// `raftkv kv member list` shows four voters. `-` then removes it again and
/// the table is back to three converged rows.
#[test]
fn a_adds_a_fourth_voter_and_minus_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir: PathBuf = dir.path().join("data");
    let log_dir: PathBuf = dir.path().join("logs");
    let base_port = free_base_port();
    let tmux = start_dashboard_on(base_port, &data_dir, &log_dir);
    wait_for(
        &tmux,
        "CONVERGED on three rows",
        FIRST_LEADER_WAIT_MS,
        &log_dir,
        converged_on_three_rows,
    );
    tmux.send("w");
    wait_for(&tmux, "50 keys written", STEP_WAIT_MS, &log_dir, |screen| {
        screen.contains("wrote 50 keys").then_some(())
    });
    tmux.send("a");
    wait_for(&tmux, "node 4 promoted", STEP_WAIT_MS, &log_dir, |_| {
        timeline_line(
            &log_dir,
            &["node 4 added as learner;", "promoted; voters {1,2,3,4}"],
        )
    });
    wait_for(
        &tmux,
        "CONVERGED on four rows",
        STEP_WAIT_MS,
        &log_dir,
        |screen| converged_on_rows(screen, 4),
    );
    assert!(
        tmux.screen().contains("Nodes · voters {1,2,3,4}"),
        "{}",
        tmux.screen()
    );
    let listed = Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args([
            "kv",
            "--cluster",
            &format!("127.0.0.1:{}", base_port + 1),
            "member",
            "list",
        ])
        .output()
        .expect("run raftkv kv member list");
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert_eq!(
        table
            .lines()
            .filter(|line| line.contains(" voter "))
            .count(),
        4,
        "{table}"
    );

    tmux.send("4");
    tmux.send("-");
    wait_for(
        &tmux,
        "node 4 removed and gone from the table",
        STEP_WAIT_MS,
        &log_dir,
        |screen| screen.contains("node 4 removed and stopped").then_some(()),
    );
    wait_for(
        &tmux,
        "CONVERGED on three rows after the removal",
        STEP_WAIT_MS,
        &log_dir,
        converged_on_three_rows,
    );
    quit_cleanly(&tmux, &data_dir, &log_dir);
}

/// Growing 3 -> 5 under the write load and shrinking back: `a` twice
/// with `W` on, a fault on an added node (its links pass through the
/// proxy: cut off, it falls behind; healed, it catches up), the quality
/// gate on five nodes, then `-` twice, CONVERGED on three rows.
#[test]
fn growing_to_five_under_load_with_faults_and_the_gate_then_shrinking_back() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir: PathBuf = dir.path().join("data");
    let log_dir: PathBuf = dir.path().join("logs");
    let (tmux, _leader) = start_converged(&data_dir, &log_dir);
    tmux.send("W");
    for (id, voters) in [(4, "{1,2,3,4}"), (5, "{1,2,3,4,5}")] {
        tmux.send("a");
        let added = format!("node {id} added as learner;");
        let promoted = format!("promoted; voters {voters}");
        wait_for(
            &tmux,
            "a node promoted under load",
            STEP_WAIT_MS,
            &log_dir,
            |_| timeline_line(&log_dir, &[&added, &promoted]),
        );
    }
    tmux.send("W");
    wait_for(
        &tmux,
        "CONVERGED on five rows",
        STEP_WAIT_MS,
        &log_dir,
        |screen| converged_on_rows(screen, 5),
    );

    // Node 5 cut off: a write leaves it behind; healed, it catches up.
    tmux.send("5");
    tmux.send("p");
    wait_for(&tmux, "node 5 cut", STEP_WAIT_MS, &log_dir, |screen| {
        row_text(screen, 5).filter(|text| text.contains(" cut "))
    });
    tmux.send("w");
    wait_for(
        &tmux,
        "node 5 behind the others",
        STEP_WAIT_MS,
        &log_dir,
        |screen| (screen.contains("wrote 50 keys") && screen.contains("SYNCING")).then_some(()),
    );
    tmux.send("h");
    wait_for(
        &tmux,
        "CONVERGED on five rows after the heal",
        STEP_WAIT_MS,
        &log_dir,
        |screen| converged_on_rows(screen, 5),
    );

    tmux.send("d");
    wait_for(
        &tmux,
        "the quality gate to pass on five nodes",
        STEP_WAIT_MS,
        &log_dir,
        |screen| screen.contains("quality gate: 8/8 PASS").then_some(()),
    );
    wait_for(
        &tmux,
        "CONVERGED on five rows after the gate",
        STEP_WAIT_MS,
        &log_dir,
        |screen| converged_on_rows(screen, 5),
    );

    for (id, rows) in [(5, 4), (4, 3)] {
        tmux.send(&id.to_string());
        tmux.send("-");
        let removed = format!("node {id} removed and stopped");
        wait_for(&tmux, "a node removed", STEP_WAIT_MS, &log_dir, |_| {
            timeline_line(&log_dir, &[&removed])
        });
        wait_for(
            &tmux,
            "CONVERGED after a removal",
            STEP_WAIT_MS,
            &log_dir,
            |screen| converged_on_rows(screen, rows),
        );
    }
    assert!(
        !tmux.screen().contains("DATA LOSS") && !tmux.screen().contains("DIVERGED"),
        "{}",
        tmux.screen()
    );
    // The load's own writers are in the live history: their writes, and
    // once W stopped them, their reads back, from client ids of their own.
    let history = export_history(&tmux, &log_dir);
    let load_ops = |op: &str| {
        history
            .lines()
            .filter(|l| {
                l.contains("\"client\":2000000000") && l.contains(&format!("\"op\":\"{op}\""))
            })
            .count()
    };
    assert!(
        load_ops("write") > 0 && load_ops("read") > 0,
        "the first load writer's writes and reads back: {} and {}",
        load_ops("write"),
        load_ops("read")
    );
    let verdict = exported_file(&log_dir.join("evidence"), "verdict.txt").unwrap();
    assert!(verdict.contains("linearizable: YES"), "{verdict}");
    quit_cleanly(&tmux, &data_dir, &log_dir);
}

/// `p` cuts the leader off from its peers through the dashboard's fault
/// proxy: the other two elect a new leader while it keeps running, and the
/// old one steps down without a quorum; `h` heals it and every node
/// converges.
#[test]
fn isolating_the_leader_elects_another_and_healing_converges() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir: PathBuf = dir.path().join("data");
    let log_dir: PathBuf = dir.path().join("logs");
    let (tmux, leader) = start_converged(&data_dir, &log_dir);
    tmux.send(&leader.to_string());
    tmux.send("p");
    wait_for(
        &tmux,
        "the leader's row with its links cut",
        STEP_WAIT_MS,
        &log_dir,
        |screen| row_text(screen, leader).filter(|text| text.contains(" cut ")),
    );
    let second = wait_for(&tmux, "another leader", STEP_WAIT_MS, &log_dir, |screen| {
        leader_on_screen(screen).filter(|l| *l != leader)
    });
    assert_ne!(second, leader);
    let screen = tmux.screen();
    assert!(
        row_text(&screen, leader).is_some_and(|t| !t.contains("non-voter")),
        "a cut-off node is not a node that lost its disk:\n{screen}"
    );
    // Check-quorum: the old leader gives up on its own, and the timeline
    // says how long it led without a quorum.
    let step_down = format!("node {leader} (leader, term");
    wait_for(
        &tmux,
        "the old leader's step-down in the timeline",
        STEP_WAIT_MS,
        &log_dir,
        |screen| {
            screen
                .lines()
                .find(|line| line.contains(&step_down) && line.contains("stepped down after"))
                .map(str::to_string)
        },
    );
    tmux.send("h");
    wait_for(
        &tmux,
        "CONVERGED on three rows after h",
        STEP_WAIT_MS,
        &log_dir,
        |screen| {
            converged_on_three_rows(screen)
                .filter(|_| row_text(screen, leader).is_some_and(|t| t.contains(" ok ")))
        },
    );
    quit_cleanly(&tmux, &data_dir, &log_dir);
}

/// The parent-death signal: SIGKILL the supervisor (`raftkv up`), and every
/// node it started dies too, so no orphan keeps a port.
#[test]
fn nodes_die_with_a_killed_supervisor() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let log_dir = dir.path().join("logs");
    let base_port = free_base_port().to_string();
    let mut up = Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(["up", "--fresh", "--base-port", &base_port])
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--log-dir")
        .arg(&log_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start raftkv up");
    let stdout = BufReader::new(up.stdout.take().unwrap());
    let mut started = 0;
    for line in stdout.lines() {
        let line = line.unwrap();
        if line.trim_start().starts_with("node ") && line.contains(" pid ") {
            started += 1;
        }
        if line.starts_with("Ctrl-C") {
            break;
        }
    }
    assert_eq!(started, NODES, "raftkv up started {started} nodes");
    let deadline = Instant::now() + Duration::from_secs(10);
    while node_processes(&data_dir).len() < usize::from(NODES) {
        assert!(
            Instant::now() < deadline,
            "node processes not found: {}",
            log_excerpts(&log_dir)
        );
        std::thread::sleep(Duration::from_millis(SCREEN_POLL_MS));
    }
    up.kill().unwrap();
    up.wait().unwrap();
    assert_no_node_left(&data_dir, Duration::from_secs(10));
}

#[test]
fn screen_parsers_read_the_dashboard() {
    let screen = " raftkv  leader node 3 · term 4   CONVERGED  index 107 · digest 9c416561…\n\
        │  ID PID      PROCESS            ROLE         TERM  COMMIT   APPLIED  KEYS   DIGEST       CONTACT LAG │\n\
        │▶ 1  4101     running            follower     4     107      107      100    9c416561b5d2 15ms    0   │\n\
        │  2  4102     running            follower     4     107      107      100    9c416561b5d2 17ms    0   │\n\
        │  3  4103     running            ★ LEADER     4     107      107      100    9c416561b5d2 —       0   │\n";
    assert_eq!(leader_on_screen(screen), Some(3));
    assert_eq!(
        converged_on_three_rows(screen).as_deref(),
        Some("9c416561b5d2")
    );
    let degraded = screen.replace("digest 9c416561…", "digest 9c416561… · 2 of 3 up");
    assert_eq!(converged_on_three_rows(&degraded), None);
    assert_eq!(leader_on_screen(" raftkv  no leader   NO LEADER"), None);
}
