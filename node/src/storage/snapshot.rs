//! Snapshot files: `snapshot-<index>-<term>.snap` in the data dir.
//!
//! Layout (little-endian):
//!
//! ```text
//! magic "RKVSNAP1" (8) | meta_len u32 | data_len u64 | crc u32 | meta | data
//! ```
//!
//! `crc` is CRC32C over `meta_len | data_len | meta | data`; `meta` is the
//! postcard encoding of `SnapshotMeta`, `data` the opaque state bytes. A
//! file is valid only if its length is exactly the header plus both parts,
//! the checksum matches, and the meta names the same index and term as the
//! file name.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use raftkv::message::{Index, Snapshot, SnapshotMeta, Term};

use super::{io_error, sync_dir, StorageError};

const SNAPSHOT_MAGIC: &[u8; 8] = b"RKVSNAP1";
const SNAPSHOT_HEADER_BYTES: usize = 8 + 4 + 8 + 4;
/// Largest encoded `SnapshotMeta` accepted (voter lists are tiny).
pub const SNAPSHOT_META_BYTES_MAX: usize = 1024 * 1024;
/// Largest snapshot state accepted, when writing and when reading.
pub const SNAPSHOT_DATA_BYTES_MAX: u64 = 16 * 1024 * 1024 * 1024;
const SNAPSHOT_PREFIX: &str = "snapshot-";
const SNAPSHOT_SUFFIX: &str = ".snap";
/// Suffix of a snapshot still being written; removed at open.
const TEMP_SUFFIX: &str = ".tmp";

/// A snapshot file found in the data dir (not yet validated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct SnapshotFile {
    pub index: Index,
    pub term: Term,
    pub path: PathBuf,
}

pub(super) fn file_name(index: Index, term: Term) -> String {
    format!("{SNAPSHOT_PREFIX}{index}-{term}{SNAPSHOT_SUFFIX}")
}

fn parse_file_name(name: &str) -> Option<(Index, Term)> {
    let middle = name
        .strip_prefix(SNAPSHOT_PREFIX)?
        .strip_suffix(SNAPSHOT_SUFFIX)?;
    let (index, term) = middle.split_once('-')?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(index) || !all_digits(term) {
        return None;
    }
    Some((index.parse().ok()?, term.parse().ok()?))
}

/// What the data dir holds: snapshot files newest first (by index, then
/// term), and leftover temporary files from an interrupted save.
pub(super) struct SnapshotListing {
    pub snapshots: Vec<SnapshotFile>,
    pub temporaries: Vec<PathBuf>,
}

pub(super) fn list(dir: &Path) -> Result<SnapshotListing, StorageError> {
    let mut listing = SnapshotListing {
        snapshots: Vec::new(),
        temporaries: Vec::new(),
    };
    for dir_entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let dir_entry = dir_entry.map_err(io_error(dir))?;
        let name = dir_entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(SNAPSHOT_PREFIX) && name.ends_with(TEMP_SUFFIX) {
            listing.temporaries.push(dir_entry.path());
        } else if let Some((index, term)) = parse_file_name(name) {
            listing.snapshots.push(SnapshotFile {
                index,
                term,
                path: dir_entry.path(),
            });
        }
    }
    listing
        .snapshots
        .sort_by_key(|file| std::cmp::Reverse((file.index, file.term)));
    Ok(listing)
}

fn checksum(meta_len_le: [u8; 4], data_len_le: [u8; 8], meta: &[u8], data: &[u8]) -> u32 {
    let mut crc = crc32c::crc32c(&meta_len_le);
    crc = crc32c::crc32c_append(crc, &data_len_le);
    crc = crc32c::crc32c_append(crc, meta);
    crc32c::crc32c_append(crc, data)
}

