//! Raw RESP against a live server backed by the in-memory fake node.

use std::collections::BTreeSet;

use bytes::Bytes;

use super::fake::{Role, TestServer};
use crate::resp::{Frame, Limits};

fn bulk(text: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(text.as_bytes()))
}

fn text_of(frame: &Frame) -> String {
    match frame {
        Frame::Bulk(bytes) | Frame::Verbatim { text: bytes, .. } => {
            String::from_utf8_lossy(bytes).into_owned()
        }
        Frame::Simple(text) | Frame::Error(text) => text.clone(),
        other => panic!("not a string reply: {other:?}"),
    }
}

#[tokio::test]
async fn inline_and_array_ping_echo() {
    let server = TestServer::start(Limits::default()).await;
    let mut client = server.connect().await;
    client.send(b"PING\r\n").await;
    assert_eq!(
        client.read_frame().await,
        Some(Frame::Simple("PONG".into()))
    );
    assert_eq!(client.call(&["PING", "hi"]).await, bulk("hi"));
    assert_eq!(
        client.call(&["ECHO", "hello world"]).await,
        bulk("hello world")
    );
    client.send(b"echo \"two words\"\n").await;
    assert_eq!(client.read_frame().await, Some(bulk("two words")));
    server.stop().await;
}

#[tokio::test]
async fn string_commands_on_the_leader() {
    let server = TestServer::start(Limits::default()).await;
    let mut client = server.connect().await;
    assert_eq!(client.call(&["SET", "a", "1"]).await, Frame::ok());
    assert_eq!(client.call(&["GET", "a"]).await, bulk("1"));
    assert_eq!(client.call(&["GET", "missing"]).await, Frame::Null);
    assert_eq!(
        client.call(&["MSET", "b", "2", "c", "3"]).await,
        Frame::ok()
    );
    assert_eq!(
        client.call(&["MGET", "a", "nope", "c"]).await,
        Frame::Array(vec![bulk("1"), Frame::Null, bulk("3")])
    );
    assert_eq!(
        client.call(&["EXISTS", "a", "b", "nope", "a"]).await,
        Frame::Integer(3)
    );
    assert_eq!(client.call(&["INCR", "a"]).await, Frame::Integer(2));
    assert_eq!(client.call(&["INCR", "fresh"]).await, Frame::Integer(1));
    assert_eq!(client.call(&["DBSIZE"]).await, Frame::Integer(4));
    assert_eq!(
        client.call(&["DEL", "b", "c", "nope"]).await,
        Frame::Integer(2)
    );
    assert_eq!(client.call(&["DBSIZE"]).await, Frame::Integer(2));
    assert_eq!(client.call(&["SET", "word", "abc"]).await, Frame::ok());
    let Frame::Error(message) = client.call(&["INCR", "word"]).await else {
        panic!("INCR of a word must fail")
    };
    assert!(message.starts_with("ERR "), "{message}");
    assert_eq!(
        client.call(&["SET", "k", "v", "EX", "0"]).await,
        Frame::error("ERR invalid expire time in 'set' command")
    );
    assert_eq!(
        client.call(&["GET"]).await,
        Frame::error("ERR wrong number of arguments for 'get' command")
    );
    assert_eq!(
        client.call(&["SHUTDOWN", "NOSAVE"]).await,
        Frame::error("ERR unknown command 'SHUTDOWN', with args beginning with: 'NOSAVE' ")
    );
    server.stop().await;
}

/// Replies of a pipeline come back in request order even though the fake
/// node finishes writes out of order, and a read sees the writes before it.
#[tokio::test]
async fn pipelined_requests_reply_in_order() {
    let server = TestServer::start(Limits {
        pipeline_inflight_max: 16,
        ..Limits::default()
    })
    .await;
    let mut client = server.connect().await;
    let mut pipeline = Vec::new();
    pipeline
        .extend_from_slice(&Frame::Array(vec![bulk("SET"), bulk("n"), bulk("0")]).to_bytes(false));
    for _ in 0..100 {
        pipeline.extend_from_slice(b"*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n");
    }
    pipeline.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$1\r\nn\r\nPING\r\n");
    client.send(&pipeline).await;
    assert_eq!(client.read_frame().await, Some(Frame::ok()));
    for expected in 1..=100 {
        assert_eq!(client.read_frame().await, Some(Frame::Integer(expected)));
    }
    assert_eq!(client.read_frame().await, Some(bulk("100")));
    assert_eq!(
        client.read_frame().await,
        Some(Frame::Simple("PONG".into()))
    );
    server.stop().await;
}

