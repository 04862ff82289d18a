//! WAIT numreplicas timeout: on the leader, the number of other members
//! whose log holds everything committed when WAIT ran (so every write this
//! connection was answered for), waiting up to `timeout` ms (0: up to
//! `WAIT_MS_MAX`) for `numreplicas` of them. Raft knows this from the
//! leader's match indexes. A follower refuses it, as a Redis replica does.

use std::time::{Duration, Instant};

use futures::FutureExt;

use super::{Args, CommandError, Context, Execution, Spec};
use crate::driver::handle::NodeStatus;
use crate::resp::backend::Backend;
use crate::resp::Frame;

pub(crate) const SPEC: Spec = Spec::keyless("wait", 3, &["noscript"]);

/// Longest WAIT, also for `timeout` 0 (Redis waits forever).
const WAIT_MS_MAX: u64 = 60_000;
/// How often a waiting WAIT looks at the leader's match indexes again.
const WAIT_POLL_MS: u64 = 2;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Wait {
    pub replicas: i64,
    pub timeout_ms: u64,
}

impl Wait {
    pub(crate) fn from_args(args: &mut Args) -> Result<Wait, CommandError> {
        let replicas = args.next_i64()?;
        let timeout = args.next_i64()?;
        if timeout < 0 {
            return Err(CommandError::Other("ERR timeout is negative".into()));
        }
        Ok(Wait {
            replicas,
            timeout_ms: if timeout == 0 {
                WAIT_MS_MAX
            } else {
                (timeout as u64).min(WAIT_MS_MAX)
            },
        })
    }

    /// A read, so it runs after the connection's earlier writes completed.
    pub(crate) fn execute<B: Backend>(self, context: &mut Context<'_, B>) -> Execution {
        let backend = context.server.backend.clone();
        Execution::Read(
            async move {
                let first = backend.status();
                if first.role != "leader" {
                    return Frame::error("ERR WAIT cannot be used with replica instances");
                }
                let target = first.commit_index;
                let deadline = Instant::now() + Duration::from_millis(self.timeout_ms);
                loop {
                    let status = backend.status();
                    let holding = replicas_holding(&status, target);
                    if status.role != "leader"
                        || holding >= self.replicas
                        || Instant::now() >= deadline
                    {
                        return Frame::Integer(holding);
                    }
                    tokio::time::sleep(Duration::from_millis(WAIT_POLL_MS)).await;
                }
            }
            .boxed(),
        )
    }
}

/// How many other members' logs reach `index` (leader only).
fn replicas_holding(status: &NodeStatus, index: u64) -> i64 {
    status
        .match_index
        .iter()
        .filter(|(_, matched)| *matched >= index)
        .count() as i64
}
