//! Expiry commands against a server backed by the fake node (a real state
//! machine; writes are stamped with this machine's clock as a leader's).

use super::fake::TestServer;
use crate::resp::{Frame, Limits};

#[tokio::test]
async fn ttls_are_set_read_and_removed_as_in_redis() {
    let server = TestServer::start(Limits::default()).await;
    let mut c = server.connect().await;
    assert_eq!(c.call(&["SET", "k", "v", "EX", "100"]).await, Frame::ok());
    assert_eq!(c.call(&["TTL", "k"]).await, Frame::Integer(100));
    let Frame::Integer(pttl) = c.call(&["PTTL", "k"]).await else {
        panic!("PTTL is an integer")
    };
    assert!((99_000..=100_000).contains(&pttl), "{pttl}");
    assert_eq!(c.call(&["TTL", "missing"]).await, Frame::Integer(-2));
    c.call(&["SET", "plain", "v"]).await;
    assert_eq!(c.call(&["TTL", "plain"]).await, Frame::Integer(-1));
    assert_eq!(c.call(&["EXPIRETIME", "plain"]).await, Frame::Integer(-1));
    // XX sets only over an expiry, NX only where there is none, GT only a
    // longer one, LT only a shorter one; each case meets the expiry the case
    // before it left.
    for (seconds, condition, applied) in [
        ("50", "XX", 0),
        ("50", "NX", 1),
        ("10", "GT", 0),
        ("10", "LT", 1),
    ] {
        assert_eq!(
            c.call(&["EXPIRE", "plain", seconds, condition]).await,
            Frame::Integer(applied),
            "EXPIRE plain {seconds} {condition}"
        );
    }
    assert_eq!(c.call(&["TTL", "plain"]).await, Frame::Integer(10));
    assert_eq!(c.call(&["PERSIST", "plain"]).await, Frame::Integer(1));
    assert_eq!(c.call(&["PERSIST", "plain"]).await, Frame::Integer(0));
    assert_eq!(
        c.call(&["EXPIRE", "missing", "10"]).await,
        Frame::Integer(0)
    );
    assert_eq!(
        c.call(&["PEXPIREAT", "plain", "4102444800000"]).await,
        Frame::Integer(1)
    );
    assert_eq!(
        c.call(&["PEXPIRETIME", "plain"]).await,
        Frame::Integer(4_102_444_800_000)
    );
    assert_eq!(
        c.call(&["EXPIRETIME", "plain"]).await,
        Frame::Integer(4_102_444_800)
    );
    // SET clears the expiry, KEEPTTL keeps it, APPEND keeps it.
    assert_eq!(c.call(&["SET", "plain", "w", "KEEPTTL"]).await, Frame::ok());
    assert_eq!(c.call(&["APPEND", "plain", "x"]).await, Frame::Integer(2));
    assert_eq!(
        c.call(&["PEXPIRETIME", "plain"]).await,
        Frame::Integer(4_102_444_800_000)
    );
    assert_eq!(c.call(&["SET", "plain", "w"]).await, Frame::ok());
    assert_eq!(c.call(&["TTL", "plain"]).await, Frame::Integer(-1));
    // A time already past removes the key at once.
    assert_eq!(c.call(&["EXPIRE", "plain", "-1"]).await, Frame::Integer(1));
    assert_eq!(c.call(&["EXISTS", "plain"]).await, Frame::Integer(0));
    assert_eq!(c.call(&["SETEX", "s", "100", "v"]).await, Frame::ok());
    assert_eq!(c.call(&["TTL", "s"]).await, Frame::Integer(100));
    assert_eq!(c.call(&["PSETEX", "p", "100000", "v"]).await, Frame::ok());
    assert_eq!(c.call(&["TTL", "p"]).await, Frame::Integer(100));
    assert_eq!(c.call(&["GETEX", "p", "PERSIST"]).await, Frame::bulk("v"));
    assert_eq!(c.call(&["TTL", "p"]).await, Frame::Integer(-1));
    assert_eq!(c.call(&["GETEX", "p", "EX", "7"]).await, Frame::bulk("v"));
    assert_eq!(c.call(&["TTL", "p"]).await, Frame::Integer(7));
    assert_eq!(c.call(&["GETEX", "missing"]).await, Frame::Null);
    server.stop().await;
}

#[tokio::test]
async fn an_expired_key_reads_as_missing_before_any_write_removes_it() {
    let server = TestServer::start(Limits::default()).await;
    let mut c = server.connect().await;
    assert_eq!(c.call(&["SET", "k", "v", "PX", "30"]).await, Frame::ok());
    let expire_at = server.node.store.read().expire_at(b"k").expect("an expiry");
    // Wait until this machine's clock (the leader's) passes the expiry.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while crate::resp::cmd::now_ms() <= expire_at {
        assert!(
            std::time::Instant::now() < deadline,
            "the clock did not move"
        );
        tokio::task::yield_now().await;
    }
    assert!(
        server.node.store.read().get(b"k").is_some(),
        "not removed yet: no write since"
    );
    assert_eq!(c.call(&["GET", "k"]).await, Frame::Null);
    assert_eq!(c.call(&["EXISTS", "k"]).await, Frame::Integer(0));
    assert_eq!(c.call(&["TTL", "k"]).await, Frame::Integer(-2));
    assert_eq!(c.call(&["KEYS", "*"]).await, Frame::Array(vec![]));
    assert_eq!(
        c.call(&["SCAN", "0"]).await,
        Frame::Array(vec![Frame::bulk("0"), Frame::Array(vec![])])
    );
    assert_eq!(c.call(&["RANDOMKEY"]).await, Frame::Null);
    // The next write removes it from the state (and the digest).
    c.call(&["SET", "other", "x"]).await;
    assert!(server.node.store.read().get(b"k").is_none());
    server.stop().await;
}
