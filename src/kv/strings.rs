//! The string commands beyond SET/DEL/MSET/INCR, with Redis's replies and
//! error texts. Everything here is a pure function of the store and the
//! command, so every replica applies it identically.

use bytes::Bytes;

use super::{KvStore, Reply, SetCondition};

/// Largest string SETRANGE and APPEND may build (Redis's default
/// `proto-max-bulk-len`, 512 MiB).
pub const STRING_BYTES_MAX: u64 = 512 * 1024 * 1024;

pub(crate) const NOT_AN_INTEGER: &str = "ERR value is not an integer or out of range";
const OVERFLOW: &str = "ERR increment or decrement would overflow";
const NOT_A_FLOAT: &str = "ERR value is not a valid float";
const NAN_OR_INFINITY: &str = "ERR increment would produce NaN or Infinity";
const TOO_BIG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";

/// Redis's strict integer syntax (`string2ll`): an optional `-`, then `0`
/// alone or digits without a leading zero; no `+`, no spaces, fits i64.
pub fn parse_strict_i64(bytes: &[u8]) -> Option<i64> {
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    let well_formed = match digits {
        [b'0'] => bytes.len() == 1,
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !well_formed {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// A float as INCRBYFLOAT accepts it: decimal or exponent form, or inf;
/// no spaces, never NaN.
pub fn parse_float(bytes: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(bytes).ok()?;
    if text.is_empty() || text.trim() != text {
        return None;
    }
    let value: f64 = text.parse().ok()?;
    (!value.is_nan()).then_some(value)
}

/// A finite float as Redis writes it back: the shortest text that reads
/// back as the same number, without an exponent, `3` rather than `3.0`.
pub fn format_float(value: f64) -> String {
    let text = format!("{value}");
    if text == "-0" {
        "0".into()
    } else {
        text
    }
}

impl KvStore {
    /// INCRBY and friends: the new value, or Redis's error.
    pub(super) fn incr_by(&mut self, key: &[u8], by: i64) -> Reply {
        let current = match self.get(key) {
            None => 0,
            Some(value) => match parse_strict_i64(value) {
                Some(n) => n,
                None => return Reply::Error(NOT_AN_INTEGER.into()),
            },
        };
        let Some(next) = current.checked_add(by) else {
            return Reply::Error(OVERFLOW.into());
        };
        match self.put_keeping_ttl(key, next.to_string().as_bytes()) {
            Ok(()) => Reply::Integer(next),
            Err(refusal) => refusal,
        }
    }

    pub(super) fn incr_by_float(&mut self, key: &[u8], by: &[u8]) -> Reply {
        let Some(by) = parse_float(by) else {
            return Reply::Error(NOT_A_FLOAT.into());
        };
        let current = match self.get(key) {
            None => 0.0,
            Some(value) => match parse_float(value) {
                Some(n) => n,
                None => return Reply::Error(NOT_A_FLOAT.into()),
            },
        };
        let next = current + by;
        if !next.is_finite() {
            return Reply::Error(NAN_OR_INFINITY.into());
        }
        let text = format_float(next);
        match self.put_keeping_ttl(key, text.as_bytes()) {
            Ok(()) => Reply::Bulk(Bytes::from(text)),
            Err(refusal) => refusal,
        }
    }

    pub(super) fn append(&mut self, key: &[u8], value: &[u8]) -> Reply {
        let mut joined = self.get(key).unwrap_or_default().to_vec();
        if (joined.len() + value.len()) as u64 > STRING_BYTES_MAX {
            return Reply::Error(TOO_BIG.into());
        }
        joined.extend_from_slice(value);
        match self.put_keeping_ttl(key, &joined) {
            Ok(()) => Reply::Integer(joined.len() as i64),
            Err(refusal) => refusal,
        }
    }

    /// SETRANGE: overwrites from `offset`, padding with zero bytes; an empty
    /// `value` changes nothing (and creates no key).
    pub(super) fn set_range(&mut self, key: &[u8], offset: u64, value: &[u8]) -> Reply {
        let current = self.get(key);
        if value.is_empty() {
            return Reply::Integer(current.map_or(0, |v| v.len() as i64));
        }
        if offset.saturating_add(value.len() as u64) > STRING_BYTES_MAX {
            return Reply::Error(TOO_BIG.into());
        }
        let mut next = current.unwrap_or_default().to_vec();
        let end = offset as usize + value.len();
        if next.len() < end {
            next.resize(end, 0);
        }
        next[offset as usize..end].copy_from_slice(value);
        match self.put_keeping_ttl(key, &next) {
            Ok(()) => Reply::Integer(next.len() as i64),
            Err(refusal) => refusal,
        }
    }

    /// SET with NX / XX / GET (the expiry is cleared).
    pub(super) fn set_with(
        &mut self,
        key: &[u8],
        value: &[u8],
        condition: SetCondition,
        get: bool,
    ) -> Reply {
        self.set_ttl(key, value, condition, get, super::TtlChange::Clear)
    }

    /// SET with every option: OK, or nil when the condition is not met; with
    /// GET the old value (or nil) whether or not the value was stored. An
    /// expiry already past removes the key once stored (as Redis does).
    pub(super) fn set_ttl(
        &mut self,
        key: &[u8],
        value: &[u8],
        condition: SetCondition,
        get: bool,
        ttl: super::TtlChange,
    ) -> Reply {
        let old = self.get_bytes(key);
        let allowed = match condition {
            SetCondition::Always => true,
            SetCondition::IfAbsent => old.is_none(),
            SetCondition::IfPresent => old.is_some(),
        };
        if allowed {
            if let Err(refusal) = self.put_keeping_ttl(key, value) {
                return refusal;
            }
            self.change_ttl(key, ttl);
        }
        match (get, old) {
            (true, Some(old)) => Reply::Bulk(old),
            (true, None) => Reply::Nil,
            (false, _) if allowed => Reply::Ok,
            (false, _) => Reply::Nil,
        }
    }

    /// MSETNX: every pair when none of the keys exists (1), else none (0).
    pub(super) fn mset_nx(&mut self, pairs: &[(Bytes, Bytes)]) -> Reply {
        if pairs.iter().any(|(key, _)| self.get(key).is_some()) {
            return Reply::Integer(0);
        }
        match self.apply(&super::Command::MSet {
            pairs: pairs.to_vec(),
        }) {
            Reply::Ok => Reply::Integer(1),
            refusal => refusal,
        }
    }

    /// RENAME / RENAMENX.
    pub(super) fn rename(&mut self, from: &[u8], to: &[u8], only_if_absent: bool) -> Reply {
        let Some(value) = self.get_bytes(from) else {
            return Reply::Error("ERR no such key".into());
        };
        if only_if_absent && self.get(to).is_some() {
            return Reply::Integer(0);
        }
        if from != to {
            let ttl = self.expire_at(from);
            self.remove(from);
            if let Err(refusal) = self.put(to, &value) {
                return refusal;
            }
            self.set_expiry(to, ttl);
        }
        if only_if_absent {
            Reply::Integer(1)
        } else {
            Reply::Ok
        }
    }
}
