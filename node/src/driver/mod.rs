//! The driver: the one task that owns `RawNode` and runs its Ready loop.
//!
//! Every input (ticks, peer messages, client requests) reaches the core through
//! this task; every output (persist, send, apply, reply) leaves from it, in the
//! order the core's Ready contract demands. Requests gathered while the
//! previous Ready was being persisted are handled together, so one fsync
//! covers all of them (group commit).

mod compaction;
mod events;
pub mod handle;
mod peers;
mod persister;
mod run;
pub mod status;

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};
use raftkv::kv::{Command, KvStore, Reply};
use raftkv::raft::ConfChange;
use tokio::sync::{mpsc, oneshot};

use handle::{NodeStatus, ReadError, WriteError};

pub(crate) use peers::PeerAddresses;
pub(crate) use run::{run_driver, DriverParts, COMMAND_BYTES_MAX};

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
    /// Announces a batch of linearizable reads (sent by its first reader).
    Read { batch: ReadAnnouncement },
    /// A membership change; answered once its configuration entry is
    /// applied (so committed) here.
    ConfChange {
        change: ConfChange,
        reply: oneshot::Sender<Result<Reply, WriteError>>,
    },
}

/// State shared between the driver and the handles.
pub struct Shared {
    pub(crate) store: Arc<RwLock<KvStore>>,
    pub(crate) requests: mpsc::Sender<Request>,
    pub(crate) status: Mutex<PublishedStatus>,
    /// Reads waiting for the driver's next ReadIndex.
    pub(crate) read_gate: ReadGate,
}

impl Shared {
    /// The state a node starts with: `store` restored from storage, an
    /// empty status and a request queue of `REQUEST_QUEUE_MAX` (the
    /// receiver is the driver's).
    pub(crate) fn new(store: KvStore) -> (Arc<Shared>, mpsc::Receiver<Request>) {
        let (requests, receiver) = mpsc::channel(REQUEST_QUEUE_MAX);
        let shared = Arc::new(Shared {
            store: Arc::new(RwLock::new(store)),
            requests,
            status: Mutex::new(PublishedStatus {
                started: Some(Instant::now()),
                // Empty until the first publish (the store may already hold a
                // snapshot's state while the status still shows index 0).
                digest_applied: Some(0),
                ..Default::default()
            }),
            read_gate: ReadGate::default(),
        });
        (shared, receiver)
    }
}

/// What the driver publishes after every loop turn.
///
/// `status.digest` and `status.keys` are computed when a reader asks
/// (`refresh_digest`), not on every turn: they are correct for
/// `digest_applied`. Whenever `digest_applied` differs from
/// `status.applied_index`, the store holds exactly the state at
/// `status.applied_index`: the driver updates `status.applied_index` under
/// this lock in the same critical section that applies entries, and before
/// it replaces the store wholesale (a snapshot from the leader) it computes
/// the digest of the state the status shows (`digest_applied` then equals
/// `status.applied_index` until the next publish).
#[derive(Clone, Debug, Default)]
pub(crate) struct PublishedStatus {
    pub status: NodeStatus,
    /// When this node last heard from the leader of its term (None: never / is leader).
    pub leader_contact: Option<Instant>,
    pub started: Option<Instant>,
    /// The applied index `status.digest` and `status.keys` were computed at
    /// (None: never computed).
    pub digest_applied: Option<u64>,
}

impl PublishedStatus {
    /// Computes `status.digest` and `status.keys` from `store` unless they
    /// are current for `status.applied_index` already.
    pub(crate) fn refresh_digest(&mut self, store: &RwLock<KvStore>) {
        if self.digest_applied == Some(self.status.applied_index) {
            return;
        }
        let store = store.read();
        self.status.digest = store.digest_hex();
        self.status.keys = store.len();
        self.digest_applied = Some(self.status.applied_index);
    }
}

pub(crate) async fn write(shared: &Shared, command: Command) -> Result<Reply, WriteError> {
    let (reply, receive) = oneshot::channel();
    submit(shared, Request::Write { command, reply }, receive).await
}

