//! Durable storage for one node: the write-ahead log (entries and hard
//! state), snapshot files, and crash recovery.
//!
//! # Files
//!
//! ```text
//! DATA/node-<id>/
//!   LOCK                          locked (flock) while a process uses the dir:
//!                                 a second process opening it is refused
//!   identity                      node id, cluster id and incarnation
//!                                 (see `identity.rs`)
//!   snapshot-<index>-<term>.snap  the newest snapshot (older ones are deleted)
//!   wal/00000001.wal ...          WAL segments, numbered consecutively
//! ```
//!
//! A WAL segment is a sequence of records, `u32 length | u32 CRC32C | payload`
//! (little-endian; the checksum covers the length bytes and the payload; the
//! payload is at most [`RECORD_BYTES_MAX`] bytes). The payload is the postcard
//! encoding of one of:
//!
//! - `BatchStart`: opens the records of one [`Storage::sync`] call;
//! - `HardState(term, vote, commit)`: the last one replayed wins;
//! - `Entry(entry)`: an entry whose index is at or below the last index
//!   replayed so far replaces the log from that index (Raft conflict
//!   truncation needs no record of its own);
//! - `Snapshot { index, term, discard_log }`: a snapshot through `index` is
//!   durable; entries up to it (or all, with `discard_log`) are dropped.
//!
//! Segments rotate once they pass `segment_bytes_max` (default
//! [`SEGMENT_BYTES_MAX_DEFAULT`]), and on every snapshot. Each new segment
//! starts with the current hard state, so older segments hold nothing that
//! is still needed once a snapshot covers their entries; those are deleted,
//! oldest first. A snapshot file has its own header and checksum (see
//! `snapshot.rs`) and is written to a temporary name, fsynced, renamed and
//! the directory fsynced before the WAL records it.
//!
//! # Durability
//!
//! - [`Storage::append`] and [`Storage::set_hard_state`] only buffer. One
//!   [`Storage::sync`] writes everything buffered and calls `fdatasync` once
//!   (group commit). What `sync` returned `Ok` for survives a crash (given a
//!   disk that honours fsync). Nothing may be acknowledged before that.
//! - Unsynced records may or may not survive a crash: buffers past
//!   [`PENDING_BYTES_MAX`] and segment rotation write (not sync) early.
//!   Recovery then returns a prefix of them, which is harmless for Raft (they
//!   were never acknowledged).
//! - [`Storage::save_snapshot`] returns once the snapshot and its WAL record
//!   are durable.
//! - After any failed write or fsync, the storage refuses all further work
//!   ([`StorageError::Failed`]): after a failed fsync the page cache cannot be
//!   trusted, so the node must restart and recover from the files.
//!
//! # Recovery
//!
//! [`Storage::open`] checks everything before it changes anything on disk:
//! it replays all segments in order, picks the newest snapshot file that
//! validates, and requires the log to follow that snapshot without a gap.
//!
//! - Damage at the end of the last segment is a torn write if only records of
//!   the same sync batch follow it: the segment is truncated there and the cut
//!   bytes reported as `torn_tail_bytes`. Those records were never
//!   acknowledged, because the batch's fsync had not returned. Nothing but
//!   zeros after the last record is the segment's preallocated space: it is
//!   cut too, and not counted as torn.
//! - Damage anywhere else (an earlier segment, or followed by a later batch's
//!   `BatchStart`) is corruption: `open` fails with [`StorageError::Corrupt`]
//!   naming the file and byte offset, and leaves the WAL and snapshot files
//!   untouched (it only creates `LOCK` and an absent `wal/`).
//! - A checksum-valid record that contradicts the log (an entry inside a
//!   snapshot recorded before it) is corruption too. Entries that do not
//!   follow the log restart it: this happens legitimately when a conflict
//!   truncation reaches into segments already deleted, and the log must
//!   then still follow the chosen snapshot without a gap, or `open` fails.
//! - A snapshot file that fails validation is skipped in favour of an older
//!   valid one only if the WAL still holds every entry after that one;
//!   otherwise `open` fails naming the bad file.
//!
//! # Known limits
//!
//! - Damage confined to the last sync batch of the last segment cannot be
//!   told apart from a torn write, so a bit flip there after its fsync loses
//!   the rest of that batch (as in etcd and RocksDB). Replicas restore those
//!   entries, but a lone node would lose acknowledged writes.
//! - Throughput depends on how many entries the caller gathers per `sync`:
//!   each costs one `fdatasync` (segments are preallocated, so that is one
//!   data write and a cache flush, not a metadata update as well).
//! - A snapshot from the leader is written from memory (the core assembles
//!   it there); a node's own snapshot is streamed to its file
//!   ([`prepare_snapshot`], [`Storage::save_prepared_snapshot`]) and read back
//!   as a mapping of the file (see `snapshot.rs`).

