//! The replicated state machine: a byte-string map with Redis semantics for
//! SET, DEL, MSET and INCR, and the order-independent incremental digest of
//! DESIGN.md ("State digest").

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A write command, replicated through the log as `encode()`d bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Set { key: Bytes, value: Bytes },
    Del { keys: Vec<Bytes> },
    MSet { pairs: Vec<(Bytes, Bytes)> },
    Incr { key: Bytes },
}

/// The result of applying a command, as Redis would reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    Ok,
    Integer(i64),
    Error(String),
}

impl Command {
    /// Serializes for the log.
    pub fn encode(&self) -> Bytes {
        Bytes::from(
            postcard::to_allocvec(self).expect("serializing a command into memory cannot fail"),
        )
    }

    /// Parses log bytes; an error means the entry is not a raftkv command.
    pub fn decode(bytes: &[u8]) -> Result<Command, DecodeError> {
        postcard::from_bytes(bytes).map_err(|e| DecodeError(format!("not a raftkv command: {e}")))
    }
}

/// Bytes that are not a valid command or snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

/// A 256-bit unsigned integer as four big-endian u64 words, with wrapping
/// add/sub: the digest accumulator lives in the ring of integers mod 2^256.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct U256([u64; 4]);

impl U256 {
    fn from_be_bytes(bytes: &[u8; 32]) -> Self {
        let mut words = [0u64; 4];
        for (i, word) in words.iter_mut().enumerate() {
            *word = u64::from_be_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8-byte slice"));
        }
        U256(words)
    }

    fn to_be_bytes(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, word) in self.0.iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    fn wrapping_add(self, other: U256) -> U256 {
        let mut out = [0u64; 4];
        let mut carry = false;
        for i in (0..4).rev() {
            let (sum, c1) = self.0[i].overflowing_add(other.0[i]);
            let (sum, c2) = sum.overflowing_add(carry as u64);
            out[i] = sum;
            carry = c1 || c2;
        }
        U256(out)
    }

    fn wrapping_sub(self, other: U256) -> U256 {
        let mut out = [0u64; 4];
        let mut borrow = false;
        for i in (0..4).rev() {
            let (diff, b1) = self.0[i].overflowing_sub(other.0[i]);
            let (diff, b2) = diff.overflowing_sub(borrow as u64);
            out[i] = diff;
            borrow = b1 || b2;
        }
        U256(out)
    }
}

/// SHA-256(u32be(len k) || k || u32be(len v) || v): one pair's term in the sum.
fn pair_hash(key: &[u8], value: &[u8]) -> U256 {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update((key.len() as u32).to_be_bytes());
    hasher.update(key);
    hasher.update((value.len() as u32).to_be_bytes());
    hasher.update(value);
    U256::from_be_bytes(&hasher.finalize().into())
}

/// digest = SHA-256("raftkv-digest-v1" || u64be(count) || acc).
fn finish_digest(count: u64, acc: U256) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(b"raftkv-digest-v1");
    hasher.update(count.to_be_bytes());
    hasher.update(acc.to_be_bytes());
    hasher.finalize().into()
}

/// Lowercase hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        write!(out, "{byte:02x}").expect("writing to a String cannot fail");
    }
    out
}

/// Recomputes the digest of a set of pairs from scratch (the reference the
/// incremental digest is checked against, and what `raftkv kv dump` users
/// can reproduce independently).
pub fn digest_of<'a>(pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> [u8; 32] {
    let mut acc = U256::default();
    let mut count = 0u64;
    for (key, value) in pairs {
        acc = acc.wrapping_add(pair_hash(key, value));
        count += 1;
    }
    finish_digest(count, acc)
}

/// What a snapshot holds: the pairs plus the digest state, so a restore can
/// verify it rebuilt exactly what was saved.
#[derive(Serialize, Deserialize)]
struct SnapshotImage {
    count: u64,
    acc: [u8; 32],
    pairs: Vec<(Bytes, Bytes)>,
}

/// Bytes of a key kept inline in its map entry.
const KEY_PREFIX_BYTES: usize = 16;

/// A key of the map: the key bytes plus their first `KEY_PREFIX_BYTES`
/// inline (zero-padded, big-endian). A search compares the inline prefixes
/// first, one integer comparison in the node already in cache, and only
/// keys sharing them go on to compare their bytes behind the pointer. The
/// order is exactly the byte order of the keys, so the map can still be
/// searched and ranged by `&[u8]`.
#[derive(Clone, Debug)]
struct MapKey {
    prefix: [u64; 2],
    bytes: Bytes,
}

