//! The commands the server understands, one file each. A request (an array
//! of bulk strings) becomes a `Command` through its `from_args`, which
//! rejects wrong arity and unknown options with Redis's wording; executing
//! it gives either an immediate reply or a future for the node.

mod append;
mod args;
mod auth;
mod client;
mod cluster;
mod command;
mod config;
mod dbsize;
mod decr;
mod decrby;
mod del;
mod discard;
mod echo;
mod eval;
mod evalsha;
mod exec;
mod exists;
mod expire;
mod expireat;
mod expiretime;
mod expiry_args;
mod flushall;
mod flushdb;
mod get;
mod getdel;
mod getex;
mod getrange;
mod getset;
mod hello;
mod incr;
mod incrby;
mod incrbyfloat;
mod info;
mod keys;
mod mget;
mod mset;
mod msetnx;
mod multi;
mod persist;
mod pexpire;
mod pexpireat;
mod pexpiretime;
mod ping;
mod psetex;
mod pttl;
mod quit;
mod raft_digest;
mod raft_members;
mod raft_membership;
mod raft_status;
mod randomkey;
mod readonly;
mod readwrite;
mod rename;
mod renamenx;
mod scan;
mod select;
mod set;
mod setex;
mod setnx;
mod setrange;
mod strlen;
mod time;
mod touch;
mod ttl;
mod r#type;
mod unlink;
mod unwatch;
mod wait;
mod watch;

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use raftkv::kv::{Command as KvCommand, KvStore, Query};

pub(crate) use args::Args;
#[cfg(test)]
pub(crate) use cluster::cluster_node_id;
#[cfg(test)]
pub(crate) use expiry_args::now_ms;

use super::backend::{read_error_frame, reply_frame, write_error_frame, Backend};
use super::session::{Session, Transaction, TRANSACTION_OPS_MAX};
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
    &append::SPEC,
    &auth::SPEC,
    &client::SPEC,
    &cluster::SPEC,
    &command::SPEC,
    &config::SPEC,
    &dbsize::SPEC,
    &decr::SPEC,
    &decrby::SPEC,
    &del::SPEC,
    &discard::SPEC,
    &echo::SPEC,
    &eval::SPEC,
    &evalsha::SPEC,
    &exec::SPEC,
    &exists::SPEC,
    &expire::SPEC,
    &expireat::SPEC,
    &expiretime::SPEC,
    &flushall::SPEC,
    &flushdb::SPEC,
    &get::SPEC,
    &getdel::SPEC,
    &getex::SPEC,
    &getrange::SPEC,
    &getset::SPEC,
    &hello::SPEC,
    &incr::SPEC,
    &incrby::SPEC,
    &incrbyfloat::SPEC,
    &info::SPEC,
    &keys::SPEC,
    &mget::SPEC,
    &mset::SPEC,
    &msetnx::SPEC,
    &multi::SPEC,
    &persist::SPEC,
    &pexpire::SPEC,
    &pexpireat::SPEC,
    &pexpiretime::SPEC,
    &ping::SPEC,
    &psetex::SPEC,
    &pttl::SPEC,
    &quit::SPEC,
    &raft_digest::SPEC,
    &raft_members::SPEC,
    &raft_membership::ADDLEARNER_SPEC,
    &raft_membership::PROMOTE_SPEC,
    &raft_membership::REMOVE_SPEC,
    &raft_status::SPEC,
    &randomkey::SPEC,
    &readonly::SPEC,
    &readwrite::SPEC,
    &rename::SPEC,
    &renamenx::SPEC,
    &scan::SPEC,
    &select::SPEC,
    &set::SPEC,
    &setex::SPEC,
    &setnx::SPEC,
    &setrange::SPEC,
    &strlen::SPEC,
    &time::SPEC,
    &touch::SPEC,
    &ttl::SPEC,
    &r#type::SPEC,
    &unlink::SPEC,
    &unwatch::SPEC,
    &wait::SPEC,
    &watch::SPEC,
];

