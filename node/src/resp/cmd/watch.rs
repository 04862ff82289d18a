//! WATCH key [key ...]: records each key's version (the hash of its pair,
//! or absent) with a linearizable read. The next EXEC carries them into the
//! log, and every node runs the transaction only if they still hold at the
//! transaction's position, so the check is the same on every node.

use bytes::Bytes;
use futures::FutureExt;
use raftkv::kv::Watched;

use super::{Args, CommandError, Context, Execution, Spec};
use crate::resp::backend::{read_error_frame, Backend};
use crate::resp::Frame;

pub(crate) const SPEC: Spec =
    Spec::all_keys("watch", -2, &["noscript", "loading", "stale", "fast"]);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Watch {
    pub keys: Vec<Bytes>,
}

impl Watch {
    pub(crate) fn from_args(args: &mut Args) -> Result<Watch, CommandError> {
        Ok(Watch {
            keys: args.take_at_least_one()?,
        })
    }

    pub(crate) fn execute<B: Backend>(self, context: &mut Context<'_, B>) -> Execution {
        if context.session.transaction.is_some() {
            return Execution::Now(Frame::error("ERR WATCH inside MULTI is not allowed"));
        }
        let backend = context.server.backend.clone();
        let watched = context.session.watched.clone();
        let slot = context.slot;
        let keys = self.keys;
        Execution::Read(
            async move {
                let read = backend
                    .linearizable_read(move |store| {
                        keys.into_iter()
                            .map(|key| Watched {
                                version: store.version(&key),
                                key,
                            })
                            .collect::<Vec<_>>()
                    })
                    .await;
                let mut state = watched.lock();
                match read {
                    Ok(versions) => {
                        state.keys.extend(versions);
                        Frame::ok()
                    }
                    Err(error) => {
                        state.failed = true;
                        read_error_frame(error, slot)
                    }
                }
            }
            .boxed(),
        )
    }
}
