//! The raftkv backend of the load generator: one TCP connection per client
//! to the leader (found through RAFT.STATUS, then followed through
//! `-MOVED`), speaking pipelined RESP2: requests are written as soon as they
//! are queued and replies read as they come, in one task, so a deep window
//! never deadlocks against a server that waits for its replies to drain.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use raftkv_node::resp::{Frame, Limits};

use super::load::{ErrorKind, Op, OpFailure, OpKind, Session, Target, Workload};
use crate::status::{NodeStatus, StatusFetcher};

/// Bytes reserved in the read buffer before each socket read.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Longest a leader lookup waits for one node's RAFT.STATUS.
const LEADER_LOOKUP_TIMEOUT_MS_MAX: u64 = 1_000;
/// Reply text shown in an "unexpected reply" error, at most.
const REPLY_SHOWN_CHARS_MAX: usize = 120;

/// A raftkv cluster reached through its nodes' client addresses.
#[derive(Clone, Debug)]
pub(crate) struct RaftkvTarget {
    addrs: Vec<String>,
    io_timeout: Duration,
}

impl RaftkvTarget {
    pub(crate) fn new(addrs: Vec<String>, io_timeout: Duration) -> RaftkvTarget {
        RaftkvTarget { addrs, io_timeout }
    }
}

impl Target for RaftkvTarget {
    type Session = RespSession;

    async fn connect(&self, hint: Option<String>) -> Result<RespSession, OpFailure> {
        let addr = match hint {
            Some(addr) => addr,
            None => find_leader(&self.addrs, self.io_timeout).await?,
        };
        RespSession::open(addr, self.io_timeout).await
    }
}

/// The leader's client address: a node that says it leads, else the
/// address a follower names as its leader's.
pub(crate) async fn find_leader(addrs: &[String], timeout: Duration) -> Result<String, OpFailure> {
    let timeout = timeout.min(Duration::from_millis(LEADER_LOOKUP_TIMEOUT_MS_MAX));
    let statuses = futures::future::join_all(addrs.iter().map(|addr| async move {
        let mut fetcher = StatusFetcher::new(addr.clone());
        (addr, fetcher.fetch(timeout).await)
    }))
    .await;
    if let Some((addr, _)) = statuses
        .iter()
        .find(|(_, status)| status.as_ref().is_ok_and(NodeStatus::is_leader))
    {
        return Ok((*addr).clone());
    }
    let named = statuses.iter().find_map(|(_, status)| match status {
        Ok(status) if status.leader_id != 0 && !status.leader_client_addr.is_empty() => {
            Some(status.leader_client_addr.clone())
        }
        _ => None,
    });
    if let Some(addr) = named {
        return Ok(addr);
    }
    let errors: Vec<String> = statuses
        .iter()
        .filter_map(|(addr, status)| status.as_ref().err().map(|e| format!("{addr}: {e}")))
        .collect();
    if errors.len() == statuses.len() {
        Err(OpFailure::new(
            ErrorKind::ConnectFailed,
            format!("no node answered RAFT.STATUS ({})", errors.join("; ")),
        ))
    } else {
        Err(OpFailure::new(
            ErrorKind::NoLeader,
            "no node knows a leader (an election is under way?)".into(),
        ))
    }
}

/// One pipelined RESP2 connection.
pub(crate) struct RespSession {
    addr: String,
    stream: TcpStream,
    read_buffer: BytesMut,
    /// Encoded requests not yet written to the socket.
    write_buffer: BytesMut,
    limits: Limits,
    /// Longest wait for any progress (bytes written or read) on the socket.
    io_timeout: Duration,
}

impl RespSession {
    async fn open(addr: String, io_timeout: Duration) -> Result<RespSession, OpFailure> {
        let stream = match tokio::time::timeout(io_timeout, TcpStream::connect(&addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                return Err(OpFailure::new(
                    ErrorKind::ConnectFailed,
                    format!("cannot connect to {addr}: {error}"),
                ))
            }
            Err(_) => {
                return Err(OpFailure::new(
                    ErrorKind::ConnectFailed,
                    format!(
                        "cannot connect to {addr}: no answer within {} ms",
                        io_timeout.as_millis()
                    ),
                ))
            }
        };
        stream.set_nodelay(true).map_err(|error| {
            OpFailure::new(
                ErrorKind::ConnectFailed,
                format!("{addr}: cannot set TCP_NODELAY: {error}"),
            )
        })?;
        Ok(RespSession {
            addr,
            stream,
            read_buffer: BytesMut::with_capacity(READ_CHUNK_BYTES),
            write_buffer: BytesMut::with_capacity(READ_CHUNK_BYTES),
            limits: Limits::default(),
            io_timeout,
        })
    }

