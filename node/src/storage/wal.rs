//! The segmented write-ahead log: `wal/00000001.wal`, `wal/00000002.wal`, ...
//!
//! Writing: records gather in an in-memory buffer and reach the current
//! segment in one `write` + `fdatasync` per [`Wal::sync`]. A segment past
//! `segment_bytes_max` is closed (written and fsynced) and a new one starts
//! with the current hard state, so whole old segments can later be deleted.
//!
//! The current segment is preallocated ([`PREALLOCATE_BYTES`] at a time,
//! zero-filled as far as readers can tell), so an `fdatasync` writes the
//! new records and nothing else: without it every sync also had to commit
//! the file's new size, one more device round trip per batch. A segment is
//! cut back to its records when it is closed (rotation or a clean drop);
//! after a crash, recovery reads the zeros after the last record as the
//! end of the log ([`scan_segment`]).
//!
//! Reading (recovery only): [`scan_segment`] walks a segment's records and
//! decides whether damage at the end of the last segment is a torn write.

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use raftkv::message::{Entry, Index, Term};
use raftkv::raft::HardState;

use super::record::{
    decode_record, encode_record, frame_at, plausible_length_at, Framed, Record, RecordRef,
    RECORD_HEADER_BYTES,
};
use super::{io_error, sync_dir, StorageError};

const SEGMENT_SUFFIX: &str = ".wal";

/// Once this many bytes are buffered, they are written to the segment (not
/// fsynced) so one large batch cannot hold unbounded memory.
pub const PENDING_BYTES_MAX: usize = 8 * 1024 * 1024;

/// The current segment's file grows in steps of this many bytes, ahead of
/// the records written into it.
pub const PREALLOCATE_BYTES: u64 = 4 * 1024 * 1024;

/// How many payload bytes the torn-tail scan may checksum while looking for
/// intact records after a damaged one. Past it, recovery refuses to start
/// rather than guess.
pub const TAIL_SCAN_CHECKSUM_BYTES_MAX: u64 = 1024 * 1024 * 1024;

pub(super) fn segment_file_name(number: u64) -> String {
    format!("{number:08}{SEGMENT_SUFFIX}")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The segments in `wal_dir`, oldest first. Numbers must be consecutive: a
/// hole means a segment was lost, which recovery cannot paper over.
pub(super) fn list_segments(wal_dir: &Path) -> Result<Vec<(u64, PathBuf)>, StorageError> {
    let mut segments = Vec::new();
    for dir_entry in fs::read_dir(wal_dir).map_err(io_error(wal_dir))? {
        let dir_entry = dir_entry.map_err(io_error(wal_dir))?;
        if let Some(number) = dir_entry.file_name().to_str().and_then(parse_segment_name) {
            segments.push((number, dir_entry.path()));
        }
    }
    segments.sort();
    for pair in segments.windows(2) {
        let (previous, next) = (pair[0].0, pair[1].0);
        if next != previous + 1 {
            return Err(StorageError::Corrupt {
                file: wal_dir.join(segment_file_name(previous + 1)),
                offset: 0,
                what: format!(
                    "segment is missing between {} and {}",
                    segment_file_name(previous),
                    segment_file_name(next)
                ),
            });
        }
    }
    Ok(segments)
}

/// What scanning one segment found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SegmentScan {
    pub file_bytes: u64,
    /// Where the intact records end. Less than `file_bytes` only at the
    /// end of the last segment; the rest is to be truncated.
    pub valid_bytes: u64,
    /// Whether the bytes after `valid_bytes` are all zero: preallocated
    /// space the log never reached, not a torn write.
    pub zero_tail: bool,
}

