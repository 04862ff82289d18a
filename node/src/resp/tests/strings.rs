//! The string and key commands against a server backed by the fake node
//! (a real state machine): Redis's replies and error texts.

use bytes::Bytes;

use super::fake::TestServer;
use crate::resp::{Frame, Limits};

fn bulk(text: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(text.as_bytes()))
}

fn err(text: &str) -> Frame {
    Frame::error(text)
}

const NOT_AN_INTEGER: &str = "ERR value is not an integer or out of range";

#[tokio::test]
async fn counters_follow_redis() {
    let server = TestServer::start(Limits::default()).await;
    let mut c = server.connect().await;
    assert_eq!(c.call(&["INCR", "n"]).await, Frame::Integer(1));
    assert_eq!(c.call(&["INCRBY", "n", "41"]).await, Frame::Integer(42));
    assert_eq!(c.call(&["DECR", "n"]).await, Frame::Integer(41));
    assert_eq!(c.call(&["DECRBY", "n", "-9"]).await, Frame::Integer(50));
    assert_eq!(c.call(&["INCRBY", "n", "x"]).await, err(NOT_AN_INTEGER));
    assert_eq!(c.call(&["INCRBY", "n", "+1"]).await, err(NOT_AN_INTEGER));
    assert_eq!(
        c.call(&["DECRBY", "n", "-9223372036854775808"]).await,
        err("ERR decrement would overflow")
    );
    c.call(&["SET", "big", "9223372036854775807"]).await;
    assert_eq!(
        c.call(&["INCR", "big"]).await,
        err("ERR increment or decrement would overflow")
    );
    for value in ["abc", " 1", "01", "+1", "1.5", ""] {
        c.call(&["SET", "w", value]).await;
        assert_eq!(
            c.call(&["INCR", "w"]).await,
            err(NOT_AN_INTEGER),
            "{value:?}"
        );
    }
    assert_eq!(c.call(&["INCRBYFLOAT", "f", "10.5"]).await, bulk("10.5"));
    assert_eq!(c.call(&["INCRBYFLOAT", "f", "0.1"]).await, bulk("10.6"));
    assert_eq!(c.call(&["INCRBYFLOAT", "f", "-5.6"]).await, bulk("5"));
    assert_eq!(c.call(&["INCRBYFLOAT", "f", "5.0e3"]).await, bulk("5005"));
    assert_eq!(
        c.call(&["INCRBYFLOAT", "f", "abc"]).await,
        err("ERR value is not a valid float")
    );
    assert_eq!(
        c.call(&["INCRBYFLOAT", "f", "inf"]).await,
        err("ERR increment would produce NaN or Infinity")
    );
    c.call(&["SET", "w", "abc"]).await;
    assert_eq!(
        c.call(&["INCRBYFLOAT", "w", "1"]).await,
        err("ERR value is not a valid float")
    );
    assert_eq!(c.call(&["GET", "f"]).await, bulk("5005"));
    server.stop().await;
}