    /// Writes queued bytes or reads reply bytes, whichever the socket allows first.
    async fn exchange(&mut self) -> Result<(), OpFailure> {
        enum Progress {
            Wrote(std::io::Result<usize>),
            Read(std::io::Result<usize>),
        }
        let RespSession {
            addr,
            stream,
            read_buffer,
            write_buffer,
            ..
        } = self;
        read_buffer.reserve(READ_CHUNK_BYTES);
        let (mut reader, mut writer) = stream.split();
        let progress = tokio::select! {
            biased;
            written = writer.write(write_buffer), if !write_buffer.is_empty() => Progress::Wrote(written),
            read = reader.read_buf(read_buffer) => Progress::Read(read),
        };
        let lost =
            |what: String| OpFailure::broken(ErrorKind::ConnectionLost, format!("{addr}: {what}"));
        match progress {
            Progress::Wrote(Ok(0)) | Progress::Read(Ok(0)) => Err(lost("connection closed".into())),
            Progress::Wrote(Ok(written)) => {
                write_buffer.advance(written);
                Ok(())
            }
            Progress::Read(Ok(_)) => Ok(()),
            Progress::Wrote(Err(error)) | Progress::Read(Err(error)) => {
                Err(lost(error.to_string()))
            }
        }
    }
}

impl Session for RespSession {
    fn addr(&self) -> &str {
        &self.addr
    }

    fn submit(&mut self, op: &Op, workload: &Workload) {
        match op.kind {
            OpKind::Write => {
                encode_request(&mut self.write_buffer, &[b"SET", &op.key, workload.value()])
            }
            OpKind::Read => encode_request(&mut self.write_buffer, &[b"GET", &op.key]),
        }
    }

    async fn next_outcome(&mut self, kind: OpKind) -> Result<(), OpFailure> {
        loop {
            match Frame::decode(&mut self.read_buffer, &self.limits) {
                Ok(Some(frame)) => return judge_reply(&self.addr, kind, frame),
                Ok(None) => {}
                Err(error) => {
                    return Err(OpFailure::broken(
                        ErrorKind::Protocol,
                        format!("{}: malformed reply: {error}", self.addr),
                    ))
                }
            }
            let io_timeout = self.io_timeout;
            match tokio::time::timeout(io_timeout, self.exchange()).await {
                Ok(result) => result?,
                Err(_) => {
                    return Err(OpFailure::broken(
                        ErrorKind::Timeout,
                        format!(
                            "{}: no reply within {} ms",
                            self.addr,
                            io_timeout.as_millis()
                        ),
                    ))
                }
            }
        }
    }
}

/// Encodes one request into `buffer` (the client's encoder, so the bench
/// sends exactly what every raftkv client sends).
pub(crate) fn encode_request(buffer: &mut BytesMut, args: &[&[u8]]) {
    raftkv_node::client::encode_request(buffer, args.iter().copied());
}

/// `+OK` for a SET, a bulk or null for a GET; error replies by their code.
pub(crate) fn judge_reply(addr: &str, kind: OpKind, frame: Frame) -> Result<(), OpFailure> {
    match (kind, frame) {
        (OpKind::Write, Frame::Simple(text)) if text == "OK" => Ok(()),
        (OpKind::Read, Frame::Bulk(_) | Frame::Null) => Ok(()),
        (_, Frame::Error(message)) => Err(error_reply(addr, message)),
        (kind, other) => {
            let mut shown = format!("{other:?}");
            if let Some((cut, _)) = shown.char_indices().nth(REPLY_SHOWN_CHARS_MAX) {
                shown.truncate(cut);
                shown.push_str("...");
            }
            let command = if kind == OpKind::Write { "SET" } else { "GET" };
            Err(OpFailure::new(
                ErrorKind::UnexpectedReply,
                format!("{addr} answered {command} with {shown}"),
            ))
        }
    }
}

