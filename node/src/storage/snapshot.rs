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
//!
//! Neither side holds the state in memory twice. A node's own snapshot is
//! streamed into a temporary file by [`prepare`] (the CRC of the data is
//! computed as it goes and combined with the header's afterwards), fsynced,
//! and renamed into place by the WAL thread ([`install_prepared`]). Reading
//! checks the file with buffered reads, then maps it: the state bytes handed
//! to the consensus core (kept to send InstallSnapshot) are a read-only
//! `mmap` of the file (`Bytes::from_owner`), paged in from the page cache
//! only while a follower is sent a copy. Snapshot files are never written
//! after their rename (only deleted whole, which leaves a mapping valid), so
//! the mapping cannot change under the reader; a file truncated by another
//! program while mapped would fault the process.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
/// Suffix of an own snapshot being prepared (ends in `TEMP_SUFFIX` too).
const PREPARED_SUFFIX: &str = ".own.tmp";
/// Write buffer of `prepare`, and read buffer of the checksum pass.
const SNAPSHOT_IO_BUFFER_BYTES: usize = 1024 * 1024;

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

/// The meta of a snapshot file written before snapshots carried the
/// configuration: the voters and the member registry (the incarnation of
/// each voter; empty before the first registry entry committed).
#[derive(serde::Deserialize)]
struct MetaWithRegistry {
    index: raftkv::message::Index,
    term: raftkv::message::Term,
    voters: Vec<u64>,
    registry: Vec<(u64, u64)>,
}

/// The meta of a snapshot file written before snapshots carried the member
/// registry: it reads back with no configuration (the flags' voters decide
/// until the log holds one, as when it was written).
#[derive(serde::Deserialize)]
struct MetaWithoutRegistry {
    index: raftkv::message::Index,
    term: raftkv::message::Term,
    #[allow(dead_code)]
    voters: Vec<u64>,
}

/// Decodes a snapshot file's meta, in any of the three formats; the whole
/// of `bytes` must be the meta. A registry reads as a configuration of
/// those voters with those incarnations.
fn decode_meta(bytes: &[u8]) -> Result<SnapshotMeta, String> {
    let error = match postcard::take_from_bytes::<SnapshotMeta>(bytes) {
        Ok((meta, [])) => return Ok(meta),
        Ok(_) => "meta has trailing bytes".to_string(),
        Err(error) => format!("meta does not decode: {error}"),
    };
    if let Ok((old, [])) = postcard::take_from_bytes::<MetaWithRegistry>(bytes) {
        let _ = &old.voters;
        let members = old
            .registry
            .iter()
            .map(|&(id, incarnation)| raftkv::message::Member::voter(id, incarnation))
            .collect();
        return Ok(SnapshotMeta {
            index: old.index,
            term: old.term,
            members,
        });
    }
    if let Ok((old, [])) = postcard::take_from_bytes::<MetaWithoutRegistry>(bytes) {
        return Ok(SnapshotMeta {
            index: old.index,
            term: old.term,
            members: Vec::new(),
        });
    }
    Err(error)
}

/// Why a snapshot file cannot be used; `offset` is where the problem is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct InvalidSnapshot {
    pub offset: u64,
    pub what: String,
}

/// Reads and validates a snapshot file. `Ok(Err(..))` means the file is
/// readable but not a valid snapshot; `Err` is an I/O failure. The returned
/// state bytes map the file (see the module docs).
pub(super) fn read(file: &SnapshotFile) -> Result<Result<Snapshot, InvalidSnapshot>, StorageError> {
    let io = io_error(&file.path);
    let mut handle = File::open(&file.path).map_err(io_error(&file.path))?;
    let file_len = handle.metadata().map_err(io_error(&file.path))?.len();
    let checked = check(&mut handle, file_len, file.index, file.term).map_err(io)?;
    let (meta, data_offset) = match checked {
        Ok(found) => found,
        Err(invalid) => return Ok(Err(invalid)),
    };
    let (data, _) = map_data(&handle, &file.path, data_offset)?;
    Ok(Ok(Snapshot { meta, data }))
}

