//! SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]: walks the keys in
//! order, `count` keys per call (default 10). Cursor `0` starts and ends a
//! scan. Every key present for the whole scan is returned exactly once;
//! keys added or removed meanwhile may or may not be. As in Redis, MATCH
//! filters after the walk, so a call may return fewer keys (even none) with
//! a non-zero cursor.

use bytes::Bytes;

use super::{read_store, Args, CommandError, Context, Execution, Spec};
use crate::resp::backend::Backend;
use crate::resp::glob::glob_match;
use crate::resp::Frame;

pub(crate) const SPEC: Spec = Spec::keyless("scan", -2, &["readonly"]);

/// Keys walked per call when COUNT is not given.
pub(crate) const SCAN_COUNT_DEFAULT: usize = 10;
/// Larger COUNTs are lowered to this, so one call cannot hold the store for long.
pub(crate) const SCAN_COUNT_MAX: usize = 100_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Scan {
    pub cursor: u64,
    pub pattern: Option<Bytes>,
    pub count: usize,
    /// Only `string` values exist; any other TYPE matches nothing.
    pub type_name: Option<Bytes>,
}

impl Scan {
    pub(crate) fn from_args(args: &mut Args) -> Result<Scan, CommandError> {
        let cursor = args.next_bytes()?;
        let cursor = parse_cursor(&cursor).ok_or(CommandError::InvalidCursor)?;
        let mut scan = Scan {
            cursor,
            pattern: None,
            count: SCAN_COUNT_DEFAULT,
            type_name: None,
        };
        while let Some(option) = args.next_optional() {
            let value = args.next_optional().ok_or(CommandError::Syntax)?;
            match option.to_ascii_uppercase().as_slice() {
                b"MATCH" => scan.pattern = Some(value),
                b"COUNT" => {
                    let count = super::args::parse_i64(&value).ok_or(CommandError::NotAnInteger)?;
                    if count < 1 {
                        return Err(CommandError::Syntax);
                    }
                    scan.count = (count as u64).min(SCAN_COUNT_MAX as u64) as usize;
                }
                b"TYPE" => scan.type_name = Some(value),
                _ => return Err(CommandError::Syntax),
            }
        }
        Ok(scan)
    }

    pub(crate) fn execute<B: Backend>(self, context: &mut Context<'_, B>) -> Execution {
        let after = match self.cursor {
            0 => None,
            cursor => match context.server.scan_cursors.lock().get(cursor) {
                Some(key) => Some(key),
                None => return Execution::Now(CommandError::InvalidCursor.to_frame()),
            },
        };
        let cursors = context.server.scan_cursors.clone();
        read_store(context, move |store| {
            let batch = store.scan(after.as_deref(), self.count);
            let next_cursor = match batch.last() {
                Some((last_key, _)) if batch.len() == self.count => {
                    cursors.lock().insert(last_key.clone())
                }
                _ => 0,
            };
            let type_matches = self
                .type_name
                .as_ref()
                .is_none_or(|name| name.eq_ignore_ascii_case(b"string"));
            let now_ms = super::read_clock_ms(store);
            let keys = batch
                .into_iter()
                .filter(|(key, _)| {
                    type_matches
                        && self.pattern.as_ref().is_none_or(|p| glob_match(p, key))
                        && store.is_live(key, now_ms)
                })
                .map(|(key, _)| Frame::Bulk(key))
                .collect();
            Frame::Array(vec![
                Frame::bulk(next_cursor.to_string()),
                Frame::Array(keys),
            ])
        })
    }
}

/// A cursor is an unsigned decimal number.
fn parse_cursor(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}
