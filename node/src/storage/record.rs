//! WAL record framing: `u32 length | u32 CRC32C | payload`, all little-endian.
//!
//! The checksum covers the four length bytes followed by the payload, so a
//! zero-filled region (what a file system may expose after a crash) never
//! passes as a record, and a flipped length is caught like a flipped payload.
//! The payload is the postcard encoding of [`Record`].

use raftkv::message::{Entry, Index, Term};
use raftkv::raft::HardState;
use serde::{Deserialize, Serialize};

use super::StorageError;

/// Bytes of the record header: u32 length + u32 CRC32C.
pub(super) const RECORD_HEADER_BYTES: usize = 8;

/// Largest record payload accepted, when writing and when reading. A length
/// field above this is damage (never an allocation request).
pub const RECORD_BYTES_MAX: usize = 64 * 1024 * 1024;

const _: () = assert!(RECORD_BYTES_MAX <= u32::MAX as usize);

/// One WAL record, as read back.
///
/// The variant order is the on-disk tag: never reorder, only append.
#[derive(Debug, Deserialize, PartialEq, Eq)]
pub(super) enum Record {
    /// Opens the records written by one `sync()`. Everything before a
    /// `BatchStart` in the same segment was fsynced before it was written,
    /// which is how recovery tells a torn last batch from damage to
    /// acknowledged data.
    BatchStart,
    /// The hard state from here on (the last one replayed wins), as
    /// written before votes named an incarnation.
    HardStateWithoutIncarnation(HardStateWithoutIncarnation),
    /// A log entry. If its index is at or below the last index replayed so
    /// far, the log is first truncated from that index (Raft conflict).
    Entry(Entry),
    /// A snapshot through (`index`, `term`) is durable: entries up to
    /// `index` are dropped, and the whole log when `discard_log` is set or
    /// when the log disagrees with the snapshot's term.
    Snapshot {
        index: Index,
        term: Term,
        discard_log: bool,
    },
    /// The hard state from here on (the last one replayed wins).
    HardState(HardState),
}

/// A hard state record of the first WAL format: its vote names no
/// incarnation, so it reads back with `NO_INCARNATION` (a second vote in
/// that term is then refused to every incarnation of the candidate).
#[derive(Debug, Deserialize, Serialize, PartialEq, Eq)]
pub(super) struct HardStateWithoutIncarnation {
    pub term: Term,
    pub vote: u64,
    pub commit: Index,
}

impl From<HardStateWithoutIncarnation> for HardState {
    fn from(old: HardStateWithoutIncarnation) -> HardState {
        HardState {
            term: old.term,
            vote: old.vote,
            vote_incarnation: raftkv::message::NO_INCARNATION,
            commit: old.commit,
        }
    }
}

/// The write-side twin of [`Record`]: borrows, so appending an entry does
/// not clone it. Must encode exactly like `Record` (checked by a test).
#[derive(Debug, Serialize)]
pub(super) enum RecordRef<'a> {
    BatchStart,
    /// Never written any more; kept so every tag matches `Record`'s.
    #[allow(dead_code)]
    HardStateWithoutIncarnation(&'a HardStateWithoutIncarnation),
    Entry(&'a Entry),
    Snapshot {
        index: Index,
        term: Term,
        discard_log: bool,
    },
    HardState(&'a HardState),
}

/// Lets postcard serialize straight into the tail of an existing buffer.
struct ExtendVec<'a>(&'a mut Vec<u8>);

impl Extend<u8> for ExtendVec<'_> {
    fn extend<I: IntoIterator<Item = u8>>(&mut self, bytes: I) {
        self.0.extend(bytes);
    }
}

/// The checksum stored in a record header.
pub(super) fn record_checksum(length_le: [u8; 4], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&length_le), payload)
}

/// Appends one framed record to `buffer`; returns the bytes added. On error
/// `buffer` is left as it was.
pub(super) fn encode_record(
    buffer: &mut Vec<u8>,
    record: &RecordRef<'_>,
) -> Result<usize, StorageError> {
    let start = buffer.len();
    buffer.extend_from_slice(&[0; RECORD_HEADER_BYTES]);
    if let Err(error) = postcard::to_extend(record, ExtendVec(buffer)) {
        buffer.truncate(start);
        return Err(StorageError::Encode {
            what: format!("WAL record: {error}"),
        });
    }
    let payload_bytes = buffer.len() - start - RECORD_HEADER_BYTES;
    if payload_bytes > RECORD_BYTES_MAX {
        buffer.truncate(start);
        return Err(StorageError::RecordTooLarge {
            bytes: payload_bytes,
            max_bytes: RECORD_BYTES_MAX,
        });
    }
    let length_le = (payload_bytes as u32).to_le_bytes();
    let checksum = record_checksum(length_le, &buffer[start + RECORD_HEADER_BYTES..]);
    buffer[start..start + 4].copy_from_slice(&length_le);
    buffer[start + 4..start + RECORD_HEADER_BYTES].copy_from_slice(&checksum.to_le_bytes());
    Ok(buffer.len() - start)
}