/// Proposes a membership change and waits until it is applied here.
pub(crate) async fn change_membership(
    shared: &Shared,
    change: ConfChange,
) -> Result<(), WriteError> {
    let (reply, receive) = oneshot::channel();
    submit(shared, Request::ConfChange { change, reply }, receive)
        .await
        .map(|_| ())
}

/// Queues a request whose answer comes on `receive`, and waits for it.
async fn submit(
    shared: &Shared,
    request: Request,
    receive: oneshot::Receiver<Result<Reply, WriteError>>,
) -> Result<Reply, WriteError> {
    let queued = match shared.requests.try_send(request) {
        Ok(()) => Ok(()),
        Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
        // Boxed: the common path's future stays small.
        Err(mpsc::error::TrySendError::Full(request)) => Box::pin(shared.requests.send(request))
            .await
            .map_err(|_| ()),
    };
    queued.map_err(|()| WriteError::Refused("node is shutting down".into()))?;
    receive.await.unwrap_or_else(|_| {
        Err(WriteError::OutcomeUnknown(
            "node stopped before the write completed".into(),
        ))
    })
}

/// Waits until the state machine may be read at a linearizable point: a
/// ReadIndex issued after this call started was confirmed by a majority and
/// applied here. Reads that arrive before the driver's next turn share one
/// ReadIndex (see `ReadGate`).
pub(crate) async fn read_barrier(shared: &Shared) -> Result<(), ReadError> {
    let (batch, first) = shared.read_gate.join();
    if first {
        let request = Request::Read {
            batch: ReadAnnouncement(batch.clone()),
        };
        match shared.requests.try_send(request) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => {
                batch.complete(Err(ReadError::Refused("node is shutting down".into())))
            }
            // Boxed: the common path's future stays small (it is moved
            // into place for every read).
            Err(mpsc::error::TrySendError::Full(request)) => {
                Box::pin(announce_when_queued(shared, &batch, request)).await
            }
        }
    }
    BatchWait {
        batch: &batch,
        slot: None,
    }
    .await
}

/// Announces `batch` once the request queue has room.
async fn announce_when_queued(shared: &Shared, batch: &Arc<ReadBatch>, request: Request) {
    let mut announce = Announcement {
        gate: &shared.read_gate,
        batch,
        sent: false,
    };
    if shared.requests.send(request).await.is_err() {
        batch.complete(Err(ReadError::Refused("node is shutting down".into())));
    }
    announce.sent = true;
}

pub use raftkv::pipeline::READ_BATCH_READERS_MAX;

/// Linearizable reads that arrive while the driver is busy share one
/// ReadIndex and one confirmation (`raftkv::pipeline::ReadGate`, shared
/// with the simulator): the first reader opens a batch and announces it to
/// the driver; later readers join it until the driver closes it (when it
/// takes the batch, just before `read_index`).
#[derive(Default)]
pub(crate) struct ReadGate {
    open: Mutex<raftkv::pipeline::ReadGate<Arc<ReadBatch>>>,
}

impl ReadGate {
    /// Joins the open batch, or opens one; `true`: this reader opened it and
    /// must announce it to the driver.
    fn join(&self) -> (Arc<ReadBatch>, bool) {
        let (batch, opened) = self.open.lock().join(Arc::default);
        #[cfg(test)]
        {
            batch.state.lock().readers += 1;
        }
        (batch, opened)
    }

    /// The driver takes the open batch to issue its ReadIndex: readers that
    /// come after this start a new batch.
    pub(crate) fn take_open(&self) -> Option<Arc<ReadBatch>> {
        self.open.lock().take_open()
    }

    /// Closes `batch` if it is still the open one.
    pub(crate) fn close(&self, batch: &Arc<ReadBatch>) {
        self.open.lock().close_if(|open| Arc::ptr_eq(open, batch));
    }

    #[cfg(test)]
    fn open_batch(&self) -> Option<Arc<ReadBatch>> {
        self.open.lock().open().cloned()
    }
}

/// Readers sharing one ReadIndex, and its outcome once known.
#[derive(Default)]
pub(crate) struct ReadBatch {
    state: Mutex<BatchState>,
}

#[derive(Default)]
struct BatchState {
    /// Readers that joined (kept for tests).
    #[cfg(test)]
    readers: usize,
    /// The driver issued this batch's ReadIndex (or answered it).
    issued: bool,
    outcome: Option<Result<(), ReadError>>,
    /// One slot per waiting reader (a reader re-polled with a new waker
    /// replaces its own slot).
    wakers: Vec<Waker>,
}