mod identity;
mod log_terms;
mod record;
mod recovery;
mod snapshot;
mod wal;

#[cfg(test)]
mod tests;

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::Instant;

use raftkv::message::{Entry, Index, Snapshot, Term};
use raftkv::raft::{HardState, InitialState};

pub use identity::{Identity, IdentityError, IDENTITY_FILE_NAME};
pub use record::RECORD_BYTES_MAX;
pub use snapshot::{
    data_reader as snapshot_data_reader, map as map_snapshot, prepare as prepare_snapshot,
    PreparedSnapshot, SnapshotPages, SNAPSHOT_DATA_BYTES_MAX, SNAPSHOT_META_BYTES_MAX,
};
pub use wal::{PENDING_BYTES_MAX, PREALLOCATE_BYTES, TAIL_SCAN_CHECKSUM_BYTES_MAX};

use log_terms::LogTerms;
use wal::Wal;

use crate::log_events;

/// Default size past which a WAL segment is closed and a new one started.
pub const SEGMENT_BYTES_MAX_DEFAULT: u64 = 64 * 1024 * 1024;

/// Subdirectory of the data dir holding the WAL segments.
const WAL_DIR_NAME: &str = "wal";
/// File in the data dir locked while a process uses the dir.
const LOCK_FILE_NAME: &str = "LOCK";

/// Slack for an entry's fields around its data in an encoded record.
const ENTRY_RECORD_OVERHEAD_BYTES_MAX: usize = 64;

/// Tunables of [`Storage::open_with_options`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageOptions {
    /// A segment is closed once it holds this many bytes.
    pub segment_bytes_max: u64,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            segment_bytes_max: SEGMENT_BYTES_MAX_DEFAULT,
        }
    }
}

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("node data: I/O error on {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The files are damaged in a way recovery must not guess about.
    #[error("{}", corrupt_message(.file, *.offset, .what))]
    Corrupt {
        file: PathBuf,
        offset: u64,
        what: String,
    },
    #[error(
        "node data: {} is in use by another process (its LOCK file is held); stop that node first",
        .dir.display()
    )]
    Locked { dir: PathBuf },
    /// The caller asked for something the log cannot hold (a bug upstream).
    #[error("node storage: refused append: {what}")]
    InvalidAppend { what: String },
    #[error("node storage: refused snapshot: {what}")]
    InvalidSnapshot { what: String },
    #[error("node storage: a record of {bytes} bytes exceeds the {max_bytes}-byte limit")]
    RecordTooLarge { bytes: usize, max_bytes: usize },
    #[error("node storage: snapshot too large (meta {meta_bytes} bytes, data {data_bytes} bytes)")]
    SnapshotTooLarge { meta_bytes: usize, data_bytes: u64 },
    #[error("node storage: cannot encode {what}")]
    Encode { what: String },
    /// An earlier write or fsync failed; see the module docs.
    #[error(
        "node storage: an earlier write failed ({first_failure}); restart the node to recover from its files"
    )]
    Failed { first_failure: String },
}

fn corrupt_message(file: &Path, offset: u64, what: &str) -> String {
    let name = || {
        file.file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| file.display().to_string())
    };
    let described = match file.extension().and_then(|extension| extension.to_str()) {
        Some("wal") => format!("WAL segment {}", name()),
        Some("snap") => format!("snapshot {}", name()),
        _ => format!("data dir {}", file.display()),
    };
    format!(
        "node data: {described} is corrupt at byte {offset} ({what}); refusing to start. \
         Move the data dir aside to rebuild this node from its peers."
    )
}

/// Maps an I/O error to [`StorageError::Io`] naming `path`.
fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Makes the directory's entries (creations, renames, removals) durable.
fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(io_error(dir))
}

/// What recovery found; the driver logs it as `event="recovery"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoverySummary {
    /// 0 when there is no snapshot.
    pub snapshot_index: u64,
    pub snapshot_term: u64,
    /// WAL segments replayed.
    pub segments: usize,
    /// Log entries recovered after the snapshot.
    pub entries: u64,
    /// `snapshot_index + 1`: the first index the log may hold.
    pub first_index: u64,
    /// Last entry index, or the snapshot index when the log is empty.
    pub last_index: u64,
    pub hard_state: HardState,
    /// Bytes of a torn write cut from the end of the last segment.
    pub torn_tail_bytes: u64,
    /// Newer snapshot files that failed validation and were skipped
    /// (`name: reason`). They are left in place for inspection.
    pub skipped_snapshots: Vec<String>,
    pub elapsed_us: u64,
}

