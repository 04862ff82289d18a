//! The commands the server understands, one file each. A request (an array
//! of bulk strings) becomes a `Command` through its `from_args`, which
//! rejects wrong arity and unknown options with Redis's wording; executing
//! it gives either an immediate reply or a future for the node.

mod args;
mod client;
mod cluster;
mod command;
mod dbsize;
mod del;
mod echo;
mod exists;
mod get;
mod hello;
mod incr;
mod info;
mod keys;
mod mget;
mod mset;
mod ping;
mod quit;
mod raft_digest;
mod raft_status;
mod readonly;
mod readwrite;
mod scan;
mod set;

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use raftkv::kv::{Command as KvCommand, KvStore};

pub(crate) use args::Args;
#[cfg(test)]
pub(crate) use cluster::cluster_node_id;

use super::backend::{read_error_frame, reply_frame, write_error_frame, Backend};
use super::session::Session;
use super::state::ServerState;
use super::Frame;

/// Static facts about a command, as `COMMAND` reports them.
#[derive(Debug)]
pub(crate) struct Spec {
    /// Lowercase name.
    pub name: &'static str,
    /// Redis arity: `n > 0` exactly n words (name included), `n < 0` at least -n.
    pub arity: i64,
    pub flags: &'static [&'static str],
    pub first_key: i64,
    pub last_key: i64,
    pub key_step: i64,
}

/// Every command, in `COMMAND` order.
pub(crate) const SPECS: &[&Spec] = &[
    &client::SPEC,
    &cluster::SPEC,
    &command::SPEC,
    &dbsize::SPEC,
    &del::SPEC,
    &echo::SPEC,
    &exists::SPEC,
    &get::SPEC,
    &hello::SPEC,
    &incr::SPEC,
    &info::SPEC,
    &keys::SPEC,
    &mget::SPEC,
    &mset::SPEC,
    &ping::SPEC,
    &quit::SPEC,
    &raft_digest::SPEC,
    &raft_status::SPEC,
    &readonly::SPEC,
    &readwrite::SPEC,
    &scan::SPEC,
    &set::SPEC,
];

/// The spec of `name` (any case).
pub(crate) fn spec_of(name: &[u8]) -> Option<&'static Spec> {
    SPECS
        .iter()
        .copied()
        .find(|spec| spec.name.as_bytes().eq_ignore_ascii_case(name))
}

/// A request that is not a valid command. `Display` is the error reply
/// without its leading `-`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CommandError {
    #[error("ERR unknown command '{name}', with args beginning with: {args}")]
    Unknown { name: String, args: String },
    #[error("ERR wrong number of arguments for '{0}' command")]
    WrongArity(String),
    #[error("ERR syntax error")]
    Syntax,
    #[error("ERR value is not an integer or out of range")]
    NotAnInteger,
    #[error("ERR unknown subcommand '{subcommand}'. Try {command} HELP.")]
    UnknownSubcommand { command: String, subcommand: String },
    #[error("NOPROTO unsupported protocol version")]
    NoProto,
    #[error("ERR invalid cursor")]
    InvalidCursor,
    /// A complete message for cases with their own wording.
    #[error("{0}")]
    Other(String),
}

impl CommandError {
    pub(crate) fn to_frame(&self) -> Frame {
        Frame::Error(self.to_string())
    }

    /// Redis's unknown-command error: the name and the first arguments, each
    /// quoted, cut at about 128 bytes.
    fn unknown(name: &Bytes, args: &[Bytes]) -> CommandError {
        const SHOWN_BYTES_MAX: usize = 128;
        let mut shown = String::new();
        for arg in args {
            if shown.len() >= SHOWN_BYTES_MAX {
                break;
            }
            let text = String::from_utf8_lossy(arg);
            let room = SHOWN_BYTES_MAX - shown.len();
            shown.push('\'');
            shown.extend(text.chars().scan(0, |used, c| {
                *used += c.len_utf8();
                (*used <= room).then_some(c)
            }));
            shown.push_str("' ");
        }
        let name: String = String::from_utf8_lossy(name)
            .chars()
            .take(SHOWN_BYTES_MAX)
            .collect();
        CommandError::Unknown { name, args: shown }
    }
}