impl ReadBatch {
    /// Marks the batch issued; `false` if it already was (the driver took it
    /// from the gate before its announcement arrived).
    pub(crate) fn mark_issued(&self) -> bool {
        !std::mem::replace(&mut self.state.lock().issued, true)
    }

    /// Answers every reader of the batch (the first outcome wins).
    pub(crate) fn complete(&self, outcome: Result<(), ReadError>) {
        let wakers = {
            let mut state = self.state.lock();
            if state.outcome.is_some() {
                return;
            }
            state.issued = true;
            state.outcome = Some(outcome);
            std::mem::take(&mut state.wakers)
        };
        for waker in wakers {
            waker.wake();
        }
    }

    #[cfg(test)]
    pub(crate) fn readers(&self) -> usize {
        self.state.lock().readers
    }
}

/// If the reader that opened a batch goes away before announcing it, the
/// batch would never reach the driver: close it and refuse its readers.
struct Announcement<'a> {
    gate: &'a ReadGate,
    batch: &'a Arc<ReadBatch>,
    sent: bool,
}

impl Drop for Announcement<'_> {
    fn drop(&mut self) {
        if !self.sent {
            self.gate.close(self.batch);
            if self.batch.mark_issued() {
                self.batch.complete(Err(ReadError::Refused(
                    "the read batch was abandoned before it reached the node; retry".into(),
                )));
            }
        }
    }
}

/// A batch on its way to the driver. If the driver stops before taking it
/// (the queue is dropped with it), its readers are told instead of waiting
/// forever.
pub(crate) struct ReadAnnouncement(pub(crate) Arc<ReadBatch>);

impl Drop for ReadAnnouncement {
    fn drop(&mut self) {
        if self.0.mark_issued() {
            self.0.complete(Err(ReadError::Refused(
                "the read never reached the node (it is stopping, or the reader that queued it left); retry".into(),
            )));
        }
    }
}

/// A driver that stops (or fails) tells the reads it still held.
pub(crate) fn refuse_stopped_reads(batches: Vec<Arc<ReadBatch>>) {
    for batch in batches {
        batch.complete(Err(ReadError::Refused(
            "node stopped before the read completed".into(),
        )));
    }
}

/// One reader waiting for its batch's outcome.
struct BatchWait<'a> {
    batch: &'a ReadBatch,
    slot: Option<usize>,
}

impl std::future::Future for BatchWait<'_> {
    type Output = Result<(), ReadError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let batch = self.batch;
        let mut state = batch.state.lock();
        if let Some(outcome) = &state.outcome {
            return std::task::Poll::Ready(outcome.clone());
        }
        match self.slot {
            Some(slot) => {
                if !state.wakers[slot].will_wake(cx.waker()) {
                    state.wakers[slot] = cx.waker().clone();
                }
            }
            None => {
                state.wakers.push(cx.waker().clone());
                let slot = state.wakers.len() - 1;
                drop(state);
                self.slot = Some(slot);
            }
        }
        std::task::Poll::Pending
    }
}

pub(crate) fn status(shared: &Shared) -> NodeStatus {
    let mut published = shared.status.lock();
    published.refresh_digest(&shared.store);
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
    let (payload_bytes, items) = command.size_hint();
    let capacity = payload_bytes + VARINT_BYTES_MAX * (items + 2);
    let encoded = postcard::to_extend(command, Vec::with_capacity(capacity))
        .expect("serializing a command into memory cannot fail");
    bytes::Bytes::from(encoded)
}

/// Writes waiting for their entry to be applied, in log index order.
///
/// A leader proposes at increasing indices, so a queue ordered by index is
/// enough. A proposal at or below an index still pending means this node
/// lost leadership and won it back with a shorter log before the driver saw
/// the change: the pending writes at that index or above left this node's
/// log, and whether another leader still commits them is unknown here.
#[derive(Default)]
pub(crate) struct PendingWrites {
    by_index: VecDeque<PendingWrite>,
}

struct PendingWrite {
    index: u64,
    term: u64,
    reply: oneshot::Sender<Result<Reply, WriteError>>,
}

