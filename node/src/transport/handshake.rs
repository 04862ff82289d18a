//! The peer handshake: the `Hello` each side sends first, and its checks.
//!
//! The dialer sends `Hello`; the acceptor checks it and answers with
//! `HelloReply::Accepted(its own Hello)` or `HelloReply::Rejected{reason}`
//! (no reply at all when the magic is wrong: that is not a raftkv peer).
//! The dialer then checks the acceptor's Hello the same way, plus that the
//! node it reached is the node it meant to dial.
//!
//! Wire layout: a Hello frame starts with the 8 magic bytes and the protocol
//! version (a postcard varint). Those two stay put in every future version,
//! so a node can always tell "not raftkv" from "raftkv, other version"
//! before it tries to decode the rest.

use serde::{Deserialize, Serialize};

/// First bytes of every Hello.
pub(crate) const MAGIC: [u8; 8] = *b"RKVPEER\0";
/// Bumped on any incompatible change to the peer wire format.
/// Version 2: the Hello and every message carry the sender's incarnation.
pub(crate) const PROTOCOL_VERSION: u32 = 2;
/// Largest Hello or HelloReply frame; bounds what an unauthenticated
/// connection can make us buffer.
pub(crate) const HELLO_BYTES_MAX: usize = 4 * 1024;

/// What a node says about itself when a connection opens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Hello {
    pub magic: [u8; 8],
    pub version: u32,
    pub cluster_id: String,
    pub node_id: u64,
    /// Which life of `node_id` this is (see `raftkv::message::Incarnation`):
    /// every message on the link must carry it.
    pub incarnation: u64,
    /// The RESP address clients should use for this node (for MOVED).
    pub client_addr: String,
}

/// The acceptor's answer to a Hello.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum HelloReply {
    Accepted(Hello),
    Rejected { reason: String },
}

/// The part of a Hello every protocol version shares.
#[derive(Deserialize)]
struct HelloPrefix {
    magic: [u8; 8],
    version: u32,
}

/// Why a Hello was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HandshakeError {
    #[error("bad magic: not a raftkv peer")]
    BadMagic,
    #[error("protocol version {theirs} is not supported (this node speaks {ours})")]
    Version { ours: u32, theirs: u32 },
    #[error("cluster id '{theirs}' does not match this node's cluster id '{ours}'")]
    ClusterId { ours: String, theirs: String },
    #[error("node id {id} is not a member of this cluster")]
    UnknownNode { id: u64 },
    #[error("peer claims node id {id}, which is this node's own id")]
    SameId { id: u64 },
    #[error("dialed node {expected} but reached node {got}")]
    WrongNode { expected: u64, got: u64 },
    #[error("peer node {id} sent incarnation 0, which no node draws")]
    NoIncarnation { id: u64 },
    #[error("malformed hello: {0}")]
    Malformed(String),
}

/// What a Hello must match to be accepted.
pub(crate) struct HandshakeRules<'a> {
    pub cluster_id: &'a str,
    pub self_id: u64,
    /// Every member id, including this node's; None: any id (a node
    /// joining a cluster).
    pub member_ids: Option<Vec<u64>>,
}

impl Hello {
    pub(crate) fn new(cluster_id: &str, node_id: u64, incarnation: u64, client_addr: &str) -> Self {
        Hello {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            cluster_id: cluster_id.to_string(),
            node_id,
            incarnation,
            client_addr: client_addr.to_string(),
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("serializing a hello into memory cannot fail")
    }

    /// Decodes a Hello frame, telling a stranger (bad magic) from another
    /// protocol version before decoding the version-specific rest.
    pub(crate) fn decode(frame: &[u8]) -> Result<Hello, HandshakeError> {
        if !frame.starts_with(&MAGIC) {
            return Err(HandshakeError::BadMagic);
        }
        let (prefix, _) = postcard::take_from_bytes::<HelloPrefix>(frame)
            .map_err(|e| HandshakeError::Malformed(e.to_string()))?;
        debug_assert_eq!(prefix.magic, MAGIC);
        if prefix.version != PROTOCOL_VERSION {
            return Err(HandshakeError::Version {
                ours: PROTOCOL_VERSION,
                theirs: prefix.version,
            });
        }
        postcard::from_bytes(frame).map_err(|e| HandshakeError::Malformed(e.to_string()))
    }

    /// Checks a decoded Hello against this node's cluster.
    pub(crate) fn check(&self, rules: &HandshakeRules<'_>) -> Result<(), HandshakeError> {
        if self.magic != MAGIC {
            return Err(HandshakeError::BadMagic);
        }
        if self.version != PROTOCOL_VERSION {
            return Err(HandshakeError::Version {
                ours: PROTOCOL_VERSION,
                theirs: self.version,
            });
        }
        if self.cluster_id != rules.cluster_id {
            return Err(HandshakeError::ClusterId {
                ours: rules.cluster_id.to_string(),
                theirs: self.cluster_id.clone(),
            });
        }
        if self.node_id == rules.self_id {
            return Err(HandshakeError::SameId { id: self.node_id });
        }
        if rules
            .member_ids
            .as_ref()
            .is_some_and(|ids| !ids.contains(&self.node_id))
        {
            return Err(HandshakeError::UnknownNode { id: self.node_id });
        }
        if self.incarnation == 0 {
            return Err(HandshakeError::NoIncarnation { id: self.node_id });
        }
        Ok(())
    }
}

impl HelloReply {
    pub(crate) fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("serializing a hello reply into memory cannot fail")
    }

