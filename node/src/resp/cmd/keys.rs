//! KEYS pattern: every key matching the glob, in key order. Like Redis, it
//! walks the whole keyspace; SCAN is the incremental alternative.

use bytes::Bytes;

use super::{read_store, Args, CommandError, Context, Execution, Spec};
use crate::resp::backend::Backend;
use crate::resp::glob::glob_match;
use crate::resp::Frame;

pub(crate) const SPEC: Spec = Spec::keyless("keys", 2, &["readonly"]);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Keys {
    pub pattern: Bytes,
}

impl Keys {
    pub(crate) fn from_args(args: &mut Args) -> Result<Keys, CommandError> {
        Ok(Keys {
            pattern: args.next_bytes()?,
        })
    }

    pub(crate) fn execute<B: Backend>(self, context: &mut Context<'_, B>) -> Execution {
        read_store(context, move |store| {
            let match_all = &self.pattern[..] == b"*";
            let now_ms = super::read_clock_ms(store);
            Frame::Array(
                store
                    .iter()
                    .filter(|(key, _)| match_all || glob_match(&self.pattern, key))
                    .filter(|(key, _)| store.is_live(key, now_ms))
                    .map(|(key, _)| Frame::Bulk(Bytes::copy_from_slice(key)))
                    .collect(),
            )
        })
    }
}
