//! CONFIG GET parameter [parameter ...] | HELP: the handful of settings
//! that tools probe (redis-benchmark reads `save` and `appendonly`, cluster
//! clients `cluster-require-full-coverage`), with raftkv's true values.
//! raftkv's settings are flags of `raftkv node`, so CONFIG SET, REWRITE and
//! RESETSTAT are refused, naming that.

use bytes::Bytes;

use super::{Args, CommandError, Context, Execution, Spec};
use crate::resp::backend::Backend;
use crate::resp::{glob_match, Frame};

pub(crate) const SPEC: Spec =
    Spec::keyless("config", -2, &["admin", "noscript", "loading", "stale"]);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Config {
    Get(Vec<Bytes>),
    Help,
}

impl Config {
    pub(crate) fn from_args(args: &mut Args) -> Result<Config, CommandError> {
        let subcommand = args.next_bytes()?;
        match subcommand.to_ascii_uppercase().as_slice() {
            b"GET" => {
                let patterns = args.take_rest();
                if patterns.is_empty() {
                    return Err(CommandError::WrongArity("config|get".into()));
                }
                Ok(Config::Get(patterns))
            }
            b"HELP" => Ok(Config::Help),
            b"SET" | b"REWRITE" | b"RESETSTAT" => Err(CommandError::Other(format!(
                "ERR CONFIG {} is not supported: raftkv's settings are flags of `raftkv node`",
                String::from_utf8_lossy(&subcommand).to_ascii_uppercase()
            ))),
            _ => Err(CommandError::UnknownSubcommand {
                command: "CONFIG".into(),
                subcommand: String::from_utf8_lossy(&subcommand).into_owned(),
            }),
        }
    }

    pub(crate) fn execute<B: Backend>(self, context: &mut Context<'_, B>) -> Execution {
        let patterns = match self {
            Config::Help => {
                return Execution::Now(Frame::Array(vec![
                    Frame::Simple("CONFIG GET <pattern> [<pattern> ...]".into()),
                    Frame::Simple("    The settings matching the patterns.".into()),
                ]))
            }
            Config::Get(patterns) => patterns,
        };
        let limits = &context.server.limits;
        let settings: [(&str, String); 14] = [
            ("appendonly", "yes".into()),
            ("appendfsync", "always".into()),
            ("save", String::new()),
            ("databases", "1".into()),
            ("cluster-enabled", "yes".into()),
            ("cluster-require-full-coverage", "yes".into()),
            ("replica-read-only", "yes".into()),
            ("slave-read-only", "yes".into()),
            ("maxmemory", "0".into()),
            ("maxmemory-policy", "noeviction".into()),
            ("timeout", "0".into()),
            ("maxclients", limits.connections_max.to_string()),
            ("proto-max-bulk-len", limits.bulk_bytes_max.to_string()),
            ("port", context.server.local_port.to_string()),
        ];
        let matched = settings
            .into_iter()
            .filter(|(name, _)| {
                patterns
                    .iter()
                    .any(|pattern| glob_match(&pattern.to_ascii_lowercase(), name.as_bytes()))
            })
            .map(|(name, value)| (Frame::bulk(name), Frame::bulk(value)))
            .collect();
        Execution::Now(Frame::Map(matched))
    }
}