    pub(crate) fn decode(frame: &[u8]) -> Result<HelloReply, HandshakeError> {
        postcard::from_bytes(frame).map_err(|e| HandshakeError::Malformed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMBERS: [u64; 3] = [1, 2, 3];

    fn rules() -> HandshakeRules<'static> {
        HandshakeRules {
            cluster_id: "c1",
            self_id: 1,
            member_ids: Some(MEMBERS.to_vec()),
        }
    }

    #[test]
    fn a_valid_hello_round_trips_and_passes() {
        let hello = Hello::new("c1", 2, 0x1000 + 2, "127.0.0.1:7002");
        let decoded = Hello::decode(&hello.encode()).unwrap();
        assert_eq!(decoded, hello);
        assert_eq!(decoded.check(&rules()), Ok(()));
    }

    #[test]
    fn hello_frame_starts_with_magic_then_version() {
        let frame = Hello::new("c1", 2, 0x1000 + 2, "a").encode();
        assert_eq!(&frame[..8], &MAGIC);
        assert_eq!(
            frame[8] as u32, PROTOCOL_VERSION,
            "version 1 is a one-byte varint"
        );
    }

    #[test]
    fn garbage_is_bad_magic() {
        assert_eq!(
            Hello::decode(b"GET / HTTP/1.1\r\n"),
            Err(HandshakeError::BadMagic)
        );
        assert_eq!(Hello::decode(b""), Err(HandshakeError::BadMagic));
    }

    #[test]
    fn truncated_hello_is_malformed() {
        let frame = Hello::new("c1", 2, 0x1000 + 2, "127.0.0.1:7002").encode();
        let result = Hello::decode(&frame[..frame.len() - 3]);
        assert!(
            matches!(result, Err(HandshakeError::Malformed(_))),
            "{result:?}"
        );
    }

    #[test]
    fn another_version_is_named_even_if_its_layout_differs() {
        let mut frame = MAGIC.to_vec();
        frame.push(7); // version 7, followed by bytes this version cannot read
        frame.extend_from_slice(&[0xff; 3]);
        assert_eq!(
            Hello::decode(&frame),
            Err(HandshakeError::Version {
                ours: PROTOCOL_VERSION,
                theirs: 7
            })
        );
    }

    #[test]
    fn a_node_of_the_version_before_incarnations_is_named() {
        let mut frame = MAGIC.to_vec();
        frame.push(1);
        frame.extend_from_slice(b"\x02c1\x02");
        assert_eq!(
            Hello::decode(&frame),
            Err(HandshakeError::Version { ours: 2, theirs: 1 })
        );
    }

    #[test]
    fn incarnation_zero_is_refused() {
        let hello = Hello::new("c1", 2, 0, "a");
        assert_eq!(
            hello.check(&rules()),
            Err(HandshakeError::NoIncarnation { id: 2 })
        );
    }

    #[test]
    fn each_mismatch_is_named() {
        let wrong_cluster = Hello::new("other", 2, 0x1000 + 2, "a");
        assert_eq!(
            wrong_cluster.check(&rules()),
            Err(HandshakeError::ClusterId {
                ours: "c1".into(),
                theirs: "other".into()
            })
        );
        assert_eq!(
            Hello::new("c1", 9, 0x1000 + 9, "a").check(&rules()),
            Err(HandshakeError::UnknownNode { id: 9 })
        );
        assert_eq!(
            Hello::new("c1", 1, 0x1000 + 1, "a").check(&rules()),
            Err(HandshakeError::SameId { id: 1 })
        );
        let mut wrong_magic = Hello::new("c1", 2, 0x1000 + 2, "a");
        wrong_magic.magic = *b"XXXXXXXX";
        assert_eq!(wrong_magic.check(&rules()), Err(HandshakeError::BadMagic));
    }

    #[test]
    fn replies_round_trip() {
        for reply in [
            HelloReply::Accepted(Hello::new("c1", 3, 0x1000 + 3, "127.0.0.1:7003")),
            HelloReply::Rejected {
                reason: "no".into(),
            },
        ] {
            assert_eq!(HelloReply::decode(&reply.encode()), Ok(reply));
        }
    }
}
