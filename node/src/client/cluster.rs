//! `ClusterClient`: leader discovery, `-MOVED` redirects and bounded retries
//! over `Connection`, plus one-node queries (status, local reads, digest,
//! dump) that the dashboard and the quality gate use.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{ClientError, Connection};
use crate::driver::status::{member_field, MemberView};
use crate::log_events;
use crate::resp::Frame;

/// Default cap on one attempt (connect + request + reply) inside a request's
/// deadline; a hung node is given up on after this and the next one tried.
pub const ATTEMPT_TIMEOUT_MS_DEFAULT: u64 = 1_000;
/// First wait before retrying after `-CLUSTERDOWN`, `-TRYAGAIN` or a failed
/// connection; doubled per retry up to `RETRY_BACKOFF_MAX_MS`.
pub const RETRY_BACKOFF_INITIAL_MS: u64 = 10;
pub const RETRY_BACKOFF_MAX_MS: u64 = 200;
/// Redirects followed back to back before the client starts waiting between
/// them (nodes that disagree about the leader during an election).
pub const REDIRECTS_WITHOUT_BACKOFF_MAX: u32 = 3;
/// Timeout of `status` (the dashboard polls it; a hung node must not stall it).
pub const STATUS_TIMEOUT_MS: u64 = 300;
/// Timeout of connecting and of each wait for progress in `local_get`,
/// `digest` and `dump`.
pub const NODE_QUERY_TIMEOUT_MS: u64 = 2_000;
/// Keys asked for per SCAN round (and fetched per MGET) by `dump`.
pub const DUMP_SCAN_COUNT: usize = 512;
/// Most SCAN rounds one `dump` runs before deciding the server's cursor
/// never ends.
pub const DUMP_SCAN_ROUNDS_MAX: usize = 10_000_000;

const _: () = assert!(RETRY_BACKOFF_INITIAL_MS <= RETRY_BACKOFF_MAX_MS);

/// Commands that never change state: always safe to resend.
const READ_ONLY_COMMANDS: &[&str] = &[
    "GET",
    "MGET",
    "EXISTS",
    "DBSIZE",
    "KEYS",
    "SCAN",
    "PING",
    "ECHO",
    "INFO",
    "COMMAND",
    "RAFT.STATUS",
    "RAFT.DIGEST",
    "RAFT.MEMBERS",
];

/// A client for a whole cluster. Not `Clone`: it keeps one connection and
/// the leader it last saw; make one per task. Cancel-safe: a command future
/// dropped half-way (in a `select!` or a timeout) takes its connection with
/// it, so the next command never reads the abandoned reply.
pub struct ClusterClient {
    addrs: Vec<String>,
    leader_hint: Option<String>,
    /// Next address to try when no leader is known.
    next_addr: usize,
    deadline: Duration,
    attempt_timeout: Duration,
    /// Resend SET, DEL and MSET after an attempt whose outcome is unknown.
    resend_ambiguous_writes: bool,
    pub(super) connection: Option<Connection>,
}

/// How one attempt ended, before the retry policy looks at it.
enum Attempt {
    Reply(Frame),
    /// Nothing reached the server (the connection could not be opened).
    NotSent(ClientError),
    /// The request may have reached the server; no reply was read.
    MaybeSent(ClientError),
}

/// What the retry policy decided.
enum Verdict {
    Done(Result<Frame, ClientError>),
    /// Follow a redirect: try again, the target changed.
    Redirected(ClientError),
    /// Wait, then try again. `maybe_applied`: this attempt may have taken effect.
    Backoff {
        error: ClientError,
        maybe_applied: bool,
    },
}

impl ClusterClient {
    /// A client for the nodes at `addrs` ("host:port" RESP addresses); each
    /// request retries for at most `deadline`.
    pub fn new(addrs: Vec<String>, deadline: Duration) -> Self {
        ClusterClient {
            addrs,
            leader_hint: None,
            next_addr: 0,
            deadline,
            attempt_timeout: Duration::from_millis(ATTEMPT_TIMEOUT_MS_DEFAULT),
            resend_ambiguous_writes: true,
            connection: None,
        }
    }

