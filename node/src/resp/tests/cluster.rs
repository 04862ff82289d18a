//! Cluster discovery against a server backed by the fake node: one shard
//! owning every slot, the leader as master, MOVED with the key's slot, and
//! CLUSTERDOWN (never a stale master) while no leader is known.

use super::fake::{Role, TestServer};
use crate::resp::cmd::cluster_node_id;
use crate::resp::{Frame, Limits};

fn text_of(frame: Frame) -> String {
    match frame {
        Frame::Bulk(bytes) | Frame::Verbatim { text: bytes, .. } => {
            String::from_utf8_lossy(&bytes).into_owned()
        }
        other => panic!("not a string reply: {other:?}"),
    }
}

fn endpoint(port: i64, id: u64) -> Frame {
    Frame::Array(vec![
        Frame::bulk("127.0.0.1"),
        Frame::Integer(port),
        Frame::bulk(cluster_node_id(id)),
    ])
}

#[test]
fn node_ids_are_forty_hex_digits_and_differ_per_member() {
    let ids: Vec<String> = (1..=5).map(cluster_node_id).collect();
    for id in &ids {
        assert_eq!(id.len(), 40);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique.len(), 5);
    assert_eq!(cluster_node_id(2), ids[1], "stable");
}

#[tokio::test]
async fn slots_shards_nodes_show_one_shard_with_the_leader_as_master() {
    let server = TestServer::start(Limits::default()).await;
    server.node.follow("127.0.0.1:7002");
    let mut client = server.connect().await;
    assert_eq!(
        client.call(&["CLUSTER", "SLOTS"]).await,
        Frame::Array(vec![Frame::Array(vec![
            Frame::Integer(0),
            Frame::Integer(16383),
            endpoint(7002, 2),
            endpoint(7001, 1),
            endpoint(7003, 3),
        ])])
    );
    let nodes = text_of(client.call(&["cluster", "nodes"]).await);
    let lines: Vec<&str> = nodes.lines().collect();
    assert_eq!(lines.len(), 3, "{nodes}");
    assert_eq!(
        lines[0],
        format!(
            "{} 127.0.0.1:7002@0 master - 0 0 4 connected 0-16383",
            cluster_node_id(2)
        )
    );
    assert_eq!(
        lines[1],
        format!(
            "{} 127.0.0.1:7001@0 myself,slave {} 0 0 4 connected",
            cluster_node_id(1),
            cluster_node_id(2)
        )
    );
    let Frame::Array(shards) = client.call(&["CLUSTER", "SHARDS"]).await else {
        panic!("CLUSTER SHARDS is an array")
    };
    assert_eq!(shards.len(), 1);
    assert_eq!(
        text_of(client.call(&["CLUSTER", "MYID"]).await),
        cluster_node_id(1)
    );
    let info = text_of(client.call(&["CLUSTER", "INFO"]).await);
    assert!(info.contains("cluster_state:ok\r\n"), "{info}");
    assert!(info.contains("cluster_slots_assigned:16384\r\n"), "{info}");
    let all = text_of(client.call(&["INFO"]).await);
    assert!(all.contains("cluster_enabled:1\r\n"), "{all}");
    assert_eq!(
        client.call(&["CLUSTER", "KEYSLOT", "foo"]).await,
        Frame::Integer(12182)
    );
    assert_eq!(
        client.call(&["CLUSTER", "FORGET", "x"]).await,
        Frame::error("ERR unknown subcommand 'FORGET'. Try CLUSTER HELP.")
    );
    assert_eq!(
        client.call(&["CLUSTER", "KEYSLOT"]).await,
        Frame::error("ERR wrong number of arguments for 'cluster|keyslot' command")
    );
    server.stop().await;
}

#[tokio::test]
async fn moved_names_the_slot_of_the_first_key() {
    let server = TestServer::start(Limits::default()).await;
    server.node.follow("127.0.0.1:7002");
    let mut client = server.connect().await;
    assert_eq!(
        client.call(&["SET", "foo", "1"]).await,
        Frame::error("MOVED 12182 127.0.0.1:7002")
    );
    assert_eq!(
        client.call(&["GET", "bar"]).await,
        Frame::error("MOVED 5061 127.0.0.1:7002")
    );
    assert_eq!(
        client
            .call(&["MSET", "{user1000}.a", "1", "{user1000}.b", "2"])
            .await,
        Frame::error("MOVED 3443 127.0.0.1:7002")
    );
    server.stop().await;
}

#[tokio::test]
async fn without_a_leader_topology_is_clusterdown_not_a_stale_master() {
    let server = TestServer::start(Limits::default()).await;
    server.node.set_role(Role::Candidate);
    let mut client = server.connect().await;
    for sub in ["SLOTS", "SHARDS", "NODES"] {
        assert_eq!(
            client.call(&["CLUSTER", sub]).await,
            Frame::error("CLUSTERDOWN no leader"),
            "{sub}"
        );
    }
    let info = text_of(client.call(&["CLUSTER", "INFO"]).await);
    assert!(info.contains("cluster_state:fail\r\n"), "{info}");
    assert_eq!(
        client.call(&["SET", "foo", "1"]).await,
        Frame::error("CLUSTERDOWN no leader")
    );
    server.stop().await;
}