#[tokio::test]
async fn a_read_before_a_write_in_a_pipeline_sees_the_old_value() {
    let server = TestServer::start(Limits::default()).await;
    let mut client = server.connect().await;
    assert_eq!(client.call(&["SET", "k", "old"]).await, Frame::ok());
    client.send(b"GET k\r\nSET k new\r\nGET k\r\n").await;
    assert_eq!(client.read_frame().await, Some(bulk("old")));
    assert_eq!(client.read_frame().await, Some(Frame::ok()));
    assert_eq!(client.read_frame().await, Some(bulk("new")));
    server.stop().await;
}

#[tokio::test]
async fn node_errors_become_moved_clusterdown_uncertain_tryagain() {
    let server = TestServer::start(Limits::default()).await;
    let mut client = server.connect().await;
    server.node.follow("127.0.0.1:7001");
    assert_eq!(
        client.call(&["SET", "k", "v"]).await,
        Frame::error("MOVED 7629 127.0.0.1:7001")
    );
    assert_eq!(
        client.call(&["GET", "k"]).await,
        Frame::error("MOVED 7629 127.0.0.1:7001")
    );
    server.node.set_role(Role::Follower {
        leader_client_addr: None,
    });
    assert_eq!(
        client.call(&["SET", "k", "v"]).await,
        Frame::error("CLUSTERDOWN no leader")
    );
    server.node.set_role(Role::Candidate);
    assert_eq!(
        client.call(&["DEL", "k"]).await,
        Frame::error("CLUSTERDOWN no leader")
    );
    assert_eq!(
        client.call(&["DBSIZE"]).await,
        Frame::error("CLUSTERDOWN no leader")
    );
    server.node.set_role(Role::LosingLeadership);
    assert_eq!(
        client.call(&["INCR", "k"]).await,
        Frame::error("UNCERTAIN outcome unknown: leadership lost before commit")
    );
    server.node.set_role(Role::Overloaded);
    assert_eq!(
        client.call(&["MSET", "a", "1"]).await,
        Frame::error("TRYAGAIN too many requests queued")
    );
    assert_eq!(
        client.call(&["GET", "a"]).await,
        Frame::error("TRYAGAIN too many requests queued")
    );
    server.stop().await;
}

#[tokio::test]
async fn readonly_serves_reads_locally_until_readwrite() {
    let server = TestServer::start(Limits::default()).await;
    let mut client = server.connect().await;
    assert_eq!(client.call(&["SET", "k", "v"]).await, Frame::ok());
    server.node.follow("127.0.0.1:7001");
    assert_eq!(
        client.call(&["GET", "k"]).await,
        Frame::error("MOVED 7629 127.0.0.1:7001")
    );
    assert_eq!(client.call(&["READONLY"]).await, Frame::ok());
    assert_eq!(client.call(&["GET", "k"]).await, bulk("v"));
    assert_eq!(
        client.call(&["MGET", "k", "x"]).await,
        Frame::Array(vec![bulk("v"), Frame::Null])
    );
    assert_eq!(client.call(&["EXISTS", "k"]).await, Frame::Integer(1));
    assert_eq!(client.call(&["DBSIZE"]).await, Frame::Integer(1));
    assert_eq!(
        client.call(&["KEYS", "*"]).await,
        Frame::Array(vec![bulk("k")])
    );
    // Writes still go to the leader.
    assert_eq!(
        client.call(&["SET", "k", "w"]).await,
        Frame::error("MOVED 7629 127.0.0.1:7001")
    );
    assert_eq!(client.call(&["READWRITE"]).await, Frame::ok());
    assert_eq!(
        client.call(&["GET", "k"]).await,
        Frame::error("MOVED 7629 127.0.0.1:7001")
    );
    // READONLY is per connection.
    let mut other = server.connect().await;
    assert_eq!(
        other.call(&["GET", "k"]).await,
        Frame::error("MOVED 7629 127.0.0.1:7001")
    );
    server.stop().await;
}

