//! `raftkv demo` as a user runs it: the real binary, a fresh temp dir as the
//! working directory, free ports. A passing run, a sabotaged run that must
//! fail items 6 and 7, and the plan kept equal to docs/DEMO.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use raftkv_node::log_events;

mod common;
/// The gate's item names and the digest a fresh run ends with, as the binary
/// itself defines them.
#[path = "../src/plan.rs"]
#[allow(dead_code)]
mod plan;

use common::{free_base_port, Tmux};
use plan::{FRESH_FINAL_DIGEST, ITEM_NAMES};

/// A whole demo run must end within this (it normally takes seconds).
const DEMO_DEADLINE: Duration = Duration::from_secs(180);

/// Kills the demo (and through the parent-death signal its nodes) if a test
/// fails before it ends.
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn raftkv(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_raftkv"));
    command
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // No git repository above the temp dir may answer for it.
        .env("GIT_CEILING_DIRECTORIES", dir.parent().unwrap_or(dir));
    command
}

/// Runs to the end or the deadline, reading the output as it comes (a full
/// pipe must never stall the demo).
fn run_with_deadline(mut command: Command) -> Output {
    let child = command.spawn().expect("start raftkv");
    let mut guard = KillOnDrop(Some(child));
    let child = guard.0.as_mut().unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let read_all = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = read_all(Box::new(stdout));
    let stderr = read_all(Box::new(stderr));
    let deadline = Instant::now() + DEMO_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "raftkv did not finish within {DEMO_DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    guard.0 = None;
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// `raftkv demo` of three nodes on a free block of ports, with its data,
/// logs and bundles in `dir`.
fn demo(dir: &Path) -> Command {
    let mut command = raftkv(dir);
    command
        .args(["demo", "--nodes", "3"])
        .args(["--base-port", &free_base_port().to_string()])
        .args(["--data-dir", "data"])
        .args(["--log-dir", "logs"])
        .args(["--out", "evidence"]);
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The one bundle folder the run wrote.
fn bundle_dir(dir: &Path) -> PathBuf {
    let bundles: Vec<PathBuf> = std::fs::read_dir(dir.join("evidence"))
        .expect("the evidence folder exists")
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(bundles.len(), 1, "{bundles:?}");
    bundles.into_iter().next().unwrap()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// digests.csv as checkpoint -> [(node, applied index, digest, keys)].
fn digest_rows(csv: &str) -> BTreeMap<String, Vec<(u64, u64, String, u64)>> {
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("node,checkpoint,applied_index,digest,keys")
    );
    let mut rows: BTreeMap<String, Vec<(u64, u64, String, u64)>> = BTreeMap::new();
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields.len(), 5, "{line}");
        rows.entry(fields[1].to_string()).or_default().push((
            fields[0].parse().unwrap(),
            fields[2].parse().unwrap(),
            fields[3].to_string(),
            fields[4].parse().unwrap(),
        ));
    }
    rows
}

