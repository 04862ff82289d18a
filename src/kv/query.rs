//! Read-only commands on the state machine: what a linearizable read (or a
//! READONLY local read) evaluates, and what a transaction's reads evaluate
//! at their position in the log.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{KvStore, Reply};

/// A read of the store. Never changes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Query {
    Get {
        key: Bytes,
    },
    MGet {
        keys: Vec<Bytes>,
    },
    /// EXISTS and TOUCH: how many of the keys exist (repeats count again).
    Exists {
        keys: Vec<Bytes>,
    },
    StrLen {
        key: Bytes,
    },
    GetRange {
        key: Bytes,
        start: i64,
        end: i64,
    },
    Type {
        key: Bytes,
    },
    DbSize,
    /// RANDOMKEY: the first key after `probe` (random bytes the server
    /// drew), wrapping to the first key.
    RandomKey {
        probe: Bytes,
    },
    /// TTL / PTTL: the time left; -1 without an expiry, -2 for a missing key.
    Ttl {
        key: Bytes,
        unit: TimeUnit,
    },
    /// EXPIRETIME / PEXPIRETIME: the expiry as a Unix time; -1, -2 as TTL.
    ExpireTime {
        key: Bytes,
        unit: TimeUnit,
    },
}

/// The unit a TTL query answers in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimeUnit {
    Seconds,
    Milliseconds,
}

impl KvStore {
    /// Evaluates a read at `now_ms` (ms since the epoch): a key whose expiry
    /// is at or before it reads as missing.
    pub fn query(&self, query: &Query, now_ms: u64) -> Reply {
        let bulk_or_nil = |value: Option<Bytes>| value.map_or(Reply::Nil, Reply::Bulk);
        let live = |key: &[u8]| {
            if self.is_live(key, now_ms) {
                self.get_bytes(key)
            } else {
                None
            }
        };
        match query {
            Query::Get { key } => bulk_or_nil(live(key)),
            Query::MGet { keys } => {
                Reply::Array(keys.iter().map(|k| bulk_or_nil(live(k))).collect())
            }
            Query::Exists { keys } => {
                Reply::Integer(keys.iter().filter(|k| self.is_live(k, now_ms)).count() as i64)
            }
            Query::StrLen { key } => Reply::Integer(live(key).map_or(0, |v| v.len() as i64)),
            Query::GetRange { key, start, end } => {
                let value = live(key).unwrap_or_default();
                let (from, to) = range_of(value.len() as i64, *start, *end);
                Reply::Bulk(value.slice(from..to))
            }
            Query::Type { key } => Reply::Status(
                if self.is_live(key, now_ms) {
                    "string"
                } else {
                    "none"
                }
                .into(),
            ),
            Query::DbSize => Reply::Integer(self.len() as i64),
            Query::RandomKey { probe } => {
                // The first live key after the probe, wrapping around;
                // keys that expired but are not removed yet are skipped.
                let live_key = |after: Option<&[u8]>| {
                    self.scan(after, RANDOMKEY_PROBES_MAX)
                        .into_iter()
                        .map(|(k, _)| k)
                        .find(|key| self.is_live(key, now_ms))
                };
                bulk_or_nil(live_key(Some(probe)).or_else(|| live_key(None)))
            }
            Query::Ttl { key, unit } => Reply::Integer(match self.expiry_of(key, now_ms) {
                Err(code) => code,
                Ok(at) => {
                    let left_ms = at.saturating_sub(now_ms);
                    match unit {
                        // Rounded to the nearest second, as Redis does.
                        TimeUnit::Seconds => (left_ms + 500) / 1000,
                        TimeUnit::Milliseconds => left_ms,
                    }
                    .min(i64::MAX as u64) as i64
                }
            }),
            Query::ExpireTime { key, unit } => Reply::Integer(match self.expiry_of(key, now_ms) {
                Err(code) => code,
                Ok(at) => match unit {
                    TimeUnit::Seconds => at / 1000,
                    TimeUnit::Milliseconds => at,
                }
                .min(i64::MAX as u64) as i64,
            }),
        }
    }

    /// A live key's expiry, or TTL's code: -2 missing, -1 no expiry.
    fn expiry_of(&self, key: &[u8], now_ms: u64) -> Result<u64, i64> {
        if !self.is_live(key, now_ms) {
            return Err(-2);
        }
        self.expire_at(key).ok_or(-1)
    }
}

/// Keys RANDOMKEY looks at on each side of its probe for one that has not
/// expired (so it stays cheap when many keys expired at once).
const RANDOMKEY_PROBES_MAX: usize = 1_000;

/// GETRANGE's byte range of a string of `len` bytes, as Redis computes it
/// (negative positions count from the end; out-of-range ends are clamped).
fn range_of(len: i64, start: i64, end: i64) -> (usize, usize) {
    if len == 0 || (start < 0 && end < 0 && start > end) {
        return (0, 0);
    }
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let end = if end < 0 { (len + end).max(0) } else { end }.min(len - 1);
    if start > end {
        (0, 0)
    } else {
        (start as usize, end as usize + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::range_of;

    #[test]
    fn getrange_positions_follow_redis() {
        // "This is a string" (16 bytes), from the GETRANGE documentation.
        assert_eq!(range_of(16, 0, 3), (0, 4));
        assert_eq!(range_of(16, -3, -1), (13, 16));
        assert_eq!(range_of(16, 0, -1), (0, 16));
        assert_eq!(range_of(16, 10, 100), (10, 16));
        assert_eq!(range_of(16, 5, 3), (0, 0));
        assert_eq!(range_of(16, -1, -5), (0, 0));
        assert_eq!(range_of(16, -100, 2), (0, 3));
        assert_eq!(range_of(0, 0, -1), (0, 0));
        assert_eq!(range_of(16, 20, 30), (0, 0));
    }
}
