//! What the gate reads from the nodes' logs: this run's part of a node's
//! event log, from disk. The judging of what is read lives in `checks`; the
//! keys a node holds are read back by `crate::key_check::read_back`.

use crate::clock;
use crate::evidence;
use crate::gate_record::GateNode;
use crate::poll::{parse_event_line, LogLine};

/// Numbered, parsed lines of this run's part of a node's event log.
pub fn read_event_lines(node: &GateNode) -> Result<Vec<(usize, LogLine)>, String> {
    let path = node
        .event_log
        .as_ref()
        .ok_or_else(|| format!("node {}'s log is not on this machine", node.id))?;
    let bytes = evidence::read_log_portion(path, node.log_start_offset_bytes)?;
    let now_ms = clock::now_ms();
    Ok(String::from_utf8_lossy(&bytes)
        .lines()
        .enumerate()
        .map(|(i, line)| (i + 1, parse_event_line(node.id, line, now_ms)))
        .collect())
}