#[tokio::test]
async fn hello_switches_protocol_and_encoding() {
    let server = TestServer::start(Limits::default()).await;
    let mut client = server.connect().await;
    // RESP2: a map is a flat array, null is $-1.
    let Frame::Array(flat) = client.call(&["HELLO"]).await else {
        panic!("RESP2 HELLO is an array")
    };
    assert_eq!(flat[0], bulk("server"));
    assert_eq!(flat[1], bulk("raftkv"));
    assert!(flat.contains(&bulk("proto")) && flat.contains(&Frame::Integer(2)));
    client.send(b"GET missing\r\n").await;
    assert_eq!(client.read_frame().await, Some(Frame::Null));

    let Frame::Map(pairs) = client.call(&["HELLO", "3", "SETNAME", "dash"]).await else {
        panic!("RESP3 HELLO is a map")
    };
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == &bulk(name))
            .map(|(_, value)| value.clone())
    };
    assert_eq!(field("proto"), Some(Frame::Integer(3)));
    assert_eq!(field("role"), Some(bulk("master")));
    assert_eq!(field("mode"), Some(bulk("cluster")));
    assert!(matches!(field("id"), Some(Frame::Integer(id)) if id > 0));
    assert_eq!(client.call(&["CLIENT", "GETNAME"]).await, bulk("dash"));
    // Raw bytes: RESP3 null is `_`.
    client.send(b"GET missing\r\n").await;
    let mut raw = [0u8; 3];
    tokio::io::AsyncReadExt::read_exact(&mut client.stream, &mut raw)
        .await
        .unwrap();
    assert_eq!(&raw, b"_\r\n");

    assert_eq!(
        client.call(&["HELLO", "4"]).await,
        Frame::error("NOPROTO unsupported protocol version")
    );
    // A refused HELLO leaves the protocol as it was.
    assert!(matches!(client.call(&["RAFT.STATUS"]).await, Frame::Map(_)));
    assert!(matches!(
        client.call(&["HELLO", "2"]).await,
        Frame::Array(_)
    ));
    assert!(matches!(
        client.call(&["RAFT.STATUS"]).await,
        Frame::Array(_)
    ));
    server.stop().await;
}

#[tokio::test]
async fn raft_status_digest_and_info() {
    let server = TestServer::start(Limits::default()).await;
    let mut client = server.connect().await;
    assert_eq!(
        client.call(&["MSET", "a", "1", "b", "2"]).await,
        Frame::ok()
    );
    let expected_fields = server.node.status_fields_for_test();

    let Frame::Array(flat) = client.call(&["RAFT.STATUS"]).await else {
        panic!("RESP2 RAFT.STATUS is flat")
    };
    let pairs: Vec<(String, String)> = flat
        .chunks(2)
        .map(|pair| (text_of(&pair[0]), text_of(&pair[1])))
        .collect();
    assert_eq!(pairs, expected_fields);
    for required in [
        "id",
        "role",
        "term",
        "leader_id",
        "leader_client_addr",
        "commit_index",
        "applied_index",
        "first_index",
        "last_index",
        "snapshot_index",
        "keys",
        "digest",
        "leader_contact_ms",
        "match_index_2",
        "match_index_3",
        "pid",
        "uptime_ms",
    ] {
        assert!(
            pairs.iter().any(|(field, _)| field == required),
            "RAFT.STATUS lacks {required}"
        );
    }

    // The DESIGN.md test vector for a=1, b=2.
    let digest = "9c416561b5d29b481f4aaa44c5b47c98ce71d1bd47875d1c50203a677daa568c";
    assert_eq!(
        client.call(&["RAFT.DIGEST"]).await,
        Frame::Array(vec![bulk(digest), Frame::Integer(1)])
    );

    let info = text_of(&client.call(&["INFO", "raft"]).await);
    assert!(info.starts_with("# Raft\r\n"), "{info}");
    for (field, value) in &expected_fields {
        assert!(
            info.contains(&format!("\r\n{field}:{value}\r\n")),
            "INFO raft lacks {field}:{value}: {info}"
        );
    }
    assert!(!info.contains("# Server"));
    let keyspace = text_of(&client.call(&["INFO", "keyspace"]).await);
    assert_eq!(keyspace, "# Keyspace\r\ndb0:keys=2,expires=0,avg_ttl=0\r\n");
    let all = text_of(&client.call(&["INFO"]).await);
    for needle in [
        "# Server\r\n",
        "redis_version:",
        "server_name:raftkv\r\n",
        "# Clients\r\n",
        "connected_clients:1\r\n",
        "# Replication\r\n",
        "role:master\r\n",
        "# Raft\r\n",
        "# Keyspace\r\n",
    ] {
        assert!(all.contains(needle), "INFO lacks {needle:?}: {all}");
    }
    assert_eq!(text_of(&client.call(&["INFO", "nosuchsection"]).await), "");
    server.stop().await;
}

