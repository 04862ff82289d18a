//! RAFT.MEMBERS and the membership changes against the fake node: the
//! member list's shape, arguments checked before anything reaches the
//! node, follower redirects, and the two kinds of refusal.

use raftkv::message::NO_INCARNATION;
use raftkv::raft::ConfChange;

use super::fake::{Role, TestServer};
use crate::client::parse_members;
use crate::resp::{Frame, Limits};

#[tokio::test]
async fn members_lists_each_member_as_field_value_pairs_with_the_leaders_match_index() {
    let server = TestServer::start(Limits::default()).await;
    let mut client = server.connect().await;
    let members = parse_members(client.call(&["RAFT.MEMBERS"]).await).expect("well formed");
    assert_eq!(members.len(), 3);
    assert_eq!(members[0].id, 1);
    assert_eq!(members[0].role, "voter");
    assert_eq!(members[1].peer_addr, "127.0.0.1:7102");
    assert_eq!(members[2].client_addr, "127.0.0.1:7003");
    assert_eq!(members[2].incarnation, "00000000000000a3");
    // The fake leads with match indexes 7 and 9 for nodes 2 and 3.
    assert_eq!(members[1].match_index, Some(7));
    assert_eq!(members[2].match_index, Some(9));
    server.node.follow("127.0.0.1:7002");
    let members = parse_members(client.call(&["RAFT.MEMBERS"]).await).expect("well formed");
    assert_eq!(members.len(), 3, "a follower answers too");
    assert!(members.iter().all(|m| m.match_index.is_none()));
    server.stop().await;
}

#[tokio::test]
async fn changes_reach_the_leader_with_their_arguments_checked() {
    let server = TestServer::start(Limits::default()).await;
    let mut client = server.connect().await;
    let ok = Frame::Simple("OK".into());
    assert_eq!(
        client
            .call(&["RAFT.ADDLEARNER", "4", "127.0.0.1:7104", "127.0.0.1:7004"])
            .await,
        ok
    );
    assert_eq!(client.call(&["raft.promote", "4"]).await, ok);
    assert_eq!(client.call(&["RAFT.REMOVE", "2"]).await, ok);
    assert_eq!(
        *server.node.changes.lock(),
        vec![
            ConfChange::AddLearner {
                id: 4,
                incarnation: NO_INCARNATION,
                peer_addr: "127.0.0.1:7104".into(),
                client_addr: "127.0.0.1:7004".into(),
            },
            ConfChange::Promote { id: 4 },
            ConfChange::Remove { id: 2 },
        ]
    );
    let refused = [
        (
            vec!["RAFT.ADDLEARNER", "4", "localhost", "127.0.0.1:7004"],
            "ERR peer address 'localhost' is not of the form ip:port",
        ),
        (
            vec!["RAFT.ADDLEARNER", "0", "127.0.0.1:1", "127.0.0.1:2"],
            "ERR node id 0 is not a positive integer",
        ),
        (
            vec!["RAFT.PROMOTE", "four"],
            "ERR value is not an integer or out of range",
        ),
        (
            vec!["RAFT.REMOVE"],
            "ERR wrong number of arguments for 'raft.remove' command",
        ),
        (vec!["RAFT.REMOVE", "9"], "ERR node 9 is not a member"),
    ];
    for (request, expected) in refused {
        assert_eq!(
            client.call(&request).await,
            Frame::Error(expected.into()),
            "{request:?}"
        );
    }
    assert_eq!(server.node.changes.lock().len(), 3, "nothing else taken");
    server.stop().await;
}

#[tokio::test]
async fn a_follower_redirects_changes_and_a_busy_leader_says_try_again() {
    let server = TestServer::start(Limits::default()).await;
    let mut client = server.connect().await;
    server.node.follow("127.0.0.1:7002");
    assert_eq!(
        client.call(&["RAFT.PROMOTE", "4"]).await,
        Frame::Error("MOVED 0 127.0.0.1:7002".into())
    );
    server.node.set_role(Role::Candidate);
    assert_eq!(
        client.call(&["RAFT.REMOVE", "3"]).await,
        Frame::Error("CLUSTERDOWN no leader".into())
    );
    server.node.set_role(Role::Overloaded);
    match client.call(&["RAFT.REMOVE", "3"]).await {
        Frame::Error(message) => assert!(message.starts_with("TRYAGAIN "), "{message}"),
        other => panic!("expected TRYAGAIN, got {other:?}"),
    }
    assert!(server.node.changes.lock().is_empty());
    server.stop().await;
}