impl MapKey {
    fn new(bytes: Bytes) -> MapKey {
        let mut padded = [0u8; KEY_PREFIX_BYTES];
        let inline = bytes.len().min(KEY_PREFIX_BYTES);
        padded[..inline].copy_from_slice(&bytes[..inline]);
        let (high, low) = padded.split_at(8);
        MapKey {
            prefix: [
                u64::from_be_bytes(high.try_into().expect("8 bytes")),
                u64::from_be_bytes(low.try_into().expect("8 bytes")),
            ],
            bytes,
        }
    }
}

impl Ord for MapKey {
    /// Byte order: where the zero-padded prefixes differ, the keys differ
    /// first at that byte in the same direction (or one key ended there and
    /// is a prefix of the other); where they are equal, the bytes decide.
    fn cmp(&self, other: &Self) -> Ordering {
        self.prefix
            .cmp(&other.prefix)
            .then_with(|| self.bytes.as_ref().cmp(other.bytes.as_ref()))
    }
}

impl PartialOrd for MapKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for MapKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for MapKey {}

impl Borrow<[u8]> for MapKey {
    fn borrow(&self) -> &[u8] {
        &self.bytes
    }
}

/// The key-value map with its incremental digest.
///
/// Invariant: `acc` is the wrapping sum of `pair_hash` over every pair in
/// `map`, and `map.len() == count` (checked by tests and on restore).
#[derive(Clone, Debug, Default)]
pub struct KvStore {
    map: BTreeMap<MapKey, Bytes>,
    acc: U256,
}

impl KvStore {
    pub fn new() -> Self {
        KvStore::default()
    }

    /// Applies a write; deterministic on every replica.
    pub fn apply(&mut self, command: &Command) -> Reply {
        match command {
            Command::Set { key, value } => {
                self.insert(key.clone(), value.clone());
                Reply::Ok
            }
            Command::Del { keys } => {
                let removed = keys.iter().filter(|key| self.remove(key)).count();
                Reply::Integer(removed as i64)
            }
            Command::MSet { pairs } => {
                for (key, value) in pairs {
                    self.insert(key.clone(), value.clone());
                }
                Reply::Ok
            }
            Command::Incr { key } => self.incr(key),
        }
    }

    fn insert(&mut self, key: Bytes, value: Bytes) {
        self.acc = self.acc.wrapping_add(pair_hash(&key, &value));
        if let Some(old) = self.map.insert(MapKey::new(key.clone()), value) {
            self.acc = self.acc.wrapping_sub(pair_hash(&key, &old));
        }
    }

    fn remove(&mut self, key: &[u8]) -> bool {
        match self.map.remove(key) {
            Some(old) => {
                self.acc = self.acc.wrapping_sub(pair_hash(key, &old));
                true
            }
            None => false,
        }
    }

    fn incr(&mut self, key: &Bytes) -> Reply {
        let current = match self.map.get(&key[..]) {
            None => 0,
            Some(value) => match std::str::from_utf8(value)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
            {
                Some(n) => n,
                None => return Reply::Error("ERR value is not an integer or out of range".into()),
            },
        };
        match current.checked_add(1) {
            Some(next) => {
                self.insert(key.clone(), Bytes::from(next.to_string()));
                Reply::Integer(next)
            }
            None => Reply::Error("ERR increment or decrement would overflow".into()),
        }
    }

    pub fn get(&self, key: &[u8]) -> Option<&Bytes> {
        self.map.get(key)
    }

    pub fn len(&self) -> u64 {
        self.map.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// SHA-256("raftkv-digest-v1" || u64be(count) || acc), O(1).
    pub fn digest(&self) -> [u8; 32] {
        finish_digest(self.len(), self.acc)
    }

    /// Lowercase hex of `digest()`.
    pub fn digest_hex(&self) -> String {
        hex(&self.digest())
    }

    /// Keys in ascending byte order starting after `after` (exclusive), at most `count`.
    pub fn scan(&self, after: Option<&[u8]>, count: usize) -> Vec<(Bytes, Bytes)> {
        use std::ops::Bound;
        let lower = match after {
            Some(key) => Bound::Excluded(key),
            None => Bound::Unbounded,
        };
        self.map
            .range::<[u8], _>((lower, Bound::Unbounded))
            .take(count)
            .map(|(k, v)| (k.bytes.clone(), v.clone()))
            .collect()
    }

    /// Every pair in key order (for dumps and full-scan checks).
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &Bytes)> {
        self.map.iter().map(|(k, v)| (&k.bytes, v))
    }