/// A read-only mapping of a snapshot file, shared by the `Bytes` that view
/// it and the [`SnapshotPages`] handle.
struct MappedFile(memmap2::Mmap);

/// The owner of mapped `Bytes`.
struct SharedMapping(Arc<MappedFile>);

impl AsRef<[u8]> for SharedMapping {
    fn as_ref(&self) -> &[u8] {
        &self.0 .0
    }
}

/// A handle on the mapping behind a snapshot's state bytes. Pages a reader
/// touched (sending the snapshot to a follower) count towards the process's
/// resident memory until released; they are clean copies of the file, so
/// releasing them is always safe: the next read pages them in again.
#[derive(Clone)]
pub struct SnapshotPages(Arc<MappedFile>);

impl SnapshotPages {
    /// Drops the mapping's resident pages from this process (the page cache
    /// keeps them). Best effort: an error only means they stay resident.
    pub fn release(&self) {
        // SAFETY: a read-only shared mapping of a file that never changes
        // (see the module docs): after MADV_DONTNEED its pages read the same
        // bytes again from the file.
        let _ = unsafe {
            self.0
                 .0
                .unchecked_advise(memmap2::UncheckedAdvice::DontNeed)
        };
    }
}

impl std::fmt::Debug for SnapshotPages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SnapshotPages({} bytes)", self.0 .0.len())
    }
}

fn map_data(
    file: &File,
    path: &Path,
    data_offset: u64,
) -> Result<(Bytes, SnapshotPages), StorageError> {
    // SAFETY: snapshot files are never written after they are renamed into
    // place (see the module docs), so the mapped bytes do not change.
    let mapping = unsafe { memmap2::Mmap::map(file) }.map_err(io_error(path))?;
    let mapping = Arc::new(MappedFile(mapping));
    let all = Bytes::from_owner(SharedMapping(mapping.clone()));
    Ok((all.slice(data_offset as usize..), SnapshotPages(mapping)))
}

/// Maps the state bytes of the snapshot file for `index` and `term` in
/// `dir` (written by this node and fsynced, or validated by
/// `Storage::open`). Only the header is checked here: its lengths must
/// match the file's.
pub fn map(dir: &Path, index: Index, term: Term) -> Result<(Bytes, SnapshotPages), StorageError> {
    let path = dir.join(file_name(index, term));
    let mut file = File::open(&path).map_err(io_error(&path))?;
    let file_len = file.metadata().map_err(io_error(&path))?.len();
    let (meta_len, data_len) = read_header(&mut file, &path)?;
    let data_offset = SNAPSHOT_HEADER_BYTES as u64 + meta_len;
    if data_offset + data_len != file_len {
        return Err(StorageError::InvalidSnapshot {
            what: format!("{} changed since it was validated", path.display()),
        });
    }
    map_data(&file, &path, data_offset)
}

/// Reads a snapshot file's header: (meta length, data length).
fn read_header(file: &mut File, path: &Path) -> Result<(u64, u64), StorageError> {
    let mut header = [0u8; SNAPSHOT_HEADER_BYTES];
    file.read_exact(&mut header).map_err(io_error(path))?;
    let meta_len = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes")) as u64;
    let data_len = u64::from_le_bytes(header[12..20].try_into().expect("8 bytes"));
    if &header[0..8] != SNAPSHOT_MAGIC
        || meta_len > SNAPSHOT_META_BYTES_MAX as u64
        || data_len > SNAPSHOT_DATA_BYTES_MAX
    {
        return Err(StorageError::InvalidSnapshot {
            what: format!("{} changed since it was validated", path.display()),
        });
    }
    Ok((meta_len, data_len))
}

fn invalid(offset: u64, what: String) -> InvalidSnapshot {
    InvalidSnapshot { offset, what }
}