impl fmt::Display for RecoverySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "snapshot_index={} snapshot_term={} segments={} entries={} first_index={} last_index={} \
             term={} vote={} commit={} torn_tail_bytes={} elapsed_us={}",
            self.snapshot_index,
            self.snapshot_term,
            self.segments,
            self.entries,
            self.first_index,
            self.last_index,
            self.hard_state.term,
            self.hard_state.vote,
            self.hard_state.commit,
            self.torn_tail_bytes,
            self.elapsed_us,
        )?;
        if !self.skipped_snapshots.is_empty() {
            write!(f, " skipped_snapshots={:?}", self.skipped_snapshots)?;
        }
        Ok(())
    }
}

/// A node's durable log, hard state and snapshot. See the module docs.
pub struct Storage {
    dir: PathBuf,
    wal: Wal,
    /// The snapshot, the last index and every entry's term, as recorded
    /// (synced or buffered). Invariant: last index >= snapshot index.
    log: LogTerms,
    /// Why the storage stopped accepting work (see [`StorageError::Failed`]).
    failure: Option<String>,
    /// Holds the exclusive lock on `LOCK` for as long as the storage lives.
    _lock: File,
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Storage")
            .field("dir", &self.dir)
            .field("snapshot", &self.log.snapshot())
            .field("last_index", &self.log.last_index())
            .field("segments", &self.wal.segment_count())
            .field("failure", &self.failure)
            .finish()
    }
}

impl Storage {
    /// Opens (creating if absent) the data dir, recovers: newest valid
    /// snapshot, WAL replay, torn tail truncated.
    pub fn open(dir: &Path) -> Result<(Storage, InitialState, RecoverySummary), StorageError> {
        Storage::open_with_options(dir, StorageOptions::default())
    }

    /// [`Storage::open`] with explicit tunables.
    pub fn open_with_options(
        dir: &Path,
        options: StorageOptions,
    ) -> Result<(Storage, InitialState, RecoverySummary), StorageError> {
        let started = Instant::now();
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        let lock = lock_dir(dir)?;
        let wal_dir = dir.join(WAL_DIR_NAME);
        if !wal_dir.is_dir() {
            fs::create_dir(&wal_dir).map_err(io_error(&wal_dir))?;
            sync_dir(dir)?;
        }

        // Read and check everything first; nothing on disk changes until
        // recovery knows the files are sound.
        let listing = snapshot::list(dir)?;
        let recovery::WalReplay {
            mut replay,
            segments,
            torn_tail,
        } = recovery::replay_wal(&wal_dir)?;
        if segments.is_empty() && !listing.snapshots.is_empty() {
            return Err(StorageError::Corrupt {
                file: wal_dir,
                offset: 0,
                what: "the WAL is missing but a snapshot exists, so the term and vote are lost"
                    .into(),
            });
        }
        let aligned = recovery::align_with_snapshot(dir, &listing.snapshots, &mut replay)?;

        let mut torn_tail_bytes = 0;
        if let Some(tail) = torn_tail {
            truncate_file(&tail.path, tail.valid_bytes)?;
            if !tail.zeros {
                torn_tail_bytes = tail.file_bytes - tail.valid_bytes;
            }
        }
        for temporary in &listing.temporaries {
            fs::remove_file(temporary).map_err(io_error(temporary))?;
        }
        let segment_count = segments.len();
        let mut wal = Wal::open(
            &wal_dir,
            segments,
            replay.hard_state,
            options.segment_bytes_max,
        )?;
        if let Some((index, term, discard_log)) = aligned.marker_to_complete {
            // A crash came between saving the snapshot file and logging it.
            wal.push_snapshot_marker(index, term, discard_log)?;
            wal.sync()?;
        }
        let (snapshot_index, snapshot_term) = aligned
            .snapshot
            .as_ref()
            .map(|s| (s.meta.index, s.meta.term))
            .unwrap_or((0, 0));
        // The WAL now names the chosen snapshot; older files are not needed.
        for older in listing
            .snapshots
            .iter()
            .filter(|s| s.index < snapshot_index)
        {
            remove_quietly(&older.path);
        }

        let skipped_snapshots = aligned
            .skipped_snapshots
            .iter()
            .map(|(path, invalid)| {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                tracing::warn!(
                    event = log_events::SNAPSHOT_SKIPPED,
                    file = %path.display(),
                    offset = invalid.offset,
                    reason = %invalid.what
                );
                format!("{name}: {} at byte {}", invalid.what, invalid.offset)
            })
            .collect();
        let entries = replay.entries;
        let mut log = LogTerms::new(snapshot_index, snapshot_term);
        for entry in &entries {
            log.push(entry.index, entry.term);
        }
        let last_index = log.last_index();
        let summary = RecoverySummary {
            snapshot_index,
            snapshot_term,
            segments: segment_count,
            entries: entries.len() as u64,
            first_index: snapshot_index + 1,
            last_index,
            hard_state: replay.hard_state,
            torn_tail_bytes,
            skipped_snapshots,
            elapsed_us: started.elapsed().as_micros() as u64,
        };
        let initial = InitialState {
            hard_state: replay.hard_state,
            snapshot: aligned.snapshot,
            entries,
        };
        let storage = Storage {
            dir: dir.to_path_buf(),
            wal,
            log,
            failure: None,
            _lock: lock,
        };
        Ok((storage, initial, summary))
    }