impl Spec {
    /// A command whose keys are its arguments from the first to `last_key`
    /// (-1: the last), every `key_step`-th.
    pub(crate) const fn keys(
        name: &'static str,
        arity: i64,
        flags: &'static [&'static str],
        (last_key, key_step): (i64, i64),
    ) -> Spec {
        Spec {
            name,
            arity,
            flags,
            first_key: if key_step == 0 { 0 } else { 1 },
            last_key,
            key_step,
        }
    }

    /// A command whose one key is its first argument.
    pub(crate) const fn one_key(
        name: &'static str,
        arity: i64,
        flags: &'static [&'static str],
    ) -> Spec {
        Spec::keys(name, arity, flags, (1, 1))
    }

    /// A command whose every argument is a key.
    pub(crate) const fn all_keys(
        name: &'static str,
        arity: i64,
        flags: &'static [&'static str],
    ) -> Spec {
        Spec::keys(name, arity, flags, (-1, 1))
    }

    /// A command without keys.
    pub(crate) const fn keyless(
        name: &'static str,
        arity: i64,
        flags: &'static [&'static str],
    ) -> Spec {
        Spec::keys(name, arity, flags, (0, 0))
    }
}

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
    Auth(auth::Auth),
    Client(client::Client),
    /// A read or write of the data (every command that names keys).
    Data(DataOp),
    Cluster(cluster::Cluster),
    CommandTable(command::CommandTable),
    Echo(echo::Echo),
    Hello(hello::Hello),
    Info(info::Info),
    Keys(keys::Keys),
    Ping(ping::Ping),
    Quit(quit::Quit),
    RaftDigest(raft_digest::RaftDigest),
    RaftMembers(raft_members::RaftMembers),
    RaftMembership(raft_membership::RaftMembershipChange),
    RaftStatus(raft_status::RaftStatus),
    ReadOnly(readonly::ReadOnly),
    ReadWrite(readwrite::ReadWrite),
    Scan(scan::Scan),
    Watch(watch::Watch),
    Unwatch(unwatch::Unwatch),
    Multi(multi::Multi),
    Exec(exec::Exec),
    Discard(discard::Discard),
    Wait(wait::Wait),
    Time(time::Time),
    Select(select::Select),
    Config(config::Config),
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
        if let Some(parse) = data_parser(spec.name) {
            let op = parse(&mut args)?;
            args.finish()?;
            return Ok(Command::Data(op));
        }
        let command = match spec.name {
            "auth" => Command::Auth(auth::Auth::from_args(&mut args)?),
            "client" => Command::Client(client::Client::from_args(&mut args)?),
            "cluster" => Command::Cluster(cluster::Cluster::from_args(&mut args)?),
            "command" => Command::CommandTable(command::CommandTable::from_args(&mut args)?),
            "echo" => Command::Echo(echo::Echo::from_args(&mut args)?),
            "hello" => Command::Hello(hello::Hello::from_args(&mut args)?),
            "info" => Command::Info(info::Info::from_args(&mut args)?),
            "keys" => Command::Keys(keys::Keys::from_args(&mut args)?),
            "ping" => Command::Ping(ping::Ping::from_args(&mut args)?),
            "quit" => Command::Quit(quit::Quit::from_args(&mut args)?),
            "raft.digest" => Command::RaftDigest(raft_digest::RaftDigest::from_args(&mut args)?),
            "raft.status" => Command::RaftStatus(raft_status::RaftStatus::from_args(&mut args)?),
            "raft.members" => {
                Command::RaftMembers(raft_members::RaftMembers::from_args(&mut args)?)
            }
            "raft.addlearner" => Command::RaftMembership(
                raft_membership::RaftMembershipChange::add_learner(&mut args)?,
            ),
            "raft.promote" => {
                Command::RaftMembership(raft_membership::RaftMembershipChange::promote(&mut args)?)
            }
            "raft.remove" => {
                Command::RaftMembership(raft_membership::RaftMembershipChange::remove(&mut args)?)
            }
            "readonly" => Command::ReadOnly(readonly::ReadOnly::from_args(&mut args)?),
            "readwrite" => Command::ReadWrite(readwrite::ReadWrite::from_args(&mut args)?),
            "scan" => Command::Scan(scan::Scan::from_args(&mut args)?),
            "eval" | "evalsha" => return Err(refuse_script(spec.name)),
            "watch" => Command::Watch(watch::Watch::from_args(&mut args)?),
            "unwatch" => Command::Unwatch(unwatch::Unwatch::from_args(&mut args)?),
            "multi" => Command::Multi(multi::Multi::from_args(&mut args)?),
            "exec" => Command::Exec(exec::Exec::from_args(&mut args)?),
            "discard" => Command::Discard(discard::Discard::from_args(&mut args)?),
            "wait" => Command::Wait(wait::Wait::from_args(&mut args)?),
            "time" => Command::Time(time::Time::from_args(&mut args)?),
            "select" => Command::Select(select::Select::from_args(&mut args)?),
            "config" => Command::Config(config::Config::from_args(&mut args)?),
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
        if !context.session.authenticated
            && !matches!(
                self,
                Command::Auth(_) | Command::Hello(_) | Command::Quit(_)
            )
        {
            return Execution::Now(Frame::error(auth::NOAUTH));
        }
        if let Some(transaction) = context.session.transaction.as_mut() {
            match self {
                Command::Exec(_)
                | Command::Discard(_)
                | Command::Multi(_)
                | Command::Watch(_)
                | Command::Quit(_) => {}
                Command::Data(op) => return queue(transaction, op),
                _ => {
                    transaction.failed = true;
                    return Execution::Now(Frame::error(
                        "ERR only commands that read or write keys can be queued in MULTI",
                    ));
                }
            }
        }
        match self {
            Command::Auth(command) => command.execute(context),
            Command::Client(command) => command.execute(context),
            Command::Data(op) => run_data(context, op),
            Command::Cluster(command) => command.execute(context),
            Command::CommandTable(command) => command.execute(context),
            Command::Echo(command) => command.execute(),
            Command::Hello(command) => command.execute(context),
            Command::Info(command) => command.execute(context),
            Command::Keys(command) => command.execute(context),
            Command::Ping(command) => command.execute(),
            Command::Quit(command) => command.execute(),
            Command::RaftDigest(command) => command.execute(context),
            Command::RaftStatus(command) => command.execute(context),
            Command::RaftMembers(command) => command.execute(context),
            Command::RaftMembership(command) => command.execute(context),
            Command::ReadOnly(command) => command.execute(context),
            Command::ReadWrite(command) => command.execute(context),
            Command::Scan(command) => command.execute(context),
            Command::Watch(command) => command.execute(context),
            Command::Unwatch(command) => command.execute(context),
            Command::Multi(command) => command.execute(context),
            Command::Exec(command) => command.execute(context),
            Command::Discard(command) => command.execute(context),
            Command::Wait(command) => command.execute(context),
            Command::Time(command) => command.execute(),
            Command::Select(command) => command.execute(),
            Command::Config(command) => command.execute(context),
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
            match backend.write(stamped(command)).await {
                Ok(reply) => reply_frame(reply),
                Err(error) => write_error_frame(error, slot),
            }
        }
        .boxed(),
    )
}

