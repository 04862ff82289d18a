//! Request decoding: arity, options and error wording, without a node.

use bytes::Bytes;

use raftkv::kv::{Command as KvCommand, Query, SetCondition, TtlChange};

use crate::resp::cmd::{Command, CommandError, DataOp, SPECS};

fn parse(words: &[&str]) -> Result<Command, CommandError> {
    Command::from_words(
        words
            .iter()
            .map(|word| Bytes::copy_from_slice(word.as_bytes()))
            .collect(),
    )
}

fn error_of(words: &[&str]) -> String {
    match parse(words) {
        Ok(command) => panic!("{words:?} parsed as {command:?}, expected an error"),
        Err(error) => error.to_string(),
    }
}

fn arity_error(name: &str) -> String {
    format!("ERR wrong number of arguments for '{name}' command")
}

#[test]
fn every_command_rejects_too_few_arguments_with_redis_wording() {
    for spec in SPECS {
        let required = spec.arity.unsigned_abs() as usize;
        if required <= 1 {
            continue;
        }
        let too_few: Vec<&str> = std::iter::once(spec.name)
            .chain(std::iter::repeat_n("x", required - 2))
            .collect();
        assert_eq!(error_of(&too_few), arity_error(spec.name), "{too_few:?}");
    }
}

#[test]
fn every_fixed_arity_command_rejects_extra_arguments() {
    for spec in SPECS.iter().filter(|spec| spec.arity > 0) {
        let too_many: Vec<&str> = std::iter::once(spec.name)
            .chain(std::iter::repeat_n("x", spec.arity as usize))
            .collect();
        assert_eq!(error_of(&too_many), arity_error(spec.name), "{too_many:?}");
    }
}

#[test]
fn command_names_are_case_insensitive() {
    assert!(matches!(
        parse(&["gEt", "k"]),
        Ok(Command::Data(DataOp::Read(Query::Get { .. })))
    ));
    assert!(matches!(
        parse(&["raft.STATUS"]),
        Ok(Command::RaftStatus(_))
    ));
    assert!(matches!(
        parse(&["Raft.Digest"]),
        Ok(Command::RaftDigest(_))
    ));
}

#[test]
fn unknown_command_names_itself_and_its_first_arguments() {
    assert_eq!(
        error_of(&["foo"]),
        "ERR unknown command 'foo', with args beginning with: "
    );
    assert_eq!(
        error_of(&["FOO", "a", "b c"]),
        "ERR unknown command 'FOO', with args beginning with: 'a' 'b c' "
    );
    let long = "x".repeat(500);
    let message = error_of(&["foo", &long, "next"]);
    assert!(message.len() < 300, "arguments are cut short: {message}");
}

#[test]
fn variadic_commands_need_at_least_one_key() {
    for name in ["del", "exists", "mget"] {
        assert_eq!(error_of(&[name]), arity_error(name));
        assert!(parse(&[name, "a", "b", "c"]).is_ok());
    }
}

#[test]
fn mset_needs_pairs() {
    assert_eq!(error_of(&["mset", "a"]), arity_error("mset"));
    assert_eq!(error_of(&["mset", "a", "1", "b"]), arity_error("mset"));
    match parse(&["mset", "a", "1", "b", "2"]) {
        Ok(Command::Data(DataOp::Write(KvCommand::MSet { pairs }))) => assert_eq!(pairs.len(), 2),
        other => panic!("{other:?}"),
    }
}

