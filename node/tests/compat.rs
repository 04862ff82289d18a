//! Real clients against a real cluster: `redis-cli --cluster check`,
//! redis-benchmark, and redis-py (node/tests/compat/redis_py.py: RedisCluster
//! discovery and routing, the string commands, pipelines, MULTI/EXEC and
//! WATCH, and a kill -9 of the leader under a write loop with no
//! acknowledged write lost).
//!
//! Then ioredis's `Redis.Cluster` (node/tests/compat/ioredis.js): discovery
//! after that failover, strings, a pipeline and MULTI/EXEC.
//!
//! redis-py comes from a virtualenv that `.ci/run` creates at
//! `target/compat-venv` (or the Python named by `RAFTKV_COMPAT_PYTHON`),
//! ioredis from `npm install --prefix target/compat-node` (or
//! `RAFTKV_COMPAT_IOREDIS`).
//! Without it this test fails and says how to create it: a compatibility
//! suite that silently skips proves nothing.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use common::*;

/// The Python with redis-py installed.
fn compat_python() -> PathBuf {
    if let Some(python) = std::env::var_os("RAFTKV_COMPAT_PYTHON") {
        return PathBuf::from(python);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/compat-venv/bin/python")
}

/// Runs `command` to completion within `WAIT_DEADLINE`, its output in
/// `out`; returns (success, output).
fn run(mut command: Command, out: PathBuf) -> (bool, String) {
    let file = std::fs::File::create(&out).expect("output file");
    command
        .stdout(Stdio::from(file.try_clone().unwrap()))
        .stderr(Stdio::from(file));
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    let deadline = Instant::now() + WAIT_DEADLINE * 4;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish within {:?}", WAIT_DEADLINE * 4);
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    (
        status.success(),
        std::fs::read_to_string(out).unwrap_or_default(),
    )
}

fn host_port(addr: &str) -> (&str, &str) {
    addr.rsplit_once(':').expect("host:port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_redis_benchmark_and_redis_py_work_against_a_cluster() {
    let python = compat_python();
    assert!(
        python.exists(),
        "redis-py is not installed: {} does not exist. Create it with \
         `python3 -m venv target/compat-venv && target/compat-venv/bin/pip install redis` \
         (what .ci/run does), or point RAFTKV_COMPAT_PYTHON at a Python with redis-py.",
        python.display()
    );
    let cluster = Cluster::start(3);
    let (leader, _) = wait_for_leader(&cluster).await;
    let leader_addr = cluster.node(leader).client_addr.clone();
    let follower = cluster
        .live_ids()
        .into_iter()
        .find(|id| *id != leader)
        .unwrap();
    let follower_addr = cluster.node(follower).client_addr.clone();
    // Every node must know every other's address before the topology is checked.
    wait_for("every node to list three members", || {
        let cluster = &cluster;
        async move {
            for addr in cluster.client_addrs() {
                let mut connection = raftkv_node::client::Connection::connect(&addr, WAIT_DEADLINE)
                    .await
                    .ok()?;
                let reply = connection.request(&[b"CLUSTER", b"NODES"]).await.ok()?;
                match reply {
                    raftkv_node::resp::Frame::Bulk(text)
                        if text
                            .split(|b| *b == b'\n')
                            .filter(|l| !l.is_empty())
                            .count()
                            == 3 => {}
                    _ => return None,
                }
            }
            Some(())
        }
    })
    .await;

    let mut check = Command::new("redis-cli");
    check.args(["--cluster", "check", &follower_addr]);
    let (ok, output) = run(check, cluster.dir.path().join("cluster-check.out"));
    assert!(ok, "redis-cli --cluster check failed:\n{output}");
    assert!(output.contains("[OK] All 16384 slots covered."), "{output}");
    assert!(
        output.contains("[OK] All nodes agree about slots configuration."),
        "{output}"
    );

    let (host, port) = host_port(&leader_addr);
    let mut benchmark = Command::new("redis-benchmark");
    benchmark.args([
        "-h",
        host,
        "-p",
        port,
        "-t",
        "set,get,incr,mset",
        "-n",
        "2000",
        "-q",
    ]);
    let (ok, output) = run(benchmark, cluster.dir.path().join("benchmark.out"));
    assert!(ok, "redis-benchmark failed:\n{output}");
    assert!(
        !output.contains("Error"),
        "redis-benchmark saw errors:\n{output}"
    );
    // redis-benchmark stops at the first error reply, so every result line
    // means the whole run of that command was answered without one.
    for test in ["SET: ", "GET: ", "INCR: ", "MSET (10 keys): "] {
        assert!(output.contains(test), "no {test} result:\n{output}");
    }

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/compat/redis_py.py");
    let mut redis_py = Command::new(&python);
    redis_py.arg(script).arg(cluster.client_addrs().join(","));
    let (ok, output) = run(redis_py, cluster.dir.path().join("redis-py.out"));
    assert!(ok, "the redis-py suite failed:\n{output}");
    let last = output.lines().last().unwrap_or_default();
    let result: serde_json::Value = serde_json::from_str(last).unwrap_or_else(|e| {
        panic!("the suite's last line is not its JSON result ({e}):\n{output}")
    });
    assert_eq!(result["failover"]["lost"], 0, "{output}");
    println!("redis-py compat: {last}");

    // ioredis gets every node as a startup node (the redis-py suite killed
    // one): it asks them for CLUSTER SLOTS until one answers.
    let ioredis = ioredis_module();
    assert!(
        ioredis.join("package.json").exists(),
        "ioredis is not installed: {} does not exist. Install it with \
         `npm install --prefix target/compat-node ioredis@5` (what .ci/run does), or point \
         RAFTKV_COMPAT_IOREDIS at an ioredis module directory.",
        ioredis.display()
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/compat/ioredis.js");
    let mut node = Command::new("node");
    node.arg(script)
        .arg(&ioredis)
        .arg(cluster.client_addrs().join(","));
    let (ok, output) = run(node, cluster.dir.path().join("ioredis.out"));
    assert!(ok, "the ioredis suite failed:\n{output}");
    println!(
        "ioredis compat: {}",
        output.lines().last().unwrap_or_default()
    );
}

/// The ioredis module `.ci/run` installs (or `RAFTKV_COMPAT_IOREDIS`).
fn ioredis_module() -> PathBuf {
    if let Some(module) = std::env::var_os("RAFTKV_COMPAT_IOREDIS") {
        return PathBuf::from(module);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/compat-node/node_modules/ioredis")
}