/// Validates a snapshot file of `file_len` bytes read from `source` (at its
/// start) without holding it in memory: header, lengths, checksum, meta.
/// Returns the meta and the offset of the state bytes.
fn check(
    source: &mut impl Read,
    file_len: u64,
    index: Index,
    term: Term,
) -> std::io::Result<Result<(SnapshotMeta, u64), InvalidSnapshot>> {
    let limit =
        SNAPSHOT_HEADER_BYTES as u64 + SNAPSHOT_META_BYTES_MAX as u64 + SNAPSHOT_DATA_BYTES_MAX;
    if file_len > limit {
        return Ok(Err(invalid(
            0,
            format!("file of {file_len} bytes exceeds the {limit}-byte snapshot limit"),
        )));
    }
    if file_len < SNAPSHOT_HEADER_BYTES as u64 {
        return Ok(Err(invalid(
            0,
            format!("file of {file_len} bytes is shorter than the header"),
        )));
    }
    let mut header = [0u8; SNAPSHOT_HEADER_BYTES];
    source.read_exact(&mut header)?;
    if &header[0..8] != SNAPSHOT_MAGIC {
        return Ok(Err(invalid(0, "bad magic (not a raftkv snapshot)".into())));
    }
    let meta_len_le: [u8; 4] = header[8..12].try_into().expect("4 bytes");
    let data_len_le: [u8; 8] = header[12..20].try_into().expect("8 bytes");
    let stored_crc = u32::from_le_bytes(header[20..24].try_into().expect("4 bytes"));
    let meta_len = u32::from_le_bytes(meta_len_le) as u64;
    let data_len = u64::from_le_bytes(data_len_le);
    if meta_len > SNAPSHOT_META_BYTES_MAX as u64 || data_len > SNAPSHOT_DATA_BYTES_MAX {
        return Ok(Err(invalid(
            8,
            format!("header lengths out of bounds (meta {meta_len}, data {data_len})"),
        )));
    }
    let expected_len = SNAPSHOT_HEADER_BYTES as u64 + meta_len + data_len;
    if expected_len != file_len {
        return Ok(Err(invalid(
            8,
            format!("header says {expected_len} bytes but the file has {file_len}"),
        )));
    }
    let mut meta_bytes = vec![0u8; meta_len as usize];
    source.read_exact(&mut meta_bytes)?;
    let mut crc = crc32c::crc32c(&meta_len_le);
    crc = crc32c::crc32c_append(crc, &data_len_le);
    crc = crc32c::crc32c_append(crc, &meta_bytes);
    let mut buffer = vec![0u8; SNAPSHOT_IO_BUFFER_BYTES.min(data_len as usize)];
    let mut left = data_len;
    while left > 0 {
        let chunk = &mut buffer[..left.min(SNAPSHOT_IO_BUFFER_BYTES as u64) as usize];
        source.read_exact(chunk)?;
        crc = crc32c::crc32c_append(crc, chunk);
        left -= chunk.len() as u64;
    }
    if crc != stored_crc {
        return Ok(Err(invalid(20, "checksum mismatch".into())));
    }
    let meta = match decode_meta(&meta_bytes) {
        Ok(meta) => meta,
        Err(what) => return Ok(Err(invalid(SNAPSHOT_HEADER_BYTES as u64, what))),
    };
    if (meta.index, meta.term) != (index, term) {
        return Ok(Err(invalid(
            SNAPSHOT_HEADER_BYTES as u64,
            format!(
                "meta says index {} term {} but the file name says index {index} term {term}",
                meta.index, meta.term
            ),
        )));
    }
    Ok(Ok((meta, SNAPSHOT_HEADER_BYTES as u64 + meta_len)))
}

/// An own snapshot written and fsynced under a temporary name in the data
/// dir, waiting for the WAL thread to put it in place ([`install_prepared`]).
/// Dropped without that, it removes its file.
#[derive(Debug)]
pub struct PreparedSnapshot {
    meta: SnapshotMeta,
    /// The state bytes, mapped from the file (they stay valid after rename).
    data: Bytes,
    pages: Option<SnapshotPages>,
    temp_path: Option<PathBuf>,
}