const REPLACED: &str = "write was replaced by a newer leader's log; it was not applied, retry";
const LOST: &str = "leadership lost before the write committed; it may still be applied";

impl PendingWrites {
    pub fn insert(
        &mut self,
        term: u64,
        index: u64,
        reply: oneshot::Sender<Result<Reply, WriteError>>,
    ) {
        while self.by_index.back().is_some_and(|last| last.index >= index) {
            let lost = self.by_index.pop_back().expect("non-empty");
            let _ = lost
                .reply
                .send(Err(WriteError::OutcomeUnknown(LOST.into())));
        }
        self.by_index.push_back(PendingWrite { index, term, reply });
    }

    /// The entry at `index` with `term` was applied with result `reply`.
    pub fn applied(&mut self, index: u64, term: u64, reply: Option<Reply>) {
        // Any pending write at a lower index was overwritten (its index got
        // applied with another entry): it never took effect.
        while self
            .by_index
            .front()
            .is_some_and(|first| first.index < index)
        {
            let replaced = self.by_index.pop_front().expect("non-empty");
            let _ = replaced
                .reply
                .send(Err(WriteError::Refused(REPLACED.into())));
        }
        if self
            .by_index
            .front()
            .is_some_and(|first| first.index == index)
        {
            let pending = self.by_index.pop_front().expect("non-empty");
            let result = match reply {
                Some(reply) if pending.term == term => Ok(reply),
                _ => Err(WriteError::Refused(REPLACED.into())),
            };
            let _ = pending.reply.send(result);
        }
    }

