//! Node memory (`--memory KEYS`): after the cluster holds KEYS distinct keys
//! and has converged, each node's resident memory from /proc/<pid>/status,
//! next to the raw data it holds (KEYS x (key + value bytes)).

use std::time::Duration;

use super::fill::FillReport;
use super::local::STATUS_DEADLINE_MS;
use crate::status::StatusFetcher;

/// /proc/<pid>/status figures of one node, in bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ProcMemory {
    /// Resident set (VmRSS = RssAnon + RssFile + RssShmem).
    pub(crate) rss_bytes: u64,
    pub(crate) rss_anon_bytes: u64,
    pub(crate) rss_file_bytes: u64,
    /// Peak resident set since the process started (VmHWM).
    pub(crate) peak_rss_bytes: u64,
}

impl ProcMemory {
    /// Parses the text of /proc/<pid>/status (values in kB).
    pub(crate) fn parse(status: &str) -> Result<ProcMemory, String> {
        let field = |name: &str| -> Result<u64, String> {
            status
                .lines()
                .find_map(|line| {
                    let rest = line.strip_prefix(name)?.strip_prefix(':')?;
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
                .map(|kib| kib * 1024)
                .ok_or_else(|| format!("no {name} line"))
        };
        Ok(ProcMemory {
            rss_bytes: field("VmRSS")?,
            rss_anon_bytes: field("RssAnon")?,
            rss_file_bytes: field("RssFile")?,
            peak_rss_bytes: field("VmHWM")?,
        })
    }

    /// Reads /proc/<pid>/status.
    pub(crate) fn of_pid(pid: u32) -> Result<ProcMemory, String> {
        let path = format!("/proc/{pid}/status");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {path} (the node must run on this machine): {e}"))?;
        ProcMemory::parse(&text).map_err(|e| format!("{path}: {e}"))
    }
}

/// One node's memory.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NodeMemory {
    pub(crate) id: u64,
    pub(crate) pid: u32,
    pub(crate) leader: bool,
    /// Keys the node reported in RAFT.STATUS.
    pub(crate) keys: u64,
    pub(crate) memory: ProcMemory,
}

/// `--memory`: the fill and each node's memory afterwards.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct MemoryReport {
    pub(crate) fill: FillReport,
    /// Key count x (key bytes + value bytes).
    pub(crate) raw_data_bytes: u64,
    pub(crate) nodes: Vec<NodeMemory>,
}

impl MemoryReport {
    /// RSS / raw data of one node (0 when there is no data).
    pub(crate) fn ratio(&self, node: &NodeMemory) -> f64 {
        if self.raw_data_bytes == 0 {
            0.0
        } else {
            node.memory.rss_bytes as f64 / self.raw_data_bytes as f64
        }
    }
}

/// Reads every node's memory; the pid comes from its RAFT.STATUS, so the
/// nodes must run on this machine.
pub(crate) async fn measure(addrs: &[String], fill: FillReport) -> Result<MemoryReport, String> {
    let mut nodes = Vec::new();
    for addr in addrs {
        let status = StatusFetcher::new(addr.clone())
            .fetch(Duration::from_millis(STATUS_DEADLINE_MS))
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        let memory =
            ProcMemory::of_pid(status.pid).map_err(|e| format!("node {}: {e}", status.id))?;
        nodes.push(NodeMemory {
            id: status.id,
            pid: status.pid,
            leader: status.is_leader(),
            keys: status.keys,
            memory,
        });
    }
    Ok(MemoryReport {
        raw_data_bytes: fill.raw_data_bytes(),
        fill,
        nodes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_status_figures_are_read_in_bytes() {
        let text = "Name:\traftkv\nVmHWM:\t  20480 kB\nVmRSS:\t   10240 kB\n\
                    RssAnon:\t    8192 kB\nRssFile:\t    2048 kB\nRssShmem:\t       0 kB\n";
        assert_eq!(
            ProcMemory::parse(text).unwrap(),
            ProcMemory {
                rss_bytes: 10240 * 1024,
                rss_anon_bytes: 8192 * 1024,
                rss_file_bytes: 2048 * 1024,
                peak_rss_bytes: 20480 * 1024,
            }
        );
        let error = ProcMemory::parse("VmRSS:\t1 kB\n").unwrap_err();
        assert!(error.contains("RssAnon"), "{error}");
    }

    #[test]
    fn this_process_has_resident_memory() {
        let memory = ProcMemory::of_pid(std::process::id()).unwrap();
        assert!(memory.rss_bytes > 0 && memory.peak_rss_bytes >= memory.rss_bytes);
        assert!(ProcMemory::of_pid(u32::MAX).is_err());
    }
}