#[test]
fn set_parses_its_options_and_names_the_ones_it_does_not_know() {
    let set_ttl = |words: &[&str]| match parse(words) {
        Ok(Command::Data(DataOp::Write(KvCommand::SetTtl {
            condition,
            get,
            ttl,
            ..
        }))) => (condition, get, ttl),
        other => panic!("{words:?}: {other:?}"),
    };
    assert!(matches!(
        parse(&["set", "k", "v"]),
        Ok(Command::Data(DataOp::Write(KvCommand::Set { .. })))
    ));
    assert_eq!(
        set_ttl(&["set", "k", "v", "nx"]),
        (SetCondition::IfAbsent, false, TtlChange::Clear)
    );
    assert_eq!(
        set_ttl(&["set", "k", "v", "XX", "GET", "KEEPTTL"]),
        (SetCondition::IfPresent, true, TtlChange::Keep)
    );
    assert_eq!(
        set_ttl(&["set", "k", "v", "PXAT", "1700000000000"]),
        (
            SetCondition::Always,
            false,
            TtlChange::At(1_700_000_000_000)
        )
    );
    assert!(matches!(
        set_ttl(&["set", "k", "v", "EX", "10"]).2,
        TtlChange::At(at) if at > 1_700_000_000_000
    ));
    assert_eq!(error_of(&["set", "k", "v", "NX", "XX"]), "ERR syntax error");
    assert_eq!(
        error_of(&["set", "k", "v", "EX", "1", "PX", "1"]),
        "ERR syntax error"
    );
    assert_eq!(error_of(&["set", "k", "v", "EX"]), "ERR syntax error");
    assert_eq!(
        error_of(&["set", "k", "v", "EX", "0"]),
        "ERR invalid expire time in 'set' command"
    );
    assert_eq!(
        error_of(&["set", "k", "v", "EX", "x"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        error_of(&["set", "k", "v", "BOGUS"]),
        "ERR syntax error: unknown SET option 'BOGUS'"
    );
    assert_eq!(error_of(&["set", "k"]), arity_error("set"));
}

#[test]
fn expire_options_follow_redis() {
    assert_eq!(
        error_of(&["expire", "k", "10", "NX", "XX"]),
        "ERR NX and XX, GT or LT options at the same time are not compatible"
    );
    assert_eq!(
        error_of(&["expire", "k", "10", "GT", "LT"]),
        "ERR NX and XX, GT or LT options at the same time are not compatible"
    );
    assert!(parse(&["expire", "k", "10", "XX", "GT"]).is_ok());
    assert_eq!(
        error_of(&["expire", "k", "10", "SOON"]),
        "ERR Unsupported option SOON"
    );
    assert_eq!(
        error_of(&["expire", "k", "9223372036854775807"]),
        "ERR invalid expire time in 'expire' command"
    );
    assert_eq!(
        error_of(&["setex", "k", "-1", "v"]),
        "ERR invalid expire time in 'setex' command"
    );
    assert_eq!(error_of(&["getex", "k", "EX"]), "ERR syntax error");
}

#[test]
fn ping_takes_zero_or_one_argument() {
    assert!(parse(&["ping"]).is_ok());
    assert!(parse(&["ping", "hi"]).is_ok());
    assert_eq!(error_of(&["ping", "a", "b"]), arity_error("ping"));
}

#[test]
fn hello_parses_version_auth_and_setname() {
    assert!(parse(&["hello"]).is_ok());
    assert!(parse(&["hello", "3", "AUTH", "default", "secret", "SETNAME", "me"]).is_ok());
    assert_eq!(
        error_of(&["hello", "three"]),
        "ERR Protocol version is not an integer or out of range"
    );
    assert_eq!(
        error_of(&["hello", "3", "BOGUS"]),
        "ERR Syntax error in HELLO option 'BOGUS'"
    );
    assert_eq!(
        error_of(&["hello", "3", "AUTH", "user"]),
        "ERR Syntax error in HELLO option 'AUTH'"
    );
    // The version is checked when run (NOPROTO), not when parsed.
    assert!(parse(&["hello", "4"]).is_ok());
}

#[test]
fn client_subcommands_have_their_own_arity_and_wording() {
    assert!(parse(&["client", "setname", "worker-1"]).is_ok());
    assert!(parse(&["CLIENT", "GETNAME"]).is_ok());
    assert!(parse(&["client", "id"]).is_ok());
    assert!(parse(&["client", "info"]).is_ok());
    assert!(parse(&["client", "setinfo", "lib-name", "redis-py"]).is_ok());
    assert_eq!(
        error_of(&["client", "setname"]),
        arity_error("client|setname")
    );
    assert_eq!(
        error_of(&["client", "getname", "x"]),
        arity_error("client|getname")
    );
    assert_eq!(
        error_of(&["client", "bogus"]),
        "ERR unknown subcommand 'bogus'. Try CLIENT HELP."
    );
    assert_eq!(
        error_of(&["client", "setname", "has space"]),
        "ERR Client names cannot contain spaces, newlines or special characters."
    );
    assert_eq!(
        error_of(&["client", "setinfo", "color", "red"]),
        "ERR Unrecognized option 'color'"
    );
    assert_eq!(error_of(&["client"]), arity_error("client"));
}

#[test]
fn command_subcommands() {
    assert!(parse(&["command"]).is_ok());
    assert!(parse(&["command", "docs"]).is_ok());
    assert!(parse(&["command", "DOCS", "get", "set"]).is_ok());
    assert!(parse(&["command", "count"]).is_ok());
    assert!(parse(&["command", "info", "get"]).is_ok());
    assert_eq!(
        error_of(&["command", "count", "x"]),
        arity_error("command|count")
    );
    assert_eq!(
        error_of(&["command", "nope"]),
        "ERR unknown subcommand 'nope'. Try COMMAND HELP."
    );
}

#[test]
fn scan_options_and_cursor() {
    assert!(parse(&["scan", "0"]).is_ok());
    assert!(parse(&["scan", "0", "MATCH", "key:*", "COUNT", "100", "TYPE", "string"]).is_ok());
    assert_eq!(error_of(&["scan", "abc"]), "ERR invalid cursor");
    assert_eq!(error_of(&["scan", "-1"]), "ERR invalid cursor");
    assert_eq!(error_of(&["scan", "0", "COUNT"]), "ERR syntax error");
    assert_eq!(error_of(&["scan", "0", "COUNT", "0"]), "ERR syntax error");
    assert_eq!(
        error_of(&["scan", "0", "COUNT", "ten"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(error_of(&["scan", "0", "LIMIT", "5"]), "ERR syntax error");
    assert_eq!(error_of(&["scan"]), arity_error("scan"));
}

#[test]
fn quit_ignores_arguments_and_info_takes_sections() {
    assert!(parse(&["quit"]).is_ok());
    assert!(parse(&["quit", "now"]).is_ok());
    assert!(parse(&["info"]).is_ok());
    assert!(parse(&["info", "raft", "keyspace"]).is_ok());
}

#[test]
fn error_replies_that_raftkv_adds_have_fixed_wording() {
    use crate::driver::handle::{ReadError, WriteError};
    use crate::resp::backend::{read_error_frame, write_error_frame};
    use crate::resp::Frame;
    let moved = WriteError::NotLeader {
        leader_client_addr: Some("127.0.0.1:7001".into()),
    };
    assert_eq!(
        write_error_frame(moved, 12182),
        Frame::error("MOVED 12182 127.0.0.1:7001")
    );
    assert_eq!(
        write_error_frame(
            WriteError::NotLeader {
                leader_client_addr: None
            },
            0
        ),
        Frame::error("CLUSTERDOWN no leader")
    );
    assert_eq!(
        write_error_frame(WriteError::NoLeader, 0),
        Frame::error("CLUSTERDOWN no leader")
    );
    assert_eq!(
        write_error_frame(WriteError::OutcomeUnknown("leadership lost".into()), 0),
        Frame::error("UNCERTAIN outcome unknown: leadership lost")
    );
    assert_eq!(
        write_error_frame(WriteError::Refused("overloaded".into()), 0),
        Frame::error("TRYAGAIN overloaded")
    );
    let read_moved = ReadError::NotLeader {
        leader_client_addr: Some("127.0.0.1:7002".into()),
    };
    assert_eq!(
        read_error_frame(read_moved, 0),
        Frame::error("MOVED 0 127.0.0.1:7002")
    );
    assert_eq!(
        read_error_frame(ReadError::NoLeader, 0),
        Frame::error("CLUSTERDOWN no leader")
    );
    assert_eq!(
        read_error_frame(ReadError::Refused("busy".into()), 0),
        Frame::error("TRYAGAIN busy")
    );
}

#[test]
fn command_table_is_consistent() {
    let mut names: Vec<&str> = SPECS.iter().map(|spec| spec.name).collect();
    let count = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), count, "command names are unique");
    for spec in SPECS {
        assert_eq!(spec.name, spec.name.to_ascii_lowercase());
        assert_ne!(spec.arity, 0, "{}", spec.name);
    }
}

#[test]
fn scan_cursor_table_is_bounded_and_never_hands_out_zero() {
    use crate::resp::scan_cursors::{ScanCursors, SCAN_CURSORS_MAX, SCAN_CURSOR_BYTES_MAX};
    let mut cursors = ScanCursors::default();
    let first = cursors.insert(Bytes::from_static(b"first"));
    assert_ne!(first, 0);
    assert_eq!(cursors.get(first), Some(Bytes::from_static(b"first")));
    for index in 0..SCAN_CURSORS_MAX + 10 {
        assert_ne!(cursors.insert(Bytes::from(format!("key:{index}"))), 0);
    }
    assert_eq!(cursors.len(), SCAN_CURSORS_MAX);
    assert_eq!(
        cursors.get(first),
        None,
        "the oldest cursor is forgotten first"
    );
    // Large keys are bounded by total bytes.
    let big = Bytes::from(vec![b'k'; SCAN_CURSOR_BYTES_MAX / 4]);
    for _ in 0..10 {
        cursors.insert(big.clone());
    }
    assert!(cursors.len() <= 4);
}

#[test]
fn every_command_in_the_table_has_a_parser() {
    for spec in SPECS {
        let words: Vec<&str> = std::iter::once(spec.name)
            .chain(std::iter::repeat_n(
                "1",
                spec.arity.unsigned_abs() as usize - 1,
            ))
            .collect();
        if let Err(CommandError::Unknown { .. }) = parse(&words) {
            panic!("'{}' is in the command table but has no parser", spec.name);
        }
    }
}