/// Every `node-<id>.log line <n>` an evidence line cites, as (file, line).
fn cited_log_lines(evidence: &str) -> Vec<(String, usize)> {
    let mut cited = Vec::new();
    for (start, _) in evidence.match_indices("node-") {
        let rest = &evidence[start..];
        let Some(end) = rest.find(".log line ") else {
            continue;
        };
        let file = &rest[..end + 4];
        let number: String = rest[end + 10..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let Ok(number) = number.parse() {
            cited.push((file.to_string(), number));
        }
    }
    cited
}

/// `6. All data verified on all nodes: FAIL`
fn verdict_line(item: usize, verdict: &str) -> String {
    format!("{item}. {}: {verdict}", ITEM_NAMES[item - 1])
}

/// The evidence line of item `n` (after the eight verdict lines).
fn evidence_line(checklist: &str, item: usize) -> String {
    let evidence = checklist
        .split("\nEvidence")
        .nth(1)
        .expect("an evidence section");
    evidence
        .lines()
        .find(|line| line.starts_with(&format!("{item}. ")))
        .unwrap_or_else(|| panic!("no evidence for item {item}:\n{checklist}"))
        .to_string()
}

fn git_in(dir: &Path, args: &[&str]) -> Output {
    Command::new("git")
        .args([
            "-c",
            "user.name=raftkv test",
            "-c",
            "user.email=test@raftkv.invalid",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CEILING_DIRECTORIES", dir.parent().unwrap_or(dir))
        .output()
        .expect("run git")
}

#[test]
fn demo_passes_on_a_fresh_cluster_and_every_figure_is_traceable() {
    let dir = tempfile::tempdir().unwrap();
    // A repository to tag, so --git-tag is exercised by the same run.
    assert!(git_in(dir.path(), &["init", "-q"]).status.success());
    assert!(git_in(
        dir.path(),
        &["commit", "-q", "--allow-empty", "-m", "start"]
    )
    .status
    .success());

    let mut command = demo(dir.path());
    command
        .args(["--git-tag", "v0.3.0-gate-test"])
        .env("GIT_COMMITTER_NAME", "raftkv test")
        .env("GIT_COMMITTER_EMAIL", "test@raftkv.invalid");
    let output = run_with_deadline(command);
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "raftkv demo failed ({}):\n{stdout}\n{}",
        output.status,
        text(&output.stderr)
    );
    // Live numbered progress lines and the plan were printed.
    for step in [
        "[1.1] ", "[2.3] ", "[3.1] ", "[4.1] ", "[5.1] ", "[6.2] ", "[8.1] ",
    ] {
        assert!(stdout.contains(step), "no progress line {step}:\n{stdout}");
    }
    assert!(
        stdout.contains("# raftkv quality gate: the demo plan"),
        "{stdout}"
    );

    let bundle = bundle_dir(dir.path());
    let checklist = read(&bundle.join("CHECKLIST.txt"));
    let verdicts: Vec<&str> = checklist.lines().take(8).collect();
    let expected: Vec<String> = (1..=8).map(|n| verdict_line(n, "PASS")).collect();
    assert_eq!(verdicts, expected, "{checklist}");
    assert!(
        stdout.contains(&checklist),
        "the checklist is printed as saved"
    );

    // Item 3 and 4 figures point at log lines that show them.
    let item3 = evidence_line(&checklist, 3);
    let cited = cited_log_lines(&item3);
    assert_eq!(cited.len(), 2, "one detection line per survivor: {item3}");
    let item4 = evidence_line(&checklist, 4);
    let mut checks: Vec<(String, usize, &[&str])> = cited
        .into_iter()
        .map(|(file, number)| {
            (
                file,
                number,
                &[log_events::LEADER_LOST, log_events::ELECTION_TIMEOUT][..],
            )
        })
        .collect();
    checks.extend(
        cited_log_lines(&item4)
            .into_iter()
            .map(|(file, number)| (file, number, &[log_events::BECAME_LEADER][..])),
    );
    assert_eq!(checks.len(), 3, "{item3}\n{item4}");
    for (file, number, events) in checks {
        let log = read(&bundle.join(&file));
        let line = log
            .lines()
            .nth(number - 1)
            .unwrap_or_else(|| panic!("{file} has no line {number}"));
        assert!(
            events
                .iter()
                .any(|e| line.contains(&format!("\"event\":\"{e}\""))),
            "{file} line {number} is not one of {events:?}: {line}"
        );
    }
    assert!(item3.contains(" ms after the kill"), "{item3}");

    // REPORT.md carries this run's numbers.
    let report = read(&bundle.join("REPORT.md"));
    for label in [
        "| Write throughput | ",
        "| Write latency | p50 ",
        "| Detection, node ",
        "| Election | node ",
        "| Catch-up after restart | node ",
        "| Gate wall time | ",
    ] {
        let row = report
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("REPORT.md has no row '{label}':\n{report}"));
        assert!(
            row.chars().any(|c| c.is_ascii_digit()),
            "no number in {row}"
        );
        assert!(!row.contains("not measured"), "{row}");
    }
    assert!(report.contains("**8/8 PASS**"), "{report}");

    // Three checkpoints x live nodes, equal per checkpoint.
    let rows = digest_rows(&read(&bundle.join("digests.csv")));
    assert_eq!(
        rows.keys().collect::<Vec<_>>(),
        vec!["after-2", "after-5", "after-6"]
    );
    assert_eq!(rows["after-2"].len(), 3);
    assert_eq!(
        rows["after-5"].len(),
        2,
        "the killed leader is not live after item 5"
    );
    assert_eq!(rows["after-6"].len(), 3);
    for (checkpoint, nodes) in &rows {
        let (_, applied, digest, keys) = &nodes[0];
        for row in nodes {
            assert_eq!(
                (&row.1, &row.2, &row.3),
                (applied, digest, keys),
                "{checkpoint}: {nodes:?}"
            );
        }
    }
    assert_eq!(rows["after-2"][0].3, 50);
    assert_eq!(rows["after-6"][0].2, FRESH_FINAL_DIGEST);

    for line in read(&bundle.join("timeline.jsonl")).lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            value["at_ms"].as_u64().is_some() && value["step"].is_string(),
            "{line}"
        );
    }
    for file in [
        "DEMO.md",
        "README.txt",
        "node-1.log",
        "node-2.log",
        "node-3.log",
    ] {
        assert!(bundle.join(file).exists(), "{file} missing from the bundle");
    }

    // --git-tag: the annotated tag exists with the message, and the listing was printed.
    let tag = git_in(dir.path(), &["tag", "-l", "-n1", "v0.3.0-gate-test"]);
    assert!(
        text(&tag.stdout).contains("Week 12: Month 3 demo — full cluster"),
        "{}",
        text(&tag.stdout)
    );
    assert!(
        stdout.contains("git tag -l \"v0.*\":\nv0.3.0-gate-test"),
        "{stdout}"
    );
}