#[tokio::test]
async fn command_docs_count_info_and_client() {
    let server = TestServer::start(Limits::default()).await;
    let mut client = server.connect().await;
    assert_eq!(
        client.call(&["COMMAND", "DOCS"]).await,
        Frame::Array(vec![])
    );
    let Frame::Integer(count) = client.call(&["COMMAND", "COUNT"]).await else {
        panic!("COMMAND COUNT")
    };
    assert_eq!(count as usize, crate::resp::cmd::SPECS.len());
    let Frame::Array(entries) = client.call(&["COMMAND"]).await else {
        panic!("COMMAND")
    };
    assert_eq!(entries.len(), count as usize);
    let Frame::Array(info) = client.call(&["COMMAND", "INFO", "get", "nope"]).await else {
        panic!("COMMAND INFO")
    };
    assert_eq!(info.len(), 2);
    assert_eq!(info[1], Frame::Null);
    let Frame::Array(get) = &info[0] else {
        panic!("an entry is an array")
    };
    assert_eq!(get[0..2], [bulk("get"), Frame::Integer(2)]);

    assert_eq!(client.call(&["CLIENT", "GETNAME"]).await, Frame::Null);
    assert_eq!(
        client.call(&["CLIENT", "SETNAME", "worker"]).await,
        Frame::ok()
    );
    assert_eq!(client.call(&["CLIENT", "GETNAME"]).await, bulk("worker"));
    let Frame::Integer(id) = client.call(&["CLIENT", "ID"]).await else {
        panic!("CLIENT ID")
    };
    let line = text_of(&client.call(&["CLIENT", "INFO"]).await);
    assert!(
        line.starts_with(&format!("id={id} addr=127.0.0.1:")),
        "{line}"
    );
    assert!(line.contains(" name=worker "), "{line}");
    assert!(line.ends_with('\n'));
    assert_eq!(
        client
            .call(&["CLIENT", "SETINFO", "LIB-NAME", "redis-py"])
            .await,
        Frame::ok()
    );

    let mut resp3 = server.connect().await;
    resp3.call(&["HELLO", "3"]).await;
    assert_eq!(resp3.call(&["COMMAND", "DOCS"]).await, Frame::Map(vec![]));
    server.stop().await;
}