impl PreparedSnapshot {
    pub fn meta(&self) -> &SnapshotMeta {
        &self.meta
    }

    /// Bytes of state in the file.
    pub fn data_bytes(&self) -> u64 {
        self.data.len() as u64
    }

    /// The mapping behind the state bytes (see [`SnapshotPages`]).
    pub fn pages(&self) -> Option<SnapshotPages> {
        self.pages.clone()
    }

    /// The snapshot as the consensus core keeps it (state bytes mapped).
    pub(super) fn snapshot(&self) -> Snapshot {
        Snapshot {
            meta: self.meta.clone(),
            data: self.data.clone(),
        }
    }
}

impl Drop for PreparedSnapshot {
    fn drop(&mut self) {
        if let Some(path) = self.temp_path.take() {
            let _ = fs::remove_file(path);
        }
    }
}

/// Counts and checksums the state bytes on their way to the file.
struct ChecksumWriter<W> {
    inner: W,
    crc: u32,
    written: u64,
}

impl<W: Write> Write for ChecksumWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..written]);
        self.written += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Streams a snapshot's state into a new temporary file in `dir` through
/// `write_data` (which returns what it wrote, or an error), then writes the
/// header, fsyncs and maps the file. Removes the file on any error.
pub fn prepare(
    dir: &Path,
    meta: SnapshotMeta,
    write_data: impl FnOnce(&mut dyn Write) -> std::io::Result<u64>,
) -> Result<PreparedSnapshot, StorageError> {
    let meta_bytes = postcard::to_allocvec(&meta).map_err(|error| StorageError::Encode {
        what: format!("snapshot meta: {error}"),
    })?;
    if meta_bytes.len() > SNAPSHOT_META_BYTES_MAX {
        return Err(StorageError::SnapshotTooLarge {
            meta_bytes: meta_bytes.len(),
            data_bytes: 0,
        });
    }
    let temp_path = dir.join(format!(
        "{}{PREPARED_SUFFIX}",
        file_name(meta.index, meta.term)
    ));
    let mut prepared = PreparedSnapshot {
        meta,
        data: Bytes::new(),
        pages: None,
        temp_path: Some(temp_path.clone()),
    };
    let io = || io_error(&temp_path);
    // Readable too: the file is mapped once written.
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temp_path)
        .map_err(io())?;
    let data_offset = (SNAPSHOT_HEADER_BYTES + meta_bytes.len()) as u64;
    file.seek(SeekFrom::Start(data_offset)).map_err(io())?;
    let mut writer = ChecksumWriter {
        inner: std::io::BufWriter::with_capacity(SNAPSHOT_IO_BUFFER_BYTES, &file),
        crc: 0,
        written: 0,
    };
    let reported = write_data(&mut writer).map_err(io())?;
    writer.flush().map_err(io())?;
    let (data_crc, data_len) = (writer.crc, writer.written);
    drop(writer);
    if reported != data_len || data_len > SNAPSHOT_DATA_BYTES_MAX {
        return Err(StorageError::SnapshotTooLarge {
            meta_bytes: meta_bytes.len(),
            data_bytes: data_len,
        });
    }
    let meta_len_le = (meta_bytes.len() as u32).to_le_bytes();
    let data_len_le = data_len.to_le_bytes();
    let mut crc = crc32c::crc32c(&meta_len_le);
    crc = crc32c::crc32c_append(crc, &data_len_le);
    crc = crc32c::crc32c_append(crc, &meta_bytes);
    crc = crc32c::crc32c_combine(crc, data_crc, data_len as usize);
    let mut header = Vec::with_capacity(data_offset as usize);
    header.extend_from_slice(SNAPSHOT_MAGIC);
    header.extend_from_slice(&meta_len_le);
    header.extend_from_slice(&data_len_le);
    header.extend_from_slice(&crc.to_le_bytes());
    header.extend_from_slice(&meta_bytes);
    file.write_all_at(&header, 0).map_err(io())?;
    file.sync_all().map_err(io())?;
    let (data, pages) = map_data(&file, &temp_path, data_offset)?;
    prepared.data = data;
    prepared.pages = Some(pages);
    Ok(prepared)
}

