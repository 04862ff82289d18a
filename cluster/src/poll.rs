//! Polling: RAFT.STATUS of every node at a fixed rate with per-request
//! deadlines, and tailing each node's JSON event log and captured output.
//! Both report to the dashboard through a bounded channel.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock;
use crate::status::{NodeStatus, StatusFetcher};

/// Every node is asked for RAFT.STATUS this often (>= 5 Hz).
pub const STATUS_POLL_INTERVAL_MS: u64 = 150;
/// A status request that takes longer than this counts as "no answer".
pub const STATUS_DEADLINE_MS: u64 = 400;
/// The log files are checked for new lines this often.
pub const LOG_TAIL_INTERVAL_MS: u64 = 50;
/// At most this much of one file is read per check, so a flood of log lines
/// cannot stall the tailer (the rest is read on the next check).
pub const LOG_READ_BYTES_MAX: usize = 256 * 1024;
/// A line longer than this is cut (a log line is normally a few hundred bytes).
pub const LOG_LINE_BYTES_MAX: usize = 4096;

const _: () = assert!(
    STATUS_POLL_INTERVAL_MS <= 200,
    "the dashboard polls at >= 5 Hz"
);

/// One status poll of one node.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusReport {
    /// The dashboard's row id for the node (1-based).
    pub id: u64,
    pub at_ms: u64,
    pub result: Result<NodeStatus, String>,
}

/// Polls `nodes` (row id, client address) until `cancel` fires; one task per
/// node so a hung node delays nobody else.
pub fn spawn_status_pollers(
    nodes: Vec<(u64, String)>,
    reports: mpsc::Sender<StatusReport>,
    cancel: CancellationToken,
    tracker: &TaskTracker,
) {
    for (id, addr) in nodes {
        let reports = reports.clone();
        let cancel = cancel.clone();
        tracker.spawn(async move {
            let mut fetcher = StatusFetcher::new(addr);
            let mut interval =
                tokio::time::interval(Duration::from_millis(STATUS_POLL_INTERVAL_MS));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    _ = interval.tick() => {}
                }
                let result = tokio::select! {
                    () = cancel.cancelled() => return,
                    result = fetcher.fetch(Duration::from_millis(STATUS_DEADLINE_MS)) => result,
                };
                let report = StatusReport {
                    id,
                    at_ms: clock::now_ms(),
                    result,
                };
                if reports.send(report).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Which file a log line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogSource {
    /// `node-<id>.log`: tracing JSON, one event a line.
    Events,
    /// `node-<id>.out`: the process's stdout and stderr.
    Output,
}

/// One line from a node's files, parsed as far as it goes.
#[derive(Clone, Debug, PartialEq)]
pub struct LogLine {
    pub id: u64,
    /// From the line's own timestamp when it has one, else when it was read.
    pub at_ms: u64,
    pub source: LogSource,
    /// `INFO`, `WARN`, ... (empty for plain output).
    pub level: String,
    /// `fields.event` of a JSON line.
    pub event: Option<String>,
    /// The other fields, in order, rendered as text (`message` excluded).
    pub fields: Vec<(String, String)>,
    /// The message of a JSON line, or the whole plain line.
    pub text: String,
}

impl LogLine {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn field_u64(&self, name: &str) -> Option<u64> {
        self.field(name)?.parse().ok()
    }

    /// `became_leader term=4` / the message / the plain line.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(event) = &self.event {
            parts.push(event.clone());
        }
        if !self.text.is_empty() {
            parts.push(self.text.clone());
        }
        parts.extend(self.fields.iter().map(|(k, v)| format!("{k}={v}")));
        parts.join(" ")
    }
}

/// Parses one line of `node-<id>.log` (tracing's JSON format); a line that is
/// not JSON is kept as plain text.
pub fn parse_event_line(id: u64, line: &str, read_at_ms: u64) -> LogLine {
    let plain = || LogLine {
        id,
        at_ms: read_at_ms,
        source: LogSource::Events,
        level: String::new(),
        event: None,
        fields: Vec::new(),
        text: line.to_string(),
    };
    let Ok(serde_json::Value::Object(object)) = serde_json::from_str::<serde_json::Value>(line)
    else {
        return plain();
    };
    let at_ms = object
        .get("timestamp")
        .and_then(|t| t.as_str())
        .and_then(clock::parse_rfc3339_ms)
        .unwrap_or(read_at_ms);
    let level = object
        .get("level")
        .and_then(|l| l.as_str())
        .unwrap_or("")
        .to_string();
    let mut event = None;
    let mut text = String::new();
    let mut fields = Vec::new();
    if let Some(serde_json::Value::Object(map)) = object.get("fields") {
        for (key, value) in map {
            let value = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            match key.as_str() {
                "event" => event = Some(value),
                "message" => text = value,
                _ => fields.push((key.clone(), value)),
            }
        }
    }
    LogLine {
        id,
        at_ms,
        source: LogSource::Events,
        level,
        event,
        fields,
        text,
    }
}

/// Reads what was appended to one file since the last call.
#[derive(Debug)]
pub struct FileTail {
    path: PathBuf,
    offset_bytes: u64,
    partial: Vec<u8>,
}

impl FileTail {
    /// Starts at the current end of the file (earlier runs are history, not news).
    pub fn from_end(path: PathBuf) -> FileTail {
        let offset_bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
        FileTail {
            path,
            offset_bytes,
            partial: Vec::new(),
        }
    }

    /// Complete new lines (a line still being written waits for its newline).
    pub fn read_new_lines(&mut self) -> Vec<String> {
        let Ok(mut file) = File::open(&self.path) else {
            return Vec::new();
        };
        let length = file.metadata().map_or(0, |m| m.len());
        if length < self.offset_bytes {
            // Truncated or replaced: start over from its beginning.
            self.offset_bytes = 0;
            self.partial.clear();
        }
        if length == self.offset_bytes || file.seek(SeekFrom::Start(self.offset_bytes)).is_err() {
            return Vec::new();
        }
        let mut chunk = Vec::new();
        let read = file
            .take(LOG_READ_BYTES_MAX as u64)
            .read_to_end(&mut chunk)
            .unwrap_or(0);
        self.offset_bytes += read as u64;
        self.partial.extend_from_slice(&chunk[..read]);
        let mut lines = Vec::new();
        while let Some(newline) = self.partial.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.partial.drain(..=newline).collect();
            line.pop();
            line.truncate(LOG_LINE_BYTES_MAX);
            lines.push(
                String::from_utf8_lossy(&line)
                    .trim_end_matches('\r')
                    .to_string(),
            );
        }
        if self.partial.len() > LOG_LINE_BYTES_MAX {
            // A line without end: keep the reader bounded by emitting its start.
            let line: Vec<u8> = self.partial.drain(..).take(LOG_LINE_BYTES_MAX).collect();
            lines.push(String::from_utf8_lossy(&line).to_string());
        }
        lines
    }
}

