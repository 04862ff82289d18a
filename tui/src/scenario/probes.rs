//! What the gate reads from the nodes: this run's part of a node's event log
//! (from disk) and a node's own copy of written keys (over the network). The
//! judging of what is read lives in `checks`.

use std::time::Duration;

use raftkv_node::client::{Connection, NODE_QUERY_TIMEOUT_MS};
use raftkv_node::resp::Frame;

use super::checks::{compare_values, KeyCheck};
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

/// Reads `expected`'s keys from one node's own state: READONLY, then one MGET.
pub(crate) async fn read_local_values(
    addr: &str,
    expected: &[(String, String)],
) -> Result<KeyCheck, String> {
    let timeout = Duration::from_millis(NODE_QUERY_TIMEOUT_MS);
    let mut connection = Connection::connect(addr, timeout)
        .await
        .map_err(|e| e.to_string())?;
    match connection
        .request(&[b"READONLY"])
        .await
        .map_err(|e| e.to_string())?
    {
        Frame::Simple(ok) if ok == "OK" => {}
        other => return Err(format!("{addr} answered READONLY with {other:?}")),
    }
    let mut args: Vec<&[u8]> = vec![b"MGET"];
    args.extend(expected.iter().map(|(key, _)| key.as_bytes()));
    let values = match connection.request(&args).await.map_err(|e| e.to_string())? {
        Frame::Array(items) if items.len() == expected.len() => items
            .into_iter()
            .map(|item| match item {
                Frame::Bulk(bytes) => Ok(Some(bytes.to_vec())),
                Frame::Null => Ok(None),
                other => Err(format!("{addr} answered MGET with an element {other:?}")),
            })
            .collect::<Result<Vec<_>, String>>()?,
        Frame::Error(message) => return Err(format!("{addr} refused MGET: {message}")),
        other => {
            return Err(format!(
                "{addr} answered MGET of {} keys with {other:?}",
                expected.len()
            ))
        }
    };
    Ok(compare_values(expected, &values))
}