/// Writes `snapshot` durably: temp file, fsync, rename, fsync of the dir.
/// Returns the final path.
pub(super) fn write(dir: &Path, snapshot: &Snapshot) -> Result<PathBuf, StorageError> {
    let meta = postcard::to_allocvec(&snapshot.meta).map_err(|error| StorageError::Encode {
        what: format!("snapshot meta: {error}"),
    })?;
    if meta.len() > SNAPSHOT_META_BYTES_MAX || snapshot.data.len() as u64 > SNAPSHOT_DATA_BYTES_MAX
    {
        return Err(StorageError::SnapshotTooLarge {
            meta_bytes: meta.len(),
            data_bytes: snapshot.data.len() as u64,
        });
    }
    let meta_len_le = (meta.len() as u32).to_le_bytes();
    let data_len_le = (snapshot.data.len() as u64).to_le_bytes();
    let crc = checksum(meta_len_le, data_len_le, &meta, &snapshot.data);
    let mut header = Vec::with_capacity(SNAPSHOT_HEADER_BYTES + meta.len());
    header.extend_from_slice(SNAPSHOT_MAGIC);
    header.extend_from_slice(&meta_len_le);
    header.extend_from_slice(&data_len_le);
    header.extend_from_slice(&crc.to_le_bytes());
    header.extend_from_slice(&meta);

    let name = file_name(snapshot.meta.index, snapshot.meta.term);
    let final_path = dir.join(&name);
    let temp_path = dir.join(format!("{name}{TEMP_SUFFIX}"));
    let mut file = File::create(&temp_path).map_err(io_error(&temp_path))?;
    file.write_all(&header).map_err(io_error(&temp_path))?;
    file.write_all(&snapshot.data)
        .map_err(io_error(&temp_path))?;
    file.sync_all().map_err(io_error(&temp_path))?;
    drop(file);
    fs::rename(&temp_path, &final_path).map_err(io_error(&final_path))?;
    sync_dir(dir)?;
    Ok(final_path)
}

/// Why a snapshot file cannot be used; `offset` is where the problem is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct InvalidSnapshot {
    pub offset: u64,
    pub what: String,
}

/// Reads and validates a snapshot file. `Ok(Err(..))` means the file is
/// readable but not a valid snapshot; `Err` is an I/O failure.
pub(super) fn read(file: &SnapshotFile) -> Result<Result<Snapshot, InvalidSnapshot>, StorageError> {
    let file_len = fs::metadata(&file.path)
        .map_err(io_error(&file.path))?
        .len();
    let limit =
        SNAPSHOT_HEADER_BYTES as u64 + SNAPSHOT_META_BYTES_MAX as u64 + SNAPSHOT_DATA_BYTES_MAX;
    if file_len > limit {
        return Ok(Err(invalid(
            0,
            format!("file of {file_len} bytes exceeds the {limit}-byte snapshot limit"),
        )));
    }
    let bytes = fs::read(&file.path).map_err(io_error(&file.path))?;
    Ok(parse(bytes, file.index, file.term))
}

fn invalid(offset: u64, what: String) -> InvalidSnapshot {
    InvalidSnapshot { offset, what }
}