/// Walks the records of one segment, handing each to `on_record` with its
/// byte offset. Damage is corruption, except a torn tail of the last segment
/// (see [`classify_damage`]).
pub(super) fn scan_segment(
    path: &Path,
    bytes: &[u8],
    is_last_segment: bool,
    mut on_record: impl FnMut(u64, Record) -> Result<(), StorageError>,
) -> Result<SegmentScan, StorageError> {
    let corrupt = |offset: usize, what: String| StorageError::Corrupt {
        file: path.to_path_buf(),
        offset: offset as u64,
        what,
    };
    let mut offset = 0;
    let mut zero_tail = false;
    loop {
        match frame_at(bytes, offset) {
            Framed::End => break,
            Framed::Bad(_) if is_last_segment && bytes[offset..].iter().all(|b| *b == 0) => {
                // Preallocated space after the last record, or a batch whose
                // pages never reached the disk (its fsync had not returned):
                // either way the log ends here.
                zero_tail = true;
                break;
            }
            Framed::Valid { payload, end } => {
                let record = decode_record(payload).map_err(|what| corrupt(offset, what))?;
                on_record(offset as u64, record)?;
                offset = end;
            }
            Framed::Bad(bad) if !is_last_segment => {
                return Err(corrupt(
                    offset,
                    format!("{bad} in a segment that is not the last"),
                ));
            }
            Framed::Bad(bad) => match classify_damage(bytes, offset) {
                Damage::TornTail => break,
                Damage::LaterBatch { batch_offset } => {
                    return Err(corrupt(
                        offset,
                        format!("{bad}; a later sync batch starts at byte {batch_offset}, so this record was acknowledged"),
                    ));
                }
                Damage::Undecided => {
                    return Err(corrupt(
                        offset,
                        format!("{bad}; could not tell a torn write from corruption within the scan budget"),
                    ));
                }
            },
        }
    }
    Ok(SegmentScan {
        file_bytes: bytes.len() as u64,
        valid_bytes: offset as u64,
        zero_tail,
    })
}

/// What damage at the end of the last segment is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Damage {
    /// Only records of the last, never-acknowledged sync batch can follow:
    /// a crash tore that batch's write. Safe to truncate.
    TornTail,
    /// An intact `BatchStart` follows the damage. It was written only after
    /// everything before it was fsynced, so the damaged record had been
    /// acknowledged: corruption.
    LaterBatch { batch_offset: usize },
    /// The scan budget ran out before deciding.
    Undecided,
}

/// Looks for intact records after the damaged one at `damaged_offset`.
///
/// A crash can leave the last batch partly on disk, even with holes (pages
/// reach the disk out of order), but it cannot leave a later batch: the
/// next batch's `BatchStart` is written only after this one's fsync
/// returned. So damage followed by an intact `BatchStart` is corruption,
/// and damage followed by nothing but the rest of its own batch is a torn
/// write. Every offset after the damage is tried, since the damaged
/// length field cannot be trusted to find the next record.
fn classify_damage(bytes: &[u8], damaged_offset: usize) -> Damage {
    let mut checksum_budget_bytes = TAIL_SCAN_CHECKSUM_BYTES_MAX;
    let mut offset = damaged_offset + 1;
    while offset + RECORD_HEADER_BYTES <= bytes.len() {
        let Some(length_bytes) = plausible_length_at(bytes, offset) else {
            offset += 1;
            continue;
        };
        if length_bytes as u64 > checksum_budget_bytes {
            return Damage::Undecided;
        }
        checksum_budget_bytes -= length_bytes as u64;
        match frame_at(bytes, offset) {
            Framed::Valid { payload, end } => match decode_record(payload) {
                Ok(Record::BatchStart) => {
                    return Damage::LaterBatch {
                        batch_offset: offset,
                    }
                }
                Ok(_) => offset = end,
                Err(_) => offset += 1,
            },
            Framed::End | Framed::Bad(_) => offset += 1,
        }
    }
    Damage::TornTail
}

/// A segment the writer knows about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SegmentInfo {
    pub number: u64,
    /// Highest entry index ever written to it (0: none). A segment may be
    /// deleted once a snapshot covers this index.
    pub max_entry_index: Index,
}

/// The open WAL: every segment's summary and the current (last) segment.
pub(super) struct Wal {
    wal_dir: PathBuf,
    segment_bytes_max: u64,
    /// Oldest first; the last one is `current`. Never empty.
    segments: Vec<SegmentInfo>,
    current: File,
    /// Bytes already written to the current segment file.
    current_bytes: u64,
    /// The current segment file's length: `current_bytes` plus the
    /// preallocated zeros after them.
    allocated_bytes: u64,
    /// Records not yet written to the file.
    pending: Vec<u8>,
    /// Whether the current sync batch has its `BatchStart` yet.
    batch_open: bool,
    /// Bytes written (to the file or `pending`) since the last fsync.
    unsynced_bytes: u64,
    /// The newest hard state recorded; a new segment starts with it.
    hard_state: HardState,
}

