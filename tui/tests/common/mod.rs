//! What the dashboard crate's process tests share: free port blocks for a
//! cluster, and a private tmux server that drives the real dashboard.

// Each test file uses its own part of this module.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Nodes the binary starts by default.
pub const NODES: u16 = 3;
/// Nodes the dashboard may run after `a` (its cap): their ports are free too.
pub const DASHBOARD_NODES_MAX: u16 = 5;
/// Peer ports sit this far above client ports.
pub const PEER_PORT_OFFSET: u16 = 100;
/// Base ports are drawn from this range (below the ephemeral ports).
const BASE_PORT_LOW: u64 = 12_000;
const BASE_PORT_HIGH: u64 = 32_000;
/// Base ports tried before giving up.
const BASE_PORT_ATTEMPTS_MAX: u32 = 200;
/// How often a waiting test reads the screen again.
const SCREEN_POLL_MS: u64 = 100;

/// Base ports handed out in this test process, so parallel tests never overlap.
static RESERVED_BASES: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// A base port P whose client ports P+1..P+N and peer ports P+101..P+100+N
/// (N = `DASHBOARD_NODES_MAX`, for the nodes the dashboard may add) are
/// free now and far from every base handed out before in this process.
pub fn free_base_port() -> u16 {
    let mut reserved = RESERVED_BASES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // Below the kernel's ephemeral range (32768 and up on Linux), where the
    // busy sockets of outgoing connections never sit.
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut draw = clock ^ (u64::from(std::process::id()) << 32);
    for _ in 0..BASE_PORT_ATTEMPTS_MAX {
        draw = draw
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let base = (BASE_PORT_LOW + (draw >> 33) % (BASE_PORT_HIGH - BASE_PORT_LOW)) as u16;
        if base < 1024
            || u32::from(base) + u32::from(PEER_PORT_OFFSET + DASHBOARD_NODES_MAX) > 65_535
        {
            continue;
        }
        if reserved
            .iter()
            .any(|r| r.abs_diff(base) <= 2 * PEER_PORT_OFFSET)
        {
            continue;
        }
        let ports = (1..=DASHBOARD_NODES_MAX).flat_map(|i| [base + i, base + PEER_PORT_OFFSET + i]);
        let free = ports
            .map(|port| TcpListener::bind(("127.0.0.1", port)))
            .collect::<Result<Vec<_>, _>>()
            .is_ok();
        if free {
            reserved.push(base);
            return base;
        }
    }
    panic!("no free port range found in {BASE_PORT_ATTEMPTS_MAX} tries");
}

/// Tests that drive the real dashboard in tmux check nothing without it:
/// they fail and say what to install.
pub fn require_tmux() {
    let available = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        available,
        "tmux is required for the dashboard's end-to-end tests (Debian: apt-get install tmux; .ci/run installs it)"
    );
}

/// A private tmux server (its own socket) with one session running one
/// command; killed on drop.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn start(width: u16, height: u16, command: &str) -> Tmux {
        require_tmux();
        // One server per test: the tests of a file run in parallel.
        static SERVERS_STARTED: AtomicU32 = AtomicU32::new(0);
        let serial = SERVERS_STARTED.fetch_add(1, Ordering::Relaxed);
        let tmux = Tmux {
            socket: format!("raftkv-test-{}-{serial}", std::process::id()),
        };
        let status = Command::new("tmux")
            .args(["-L", &tmux.socket, "-f", "/dev/null", "new-session", "-d"])
            .args([
                "-s",
                "test",
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
            ])
            .arg(command)
            .status()
            .expect("run tmux");
        assert!(status.success(), "tmux new-session failed");
        tmux
    }

    pub fn send(&self, key: &str) {
        let status = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-t", "test", key])
            .status()
            .expect("tmux send-keys");
        assert!(status.success());
    }

    pub fn screen(&self) -> String {
        let output = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-J", "-t", "test"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// True while the program in the pane has the alternate screen on.
    pub fn alternate_screen_on(&self) -> bool {
        let output = Command::new("tmux")
            .args(["-L", &self.socket, "display-message", "-p", "-t", "test"])
            .arg("#{alternate_on}")
            .output()
            .expect("tmux display-message");
        String::from_utf8_lossy(&output.stdout).trim() == "1"
    }

    /// Polls the screen until `done` returns a value; fails with the screen
    /// and `context()` (e.g. log excerpts) after `within`.
    pub fn wait_for<T>(
        &self,
        what: &str,
        within: Duration,
        context: impl Fn() -> String,
        done: impl Fn(&str) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + within;
        loop {
            let screen = self.screen();
            if let Some(value) = done(&screen) {
                return value;
            }
            if Instant::now() >= deadline {
                panic!(
                    "waited {within:?} for {what}; screen:\n{screen}\n{}",
                    context()
                );
            }
            std::thread::sleep(Duration::from_millis(SCREEN_POLL_MS));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .stderr(Stdio::null())
            .status();
    }
}