/// The time a read is evaluated at: this node's clock, or the store's
/// (the latest leader stamp) if this node's is behind. A key whose expiry
/// passed reads as missing before any write removes it.
pub(crate) fn read_clock_ms(store: &KvStore) -> u64 {
    expiry_args::now_ms().max(store.clock_ms())
}

/// `command` stamped with this node's clock. Only a leader proposes, so the
/// stamp is the leader's clock when it accepted the write: every node
/// expires keys by these stamps (`kv::Command::At`), never by its own clock.
pub(crate) fn stamped(command: KvCommand) -> KvCommand {
    KvCommand::At {
        now_ms: expiry_args::now_ms(),
        command: Box::new(command),
    }
}

/// A command on the data: a write replicated through the log, or a read
/// evaluated on the state machine. MULTI queues these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DataOp {
    Write(KvCommand),
    Read(Query),
}

type DataParser = fn(&mut Args) -> Result<DataOp, CommandError>;

/// The data commands and their parsers (each in its own file).
const DATA_COMMANDS: &[(&str, DataParser)] = &[
    ("append", append::parse),
    ("dbsize", dbsize::parse),
    ("decr", decr::parse),
    ("decrby", decrby::parse),
    ("del", del::parse),
    ("exists", exists::parse),
    ("expire", expire::parse),
    ("expireat", expireat::parse),
    ("expiretime", expiretime::parse),
    ("flushall", flushall::parse),
    ("flushdb", flushdb::parse),
    ("get", get::parse),
    ("getdel", getdel::parse),
    ("getex", getex::parse),
    ("getrange", getrange::parse),
    ("getset", getset::parse),
    ("incr", incr::parse),
    ("incrby", incrby::parse),
    ("incrbyfloat", incrbyfloat::parse),
    ("mget", mget::parse),
    ("mset", mset::parse),
    ("msetnx", msetnx::parse),
    ("persist", persist::parse),
    ("pexpire", pexpire::parse),
    ("pexpireat", pexpireat::parse),
    ("pexpiretime", pexpiretime::parse),
    ("psetex", psetex::parse),
    ("pttl", pttl::parse),
    ("randomkey", randomkey::parse),
    ("rename", rename::parse),
    ("renamenx", renamenx::parse),
    ("set", set::parse),
    ("setex", setex::parse),
    ("setnx", setnx::parse),
    ("setrange", setrange::parse),
    ("strlen", strlen::parse),
    ("touch", touch::parse),
    ("ttl", ttl::parse),
    ("type", r#type::parse),
    ("unlink", unlink::parse),
];

fn data_parser(name: &str) -> Option<DataParser> {
    DATA_COMMANDS
        .iter()
        .find(|(command, _)| *command == name)
        .map(|(_, parse)| *parse)
}

/// Runs a data command: a read through `read_store`, a write through `write_store`.
pub(crate) fn run_data<B: Backend>(context: &Context<'_, B>, op: DataOp) -> Execution {
    match op {
        DataOp::Write(command) => write_store(context, command),
        DataOp::Read(query) => read_store(context, move |store| {
            // The leader's clock (or the store's, if this node's is behind):
            // a key whose expiry passed reads as missing before any write
            // removes it.
            reply_frame(store.query(&query, read_clock_ms(store)))
        }),
    }
}

/// FLUSHDB / FLUSHALL's optional mode: both are applied the same way.
fn flush_mode(args: &mut Args) -> Result<(), CommandError> {
    match args.next_optional() {
        None => Ok(()),
        Some(mode) if mode.eq_ignore_ascii_case(b"ASYNC") || mode.eq_ignore_ascii_case(b"SYNC") => {
            Ok(())
        }
        Some(_) => Err(CommandError::Syntax),
    }
}

/// Random bytes for RANDOMKEY, drawn from a per-process counter mixed
/// through SHA-256 with the clock: any spread over the key space will do.
fn random_probe() -> Bytes {
    use sha2::{Digest, Sha256};
    use std::sync::atomic::{AtomicU64, Ordering};
    static DRAWS: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut hasher = Sha256::new();
    hasher.update(DRAWS.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    hasher.update(nanos.to_be_bytes());
    Bytes::copy_from_slice(&hasher.finalize()[..8])
}

/// Queues a data command between MULTI and EXEC.
fn queue(transaction: &mut Transaction, op: DataOp) -> Execution {
    if transaction.ops.len() >= TRANSACTION_OPS_MAX {
        transaction.failed = true;
        return Execution::Now(Frame::error(format!(
            "ERR a transaction holds at most {TRANSACTION_OPS_MAX} commands"
        )));
    }
    transaction.ops.push(op);
    Execution::Now(Frame::Simple("QUEUED".into()))
}

/// EVAL and EVALSHA's refusal, naming what to use instead.
fn refuse_script(name: &str) -> CommandError {
    CommandError::Other(format!(
        "ERR {} is not supported: raftkv runs no scripts. Use MULTI/EXEC for atomic updates, with WATCH for check-and-set",
        name.to_ascii_uppercase()
    ))
}
