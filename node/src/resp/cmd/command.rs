//! COMMAND [COUNT | INFO name... | DOCS name... | LIST | HELP]: the command
//! table. redis-cli sends `COMMAND DOCS` when it connects; it gets an empty
//! map, so it shows no argument hints but works normally.

use bytes::Bytes;

use super::{spec_of, Args, CommandError, Context, Execution, Spec, SPECS};
use crate::resp::backend::Backend;
use crate::resp::Frame;

pub(crate) const SPEC: Spec = Spec::keyless("command", -1, &["stale", "loading"]);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CommandTable {
    All,
    Count,
    Info(Vec<Bytes>),
    Docs(Vec<Bytes>),
    List,
    Help,
}

impl CommandTable {
    pub(crate) fn from_args(args: &mut Args) -> Result<CommandTable, CommandError> {
        let Some(subcommand) = args.next_optional() else {
            return Ok(CommandTable::All);
        };
        let upper = subcommand.to_ascii_uppercase();
        let exact = |args: &Args, name: &str| {
            if args.remaining() == 0 {
                Ok(())
            } else {
                Err(CommandError::WrongArity(format!("command|{name}")))
            }
        };
        match upper.as_slice() {
            b"COUNT" => exact(args, "count").map(|_| CommandTable::Count),
            b"LIST" => exact(args, "list").map(|_| CommandTable::List),
            b"HELP" => exact(args, "help").map(|_| CommandTable::Help),
            b"INFO" => Ok(CommandTable::Info(args.take_rest())),
            b"DOCS" => Ok(CommandTable::Docs(args.take_rest())),
            _ => Err(CommandError::UnknownSubcommand {
                command: "COMMAND".into(),
                subcommand: String::from_utf8_lossy(&subcommand).into_owned(),
            }),
        }
    }

    pub(crate) fn execute<B: Backend>(self, _context: &mut Context<'_, B>) -> Execution {
        Execution::Now(match self {
            CommandTable::All => Frame::Array(SPECS.iter().map(|spec| info_entry(spec)).collect()),
            CommandTable::Count => Frame::Integer(SPECS.len() as i64),
            CommandTable::Info(names) if names.is_empty() => {
                Frame::Array(SPECS.iter().map(|spec| info_entry(spec)).collect())
            }
            CommandTable::Info(names) => Frame::Array(
                names
                    .iter()
                    .map(|name| spec_of(name).map(info_entry).unwrap_or(Frame::Null))
                    .collect(),
            ),
            CommandTable::Docs(_) => Frame::Map(Vec::new()),
            CommandTable::List => {
                Frame::Array(SPECS.iter().map(|spec| Frame::bulk(spec.name)).collect())
            }
            CommandTable::Help => Frame::Array(
                [
                    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                    "(no subcommand)",
                    "    Return details about all commands.",
                    "COUNT",
                    "    Return the total number of commands.",
                    "DOCS [<command-name> ...]",
                    "    Return documentary information about commands (none are provided).",
                    "INFO [<command-name> ...]",
                    "    Return details about the given commands, or all of them.",
                    "LIST",
                    "    Return a list of all command names.",
                    "HELP",
                    "    Print this help.",
                ]
                .into_iter()
                .map(|line| Frame::Simple(line.into()))
                .collect(),
            ),
        })
    }
}

/// One `COMMAND INFO` entry in Redis 7's ten-element form.
fn info_entry(spec: &Spec) -> Frame {
    Frame::Array(vec![
        Frame::bulk(spec.name),
        Frame::Integer(spec.arity),
        Frame::Set(
            spec.flags
                .iter()
                .map(|flag| Frame::Simple((*flag).into()))
                .collect(),
        ),
        Frame::Integer(spec.first_key),
        Frame::Integer(spec.last_key),
        Frame::Integer(spec.key_step),
        Frame::Set(Vec::new()),
        Frame::Array(Vec::new()),
        Frame::Array(Vec::new()),
        Frame::Array(Vec::new()),
    ])
}