fn error_reply(addr: &str, message: String) -> OpFailure {
    let mut words = message.split_whitespace();
    let code = words.next().unwrap_or("").to_ascii_uppercase();
    let detail = format!("{addr} replied -{message}");
    match code.as_str() {
        "MOVED" => {
            let redirect = match (words.next(), words.next()) {
                (Some(_slot), Some(leader)) => Some(leader.to_string()),
                _ => None,
            };
            OpFailure {
                redirect,
                ..OpFailure::new(ErrorKind::Moved, detail)
            }
        }
        "CLUSTERDOWN" => OpFailure::new(ErrorKind::ClusterDown, detail),
        "TRYAGAIN" => OpFailure::new(ErrorKind::TryAgain, detail),
        "UNCERTAIN" => OpFailure::new(ErrorKind::Uncertain, detail),
        _ => OpFailure::new(ErrorKind::ServerError(code), detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    #[test]
    fn requests_are_encoded_as_arrays_of_bulk_strings() {
        let mut buffer = BytesMut::new();
        encode_request(&mut buffer, &[b"SET", b"bench:0000000001", b"abc"]);
        assert_eq!(
            &buffer[..],
            b"*3\r\n$3\r\nSET\r\n$16\r\nbench:0000000001\r\n$3\r\nabc\r\n"
        );
    }

    #[test]
    fn replies_are_judged_by_command_and_error_code() {
        assert!(judge_reply("n1", OpKind::Write, Frame::ok()).is_ok());
        assert!(judge_reply("n1", OpKind::Read, Frame::Null).is_ok());
        assert!(judge_reply("n1", OpKind::Read, Frame::bulk("v")).is_ok());
        let moved =
            judge_reply("n1", OpKind::Write, Frame::error("MOVED 0 127.0.0.1:7002")).unwrap_err();
        assert_eq!(moved.kind, ErrorKind::Moved);
        assert_eq!(moved.redirect.as_deref(), Some("127.0.0.1:7002"));
        assert!(!moved.session_broken);
        let down =
            judge_reply("n1", OpKind::Read, Frame::error("CLUSTERDOWN no leader")).unwrap_err();
        assert_eq!(down.kind, ErrorKind::ClusterDown);
        let unknown =
            judge_reply("n1", OpKind::Write, Frame::error("UNCERTAIN leader lost")).unwrap_err();
        assert_eq!(unknown.kind, ErrorKind::Uncertain);
        let other = judge_reply("n1", OpKind::Write, Frame::error("ERR wrong")).unwrap_err();
        assert_eq!(other.kind, ErrorKind::ServerError("ERR".into()));
        assert_eq!(other.kind.name(), "error_err");
        let wrong = judge_reply("n1", OpKind::Write, Frame::Integer(1)).unwrap_err();
        assert_eq!(wrong.kind, ErrorKind::UnexpectedReply);
        assert!(wrong.detail.contains("SET"), "{}", wrong.detail);
    }

    /// A fake server that answers each request only after reading `batch`
    /// of them, in one write: the session must keep its window in flight.
    async fn batching_server(batch: usize, close_after: usize) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buffer = BytesMut::new();
            let mut answered = 0;
            let limits = Limits::default();
            loop {
                let mut requests = Vec::new();
                while requests.len() < batch {
                    match Frame::decode_request(&mut buffer, &limits).unwrap() {
                        Some(frame) => requests.push(frame),
                        None => {
                            if socket.read_buf(&mut buffer).await.unwrap() == 0 {
                                return;
                            }
                        }
                    }
                }
                let mut replies = BytesMut::new();
                for request in requests {
                    let Frame::Array(args) = request else {
                        panic!("not an array")
                    };
                    let reply = match &args[0] {
                        Frame::Bulk(name) if &name[..] == b"SET" => Frame::ok(),
                        _ => Frame::bulk("value"),
                    };
                    reply.write_to(&mut replies, false);
                    answered += 1;
                }
                socket.write_all(&replies).await.unwrap();
                if answered >= close_after {
                    return; // Drops the socket: the client sees the connection close.
                }
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_window_of_requests_is_answered_in_order_then_a_close_breaks_the_session() {
        let addr = batching_server(4, 8).await;
        let workload = Workload::new(10, 0.5, 8, 3);
        let mut session = RespSession::open(addr, Duration::from_secs(5))
            .await
            .unwrap();
        let mut chooser = workload.chooser(0);
        for _ in 0..2 {
            let ops: Vec<Op> = (0..4).map(|_| chooser.next_op()).collect();
            for op in &ops {
                session.submit(op, &workload);
            }
            for op in &ops {
                session.next_outcome(op.kind).await.unwrap();
            }
        }
        let op = chooser.next_op();
        session.submit(&op, &workload);
        let failure = session.next_outcome(op.kind).await.unwrap_err();
        assert_eq!(failure.kind, ErrorKind::ConnectionLost);
        assert!(failure.session_broken);
    }

    #[tokio::test]
    async fn a_silent_server_is_a_timeout_and_a_dead_port_a_connect_failure() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let mut session = RespSession::open(addr, Duration::from_millis(100))
            .await
            .unwrap();
        let workload = Workload::new(10, 0.0, 1, 3);
        let op = workload.chooser(0).next_op();
        session.submit(&op, &workload);
        let failure = session.next_outcome(op.kind).await.unwrap_err();
        assert_eq!(failure.kind, ErrorKind::Timeout);
        drop(listener);

        let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let free_addr = free.local_addr().unwrap().to_string();
        drop(free);
        let target = RaftkvTarget::new(vec![free_addr.clone()], Duration::from_millis(200));
        let failure = target.connect(None).await.err().unwrap();
        assert_eq!(failure.kind, ErrorKind::ConnectFailed);
        assert!(failure.detail.contains(&free_addr), "{}", failure.detail);
    }
}
