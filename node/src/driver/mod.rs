//! The driver: the one task that owns `RawNode` and runs its Ready loop.
//!
//! Every input (ticks, peer messages, client requests) reaches the core through
//! this task; every output (persist, send, apply, reply) leaves from it, in the
//! order the core's Ready contract demands. Requests gathered while the
//! previous Ready was being persisted are handled together, so one fsync
//! covers all of them (group commit).

mod events;
mod persister;
mod run;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};
use raftkv::kv::{Command, KvStore, Reply};
use tokio::sync::{mpsc, oneshot};

use crate::handle::{NodeStatus, ReadError, WriteError};

pub use run::run_node;

/// Runs one node on the calling thread until it is told to stop: the
/// runtime raftkv nodes are meant to run on.
///
/// One thread runs the Ready loop, the peer links and every client
/// connection, and the WAL thread fsyncs beside it. Handing a request, a
/// peer message or a reply between tasks then never wakes another thread;
/// on a small machine running several nodes those wake-ups, not the work,
/// were most of a write's cost. The driver never blocks, so nothing waits
/// behind a slow disk but the writes themselves.
pub fn run_node_blocking(options: crate::options::NodeOptions) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(run_node(options))
}

/// Bound on client requests queued for the driver.
pub const REQUEST_QUEUE_MAX: usize = 65_536;
/// Bound on inputs (requests or peer messages) handled before the next Ready.
pub const INPUTS_PER_READY_MAX: usize = 4_096;

/// A client request for the driver.
pub(crate) enum Request {
    Write {
        command: Command,
        reply: oneshot::Sender<Result<Reply, WriteError>>,
    },
    Read {
        reply: oneshot::Sender<Result<(), ReadError>>,
    },
}

/// State shared between the driver and the handles.
pub struct Shared {
    pub(crate) store: Arc<RwLock<KvStore>>,
    pub(crate) requests: mpsc::Sender<Request>,
    pub(crate) status: Mutex<PublishedStatus>,
}

/// What the driver publishes after every loop turn.
#[derive(Clone, Debug, Default)]
pub(crate) struct PublishedStatus {
    pub status: NodeStatus,
    /// When this node last heard from the leader of its term (None: never / is leader).
    pub leader_contact: Option<Instant>,
    pub started: Option<Instant>,
}

pub(crate) async fn write(shared: &Shared, command: Command) -> Result<Reply, WriteError> {
    let (reply, receive) = oneshot::channel();
    shared
        .requests
        .send(Request::Write { command, reply })
        .await
        .map_err(|_| WriteError::Refused("node is shutting down".into()))?;
    receive.await.unwrap_or_else(|_| {
        Err(WriteError::OutcomeUnknown(
            "node stopped before the write completed".into(),
        ))
    })
}

pub(crate) async fn read_barrier(shared: &Shared) -> Result<(), ReadError> {
    let (reply, receive) = oneshot::channel();
    shared
        .requests
        .send(Request::Read { reply })
        .await
        .map_err(|_| ReadError::Refused("node is shutting down".into()))?;
    receive.await.unwrap_or_else(|_| {
        Err(ReadError::Refused(
            "node stopped before the read completed".into(),
        ))
    })
}

pub(crate) fn status(shared: &Shared) -> NodeStatus {
    let published = shared.status.lock();
    let mut status = published.status.clone();
    let now = Instant::now();
    status.leader_contact_ms = match (status.role, published.leader_contact) {
        ("leader", _) => 0,
        (_, Some(at)) => now.duration_since(at).as_millis() as u64,
        (_, None) => published
            .started
            .map(|s| now.duration_since(s).as_millis() as u64)
            .unwrap_or(0),
    };
    status.uptime_ms = published
        .started
        .map(|s| now.duration_since(s).as_millis() as u64)
        .unwrap_or(0);
    status
}

/// `Command::encode` with the buffer sized up front: the same bytes, without
/// growing the vector several times for every write.
pub(crate) fn encode_command(command: &Command) -> bytes::Bytes {
    /// Bound on a postcard varint (a length or the variant tag).
    const VARINT_BYTES_MAX: usize = 10;
    let (payload_bytes, items) = match command {
        Command::Set { key, value } => (key.len() + value.len(), 2),
        Command::Del { keys } => (keys.iter().map(|k| k.len()).sum(), keys.len()),
        Command::MSet { pairs } => (
            pairs.iter().map(|(k, v)| k.len() + v.len()).sum(),
            2 * pairs.len(),
        ),
        Command::Incr { key } => (key.len(), 1),
    };
    let capacity = payload_bytes + VARINT_BYTES_MAX * (items + 2);
    let encoded = postcard::to_extend(command, Vec::with_capacity(capacity))
        .expect("serializing a command into memory cannot fail");
    bytes::Bytes::from(encoded)
}