#[test]
fn a_node_that_cannot_catch_up_fails_items_6_and_7_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = demo(dir.path());
    command.arg("--sabotage-catchup");
    let output = run_with_deadline(command);
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&output.stderr)
    );

    let checklist = read(&bundle_dir(dir.path()).join("CHECKLIST.txt"));
    let verdicts: Vec<&str> = checklist.lines().take(8).collect();
    let expected: Vec<String> = (1..=8)
        .map(|n| verdict_line(n, if n == 6 || n == 7 { "FAIL" } else { "PASS" }))
        .collect();
    assert_eq!(verdicts, expected, "{checklist}");
    let item6 = evidence_line(&checklist, 6);
    assert!(
        item6.contains("corrupt") && item6.contains("refusing to start"),
        "{item6}"
    );
    let item7 = evidence_line(&checklist, 7);
    assert!(
        item7.contains("after-6 FAILED") && item7.contains("is not running"),
        "{item7}"
    );
    // The run does not wait out its deadlines for a node that is gone.
    assert!(stdout.contains("[8.4]"), "{stdout}");
}

#[test]
fn the_plan_flag_prints_docs_demo_md() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = raftkv(dir.path());
    command.args(["demo", "--plan"]);
    let output = run_with_deadline(command);
    assert!(output.status.success());
    assert_eq!(text(&output.stdout), include_str!("../../docs/DEMO.md"));
    assert!(!dir.path().join("evidence").exists() && !dir.path().join("data").exists());
}

#[test]
fn git_tag_outside_a_repository_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = demo(dir.path());
    command.args(["--git-tag", "v0.3.0"]);
    let output = run_with_deadline(command);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("--git-tag v0.3.0: the current directory is not in a git repository"),
        "{stderr}"
    );
    assert!(!dir.path().join("data").exists(), "no cluster was started");
}

/// Waits until the screen shows `wanted` and returns the screen.
fn wait_for_text(tmux: &Tmux, wanted: &str, within: Duration) -> String {
    tmux.wait_for(&format!("'{wanted}'"), within, String::new, |screen| {
        screen.contains(wanted).then(|| screen.to_string())
    })
}

/// The dashboard's `d` runs the same scenario on its own cluster and `e`
/// exports the same bundle.
#[test]
fn the_dashboards_d_key_runs_the_gate_and_e_exports_its_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let command = format!(
        "'{bin}' tui --fresh --base-port {port} --data-dir '{data}' --log-dir '{logs}'; \
         echo raftkv-exit-code=$?; sleep 600",
        bin = env!("CARGO_BIN_EXE_raftkv"),
        port = free_base_port(),
        data = dir.path().join("data").display(),
        logs = logs.display(),
    );
    let tmux = Tmux::start(130, 42, &command);
    wait_for_text(&tmux, "leader node", Duration::from_secs(60));
    tmux.send("d");
    wait_for_text(&tmux, "Quality gate", Duration::from_secs(10));
    let screen = wait_for_text(&tmux, "quality gate: 8/8 PASS; evidence in", DEMO_DEADLINE);
    for (n, name) in ITEM_NAMES.iter().enumerate() {
        assert!(
            screen.contains(&format!("PASS {}. {name}", n + 1)),
            "{screen}"
        );
    }
    let bundles = |logs: &Path| -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(logs.join("evidence"))
            .map(|entries| entries.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        found.sort();
        found
    };
    let gate_bundle = bundles(&logs);
    assert_eq!(gate_bundle.len(), 1, "{gate_bundle:?}");
    let checklist = read(&gate_bundle[0].join("CHECKLIST.txt"));
    let expected: Vec<String> = (1..=8).map(|n| verdict_line(n, "PASS")).collect();
    assert_eq!(
        checklist.lines().take(8).collect::<Vec<_>>(),
        expected,
        "{checklist}"
    );
    let rows = digest_rows(&read(&gate_bundle[0].join("digests.csv")));
    assert_eq!(
        rows.keys().collect::<Vec<_>>(),
        vec!["after-2", "after-5", "after-6"]
    );

    tmux.send("e");
    wait_for_text(&tmux, "evidence exported to", Duration::from_secs(10));
    let after_export = bundles(&logs);
    assert_eq!(after_export.len(), 2, "{after_export:?}");
    let exported = after_export.iter().find(|b| **b != gate_bundle[0]).unwrap();
    assert_eq!(
        read(&exported.join("CHECKLIST.txt"))
            .lines()
            .take(8)
            .collect::<Vec<_>>(),
        expected
    );

    tmux.send("q");
    let screen = wait_for_text(&tmux, "raftkv-exit-code=", Duration::from_secs(30));
    assert!(screen.contains("raftkv-exit-code=0"), "{screen}");
}