#[tokio::test]
async fn scan_walks_every_key_once_and_keys_matches_globs() {
    let server = TestServer::start(Limits::default()).await;
    let mut client = server.connect().await;
    let mut mset = vec!["MSET".to_string()];
    for index in 0..25 {
        mset.push(format!("key:{index:02}"));
        mset.push(format!("value-{index}"));
    }
    mset.extend(["other".to_string(), "x".to_string()]);
    let words: Vec<&str> = mset.iter().map(String::as_str).collect();
    assert_eq!(client.call(&words).await, Frame::ok());

    let mut seen = Vec::new();
    let mut cursor = "0".to_string();
    let mut calls = 0;
    loop {
        calls += 1;
        assert!(calls < 100, "SCAN must end");
        let Frame::Array(reply) = client.call(&["SCAN", &cursor, "COUNT", "10"]).await else {
            panic!("SCAN reply")
        };
        let Frame::Array(keys) = &reply[1] else {
            panic!("SCAN keys")
        };
        seen.extend(keys.iter().map(text_of));
        cursor = text_of(&reply[0]);
        assert!(
            cursor.parse::<u64>().is_ok(),
            "cursors are decimal numbers: {cursor}"
        );
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len(), 26, "each key exactly once: {seen:?}");
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 26);

    let Frame::Array(reply) = client
        .call(&["SCAN", "0", "MATCH", "key:1?", "COUNT", "1000"])
        .await
    else {
        panic!("SCAN MATCH")
    };
    assert_eq!(reply[0], bulk("0"));
    assert_eq!(
        reply[1],
        Frame::Array((10..20).map(|i| bulk(&format!("key:{i}"))).collect())
    );
    let Frame::Array(reply) = client.call(&["SCAN", "0", "TYPE", "hash"]).await else {
        panic!("SCAN TYPE")
    };
    assert_eq!(reply[1], Frame::Array(vec![]));
    assert_eq!(
        client.call(&["SCAN", "12345"]).await,
        Frame::error("ERR invalid cursor")
    );

    let Frame::Array(keys) = client.call(&["KEYS", "key:2[0-2]"]).await else {
        panic!("KEYS")
    };
    assert_eq!(keys, vec![bulk("key:20"), bulk("key:21"), bulk("key:22")]);
    let Frame::Array(all) = client.call(&["KEYS", "*"]).await else {
        panic!("KEYS *")
    };
    assert_eq!(all.len(), 26);
    server.stop().await;
}

#[tokio::test]
async fn quit_replies_ok_then_closes() {
    let server = TestServer::start(Limits::default()).await;
    let mut client = server.connect().await;
    client.send(b"PING\r\nQUIT\r\nPING\r\n").await;
    assert_eq!(client.read_to_close().await, b"+PONG\r\n+OK\r\n");
    server.stop().await;
}

#[tokio::test]
async fn protocol_error_closes_only_that_connection() {
    let server = TestServer::start(Limits::default()).await;
    let mut healthy = server.connect().await;
    let mut broken = server.connect().await;
    broken.send(b"PING\r\n*1\r\n$abc\r\n").await;
    assert_eq!(
        broken.read_to_close().await,
        b"+PONG\r\n-ERR Protocol error: invalid bulk length\r\n"
    );
    let mut wrong_type = server.connect().await;
    wrong_type.send(b"*1\r\n:5\r\n").await;
    assert_eq!(
        wrong_type.read_to_close().await,
        b"-ERR Protocol error: expected '$', got ':'\r\n"
    );
    let mut quotes = server.connect().await;
    quotes.send(b"SET \"a b\r\n").await;
    assert_eq!(
        quotes.read_to_close().await,
        b"-ERR Protocol error: unbalanced quotes in request\r\n"
    );
    assert_eq!(healthy.call(&["PING"]).await, Frame::Simple("PONG".into()));
    server.stop().await;
}

#[tokio::test]
async fn oversized_requests_are_refused_from_their_headers() {
    let server = TestServer::start(Limits::default()).await;
    let mut client = server.connect().await;
    // Only the header is sent: the server must answer without waiting for the payload.
    client
        .send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$999999999999\r\n")
        .await;
    let reply = String::from_utf8(client.read_to_close().await).unwrap();
    assert_eq!(
        reply,
        "-ERR Protocol error: bulk length 999999999999 exceeds the limit of 16777216 bytes\r\n"
    );
    let mut client = server.connect().await;
    client.send(b"*2000000\r\n").await;
    let reply = String::from_utf8(client.read_to_close().await).unwrap();
    assert_eq!(
        reply,
        "-ERR Protocol error: 2000000 elements exceed the limit of 1048576 arguments\r\n"
    );
    let mut client = server.connect().await;
    client.send(&vec![b'A'; 70 * 1024]).await;
    let reply = String::from_utf8(client.read_to_close().await).unwrap();
    assert!(
        reply.starts_with("-ERR Protocol error: line longer than 65536 bytes"),
        "{reply}"
    );
    server.stop().await;
}