    /// Appends entries; if `entries[0].index <= last_index()`, the log is
    /// first truncated from there (Raft conflict). Buffered: durable only
    /// after [`Storage::sync`].
    ///
    /// Refused (nothing recorded) when the entries are not consecutive,
    /// would leave a gap after the log, or rewrite the snapshot's entries.
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        self.check_usable()?;
        let Some(first) = entries.first() else {
            return Ok(());
        };
        self.validate_append(entries, first.index)?;
        for entry in entries {
            let pushed = self.wal.push_entry(entry);
            self.fail_on_error(pushed)?;
            self.log.push(entry.index, entry.term);
        }
        Ok(())
    }

    fn validate_append(&self, entries: &[Entry], first_index: Index) -> Result<(), StorageError> {
        let refuse = |what: String| Err(StorageError::InvalidAppend { what });
        let (snapshot_index, _) = self.log.snapshot();
        if first_index <= snapshot_index {
            return refuse(format!(
                "entries start at {first_index} but the log is compacted through {snapshot_index}"
            ));
        }
        let last_index = self.log.last_index();
        if first_index > last_index + 1 {
            return refuse(format!(
                "entries start at {first_index} but the log ends at {last_index}: that would leave a gap"
            ));
        }
        for pair in entries.windows(2) {
            if pair[1].index != pair[0].index + 1 {
                return refuse(format!(
                    "entry {} follows entry {}",
                    pair[1].index, pair[0].index
                ));
            }
        }
        for entry in entries {
            if entry.data.len() + ENTRY_RECORD_OVERHEAD_BYTES_MAX > RECORD_BYTES_MAX {
                return Err(StorageError::RecordTooLarge {
                    bytes: entry.data.len() + ENTRY_RECORD_OVERHEAD_BYTES_MAX,
                    max_bytes: RECORD_BYTES_MAX,
                });
            }
        }
        Ok(())
    }

    /// Records the hard state; durable after [`Storage::sync`].
    pub fn set_hard_state(&mut self, hard_state: &HardState) -> Result<(), StorageError> {
        self.check_usable()?;
        if *hard_state == self.wal.hard_state() {
            return Ok(());
        }
        let pushed = self.wal.push_hard_state(hard_state);
        self.fail_on_error(pushed)
    }

    /// One fsync covering everything since the last sync (group commit).
    /// No-op if nothing is pending.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.check_usable()?;
        let synced = self.wal.sync();
        self.fail_on_error(synced)
    }

    /// Saves a snapshot (temp file, fsync, rename, fsync dir), then drops log
    /// entries and segments wholly covered by it. With `discard_log` (a
    /// snapshot from the leader that does not match the log) the whole log is
    /// dropped. The hard state is kept. Also syncs anything buffered.
    pub fn save_snapshot(
        &mut self,
        snapshot: &Snapshot,
        discard_log: bool,
    ) -> Result<(), StorageError> {
        self.place_snapshot(&snapshot.meta, discard_log, |dir| {
            snapshot::write(dir, snapshot).map(drop)
        })
    }

    /// [`Storage::save_snapshot`] for this node's own snapshot, already
    /// written and fsynced by [`prepare_snapshot`]: renames it into place.
    /// Returns the snapshot with its state mapped from the file. Keeps the
    /// log after the snapshot (it is this node's own applied state).
    pub fn save_prepared_snapshot(
        &mut self,
        mut prepared: PreparedSnapshot,
    ) -> Result<Snapshot, StorageError> {
        let meta = prepared.meta().clone();
        self.place_snapshot(&meta, false, |dir| {
            snapshot::install_prepared(dir, &mut prepared).map(drop)
        })?;
        Ok(prepared.snapshot())
    }

    fn place_snapshot(
        &mut self,
        meta: &raftkv::message::SnapshotMeta,
        discard_log: bool,
        place_file: impl FnOnce(&Path) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        self.check_usable()?;
        let (index, term) = (meta.index, meta.term);
        let (stored_index, stored_term) = self.log.snapshot();
        let refuse = |what: String| Err(StorageError::InvalidSnapshot { what });
        if index == 0 {
            return refuse("a snapshot must cover at least index 1".into());
        }
        if index < stored_index {
            return refuse(format!(
                "snapshot at index {index} is older than the stored one at {stored_index}"
            ));
        }
        if index == stored_index && term != stored_term {
            return refuse(format!(
                "snapshot at index {index} has term {term} but the stored one has term {stored_term}"
            ));
        }
        let saved = self.write_snapshot_durably(index, term, discard_log, place_file);
        self.fail_on_error(saved)?;
        self.log.compact(index, term, discard_log);
        self.remove_obsolete_files(discard_log);
        Ok(())
    }

    fn write_snapshot_durably(
        &mut self,
        index: Index,
        term: Term,
        discard_log: bool,
        place_file: impl FnOnce(&Path) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        place_file(&self.dir)?;
        // A fresh segment starting with the hard state, then the marker: all
        // older segments become deletable once the snapshot covers them.
        self.wal.rotate()?;
        self.wal.push_snapshot_marker(index, term, discard_log)?;
        self.wal.sync()
    }

    /// Deletes snapshot files other than the current one and the segments
    /// the current snapshot covers. Best effort: leftovers are harmless (the
    /// WAL's snapshot record makes recovery ignore them), so a failure is
    /// logged rather than failing the save that already succeeded.
    fn remove_obsolete_files(&mut self, discard_log: bool) {
        let (covered_index, covered_term) = self.log.snapshot();
        let current = snapshot::file_name(covered_index, covered_term);
        match snapshot::list(&self.dir) {
            Ok(listing) => {
                for file in listing.snapshots {
                    if file
                        .path
                        .file_name()
                        .is_some_and(|name| name != current.as_str())
                    {
                        remove_quietly(&file.path);
                    }
                }
            }
            Err(error) => tracing::warn!(event = log_events::STORAGE_CLEANUP_FAILED, %error),
        }
        let deleted = self.wal.delete_oldest_segments_while(|segment| {
            discard_log || segment.max_entry_index <= covered_index
        });
        if let Err(error) = deleted {
            tracing::warn!(event = log_events::STORAGE_CLEANUP_FAILED, %error);
        }
    }

    /// Last entry index, or the snapshot index when the log is empty.
    pub fn last_index(&self) -> u64 {
        self.log.last_index()
    }

    /// `snapshot_index() + 1`: the first index the log may hold.
    pub fn first_index(&self) -> u64 {
        self.snapshot_index() + 1
    }

    /// Index of the durable snapshot (0: none).
    pub fn snapshot_index(&self) -> u64 {
        self.log.snapshot().0
    }

    /// The term of the entry at `index` as recorded (synced or buffered);
    /// at the snapshot's index, the snapshot's term; `None` when compacted
    /// away or beyond the log. Answered from memory.
    pub fn entry_term(&self, index: Index) -> Option<Term> {
        self.log.term(index)
    }

    /// The hard state last recorded (durable once synced).
    pub fn hard_state(&self) -> HardState {
        self.wal.hard_state()
    }

    /// The data dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn check_usable(&self) -> Result<(), StorageError> {
        match &self.failure {
            Some(first_failure) => Err(StorageError::Failed {
                first_failure: first_failure.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Stops the storage after a failed write path operation.
    fn fail_on_error(&mut self, result: Result<(), StorageError>) -> Result<(), StorageError> {
        if let Err(error) = &result {
            self.failure.get_or_insert_with(|| error.to_string());
        }
        result
    }
}

/// Takes the exclusive lock on the data dir's `LOCK` file.
fn lock_dir(dir: &Path) -> Result<File, StorageError> {
    let path = dir.join(LOCK_FILE_NAME);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_error(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(StorageError::Locked {
            dir: dir.to_path_buf(),
        }),
        Err(fs::TryLockError::Error(source)) => Err(StorageError::Io { path, source }),
    }
}

fn truncate_file(path: &Path, length_bytes: u64) -> Result<(), StorageError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_error(path))?;
    file.set_len(length_bytes).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))
}

/// Removes a file that is no longer needed; failure only costs disk space.
fn remove_quietly(path: &Path) {
    if let Err(error) = fs::remove_file(path) {
        if error.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(event = log_events::STORAGE_CLEANUP_FAILED, file = %path.display(), %error);
        }
    }
}