    /// Never resend a write whose outcome is unknown: report it as
    /// `OutcomeUnknown` instead. Resending SET is safe only for a key no
    /// other client writes: when another writer's SET lands between the
    /// two copies, the resent one takes effect again after it, and a
    /// reader sees an old value come back (`raftkv chaos` found this). A
    /// client that checks linearizability over contended keys needs this.
    pub fn without_resending_ambiguous_writes(mut self) -> Self {
        self.resend_ambiguous_writes = false;
        self
    }

    /// Caps one attempt (default `ATTEMPT_TIMEOUT_MS_DEFAULT`). A write that
    /// takes longer than this counts as outcome-unknown.
    pub fn with_attempt_timeout(mut self, attempt_timeout: Duration) -> Self {
        self.attempt_timeout = attempt_timeout;
        self
    }

    /// The address the client currently believes is the leader.
    pub fn leader_hint(&self) -> Option<&str> {
        self.leader_hint.as_deref()
    }

    pub async fn set(
        &mut self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<(), ClientError> {
        let reply = self
            .command(&[b"SET", key.as_ref(), value.as_ref()])
            .await?;
        match reply {
            Frame::Simple(ref text) if text == "OK" => Ok(()),
            other => Err(self.unexpected("SET", &other)),
        }
    }

    /// `None` when the key does not exist. A linearizable read on the leader.
    pub async fn get(&mut self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>, ClientError> {
        let reply = self.command(&[b"GET", key.as_ref()]).await?;
        optional_bulk(reply).map_err(|other| self.unexpected("GET", &other))
    }

    /// Removes `key`; returns how many keys were removed (0 or 1). After a
    /// retry whose first attempt was applied, 0.
    pub async fn del(&mut self, key: impl AsRef<[u8]>) -> Result<u64, ClientError> {
        match self.command(&[b"DEL", key.as_ref()]).await? {
            Frame::Integer(count) if count >= 0 => Ok(count as u64),
            other => Err(self.unexpected("DEL", &other)),
        }
    }

    /// Increments the integer at `key`; never retried once it may have been
    /// applied (see the module docs).
    pub async fn incr(&mut self, key: impl AsRef<[u8]>) -> Result<i64, ClientError> {
        match self.command(&[b"INCR", key.as_ref()]).await? {
            Frame::Integer(value) => Ok(value),
            other => Err(self.unexpected("INCR", &other)),
        }
    }

    /// Sends any command to the leader, following redirects and retrying as
    /// the module docs describe. Error replies become `Err`.
    pub async fn command(&mut self, args: &[&[u8]]) -> Result<Frame, ClientError> {
        let name = command_name(args)?;
        let started = Instant::now();
        let mut backoff_ms = RETRY_BACKOFF_INITIAL_MS;
        let mut attempts = 0u32;
        let mut redirects_in_row = 0u32;
        let mut maybe_applied = false;
        loop {
            let target = self.target()?;
            attempts += 1;
            let remaining = self.deadline.saturating_sub(started.elapsed());
            let timeout = remaining
                .min(self.attempt_timeout)
                .max(Duration::from_millis(1));
            let attempt = self.attempt(&target, args, timeout).await;
            let last = match self.judge(&target, &name, args.len(), attempt, &mut redirects_in_row)
            {
                Verdict::Done(result) => return result,
                Verdict::Redirected(error) => {
                    tracing::debug!(event = log_events::CLIENT_REDIRECT, command = %name, to = ?self.leader_hint);
                    if started.elapsed() < self.deadline {
                        continue;
                    }
                    error
                }
                Verdict::Backoff {
                    error,
                    maybe_applied: this_maybe_applied,
                } => {
                    maybe_applied |= this_maybe_applied;
                    let remaining = self.deadline.saturating_sub(started.elapsed());
                    if !remaining.is_zero() {
                        tracing::debug!(event = log_events::CLIENT_RETRY, command = %name, addr = %target, reason = %error, backoff_ms);
                        tokio::time::sleep(remaining.min(Duration::from_millis(backoff_ms))).await;
                        backoff_ms = (backoff_ms * 2).min(RETRY_BACKOFF_MAX_MS);
                        if started.elapsed() < self.deadline {
                            continue;
                        }
                    }
                    error
                }
            };
            return Err(ClientError::DeadlineExceeded {
                command: name,
                deadline_ms: self.deadline.as_millis() as u64,
                attempts,
                maybe_applied,
                last: Box::new(last),
            });
        }
    }

    /// The node to send to: the leader if known, else the next address.
    fn target(&self) -> Result<String, ClientError> {
        if let Some(leader) = &self.leader_hint {
            return Ok(leader.clone());
        }
        if self.addrs.is_empty() {
            return Err(ClientError::NoAddresses);
        }
        Ok(self.addrs[self.next_addr % self.addrs.len()].clone())
    }

    /// Stops sending to `addr` first: drop the leader hint if it was that
    /// node, else move on to the next address.
    fn move_on_from(&mut self, addr: &str) {
        if self.leader_hint.as_deref() == Some(addr) {
            self.leader_hint = None;
        } else {
            self.next_addr = self.next_addr.wrapping_add(1);
        }
    }

    async fn attempt(&mut self, target: &str, args: &[&[u8]], timeout: Duration) -> Attempt {
        // Taken out for the request and put back only after a whole reply:
        // if this future is dropped half-way (the caller's select! or
        // timeout), the connection goes with it and no late reply can be
        // read as the answer to a later request.
        let cached = self
            .connection
            .take()
            .filter(|c| c.addr() == target && c.is_reusable());
        let mut connection = match cached {
            Some(connection) => connection,
            None => match Connection::connect(target, timeout).await {
                Ok(connection) => connection,
                Err(error) => return Attempt::NotSent(error),
            },
        };
        connection.set_io_timeout(timeout);
        match connection.request(args).await {
            Ok(frame) => {
                self.connection = Some(connection);
                Attempt::Reply(frame)
            }
            Err(error) => Attempt::MaybeSent(error),
        }
    }

    /// The retry policy of the module docs, for one attempt's outcome.
    fn judge(
        &mut self,
        target: &str,
        name: &str,
        arg_count: usize,
        attempt: Attempt,
        redirects_in_row: &mut u32,
    ) -> Verdict {
        let retry_unknown = READ_ONLY_COMMANDS.contains(&name)
            || (self.resend_ambiguous_writes && is_idempotent(name, arg_count));
        let is_write = !READ_ONLY_COMMANDS.contains(&name);
        let message = match attempt {
            Attempt::Reply(Frame::Error(message)) => message,
            Attempt::Reply(frame) => {
                // Only the leader acknowledges a write: remember who did, so
                // `leader_hint` names the node that took it even when no
                // redirect led there (the dashboard reads its status next).
                if is_write {
                    self.leader_hint = Some(target.to_string());
                }
                return Verdict::Done(Ok(frame));
            }
            Attempt::NotSent(error) => {
                self.move_on_from(target);
                return Verdict::Backoff {
                    error,
                    maybe_applied: false,
                };
            }
            Attempt::MaybeSent(error) => {
                self.move_on_from(target);
                if !retry_unknown {
                    return Verdict::Done(Err(ClientError::OutcomeUnknown {
                        addr: target.to_string(),
                        command: name.to_string(),
                        reason: error.to_string(),
                    }));
                }
                return Verdict::Backoff {
                    error,
                    maybe_applied: is_write,
                };
            }
        };
        let server_error = |message: &str| ClientError::Server {
            addr: target.to_string(),
            message: message.to_string(),
        };
        let code = message.split_whitespace().next().unwrap_or("");
        match code {
            "MOVED" => match moved_address(&message) {
                Some(leader) => {
                    self.leader_hint = Some(leader);
                    *redirects_in_row += 1;
                    if *redirects_in_row <= REDIRECTS_WITHOUT_BACKOFF_MAX {
                        Verdict::Redirected(server_error(&message))
                    } else {
                        Verdict::Backoff {
                            error: server_error(&message),
                            maybe_applied: false,
                        }
                    }
                }
                None => Verdict::Done(Err(server_error(&message))),
            },
            "CLUSTERDOWN" => {
                *redirects_in_row = 0;
                self.move_on_from(target);
                Verdict::Backoff {
                    error: server_error(&message),
                    maybe_applied: false,
                }
            }
            "TRYAGAIN" => {
                *redirects_in_row = 0;
                Verdict::Backoff {
                    error: server_error(&message),
                    maybe_applied: false,
                }
            }
            "UNCERTAIN" if retry_unknown => Verdict::Backoff {
                error: server_error(&message),
                maybe_applied: is_write,
            },
            "UNCERTAIN" => Verdict::Done(Err(ClientError::OutcomeUnknown {
                addr: target.to_string(),
                command: name.to_string(),
                reason: message,
            })),
            _ => Verdict::Done(Err(server_error(&message))),
        }
    }

    fn unexpected(&self, command: &str, reply: &Frame) -> ClientError {
        let addr = self
            .connection
            .as_ref()
            .map(|c| c.addr().to_string())
            .unwrap_or_default();
        unexpected_reply(&addr, command, reply)
    }

    // ------------------------------------------------- one-node queries

    /// `RAFT.STATUS` of one node as field -> value, with a short timeout
    /// (`STATUS_TIMEOUT_MS`). Accepts the RESP2 flat array and the RESP3 map.
    pub async fn status(addr: &str) -> Result<BTreeMap<String, String>, ClientError> {
        let mut connection =
            Connection::connect(addr, Duration::from_millis(STATUS_TIMEOUT_MS)).await?;
        let reply = connection.request(&[b"RAFT.STATUS"]).await?;
        field_map(addr, "RAFT.STATUS", reply)
    }

    /// `RAFT.MEMBERS` of one node: the newest configuration it knows.
    pub async fn members(addr: &str) -> Result<Vec<MemberView>, ClientError> {
        let mut connection =
            Connection::connect(addr, Duration::from_millis(STATUS_TIMEOUT_MS)).await?;
        let reply = connection.request(&[b"RAFT.MEMBERS"]).await?;
        parse_members(reply).map_err(|reply| unexpected_reply(addr, "RAFT.MEMBERS", &reply))
    }

    /// The value of `key` in one node's own state (`READONLY` then `GET`):
    /// possibly stale, never redirected.
    pub async fn local_get(
        addr: &str,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<Bytes>, ClientError> {
        let mut connection = open_readonly(addr).await?;
        let reply = connection.request(&[b"GET", key.as_ref()]).await?;
        optional_bulk(reply).map_err(|other| unexpected_reply(addr, "GET", &other))
    }

    /// One node's state digest and the applied index it belongs to
    /// (`RAFT.DIGEST`). Accepts `[digest, applied]` or field/value pairs
    /// with `digest` and `applied_index`.
    pub async fn digest(addr: &str) -> Result<(String, u64), ClientError> {
        let mut connection =
            Connection::connect(addr, Duration::from_millis(NODE_QUERY_TIMEOUT_MS)).await?;
        let reply = connection.request(&[b"RAFT.DIGEST"]).await?;
        parse_digest(addr, reply)
    }

    /// Every key/value of one node's own state, sorted by key (`READONLY`,
    /// then `SCAN` rounds and one `MGET` per round). Not a snapshot: keys
    /// written during the dump may or may not appear.
    pub async fn dump(addr: &str) -> Result<Vec<(Bytes, Bytes)>, ClientError> {
        let mut connection = open_readonly(addr).await?;
        let count = DUMP_SCAN_COUNT.to_string();
        let mut cursor = Bytes::from_static(b"0");
        let mut pairs = BTreeMap::new();
        for _ in 0..DUMP_SCAN_ROUNDS_MAX {
            let reply = connection
                .request(&[b"SCAN", &cursor, b"COUNT", count.as_bytes()])
                .await?;
            let (next, keys) = parse_scan(addr, reply)?;
            if !keys.is_empty() {
                let mut args: Vec<&[u8]> = vec![b"MGET"];
                args.extend(keys.iter().map(|key| &key[..]));
                let values = connection.request(&args).await?;
                collect_values(addr, keys, values, &mut pairs)?;
            }
            if &next[..] == b"0" {
                return Ok(pairs.into_iter().collect());
            }
            cursor = next;
        }
        Err(ClientError::UnexpectedReply {
            addr: addr.to_string(),
            command: "SCAN".into(),
            reply: format!(
                "a cursor that did not return to 0 within {DUMP_SCAN_ROUNDS_MAX} rounds"
            ),
        })
    }
}

/// The command name, upper-cased, for the retry policy and error messages.
fn command_name(args: &[&[u8]]) -> Result<String, ClientError> {
    let first = args.first().ok_or(ClientError::EmptyCommand)?;
    Ok(String::from_utf8_lossy(first).to_ascii_uppercase())
}

/// Whether applying the command twice leaves the same state as once.
/// SET with options (NX, XX, GET, EX ...) is not treated as idempotent.
fn is_idempotent(name: &str, arg_count: usize) -> bool {
    READ_ONLY_COMMANDS.contains(&name)
        || (name == "SET" && arg_count == 3)
        || name == "DEL"
        || name == "MSET"
}

/// The `host:port` of `MOVED <slot> <host:port>`.
fn moved_address(message: &str) -> Option<String> {
    let mut words = message.split_whitespace();
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some("MOVED"), Some(_slot), Some(addr), None) => Some(addr.to_string()),
        _ => None,
    }
}

async fn open_readonly(addr: &str) -> Result<Connection, ClientError> {
    let mut connection =
        Connection::connect(addr, Duration::from_millis(NODE_QUERY_TIMEOUT_MS)).await?;
    match connection.request(&[b"READONLY"]).await? {
        Frame::Simple(text) if text == "OK" => Ok(connection),
        Frame::Error(message) => Err(ClientError::Server {
            addr: addr.to_string(),
            message,
        }),
        other => Err(unexpected_reply(addr, "READONLY", &other)),
    }
}

/// A bulk reply as `Some`, a null as `None`; anything else back as `Err`.
fn optional_bulk(reply: Frame) -> Result<Option<Bytes>, Frame> {
    match reply {
        Frame::Bulk(bytes) => Ok(Some(bytes)),
        Frame::Null => Ok(None),
        other => Err(other),
    }
}

fn unexpected_reply(addr: &str, command: &str, reply: &Frame) -> ClientError {
    if let Frame::Error(message) = reply {
        return ClientError::Server {
            addr: addr.to_string(),
            message: message.clone(),
        };
    }
    let mut shown = format!("{reply:?}");
    if shown.len() > 200 {
        let mut cut = 200;
        while !shown.is_char_boundary(cut) {
            cut -= 1;
        }
        shown.truncate(cut);
        shown.push_str("...");
    }
    ClientError::UnexpectedReply {
        addr: addr.to_string(),
        command: command.to_string(),
        reply: shown,
    }
}

/// A scalar reply as text (`None` for aggregates).
fn frame_text(frame: &Frame) -> Option<String> {
    match frame {
        Frame::Simple(text) | Frame::BigNumber(text) => Some(text.clone()),
        Frame::Bulk(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Frame::Verbatim { text, .. } => Some(String::from_utf8_lossy(text).into_owned()),
        Frame::Integer(value) => Some(value.to_string()),
        Frame::Double(value) => Some(value.to_string()),
        Frame::Boolean(value) => Some(u8::from(*value).to_string()),
        Frame::Null => Some(String::new()),
        _ => None,
    }
}

/// A RESP3 map or a RESP2 flat field/value array as a map of text.
fn field_map(
    addr: &str,
    command: &str,
    reply: Frame,
) -> Result<BTreeMap<String, String>, ClientError> {
    let pairs: Vec<(Frame, Frame)> = match reply {
        Frame::Map(pairs) => pairs,
        Frame::Array(items) if items.len().is_multiple_of(2) => {
            let mut items = items.into_iter();
            let mut pairs = Vec::new();
            while let (Some(field), Some(value)) = (items.next(), items.next()) {
                pairs.push((field, value));
            }
            pairs
        }
        other => return Err(unexpected_reply(addr, command, &other)),
    };
    let mut fields = BTreeMap::new();
    for (field, value) in pairs {
        match (frame_text(&field), frame_text(&value)) {
            (Some(field), Some(value)) => fields.insert(field, value),
            _ => {
                return Err(unexpected_reply(
                    addr,
                    command,
                    &Frame::Map(vec![(field, value)]),
                ))
            }
        };
    }
    Ok(fields)
}

fn parse_digest(addr: &str, reply: Frame) -> Result<(String, u64), ClientError> {
    let bad = |reply: &Frame| unexpected_reply(addr, "RAFT.DIGEST", reply);
    if let Frame::Array(items) = &reply {
        if let [digest, applied] = items.as_slice() {
            let digest_text = frame_text(digest).filter(|text| is_hex_digest(text));
            let applied_index = frame_text(applied).and_then(|text| text.parse().ok());
            if let (Some(digest), Some(applied)) = (digest_text, applied_index) {
                return Ok((digest, applied));
            }
        }
    }
    if let Frame::Error(_) = reply {
        return Err(bad(&reply));
    }
    let shown = reply.clone();
    let fields = field_map(addr, "RAFT.DIGEST", reply)?;
    let digest = fields.get("digest").filter(|text| is_hex_digest(text));
    let applied = fields
        .get("applied_index")
        .or_else(|| fields.get("applied"))
        .and_then(|text| text.parse().ok());
    match (digest, applied) {
        (Some(digest), Some(applied)) => Ok((digest.clone(), applied)),
        _ => Err(bad(&shown)),
    }
}

/// 64 lowercase hex digits: a SHA-256 as DESIGN.md shows it.
fn is_hex_digest(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `[cursor, [key, ...]]`.
fn parse_scan(addr: &str, reply: Frame) -> Result<(Bytes, Vec<Bytes>), ClientError> {
    if let Frame::Array(items) = &reply {
        if let [Frame::Bulk(cursor), Frame::Array(keys)] = items.as_slice() {
            let keys: Option<Vec<Bytes>> = keys
                .iter()
                .map(|key| match key {
                    Frame::Bulk(bytes) => Some(bytes.clone()),
                    _ => None,
                })
                .collect();
            if let Some(keys) = keys {
                return Ok((cursor.clone(), keys));
            }
        }
    }
    Err(unexpected_reply(addr, "SCAN", &reply))
}

/// Pairs `keys` with an MGET reply; keys deleted since the SCAN (null) are skipped.
fn collect_values(
    addr: &str,
    keys: Vec<Bytes>,
    values: Frame,
    pairs: &mut BTreeMap<Bytes, Bytes>,
) -> Result<(), ClientError> {
    let items = match values {
        Frame::Array(items) if items.len() == keys.len() => items,
        other => return Err(unexpected_reply(addr, "MGET", &other)),
    };
    for (key, value) in keys.into_iter().zip(items) {
        match value {
            Frame::Bulk(value) => {
                pairs.insert(key, value);
            }
            Frame::Null => {}
            other => return Err(unexpected_reply(addr, "MGET", &other)),
        }
    }
    Ok(())
}

/// RAFT.MEMBERS's reply: one flat field/value array (or RESP3 map) per
/// member. The whole reply comes back when it is not of that shape.
pub fn parse_members(reply: Frame) -> Result<Vec<MemberView>, Frame> {
    let Frame::Array(entries) = &reply else {
        return Err(reply);
    };
    let mut members = Vec::with_capacity(entries.len());
    for entry in entries {
        let pairs: Vec<(&Frame, &Frame)> = match entry {
            Frame::Array(flat) if flat.len() % 2 == 0 => flat
                .chunks_exact(2)
                .map(|pair| (&pair[0], &pair[1]))
                .collect(),
            Frame::Map(pairs) => pairs.iter().map(|(k, v)| (k, v)).collect(),
            _ => return Err(reply),
        };
        let mut member = MemberView::default();
        let mut has_id = false;
        for (name, value) in pairs {
            let text = match value {
                Frame::Bulk(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                Frame::Simple(text) => text.clone(),
                Frame::Integer(n) => n.to_string(),
                Frame::Null => String::new(),
                _ => return Err(reply),
            };
            let Frame::Bulk(name) = name else {
                return Err(reply);
            };
            match name.as_ref() {
                n if n == member_field::ID.as_bytes() => match text.parse() {
                    Ok(id) => {
                        member.id = id;
                        has_id = true;
                    }
                    Err(_) => return Err(reply),
                },
                n if n == member_field::INCARNATION.as_bytes() => member.incarnation = text,
                n if n == member_field::ROLE.as_bytes() => member.role = text,
                n if n == member_field::PEER_ADDR.as_bytes() => member.peer_addr = text,
                n if n == member_field::CLIENT_ADDR.as_bytes() => member.client_addr = text,
                n if n == member_field::MATCH_INDEX.as_bytes() => {
                    member.match_index = text.parse().ok()
                }
                _ => {}
            }
        }
        if !has_id {
            return Err(reply);
        }
        members.push(member);
    }
    Ok(members)
}
