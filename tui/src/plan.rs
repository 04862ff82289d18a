//! The quality gate's numbered plan, the names of its eight items and the
//! counts it runs with: printed by `raftkv demo --plan` and at the start of
//! every run, saved as DEMO.md in the evidence bundle, and kept equal to
//! docs/DEMO.md by a test. The scenario runs with these constants and the
//! bundle reports them; this module imports neither.

/// The gate's items, in order, named exactly as the checklist prints them.
pub const ITEM_NAMES: [&str; ITEM_COUNT] = [
    "Demo plan written",
    "Writes to leader work",
    "Leader kill triggers detection",
    "New leader elected",
    "Writes to new leader work",
    "All data verified on all nodes",
    "State hashes match at every step",
    "Month 3 report written",
];
pub const ITEM_COUNT: usize = 8;

/// Keys written in each write phase (items 2 and 5).
pub const KEYS_PER_PHASE: u64 = 50;
/// SETs of the built-in benchmark (item 8).
pub const BENCH_SETS: u64 = 2_000;
/// Concurrent benchmark clients, each with its own connection.
pub const BENCH_CLIENTS: u64 = 16;
const _: () = assert!(
    BENCH_SETS.is_multiple_of(BENCH_CLIENTS),
    "every client writes the same share"
);
const _: () = assert!(2 * KEYS_PER_PHASE <= 9_999, "key names have four digits");
const _: () = assert!(BENCH_SETS <= 9_999, "bench key names have four digits");

/// The digest of key:0001..key:0100 = value-1..value-100 (DESIGN.md "State
/// digest"): the state a fresh cluster must hold after step 6.
pub const FRESH_FINAL_DIGEST: &str =
    "f9de357db9c61f71fae95744165a192bd493832bd09207da42c26293f1c136b4";

/// The name of the n-th gate key (1-based): `key:0001`.
pub fn key_name(n: u64) -> String {
    format!("key:{n:04}")
}

/// The name of the n-th benchmark key (1-based): `bench:0001`.
pub fn bench_key_name(n: u64) -> String {
    format!("bench:{n:04}")
}

