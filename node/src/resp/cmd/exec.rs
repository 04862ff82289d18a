//! EXEC: the queued commands as ONE replicated entry (`kv::Command::Exec`),
//! applied atomically on every node; the reply is one reply per command, or
//! null when a WATCHed key changed (nothing applied). A command refused
//! while queueing makes EXEC answer EXECABORT, and nothing is applied.

use futures::FutureExt;
use raftkv::kv::{Command as KvCommand, TxOp};

use super::{Args, CommandError, Context, DataOp, Execution, Spec};
use crate::resp::backend::{reply_frame, write_error_frame, Backend};
use crate::resp::Frame;

pub(crate) const SPEC: Spec =
    Spec::keyless("exec", 1, &["noscript", "loading", "stale", "skip_slowlog"]);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Exec;

impl Exec {
    pub(crate) fn from_args(args: &mut Args) -> Result<Exec, CommandError> {
        args.finish()?;
        Ok(Exec)
    }

    pub(crate) fn execute<B: Backend>(self, context: &mut Context<'_, B>) -> Execution {
        let Some(transaction) = context.session.transaction.take() else {
            return Execution::Now(Frame::error("ERR EXEC without MULTI"));
        };
        let watched = std::mem::take(&mut context.session.watched);
        if transaction.failed {
            return Execution::Now(Frame::error(
                "EXECABORT Transaction discarded because of previous errors.",
            ));
        }
        let ops: Vec<TxOp> = transaction
            .ops
            .into_iter()
            .map(|op| match op {
                DataOp::Write(command) => TxOp::Write(command),
                DataOp::Read(query) => TxOp::Read(query),
            })
            .collect();
        let backend = context.server.backend.clone();
        let slot = context.slot;
        // A write: it starts after the connection's earlier reads, WATCH's
        // included, have filled `watched`.
        Execution::Write(
            async move {
                let watch = std::mem::take(&mut *watched.lock());
                if watch.failed {
                    return Frame::Null;
                }
                let command = KvCommand::Exec {
                    ops,
                    watched: watch.keys,
                };
                match backend.write(super::stamped(command)).await {
                    Ok(reply) => reply_frame(reply),
                    Err(error) => write_error_frame(error, slot),
                }
            }
            .boxed(),
        )
    }
}