/// Why the bytes at an offset are not a valid record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BadRecord {
    /// Fewer than `RECORD_HEADER_BYTES` bytes remain.
    HeaderCut {
        remaining_bytes: usize,
    },
    /// A length of zero (no record has an empty payload).
    LengthZero,
    /// A length above `RECORD_BYTES_MAX`.
    LengthTooLarge {
        length_bytes: u32,
    },
    /// The record would run past the end of the file.
    PastEnd {
        length_bytes: u32,
        remaining_bytes: usize,
    },
    ChecksumMismatch,
}

impl std::fmt::Display for BadRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadRecord::HeaderCut { remaining_bytes } => {
                write!(f, "record header cut short: {remaining_bytes} of {RECORD_HEADER_BYTES} bytes")
            }
            BadRecord::LengthZero => write!(f, "record length is zero"),
            BadRecord::LengthTooLarge { length_bytes } => write!(
                f,
                "record length {length_bytes} exceeds the {RECORD_BYTES_MAX}-byte record limit"
            ),
            BadRecord::PastEnd {
                length_bytes,
                remaining_bytes,
            } => write!(
                f,
                "record of {length_bytes} bytes runs past the end of the file ({remaining_bytes} bytes remain)"
            ),
            BadRecord::ChecksumMismatch => write!(f, "checksum mismatch"),
        }
    }
}

/// What the bytes at an offset hold.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Framed<'a> {
    /// The offset is exactly the end of the buffer.
    End,
    /// A record whose checksum matches; the next record starts at `end`.
    Valid {
        payload: &'a [u8],
        end: usize,
    },
    Bad(BadRecord),
}

/// The record length stored at `offset`, if a header fits there.
fn length_at(bytes: &[u8], offset: usize) -> Option<u32> {
    let header = bytes.get(offset..offset + RECORD_HEADER_BYTES)?;
    Some(u32::from_le_bytes(
        header[0..4].try_into().expect("4 bytes"),
    ))
}

/// Checks the framing at `offset` without decoding the payload. Bounds are
/// checked before any byte of the payload is touched.
pub(super) fn frame_at(bytes: &[u8], offset: usize) -> Framed<'_> {
    let remaining_bytes = bytes.len().saturating_sub(offset);
    if remaining_bytes == 0 {
        return Framed::End;
    }
    let Some(length_bytes) = length_at(bytes, offset) else {
        return Framed::Bad(BadRecord::HeaderCut { remaining_bytes });
    };
    if length_bytes == 0 {
        return Framed::Bad(BadRecord::LengthZero);
    }
    if length_bytes as usize > RECORD_BYTES_MAX {
        return Framed::Bad(BadRecord::LengthTooLarge { length_bytes });
    }
    let payload_start = offset + RECORD_HEADER_BYTES;
    let end = payload_start + length_bytes as usize;
    if end > bytes.len() {
        return Framed::Bad(BadRecord::PastEnd {
            length_bytes,
            remaining_bytes,
        });
    }
    let stored = u32::from_le_bytes(
        bytes[offset + 4..payload_start]
            .try_into()
            .expect("4 bytes"),
    );
    let payload = &bytes[payload_start..end];
    if record_checksum(length_bytes.to_le_bytes(), payload) != stored {
        return Framed::Bad(BadRecord::ChecksumMismatch);
    }
    Framed::Valid { payload, end }
}

/// The payload length at `offset` if checking its checksum is worth it: a
/// non-zero length within the limit that fits in the buffer. Used by the
/// torn-tail scan to skip most offsets without touching their payload.
pub(super) fn plausible_length_at(bytes: &[u8], offset: usize) -> Option<usize> {
    let length_bytes = length_at(bytes, offset)? as usize;
    let fits = offset + RECORD_HEADER_BYTES + length_bytes <= bytes.len();
    (length_bytes != 0 && length_bytes <= RECORD_BYTES_MAX && fits).then_some(length_bytes)
}

