//! The gate's test-only damage (`raftkv demo --sabotage-catchup`): corrupting
//! the killed node's WAL while it is down, so that it must refuse to restart
//! and item 6 must fail.

use std::path::{Path, PathBuf};

/// Flips the checksum byte of the first record of the node's oldest WAL
/// segment: the node must then refuse to start (DESIGN.md "Storage").
pub fn corrupt_wal(node_data_dir: &Path) -> Result<String, String> {
    let wal_dir = node_data_dir.join("wal");
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&wal_dir)
        .map_err(|e| format!("cannot list {}: {e}", wal_dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "wal"))
        .collect();
    segments.sort();
    let first = segments
        .first()
        .ok_or_else(|| format!("{} holds no WAL segment", wal_dir.display()))?;
    let mut bytes =
        std::fs::read(first).map_err(|e| format!("cannot read {}: {e}", first.display()))?;
    // Record layout: u32 length | u32 CRC32C | payload.
    const CHECKSUM_BYTE_OFFSET: usize = 4;
    let byte = bytes
        .get_mut(CHECKSUM_BYTE_OFFSET)
        .ok_or_else(|| format!("{} is too short to corrupt", first.display()))?;
    *byte ^= 0xFF;
    std::fs::write(first, &bytes).map_err(|e| format!("cannot write {}: {e}", first.display()))?;
    Ok(format!(
        "flipped byte {CHECKSUM_BYTE_OFFSET} (the first record's checksum) of {}",
        first.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupting_the_wal_flips_the_first_records_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("wal");
        std::fs::create_dir_all(&wal).unwrap();
        std::fs::write(wal.join("00000002.wal"), [0u8; 16]).unwrap();
        std::fs::write(wal.join("00000001.wal"), [1u8; 16]).unwrap();
        let note = corrupt_wal(dir.path()).unwrap();
        assert!(note.contains("00000001.wal"), "{note}");
        let bytes = std::fs::read(wal.join("00000001.wal")).unwrap();
        assert_eq!(bytes[4], 0xFE);
        assert_eq!(bytes[3], 1);
        assert_eq!(std::fs::read(wal.join("00000002.wal")).unwrap(), [0u8; 16]);
        let empty = tempfile::tempdir().unwrap();
        assert!(corrupt_wal(empty.path())
            .unwrap_err()
            .contains("cannot list"));
    }
}