    /// Leadership was lost: the outcome of every pending write is unknown.
    pub fn leadership_lost(&mut self) {
        for pending in std::mem::take(&mut self.by_index) {
            let _ = pending
                .reply
                .send(Err(WriteError::OutcomeUnknown(LOST.into())));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;
    use parking_lot::{Mutex, RwLock};
    use raftkv::kv::{Command, KvStore};
    use tokio::sync::mpsc;

    use raftkv::kv::Reply;

    use super::handle::{ReadError, WriteError};
    use super::{
        read_barrier, refuse_stopped_reads, PendingWrites, PublishedStatus, ReadAnnouncement,
        ReadGate, Request, Shared, READ_BATCH_READERS_MAX,
    };

    fn shared(queue_max: usize) -> (Arc<Shared>, mpsc::Receiver<Request>) {
        let (requests, receiver) = mpsc::channel(queue_max);
        let shared = Arc::new(Shared {
            store: Arc::new(RwLock::new(KvStore::new())),
            requests,
            status: Mutex::new(PublishedStatus::default()),
            read_gate: ReadGate::default(),
        });
        (shared, receiver)
    }

    fn spawn_reads(
        shared: &Arc<Shared>,
        count: usize,
    ) -> Vec<tokio::task::JoinHandle<Result<(), ReadError>>> {
        (0..count)
            .map(|_| {
                let shared = shared.clone();
                tokio::spawn(async move { read_barrier(&shared).await })
            })
            .collect()
    }

    /// The next announcement (kept alive by the caller, as the driver does
    /// until it has issued the batch).
    async fn next_batch(receiver: &mut mpsc::Receiver<Request>) -> ReadAnnouncement {
        match tokio::time::timeout(Duration::from_secs(5), receiver.recv()).await {
            Ok(Some(Request::Read { batch })) => batch,
            _ => panic!("expected a read batch announcement"),
        }
    }

    #[tokio::test]
    async fn reads_before_the_driver_takes_the_batch_share_one_announcement_and_outcome() {
        let (shared, mut receiver) = shared(16);
        let readers = spawn_reads(&shared, 5);
        let announcement = next_batch(&mut receiver).await;
        let batch = announcement.0.clone();
        // Let every reader join before the driver takes the batch.
        while batch.readers() < 5 {
            tokio::task::yield_now().await;
        }
        assert!(receiver.try_recv().is_err(), "one announcement per batch");
        let taken = shared.read_gate.take_open().expect("the batch is open");
        assert!(Arc::ptr_eq(&taken, &batch));
        assert!(batch.mark_issued(), "issued once");
        assert!(!batch.mark_issued(), "a second issue is refused");
        batch.complete(Ok(()));
        for reader in readers {
            assert_eq!(reader.await.unwrap(), Ok(()));
        }
    }

    #[tokio::test]
    async fn a_reader_after_the_batch_was_taken_waits_for_the_next_readindex() {
        let (shared, mut receiver) = shared(16);
        let first = spawn_reads(&shared, 1);
        let first_announcement = next_batch(&mut receiver).await;
        let first_batch = first_announcement.0.clone();
        shared.read_gate.close(&first_batch);
        let second = spawn_reads(&shared, 1);
        let second_announcement = next_batch(&mut receiver).await;
        let second_batch = second_announcement.0.clone();
        assert!(!Arc::ptr_eq(&first_batch, &second_batch));
        first_batch.complete(Ok(()));
        assert_eq!(first.into_iter().next().unwrap().await.unwrap(), Ok(()));
        let second = second.into_iter().next().unwrap();
        tokio::task::yield_now().await;
        assert!(
            !second.is_finished(),
            "the newer read needs its own ReadIndex"
        );
        second_batch.complete(Err(ReadError::NoLeader));
        assert_eq!(second.await.unwrap(), Err(ReadError::NoLeader));
    }

    #[tokio::test]
    async fn reads_are_refused_when_the_driver_stops_with_them() {
        let (shared, mut receiver) = shared(16);
        let mut pending = raftkv::pipeline::PendingReads::default();
        let held = spawn_reads(&shared, 1).pop().unwrap();
        let announcement = next_batch(&mut receiver).await;
        shared.read_gate.close(&announcement.0);
        assert!(announcement.0.mark_issued());
        pending.register(announcement.0.clone());
        drop(announcement);
        let queued = spawn_reads(&shared, 1).pop().unwrap();
        while shared.read_gate.open_batch().is_none() {
            tokio::task::yield_now().await;
        }
        // The driver goes away: its pending reads and its queue with it.
        refuse_stopped_reads(pending.take_all());
        drop(receiver);
        for reader in [held, queued] {
            match tokio::time::timeout(Duration::from_secs(5), reader).await {
                Ok(Ok(Err(ReadError::Refused(why)))) => assert!(!why.is_empty()),
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_full_batch_starts_a_new_one() {
        let gate = ReadGate::default();
        let (first, opened) = gate.join();
        assert!(opened);
        for _ in 1..READ_BATCH_READERS_MAX {
            let (batch, opened) = gate.join();
            assert!(!opened);
            assert!(Arc::ptr_eq(&batch, &first));
        }
        let (next, opened) = gate.join();
        assert!(
            opened,
            "reader {} opens a new batch",
            READ_BATCH_READERS_MAX + 1
        );
        assert!(!Arc::ptr_eq(&next, &first));
        assert_eq!(first.readers(), READ_BATCH_READERS_MAX);
    }

    #[tokio::test]
    async fn readers_of_a_batch_whose_announcement_was_abandoned_are_refused() {
        let (shared, mut receiver) = shared(1);
        // Fill the queue so the first reader's announcement waits.
        let (reply, _receive) = tokio::sync::oneshot::channel();
        shared
            .requests
            .try_send(Request::Write {
                command: Command::Incr {
                    key: Bytes::from_static(b"k"),
                },
                reply,
            })
            .unwrap_or_else(|_| panic!("the queue has room"));
        let opener = spawn_reads(&shared, 1).pop().unwrap();
        while shared.read_gate.open_batch().is_none() {
            tokio::task::yield_now().await;
        }
        let joiner = spawn_reads(&shared, 1).pop().unwrap();
        let batch = shared.read_gate.open_batch().unwrap();
        while batch.readers() < 2 {
            tokio::task::yield_now().await;
        }
        opener.abort();
        assert!(opener.await.unwrap_err().is_cancelled());
        match tokio::time::timeout(Duration::from_secs(5), joiner).await {
            Ok(Ok(Err(ReadError::Refused(why)))) => assert!(why.contains("retry"), "{why}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(
            shared.read_gate.open_batch().is_none(),
            "the batch was closed"
        );
        assert!(matches!(receiver.try_recv(), Ok(Request::Write { .. })));
        assert!(
            receiver.try_recv().is_err(),
            "the abandoned batch never reached the driver"
        );
    }

    type WriteResult = Result<Reply, WriteError>;

    fn write_slot() -> (
        tokio::sync::oneshot::Sender<WriteResult>,
        tokio::sync::oneshot::Receiver<WriteResult>,
    ) {
        tokio::sync::oneshot::channel()
    }

    #[test]
    fn pending_writes_are_answered_in_index_order_and_overwritten_ones_refused() {
        let mut writes = PendingWrites::default();
        let (a, mut a_rx) = write_slot();
        let (b, mut b_rx) = write_slot();
        let (c, mut c_rx) = write_slot();
        writes.insert(2, 5, a);
        writes.insert(2, 6, b);
        writes.insert(2, 8, c);
        // Index 5 applied with the write's term: its reply.
        writes.applied(5, 2, Some(Reply::Ok));
        assert_eq!(a_rx.try_recv().unwrap(), Ok(Reply::Ok));
        assert!(b_rx.try_recv().is_err(), "index 6 is not applied yet");
        // Index 6 applied with another term: replaced.
        writes.applied(6, 3, Some(Reply::Ok));
        assert!(
            matches!(b_rx.try_recv().unwrap(), Err(WriteError::Refused(why)) if why.contains("replaced"))
        );
        // Index 9 applied: the write at 8 was skipped over, never applied.
        writes.applied(9, 3, Some(Reply::Ok));
        assert!(
            matches!(c_rx.try_recv().unwrap(), Err(WriteError::Refused(why)) if why.contains("replaced"))
        );
    }

    #[test]
    fn a_proposal_at_a_pending_index_gives_the_writes_it_overwrote_an_unknown_outcome() {
        let mut writes = PendingWrites::default();
        let (old6, mut old6_rx) = write_slot();
        let (old7, mut old7_rx) = write_slot();
        let (new6, mut new6_rx) = write_slot();
        let (kept, mut kept_rx) = write_slot();
        writes.insert(1, 4, kept);
        writes.insert(2, 6, old6);
        writes.insert(2, 7, old7);
        writes.insert(4, 6, new6);
        for rx in [&mut old6_rx, &mut old7_rx] {
            assert!(matches!(
                rx.try_recv().unwrap(),
                Err(WriteError::OutcomeUnknown(_))
            ));
        }
        writes.applied(4, 1, Some(Reply::Integer(1)));
        assert_eq!(kept_rx.try_recv().unwrap(), Ok(Reply::Integer(1)));
        writes.applied(6, 4, Some(Reply::Ok));
        assert_eq!(new6_rx.try_recv().unwrap(), Ok(Reply::Ok));
    }

    #[test]
    fn pending_writes_have_an_unknown_outcome_when_leadership_is_lost() {
        let mut writes = PendingWrites::default();
        let (a, mut a_rx) = write_slot();
        writes.insert(3, 10, a);
        writes.leadership_lost();
        assert!(matches!(
            a_rx.try_recv().unwrap(),
            Err(WriteError::OutcomeUnknown(_))
        ));
    }

    #[test]
    fn the_published_digest_is_computed_once_per_applied_index() {
        let store = RwLock::new(KvStore::new());
        let mut published = PublishedStatus {
            digest_applied: Some(0),
            ..Default::default()
        };
        // Before the first publish: nothing is computed.
        published.refresh_digest(&store);
        assert_eq!(published.status.digest, "");
        published.digest_applied = None;
        published.refresh_digest(&store);
        let empty = KvStore::new().digest_hex();
        assert_eq!(published.status.digest, empty);
        let set = Command::Set {
            key: Bytes::from_static(b"k"),
            value: Bytes::from_static(b"v"),
        };
        store.write().apply(&set);
        // Same applied index: the cached digest stays (the store only
        // moves together with the applied index).
        published.refresh_digest(&store);
        assert_eq!(published.status.digest, empty);
        published.status.applied_index = 1;
        published.refresh_digest(&store);
        assert_eq!(published.status.digest, store.read().digest_hex());
        assert_ne!(published.status.digest, empty);
        assert_eq!(published.status.keys, 1);
        assert_eq!(published.digest_applied, Some(1));
    }

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
