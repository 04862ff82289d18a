//! Client tests against small scripted RESP servers on loopback.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::connection::encode_request;
use super::*;
use crate::resp::{Frame, Limits};

const DEADLINE: Duration = Duration::from_secs(5);

/// A leader's reply to a write whose outcome it cannot know.
const UNCERTAIN_REPLY: &str = "UNCERTAIN outcome unknown: leadership lost";

/// What the fake server does with one request.
#[derive(Clone)]
enum Action {
    Reply(Frame),
    /// Reply, then close the connection (a node that restarted meanwhile).
    ReplyAndClose(Frame),
    /// Close without replying (a node that died after reading the request).
    Close,
    /// Keep the connection open and never reply (a hung node).
    Silent,
    /// Reply after a pause (a slow node).
    Delayed(Duration, Frame),
}

type Script = dyn Fn(&[String], usize) -> Action + Send + Sync;

/// A scripted RESP server: `script(args, request_number)` decides each reply.
struct FakeServer {
    addr: String,
    requests: Arc<Mutex<Vec<Vec<String>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeServer {
    async fn start(
        script: impl Fn(&[String], usize) -> Action + Send + Sync + 'static,
    ) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let counter = Arc::new(AtomicUsize::new(0));
        let recorded = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve(
                    stream,
                    script.clone(),
                    recorded.clone(),
                    counter.clone(),
                ));
            }
        });
        FakeServer {
            addr,
            requests,
            task,
        }
    }

    fn requests(&self) -> Vec<Vec<String>> {
        self.requests.lock().clone()
    }

    fn count(&self, command: &str) -> usize {
        self.requests().iter().filter(|r| r[0] == command).count()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut stream: TcpStream,
    script: Arc<Script>,
    requests: Arc<Mutex<Vec<Vec<String>>>>,
    counter: Arc<AtomicUsize>,
) {
    let limits = Limits::default();
    let mut buffer = BytesMut::new();
    loop {
        let request = match Frame::decode_request(&mut buffer, &limits) {
            Ok(Some(request)) => request,
            Ok(None) => match stream.read_buf(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            },
            Err(error) => panic!("client sent a malformed request: {error}"),
        };
        let Frame::Array(items) = request else {
            panic!("request is not an array")
        };
        let args: Vec<String> = items
            .iter()
            .map(|item| match item {
                Frame::Bulk(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                other => panic!("argument {other:?} is not a bulk string"),
            })
            .collect();
        requests.lock().push(args.clone());
        let number = counter.fetch_add(1, Ordering::SeqCst);
        match script(&args, number) {
            Action::Reply(frame) => {
                if stream.write_all(&frame.to_bytes(false)).await.is_err() {
                    return;
                }
            }
            Action::ReplyAndClose(frame) => {
                let _ = stream.write_all(&frame.to_bytes(false)).await;
                return;
            }
            Action::Close => return,
            Action::Silent => std::future::pending::<()>().await,
            Action::Delayed(pause, frame) => {
                tokio::time::sleep(pause).await;
                if stream.write_all(&frame.to_bytes(false)).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn ok() -> Action {
    Action::Reply(Frame::ok())
}

fn error(message: &str) -> Action {
    Action::Reply(Frame::error(message))
}

/// A script that meets the first `count` requests with `first` and every
/// later one with `then` (a node that fails for a while, then answers).
fn first_then(
    count: usize,
    first: Action,
    then: Action,
) -> impl Fn(&[String], usize) -> Action + Send + Sync + 'static {
    move |_, number| {
        if number < count {
            first.clone()
        } else {
            then.clone()
        }
    }
}

async fn refused_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().to_string() // dropped: nothing listens
}

fn client(addrs: &[&str]) -> ClusterClient {
    ClusterClient::new(addrs.iter().map(|a| a.to_string()).collect(), DEADLINE)
}

// ------------------------------------------------------------ Connection

#[test]
fn requests_encode_as_arrays_of_bulk_strings() {
    let mut encoded = BytesMut::new();
    encode_request(&mut encoded, [&b"SET"[..], b"key", b""].into_iter());
    let expected = Frame::Array(vec![
        Frame::bulk(&b"SET"[..]),
        Frame::bulk(&b"key"[..]),
        Frame::bulk(&b""[..]),
    ]);
    assert_eq!(&encoded[..], &expected.to_bytes(false)[..]);
}

#[tokio::test]
async fn a_connection_sends_requests_and_reads_replies() {
    let server = FakeServer::start(|args, _| match args[0].as_str() {
        "PING" => Action::Reply(Frame::Simple("PONG".into())),
        "ECHO" => Action::Reply(Frame::bulk(args[1].clone())),
        _ => error("ERR unknown command"),
    })
    .await;
    let mut connection = Connection::connect(&server.addr, DEADLINE).await.unwrap();
    assert_eq!(
        connection.request(&[b"PING"]).await.unwrap(),
        Frame::Simple("PONG".into())
    );
    assert_eq!(
        connection.request(&[b"ECHO", b"hi"]).await.unwrap(),
        Frame::bulk(&b"hi"[..])
    );
    assert_eq!(
        connection.request(&[b"NOPE"]).await.unwrap(),
        Frame::error("ERR unknown command"),
        "error replies are values at the connection level"
    );
}

#[tokio::test]
async fn a_pipeline_larger_than_the_socket_buffers_keeps_order() {
    let server = FakeServer::start(|args, _| Action::Reply(Frame::bulk(args[1].clone()))).await;
    let mut connection = Connection::connect(&server.addr, DEADLINE).await.unwrap();
    let value_bytes = 1_000;
    let requests: Vec<Vec<Bytes>> = (0..10_000)
        .map(|i| {
            let value = format!("{i:0>width$}", width = value_bytes);
            vec![Bytes::from_static(b"ECHO"), Bytes::from(value)]
        })
        .collect();
    let replies = connection.pipeline(&requests).await.unwrap();
    assert_eq!(replies.len(), requests.len());
    for (request, reply) in requests.iter().zip(&replies) {
        assert_eq!(reply, &Frame::Bulk(request[1].clone()));
    }
}

#[tokio::test]
async fn connection_errors_name_the_address() {
    let addr = refused_addr().await;
    let error = Connection::connect(&addr, DEADLINE).await.err().unwrap();
    assert!(matches!(error, ClientError::Connect { .. }), "{error:?}");
    assert!(error.to_string().contains(&addr), "{error}");

    let server = FakeServer::start(|_, _| Action::Silent).await;
    let mut connection = Connection::connect(&server.addr, DEADLINE).await.unwrap();
    connection.set_io_timeout(Duration::from_millis(50));
    let error = connection.request(&[b"PING"]).await.unwrap_err();
    assert!(
        matches!(error, ClientError::Timeout { timeout_ms: 50, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains(&server.addr), "{error}");
}

/// Answers `GET key` with `value-key`, after 300 ms for key "slow".
async fn slow_get_server() -> FakeServer {
    FakeServer::start(|args, _| {
        let value = Frame::bulk(format!("value-{}", args[1]));
        if args[1] == "slow" {
            Action::Delayed(Duration::from_millis(300), value)
        } else {
            Action::Reply(value)
        }
    })
    .await
}

#[tokio::test]
async fn a_connection_with_a_cancelled_request_refuses_the_next_one() {
    let server = slow_get_server().await;
    let mut connection = Connection::connect(&server.addr, DEADLINE).await.unwrap();
    let cancelled = tokio::time::timeout(
        Duration::from_millis(20),
        connection.request(&[b"GET", b"slow"]),
    )
    .await;
    assert!(cancelled.is_err(), "the slow reply came early");
    assert!(!connection.is_reusable());
    let error = connection.request(&[b"GET", b"fast"]).await.unwrap_err();
    assert!(
        matches!(error, ClientError::Interrupted { .. }),
        "{error:?}"
    );
}

// --------------------------------------------------------- ClusterClient

#[tokio::test]
async fn a_cancelled_command_never_hands_its_late_reply_to_the_next() {
    let server = slow_get_server().await;
    let mut client = client(&[&server.addr]);
    let cancelled = tokio::time::timeout(Duration::from_millis(20), client.get("slow")).await;
    assert!(cancelled.is_err(), "the slow reply came early");
    let value = client.get("fast").await.unwrap();
    assert_eq!(value, Some(Bytes::from_static(b"value-fast")));
}

/// The first node tried is the leader: no redirect, yet the client knows
/// which node took the write (the dashboard reads that node's status to
/// learn the commit index before it allows a wipe).
#[tokio::test]
async fn a_write_taken_without_a_redirect_names_its_node_as_the_leader() {
    let leader = FakeServer::start(|_, _| ok()).await;
    let mut client = client(&[&leader.addr]);
    assert_eq!(client.leader_hint(), None);
    client.set("k", "v").await.unwrap();
    assert_eq!(client.leader_hint(), Some(leader.addr.as_str()));
}

#[tokio::test]
async fn moved_is_followed_and_the_leader_remembered() {
    let leader = FakeServer::start(|args, _| match args[0].as_str() {
        "SET" => ok(),
        "GET" => Action::Reply(Frame::bulk(&b"v"[..])),
        _ => error("ERR unexpected"),
    })
    .await;
    let moved = format!("MOVED 0 {}", leader.addr);
    let follower = FakeServer::start(move |_, _| error(&moved)).await;
    let mut client = client(&[&follower.addr]);
    client.set("k", "v").await.unwrap();
    assert_eq!(client.leader_hint(), Some(leader.addr.as_str()));
    assert_eq!(
        client.get("k").await.unwrap(),
        Some(Bytes::from_static(b"v"))
    );
    assert_eq!(
        follower.requests().len(),
        1,
        "the second request went straight to the leader"
    );
    assert_eq!(
        leader.requests(),
        vec![vec!["SET", "k", "v"], vec!["GET", "k"]]
    );
}

#[tokio::test]
async fn clusterdown_is_retried_until_a_leader_answers() {
    let server = FakeServer::start(first_then(2, error("CLUSTERDOWN no leader"), ok())).await;
    let mut client = client(&[&server.addr]);
    client.set("k", "v").await.unwrap();
    assert_eq!(server.count("SET"), 3);
}

#[tokio::test]
async fn tryagain_is_retried() {
    let server = FakeServer::start(first_then(
        1,
        error("TRYAGAIN leadership transfer in progress"),
        Action::Reply(Frame::Integer(1)),
    ))
    .await;
    let mut client = client(&[&server.addr]);
    assert_eq!(client.del("k").await.unwrap(), 1);
    assert_eq!(server.count("DEL"), 2);
}

#[tokio::test]
async fn an_unreachable_address_is_skipped() {
    let dead = refused_addr().await;
    let server = FakeServer::start(|_, _| ok()).await;
    let mut client = client(&[&dead, &server.addr]);
    client.set("k", "v").await.unwrap();
    assert_eq!(server.count("SET"), 1);
}

#[tokio::test]
async fn uncertain_incr_is_returned_not_retried() {
    let server = FakeServer::start(|_, _| error(UNCERTAIN_REPLY)).await;
    let mut client = client(&[&server.addr]);
    let error = client.incr("counter").await.unwrap_err();
    assert!(
        matches!(error, ClientError::OutcomeUnknown { .. }),
        "{error:?}"
    );
    assert!(error.is_outcome_unknown());
    assert!(error.to_string().contains("INCR"), "{error}");
    assert_eq!(server.count("INCR"), 1);
}

#[tokio::test]
async fn uncertain_set_is_retried() {
    let server = FakeServer::start(first_then(1, error(UNCERTAIN_REPLY), ok())).await;
    let mut client = client(&[&server.addr]);
    client.set("k", "v").await.unwrap();
    assert_eq!(server.count("SET"), 2);
}

/// A client that must not resend ambiguous writes reports the SET as
/// outcome-unknown after one attempt, on UNCERTAIN and on a lost reply.
#[tokio::test]
async fn without_resending_ambiguous_writes_an_uncertain_set_is_returned() {
    let server = FakeServer::start(first_then(1, error(UNCERTAIN_REPLY), ok())).await;
    let mut strict = client(&[&server.addr]).without_resending_ambiguous_writes();
    let error = strict.set("k", "v").await.unwrap_err();
    assert!(error.is_outcome_unknown(), "{error:?}");
    assert_eq!(server.count("SET"), 1);

    let server = FakeServer::start(first_then(1, Action::Close, ok())).await;
    let mut strict = client(&[&server.addr]).without_resending_ambiguous_writes();
    assert!(strict.set("k", "v").await.unwrap_err().is_outcome_unknown());
    assert_eq!(server.count("SET"), 1);
}

#[tokio::test]
async fn a_connection_lost_after_sending_makes_incr_uncertain_and_set_retry() {
    let server = FakeServer::start(first_then(1, Action::Close, ok())).await;
    let mut client = client(&[&server.addr]);
    let error = client.incr("counter").await.unwrap_err();
    assert!(
        matches!(error, ClientError::OutcomeUnknown { .. }),
        "{error:?}"
    );
    assert_eq!(server.count("INCR"), 1);

    let server = FakeServer::start(first_then(1, Action::Close, ok())).await;
    let mut client = self::client(&[&server.addr]);
    client.set("k", "v").await.unwrap();
    assert_eq!(server.count("SET"), 2);
}

#[tokio::test]
async fn a_hung_node_is_given_up_on_after_the_attempt_timeout() {
    let hung = FakeServer::start(|_, _| Action::Silent).await;
    let good = FakeServer::start(|_, _| Action::Reply(Frame::Null)).await;
    let mut client =
        client(&[&hung.addr, &good.addr]).with_attempt_timeout(Duration::from_millis(100));
    assert_eq!(client.get("k").await.unwrap(), None);
    assert_eq!(hung.count("GET"), 1);
    assert_eq!(good.count("GET"), 1);

    let mut client = self::client(&[&hung.addr]).with_attempt_timeout(Duration::from_millis(100));
    let error = client.incr("counter").await.unwrap_err();
    assert!(error.is_outcome_unknown(), "{error:?}");
}

#[tokio::test]
async fn a_connection_the_server_closed_is_not_reused() {
    // Each connection serves one request and closes, like a node restarting
    // between two requests. The second INCR must go out on a new connection,
    // not be lost on the dead one and reported as uncertain.
    let server =
        FakeServer::start(|_, number| Action::ReplyAndClose(Frame::Integer(number as i64 + 1)))
            .await;
    let mut client = client(&[&server.addr]);
    assert_eq!(client.incr("c").await.unwrap(), 1);
    let probe_deadline = Instant::now() + DEADLINE;
    // Let the server's close reach this side before the next request.
    while !client
        .connection
        .as_ref()
        .is_some_and(|connection| connection.is_closed_by_peer())
    {
        assert!(Instant::now() < probe_deadline, "the close never arrived");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(client.incr("c").await.unwrap(), 2);
}

#[tokio::test]
async fn the_deadline_bounds_the_retries() {
    let server = FakeServer::start(|_, _| error("CLUSTERDOWN no leader")).await;
    let deadline = Duration::from_millis(300);
    let mut client = ClusterClient::new(vec![server.addr.clone()], deadline);
    let started = Instant::now();
    let error = client.set("k", "v").await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(elapsed >= deadline, "gave up early: {elapsed:?}");
    assert!(
        elapsed < deadline + Duration::from_secs(1),
        "gave up late: {elapsed:?}"
    );
    match &error {
        ClientError::DeadlineExceeded {
            attempts,
            maybe_applied,
            ..
        } => {
            assert!(*attempts > 2, "{error}");
            assert!(!maybe_applied);
        }
        other => panic!("expected DeadlineExceeded, got {other:?}"),
    }
    let text = error.to_string();
    assert!(
        text.contains("SET") && text.contains("CLUSTERDOWN"),
        "{text}"
    );
}

#[tokio::test]
async fn other_error_replies_are_returned_at_once() {
    let server =
        FakeServer::start(|_, _| error("ERR value is not an integer or out of range")).await;
    let mut client = client(&[&server.addr]);
    let error = client.incr("k").await.unwrap_err();
    match &error {
        ClientError::Server { addr, message } => {
            assert_eq!(addr, &server.addr);
            assert!(message.starts_with("ERR value"));
        }
        other => panic!("expected Server, got {other:?}"),
    }
    assert_eq!(server.count("INCR"), 1);
}

#[tokio::test]
async fn an_unexpected_reply_type_is_an_error_naming_the_command() {
    let server = FakeServer::start(|_, _| Action::Reply(Frame::Integer(3))).await;
    let mut client = client(&[&server.addr]);
    let error = client.set("k", "v").await.unwrap_err();
    assert!(
        matches!(error, ClientError::UnexpectedReply { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("SET"), "{error}");
}

#[tokio::test]
async fn empty_commands_and_empty_address_lists_are_refused() {
    let mut client = client(&[]);
    assert!(matches!(
        client.command(&[]).await,
        Err(ClientError::EmptyCommand)
    ));
    assert!(matches!(
        client.command(&[b"PING"]).await,
        Err(ClientError::NoAddresses)
    ));
}

// ------------------------------------------------------ one-node queries

#[tokio::test]
async fn status_reads_flat_arrays_and_maps() {
    let flat = FakeServer::start(|_, _| {
        Action::Reply(Frame::Array(vec![
            Frame::bulk(&b"id"[..]),
            Frame::bulk(&b"2"[..]),
            Frame::bulk(&b"role"[..]),
            Frame::bulk(&b"leader"[..]),
        ]))
    })
    .await;
    let status = ClusterClient::status(&flat.addr).await.unwrap();
    assert_eq!(status.get("id").map(String::as_str), Some("2"));
    assert_eq!(status.get("role").map(String::as_str), Some("leader"));
    assert_eq!(flat.requests(), vec![vec!["RAFT.STATUS"]]);

    let map = FakeServer::start(|_, _| {
        Action::Reply(Frame::Map(vec![(
            Frame::Simple("term".into()),
            Frame::Integer(7),
        )]))
    })
    .await;
    let status = ClusterClient::status(&map.addr).await.unwrap();
    assert_eq!(status.get("term").map(String::as_str), Some("7"));

    let odd =
        FakeServer::start(|_, _| Action::Reply(Frame::Array(vec![Frame::bulk(&b"id"[..])]))).await;
    let error = ClusterClient::status(&odd.addr).await.unwrap_err();
    assert!(
        matches!(error, ClientError::UnexpectedReply { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn status_of_a_hung_node_times_out_quickly() {
    let hung = FakeServer::start(|_, _| Action::Silent).await;
    let started = Instant::now();
    let error = ClusterClient::status(&hung.addr).await.unwrap_err();
    assert!(matches!(error, ClientError::Timeout { .. }), "{error:?}");
    assert!(started.elapsed() < Duration::from_millis(STATUS_TIMEOUT_MS * 3));
}

#[tokio::test]
async fn local_get_switches_the_connection_to_readonly_first() {
    let server = FakeServer::start(|args, _| match args[0].as_str() {
        "READONLY" => ok(),
        "GET" => Action::Reply(Frame::bulk(&b"stale"[..])),
        _ => error("ERR unexpected"),
    })
    .await;
    let value = ClusterClient::local_get(&server.addr, "k").await.unwrap();
    assert_eq!(value, Some(Bytes::from_static(b"stale")));
    assert_eq!(server.requests(), vec![vec!["READONLY"], vec!["GET", "k"]]);
}

const DIGEST: &str = "9ee758fbc40fa99db071432ef003a18c7a85d601caf11ff37d96f2a3654bc03f";

#[tokio::test]
async fn digest_reads_a_pair_or_named_fields() {
    let pair = FakeServer::start(|_, _| {
        Action::Reply(Frame::Array(vec![Frame::bulk(DIGEST), Frame::Integer(42)]))
    })
    .await;
    assert_eq!(
        ClusterClient::digest(&pair.addr).await.unwrap(),
        (DIGEST.to_string(), 42)
    );
    let fields = FakeServer::start(|_, _| {
        Action::Reply(Frame::Array(vec![
            Frame::bulk(&b"digest"[..]),
            Frame::bulk(DIGEST),
            Frame::bulk(&b"applied_index"[..]),
            Frame::bulk(&b"9"[..]),
        ]))
    })
    .await;
    assert_eq!(
        ClusterClient::digest(&fields.addr).await.unwrap(),
        (DIGEST.to_string(), 9)
    );
    let wrong = FakeServer::start(|_, _| Action::Reply(Frame::bulk(&b"nope"[..]))).await;
    let error = ClusterClient::digest(&wrong.addr).await.unwrap_err();
    assert!(error.to_string().contains("RAFT.DIGEST"), "{error}");
}

#[tokio::test]
async fn dump_scans_every_page_and_skips_keys_deleted_meanwhile() {
    let server = FakeServer::start(|args, _| {
        let bulk = |text: &str| Frame::bulk(text.to_string());
        match (args[0].as_str(), args.get(1).map(String::as_str)) {
            ("READONLY", _) => ok(),
            ("SCAN", Some("0")) => Action::Reply(Frame::Array(vec![
                bulk("7"),
                Frame::Array(vec![bulk("b"), bulk("a")]),
            ])),
            ("SCAN", Some("7")) => {
                Action::Reply(Frame::Array(vec![bulk("0"), Frame::Array(vec![bulk("c")])]))
            }
            ("MGET", _) => Action::Reply(Frame::Array(
                args[1..]
                    .iter()
                    .map(|key| {
                        if key == "c" {
                            Frame::Null
                        } else {
                            bulk(&format!("v-{key}"))
                        }
                    })
                    .collect(),
            )),
            _ => error("ERR unexpected"),
        }
    })
    .await;
    let pairs = ClusterClient::dump(&server.addr).await.unwrap();
    let expected: Vec<(Bytes, Bytes)> = vec![
        (Bytes::from_static(b"a"), Bytes::from_static(b"v-a")),
        (Bytes::from_static(b"b"), Bytes::from_static(b"v-b")),
    ];
    assert_eq!(pairs, expected);
    let requests = server.requests();
    assert_eq!(requests[0], vec!["READONLY"]);
    assert_eq!(
        requests[1],
        vec!["SCAN", "0", "COUNT", &DUMP_SCAN_COUNT.to_string()]
    );
    assert_eq!(server.count("SCAN"), 2);
    assert_eq!(server.count("MGET"), 2);
}

#[tokio::test]
async fn dump_reports_a_node_that_refuses_readonly() {
    let server = FakeServer::start(|_, _| error("ERR unknown command 'READONLY'")).await;
    let error = ClusterClient::dump(&server.addr).await.unwrap_err();
    assert!(matches!(error, ClientError::Server { .. }), "{error:?}");
}
