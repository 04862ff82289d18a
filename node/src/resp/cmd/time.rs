//! TIME: this node's clock as [seconds, microseconds] (bulk strings). It is
//! only reported, never used to decide what the state machine holds.

use super::{Args, CommandError, Execution, Spec};
use crate::resp::Frame;

pub(crate) const SPEC: Spec = Spec::keyless("time", 1, &["loading", "stale", "fast"]);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Time;

impl Time {
    pub(crate) fn from_args(args: &mut Args) -> Result<Time, CommandError> {
        args.finish()?;
        Ok(Time)
    }

    pub(crate) fn execute(self) -> Execution {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Execution::Now(Frame::Array(vec![
            Frame::bulk(now.as_secs().to_string()),
            Frame::bulk(now.subsec_micros().to_string()),
        ]))
    }
}