fn parse(bytes: Vec<u8>, index: Index, term: Term) -> Result<Snapshot, InvalidSnapshot> {
    if bytes.len() < SNAPSHOT_HEADER_BYTES {
        return Err(invalid(
            0,
            format!("file of {} bytes is shorter than the header", bytes.len()),
        ));
    }
    if &bytes[0..8] != SNAPSHOT_MAGIC {
        return Err(invalid(0, "bad magic (not a raftkv snapshot)".into()));
    }
    let meta_len_le: [u8; 4] = bytes[8..12].try_into().expect("4 bytes");
    let data_len_le: [u8; 8] = bytes[12..20].try_into().expect("8 bytes");
    let stored_crc = u32::from_le_bytes(bytes[20..24].try_into().expect("4 bytes"));
    let meta_len = u32::from_le_bytes(meta_len_le) as u64;
    let data_len = u64::from_le_bytes(data_len_le);
    if meta_len > SNAPSHOT_META_BYTES_MAX as u64 || data_len > SNAPSHOT_DATA_BYTES_MAX {
        return Err(invalid(
            8,
            format!("header lengths out of bounds (meta {meta_len}, data {data_len})"),
        ));
    }
    let expected_len = SNAPSHOT_HEADER_BYTES as u64 + meta_len + data_len;
    if expected_len != bytes.len() as u64 {
        return Err(invalid(
            8,
            format!(
                "header says {expected_len} bytes but the file has {}",
                bytes.len()
            ),
        ));
    }
    let meta_end = SNAPSHOT_HEADER_BYTES + meta_len as usize;
    let meta_bytes = &bytes[SNAPSHOT_HEADER_BYTES..meta_end];
    if checksum(meta_len_le, data_len_le, meta_bytes, &bytes[meta_end..]) != stored_crc {
        return Err(invalid(20, "checksum mismatch".into()));
    }
    let meta: SnapshotMeta = match postcard::take_from_bytes(meta_bytes) {
        Ok((meta, [])) => meta,
        Ok(_) => {
            return Err(invalid(
                SNAPSHOT_HEADER_BYTES as u64,
                "meta has trailing bytes".into(),
            ))
        }
        Err(error) => {
            return Err(invalid(
                SNAPSHOT_HEADER_BYTES as u64,
                format!("meta does not decode: {error}"),
            ))
        }
    };
    if (meta.index, meta.term) != (index, term) {
        return Err(invalid(
            SNAPSHOT_HEADER_BYTES as u64,
            format!(
                "meta says index {} term {} but the file name says index {index} term {term}",
                meta.index, meta.term
            ),
        ));
    }
    // One allocation for the whole file; the state is a view into it.
    let data = Bytes::from(bytes).slice(meta_end..);
    Ok(Snapshot { meta, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(index: Index, term: Term, data: &'static [u8]) -> Snapshot {
        Snapshot {
            meta: SnapshotMeta {
                index,
                term,
                voters: vec![1, 2, 3],
            },
            data: Bytes::from_static(data),
        }
    }

    #[test]
    fn file_names_round_trip_and_reject_lookalikes() {
        assert_eq!(file_name(120, 4), "snapshot-120-4.snap");
        assert_eq!(parse_file_name("snapshot-120-4.snap"), Some((120, 4)));
        for name in [
            "snapshot-120-4.snap.tmp",
            "snapshot--4.snap",
            "snapshot-1-+4.snap",
            "snapshot-1.snap",
            "snapshot-99999999999999999999999-1.snap",
        ] {
            assert_eq!(parse_file_name(name), None, "{name}");
        }
    }

    #[test]
    fn written_snapshot_reads_back_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let snapshot = sample(10, 2, b"state bytes");
        write(dir.path(), &snapshot).unwrap();
        write(dir.path(), &sample(4, 1, b"older")).unwrap();
        let listing = list(dir.path()).unwrap();
        assert!(listing.temporaries.is_empty());
        let indexes: Vec<_> = listing.snapshots.iter().map(|s| s.index).collect();
        assert_eq!(indexes, vec![10, 4]);
        assert_eq!(read(&listing.snapshots[0]).unwrap().unwrap(), snapshot);
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), &sample(3, 1, b"abcdef")).unwrap();
        let good = fs::read(&path).unwrap();
        for position in 0..good.len() {
            let mut bad = good.clone();
            bad[position] ^= 0x10;
            assert!(
                parse(bad, 3, 1).is_err(),
                "flip at byte {position} went unnoticed"
            );
        }
        assert!(parse(good[..good.len() - 1].to_vec(), 3, 1).is_err());
    }

    #[test]
    fn meta_that_disagrees_with_the_file_name_is_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), &sample(3, 1, b"x")).unwrap();
        let error = parse(fs::read(&path).unwrap(), 3, 2).unwrap_err();
        assert!(error.what.contains("file name"), "{error:?}");
    }
}
