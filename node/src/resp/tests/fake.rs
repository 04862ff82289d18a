//! An in-memory stand-in for a node, so the server can be tested without
//! consensus: writes apply to a real `KvStore`, and the role can be switched
//! to make every node error appear.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use parking_lot::{Mutex, RwLock};
use raftkv::kv::{Command, KvStore, Reply};
use raftkv::raft::ConfChange;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::driver::handle::{NodeStatus, ReadError, WriteError};
use crate::driver::status::MemberView;
use crate::resp::{serve, Backend, Frame, Limits};

/// How the fake node answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Leader,
    Follower {
        leader_client_addr: Option<String>,
    },
    Candidate,
    /// Writes are appended but leadership is lost before commit.
    LosingLeadership,
    Overloaded,
}

#[derive(Clone)]
pub(crate) struct FakeNode {
    pub store: Arc<RwLock<KvStore>>,
    pub role: Arc<Mutex<Role>>,
    pub applied_index: Arc<AtomicU64>,
    writes_started: Arc<AtomicU64>,
    /// Membership changes the fake leader took, in order.
    pub changes: Arc<Mutex<Vec<ConfChange>>>,
}

impl FakeNode {
    pub(crate) fn new() -> FakeNode {
        FakeNode {
            store: Arc::new(RwLock::new(KvStore::new())),
            role: Arc::new(Mutex::new(Role::Leader)),
            applied_index: Arc::new(AtomicU64::new(0)),
            writes_started: Arc::new(AtomicU64::new(0)),
            changes: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub(crate) fn set_role(&self, role: Role) {
        *self.role.lock() = role;
    }

    /// Makes this node a follower that knows its leader's client address.
    pub(crate) fn follow(&self, leader_client_addr: &str) {
        self.set_role(Role::Follower {
            leader_client_addr: Some(leader_client_addr.into()),
        });
    }
}

impl Backend for FakeNode {
    async fn write(&self, command: Command) -> Result<Reply, WriteError> {
        let role = self.role.lock().clone();
        match role {
            Role::Leader => {
                // Applied when the request is handed over (as the driver
                // orders proposals), answered after a varying delay, so
                // replies finish out of order and the connection must
                // restore request order.
                let reply = self.store.write().apply(&command);
                self.applied_index.fetch_add(1, Ordering::SeqCst);
                let started = self.writes_started.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis((started * 7) % 5)).await;
                Ok(reply)
            }
            Role::Follower { leader_client_addr } => {
                Err(WriteError::NotLeader { leader_client_addr })
            }
            Role::Candidate => Err(WriteError::NoLeader),
            Role::LosingLeadership => Err(WriteError::OutcomeUnknown(
                "leadership lost before commit".into(),
            )),
            Role::Overloaded => Err(WriteError::Refused("too many requests queued".into())),
        }
    }

    async fn linearizable_read<R, F>(&self, read: F) -> Result<R, ReadError>
    where
        R: Send,
        F: FnOnce(&KvStore) -> R + Send,
    {
        let role = self.role.lock().clone();
        match role {
            Role::Leader | Role::LosingLeadership => {
                tokio::task::yield_now().await;
                Ok(read(&self.store.read()))
            }
            Role::Follower { leader_client_addr } => {
                Err(ReadError::NotLeader { leader_client_addr })
            }
            Role::Candidate => Err(ReadError::NoLeader),
            Role::Overloaded => Err(ReadError::Refused("too many requests queued".into())),
        }
    }

    fn local_read<R>(&self, read: impl FnOnce(&KvStore) -> R) -> R {
        read(&self.store.read())
    }

    fn status(&self) -> NodeStatus {
        let store = self.store.read();
        let role = self.role.lock().clone();
        let leader = role == Role::Leader;
        let (leader_id, leader_client_addr) = match role {
            Role::Leader => (1, "127.0.0.1:7001"),
            Role::Candidate => (0, ""),
            _ => (2, "127.0.0.1:7002"),
        };
        NodeStatus {
            id: 1,
            role: if leader { "leader" } else { "follower" },
            term: 4,
            leader_id,
            leader_client_addr: leader_client_addr.into(),
            commit_index: self.applied_index.load(Ordering::SeqCst),
            applied_index: self.applied_index.load(Ordering::SeqCst),
            first_index: 1,
            last_index: self.applied_index.load(Ordering::SeqCst),
            snapshot_index: 0,
            keys: store.len(),
            digest: store.digest_hex(),
            leader_contact_ms: 0,
            incarnation: "00000000000000a1".into(),
            registered: true,
            strangers: Vec::new(),
            voters: vec![1, 2, 3],
            learners: Vec::new(),
            previous_voters: Vec::new(),
            membership_index: 3,
            members: (1..=3)
                .map(|id| MemberView {
                    id,
                    incarnation: format!("{:016x}", 0xa0 + id),
                    role: "voter".into(),
                    peer_addr: format!("127.0.0.1:710{id}"),
                    client_addr: format!("127.0.0.1:700{id}"),
                    match_index: None,
                })
                .collect(),
            match_index: if leader {
                vec![(2, 7), (3, 9)]
            } else {
                Vec::new()
            },
            member_client_addrs: vec![
                (1, "127.0.0.1:7001".into()),
                (2, "127.0.0.1:7002".into()),
                (3, "127.0.0.1:7003".into()),
            ],
            pid: std::process::id(),
            uptime_ms: 1234,
        }
    }

    /// The leader takes every change but the removal of a node it does not
    /// know (as the core refuses it); other roles answer as for writes.
    async fn change_membership(&self, change: ConfChange) -> Result<(), WriteError> {
        if let ConfChange::Remove { id } = change {
            if id > 3 {
                return Err(WriteError::Invalid(format!("node {id} is not a member")));
            }
        }
        self.write(Command::FlushAll).await.map(|_| ())?;
        self.changes.lock().push(change);
        Ok(())
    }
}

/// A server on a free loopback port, stopped by `stop()`.
pub(crate) struct TestServer {
    pub addr: SocketAddr,
    pub node: FakeNode,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub(crate) async fn start(limits: Limits) -> TestServer {
        let node = FakeNode::new();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, node.clone(), limits, async move {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            node,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub(crate) async fn connect(&self) -> Client {
        Client {
            stream: TcpStream::connect(self.addr).await.expect("connect"),
            buf: BytesMut::new(),
        }
    }

    /// Stops the server and waits (with a deadline) for `serve` to return.
    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().expect("stopped once");
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("serve returns after shutdown")
            .expect("serve task")
            .expect("serve result");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A raw-bytes client that decodes replies with the client-side decoder.
pub(crate) struct Client {
    pub stream: TcpStream,
    buf: BytesMut,
}

/// How long a test waits for a reply before failing.
const REPLY_WAIT_MS_MAX: u64 = 10_000;

impl Client {
    pub(crate) async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("send");
    }

    /// Sends one command as an array of bulk strings.
    pub(crate) async fn send_command(&mut self, words: &[&[u8]]) {
        let request = Frame::Array(
            words
                .iter()
                .map(|word| Frame::bulk(word.to_vec()))
                .collect(),
        );
        self.send(&request.to_bytes(false)).await;
    }

    pub(crate) async fn call(&mut self, words: &[&str]) -> Frame {
        let words: Vec<&[u8]> = words.iter().map(|word| word.as_bytes()).collect();
        self.send_command(&words).await;
        self.read_frame()
            .await
            .expect("a reply before the connection closed")
    }

    /// The next reply, or `None` once the server closed the connection.
    pub(crate) async fn read_frame(&mut self) -> Option<Frame> {
        let limits = Limits {
            arguments_max: usize::MAX,
            ..Limits::default()
        };
        let deadline = Duration::from_millis(REPLY_WAIT_MS_MAX);
        tokio::time::timeout(deadline, async {
            loop {
                if let Some(frame) =
                    Frame::decode(&mut self.buf, &limits).expect("a well-formed reply")
                {
                    return Some(frame);
                }
                if self.stream.read_buf(&mut self.buf).await.expect("read") == 0 {
                    assert!(
                        self.buf.is_empty(),
                        "connection closed inside a reply: {:?}",
                        self.buf
                    );
                    return None;
                }
            }
        })
        .await
        .expect("reply within the deadline")
    }

    /// The raw bytes of everything the server sends until it closes.
    pub(crate) async fn read_to_close(&mut self) -> Vec<u8> {
        let mut bytes = self.buf.split().to_vec();
        let deadline = Duration::from_millis(REPLY_WAIT_MS_MAX);
        tokio::time::timeout(deadline, self.stream.read_to_end(&mut bytes))
            .await
            .expect("the server closes the connection within the deadline")
            .expect("read");
        bytes
    }
}

impl FakeNode {
    /// What RAFT.STATUS should show right now.
    pub(crate) fn status_fields_for_test(&self) -> Vec<(String, String)> {
        self.status().fields()
    }
}