impl Wal {
    /// Continues writing at the end of the last segment (already truncated
    /// to its intact records), or starts segment 1 in an empty WAL.
    pub(super) fn open(
        wal_dir: &Path,
        segments: Vec<SegmentInfo>,
        hard_state: HardState,
        segment_bytes_max: u64,
    ) -> Result<Wal, StorageError> {
        let (segments, current) = match segments.last() {
            Some(last) => {
                let path = wal_dir.join(segment_file_name(last.number));
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_error(&path))?;
                (segments, file)
            }
            None => {
                let file = create_segment(wal_dir, 1)?;
                (
                    vec![SegmentInfo {
                        number: 1,
                        max_entry_index: 0,
                    }],
                    file,
                )
            }
        };
        let path = wal_dir.join(segment_file_name(
            segments.last().expect("non-empty").number,
        ));
        let current_bytes = current.metadata().map_err(io_error(&path))?.len();
        Ok(Wal {
            wal_dir: wal_dir.to_path_buf(),
            segment_bytes_max,
            segments,
            current,
            current_bytes,
            allocated_bytes: current_bytes,
            pending: Vec::with_capacity(64 * 1024),
            batch_open: false,
            unsynced_bytes: 0,
            hard_state,
        })
    }

    pub(super) fn segment_count(&self) -> usize {
        self.segments.len()
    }

    pub(super) fn hard_state(&self) -> HardState {
        self.hard_state
    }

    fn current_path(&self) -> PathBuf {
        self.wal_dir.join(segment_file_name(
            self.segments.last().expect("non-empty").number,
        ))
    }

    pub(super) fn push_entry(&mut self, entry: &Entry) -> Result<(), StorageError> {
        self.push(&RecordRef::Entry(entry))?;
        let current = self.segments.last_mut().expect("non-empty");
        current.max_entry_index = current.max_entry_index.max(entry.index);
        Ok(())
    }

    pub(super) fn push_hard_state(&mut self, hard_state: &HardState) -> Result<(), StorageError> {
        self.push(&RecordRef::HardState(hard_state))?;
        self.hard_state = *hard_state;
        Ok(())
    }

    pub(super) fn push_snapshot_marker(
        &mut self,
        index: Index,
        term: Term,
        discard_log: bool,
    ) -> Result<(), StorageError> {
        self.push(&RecordRef::Snapshot {
            index,
            term,
            discard_log,
        })
    }

    /// Buffers one record, opening a sync batch and rotating if needed.
    fn push(&mut self, record: &RecordRef<'_>) -> Result<(), StorageError> {
        let segment_bytes = self.current_bytes + self.pending.len() as u64;
        // A fresh segment is never rotated again before its first record,
        // whatever `segment_bytes_max` is.
        if segment_bytes > 0 && segment_bytes >= self.segment_bytes_max {
            self.rotate()?;
        }
        if !self.batch_open {
            self.unsynced_bytes += encode_record(&mut self.pending, &RecordRef::BatchStart)? as u64;
            self.batch_open = true;
        }
        self.unsynced_bytes += encode_record(&mut self.pending, record)? as u64;
        if self.pending.len() >= PENDING_BYTES_MAX {
            self.write_pending()?;
        }
        Ok(())
    }

    fn write_pending(&mut self) -> Result<(), StorageError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let path = self.current_path();
        let end = self.current_bytes + self.pending.len() as u64;
        if end > self.allocated_bytes {
            self.preallocate(end);
        }
        self.current
            .write_all_at(&self.pending, self.current_bytes)
            .map_err(io_error(&path))?;
        self.current_bytes = end;
        self.pending.clear();
        Ok(())
    }

    /// Grows the current segment file past `end` by whole
    /// `PREALLOCATE_BYTES` steps. Best effort: where the file system cannot
    /// preallocate, writes extend the file as they go (only slower to sync).
    fn preallocate(&mut self, end: u64) {
        let target = end.next_multiple_of(PREALLOCATE_BYTES);
        let (Ok(offset), Ok(length)) = (
            libc::off_t::try_from(self.allocated_bytes),
            libc::off_t::try_from(target - self.allocated_bytes),
        ) else {
            return;
        };
        // SAFETY: plain system call on a file descriptor this Wal owns.
        let result = unsafe { libc::posix_fallocate(self.current.as_raw_fd(), offset, length) };
        if result == 0 {
            self.allocated_bytes = target;
        }
    }

    /// Cuts the preallocated zeros off the current segment file (the caller
    /// syncs if the change must be durable).
    fn trim_preallocation(&mut self) -> Result<(), StorageError> {
        if self.allocated_bytes > self.current_bytes {
            let path = self.current_path();
            self.current
                .set_len(self.current_bytes)
                .map_err(io_error(&path))?;
            self.allocated_bytes = self.current_bytes;
        }
        Ok(())
    }

    /// Writes and fdatasyncs everything buffered; nothing to do if nothing
    /// was recorded since the last sync.
    pub(super) fn sync(&mut self) -> Result<(), StorageError> {
        if self.unsynced_bytes == 0 {
            return Ok(());
        }
        self.write_pending()?;
        let path = self.current_path();
        self.current.sync_data().map_err(io_error(&path))?;
        self.unsynced_bytes = 0;
        self.batch_open = false;
        Ok(())
    }

    /// Closes the current segment (written and fsynced) and starts the next
    /// one with the current hard state.
    pub(super) fn rotate(&mut self) -> Result<(), StorageError> {
        self.write_pending()?;
        // Only the last segment may end in zeros (see `scan_segment`).
        self.trim_preallocation()?;
        let path = self.current_path();
        self.current.sync_data().map_err(io_error(&path))?;
        let number = self.segments.last().expect("non-empty").number + 1;
        self.current = create_segment(&self.wal_dir, number)?;
        self.segments.push(SegmentInfo {
            number,
            max_entry_index: 0,
        });
        self.current_bytes = 0;
        self.allocated_bytes = 0;
        // Everything before this point is durable; the rest of the current
        // batch continues in the new segment under a new BatchStart.
        self.batch_open = false;
        let hard_state = self.hard_state;
        self.push_hard_state(&hard_state)
    }

    /// Deletes the oldest segments while `deletable` says so, never the
    /// current one. Oldest first, each removal made durable before the next,
    /// so a crash leaves a contiguous run of segments.
    pub(super) fn delete_oldest_segments_while(
        &mut self,
        deletable: impl Fn(&SegmentInfo) -> bool,
    ) -> Result<usize, StorageError> {
        let mut deleted = 0;
        while self.segments.len() > 1 && deletable(&self.segments[0]) {
            let path = self
                .wal_dir
                .join(segment_file_name(self.segments[0].number));
            match fs::remove_file(&path) {
                // Removed earlier by an attempt whose directory sync failed.
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                removed => removed.map_err(io_error(&path))?,
            }
            sync_dir(&self.wal_dir)?;
            self.segments.remove(0);
            deleted += 1;
        }
        Ok(deleted)
    }
}