/// One parsed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Command {
    Client(client::Client),
    Cluster(cluster::Cluster),
    CommandTable(command::CommandTable),
    DbSize(dbsize::DbSize),
    Del(del::Del),
    Echo(echo::Echo),
    Exists(exists::Exists),
    Get(get::Get),
    Hello(hello::Hello),
    Incr(incr::Incr),
    Info(info::Info),
    Keys(keys::Keys),
    MGet(mget::MGet),
    MSet(mset::MSet),
    Ping(ping::Ping),
    Quit(quit::Quit),
    RaftDigest(raft_digest::RaftDigest),
    RaftStatus(raft_status::RaftStatus),
    ReadOnly(readonly::ReadOnly),
    ReadWrite(readwrite::ReadWrite),
    Scan(scan::Scan),
    Set(set::Set),
}

impl Command {
    /// Decodes a request frame (what `Frame::parse_request` returns).
    pub(crate) fn from_frame(frame: Frame) -> Result<Command, CommandError> {
        let Frame::Array(items) = frame else {
            return Err(CommandError::Other(
                "ERR Protocol error: expected an array of bulk strings".into(),
            ));
        };
        let mut words = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Frame::Bulk(bytes) => words.push(bytes),
                _ => {
                    return Err(CommandError::Other(
                        "ERR Protocol error: expected an array of bulk strings".into(),
                    ))
                }
            }
        }
        Command::from_words(words)
    }

    /// Decodes a request given as its words (name first).
    pub(crate) fn from_words(words: Vec<Bytes>) -> Result<Command, CommandError> {
        let Some(name) = words.first() else {
            return Err(CommandError::Other("ERR empty command".into()));
        };
        let Some(spec) = spec_of(name) else {
            return Err(CommandError::unknown(name, &words[1..]));
        };
        let count = words.len() as i64;
        let arity_ok = if spec.arity >= 0 {
            count == spec.arity
        } else {
            count >= -spec.arity
        };
        if !arity_ok {
            return Err(CommandError::WrongArity(spec.name.to_string()));
        }
        let mut args = Args::new(spec.name, words);
        let command = match spec.name {
            "client" => Command::Client(client::Client::from_args(&mut args)?),
            "cluster" => Command::Cluster(cluster::Cluster::from_args(&mut args)?),
            "command" => Command::CommandTable(command::CommandTable::from_args(&mut args)?),
            "dbsize" => Command::DbSize(dbsize::DbSize::from_args(&mut args)?),
            "del" => Command::Del(del::Del::from_args(&mut args)?),
            "echo" => Command::Echo(echo::Echo::from_args(&mut args)?),
            "exists" => Command::Exists(exists::Exists::from_args(&mut args)?),
            "get" => Command::Get(get::Get::from_args(&mut args)?),
            "hello" => Command::Hello(hello::Hello::from_args(&mut args)?),
            "incr" => Command::Incr(incr::Incr::from_args(&mut args)?),
            "info" => Command::Info(info::Info::from_args(&mut args)?),
            "keys" => Command::Keys(keys::Keys::from_args(&mut args)?),
            "mget" => Command::MGet(mget::MGet::from_args(&mut args)?),
            "mset" => Command::MSet(mset::MSet::from_args(&mut args)?),
            "ping" => Command::Ping(ping::Ping::from_args(&mut args)?),
            "quit" => Command::Quit(quit::Quit::from_args(&mut args)?),
            "raft.digest" => Command::RaftDigest(raft_digest::RaftDigest::from_args(&mut args)?),
            "raft.status" => Command::RaftStatus(raft_status::RaftStatus::from_args(&mut args)?),
            "readonly" => Command::ReadOnly(readonly::ReadOnly::from_args(&mut args)?),
            "readwrite" => Command::ReadWrite(readwrite::ReadWrite::from_args(&mut args)?),
            "scan" => Command::Scan(scan::Scan::from_args(&mut args)?),
            "set" => Command::Set(set::Set::from_args(&mut args)?),
            // Every SPECS entry has an arm above (tested); never panic on a slip.
            _ => {
                return Err(CommandError::Unknown {
                    name: spec.name.to_string(),
                    args: String::new(),
                })
            }
        };
        args.finish()?;
        Ok(command)
    }

    /// Runs the command: session and status commands answer at once;
    /// reads and writes return a future for the node.
    pub(crate) fn execute<B: Backend>(self, context: &mut Context<'_, B>) -> Execution {
        match self {
            Command::Client(command) => command.execute(context),
            Command::Cluster(command) => command.execute(context),
            Command::CommandTable(command) => command.execute(context),
            Command::DbSize(command) => command.execute(context),
            Command::Del(command) => command.execute(context),
            Command::Echo(command) => command.execute(),
            Command::Exists(command) => command.execute(context),
            Command::Get(command) => command.execute(context),
            Command::Hello(command) => command.execute(context),
            Command::Incr(command) => command.execute(context),
            Command::Info(command) => command.execute(context),
            Command::Keys(command) => command.execute(context),
            Command::MGet(command) => command.execute(context),
            Command::MSet(command) => command.execute(context),
            Command::Ping(command) => command.execute(),
            Command::Quit(command) => command.execute(),
            Command::RaftDigest(command) => command.execute(context),
            Command::RaftStatus(command) => command.execute(context),
            Command::ReadOnly(command) => command.execute(context),
            Command::ReadWrite(command) => command.execute(context),
            Command::Scan(command) => command.execute(context),
            Command::Set(command) => command.execute(context),
        }
    }
}