/// The plan as Markdown. Counts come from the constants the scenario runs
/// with, so docs/DEMO.md goes stale (and its test fails) when they change.
pub fn plan_text() -> String {
    let first_key = key_name(1);
    let half_key = key_name(KEYS_PER_PHASE);
    let next_key = key_name(KEYS_PER_PHASE + 1);
    let last_key = key_name(2 * KEYS_PER_PHASE);
    let half = KEYS_PER_PHASE;
    let all = 2 * KEYS_PER_PHASE;
    let next = KEYS_PER_PHASE + 1;
    let bench_first = bench_key_name(1);
    let bench_last = bench_key_name(BENCH_SETS);
    let bench_sets = thousands(BENCH_SETS);
    let names = ITEM_NAMES;
    format!(
        r#"# raftkv quality gate: the demo plan

`raftkv demo` runs this plan against a fresh local cluster and writes the
evidence bundle `logs/evidence/<UTC timestamp>/`; the dashboard's `d` key runs
the same scenario against the cluster on screen. `raftkv demo --plan` prints
this plan; docs/DEMO.md holds the same text (a test keeps them equal).

    raftkv demo                                 # 3 nodes on 127.0.0.1:7001-7003, data in ./data, logs in ./logs
    raftkv demo --nodes 5 --base-port 9000 --data-dir /tmp/rk --log-dir /tmp/rk-logs --out /tmp/evidence
    raftkv demo --git-tag v0.3.0                # also tag the repository when all eight items pass
    raftkv demo --attach 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003   # a cluster it must not kill: items 3-7 cannot run

Expected output: this plan, then one numbered progress line per step
(`[2.3] 10:00:01.234 SET {first_key}..{half_key} through leader node 1 ...`), then
the checklist and the bundle path. The exit status is 0 exactly when all
eight items say PASS. Every step waits for a condition with a deadline; a
failed step records why, the later steps still run where they can, and the
bundle is always written.

## Steps

Step numbers in brackets are the `[n.m]` of the progress lines and of
timeline.jsonl.

1. {n1}.
   [1.1] Print this plan and save it as DEMO.md in the bundle.
   Expected: `1. {n1}: PASS`

2. {n2}.
   [2.1] Start every node that is not running. `raftkv demo` first wipes
         `<data-dir>/node-<i>`, then starts node i as `raftkv node --id i
         --client 127.0.0.1:<P+i> --peer 127.0.0.1:<P+100+i> --cluster
         1=127.0.0.1:<P+101>,... --data-dir <data-dir>/node-<i> --log-dir
         <log-dir>` (P = --base-port, default 7000). The `d` key uses the
         dashboard's cluster as it is; its values carry the run's timestamp
         (value-1@<run>) so values from an earlier run cannot pass for new ones.
   [2.2] Wait until the nodes agree on one leader (RAFT.STATUS).
   [2.3] SET {first_key} .. {half_key} to value-1 .. value-{half} through the leader.
   [2.4] Read all {half} back from every node with READONLY + MGET (each node
         answers from its own state).
   [2.5] Checkpoint after-2: digest, applied index and key count of every
         node (item 7).
   By hand: `redis-cli -p 7001 SET {first_key} value-1`, then
   `printf 'READONLY\nGET {first_key}\n' | redis-cli -p 7002`.
   Expected: `2. {n2}: PASS`, {half}/{half} keys right on every node.

3. {n3}.
   [3.1] kill -9 the leader's process.
   [3.2] Each surviving follower must log leader loss in
         logs/node-<id>.log, timestamped after the kill: a `leader_lost`
         line (reason "election timeout" with silence_ms, or the connection
         error) or an `election_timeout` line.
   By hand: `grep leader_lost logs/node-2.log`.
   Expected: `3. {n3}: PASS`, ms from the kill to each
   follower's detection line.

4. {n4}.
   [4.1] Poll RAFT.STATUS on the survivors until exactly one of them is
         leader, in a higher term than the killed leader's, and the others
         follow it; its `became_leader` line dates the election.
   Expected: `4. {n4}: PASS`, ms from the kill to the new leader.

5. {n5}.
   [5.1] SET {next_key} .. {last_key} to value-{next} .. value-{all} through the
         new leader.
   [5.2] Read all {all} keys on every surviving node (READONLY + MGET).
   [5.3] Checkpoint after-5 on the survivors.
   Expected: `5. {n5}: PASS`

6. {n6}.
   [6.1] Restart the killed node with its data dir.
   [6.2] Wait until its applied index reaches the leader's commit index
         (catch-up).
   [6.3] Read all {all} keys on every node (READONLY + MGET).
   [6.4] Checkpoint after-6 on every node.
   Expected: `6. {n6}: PASS`, catch-up ms.

7. {n7}.
   At each checkpoint (after-2, after-5, after-6) every live node reports
   the same digest at the same applied index (RAFT.STATUS); all rows are in
   digests.csv. In a fresh cluster each checkpoint's digest must also equal
   the digest computed here from the pairs written so far; after-6 that is
   the DESIGN.md test vector for {first_key}..{last_key} = value-1..value-{all}:
   {FRESH_FINAL_DIGEST}.
   Expected: `7. {n7}: PASS`

8. {n8}.
   [8.1] The built-in write benchmark: {bench_sets} SETs of {bench_first} ..
         {bench_last} from {BENCH_CLIENTS} concurrent clients through the leader.
   [8.2] Write REPORT.md: the architecture, this run's numbers (throughput,
         p50/p99 latency, detection ms per follower, election ms, catch-up
         ms, gate wall time) and next steps.
   [8.3] `raftkv demo` stops the cluster it started (SIGTERM); `d` leaves
         the dashboard's cluster running.
   [8.4] Write the rest of the bundle.
   Expected: `8. {n8}: PASS`

## The bundle

    logs/evidence/<UTC timestamp>/
      CHECKLIST.txt   the eight lines `N. <item>: PASS|FAIL`, then the evidence for each
      REPORT.md       architecture, measured numbers, next steps
      timeline.jsonl  every step with its timestamp
      digests.csv     node, checkpoint, applied index, digest, keys
      DEMO.md         this plan
      node-<id>.log   each node's JSON event log during the run
      README.txt      what each file proves

Paste CHECKLIST.txt as it is; every figure in it points to the file and
line that shows it.
"#,
        n1 = names[0],
        n2 = names[1],
        n3 = names[2],
        n4 = names[3],
        n5 = names[4],
        n6 = names[5],
        n7 = names[6],
        n8 = names[7],
    )
}

/// `2000` -> `2,000`.
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_demo_md_is_the_plan() {
        let docs = include_str!("../../docs/DEMO.md");
        let plan = plan_text();
        if docs != plan {
            let first_difference = docs
                .lines()
                .zip(plan.lines())
                .position(|(a, b)| a != b)
                .map_or("(one is a prefix of the other)".to_string(), |i| {
                    format!("line {}", i + 1)
                });
            panic!(
                "docs/DEMO.md differs from the plan at {first_difference}; \
                 regenerate it with `raftkv demo --plan > docs/DEMO.md`"
            );
        }
    }

    #[test]
    fn the_plan_numbers_every_item_by_its_exact_name() {
        let plan = plan_text();
        for (i, name) in ITEM_NAMES.iter().enumerate() {
            let step = format!("\n{}. {name}.\n", i + 1);
            assert!(plan.contains(&step), "plan lacks step '{step}'");
            let expected = format!("`{}. {name}: PASS`", i + 1);
            assert!(plan.contains(&expected), "plan lacks '{expected}'");
        }
    }

    #[test]
    fn the_fresh_final_digest_is_the_digest_of_the_gate_keys() {
        let pairs: Vec<(String, String)> = (1..=2 * KEYS_PER_PHASE)
            .map(|n| (key_name(n), format!("value-{n}")))
            .collect();
        let digest = raftkv::kv::digest_of(pairs.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())));
        assert_eq!(raftkv::kv::hex(&digest), FRESH_FINAL_DIGEST);
    }

    #[test]
    fn names_and_numbers_format_as_shown() {
        assert_eq!(key_name(7), "key:0007");
        assert_eq!(bench_key_name(2000), "bench:2000");
        assert_eq!(thousands(2000), "2,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(0), "0");
    }
}