/// Tails `node-<id>.log` and `node-<id>.out` of every node until cancelled.
pub fn spawn_log_tailer(
    files: Vec<(u64, PathBuf, PathBuf)>,
    reports: mpsc::Sender<LogLine>,
    cancel: CancellationToken,
    tracker: &TaskTracker,
) {
    let mut tails: Vec<(u64, FileTail, FileTail)> = files
        .into_iter()
        .map(|(id, events, output)| (id, FileTail::from_end(events), FileTail::from_end(output)))
        .collect();
    tracker.spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_millis(LOG_TAIL_INTERVAL_MS));
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = interval.tick() => {}
            }
            let now_ms = clock::now_ms();
            for (id, events, output) in &mut tails {
                let event_lines = events
                    .read_new_lines()
                    .into_iter()
                    .map(|line| parse_event_line(*id, &line, now_ms));
                let output_lines = output.read_new_lines().into_iter().map(|line| LogLine {
                    id: *id,
                    at_ms: now_ms,
                    source: LogSource::Output,
                    level: String::new(),
                    event: None,
                    fields: Vec::new(),
                    text: line,
                });
                for line in event_lines.chain(output_lines).collect::<Vec<_>>() {
                    if reports.send(line).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftkv_node::log_events;
    use std::io::Write;

    #[test]
    fn tracing_json_lines_parse_into_events() {
        let line = r#"{"timestamp":"2024-05-01T10:00:00.123456Z","level":"INFO","fields":{"event":"leader_lost","silence_ms":312,"term":4,"reason":"timeout"},"target":"raftkv_node::driver"}"#;
        let parsed = parse_event_line(2, line, 99);
        assert_eq!(parsed.at_ms, 1_714_557_600_123);
        assert_eq!(parsed.level, "INFO");
        assert_eq!(parsed.event.as_deref(), Some(log_events::LEADER_LOST));
        assert_eq!(parsed.field_u64("silence_ms"), Some(312));
        assert_eq!(parsed.field("reason"), Some("timeout"));
        assert_eq!(
            parsed.summary(),
            "leader_lost reason=timeout silence_ms=312 term=4"
        );

        let message = r#"{"timestamp":"bad","level":"WARN","fields":{"message":"disk slow"}}"#;
        let parsed = parse_event_line(1, message, 99);
        assert_eq!(parsed.at_ms, 99);
        assert_eq!(parsed.event, None);
        assert_eq!(parsed.summary(), "disk slow");

        let garbage = parse_event_line(1, "thread 'main' panicked", 5);
        assert_eq!(garbage.text, "thread 'main' panicked");
        assert_eq!(garbage.at_ms, 5);
    }

    #[test]
    fn tail_returns_only_complete_new_lines_and_survives_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node-1.log");
        std::fs::write(&path, "old line\n").unwrap();
        let mut tail = FileTail::from_end(path.clone());
        assert!(tail.read_new_lines().is_empty());
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        write!(file, "first\nsecond\nhalf").unwrap();
        assert_eq!(tail.read_new_lines(), vec!["first", "second"]);
        writeln!(file, " done").unwrap();
        assert_eq!(tail.read_new_lines(), vec!["half done"]);
        std::fs::write(&path, "after truncation\n").unwrap();
        assert_eq!(tail.read_new_lines(), vec!["after truncation"]);
        let mut missing = FileTail::from_end(dir.path().join("absent.log"));
        assert!(missing.read_new_lines().is_empty());
    }

    #[test]
    fn an_endless_line_is_cut_not_buffered_forever() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node-1.out");
        let mut tail = FileTail::from_end(path.clone());
        std::fs::write(&path, vec![b'x'; LOG_LINE_BYTES_MAX * 3]).unwrap();
        let lines = tail.read_new_lines();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), LOG_LINE_BYTES_MAX);
    }
}
