//! Log compaction: when to snapshot this node's own state, the task that
//! writes the snapshot file, and the mapping of the snapshot file the core
//! sends to followers.
//!
//! `Compaction` owns the snapshot thresholds, the state of the one
//! compaction that may be running (started, failed, how long its clone
//! took), the channel its snapshot-writing task reports on, the index of
//! the newest snapshot saved or queued, and the file mappings
//! (`SnapshotPages`) behind the core's snapshot bytes, whose resident pages
//! it releases every `SNAPSHOT_PAGES_RELEASE_MS`. The driver owns one and
//! calls it from its Ready loop; the WAL thread, not this type, puts a
//! written snapshot in place.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::RwLock;
use raftkv::kv::KvStore;
use raftkv::message::SnapshotMeta;
use raftkv::raft::RawNode;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::log_events;
use crate::storage::{PreparedSnapshot, SnapshotPages};

/// A snapshot waits for at least 1/this of the key count in applied
/// entries: at most this many keys are serialized per applied entry, and
/// the in-memory log holds at most about a quarter as many entries as the
/// map holds keys (plus `--snapshot-entries-threshold`).
pub const SNAPSHOT_KEYS_PER_ENTRY_MAX: u64 = 4;
/// After a snapshot could not be written, the next attempt waits this long.
pub const SNAPSHOT_RETRY_MS: u64 = 5_000;
/// Pages of the snapshot file mapping that sending it paged in are
/// dropped from this process's resident memory at most this often.
pub const SNAPSHOT_PAGES_RELEASE_MS: u64 = 1_000;

/// What the snapshot-writing task hands back: the written (not yet
/// renamed) snapshot file, or why it could not be written.
pub(crate) type Written = Result<PreparedSnapshot, String>;

/// Snapshot scheduling and the snapshot file mappings of one node (see the
/// module docs).
pub(crate) struct Compaction {
    /// Entries applied since the last snapshot before the next one is
    /// considered (`--snapshot-entries-threshold`).
    entries_threshold: u64,
    /// Where own snapshots are written (this node's data dir).
    data_dir: PathBuf,
    /// The mapping of the snapshot file the core keeps (its state bytes).
    snapshot_pages: Option<SnapshotPages>,
    /// The mapping of an own snapshot being saved (current once compacted).
    pending_snapshot_pages: Option<SnapshotPages>,
    /// When `snapshot_pages` last had its resident pages released.
    pages_released: Instant,
    /// Index of the newest snapshot saved (or queued to be saved).
    durable_snapshot_index: u64,
    /// When the running compaction started (None: none is running).
    started: Option<Instant>,
    /// When the last compaction failed to write its snapshot.
    failed: Option<Instant>,
    /// Where the snapshot task hands over the snapshot file it wrote.
    written: mpsc::Sender<Written>,
    /// How long the last clone took (microseconds), for the log_compacted
    /// event.
    clone_us: Option<u64>,
}

impl Compaction {
    /// A compaction state for a node whose newest durable snapshot is at
    /// `durable_snapshot_index`, mapped as `snapshot_pages` (None: no
    /// snapshot yet). The receiver gets every written snapshot file; the
    /// driver passes each to `written`.
    pub(crate) fn new(
        entries_threshold: u64,
        data_dir: PathBuf,
        snapshot_pages: Option<SnapshotPages>,
        durable_snapshot_index: u64,
    ) -> (Compaction, mpsc::Receiver<Written>) {
        // Capacity 1 is enough: one compaction runs at a time.
        let (written, receiver) = mpsc::channel(1);
        let compaction = Compaction {
            entries_threshold,
            data_dir,
            snapshot_pages,
            pending_snapshot_pages: None,
            pages_released: Instant::now(),
            durable_snapshot_index,
            started: None,
            failed: None,
            written,
            clone_us: None,
        };
        (compaction, receiver)
    }

    /// Snapshots the state machine once `entries_threshold` entries were
    /// applied since the last snapshot, and at least a quarter as many as
    /// there are keys (`SNAPSHOT_KEYS_PER_ENTRY_MAX`): a snapshot costs time
    /// in proportion to the keys, so this bounds its cost per applied entry
    /// (four keys' worth) whatever the size of the state, and the in-memory
    /// log never outgrows a quarter of it.
    ///
    /// The map is persistent: the clone taken here is O(1) (it shares every
    /// node) and stays the state at `applied` while applying goes on (writes
    /// copy the few nodes they touch). A blocking task streams the clone
    /// into a temporary snapshot file and the WAL thread puts it in place,
    /// so neither the clone, the serialization nor the disk stalls the
    /// Ready loop, and no serialized image is held in memory.
    pub(crate) fn maybe_start(
        &mut self,
        raw: &RawNode,
        store: &RwLock<KvStore>,
        applied: u64,
        applied_term: u64,
        snapshot_index: u64,
    ) {
        self.maybe_release_snapshot_pages();
        if self.started.is_some() || applied < snapshot_index + self.entries_threshold {
            return;
        }
        if self
            .failed
            .is_some_and(|failed| failed.elapsed() < Duration::from_millis(SNAPSHOT_RETRY_MS))
        {
            return;
        }
        let started = Instant::now();
        let image = {
            let store = store.read();
            if applied < snapshot_index + store.len() / SNAPSHOT_KEYS_PER_ENTRY_MAX {
                return;
            }
            store.clone()
        };
        self.clone_us = Some(started.elapsed().as_micros() as u64);
        self.started = Some(started);
        let meta = SnapshotMeta {
            index: applied,
            term: applied_term,
            members: raw.members_at(applied),
        };
        self.spawn_writer(image, meta);
    }