#[tokio::test]
async fn configured_limits_apply() {
    let limits = Limits {
        bulk_bytes_max: 8,
        arguments_max: 3,
        ..Limits::default()
    };
    let server = TestServer::start(limits).await;
    let mut client = server.connect().await;
    assert_eq!(client.call(&["SET", "k", "12345678"]).await, Frame::ok());
    client.send_command(&[b"SET", b"k", b"123456789"]).await;
    let reply = String::from_utf8(client.read_to_close().await).unwrap();
    assert!(
        reply.starts_with("-ERR Protocol error: bulk length 9 exceeds"),
        "{reply}"
    );
    let mut client = server.connect().await;
    client
        .send_command(&[b"MSET", b"a", b"1", b"b", b"2"])
        .await;
    let reply = String::from_utf8(client.read_to_close().await).unwrap();
    assert!(
        reply.starts_with("-ERR Protocol error: 5 elements exceed"),
        "{reply}"
    );
    server.stop().await;
}

#[tokio::test]
async fn connections_over_the_limit_are_told_and_closed() {
    let server = TestServer::start(Limits {
        connections_max: 2,
        ..Limits::default()
    })
    .await;
    let mut first = server.connect().await;
    let mut second = server.connect().await;
    assert_eq!(first.call(&["PING"]).await, Frame::Simple("PONG".into()));
    assert_eq!(second.call(&["PING"]).await, Frame::Simple("PONG".into()));
    let mut third = server.connect().await;
    assert_eq!(
        third.read_to_close().await,
        b"-ERR max number of clients reached\r\n"
    );
    // A freed slot is reusable.
    first.send(b"QUIT\r\n").await;
    first.read_to_close().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mut next = server.connect().await;
        next.send(b"PING\r\n").await;
        match next.read_frame().await {
            Some(Frame::Simple(pong)) => {
                assert_eq!(pong, "PONG");
                break;
            }
            Some(Frame::Error(message)) => assert_eq!(message, "ERR max number of clients reached"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the closed connection's slot was never freed"
        );
        tokio::task::yield_now().await;
    }
    server.stop().await;
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_returns() {
    let server = TestServer::start(Limits::default()).await;
    let mut client = server.connect().await;
    assert_eq!(client.call(&["PING"]).await, Frame::Simple("PONG".into()));
    let addr = server.addr;
    server.stop().await;
    assert_eq!(client.read_to_close().await, b"");
    // The port is free again.
    tokio::net::TcpListener::bind(addr)
        .await
        .expect("the client port is released after shutdown");
}

#[tokio::test]
async fn input_split_into_single_bytes_still_parses() {
    let server = TestServer::start(Limits::default()).await;
    let mut client = server.connect().await;
    for byte in b"*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n" {
        client.send(&[*byte]).await;
    }
    assert_eq!(client.read_frame().await, Some(bulk("hello")));
    server.stop().await;
}

#[tokio::test]
async fn http_requests_are_cut_off_unanswered() {
    let server = TestServer::start(Limits::default()).await;
    let mut client = server.connect().await;
    client
        .send(b"POST / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await;
    assert_eq!(client.read_to_close().await, b"");
    server.stop().await;
}

#[tokio::test]
async fn large_values_round_trip() {
    let server = TestServer::start(Limits::default()).await;
    let mut client = server.connect().await;
    let value: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    client.send_command(&[b"SET", b"big", &value]).await;
    assert_eq!(client.read_frame().await, Some(Frame::ok()));
    client.send_command(&[b"GET", b"big"]).await;
    assert_eq!(
        client.read_frame().await,
        Some(Frame::Bulk(Bytes::from(value)))
    );
    assert_eq!(client.call(&["PING"]).await, Frame::Simple("PONG".into()));
    server.stop().await;
}