impl Drop for Wal {
    /// A clean close leaves the last segment holding only its records.
    /// Best effort: recovery reads leftover zeros as the end of the log.
    fn drop(&mut self) {
        let _ = self.trim_preallocation();
    }
}

/// Creates an empty segment file and makes its directory entry durable.
fn create_segment(wal_dir: &Path, number: u64) -> Result<File, StorageError> {
    let path = wal_dir.join(segment_file_name(number));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io_error(&path))?;
    sync_dir(wal_dir)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::record::RECORD_BYTES_MAX;

    fn entry(index: Index) -> Entry {
        Entry::normal(index, 1, format!("value-{index}"))
    }

    /// Two sync batches of three entries each, as bytes, with record offsets.
    fn two_batches() -> (Vec<u8>, Vec<usize>) {
        let mut bytes = Vec::new();
        let mut offsets = Vec::new();
        for batch in 0..2 {
            offsets.push(bytes.len());
            encode_record(&mut bytes, &RecordRef::BatchStart).unwrap();
            for i in 1..=3 {
                offsets.push(bytes.len());
                encode_record(&mut bytes, &RecordRef::Entry(&entry(batch * 3 + i))).unwrap();
            }
        }
        (bytes, offsets)
    }

    fn scan(bytes: &[u8], is_last: bool) -> Result<(SegmentScan, Vec<u64>), StorageError> {
        let mut seen = Vec::new();
        let scan = scan_segment(Path::new("00000001.wal"), bytes, is_last, |_, record| {
            if let Record::Entry(entry) = record {
                seen.push(entry.index);
            }
            Ok(())
        })?;
        Ok((scan, seen))
    }

    #[test]
    fn segment_names_are_zero_padded_and_strict() {
        assert_eq!(segment_file_name(3), "00000003.wal");
        assert_eq!(parse_segment_name("00000003.wal"), Some(3));
        assert_eq!(parse_segment_name("123456789.wal"), Some(123_456_789));
        assert_eq!(parse_segment_name("3.wal.tmp"), None);
        assert_eq!(parse_segment_name(".wal"), None);
        assert_eq!(parse_segment_name("-1.wal"), None);
    }

    #[test]
    fn damage_inside_the_last_batch_is_a_torn_tail() {
        let (mut bytes, offsets) = two_batches();
        // Second batch: BatchStart at offsets[4], entries at [5], [6], [7].
        bytes[offsets[6] + RECORD_HEADER_BYTES] ^= 0xFF;
        let (scan, seen) = scan(&bytes, true).unwrap();
        assert_eq!(seen, vec![1, 2, 3, 4]);
        assert_eq!(scan.valid_bytes, offsets[6] as u64);
    }

    #[test]
    fn damage_followed_by_a_later_batch_is_corruption() {
        let (mut bytes, offsets) = two_batches();
        bytes[offsets[2] + RECORD_HEADER_BYTES + 1] ^= 0xFF;
        let error = scan(&bytes, true).unwrap_err();
        match error {
            StorageError::Corrupt { offset, what, .. } => {
                assert_eq!(offset, offsets[2] as u64);
                assert!(what.contains("checksum mismatch"), "{what}");
                assert!(what.contains(&format!("byte {}", offsets[4])), "{what}");
            }
            other => panic!("expected Corrupt, got {other}"),
        }
    }

    #[test]
    fn a_garbage_length_is_found_out_by_the_batch_that_follows() {
        let (mut bytes, offsets) = two_batches();
        bytes[offsets[1]..offsets[1] + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let error = scan(&bytes, true).unwrap_err();
        assert!(
            matches!(error, StorageError::Corrupt { offset, .. } if offset == offsets[1] as u64),
            "{error}"
        );
        let limit = (RECORD_BYTES_MAX as u32 + 1).to_le_bytes();
        bytes[offsets[1]..offsets[1] + 4].copy_from_slice(&limit);
        assert!(scan(&bytes, true).is_err());
    }

    #[test]
    fn any_damage_in_an_earlier_segment_is_corruption() {
        let (bytes, offsets) = two_batches();
        let cut = &bytes[..offsets[7] + 3];
        assert!(scan(cut, true).is_ok());
        let error = scan(cut, false).unwrap_err();
        assert!(error.to_string().contains("not the last"), "{error}");
    }

    #[test]
    fn zero_fill_after_the_last_record_ends_the_log() {
        let (mut bytes, _) = two_batches();
        let intact = bytes.len();
        bytes.resize(intact + 4096, 0);
        let (zeros, seen) = scan(&bytes, true).unwrap();
        assert_eq!(seen.len(), 6);
        assert_eq!(zeros.valid_bytes, intact as u64);
        assert_eq!(zeros.file_bytes, intact as u64 + 4096);
        assert!(zeros.zero_tail);
        // Anything but zeros after the last record is a torn write.
        bytes[intact + 100] = 1;
        let (torn, _) = scan(&bytes, true).unwrap();
        assert_eq!(torn.valid_bytes, intact as u64);
        assert!(!torn.zero_tail);
        // In an earlier segment, zeros are damage: it was cut when closed.
        bytes[intact + 100] = 0;
        assert!(scan(&bytes, false).is_err());
    }

    #[test]
    fn a_missing_middle_segment_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        for number in [1, 2, 4] {
            fs::write(dir.path().join(segment_file_name(number)), b"").unwrap();
        }
        fs::write(dir.path().join("notes.txt"), b"ignored").unwrap();
        let error = list_segments(dir.path()).unwrap_err();
        assert!(error.to_string().contains("00000003.wal"), "{error}");
    }
}