    /// Streams `image` into a temporary snapshot file on a blocking thread
    /// and hands the result to the driver's `written` queue.
    fn spawn_writer(&self, image: KvStore, meta: SnapshotMeta) {
        let dir = self.data_dir.clone();
        let written = self.written.clone();
        tokio::task::spawn_blocking(move || {
            let prepared = crate::storage::prepare_snapshot(&dir, meta, |out| {
                let mut out = out;
                image.write_snapshot(&mut out)
            })
            .map_err(|e| e.to_string());
            // Dropped here, off the Ready loop: nodes only the clone still
            // holds are freed by this thread.
            drop(image);
            // Capacity 1 and one compaction at a time: never full. Closed
            // only when the driver has stopped (the file is then removed).
            let _ = written.try_send(prepared);
        });
    }

    /// Sending the snapshot to a follower pages the file's mapping in; those
    /// pages are clean copies of the file, dropped from this process every
    /// `SNAPSHOT_PAGES_RELEASE_MS` (a transfer under way reads them again
    /// from the page cache).
    fn maybe_release_snapshot_pages(&mut self) {
        if self.pages_released.elapsed() < Duration::from_millis(SNAPSHOT_PAGES_RELEASE_MS) {
            return;
        }
        self.pages_released = Instant::now();
        if let Some(pages) = &self.snapshot_pages {
            pages.release();
        }
    }

    /// The snapshot task finished: returns the file for the WAL thread to
    /// put in place, unless writing failed (retried after
    /// `SNAPSHOT_RETRY_MS`) or a newer snapshot from the leader replaced the
    /// state meanwhile (dropping it removes its file).
    pub(crate) fn written(&mut self, written: Written) -> Option<PreparedSnapshot> {
        let prepared = match written {
            Ok(prepared) => prepared,
            Err(reason) => {
                warn!(
                    event = log_events::SNAPSHOT_FAILED,
                    reason = reason.as_str(),
                    retry_ms = SNAPSHOT_RETRY_MS
                );
                self.started = None;
                self.failed = Some(Instant::now());
                return None;
            }
        };
        if prepared.meta().index <= self.durable_snapshot_index {
            self.started = None;
            return None;
        }
        self.failed = None;
        self.durable_snapshot_index = prepared.meta().index;
        self.pending_snapshot_pages = prepared.pages();
        Some(prepared)
    }

    /// The own snapshot at `index` is durable: the core drops the log it covers.
    pub(crate) fn finish(&mut self, raw: &mut RawNode, index: u64, data: Bytes) {
        let started = self.started.take();
        let bytes = data.len();
        if let Err(e) = raw.compact(index, data) {
            warn!(event = log_events::COMPACT_REFUSED, reason = %e);
        } else {
            self.snapshot_pages = self.pending_snapshot_pages.take();
            info!(
                event = log_events::LOG_COMPACTED,
                index,
                bytes,
                clone_us = self.clone_us,
                elapsed_ms = started.map(|s| s.elapsed().as_millis() as u64)
            );
        }
    }

    /// A snapshot from the leader at `index` was queued to be saved: an own
    /// snapshot at or below it is stale.
    pub(crate) fn leader_snapshot_queued(&mut self, index: u64) {
        self.durable_snapshot_index = self.durable_snapshot_index.max(index);
    }

    /// The leader's snapshot at `index` is durable: the core keeps the
    /// file's mapping instead of the received copy.
    pub(crate) fn map_leader_snapshot(&mut self, raw: &mut RawNode, index: u64, term: u64) {
        match crate::storage::map_snapshot(&self.data_dir, index, term) {
            Ok((mapped, pages)) => {
                if raw.replace_snapshot_data(index, mapped) {
                    self.snapshot_pages = Some(pages);
                }
            }
            Err(e) => warn!(event = log_events::SNAPSHOT_MAP_FAILED, index, reason = %e),
        }
    }
}