/// Renames a prepared snapshot to its final name and fsyncs the dir.
pub(super) fn install_prepared(
    dir: &Path,
    prepared: &mut PreparedSnapshot,
) -> Result<PathBuf, StorageError> {
    let final_path = dir.join(file_name(prepared.meta.index, prepared.meta.term));
    let Some(temp_path) = prepared.temp_path.as_ref() else {
        return Err(StorageError::InvalidSnapshot {
            what: "the prepared snapshot was already installed".into(),
        });
    };
    fs::rename(temp_path, &final_path).map_err(io_error(&final_path))?;
    prepared.temp_path = None;
    sync_dir(dir)?;
    Ok(final_path)
}

/// The state bytes of the (already validated) snapshot file for `index`
/// and `term` in `dir`, as a stream: restoring from it reads the file
/// through the page cache instead of holding it in the process.
pub fn data_reader(
    dir: &Path,
    index: Index,
    term: Term,
) -> Result<std::io::Take<File>, StorageError> {
    let path = dir.join(file_name(index, term));
    let mut file = File::open(&path).map_err(io_error(&path))?;
    let (meta_len, data_len) = read_header(&mut file, &path)?;
    file.seek(SeekFrom::Start(SNAPSHOT_HEADER_BYTES as u64 + meta_len))
        .map_err(io_error(&path))?;
    Ok(file.take(data_len))
}