/// What a command needs while it executes.
pub(crate) struct Context<'a, B: Backend> {
    pub server: &'a Arc<ServerState<B>>,
    pub session: &'a mut Session,
    /// The slot of the request's first key (0 without keys): what a
    /// `-MOVED` for this request names.
    pub slot: u16,
}

/// The slot of a request's first key, by its command's key spec (0 for a
/// request without keys or that does not parse).
pub(crate) fn request_slot(frame: &Frame) -> u16 {
    let Frame::Array(words) = frame else {
        return 0;
    };
    let Some(Frame::Bulk(name)) = words.first() else {
        return 0;
    };
    let Some(spec) = spec_of(name) else {
        return 0;
    };
    match usize::try_from(spec.first_key)
        .ok()
        .and_then(|at| words.get(at))
    {
        Some(Frame::Bulk(key)) if spec.first_key > 0 => super::slot::key_slot(key),
        _ => 0,
    }
}

/// How a command's reply is produced. The connection keeps replies in
/// request order; reads wait for the connection's earlier writes and writes
/// for its earlier reads, so a pipeline behaves as if run one by one.
pub(crate) enum Execution {
    /// The reply is known now.
    Now(Frame),
    /// Reads the state machine when polled (after earlier writes finished).
    Read(BoxFuture<'static, Frame>),
    /// A replicated write, started in request order.
    Write(BoxFuture<'static, Frame>),
    /// Reply, then close the connection.
    Quit(Frame),
}

/// A read of the state machine: linearizable through the leader, or local
/// after READONLY.
pub(crate) fn read_store<B, F>(context: &Context<'_, B>, read: F) -> Execution
where
    B: Backend,
    F: FnOnce(&KvStore) -> Frame + Send + 'static,
{
    let backend = context.server.backend.clone();
    let slot = context.slot;
    if context.session.readonly {
        Execution::Read(async move { backend.local_read(read) }.boxed())
    } else {
        Execution::Read(
            async move {
                backend
                    .linearizable_read(read)
                    .await
                    .unwrap_or_else(|error| read_error_frame(error, slot))
            }
            .boxed(),
        )
    }
}

/// A write replicated through the node.
pub(crate) fn write_store<B: Backend>(context: &Context<'_, B>, command: KvCommand) -> Execution {
    let backend = context.server.backend.clone();
    let slot = context.slot;
    Execution::Write(
        async move {
            match backend.write(command).await {
                Ok(reply) => reply_frame(reply),
                Err(error) => write_error_frame(error, slot),
            }
        }
        .boxed(),
    )
}
