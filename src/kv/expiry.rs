//! Key expiry, decided by the log, never by a node's clock.
//!
//! Every write the leader proposes is stamped with its clock
//! (`Command::At`). Applying a stamped entry first advances the store's
//! clock to `max(clock, stamp)` (so it never goes back, whatever the clock
//! of the next leader) and removes every key whose expiry is at or before
//! it; then it applies the command. Every node applies the same entries
//! with the same stamps, so every node removes the same keys at the same
//! log position and the digests stay equal. Reads hide keys whose expiry
//! has passed on the reading node's clock, so the leader never returns a
//! key whose TTL passed on its clock, even between two writes.
//!
//! A key with an expiry hashes as SHA-256(u32be(len k) || k || u32be(len v)
//! || v || u64be(expire_at_ms)) in the digest (DESIGN.md); keys without one
//! hash as before, so the published vectors hold.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{pair_hash, KvStore, Reply, U256};

/// Keys with an expiry, by key and by time. Behind an `Arc` in the store:
/// a snapshot clone shares it, and the first write after the clone copies
/// it (O(keys with an expiry)).
#[derive(Clone, Debug, Default)]
pub(super) struct Expiries {
    by_key: BTreeMap<Bytes, u64>,
    by_time: BTreeSet<(u64, Bytes)>,
}

impl Expiries {
    pub(super) fn len(&self) -> usize {
        self.by_key.len()
    }

    /// In key order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&Bytes, u64)> {
        self.by_key.iter().map(|(key, at)| (key, *at))
    }
}

/// What a write does to the key's expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TtlChange {
    /// Remove it (SET, GETSET, MSET, GETEX PERSIST).
    Clear,
    /// Keep it (KEEPTTL).
    Keep,
    /// Expire at this time, in ms since the Unix epoch on the leader's clock.
    At(u64),
}

/// EXPIRE's NX | XX | GT | LT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpireCondition {
    Always,
    /// Only if the key has no expiry.
    IfNone,
    /// Only if the key has an expiry.
    IfSome,
    /// Only if the new expiry is later (a key without one never expires,
    /// so never).
    IfLater,
    /// Only if the new expiry is earlier (always, for a key without one).
    IfEarlier,
}

/// The digest term of a pair with an optional expiry.
pub(super) fn entry_hash(key: &[u8], value: &[u8], expire_at_ms: Option<u64>) -> U256 {
    use sha2::{Digest, Sha256};
    let Some(at) = expire_at_ms else {
        return pair_hash(key, value);
    };
    let mut hasher = Sha256::new();
    hasher.update((key.len() as u32).to_be_bytes());
    hasher.update(key);
    hasher.update((value.len() as u32).to_be_bytes());
    hasher.update(value);
    hasher.update(at.to_be_bytes());
    U256::from_be_bytes(&hasher.finalize().into())
}

impl KvStore {
    /// When `key` expires (ms since the epoch), if it has an expiry.
    pub fn expire_at(&self, key: &[u8]) -> Option<u64> {
        self.expiries.by_key.get(key).copied()
    }

    /// How many keys have an expiry (INFO keyspace's `expires`).
    pub fn keys_with_expiry(&self) -> u64 {
        self.expiries.len() as u64
    }

    /// The store's clock: the latest leader stamp applied (ms since the epoch).
    pub fn clock_ms(&self) -> u64 {
        self.clock_ms
    }

    /// Whether `key` exists and has not expired at `now_ms`.
    pub fn is_live(&self, key: &[u8], now_ms: u64) -> bool {
        self.get(key).is_some() && self.expire_at(key).is_none_or(|at| at > now_ms)
    }

    /// Sets or clears the expiry of an existing key, keeping the digest right.
    pub(super) fn set_expiry(&mut self, key: &[u8], at: Option<u64>) {
        let old = self.expire_at(key);
        if old == at {
            return;
        }
        let Some(value) = self.get_bytes(key) else {
            return;
        };
        self.acc = self
            .acc
            .wrapping_sub(entry_hash(key, &value, old))
            .wrapping_add(entry_hash(key, &value, at));
        let expiries = Arc::make_mut(&mut self.expiries);
        let key = Bytes::copy_from_slice(key);
        if let Some(old) = old {
            expiries.by_time.remove(&(old, key.clone()));
            expiries.by_key.remove(&key);
        }
        if let Some(at) = at {
            expiries.by_time.insert((at, key.clone()));
            expiries.by_key.insert(key, at);
        }
    }

    /// Forgets the expiry of a key being removed; returns it.
    pub(super) fn drop_expiry(&mut self, key: &[u8]) -> Option<u64> {
        let at = self.expire_at(key)?;
        let expiries = Arc::make_mut(&mut self.expiries);
        let key = Bytes::copy_from_slice(key);
        expiries.by_time.remove(&(at, key.clone()));
        expiries.by_key.remove(&key);
        Some(at)
    }

    /// Advances the clock to `now_ms` (never back) and removes every key
    /// that expired by then.
    pub(super) fn advance_clock(&mut self, now_ms: u64) {
        self.clock_ms = self.clock_ms.max(now_ms);
        while let Some((at, key)) = self.expiries.by_time.first().cloned() {
            if at > self.clock_ms {
                break;
            }
            self.remove(&key);
        }
    }

    /// Applies a TTL change to a key that was just written.
    pub(super) fn change_ttl(&mut self, key: &[u8], change: TtlChange) {
        match change {
            TtlChange::Keep => {}
            TtlChange::Clear => self.set_expiry(key, None),
            TtlChange::At(at) if at <= self.clock_ms => {
                self.remove(key);
            }
            TtlChange::At(at) => self.set_expiry(key, Some(at)),
        }
    }

    /// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT: 1 if the expiry was set (or
    /// the key removed, for a time already past), 0 if the key does not
    /// exist or the condition is not met.
    pub(super) fn expire(&mut self, key: &[u8], at: u64, condition: ExpireCondition) -> Reply {
        if self.get(key).is_none() {
            return Reply::Integer(0);
        }
        let current = self.expire_at(key);
        let allowed = match condition {
            ExpireCondition::Always => true,
            ExpireCondition::IfNone => current.is_none(),
            ExpireCondition::IfSome => current.is_some(),
            ExpireCondition::IfLater => current.is_some_and(|c| at > c),
            ExpireCondition::IfEarlier => current.is_none_or(|c| at < c),
        };
        if !allowed {
            return Reply::Integer(0);
        }
        self.change_ttl(key, TtlChange::At(at));
        Reply::Integer(1)
    }

    /// PERSIST: 1 if the key had an expiry (now removed), else 0.
    pub(super) fn persist(&mut self, key: &[u8]) -> Reply {
        if self.expire_at(key).is_none() {
            return Reply::Integer(0);
        }
        self.set_expiry(key, None);
        Reply::Integer(1)
    }

    /// GETEX: the value (or nil), with its expiry changed.
    pub(super) fn get_ex(&mut self, key: &[u8], change: TtlChange) -> Reply {
        let Some(value) = self.get_bytes(key) else {
            return Reply::Nil;
        };
        self.change_ttl(key, change);
        Reply::Bulk(value)
    }
}