/// Parses a whole snapshot file held in memory (tests).
#[cfg(test)]
fn parse(bytes: Vec<u8>, index: Index, term: Term) -> Result<Snapshot, InvalidSnapshot> {
    let len = bytes.len() as u64;
    let (meta, data_offset) =
        check(&mut &bytes[..], len, index, term).expect("reading memory cannot fail")?;
    let data = Bytes::from(bytes).slice(data_offset as usize..);
    Ok(Snapshot { meta, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metas_written_before_configurations_read_back() {
        #[derive(serde::Serialize)]
        struct OldMeta {
            index: u64,
            term: u64,
            voters: Vec<u64>,
        }
        let old = postcard::to_allocvec(&OldMeta {
            index: 9,
            term: 2,
            voters: vec![1, 2, 3],
        })
        .expect("encodes");
        let meta = decode_meta(&old).expect("old format decodes");
        assert_eq!((meta.index, meta.term), (9, 2));
        assert!(meta.members.is_empty());
        #[derive(serde::Serialize)]
        struct RegistryMeta {
            index: u64,
            term: u64,
            voters: Vec<u64>,
            registry: Vec<(u64, u64)>,
        }
        let with_registry = postcard::to_allocvec(&RegistryMeta {
            index: 9,
            term: 2,
            voters: vec![1, 2],
            registry: vec![(1, 7), (2, 8)],
        })
        .expect("encodes");
        let meta = decode_meta(&with_registry).expect("registry format decodes");
        use raftkv::message::Member;
        assert_eq!(meta.members, vec![Member::voter(1, 7), Member::voter(2, 8)]);
        let new = SnapshotMeta {
            index: 9,
            term: 2,
            members: vec![
                Member::voter(1, 7),
                Member::voter(2, 8),
                Member::voter(3, 9),
            ],
        };
        let bytes = postcard::to_allocvec(&new).expect("encodes");
        assert_eq!(decode_meta(&bytes), Ok(new));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode_meta(&trailing).is_err());
        assert!(decode_meta(&bytes[..bytes.len() - 3]).is_err());
    }

    fn sample(index: Index, term: Term, data: &'static [u8]) -> Snapshot {
        Snapshot {
            meta: SnapshotMeta {
                index,
                term,
                members: Vec::new(),
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
        let listing = list(dir.path()).unwrap();
        assert!(read(&listing.snapshots[0]).unwrap().is_ok());
    }

    fn meta(index: Index, term: Term) -> SnapshotMeta {
        SnapshotMeta {
            index,
            term,
            members: Vec::new(),
        }
    }

    #[test]
    fn prepared_snapshot_streams_installs_and_reads_back_mapped() {
        let dir = tempfile::tempdir().unwrap();
        let state: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut prepared = prepare(dir.path(), meta(7, 2), |out| {
            // In pieces, as a serializer writes.
            for piece in state.chunks(1000) {
                out.write_all(piece)?;
            }
            Ok(state.len() as u64)
        })
        .unwrap();
        assert_eq!(prepared.data_bytes(), state.len() as u64);
        assert_eq!(&prepared.snapshot().data[..], &state[..]);
        let listing = list(dir.path()).unwrap();
        assert!(listing.snapshots.is_empty(), "not in place before install");
        assert_eq!(listing.temporaries.len(), 1);
        install_prepared(dir.path(), &mut prepared).unwrap();
        drop(prepared);
        let listing = list(dir.path()).unwrap();
        assert!(listing.temporaries.is_empty());
        let read_back = read(&listing.snapshots[0]).unwrap().unwrap();
        assert_eq!(read_back.meta, meta(7, 2));
        assert_eq!(&read_back.data[..], &state[..]);
        // The same bytes as writing the whole snapshot from memory.
        let other = tempfile::tempdir().unwrap();
        let path = write(
            other.path(),
            &Snapshot {
                meta: meta(7, 2),
                data: Bytes::from(state.clone()),
            },
        )
        .unwrap();
        assert_eq!(
            fs::read(path).unwrap(),
            fs::read(dir.path().join(file_name(7, 2))).unwrap()
        );
        let (mapped, pages) = map(dir.path(), 7, 2).unwrap();
        assert_eq!(&mapped[..], &state[..]);
        pages.release();
        assert_eq!(
            &mapped[..],
            &state[..],
            "released pages read the same bytes"
        );
        let mut streamed = Vec::new();
        data_reader(dir.path(), 7, 2)
            .unwrap()
            .read_to_end(&mut streamed)
            .unwrap();
        assert_eq!(streamed, state);
    }

    #[test]
    fn a_failed_or_dropped_preparation_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let error = prepare(dir.path(), meta(3, 1), |out| {
            out.write_all(b"partial")?;
            Err(std::io::Error::other("serializer failed"))
        })
        .unwrap_err();
        assert!(error.to_string().contains("serializer failed"), "{error}");
        let listing = list(dir.path()).unwrap();
        assert!(listing.snapshots.is_empty() && listing.temporaries.is_empty());
        let prepared = prepare(dir.path(), meta(4, 1), |out| {
            out.write_all(b"state")?;
            Ok(5)
        })
        .unwrap();
        drop(prepared);
        let listing = list(dir.path()).unwrap();
        assert!(listing.snapshots.is_empty() && listing.temporaries.is_empty());
    }

    #[test]
    fn a_prepared_file_with_a_flipped_byte_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut prepared = prepare(dir.path(), meta(5, 1), |out| {
            out.write_all(b"some state bytes")?;
            Ok(16)
        })
        .unwrap();
        let path = install_prepared(dir.path(), &mut prepared).unwrap();
        drop(prepared);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        let listing = list(dir.path()).unwrap();
        let invalid = read(&listing.snapshots[0]).unwrap().unwrap_err();
        assert!(invalid.what.contains("checksum"), "{invalid:?}");
    }

    #[test]
    fn meta_that_disagrees_with_the_file_name_is_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), &sample(3, 1, b"x")).unwrap();
        let error = parse(fs::read(&path).unwrap(), 3, 2).unwrap_err();
        assert!(error.what.contains("file name"), "{error:?}");
    }
}