/// Writes waiting for their entry to be applied, by log index.
#[derive(Default)]
pub(crate) struct PendingWrites {
    by_index: BTreeMap<u64, (u64, oneshot::Sender<Result<Reply, WriteError>>)>,
}

impl PendingWrites {
    pub fn insert(
        &mut self,
        term: u64,
        index: u64,
        reply: oneshot::Sender<Result<Reply, WriteError>>,
    ) {
        self.by_index.insert(index, (term, reply));
    }

    /// The entry at `index` with `term` was applied with result `reply`.
    pub fn applied(&mut self, index: u64, term: u64, reply: Option<Reply>) {
        // Any pending write at a lower index was overwritten (its index got
        // applied with another entry): it never took effect.
        while let Some((&pending_index, _)) = self.by_index.first_key_value() {
            if pending_index >= index {
                break;
            }
            let (_, (_, sender)) = self.by_index.pop_first().expect("non-empty");
            let _ = sender.send(Err(WriteError::Refused(
                "write was replaced by a newer leader's log; it was not applied, retry".into(),
            )));
        }
        if let Some((pending_term, sender)) = self.by_index.remove(&index) {
            let result = match reply {
                Some(reply) if pending_term == term => Ok(reply),
                _ => Err(WriteError::Refused(
                    "write was replaced by a newer leader's log; it was not applied, retry".into(),
                )),
            };
            let _ = sender.send(result);
        }
    }

    /// Leadership was lost: the outcome of every pending write is unknown.
    pub fn leadership_lost(&mut self) {
        for (_, (_, sender)) in std::mem::take(&mut self.by_index) {
            let _ = sender.send(Err(WriteError::OutcomeUnknown(
                "leadership lost before the write committed; it may still be applied".into(),
            )));
        }
    }
}

/// Reads waiting for leadership confirmation, then for the apply index.
#[derive(Default)]
pub(crate) struct PendingReads {
    next_context: u64,
    unconfirmed: HashMap<u64, oneshot::Sender<Result<(), ReadError>>>,
    /// Confirmed reads waiting until applied >= the key.
    waiting: BTreeMap<u64, Vec<oneshot::Sender<Result<(), ReadError>>>>,
}

impl PendingReads {
    pub fn register(&mut self, reply: oneshot::Sender<Result<(), ReadError>>) -> u64 {
        self.next_context += 1;
        self.unconfirmed.insert(self.next_context, reply);
        self.next_context
    }

    pub fn unregister(&mut self, context: u64) -> Option<oneshot::Sender<Result<(), ReadError>>> {
        self.unconfirmed.remove(&context)
    }

    pub fn confirmed(&mut self, context: u64, index: u64, applied: u64) {
        if let Some(reply) = self.unconfirmed.remove(&context) {
            if index <= applied {
                let _ = reply.send(Ok(()));
            } else {
                self.waiting.entry(index).or_default().push(reply);
            }
        }
    }

    pub fn dropped(&mut self, context: u64) {
        if let Some(reply) = self.unconfirmed.remove(&context) {
            let _ = reply.send(Err(ReadError::NoLeader));
        }
    }

    pub fn applied_through(&mut self, applied: u64) {
        while let Some(entry) = self.waiting.first_entry() {
            if *entry.key() > applied {
                break;
            }
            for reply in entry.remove() {
                let _ = reply.send(Ok(()));
            }
        }
    }

    pub fn leadership_lost(&mut self) {
        for (_, reply) in self.unconfirmed.drain() {
            let _ = reply.send(Err(ReadError::NoLeader));
        }
        for (_, replies) in std::mem::take(&mut self.waiting) {
            for reply in replies {
                let _ = reply.send(Err(ReadError::NoLeader));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use raftkv::kv::Command;

    #[test]
    fn encode_command_gives_the_bytes_of_command_encode() {
        let b = |s: &str| Bytes::from(s.to_owned());
        let commands = [
            Command::Set {
                key: b("k"),
                value: Bytes::from(vec![7u8; 300]),
            },
            Command::Del {
                keys: vec![b("a"), b(""), b("ccc")],
            },
            Command::MSet {
                pairs: vec![(b("a"), b("1")), (b("b"), Bytes::from(vec![0u8; 200]))],
            },
            Command::MSet { pairs: vec![] },
            Command::Incr { key: b("n") },
        ];
        for command in commands {
            let encoded = super::encode_command(&command);
            assert_eq!(encoded, command.encode(), "{command:?}");
            assert!(encoded.len() <= 300 + 10 * 4, "{command:?}");
        }
    }
}
