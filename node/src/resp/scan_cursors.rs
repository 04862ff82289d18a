//! SCAN cursors. Clients (redis-cli, redis-py) treat a cursor as an unsigned
//! decimal number, but raftkv scans in key order, so a cursor names "the
//! last key returned": the server keeps a bounded table from cursor number
//! to that key. Numbers start at a per-process random base so a cursor from
//! before a restart is unknown (`-ERR invalid cursor`) rather than wrong.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;

use bytes::Bytes;

/// Most cursors remembered; the oldest is forgotten first.
pub(crate) const SCAN_CURSORS_MAX: usize = 16_384;
/// Most key bytes held by remembered cursors.
pub(crate) const SCAN_CURSOR_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Cursor number -> the last key a SCAN returned.
#[derive(Debug)]
pub(crate) struct ScanCursors {
    next: u64,
    positions: HashMap<u64, Bytes>,
    /// Cursor numbers oldest first, for eviction.
    order: VecDeque<u64>,
    key_bytes: usize,
}

impl Default for ScanCursors {
    fn default() -> Self {
        // Below 2^62, so clients that parse cursors as signed 64-bit numbers
        // never overflow however many cursors follow.
        let base = RandomState::new().hash_one(std::process::id()) >> 2;
        ScanCursors {
            next: base.max(1),
            positions: HashMap::new(),
            order: VecDeque::new(),
            key_bytes: 0,
        }
    }
}

impl ScanCursors {
    /// Remembers `last_key` and returns its cursor number (never 0).
    pub(crate) fn insert(&mut self, last_key: Bytes) -> u64 {
        while self.order.len() >= SCAN_CURSORS_MAX
            || (!self.order.is_empty() && self.key_bytes + last_key.len() > SCAN_CURSOR_BYTES_MAX)
        {
            self.evict_oldest();
        }
        let cursor = self.next;
        self.next = if self.next >= (1 << 63) - 1 {
            1
        } else {
            self.next + 1
        };
        self.key_bytes += last_key.len();
        if let Some(replaced) = self.positions.insert(cursor, last_key) {
            self.key_bytes -= replaced.len();
        }
        self.order.push_back(cursor);
        cursor
    }

    /// The key a cursor stands for, if it is still remembered.
    pub(crate) fn get(&self, cursor: u64) -> Option<Bytes> {
        self.positions.get(&cursor).cloned()
    }

    fn evict_oldest(&mut self) {
        if let Some(oldest) = self.order.pop_front() {
            if let Some(key) = self.positions.remove(&oldest) {
                self.key_bytes -= key.len();
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.positions.len()
    }
}