#[tokio::test]
async fn string_edits_follow_redis() {
    let server = TestServer::start(Limits::default()).await;
    let mut c = server.connect().await;
    assert_eq!(c.call(&["APPEND", "s", "Hello"]).await, Frame::Integer(5));
    assert_eq!(c.call(&["APPEND", "s", " World"]).await, Frame::Integer(11));
    assert_eq!(c.call(&["STRLEN", "s"]).await, Frame::Integer(11));
    assert_eq!(c.call(&["STRLEN", "none"]).await, Frame::Integer(0));
    assert_eq!(c.call(&["GETRANGE", "s", "0", "4"]).await, bulk("Hello"));
    assert_eq!(c.call(&["GETRANGE", "s", "-5", "-1"]).await, bulk("World"));
    assert_eq!(c.call(&["GETRANGE", "s", "5", "1"]).await, bulk(""));
    assert_eq!(c.call(&["GETRANGE", "none", "0", "-1"]).await, bulk(""));
    assert_eq!(
        c.call(&["GETRANGE", "s", "a", "1"]).await,
        err(NOT_AN_INTEGER)
    );
    assert_eq!(
        c.call(&["SETRANGE", "s", "6", "Redis"]).await,
        Frame::Integer(11)
    );
    assert_eq!(c.call(&["GET", "s"]).await, bulk("Hello Redis"));
    assert_eq!(
        c.call(&["SETRANGE", "p", "3", "x"]).await,
        Frame::Integer(4)
    );
    assert_eq!(
        c.call(&["GET", "p"]).await,
        Frame::Bulk(Bytes::from_static(b"\0\0\0x"))
    );
    assert_eq!(c.call(&["SETRANGE", "q", "5", ""]).await, Frame::Integer(0));
    assert_eq!(c.call(&["EXISTS", "q"]).await, Frame::Integer(0));
    assert_eq!(
        c.call(&["SETRANGE", "s", "-1", "x"]).await,
        err("ERR offset is out of range")
    );
    assert_eq!(
        c.call(&["SETRANGE", "s", "536870912", "x"]).await,
        err("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
    );
    server.stop().await;
}

#[tokio::test]
async fn conditional_sets_and_get_variants() {
    let server = TestServer::start(Limits::default()).await;
    let mut c = server.connect().await;
    assert_eq!(c.call(&["SET", "k", "1", "XX"]).await, Frame::Null);
    assert_eq!(c.call(&["SET", "k", "1", "NX"]).await, Frame::ok());
    assert_eq!(c.call(&["SET", "k", "2", "NX"]).await, Frame::Null);
    assert_eq!(c.call(&["SET", "k", "3", "XX", "GET"]).await, bulk("1"));
    assert_eq!(c.call(&["SET", "k", "4", "NX", "GET"]).await, bulk("3"));
    assert_eq!(c.call(&["SET", "new", "v", "GET"]).await, Frame::Null);
    assert_eq!(c.call(&["GETSET", "k", "5"]).await, bulk("3"));
    assert_eq!(c.call(&["GETSET", "nope", "5"]).await, Frame::Null);
    assert_eq!(c.call(&["GETDEL", "k"]).await, bulk("5"));
    assert_eq!(c.call(&["GETDEL", "k"]).await, Frame::Null);
    assert_eq!(c.call(&["SETNX", "k", "a"]).await, Frame::Integer(1));
    assert_eq!(c.call(&["SETNX", "k", "b"]).await, Frame::Integer(0));
    assert_eq!(c.call(&["GET", "k"]).await, bulk("a"));
    assert_eq!(
        c.call(&["MSETNX", "x", "1", "k", "2"]).await,
        Frame::Integer(0)
    );
    assert_eq!(c.call(&["EXISTS", "x"]).await, Frame::Integer(0));
    assert_eq!(
        c.call(&["MSETNX", "x", "1", "y", "2"]).await,
        Frame::Integer(1)
    );
    assert_eq!(
        c.call(&["MSETNX", "x", "1", "y"]).await,
        err("ERR wrong number of arguments for 'msetnx' command")
    );
    server.stop().await;
}

#[tokio::test]
async fn key_commands_follow_redis() {
    let server = TestServer::start(Limits::default()).await;
    let mut c = server.connect().await;
    c.call(&["MSET", "a", "1", "b", "2"]).await;
    assert_eq!(c.call(&["TYPE", "a"]).await, Frame::Simple("string".into()));
    assert_eq!(c.call(&["TYPE", "zz"]).await, Frame::Simple("none".into()));
    assert_eq!(
        c.call(&["TOUCH", "a", "b", "zz", "a"]).await,
        Frame::Integer(3)
    );
    assert_eq!(c.call(&["RENAME", "a", "c"]).await, Frame::ok());
    assert_eq!(c.call(&["GET", "c"]).await, bulk("1"));
    assert_eq!(c.call(&["RENAME", "a", "d"]).await, err("ERR no such key"));
    assert_eq!(c.call(&["RENAME", "c", "c"]).await, Frame::ok());
    assert_eq!(c.call(&["RENAMENX", "c", "b"]).await, Frame::Integer(0));
    assert_eq!(c.call(&["RENAMENX", "c", "e"]).await, Frame::Integer(1));
    assert_eq!(
        c.call(&["RENAMENX", "zz", "e"]).await,
        err("ERR no such key")
    );
    let Frame::Bulk(key) = c.call(&["RANDOMKEY"]).await else {
        panic!("RANDOMKEY returns a key")
    };
    assert!(key == "b" || key == "e", "{key:?}");
    assert_eq!(c.call(&["UNLINK", "b", "zz"]).await, Frame::Integer(1));
    assert_eq!(c.call(&["FLUSHDB"]).await, Frame::ok());
    assert_eq!(c.call(&["DBSIZE"]).await, Frame::Integer(0));
    assert_eq!(c.call(&["RANDOMKEY"]).await, Frame::Null);
    c.call(&["SET", "a", "1"]).await;
    assert_eq!(c.call(&["FLUSHALL", "ASYNC"]).await, Frame::ok());
    assert_eq!(c.call(&["DBSIZE"]).await, Frame::Integer(0));
    assert_eq!(
        c.call(&["FLUSHALL", "LATER"]).await,
        err("ERR syntax error")
    );
    server.stop().await;
}

#[tokio::test]
async fn server_commands_tools_probe() {
    let server = TestServer::start(Limits::default()).await;
    let mut c = server.connect().await;
    assert_eq!(c.call(&["SELECT", "0"]).await, Frame::ok());
    assert_eq!(
        c.call(&["SELECT", "1"]).await,
        err("ERR DB index is out of range (raftkv has one database, 0)")
    );
    assert_eq!(c.call(&["SELECT", "x"]).await, err(NOT_AN_INTEGER));
    let Frame::Array(time) = c.call(&["TIME"]).await else {
        panic!("TIME is an array")
    };
    assert_eq!(time.len(), 2);
    assert_eq!(
        c.call(&["CONFIG", "GET", "save"]).await,
        Frame::Array(vec![bulk("save"), bulk("")])
    );
    assert_eq!(
        c.call(&["CONFIG", "GET", "appendonly", "databases"]).await,
        Frame::Array(vec![
            bulk("appendonly"),
            bulk("yes"),
            bulk("databases"),
            bulk("1")
        ])
    );
    assert_eq!(
        c.call(&["CONFIG", "GET", "nothing*"]).await,
        Frame::Array(vec![])
    );
    assert_eq!(
        c.call(&["CONFIG", "SET", "save", ""]).await,
        err("ERR CONFIG SET is not supported: raftkv's settings are flags of `raftkv node`")
    );
    c.call(&["SET", "a", "1"]).await;
    // The fake leader's commit index is its write count (1), and its two
    // peers' match indexes (7 and 9) reach it.
    assert_eq!(c.call(&["WAIT", "2", "100"]).await, Frame::Integer(2));
    assert_eq!(
        c.call(&["WAIT", "1", "-1"]).await,
        err("ERR timeout is negative")
    );
    server.stop().await;
}