    /// Serializes the whole state (pairs, acc, count).
    pub fn snapshot(&self) -> Bytes {
        let image = SnapshotImage {
            count: self.len(),
            acc: self.acc.to_be_bytes(),
            pairs: self
                .map
                .iter()
                .map(|(k, v)| (k.bytes.clone(), v.clone()))
                .collect(),
        };
        Bytes::from(
            postcard::to_allocvec(&image).expect("serializing a snapshot into memory cannot fail"),
        )
    }

    /// Rebuilds a store from `snapshot()` output, verifying acc and count.
    pub fn restore(bytes: &[u8]) -> Result<KvStore, DecodeError> {
        let image: SnapshotImage = postcard::from_bytes(bytes)
            .map_err(|e| DecodeError(format!("not a raftkv snapshot: {e}")))?;
        let mut store = KvStore::new();
        for (key, value) in image.pairs {
            store.insert(key, value);
        }
        if store.len() != image.count || store.acc.to_be_bytes() != image.acc {
            return Err(DecodeError(format!(
                "snapshot does not verify: it claims {} keys, rebuilding it gave {} keys and a different digest",
                image.count,
                store.len()
            )));
        }
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(key: &str, value: &str) -> Command {
        Command::Set {
            key: Bytes::from(key.to_string()),
            value: Bytes::from(value.to_string()),
        }
    }

    fn full_scan_digest(store: &KvStore) -> String {
        hex(&digest_of(store.iter().map(|(k, v)| (&k[..], &v[..]))))
    }

    /// The test vectors of DESIGN.md, computed independently of raftkv.
    #[test]
    fn digest_matches_design_test_vectors() {
        let mut store = KvStore::new();
        assert_eq!(
            store.digest_hex(),
            "9ee758fbc40fa99db071432ef003a18c7a85d601caf11ff37d96f2a3654bc03f"
        );
        store.apply(&set("a", "1"));
        assert_eq!(
            store.digest_hex(),
            "6d0b4047a7dc5f32e16617d3fd9b30bcbd3da269601f1bfb74344fc777b4372e"
        );
        store.apply(&set("b", "2"));
        assert_eq!(
            store.digest_hex(),
            "9c416561b5d29b481f4aaa44c5b47c98ce71d1bd47875d1c50203a677daa568c"
        );
        let mut hundred = KvStore::new();
        for i in 1..=100 {
            hundred.apply(&set(&format!("key:{i:04}"), &format!("value-{i}")));
        }
        assert_eq!(
            hundred.digest_hex(),
            "f9de357db9c61f71fae95744165a192bd493832bd09207da42c26293f1c136b4"
        );
    }

    #[test]
    fn delete_restores_previous_digest() {
        let mut store = KvStore::new();
        store.apply(&set("a", "1"));
        let before = store.digest_hex();
        store.apply(&set("b", "2"));
        assert_eq!(
            store.apply(&Command::Del {
                keys: vec![Bytes::from("b"), Bytes::from("zz")]
            }),
            Reply::Integer(1)
        );
        assert_eq!(store.digest_hex(), before);
    }

    #[test]
    fn incr_follows_redis_semantics() {
        let mut store = KvStore::new();
        let key = Bytes::from("n");
        assert_eq!(
            store.apply(&Command::Incr { key: key.clone() }),
            Reply::Integer(1)
        );
        assert_eq!(
            store.apply(&Command::Incr { key: key.clone() }),
            Reply::Integer(2)
        );
        assert_eq!(store.get(b"n").unwrap(), &Bytes::from("2"));
        store.apply(&set("n", "abc"));
        assert_eq!(
            store.apply(&Command::Incr { key: key.clone() }),
            Reply::Error("ERR value is not an integer or out of range".into())
        );
        store.apply(&set("n", &i64::MAX.to_string()));
        assert_eq!(
            store.apply(&Command::Incr { key }),
            Reply::Error("ERR increment or decrement would overflow".into())
        );
    }

    #[test]
    fn scan_pages_in_key_order() {
        let mut store = KvStore::new();
        for key in ["c", "a", "b", "d"] {
            store.apply(&set(key, key));
        }
        let first = store.scan(None, 2);
        assert_eq!(
            first.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
            vec!["a", "b"]
        );
        let rest = store.scan(Some(b"b"), 10);
        assert_eq!(
            rest.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
            vec!["c", "d"]
        );
    }

    #[test]
    fn restore_rejects_garbage_and_tampered_snapshots() {
        assert!(KvStore::restore(b"\xff\xff\xff garbage").is_err());
        let mut store = KvStore::new();
        store.apply(&set("a", "1"));
        let mut image: SnapshotImage = postcard::from_bytes(&store.snapshot()).unwrap();
        image.pairs[0].1 = Bytes::from("2");
        let tampered = postcard::to_allocvec(&image).unwrap();
        assert!(KvStore::restore(&tampered).is_err());
    }

    #[test]
    fn command_encoding_round_trips() {
        let command = Command::MSet {
            pairs: vec![(Bytes::from("k"), Bytes::from("v"))],
        };
        assert_eq!(Command::decode(&command.encode()).unwrap(), command);
        assert!(Command::decode(b"\xff\xff\xff\xff\xff").is_err());
    }

    fn arb_command() -> impl Strategy<Value = Command> {
        let key = prop::sample::select(vec!["a", "b", "c", "d", "e", "n"])
            .prop_map(|k| Bytes::from(k.to_string()));
        let value = prop::collection::vec(any::<u8>(), 0..8).prop_map(Bytes::from);
        prop_oneof![
            (key.clone(), value.clone()).prop_map(|(key, value)| Command::Set { key, value }),
            prop::collection::vec(key.clone(), 1..3).prop_map(|keys| Command::Del { keys }),
            prop::collection::vec((key.clone(), value), 1..3)
                .prop_map(|pairs| Command::MSet { pairs }),
            key.prop_map(|key| Command::Incr { key }),
        ]
    }

    proptest! {
        #[test]
        fn incremental_digest_equals_full_scan(commands in prop::collection::vec(arb_command(), 0..60)) {
            let mut store = KvStore::new();
            for command in &commands {
                store.apply(command);
                prop_assert_eq!(store.digest_hex(), full_scan_digest(&store));
            }
        }

        #[test]
        fn snapshot_restore_preserves_keys_digest_and_count(commands in prop::collection::vec(arb_command(), 0..60)) {
            let mut store = KvStore::new();
            for command in &commands {
                store.apply(command);
            }
            let restored = KvStore::restore(&store.snapshot()).unwrap();
            prop_assert_eq!(restored.digest_hex(), store.digest_hex());
            prop_assert_eq!(restored.len(), store.len());
            prop_assert!(restored.iter().eq(store.iter()));
        }

        /// The inline key prefixes must not change the map's order: keys
        /// around the prefix length, with zero bytes and shared prefixes,
        /// iterate, scan and look up exactly as sorted byte strings do.
        #[test]
        fn keys_iterate_scan_and_look_up_in_byte_order(
            keys in prop::collection::vec(
                prop::collection::vec(prop_oneof![Just(0u8), Just(b'k'), Just(255u8), any::<u8>()], 0..20),
                0..40,
            )
        ) {
            let mut store = KvStore::new();
            for key in &keys {
                store.apply(&Command::Set { key: Bytes::from(key.clone()), value: Bytes::from_static(b"v") });
            }
            let mut sorted = keys.clone();
            sorted.sort();
            sorted.dedup();
            let iterated: Vec<Vec<u8>> = store.iter().map(|(k, _)| k.to_vec()).collect();
            prop_assert_eq!(&iterated, &sorted);
            for (position, key) in sorted.iter().enumerate() {
                prop_assert!(store.get(key).is_some());
                let after: Vec<Vec<u8>> = store.scan(Some(key), 64).into_iter().map(|(k, _)| k.to_vec()).collect();
                prop_assert_eq!(&after[..], &sorted[position + 1..]);
            }
            let mut padded = b"k".to_vec();
            padded.resize(17, 0);
            prop_assert_eq!(store.get(&padded).is_some(), sorted.contains(&padded));
        }
    }
}