/// Decodes a checksum-valid payload; trailing bytes are an error.
pub(super) fn decode_record(payload: &[u8]) -> Result<Record, String> {
    match postcard::take_from_bytes::<Record>(payload) {
        Ok((record, [])) => Ok(record),
        Ok((_, rest)) => Err(format!(
            "record has {} unexpected trailing bytes",
            rest.len()
        )),
        Err(error) => Err(format!("record does not decode: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn entry(index: Index, term: Term, data: &'static [u8]) -> Entry {
        Entry::normal(index, term, Bytes::from_static(data))
    }

    #[test]
    fn record_ref_encodes_exactly_like_record_for_every_variant() {
        let hard_state = HardState {
            term: 7,
            vote: 2,
            vote_incarnation: 0xa41f,
            commit: 40,
        };
        let old_hard_state = HardStateWithoutIncarnation {
            term: 7,
            vote: 2,
            commit: 40,
        };
        let entry = entry(41, 7, b"set a 1");
        let cases = [
            (RecordRef::BatchStart, Record::BatchStart),
            (
                RecordRef::HardState(&hard_state),
                Record::HardState(hard_state),
            ),
            (
                RecordRef::HardStateWithoutIncarnation(&old_hard_state),
                Record::HardStateWithoutIncarnation(HardStateWithoutIncarnation {
                    term: 7,
                    vote: 2,
                    commit: 40,
                }),
            ),
            (RecordRef::Entry(&entry), Record::Entry(entry.clone())),
            (
                RecordRef::Snapshot {
                    index: 9,
                    term: 3,
                    discard_log: true,
                },
                Record::Snapshot {
                    index: 9,
                    term: 3,
                    discard_log: true,
                },
            ),
        ];
        for (written, expected) in cases {
            let mut buffer = vec![0xAA];
            let added = encode_record(&mut buffer, &written).unwrap();
            assert_eq!(buffer.len(), 1 + added);
            match frame_at(&buffer, 1) {
                Framed::Valid { payload, end } => {
                    assert_eq!(end, buffer.len());
                    assert_eq!(decode_record(payload).unwrap(), expected);
                }
                other => panic!("record did not frame: {other:?}"),
            }
        }
    }

    #[test]
    fn zero_filled_bytes_are_never_a_record() {
        let zeros = [0u8; 64];
        assert_eq!(frame_at(&zeros, 0), Framed::Bad(BadRecord::LengthZero));
        assert_eq!(plausible_length_at(&zeros, 0), None);
    }

    #[test]
    fn a_flipped_length_bit_fails_the_checksum() {
        let mut buffer = Vec::new();
        let first = entry(1, 1, b"0123456789");
        encode_record(&mut buffer, &RecordRef::Entry(&first)).unwrap();
        encode_record(&mut buffer, &RecordRef::BatchStart).unwrap();
        buffer[0] ^= 0x01; // length 10+ becomes a different, still fitting, length
        assert!(matches!(
            frame_at(&buffer, 0),
            Framed::Bad(BadRecord::ChecksumMismatch)
        ));
    }

    #[test]
    fn garbage_length_is_refused_before_any_allocation() {
        let mut buffer = vec![0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0];
        buffer.extend_from_slice(&[1; 16]);
        assert_eq!(
            frame_at(&buffer, 0),
            Framed::Bad(BadRecord::LengthTooLarge {
                length_bytes: u32::MAX
            })
        );
        assert_eq!(plausible_length_at(&buffer, 0), None);
        assert_eq!(
            frame_at(&buffer[..5], 0),
            Framed::Bad(BadRecord::HeaderCut { remaining_bytes: 5 })
        );
        assert_eq!(frame_at(&buffer, buffer.len()), Framed::End);
    }

    #[test]
    fn an_oversized_entry_is_refused_and_leaves_the_buffer_unchanged() {
        let huge = Entry::normal(1, 1, vec![7u8; RECORD_BYTES_MAX + 1]);
        let mut buffer = vec![1, 2, 3];
        let error = encode_record(&mut buffer, &RecordRef::Entry(&huge)).unwrap_err();
        assert!(
            matches!(error, StorageError::RecordTooLarge { .. }),
            "{error}"
        );
        assert_eq!(buffer, vec![1, 2, 3]);
    }

    #[test]
    fn trailing_bytes_after_a_payload_are_reported() {
        let error = decode_record(&[0, 0]).unwrap_err();
        assert!(error.contains("trailing"), "{error}");
    }
}
