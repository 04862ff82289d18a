//! MULTI / EXEC / DISCARD / WATCH against a server backed by the fake node,
//! and the EVAL refusal.

use bytes::Bytes;

use super::fake::TestServer;
use crate::resp::{Frame, Limits};

fn bulk(text: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(text.as_bytes()))
}

fn queued() -> Frame {
    Frame::Simple("QUEUED".into())
}

#[tokio::test]
async fn exec_applies_the_queue_and_replies_per_command() {
    let server = TestServer::start(Limits::default()).await;
    let mut c = server.connect().await;
    c.call(&["SET", "w", "word"]).await;
    assert_eq!(c.call(&["MULTI"]).await, Frame::ok());
    assert_eq!(c.call(&["SET", "a", "1"]).await, queued());
    assert_eq!(c.call(&["INCR", "a"]).await, queued());
    assert_eq!(c.call(&["INCR", "w"]).await, queued());
    assert_eq!(c.call(&["GET", "a"]).await, queued());
    assert_eq!(
        c.call(&["MULTI"]).await,
        Frame::error("ERR MULTI calls can not be nested")
    );
    let applied_before = server
        .node
        .applied_index
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        c.call(&["EXEC"]).await,
        Frame::Array(vec![
            Frame::ok(),
            Frame::Integer(2),
            Frame::error("ERR value is not an integer or out of range"),
            bulk("2"),
        ])
    );
    assert_eq!(
        server
            .node
            .applied_index
            .load(std::sync::atomic::Ordering::SeqCst),
        applied_before + 1,
        "one replicated entry for the whole transaction"
    );
    assert_eq!(
        c.call(&["EXEC"]).await,
        Frame::error("ERR EXEC without MULTI")
    );
    assert_eq!(
        c.call(&["DISCARD"]).await,
        Frame::error("ERR DISCARD without MULTI")
    );
    assert_eq!(c.call(&["MULTI"]).await, Frame::ok());
    assert_eq!(c.call(&["EXEC"]).await, Frame::Array(vec![]));
    server.stop().await;
}

#[tokio::test]
async fn queue_time_errors_abort_and_apply_nothing() {
    let server = TestServer::start(Limits::default()).await;
    let mut c = server.connect().await;
    assert_eq!(c.call(&["MULTI"]).await, Frame::ok());
    assert_eq!(c.call(&["SET", "a", "1"]).await, queued());
    assert_eq!(
        c.call(&["INCRBY", "a"]).await,
        Frame::error("ERR wrong number of arguments for 'incrby' command")
    );
    assert_eq!(c.call(&["SET", "b", "1"]).await, queued());
    assert_eq!(
        c.call(&["EXEC"]).await,
        Frame::error("EXECABORT Transaction discarded because of previous errors.")
    );
    assert_eq!(c.call(&["EXISTS", "a", "b"]).await, Frame::Integer(0));
    assert_eq!(c.call(&["MULTI"]).await, Frame::ok());
    assert_eq!(
        c.call(&["PING"]).await,
        Frame::error("ERR only commands that read or write keys can be queued in MULTI")
    );
    assert!(matches!(c.call(&["EXEC"]).await, Frame::Error(e) if e.starts_with("EXECABORT")));
    assert_eq!(c.call(&["MULTI"]).await, Frame::ok());
    assert_eq!(c.call(&["SET", "a", "1"]).await, queued());
    assert_eq!(c.call(&["DISCARD"]).await, Frame::ok());
    assert_eq!(c.call(&["EXISTS", "a"]).await, Frame::Integer(0));
    server.stop().await;
}

#[tokio::test]
async fn watch_aborts_exec_when_a_watched_key_changed() {
    let server = TestServer::start(Limits::default()).await;
    let mut c = server.connect().await;
    let mut other = server.connect().await;
    c.call(&["SET", "balance", "10"]).await;
    assert_eq!(c.call(&["WATCH", "balance", "absent"]).await, Frame::ok());
    other.call(&["SET", "balance", "20"]).await;
    assert_eq!(c.call(&["MULTI"]).await, Frame::ok());
    assert_eq!(
        c.call(&["WATCH", "x"]).await,
        Frame::error("ERR WATCH inside MULTI is not allowed")
    );
    assert_eq!(c.call(&["SET", "balance", "0"]).await, queued());
    assert_eq!(c.call(&["EXEC"]).await, Frame::Null);
    assert_eq!(c.call(&["GET", "balance"]).await, bulk("20"));
    // EXEC forgot the watches: the next transaction runs.
    assert_eq!(c.call(&["MULTI"]).await, Frame::ok());
    assert_eq!(c.call(&["SET", "balance", "0"]).await, queued());
    assert_eq!(c.call(&["EXEC"]).await, Frame::Array(vec![Frame::ok()]));
    // A watched key that was absent and is created aborts too.
    assert_eq!(c.call(&["WATCH", "fresh"]).await, Frame::ok());
    other.call(&["SET", "fresh", "1"]).await;
    assert_eq!(c.call(&["MULTI"]).await, Frame::ok());
    assert_eq!(c.call(&["GET", "fresh"]).await, queued());
    assert_eq!(c.call(&["EXEC"]).await, Frame::Null);
    // UNWATCH: the change no longer matters.
    assert_eq!(c.call(&["WATCH", "balance"]).await, Frame::ok());
    other.call(&["SET", "balance", "5"]).await;
    assert_eq!(c.call(&["UNWATCH"]).await, Frame::ok());
    assert_eq!(c.call(&["MULTI"]).await, Frame::ok());
    assert_eq!(c.call(&["INCR", "balance"]).await, queued());
    assert_eq!(
        c.call(&["EXEC"]).await,
        Frame::Array(vec![Frame::Integer(6)])
    );
    server.stop().await;
}

#[tokio::test]
async fn scripts_are_refused_naming_the_alternative() {
    let server = TestServer::start(Limits::default()).await;
    let mut c = server.connect().await;
    for name in ["EVAL", "EVALSHA"] {
        let Frame::Error(message) = c.call(&[name, "return 1", "0"]).await else {
            panic!("{name} must be refused")
        };
        assert!(message.contains(name), "{message}");
        assert!(
            message.contains("MULTI/EXEC") && message.contains("WATCH"),
            "{message}"
        );
    }
    server.stop().await;
}
