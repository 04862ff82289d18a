//! `raftkv chaos` as a user runs it: a short seeded run on a fresh cluster
//! that must pass with its bundle written, and `--check` rejecting a saved
//! history with a planted stale read, naming the key.

use std::path::Path;
use std::process::{Command, Output};

mod common;

use common::free_base_port;

fn raftkv(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run raftkv")
}

/// Runs `raftkv chaos <args>` on free ports in `dir`, writing its bundle
/// under `dir/chaos`; fails the test unless it exits 0. Returns stdout
/// and the bundle's directory.
fn chaos_run(args: &[&str], dir: &Path) -> (String, std::path::PathBuf) {
    let base_port = free_base_port().to_string();
    let mut all = vec!["chaos", "--base-port", &base_port, "--out", "chaos"];
    all.extend_from_slice(args);
    let output = raftkv(&all, dir);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "chaos failed ({:?}):\n{stdout}\n{stderr}",
        output.status
    );
    let bundles: Vec<_> = std::fs::read_dir(dir.join("chaos"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(bundles.len(), 1, "{bundles:?}");
    (stdout, bundles[0].clone())
}

#[test]
fn a_short_seeded_chaos_run_passes_and_writes_its_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bundle) = chaos_run(
        &["--duration", "15", "--seed", "1", "--data-dir", "data"],
        dir.path(),
    );
    let bundle = &bundle;
    let verdict = std::fs::read_to_string(bundle.join("verdict.txt")).unwrap();
    for line in [
        "linearizable: YES",
        "acknowledged writes lost: none",
        "converged: YES",
        "VERDICT: PASS",
    ] {
        assert!(
            verdict.contains(line),
            "{line:?} not in verdict.txt:\n{verdict}"
        );
    }
    assert!(verdict.contains("faults: "), "{verdict}");
    let history = std::fs::read_to_string(bundle.join("history.jsonl")).unwrap();
    assert!(
        history.lines().count() > 100,
        "a 15 s workload of 8 clients"
    );
    let nemesis = std::fs::read_to_string(bundle.join("nemesis.jsonl")).unwrap();
    assert!(nemesis.lines().count() >= 2, "faults in 15 s: {nemesis}");
    let svg = std::fs::read_to_string(bundle.join("latency.svg")).unwrap();
    assert!(svg.starts_with("<svg"), "latency.svg is an SVG");
    assert!(bundle.join("logs/node-1.log").exists());

    // The saved history checks again, to the same verdict.
    let again = raftkv(
        &[
            "chaos",
            "--check",
            bundle.join("history.jsonl").to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
}

/// Writes 1 then 2 are acknowledged one after the other; a read that
/// starts after both returns 1: a stale read of key `accounts:7`.
/// The membership nemesis alone: nodes replaced by empty disks and the
/// cluster grown by one and shrunk back while clients write; the run must
/// end with nodes 1-3 the voters, converged, and the history linearizable.
#[test]
fn membership_faults_lose_nothing_and_end_with_the_members_back() {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, bundle) = chaos_run(
        &[
            "--duration",
            "12",
            "--seed",
            "3",
            "--nemesis",
            "replace,grow",
        ],
        dir.path(),
    );
    let verdict = std::fs::read_to_string(bundle.join("verdict.txt")).unwrap();
    for line in ["linearizable: YES", "converged: YES", "VERDICT: PASS"] {
        assert!(verdict.contains(line), "{line:?} not in:\n{verdict}");
    }
    let nemesis = std::fs::read_to_string(bundle.join("nemesis.jsonl")).unwrap();
    for kind in ["\"replace\"", "\"grow\""] {
        assert!(nemesis.contains(kind), "no {kind} fault in 12 s: {nemesis}");
    }
    assert!(
        stdout.contains("removed, its disk to be wiped"),
        "a node was replaced: {stdout}"
    );
}

#[test]
fn check_rejects_a_planted_stale_read_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        r#"{"client":1,"key":"accounts:7","op":"write","value":"1","invoke_us":10,"complete_us":20,"outcome":"ok"}"#,
        r#"{"client":2,"key":"other","op":"write","value":"5","invoke_us":11,"complete_us":21,"outcome":"ok"}"#,
        r#"{"client":1,"key":"accounts:7","op":"write","value":"2","invoke_us":30,"complete_us":40,"outcome":"ok"}"#,
        r#"{"client":2,"key":"accounts:7","op":"read","value":"1","invoke_us":50,"complete_us":60,"outcome":"ok"}"#,
    ];
    let path = dir.path().join("history.jsonl");
    std::fs::write(&path, lines.join("\n")).unwrap();
    let output = raftkv(&["chaos", "--check", path.to_str().unwrap()], dir.path());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("linearizable: NO, key accounts:7"),
        "{stdout}"
    );
    assert!(
        stdout.contains("acknowledged write LOST: key accounts:7"),
        "{stdout}"
    );

    // Without the stale read the same history passes.
    std::fs::write(&path, lines[..3].join("\n")).unwrap();
    let output = raftkv(&["chaos", "--check", path.to_str().unwrap()], dir.path());
    assert_eq!(output.status.code(), Some(0));

    // A file that is not a history is refused with the line that is wrong.
    std::fs::write(&path, "{\"client\":1}\n").unwrap();
    let output = raftkv(&["chaos", "--check", path.to_str().unwrap()], dir.path());
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 1"), "{stderr}");
}
